"""One micro-batch: raw objects → parse → validate → enrich → dedupe → Delta commits.

This is the business logic behind the ``events``/``quarantine`` assets. It knows
nothing about Dagster: the assets, the CLI and the tests all call it.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow as pa

from lake_pipeline.contract import (
    BATCH_ID,
    CREATED_AT,
    EVENT_UUID,
    partition_columns,
    SOURCE_KEY,
)
from lake_pipeline.ingest import ledger
from lake_pipeline.tables.lake import Lake
from lake_pipeline.storage.objects import ObjectInfo, Storage, open_storage
from lake_pipeline.settings import EVENTS_TABLE, QUARANTINE_TABLE, Settings
from lake_pipeline.transforms.dedupe import duplicate_mask, history_window
from lake_pipeline.transforms.enrich import enrich, quarantine_frame, records_frame, to_events_arrow
from lake_pipeline.parse.careful import ParsedRecords
from lake_pipeline.ingest.firehose import hour_prefixes_between
from lake_pipeline.parse.reader import parse_later
from lake_pipeline.ingest.rebuild import finish_unfinished_rebuilds, rebuild_hours

Progress = Callable[[str, int], None]


@dataclass
class BatchResult:
    batch_id: int
    objects: int = 0
    object_bytes: int = 0
    records: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    resumed: bool = False
    event_dates: list[str] = field(default_factory=list)
    # Seconds per phase (read_parse, enrich, dedupe, write_events, write_quarantine, write_ledger).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def conserved(self) -> bool:
        return self.records == self.inserted + self.duplicates + self.quarantined

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class IngestSummary:
    batches: list[BatchResult] = field(default_factory=list)
    seconds: float = 0.0

    def total(self, name: str) -> int:
        return sum(getattr(b, name) for b in self.batches)

    @property
    def events_per_second(self) -> float:
        return self.total("records") / self.seconds if self.seconds > 0 else 0.0

    @property
    def batch_ids(self) -> list[int]:
        return [b.batch_id for b in self.batches]


def list_pending(
    settings: Settings, lake: Lake | None = None, prefixes: Iterable[str] | None = None, raw: Storage | None = None
) -> list[ObjectInfo]:
    """Raw objects (under ``prefixes``, or all) that the ledger doesn't hold, in key order."""
    lake = lake or Lake.from_settings(settings)
    raw = raw or open_storage(settings.raw_uri)
    if prefixes is None:
        objects = list(raw.list())
    else:
        objects = [o for p in prefixes for o in raw.list(p)]
    done = ledger.processed_keys(lake, [o.key for o in objects])
    return sorted((o for o in objects if o.key not in done), key=lambda o: o.key)


def plan_batches(objects: list[ObjectInfo], max_objects: int, max_bytes: int) -> list[list[ObjectInfo]]:
    """Split objects (in key order) into bounded micro-batches."""
    batches: list[list[ObjectInfo]] = []
    current: list[ObjectInfo] = []
    size = 0
    for obj in objects:
        if current and (len(current) >= max_objects or size + obj.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(obj)
        size += obj.size
    if current:
        batches.append(current)
    return batches


def ingest_keys(
    settings: Settings,
    keys: Iterable[str],
    run_id: str | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    """Ingest ``keys`` exactly once: finish crashed batches first, then plan and run one
    new batch with whatever of ``keys`` the ledger doesn't hold yet."""
    started = time.perf_counter()
    lake = Lake.from_settings(settings)
    raw = open_storage(settings.raw_uri)
    summary = IngestSummary()
    finish_unfinished_rebuilds(lake)
    wanted = sorted(set(keys))
    # Claiming a batch is safe with concurrent writers (see ledger.claim_plan); unfinished
    # plans (crashed, or in flight elsewhere) are finished first, so batches commit in order.
    while (claim := ledger.claim_plan(lake, wanted)).unfinished:
        for plan in claim.unfinished:
            summary.batches.append(run_batch(settings, lake, raw, plan, run_id, progress, resumed=True))
    if claim.plan is not None:
        summary.batches.append(run_batch(settings, lake, raw, claim.plan, run_id, progress))
    summary.seconds = time.perf_counter() - started
    return summary


def ingest_hours(
    settings: Settings,
    first: datetime,
    last: datetime,
    rebuild: bool = False,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    """Ingest the objects of Firehose arrival hours ``first``..``last`` that the ledger
    doesn't hold, in bounded batches. With ``rebuild``, first remove everything that
    came from those hours, so they are processed again with the current logic."""
    started = time.perf_counter()
    lake = Lake.from_settings(settings)
    summary = IngestSummary()
    if rebuild:
        finish_unfinished_rebuilds(lake)
        rebuild_hours(lake, first, last)
    pending = list_pending(settings, lake, prefixes=hour_prefixes_between(first, last))
    batches = plan_batches(pending, settings.batch_max_objects, settings.batch_max_bytes) or [[]]
    for batch in batches:
        part = ingest_keys(settings, [o.key for o in batch], run_id=run_id, progress=progress)
        summary.batches.extend(part.batches)
    summary.seconds = time.perf_counter() - started
    return summary


def _dates_for(spans: list[tuple[float, float]]) -> list[date]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out: set[date] = set()
    for lo, hi in spans:
        d = (epoch + timedelta(seconds=max(lo, 0.0))).date()
        last = (epoch + timedelta(seconds=max(hi, 0.0))).date()
        while d <= last:
            out.add(d)
            d += timedelta(days=1)
    return sorted(out)


def load_history(scan: pl.LazyFrame | None, batch: pl.DataFrame, horizon: float, batch_id: int) -> pl.DataFrame:
    """Accepted records of earlier batches that could make a row of ``batch`` a duplicate.

    ``scan`` is a scan of the events table (taken once per batch: every open replays
    the Delta log), None when it doesn't exist yet.

    Reads only the event_date partitions within the horizon of the batch's
    created_at values, and only two columns, so the cost follows the partitions
    the batch touches, not the table's history.
    """
    empty = pl.DataFrame(schema={EVENT_UUID: pl.String, CREATED_AT: pl.Float64})
    if scan is None or batch.height == 0:
        return empty
    dates = _dates_for(history_window(batch.get_column(CREATED_AT), horizon))
    uuids = batch.select(pl.col(EVENT_UUID).unique()).lazy()
    # A semi join, not `is_in(uuids)`: 3-4x faster here (0.04 s vs 0.15 s per 250k-row chunk).
    return (
        scan.filter(pl.col("event_date").is_in(dates) & (pl.col(BATCH_ID) != batch_id))
        .select(EVENT_UUID, CREATED_AT)
        .join(uuids, on=EVENT_UUID, how="semi")
        .collect()
    )


def _fault(settings: Settings, point: str) -> None:
    """Crash-test hook: die here, as a SIGKILL would, when asked to (never in production)."""
    if settings.fault_injection == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _object_infos(raw: Storage, keys: list[str]) -> list[ObjectInfo]:
    """Sizes for balancing parse work (a local stat, or one listing of the keys' hour prefixes)."""
    wanted = set(keys)
    prefixes = sorted({k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in keys})
    found = {o.key: o for p in prefixes for o in raw.list(p) if o.key in wanted}
    return [found.get(k) or ObjectInfo(k, 0) for k in keys]


class _Feed:
    """Runs a generator on its own thread, handing items over through a small queue."""

    _END = object()

    def __init__(self, gen):
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(gen,), daemon=True, name="batch-chunks")
        self._thread.start()

    def _run(self, gen) -> None:
        try:
            for item in gen:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer
            self._error = exc
        finally:
            self._queue.put(self._END)

    def next(self):
        item = self._queue.get()
        if item is self._END:
            self._queue.put(self._END)
            if self._error is not None:
                raise self._error
            return None
        return item

    def __iter__(self):
        while (item := self.next()) is not None:
            yield item

    def close(self) -> None:
        """Stop producing (the writer gave up early)."""
        self._stop.set()

    def drain(self) -> None:
        """Run the generator to its end (for its counts), then re-raise its error, if any."""
        while self.next() is not None:
            pass
        self._thread.join()


def chunk_objects(objects: list[ObjectInfo], max_bytes: int) -> list[list[ObjectInfo]]:
    """Contiguous chunks (key order kept) of about ``max_bytes`` raw bytes each."""
    return plan_batches(objects, max_objects=len(objects) or 1, max_bytes=max_bytes)


def run_batch(
    settings: Settings,
    lake: Lake,
    raw: Storage,
    plan: ledger.Plan,
    run_id: str | None = None,
    progress: Progress | None = None,
    resumed: bool = False,
) -> BatchResult:
    """Process one planned batch. Safe to repeat: every commit is idempotent per batch id.

    The batch streams through in chunks: while the writer encodes chunk i, the worker
    processes parse chunk i+1. Memory follows the chunk size, not the batch size; the
    events still land in one Delta commit. Within the batch, earlier chunks' accepted
    (event_uuid, created_at) pairs act as history for later chunks, which is exactly
    first-arrival-wins over the whole batch.
    """
    started = time.perf_counter()
    result = BatchResult(batch_id=plan.batch_id, resumed=resumed)
    clock = [started]

    def lap(name: str) -> None:
        now_ = time.perf_counter()
        result.timings[name] = round(result.timings.get(name, 0.0) + now_ - clock[0], 3)
        clock[0] = now_

    horizon = settings.dedupe_horizon_seconds
    keys = sorted(plan.source_keys)  # key order is arrival order
    objects = _object_infos(raw, keys)
    chunks = chunk_objects(objects, settings.chunk_max_bytes)
    workers = settings.parse_workers or None
    records_per_object: dict[str, int] = {}
    sizes: dict[str, int] = {}
    inserted_parts: list[pl.DataFrame] = []
    dropped_parts: list[pl.DataFrame] = []
    quarantine_parts: list = []
    accepted = pl.DataFrame(schema={EVENT_UUID: pl.String, CREATED_AT: pl.Float64})
    event_dates: set = set()
    now = datetime.now(UTC)
    history_scan = lake.scan(EVENTS_TABLE)  # one snapshot for the whole batch
    lap("plan")

    def kept_chunks():
        nonlocal accepted
        pending = parse_later(settings.raw_uri, chunks[0], workers, settings.parser) if chunks else None
        for i in range(len(chunks)):
            parsed = pending()
            pending = parse_later(settings.raw_uri, chunks[i + 1], workers, settings.parser) if i + 1 < len(chunks) else None
            records_per_object.update(parsed.records_per_object)
            sizes.update(parsed.sizes)
            quarantine_parts.append(quarantine_frame(parsed.quarantine, plan.batch_id, now))
            if progress:
                progress(f"parsed chunk {i + 1}/{len(chunks)}", sum(parsed.sizes.values()))
            lap("read_parse")
            _fault(settings, "after_parse")
            events = enrich(records_frame(parsed.records), plan.batch_id, derive=settings.enrich)
            del parsed
            lap("enrich")
            history = load_history(history_scan, events, horizon, plan.batch_id)
            if accepted.height:
                history = pl.concat([history, accepted], how="vertical_relaxed")
            dup = duplicate_mask(events, history, horizon)
            dropped_parts.append(events.select(SOURCE_KEY).filter(dup))
            kept = events.filter(~dup)
            del events, history
            accepted = pl.concat([accepted, kept.select(EVENT_UUID, CREATED_AT)], how="vertical_relaxed")
            inserted_parts.append(kept.select(SOURCE_KEY))
            event_dates.update(kept.get_column("event_date").unique().to_list())
            lap("dedupe")
            if kept.height:
                yield from to_events_arrow(kept).to_batches()
            del kept
            clock[0] = time.perf_counter()  # the writer's time between chunks counts as write_events

    metadata = {"batch_id": str(plan.batch_id), "run_id": run_id or ""}
    stream = kept_chunks()
    if lake.batch_committed(EVENTS_TABLE, plan.batch_id):
        for _ in stream:  # committed before a crash: recount, write nothing
            pass
    else:
        # The chunks are produced on a thread of ours: the Delta writer pulls batches from
        # inside its own async runtime, where reading history (deltalake again) can't run.
        feed = _Feed(stream)
        first = feed.next()
        if first is not None:
            reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], feed))
            try:
                lake.append(EVENTS_TABLE, reader, batch_id=plan.batch_id, partition_by=partition_columns(settings.enrich),
                            metadata=metadata)
            except BaseException:
                feed.close()
                raise
        feed.drain()  # whatever the writer didn't pull still counts
    lap("write_events")
    _fault(settings, "after_events")

    quarantine = (
        pa.concat_tables(quarantine_parts) if quarantine_parts else quarantine_frame(ParsedRecords(), plan.batch_id, now)
    )
    if quarantine.num_rows:
        lake.append(QUARANTINE_TABLE, quarantine, batch_id=plan.batch_id, metadata=metadata)
    lap("write_quarantine")
    _fault(settings, "after_quarantine")

    def counts(parts: list[pl.DataFrame], column: str, name: str) -> pl.DataFrame:
        frame = pl.concat(parts) if parts else pl.DataFrame(schema={column: pl.String})
        return frame.group_by(column).agg(pl.len().cast(pl.Int64).alias(name)).rename({column: "source_key"})

    per_object = (
        pl.DataFrame(
            {
                "source_key": keys,
                "object_bytes": [sizes.get(k, 0) for k in keys],
                "records": [records_per_object.get(k, 0) for k in keys],
            },
            schema={"source_key": pl.String, "object_bytes": pl.Int64, "records": pl.Int64},
        )
        .join(counts(inserted_parts, SOURCE_KEY, "inserted"), on="source_key", how="left")
        .join(counts(dropped_parts, SOURCE_KEY, "duplicates"), on="source_key", how="left")
        .join(counts([pl.from_arrow(quarantine.select(["source_key"]))], "source_key", "quarantined"),
              on="source_key", how="left")
        .fill_null(0)
    )
    ledger.write_ledger(lake, plan.batch_id, per_object, run_id)
    lap("write_ledger")
    _fault(settings, "after_ledger")

    result.objects = len(keys)
    result.object_bytes = sum(sizes.values())
    result.records = sum(records_per_object.values())
    result.inserted = int(per_object["inserted"].sum())
    result.duplicates = int(per_object["duplicates"].sum())
    result.quarantined = quarantine.num_rows
    result.event_dates = sorted(d.isoformat() for d in event_dates)
    result.seconds = time.perf_counter() - started
    return result
