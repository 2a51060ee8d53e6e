"""`lake serve` as a real process on a free port: POSTs accepted before a SIGKILL all arrive,
exactly once, after a restart and `lake ingest`; GET then answers the lake's counts."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from deltalake import DeltaTable

from tests.support.cli import invoke
from tests.support.serve import HOUR_MS, HOUR_NUMBER, free_port, serving, truth

pytestmark = pytest.mark.e2e


async def _post_wave(port: int, users: range, accepted: list[str], kill_after: int | None, proc) -> None:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10) as client:
        async def post(user: int) -> None:
            kind = "click" if user % 3 else "impression"
            try:
                r = await client.post("/analytics", params={"timestamp": HOUR_MS + user, "user": f"k{user}", kind: ""})
            except httpx.HTTPError:
                return  # the server died first: not accepted
            if r.status_code == 204:
                accepted.append(f"k{user}")
                if kill_after is not None and len(accepted) == kill_after:
                    proc.kill()  # SIGKILL, mid-wave: other requests are in flight

        await asyncio.gather(*(post(u) for u in users))


def test_sigkill_loses_no_accepted_post(tmp_path):
    raw, lake, spool = tmp_path / "raw", tmp_path / "lake", tmp_path / "spool"
    raw.mkdir()
    args = ("--lake", str(lake), "--raw", str(raw), "--spool", str(spool))
    accepted: list[str] = []
    port = free_port()
    with serving(*args, cwd=tmp_path, port=port, env={"LAKE_SERVE_FLUSH_SECONDS": "3600"}) as proc:
        asyncio.run(_post_wave(port, range(400), accepted, kill_after=150, proc=proc))
        assert proc.wait(timeout=10) == -9
    assert 150 <= len(accepted) < 400
    assert not any(raw.rglob("*.gz"))  # everything accepted was still only in the spool
    port = free_port()
    with serving(*args, cwd=tmp_path, port=port) as proc:  # the restart flushes the spool
        deadline = time.monotonic() + 30
        def segments() -> list:
            return [p for p in spool.rglob("*") if p.suffix in (".open", ".seg")]

        while segments() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not segments() and any(raw.rglob("*.gz"))
        assert len([p for p in spool.iterdir() if p.is_dir()]) == 1  # the killed server's directory was adopted
        # (a landing zone whose only hour is the current one has no arrival partition yet: name an earlier start)
        result = invoke("ingest", "--raw", str(raw), "--lake", str(lake), env={"LAKE_ARRIVAL_PARTITIONS_START": "2025-11-20T00"})
        assert result.exit_code == 0, result.stderr
        users = DeltaTable(str(lake / "events")).to_pyarrow_table(columns=["payload"]).column("payload").to_pylist()
        counts: dict[str, int] = {}
        for payload in users:
            user = payload.split('"user_id":"', 1)[1].split('"', 1)[0]
            counts[user] = counts.get(user, 0) + 1
        assert all(counts.get(u) == 1 for u in accepted)  # every accepted POST, once
        assert all(n == 1 for n in counts.values())  # nothing twice (unanswered ones may have landed once)
        expected = truth(lake, HOUR_NUMBER)
        deadline = time.monotonic() + 30
        while (got := httpx.get(f"http://127.0.0.1:{port}/analytics", params={"timestamp": HOUR_MS}).content) != expected:
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        assert expected.startswith(f"unique_users,{len(counts)}\n".encode())
