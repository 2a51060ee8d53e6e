"""The local engine: one process drives a batch's stages (ingest/batch.py), streaming.

While the Delta writer encodes chunk i, the bulk parser (DuckDB, every core) or the
parse worker processes parse chunk i+1. Memory follows the chunk size, not the batch
size; each table still gets one commit per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa

from lake_pipeline.contract import partition_columns
from lake_pipeline.ingest.batch import (
    BatchPlan,
    Progress,
    commit_events,
    commit_index,
    commit_ledger,
    commit_quarantine,
    curate_chunk,
    fault,
    open_seen_keys,
)
from lake_pipeline.ingest.seen_index import index_rows
from lake_pipeline.ingest.counts import BatchCounts, BatchResult, Stopwatch
from lake_pipeline.ingest.landing import chunk_objects
from lake_pipeline.marts import feed
from lake_pipeline.parse.reader import ChunkParser
from lake_pipeline.settings import Settings
from lake_pipeline.tables.lake import Lake
from lake_pipeline.transforms.enrich import to_events_arrow


def run_batch(
    settings: Settings,
    lake: Lake,
    plan: BatchPlan,
    parser: ChunkParser,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Process one planned batch. Safe to repeat: every commit is idempotent per batch id."""
    clock = Stopwatch()
    counts = BatchCounts(plan.keys)
    quarantine_parts: list[pa.Table] = []
    metadata = {"batch_id": str(plan.batch_id), "run_id": run_id or ""}
    index_parts: list = []
    feed_parts: list = []  # the mart's groups of each chunk (needs the derived columns)
    seen, writes_index = open_seen_keys(lake, settings, plan.batch_id)  # one snapshot of each
    chunks = chunk_objects(list(plan.objects), settings.chunk_max_bytes)
    clock.lap("plan")

    def kept_batches() -> Iterator[pa.RecordBatch]:
        now = datetime.now(UTC)
        pending = parser.start(chunks[0]) if chunks else None
        for i in range(len(chunks)):
            parsed = pending()
            pending = parser.start(chunks[i + 1]) if i + 1 < len(chunks) else None
            counts.add_parsed(parsed)
            if progress:
                progress(f"parsed chunk {i + 1}/{len(chunks)}", sum(parsed.sizes.values()))
            clock.lap("read_parse")
            fault(settings, "after_parse")
            chunk = curate_chunk(parsed, seen, now, derive=settings.enrich)
            quarantine_parts.append(chunk.quarantine)
            counts.add_curated(chunk.inserted_per_object, chunk.duplicates_per_object, chunk.kept)
            if writes_index:
                index_parts.append(index_rows(chunk.kept, settings.dedupe_buckets, sort=False))  # commit_index sorts
            if settings.enrich and chunk.kept.height:
                feed_parts.append(feed.group_chunk(chunk.kept))
            clock.lap("curate")
            if chunk.kept.height:
                yield from to_events_arrow(chunk.kept).to_batches()
            del parsed, chunk
            clock.restart()  # the writer's time between chunks counts as write_events

    commit_events(lake, plan.batch_id, kept_batches(), partition_columns(settings.enrich), metadata)
    parser.prefetch_expected()  # every chunk of this batch is parsed: the next batch's may begin
    clock.lap("write_events")
    fault(settings, "after_events")
    if writes_index:
        commit_index(lake, plan.batch_id, index_parts, metadata)
    clock.lap("write_index")
    fault(settings, "after_index")
    feed.commit_feed(lake, plan.batch_id, feed_parts, metadata)
    clock.lap("write_feed")
    fault(settings, "after_feed")
    commit_quarantine(lake, plan.batch_id, quarantine_parts, metadata)
    clock.lap("write_quarantine")
    fault(settings, "after_quarantine")
    commit_ledger(lake, plan.batch_id, counts, run_id)
    clock.lap("write_ledger")
    fault(settings, "after_ledger")
    return counts.result(plan.batch_id, plan.resumed, clock, seen.report())

