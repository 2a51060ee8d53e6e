"""The batch logic end to end on real Delta tables (no Dagster)."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from deltalake import DeltaTable

from lake_pipeline.ingest import ledger
from lake_pipeline.tables.lake import Lake
from lake_pipeline.engines.local import run_batch
from lake_pipeline.engines.run import chunk_parser, ingest_keys
from lake_pipeline.ingest.batch import BatchPlan
from lake_pipeline.ingest.landing import list_pending, objects_with_sizes, plan_batches
from lake_pipeline.storage.objects import open_storage
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE
from tests.support.records import T0, event, write_object


def _events(lake_dir) -> pl.DataFrame:
    return pl.from_arrow(DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table())


def _ingest_all(settings):
    keys = [o.key for o in list_pending(settings)]
    return ingest_keys(settings, keys)


def test_ingest_writes_partitioned_events_quarantine_and_ledger(settings, raw_dir, lake_dir):
    write_object(raw_dir, [event("a", "page:view", T0 + 1, user_id="u1"), event("b", "click", T0 + 2), b'{"broken":'])
    summary = _ingest_all(settings)
    assert [b.records for b in summary.batches] == [3]
    events = _events(lake_dir)
    assert sorted(events["event_uuid"]) == ["a", "b"]
    dt = DeltaTable(str(lake_dir / EVENTS_TABLE))
    assert dt.metadata().partition_columns == ["event_date", "event_type"]
    assert {p["event_type"] for p in dt.partitions()} == {"page", "click"}
    row = events.filter(pl.col("event_uuid") == "a").row(0, named=True)
    assert json.loads(row["payload"]) == {"user_id": "u1"}
    assert row["event_subtype"] == "view"
    q = pl.from_arrow(DeltaTable(str(lake_dir / QUARANTINE_TABLE)).to_pyarrow_table())
    assert q["raw_record"].to_list() == ['{"broken":']
    assert q["reason"][0].startswith("malformed JSON")
    assert q["source_key"][0].startswith("2025/11/20/13/events-1-")
    led = pl.from_arrow(DeltaTable(str(lake_dir / LEDGER_TABLE)).to_pyarrow_table())
    assert led.select("records", "inserted", "duplicates", "quarantined").row(0) == (3, 2, 0, 1)


def test_rerun_is_a_no_op(settings, raw_dir, lake_dir):
    write_object(raw_dir, [event("a"), event("b")])
    _ingest_all(settings)
    versions = {t: DeltaTable(str(lake_dir / t)).version() for t in (EVENTS_TABLE, LEDGER_TABLE)}
    assert list_pending(settings) == []
    again = ingest_keys(settings, [o.key for o in open_storage(settings.raw_uri).list()])
    assert again.batches == []
    assert {t: DeltaTable(str(lake_dir / t)).version() for t in versions} == versions


def test_cross_batch_duplicates_dropped_first_arrival_wins(settings, raw_dir, lake_dir):
    write_object(raw_dir, [event("a", at=T0 + 10, v=1), event("a", at=T0 + 10, v=2)], minute=1)
    _ingest_all(settings)
    # A redelivery a day later (same created_at) and a near-duplicate within the horizon.
    write_object(raw_dir, [event("a", at=T0 + 10, v=3), event("a", at=T0 + 1800, v=4), event("c")], minute=2)
    summary = _ingest_all(settings)
    assert (summary.total("inserted"), summary.total("duplicates")) == (1, 2)
    events = _events(lake_dir)
    assert events.filter(pl.col("event_uuid") == "a")["payload"].to_list() == ['{"v":1}']


def test_same_uuid_beyond_horizon_is_kept(settings, raw_dir, lake_dir):
    write_object(raw_dir, [event("a", at=T0), event("a", at=T0 + 3600 * 5)])
    _ingest_all(settings)
    assert _events(lake_dir).height == 2


def test_horizon_is_configurable(settings, raw_dir, lake_dir):
    write_object(raw_dir, [event("a", at=T0), event("a", at=T0 + 3600 * 5)])
    ingest_keys(settings.with_overrides(dedupe_horizon_seconds=6 * 3600), [o.key for o in list_pending(settings)])
    assert _events(lake_dir).height == 1


def test_history_read_is_scoped_to_partitions_within_horizon(settings, raw_dir, lake_dir):
    from lake_pipeline.ingest.batch import load_history

    old_day = T0 - 10 * 86400
    write_object(raw_dir, [event("old", at=old_day), event("x", at=T0)], minute=1)
    _ingest_all(settings)
    batch = pl.DataFrame({"event_uuid": ["old", "x"], "created_at": [T0 + 5.0, T0 + 5.0]})
    hist = load_history(Lake.from_settings(settings).scan("events"), batch, 3600, batch_id=99)
    # Only today's partition is read: the 10-day-old "old" row is not even loaded.
    assert hist["event_uuid"].to_list() == ["x"]


def test_crashed_batch_is_finished_with_the_same_id_and_no_double_writes(settings, raw_dir, lake_dir):
    keys = [write_object(raw_dir, [event("a"), b"[1]"], minute=1), write_object(raw_dir, [event("b")], minute=2)]
    lake = Lake.from_settings(settings)
    plan = ledger.write_plan(lake, ledger.next_batch_id(lake), keys)
    # Simulate a crash after the events and quarantine commits but before the ledger commit.
    objects = objects_with_sizes(open_storage(settings.raw_uri), plan.source_keys, {})
    with chunk_parser(settings) as parser:
        result = run_batch(settings, lake, BatchPlan(plan.batch_id, tuple(objects)), parser)
    shutil.rmtree(lake_dir / LEDGER_TABLE)  # its first (and only) commit "never happened"
    assert ledger.unfinished_plans(lake) == [plan]
    summary = ingest_keys(settings, keys)
    assert [b.batch_id for b in summary.batches] == [plan.batch_id]
    assert summary.batches[0].resumed
    assert (summary.batches[0].inserted, summary.batches[0].quarantined) == (result.inserted, result.quarantined) == (2, 1)
    assert sorted(_events(lake_dir)["event_uuid"]) == ["a", "b"]
    assert DeltaTable(str(lake_dir / QUARANTINE_TABLE)).to_pyarrow_table().num_rows == 1
    assert ledger.unfinished_plans(lake) == []


def test_batch_ids_never_repeat_whether_or_not_the_plans_table_records_them(settings, raw_dir, lake_dir):
    from lake_pipeline.settings import PLANS_TABLE

    write_object(raw_dir, [event("a")], minute=1)
    summary = _ingest_all(settings)
    lake = Lake.from_settings(settings)
    first = summary.batches[0].batch_id
    # The plans table records every planned id: the next one is above it without asking other tables.
    assert ledger.next_batch_id(lake) == first + 1
    write_object(raw_dir, [event("b")], minute=2)
    assert [b.batch_id for b in _ingest_all(settings).batches] == [first + 1]
    # A lake whose batches predate the plans table: the ids its tables committed are still never reused.
    shutil.rmtree(lake_dir / PLANS_TABLE)
    assert lake.table(PLANS_TABLE) is None
    assert ledger.next_batch_id(lake) == first + 2
    write_object(raw_dir, [event("c")], minute=3)
    assert [b.batch_id for b in _ingest_all(settings).batches] == [first + 2]
    assert sorted(_events(lake_dir)["event_uuid"]) == ["a", "b", "c"]


def test_plan_batches_bounds_objects_and_bytes():
    from lake_pipeline.storage.objects import ObjectInfo

    objs = [ObjectInfo(f"k{i}", 10) for i in range(7)]
    assert [len(b) for b in plan_batches(objs, max_objects=3, max_bytes=10**9)] == [3, 3, 1]
    assert [len(b) for b in plan_batches(objs, max_objects=100, max_bytes=25)] == [2, 2, 2, 1]
    assert plan_batches([], 3, 10) == []


def test_conservation_holds_per_object_in_the_ledger(settings, raw_dir, lake_dir):
    write_object(raw_dir, [event("a"), event("a"), b"nope", event("b", at=-1)], minute=1)
    write_object(raw_dir, [event("a"), event("c")], minute=2)
    _ingest_all(settings)
    led = pl.from_arrow(DeltaTable(str(lake_dir / LEDGER_TABLE)).to_pyarrow_table()).sort("source_key")
    assert led.select("records", "inserted", "duplicates", "quarantined").rows() == [(4, 1, 1, 2), (2, 1, 1, 0)]


def test_unreadable_object_is_quarantined_not_fatal(settings, raw_dir, lake_dir):
    good = write_object(raw_dir, [event("a")], minute=1)
    bad = (raw_dir / good).with_name("events-1-2025-11-20-13-02-00-bad.gz")
    bad.write_bytes(b"\x1f\x8b\x08\x00corrupt")
    summary = _ingest_all(settings)
    assert (summary.total("inserted"), summary.total("quarantined")) == (1, 1)
    q = pl.from_arrow(DeltaTable(str(lake_dir / QUARANTINE_TABLE)).to_pyarrow_table())
    assert q["raw_record"].to_list() == [None]
    assert "decompress" in q["reason"][0]
    assert q["source_key"][0].endswith("bad.gz")


@pytest.mark.parametrize("missing", ["raw", "lake-parent-file"])
def test_storage_problems_raise_one_clear_error(settings, tmp_path, missing):
    from lake_pipeline.storage.errors import StorageError

    if missing == "raw":
        with pytest.raises(StorageError, match="does not exist"):
            open_storage(str(tmp_path / "nope")).check_readable()
    else:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(StorageError, match="cannot create"):
            Lake.from_settings(settings.with_overrides(lake_uri=str(blocker / "lake"))).check_writable()


def test_streaming_in_chunks_equals_one_chunk(settings, raw_dir, lake_dir, tmp_path):
    # Duplicates across objects (chunks), a copy spread wider than the horizon, quarantine in several.
    write_object(raw_dir, [event("a", at=T0, v=1), event("b", at=T0), b"{bad"], minute=1)
    write_object(raw_dir, [event("a", at=T0, v=2), event("c", at=T0 + 10)], minute=2)
    write_object(raw_dir, [event("b", at=T0 + 3 * 3600), event("a", at=T0 + 1800), b"[2]"], minute=3)
    keys = [o.key for o in list_pending(settings)]
    whole = settings.with_overrides(lake_uri=str(tmp_path / "whole"))
    ingest_keys(whole, keys)
    chunked = ingest_keys(settings.with_overrides(chunk_max_bytes=1), keys)  # one object per chunk
    assert (chunked.total("inserted"), chunked.total("duplicates"), chunked.total("quarantined")) == (4, 2, 2)

    def rows(path):
        df = pl.from_arrow(DeltaTable(str(path / EVENTS_TABLE)).to_pyarrow_table())
        return df.drop("_batch_id").sort("event_uuid", "created_at").rows()

    assert rows(lake_dir) == rows(tmp_path / "whole")
    assert DeltaTable(str(lake_dir / EVENTS_TABLE)).version() == 1  # create + one commit for the batch


def test_no_transform_mode_stores_records_without_derived_columns(settings, raw_dir, lake_dir):
    from lake_pipeline.contract import RAW_EVENTS_SCHEMA
    from lake_pipeline.quality import rules as quality

    write_object(raw_dir, [event("a", "page:view", T0, user_id="u1"), event("a", "page:view", T0), b"[0]"])
    raw_mode = settings.with_overrides(enrich=False)
    summary = ingest_keys(raw_mode, [o.key for o in list_pending(raw_mode)])
    assert (summary.total("inserted"), summary.total("duplicates"), summary.total("quarantined")) == (1, 1, 1)
    dt = DeltaTable(str(lake_dir / EVENTS_TABLE))
    assert dt.metadata().partition_columns == ["event_date"]
    assert [f.name for f in dt.schema().fields] == RAW_EVENTS_SCHEMA.names
    row = pl.from_arrow(dt.to_pyarrow_table()).row(0, named=True)
    assert (row["event_name"], json.loads(row["payload"])) == ("page:view", {"user_id": "u1"})
    lake = Lake.from_settings(raw_mode)
    for outcome in (quality.required_columns(lake), quality.derived_consistent(lake), quality.conservation(lake)):
        assert outcome.passed, outcome.description
