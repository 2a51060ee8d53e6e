"""The `events` asset on the Ray engine: a real Dagster instance, `materialize`, the two-node cluster."""

from __future__ import annotations

import dagster as dg
import pytest

from lake_pipeline.defs.curated.assets import ingest_batch_asset
from lake_pipeline.defs.curated import checks
from lake_pipeline.defs.landing.assets import raw_landing_zone
from lake_pipeline.defs.resources import NO_CHUNK_PARSER, LakeResource
from lake_pipeline.defs.shared import arrival_hours
from lake_pipeline.settings import load_settings
from tests.support.records import event, write_object

pytestmark = pytest.mark.e2e  # the Ray cluster runs in other processes


def test_materialize_on_ray_carries_engine_tasks_and_nodes_and_passes_the_checks(ray_cluster_, raw_dir, lake_dir,
                                                                                 instance):
    key = write_object(raw_dir, [event("a"), event("a"), event("b", "click"), b'{"broken":'])
    settings = load_settings(raw_uri=str(raw_dir), lake_uri=str(lake_dir), engine="ray",
                             ray_address=ray_cluster_.address)
    partitions = arrival_hours(settings)
    result = dg.materialize(
        [ingest_batch_asset(partitions), raw_landing_zone(partitions),
         *[v for v in vars(checks).values() if isinstance(v, dg.AssetChecksDefinition)]],
        selection=dg.AssetSelection.assets("events", "quarantine") - dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey("events"), "events_unique_uuid_check")),
        resources={"lake": LakeResource.from_settings(settings), "chunk_parser": NO_CHUNK_PARSER},
        run_config={"ops": {"ingest_batch": {"config": {"source_keys": [key]}}}},
        instance=instance,
        raise_on_error=False,
    )
    assert result.success
    (mat,) = [m for m in result.asset_materializations_for_node("ingest_batch") if m.asset_key.path == ["events"]]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["engine"] == "ray" and meta["ray_nodes"] == 2 and meta["ray_tasks"] > 2
    assert (meta["records"], meta["inserted"], meta["duplicates"], meta["quarantined"]) == (4, 2, 1, 1)
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations), [(e.check_name, e.passed) for e in evaluations]
