"""Schedules: the whole-table uniqueness check, and the daily reconciliation of yesterday's hours."""

from datetime import UTC, timedelta

import dagster as dg

from lake_pipeline.defs.shared import ARRIVAL_HOUR_FORMAT, EVENTS
from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.ingest.firehose import hour_prefixes_between
from lake_pipeline.ingest.landing import list_pending

events_uniqueness_job = dg.define_asset_job(
    "events_uniqueness_job",
    selection=dg.AssetSelection.checks(
        dg.AssetCheckKey(EVENTS, "events_unique_uuid_check"), dg.AssetCheckKey(EVENTS, "events_index_full_check")
    ),
    description="Reports any event_uuid that appears twice in the whole events table (e.g. re-stamped beyond the "
    "horizon), and any disagreement between the seen-keys index and events.",
    executor_def=dg.in_process_executor,
)

events_uniqueness_schedule = dg.ScheduleDefinition(
    name="events_uniqueness_schedule",
    job=events_uniqueness_job,
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: event_uuid uniqueness over the whole events table; the seen-keys index against events.",
)


@dg.schedule(
    name="reconcile_yesterday_schedule",
    job_name="ingest_job",
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Daily: ingest anything of yesterday's 24 arrival hours that the sensor missed, as one "
        "partition-range run. Skips (no run) when the ledger already holds every object."
    ),
)
def reconcile_yesterday_schedule(context: dg.ScheduleEvaluationContext, lake: LakeResource):
    settings = lake.settings()
    day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    last = day + timedelta(hours=23)
    pending = list_pending(settings, prefixes=hour_prefixes_between(day, last))
    if not pending:
        return dg.SkipReason(f"nothing missed on {day:%Y-%m-%d}: the ledger holds every object")
    fmt = ARRIVAL_HOUR_FORMAT
    return dg.RunRequest(
        run_key=f"reconcile-{day:%Y-%m-%d}-{len(pending)}",
        tags={
            "dagster/asset_partition_range_start": day.strftime(fmt),
            "dagster/asset_partition_range_end": last.strftime(fmt),
            "lake/trigger": "reconcile",
            "lake/objects": str(len(pending)),
        },
    )
