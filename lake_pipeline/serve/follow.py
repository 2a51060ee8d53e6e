"""Following the ``events`` table version by version, for the read path.

:class:`EventsFollower` keeps a snapshot of ``events`` and the data files of the event types
it watches (from the add actions in the Delta log: path, event_date, created_at statistics).
:meth:`EventsFollower.poll` is cheap when nothing changed: it only asks whether the next
commit file of the log exists (a ``stat`` locally, one HEAD on S3), so it can run every
200 ms. When a new version exists it opens the newest snapshot through :class:`Lake` and
returns a :class:`Change`: the watched files that appeared and disappeared since the last
snapshot (a diff of the two snapshots' add actions, so several commits at once are fine).

An ingest append only adds files; a compaction (``dataChange=false``), a rebuild's delete or
an overwrite also removes some. Readers of a :class:`Change` add the rows of ``added`` when
nothing was removed, and otherwise forget what they hold for the hours the change touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from botocore.exceptions import ClientError
from deltalake import DeltaTable

from lake_pipeline.settings import EVENTS_TABLE
from lake_pipeline.storage import aws
from lake_pipeline.storage.uris import is_s3, join
from lake_pipeline.tables.lake import Lake

HOUR_SECONDS = 3600


def hour_of(epoch_seconds: float) -> int:
    """The UTC hour holding ``epoch_seconds``, as hours since the epoch."""
    return int(epoch_seconds // HOUR_SECONDS)


def hour_date(hour: int) -> date:
    return datetime.fromtimestamp(hour * HOUR_SECONDS, UTC).date()


@dataclass(frozen=True)
class DataFile:
    """One data file of ``events``: where, which event_date, and its created_at range (None: unknown)."""

    path: str
    event_date: date
    event_type: str
    min_created_at: float | None
    max_created_at: float | None

    def hours(self) -> range:
        """The hours its rows may fall in (the whole event_date without statistics)."""
        if self.min_created_at is None or self.max_created_at is None:
            first = hour_of(datetime.combine(self.event_date, datetime.min.time(), UTC).timestamp())
            return range(first, first + 24)
        return range(hour_of(self.min_created_at), hour_of(self.max_created_at) + 1)


@dataclass
class Change:
    """What a new snapshot of ``events`` holds that the previous one didn't, and the reverse."""

    snapshot: DeltaTable
    version: int
    added: list[DataFile] = field(default_factory=list)
    removed: list[DataFile] = field(default_factory=list)
    first: bool = False  # the first snapshot the follower took

    def hours(self) -> set[int]:
        return {h for f in (*self.added, *self.removed) for h in f.hours()}


def _column(actions: pa.Table, name: str) -> list:
    return actions.column(name).to_pylist() if name in actions.column_names else [None] * actions.num_rows


def data_files(lake: Lake, snapshot: DeltaTable, event_types: Iterable[str]) -> dict[str, DataFile]:
    """The files of ``snapshot`` in the partitions of ``event_types``, by path (from the log only)."""
    actions = lake.add_actions(EVENTS_TABLE, snapshot=snapshot)
    if actions is None or actions.num_rows == 0:
        return {}
    actions = actions.filter(pc.is_in(actions.column("partition.event_type"), pa.array(sorted(event_types))))
    rows = zip(
        _column(actions, "path"), _column(actions, "partition.event_date"), _column(actions, "partition.event_type"),
        _column(actions, "min.created_at"), _column(actions, "max.created_at"), strict=True,
    )
    return {p: DataFile(p, d, t, lo, hi) for p, d, t, lo, hi in rows}


def read_files(lake: Lake, files: Iterable[DataFile], columns: list[str]) -> pa.Table:
    """``columns`` of the rows of ``files`` (the Parquet files themselves; no other file is read)."""
    uris = [join(lake.table_uri(EVENTS_TABLE), f.path) for f in files]
    if not uris:
        return pa.table({c: [] for c in columns})
    frame = pl.read_parquet(uris, columns=columns, hive_partitioning=False, storage_options=lake.storage_options)
    return frame.to_arrow()


class EventsFollower:
    """The newest snapshot of ``events`` and its files of ``event_types``; see the module doc."""

    def __init__(self, lake: Lake, event_types: Iterable[str]):
        self.lake = lake
        self.event_types = frozenset(event_types)
        self.snapshot: DeltaTable | None = None
        self.files: dict[str, DataFile] = {}

    @property
    def version(self) -> int | None:
        return None if self.snapshot is None else self.snapshot.version()

    def _commit_exists(self, version: int) -> bool:
        key = join(self.lake.table_uri(EVENTS_TABLE), "_delta_log", f"{version:020d}.json")
        if not is_s3(key):
            return os.path.exists(key)
        bucket, _, path = key.split("://", 1)[1].partition("/")
        try:
            aws.s3_client().head_object(Bucket=bucket, Key=path)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False  # not committed yet
            raise
        return True

    def poll(self) -> Change | None:
        """The change since the last snapshot, or None when there is no newer version."""
        if self.snapshot is not None and not self._commit_exists(self.snapshot.version() + 1):
            return None
        snapshot = self.lake.table(EVENTS_TABLE)
        if snapshot is None or snapshot.version() == self.version:
            return None
        files = data_files(self.lake, snapshot, self.event_types)
        change = Change(snapshot, snapshot.version(), first=self.snapshot is None)
        change.added = [f for p, f in files.items() if p not in self.files]
        change.removed = [f for p, f in self.files.items() if p not in files]
        self.snapshot, self.files = snapshot, files
        return change


# Commits of `events` that never change its rows (the hourly mart skips the same ones).
NO_DATA_CHANGE_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "CHECKPOINT"})


def appended_batches(snapshot: DeltaTable, since_version: int) -> list[int] | None:
    """The batch ids ingest appended to ``events`` after ``since_version`` up to ``snapshot``'s
    version; None when some commit in between may have changed rows otherwise (a rebuild's
    delete, an overwrite, a restore) or the log no longer holds it: then only a full re-read
    is exact. Compactions and vacuums change no rows and are skipped."""
    version = snapshot.version()
    if since_version >= version:
        return [] if since_version == version else None
    commits = {c["version"]: c for c in snapshot.history(limit=version - since_version)}
    batch_ids: set[int] = set()
    for v in range(since_version + 1, version + 1):
        c = commits.get(v)
        if c is None:
            return None
        op, mode = c.get("operation", ""), (c.get("operationParameters") or {}).get("mode", "")
        if op in NO_DATA_CHANGE_OPERATIONS:
            continue
        if op == "WRITE" and mode == "Append" and str(c.get("batch_id", "")).isdigit():
            batch_ids.add(int(c["batch_id"]))
        else:
            return None
    return sorted(batch_ids)
