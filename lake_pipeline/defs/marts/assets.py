"""hourly_event_counts: the hourly mart downstream of `events`, kept current by each batch.

How it runs: `ingest_job` (what the landing sensor and `lake ingest` run) selects the mart
too, so each batch's run updates it right after `events` passed its blocking checks; the
update adds the batch alone (lake_pipeline/marts/hourly.py) under the MARTS_POOL pool (one
mart writer at a time; the next batch's ingest step, in the writer pool, is not held up).
The asset also carries an automation condition (eager, plus "the blocking checks of
`events` passed"), evaluated by `marts_automation_sensor`: it catches up after whatever
changed `events` outside an ingest run (a rebuild by `lake backfill --rebuild` does run
ingest_job; a manual delete does not). `lake marts` does the same from the command line.
The mart's checks (the hour-by-hour comparison with `events` reads `events`) run every 30
minutes (`hourly_event_counts_freshness_schedule`) and in `lake marts`, not in every batch.
"""

import dagster as dg

from lake_pipeline.defs.shared import EVENTS, check_result
from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.marts import hourly as marts
from lake_pipeline.tables.lake import CommitRace, Lake
from lake_pipeline.storage.uris import join
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_COUNTS_TABLE, MARTS_POOL

HOURLY_EVENT_COUNTS = dg.AssetKey(HOURLY_COUNTS_TABLE)
# Reads `events` for the hours the latest update touched.
MART_MATCH_CHECK = dg.AssetCheckKey(HOURLY_EVENT_COUNTS, "hourly_event_counts_match_events_check")
# Hours listed in the materialization metadata (the per-hour check covers these).
MAX_LISTED_HOURS = 500

# eager(), minus its partition/missing clauses (the mart is one unpartitioned table that
# recomputes whatever changed), plus: not while a blocking check of `events` is failing.
MART_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager unless a blocking check of events failed")


def _update(context: dg.AssetExecutionContext, lake: Lake) -> tuple[marts.MartUpdate, Lake]:
    """The update, done again on a new snapshot when another mart writer (an ingest with another
    Dagster instance, outside this pool) committed first: each commit names the events version
    it brings the mart to, so the loser's second look adds only what is left (often nothing).
    Also the lake it read ``events`` through: the mart only reads it, so each attempt opens it once."""
    for attempt in range(1, MART_ATTEMPTS + 1):
        reading = lake.pinned(EVENTS_TABLE)
        try:
            return marts.update_hourly_counts(reading, run_id=context.run.run_id), reading
        except CommitRace as exc:
            if attempt == MART_ATTEMPTS:
                raise
            context.log.warning(f"mart update lost a commit race ({exc}); looking again ({attempt}/{MART_ATTEMPTS})")
    raise AssertionError("unreachable")


MART_ATTEMPTS = 5



@dg.asset(
    key=HOURLY_EVENT_COUNTS,
    deps=[EVENTS],
    pool=MARTS_POOL,
    automation_condition=MART_AUTOMATION,
    group_name="marts",
    kinds={"delta", "duckdb"},
    description=(
        "Per UTC hour of created_at and event_name: events and exact unique users (distinct non-null "
        "payload.user_id). Each batch's run adds that batch (its groups from the _hourly_feed the ingest wrote, "
        "against the _hourly_event_users state)."
    ),
    metadata={"table_columns": "event_hour, event_name, event_type, event_subtype, events, unique_users"},
)
def hourly_event_counts(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    settings = lake.settings()
    lake_ = Lake.from_settings(settings)
    update, reading = _update(context, lake_)
    context.log.info(
        f"events v{update.since_version} -> v{update.events_version} ({update.mode}): {update.reason}; "
        f"{len(update.hours)} hour(s) updated, {update.rows_written} row(s) written in {update.seconds:.2f}s "
        f"({update.rows_read} new row(s) read from {update.rows_from or '-'} and {update.state_rows_read} state row(s), "
        f"{update.new_users} new user(s))"
    )
    newest = marts.newest_event_hour(reading)  # of the events version the mart was brought to
    return dg.MaterializeResult(
        metadata={
            "table_uri": dg.MetadataValue.path(join(settings.lake_uri, HOURLY_COUNTS_TABLE)),
            "events_version": dg.MetadataValue.int(update.events_version if update.events_version is not None else -1),
            "previous_events_version": dg.MetadataValue.int(update.since_version if update.since_version is not None else -1),
            "full_rebuild": dg.MetadataValue.bool(update.full_rebuild),
            "mode": dg.MetadataValue.text(update.mode),
            "new_event_rows_read": dg.MetadataValue.int(update.rows_read),
            # Where an add read the new batches' groups: the ingest's feed, or their rows in events.
            "new_rows_from": dg.MetadataValue.text(update.rows_from),
            "state_rows_read": dg.MetadataValue.int(update.state_rows_read),
            "new_users": dg.MetadataValue.int(update.new_users),
            "reason": dg.MetadataValue.text(update.reason),
            "batch_ids": dg.MetadataValue.json(update.batch_ids),
            "hours_recomputed": dg.MetadataValue.int(len(update.hours)),
            "hours": dg.MetadataValue.json(update.hours[-MAX_LISTED_HOURS:]),
            "rows_written": dg.MetadataValue.int(update.rows_written),
            "mart_version": dg.MetadataValue.int(update.mart_version if update.mart_version is not None else -1),
            "events_newest_hour": dg.MetadataValue.text(marts.hour_key(newest) if newest else ""),
            "update_seconds": dg.MetadataValue.float(round(float(update.seconds), 3)),
            "update_timings": dg.MetadataValue.json(update.timings),
        }
    )


# Materializations looked back through for the latest update that wrote hours.
LOOK_BACK = 20


def _touched_hours(context: dg.AssetCheckExecutionContext) -> list[str]:
    """The hours of the latest update that wrote any (one with nothing to do, such as `lake marts`
    right after an ingest run updated the mart, lists none)."""
    records = context.instance.fetch_materializations(HOURLY_EVENT_COUNTS, limit=LOOK_BACK).records
    for record in records:
        mat = record.asset_materialization
        hours = mat.metadata.get("hours") if mat is not None else None
        if hours is not None and hours.value:
            return list(hours.value)
    return []


@dg.asset_check(
    asset=HOURLY_EVENT_COUNTS,
    description="Its `events` sums equal the events table's row counts: per hour for the hours the latest update "
    "touched, and in total (at the events version the mart reflects).",
)
def hourly_event_counts_match_events_check(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    return check_result(marts.counts_match_events(Lake.from_settings(lake.settings()), _touched_hours(context)))


@dg.asset_check(
    asset=HOURLY_EVENT_COUNTS,
    description="The newest hour is the newest hour in `events`, and ended at most LAKE_MART_MAX_LAG_HOURS ago.",
)
def hourly_event_counts_freshness_check(lake: LakeResource):
    settings = lake.settings()
    return check_result(
        marts.freshness(Lake.from_settings(settings), settings.mart_max_lag_hours), dg.AssetCheckSeverity.WARN
    )


hourly_event_counts_job = dg.define_asset_job(
    "hourly_event_counts_job",
    selection=dg.AssetSelection.assets(HOURLY_EVENT_COUNTS),
    description="Bring hourly_event_counts up to the current `events` (what `lake marts` runs).",
    tags={"lake/kind": "marts"},
    executor_def=dg.in_process_executor,
)

mart_freshness_job = dg.define_asset_job(
    "hourly_event_counts_freshness_job",
    selection=dg.AssetSelection.checks(dg.AssetCheckKey(HOURLY_EVENT_COUNTS, "hourly_event_counts_freshness_check"),
                                       MART_MATCH_CHECK),
    description="The checks of hourly_event_counts on their own: fresh (which also warns when no batch arrives), "
    "and equal to the events table's counts for the hours the latest update touched.",
    executor_def=dg.in_process_executor,
)

mart_freshness_schedule = dg.ScheduleDefinition(
    name="hourly_event_counts_freshness_schedule",
    job=mart_freshness_job,
    cron_schedule="*/30 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 30 minutes: is the newest hour of hourly_event_counts current, and do its counts agree "
    "with events?",
)

marts_automation_sensor = dg.AutomationConditionSensorDefinition(
    "marts_automation_sensor",
    target=dg.AssetSelection.assets(HOURLY_EVENT_COUNTS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the automation condition of hourly_event_counts: a catch-up run when `events` changed "
    "outside an ingest run (each ingest run updates the mart itself).",
)
