"""Rebuild arrival hours: replace what came from their raw objects, leave the rest.

After a logic change, ``rebuild_hours`` removes every row that came from the raw
objects of those Firehose arrival hours (events, the seen-keys index, quarantine, ledger, plans), so
the next ingest processes them again as new. The intent is recorded first in
``_ingest_rebuilds``; a rebuild interrupted half-way is finished (its deletes are
idempotent) before any other ingest work, so no table is left half-rebuilt.
The deletes and the rewrite of the plans go through :class:`Lake` (lake_pipeline/tables/lake.py).
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow as pa

from lake_pipeline.contract import PLANS_SCHEMA, SOURCE_KEY
from lake_pipeline.tables.lake import Lake
from lake_pipeline.ingest.firehose import hour_prefix
from lake_pipeline.settings import DEDUPE_INDEX_TABLE, EVENTS_TABLE, LEDGER_TABLE, PLANS_TABLE, QUARANTINE_TABLE, REBUILDS_TABLE

_REBUILDS_SCHEMA = pa.schema(
    [
        pa.field("rebuild_id", pa.string(), nullable=False),
        pa.field("key_from", pa.string(), nullable=False),  # inclusive
        pa.field("key_to", pa.string(), nullable=False),  # exclusive
        pa.field("status", pa.string(), nullable=False),  # started | done
        pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


@dataclass(frozen=True)
class KeyRange:
    """Raw keys from ``lo`` (inclusive) to ``hi`` (exclusive): whole arrival hours."""

    lo: str
    hi: str

    @classmethod
    def hours(cls, first: datetime, last: datetime) -> KeyRange:
        return cls(hour_prefix(first), hour_prefix(last + timedelta(hours=1)))

    def contains(self, key: str) -> bool:
        return self.lo <= key < self.hi

    def predicate(self, column: str) -> str:
        return f"{column} >= '{self.lo}' AND {column} < '{self.hi}'"


def _record(lake: Lake, rebuild_id: str, keys: KeyRange, status: str) -> None:
    row = {"rebuild_id": rebuild_id, "key_from": keys.lo, "key_to": keys.hi, "status": status,
           "at": datetime.now(UTC)}
    lake.append(REBUILDS_TABLE, pa.Table.from_pylist([row], schema=_REBUILDS_SCHEMA))


def unfinished_rebuilds(lake: Lake) -> list[tuple[str, KeyRange]]:
    scan = lake.scan(REBUILDS_TABLE)
    if scan is None:
        return []
    df = scan.collect()
    done = set(df.filter(pl.col("status") == "done").get_column("rebuild_id").to_list())
    started = df.filter((pl.col("status") == "started") & ~pl.col("rebuild_id").is_in(list(done))).sort("at")
    return [(r, KeyRange(lo, hi)) for r, lo, hi in started.select("rebuild_id", "key_from", "key_to").iter_rows()]


def _apply(lake: Lake, rebuild_id: str, keys: KeyRange) -> dict[str, int]:
    """The deletes of one rebuild. Ledger first: once it forgets the objects, they are
    pending again, so a crash at any later point loses nothing."""
    removed: dict[str, int] = {}
    # The seen-keys index forgets the removed events with them (before any ingest runs again).
    for table, column in ((LEDGER_TABLE, "source_key"), (EVENTS_TABLE, SOURCE_KEY), (DEDUPE_INDEX_TABLE, SOURCE_KEY),
                          (QUARANTINE_TABLE, "source_key")):
        if table == EVENTS_TABLE:
            _drop_plans(lake, keys)
        removed[table] = lake.delete(table, keys.predicate(column))
    _record(lake, rebuild_id, keys, "done")
    return removed


def _drop_plans(lake: Lake, keys: KeyRange) -> None:
    """Forget plans of batches that held any key of the range (their ledger rows are gone)."""
    snapshot = lake.table(PLANS_TABLE)
    if snapshot is None:
        return
    plans = pl.from_arrow(lake.read_arrow(PLANS_TABLE, snapshot=snapshot))
    hit = plans.with_columns(
        pl.col("source_keys").list.eval((pl.element() >= keys.lo) & (pl.element() < keys.hi)).list.any().alias("hit")
    )
    if not hit.get_column("hit").any():
        return
    keep = hit.filter(~pl.col("hit")).drop("hit").to_arrow().cast(PLANS_SCHEMA)
    lake.overwrite(PLANS_TABLE, keep, snapshot=snapshot)


def rebuild_hours(lake: Lake, first: datetime, last: datetime) -> dict[str, int]:
    """Remove what came from arrival hours ``first``..``last``; return rows removed per table."""
    keys = KeyRange.hours(first, last)
    rebuild_id = str(uuidlib.uuid4())
    _record(lake, rebuild_id, keys, "started")
    return _apply(lake, rebuild_id, keys)


def finish_unfinished_rebuilds(lake: Lake) -> int:
    pending = unfinished_rebuilds(lake)
    for rebuild_id, keys in pending:
        _apply(lake, rebuild_id, keys)
    return len(pending)

