"""Compaction and vacuum of the ``events`` table (business logic; no Dagster here).

Micro-batches leave one small Parquet file per (event_date, event_type) partition
they touch. Compaction bin-packs those files into files of about
``compact_target_file_bytes`` (:meth:`Lake.compact`, delta-rs ``optimize.compact``);
vacuum (:meth:`Lake.vacuum`) then deletes the files no version within the retention
period references. Every table access goes through :class:`Lake`
(lake_pipeline/tables/lake.py), which also turns storage failures into StorageError.

- **Which partitions.** The current snapshot's add actions say, per partition, how
  many files are smaller than the target. A partition is a candidate when two of
  them fit into one target-sized file, which after a compaction is only true again
  once a micro-batch has added a file to it. So a run compacts exactly what
  micro-batches touched since the last compaction, without keeping any state (a
  crashed compaction is simply picked up by the next one).
- **One commit per partition group.** Candidates are grouped per event_date, a
  group holding at most ``compact_group_max_bytes`` of small files, and each group
  is one :meth:`Lake.compact` call with ``partition_filters`` = that date and those
  types, so one commit. Compaction only rewrites (``dataChange=false``); the
  contents never change, which :func:`check_parity` verifies by time travel.
- **Bound.** A partition whose files add up to less than the target ends as one
  file; a larger one as at most ``floor(2 * bytes / target) + 1`` files (every
  two neighbouring bins of delta-rs's packing hold more than one target together).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date

import polars as pl
from deltalake import DeltaTable

from lake_pipeline.contract import EVENT_UUID
from lake_pipeline.tables.lake import Lake, add_actions
from lake_pipeline.tables.lake import RetentionTooShort  # noqa: F401 (what vacuum raises; callers catch it from here)
from lake_pipeline.quality.rules import CheckOutcome
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, PLANS_TABLE, QUARANTINE_TABLE, USER_EVENTS_TABLE

# The minute of each hour at which events_compaction_schedule compacts (and bench-history's
# fed lakes are compacted as it does).
SCHEDULE_MINUTE = 40

DATE, TYPE = "event_date", "event_type"
Partition = tuple[str, str]  # (event_date as YYYY-MM-DD, event_type)


@dataclass(frozen=True)
class PartitionFiles:
    """The data files of one partition in one snapshot."""

    files: int = 0
    bytes: int = 0
    rows: int = 0
    small_sizes: tuple[int, ...] = ()  # sizes of files <= target, ascending


@dataclass(frozen=True)
class PartitionGroup:
    """Partitions of one event_date compacted by one :meth:`Lake.compact` commit."""

    event_date: str
    event_types: tuple[str, ...]
    files: int = 0
    bytes: int = 0

    def filters(self) -> list[tuple[str, str, object]]:
        return [(DATE, "=", self.event_date), (TYPE, "in", list(self.event_types))]

    def partitions(self) -> list[Partition]:
        return [(self.event_date, t) for t in self.event_types]

    def as_dict(self) -> dict:
        return {"event_date": self.event_date, "event_types": list(self.event_types), "files": self.files,
                "bytes": self.bytes}

    @classmethod
    def from_dict(cls, d: dict) -> PartitionGroup:
        return cls(d["event_date"], tuple(d["event_types"]), int(d.get("files", 0)), int(d.get("bytes", 0)))


@dataclass
class CompactionPlan:
    version: int | None  # snapshot the plan was made from (None: no events table yet)
    target_bytes: int
    groups: list[PartitionGroup] = field(default_factory=list)
    partitions: int = 0  # partitions in the table
    files: int = 0  # data files in the table

    @property
    def candidate_partitions(self) -> int:
        return sum(len(g.event_types) for g in self.groups)

    @property
    def candidate_files(self) -> int:
        return sum(g.files for g in self.groups)


@dataclass
class GroupResult:
    """One group's compaction: the commit it made (if any) and the files before/after."""

    event_date: str
    event_types: list[str]
    version_before: int
    version_after: int | None  # None when delta-rs found nothing to rewrite (no commit)
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    files_removed: int = 0
    files_added: int = 0
    seconds: float = 0.0

    @property
    def group(self) -> PartitionGroup:
        return PartitionGroup(self.event_date, tuple(self.event_types))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GroupResult:
        return cls(**d)


@dataclass
class VacuumResult:
    retention_hours: int
    enforced: bool
    files_deleted: int
    seconds: float
    sample: list[str] = field(default_factory=list)


def file_bound(partition_bytes: int, target_bytes: int) -> int:
    """Most files a compacted partition may hold: 1 below the target, else floor(2*bytes/target)+1."""
    if partition_bytes < target_bytes:
        return 1
    return (2 * partition_bytes) // target_bytes + 1


def partition_files(table: DeltaTable, target_bytes: int | None = None) -> dict[Partition, PartitionFiles]:
    """Files, bytes and rows per (event_date, event_type) of a snapshot, from its add actions (no data read)."""
    actions = add_actions(table)
    dates = actions.column(f"partition.{DATE}").to_pylist()
    types = actions.column(f"partition.{TYPE}").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    rows = actions.column("num_records").to_pylist() if "num_records" in actions.column_names else [None] * len(sizes)
    acc: dict[Partition, list] = defaultdict(lambda: [0, 0, 0, []])
    for d, t, s, n in zip(dates, types, sizes, rows, strict=True):
        a = acc[(str(d), str(t))]
        a[0] += 1
        a[1] += s
        a[2] += n or 0
        if target_bytes is not None and s <= target_bytes:
            a[3].append(s)
    return {k: PartitionFiles(v[0], v[1], v[2], tuple(sorted(v[3]))) for k, v in acc.items()}


def _mergeable(p: PartitionFiles, target_bytes: int) -> bool:
    """Two small files fit into one target-sized file: compaction has work here."""
    s = p.small_sizes
    return len(s) >= 2 and s[0] + s[1] <= target_bytes


def plan_compaction(lake: Lake, target_bytes: int, group_max_bytes: int) -> CompactionPlan:
    """Partitions that micro-batches touched since the last compaction, grouped per date."""
    table = lake.table(EVENTS_TABLE)
    if table is None:
        return CompactionPlan(None, target_bytes)
    parts = partition_files(table, target_bytes)
    plan = CompactionPlan(table.version(), target_bytes, partitions=len(parts), files=sum(p.files for p in parts.values()))
    by_date: dict[str, list[tuple[str, PartitionFiles]]] = defaultdict(list)
    for (d, t), p in sorted(parts.items()):
        if _mergeable(p, target_bytes):
            by_date[d].append((t, p))
    for d, items in sorted(by_date.items()):
        types: list[str] = []
        files = size = 0
        for t, p in items:
            small = sum(p.small_sizes)
            if types and size + small > group_max_bytes:
                plan.groups.append(PartitionGroup(d, tuple(types), files, size))
                types, files, size = [], 0, 0
            types.append(t)
            files += len(p.small_sizes)
            size += small
        if types:
            plan.groups.append(PartitionGroup(d, tuple(types), files, size))
    return plan


def _group_files(table: DeltaTable, group: PartitionGroup) -> tuple[int, int]:
    parts = partition_files(table)
    picked = [parts.get(p, PartitionFiles()) for p in group.partitions()]
    return sum(p.files for p in picked), sum(p.bytes for p in picked)


def compact_group(lake: Lake, group: PartitionGroup, target_bytes: int, run_id: str | None = None) -> GroupResult:
    """Bin-pack one group's small files in one commit (``dataChange=false``; contents unchanged)."""
    started = time.perf_counter()
    table = lake.table(EVENTS_TABLE)
    if table is None:
        raise StorageError(f"no events table at {lake.table_uri(EVENTS_TABLE)}")
    before = table.version()
    files_before, bytes_before = _group_files(table, group)
    metrics = lake.compact(
        EVENTS_TABLE,
        snapshot=table,
        partition_filters=group.filters(),
        target_size=target_bytes,
        metadata={"lake/operation": "compaction", "lake/run_id": run_id or ""},
    )
    after_table = lake.table(EVENTS_TABLE)
    committed = int(metrics.get("numFilesAdded", 0)) > 0 or int(metrics.get("numFilesRemoved", 0)) > 0
    after = after_table.version() if committed else None
    files_after, bytes_after = _group_files(after_table, group) if committed else (files_before, bytes_before)
    return GroupResult(
        event_date=group.event_date,
        event_types=list(group.event_types),
        version_before=before,
        version_after=after,
        files_before=files_before,
        files_after=files_after,
        bytes_before=bytes_before,
        bytes_after=bytes_after,
        files_removed=int(metrics.get("numFilesRemoved", 0)),
        files_added=int(metrics.get("numFilesAdded", 0)),
        seconds=time.perf_counter() - started,
    )


# --- Verification -----------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """Row count plus order-independent sums of 64-bit hashes of event_uuid and of whole rows."""

    rows: int
    uuid_hash: tuple[int, int]
    row_hash: tuple[int, int]

    def __str__(self) -> str:
        return f"{self.rows}:{self.uuid_hash[0]:x}{self.uuid_hash[1]:x}:{self.row_hash[0]:x}{self.row_hash[1]:x}"


def _hash_sums(h: pl.Expr, name: str) -> list[pl.Expr]:
    """Sums of the high and low 32 bits of a 64-bit hash (no overflow below 2**32 rows)."""
    h = h.cast(pl.UInt64)
    return [(h // (1 << 32)).sum().alias(f"{name}_hi"), (h % (1 << 32)).sum().alias(f"{name}_lo")]


def fingerprint(lake: Lake, version: int, partitions: Iterable[Partition]) -> Fingerprint:
    """Fingerprint of ``partitions`` in version ``version`` of events.

    Reads the data one partition at a time with Polars' streaming engine, so memory
    is bounded by its chunks, not by the partition.
    """
    parts = sorted(set(partitions))
    scan = lake.scan(EVENTS_TABLE, version) if parts else None
    if scan is None:
        return Fingerprint(0, (0, 0), (0, 0))
    columns = sorted(scan.collect_schema().names())  # column order must not matter
    totals = {"rows": 0, "uuid_hi": 0, "uuid_lo": 0, "row_hi": 0, "row_lo": 0}
    for d, t in parts:
        sums = (
            scan.filter((pl.col(DATE) == date.fromisoformat(d)) & (pl.col(TYPE) == t))
            .select(
                pl.len().alias("rows"),
                *_hash_sums(pl.col(EVENT_UUID).hash(), "uuid"),
                *_hash_sums(pl.struct([pl.col(c) for c in columns]).hash(), "row"),
            )
            .collect(engine="streaming")
            .row(0, named=True)
        )
        for k in totals:
            totals[k] += int(sums[k] or 0)
    return Fingerprint(totals["rows"], (totals["uuid_hi"], totals["uuid_lo"]), (totals["row_hi"], totals["row_lo"]))


def check_parity(lake: Lake, results: Sequence[GroupResult]) -> CheckOutcome:
    """Each compaction commit left its partitions' rows and event_uuid multiset unchanged.

    Compares the snapshot just before and just after every commit by time travel, so
    batches that ingest committed between groups don't count as differences.
    """
    committed = [r for r in results if r.version_after is not None]
    mismatches, rows = [], 0
    for r in committed:
        before = fingerprint(lake, r.version_before, r.group.partitions())
        after = fingerprint(lake, r.version_after, r.group.partitions())
        rows += before.rows
        if before != after:
            what = "row count" if before.rows != after.rows else (
                "event_uuid set" if before.uuid_hash != after.uuid_hash else "row contents")
            mismatches.append(
                f"{r.event_date} {','.join(r.event_types)}: {what} changed in v{r.version_after} "
                f"({before.rows} -> {after.rows} rows)"
            )
    return CheckOutcome(
        not mismatches,
        "; ".join(mismatches[:5]) if mismatches else
        f"{len(committed)} compaction commit(s) left {rows} rows and their event_uuids unchanged",
        {"commits_checked": len(committed), "rows_checked": rows, "mismatched_groups": len(mismatches)},
    )


def check_file_bound(lake: Lake, results: Sequence[GroupResult], target_bytes: int) -> CheckOutcome:
    """After each group's commit, every partition holds at most :func:`file_bound` files
    (exactly one when its files add up to less than the target)."""
    violations, checked, worst = [], 0, 0
    for r in results:
        before = partition_files(lake.table(EVENTS_TABLE, r.version_before))
        after = partition_files(lake.table(EVENTS_TABLE, r.version_after if r.version_after is not None else r.version_before))
        for p in r.group.partitions():
            size = before.get(p, PartitionFiles()).bytes
            files = after.get(p, PartitionFiles()).files
            bound = file_bound(size, target_bytes)
            checked += 1
            worst = max(worst, files)
            if files > bound:
                violations.append(f"{p[0]}/{p[1]}: {files} files > bound {bound} ({size} bytes)")
    return CheckOutcome(
        not violations,
        "; ".join(violations[:5]) if violations else
        f"{checked} compacted partition(s) within the file bound (one file below {target_bytes} bytes)",
        {"partitions_checked": checked, "violations": len(violations), "max_files_per_partition": worst,
         "target_file_bytes": target_bytes},
    )


def table_file_stats(lake: Lake) -> dict[str, int]:
    """Partitions, files and the most files in one partition (current snapshot)."""
    table = lake.table(EVENTS_TABLE)
    if table is None:
        return {"partitions": 0, "files": 0, "max_files_per_partition": 0, "bytes": 0}
    parts = partition_files(table)
    return {
        "partitions": len(parts),
        "files": sum(p.files for p in parts.values()),
        "max_files_per_partition": max((p.files for p in parts.values()), default=0),
        "bytes": sum(p.bytes for p in parts.values()),
    }


# --- Vacuum -------------------------------------------------------------------------


def check_retention(lake: Lake, retention_hours: int, table: str = EVENTS_TABLE) -> None:
    """Raise :class:`RetentionTooShort` when ``retention_hours`` is below the table's minimum
    (a dry run of an enforced vacuum: nothing is deleted)."""
    lake.vacuum(table, retention_hours, dry_run=True, enforce_retention_duration=True)


def vacuum(lake: Lake, retention_hours: int, enforce_retention_duration: bool = True, table: str = EVENTS_TABLE) -> VacuumResult:
    """Delete files of ``table`` that no version within ``retention_hours`` references.

    A full vacuum: it also removes files no commit ever referenced (left by a writer that
    crashed before its commit) once they are older than the retention. With
    ``enforce_retention_duration`` (the default), a retention shorter than the table's
    ``delta.deletedFileRetentionDuration`` (7 days unless set) is refused
    (:class:`RetentionTooShort`): readers and time travel within that window need the files.
    """
    started = time.perf_counter()
    deleted = lake.vacuum(
        table,
        retention_hours,
        enforce_retention_duration=enforce_retention_duration,
        full=True,
        metadata={"lake/operation": "vacuum"},
    )
    return VacuumResult(retention_hours, enforce_retention_duration, len(deleted), time.perf_counter() - started,
                        sorted(deleted)[:10])


def compact(lake: Lake, target_bytes: int, group_max_bytes: int, run_id: str | None = None) -> tuple[CompactionPlan, list[GroupResult]]:
    """Plan and compact every group (no Dagster; the job runs the same steps one per group)."""
    plan = plan_compaction(lake, target_bytes, group_max_bytes)
    return plan, [compact_group(lake, g, target_bytes, run_id) for g in plan.groups]


# --- The bookkeeping tables ---------------------------------------------------------------

# Tables every batch appends a small file to, and that nothing else compacts. Each batch's
# claim scans the ledger and the plans: after a day of one-minute batches (1,440 files each)
# claim_plan took 0.20-0.39 s, 0.04 s once compacted, and it grew with every batch.
BOOKKEEPING_TABLES = (LEDGER_TABLE, PLANS_TABLE, QUARANTINE_TABLE)


def compact_bookkeeping(lake: Lake, target_bytes: int, min_files: int = 2, vacuum: bool = True) -> dict[str, int]:
    """Bin-pack the small files of each bookkeeping table with ``min_files`` or more of them
    (one commit each, rows unchanged), then (``vacuum``) vacuum it with its own retention (7 days
    unless set). Returns the files each compacted table had removed from its snapshot."""
    out = {}
    for name in BOOKKEEPING_TABLES:
        table = lake.table(name)
        if table is None:
            continue
        sizes = lake.add_actions(name, snapshot=table).column("size_bytes").to_pylist()
        if sum(1 for size in sizes if size < target_bytes) < min_files:
            continue
        metrics = lake.compact(name, snapshot=table, target_size=target_bytes,
                               metadata={"lake/operation": "bookkeeping compaction"})
        out[name] = int(metrics.get("numFilesRemoved", 0))
        if vacuum:
            lake.vacuum(name)
    return out


# --- The per-user table's sort (lake_pipeline/serve/users.py) ------------------------


def overlapping_files(lows: Sequence[str | None], highs: Sequence[str | None]) -> int:
    """How many of these files' [low, high] ranges overlap another's (unknown ranges overlap all;
    sorted neighbours that share their boundary value do not count)."""
    spans = sorted((lo or "", hi if hi is not None else "\U0010ffff") for lo, hi in zip(lows, highs, strict=True))
    overlapping = [False] * len(spans)
    reach, reach_at = None, -1
    for i, (lo, hi) in enumerate(spans):
        if reach is not None and lo < reach:
            overlapping[i] = overlapping[reach_at] = True
        if reach is None or hi > reach:
            reach, reach_at = hi, i
    return sum(overlapping)


def buckets_to_sort(lake: Lake, table_name: str, target_bytes: int, unsorted_files: int) -> list[int]:
    """Buckets of ``table_name`` with at least ``unsorted_files`` files whose user_id ranges
    overlap, or a file over four times the target (a rebuild writes one big file per bucket)."""
    actions = lake.add_actions(table_name)
    if actions is None or actions.num_rows == 0:
        return []
    by_bucket: dict[int, list[tuple[str | None, str | None, int]]] = defaultdict(list)
    rows = zip(actions.column("partition.user_bucket").to_pylist(), actions.column("min.user_id").to_pylist(),
               actions.column("max.user_id").to_pylist(), actions.column("size_bytes").to_pylist(), strict=True)
    for bucket, lo, hi, size in rows:
        by_bucket[bucket].append((lo, hi, size))
    return sorted(
        b for b, files in by_bucket.items()
        if overlapping_files([f[0] for f in files], [f[1] for f in files]) >= unsorted_files
        or any(f[2] > 4 * target_bytes for f in files)
    )


def compact_user_events(lake: Lake, target_bytes: int, unsorted_files: int, most: int = 1) -> list[int]:
    """Z-order by user_id up to ``most`` buckets of the per-user table that need it (one commit
    each, rows unchanged); return them."""
    done = []
    for bucket in buckets_to_sort(lake, USER_EVENTS_TABLE, target_bytes, unsorted_files)[:most]:
        lake.z_order(USER_EVENTS_TABLE, ["user_id"], partition_filters=[("user_bucket", "=", bucket)],
                     target_size=target_bytes, metadata={"lake/operation": "user_events_sort"})
        done.append(bucket)
    return done
