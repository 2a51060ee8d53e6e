"""Arrival-hour partitions: sensor runs carry them, backfills and the reconciliation schedule use them."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from deltalake import DeltaTable

from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.settings import EVENTS_TABLE
from tests.support.records import HOUR, event, write_object
from tests.support.cli import invoke, run_lake


def test_assets_are_partitioned_by_arrival_hour_with_a_single_run_backfill_policy(defs):
    graph = defs.resolve_asset_graph()
    for key in ("raw_landing_zone", "events", "quarantine"):
        pdef = graph.get(dg.AssetKey(key)).partitions_def
        assert isinstance(pdef, dg.TimeWindowPartitionsDefinition) and pdef.cron_schedule == "0 * * * *"
    assert graph.get(dg.AssetKey("events")).backfill_policy == dg.BackfillPolicy.single_run()


def test_sensor_run_requests_name_their_arrival_hours(defs, settings, raw_dir):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    write_object(raw_dir, [event("a")], hour=now - timedelta(hours=1), minute=50)
    write_object(raw_dir, [event("b")], hour=now, minute=1)
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"lake": LakeResource.from_settings(settings)})
        (req,) = defs.resolve_sensor_def("firehose_landing_sensor")(ctx).run_requests
    fmt = "%Y-%m-%d-%H:%M"
    assert req.tags["dagster/asset_partition_range_start"] == (now - timedelta(hours=1)).strftime(fmt)
    assert req.tags["dagster/asset_partition_range_end"] == now.strftime(fmt)


def test_reconcile_schedule_skips_when_nothing_was_missed_and_requests_yesterday_otherwise(defs, settings, raw_dir):
    schedule = defs.resolve_schedule_def("reconcile_yesterday_schedule")
    tick = HOUR.replace(hour=0, minute=30) + timedelta(days=1)  # 00:30 the day after HOUR
    resources = {"lake": LakeResource.from_settings(settings)}
    with dg.build_schedule_context(scheduled_execution_time=tick, resources=resources) as ctx:
        skipped = schedule.evaluate_tick(ctx)
    assert skipped.run_requests == [] and "nothing missed" in skipped.skip_message
    write_object(raw_dir, [event("late-upload")], minute=20)
    with dg.build_schedule_context(scheduled_execution_time=tick, resources=resources) as ctx:
        (req,) = schedule.evaluate_tick(ctx).run_requests
    assert req.tags["dagster/asset_partition_range_start"] == "2025-11-20-00:00"
    assert req.tags["dagster/asset_partition_range_end"] == "2025-11-20-23:00"


@pytest.mark.e2e  # three `lake backfill` processes against one instance
def test_cli_backfill_is_recorded_in_the_instance_and_idempotent(tmp_path):
    home = tmp_path / "home"
    env = {"DAGSTER_HOME": str(home)}
    raw = tmp_path / "raw"
    raw.mkdir()
    for m in (5, 35):
        write_object(raw, [event(f"e{m}", at=HOUR.timestamp() + m)], minute=m)
    first = run_lake("backfill", "--raw", str(raw), "--lake", str(tmp_path / "lake"), "--start", "2025-11-20T00",
                 "--end", "2025-11-20T23", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "records=2 inserted=2" in first.stdout
    version = DeltaTable(str(tmp_path / "lake" / EVENTS_TABLE)).version()
    again = run_lake("backfill", "--raw", str(raw), "--lake", str(tmp_path / "lake"), "--start", "2025-11-20T00",
                 "--end", "2025-11-20T23", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "records=0" in again.stdout
    assert DeltaTable(str(tmp_path / "lake" / EVENTS_TABLE)).version() == version
    rebuilt = run_lake("backfill", "--raw", str(raw), "--lake", str(tmp_path / "lake"), "--start", "2025-11-20T13",
                   "--end", "2025-11-20T13", "--rebuild", cwd=tmp_path, env=env)
    assert rebuilt.returncode == 0 and "records=2 inserted=2" in rebuilt.stdout
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        backfills = instance.get_backfills()
        assert len(backfills) == 3
        assert all(b.status.value == "COMPLETED_SUCCESS" for b in backfills)
        runs = instance.get_runs()
        assert {r.tags["dagster/backfill"] for r in runs} == {b.backfill_id for b in backfills}
        assert all(r.tags["dagster/asset_partition_range_end"] for r in runs)


def test_backfill_rejects_an_inverted_range(tmp_path):
    (tmp_path / "raw").mkdir()
    r = invoke("backfill", "--raw", "raw", "--lake", "lake", "--start", "2025-11-20T05", "--end", "2025-11-20T01",
               cwd=tmp_path)
    assert r.exit_code == 2
    assert r.stderr.strip() == "error: --end 2025-11-20T01 is before --start 2025-11-20T05"
    assert not (tmp_path / "lake").exists()  # refused before any work


def test_backfill_rejects_an_hour_it_cannot_read(tmp_path):
    r = invoke("backfill", "--raw", str(tmp_path), "--lake", str(tmp_path / "lake"), "--start", "yesterday",
               "--end", "2025-11-20T01", cwd=tmp_path)
    assert r.exit_code == 2  # click's usage error
    assert "'yesterday' is not an hour like 2025-11-20T13" in r.stderr
