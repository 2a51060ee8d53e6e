"""One micro-batch: raw objects → parse → validate → enrich → dedupe → Delta commits.

This is the business logic behind the ``events``/``quarantine`` assets. It knows
nothing about Dagster: the assets, the CLI and the tests all call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl

from lake_pipeline.contract import (
    BATCH_ID,
    CREATED_AT,
    EVENT_UUID,
    PARTITION_COLUMNS,
    SOURCE_KEY,
)
from lake_pipeline.lake import ledger
from lake_pipeline.lake.delta import Lake
from lake_pipeline.lake.storage import ObjectInfo, Storage, open_storage
from lake_pipeline.settings import EVENTS_TABLE, QUARANTINE_TABLE, Settings
from lake_pipeline.transforms.dedupe import duplicate_mask, history_window
from lake_pipeline.transforms.enrich import enrich, quarantine_frame, records_frame, to_events_arrow
from lake_pipeline.lake.reader import read_and_parse

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


def list_pending(settings: Settings, lake: Lake | None = None, prefixes: Iterable[str] | None = None) -> list[ObjectInfo]:
    """Raw objects (under ``prefixes``, or all) that the ledger doesn't hold, in key order."""
    lake = lake or Lake.from_settings(settings)
    raw = open_storage(settings.raw_uri)
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
    for plan in ledger.unfinished_plans(lake):
        summary.batches.append(run_batch(settings, lake, raw, plan, run_id, progress, resumed=True))
    wanted = sorted(set(keys))
    remaining = sorted(set(wanted) - ledger.processed_keys(lake, wanted))
    if remaining:
        plan = ledger.write_plan(lake, ledger.next_batch_id(lake), remaining)
        summary.batches.append(run_batch(settings, lake, raw, plan, run_id, progress))
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


def load_history(lake: Lake, batch: pl.DataFrame, horizon: float, batch_id: int) -> pl.DataFrame:
    """Accepted records of earlier batches that could make a row of ``batch`` a duplicate.

    Reads only the event_date partitions within the horizon of the batch's
    created_at values, and only two columns, so the cost follows the partitions
    the batch touches, not the table's history.
    """
    empty = pl.DataFrame(schema={EVENT_UUID: pl.String, CREATED_AT: pl.Float64})
    scan = lake.scan(EVENTS_TABLE)
    if scan is None or batch.height == 0:
        return empty
    dates = _dates_for(history_window(batch.get_column(CREATED_AT), horizon))
    uuids = batch.get_column(EVENT_UUID).unique()
    return (
        scan.filter(
            pl.col("event_date").is_in(dates)
            & (pl.col(BATCH_ID) != batch_id)
            & pl.col(EVENT_UUID).is_in(uuids.implode())
        )
        .select(EVENT_UUID, CREATED_AT)
        .collect()
    )


def _object_infos(raw: Storage, keys: list[str]) -> list[ObjectInfo]:
    """Sizes for balancing parse work (a local stat, or one listing of the keys' hour prefixes)."""
    wanted = set(keys)
    prefixes = sorted({k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in keys})
    found = {o.key: o for p in prefixes for o in raw.list(p) if o.key in wanted}
    return [found.get(k) or ObjectInfo(k, 0) for k in keys]


def run_batch(
    settings: Settings,
    lake: Lake,
    raw: Storage,
    plan: ledger.Plan,
    run_id: str | None = None,
    progress: Progress | None = None,
    resumed: bool = False,
) -> BatchResult:
    """Process one planned batch. Safe to repeat: every commit is idempotent per batch id."""
    started = time.perf_counter()
    result = BatchResult(batch_id=plan.batch_id, resumed=resumed)
    clock = [started]

    def lap(name: str) -> None:
        now_ = time.perf_counter()
        result.timings[name] = round(result.timings.get(name, 0.0) + now_ - clock[0], 3)
        clock[0] = now_

    keys = sorted(plan.source_keys)  # key order is arrival order
    objects = _object_infos(raw, keys)
    parsed = read_and_parse(settings.raw_uri, objects, settings.parse_workers or None)
    sizes = parsed.sizes
    if progress:
        progress(f"parsed {len(keys)} objects", sum(sizes.values()))
    lap("read_parse")

    events = enrich(records_frame(parsed.records), plan.batch_id)
    lap("enrich")
    history = load_history(lake, events, settings.dedupe_horizon_seconds, plan.batch_id)
    dup = duplicate_mask(events, history, settings.dedupe_horizon_seconds)
    kept = events.filter(~dup)
    now = datetime.now(UTC)
    quarantine = quarantine_frame(parsed.quarantine, plan.batch_id, now)
    lap("dedupe")

    # Per-object counts for the ledger.
    per_object = pl.DataFrame(
        {
            "source_key": keys,
            "object_bytes": [sizes[k] for k in keys],
            "records": [parsed.records_per_object.get(k, 0) for k in keys],
        },
        schema={"source_key": pl.String, "object_bytes": pl.Int64, "records": pl.Int64},
    )

    def counts(frame: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
        return frame.group_by(column).agg(pl.len().cast(pl.Int64).alias(name)).rename({column: "source_key"})

    per_object = (
        per_object.join(counts(kept, SOURCE_KEY, "inserted"), on="source_key", how="left")
        .join(counts(events.filter(dup), SOURCE_KEY, "duplicates"), on="source_key", how="left")
        .join(counts(pl.from_arrow(quarantine), "source_key", "quarantined"), on="source_key", how="left")
        .fill_null(0)
    )

    metadata = {"batch_id": str(plan.batch_id), "run_id": run_id or ""}
    lap("count")
    if kept.height:
        lake.append(
            EVENTS_TABLE, to_events_arrow(kept), batch_id=plan.batch_id, partition_by=PARTITION_COLUMNS, metadata=metadata
        )
    lap("write_events")
    if quarantine.num_rows:
        lake.append(QUARANTINE_TABLE, quarantine, batch_id=plan.batch_id, metadata=metadata)
    lap("write_quarantine")
    ledger.write_ledger(lake, plan.batch_id, per_object, run_id)
    lap("write_ledger")

    result.objects = len(keys)
    result.object_bytes = sum(sizes.values())
    result.records = parsed.records_read
    result.inserted = kept.height
    result.duplicates = int(dup.sum())
    result.quarantined = quarantine.num_rows
    result.event_dates = sorted({d.isoformat() for d in kept.get_column("event_date").unique().to_list()})
    result.seconds = time.perf_counter() - started
    return result
