"""Scheduled whole-table checks."""

import dagster as dg

from lake_pipeline.defs.curated.assets import EVENTS

events_uniqueness_job = dg.define_asset_job(
    "events_uniqueness_job",
    selection=dg.AssetSelection.checks(dg.AssetCheckKey(EVENTS, "events_unique_uuid_check")),
    description="Reports any event_uuid that appears twice in the whole events table (e.g. re-stamped beyond the horizon).",
    executor_def=dg.in_process_executor,
)

events_uniqueness_schedule = dg.ScheduleDefinition(
    name="events_uniqueness_schedule",
    job=events_uniqueness_job,
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: event_uuid uniqueness over the whole events table.",
)
