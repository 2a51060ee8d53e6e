"""Ingest to completion: claim batches through the ledger, finish crashed ones first, and
have the engine run each. What the `events` asset, the CLI and the tests call."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from lake_pipeline.engines import local
from lake_pipeline.ingest import ledger
from lake_pipeline.ingest.batch import BatchPlan, Progress
from lake_pipeline.ingest.counts import BatchResult
from lake_pipeline.ingest.firehose import hour_prefixes_between
from lake_pipeline.ingest.landing import list_pending, objects_with_sizes, plan_batches
from lake_pipeline.ingest.rebuild import finish_unfinished_rebuilds, rebuild_hours
from lake_pipeline.parse.reader import ChunkParser
from lake_pipeline.settings import Settings
from lake_pipeline.storage.objects import open_storage
from lake_pipeline.tables.lake import Lake


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


def engine_run_batch(settings: Settings):
    """The one dispatch point: the ``run_batch`` of the engine ``settings.engine`` names."""
    if settings.engine == "ray":
        from lake_pipeline.engines import ray  # imports Ray only when asked for

        return ray.run_batch
    return local.run_batch


def chunk_parser(settings: Settings) -> ChunkParser:
    """The parser a batch of these settings uses (close it when done)."""
    return ChunkParser(settings.raw_uri, settings.parser, settings.parse_workers or None)


def _parser_for(settings: Settings, parser: ChunkParser | None):
    """``parser`` as it is (its owner closes it), or a new one for this call, closed after it."""
    return contextlib.nullcontext(parser) if parser is not None else chunk_parser(settings)


def ingest_keys(
    settings: Settings,
    keys: Iterable[str],
    sizes: dict[str, int] | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    parser: ChunkParser | None = None,
) -> IngestSummary:
    """Ingest ``keys`` exactly once: finish crashed batches first, then plan and run one
    new batch with whatever of ``keys`` the ledger doesn't hold yet.

    ``sizes``: raw bytes per key, as the listing that found them said (keys without one
    are looked up). ``parser``: a :class:`ChunkParser` to use (it may hold chunks parsed
    in advance); by default one for this call.
    """
    started = time.perf_counter()
    lake = Lake.from_settings(settings)
    raw = open_storage(settings.raw_uri)
    sizes = dict(sizes or {})
    summary = IngestSummary()
    run_batch = engine_run_batch(settings)
    with _parser_for(settings, parser) as parser:
        finish_unfinished_rebuilds(lake)
        wanted = sorted(set(keys))
        # Claiming a batch is safe with concurrent writers (see ledger.claim_plan); unfinished
        # plans (crashed, or in flight elsewhere) are finished first, so batches commit in order.
        while (claim := ledger.claim_plan(lake, wanted)).unfinished:
            for plan in claim.unfinished:
                batch = BatchPlan(plan.batch_id, tuple(objects_with_sizes(raw, plan.source_keys, sizes)), resumed=True)
                summary.batches.append(run_batch(settings, lake, batch, parser, run_id, progress))
        if claim.plan is not None:
            batch = BatchPlan(claim.plan.batch_id, tuple(objects_with_sizes(raw, claim.plan.source_keys, sizes)))
            summary.batches.append(run_batch(settings, lake, batch, parser, run_id, progress))
    summary.seconds = time.perf_counter() - started
    return summary


def ingest_hours(
    settings: Settings,
    first: datetime,
    last: datetime,
    rebuild: bool = False,
    run_id: str | None = None,
    progress: Progress | None = None,
    parser: ChunkParser | None = None,
) -> IngestSummary:
    """Ingest the objects of Firehose arrival hours ``first``..``last`` that the ledger
    doesn't hold, in bounded batches. With ``rebuild``, first remove everything that
    came from those hours, so they are processed again with the current logic.
    ``parser``: as for :func:`ingest_keys`."""
    started = time.perf_counter()
    lake = Lake.from_settings(settings)
    summary = IngestSummary()
    if rebuild:
        finish_unfinished_rebuilds(lake)
        rebuild_hours(lake, first, last)
    pending = list_pending(settings, lake, prefixes=hour_prefixes_between(first, last))
    batches = plan_batches(pending, settings.batch_max_objects, settings.batch_max_bytes) or [[]]
    with _parser_for(settings, parser) as parser:
        for batch in batches:
            part = ingest_keys(settings, [o.key for o in batch], {o.key: o.size for o in batch}, run_id=run_id,
                               progress=progress, parser=parser)
            summary.batches.extend(part.batches)
    summary.seconds = time.perf_counter() - started
    return summary
