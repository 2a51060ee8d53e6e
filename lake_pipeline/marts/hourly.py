"""The hourly mart ``hourly_event_counts`` (business logic; no Dagster here).

One row per (UTC hour of created_at, event_name): ``events`` and the exact number of
distinct non-null ``payload.user_id``. It is a Delta table at
``<lake>/hourly_event_counts``, kept exact by adding each batch to it: its cost follows
the batch, not the hours the batch touches.

**What changed.** Every mart commit carries a Delta transaction (app id
:data:`MART_APP_ID`) whose version is the ``events`` table version the mart reflects. An
update reads the ``events`` commits after that version:

- only ingest appends (``WRITE``/``Append`` with a ``batch_id`` in the commit metadata),
  compactions and vacuums: the update **adds** the new batches (below);
- anything else (the delete of a rebuild, an overwrite, a restore, ...): every hour of the
  event dates whose files were added or removed since that version, and every hour of the
  new batches, is **recomputed** from ``events``;
- no mart and no state yet, over a table that only ingest appends wrote, all of them in
  the feed (marts/feed.py): the update adds them all to nothing, from the feed;
- otherwise, when that version's log is gone, or the mart or its state doesn't exist:
  everything is rebuilt.

**Adding a batch.** The state table ``_hourly_event_users`` (marts/users.py) holds every
(hour, event_name, user_id) of ``events``. An update takes the new batches' groups from the
feed the ingest wrote (marts/feed.py) when it accounts for every one of their rows; otherwise
it reads the rows of the new batches only (the files whose ``_batch_id`` statistics can hold
them, filtered on ``_batch_id``) and groups them. It then reads the state rows of the (hour, name) cells they touch, and so knows which users are
new to their cell. It appends those to the state, then adds the events and new users to the
mart's rows of the touched hours (one predicate overwrite, ``event_hour IN (...)``). The state
commit comes first and records the same events version; an update that finds the two versions
different (a crash between the commits) recomputes instead.

**Concurrent updates** (two ingests with separate Dagster instances, outside the marts pool)
read the mart, its state and ``events`` once (:func:`plan_update`) and commit on those
snapshots (:func:`apply_update`; the state's merges too), each commit with the mart's
transaction: a commit on a snapshot another update committed after is a CommitRace, and the
Dagster asset plans again on the new snapshots. The loser has usually committed nothing; one
that lost only its mart commit left the state a version ahead, which the next look sees and
recomputes.

**Recomputing an hour** reads its rows from ``events`` (pruned by the ``event_date`` partition
and the ``created_at`` statistics) and aggregates them in DuckDB (marts/aggregate.py), then
replaces the hour in the state and in the mart. Every table access goes through :class:`Lake`
(lake_pipeline/tables/lake.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, Transaction

from lake_pipeline.contract import BATCH_ID, CREATED_AT
from lake_pipeline.ingest.counts import Stopwatch
from lake_pipeline.marts import feed, users
from lake_pipeline.marts.aggregate import (
    EVENT_COLUMNS,
    HOURLY_COUNTS_SCHEMA,
    add_batch,
    group_new_rows,
    hour_key,
    hour_start,
    hourly_counts,
    recompute,
    user_triples,
)
from lake_pipeline.quality.rules import CheckOutcome
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_COUNTS_TABLE, HOURLY_FEED_TABLE
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.tables.lake import CommitRace, Lake

__all__ = ["HOURLY_COUNTS_SCHEMA", "MART_APP_ID", "apply_update", "hour_key", "hour_start", "hourly_counts", "plan_update",
           "update_hourly_counts"]

MART_APP_ID = "lake_pipeline.marts.hourly_event_counts"

# Commits of `events` that never change its rows.
NO_DATA_CHANGE_OPERATIONS = {"OPTIMIZE", "VACUUM START", "VACUUM END", "CHECKPOINT"}
# The mart compacts itself once it has this many files.
MART_COMPACT_FILES = 32
# How an update brought the mart up to date.
ADD, RECOMPUTE, REBUILD, NOTHING = "add", "recompute", "rebuild", "nothing"


@dataclass
class TouchedHours:
    """What changed in `events` since the mart's version, and which hours that makes stale."""

    since_version: int | None
    events_version: int
    hours: set[str] = field(default_factory=set)
    full_rebuild: bool = False
    batch_ids: list[int] = field(default_factory=list)
    reason: str = ""
    other: list[str] = field(default_factory=list)  # commits that may have removed rows
    # Rows each new batch's append added to events, from its commit's metrics (None: not recorded).
    added_rows: dict[int, int | None] = field(default_factory=dict)
    groups: pl.DataFrame | None = None  # the new batches' groups, once read from the feed


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
    mode: str = NOTHING
    # ADD: event rows of the new batches (read from ``rows_from``: events, or their groups in the
    # feed), state rows read, new (hour, name, user) appended.
    rows_read: int = 0
    rows_from: str = ""
    state_rows_read: int = 0
    new_users: int = 0
    # Seconds per stage (plan; ADD: new_rows, state_read, compute, commit_state, commit_mart; housekeeping).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.mart_version is not None


@dataclass(frozen=True)
class Snapshots:
    """``events``, the mart and its users state as one update read them. The update's commits go
    on top of these, so another update that committed in between makes them a CommitRace (the
    caller plans again) instead of overwriting it with counts from a stale base."""

    events: DeltaTable
    mart: DeltaTable | None
    state: DeltaTable | None

    @property
    def mart_version(self) -> int | None:
        return None if self.mart is None else self.mart.transaction_version(MART_APP_ID)

    @property
    def state_version(self) -> int | None:
        return None if self.state is None else self.state.transaction_version(MART_APP_ID)


@dataclass
class MartPlan:
    """What one update will do (:func:`plan_update`), and on which snapshots (:func:`apply_update`).
    Used once: a commit moves its snapshot object to the version it made."""

    snapshots: Snapshots | None  # None: no events table yet
    touched: TouchedHours | None
    mode: str
    watch: Stopwatch


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


def _rebuild_all(out: TouchedHours, reason: str) -> TouchedHours:
    out.full_rebuild, out.reason = True, reason
    return out


def _classify_commits(commits: dict[int, dict], since_version: int,
                      version: int) -> tuple[dict[int, int | None], list[str]]:
    """The batch ids of the ingest appends after ``since_version`` (each with the rows its append
    added, when the commit's metrics say), and the other commits that may have changed rows
    (compactions and vacuums change none: they are skipped)."""
    batch_ids: dict[int, int | None] = {}
    other = []
    for v in range(since_version + 1, version + 1):
        c = commits[v]
        op = c.get("operation", "")
        mode = (c.get("operationParameters") or {}).get("mode", "")
        if op in NO_DATA_CHANGE_OPERATIONS:
            continue
        if op == "WRITE" and mode in ("Append", "ErrorIfExists") and str(c.get("batch_id", "")).isdigit():
            added = (c.get("operationMetrics") or {}).get("num_added_rows")
            batch_ids[int(c["batch_id"])] = int(added) if isinstance(added, int) else None
        else:
            other.append(f"v{v} {op} {mode}".strip())
    return dict(sorted(batch_ids.items())), other


def _changed_dates(before: pa.Table, now: pa.Table) -> set[str]:
    """event_date of every file added or removed between two add-actions tables."""
    old = dict(zip(before.column("path").to_pylist(), before.column("partition.event_date").to_pylist(), strict=True))
    new = dict(zip(now.column("path").to_pylist(), now.column("partition.event_date").to_pylist(), strict=True))
    return {str(d) for p, d in old.items() if p not in new} | {str(d) for p, d in new.items() if p not in old}


def pending_changes(events: DeltaTable, since_version: int | None) -> TouchedHours:
    """The commits of ``events`` (a snapshot) since ``since_version``: new batches, other commits,
    or a full rebuild (hours are not looked up yet: see :func:`touched_hours`)."""
    version = events.version()
    out = TouchedHours(since_version, version)
    if since_version is None:
        return _rebuild_all(out, "the mart does not exist yet")
    if since_version > version:
        return _rebuild_all(out, f"the mart reflects v{since_version}, newer than events v{version}")
    if since_version == version:
        out.reason = "events unchanged"
        return out
    commits = {h["version"]: h for h in events.history(limit=version - since_version)}
    missing = [v for v in range(since_version + 1, version + 1) if v not in commits]
    if missing:
        return _rebuild_all(out, f"the events log no longer holds v{missing[0]}")
    out.added_rows, out.other = _classify_commits(commits, since_version, version)
    out.batch_ids = list(out.added_rows)
    out.reason = f"{len(out.batch_ids)} new batch(es)"
    return out


def touched_hours(lake: Lake, events: DeltaTable, since_version: int | None) -> TouchedHours:
    """Hours of ``events`` (a snapshot) whose counts may differ from version ``since_version``."""
    out = pending_changes(events, since_version)
    if out.full_rebuild:
        out.hours = all_hours(lake.scan(EVENTS_TABLE, snapshot=events))
        return out
    if out.batch_ids:
        keys = (
            lake.scan(EVENTS_TABLE, snapshot=events)
            .filter(pl.col(BATCH_ID).is_in(out.batch_ids))
            .select(pl.col("created_datetime").str.slice(0, 13).unique())
            .collect()
        )
        out.hours.update(keys.to_series().to_list())
    if not out.other:
        return out
    # Not an append: recompute every hour of the dates whose files changed.
    try:
        before = lake.add_actions(EVENTS_TABLE, since_version)
    except StorageError as exc:  # the old snapshot can't be loaded (log cleaned up)
        out.hours = all_hours(lake.scan(EVENTS_TABLE, snapshot=events))
        return _rebuild_all(out, f"cannot load events v{since_version}: {exc}")
    if before is None:  # the table is gone since (only a snapshot is left)
        out.hours = all_hours(lake.scan(EVENTS_TABLE, snapshot=events))
        return _rebuild_all(out, f"cannot load events v{since_version}: no events table")
    dates = _changed_dates(before, lake.add_actions(EVENTS_TABLE, snapshot=events))
    out.hours |= _hours_of_dates(dates)
    other = out.other
    out.reason = f"{len(other)} non-append commit(s) ({', '.join(other[:3])}): {len(dates)} date(s) recomputed"
    return out


def _predicate(hours: Iterable[str]) -> str:
    return "event_hour IN (" + ", ".join(f"'{k}:00:00Z'" for k in sorted(hours)) + ")"


def _commit_metadata(events_version: int, hours: int, run_id: str | None, mode: str) -> dict[str, str]:
    return {"lake/operation": "hourly_event_counts", "events_version": str(events_version),
            "hours": str(hours), "lake/run_id": run_id or "", "lake/mart_mode": mode}


def _replace_hours(lake: Lake, mart: DeltaTable | None, rows: pa.Table, hours: Iterable[str] | None,
                   events_version: int, metadata: dict[str, str]) -> None:
    """Write ``rows`` in one commit on top of ``mart`` (the snapshot the update read) that records
    the events version they reflect: the whole mart when ``hours`` is None (or when there is
    none yet), else only those hours."""
    txn = Transaction(MART_APP_ID, events_version)
    if mart is None:  # created empty first, so that the first build too commits on a snapshot
        mart, hours = lake.create_empty(HOURLY_COUNTS_TABLE, HOURLY_COUNTS_SCHEMA, app_id=MART_APP_ID), None
    if hours is None:
        lake.overwrite(HOURLY_COUNTS_TABLE, rows, snapshot=mart, replace_schema=True, txn=txn, metadata=metadata)
    else:
        lake.overwrite(HOURLY_COUNTS_TABLE, rows, snapshot=mart, predicate=_predicate(hours), txn=txn,
                       metadata=metadata)


def _keep_files_few(lake: Lake, mart: DeltaTable) -> bool:
    """Compact and vacuum the mart once it has MART_COMPACT_FILES files (True when it did).
    The mart's only writer is :func:`update_hourly_counts`, so it keeps its own files few."""
    if lake.add_actions(HOURLY_COUNTS_TABLE, snapshot=mart).num_rows < MART_COMPACT_FILES:
        return False
    lake.compact(HOURLY_COUNTS_TABLE, snapshot=mart)
    lake.vacuum(HOURLY_COUNTS_TABLE)  # the table's retention (7 days unless configured), enforced
    return True


# --- Recompute: hours from events -----------------------------------------------------


def _recompute(lake: Lake, snaps: Snapshots, touched: TouchedHours, update: MartUpdate, run_id: str | None) -> None:
    """Recompute ``touched.hours`` (all of them on a full rebuild) in the state, then in the mart."""
    hours = None if touched.full_rebuild else touched.hours
    metadata = _commit_metadata(touched.events_version, len(touched.hours), run_id, update.mode)
    parts: list[pa.Table] = []
    dates = recompute(lake.scan(EVENTS_TABLE, snapshot=snaps.events), touched.hours, parts.append)
    users.replace(lake, dates, MART_APP_ID, touched.events_version, metadata, snaps.state, hours)
    rows = (pa.concat_tables(parts).sort_by([("event_hour", "ascending"), ("event_name", "ascending")])
            if parts else HOURLY_COUNTS_SCHEMA.empty_table())
    _replace_hours(lake, snaps.mart, rows, hours, touched.events_version, metadata)
    update.rows_written = rows.num_rows


# --- Add: the new batches alone --------------------------------------------------------


def _new_rows(lake: Lake, events: DeltaTable, batch_ids: list[int]) -> pa.Table:
    """The rows of ``batch_ids`` (EVENT_COLUMNS): only the files whose _batch_id range in the log
    can hold them (those the batches' commits added, or a compaction that took them in since),
    and in those only the row groups whose range can."""
    actions = lake.add_actions(EVENTS_TABLE, snapshot=events)
    lo_col, hi_col = f"min.{BATCH_ID}", f"max.{BATCH_ID}"
    if lo_col not in actions.column_names or "partition.event_type" not in actions.column_names:
        wanted = pl.col(BATCH_ID).is_in(batch_ids)  # no statistics, or another layout: scan the table
        return lake.scan(EVENTS_TABLE, snapshot=events).filter(wanted).select(EVENT_COLUMNS).collect().to_arrow()
    keys = np.unique(np.asarray(batch_ids, dtype=np.int64))
    files = pl.from_arrow(actions).select(
        "path", pl.col("partition.event_type").alias("event_type"),
        pl.col(lo_col).fill_null(np.iinfo(np.int64).min).alias("lo"),
        pl.col(hi_col).fill_null(np.iinfo(np.int64).max).alias("hi"))
    files = files.filter(users.may_hold(keys, files.get_column("lo").to_numpy(), files.get_column("hi").to_numpy()))
    in_file = [c for c in EVENT_COLUMNS if c != "event_type"] + [BATCH_ID]
    parts = []
    for path, event_type in files.select("path", "event_type").iter_rows():
        parquet = lake.parquet_file(EVENTS_TABLE, path)
        groups = users.row_groups_holding(parquet, BATCH_ID, keys)
        if groups:
            frame = pl.from_arrow(parquet.read_row_groups(groups, columns=in_file))
            parts.append(frame.filter(pl.col(BATCH_ID).is_in(batch_ids))
                         .with_columns(pl.lit(event_type, pl.String).alias("event_type")).select(EVENT_COLUMNS))
    if not parts:
        return pl.DataFrame(schema={c: pl.String for c in EVENT_COLUMNS}).to_arrow()
    return pl.concat(parts, how="vertical_relaxed").to_arrow()


def _mart_rows_of(lake: Lake, mart: DeltaTable | None, hours: list[str]) -> pa.Table:
    if mart is None:  # the mart's first build
        return HOURLY_COUNTS_SCHEMA.empty_table()
    scan = lake.scan(HOURLY_COUNTS_TABLE, snapshot=mart)
    wanted = [hour_start(k) for k in hours]
    return scan.filter(pl.col("event_hour").is_in(pl.Series(wanted, dtype=pl.Datetime("us", "UTC")).implode())
                       ).collect().to_arrow()


def _add(lake: Lake, snaps: Snapshots, touched: TouchedHours, update: MartUpdate, run_id: str | None,
         watch: Stopwatch) -> None:
    """Add the new batches' rows to the state and to the mart's rows of the hours they touch:
    their groups from the feed when it holds every one of them, else from their rows in events."""
    grouped = touched.groups if touched.groups is not None else feed.batch_groups(lake, touched.added_rows)
    if grouped is not None:
        update.rows_from, rows_read = HOURLY_FEED_TABLE, sum(touched.added_rows.values())
    else:
        rows = _new_rows(lake, snaps.events, touched.batch_ids)
        grouped = group_new_rows(rows)
        update.rows_from, rows_read = EVENTS_TABLE, rows.num_rows
    triples = user_triples(grouped)
    watch.lap("new_rows")
    seen, state_rows_read = users.seen_users(lake, triples, snaps.state)
    watch.lap("state_read")
    hours = sorted({hour_key(h) for h in grouped.get_column("event_hour").unique().to_list()})
    delta = add_batch(grouped, triples, seen, _mart_rows_of(lake, snaps.mart, hours), rows_read, state_rows_read)
    touched.hours = set(delta.hours)
    metadata = _commit_metadata(touched.events_version, len(delta.hours), run_id, update.mode)
    watch.lap("compute")
    users.append(lake, users.as_state(delta.new_users), MART_APP_ID, touched.events_version, metadata, snaps.state)
    watch.lap("commit_state")
    _replace_hours(lake, snaps.mart, delta.mart_rows, delta.hours, touched.events_version, metadata)
    watch.lap("commit_mart")
    update.rows_written = delta.mart_rows.num_rows
    update.rows_read, update.state_rows_read, update.new_users = delta.rows_read, delta.state_rows_read, \
        delta.new_users.height


def _first_build_from_feed(lake: Lake, snaps: Snapshots) -> TouchedHours | None:
    """A new mart (no mart, no users state) over an ``events`` table that only ingest appends
    wrote, every one of them accounted for by the feed: the mart is built by adding them all to
    nothing, from the feed, instead of reading every payload back (None: rebuild from events)."""
    if snaps.mart is not None or snaps.state_version is not None:
        return None
    events = snaps.events
    every = pending_changes(events, -1)  # every commit since the table's first
    if every.full_rebuild or not every.batch_ids or any(not o.startswith("v0 CREATE TABLE") for o in every.other):
        return None
    # Every row of the table is one of the batches' (a table created with rows would hold others).
    rows = lake.add_actions(EVENTS_TABLE, snapshot=events).column("num_records").to_pylist()
    if None in rows or None in every.added_rows.values() or sum(rows) != sum(every.added_rows.values()):
        return None
    every.other = []
    every.groups = feed.batch_groups(lake, every.added_rows)
    if every.groups is None:
        return None
    every.reason = f"the mart does not exist yet: {len(every.batch_ids)} batch(es) added from the feed"
    return every


def _plan(lake: Lake, snaps: Snapshots) -> tuple[TouchedHours, str]:
    """What to do: add the new batches, recompute hours, rebuild everything, or nothing."""
    since, events = snaps.mart_version, snaps.events
    if since is None and (first := _first_build_from_feed(lake, snaps)) is not None:
        return first, ADD
    touched = pending_changes(events, since)
    if not touched.full_rebuild and touched.events_version != since:
        state = snaps.state_version
        if state is None:
            touched = _rebuild_all(touched, "the users state does not exist yet")
        elif state != since:
            touched.other.append(f"users state at v{state}, mart at v{since}")
    if touched.full_rebuild:
        touched.hours = all_hours(lake.scan(EVENTS_TABLE, snapshot=events))
        return touched, REBUILD
    if touched.other:
        reasons = touched.other
        touched = touched_hours(lake, events, since)
        if not touched.other:  # only the state disagreed (an update stopped between its two commits)
            touched.reason = f"{'; '.join(reasons)}: the new batches' hours are recomputed"
        touched.other = reasons
        return touched, REBUILD if touched.full_rebuild else RECOMPUTE
    return touched, ADD if touched.batch_ids else NOTHING


def plan_update(lake: Lake, snaps: Snapshots | None = None) -> MartPlan:
    """Read the snapshots of ``events``, the mart and its state (or take ``snaps``, as another
    reader saw them), and decide what the update does."""
    watch = Stopwatch()
    if snaps is None:
        # The mart before its state: an update commits the state first, so one that committed
        # between the two reads leaves them disagreeing (a recompute, whose commits then race).
        mart = lake.table(HOURLY_COUNTS_TABLE)
        state = users.snapshot(lake)
        events = lake.table(EVENTS_TABLE)
        if events is None:
            return MartPlan(None, None, NOTHING, watch)
        snaps = Snapshots(events, mart, state)
    touched, mode = _plan(lake, snaps)
    return MartPlan(snaps, touched, mode, watch)


def update_hourly_counts(lake: Lake, run_id: str | None = None) -> MartUpdate:
    """Bring the mart up to the current version of ``events``: add the new batches, or recompute
    the hours that changed otherwise. A no-op (no commit) when events' rows haven't changed.
    A :class:`~lake_pipeline.tables.lake.CommitRace` when another update committed since it
    read the mart: nothing of this one is committed after that, and a new call looks again."""
    return apply_update(lake, plan_update(lake), run_id)


def apply_update(lake: Lake, plan: MartPlan, run_id: str | None = None) -> MartUpdate:
    """Do what ``plan`` says, committing on its snapshots."""
    watch, snaps, touched, mode = plan.watch, plan.snapshots, plan.touched, plan.mode
    if snaps is None or touched is None:
        return MartUpdate(None, None, False, [], 0, [], None, watch.seconds, "no events table yet")
    since = snaps.mart_version
    update = MartUpdate(touched.events_version, since, touched.full_rebuild, [], 0, touched.batch_ids, None, 0.0,
                        touched.reason, mode=mode, timings=watch.timings)
    watch.lap("plan")
    if mode == ADD:
        _add(lake, snaps, touched, update, run_id, watch)
    elif mode in (RECOMPUTE, REBUILD) and (touched.hours or touched.full_rebuild):
        _recompute(lake, snaps, touched, update, run_id)
        watch.lap(mode)
    else:  # nothing to recompute (no new events, or only compactions/vacuums since): no commit
        update.mode = NOTHING
        update.seconds = watch.seconds
        return update
    update.hours = sorted(touched.hours)
    mart = lake.table(HOURLY_COUNTS_TABLE)
    update.mart_version = mart.version()
    try:
        update.compacted = _keep_files_few(lake, mart) | users.keep_files_few(lake, MART_APP_ID)
    except CommitRace:  # another update committed since this one did: the next update compacts
        update.compacted = False
    if mode == ADD:
        feed.prune(lake, max(touched.batch_ids))  # the mart holds them now (no feed: nothing to do)
    watch.lap("housekeeping")
    update.seconds = watch.seconds
    return update


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
