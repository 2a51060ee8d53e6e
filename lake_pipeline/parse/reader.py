"""Read and parse a batch's raw objects, on every core.

Two parsers give the same records (``tests/lake/test_bulk_parse.py`` holds them to it):

- ``duckdb`` (the default): the bulk parser (`bulk_parse.py`) reads whole objects in
  DuckDB, on a thread of ours (DuckDB releases the GIL), and hands every object it
  is not sure about to the Python parser. S3 objects are downloaded to a temporary
  directory first.
- ``python``: objects are independent, so a batch is cut into contiguous runs of keys
  (in key order) that worker processes read and parse; each returns Arrow tables,
  and the runs are put back together in key order, which keeps arrival order exact.
  Small batches are parsed in-process (a worker's start-up would cost more).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from lake_pipeline.contract import ORDINAL, SOURCE_KEY
from lake_pipeline.storage.objects import LocalStorage, ObjectInfo, open_storage
from lake_pipeline.parse.careful import GZIP_MAGIC, ParsedRecords, UnreadableObject, decompress, parse_object

# Below this many raw bytes a batch is parsed in the calling process.
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
# The CLI parses this many chunks of the first batch while Dagster starts (memory: each
# parsed chunk is ~10x its raw bytes).
PREFETCH_CHUNKS = 2


@dataclass
class ParsedBatch:
    records: pa.Table | pl.DataFrame  # Arrow from the worker processes, Polars from the bulk parser
    quarantine: pa.Table
    records_per_object: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def records_read(self) -> int:
        return sum(self.records_per_object.values())


def parse_keys(raw_uri: str, keys: list[str]) -> ParsedBatch:
    """Read and parse ``keys`` (in order) from the landing zone at ``raw_uri``."""
    storage = open_storage(raw_uri)
    parsed = ParsedRecords()
    sizes: dict[str, int] = {}
    for key in keys:
        data = storage.read(key)
        sizes[key] = len(data)
        parse_object(key, data, parsed)
    return ParsedBatch(parsed.records_arrow(), parsed.quarantine_arrow(), parsed.records_per_object, sizes)


_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0


def _pool(workers: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != workers:
        if _POOL is not None:
            _POOL.shutdown()
        # spawn, not fork: the parent runs Polars/DuckDB/Dagster threads that fork would copy mid-flight.
        _POOL = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
        )
        _POOL_SIZE = workers
    return _POOL


def worker_processes_started() -> bool:
    """Whether this process started parse worker processes (the Python parser on a big batch)."""
    return _POOL is not None


def _init_worker() -> None:
    """Workers die with their parent, even when it is SIGKILLed (Linux), instead of lingering."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _reset_pool() -> None:
    global _POOL, _POOL_SIZE
    if _POOL is not None:
        _POOL.shutdown(wait=False, cancel_futures=True)
    _POOL, _POOL_SIZE = None, 0


@atexit.register
def _shutdown() -> None:
    if _POOL is not None:
        _POOL.shutdown(wait=False, cancel_futures=True)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


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


_PREFETCHED: dict[tuple[str, str, tuple[str, ...]], Callable[[], ParsedBatch]] = {}


def prefetch(raw_uri: str, objects: list[ObjectInfo], workers: int | None = None, parser: str = "duckdb") -> None:
    """Start parsing ``objects`` now, for a later :func:`parse_later` of the same objects in this
    process (the CLI parses a batch's first chunk while Dagster starts the run)."""
    _PREFETCHED[(raw_uri, parser, tuple(o.key for o in objects))] = _begin(raw_uri, objects, workers, parser)


def parse_later(
    raw_uri: str, objects: list[ObjectInfo], workers: int | None = None, parser: str = "duckdb"
) -> Callable[[], ParsedBatch]:
    """Start parsing ``objects`` now (a DuckDB thread, or the worker processes); the returned
    function waits for the result. Lets a batch parse its next chunk while it writes the current one."""
    started = _PREFETCHED.pop((raw_uri, parser, tuple(o.key for o in objects)), None)
    return started or _begin(raw_uri, objects, workers, parser)


def _begin(raw_uri: str, objects: list[ObjectInfo], workers: int | None, parser: str) -> Callable[[], ParsedBatch]:
    """``parser`` is `Settings.parser` (checked there)."""
    if parser == "python" or not objects:
        return _start(raw_uri, objects, workers)
    future = _bulk_thread().submit(parse_bulk, raw_uri, objects, workers)
    return future.result


_BULK: ThreadPoolExecutor | None = None


def _bulk_thread() -> ThreadPoolExecutor:
    """One thread: chunks are parsed one after another, each on every core inside DuckDB."""
    global _BULK
    if _BULK is None:
        _BULK = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-parse")
    return _BULK


def parse_bulk(raw_uri: str, objects: list[ObjectInfo], workers: int | None = None) -> ParsedBatch:
    """Parse ``objects`` with the bulk parser; the objects it rejects go to the Python parser.

    DuckDB reads plain local files. Gzip objects are decompressed here first, on threads
    (ISA-L releases the GIL), with the CRC checked (DuckDB's own gzip reader doesn't check
    it); S3 objects are downloaded first."""
    from lake_pipeline.parse.bulk import parse_files

    storage = open_storage(raw_uri)
    local = isinstance(storage, LocalStorage)
    with tempfile.TemporaryDirectory(prefix="lake-raw-") as tmp:

        def stage(item: tuple[int, ObjectInfo]) -> tuple[str, Path | None, int]:
            i, obj = item
            path = storage.root / obj.key if local else None
            data = storage.read(obj.key)  # its errors name what to fix
            size = len(data)
            if data[:2] == GZIP_MAGIC:
                try:
                    data = decompress(data)
                except UnreadableObject:
                    return obj.key, None, size  # the Python parser quarantines it
                path = None
            if b"\x0b" in data or b"\x0c" in data or b"\x00" in data:
                return obj.key, None, size  # DuckDB would skip these as whitespace
            if path is None:
                path = Path(tmp) / f"{i:06d}"
                path.write_bytes(data)
            return obj.key, path, size

        with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            staged = list(pool.map(stage, enumerate(objects)))
        sizes = {key: size for key, _, size in staged}
        bulk = parse_files([(key, path) for key, path, _ in staged if path is not None], threads=workers)
    rejected = set(bulk.rejected) | {key for key, path, _ in staged if path is None}
    if rejected:
        python = _start(raw_uri, [o for o in objects if o.key in rejected], workers)()
        records = _in_key_order([bulk.records, python.records], [o.key for o in objects])
        quarantine = python.quarantine
        sizes.update(python.sizes)
        counts = {**bulk.records_per_object, **python.records_per_object}
    else:
        records, quarantine, counts = bulk.records, ParsedRecords().quarantine_arrow(), bulk.records_per_object
    return ParsedBatch(records, quarantine, {o.key: counts[o.key] for o in objects}, sizes)


def _in_key_order(parts: list[pa.Table | pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """The records of ``parts`` together, in arrival order (key order, then position)."""
    index = pl.col(SOURCE_KEY).replace_strict({k: i for i, k in enumerate(keys)}, return_dtype=pl.Int64)
    frames = [p if isinstance(p, pl.DataFrame) else pl.from_arrow(p) for p in parts]
    return pl.concat(frames).sort(index, pl.col(ORDINAL), maintain_order=True)


def _start(raw_uri: str, objects: list[ObjectInfo], workers: int | None) -> Callable[[], ParsedBatch]:
    workers = workers or default_workers()
    keys = [o.key for o in objects]
    if workers <= 1 or len(objects) < 2 or sum(o.size for o in objects) < PARALLEL_MIN_BYTES:
        return lambda: parse_keys(raw_uri, keys)
    # A few runs per worker balance uneven objects; each run stays in key order.
    runs = _runs(objects, min(len(objects), workers * 3))
    try:
        futures = [_pool(workers).submit(parse_keys, raw_uri, run) for run in runs]
    except BrokenProcessPool:
        _reset_pool()
        return lambda: parse_keys(raw_uri, keys)

    def result() -> ParsedBatch:
        try:
            parts = [f.result() for f in futures]
        except BrokenProcessPool:
            # Workers can't start in some hosts (e.g. a parent whose __main__ can't be re-imported):
            # parse in this process rather than fail the batch.
            _reset_pool()
            return parse_keys(raw_uri, keys)
        merged = ParsedBatch(
            pa.concat_tables([p.records for p in parts]),
            pa.concat_tables([p.quarantine for p in parts]),
        )
        for p in parts:
            merged.records_per_object.update(p.records_per_object)
            merged.sizes.update(p.sizes)
        return merged

    return result
