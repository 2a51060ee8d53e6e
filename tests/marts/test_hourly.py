"""hourly_event_counts on real Delta tables: exact agreement with `events`, incremental updates,
its checks, its automation, and blocking checks upstream."""

from __future__ import annotations

import pytest

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pyarrow as pa
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from lake_pipeline.cli.main import main as lake_cli
from lake_pipeline.contract import EVENTS_SCHEMA
from lake_pipeline.defs.shared import EVENTS, QUARANTINE, batch_run_tags
from lake_pipeline.defs.marts.assets import HOURLY_EVENT_COUNTS
from lake_pipeline.defs.resources import NO_CHUNK_PARSER, LakeResource
from lake_pipeline.maintenance import compaction
from lake_pipeline.marts import hourly as marts
from lake_pipeline.marts.hourly import HOURLY_COUNTS_SCHEMA, update_hourly_counts
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_COUNTS_TABLE, HOURLY_FEED_TABLE, MARTS_POOL
from tests.support.marts import assert_mart_exact, mart_frame
from tests.support.records import HOUR, T0, event, write_object
from tests.support.runs import ingest_one_object_per_batch, ingest_run, run_job, synthetic_landing_zone

BIG_A = 123456789012345678901234567890  # two user ids a float64 cannot tell apart
BIG_B = 123456789012345678901234567891


def _hours(*keys: str) -> list[str]:
    return sorted(keys)


@pytest.mark.heavy
def test_hourly_counts_agree_exactly_with_events_through_batches_compaction_and_deletes(
    defs, settings, raw_dir, lake, lake_dir, instance
):
    # Batch 1: hour 13, late events at 10:xx and the day before, users of every JSON kind.
    k1 = write_object(raw_dir, [
        event("a", "page:view", T0 + 60, user_id="u1"),
        event("b", "page:view", T0 + 120, user_id="u1"),
        event("c", "page:view", T0 + 180, user_id="u2"),
        event("d", "click:button:web", T0 + 240, user_id=7),
        event("e", "click:button:web", T0 + 300, user_id="7"),  # the same user as 7, as text
        event("f", "click", T0 + 360, user_id=None),
        event("g", "click", T0 + 420),
        json.dumps(event("h", "purchase:completed", T0 + 480, user_id=BIG_A)).encode(),
        json.dumps(event("i", "purchase:completed", T0 + 540, user_id=BIG_B)).encode(),
        event("j", "page:view", T0 - 3 * 3600 + 5, user_id="u9"),
        event("k", "app", T0 - 20 * 3600, user_id={"id": 1}),
        event("l", "page:view", T0 + 3599.9999, user_id="u3"),  # last instant of hour 13
    ], minute=1)
    # The batch's own run builds the mart right after events: there is none yet, so the batch is
    # added to nothing, from the feed the ingest wrote (no payload read back).
    result = ingest_run(defs, settings, instance, [k1])
    assert result.success
    meta = result.asset_materializations_for_node("hourly_event_counts")[0].metadata
    assert meta["mode"].value == "add" and "does not exist yet" in meta["reason"].value
    assert meta["new_rows_from"].value == "_hourly_feed"
    got = assert_mart_exact(lake_dir)
    first = run_job(defs, "hourly_event_counts_job", settings, instance)  # what `lake marts` runs: nothing to do
    assert first.success
    assert first.asset_materializations_for_node("hourly_event_counts")[0].metadata["mode"].value == "nothing"
    # ... and its check still compares the hours of the latest update that wrote any.
    check = {e.check_name: e for e in first.get_asset_check_evaluations()}["hourly_event_counts_match_events_check"]
    assert check.passed and check.metadata["hours_checked"].value == meta["hours_recomputed"].value > 0
    row = got.filter((pl.col("event_name") == "purchase:completed")).row(0, named=True)
    assert (row["events"], row["unique_users"]) == (2, 2)  # exact beyond 64 bits
    row = got.filter(pl.col("event_name") == "click:button:web").row(0, named=True)
    assert (row["events"], row["unique_users"], row["event_subtype"]) == (2, 1, "button")
    assert got.filter(pl.col("event_name") == "click").row(0, named=True)["unique_users"] == 0
    checks = {e.check_name: e for e in first.get_asset_check_evaluations()}
    assert checks["hourly_event_counts_match_events_check"].passed

    # Batch 2 touches hours 13 and 14 only (and brings a duplicate of batch 1).
    k2 = write_object(raw_dir, [
        event("a", "page:view", T0 + 60, user_id="u1"),
        event("m", "page:view", T0 + 600, user_id="u4"),
        event("n", "search:query", T0 + 3600 + 10, user_id="u1"),
    ], minute=2)
    second = ingest_run(defs, settings, instance, [k2])
    assert second.success
    meta = second.asset_materializations_for_node("hourly_event_counts")[0].metadata
    assert meta["full_rebuild"].value is False and meta["mode"].value == "add"
    assert meta["hours"].value == _hours("2025-11-20T13", "2025-11-20T14")
    assert meta["batch_ids"].value == [2] and meta["new_event_rows_read"].value == 2
    # The per-hour comparison with events is not part of a batch's run; the 30-minute job runs it.
    assert "hourly_event_counts_match_events_check" not in {e.check_name for e in second.get_asset_check_evaluations()}
    checked = run_job(defs, "hourly_event_counts_freshness_job", settings, instance)
    assert {e.check_name: e.passed for e in checked.get_asset_check_evaluations()}[
        "hourly_event_counts_match_events_check"]
    assert_mart_exact(lake_dir)

    # Two batches before the mart runs once (`lake ingest --no-mart`, or a mart step that did not run):
    # both are picked up (not only the latest run's batch).
    write_object(raw_dir, [event("o", "video:play", T0 + 2 * 3600 + 1, user_id="u5")], minute=3)
    write_object(raw_dir, [event("p", "video:play", T0 - 6 * 3600, user_id="u6")], minute=4)
    ingest_one_object_per_batch(settings)
    update = update_hourly_counts(lake)
    assert update.batch_ids == [3, 4] and update.hours == _hours("2025-11-20T07", "2025-11-20T15")
    assert_mart_exact(lake_dir)

    # Compaction changes no rows: the mart has nothing to do and makes no commit.
    mart_version = DeltaTable(str(lake_dir / HOURLY_COUNTS_TABLE)).version()
    compaction.compact(lake, settings.compact_target_file_bytes, settings.compact_group_max_bytes)
    update = update_hourly_counts(lake)
    assert not update.changed and update.hours == []
    assert DeltaTable(str(lake_dir / HOURLY_COUNTS_TABLE)).version() == mart_version
    # Even with the pre-compaction files vacuumed, the check compares against the same rows.
    assert compaction.vacuum(lake, 0, enforce_retention_duration=False).files_deleted > 0
    assert marts.counts_match_events(lake, update.hours).passed

    # A delete (what a rebuild does) recomputes the dates it touched.
    DeltaTable(str(lake_dir / EVENTS_TABLE)).delete("event_type = 'page'")
    update = update_hourly_counts(lake)
    assert update.changed and "non-append" in update.reason
    assert len(update.hours) == 24 * 1 and update.hours[0] == "2025-11-20T00"
    got = assert_mart_exact(lake_dir)
    assert got.filter(pl.col("event_type") == "page").height == 0

    # `lake query` reads it.
    out = CliRunner().invoke(lake_cli, ["query", "--lake", str(lake_dir), "--format", "csv",
                                        "SELECT sum(events) AS n FROM hourly_event_counts"])
    assert out.exit_code == 0, out.output
    assert out.output.strip().splitlines()[-1] == str(got.get_column("events").sum())


@pytest.mark.heavy
@pytest.mark.parametrize("from_feed", [True, False], ids=["built-from-the-feed", "rebuilt-from-events"])
def test_synthetic_landing_zone_mart_matches_duckdb_over_events(settings, raw_dir, lake, lake_dir, from_feed):
    import shutil

    import duckdb

    synthetic_landing_zone(raw_dir, 4000, object_seconds=360, seed=11)
    ingest_one_object_per_batch(settings)
    if not from_feed:
        shutil.rmtree(lake_dir / HOURLY_FEED_TABLE)
    update = update_hourly_counts(lake)
    assert update.rows_written > 100 and len(update.batch_ids) == (10 if from_feed else 0)
    assert (update.mode, update.rows_from) == ((marts.ADD, HOURLY_FEED_TABLE) if from_feed else (marts.REBUILD, ""))
    events = DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    want = con.sql("""
        SELECT to_timestamp(floor(created_at / 3600) * 3600) AS event_hour, event_name, event_type, event_subtype,
               count(*) AS events, count(DISTINCT payload ->> '$.user_id') AS unique_users
        FROM events GROUP BY ALL ORDER BY event_hour, event_name
    """).pl().with_columns(pl.col("event_hour").dt.cast_time_unit("us"), pl.col("events", "unique_users").cast(pl.Int64))
    assert mart_frame(lake_dir).equals(want)
    assert marts.counts_match_events(lake, update.hours).passed


def test_checks_fail_when_the_mart_disagrees_or_goes_stale(settings, raw_dir, lake, lake_dir):
    key = write_object(raw_dir, [event("a", at=T0 + 60, user_id="u1"), event("b", at=T0 + 3660, user_id="u2")],
                       minute=1)
    ingest_one_object_per_batch(settings)
    update_hourly_counts(lake)
    assert key and marts.counts_match_events(lake, ["2025-11-20T13", "2025-11-20T14"]).passed
    fresh = marts.freshness(lake, max_lag_hours=3, now=HOUR + timedelta(hours=3))
    assert fresh.passed and fresh.metadata["newest_hour"] == "2025-11-20T14"
    stale = marts.freshness(lake, max_lag_hours=3, now=HOUR + timedelta(hours=6))
    assert not stale.passed and "ended 4.0 h ago" in stale.description

    # Events move on while the mart does not: freshness says it is behind.
    write_object(raw_dir, [event("c", at=T0 + 2 * 3600 + 1)], minute=2)
    ingest_one_object_per_batch(settings)
    behind = marts.freshness(lake, max_lag_hours=3, now=HOUR + timedelta(hours=3))
    assert not behind.passed and "behind events' newest hour 2025-11-20T15" in behind.description

    # A wrong count in one hour: the per-hour and total comparisons both catch it.
    uri = str(lake_dir / HOURLY_COUNTS_TABLE)
    bad = pa.Table.from_pylist([{"event_hour": datetime(2025, 11, 20, 13, tzinfo=UTC), "event_name": "page:view",
                                 "event_type": "page", "event_subtype": "view", "events": 5, "unique_users": 1}],
                               schema=HOURLY_COUNTS_SCHEMA)
    write_deltalake(uri, bad, mode="overwrite", predicate="event_hour = '2025-11-20T13:00:00Z'")
    outcome = marts.counts_match_events(lake, ["2025-11-20T13"])
    assert not outcome.passed
    assert "2025-11-20T13: mart 5 != events 1" in outcome.description and "total: mart 6 != events 2" in outcome.description


def _corrupt_next_batch(lake_dir, batch_id: int) -> None:
    """A row claiming to come from the next batch, written behind the pipeline's back: that batch's
    blocking conservation check will then fail (events holds one row more than the ledger says)."""
    row = {"event_uuid": "forged", "event_name": "page:view", "created_at": T0 + 60,
           "created_datetime": "2025-11-20T13:01:00.000000Z", "event_type": "page", "event_subtype": "view",
           "event_date": datetime(2025, 11, 20).date(), "payload": "{}", "_source_key": "manual", "_ordinal": 0,
           "_batch_id": batch_id}
    write_deltalake(str(lake_dir / EVENTS_TABLE), pa.Table.from_pylist([row], schema=EVENTS_SCHEMA), mode="append",
                    partition_by=["event_date", "event_type"])


def test_a_failed_blocking_check_on_events_stops_hourly_event_counts_in_the_run(defs, settings, raw_dir, lake_dir,
                                                                                  instance):
    _corrupt_next_batch(lake_dir, 1)
    key = write_object(raw_dir, [event("a", user_id="u1")], minute=1)
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(
        assets + list(defs.asset_checks or []),
        selection=dg.AssetSelection.assets(EVENTS, QUARANTINE, HOURLY_EVENT_COUNTS),
        resources={"lake": LakeResource.from_settings(settings), "chunk_parser": NO_CHUNK_PARSER},
        run_config={"ops": {"ingest_batch": {"config": {"source_keys": [key]}}}},
        instance=instance, raise_on_error=False, tags=batch_run_tags([key]),
    )
    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["events_conservation_check"] is False
    materialized = {m.asset_key for m in result.get_asset_materialization_events()}
    assert EVENTS in materialized and HOURLY_EVENT_COUNTS not in materialized
    assert not (lake_dir / HOURLY_COUNTS_TABLE).exists()


def _requested(defs, instance, cursor=None):
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=dg.AssetSelection.assets(HOURLY_EVENT_COUNTS), cursor=cursor
    )
    return result.get_num_requested(HOURLY_EVENT_COUNTS), result


def _child_sizes(result) -> list[tuple[str, int]]:
    top = next(r for r in result.results if r.key == HOURLY_EVENT_COUNTS)
    return [(c.condition.get_label() or c.condition.name, c.true_subset.size) for c in top.child_results]


def _mart_in(result) -> bool:
    return HOURLY_EVENT_COUNTS in {m.asset_key for m in result.get_asset_materialization_events()}


@pytest.mark.heavy
def test_each_batch_run_updates_the_mart_unless_a_blocking_check_failed_and_automation_catches_up(
    defs, settings, raw_dir, lake_dir, instance
):
    graph = defs.resolve_asset_graph()
    assert graph.get(HOURLY_EVENT_COUNTS).pools == {MARTS_POOL}
    sensor = defs.resolve_sensor_def("marts_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    n, tick = _requested(defs, instance)
    assert n == 0  # nothing ingested yet
    k1 = write_object(raw_dir, [event("a", user_id="u1")], minute=1)
    first = ingest_run(defs, settings, instance, [k1])
    assert first.success and _mart_in(first)
    n, tick = _requested(defs, instance, tick.cursor)
    assert n == 0  # the batch's run updated the mart: nothing left for the sensor

    _corrupt_next_batch(lake_dir, 2)
    k2 = write_object(raw_dir, [event("b", user_id="u2")], minute=2)
    bad = ingest_run(defs, settings, instance, [k2])
    assert not bad.success  # the blocking check fails the run (and the alert sensor hears of it)
    assert not _mart_in(bad)  # ... and the mart step does not run
    n, tick = _requested(defs, instance, tick.cursor)
    assert n == 0
    # events did update, nothing is in progress; only the failed blocking check holds the mart back.
    assert _child_sizes(tick) == [("SINCE", 1), ("NOT", 1), ("NOT", 1), ("all_deps_blocking_checks_passed", 0)]

    # The next clean batch passes its checks, and its run updates the mart (catching up both batches).
    k3 = write_object(raw_dir, [event("c", user_id="u3")], minute=3)
    third = ingest_run(defs, settings, instance, [k3])
    assert third.success and _mart_in(third)
    assert third.asset_materializations_for_node("hourly_event_counts")[0].metadata["batch_ids"].value == [2, 3]
    assert_mart_exact(lake_dir)
    n, tick = _requested(defs, instance, tick.cursor)
    assert n == 0

    # A batch run without the mart (what `lake ingest --no-mart` runs): the sensor requests it.
    k4 = write_object(raw_dir, [event("d", user_id="u4")], minute=4)
    fourth = run_job(defs, "ingest_job", settings, instance, {"ops": {"ingest_batch": {"config": {"source_keys": [k4]}}}},
                     tags=batch_run_tags([k4]), asset_selection=[EVENTS, QUARANTINE])
    assert fourth.success and not _mart_in(fourth)
    n, tick = _requested(defs, instance, tick.cursor)
    assert n == 1
