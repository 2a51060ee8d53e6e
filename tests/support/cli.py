"""The `lake` command in tests: in-process through click's CliRunner (:func:`invoke`), or as
a real process (:func:`run_lake`, :func:`run_lake_async`; e2e tests only); uploads, summaries.

Use :func:`invoke` for what the command says and its exit code (argument validation,
error messages); use a subprocess only for what needs a process of its own: the console
script itself, its fast exit, signals, the progress bar, several writers at once.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from tests.support import tiers

LAKE = [sys.executable, "-m", "lake_pipeline.cli.main"]


def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """Run ``lake <args>`` in this process (``lake_pipeline.cli.main.main``) and return click's
    result: ``exit_code`` (``fail`` exits through SystemExit), ``stdout``, ``stderr``.

    ``env`` is applied for the call only; an exception other than SystemExit propagates.
    """
    from lake_pipeline.cli.main import main

    gc_enabled = gc.isenabled()  # `lake ingest`/`backfill` pause the collector while Dagster loads
    try:
        with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
            return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    finally:
        if gc_enabled:
            gc.enable()


def run_lake(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the `lake` command in a process of its own, as a user would, with the test's environment."""
    tiers.require(tiers.E2E, "runs the `lake` command in a subprocess")
    return subprocess.run(
        [*LAKE, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def run_lake_async(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """:func:`run_lake` without waiting: the running process (its output is piped)."""
    tiers.require(tiers.E2E, "runs the `lake` command in a subprocess")
    return subprocess.Popen(
        [*LAKE, *args], cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def upload_tree(local: Path, uri: str) -> list[str]:
    """Upload a local landing zone to ``uri`` (s3://bucket/prefix); return the keys, relative to it."""
    from lake_pipeline.storage.objects import open_storage

    target = open_storage(uri)
    keys = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = path.relative_to(local).as_posix()
        target.write(key, path.read_bytes())
        keys.append(key)
    return keys


def summary(stdout: str) -> dict[str, int]:
    """The counts of `lake ingest`'s last line (objects=... records=...)."""
    line = [ln for ln in stdout.splitlines() if ln.startswith("objects=")][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=([\d,]+)(?=\s)", line + " ")
            if k in ("objects", "records", "inserted", "duplicates", "quarantined")}
