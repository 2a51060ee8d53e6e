"""Crash safety: SIGKILL `lake ingest` at named points and at arbitrary moments, run it again,
and the tables are exactly what one clean run produces."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from lake_pipeline.tables.lake import Lake
from lake_pipeline.ingest.batch import list_pending
from lake_pipeline.ingest.ledger import unfinished_plans
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE, load_settings
from tests.support.cli import LAKE, run_lake

pytestmark = pytest.mark.e2e  # `lake ingest` processes, killed with SIGKILL

SMALL_BATCHES = {"LAKE_BATCH_MAX_OBJECTS": "2"}


def snapshot(lake_dir: Path) -> dict[str, list[tuple]]:
    """Table contents, without batch ids (a crashed batch may be re-planned under a new id)."""
    shapes = {
        EVENTS_TABLE: ["event_uuid", "event_name", "created_at", "created_datetime", "event_type", "event_subtype",
                       "event_date", "payload", "_source_key", "_ordinal"],
        QUARANTINE_TABLE: ["raw_record", "reason", "source_key", "_ordinal"],
        LEDGER_TABLE: ["source_key", "records", "inserted", "duplicates", "quarantined"],
    }
    out = {}
    for table, cols in shapes.items():
        df = pl.from_arrow(DeltaTable(str(lake_dir / table)).to_pyarrow_table()).select(cols)
        out[table] = df.sort(cols, nulls_last=True).rows()
    return out


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    r = run_lake("generate", "--out", "raw", "--events", "4000", "--seed", "21", "--start", "2025-11-20T13",
             "--object-seconds", "450", "--malformed", "0.02", cwd=root)
    assert r.returncode == 0, r.stderr
    clean = run_lake("ingest", "--raw", "raw", "--lake", "clean", "--quiet", cwd=root,
                 env={**SMALL_BATCHES, "DAGSTER_HOME": str(root / "home-clean")})
    assert clean.returncode == 0, clean.stderr
    return root, snapshot(root / "clean")


def _recover_and_compare(root: Path, lake_name: str, expected, env):
    again = run_lake("ingest", "--raw", "raw", "--lake", lake_name, "--quiet", cwd=root, env=env)
    assert again.returncode == 0, again.stderr
    assert snapshot(root / lake_name) == expected
    settings = load_settings(raw_uri=str(root / "raw"), lake_uri=str(root / lake_name))
    lake_ = Lake.from_settings(settings)
    assert list_pending(settings) == [] and unfinished_plans(lake_) == []


@pytest.mark.parametrize("point", ["after_parse", "after_events", "after_quarantine", "after_ledger"])
def test_sigkill_at_each_commit_boundary_then_rerun(landing, point):
    root, expected = landing
    env = {**SMALL_BATCHES, "DAGSTER_HOME": str(root / f"home-{point}")}
    crashed = run_lake("ingest", "--raw", "raw", "--lake", point, "--quiet", cwd=root,
                   env={**env, "LAKE_FAULT_INJECTION": point})
    assert crashed.returncode == -signal.SIGKILL
    _recover_and_compare(root, point, expected, env)


@pytest.mark.parametrize("delay", [2.5, 4.0, 5.5])
def test_sigkill_at_an_arbitrary_moment_then_rerun(landing, delay):
    root, expected = landing
    name = f"timer-{delay}"
    env = {**os.environ, **SMALL_BATCHES, "DAGSTER_HOME": str(root / f"home-{name}")}
    proc = subprocess.Popen([*LAKE, "ingest", "--raw", "raw", "--lake", name, "--quiet"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    _recover_and_compare(root, name, expected, {**SMALL_BATCHES, "DAGSTER_HOME": str(root / f"home-{name}")})
