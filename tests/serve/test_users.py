"""GET /users/{user_id}/events from the per-user table: kept by following events (appends,
compactions skipped, a rebuild's delete re-read), sorted into files that a lookup prunes by
their user_id statistics, pages newest first with a cursor, 400s."""

from __future__ import annotations

import duckdb
import orjson
import pytest
from deltalake import DeltaTable

from lake_pipeline.maintenance.compaction import buckets_to_sort, compact, compact_user_events
from lake_pipeline.serve.app import create_app
from lake_pipeline.serve.users import UserEvents, user_bucket
from lake_pipeline.settings import EVENTS_TABLE, USER_EVENTS_TABLE
from tests.support.serve import T0, ad_events, asgi_client, ingest_records


def _truth(lake_dir, user: str) -> list[str]:
    events = DeltaTable(str(lake_dir / "events")).to_pyarrow_table(columns=["event_uuid", "created_at", "payload"])  # noqa: F841
    rows = duckdb.sql(f"""SELECT event_uuid FROM events WHERE json_extract_string(payload, '$.user_id') = '{user}'
                          ORDER BY created_at DESC, event_uuid DESC""").fetchall()
    return [r[0] for r in rows]


def _all_pages(users: UserEvents, user: str, **params) -> list[dict]:
    out, cursor = [], None
    while True:
        page = orjson.loads(orjson.dumps(users.page(user, {**params, **({"cursor": cursor} if cursor else {})})))
        out += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def test_pages_newest_first_equal_the_lake(settings, raw_dir, lake_dir, lake):
    for minute in range(5, 8):
        ingest_records(settings, raw_dir, ad_events(90, at=T0 + minute * 60, users=6, seed=minute, spread=0.5),
                       minute=minute)
    users = UserEvents(lake)
    users.maintain()
    assert users.indexed_version() == lake.table(EVENTS_TABLE).version()
    for user in ("u0", "u3"):
        pages = _all_pages(users, user, limit="7")
        assert [e["event_uuid"] for e in pages] == _truth(lake_dir, user) and len(pages) > 7
        assert pages[0]["payload"] == {"user_id": user}
    window = users.page("u0", {"from": str(int((T0 + 360) * 1000)), "to": str(int((T0 + 420) * 1000))})["events"]
    assert window and all(T0 + 360 <= e["created_at"] < T0 + 420 for e in window)
    assert users.page("nobody", {})["events"] == []


def test_the_table_follows_appends_compactions_and_deletes(settings, raw_dir, lake_dir, lake):
    users = UserEvents(lake)
    ingest_records(settings, raw_dir, ad_events(40, users=4), minute=5)
    users.maintain()
    ingest_records(settings, raw_dir, ad_events(40, at=T0 + 600, users=4, seed=1), minute=6)
    compact(lake, settings.compact_target_file_bytes, settings.compact_group_max_bytes)
    users.maintain()  # an append and a compaction: the append's rows only
    assert _all_pages(users, "u1") and [e["event_uuid"] for e in _all_pages(users, "u1")] == _truth(lake_dir, "u1")
    assert lake.delete(EVENTS_TABLE, f"created_at < {T0 + 70}") > 0  # a rebuild-like delete: re-read all
    users.maintain()
    for user in ("u0", "u1", "u2", "u3"):
        assert [e["event_uuid"] for e in _all_pages(users, user)] == _truth(lake_dir, user)


@pytest.mark.heavy
def test_sorted_buckets_prune_files_by_user(settings, raw_dir, lake_dir, lake):
    users = UserEvents(lake)
    bucket = user_bucket("u7")
    pool = [u for u in (f"u{i}" for i in range(20_000)) if user_bucket(u) == bucket]  # one bucket: one sort
    for minute in range(5, 11):  # six syncs: six overlapping files in that bucket
        records = ad_events(300, at=T0 + minute * 60, users=len(pool), seed=minute, spread=0.1)
        for r in records:
            r["user_id"] = pool[int(r["user_id"][1:])]
        ingest_records(settings, raw_dir, records, minute=minute)
        users.sync()
    users.reload()
    before = len(users.files_for("u7"))
    assert before >= 5
    assert compact_user_events(lake, 1 << 20, 5, most=64) == [bucket]
    assert not buckets_to_sort(lake, USER_EVENTS_TABLE, 1 << 20, 5)  # sorted: nothing left to sort
    users.reload()
    assert len(users.files_for("u7")) <= 2 < before
    assert [e["event_uuid"] for e in _all_pages(users, "u7")] == _truth(lake_dir, "u7")


@pytest.mark.anyio
async def test_user_events_over_asgi_and_bad_parameters(settings, raw_dir, lake_dir, tmp_path):
    ingest_records(settings, raw_dir, ad_events(30, users=3), minute=5)
    app = create_app(settings.with_overrides(serve_spool_dir=str(tmp_path / "spool")))
    async with asgi_client(app) as client:
        app.state.service.users.maintain()
        r = await client.get("/users/u1/events", params={"limit": 2})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["user_id"] == "u1" and len(body["events"]) == 2 and body["next_cursor"]
        rest = (await client.get("/users/u1/events", params={"cursor": body["next_cursor"], "limit": 1000})).json()
        assert [e["event_uuid"] for e in body["events"] + rest["events"]] == _truth(lake_dir, "u1")
        for params, reason in [({"limit": "0"}, "limit must be between"), ({"limit": "x"}, "limit must be an integer"),
                               ({"cursor": "nope"}, "is not a next_cursor"), ({"from": "x"}, "from must be an integer")]:
            bad = await client.get("/users/u1/events", params=params)
            assert bad.status_code == 400 and reason in bad.text, (params, bad.text)


def test_maintain_does_nothing_until_the_followed_events_version_moves(settings, raw_dir, lake_dir, lake):
    known = [None]
    users = UserEvents(lake, events_version=lambda: known[0])
    ingest_records(settings, raw_dir, ad_events(30, users=3), minute=5)
    known[0] = lake.table(EVENTS_TABLE).version()
    users.maintain()
    before = _all_pages(users, "u1")
    ingest_records(settings, raw_dir, ad_events(30, users=3, seed=9), minute=6)
    users.maintain()  # the follower has not seen the new version yet: nothing opened, nothing synced
    assert _all_pages(users, "u1") == before and users.indexed_version() == known[0]
    known[0] = lake.table(EVENTS_TABLE).version()
    users.maintain()
    assert [e["event_uuid"] for e in _all_pages(users, "u1")] == _truth(lake_dir, "u1") != [e["event_uuid"] for e in before]
