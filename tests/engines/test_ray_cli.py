"""`lake ingest --engine ray`: the option, and an unreachable cluster as one clear error."""

from __future__ import annotations

import pytest

from lake_pipeline.ingest.ledger import unfinished_plans
from lake_pipeline.settings import EVENTS_TABLE
from tests.support.cli import invoke, summary
from tests.support.ray_cluster import free_port
from tests.support.records import event, write_object


def test_unreachable_cluster_fails_with_one_line_naming_the_address(settings, raw_dir, lake_dir, lake):
    write_object(raw_dir, [event("a"), event("b")])
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = invoke("ingest", "--raw", str(raw_dir), "--lake", str(lake_dir), "--engine", "ray", "--quiet",
                    env={"LAKE_RAY_ADDRESS": address})
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Ray cluster at " + address), lines
    assert "LAKE_RAY_ADDRESS" in lines[0]
    assert not lake.exists(EVENTS_TABLE)
    assert len(unfinished_plans(lake)) == 1  # the next ingest finishes the planned batch


def test_engine_option_rejects_unknown_engines(raw_dir, lake_dir):
    result = invoke("ingest", "--raw", str(raw_dir), "--lake", str(lake_dir), "--engine", "spark")
    assert result.exit_code == 2 and "'spark' is not one of 'local', 'ray'" in result.stderr


@pytest.mark.e2e
def test_engine_option_runs_the_batch_on_the_cluster(ray_cluster_, raw_dir, lake_dir):
    write_object(raw_dir, [event("a"), event("a"), event("b"), b'{"broken":'])
    result = invoke("ingest", "--raw", str(raw_dir), "--lake", str(lake_dir), "--engine", "ray", "--quiet",
                    env={"LAKE_RAY_ADDRESS": ray_cluster_.address})
    assert result.exit_code == 0, result.stderr
    assert {k: summary(result.stdout)[k] for k in ("records", "inserted", "duplicates", "quarantined")} == {
        "records": 4, "inserted": 2, "duplicates": 1, "quarantined": 1}
