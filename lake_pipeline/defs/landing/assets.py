"""The raw landing zone: Firehose objects that Dagster observes but does not write."""


import dagster as dg

from lake_pipeline.defs.shared import RAW_LANDING_ZONE, arrival_hours


def raw_landing_zone(partitions: dg.PartitionsDefinition) -> dg.AssetSpec:
    return dg.AssetSpec(
        RAW_LANDING_ZONE,
        description=(
            "Immutable gzip/JSON objects delivered by Kinesis Data Firehose under "
            "YYYY/MM/dd/HH/<stream>-1-<timestamp>-<uuid>.gz (raw URI: LAKE_RAW_URI)."
        ),
        group_name="landing",
        kinds={"s3", "json"},
        partitions_def=partitions,
    )


@dg.definitions
def landing() -> dg.Definitions:
    # The arrival hours start where the landing zone does (settings.py: arrival_partitions_start).
    return dg.Definitions(assets=[raw_landing_zone(arrival_hours())])
