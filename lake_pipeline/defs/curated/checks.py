"""Asset checks on `events`. Blocking where bad data would otherwise spread downstream."""


import dagster as dg

from lake_pipeline.defs.curated.assets import EVENTS
from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.lake import quality
from lake_pipeline.lake.delta import Lake


def _scope(context: dg.AssetCheckExecutionContext) -> dict:
    """The batches (and their event_date partitions) of the latest `events` materialization.
    Empty: check the whole table."""
    event = context.instance.get_latest_materialization_event(EVENTS)
    if event is None or event.asset_materialization is None:
        return {}
    meta = event.asset_materialization.metadata
    if "batch_ids" not in meta:
        return {}
    scope = {"batch_ids": list(meta["batch_ids"].value)}
    if "event_dates" in meta:
        scope["dates"] = list(meta["event_dates"].value)
    return scope


def _result(outcome: quality.CheckOutcome, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata=outcome.metadata,
    )


@dg.asset_check(asset=EVENTS, description="Every event_uuid appears exactly once in the table (whole table).")
def events_unique_uuid_check(lake: LakeResource) -> dg.AssetCheckResult:
    return _result(quality.unique_uuid(Lake.from_settings(lake.settings())), dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=EVENTS, blocking=True, description="Required columns of the latest batch are non-null.")
def events_required_columns_check(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    return _result(quality.required_columns(Lake.from_settings(lake.settings()), **_scope(context)))


@dg.asset_check(
    asset=EVENTS,
    blocking=True,
    description="created_datetime, event_type, event_subtype and event_date agree with event_name and created_at.",
)
def events_derived_columns_check(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    return _result(quality.derived_consistent(Lake.from_settings(lake.settings()), **_scope(context)))


@dg.asset_check(
    asset=EVENTS,
    blocking=True,
    description="records read = inserted + duplicates + quarantined, and the tables hold what the ledger says.",
)
def events_conservation_check(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    return _result(quality.conservation(Lake.from_settings(lake.settings()), **_scope(context)))
