"""POST /analytics: 204 once fsynced in the spool, Firehose-layout objects in the raw zone,
a restart flushes what the spool holds (torn last line left out), a re-flush overwrites,
400 and nothing written for bad input, and POST -> ingest -> GET sees it."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.ingest.firehose import key_hour
from lake_pipeline.ingest.landing import list_pending
from lake_pipeline.serve.app import create_app
from lake_pipeline.serve.spool import OPEN, SEALED, RawZoneSink, Segment, Spool
from lake_pipeline.storage.objects import LocalStorage
from tests.support.serve import HOUR_MS, HOUR_NUMBER, T0, asgi_client, truth


def _objects(raw_dir) -> dict[str, list[dict]]:
    storage = LocalStorage(str(raw_dir))
    return {o.key: [json.loads(line) for line in gzip.decompress(storage.read(o.key)).splitlines()]
            for o in storage.list()}


@pytest.fixture
def serve_settings(settings, tmp_path):
    return settings.with_overrides(serve_spool_dir=str(tmp_path / "spool"), serve_flush_seconds=3600.0)


@pytest.mark.anyio
async def test_posts_are_spooled_then_flushed_as_firehose_objects(serve_settings, raw_dir):
    app = create_app(serve_settings, clock=lambda: T0 + 60)
    spool = app.state.service.spool
    async with asgi_client(app) as client:
        forms = [{"click": ""}, {"impression": ""}, {"event": "click"}, {"event": "impression"}]
        for i, form in enumerate(forms):
            r = await client.post("/analytics", params={"timestamp": HOUR_MS + i, "user": f"u{i}", **form})
            assert r.status_code == 204 and r.content == b""
        assert spool.accepted == 4 and not _objects(raw_dir)  # durable in the spool, not yet delivered
        segment = next(spool.dir.glob(f"*{OPEN}"))
        assert len(segment.read_bytes().splitlines()) == 4
        assert spool.flush(force=True) == 1
    [(key, records)] = _objects(raw_dir).items()
    assert key_hour(key) is not None and key.endswith(".gz") and "-1-" in key
    assert [r["event_name"] for r in records] == ["ad:click", "ad:impression", "ad:click", "ad:impression"]
    assert [r["user_id"] for r in records] == ["u0", "u1", "u2", "u3"]
    assert [r["created_at"] for r in records] == [(HOUR_MS + i) / 1000 for i in range(4)]
    assert len({r["event_uuid"] for r in records}) == 4
    assert not _segments(spool.root)  # delivered segments are gone


@pytest.mark.anyio
async def test_bad_posts_answer_400_and_write_nothing(serve_settings, raw_dir):
    app = create_app(serve_settings)
    spool = app.state.service.spool
    cases = [
        ({"timestamp": HOUR_MS, "user": "u1"}, "none was given"),
        ({"timestamp": HOUR_MS, "user": "u1", "click": "", "impression": ""}, "not both"),
        ({"timestamp": HOUR_MS, "user": "u1", "click": "", "event": "impression"}, "not both"),
        ({"timestamp": HOUR_MS, "user": "u1", "event": "view"}, "event must be click or impression"),
        ({"timestamp": HOUR_MS, "click": ""}, "user is required"),
        ({"timestamp": HOUR_MS, "user": " ", "click": ""}, "user is required"),
        ({"user": "u1", "click": ""}, "timestamp is required"),
        ({"timestamp": "soon", "user": "u1", "click": ""}, "must be an integer"),
        ({"timestamp": "-5", "user": "u1", "click": ""}, "out of range"),
    ]
    async with asgi_client(app) as client:
        for params, reason in cases:
            r = await client.post("/analytics", params=params)
            assert r.status_code == 400 and reason in r.text, (params, r.text)
        assert spool.flush(force=True) == 0
    assert spool.accepted == 0 and not _objects(raw_dir) and not _segments(spool.root)


def _segments(root) -> list:
    return [p for p in root.rglob("*") if p.suffix in (OPEN, SEALED)]


def _spool(tmp_path, raw_dir) -> Spool:
    return Spool(tmp_path / "spool", RawZoneSink(str(raw_dir), "serve"), 1 << 20, 3600.0)


def test_a_restart_flushes_what_the_spool_holds_and_a_reflush_overwrites(tmp_path, raw_dir):
    spool = _spool(tmp_path, raw_dir)
    spool.open()
    left = Segment.new(spool.dir, T0)  # what a killed process left: two answered records, a torn third
    os.write(left.fd, b'{"event_uuid":"a","event_name":"ad:click","created_at":1.0,"user_id":"x"}\n'
                      b'{"event_uuid":"b","event_name":"ad:click","created_at":2.0,"user_id":"y"}\n{"event_uu')
    os.close(left.fd)
    spool.close()  # the process dies: its directory's lock goes with it
    again = _spool(tmp_path, raw_dir)
    again.open()  # a restart: the dead owner's segments are adopted, sealed
    [sealed] = again.sealed()
    key = again.sink.key(sealed)
    records = sealed.records()
    again.sink.deliver(sealed, records)  # delivered, then "killed" before the segment was deleted
    first = LocalStorage(str(raw_dir)).read(key)
    assert again.flush() == 1  # the next start delivers it again: same key, same bytes
    assert _objects(raw_dir) == {key: [{"event_uuid": "a", "event_name": "ad:click", "created_at": 1.0, "user_id": "x"},
                                       {"event_uuid": "b", "event_name": "ad:click", "created_at": 2.0, "user_id": "y"}]}
    assert LocalStorage(str(raw_dir)).read(key) == first and not again.sealed()
    assert [p.name for p in again.root.iterdir()] == [again.dir.name]  # the dead owner's directory is gone


def test_live_owners_keep_their_segments_and_dead_ones_are_adopted(tmp_path, raw_dir):
    first, second = _spool(tmp_path, raw_dir), _spool(tmp_path, raw_dir)
    first.open()
    first._write(b'{"a":1}\n')
    second.open()
    assert second.flush(force=True) == 0 and _segments(first.dir)  # first is alive: not second's to deliver
    first.close()
    assert second.flush() == 1 and not _segments(tmp_path / "spool")
    assert [r for v in _objects(raw_dir).values() for r in v] == [{"a": 1}]


def test_segments_are_sealed_by_size_and_age(tmp_path, raw_dir):
    now = [T0]
    spool = Spool(tmp_path / "spool", RawZoneSink(str(raw_dir), "serve"), 100, 10.0, clock=lambda: now[0])
    spool.open()
    spool._write(b'"' + b"x" * 58 + b'"\n')
    assert spool.flush() == 0  # neither full nor old
    spool._write(b'"' + b"y" * 58 + b'"\n')
    assert spool.flush() == 1  # full
    spool._write(b'"z"\n')
    now[0] += 11
    assert spool.flush() == 1  # old
    assert sorted(len(v) for v in _objects(raw_dir).values()) == [1, 2]


@pytest.mark.anyio
async def test_post_then_ingest_then_get_sees_it(serve_settings, raw_dir, lake_dir):
    app = create_app(serve_settings, clock=lambda: T0 + 60)
    service = app.state.service
    async with asgi_client(app) as client:
        before = (await client.get("/analytics", params={"timestamp": HOUR_MS})).text
        assert before == "unique_users,0\nclicks,0\nimpressions,0\n"
        for i, kind in enumerate(["click", "click", "impression", "click"]):
            r = await client.post("/analytics", params={"timestamp": HOUR_MS + 1000 * i, "user": f"u{i % 3}", kind: ""})
            assert r.status_code == 204
        service.spool.flush(force=True)
        # the batch `lake ingest` runs (tests/serve/test_http.py runs the command itself, over HTTP)
        keys = [o.key for o in list_pending(serve_settings)]
        assert len(keys) == 1 and ingest_keys(serve_settings, keys).batches[0].inserted == 4
        service.analytics.refresh()
        after = await client.get("/analytics", params={"timestamp": HOUR_MS + 3_599_999})
    assert after.content == b"unique_users,3\nclicks,3\nimpressions,1\n" == truth(lake_dir, HOUR_NUMBER)
