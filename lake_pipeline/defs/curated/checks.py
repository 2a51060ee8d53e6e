"""Asset checks on `events`. Blocking where bad data would otherwise spread downstream."""


import dagster as dg

from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.defs.shared import EVENTS, check_result
from lake_pipeline.quality import rules as quality
from lake_pipeline.tables.lake import Lake


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


@dg.asset_check(asset=EVENTS, description="Every event_uuid appears exactly once in the table (whole table).")
def events_unique_uuid_check(lake: LakeResource) -> dg.AssetCheckResult:
    return check_result(quality.unique_uuid(Lake.from_settings(lake.settings())), dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=EVENTS, description="The seen-keys index holds exactly the events of every date it retains (whole index).")
def events_index_full_check(lake: LakeResource) -> dg.AssetCheckResult:
    return check_result(quality.index_agrees(Lake.from_settings(lake.settings())), dg.AssetCheckSeverity.WARN)


# The batch checks run as one step: one scope lookup, one lake handle, one step's
# bookkeeping (a step each cost ~0.1 s of Dagster overhead per micro-batch).
BATCH_CHECKS = {
    "events_required_columns_check": ("Required columns of the latest batch are non-null.", quality.required_columns),
    "events_derived_columns_check": (
        "created_datetime, event_type, event_subtype and event_date agree with event_name and created_at.",
        quality.derived_consistent,
    ),
    "events_conservation_check": (
        "records read = inserted + duplicates + quarantined, and the tables hold what the ledger says.",
        quality.conservation,
    ),
    "events_index_agrees_check": (
        "The seen-keys index (_dedupe_index) holds exactly the batch's accepted events.",
        quality.index_agrees,
    ),
}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset=EVENTS, blocking=True, description=description)
        for name, (description, _) in BATCH_CHECKS.items()
    ],
    can_subset=True,
    description="The blocking checks of a batch: required columns, derived columns, conservation, index agreement.",
)
def events_batch_checks(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    lake_ = Lake.from_settings(lake.settings()).pinned()  # the checks read each table at one version, opened once
    scope = _scope(context)
    for key in context.selected_asset_check_keys:
        yield check_result(BATCH_CHECKS[key.name][1](lake_, **scope), check_name=key.name, asset_key=key.asset_key)
