"""Read and parse a batch's raw objects, on every core.

Objects are independent, so a batch is cut into contiguous runs of keys (in key
order) that worker processes read and parse; each returns Arrow tables, and the
runs are put back together in key order, which keeps arrival order exact.
Small batches are parsed in-process (a worker's start-up would cost more).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import pyarrow as pa

from lake_pipeline.lake.storage import ObjectInfo, open_storage
from lake_pipeline.transforms.parse import ParsedRecords, parse_object

# Below this many raw bytes a batch is parsed in the calling process.
PARALLEL_MIN_BYTES = 8 * 1024 * 1024


@dataclass
class ParsedBatch:
    records: pa.Table
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


_PREFETCHED: dict[tuple[str, tuple[str, ...]], Callable[[], ParsedBatch]] = {}


def prefetch(raw_uri: str, objects: list[ObjectInfo], workers: int | None = None) -> None:
    """Start parsing ``objects`` now, for a later :func:`parse_later` of the same objects in this
    process (the CLI parses a batch's first chunk while Dagster starts the run)."""
    _PREFETCHED[(raw_uri, tuple(o.key for o in objects))] = _start(raw_uri, objects, workers)


def parse_later(raw_uri: str, objects: list[ObjectInfo], workers: int | None = None) -> Callable[[], ParsedBatch]:
    """Start parsing ``objects`` in the worker processes now; the returned function waits for
    the result. Lets a batch parse its next chunk while it writes the current one."""
    started = _PREFETCHED.pop((raw_uri, tuple(o.key for o in objects)), None)
    return started or _start(raw_uri, objects, workers)


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
