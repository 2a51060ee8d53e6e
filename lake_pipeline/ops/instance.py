"""The local Dagster instance that `lake` and `make dev` share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


# In DAGSTER_HOME: held while a process creates or opens the instance's storage.
LOCK_FILE = ".instance.lock"


def ensure_dagster_home(home: Path) -> Path:
    """Create ``home`` with the local dagster.yaml when it doesn't exist yet (written whole:
    another process never reads half of it)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        tmp = home / f".dagster.yaml.{os.getpid()}.tmp"
        tmp.write_text(LOCAL_DAGSTER_YAML)
        tmp.replace(config)
    return home


@contextmanager
def instance_lock(home: Path) -> Iterator[None]:
    """One process at a time (an exclusive ``flock`` on ``home/.instance.lock``)."""
    import fcntl

    with open(home / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_local_instance(home: Path):
    """The Dagster instance in ``home`` (DAGSTER_HOME), created on first use; any number of
    processes may start at once.

    Dagster creates a new home's SQLite storage (runs, event log index, schedules) by creating
    the tables and then stamping ``alembic_version``; two processes doing that at once race,
    and the loser dies with ``table alembic_version already exists``. So the home is set up and
    the instance opened under :func:`instance_lock`: the first process creates the storage, the
    others wait for it (a fraction of a second) and open what it made.
    """
    from dagster import DagsterInstance

    home.mkdir(parents=True, exist_ok=True)
    with instance_lock(home):
        ensure_dagster_home(home)
        return DagsterInstance.from_config(str(home))


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
