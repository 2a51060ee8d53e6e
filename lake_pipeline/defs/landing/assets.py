"""The raw landing zone: Firehose objects that Dagster observes but does not write."""


import dagster as dg

from lake_pipeline.defs.shared import ARRIVAL_HOURS, RAW_LANDING_ZONE

raw_landing_zone = dg.AssetSpec(
    RAW_LANDING_ZONE,
    description=(
        "Immutable gzip/JSON objects delivered by Kinesis Data Firehose under "
        "YYYY/MM/dd/HH/<stream>-1-<timestamp>-<uuid>.gz (raw URI: LAKE_RAW_URI)."
    ),
    group_name="landing",
    kinds={"s3", "json"},
    partitions_def=ARRIVAL_HOURS,
)
