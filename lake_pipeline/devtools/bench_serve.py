"""`make bench-serve`: `lake serve` under load on this machine, with the load generator beside it.

1. A lake of ad events (clicks, impressions and page views of 20k users) in the current hour
   and the hour before, ingested through the ordinary batch path.
2. `lake serve` in a process of its own on a free port of 127.0.0.1.
3. Load over keep-alive connections (:func:`load`: asyncio streams, one request in flight per
   connection, httptools parsing the responses), each scenario bounded by count and time:
   GET the current hour (as fast as it answers, and paced at 2,000 requests/s), GET the past hour (held after its first answer; the first, cold,
   answer is timed on its own), GET /users/{id}/events of random users, POST events.
4. Freshness: one more batch is ingested while GETs poll; the time from its commit (the Delta
   log file's mtime) to the first answer that shows it.
5. The POSTs are flushed (the spool's age bound) and ingested; every accepted POST (each had a
   user id of its own) must be in ``events`` exactly once.

Prints one line per scenario (p50/p99 in ms, requests/s) and a JSON summary. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import httpx
import orjson

HOUR = 3600


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    server_cpu: float | None = None  # CPU seconds the server process used during the scenario

    def quantile(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")

    def summary(self) -> dict:
        n = len(self.latencies)
        cpu_us = round(self.server_cpu / n * 1e6, 1) if self.server_cpu is not None and n else None
        return {"scenario": self.name, "requests": n, "per_second": round(n / self.seconds, 1) if self.seconds else 0,
                "p50_ms": round(self.quantile(0.50), 2), "p99_ms": round(self.quantile(0.99), 2),
                "server_cpu_us_per_request": cpu_us, "statuses": self.statuses}

    def line(self) -> str:
        s = self.summary()
        cpu = f"  server {s['server_cpu_us_per_request']:>6.0f} us CPU/req" if s["server_cpu_us_per_request"] else ""
        return (f"{self.name:<26} {s['requests']:>7} req  {s['per_second']:>8.0f} req/s  "
                f"p50 {s['p50_ms']:>7.2f} ms  p99 {s['p99_ms']:>7.2f} ms{cpu}  {self.statuses}")


class _Response:
    """httptools callbacks: the status and body of one response on a connection."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done = False
        self.body = b""

    def on_message_begin(self) -> None:
        self.done, self.body = False, b""

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


async def _connection(port: int, paths, method: str, result: Result, stop_at: float, budget: list[int],
                      on_response=None, interval: float = 0.0) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    response = _Response()
    next_at = time.perf_counter()
    try:
        while budget[0] > 0 and time.perf_counter() < stop_at:
            if interval:  # paced: this connection's share of the rate (latency counts from the send)
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            budget[0] -= 1
            path = next(paths)
            request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode()
            started = time.perf_counter()
            writer.write(request)
            response.done = False
            while not response.done:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                response.parser.feed_data(data)
            result.latencies.append(time.perf_counter() - started)
            status = response.parser.get_status_code()
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if on_response is not None:
                on_response(path, status)
    finally:
        writer.close()


def load(port: int, name: str, paths, *, method: str = "GET", connections: int = 32, seconds: float = 5.0,
         most: int = 200_000, on_response=None, rate: float | None = None, server_pid: int | None = None) -> Result:
    """``connections`` keep-alive connections sending ``paths`` (an iterator) for at most ``seconds``
    and ``most`` requests in all; ``rate``: at about that many requests per second in all
    (None: as fast as the server answers)."""
    interval = connections / rate if rate else 0.0
    result = Result(name)
    budget = [most]

    async def run() -> None:
        stop_at = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_connection(port, paths, method, result, stop_at, budget, on_response, interval)
                               for _ in range(connections)))
        result.seconds = time.perf_counter() - started

    cpu = _cpu_seconds(server_pid) if server_pid else None
    asyncio.run(run())
    if cpu is not None:
        result.server_cpu = _cpu_seconds(server_pid) - cpu
    return result


# --- The lake and the server -----------------------------------------------------------


def _events(n: int, start: float, span: float, users: int, rng: random.Random) -> list[dict]:
    names = ("ad:click", "ad:impression", "ad:impression", "ad:impression", "page:view")
    return [{"event_uuid": str(uuidlib.UUID(int=rng.getrandbits(128), version=4)), "event_name": rng.choice(names),
             "created_at": round(start + rng.random() * span, 6), "user_id": f"u{rng.randrange(users)}",
             "campaign": f"c{rng.randrange(100)}"} for _ in range(n)]


def _ingest(raw: Path, lake: Path, records: list[dict], arrived: float) -> None:
    import gzip
    from datetime import UTC, datetime

    from lake_pipeline.engines.run import ingest_keys
    from lake_pipeline.ingest.firehose import object_key
    from lake_pipeline.settings import load_settings
    from lake_pipeline.storage.objects import LocalStorage

    key = object_key("bench", datetime.fromtimestamp(arrived, UTC))
    LocalStorage(str(raw)).write(key, gzip.compress(b"\n".join(orjson.dumps(r) for r in records)))
    ingest_keys(load_settings(raw_uri=str(raw), lake_uri=str(lake)), [key])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(work: Path, port: int, flush_seconds: float) -> subprocess.Popen:
    env = {**os.environ, "LAKE_SERVE_FLUSH_SECONDS": str(flush_seconds)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lake_pipeline.cli.main", "serve", "--lake", str(work / "lake"), "--raw",
         str(work / "raw"), "--spool", str(work / "spool"), "--port", str(port)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()["events_version"] is not None:
                return proc
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"lake serve did not come up: {proc.communicate()[1][-2000:]}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _freshness(port: int, raw: Path, lake: Path, now: float, rng: random.Random) -> float:
    """Seconds from the commit of one more batch to the first GET that shows it."""
    url = f"http://127.0.0.1:{port}/analytics?timestamp={int(now * 1000)}"
    before = httpx.get(url).content
    _ingest(raw, lake, _events(2000, now - 60, 30, 20_000, rng), now - HOUR)
    log = sorted((lake / "events" / "_delta_log").glob("*.json"))[-1]
    committed = log.stat().st_mtime
    while httpx.get(url).content == before:
        time.sleep(0.01)
    return time.time() - committed


def _exactly_once(lake: Path, accepted: list[str]) -> dict:
    import duckdb
    from deltalake import DeltaTable

    events = DeltaTable(str(lake / "events")).to_pyarrow_table(columns=["event_name", "payload"])  # noqa: F841
    rows = duckdb.sql("SELECT json_extract_string(payload, '$.user_id') AS u, count(*) AS n FROM events "
                      "WHERE starts_with(json_extract_string(payload, '$.user_id'), 'p') GROUP BY 1").fetchall()
    counts = dict(rows)
    return {"accepted": len(accepted), "arrived": sum(1 for u in accepted if counts.get(u) == 1),
            "lost": sum(1 for u in accepted if u not in counts),
            "duplicated": sum(1 for n in counts.values() if n > 1),
            "unanswered_but_arrived": len(set(counts) - set(accepted))}


def _user_table(root: Path, rows: int, users: int, rng: random.Random) -> float:
    """A per-user table of ``rows`` synthetic rows (appended in chunks, then every bucket sorted
    as `lake serve` sorts it); returns the seconds the sorting took."""
    import numpy as np
    import pyarrow as pa

    from lake_pipeline.maintenance.compaction import compact_user_events
    from lake_pipeline.serve import users as u
    from lake_pipeline.settings import USER_EVENTS_TABLE
    from lake_pipeline.tables.lake import Lake

    lake = Lake(str(root))
    lake.create(USER_EVENTS_TABLE, u.USER_EVENTS_SCHEMA, u.PARTITION_BY)
    gen = np.random.default_rng(rng.randrange(1 << 30))
    chunk = 100_000  # like syncs: each append adds one overlapping file per bucket
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = [f"u{x}" for x in gen.integers(0, users, n)]
        created = 1.7e9 + gen.random(n) * 86400 * 30
        data = pa.table({
            "user_id": ids, "created_at": created, "event_uuid": [str(uuidlib.uuid4()) for _ in range(n)],
            "event_name": ["ad:impression"] * n, "event_date": pa.array((created // 86400).astype("int32"), pa.date32()),
            "payload": [f'{{"user_id":"{i}","campaign":"c{j}"}}' for i, j in zip(ids, gen.integers(0, 100, n))],
        })
        buckets = u.bucket_of(pl_series(ids), u.USER_BUCKETS).to_numpy()
        lake.append(USER_EVENTS_TABLE, data.add_column(0, "user_bucket", pa.array(buckets, pa.int32()))
                    .cast(u.USER_EVENTS_SCHEMA), partition_by=u.PARTITION_BY)
    started = time.perf_counter()
    while compact_user_events(lake, u.FILE_BYTES, u.UNSORTED_FILES, most=u.USER_BUCKETS):
        pass
    return time.perf_counter() - started


def pl_series(values: list[str]):
    import polars as pl

    return pl.Series(values, dtype=pl.String)


def user_lookups(rows_list: list[int], work: Path, rng: random.Random, lookups: int = 400) -> list[dict]:
    """p50/p99 of one user's first page, in process (no HTTP), on per-user tables of each size."""
    from lake_pipeline.serve.users import UserEvents
    from lake_pipeline.tables.lake import Lake

    out = []
    for rows in rows_list:
        users = max(1000, rows // 200)  # ~200 events a user, at every size
        sort_seconds = _user_table(work / f"users-{rows}", rows, users, rng)
        index = UserEvents(Lake(str(work / f"users-{rows}")))
        index.reload()
        result = Result(f"users table {rows:,} rows")
        files = []
        for _ in range(lookups):
            user = f"u{rng.randrange(users)}"
            started = time.perf_counter()
            page = index.page(user, {"limit": "100"})
            result.latencies.append(time.perf_counter() - started)
            files.append(len(index.files_for(user)))
            assert page["events"], user
        result.seconds = sum(result.latencies)
        print(result.line() + f"  files read per lookup: max {max(files)}; sorting took {sort_seconds:.1f} s", flush=True)
        out.append({**result.summary(), "max_files_per_lookup": max(files), "sort_seconds": round(sort_seconds, 1)})
    return out


def _post_paths(accepted_by_path: dict[str, str], ts_ms: int):
    n = 0
    while True:
        n += 1
        user = f"p{n}"
        path = f"/analytics?timestamp={ts_ms}&user={user}&{'click' if n % 4 == 0 else 'impression'}"
        accepted_by_path[path] = user
        yield path


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="events in the lake per hour (2 hours)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each load scenario")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--work", default=None, help="working directory (default: a temporary one)")
    ap.add_argument("--user-rows", default="1000000,3000000",
                    help="sizes of per-user tables to time lookups on, comma-separated (empty: skip)")
    return ap.parse_args(argv)


def _scenarios(port: int, pid: int, args: argparse.Namespace, now: float, rng: random.Random,
               work: Path) -> tuple[list[Result], dict, list[str]]:
    """The load scenarios against the running server; returns the results, extra numbers and the
    user ids of the accepted POSTs."""
    results, extra = [], {}
    common = {"connections": args.connections, "seconds": args.seconds, "server_pid": pid}
    cpu0 = _cpu_seconds(pid)
    current = f"/analytics?timestamp={int(now * 1000)}"
    results.append(load(port, "GET current hour", iter(lambda: current, None), **common))
    results.append(load(port, "GET current hour @2000/s", iter(lambda: current, None), rate=2000, **common))
    past = f"/analytics?timestamp={int((now - HOUR) * 1000)}"
    cold = time.perf_counter()
    httpx.get(f"http://127.0.0.1:{port}{past}")
    extra["past_hour_first_answer_ms"] = round((time.perf_counter() - cold) * 1000, 1)
    results.append(load(port, "GET past hour", iter(lambda: past, None), **common))
    time.sleep(6)  # the per-user table is kept every 5 s
    users = iter(lambda: f"/users/u{rng.randrange(20_000)}/events?limit=50", None)
    results.append(load(port, "GET /users/{id}/events", users, **common))
    results.append(load(port, "GET /users/{id}/events x1", users, **{**common, "connections": 1}))
    accepted_by_path: dict[str, str] = {}
    accepted: list[str] = []
    results.append(load(port, "POST event", _post_paths(accepted_by_path, int(now * 1000)), method="POST",
                        on_response=lambda path, status: status == 204 and accepted.append(accepted_by_path[path]),
                        **common))
    extra["server_cpu_seconds"] = round(_cpu_seconds(pid) - cpu0, 2)
    extra["freshness_seconds"] = round(_freshness(port, work / "raw", work / "lake", now, rng), 3)
    time.sleep(2.5)  # the spool's age bound (1 s) and a flush tick
    return results, extra, accepted


def main(argv: list[str] | None = None) -> None:
    from lake_pipeline.engines.run import ingest_keys
    from lake_pipeline.ingest.landing import list_pending
    from lake_pipeline.settings import load_settings

    args = _arguments(argv)
    rng = random.Random(16)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-serve-"))
    (work / "raw").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LAKE_ARRIVAL_PARTITIONS_START", "2000-01-01T00")
    now = time.time()
    hour = int(now // HOUR)
    print(f"lake: {2 * args.events} events in hours {hour - 1} and {hour} (now), in {work}", flush=True)
    _ingest(work / "raw", work / "lake", _events(args.events, (hour - 1) * HOUR, HOUR, 20_000, rng), now - HOUR)
    _ingest(work / "raw", work / "lake", _events(args.events, hour * HOUR, now - hour * HOUR, 20_000, rng), now - HOUR)
    port = _free_port()
    server = _start_server(work, port, flush_seconds=1.0)
    try:
        results, extra, accepted = _scenarios(port, server.pid, args, now, rng, work)
    finally:
        server.terminate()  # graceful: the spool is flushed
        server.wait(timeout=30)
    settings = load_settings(raw_uri=str(work / "raw"), lake_uri=str(work / "lake"))
    ingest_keys(settings, [o.key for o in list_pending(settings)])
    extra["posts"] = _exactly_once(work / "lake", accepted)
    if args.user_rows:
        extra["user_tables"] = user_lookups([int(x) for x in args.user_rows.split(",")], work, rng)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(r.line())
    print(json.dumps({"results": [r.summary() for r in results], **extra, "load_average": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
