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
import shutil
import signal
import subprocess
import sys
import threading
import time
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
        # A process still running after 100 s prints its Python stacks (before wait_all's 120-180 s give up).
        [*LAKE, *args], cwd=cwd, env={**os.environ, "LAKE_DUMP_STACKS_AFTER_SECONDS": "100", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # a group of its own: wait_all kills its workers with it
    )


def wait_all(procs: list[subprocess.Popen], timeout: float = 180) -> list[tuple[subprocess.Popen, str, str]]:
    """Wait for processes started at once: ``(process, stdout, stderr)`` of each.

    Their pipes are read together (one waiting on another's lock while that one is blocked on a
    full pipe would never end). A process still running at ``timeout`` is a hang: its stacks
    (py-spy, Python and native) and what it printed are in the AssertionError, and every process
    is killed.
    """
    outputs: dict[int, tuple[str, str]] = {}

    def read(i: int, proc: subprocess.Popen) -> None:
        outputs[i] = proc.communicate()

    readers = [threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))
    # Stuck: its output has not ended (the process runs, or a child of it holds its pipes).
    stuck = [i for i, reader in enumerate(readers) if reader.is_alive()]
    if stuck:
        stacks = [_stacks(procs[i].pid) for i in stuck]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its process group: workers too (run_lake_async)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for reader in readers:
            reader.join(30)
        printed = [f"pid {p.pid} (exit {p.poll()}): {outputs.get(i, ('', ''))[1][-3000:]}" for i, p in enumerate(procs)]
        raise AssertionError(f"{len(stuck)} of {len(procs)} processes still running or holding their output open "
                             f"after {timeout:.0f} s:\n" + "\n".join(stacks) + "\nstderr:\n" + "\n".join(printed))
    return [(p, *outputs[i]) for i, p in enumerate(procs)]


def _stacks(pid: int) -> str:
    """Every thread's stack of process ``pid`` and of its children, as py-spy dumps them."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        done = subprocess.run([py_spy, "dump", "--native", "--subprocesses", "--pid", str(pid)],
                              capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"pid {pid}: no stacks ({exc})"
    if done.returncode != 0:  # no ptrace rights, or the process ended meanwhile
        return f"pid {pid}: no stacks ({done.stderr.strip()[-500:]})"
    return f"pid {pid} stacks:\n{done.stdout}"


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
