"""What every `lake` command shares: the one-line error, settings from options, the
Dagster instance, running a job in-process, and the fast exit of a successful run."""

from __future__ import annotations

import atexit
import gc
import os
import sys

import click

from lake_pipeline.settings import Settings, dagster_home, load_settings
from lake_pipeline.storage.uris import normalize_uri

# Set by the console entry point (`run` in main.py); tests drive the group in-process.
STANDALONE = {"on": False}


def fail(message: str, code: int = 2) -> None:
    """Print one ``error:`` line naming what to fix, and exit with ``code``."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def command_settings(raw: str | None = None, lake: str | None = None) -> Settings:
    """Settings with the command's ``--raw``/``--lake`` applied and both URIs normalised."""
    settings = load_settings(raw_uri=raw, lake_uri=lake)
    return settings.with_overrides(raw_uri=normalize_uri(settings.raw_uri), lake_uri=normalize_uri(settings.lake_uri))


def instance():
    """The Dagster instance in DAGSTER_HOME (created on first use); dead CLI runs of this host are marked failed."""
    from lake_pipeline.ops.instance import open_local_instance, reap_dead_runs

    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    inst = open_local_instance(home)  # safe when several `lake` processes create a new home at once
    for run_id in reap_dead_runs(inst):
        click.echo(f"marked run {run_id} failed: its process died before finishing (slot freed)", err=True)
    return inst


def lake_run_config(settings: Settings, **ops) -> dict:
    """Run config: the lake resource from ``settings``, quiet console logs, and ``ops``' config."""
    from lake_pipeline.defs.resources import LakeResource

    config = {
        "resources": {"lake": LakeResource.run_config(settings)},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    if ops:
        config["ops"] = ops
    return config


def check_evaluations(result) -> list[tuple[str, bool, str]]:
    return [(e.check_name, e.passed, e.description or "") for e in result.get_asset_check_evaluations()]


def materialization_metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def run_error(result) -> str:
    """The first failed step's error, readable (a StorageError's own message; a failed blocking check by name)."""
    from lake_pipeline.ops.alerts import error_text

    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            err = event.step_failure_data.error
            while err is not None:
                if err.cls_name in ("StorageError", "CommitRace", "RetentionTooShort"):  # tables/lake.py
                    return err.message.split(": ", 1)[-1].strip()
                err = err.cause
            return f"step {event.step_key} failed: {error_text(event.step_failure_data.error).splitlines()[0]}"
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed and getattr(data, "blocking", False):
                return f"blocking check {data.check_name} failed"
    return f"run {result.run_id} failed; see the Dagster UI (make dev) for details"


def loading_dagster() -> None:
    """Importing Dagster allocates millions of long-lived objects; the cyclic garbage
    collector would walk them again and again (~0.6 s of CPU per `lake ingest`). It is
    paused until :func:`dagster_loaded`, which freezes those objects out of it."""
    gc.disable()


def dagster_loaded() -> None:
    gc.freeze()
    gc.enable()
    # Frozen objects would outlive interpreter shutdown's collection (DuckDB's bindings
    # then report them as leaks): hand them back before exit.
    atexit.register(gc.unfreeze)


def done(worker_processes: bool = False) -> None:
    """End a successful `lake ingest`/`lake backfill` process without interpreter teardown
    (``worker_processes``: whether it started parse worker processes).

    Everything is committed and flushed by now (Delta, ledger, Dagster's run storage); the
    teardown would only free millions of Dagster objects one by one (~0.7 s).
    """
    # Not with profilers (they write at exit), nor with parse worker processes (multiprocessing
    # wants them joined and its semaphores released).
    if STANDALONE["on"] and sys.getprofile() is None and sys.gettrace() is None and not worker_processes:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (`lake ingest | head -1`): the work is done anyway
                pass
        os._exit(0)
