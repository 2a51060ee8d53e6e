"""The local Dagster instance: what a new DAGSTER_HOME gets is dagster_home/dagster.yaml, and Dagster
reads the settings we rely on from it."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from lake_pipeline.ops.instance import LOCAL_DAGSTER_YAML, ensure_dagster_home

REPO_YAML = Path(__file__).resolve().parents[2] / "dagster_home" / "dagster.yaml"


def test_a_new_dagster_home_gets_the_repository_dagster_yaml(tmp_path):
    assert REPO_YAML.read_text() == LOCAL_DAGSTER_YAML
    home = ensure_dagster_home(tmp_path / "home")
    assert (home / "dagster.yaml").read_text() == LOCAL_DAGSTER_YAML


def test_the_run_queue_is_looked_at_every_second_with_four_runs_at_most(tmp_path, monkeypatch):
    home = ensure_dagster_home(tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        assert coordinator.dequeue_interval_seconds == 1
        # concurrency > runs still sets the limit (Dagster merges it over the coordinator's own).
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4
    assert os.path.isdir(home / "history")  # a real sqlite instance was created there
