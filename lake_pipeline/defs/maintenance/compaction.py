"""Compaction and vacuum of `events`: the assets, their checks, the job and its schedule.

`events_compaction` is a graph: `plan_events_compaction` lists the partition groups
micro-batches touched since the last compaction (lake_pipeline/maintenance/compaction.py),
then one `compact_partition_group` step per group rewrites that group in one commit. Each
such step claims the `lake_writer` pool, like ingest, and only for its own commit;
its priority is below ingest's, so when a slot frees up a waiting ingest step gets
it first. Ingest therefore never waits longer than one compaction commit.

Blocking checks on `events_compaction` (contents unchanged, files per partition
within the bound) gate `events_vacuum`: files are only deleted after the rewrite
was verified, so a bad compaction can still be undone by time travel.
"""

import time

import dagster as dg

from lake_pipeline.defs.shared import EVENTS, check_result
from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.maintenance import compaction
from lake_pipeline.tables.lake import Lake
from lake_pipeline.storage.uris import join
from lake_pipeline.ingest import seen_index
from lake_pipeline.marts import users
from lake_pipeline.marts.hourly import MART_APP_ID
from lake_pipeline.settings import DEDUPE_INDEX_TABLE, EVENTS_TABLE, HOURLY_COUNTS_TABLE, HOURLY_USERS_TABLE, MARTS_POOL, WRITER_POOL
from lake_pipeline.tables.lake import CommitRace

EVENTS_COMPACTION = dg.AssetKey("events_compaction")
EVENTS_VACUUM = dg.AssetKey("events_vacuum")
DEDUPE_INDEX_MAINTENANCE = dg.AssetKey("dedupe_index_maintenance")
MART_STATE_MAINTENANCE = dg.AssetKey("mart_state_maintenance")
BOOKKEEPING_COMPACTION = dg.AssetKey("bookkeeping_compaction")
# Dagster gives a freed pool slot to the pending step with the highest priority: ingest
# steps (priority 0) go before the next compaction step.
YIELD_TO_INGEST = {"dagster/priority": "-1"}


class CompactionConfig(dg.Config):
    """Override the settings for one run (0 = LAKE_COMPACT_TARGET_FILE_BYTES / LAKE_COMPACT_GROUP_MAX_BYTES)."""

    target_file_bytes: int = 0
    group_max_bytes: int = 0


class MaintenanceConfig(dg.Config):
    """vacuum=False (`lake compact --no-vacuum`): rewrite, but delete no file."""

    vacuum: bool = True


class VacuumConfig(dg.Config):
    """retention_hours -1 = LAKE_VACUUM_RETENTION_HOURS. A retention shorter than the table's
    minimum (7 days) needs enforce_retention_duration=False (`lake compact --unsafe-retention`)."""

    retention_hours: int = -1
    enforce_retention_duration: bool = True


@dg.op(ins={"events": dg.In(dg.Nothing)}, out=dg.DynamicOut(dict))
def plan_events_compaction(context: dg.OpExecutionContext, config: CompactionConfig, lake: LakeResource):
    """List the partitions with small files that fit together, grouped per event_date."""
    settings = lake.settings()
    target = config.target_file_bytes or settings.compact_target_file_bytes
    group_max = config.group_max_bytes or settings.compact_group_max_bytes
    plan = compaction.plan_compaction(Lake.from_settings(settings), target, group_max)
    context.log.info(
        f"events v{plan.version}: {plan.files} files in {plan.partitions} partitions; "
        f"{plan.candidate_files} small files in {plan.candidate_partitions} partitions to compact "
        f"in {len(plan.groups)} group(s) (target {target} bytes)"
    )
    if not plan.groups:  # one no-op item, so the rest of the graph (and the checks) still run
        yield dg.DynamicOutput({"target": target, "group": None}, mapping_key="nothing_to_do")
    for i, group in enumerate(plan.groups):
        key = f"{group.event_date.replace('-', '_')}_{i}"
        yield dg.DynamicOutput({"target": target, "group": group.as_dict()}, mapping_key=key)


@dg.op(pool=WRITER_POOL, tags=YIELD_TO_INGEST)
def compact_partition_group(context: dg.OpExecutionContext, item: dict, lake: LakeResource) -> dict:
    """Rewrite one group's small files in one commit, holding the writer pool for that commit only."""
    if item["group"] is None:
        return {"target": item["target"], "result": None}
    group = compaction.PartitionGroup.from_dict(item["group"])
    result = compaction.compact_group(Lake.from_settings(lake.settings()), group, item["target"], context.run.run_id)
    context.log.info(
        f"{group.event_date} ({len(group.event_types)} type(s)): {result.files_before} -> {result.files_after} files, "
        f"{result.bytes_before} -> {result.bytes_after} bytes, commit v{result.version_after} in {result.seconds:.2f}s"
    )
    return {"target": item["target"], "result": result.as_dict()}


@dg.op(out=dg.Out(dg.Nothing))
def summarize_events_compaction(context: dg.OpExecutionContext, items: list[dict], lake: LakeResource) -> None:
    settings = lake.settings()
    lake_ = Lake.from_settings(settings)
    results = [compaction.GroupResult.from_dict(i["result"]) for i in items if i["result"] is not None]
    target = items[0]["target"] if items else settings.compact_target_file_bytes
    table = compaction.table_file_stats(lake_)
    context.add_output_metadata(
        {
            "table_uri": dg.MetadataValue.path(join(settings.lake_uri, EVENTS_TABLE)),
            "target_file_bytes": dg.MetadataValue.int(target),
            "groups": dg.MetadataValue.json([r.as_dict() for r in results]),
            "commits": dg.MetadataValue.int(sum(1 for r in results if r.version_after is not None)),
            "partitions_compacted": dg.MetadataValue.int(sum(len(r.event_types) for r in results)),
            "files_before": dg.MetadataValue.int(sum(r.files_before for r in results)),
            "files_after": dg.MetadataValue.int(sum(r.files_after for r in results)),
            "bytes_before": dg.MetadataValue.int(sum(r.bytes_before for r in results)),
            "bytes_after": dg.MetadataValue.int(sum(r.bytes_after for r in results)),
            "compaction_seconds": dg.MetadataValue.float(round(float(sum(r.seconds for r in results)), 3)),
            "table_partitions": dg.MetadataValue.int(table["partitions"]),
            "table_files": dg.MetadataValue.int(table["files"]),
            "max_files_per_partition": dg.MetadataValue.int(table["max_files_per_partition"]),
        }
    )


@dg.graph_asset(
    key=EVENTS_COMPACTION,
    ins={"events": dg.AssetIn(EVENTS, dagster_type=dg.Nothing)},
    group_name="maintenance",
    kinds={"delta"},
    description=(
        "Compaction of `events`: the partitions micro-batches touched since the last compaction, bin-packed to "
        "LAKE_COMPACT_TARGET_FILE_BYTES, one commit per partition group (contents unchanged)."
    ),
)
def events_compaction(events):
    items = plan_events_compaction(events).map(compact_partition_group)
    return summarize_events_compaction(items.collect())


def _group_results(context: dg.AssetCheckExecutionContext) -> tuple[list[compaction.GroupResult], int] | None:
    event = context.instance.get_latest_materialization_event(EVENTS_COMPACTION)
    if event is None or event.asset_materialization is None:
        return None
    meta = event.asset_materialization.metadata
    results = [compaction.GroupResult.from_dict(d) for d in meta["groups"].value]
    return results, int(meta["target_file_bytes"].value)


@dg.asset_check(
    asset=EVENTS_COMPACTION,
    blocking=True,
    description="Each compaction commit left the rows and the event_uuid set of its partitions unchanged "
    "(row count and hash sums, before vs after, by Delta time travel).",
)
def events_compaction_parity_check(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    found = _group_results(context)
    if found is None:
        return dg.AssetCheckResult(passed=True, description="no compaction yet")
    return check_result(compaction.check_parity(Lake.from_settings(lake.settings()), found[0]))


@dg.asset_check(
    asset=EVENTS_COMPACTION,
    blocking=True,
    description="After compaction every compacted partition holds at most floor(2*bytes/target)+1 files, "
    "and exactly one when it is smaller than the target size.",
)
def events_compaction_file_count_check(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    found = _group_results(context)
    if found is None:
        return dg.AssetCheckResult(passed=True, description="no compaction yet")
    results, target = found
    return check_result(compaction.check_file_bound(Lake.from_settings(lake.settings()), results, target))


@dg.asset(
    key=EVENTS_VACUUM,
    deps=[EVENTS_COMPACTION],
    pool=WRITER_POOL,
    op_tags=YIELD_TO_INGEST,
    group_name="maintenance",
    kinds={"delta"},
    description="Deletes files of `events` that no version within LAKE_VACUUM_RETENTION_HOURS references "
    "(compacted-away files, and files of writers that crashed before their commit).",
)
def events_vacuum(context: dg.AssetExecutionContext, config: VacuumConfig, lake: LakeResource):
    settings = lake.settings()
    hours = config.retention_hours if config.retention_hours >= 0 else settings.vacuum_retention_hours
    result = compaction.vacuum(Lake.from_settings(settings), hours, config.enforce_retention_duration)
    context.log.info(f"vacuum (retention {hours} h, enforced={result.enforced}): {result.files_deleted} file(s) deleted")
    return dg.MaterializeResult(
        metadata={
            "files_deleted": dg.MetadataValue.int(result.files_deleted),
            "retention_hours": dg.MetadataValue.int(hours),
            "retention_enforced": dg.MetadataValue.bool(result.enforced),
            "vacuum_seconds": dg.MetadataValue.float(round(float(result.seconds), 3)),
        }
    )


@dg.asset(
    key=DEDUPE_INDEX_MAINTENANCE,
    deps=[EVENTS_COMPACTION],
    pool=WRITER_POOL,
    op_tags=YIELD_TO_INGEST,
    group_name="maintenance",
    kinds={"delta"},
    description="The seen-keys index (_dedupe_index): drops the dates older than LAKE_DEDUPE_RETENTION_DAYS, then "
    "rewrites each date that micro-batches left in several files as one sorted file set (same rows): by key once "
    "the date is past every current record's horizon, by hour and key before.",
)
def dedupe_index_maintenance(context: dg.AssetExecutionContext, lake: LakeResource):
    settings = lake.settings()
    lake_ = Lake.from_settings(settings)
    started = time.perf_counter()
    expired = seen_index.drop_expired(lake_, settings.dedupe_retention_days)
    done = seen_index.compact_index(lake_, settings.dedupe_horizon_seconds)
    context.log.info(f"seen-keys index: {expired} expired row(s) dropped, {done['dates']} date(s) compacted "
                     f"({done['files_removed']} files rewritten)")
    return dg.MaterializeResult(
        metadata={
            "table_uri": dg.MetadataValue.path(join(settings.lake_uri, DEDUPE_INDEX_TABLE)),
            "expired_rows_dropped": dg.MetadataValue.int(expired),
            "dates_compacted": dg.MetadataValue.int(done["dates"]),
            "files_rewritten": dg.MetadataValue.int(done["files_removed"]),
            "retention_days": dg.MetadataValue.int(settings.dedupe_retention_days),
            "index_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
        }
    )


@dg.asset(
    key=MART_STATE_MAINTENANCE,
    deps=[dg.AssetKey(HOURLY_COUNTS_TABLE)],
    pool=MARTS_POOL,
    group_name="maintenance",
    kinds={"delta"},
    description="The hourly mart's users state (_hourly_event_users): rewrites each date whose rows since its "
    "last full rewrite reached 1/16 of it as one sorted level-0 file set, and merges the small files of the "
    "others (the batches only merge small files, so that no batch rewrites a whole date); then writes the key "
    "files (_key_files/) of the dates within LAKE_DEDUPE_RETENTION_DAYS that lack one, which a late event's "
    "look-up reads instead of the date's Parquet.",
)
def mart_state_maintenance(context: dg.AssetExecutionContext, config: MaintenanceConfig, lake: LakeResource):
    settings = lake.settings()
    started = time.perf_counter()
    try:
        done = users.compact_state(Lake.from_settings(settings), MART_APP_ID,
                                   key_file_days=settings.dedupe_retention_days, vacuum=config.vacuum)
        raced = False
    except CommitRace as exc:  # a mart update committed in between: the next compaction does the rest
        context.log.warning(f"mart state compaction stopped: {exc}")
        done, raced = dict.fromkeys(("dates_rewritten", "dates_merged", "rows_rewritten", "key_files_written"), 0), True
    context.log.info(f"mart users state: {done['dates_rewritten']} date(s) rewritten in full, "
                     f"{done['dates_merged']} merged ({done['rows_rewritten']} rows rewritten), "
                     f"{done['key_files_written']} key file(s) written")
    return dg.MaterializeResult(
        metadata={
            "table_uri": dg.MetadataValue.path(join(settings.lake_uri, HOURLY_USERS_TABLE)),
            **{k: dg.MetadataValue.int(v) for k, v in done.items()},
            "stopped_by_a_mart_update": dg.MetadataValue.bool(raced),
            "state_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
        }
    )


@dg.asset(
    key=BOOKKEEPING_COMPACTION,
    deps=[EVENTS],
    pool=WRITER_POOL,
    op_tags=YIELD_TO_INGEST,
    group_name="maintenance",
    kinds={"delta"},
    description="Bin-packs the small files every batch appends to _ingest_ledger, _ingest_plans and quarantine "
    "(each batch's claim scans the first two: after a day of one-minute batches it took 0.2-0.4 s, 0.04 s "
    "compacted), then vacuums them with their own retention.",
)
def bookkeeping_compaction(context: dg.AssetExecutionContext, config: MaintenanceConfig, lake: LakeResource):
    settings = lake.settings()
    started = time.perf_counter()
    done = compaction.compact_bookkeeping(Lake.from_settings(settings), settings.compact_target_file_bytes,
                                          vacuum=config.vacuum)
    context.log.info("bookkeeping tables: " + (", ".join(f"{k} {v} file(s) compacted" for k, v in done.items())
                                               or "nothing to compact"))
    return dg.MaterializeResult(
        metadata={
            **{f"{name.lstrip('_')}_files_compacted": dg.MetadataValue.int(done.get(name, 0))
               for name in compaction.BOOKKEEPING_TABLES},
            "bookkeeping_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
        }
    )


events_compaction_job = dg.define_asset_job(
    "events_compaction_job",
    selection=dg.AssetSelection.assets(EVENTS_COMPACTION, EVENTS_VACUUM, DEDUPE_INDEX_MAINTENANCE,
                                       MART_STATE_MAINTENANCE, BOOKKEEPING_COMPACTION),
    description="Compacts the events partitions micro-batches touched since the last compaction, checks the "
    "result, then vacuums; compacts the seen-keys index, the mart's users state and the bookkeeping tables "
    "(what the schedule and `lake compact` run).",
    tags={"lake/kind": "maintenance"},
    executor_def=dg.in_process_executor,
)

events_compaction_schedule = dg.ScheduleDefinition(
    name="events_compaction_schedule",
    job=events_compaction_job,
    cron_schedule=f"{compaction.SCHEDULE_MINUTE} * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: compact the events partitions micro-batches touched, verify, vacuum.",
)
