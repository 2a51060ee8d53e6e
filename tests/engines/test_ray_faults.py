"""Faults on the Ray engine: a worker process SIGKILLed mid-batch (Ray retries its task), the driver
SIGKILLed between commits (the next ingest finishes the batch). Each test first proves its kill landed."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from lake_pipeline.engines.ray import DEDUPE_TASK, PARSE_TASK
from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.ingest.landing import list_pending
from lake_pipeline.ingest.ledger import unfinished_plans
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, load_settings
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.tables.lake import Lake
from tests.support.cli import run_lake
from tests.support.runs import synthetic_landing_zone
from tests.support.tables import table_rows

pytestmark = pytest.mark.e2e  # a Ray cluster in other processes; `lake ingest` subprocesses

# Many small chunks: a batch runs long enough for a parse or dedupe task to be caught running.
OVERRIDES = {"batch_max_objects": 100, "chunk_max_bytes": 48 * 1024}


def _settings(raw, lake, cluster, engine="ray"):
    return load_settings(raw_uri=str(raw), lake_uri=str(lake), engine=engine, ray_address=cluster.address,
                         **OVERRIDES)


def _ingest(settings):
    return ingest_keys(settings, [o.key for o in list_pending(settings)])


def _kill_first_task(cluster, names: tuple[str, ...], running: threading.Event) -> list[tuple[int, str]]:
    """SIGKILL the first worker process seen running one of the tasks ``names`` while ``running``."""
    while running.is_set():
        for name in names:
            for pid in cluster.task_pids(name):
                os.kill(pid, signal.SIGKILL)
                return [(pid, name)]
        time.sleep(0.01)
    return []


def test_a_worker_killed_mid_batch_is_retried_and_the_tables_are_exact(ray_cluster_, tmp_path):
    raw = tmp_path / "raw"
    synthetic_landing_zone(raw, 30_000, seed=5, object_seconds=120)
    _ingest(_settings(raw, tmp_path / "lake-local", ray_cluster_, engine="local"))

    running, outcome = threading.Event(), {}
    running.set()

    def batch():
        try:
            outcome["summary"] = _ingest(_settings(raw, tmp_path / "lake-ray", ray_cluster_))
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc
        finally:
            running.clear()

    thread = threading.Thread(target=batch)
    thread.start()
    killed = _kill_first_task(ray_cluster_, (PARSE_TASK, DEDUPE_TASK), running)
    thread.join(timeout=120)
    assert killed, "no parse or dedupe task was seen running: the kill did not land mid-batch"
    (pid, _), = killed
    assert not os.path.exists(f"/proc/{pid}/cmdline") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert all(b.conserved for b in summary.batches) and summary.total("records") > 30_000
    assert table_rows(tmp_path / "lake-ray") == table_rows(tmp_path / "lake-local")


def test_a_driver_killed_after_the_events_commit_is_finished_by_the_next_ingest(ray_cluster_, tmp_path):
    raw = tmp_path / "raw"
    synthetic_landing_zone(raw, 3_000, seed=6, object_seconds=600)
    _ingest(_settings(raw, tmp_path / "lake-local", ray_cluster_, engine="local"))
    env = {"LAKE_RAY_ADDRESS": ray_cluster_.address, "DAGSTER_HOME": str(tmp_path / "home")}
    args = ("ingest", "--raw", "raw", "--lake", "lake-ray", "--engine", "ray", "--quiet")
    crashed = run_lake(*args, cwd=tmp_path, env={**env, "LAKE_FAULT_INJECTION": "after_events"})
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)
    lake = Lake.from_settings(_settings(raw, tmp_path / "lake-ray", ray_cluster_))
    (plan,) = unfinished_plans(lake)
    assert lake.batch_committed(EVENTS_TABLE, plan.batch_id) and not lake.batch_committed(LEDGER_TABLE, plan.batch_id)

    again = run_lake(*args, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert unfinished_plans(lake) == []
    assert table_rows(tmp_path / "lake-ray") == table_rows(tmp_path / "lake-local")


def test_a_storage_error_inside_a_task_is_the_same_one_line_error_as_locally(ray_cluster_, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    key = "2025/11/20/13/events-1-2025-11-20-13-05-00-gone.gz"  # planned, but not there to read
    errors = {}
    for engine in ("local", "ray"):
        with pytest.raises(StorageError) as caught:
            ingest_keys(_settings(raw, tmp_path / f"lake-{engine}", ray_cluster_, engine=engine), [key])
        errors[engine] = caught.value
    assert type(errors["ray"]) is StorageError and str(errors["ray"]) == str(errors["local"])
    assert "disappeared while reading" in str(errors["ray"]) and "\n" not in str(errors["ray"])
