"""Delta tables of one lake: the one way to open, scan, write, delete, compact and vacuum them.

:class:`Lake` (lake_pipeline/tables/lake.py) is the only code that calls deltalake: it opens
a table (optionally at a version), scans and reads it, reads its add actions (one row per
data file), appends (idempotently per batch), overwrites it (whole or by predicate),
deletes by predicate, compacts and vacuums it. Every method sends deltalake and
object_store failures through one mapper, :func:`_storage_error`, which raises a
:class:`StorageError` with a one-line message naming the table and what to fix.
Nothing outside this module calls ``write_deltalake``, builds a ``DeltaTable`` or
catches a deltalake exception.
Callers hold on to a snapshot (a ``DeltaTable`` returned by :meth:`Lake.table`) when
several reads must see the same version, and hand it back to these methods.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import quote, unquote

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pyarrow import fs as pafs
import pyarrow.compute as pc
from deltalake import ColumnProperties, CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction

from lake_pipeline.storage.aws import delta_storage_options, object_store_error
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.objects import open_storage
from lake_pipeline.storage.uris import is_s3, join, normalize_uri
from lake_pipeline.settings import Settings

# Delta "txn" application id: a table whose txn version is >= a batch id already holds that batch.
INGEST_APP_ID = "lake_pipeline.ingest"
# Concurrent writers: every commit carrying a txn of an application id conflicts with any other
# commit of the same id made since its snapshot (delta-rs' "concurrent transaction" check), and
# on S3 the commit itself is a conditional put (If-None-Match). A writer that loses looks again.
MAX_COMMIT_ATTEMPTS = 20
# Every table is created with a checkpoint each 10 commits (Delta's default is 100). A snapshot
# replays the JSON commits since the last checkpoint, and a batch, its checks and the mart's update
# open dozens of snapshots: with 60-75 commits since one, opening each of a lake's tables took
# 15-34 ms, and 3-6 ms after a checkpoint (2026-12-03, a lake fed 60 one-minute batches).
CHECKPOINT_INTERVAL = 10


class CommitConflict(RuntimeError):
    """Take a new snapshot and look again: another writer committed a transaction of the same
    application id since ours, or the table did not exist yet (it has just been created, empty)."""


class CommitRace(StorageError):
    """Another writer committed to the table first (a lost optimistic-concurrency race): doing the
    same work again on a new snapshot is safe and usually succeeds."""


class RetentionTooShort(StorageError):
    """A vacuum retention below the table's minimum was asked for without opting out of the check."""


# Columns whose values are (nearly) all distinct: a dictionary page only costs time there
# (building it, then falling back to plain encoding). Turning it off made the 1M-event
# write 2.3 s -> 1.0 s and the files 6% smaller. Min/max statistics of the payload are of
# no use to any reader.
_NO_DICTIONARY = ("event_uuid", "created_at", "created_datetime", "payload", "_ordinal")


@dataclass(frozen=True)
class FileLayout:
    """How a table's data files are cut: rows per row group, columns without min/max
    statistics (a footer of thousands of row groups stays small), and columns of the table's own
    with (nearly) distinct values, written without a dictionary like the shared ones of
    ``_NO_DICTIONARY``. The default: delta-rs'."""

    row_group_rows: int | None = None
    no_statistics: tuple[str, ...] = ()
    no_dictionary: tuple[str, ...] = ()

    def without_dictionary(self) -> tuple[str, ...]:
        return _NO_DICTIONARY + self.no_dictionary


def writer_properties(layout: FileLayout | None = None) -> WriterProperties:
    # Level 1: micro-batch files are short-lived (compaction rewrites them), so speed wins.
    # Columns a table doesn't have are ignored (the marts share these properties).
    # ``layout``: small row groups for a table read a few row groups at a time (the
    # seen-keys index), see FileLayout.
    layout = layout or FileLayout()
    plain = layout.without_dictionary()
    columns = {name: ColumnProperties(dictionary_enabled=False) for name in plain}
    columns["payload"] = ColumnProperties(dictionary_enabled=False, statistics_enabled="NONE")
    for name in layout.no_statistics:
        columns[name] = ColumnProperties(dictionary_enabled=name not in plain, statistics_enabled="NONE")
    return WriterProperties(compression="ZSTD", compression_level=1, column_properties=columns,
                            max_row_group_size=layout.row_group_rows)


def _commit_properties(
    txn: Transaction | None = None, metadata: dict[str, str] | None = None, also: list[Transaction] | None = None
) -> CommitProperties:
    txns = ([txn] if txn else []) + list(also or [])
    return CommitProperties(app_transactions=txns or None, custom_metadata=metadata)


def parquet_options(schema: pa.Schema, layout: FileLayout | None = None) -> dict:
    """:func:`writer_properties` for pyarrow's Parquet writer (files that :meth:`Lake.write_files`
    writes outside delta-rs): zstd level 1, no dictionary for the near-unique columns, no
    statistics for the payload (nor for ``layout.no_statistics``), ``layout``'s row groups."""
    layout = layout or FileLayout()
    names = schema.names
    options = {
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": [n for n in names if n not in layout.without_dictionary()],
        "write_statistics": [n for n in names if n != "payload" and n not in layout.no_statistics],
    }
    if layout.row_group_rows:
        options["row_group_size"] = layout.row_group_rows
    return options


# Min/max statistics of a string column are left out of a file's add action when a value is longer
# (delta-rs truncates them; leaving them out is always correct: readers then just read the file).
_STATS_MAX_STRING = 32
# Delta's directory name of a null (or empty) partition value.
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def _stats_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def file_stats(data: pa.Table, skip: tuple[str, ...] = ("payload",)) -> str:
    """Delta statistics JSON of one data file holding ``data`` (numRecords, and per column
    nullCount, minValues, maxValues; min/max where safe and useful)."""
    mins: dict[str, object] = {}
    maxs: dict[str, object] = {}
    nulls: dict[str, int] = {}
    for name in data.column_names:
        column = data.column(name)
        nulls[name] = column.null_count
        if name in skip or column.null_count == len(column):
            continue
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            if pc.max(pc.utf8_length(column)).as_py() > _STATS_MAX_STRING:
                continue
        elif pa.types.is_floating(kind):
            if pc.any(pc.is_nan(column)).as_py() or pc.any(pc.is_inf(column)).as_py():
                continue
        elif not (pa.types.is_integer(kind) or pa.types.is_date(kind) or pa.types.is_timestamp(kind)):
            continue
        low, high = pc.min_max(column).values()
        mins[name], maxs[name] = _stats_value(low.as_py()), _stats_value(high.as_py())
    return json.dumps({"numRecords": data.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls})


def _partition_dir(values: dict[str, object]) -> tuple[str, dict[str, str | None]]:
    """Hive-style directory of one partition (values percent-encoded, as delta-rs names them) and
    the add action's partition values (None for a null or empty value)."""
    parts, out = [], {}
    for name, value in values.items():
        text = None if value is None or value == "" else str(_stats_value(value))
        out[name] = text
        parts.append(f"{name}={_NULL_PARTITION if text is None else quote(text, safe='')}")
    return "/".join(parts), out


def _offset_strings(data: pa.Table) -> pa.Table:
    """``data`` with its string-view columns (as Polars hands them over) as 64-bit-offset strings."""
    if not any(pa.types.is_string_view(f.type) for f in data.schema):
        return data
    return data.cast(pa.schema([f.with_type(pa.large_string()) if pa.types.is_string_view(f.type) else f
                                for f in data.schema]))


def _partition_slices(data: pa.Table, partition_by: list[str]) -> list[tuple[dict[str, object], pa.Table]]:
    """``data`` cut into one table per partition (its partition values, its rows): one reordering pass
    that makes each partition contiguous, then zero-copy slices (a take per partition re-reads the
    whole chunked table each time)."""
    if not partition_by:
        return [({}, data)]
    groups = (pl.from_arrow(data.select(partition_by)).with_row_index("__row")
              .group_by(partition_by, maintain_order=True).agg(pl.col("__row")))
    data = data.take(groups.get_column("__row").explode().to_arrow())
    pieces, start = [], 0
    for *values, rows in groups.iter_rows():
        pieces.append((dict(zip(partition_by, values)), data.slice(start, len(rows))))
        start += len(rows)
    return pieces


def _storage_error(where: str, doing: str, exc: BaseException, retention_hours: int | None = None) -> StorageError:
    """The one error mapper: a deltalake/object_store failure on ``where`` (a table's URI; the
    lake's for a whole-lake problem) as one StorageError, on one line, naming the table, what
    failed and, where the cause is known (a lost commit race, a too short vacuum retention, the
    S3 causes of :func:`object_store_error`), what to do about it."""
    if isinstance(exc, CommitFailedError):
        return CommitRace(f"cannot {doing} Delta table {where}: another writer committed first ({exc}); "
                            "run it again")
    if isinstance(exc, DeltaError):
        if retention_hours is not None and "retention period" in str(exc).lower():
            return RetentionTooShort(
                f"a vacuum retention of {retention_hours} h is shorter than the minimum of {where} "
                f"({exc}); pass --unsafe-retention to `lake compact` to allow it"
            )
        return StorageError(f"cannot {doing} Delta table {where}: {exc}")
    return object_store_error(where, exc)  # OSError and the like: object_store (local files, S3)


@contextmanager
def _delta_errors(
    where: str,
    doing: str,
    *,
    retention_hours: int | None = None,
    catch: type[BaseException] | tuple[type[BaseException], ...] = (DeltaError, OSError),
) -> Iterator[None]:
    """Run a deltalake call; what it raises of ``catch`` leaves as :func:`_storage_error`'s StorageError."""
    try:
        yield
    except (StorageError, CommitConflict):
        raise
    except catch as exc:
        raise _storage_error(where, doing, exc, retention_hours) from exc


def row_group_sizes(parquet: pq.ParquetFile) -> np.ndarray:
    """The rows of each row group of one Parquet file, from its footer."""
    meta = parquet.metadata
    return np.array([meta.row_group(g).num_rows for g in range(meta.num_row_groups)], np.int64)


def row_group_ranges(parquet: pq.ParquetFile, column: str, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Per row group of one Parquet file, the [min, max] of ``column`` from its footer; a row
    group without statistics gets the widest range of ``dtype`` (so a reader always reads it)."""
    meta = parquet.metadata
    index = meta.schema.names.index(column)
    n = meta.num_row_groups
    widest = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    lo = np.full(n, widest.min if widest else -np.inf, dtype)
    hi = np.full(n, widest.max if widest else np.inf, dtype)
    for g in range(n):
        stats = meta.row_group(g).column(index).statistics
        if stats is not None and stats.has_min_max:
            lo[g], hi[g] = stats.min, stats.max
    return lo, hi


def add_actions(snapshot: DeltaTable, where: str | None = None) -> pa.Table:
    """The add actions of ``snapshot``: one row per data file (path, size_bytes, num_records,
    ``partition.<column>``, ``min.<column>``/``max.<column>`` statistics), from the log (no data read).
    ``where``: the table's URI for error messages (default: the snapshot's own)."""
    with _delta_errors(where or snapshot.table_uri, "list the files of"):
        return pa.table(snapshot.get_add_actions(flatten=True))


@dataclass(frozen=True)
class Lake:
    """The lake root plus how to reach it.

    Methods take a table name. Readers return None when the table doesn't exist yet. A
    method that takes ``snapshot`` (a DeltaTable from :meth:`table`) works on that version
    instead of opening the current one, so several calls see the same version.
    """

    uri: str
    storage_options: dict[str, str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Lake:
        uri = normalize_uri(settings.lake_uri)
        return cls(uri, delta_storage_options(uri, settings.s3_locking, settings.dynamodb_lock_table))

    def table_uri(self, name: str) -> str:
        return join(self.uri, name)

    def _errors(self, name: str, doing: str, *, retention_hours: int | None = None) -> AbstractContextManager[None]:
        return _delta_errors(self.table_uri(name), doing, retention_hours=retention_hours)

    # --- Open and read ------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        # object_store errors (a missing bucket, no credentials) surface as generic exceptions
        # here, and concern the whole lake, so the message names the lake.
        with _delta_errors(self.uri, "open", catch=Exception):
            return DeltaTable.is_deltatable(self.table_uri(name), storage_options=self.storage_options)

    def table(self, name: str, version: int | None = None) -> DeltaTable | None:
        """A snapshot of the table: the current version, or ``version`` (time travel)."""
        if not self.exists(name):
            return None
        with self._errors(name, "open" if version is None else f"open version {version} of"):
            return DeltaTable(self.table_uri(name), version=version, storage_options=self.storage_options)

    def pinned(self, *names: str) -> Lake:
        """This lake, with the tables ``names`` (every table when none are named) opened once: each
        read of one of them through the returned lake sees the version its first open found.

        For code that only *reads* those tables (the batch checks, the mart's reads of ``events``):
        an open replays the table's log, 10-16 ms for ``events`` at 9M events a day, and such code
        opened it four times. Never write a pinned table through it: a commit would go on top of
        the pinned version, conflict with every later one, and give up."""
        return PinnedLake(self.uri, self.storage_options, frozenset(names), {})

    def _snapshot(self, name: str, version: int | None, snapshot: DeltaTable | None) -> DeltaTable | None:
        return snapshot if snapshot is not None else self.table(name, version)

    def scan(self, name: str, version: int | None = None, *, snapshot: DeltaTable | None = None) -> pl.LazyFrame | None:
        """Lazy Polars scan of a table (None when the table doesn't exist yet)."""
        table = self._snapshot(name, version, snapshot)
        if table is None:
            return None
        with self._errors(name, "scan"):
            return pl.scan_delta(table)

    def read_arrow(
        self, name: str, columns: list[str] | None = None, *, snapshot: DeltaTable | None = None
    ) -> pa.Table | None:
        table = self._snapshot(name, None, snapshot)
        if table is None:
            return None
        with self._errors(name, "read"):
            return table.to_pyarrow_table(columns=columns)

    def add_actions(
        self, name: str, version: int | None = None, *, snapshot: DeltaTable | None = None
    ) -> pa.Table | None:
        """The table's data files, one row each, from its log (no data read): see :func:`add_actions`."""
        table = self._snapshot(name, version, snapshot)
        return None if table is None else add_actions(table, self.table_uri(name))

    def _files(self, name: str) -> pafs.FileSystem:
        """A pyarrow filesystem rooted at the table's directory, for its data files by their
        relative paths: local files directly; on S3 delta-rs' own object store, with the lake's
        storage options (so region, endpoint and credentials are configured in one place)."""
        from deltalake.fs import DeltaStorageHandler

        if not is_s3(self.uri):
            os.makedirs(self.table_uri(name), exist_ok=True)
            return pafs.SubTreeFileSystem(self.table_uri(name), pafs.LocalFileSystem())
        return pafs.PyFileSystem(DeltaStorageHandler(self.table_uri(name), self.storage_options))

    def parquet_file(self, name: str, path: str) -> pq.ParquetFile:
        """One data file of a table (``path`` as its add action names it: URL-encoded, so a
        partition value such as ``a=b`` or ``café`` is escaped once more than its directory),
        opened for reading its footer and single row groups (the seen-keys index reads a few row
        groups a file)."""
        with self._errors(name, f"read file {path} of"):
            return pq.ParquetFile(self._files(name).open_input_file(unquote(path)))

    def read_files(self, name: str, paths: list[str], columns: list[str]) -> pa.Table:
        """``columns`` of data files ``paths`` (as their add actions name them), read in one call
        on every core (the seen-keys index reads its small files whole this way: one call instead
        of a footer and a read per file)."""
        with self._errors(name, f"read {len(paths)} file(s) of"):
            files = pads.dataset([unquote(p) for p in paths], format="parquet", filesystem=self._files(name))
            return files.to_table(columns=columns)

    # Files beside a table's data, which its log doesn't track (the seen-keys index's key files
    # of closed dates, under a directory whose name starts with "_", as Delta's own do).

    def write_arrow_file(self, name: str, path: str, table: pa.Table, batch_rows: int) -> None:
        """Write ``table`` as an Arrow IPC file at ``path`` (relative to the table's directory),
        in record batches of ``batch_rows`` rows, each readable on its own."""
        with self._errors(name, f"write {path} of"):
            # Whole in memory, then one write (S3 puts an object at once).
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, table.schema) as writer:
                for batch in table.combine_chunks().to_batches(max_chunksize=batch_rows):
                    writer.write_batch(batch)
            if is_s3(self.uri):
                # delta-rs' object store directly: through pyarrow's PyFileSystem its stream is
                # handed pyarrow Buffers, and it takes bytes only.
                from deltalake.fs import DeltaStorageHandler

                handler = DeltaStorageHandler(self.table_uri(name), self.storage_options)
                out = handler._handler.open_output_stream(path, None)  # its raw writer: bytes in
                out.write(sink.getvalue().to_pybytes())
                out.close()
                return
            fs = self._files(name)
            fs.create_dir(os.path.dirname(path), recursive=True)
            with fs.open_output_stream(path) as out:
                out.write(sink.getvalue())

    def arrow_file(self, name: str, path: str) -> pa.ipc.RecordBatchFileReader | None:
        """The Arrow IPC file at ``path``, opened for reading single record batches; None when
        there is none, or it is not a whole IPC file (a write that stopped half-way)."""
        with self._errors(name, f"read {path} of"):
            try:
                return pa.ipc.open_file(self._files(name).open_input_file(path))
            except (FileNotFoundError, pa.ArrowInvalid):
                return None

    def side_files(self, name: str, directory: str) -> list[str]:
        """The paths of the files in ``directory`` (relative to the table's directory)."""
        with self._errors(name, f"list {directory} of"):
            infos = self._files(name).get_file_info(pafs.FileSelector(directory, allow_not_found=True))
            return sorted(i.path for i in infos if i.type == pafs.FileType.File)

    def delete_side_file(self, name: str, path: str) -> None:
        with self._errors(name, f"delete {path} of"):
            self._files(name).delete_file(path)

    def delete_dated_side_files(self, name: str, directory: str, before: date) -> int:
        """Delete the files in ``directory`` whose names start with an ISO date before ``before``
        (key files, named ``<date>-<token>.arrow``). Returns how many."""
        old = [p for p in self.side_files(name, directory) if p.rsplit("/", 1)[-1][:10] < before.isoformat()]
        for path in old:
            self.delete_side_file(name, path)
        return len(old)

    # --- Append -------------------------------------------------------------------------

    def check_writable(self) -> None:
        storage = open_storage(self.uri)
        storage.check_writable()

    def batch_committed(self, name: str, batch_id: int) -> bool:
        table = self.table(name)
        return table is not None and _holds(table, batch_id)

    def commit(
        self,
        name: str,
        data: pa.Table,
        *,
        snapshot: DeltaTable | None,
        txn: Transaction | None = None,
        partition_by: list[str] | None = None,
        metadata: dict[str, str] | None = None,
        layout: FileLayout | None = None,
        also: list[Transaction] | None = None,
    ) -> None:
        """Append ``data`` in one commit on top of ``snapshot`` (``also``: more txns to record in it).

        Raises :class:`CommitConflict` when the caller must take a new snapshot and look
        again: another writer committed a transaction of the same application id as ``txn``
        since ``snapshot``, or ``snapshot`` is None (the table did not exist: it is created
        empty first, because delta-rs does not see two concurrent creations that carry
        data as a conflict, so data only ever goes on top of a snapshot).
        """
        if snapshot is None:
            self.create(name, data.schema, partition_by)
            raise CommitConflict(f"{self.table_uri(name)} did not exist; created it empty")
        with self._errors(name, "write"):
            try:
                write_deltalake(
                    snapshot,
                    data,
                    mode="append",
                    partition_by=partition_by,
                    storage_options=self.storage_options,
                    writer_properties=writer_properties(layout),
                    commit_properties=_commit_properties(txn, metadata, also),
                )
            except CommitFailedError as exc:
                raise CommitConflict(f"concurrent commit to {self.table_uri(name)}: {exc}") from exc

    def create(
        self,
        name: str,
        schema: pa.Schema,
        partition_by: list[str] | None = None,
        *,
        txns: list[Transaction] | None = None,
    ) -> None:
        """Create an empty table (nothing when it exists). Concurrent creations are harmless:
        the one whose version 0 lost the conditional put finds the table there.
        ``txns``: txn versions to start it with."""
        try:
            with self._errors(name, "create"):
                DeltaTable.create(
                    self.table_uri(name), schema=schema, partition_by=partition_by, mode="ignore",
                    storage_options=self.storage_options,
                    configuration={"delta.checkpointInterval": str(CHECKPOINT_INTERVAL)},
                    commit_properties=_commit_properties(None, None, txns) if txns else None,
                )
        except StorageError:
            if not self.exists(name):
                raise

    def create_empty(self, name: str, schema: pa.Schema, partition_by: list[str] | None = None, *,
                     app_id: str) -> DeltaTable:
        """Create ``name`` empty for a writer of ``app_id`` that found no table, and return its
        snapshot to commit on; a :class:`CommitRace` when another writer of ``app_id`` created it
        and committed into it meanwhile (a commit on top would not conflict with that one)."""
        self.create(name, schema, partition_by)
        table = self.table(name)
        version = table.transaction_version(app_id)
        if version is not None:
            raise CommitRace(f"cannot write Delta table {self.table_uri(name)}: another writer created it and "
                             f"committed v{version} first; run it again")
        return table

    def append(
        self,
        name: str,
        data: pa.Table | pa.RecordBatchReader,
        *,
        batch_id: int | None = None,
        partition_by: list[str] | None = None,
        metadata: dict[str, str] | None = None,
        layout: FileLayout | None = None,
        also: list[Transaction] | None = None,
    ) -> bool:
        """Append ``data`` in one commit. With ``batch_id``, the commit is idempotent:
        a table that already holds the batch is left alone (returns False).

        Safe with concurrent writers: the check and the commit use the same snapshot, so a
        batch committed by another writer in between makes our commit conflict; we then
        look again instead of writing the batch twice.
        """
        txn = Transaction(INGEST_APP_ID, batch_id) if batch_id is not None else None
        one_shot = isinstance(data, pa.RecordBatchReader)  # a stream can be written only once
        consumed = False
        for _ in range(MAX_COMMIT_ATTEMPTS):
            snapshot = self.table(name)
            if batch_id is not None and snapshot is not None and _holds(snapshot, batch_id):
                return False
            if consumed:
                # Never commit an exhausted stream: fail, and the next run redoes the batch.
                raise StorageError(f"a concurrent commit to {self.table_uri(name)} interrupted a streamed batch; "
                                   "run ingest again to redo it")
            consumed = one_shot and snapshot is not None
            try:
                self.commit(name, data, snapshot=snapshot, txn=txn, partition_by=partition_by, metadata=metadata,
                            layout=layout, also=also)
            except CommitConflict:
                continue
            return True
        raise StorageError(
            f"cannot commit to {self.table_uri(name)}: {MAX_COMMIT_ATTEMPTS} attempts lost to concurrent writers"
        )

    def write_files(self, name: str, data: pa.Table, partition_by: list[str] | None = None,
                    prefix: str = "part", layout: FileLayout | None = None) -> list[AddAction]:
        """Write ``data`` as Parquet data files into the table's directory, one per partition
        (of ``partition_by``), with :func:`parquet_options`, and return their add actions for
        :meth:`commit_files`. Nothing is committed: files no commit references are left for vacuum.
        Any process can call this (a Ray worker does), on a local or S3 lake."""
        partition_by = partition_by or []
        if data.num_rows == 0:
            return []
        data = _offset_strings(data)  # pyarrow's take and min/max have no string-view kernels
        columns = [c for c in data.column_names if c not in partition_by]
        pieces = _partition_slices(data, partition_by)
        actions: list[AddAction] = []
        with self._errors(name, "write data files of"):
            filesystem = self._files(name)
            for values, piece in pieces:
                directory, partition_values = _partition_dir(values)
                piece = piece.select(columns)
                if directory:
                    filesystem.create_dir(directory, recursive=True)
                path = f"{directory + '/' if directory else ''}{prefix}-{uuid.uuid4()}.zstd.parquet"
                pq.write_table(piece, path, filesystem=filesystem, **parquet_options(piece.schema, layout))
                size = filesystem.get_file_info(path).size
                actions.append(AddAction(path, size, partition_values, int(time.time() * 1000),
                                         True, file_stats(piece)))
        return actions

    def commit_files(
        self,
        name: str,
        actions: list[AddAction],
        *,
        batch_id: int,
        schema: pa.Schema,
        partition_by: list[str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        """Commit data files already written into the table (:meth:`write_files`, by any process) as
        one append tagged with ``batch_id``, creating the table first if needed; a table that already
        holds the batch is left alone (returns False). Safe with concurrent writers, as :meth:`append`."""
        txn = Transaction(INGEST_APP_ID, batch_id)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            snapshot = self.table(name)
            if snapshot is None:
                self.create(name, schema, partition_by)
                continue
            if _holds(snapshot, batch_id):
                return False
            with self._errors(name, "commit files to"):
                try:
                    snapshot.create_write_transaction(
                        actions, mode="append", schema=snapshot.schema(), partition_by=partition_by,
                        commit_properties=_commit_properties(txn, metadata),
                    )
                except CommitFailedError:
                    continue
            return True
        raise StorageError(
            f"cannot commit to {self.table_uri(name)}: {MAX_COMMIT_ATTEMPTS} attempts lost to concurrent writers"
        )

    # --- Rewrite: overwrite, delete, compact, vacuum -------------------------------------

    def overwrite(
        self,
        name: str,
        data: pa.Table | pa.RecordBatchReader,
        *,
        predicate: str | None = None,
        snapshot: DeltaTable | None = None,
        replace_schema: bool = False,
        txn: Transaction | None = None,
        metadata: dict[str, str] | None = None,
        layout: FileLayout | None = None,
    ) -> None:
        """Replace the table's rows with ``data`` in one commit (creating the table if needed);
        with ``predicate`` (a Delta SQL predicate), only the rows that match it.

        ``snapshot``: the version the caller read (a writer that committed since makes this
        commit conflict). ``replace_schema``: ``data`` may bring a new schema.
        """
        with self._errors(name, "overwrite"):
            write_deltalake(
                snapshot if snapshot is not None else self.table_uri(name),
                data,
                mode="overwrite",
                predicate=predicate,
                schema_mode="overwrite" if replace_schema else None,
                storage_options=self.storage_options,
                writer_properties=writer_properties(layout),
                commit_properties=_commit_properties(txn, metadata),
            )

    def delete(
        self, name: str, predicate: str, *, metadata: dict[str, str] | None = None, txn: Transaction | None = None
    ) -> int:
        """Delete the rows that match ``predicate`` (a Delta SQL predicate) in one commit;
        return how many (0 when the table doesn't exist).

        The files it rewrites (the rows of a file that stay) are written with delta-rs'
        default writer properties, not :func:`writer_properties`: the sizes `lake compact`
        reports after a rebuild stay what they were.
        """
        table = self.table(name)
        if table is None:
            return 0
        with self._errors(name, "delete from"):
            metrics = table.delete(predicate, commit_properties=_commit_properties(txn, metadata))
        return int(metrics.get("num_deleted_rows", 0) or 0)

    def compact(
        self,
        name: str,
        *,
        snapshot: DeltaTable | None = None,
        partition_filters: list[tuple[str, str, object]] | None = None,
        target_size: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict:
        """Bin-pack the small files (of the partitions ``partition_filters`` selects) into files of
        about ``target_size`` bytes, in one commit that changes no rows (``dataChange=false``).
        Returns delta-rs' metrics (``numFilesAdded``, ``numFilesRemoved``, ...; {} without a table)."""
        table = self._snapshot(name, None, snapshot)
        if table is None:
            return {}
        with self._errors(name, "compact"):
            return table.optimize.compact(
                partition_filters=partition_filters,
                target_size=target_size,
                writer_properties=writer_properties(),
                commit_properties=_commit_properties(None, metadata),
            )

    def z_order(
        self,
        name: str,
        columns: list[str],
        *,
        partition_filters: list[tuple[str, str, object]] | None = None,
        target_size: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict:
        """Rewrite the files (of the partitions ``partition_filters`` selects) ordered along a
        Z-order curve of ``columns`` (one column: sorted by it) into files of about ``target_size``
        bytes, in one commit that changes no rows, so each file's statistics cover a narrow range
        of those columns. Returns delta-rs' metrics ({} without a table)."""
        table = self.table(name)
        if table is None:
            return {}
        with self._errors(name, "z-order"):
            return table.optimize.z_order(
                columns,
                partition_filters=partition_filters,
                target_size=target_size,
                writer_properties=writer_properties(),
                commit_properties=_commit_properties(None, metadata),
            )

    def vacuum(
        self,
        name: str,
        retention_hours: int | None = None,
        *,
        dry_run: bool = False,
        enforce_retention_duration: bool = True,
        full: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> list[str]:
        """Delete the files no version within ``retention_hours`` (None: the table's
        ``delta.deletedFileRetentionDuration``) references; return them ([] without a table).

        ``dry_run``: only list them. ``full``: also files no commit ever referenced.
        With ``enforce_retention_duration``, a retention below the table's minimum raises
        :class:`RetentionTooShort`.
        """
        table = self.table(name)
        if table is None:
            return []
        with self._errors(name, "vacuum", retention_hours=retention_hours):
            return table.vacuum(
                retention_hours=retention_hours,
                dry_run=dry_run,
                enforce_retention_duration=enforce_retention_duration,
                full=full,
                commit_properties=_commit_properties(None, metadata),
            )


@dataclass(frozen=True)
class PinnedLake(Lake):
    """A :class:`Lake` whose tables ``names`` (all when empty) are opened once (:meth:`Lake.pinned`)."""

    names: frozenset[str] = frozenset()
    opened: dict[str, DeltaTable | None] = field(default_factory=dict, compare=False, repr=False)

    def table(self, name: str, version: int | None = None) -> DeltaTable | None:
        if version is not None or (self.names and name not in self.names):
            return super().table(name, version)
        if name not in self.opened:
            self.opened[name] = super().table(name)
        return self.opened[name]


def _holds(table: DeltaTable, batch_id: int) -> bool:
    version = table.transaction_version(INGEST_APP_ID)
    return version is not None and version >= batch_id
