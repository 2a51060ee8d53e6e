"""Hand-made records and Firehose objects for tests."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.storage.objects import LocalStorage

HOUR = datetime(2025, 11, 20, 13, tzinfo=UTC)
T0 = HOUR.timestamp()


def event(uuid: str, name: str = "page:view", at: float = T0 + 60, **payload) -> dict:
    return {"event_uuid": uuid, "event_name": name, "created_at": at, **payload}


def write_object(
    raw_dir: Path,
    records: Iterable[dict | bytes],
    *,
    second: int = 0,
    minute: int = 5,
    hour: datetime = HOUR,
    compress: bool = True,
    uid: str | None = None,
) -> str:
    """Write one Firehose-style object (records concatenated with no delimiter); return its key."""
    body = b"".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in records)
    arrived = hour.replace(minute=minute, second=second)
    key = object_key("events", arrived, ".gz" if compress else "", uid or f"{minute:02d}{second:02d}-0000-0000")
    LocalStorage(str(raw_dir)).write(key, gzip.compress(body) if compress else body)
    return key
