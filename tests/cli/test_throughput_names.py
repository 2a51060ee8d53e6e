"""One name per throughput figure: `lake ingest`'s last line and the UI's metadata agree on the
batch's (batch_seconds, batch_records_per_second); the process's figures are process_*."""

from __future__ import annotations

import pytest

import re

import dagster as dg

from tests.support.cli import invoke
from tests.support.runs import synthetic_landing_zone


def _fields(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


@pytest.mark.heavy
def test_the_cli_line_and_the_materialization_metadata_name_the_batch_figures_alike(tmp_path, monkeypatch):
    synthetic_landing_zone(tmp_path / "raw", 1200, seed=5, object_seconds=600)  # 6 objects
    home = tmp_path / "home"
    result = invoke("ingest", "--raw", "raw", "--lake", "lake", "--quiet", cwd=tmp_path,
                    env={"DAGSTER_HOME": str(home), "LAKE_BATCH_MAX_OBJECTS": "4"})  # two batches, two runs
    assert result.exit_code == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    cli = _fields(line)
    assert list(cli)[:5] == ["objects", "records", "inserted", "duplicates", "quarantined"]
    assert {"process_seconds", "process_records_per_second", "batch_seconds", "batch_records_per_second"} <= cli.keys()
    assert "events/s" not in line
    assert cli["process_seconds"] > cli["batch_seconds"] > 0  # the process includes Dagster's start-up

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        events = instance.fetch_materializations(dg.AssetKey("events"), limit=10).records
    metadata = [r.asset_materialization.metadata for r in events]
    assert len(metadata) == 2 and all("events_per_second" not in m for m in metadata)
    batch_seconds = sum(m["batch_seconds"].value for m in metadata)
    records = sum(m["records"].value for m in metadata)
    assert records == cli["records"]
    assert abs(batch_seconds - cli["batch_seconds"]) <= 0.01
    for m in metadata:  # each run's figure is its own batch's records over its own batch seconds
        assert abs(m["batch_records_per_second"].value - m["records"].value / m["batch_seconds"].value) <= (
            0.01 * m["batch_records_per_second"].value)
    assert abs(cli["batch_records_per_second"] - records / batch_seconds) <= 0.01 * cli["batch_records_per_second"]
