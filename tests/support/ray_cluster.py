"""A real two-node Ray cluster on this machine for tests (helpers, not tests).

:func:`start` runs ``ray start --head --block`` and ``ray start --address ... --block`` as two
separate process groups (a head and a worker node, each with one CPU, every port chosen free
on 127.0.0.1, the session files under a temporary directory), waits until the cluster has two
alive nodes, and returns a :class:`RayCluster`; :meth:`RayCluster.stop` ends both groups
(SIGTERM, then SIGKILL), so nothing is left running and no other Ray on the machine is touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import tiers

START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 5
# Each node's object store (bytes): small, so two nodes fit beside everything else here.
OBJECT_STORE_BYTES = 300 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _node_ports() -> list[str]:
    """Ports every node on one machine must not share (Ray's defaults are fixed numbers)."""
    return [
        "--node-manager-port", str(free_port()),
        "--object-manager-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
    ]


@dataclass
class RayCluster:
    address: str  # host:port of the head's GCS, what LAKE_RAY_ADDRESS names
    temp_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def process_groups(self) -> list[int]:
        return [p.pid for p in self.processes]  # each `ray start` leads its own group

    def pids(self) -> list[int]:
        """Every live process of this cluster: its process groups and their descendants (a raylet
        starts its worker processes in sessions of their own)."""
        groups = set(self.process_groups)
        parents: dict[int, int] = {}
        mine: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                parents[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if os.getpgid(pid) in groups:
                    mine.add(pid)
            except (OSError, IndexError, ValueError):
                pass
        grew = True
        while grew:
            more = {pid for pid, parent in parents.items() if parent in mine and pid not in mine}
            mine |= more
            grew = bool(more)
        return sorted(mine)

    def task_pids(self, task_name: str) -> list[int]:
        """PIDs of this cluster's worker processes running a task named ``task_name`` now (a Ray worker
        titles itself ``ray::<task name>`` while it runs one)."""
        out = []
        for pid in self.pids():
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title == f"ray::{task_name}":
                out.append(pid)
        return out

    def stop(self) -> None:
        """SIGTERM every process of the cluster (the groups and the workers in sessions of their own),
        then SIGKILL what still runs after STOP_TIMEOUT_SECONDS."""
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, 5)):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self._alive():
                time.sleep(0.2)
            if not self._alive():
                break
        for p in self.processes:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _alive(self) -> bool:
        """Whether a process of the groups still runs (zombies don't count)."""
        for pid in self.pids():
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                return True
        return False


# The test cluster listens on 127.0.0.1 only, without Ray's token authentication: a token in
# ~/.ray/auth_token (which a local `ray.init()` writes) must not decide whether the nodes and the
# test process (the driver) agree on it. Set for the test process too, and so for `lake` subprocesses.
AUTH = {"RAY_AUTH_MODE": "disabled"}


def _start_node(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, **AUTH, "RAY_USAGE_STATS_ENABLED": "0"}
    with open(log, "wb") as out:
        return subprocess.Popen([_ray(), "start", "--block", *args], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)


def _alive_nodes(address: str) -> int:
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except ConnectionError:  # the GCS listens but isn't serving yet (a loaded machine): look again
            return 0
    return sum(1 for n in ray.nodes() if n.get("Alive"))


def start(temp_dir: Path, nodes: int = 2) -> RayCluster:
    """Start a head and ``nodes - 1`` worker nodes; return once all are alive (or fail, stopping them)."""
    tiers.require(tiers.E2E, "starts a Ray cluster")
    os.environ.update(AUTH)
    temp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
              "--object-store-memory", str(OBJECT_STORE_BYTES)]
    cluster = RayCluster(address, temp_dir)
    try:
        cluster.processes.append(_start_node(
            ["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", str(temp_dir / "ray"),
             "--ray-client-server-port", str(free_port()), "--dashboard-port", str(free_port()),
             *common, *_node_ports()], temp_dir / "head.log"))
        _wait(lambda: _gcs_listening(port), cluster, "the head's GCS to listen")
        for i in range(nodes - 1):
            cluster.processes.append(_start_node(["--address", address, *common, *_node_ports()],
                                                 temp_dir / f"worker-{i}.log"))
        _wait(lambda: _alive_nodes(address) >= nodes, cluster, f"{nodes} alive nodes")
    except BaseException:
        _disconnect()
        cluster.stop()
        raise
    return cluster


def _gcs_listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(ready, cluster: RayCluster, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for p in cluster.processes:
            if p.poll() is not None:
                raise RuntimeError(f"ray start exited ({p.returncode}) while waiting for {what}; see {cluster.temp_dir}")
        if ready():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {START_TIMEOUT_SECONDS} s waiting for {what}; see {cluster.temp_dir}")


def _disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def stop(cluster: RayCluster) -> None:
    """Disconnect this process from the cluster, then end both nodes' process groups."""
    _disconnect()
    cluster.stop()
