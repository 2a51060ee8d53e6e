"""The curated tables, written together by one micro-batch run."""


from datetime import timedelta
from typing import Optional

import dagster as dg

from lake_pipeline.defs.marts.assets import HOURLY_EVENT_COUNTS
from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.defs.shared import EVENTS, QUARANTINE, RAW_LANDING_ZONE, arrival_hours
from lake_pipeline.engines.run import IngestSummary, ingest_hours, ingest_keys
from lake_pipeline.ingest.landing import list_pending, plan_batches
from lake_pipeline.parse.reader import ChunkParser
from lake_pipeline.storage.uris import join
from lake_pipeline.settings import EVENTS_TABLE, QUARANTINE_TABLE, WRITER_POOL

class IngestConfig(dg.Config):
    """What this run ingests.

    - ``source_keys`` given: exactly those raw objects (what the sensor and `lake ingest` pass),
      with ``source_sizes`` (their raw bytes, from the listing that found them; optional).
    - otherwise, in a partitioned run (a backfill, or the reconciliation schedule): every
      object of the run's arrival hours that the ledger doesn't hold, in bounded batches;
      with ``rebuild``, everything that came from those hours is replaced.
    - otherwise: the oldest pending objects, one batch's worth.
    """

    source_keys: list[str] = []
    source_sizes: list[int] = []
    rebuild: bool = False


def _metadata(summary: IngestSummary, table_uri: str, engine: str) -> dict[str, dg.MetadataValue]:
    return {
        "table_uri": dg.MetadataValue.path(table_uri),
        "batch_ids": dg.MetadataValue.json(summary.batch_ids),
        "event_dates": dg.MetadataValue.json(sorted({d for b in summary.batches for d in b.event_dates})),
        "objects": dg.MetadataValue.int(summary.total("objects")),
        "records": dg.MetadataValue.int(summary.total("records")),
        "inserted": dg.MetadataValue.int(summary.total("inserted")),
        "duplicates": dg.MetadataValue.int(summary.total("duplicates")),
        "quarantined": dg.MetadataValue.int(summary.total("quarantined")),
        # The batch alone (its stages in this run), not the process: `lake ingest`'s last line
        # prints these two under the same names, next to its process_* figures.
        "batch_seconds": dg.MetadataValue.float(round(summary.seconds, 3)),
        "batch_records_per_second": dg.MetadataValue.float(round(summary.events_per_second, 1)),
        "resumed_batches": dg.MetadataValue.int(sum(1 for b in summary.batches if b.resumed)),
        # Dedupe: the seen-keys index's rows read, or "events" while the index is not built.
        "dedupe_source": dg.MetadataValue.text(",".join(sorted({b.dedupe_source for b in summary.batches})) or "-"),
        "dedupe_rows_read": dg.MetadataValue.int(summary.total("dedupe_rows_read")),
        # Of those, the rows read from closed dates' key files: they follow the late records, not the day's size.
        "dedupe_key_file_rows_read": dg.MetadataValue.int(summary.total("dedupe_key_file_rows_read")),
        "late_beyond_index": dg.MetadataValue.int(summary.total("late_beyond_index")),
        # Who ran the batches (LAKE_ENGINE); on Ray, how many tasks and the cluster's alive nodes.
        "engine": dg.MetadataValue.text(engine),
        "ray_tasks": dg.MetadataValue.int(summary.total("tasks")),
        "ray_nodes": dg.MetadataValue.int(max((b.nodes for b in summary.batches if b.engine == "ray"), default=0)),
    }


def ingest_batch_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`events` and `quarantine`, written together by one step, partitioned by ``partitions``
    (the arrival hours, which depend on settings: built with the definitions, not at import)."""
    return dg.multi_asset(
        specs=[
            dg.AssetSpec(
                EVENTS,
                deps=[RAW_LANDING_ZONE],
                description="Curated events: validated, enriched, deduplicated; Delta, partitioned by event_date/event_type.",
                group_name="curated",
                kinds={"delta", "polars"},
                metadata={"partition_columns": "event_date, event_type"},
            ),
            dg.AssetSpec(
                QUARANTINE,
                deps=[RAW_LANDING_ZONE],
                description="Records and objects that broke the data contract, with the reason and source key.",
                group_name="curated",
                kinds={"delta"},
            ),
        ],
        name="ingest_batch",
        pool=WRITER_POOL,
        can_subset=False,
        partitions_def=partitions,
        # A backfill of many hours is one run: batches inside it are bounded anyway.
        backfill_policy=dg.BackfillPolicy.single_run(),
    )(ingest_batch)


def ingest_batch(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    lake: LakeResource,
    chunk_parser: dg.ResourceParam[Optional[ChunkParser]],
):
    """Parse, validate, enrich and deduplicate one micro-batch of raw objects, then commit it."""
    settings = lake.settings()
    keys = list(config.source_keys)
    sizes = dict(zip(keys, config.source_sizes)) if len(config.source_sizes) == len(keys) else {}
    # The CLI hands over the parser that began parsing this batch while Dagster started.
    parser = chunk_parser if chunk_parser is not None and chunk_parser.raw_uri == settings.raw_uri else None
    partitioned = context.has_partition_key or context.has_partition_key_range
    if config.rebuild and (keys or not partitioned):
        raise dg.Failure("rebuild needs a partitioned run (arrival hours) and no source_keys")
    if not keys and partitioned:
        window = context.partition_time_window
        first, last = window.start, window.end - timedelta(hours=1)
        context.log.info(f"{'rebuilding' if config.rebuild else 'ingesting'} arrival hours {first:%Y-%m-%dT%H}..{last:%Y-%m-%dT%H}")
        summary = ingest_hours(settings, first, last, rebuild=config.rebuild, run_id=context.run.run_id,
                               parser=parser)
    else:
        if not keys:
            pending = list_pending(settings)
            batches = plan_batches(pending, settings.batch_max_objects, settings.batch_max_bytes)
            keys = [o.key for o in batches[0]] if batches else []
            sizes = {o.key: o.size for o in batches[0]} if batches else {}
        context.log.info(f"ingesting {len(keys)} raw object(s) from {settings.raw_uri}")
        waiting = parser.prefetched if parser is not None else 0
        taken = parser.prefetches_taken if parser is not None else 0
        summary = ingest_keys(settings, keys, sizes, run_id=context.run.run_id, parser=parser)
        if waiting:
            context.log.info(f"{parser.prefetches_taken - taken} of {waiting} chunk(s) parsed ahead of the run "
                             "(while Dagster started, or the batch before finished) were used")
    for b in summary.batches:
        context.log.info(
            f"batch {b.batch_id}{' (resumed)' if b.resumed else ''}: {b.objects} objects, {b.records} records, "
            f"{b.inserted} inserted, {b.duplicates} duplicates, {b.quarantined} quarantined in {b.seconds:.2f}s "
            f"on {b.engine}{f' ({b.tasks} tasks, {b.nodes} nodes)' if b.engine == 'ray' else ''} "
            f"({', '.join(f'{k} {v:.2f}s' for k, v in b.timings.items())})"
        )
    yield dg.MaterializeResult(asset_key=EVENTS, metadata=_metadata(summary, join(settings.lake_uri, EVENTS_TABLE), settings.engine))
    yield dg.MaterializeResult(
        asset_key=QUARANTINE, metadata=_metadata(summary, join(settings.lake_uri, QUARANTINE_TABLE), settings.engine)
    )


# The hourly mart is brought up to date in the batch's own run, right after `events` passed its
# blocking checks (its cost follows the batch: lake_pipeline/marts/hourly.py).
INGEST_SELECTION = dg.AssetSelection.assets(EVENTS, QUARANTINE, HOURLY_EVENT_COUNTS) - (
    # The whole-table checks (uniqueness, the full index agreement) and the mart's checks run on
    # their own schedules, not in every batch.
    dg.AssetSelection.checks(dg.AssetCheckKey(EVENTS, "events_unique_uuid_check"),
                             dg.AssetCheckKey(EVENTS, "events_index_full_check"))
    | dg.AssetSelection.checks_for_assets(HOURLY_EVENT_COUNTS)
)

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=INGEST_SELECTION,
    description="One micro-batch of raw Firehose objects into the curated tables, then the hourly mart "
    "(what the sensor and `lake ingest` run).",
    tags={"lake/kind": "ingest"},
    # One process per run: the step and its checks share it (no subprocess start-up per check).
    executor_def=dg.in_process_executor,
)


@dg.definitions
def curated() -> dg.Definitions:
    # The arrival hours start where the landing zone does (settings.py: arrival_partitions_start).
    return dg.Definitions(assets=[ingest_batch_asset(arrival_hours())], jobs=[ingest_job])
