"""The arrival-hour partitions start at the landing zone's first hour (or LAKE_ARRIVAL_PARTITIONS_START),
looked up when the definitions are built, not at import; backfills start there too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from lake_pipeline.defs.shared import (
    NO_LANDING_ZONE_START,
    arrival_hours,
    arrival_partitions_start,
    batch_run_tags,
    first_landing_hour,
)
from lake_pipeline.settings import load_settings
from lake_pipeline.storage.objects import LocalStorage
from tests.support.cli import invoke
from tests.support.records import HOUR, event, write_object

PARTITIONED = ("raw_landing_zone", "events", "quarantine")


def test_the_first_landing_hour_is_the_oldest_hour_directory_that_holds_an_object(raw_dir):
    assert first_landing_hour(LocalStorage(str(raw_dir))) is None  # nothing landed
    write_object(raw_dir, [event("late")], hour=HOUR + timedelta(days=40))
    write_object(raw_dir, [event("first")], hour=HOUR)
    # Older hour directories that hold no object (only a temporary file of an unfinished write, or nothing).
    (raw_dir / "2025" / "11" / "19" / "23").mkdir(parents=True)
    (raw_dir / "2025" / "11" / "20" / "12").mkdir(parents=True)
    (raw_dir / "2025" / "11" / "20" / "12" / ".events-1-x.gz.tmp").write_bytes(b"")
    (raw_dir / "notes").mkdir()  # outside the layout
    assert first_landing_hour(LocalStorage(str(raw_dir))) == HOUR
    assert first_landing_hour(LocalStorage(str(raw_dir / "missing"))) is None


def test_the_start_is_the_setting_else_the_first_landing_hour_else_the_sensors_oldest_hour(raw_dir, tmp_path):
    now = datetime(2026, 12, 1, 10, 20, tzinfo=UTC)
    empty = load_settings(raw_uri=str(raw_dir))
    assert arrival_partitions_start(empty, now) == datetime(2026, 12, 1, 7, tzinfo=UTC)  # lookback 3 h
    write_object(raw_dir, [event("a")], hour=HOUR)
    assert arrival_partitions_start(empty, now) == HOUR
    explicit = load_settings(raw_uri=str(raw_dir), arrival_partitions_start="2025-11-20T15")
    assert arrival_partitions_start(explicit, now) == datetime(2025, 11, 20, 15, tzinfo=UTC)
    assert arrival_partitions_start(load_settings(raw_uri=str(tmp_path / "nowhere")), now) == NO_LANDING_ZONE_START


def test_a_bad_start_setting_names_its_variable(monkeypatch):
    monkeypatch.setenv("LAKE_ARRIVAL_PARTITIONS_START", "last tuesday")
    with pytest.raises(ValueError, match="LAKE_ARRIVAL_PARTITIONS_START must be an hour like 2025-11-20T00"):
        load_settings()


def test_the_code_location_reads_the_start_when_it_is_built_not_at_import(raw_dir, monkeypatch):
    from lake_pipeline.definitions import defs as build

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    write_object(raw_dir, [event("a")], hour=now - timedelta(hours=5))
    monkeypatch.setenv("LAKE_RAW_URI", str(raw_dir))
    graph = build().resolve_asset_graph()
    starts = {graph.get(dg.AssetKey(k)).partitions_def.start for k in PARTITIONED}
    assert starts == {now - timedelta(hours=5)}
    pdef = graph.get(dg.AssetKey("events")).partitions_def
    complete_hours = (datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - pdef.start) // timedelta(hours=1)
    # Five complete hours and the one in progress; not thousands since 2025 (unless an hour just turned).
    assert len(pdef.get_partition_keys()) == complete_hours + 1 == 6
    write_object(raw_dir, [event("older")], hour=now - timedelta(hours=30))
    again = build().resolve_asset_graph()  # a reload sees the older object
    assert again.get(dg.AssetKey("events")).partitions_def.start == now - timedelta(hours=30)
    # A batch names its partitions only if the definitions have them.
    keys = [write_object(raw_dir, [event("b")], hour=now - timedelta(hours=1))]
    assert batch_run_tags(keys, pdef)["dagster/asset_partition_range_start"] == (now - timedelta(hours=1)).strftime(
        "%Y-%m-%d-%H:%M")
    old = [write_object(raw_dir, [event("c")], hour=now - timedelta(hours=40))]
    assert batch_run_tags(old, pdef) == {}  # older than the first partition: an unpartitioned run
    # The hour in progress is a partition (its objects ingest partitioned); a later hour is not.
    current = [write_object(raw_dir, [event("d")], hour=now)]
    assert batch_run_tags(current, pdef)["dagster/asset_partition_range_end"] == now.strftime("%Y-%m-%d-%H:%M")
    ahead = [write_object(raw_dir, [event("e")], hour=now + timedelta(hours=2))]
    assert batch_run_tags(ahead, pdef) == {}  # a skewed producer clock: an unpartitioned run


def test_the_sensor_tags_runs_with_the_partitions_of_its_code_location(raw_dir, lake_dir, monkeypatch, instance):
    from lake_pipeline.definitions import defs as build
    from lake_pipeline.defs.resources import LakeResource

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    write_object(raw_dir, [event("a")], hour=now - timedelta(hours=2), minute=1)
    monkeypatch.setenv("LAKE_RAW_URI", str(raw_dir))
    monkeypatch.setenv("LAKE_URI", str(lake_dir))
    defs = build()
    write_object(raw_dir, [event("b")], hour=now, minute=2)
    ctx = dg.build_sensor_context(instance=instance,
                                  resources={"lake": LakeResource.from_settings(load_settings())})
    (req,) = defs.resolve_sensor_def("firehose_landing_sensor")(ctx).run_requests
    assert req.tags["dagster/asset_partition_range_start"] == (now - timedelta(hours=2)).strftime("%Y-%m-%d-%H:%M")
    assert arrival_hours(load_settings()).start == now - timedelta(hours=2)


@pytest.mark.heavy
def test_a_backfill_starts_at_the_first_landing_hour_and_refuses_hours_before_an_explicit_start(tmp_path):
    raw = tmp_path / "raw"
    write_object(raw, [event("e5", at=HOUR.timestamp() + 5)], minute=5)  # lands at 2025-11-20T13
    home = {"DAGSTER_HOME": str(tmp_path / "home")}
    day = ("backfill", "--raw", "raw", "--lake", "lake", "--start", "2025-11-20T00", "--end", "2025-11-20T23")
    result = invoke(*day, cwd=tmp_path, env=home)
    assert result.exit_code == 0, result.stderr
    assert ": 11 arrival hour(s) 2025-11-20-13:00..2025-11-20-23:00" in result.stdout  # 00..12: nothing landed
    assert "records=1 inserted=1" in result.stdout
    before = invoke("backfill", "--raw", "raw", "--lake", "lake", "--start", "2025-11-19T00", "--end",
                    "2025-11-19T23", cwd=tmp_path, env=home)
    assert before.exit_code == 0
    assert before.stdout.strip() == (f"nothing to backfill: no object landed in {raw} before 2025-11-20T13, "
                                     "its first arrival hour")
    refused = invoke(*day, cwd=tmp_path, env={**home, "LAKE_ARRIVAL_PARTITIONS_START": "2025-11-20T14"})
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines() == [
        "error: --start 2025-11-20T00 is before the first arrival-hour partition (2025-11-20T14, "
        "LAKE_ARRIVAL_PARTITIONS_START); use `lake ingest` for older objects"]


def test_arrival_hours_list_the_same_keys_as_dagster_and_a_new_hour_as_it_begins():
    """ArrivalHours keeps its list of keys per hour of the clock: the list is Dagster's own, and
    an hour later (the same process) it has that hour too, not the list kept from before."""
    from lake_pipeline.defs.shared import ArrivalHours

    start = "2025-11-20-13:00"
    mine = ArrivalHours(start_date=start, timezone="UTC", end_offset=1)
    plain = dg.HourlyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1)
    now = datetime(2026, 12, 2, 4, 30, tzinfo=UTC)
    for when in (now, now + timedelta(minutes=10), now + timedelta(hours=1), now):
        with dg.partition_loading_context(when):
            keys, expected = mine.get_partition_keys(), plain.get_partition_keys()
            assert keys == expected and keys[-1] == when.strftime("%Y-%m-%d-%H:00")  # the hour in progress
            # Dagster's own way of asking for every partition (the data-version lookups) gets it too.
            assert list(mine.subset_with_all_partitions().get_partition_keys()) == expected
    assert len(keys) == 9040  # 2025-11-20 13:00 up to 2026-12-02 04:00
    assert mine == plain  # the definitions compare equal: assets sharing the partitions still match
