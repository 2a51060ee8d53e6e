"""`make freshness`: how long a small object takes from landing to queryable in `make dev`.

Against a running `make dev` (or, with ``--start-dev``, one it starts on a free port and stops
afterwards), it drops N small Firehose objects into the landing zone, one at a time, each after
a random pause (so drops fall anywhere between two sensor ticks), and polls the ingest ledger
(a Delta table: the last commit of a batch, so an object in it is queryable) until the object is
there. It prints each object's time, then p50/p95/max, and where the time went according to
the Dagster instance: waiting for the sensor's tick, queued, launching the run's process, and
the run until its ledger commit was seen.

    python -m lake_pipeline.devtools.freshness --raw data/demo/raw --lake data/demo/lake [--objects 20]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.settings import LEDGER_TABLE, load_settings
from lake_pipeline.storage.objects import Storage, open_storage
from lake_pipeline.tables.lake import Lake


@dataclass
class Drop:
    key: str
    landed: float  # wall clock (time.time()) when the object was written
    seen: float | None = None  # when the ledger first showed it
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return None if self.seen is None else self.seen - self.landed


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated between the closest ranks."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def small_object(rng: random.Random, records: int, now: datetime) -> bytes:
    """``records`` valid events created in the last minute, as one gzip Firehose object."""
    lines = [
        orjson.dumps({
            "event_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_name": "page:view:web",
            "created_at": round(now.timestamp() - rng.random() * 60, 6),
            "user_id": f"u{rng.randrange(50_000):06d}",
        })
        for _ in range(records)
    ]
    return gzip.compress(b"".join(lines))


class LedgerWatch:
    """Polls the ledger cheaply: a version check on one open snapshot (reads only new log
    entries), and a filtered scan only when the version moved. So :meth:`holds` answers
    "did a commit since the last call add ``key``": call it once before ``key`` can be there."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self.snapshot = None

    def holds(self, key: str) -> bool:
        if self.snapshot is None:
            self.snapshot = self.lake.table(LEDGER_TABLE)
            if self.snapshot is None:
                return False
        else:
            before = self.snapshot.version()
            self.snapshot.update_incremental()
            if self.snapshot.version() == before:
                return False
        import polars as pl

        scan = self.lake.scan(LEDGER_TABLE, snapshot=self.snapshot)
        return scan.filter(pl.col("source_key") == key).select(pl.len()).collect().item() > 0


def drop_and_wait(raw: Storage, watch: LedgerWatch, rng: random.Random, records: int, timeout: float,
                  poll: float = 0.1) -> Drop:
    now = datetime.now(UTC)
    key = object_key("freshness", now, ".gz", str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    watch.holds(key)  # catch up with the ledger as it is before the drop
    raw.write(key, small_object(rng, records, now))
    drop = Drop(key, time.time())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if watch.holds(key):
            drop.seen = time.time()
            break
        time.sleep(poll)
    return drop


def stages(drops: list[Drop]) -> None:
    """Fill each drop's stages from its run in the Dagster instance (DAGSTER_HOME)."""
    import dagster as dg

    names = {dg.DagsterEventType.RUN_STARTING: "starting", dg.DagsterEventType.RUN_START: "started"}
    with dg.DagsterInstance.get() as instance:
        for d in drops:
            runs = instance.get_runs(dg.RunsFilter(tags={"lake/first_key": d.key}), limit=1)
            if not runs or d.seen is None:
                continue
            record = instance.get_run_record_by_id(runs[0].run_id)
            times = {"created": record.create_timestamp.timestamp()}
            for entry in instance.all_logs(runs[0].run_id, of_type=set(names)):
                event = entry.dagster_event
                if event is not None and event.event_type in names:
                    times.setdefault(names[event.event_type], entry.timestamp)
            if {"starting", "started"} <= times.keys():
                d.stages = {
                    "tick wait": times["created"] - d.landed,
                    "queued": times["starting"] - times["created"],
                    "launch": times["started"] - times["starting"],
                    "run": d.seen - times["started"],
                }


def report(drops: list[Drop]) -> int:
    done = [d.seconds for d in drops if d.seconds is not None]
    missed = len(drops) - len(done)
    if not done:
        print("no object was ingested: is firehose_landing_sensor running (UI: Automation)?", file=sys.stderr)
        return 1
    print(f"landing -> queryable, {len(done)} object(s): p50 {percentile(done, 0.5):.1f} s, "
          f"p95 {percentile(done, 0.95):.1f} s, max {max(done):.1f} s, min {min(done):.1f} s"
          + (f"; {missed} not ingested within the timeout" if missed else ""))
    try:
        stages(drops)
    except Exception as exc:  # the breakdown is a bonus: never lose the numbers above for it
        print(f"(no breakdown: cannot read the Dagster instance: {exc})", file=sys.stderr)
        return 0 if not missed else 1
    parts = [d.stages for d in drops if d.stages]
    if parts:
        print("where it went (median, p95): " + ", ".join(
            f"{name} {statistics.median(p[name] for p in parts):.1f}/{percentile([p[name] for p in parts], 0.95):.1f} s"
            for name in parts[0]))
    return 0 if not missed else 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def webserver_up(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
    except OSError:
        return False
    return True


def start_dev(raw_uri: str, lake_uri: str, wait: float = 180.0) -> tuple[subprocess.Popen, str]:
    """`make dev`'s command on a free port, in its own session; returns it once the UI answers."""
    port = free_port()
    env = {**os.environ, "LAKE_RAW_URI": raw_uri, "LAKE_URI": lake_uri}
    proc = subprocess.Popen([sys.executable, "-m", "lake_pipeline.devtools.dev", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while not webserver_up(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_dev(proc)
            raise SystemExit(f"error: the Dagster UI did not come up on {url} within {wait:.0f} s")
        time.sleep(0.5)
    return proc, url


def stop_dev(proc: subprocess.Popen, wait: float = 20.0) -> None:
    """SIGTERM (the supervisor stops its group within seconds); SIGKILL the session if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def measure(raw_uri: str, lake_uri: str, objects: int, records: int, pause: float, timeout: float, seed: int) -> int:
    settings = load_settings(raw_uri=raw_uri, lake_uri=lake_uri)
    raw, watch, rng = open_storage(settings.raw_uri), LedgerWatch(Lake.from_settings(settings)), random.Random(seed)
    print(f"{objects} object(s) of {records} records into {settings.raw_uri}, one at a time; "
          f"polling the ledger of {settings.lake_uri}")
    drops = []
    for i in range(objects):
        time.sleep(rng.uniform(0, pause))
        drop = drop_and_wait(raw, watch, rng, records, timeout)
        drops.append(drop)
        print(f"  {i + 1:>3}/{objects} {drop.key}: "
              + (f"{drop.seconds:.1f} s" if drop.seconds is not None else f"not in the ledger after {timeout:.0f} s"),
              flush=True)
        if drop.seconds is None and i == 0:
            break  # nothing ingests: don't wait N timeouts to say so
    return report(drops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", default=None, help="landing zone URI (default: LAKE_RAW_URI)")
    parser.add_argument("--lake", default=None, help="lake URI (default: LAKE_URI)")
    parser.add_argument("--objects", type=int, default=20, help="objects to drop, one at a time")
    parser.add_argument("--records", type=int, default=100, help="records per object")
    parser.add_argument("--pause", type=float, default=None,
                        help="random pause before each drop, up to this many seconds (default: the sensor interval)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for one object")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT') or 3000}",
                        help="the running `make dev` UI (default: http://127.0.0.1:$PORT, PORT=3000)")
    parser.add_argument("--start-dev", action="store_true", help="start `make dev`'s command on a free port, stop it after")
    args = parser.parse_args(argv)
    settings = load_settings(raw_uri=args.raw, lake_uri=args.lake)
    pause = settings.sensor_interval_seconds if args.pause is None else args.pause
    seed = args.seed if args.seed is not None else time.time_ns()
    proc = None
    if args.start_dev:
        proc, url = start_dev(settings.raw_uri, settings.lake_uri)
        print(f"started make dev's command on {url}")
    elif not webserver_up(args.url):
        print(f"error: no Dagster UI answers at {args.url}: start `make dev` (PORT=...) first, or pass --start-dev",
              file=sys.stderr)
        return 2
    try:
        return measure(settings.raw_uri, settings.lake_uri, args.objects, args.records, pause, args.timeout, seed)
    finally:
        if proc is not None:
            stop_dev(proc)


if __name__ == "__main__":
    sys.exit(main())
