"""Firehose object key layout: ``YYYY/MM/dd/HH/<stream>-1-<YYYY-MM-dd-HH-mm-ss>-<uuid>[.gz]``.

Keys are relative to the raw URI (``s3://<raw-bucket>/raw`` in AWS, where Firehose's
prefix is ``raw/!{timestamp:yyyy/MM/dd/HH}/``). Their lexicographic order is
arrival order.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from datetime import UTC, datetime, timedelta

HOUR_PREFIX_FORMAT = "%Y/%m/%d/%H/"
_KEY_HOUR = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})/")


def object_key(stream: str, arrived: datetime, suffix: str = ".gz", uid: str | None = None) -> str:
    arrived = arrived.astimezone(UTC)
    uid = uid or str(uuidlib.uuid4())
    return f"{arrived.strftime(HOUR_PREFIX_FORMAT)}{stream}-1-{arrived.strftime('%Y-%m-%d-%H-%M-%S')}-{uid}{suffix}"


def hour_prefix(hour: datetime) -> str:
    return hour.astimezone(UTC).strftime(HOUR_PREFIX_FORMAT)


def key_hour(key: str) -> datetime | None:
    """The arrival hour encoded in a key's prefix, or None for keys outside the layout."""
    m = _KEY_HOUR.match(key)
    if not m:
        return None
    y, mo, d, h = (int(g) for g in m.groups())
    try:
        return datetime(y, mo, d, h, tzinfo=UTC)
    except ValueError:
        return None


def recent_hour_prefixes(now: datetime, lookback_hours: int) -> list[str]:
    """Prefixes of the current hour and the ``lookback_hours`` before it, oldest first."""
    top = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [hour_prefix(top - timedelta(hours=h)) for h in range(lookback_hours, -1, -1)]


def hour_prefixes_between(start: datetime, end: datetime) -> list[str]:
    """Prefixes of every hour from ``start`` to ``end`` inclusive."""
    cur = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while cur <= end:
        out.append(hour_prefix(cur))
        cur += timedelta(hours=1)
    return out
