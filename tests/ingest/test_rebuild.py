"""Arrival-hour backfills and rebuilds leave the tables exactly as a clean ingest would."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from deltalake import DeltaTable

from lake_pipeline.tables.lake import Lake
from lake_pipeline.engines.run import ingest_hours, ingest_keys
from lake_pipeline.ingest.landing import list_pending
from lake_pipeline.ingest.rebuild import KeyRange, _record, finish_unfinished_rebuilds, unfinished_rebuilds
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE
from tests.support.records import HOUR, T0, event, write_object


def _tables(lake_dir) -> dict[str, list[tuple]]:
    out = {}
    for name, cols in ((EVENTS_TABLE, ["event_uuid", "payload", "_source_key"]),
                       (QUARANTINE_TABLE, ["raw_record", "source_key"]),
                       (LEDGER_TABLE, ["source_key", "records", "inserted", "duplicates", "quarantined"])):
        df = pl.from_arrow(DeltaTable(str(lake_dir / name)).to_pyarrow_table()).select(cols)
        out[name] = df.sort(cols).rows()
    return out


def _landing_zone(raw_dir):
    # Hour 13: a, b (+ a duplicate, a broken record); hour 14: c, a redelivery of b, d; hour 15: e.
    write_object(raw_dir, [event("a", at=T0 + 1, v=1), event("a", at=T0 + 1, v=2), event("b", at=T0 + 2), b"{x"],
                 minute=10)
    write_object(raw_dir, [event("c", at=T0 + 3600), event("b", at=T0 + 2, v=9), event("d", at=T0 + 3601)],
                 hour=HOUR + timedelta(hours=1), minute=5)
    write_object(raw_dir, [event("e", at=T0 + 7200), b"[1]"], hour=HOUR + timedelta(hours=2), minute=5)


def test_backfill_of_ingested_hours_changes_nothing(settings, raw_dir, lake_dir):
    _landing_zone(raw_dir)
    ingest_keys(settings, [o.key for o in list_pending(settings)])
    before = _tables(lake_dir)
    versions = {t: DeltaTable(str(lake_dir / t)).version() for t in before}
    summary = ingest_hours(settings, HOUR.replace(hour=0), HOUR.replace(hour=23))
    assert summary.total("records") == 0
    assert {t: DeltaTable(str(lake_dir / t)).version() for t in before} == versions


def test_backfill_ingests_only_the_missing_hours(settings, raw_dir, lake_dir):
    _landing_zone(raw_dir)
    summary = ingest_hours(settings, HOUR + timedelta(hours=1), HOUR + timedelta(hours=2))
    assert summary.total("objects") == 2
    assert [o.key[:14] for o in list_pending(settings)] == ["2025/11/20/13/"]


def test_rebuild_equals_a_clean_ingest_and_leaves_other_hours_alone(settings, raw_dir, lake_dir, tmp_path):
    _landing_zone(raw_dir)
    clean_settings = settings.with_overrides(lake_uri=str(tmp_path / "clean"))
    ingest_keys(clean_settings, [o.key for o in list_pending(clean_settings)])
    clean = _tables(tmp_path / "clean")

    ingest_keys(settings, [o.key for o in list_pending(settings)])
    untouched = DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table()
    summary = ingest_hours(settings, HOUR + timedelta(hours=1), HOUR + timedelta(hours=1), rebuild=True)
    assert summary.total("objects") == 1
    assert summary.total("inserted") == 2 and summary.total("duplicates") == 1  # b's redelivery still dropped
    assert _tables(lake_dir) == clean
    # Rows from other hours are the very same rows (same batch), not re-ingested copies.
    after = pl.from_arrow(DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table())
    kept = after.filter(~pl.col("_source_key").str.starts_with("2025/11/20/14/"))
    assert kept.sort("event_uuid")["_batch_id"].to_list() == pl.from_arrow(untouched).filter(
        ~pl.col("_source_key").str.starts_with("2025/11/20/14/")).sort("event_uuid")["_batch_id"].to_list()
    assert set(after.filter(pl.col("_source_key").str.starts_with("2025/11/20/14/"))["_batch_id"]) == {2}


def test_interrupted_rebuild_is_finished_before_anything_else(settings, raw_dir, lake_dir, tmp_path):
    _landing_zone(raw_dir)
    ingest_keys(settings, [o.key for o in list_pending(settings)])
    lake = Lake.from_settings(settings)
    # A rebuild that recorded its intent, deleted the ledger rows, then died.
    keys = KeyRange.hours(HOUR + timedelta(hours=1), HOUR + timedelta(hours=1))
    _record(lake, "r1", keys, "started")
    DeltaTable(str(lake_dir / LEDGER_TABLE)).delete(keys.predicate("source_key"))
    assert [r for r, _ in unfinished_rebuilds(lake)] == ["r1"]
    # The next ingest finishes it (events/quarantine rows of hour 14 removed) and re-ingests hour 14.
    ingest_keys(settings, [o.key for o in list_pending(settings)])
    assert unfinished_rebuilds(lake) == []
    assert finish_unfinished_rebuilds(lake) == 0
    events = pl.from_arrow(DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table())
    assert sorted(events["event_uuid"]) == ["a", "b", "c", "d", "e"]
    clean_settings = settings.with_overrides(lake_uri=str(tmp_path / "clean"))
    ingest_keys(clean_settings, [o.key for o in list_pending(clean_settings)])
    assert _tables(lake_dir) == _tables(tmp_path / "clean")
