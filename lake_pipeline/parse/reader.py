"""Read and parse chunks of a landing zone's raw objects, on every core.

Two parsers give the same records (``tests/parse/test_bulk.py`` holds them to it):

- ``duckdb`` (the default): the bulk parser (`bulk.py`) reads objects in DuckDB, on a
  thread of ours (DuckDB releases the GIL), and hands the records it can't vouch for to
  the Python parser (`handover.py`); only objects that can't be decompressed go to the
  Python parser whole. Objects are staged in a temporary directory first (gzip undone,
  S3 objects downloaded).
- ``python``: objects are independent, so a chunk is cut into contiguous runs of keys
  (in key order) that worker processes read and parse; the runs are put back together
  in key order, which keeps arrival order exact. Small chunks are parsed in-process
  (a worker's start-up would cost more).

A :class:`ChunkParser` owns the background thread and the worker processes. A batch is
handed one; the CLI starts parsing a batch's first chunks with it while Dagster starts
the run (:meth:`ChunkParser.prefetch`), and the batch picks them up.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import orjson

from lake_pipeline.parse.careful import GZIP_MAGIC, RecordColumns, UnreadableObject, decompress, parse_object
from lake_pipeline.parse.bulk import piece_name
from lake_pipeline.parse.handover import SKIPPED_BYTES, Staged, settle
from lake_pipeline.parse.records import ParsedRecords
from lake_pipeline.parse.text import cut_points
from lake_pipeline.storage.objects import LocalStorage, ObjectInfo, open_storage

# A concatenated object bigger than this is staged in pieces of about this size (cut between
# records), so that DuckDB reads it on every core.
PIECE_BYTES = 8 * 1024 * 1024
# Below this many raw bytes a chunk is parsed in the calling process.
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
# The CLI parses this many chunks of the first batch while Dagster starts, and of each next
# batch while the one before it finishes (memory: each parsed chunk is ~10x its raw bytes).
# Three is a whole default batch of Firehose-sized objects (64 MiB of ~17 MiB ones): 1M
# realistic events in 4 batches took 30.3/34.9 s against 32.8/36.8 s with two, at the same
# peak RSS (docs/performance.md, 2026-12-02).
PREFETCH_CHUNKS = 3

Pending = Callable[[], ParsedRecords]


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def parse_keys(raw_uri: str, keys: list[str]) -> ParsedRecords:
    """Read and parse ``keys`` (in order) from the landing zone at ``raw_uri`` with the Python parser."""
    storage = open_storage(raw_uri)
    columns = RecordColumns()
    sizes: dict[str, int] = {}
    for key in keys:
        data = storage.read(key)
        sizes[key] = len(data)
        parse_object(key, data, columns)
    return columns.build(sizes)


def _init_worker() -> None:
    """Workers die with their parent, even when it is SIGKILLed (Linux), instead of lingering."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _runs(objects: list[ObjectInfo], parts: int) -> list[list[str]]:
    """Contiguous runs of keys with about equal bytes each."""
    total = sum(o.size for o in objects) or 1
    runs: list[list[str]] = [[]]
    acc = 0
    for obj in objects:
        if runs[-1] and acc >= total * len(runs) / parts and len(runs) < parts:
            runs.append([])
        runs[-1].append(obj.key)
        acc += obj.size
    return runs


@dataclass
class HandedOver:
    """What the bulk parser handed to the Python parser so far: records the careful parser
    produced, objects it had a share in (read as units), and objects it parsed whole."""

    records: int = 0
    unit_objects: int = 0
    whole_objects: int = 0


class ChunkParser:
    """Parses chunks of the landing zone at ``raw_uri`` in the background.

    :meth:`start` begins parsing a chunk and returns a function that waits for its
    :class:`ParsedRecords`, so a batch parses chunk i+1 while it writes chunk i.
    :meth:`prefetch` begins a chunk early; a later :meth:`start` of the same objects
    takes that parse instead of beginning another. ``parser`` is `Settings.parser`
    (checked there), ``workers`` the DuckDB threads or parse processes (None: one per core).
    """

    def __init__(self, raw_uri: str, parser: str = "duckdb", workers: int | None = None):
        self.raw_uri = raw_uri
        self.parser = parser
        self.workers = workers or default_workers()
        self.handed_over = HandedOver()
        self._prefetched: dict[tuple[str, ...], Pending] = {}
        self._expected: list[list[ObjectInfo]] = []
        self.prefetches_taken = 0  # prefetched chunks that a start() took
        self._pool: ProcessPoolExecutor | None = None
        self._bulk: ThreadPoolExecutor | None = None

    def prefetch(self, objects: list[ObjectInfo]) -> None:
        self._prefetched[tuple(o.key for o in objects)] = self._begin(objects)

    def expect(self, chunks: list[list[ObjectInfo]]) -> None:
        """The first chunks of the next batch: :meth:`prefetch_expected` begins them."""
        self._expected = list(chunks)

    def prefetch_expected(self) -> None:
        """Begin the expected chunks (a batch calls this once its own chunks are all parsed, so
        that the next batch's first chunks parse while it commits, runs its checks and the mart,
        on the core those leave free). Chunks prefetched earlier and never taken (another
        ingest claimed their objects) are dropped first. Nothing expected (a resumed batch run
        before the listed ones): nothing changes, so the chunks already begun stay."""
        if not self._expected:
            return
        self._prefetched.clear()
        for chunk in self._expected:
            self.prefetch(chunk)
        self._expected = []

    def start(self, objects: list[ObjectInfo]) -> Pending:
        taken = self._prefetched.pop(tuple(o.key for o in objects), None)
        self.prefetches_taken += taken is not None
        return taken or self._begin(objects)

    @property
    def prefetched(self) -> int:
        """Chunks begun by :meth:`prefetch` and not yet taken by :meth:`start`."""
        return len(self._prefetched)

    @property
    def worker_processes_started(self) -> bool:
        """Whether parse worker processes run (the Python parser on a big chunk)."""
        return self._pool is not None

    def close(self) -> None:
        self._prefetched.clear()
        self._expected = []
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._bulk is not None:
            self._bulk.shutdown(wait=False, cancel_futures=True)
            self._bulk = None

    def __enter__(self) -> ChunkParser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _begin(self, objects: list[ObjectInfo]) -> Pending:
        if self.parser == "python" or not objects:
            return self._start_python(objects)
        if self._bulk is None:
            # One thread: chunks are parsed one after another, each on every core inside DuckDB.
            self._bulk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-parse")
        return self._bulk.submit(self.parse_bulk, objects).result

    def parse_bulk(self, objects: list[ObjectInfo]) -> ParsedRecords:
        """Parse ``objects`` with the bulk parser; the objects it hands back go to the Python parser."""
        with tempfile.TemporaryDirectory(prefix="lake-raw-") as tmp:
            staged, sizes = _stage(self.raw_uri, objects, Path(tmp), self.workers)
            settled = settle(staged, Path(tmp), self.workers)
        bulk, rejected = settled.records, settled.whole
        bulk.sizes = {key: sizes[key] for key in bulk.records_per_object}
        rejected = set(rejected) | {o.key for o in objects if o.key not in bulk.records_per_object}
        self.handed_over.records += settled.careful_records
        self.handed_over.unit_objects += settled.unit_objects
        self.handed_over.whole_objects += len(rejected)
        if not rejected:
            return bulk
        careful = self._start_python([o for o in objects if o.key in rejected])()
        return ParsedRecords.merge_in_key_order([bulk, careful], [o.key for o in objects])

    def _start_python(self, objects: list[ObjectInfo]) -> Pending:
        keys = [o.key for o in objects]
        if self.workers <= 1 or len(objects) < 2 or sum(o.size for o in objects) < PARALLEL_MIN_BYTES:
            return lambda: parse_keys(self.raw_uri, keys)
        # A few runs per worker balance uneven objects; each run stays in key order.
        runs = _runs(objects, min(len(objects), self.workers * 3))
        try:
            futures = [self._processes().submit(parse_keys, self.raw_uri, run) for run in runs]
        except BrokenProcessPool:
            self._reset_pool()
            return lambda: parse_keys(self.raw_uri, keys)

        def result() -> ParsedRecords:
            try:
                return ParsedRecords.concat(f.result() for f in futures)
            except BrokenProcessPool:
                # Workers can't start in some hosts (e.g. a parent whose __main__ can't be re-imported):
                # parse in this process rather than fail the batch.
                self._reset_pool()
                return parse_keys(self.raw_uri, keys)

        return result

    def _processes(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the parent runs Polars/DuckDB/Dagster threads that fork would copy mid-flight.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
            )
        return self._pool

    def _reset_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None


def _stage(raw_uri: str, objects: list[ObjectInfo], tmp: Path, workers: int) -> tuple[list[Staged], dict[str, int]]:
    """The objects DuckDB can read, staged in key order, and every object's raw size.

    DuckDB reads plain local files, each named by its index (local objects are linked, not
    copied). Gzip objects are decompressed here first, on threads (ISA-L releases the GIL), with
    the CRC checked (DuckDB's own gzip reader doesn't check it); one that can't be decompressed is
    left out, for the Python parser to quarantine. S3 objects are downloaded first."""
    storage = open_storage(raw_uri)
    local = isinstance(storage, LocalStorage)

    def stage(item: tuple[int, ObjectInfo]) -> tuple[Staged | None, int]:
        i, obj = item
        data = storage.read(obj.key)  # its errors name what to fix
        size = len(data)
        plain = data[:2] != GZIP_MAGIC
        if not plain:
            try:
                data = decompress(data)
            except UnreadableObject:
                return None, size
        framing = _framing(data)
        # DuckDB reads a concatenated file on one core: a big one goes in pieces, for every core
        cuts = cut_points(data, PIECE_BYTES) if framing == "unstructured" else []
        if plain and local and not cuts:  # DuckDB reads the landing zone's own file
            path = tmp / piece_name(i)
            path.symlink_to((storage.root / obj.key).resolve())
            return Staged(obj.key, (path,), framing), size
        paths = []
        for piece, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(data)])):
            paths.append(tmp / piece_name(i, piece))
            paths[-1].write_bytes(memoryview(data)[lo:hi])
        return Staged(obj.key, tuple(paths), framing), size

    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(stage, enumerate(objects)))
    return [s for s, _ in done if s is not None], {o.key: size for o, (_, size) in zip(objects, done)}


def _framing(data: bytes) -> str:
    """How DuckDB should read an object (`handover.Staged`): ``units`` when it holds bytes DuckDB
    skips as whitespace, ``lines`` when it looks newline-delimited (one of its first lines is one
    JSON object), else ``unstructured``. A wrong guess costs time, never records."""
    if any(b in data for b in SKIPPED_BYTES):
        return "units"
    start = 0
    for _ in range(3):
        end = data.find(b"\n", start)
        if end == -1:
            break
        line = data[start:end].rstrip(b" \t\r")
        if line[:1] == b"{":
            try:
                orjson.loads(line)
                return "lines"
            except orjson.JSONDecodeError:
                pass
        start = end + 1
    return "unstructured"
