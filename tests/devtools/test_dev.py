"""`make dev`'s supervisor: dagster dev started the way that used to make it unstoppable (SIGINT
ignored, as a background job of a script inherits it) ends on SIGTERM with every process gone;
a process that ignores the interrupt is killed after the grace period."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e  # real dagster dev / real process trees


def _as_a_background_job():
    """What a non-interactive shell does to `cmd &`: SIGINT and SIGQUIT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _wait_until_gone(proc: subprocess.Popen, bound: float = 60.0) -> list[int]:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        proc.poll()
        if not _session(proc.pid):
            # It may have exited between poll() and the look at /proc (a zombie is not listed):
            # reap it, so that its returncode is there to assert.
            proc.wait(timeout=10)
            return []
        time.sleep(0.2)
    left = _session(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    return left


def test_sigterm_stops_dagster_dev_and_all_its_processes_even_with_sigint_ignored(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "raw").mkdir()
    env = {**os.environ, "LAKE_RAW_URI": str(tmp_path / "raw"), "LAKE_URI": str(tmp_path / "lake")}
    proc = subprocess.Popen([sys.executable, "-m", "lake_pipeline.devtools.dev", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_as_a_background_job)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the Dagster UI never came up"
                time.sleep(0.5)
        assert len(_session(proc.pid)) >= 5  # supervisor, dagster dev, webserver, daemon, code server(s)
    finally:
        proc.send_signal(signal.SIGTERM)
        left = _wait_until_gone(proc)
    assert left == []
    assert proc.returncode == -signal.SIGTERM  # it died of the signal, as make and shells expect


STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a process that ignores the interrupt
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"])
time.sleep(600)
"""


def test_what_ignores_the_interrupt_is_killed_after_the_grace_period(tmp_path):
    supervisor = (
        "import sys; from lake_pipeline.devtools.dev import supervise, child_env; "
        f"sys.exit(supervise([sys.executable, '-c', {STUBBORN!r}], child_env(), grace=1.0))"
    )
    proc = subprocess.Popen([sys.executable, "-c", supervisor], start_new_session=True, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while len(_session(proc.pid)) < 3 and time.monotonic() < deadline:  # supervisor, child, grandchild
        time.sleep(0.1)
    assert len(_session(proc.pid)) == 3
    proc.send_signal(signal.SIGINT)
    left = _wait_until_gone(proc)
    assert left == []
    assert proc.returncode == 128 + signal.SIGINT  # supervise()'s code; only main() re-raises the signal
    assert "killing what is left of it" in proc.stderr.read()
