"""`make dev`: `dagster dev` that Ctrl-C and SIGTERM always stop within seconds, leaving no process.

Why a wrapper: dagster dev (and each process it starts) maps SIGTERM to whatever SIGINT does. A
shell that starts a command in the background without job control (a script, `make dev &`, an
IDE task, CI) starts it with SIGINT *ignored*; dagster dev then ignores SIGTERM as well, and
only SIGKILL ends its seven processes. Here dagster dev gets default signal dispositions, runs in
its own process group, and any of SIGINT, SIGTERM, SIGHUP, or the death of the process that
started it (`make` killed) becomes one SIGINT to that whole group, which is what a terminal's
Ctrl-C does. Whatever is still alive ``GRACE_SECONDS`` later is killed.

    python -m lake_pipeline.devtools.dev [-h HOST] [-p PORT]

The code location comes from pyproject.toml's [tool.dagster] (module and location name
``lake_pipeline``, the same name as in AWS), not from ``-m``: with ``-m`` the location would be
called ``lake_pipeline.definitions`` and Dagster warns on every load that it does not match
[tool.dg.project]'s ``code_location_name``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

# dagster dev itself waits up to 60 s for its webserver and daemon; we don't.
GRACE_SECONDS = 8.0
# `dagster dev` is "superseded by `dg dev`", which needs dagster-dg-cli (not in the lock): the
# warning names nothing a user of this project can act on, so dagster dev's processes hide it.
HIDDEN_WARNINGS = "ignore:Function `dev_command` is superseded"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def dagster_dev_command(host: str, port: int | str) -> list[str]:
    return [sys.executable, "-m", "dagster", "dev", "-h", host, "-p", str(port)]


def child_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """dagster dev's environment: DAGSTER_HOME made absolute and created if new (with the local
    dagster.yaml, as `lake` creates it), and the one hidden warning."""
    from lake_pipeline.ops.instance import ensure_dagster_home, instance_lock
    from lake_pipeline.settings import dagster_home

    env = dict(os.environ if environ is None else environ)
    home = dagster_home(env)
    home.mkdir(parents=True, exist_ok=True)
    with instance_lock(home):
        ensure_dagster_home(home)
    env["DAGSTER_HOME"] = str(home)
    env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), HIDDEN_WARNINGS) if w)
    return env


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is left (zombies not yet reaped count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(child: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """Interrupt the whole group once (as Ctrl-C would), then kill what outlives ``grace``."""
    try:
        os.killpg(child.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        child.poll()
        if child.returncode is not None and not group_alive(child.pid):
            return
        time.sleep(0.1)
    print(f"dagster dev still running {grace:.0f} s after the interrupt: killing what is left of it",
          file=sys.stderr, flush=True)
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def supervise(command: list[str], env: dict[str, str], grace: float = GRACE_SECONDS) -> int:
    """Run ``command`` in its own process group until it exits or we are told to stop."""
    received: list[int] = []
    for sig in STOP_SIGNALS:
        # A handler (not SIG_IGN) here means the child starts with the default disposition.
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    parent = os.getppid()
    child = subprocess.Popen(command, env=env, process_group=0)
    while child.poll() is None:
        if received or os.getppid() != parent:
            stop_group(child, grace)
            signum = received[0] if received else signal.SIGHUP
            return 128 + signum
        try:
            child.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
    # dagster dev ended by itself: leave none of its children behind either.
    if group_alive(child.pid):
        stop_group(child, grace)
    return child.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lake_pipeline.devtools.dev", add_help=False, description=__doc__)
    parser.add_argument("-h", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", default="3000")
    parser.add_argument("--help", action="help")
    args = parser.parse_args(argv)
    code = supervise(dagster_dev_command(args.host, args.port), child_env())
    if code - 128 in (signal.SIGINT, signal.SIGTERM):
        # Die of the signal we were stopped by, as the shell and make expect ("Interrupt", not "Error 130").
        signal.signal(code - 128, signal.SIG_DFL)
        os.kill(os.getpid(), code - 128)
    return code


if __name__ == "__main__":
    sys.exit(main())
