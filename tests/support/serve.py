"""`lake serve` in tests: ad events in a real lake, the DuckDB truth for an hour, the app in
process (Starlette's TestClient) and as a real server on a free port (e2e only)."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import duckdb
import httpx
from deltalake import DeltaTable

from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.settings import Settings
from tests.support.cli import run_lake_async
from tests.support.records import HOUR, T0, event, write_object

HOUR_NUMBER = int(T0 // 3600)  # the test hour, 2025-11-20T13, as hours since the epoch
HOUR_MS = int(T0 * 1000)


def ad_events(n: int, *, at: float = T0 + 60, users: int = 7, seed: int = 0, spread: float = 1.0) -> list[dict]:
    """``n`` events: clicks, impressions and page views of ``users`` users, ``spread`` s apart from ``at``."""
    names = ("ad:click", "ad:impression", "ad:impression", "page:view")
    rng = random.Random(seed)
    return [
        event(str(uuidlib.uuid4()), names[(i + seed) % len(names)], at + i * spread, user_id=f"u{rng.randrange(users)}")
        for i in range(n)
    ]


def ingest_records(settings: Settings, raw_dir: Path, records: list[dict], minute: int, second: int = 0) -> str:
    """One Firehose object of ``records``, ingested as one batch (one events version)."""
    key = write_object(raw_dir, records, minute=minute, second=second, uid=f"{minute:02d}{second:02d}-{uuidlib.uuid4()}")
    ingest_keys(settings, [key])
    return key


def truth(lake_dir: Path, hour: int, click: str = "ad:click", impression: str = "ad:impression") -> bytes:
    """The /analytics answer for ``hour`` by one DuckDB query over the whole events table."""
    # The whole table as Arrow first: DuckDB's filter pushdown into a dataset of compacted files
    # fails on their string_view columns (pyarrow has no string/string_view comparison kernel).
    events = DeltaTable(str(lake_dir / "events")).to_pyarrow_table(  # noqa: F841 (DuckDB reads it by name)
        columns=["event_name", "created_at", "payload"])
    users, clicks, impressions = duckdb.sql(
        f"""SELECT count(DISTINCT json_extract_string(payload, '$.user_id')),
                   count(*) FILTER (WHERE event_name = '{click}'), count(*) FILTER (WHERE event_name = '{impression}')
            FROM events WHERE event_name IN ('{click}', '{impression}')
              AND created_at >= {hour * 3600} AND created_at < {(hour + 1) * 3600}"""
    ).fetchall()[0]
    return f"unique_users,{users}\nclicks,{clicks}\nimpressions,{impressions}\n".encode()


@contextlib.asynccontextmanager
async def asgi_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling ``app`` in process, inside its lifespan (background tasks running)."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lake") as client:
            yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(*args: str, cwd: Path, port: int, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """`lake serve --port port *args` in a process of its own, until /healthz answers; killed at the end."""
    proc = run_lake_async("serve", "--port", str(port), *args, cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"lake serve did not come up: {proc.communicate(timeout=5)}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


__all__ = ["HOUR", "HOUR_MS", "HOUR_NUMBER", "T0", "ad_events", "asgi_client", "free_port", "ingest_records", "serving", "truth"]
