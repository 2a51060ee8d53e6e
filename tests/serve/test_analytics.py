"""GET /analytics against real lakes: exact counts (= a DuckDB query over events), the current
hour kept up to date from the files each version added, rewritten hours recomputed, 400s."""

from __future__ import annotations

import pytest
from lake_pipeline.maintenance.compaction import compact
from lake_pipeline.serve.app import create_app
from lake_pipeline.serve.hours import HourlyAnalytics
from lake_pipeline.settings import EVENTS_TABLE
from tests.support.serve import HOUR_MS, HOUR_NUMBER, T0, ad_events, asgi_client, ingest_records, truth

NOW = T0 + 1800  # the test hour is the current hour


@pytest.fixture
def analytics(lake, settings):
    return HourlyAnalytics(lake, settings, clock=lambda: NOW)


def test_counts_equal_duckdb_for_current_past_and_empty_hours(settings, raw_dir, lake_dir, lake, analytics):
    ingest_records(settings, raw_dir, ad_events(300, users=40) + ad_events(50, at=T0 - 3000, seed=1), minute=5)
    assert analytics.refresh()
    assert analytics.cached(HOUR_NUMBER) == truth(lake_dir, HOUR_NUMBER)  # warmed: the current hour
    assert truth(lake_dir, HOUR_NUMBER) != b"unique_users,0\nclicks,0\nimpressions,0\n"
    for hour in (HOUR_NUMBER - 1, HOUR_NUMBER + 1):
        assert analytics.answer(hour) == truth(lake_dir, hour)
    assert analytics.answer(HOUR_NUMBER + 1) == b"unique_users,0\nclicks,0\nimpressions,0\n"


def test_new_batches_read_only_the_files_they_added(settings, raw_dir, lake_dir, lake, analytics):
    ingest_records(settings, raw_dir, ad_events(100, users=10), minute=5)
    analytics.refresh()
    analytics.answer(HOUR_NUMBER - 1)  # a held past hour that a late event then changes
    before = set(analytics.follower.files)
    late = ad_events(9, at=T0 - 100, users=3, seed=2)
    ingest_records(settings, raw_dir, ad_events(120, at=T0 + 900, users=25, seed=3) + late, minute=6)
    change_files = set(lake.add_actions(EVENTS_TABLE).column("path").to_pylist())
    assert analytics.refresh()
    assert set(analytics.follower.files) - before == {p for p in change_files - before if "event_type=ad" in p}
    assert analytics.cached(HOUR_NUMBER) == truth(lake_dir, HOUR_NUMBER)
    assert analytics.cached(HOUR_NUMBER - 1) == truth(lake_dir, HOUR_NUMBER - 1)
    assert not analytics.refresh()  # nothing new: no version moved


def test_hours_stay_exact_when_files_are_rewritten(settings, raw_dir, lake_dir, lake, analytics):
    for minute in range(5, 9):
        ingest_records(settings, raw_dir, ad_events(60, at=T0 + minute * 60, users=12, seed=minute), minute=minute)
    analytics.refresh()
    expected = truth(lake_dir, HOUR_NUMBER)
    plan, results = compact(lake, settings.compact_target_file_bytes, settings.compact_group_max_bytes)
    assert any(r.files_removed for r in results)
    assert analytics.refresh()
    assert analytics.cached(HOUR_NUMBER) == expected  # compaction: same rows, recomputed
    assert lake.delete(EVENTS_TABLE, "event_name = 'ad:click' AND created_at < " + str(T0 + 400)) > 0
    analytics.refresh()
    assert analytics.cached(HOUR_NUMBER) == truth(lake_dir, HOUR_NUMBER) != expected


@pytest.mark.anyio
async def test_get_over_asgi_and_bad_timestamps(settings, raw_dir, lake_dir, tmp_path):
    ingest_records(settings, raw_dir, ad_events(80, users=9), minute=5)
    app = create_app(settings.with_overrides(serve_spool_dir=str(tmp_path / "spool")), clock=lambda: NOW)
    async with asgi_client(app) as client:
        app.state.service.analytics.refresh()
        ok = await client.get("/analytics", params={"timestamp": HOUR_MS + 5})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
        assert ok.content == truth(lake_dir, HOUR_NUMBER)
        assert ok.text.splitlines()[0].startswith("unique_users,")
        for params, reason in [({}, "timestamp is required"), ({"timestamp": "1.5"}, "must be an integer"),
                               ({"timestamp": "abc"}, "must be an integer"), ({"timestamp": "-1"}, "out of range"),
                               ({"timestamp": str(4102444800 * 1000)}, "out of range")]:
            bad = await client.get("/analytics", params=params)
            assert bad.status_code == 400 and reason in bad.text, (params, bad.text)
        health = (await client.get("/healthz")).json()
        assert health["status"] == "ok" and health["events_version"] == app.state.service.analytics.version
        schema = (await client.get("/openapi.json")).json()
        assert {"get", "post"} <= set(schema["paths"]["/analytics"]) and "/users/{user_id}/events" in schema["paths"]
        assert "openapi.json" in (await client.get("/docs")).text


def test_old_hours_keep_only_their_answer_and_late_events_drop_it(settings, raw_dir, lake_dir, lake, analytics):
    old = HOUR_NUMBER - 5
    ingest_records(settings, raw_dir, ad_events(60, at=old * 3600 + 10, users=8), minute=5)
    analytics.refresh()
    before = analytics.answer(old)
    assert before == truth(lake_dir, old)
    assert analytics._hours[old].users is None  # answer only: no users' set for an old hour
    ingest_records(settings, raw_dir, ad_events(30, at=old * 3600 + 900, users=20, seed=4), minute=6)  # late events
    analytics.refresh()
    assert analytics.cached(old) is None  # dropped, not patched
    assert analytics.answer(old) == truth(lake_dir, old) != before
