"""The seen-keys index (_dedupe_index) on real Delta tables: same answers as reading events,
late events reading their own hours, exactly-once, build, retention, compaction, rebuilds."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.ingest import seen_index
from lake_pipeline.ingest.landing import list_pending
from lake_pipeline.ingest.rebuild import rebuild_hours
from lake_pipeline.settings import DEDUPE_INDEX_TABLE, EVENTS_TABLE
from lake_pipeline.tables.lake import Lake
from tests.support.records import HOUR, T0, event, write_object

DAY = 86400.0


def _ingest(settings):
    return ingest_keys(settings, [o.key for o in list_pending(settings)])


def _events(lake: Lake) -> pl.DataFrame:
    cols = ["event_uuid", "created_at", "payload", "_source_key", "_ordinal"]
    return lake.scan(EVENTS_TABLE).select(cols).collect().sort(cols)


def _history(raw_dir, days: int, per_day: int) -> list[dict]:
    """``per_day`` events on each of ``days`` days before T0, one object per day (arrival order)."""
    out = []
    for d in range(days, 0, -1):
        recs = [event(f"d{d}-{i}", at=T0 - d * DAY + i * (DAY / per_day)) for i in range(per_day)]
        write_object(raw_dir, recs, hour=HOUR - timedelta(days=d), minute=1)
        out += recs
    return out


def _late_batch(raw_dir, history: list[dict]) -> list[dict]:
    """New events now, late events from earlier days, and exact redeliveries of old ones."""
    new = [event(f"new-{i}", at=T0 + i) for i in range(300)]
    late = [event(f"late-{i}", at=T0 - (i % 3 + 1) * DAY + 1234.5 + i) for i in range(20)]
    redelivered = history[5::97]
    write_object(raw_dir, new + late + redelivered + new[:7], minute=30)
    return redelivered


def test_a_new_lake_gets_a_ready_index_that_agrees_with_events(settings, raw_dir, lake):
    history = _history(raw_dir, 3, 400)
    _ingest(settings)
    redelivered = _late_batch(raw_dir, history)
    summary = _ingest(settings)
    last = summary.batches[-1]
    assert last.dedupe_source == "index"
    assert last.duplicates == len(redelivered) + 7
    assert last.inserted == 320
    assert seen_index.is_ready(lake.table(DEDUPE_INDEX_TABLE))
    assert seen_index.disagreements(lake) == {"events_missing": 0, "index_orphans": 0, "checked": 1520}


def test_late_events_read_their_own_hours_not_their_days(settings, raw_dir, lake):
    history = _history(raw_dir, 3, 6000)  # 18k index rows, several row groups per day
    _ingest(settings)
    write_object(raw_dir, [history[100], event("late-x", at=history[9000]["created_at"] + 5)], minute=40)
    result = _ingest(settings).batches[-1]
    assert result.duplicates == 1 and result.inserted == 1
    # Two keys: a row group or two of each's hours, far from the 18,000 rows of its days.
    assert 0 < result.dedupe_rows_read <= 4 * seen_index.ROW_GROUP_ROWS
    assert result.dedupe_rows_read < 18000 / 2


def test_the_index_path_and_the_events_path_give_the_same_tables(settings, raw_dir, lake_dir, tmp_path):
    history = _history(raw_dir, 2, 500)
    _ingest(settings)
    _late_batch(raw_dir, history)
    with_index = _ingest(settings).batches[-1]
    other = settings.with_overrides(lake_uri=str(tmp_path / "other"))
    # The same first batch, then the index removed: the second batch reads events instead.
    ingest_keys(other, [o.key for o in list_pending(other)][:2])
    shutil.rmtree(tmp_path / "other" / DEDUPE_INDEX_TABLE)
    without = ingest_keys(other, [o.key for o in list_pending(other)]).batches[-1]
    assert (with_index.dedupe_source, without.dedupe_source) == ("index", "events")
    assert without.dedupe_rows_read >= 1000  # every row of the dates within the horizon is scanned
    assert (with_index.inserted, with_index.duplicates) == (without.inserted, without.duplicates)
    assert _events(Lake(str(lake_dir))).equals(_events(Lake(str(tmp_path / "other"))))


def test_an_existing_lake_reads_events_until_the_index_is_built_then_the_index(settings, raw_dir, lake_dir, lake):
    history = _history(raw_dir, 3, 300)
    _ingest(settings)
    shutil.rmtree(lake_dir / DEDUPE_INDEX_TABLE)  # a lake from before the index
    write_object(raw_dir, [history[3]], minute=20)
    assert _ingest(settings).batches[-1].dedupe_source == "events"
    assert not lake.exists(DEDUPE_INDEX_TABLE)  # not written half: it would miss older rows

    seen = []

    def stop_after_first(message: str, rows: int) -> None:
        seen.append(message)
        raise KeyboardInterrupt  # interrupted after its first date's commit

    with pytest.raises(KeyboardInterrupt):
        seen_index.build_index(lake, settings, stop_after_first, today=HOUR.date())
    assert not seen_index.is_ready(lake.table(DEDUPE_INDEX_TABLE))
    dates = lake.scan(EVENTS_TABLE).select(pl.col("event_date").n_unique()).collect().item()
    done = seen_index.build_index(lake, settings, today=HOUR.date())  # resumes after that date
    assert seen == [f"indexed 2025-11-17 (1/{dates} dates)"]
    assert done["dates"] == dates - 1 and seen_index.is_ready(lake.table(DEDUPE_INDEX_TABLE))
    assert seen_index.disagreements(lake) == {"events_missing": 0, "index_orphans": 0, "checked": 900}
    redelivered = _late_batch(raw_dir, history)
    last = _ingest(settings).batches[-1]
    assert last.dedupe_source == "index" and last.duplicates == len(redelivered) + 7


def test_records_older_than_the_retention_are_deduplicated_through_events(settings, raw_dir, lake):
    history = _history(raw_dir, 5, 200)
    _ingest(settings)
    cutoff = HOUR.date() - timedelta(days=2)
    older = lake.scan(EVENTS_TABLE).filter(pl.col("event_date") < cutoff).select(pl.len()).collect().item()
    deleted = seen_index.drop_expired(lake, retention_days=2, today=HOUR.date())
    assert deleted == older > 0
    assert lake.table(DEDUPE_INDEX_TABLE).transaction_version(seen_index.RETAINED_APP_ID) == (
        seen_index.day_number(cutoff))
    write_object(raw_dir, [history[10], history[-10], event("old-new", at=T0 - 4 * DAY)], minute=50)
    result = _ingest(settings).batches[-1]
    assert result.duplicates == 2 and result.inserted == 1
    assert result.late_beyond_index == 2  # the two records from before the retention
    assert seen_index.disagreements(lake)["events_missing"] == 0


def test_compaction_keeps_the_rows_and_the_answers(settings, raw_dir, lake):
    for m in range(6):
        write_object(raw_dir, [event(f"m{m}-{i}", at=T0 + m * 60 + i) for i in range(50)], minute=m + 1)
        _ingest(settings)
    before = lake.scan(DEDUPE_INDEX_TABLE).collect().sort("key")
    files = lake.add_actions(DEDUPE_INDEX_TABLE).num_rows
    done = seen_index.compact_index(lake, 3600.0, now=HOUR)
    assert files == 6 and done == {"dates": 1, "files_removed": 6}
    assert lake.add_actions(DEDUPE_INDEX_TABLE).num_rows == 1
    assert lake.scan(DEDUPE_INDEX_TABLE).collect().sort("key").equals(before)
    write_object(raw_dir, [event("m3-7", at=T0 + 3 * 60 + 7), event("fresh", at=T0 + 999)], minute=30)
    result = _ingest(settings).batches[-1]
    assert (result.duplicates, result.inserted) == (1, 1)


def test_a_rebuild_removes_the_index_rows_of_the_events_it_removes(settings, raw_dir, lake):
    write_object(raw_dir, [event("a", at=T0 + 1), event("b", at=T0 + 2)], minute=5)
    write_object(raw_dir, [event("c", at=T0 + 3)], hour=HOUR + timedelta(hours=1), minute=5)
    _ingest(settings)
    rebuild_hours(lake, HOUR, HOUR)
    assert sorted(lake.scan(DEDUPE_INDEX_TABLE).collect().get_column("event_uuid")) == ["c"]
    result = _ingest(settings).batches[-1]  # the hour again: nothing is taken for a duplicate
    assert (result.inserted, result.duplicates) == (2, 0)
    assert seen_index.disagreements(lake)["index_orphans"] == 0


def test_the_index_records_its_bucket_count_and_rows_carry_their_bucket(settings, raw_dir, lake):
    write_object(raw_dir, [event(f"u{i}", at=T0 + i) for i in range(500)])
    _ingest(settings.with_overrides(dedupe_buckets=4))
    snapshot = lake.table(DEDUPE_INDEX_TABLE)
    assert seen_index.recorded_buckets(snapshot) == 4
    rows = lake.scan(DEDUPE_INDEX_TABLE).collect()
    from lake_pipeline.transforms.dedupe import bucket_of

    assert rows.get_column("bucket").to_list() == bucket_of(rows.get_column("event_uuid"), 4).to_list()
    assert rows.get_column("bucket").n_unique() == 4


def test_the_agreement_check_fails_when_the_index_misses_an_event(settings, raw_dir, lake):
    from lake_pipeline.quality.rules import index_agrees

    write_object(raw_dir, [event("a", at=T0 + 1), event("b", at=T0 + 2)])
    batch = _ingest(settings).batches[-1].batch_id
    assert index_agrees(lake, [batch]).passed
    assert index_agrees(lake, [batch], [HOUR.date().isoformat()]).metadata["checked"] == 2  # the batch's date
    assert index_agrees(lake, [batch], ["2025-01-01"]).metadata["checked"] == 0  # pruned to the dates given
    # An index row whose created_at is not its event's: same count, one row on each side unmatched.
    rows = lake.scan(DEDUPE_INDEX_TABLE).collect()
    wrong = rows.with_columns(pl.when(pl.col("event_uuid") == "a").then(pl.col("created_at") + 1)
                              .otherwise("created_at").alias("created_at"))
    lake.overwrite(DEDUPE_INDEX_TABLE, wrong.to_arrow().cast(seen_index.INDEX_SCHEMA))
    outcome = index_agrees(lake, [batch])
    assert not outcome.passed and outcome.metadata["events_missing"] == 1 and outcome.metadata["index_orphans"] == 1
    lake.overwrite(DEDUPE_INDEX_TABLE, rows.to_arrow().cast(seen_index.INDEX_SCHEMA))
    assert index_agrees(lake, [batch]).passed
    lake.delete(DEDUPE_INDEX_TABLE, "event_uuid = 'b'")
    outcome = index_agrees(lake, [batch])
    assert not outcome.passed and outcome.metadata["events_missing"] == 1
    assert "lake index build" in outcome.description


def test_lake_index_build_says_what_it_did_and_ingest_says_when_it_is_missing(settings, raw_dir, lake_dir, tmp_path):
    from tests.support.cli import invoke

    write_object(raw_dir, [event("a", at=T0 + 1)])
    _ingest(settings)
    shutil.rmtree(lake_dir / DEDUPE_INDEX_TABLE)
    write_object(raw_dir, [event("b", at=T0 + 2)], minute=9)
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "LAKE_DEDUPE_RETENTION_DAYS": "100000"}
    ingest = invoke("ingest", "--raw", str(raw_dir), "--lake", str(lake_dir), "--quiet", env=env)
    assert ingest.exit_code == 0 and "`lake index build` builds it" in ingest.stderr
    built = invoke("index", "build", "--lake", str(lake_dir), env=env)
    assert built.exit_code == 0, built.stderr
    assert "indexed 2025-11-20 (1/1 dates): 2 rows" in built.stdout
    assert "seen-keys index ready: 2 row(s) from 1 date(s)" in built.stdout
    again = invoke("index", "build", "--lake", str(lake_dir), env=env)
    assert "0 row(s) from 0 date(s)" in again.stdout  # ready: nothing to do


def test_a_key_match_alone_is_not_a_duplicate_both_hashes_must_match(settings, raw_dir, lake):
    # An index row with the key of "victim" but another second hash: a 64-bit collision.
    write_object(raw_dir, [event("other", at=T0 + 1)])
    _ingest(settings)
    rows = lake.scan(DEDUPE_INDEX_TABLE).collect()
    victim = seen_index.index_rows(pl.DataFrame({
        "event_uuid": ["victim"], "created_at": [T0 + 2.0], "event_date": [HOUR.date()], "_batch_id": [99],
        "_source_key": ["k"]}), 16)
    forged = victim.with_columns(pl.lit(12345, pl.Int64).alias(seen_index.KEY2), pl.lit("collider").alias("event_uuid"))
    seen_index.write_rows(lake, forged, None)
    assert rows.height == 1
    index = seen_index.SeenIndex.open(lake, 3600.0)
    found = index.lookup(pl.DataFrame({"event_uuid": ["victim"], "created_at": [T0 + 3.0]}), batch_id=100)
    assert found.rows_read > 0 and found.history.height == 0  # read, compared, not taken for the same uuid
    seen_index.write_rows(lake, victim, None)  # the real fingerprint
    index = seen_index.SeenIndex.open(lake, 3600.0)
    found = index.lookup(pl.DataFrame({"event_uuid": ["victim"], "created_at": [T0 + 3.0]}), batch_id=100)
    assert found.history.get_column("event_uuid").to_list() == ["victim"]


def test_small_files_read_whole_in_one_call_find_what_reading_them_one_by_one_finds(settings, raw_dir, lake):
    # Five one-object batches: five small index files (of the batch's date and, for the late
    # events, of the days before), all within reach of the chunk below.
    old = []
    for m in range(5):
        recs = [event(f"m{m}-{i}", at=T0 + m * 60 + i) for i in range(40)]
        recs += [event(f"m{m}-late-{i}", at=T0 - (i + 1) * 3000.0 - m) for i in range(3)]
        write_object(raw_dir, recs, minute=m)
        _ingest(settings)
        old += recs
    again = old[3::7]  # redeliveries spread over every file
    chunk = pl.DataFrame({"event_uuid": [r["event_uuid"] for r in again] + ["new-1", "new-2"],
                          "created_at": [float(r["created_at"]) for r in again] + [T0 + 1.0, T0 + 2.0]})
    answers = {}
    for small_file_rows in (seen_index.SMALL_FILE_ROWS, 0):
        index = seen_index.SeenIndex.open(lake, 3600.0)
        index.small_file_rows = small_file_rows
        found = index.lookup(chunk, batch_id=100)
        answers[small_file_rows] = (found.small_files_read, found.history.sort("event_uuid"))
    (whole, together), (none, one_by_one) = answers[seen_index.SMALL_FILE_ROWS], answers[0]
    assert whole >= 5 and none == 0
    assert together.get_column("event_uuid").to_list() == sorted(r["event_uuid"] for r in again)
    assert together.equals(one_by_one)


def test_the_probe_holds_the_chunks_keys_distinct_and_sorted_and_each_hours_keys_sorted():
    import numpy as np

    rng = np.random.default_rng(3)
    keys = rng.integers(-(2**63), 2**63 - 1, 5_000, dtype=np.int64)
    keys[:500] = keys[500:1000]  # redeliveries within the chunk: the same key twice
    created = 1.7e9 + rng.random(5_000) * 3 * 3600  # three hours, in no order
    created[:50] -= 86400 * 2  # and two days late
    probe = seen_index._Probe(created, keys, 3600.0)
    assert probe.keys_sorted.tolist() == sorted(set(keys.tolist()))
    assert probe.created_sorted.tolist() == sorted(created.tolist())
    hours = (created // 3600).astype(np.int64)
    assert sorted(probe.by_hour) == sorted(set(hours.tolist())) and len(probe.by_hour) >= 4
    for hour, got in probe.by_hour.items():
        assert got.tolist() == sorted(keys[hours == hour].tolist()), hour
    one = seen_index._Probe(created[:1], keys[:1], 3600.0)
    assert one.keys_sorted.tolist() == [keys[0]] and list(one.by_hour) == [int(hours[0])]
