"""The hourly mart ``hourly_event_counts`` (business logic; no Dagster here).

One row per (UTC hour of created_at, event_name): ``events`` and the exact number of
distinct non-null ``payload.user_id``. It is a Delta table at
``<lake>/hourly_event_counts``, updated after each batch for the hours the batch
touched, never by a full rebuild unless it has to be.

**Which hours.** Every mart commit carries a Delta transaction
(``app_id`` = :data:`MART_APP_ID`) whose version is the ``events`` table version the
mart reflects. An update reads the ``events`` commits after that version:

- an ingest append (``WRITE``/``Append`` with a ``batch_id`` in its commit metadata):
  the hours of the rows with those ``_batch_id`` values are recomputed;
- a compaction or vacuum (``OPTIMIZE``, ``VACUUM *``): nothing changed;
- anything else (a delete or overwrite of a rebuild, a restore, ...): every hour of
  the event dates whose files were added or removed since that version is recomputed;
- when that version's log is gone, or the mart doesn't exist: everything is rebuilt.

Reading the log instead of only the latest run's ``batch_ids`` means batches are
never missed when several ingest runs finish before the mart runs once.

**How.** Recomputing an hour reads the rows of that hour from ``events`` (pruned
by the ``event_date`` partition and ``created_at`` file statistics) and aggregates
them in DuckDB; the touched hours are then replaced in one commit with a Delta
predicate overwrite (``event_hour IN (...)``), so readers see all or nothing. Every
table access goes through :class:`Lake` (lake_pipeline/tables/lake.py).
``payload.user_id`` is compared as DuckDB's ``json_extract_string`` gives it
(strings unquoted, numbers as written), which stays exact for integers beyond 64 bits.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, Transaction

from lake_pipeline.contract import BATCH_ID, CREATED_AT
from lake_pipeline.tables.lake import Lake
from lake_pipeline.quality.rules import CheckOutcome
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_COUNTS_TABLE

MART_APP_ID = "lake_pipeline.marts.hourly_event_counts"

HOURLY_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("event_hour", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("event_subtype", pa.string(), nullable=True),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("unique_users", pa.int64(), nullable=False),
    ]
)

# Commits of `events` that never change its rows.
NO_DATA_CHANGE_OPERATIONS = {"OPTIMIZE", "VACUUM START", "VACUUM END", "CHECKPOINT"}
# Rows per chunk streamed from Polars into DuckDB (memory is bounded by chunks, not by hours).
CHUNK_ROWS = 256 * 1024
# The mart compacts itself once it has this many files.
MART_COMPACT_FILES = 32

_AGGREGATE_SQL = """
SELECT
    CAST(substr(created_datetime, 1, 13) || ':00:00+00' AS TIMESTAMPTZ) AS event_hour,
    event_name,
    event_type,
    event_subtype,
    count(*)::BIGINT AS events,
    count(DISTINCT json_extract_string(payload, '$.user_id'))::BIGINT AS unique_users
FROM hour_rows
GROUP BY ALL
"""


def hour_key(ts: datetime) -> str:
    """'YYYY-MM-DDTHH' of a UTC hour: the first 13 characters of created_datetime."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H")


def hour_start(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)


def _epoch(key: str) -> float:
    return hour_start(key).timestamp()


@dataclass
class TouchedHours:
    """What changed in `events` since the mart's version, and which hours that makes stale."""

    since_version: int | None
    events_version: int
    hours: set[str] = field(default_factory=set)
    full_rebuild: bool = False
    batch_ids: list[int] = field(default_factory=list)
    reason: str = ""


@dataclass
class MartUpdate:
    events_version: int | None
    since_version: int | None
    full_rebuild: bool
    hours: list[str]
    rows_written: int
    batch_ids: list[int]
    mart_version: int | None
    seconds: float
    reason: str = ""
    compacted: bool = False

    @property
    def changed(self) -> bool:
        return self.mart_version is not None


def mart_events_version(lake: Lake) -> int | None:
    """The events version the mart reflects (None: no mart yet)."""
    mart = lake.table(HOURLY_COUNTS_TABLE)
    return None if mart is None else mart.transaction_version(MART_APP_ID)


def _hours_of_dates(dates: Iterable[str]) -> set[str]:
    out = set()
    for d in dates:
        start = datetime.combine(date.fromisoformat(d), datetime.min.time(), UTC)
        out.update(hour_key(start + timedelta(hours=h)) for h in range(24))
    return out


def all_hours(events: pl.LazyFrame) -> set[str]:
    """Every hour that holds events (reads created_datetime of the whole scan)."""
    keys = events.select(pl.col("created_datetime").str.slice(0, 13).unique()).collect()
    return set(keys.to_series().to_list())


def _rebuild_all(out: TouchedHours, lake: Lake, events: DeltaTable, reason: str) -> TouchedHours:
    out.full_rebuild, out.reason = True, reason
    out.hours = all_hours(lake.scan(EVENTS_TABLE, snapshot=events))
    return out


def _classify_commits(commits: dict[int, dict], since_version: int, version: int) -> tuple[list[int], list[str]]:
    """The batch ids of the ingest appends after ``since_version``, and the other commits that
    may have changed rows (compactions and vacuums change none: they are skipped)."""
    batch_ids: list[int] = []
    other = []
    for v in range(since_version + 1, version + 1):
        c = commits[v]
        op = c.get("operation", "")
        mode = (c.get("operationParameters") or {}).get("mode", "")
        if op in NO_DATA_CHANGE_OPERATIONS:
            continue
        if op == "WRITE" and mode in ("Append", "ErrorIfExists") and str(c.get("batch_id", "")).isdigit():
            batch_ids.append(int(c["batch_id"]))
        else:
            other.append(f"v{v} {op} {mode}".strip())
    return sorted(set(batch_ids)), other


def _changed_dates(before: pa.Table, now: pa.Table) -> set[str]:
    """event_date of every file added or removed between two add-actions tables."""
    old = dict(zip(before.column("path").to_pylist(), before.column("partition.event_date").to_pylist(), strict=True))
    new = dict(zip(now.column("path").to_pylist(), now.column("partition.event_date").to_pylist(), strict=True))
    return {str(d) for p, d in old.items() if p not in new} | {str(d) for p, d in new.items() if p not in old}


def touched_hours(lake: Lake, events: DeltaTable, since_version: int | None) -> TouchedHours:
    """Hours of ``events`` (a snapshot) whose counts may differ from version ``since_version``."""
    version = events.version()
    out = TouchedHours(since_version, version)
    if since_version is None:
        return _rebuild_all(out, lake, events, "the mart does not exist yet")
    if since_version > version:
        return _rebuild_all(out, lake, events, f"the mart reflects v{since_version}, newer than events v{version}")
    if since_version == version:
        out.reason = "events unchanged"
        return out
    commits = {h["version"]: h for h in events.history(limit=version - since_version)}
    missing = [v for v in range(since_version + 1, version + 1) if v not in commits]
    if missing:
        return _rebuild_all(out, lake, events, f"the events log no longer holds v{missing[0]}")
    out.batch_ids, other = _classify_commits(commits, since_version, version)
    if out.batch_ids:
        keys = (
            lake.scan(EVENTS_TABLE, snapshot=events)
            .filter(pl.col(BATCH_ID).is_in(out.batch_ids))
            .select(pl.col("created_datetime").str.slice(0, 13).unique())
            .collect()
        )
        out.hours.update(keys.to_series().to_list())
    if not other:
        out.reason = f"{len(out.batch_ids)} new batch(es)"
        return out
    # Not an append: recompute every hour of the dates whose files changed.
    try:
        before = lake.add_actions(EVENTS_TABLE, since_version)
    except StorageError as exc:  # the old snapshot can't be loaded (log cleaned up)
        return _rebuild_all(out, lake, events, f"cannot load events v{since_version}: {exc}")
    if before is None:  # the table is gone since (only a snapshot is left)
        return _rebuild_all(out, lake, events, f"cannot load events v{since_version}: no events table")
    dates = _changed_dates(before, lake.add_actions(EVENTS_TABLE, snapshot=events))
    out.hours |= _hours_of_dates(dates)
    out.reason = f"{len(other)} non-append commit(s) ({', '.join(other[:3])}): {len(dates)} date(s) recomputed"
    return out


def _arrow_stream(frame: pl.LazyFrame) -> pa.RecordBatchReader | None:
    """The rows of ``frame`` as a stream of Arrow batches of CHUNK_ROWS (None when there are none)."""
    chunks = iter(frame.collect_batches(chunk_size=CHUNK_ROWS, maintain_order=False))
    for first in chunks:
        if first.height:
            break
    else:
        return None
    schema = first.to_arrow().schema

    def batches():
        yield from first.to_arrow().to_batches()
        for df in chunks:
            yield from df.to_arrow().cast(schema).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def hourly_counts(events: pl.LazyFrame, hours: Iterable[str]) -> pa.Table:
    """hourly_event_counts rows of ``hours``, computed from ``events`` (a scan of one version).

    One streaming read per event_date: Polars scans the date's partitions (pruned by the
    created_at statistics of the files), DuckDB aggregates the stream with bounded memory.
    """
    by_date: dict[str, list[str]] = defaultdict(list)
    for key in sorted(set(hours)):
        by_date[key[:10]].append(key)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    parts = []
    for d, keys in sorted(by_date.items()):
        rows = (
            events.filter(
                (pl.col("event_date") == date.fromisoformat(d))
                & (pl.col(CREATED_AT) >= _epoch(keys[0]) - 1)  # file/row-group pruning; exact filter below
                & (pl.col(CREATED_AT) < _epoch(keys[-1]) + 3601)
                & pl.col("created_datetime").str.slice(0, 13).is_in(keys)
            )
            .select("created_datetime", "event_name", "event_type", "event_subtype", "payload")
        )
        stream = _arrow_stream(rows)
        if stream is None:
            continue
        con.register("hour_rows", stream)
        parts.append(con.sql(_AGGREGATE_SQL).to_arrow_table().cast(HOURLY_COUNTS_SCHEMA))
        con.unregister("hour_rows")
    if not parts:
        return HOURLY_COUNTS_SCHEMA.empty_table()
    return pa.concat_tables(parts).sort_by([("event_hour", "ascending"), ("event_name", "ascending")])


def _predicate(hours: Iterable[str]) -> str:
    return "event_hour IN (" + ", ".join(f"'{k}:00:00Z'" for k in sorted(hours)) + ")"


def _replace_hours(lake: Lake, rows: pa.Table, touched: TouchedHours, run_id: str | None) -> None:
    """Write ``rows`` in one commit that records the events version they reflect: the whole
    mart on a full rebuild (or when there is none yet), else only the touched hours."""
    txn = Transaction(MART_APP_ID, touched.events_version)
    metadata = {"lake/operation": "hourly_event_counts", "events_version": str(touched.events_version),
                "hours": str(len(touched.hours)), "lake/run_id": run_id or ""}
    if touched.full_rebuild or not lake.exists(HOURLY_COUNTS_TABLE):
        lake.overwrite(HOURLY_COUNTS_TABLE, rows, replace_schema=True, txn=txn, metadata=metadata)
    else:
        lake.overwrite(HOURLY_COUNTS_TABLE, rows, predicate=_predicate(touched.hours), txn=txn, metadata=metadata)


def _keep_files_few(lake: Lake, mart: DeltaTable) -> bool:
    """Compact and vacuum the mart once it has MART_COMPACT_FILES files (True when it did).
    The mart's only writer is :func:`update_hourly_counts`, so it keeps its own files few."""
    if lake.add_actions(HOURLY_COUNTS_TABLE, snapshot=mart).num_rows < MART_COMPACT_FILES:
        return False
    lake.compact(HOURLY_COUNTS_TABLE, snapshot=mart)
    lake.vacuum(HOURLY_COUNTS_TABLE)  # the table's retention (7 days unless configured), enforced
    return True


def update_hourly_counts(lake: Lake, run_id: str | None = None) -> MartUpdate:
    """Bring the mart up to the current version of ``events``: recompute the touched hours and
    replace them in one commit. A no-op (no commit) when events hasn't changed."""
    started = time.perf_counter()
    events = lake.table(EVENTS_TABLE)
    if events is None:
        return MartUpdate(None, None, False, [], 0, [], None, time.perf_counter() - started, "no events table yet")
    since = mart_events_version(lake)
    touched = touched_hours(lake, events, since)
    base = MartUpdate(touched.events_version, since, touched.full_rebuild, sorted(touched.hours), 0,
                      touched.batch_ids, None, 0.0, touched.reason)
    if not touched.hours and not touched.full_rebuild:
        # Nothing to recompute (no new events, or only compactions/vacuums since): no commit.
        base.seconds = time.perf_counter() - started
        return base
    rows = hourly_counts(lake.scan(EVENTS_TABLE, snapshot=events), touched.hours)
    _replace_hours(lake, rows, touched, run_id)
    mart = lake.table(HOURLY_COUNTS_TABLE)
    base.mart_version = mart.version()
    base.rows_written = rows.num_rows
    base.compacted = _keep_files_few(lake, mart)
    base.seconds = time.perf_counter() - started
    return base


# --- Checks -------------------------------------------------------------------------


def _mart_frame(lake: Lake) -> pl.DataFrame | None:
    mart = lake.read_arrow(HOURLY_COUNTS_TABLE)
    return None if mart is None else pl.from_arrow(mart)


def _comparable_events(lake: Lake, version: int) -> DeltaTable | None:
    """``events`` as the mart saw it: the current version when only compactions and vacuums
    came since (same rows, and the old files may be vacuumed by now), else version ``version``."""
    current = lake.table(EVENTS_TABLE)
    if current is None or version >= current.version():
        return current
    n = current.version() - version
    commits = current.history(limit=n)
    if len(commits) == n and all(c.get("operation") in NO_DATA_CHANGE_OPERATIONS for c in commits):
        return current
    return lake.table(EVENTS_TABLE, version)


def _hour_mismatches(mart: pl.DataFrame, events: pl.LazyFrame, wanted: list[str]) -> list[str]:
    """Hours of ``wanted`` whose mart sum differs from the events count."""
    mart_hours = dict(
        mart.filter(pl.col("event_hour").dt.strftime("%Y-%m-%dT%H").is_in(wanted))
        .group_by(pl.col("event_hour").dt.strftime("%Y-%m-%dT%H").alias("h"))
        .agg(pl.col("events").sum())
        .iter_rows()
    )
    event_hours = dict(
        events.filter(pl.col("event_date").is_in([date.fromisoformat(k[:10]) for k in wanted]))
        .select(pl.col("created_datetime").str.slice(0, 13).alias("h"))
        .filter(pl.col("h").is_in(wanted))
        .group_by("h")
        .agg(pl.len())
        .collect()
        .iter_rows()
    )
    return [f"{k}: mart {mart_hours.get(k, 0)} != events {event_hours.get(k, 0)}"
            for k in wanted if mart_hours.get(k, 0) != event_hours.get(k, 0)]


def counts_match_events(lake: Lake, hours: Iterable[str] | None = None) -> CheckOutcome:
    """The mart's ``events`` sums equal the events table's row counts: per hour for ``hours``
    (e.g. those the latest update touched) and in total, both at the events version the
    mart reflects (so batches committed since don't count as differences)."""
    mart = lake.table(HOURLY_COUNTS_TABLE)
    if mart is None:
        return CheckOutcome(False, "hourly_event_counts does not exist yet", {"hours_checked": 0})
    version = mart.transaction_version(MART_APP_ID)
    events = _comparable_events(lake, version) if version is not None else None
    frame = pl.from_arrow(lake.read_arrow(HOURLY_COUNTS_TABLE, snapshot=mart))
    mart_total = int(frame.get_column("events").sum()) if frame.height else 0
    if events is None:
        ok = mart_total == 0
        return CheckOutcome(ok, "no events; the mart is empty" if ok else f"no events, but the mart counts {mart_total}",
                            {"mart_total": mart_total, "events_total": 0})
    rows = lake.add_actions(EVENTS_TABLE, snapshot=events).column("num_records").to_pylist()
    if any(n is None for n in rows):  # no statistics: count the rows
        events_total = lake.scan(EVENTS_TABLE, snapshot=events).select(pl.len()).collect().item()
    else:
        events_total = int(sum(rows))
    problems = []
    if mart_total != events_total:
        problems.append(f"total: mart {mart_total} != events {events_total}")
    wanted = sorted(set(hours)) if hours is not None else []
    if wanted:
        problems += _hour_mismatches(frame, lake.scan(EVENTS_TABLE, snapshot=events), wanted)
    return CheckOutcome(
        not problems,
        "; ".join(problems[:5]) if problems else
        f"sums equal the events table's counts ({events_total} events, {len(wanted)} touched hour(s) checked)",
        {"events_version": version, "mart_total": mart_total, "events_total": events_total,
         "hours_checked": len(wanted), "mismatches": len(problems)},
    )


def newest_event_hour(lake: Lake) -> datetime | None:
    """Newest hour in ``events`` (from the Delta log's created_at statistics; no data read)."""
    events = lake.table(EVENTS_TABLE)
    if events is None:
        return None
    actions = lake.add_actions(EVENTS_TABLE, snapshot=events)
    col = f"max.{CREATED_AT}"
    if col not in actions.column_names:
        newest = lake.scan(EVENTS_TABLE, snapshot=events).select(pl.col(CREATED_AT).max()).collect().item()
    else:
        newest = max((v for v in actions.column(col).to_pylist() if v is not None), default=None)
    if newest is None:
        return None
    return datetime.fromtimestamp(newest // 3600 * 3600, UTC)


def freshness(lake: Lake, max_lag_hours: float, now: datetime | None = None) -> CheckOutcome:
    """The mart's newest hour is the events table's newest hour, and no older than ``max_lag_hours``."""
    now = now or datetime.now(UTC)
    frame = _mart_frame(lake)
    newest_events = newest_event_hour(lake)
    if frame is None or frame.height == 0:
        ok = newest_events is None
        return CheckOutcome(ok, "no events and no hourly counts yet" if ok else "hourly_event_counts has no hours yet",
                            {"newest_hour": "", "events_newest_hour": str(newest_events or "")})
    newest = frame.get_column("event_hour").max()
    lag_hours = (now - newest).total_seconds() / 3600 - 1  # the hour is complete at newest + 1 h
    behind = newest_events is not None and newest < newest_events
    problems = []
    if behind:
        problems.append(f"newest hour {hour_key(newest)} is behind events' newest hour {hour_key(newest_events)}")
    if lag_hours > max_lag_hours:
        problems.append(f"newest hour {hour_key(newest)} ended {lag_hours:.1f} h ago (limit {max_lag_hours:g} h)")
    return CheckOutcome(
        not problems,
        "; ".join(problems) if problems else f"newest hour {hour_key(newest)} is current",
        {"newest_hour": hour_key(newest), "events_newest_hour": hour_key(newest_events) if newest_events else "",
         "lag_hours": round(max(lag_hours, 0.0), 2), "max_lag_hours": max_lag_hours},
    )
