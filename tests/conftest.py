"""Shared fixtures: temporary landing zones and lakes, settings, a Dagster instance."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from lake_pipeline.lake.firehose import object_key
from lake_pipeline.lake.storage import LocalStorage
from lake_pipeline.settings import Settings, load_settings

HOUR = datetime(2025, 11, 20, 13, tzinfo=UTC)
T0 = HOUR.timestamp()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No LAKE_* or AWS settings leak in from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("LAKE_") or name.startswith("AWS_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))


@pytest.fixture(scope="session")
def defs():
    """The code location, loaded once (it is read-only)."""
    from lake_pipeline.definitions import defs as load

    return load()


@pytest.fixture
def instance():
    """A real, ephemeral Dagster instance."""
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    path = tmp_path / "raw"
    path.mkdir()
    return path


@pytest.fixture
def lake_dir(tmp_path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def settings(raw_dir, lake_dir) -> Settings:
    return load_settings(raw_uri=str(raw_dir), lake_uri=str(lake_dir))


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
