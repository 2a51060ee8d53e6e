"""firehose_landing_sensor: turn newly landed Firehose objects into micro-batch runs."""


import hashlib
import json
from datetime import UTC, datetime

import dagster as dg

from lake_pipeline.defs.curated.assets import ingest_job
from lake_pipeline.defs.shared import arrival_hours, batch_run_tags
from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.storage import aws
from lake_pipeline.ingest.firehose import recent_hour_prefixes
from lake_pipeline.ingest.landing import list_pending, plan_batches
from lake_pipeline.storage.objects import open_storage
from lake_pipeline.storage.uris import is_s3
from lake_pipeline.settings import load_settings


def _run_key(keys: list[str]) -> str:
    return "batch-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]


def landing_sensor_tick(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    s3=None,
    partitions: dg.TimeWindowPartitionsDefinition | None = None,
) -> dg.SensorResult:
    """One tick. ``s3``: dagster-aws's S3Resource, whose client lists an ``s3://`` landing zone.
    ``partitions``: the code location's arrival hours (the runs' partition tags must be among them)."""
    settings = lake.settings()
    state = json.loads(context.cursor) if context.cursor else {}
    tick = int(state.get("tick", 0)) + 1
    # Every Nth tick (and the first) lists the whole landing zone, so nothing the
    # recent-hours listing missed (late uploads, downtime) is left behind.
    catch_up = tick == 1 or tick % max(1, settings.sensor_catchup_every_ticks) == 0
    prefixes = None if catch_up else recent_hour_prefixes(datetime.now(UTC), settings.sensor_lookback_hours)
    client = s3.get_client() if s3 is not None and is_s3(settings.raw_uri) else None
    pending = list_pending(settings, prefixes=prefixes, raw=open_storage(settings.raw_uri, s3_client=client))
    batches = plan_batches(pending, settings.batch_max_objects, settings.batch_max_bytes)
    requests = []
    for batch in batches:
        keys = [o.key for o in batch]
        requests.append(
            dg.RunRequest(
                run_key=_run_key(keys),
                run_config={"ops": {"ingest_batch": {"config": {"source_keys": keys,
                                                                "source_sizes": [o.size for o in batch]}}}},
                tags={"lake/objects": str(len(keys)), "lake/first_key": keys[0], **batch_run_tags(keys, partitions)},
            )
        )
    scope = "catch-up scan of the whole landing zone" if catch_up else f"{len(prefixes)} recent hour prefixes"
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"tick": tick, "last_key": pending[-1].key if pending else state.get("last_key")}),
        skip_reason=None if requests else f"no new raw objects ({scope})",
    )


@dg.definitions
def sensors() -> dg.Definitions:
    settings = load_settings()
    partitions = arrival_hours(settings)  # the same start as the assets' (defs/curated/assets.py)

    @dg.sensor(
        name="firehose_landing_sensor",
        job=ingest_job,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Lists the recent Firehose hour prefixes (plus a periodic catch-up scan), skips objects the "
            "ingest ledger already holds, and requests one run per bounded micro-batch."
        ),
    )
    def firehose_landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
        # dagster-aws's S3 resource from the standard AWS environment (AWS_ENDPOINT_URL, region, credentials).
        return landing_sensor_tick(context, lake, aws.s3_resource(), partitions)

    return dg.Definitions(sensors=[firehose_landing_sensor])
