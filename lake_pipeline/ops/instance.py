"""The local Dagster instance that `lake` and `make dev` share."""

from __future__ import annotations

from pathlib import Path

# Written to a new DAGSTER_HOME; dagster_home/dagster.yaml in the repo is the same text (a test checks).
LOCAL_DAGSTER_YAML = """\
# Local Dagster instance (`make dev`, `lake ingest`). Run storage lives next to this
# file and is gitignored. The AWS deployment uses dagster.aws.yaml instead.
telemetry:
  enabled: false

# One writer per lake table at a time: every batch's ingest step claims a slot in
# the `lake_writer` pool (pools default to one slot).
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 4

# The daemon looks at the run queue every second instead of every 5 s (Dagster's default):
# a run the landing sensor requested starts ~2 s sooner. Each look is one small query of
# the local run storage.
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
"""


def ensure_dagster_home(home: Path) -> Path:
    """Create ``home`` with the local dagster.yaml when it doesn't exist yet."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_DAGSTER_YAML)
    return home


def reap_dead_runs(instance) -> list[str]:
    """Fail runs of this host whose process is gone (e.g. a `lake ingest` killed with SIGKILL),
    and free the `lake_writer` pool slots they held, so the next run doesn't wait forever.

    Only runs whose RUN_START event names a pid on this machine are touched.
    """
    import socket

    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    reaped = []
    host = socket.gethostname()
    active = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING]))
    for run in active:
        if run.tags.get("lake/host") != host:
            continue
        starts = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START)
        pid = starts[-1].dagster_event.pid if starts and starts[-1].dagster_event else None
        if pid is None or process_alive(pid):
            continue
        instance.report_run_failed(run, message=f"process {pid} died (killed?) without finishing the run")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` is running on this machine (a zombie is not)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True
