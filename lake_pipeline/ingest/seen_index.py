"""The seen-keys index, ``_dedupe_index``: what dedupe reads instead of ``events``.

One row per accepted event: ``key`` (a stable 64-bit hash of event_uuid, transforms/dedupe.py,
as an order-preserving int64), ``key2`` (an independent second hash: with ``key``, a 128-bit
fingerprint), ``created_at``, ``event_uuid``, ``bucket`` (a range of the
hash: the Ray engine's shard), ``_batch_id`` and ``_source_key`` (what a rebuild removes by),
partitioned by ``created_date`` (the row's event_date) and sorted within each file by
(created_at hour, key), in row groups of :data:`ROW_GROUP_ROWS` rows.

A batch looks up only the row groups that can hold one of its keys within the horizon of
its created_at: per data file (pruned first by the log's created_at statistics), the row
group's [min, max] key and created_at from the Parquet footer against the batch's keys,
hour by hour. A current record reads the few recent hours' row groups that hold keys
near its own; a record days late reads one row group of its date once the date is closed
(sorted by key). The key column is read first; ``key2`` only of the row groups where a key
matched: a match on both 64-bit hashes is taken as the same event_uuid (a chance of about
2^-128 per pair that it isn't, far below the uuids' own chance of colliding). Files of at
most SMALL_FILE_ROWS rows (two row groups: a late record's append to a closed date, say) skip all
that: they are read whole, all in one call, and matched on both hashes.

Key files: a closed date is also written, once compaction (or `lake index build`) has it whole
in key order, as one Arrow IPC file under ``_key_files/`` (key, key2, created_at, _batch_id, in
record batches of ROW_GROUP_ROWS rows), whose schema metadata holds each batch's [min, max] key
and the data files it stands for. A commit names it (txn ``KEY_FILE_APP_ID.<day>``). A look-up
reads such a date's late keys from it: one record batch per key, found in a directory of 16
bytes a batch, where the Parquet footers of the date cost ~600 bytes a row group to decode, and
grew with the day. When the snapshot no longer holds every file it stands for (a rebuild or a
later compaction rewrote them), the date is read from its Parquet files as before; files a batch
added to the date since are read from Parquet too.

Exactly-once: a batch appends its rows with its batch id as the Delta transaction id,
right after its ``events`` commit (ingest/batch.py ``commit_index``). The index is *ready*
(read instead of ``events``) when it was created along with a new lake, or when
``lake index build`` has indexed every date of ``events`` within the retention; until then
dedupe reads ``events`` as before. Rows older than ``LAKE_DEDUPE_RETENTION_DAYS`` are
dropped by `lake compact`; the first date still held is the ``RETAINED_APP_ID`` txn
version, and a record whose horizon reaches before it is looked up in ``events``.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Transaction

from lake_pipeline.contract import BATCH_ID, CREATED_AT, EVENT_UUID, SOURCE_KEY
from lake_pipeline.settings import DEDUPE_INDEX_TABLE, EVENTS_TABLE, Settings
from lake_pipeline.tables.lake import FileLayout, Lake, row_group_ranges, row_group_sizes
from lake_pipeline.transforms.dedupe import bucket_of_hash, ordered_key, uuid_hash
from lake_pipeline.transforms.enrich import to_arrow_views

KEY = "key"
KEY2 = "key2"  # a second, independent 64-bit hash: with KEY, a 128-bit fingerprint of event_uuid
FINGERPRINT_SEED = 0x9E3779B97F4A7C15
BUCKET = "bucket"
CREATED_DATE = "created_date"
ROW_GROUP_ROWS = 2048
# A data file of at most this many rows is read whole, together with the look-up's other small
# files, in one call: no footer, no per-file read. At 9M events a day a one-minute batch met 87
# files, 63 of them a few dozen rows (late records' appends to closed dates since the last
# compaction); opening each and reading its footer and keys cost ~1.8 ms a file.
SMALL_FILE_ROWS = 2 * ROW_GROUP_ROWS
# A batch's look-ups keep at most this many keys they read (8 bytes each) for its later chunks.
KEY_CACHE_ROWS = 8_000_000
# Look-ups prune on key and created_at; the per-batch agreement check on _batch_id (without its
# statistics the check read every row group of the batch's dates: 0.14 s of its 0.25 s at 9M
# events a day). No statistics for the rest keeps footers small.
LAYOUT = FileLayout(ROW_GROUP_ROWS, no_statistics=(KEY2, EVENT_UUID, BUCKET, SOURCE_KEY))
# txn versions the index carries (Delta's own per-application markers, written atomically
# with the commits they describe): BUCKETS (the bucket count, fixed at creation), READY (1 once
# complete), RETAINED (first day number held), BUILT (the last day `lake index build` finished).
BUCKETS_APP_ID = "lake_pipeline.dedupe_index.buckets"
READY_APP_ID = "lake_pipeline.dedupe_index.ready"
RETAINED_APP_ID = "lake_pipeline.dedupe_index.retained_from"
BUILT_APP_ID = "lake_pipeline.dedupe_index.built_through"
CLOSED_APP_ID = "lake_pipeline.dedupe_index.closed_through"  # last date compacted in key order
# A closed date's key file (see "Key files" below): its txn, "<this>.<day number>", holds the
# token in the file's name.
KEY_FILE_APP_ID = "lake_pipeline.dedupe_index.key_file"
KEY_FILES_DIR = "_key_files"  # under the index's directory; Delta ignores names that start with "_"
_DAY = 86400.0
_HOUR = 3600.0
_EPOCH = date(1970, 1, 1)

INDEX_SCHEMA = pa.schema(
    [
        pa.field(CREATED_DATE, pa.date32(), nullable=False),
        pa.field(KEY, pa.int64(), nullable=False),
        pa.field(KEY2, pa.int64(), nullable=False),
        pa.field(CREATED_AT, pa.float64(), nullable=False),
        pa.field(EVENT_UUID, pa.string(), nullable=False),
        pa.field(BUCKET, pa.int32(), nullable=False),
        pa.field(BATCH_ID, pa.int64(), nullable=False),
        pa.field(SOURCE_KEY, pa.string(), nullable=False),
    ]
)
_HISTORY_SCHEMA = {EVENT_UUID: pl.String, CREATED_AT: pl.Float64}
KEY_FILE_SCHEMA = pa.schema([INDEX_SCHEMA.field(c) for c in (KEY, KEY2, CREATED_AT, BATCH_ID)])


def day_number(d: date) -> int:
    return (d - _EPOCH).days


def day_of(n: int) -> date:
    return _EPOCH + timedelta(days=n)


class IndexMissing(RuntimeError):
    """``events`` exists but the index doesn't: dedupe reads ``events`` until `lake index build` ran."""


def hot_order() -> list:
    """How a batch's rows (and a date still within the horizon of now) are sorted: by hour,
    then key, so that current records read only the row groups of the hours near them. The
    hour orders the dates too (created_date is the UTC date of created_at), so the date is no
    sort key of its own: with it, the sort of a 1M-event batch's rows took 0.46 s, not 0.21 s."""
    return [pl.col(CREATED_AT) // _HOUR, KEY]


def closed_order() -> list:
    """How a closed date (past the horizon of now) is sorted by compaction: by key alone, so
    that a late record's key is in one row group of the date, whatever the date's size."""
    return [CREATED_DATE, KEY]


def closed_before(now: datetime, horizon: float) -> int:
    """Day number of the first date that is not closed: a current record's horizon can reach it."""
    return int((now.timestamp() - horizon) // _DAY)


def index_rows(kept: pl.DataFrame, buckets: int, sort: bool = True) -> pl.DataFrame:
    """The index rows of accepted events (event_uuid, created_at, event_date, _batch_id, _source_key),
    sorted as a batch writes them (:func:`hot_order`) unless not ``sort`` (a caller that sorts
    the rows of several chunks together: the sort moves every string, ~0.2 s per 1M rows)."""
    if kept.height == 0:
        return pl.DataFrame(schema=pl.Schema(INDEX_SCHEMA))
    uuids = kept.get_column(EVENT_UUID)
    hashes = uuid_hash(uuids)
    rows = kept.select(
        pl.col("event_date").alias(CREATED_DATE),
        pl.Series(KEY, ordered_key(hashes)),
        pl.Series(KEY2, uuid_hash(uuids, FINGERPRINT_SEED).view(np.int64)),
        CREATED_AT,
        EVENT_UUID,
        pl.Series(BUCKET, bucket_of_hash(hashes, buckets)),
        BATCH_ID,
        SOURCE_KEY,
    )
    return rows.sort(hot_order()) if sort else rows


def write_rows(lake: Lake, rows: pl.DataFrame, batch_id: int | None, also: list[Transaction] | None = None,
               metadata: dict[str, str] | None = None) -> bool:
    """Append index rows in one commit (idempotent per ``batch_id``)."""
    table = to_arrow_views(rows, INDEX_SCHEMA)
    return lake.append(DEDUPE_INDEX_TABLE, table, batch_id=batch_id, partition_by=[CREATED_DATE],
                       layout=LAYOUT, also=also, metadata=metadata)


def create_index(lake: Lake, buckets: int, ready: bool) -> None:
    """Create the empty index, its bucket count recorded; ``ready`` for a lake with no events yet."""
    txns = [Transaction(BUCKETS_APP_ID, buckets)]
    if ready:
        txns += [Transaction(READY_APP_ID, 1), Transaction(RETAINED_APP_ID, 0)]
    lake.create(DEDUPE_INDEX_TABLE, INDEX_SCHEMA, [CREATED_DATE], txns=txns)


def recorded_buckets(snapshot: DeltaTable) -> int:
    value = snapshot.transaction_version(BUCKETS_APP_ID)
    if value is None:
        raise ValueError(f"{snapshot.table_uri} records no bucket count: not a seen-keys index")
    return int(value)


def is_ready(snapshot: DeltaTable | None) -> bool:
    return snapshot is not None and (snapshot.transaction_version(READY_APP_ID) or 0) >= 1


# --- Key files of closed dates ---------------------------------------------------------------


def key_file_app_id(day: int) -> str:
    return f"{KEY_FILE_APP_ID}.{day}"


def key_file_path(day: int, token: int) -> str:
    """Where the key file of date ``day`` named by ``token`` is, relative to the index's directory."""
    return f"{KEY_FILES_DIR}/{day_of(day).isoformat()}-{token}.arrow"


def write_key_file(lake: Lake, d: date, rows: pl.DataFrame) -> bool:
    """After a closed date was written whole in key order (``rows``: every index row of the date,
    sorted by key), write its key file, then name it in a commit of the index. Returns whether it
    did: not when the date's files hold other rows too (a batch added some meanwhile), since the
    file must stand for whole data files."""
    snapshot = lake.table(DEDUPE_INDEX_TABLE)
    actions = lake.add_actions(DEDUPE_INDEX_TABLE, snapshot=snapshot)
    cols = actions.to_pydict() if actions is not None and actions.num_rows else {}
    ours = [i for i, day in enumerate(cols.get(f"partition.{CREATED_DATE}", [])) if day == d]
    if rows.height == 0 or not ours or sum(int(cols["num_records"][i] or 0) for i in ours) != rows.height:
        return False
    keys = rows.get_column(KEY).to_numpy()
    starts = np.arange(0, len(keys), ROW_GROUP_ROWS)
    ends = np.minimum(starts + ROW_GROUP_ROWS, len(keys)) - 1
    meta = {b"lake.covers": json.dumps([cols["path"][i] for i in ours]).encode(),
            b"lake.mins": _packed(keys[starts]), b"lake.maxs": _packed(keys[ends])}
    table = rows.select(KEY_FILE_SCHEMA.names).to_arrow().cast(KEY_FILE_SCHEMA).replace_schema_metadata(meta)
    day, token = day_number(d), uuid.uuid4().int >> 65  # a new name each time: a file being read is never replaced
    lake.write_arrow_file(DEDUPE_INDEX_TABLE, key_file_path(day, token), table, ROW_GROUP_ROWS)
    _commit_build(lake, pl.DataFrame(schema=pl.Schema(INDEX_SCHEMA)), [Transaction(key_file_app_id(day), token)],
                  "index key file")
    return True


def _packed(keys: np.ndarray) -> bytes:
    """int64 keys as base64 text (schema metadata is read as UTF-8 by some readers, Polars' among them)."""
    return base64.b64encode(keys.astype("<i8").tobytes())


def _unpacked(text: bytes) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<i8").astype(np.int64)


def drop_key_files(lake: Lake, before: date) -> int:
    """Delete the key files of dates before ``before`` (retention dropped their rows). Returns how many."""
    return lake.delete_dated_side_files(DEDUPE_INDEX_TABLE, KEY_FILES_DIR, before)


# --- Looking keys up ----------------------------------------------------------------------


@dataclass
class _File:
    path: str
    day: int
    rows: int
    min_at: float
    max_at: float
    footer: tuple[np.ndarray, ...] | None = None  # kmin, kmax, tmin, tmax, rows per row group
    parquet: pq.ParquetFile | None = None  # opened once per batch


@dataclass
class Lookup:
    """What one look-up found: the history rows, and what it read."""

    history: pl.DataFrame
    rows_read: int = 0  # rows decoded: those an earlier chunk of the batch read come from its cache
    key_file_rows_read: int = 0  # of rows_read, those from closed dates' key files (late records' dates)
    row_groups_read: int = 0
    small_files_read: int = 0  # files of at most SMALL_FILE_ROWS rows, read whole in one call
    beyond_index: int = 0  # rows of the chunk whose horizon reaches before the index's retention


@dataclass
class _KeyFile:
    """A closed date's key file, open: the data files it stands for, and each record batch's key range."""

    reader: pa.ipc.RecordBatchFileReader
    covers: set[str]
    mins: np.ndarray
    maxs: np.ndarray


@dataclass
class SeenIndex:
    """One batch's view of the index: a snapshot, its files by day, their footers read once."""

    lake: Lake
    snapshot: DeltaTable
    horizon: float
    buckets: int
    retained_from_day: int
    files_by_day: dict[int, list[_File]] = field(default_factory=dict)
    key_files: dict[int, _KeyFile | None] = field(default_factory=dict)  # by day, opened once
    # The key column of the row groups read so far, by file and row group (see _keys).
    key_cache: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    cached_rows: int = 0
    small_file_rows: int = SMALL_FILE_ROWS  # files this small are read whole (0: none; tests compare)

    @classmethod
    def open(cls, lake: Lake, horizon: float, version: int | None = None) -> SeenIndex | None:
        """The ready index as of now (or at ``version``), or None (not there, or not built yet)."""
        snapshot = lake.table(DEDUPE_INDEX_TABLE, version)
        if not is_ready(snapshot):
            return None
        index = cls(lake, snapshot, horizon, recorded_buckets(snapshot),
                    snapshot.transaction_version(RETAINED_APP_ID) or 0)
        index._list_files()
        return index

    def _list_files(self) -> None:
        actions = self.lake.add_actions(DEDUPE_INDEX_TABLE, snapshot=self.snapshot)
        if actions is None or actions.num_rows == 0:
            return
        cols = actions.to_pydict()
        for i, path in enumerate(cols["path"]):
            day = cols[f"partition.{CREATED_DATE}"][i]
            lo, hi = cols.get(f"min.{CREATED_AT}", [None])[i], cols.get(f"max.{CREATED_AT}", [None])[i]
            f = _File(path, day_number(day), int(cols["num_records"][i] or 0),
                      -math.inf if lo is None else lo, math.inf if hi is None else hi)
            self.files_by_day.setdefault(f.day, []).append(f)

    def lookup(self, chunk: pl.DataFrame, batch_id: int) -> Lookup:
        """Index rows (event_uuid, created_at) of earlier batches that share a key with a row of
        ``chunk`` (event_uuid, created_at) within the horizon of its created_at."""
        out = Lookup(pl.DataFrame(schema=_HISTORY_SCHEMA))
        if chunk.height == 0:
            return out
        c = chunk.get_column(CREATED_AT).to_numpy()
        out.beyond_index = int(((c - self.horizon) // _DAY < self.retained_from_day).sum())
        lo, hi = c.min() - self.horizon, c.max() + self.horizon
        first_day, last_day = int(lo // _DAY), int(hi // _DAY)
        days = [d for d in range(max(first_day, self.retained_from_day), last_day + 1) if d in self.files_by_day]
        key_files = {d: kf for d in days if (kf := self._key_file(d)) is not None}
        files = [f for d in days for f in self.files_by_day[d]
                 if f.max_at >= lo and f.min_at <= hi and not (d in key_files and f.path in key_files[d].covers)]
        if not files and not key_files:  # nothing within reach (a new lake, say): no keys to compute
            return out
        uuids = chunk.get_column(EVENT_UUID)
        keys = ordered_key(uuid_hash(uuids))
        probe = _Probe(c, keys, self.horizon)
        probe.fingerprints = pl.DataFrame({KEY: keys, KEY2: uuid_hash(uuids, FINGERPRINT_SEED).view(np.int64),
                                           EVENT_UUID: uuids}).unique([KEY, KEY2])
        files = [f for f in files if probe.any_within(f.min_at, f.max_at)]
        found = self._read_small_files([f for f in files if f.rows <= self.small_file_rows], probe, out)
        parts = [] if found is None else [found]
        for f in files:
            if f.rows > self.small_file_rows and (found := self._read_file(f, probe, out)) is not None:
                parts.append(found)
        for day, kf in key_files.items():
            found = self._read_key_file(day, kf, c, keys, probe, out)
            if found is not None:
                parts.append(found)
        if parts:
            history = pl.concat(parts).filter(pl.col(BATCH_ID) != batch_id).select(EVENT_UUID, CREATED_AT)
            out.history = history
        return out

    def _key_file(self, day: int) -> _KeyFile | None:
        if day not in self.key_files:
            self.key_files[day] = self._open_key_file(day)
        return self.key_files[day]

    def _open_key_file(self, day: int) -> _KeyFile | None:
        """The date's key file, when its snapshot names one that still stands for data files of
        the date (a rebuild or a compaction since may have rewritten them: then None, and the
        date is read from its Parquet files)."""
        token = self.snapshot.transaction_version(key_file_app_id(day))
        if token is None:
            return None
        reader = self.lake.arrow_file(DEDUPE_INDEX_TABLE, key_file_path(day, token))
        meta = (reader.schema.metadata or {}) if reader is not None else {}
        if not {b"lake.covers", b"lake.mins", b"lake.maxs"} <= meta.keys():
            return None
        covers = set(json.loads(meta[b"lake.covers"]))
        mins, maxs = _unpacked(meta[b"lake.mins"]), _unpacked(meta[b"lake.maxs"])
        present = {f.path for f in self.files_by_day.get(day, [])}
        if not covers or not covers <= present or len(mins) != reader.num_record_batches or len(maxs) != len(mins):
            return None
        return _KeyFile(reader, covers, mins, maxs)

    def _read_key_file(self, day: int, kf: _KeyFile, created_at: np.ndarray, keys: np.ndarray, probe: _Probe,
                       out: Lookup) -> pl.DataFrame | None:
        """The key file's rows that share a fingerprint with a chunk row whose horizon reaches the
        date: only the record batches whose key range holds one of those rows' keys are read."""
        start = day * _DAY
        near = (created_at + self.horizon >= start) & (created_at - self.horizon < start + _DAY)
        if not near.any():
            return None
        ks = _distinct(np.sort(keys[near]))
        first = np.searchsorted(kf.maxs, ks, side="left")  # the first batch that can end at or after k
        last = np.searchsorted(kf.mins, ks, side="right") - 1  # the last batch that starts at or before k
        wanted = sorted({j for a, b in zip(first.tolist(), last.tolist(), strict=True) for j in range(a, b + 1)})
        hits = []
        for j in wanted:
            batch = kf.reader.get_batch(j)
            found = batch.column(KEY).to_numpy()
            at = np.minimum(np.searchsorted(ks, found), len(ks) - 1)
            hit = ks[at] == found
            out.rows_read += batch.num_rows
            out.key_file_rows_read += batch.num_rows
            out.row_groups_read += 1
            if hit.any():
                hits.append(batch.filter(pa.array(hit)))
        if not hits:
            return None
        rows = pa.Table.from_batches(hits).replace_schema_metadata(None)
        return probe.matching(rows)

    def _open(self, f: _File) -> pq.ParquetFile:
        if f.parquet is None:
            f.parquet = self.lake.parquet_file(DEDUPE_INDEX_TABLE, f.path)
        return f.parquet

    def _footer(self, f: _File) -> tuple[np.ndarray, ...]:
        if f.footer is None:
            parquet = self._open(f)
            rows = row_group_sizes(parquet)
            kmin, kmax = row_group_ranges(parquet, KEY)
            if len(rows) > 1 and (kmax[:-1] <= kmin[1:]).all():
                # Sorted by key (a closed date, or one hour): each row group's time range is
                # taken as the file's (a superset), which saves half the footer's reading.
                tmin, tmax = np.full(len(rows), f.min_at), np.full(len(rows), f.max_at)
            else:
                tmin, tmax = row_group_ranges(parquet, CREATED_AT, np.float64)
            f.footer = (kmin, kmax, tmin, tmax, rows)
        return f.footer

    def _read_file(self, f: _File, probe: _Probe, out: Lookup) -> pl.DataFrame | None:
        kmin, kmax, tmin, tmax, rows = self._footer(f)
        wanted = np.flatnonzero(probe.row_groups(kmin, kmax, tmin, tmax))
        if len(wanted) == 0:
            return None
        parquet = self._open(f)
        # Keys first (8 bytes a row, one read for all the row groups); then, of the row groups
        # where a key matched, the second hash: a match on both (a 128-bit fingerprint) is the
        # same event_uuid (decoding the uuid strings instead cost ~8x as much).
        keys = self._keys(f, parquet, wanted, rows, out)
        at = np.minimum(np.searchsorted(probe.keys_sorted, keys), len(probe.keys_sorted) - 1)
        hit = probe.keys_sorted[at] == keys  # the chunk's keys are sorted: a binary search each
        if not hit.any():
            return None
        group_of_row = np.repeat(wanted, rows[wanted])
        hit_groups = np.unique(group_of_row[hit]).tolist()
        table = parquet.read_row_groups(hit_groups, columns=[KEY, KEY2, CREATED_AT, BATCH_ID])
        return probe.matching(table)

    def _read_small_files(self, files: list[_File], probe: _Probe, out: Lookup) -> pl.DataFrame | None:
        """The rows of small ``files`` that share a fingerprint with a row of the chunk, all files read
        whole in one call (a superset of what their row groups' ranges would select: dedupe applies
        the horizon)."""
        if not files:
            return None
        table = self.lake.read_files(DEDUPE_INDEX_TABLE, [f.path for f in files], [KEY, KEY2, CREATED_AT, BATCH_ID])
        out.rows_read += sum(f.rows for f in files)
        out.small_files_read += len(files)
        out.row_groups_read += sum(-(-f.rows // ROW_GROUP_ROWS) for f in files)
        return probe.matching(table)

    def _keys(self, f: _File, parquet: pq.ParquetFile, wanted: np.ndarray, rows: np.ndarray,
              out: Lookup) -> np.ndarray:
        """The key column of row groups ``wanted`` of ``f``: those an earlier chunk of the batch
        read from the cache, the others read (and counted in ``out``) in one call. A batch's
        chunks all look up the current records' last hours, so without it each chunk read the
        same row groups again (at 9M events a day ~0.8M rows a chunk)."""
        cached = self.key_cache.setdefault(f.path, {})
        missing = [g for g in wanted.tolist() if g not in cached]
        if missing:
            read = parquet.read_row_groups(missing, columns=[KEY]).column(0).to_numpy()
            out.rows_read += len(read)
            out.row_groups_read += len(missing)
            fresh = dict(zip(missing, np.split(read, np.cumsum(rows[missing])[:-1]), strict=True))
            if self.cached_rows + len(read) <= KEY_CACHE_ROWS:
                cached.update(fresh)
                self.cached_rows += len(read)
        else:
            fresh = {}
        return np.concatenate([cached[g] if g in cached else fresh[g] for g in wanted.tolist()])


def _distinct(ordered: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array."""
    if len(ordered) < 2:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


class _Probe:
    """The chunk's keys grouped by the hour of their created_at, for row-group selection."""

    def __init__(self, created_at: np.ndarray, keys: np.ndarray, horizon: float):
        # Sorts, not np.unique nor argsort: NumPy 2.4's np.unique of 1M random int64 keys took
        # 0.57 s here and a sort with a mask 0.007 s (the same array); a stable argsort of 1M
        # created_at 0.10 s against 0.006 s for sorting the values, which is all any_within needs.
        self.horizon = horizon
        self.created_sorted = np.sort(created_at)
        self.keys_sorted = _distinct(np.sort(keys))
        self.fingerprints: pl.DataFrame | None = None  # key, key2, event_uuid of the chunk's rows
        hours = (created_at // _HOUR).astype(np.int64)
        order = np.argsort(hours, kind="stable")  # rows by hour, once (not a mask over all rows per hour)
        hours, by_hour = hours[order], keys[order]
        cuts = (np.flatnonzero(hours[1:] != hours[:-1]) + 1).tolist()
        self.by_hour: dict[int, np.ndarray] = {
            int(hours[a]): np.sort(by_hour[a:b]) for a, b in zip([0, *cuts], [*cuts, len(hours)], strict=True)
            if b > a
        }

    def matching(self, rows: pa.Table) -> pl.DataFrame:
        """The index ``rows`` that share a fingerprint (key and key2) with a row of the chunk, with its event_uuid."""
        return pl.from_arrow(rows).join(self.fingerprints, on=[KEY, KEY2], how="inner")

    def any_within(self, lo: float, hi: float) -> bool:
        """Does any row's horizon overlap [lo, hi]?"""
        i = np.searchsorted(self.created_sorted, lo - self.horizon, side="left")
        return bool(i < len(self.created_sorted) and self.created_sorted[i] <= hi + self.horizon)

    def row_groups(self, kmin: np.ndarray, kmax: np.ndarray, tmin: np.ndarray, tmax: np.ndarray) -> np.ndarray:
        """Row groups that may hold one of the keys within its row's horizon: for each hour of
        the chunk's rows, the row groups whose time range is within reach of that hour and whose
        key range holds one of that hour's keys."""
        need = np.zeros(len(kmin), dtype=bool)
        first = np.floor((tmin - self.horizon) / _HOUR)
        last = np.floor((tmax + self.horizon) / _HOUR)
        for hour, ks in self.by_hour.items():
            near = (first <= hour) & (last >= hour) & ~need
            if not near.any():
                continue
            idx = np.flatnonzero(near)
            lo = np.searchsorted(ks, kmin[idx], side="left")
            hi = np.searchsorted(ks, kmax[idx], side="right")
            need[idx[hi > lo]] = True
        return need


# --- Building it for an existing lake ------------------------------------------------------

Progress = Callable[[str, int], None]


def build_index(lake: Lake, settings: Settings, progress: Progress | None = None,
                today: date | None = None) -> dict[str, int]:
    """Index the events of every date within the retention, one commit per date (resumable: a
    re-run starts after the last date committed), then mark the index ready.

    Batches that commit while this runs write their own index rows (the index exists from the
    start), so each date skips the batches the index already holds."""
    events = lake.table(EVENTS_TABLE)
    snapshot = lake.table(DEDUPE_INDEX_TABLE)
    if is_ready(snapshot):
        return {"dates": 0, "rows": 0}
    if snapshot is None:
        create_index(lake, settings.dedupe_buckets, ready=events is None)
        snapshot = lake.table(DEDUPE_INDEX_TABLE)
        if events is None:
            return {"dates": 0, "rows": 0}
    buckets = recorded_buckets(snapshot)
    today = today or datetime.now(UTC).date()
    first = day_number(today) - settings.dedupe_retention_days
    built = snapshot.transaction_version(BUILT_APP_ID)
    first_open = closed_before(datetime.combine(today, datetime.min.time(), UTC) + timedelta(days=1), settings.dedupe_horizon_seconds)
    events = lake.table(EVENTS_TABLE)  # the version whose batches this build indexes
    scan = lake.scan(EVENTS_TABLE, snapshot=events)
    dates = sorted(d for d in _event_dates(lake, events) if day_number(d) >= first)
    todo = [d for d in dates if built is None or day_number(d) > built]
    rows_total = 0
    for i, d in enumerate(todo):
        have = _indexed_batches(lake, d)
        kept = (scan.filter(pl.col("event_date") == d)
                .select(EVENT_UUID, CREATED_AT, "event_date", BATCH_ID, SOURCE_KEY)
                .filter(~pl.col(BATCH_ID).is_in(list(have)))
                .collect())
        last = i == len(todo) - 1
        closed = day_number(d) < first_open
        txns = [Transaction(BUILT_APP_ID, day_number(d))]
        if closed:
            txns.append(Transaction(CLOSED_APP_ID, day_number(d)))
        if last:
            txns += [Transaction(READY_APP_ID, 1), Transaction(RETAINED_APP_ID, max(first, 0))]
        rows = index_rows(kept, buckets, sort=not closed)  # a closed date is sorted by key alone, once
        rows = rows.sort(closed_order()) if closed else rows
        _commit_build(lake, rows, txns)
        if closed:
            write_key_file(lake, d, rows)
        rows_total += kept.height
        if progress:
            progress(f"indexed {d.isoformat()} ({i + 1}/{len(todo)} dates)", kept.height)
    if not todo:
        _commit_build(lake, index_rows(pl.DataFrame(schema={EVENT_UUID: pl.String}), buckets),
                      [Transaction(READY_APP_ID, 1), Transaction(RETAINED_APP_ID, max(first, 0))])
    return {"dates": len(todo), "rows": rows_total}


def _commit_build(lake: Lake, rows: pl.DataFrame, txns: list[Transaction], operation: str = "lake index build") -> None:
    if rows.height == 0:
        rows = pl.DataFrame(schema=pl.Schema(INDEX_SCHEMA))
    # An empty append still commits (the txns mark progress); delta-rs writes no data file.
    write_rows(lake, rows, None, also=txns, metadata={"lake_operation": operation})


def _event_dates(lake: Lake, events: DeltaTable) -> set[date]:
    actions = lake.add_actions(EVENTS_TABLE, snapshot=events)
    if actions is None or actions.num_rows == 0:
        return set()
    return set(actions.column("partition.event_date").to_pylist())


def _indexed_batches(lake: Lake, d: date) -> set[int]:
    scan = lake.scan(DEDUPE_INDEX_TABLE)
    if scan is None:
        return set()
    return set(scan.filter(pl.col(CREATED_DATE) == d).select(pl.col(BATCH_ID).unique()).collect()
               .get_column(BATCH_ID).to_list())


# --- Keeping it: retention, compaction, agreement -------------------------------------------


def drop_expired(lake: Lake, retention_days: int, today: date | None = None) -> int:
    """Delete the index rows of dates older than the retention, in one commit that moves the
    retained-from txn forward with them. Returns the rows deleted."""
    snapshot = lake.table(DEDUPE_INDEX_TABLE)
    if not is_ready(snapshot):
        return 0
    today = today or datetime.now(UTC).date()
    first = day_number(today) - retention_days
    if (snapshot.transaction_version(RETAINED_APP_ID) or 0) >= first:
        return 0
    cutoff = day_of(first).isoformat()
    deleted = lake.delete(DEDUPE_INDEX_TABLE, f"{CREATED_DATE} < '{cutoff}'",
                          txn=Transaction(RETAINED_APP_ID, first), metadata={"lake_operation": "index retention"})
    drop_key_files(lake, day_of(first))
    return deleted


def compact_index(lake: Lake, horizon: float, now: datetime | None = None, min_files: int = 2) -> dict[str, int]:
    """Rewrite each date that batches left in ``min_files`` files or more as one sorted file set
    (same rows): a closed date (beyond every current record's horizon) by key alone, the others
    by hour and key. A closed date is also rewritten once by key when it was last sorted by hour."""
    snapshot = lake.table(DEDUPE_INDEX_TABLE)
    if snapshot is None:
        return {"dates": 0, "files_removed": 0}
    first_open = closed_before(now or datetime.now(UTC), horizon)
    closed_through = snapshot.transaction_version(CLOSED_APP_ID) or -1
    actions = lake.add_actions(DEDUPE_INDEX_TABLE, snapshot=snapshot)
    counts: dict[date, int] = {}
    for d in actions.column(f"partition.{CREATED_DATE}").to_pylist():
        counts[d] = counts.get(d, 0) + 1
    done = removed = 0
    for d, n in sorted(counts.items()):
        day = day_number(d)
        closed = day < first_open
        newly_closed = closed and day > closed_through
        if n < min_files and not newly_closed:
            continue
        rows = (lake.scan(DEDUPE_INDEX_TABLE, snapshot=snapshot).filter(pl.col(CREATED_DATE) == d).collect()
                .sort(closed_order() if closed else hot_order()))
        lake.overwrite(DEDUPE_INDEX_TABLE, to_arrow_views(rows, INDEX_SCHEMA), predicate=f"{CREATED_DATE} = '{d}'",
                       snapshot=snapshot, layout=LAYOUT, txn=Transaction(CLOSED_APP_ID, day) if newly_closed else None,
                       metadata={"lake_operation": "index compaction"})
        if closed:
            write_key_file(lake, d, rows)
        snapshot = lake.table(DEDUPE_INDEX_TABLE)
        closed_through = max(closed_through, day) if newly_closed else closed_through
        done += 1
        removed += n
    return {"dates": done, "files_removed": removed}


def _multiset_sums(rows: pl.DataFrame, on: list[str]) -> tuple[int, int]:
    """Two order-independent sums of the rows' 64-bit hashes (wrapping add, xor): equal for equal
    multisets of rows, and unequal, but for a 2^-64 chance, otherwise."""
    hashes = rows.select(pl.struct(on).hash(seed=0x5EED)).to_series().to_numpy()
    return int(np.add.reduce(hashes, dtype=np.uint64)), int(np.bitwise_xor.reduce(hashes))  # 0, 0 when empty


def disagreements(lake: Lake, batch_ids: Iterable[int] | None = None, since: date | None = None,
                  dates: Iterable[date] | None = None) -> dict[str, int]:
    """Rows of ``events`` missing from the index and index rows with no event, for the given
    batches (None: all), over the dates the index retains (from ``since`` when given; only
    ``dates``, the batches' event_dates, when given: both tables are partitioned by them)."""
    index = lake.table(DEDUPE_INDEX_TABLE)
    events = lake.scan(EVENTS_TABLE)
    if index is None or events is None:
        return {"events_missing": 0, "index_orphans": 0, "checked": 0}
    first = day_of(index.transaction_version(RETAINED_APP_ID) or 0)
    if since is not None and since > first:
        first = since
    idx = lake.scan(DEDUPE_INDEX_TABLE, snapshot=index).filter(pl.col(CREATED_DATE) >= first)
    ev = events.filter(pl.col("event_date") >= first)
    if dates is not None:
        days = list(dates)
        idx, ev = idx.filter(pl.col(CREATED_DATE).is_in(days)), ev.filter(pl.col("event_date").is_in(days))
    if batch_ids is not None:
        ids = list(batch_ids)
        idx, ev = idx.filter(pl.col(BATCH_ID).is_in(ids)), ev.filter(pl.col(BATCH_ID).is_in(ids))
    on = [EVENT_UUID, CREATED_AT, BATCH_ID]
    e = ev.select(on).collect()
    i = idx.select(on).collect()
    if e.height == i.height and _multiset_sums(e, on) == _multiset_sums(i, on):
        # The same rows (as multisets; a row missing on one side and another added would change
        # both sums): no join needed (measured: 0.2 s of joins per 1M events saved).
        return {"events_missing": 0, "index_orphans": 0, "checked": e.height}
    i = i.unique()
    return {
        "events_missing": e.join(i, on=on, how="anti").height,
        "index_orphans": i.join(e, on=on, how="anti").height,
        "checked": e.height,
    }
