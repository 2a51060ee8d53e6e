"""The local AWS emulator: a moto server on 127.0.0.1 and a free port, in the background.

``lake emulator start`` (``make aws-local``) runs ``moto.server`` in its own process
group and keeps its state in one directory (default ``.aws-local/``, gitignored):

- ``moto.pid``: the server's process id
- ``moto.log``: its output
- ``endpoint``: its URL (``http://127.0.0.1:<port>``)
- ``env``: an ``export`` line that points the AWS SDKs, ``lake`` and Dagster at it
- ``dagster_home/``: the Dagster instance of the AWS loop (``make dev-aws``)

The server keeps everything in memory, so stopping it forgets the buckets and streams.
The test suite starts its own server through :func:`start` on a private state
directory, the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lake_pipeline.ops.instance import ensure_dagster_home, process_alive
from lake_pipeline.settings import FIREHOSE_RAW_PREFIX, bucket_names

HOST = "127.0.0.1"
DEFAULT_STATE_DIR = ".aws-local"
# moto accepts any credentials; the SDKs only need some to sign requests.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
LOCAL_REGION = "us-east-1"


class EmulatorError(RuntimeError):
    """The emulator could not be started or stopped. The message says why."""


@dataclass(frozen=True)
class Emulator:
    pid: int
    endpoint: str
    state_dir: Path

    @property
    def log(self) -> Path:
        return self.state_dir / "moto.log"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster_home"

    def aws_environment(self) -> dict[str, str]:
        """Variables that point boto3 and deltalake/object_store at this emulator."""
        return aws_environment(self.endpoint)

    def environment(self) -> dict[str, str]:
        """:meth:`aws_environment`, plus the lake URIs of the local deployment and a Dagster
        instance of its own (the emulator forgets everything when it stops)."""
        return local_environment(self.endpoint, self.dagster_home)


def aws_environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        **LOCAL_CREDENTIALS,
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }


def local_environment(endpoint: str, dagster_home: Path | None = None) -> dict[str, str]:
    buckets = bucket_names("local")
    env = {
        **aws_environment(endpoint),
        "LAKE_RAW_URI": f"s3://{buckets['raw']}/{FIREHOSE_RAW_PREFIX.rstrip('/')}",
        "LAKE_URI": f"s3://{buckets['lake']}/lake",
    }
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return env


def export_line(env: dict[str, str]) -> str:
    return "export " + " ".join(f"{k}={v}" for k, v in env.items())


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _paths(state_dir: Path) -> tuple[Path, Path, Path, Path]:
    return state_dir / "moto.pid", state_dir / "moto.log", state_dir / "endpoint", state_dir / "env"


def _is_moto(pid: int) -> bool:
    """Whether ``pid`` is a moto server (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return process_alive(pid)  # no /proc (macOS): trust the pidfile
    return b"moto" in cmdline


def responds(endpoint: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False


def running(state_dir: str | Path = DEFAULT_STATE_DIR) -> Emulator | None:
    """The emulator recorded in ``state_dir`` when it is alive and answering."""
    state_dir = Path(state_dir).resolve()
    pidfile, _, endpoint_file, _ = _paths(state_dir)
    try:
        pid = int(pidfile.read_text().strip())
        endpoint = endpoint_file.read_text().strip()
    except (OSError, ValueError):
        return None
    if process_alive(pid) and _is_moto(pid) and responds(endpoint):
        return Emulator(pid, endpoint, state_dir)
    return None


def start(
    state_dir: str | Path = DEFAULT_STATE_DIR,
    port: int | None = None,
    timeout: float = 30.0,
    extra_env: dict[str, str] | None = None,
) -> Emulator:
    """Start a moto server in the background (or return the one already running there).

    ``extra_env``: moto settings for the server process (e.g. ``INITIAL_NO_AUTH_ACTION_COUNT``).
    """
    state_dir = Path(state_dir).resolve()
    existing = running(state_dir)
    if existing is not None:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    pidfile, logfile, endpoint_file, env_file = _paths(state_dir)
    for attempt in range(3):  # a port picked as free can be taken before moto binds it
        chosen = port or free_port()
        endpoint = f"http://{HOST}:{chosen}"
        with open(logfile, "ab") as log:
            log.write(f"--- moto server on {endpoint} ({time.strftime('%Y-%m-%dT%H:%M:%S')})\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(chosen)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the shell/make that started it; own process group
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if responds(endpoint, timeout=0.5):
                emu = Emulator(proc.pid, endpoint, state_dir)
                ensure_dagster_home(emu.dagster_home)
                pidfile.write_text(f"{proc.pid}\n")
                endpoint_file.write_text(endpoint + "\n")
                env_file.write_text(export_line(emu.environment()) + "\n")
                return emu
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise EmulatorError(f"moto server did not answer on {endpoint} within {timeout:.0f}s; see {logfile}")
        if port is not None:
            break
    raise EmulatorError(f"moto server exited at start-up (exit code {proc.returncode}); see {logfile}")


def stop(state_dir: str | Path = DEFAULT_STATE_DIR, timeout: float = 10.0) -> int | None:
    """Stop the emulator recorded in ``state_dir``; return its pid (None when none was running)."""
    state_dir = Path(state_dir).resolve()
    pidfile, _, endpoint_file, env_file = _paths(state_dir)
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    stopped = None
    if process_alive(pid) and _is_moto(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
        stopped = pid
    for path in (pidfile, endpoint_file, env_file):
        path.unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    """Collect the exit status when ``pid`` is our own child (tests), so it leaves no zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
