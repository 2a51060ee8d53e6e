"""What the Dagster wiring shares: asset keys, the arrival-hour partitions, run tags of a
batch, and a check outcome as Dagster's result. No definitions live here."""

import dagster as dg

from lake_pipeline.ingest.firehose import key_hour
from lake_pipeline.quality.rules import CheckOutcome
from lake_pipeline.settings import ARRIVAL_PARTITIONS_START, EVENTS_TABLE, QUARANTINE_TABLE

RAW_LANDING_ZONE = dg.AssetKey("raw_landing_zone")
EVENTS = dg.AssetKey(EVENTS_TABLE)
QUARANTINE = dg.AssetKey(QUARANTINE_TABLE)

# Dagster partitions = Firehose arrival hours (the YYYY/MM/dd/HH/ key prefix), not event time:
# materializing hour H ingests the raw objects that arrived in H.
ARRIVAL_HOURS = dg.HourlyPartitionsDefinition(start_date=ARRIVAL_PARTITIONS_START, timezone="UTC")


def batch_run_tags(keys: list[str]) -> dict[str, str]:
    """Run tags naming the arrival-hour partitions a batch of raw keys belongs to.

    Keys outside the Firehose layout have no arrival hour, and keys older than the first
    partition have no partition; such a batch runs unpartitioned.
    """
    hours = [key_hour(k) for k in keys]
    if not hours or any(h is None or h < ARRIVAL_HOURS.start for h in hours):
        return {}  # outside the layout, or older than the first partition: an unpartitioned run
    fmt = ARRIVAL_HOURS.fmt
    return {
        "dagster/asset_partition_range_start": min(hours).strftime(fmt),
        "dagster/asset_partition_range_end": max(hours).strftime(fmt),
    }


def check_result(outcome: CheckOutcome, severity=dg.AssetCheckSeverity.ERROR, **key) -> dg.AssetCheckResult:
    """A check's outcome (quality/rules.py, maintenance/compaction.py, marts/hourly.py) as Dagster's result;
    ``key`` names the check (``check_name``, ``asset_key``) in a multi-asset check."""
    return dg.AssetCheckResult(
        **key,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata=outcome.metadata,
    )
