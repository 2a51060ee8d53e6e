"""hourly_event_counts kept exact by adding each batch: after batches with late events,
redeliveries, a compaction, a rebuild and an update that crashed between its two commits, the
mart and its users state equal a full rebuild row for row (real Delta tables, real batches)."""

from __future__ import annotations

import pytest

import shutil
from datetime import UTC, datetime

import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lake_pipeline.devtools.synthetic import generate, sample_records
from lake_pipeline.engines.run import ingest_hours, ingest_keys
from lake_pipeline.maintenance import compaction
from lake_pipeline.marts import feed
from lake_pipeline.marts import hourly as marts
from lake_pipeline.marts import users as users_state
from lake_pipeline.marts.aggregate import hourly_counts
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_COUNTS_TABLE, HOURLY_FEED_TABLE, HOURLY_USERS_TABLE
from lake_pipeline.storage.objects import LocalStorage
from lake_pipeline.tables.lake import CommitRace
from tests.support.marts import assert_mart_exact, mart_frame
from tests.support.records import T0, event, write_object
from tests.support.runs import ingest_one_object_per_batch

START = datetime(2025, 11, 20, 13, tzinfo=UTC)


def _zone(raw_dir, events: int, seed: int, start=START, **kw) -> list[str]:
    res = generate(LocalStorage(str(raw_dir)), events, start=start, duplicates=0.05, malformed=0.01, late=0.25,
                   seed=seed, object_seconds=900, span_seconds=3600, **kw)
    return sorted(res.keys)


def _full_rebuild(lake) -> pl.DataFrame:
    """What a rebuild from scratch gives at the current events version."""
    scan = lake.scan(EVENTS_TABLE)
    return pl.from_arrow(hourly_counts(scan, marts.all_hours(scan))).sort("event_hour", "event_name")


def _update_and_compare(lake, lake_dir, mode: str) -> marts.MartUpdate:
    update = marts.update_hourly_counts(lake)
    assert update.mode == mode, (update.mode, update.reason)
    got = assert_mart_exact(lake_dir)
    assert got.equals(_full_rebuild(lake))
    assert marts.counts_match_events(lake, update.hours).passed
    return update


@pytest.mark.heavy
def test_adding_batches_equals_a_full_rebuild_through_late_events_redeliveries_compaction_and_rebuild(
    settings, raw_dir, lake, lake_dir, monkeypatch
):
    monkeypatch.setattr(users_state, "MERGE_FILES", 3)  # so that this test sees the state merge its files
    monkeypatch.setattr(feed, "PRUNE_FILES", 3)  # and the feed pruned
    keys = _zone(raw_dir, 400, seed=3)
    ingest_keys(settings, keys[:1])
    # A new mart over batches the feed accounts for is built by adding them to nothing.
    first = _update_and_compare(lake, lake_dir, marts.ADD)
    assert "does not exist yet" in first.reason and first.rows_from == HOURLY_FEED_TABLE

    # Batch by batch, a quarter of each late by hours to days: each update adds its batch alone.
    compacted, key_files = False, 0
    for i, key in enumerate(keys[1:]):
        ingest_keys(settings, [key])
        update = _update_and_compare(lake, lake_dir, marts.ADD)
        if i % 2:  # the compaction schedule's turn: dates rewritten, key files written (read by the next updates)
            key_files += users_state.compact_state(lake, marts.MART_APP_ID, key_file_days=30,
                                                   today=START.date())["key_files_written"]
            assert_mart_exact(lake_dir)
        batch = DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table(columns=["_batch_id"])
        assert update.rows_read == pl.from_arrow(batch).filter(pl.col("_batch_id").is_in(update.batch_ids)).height
        assert update.rows_from == HOURLY_FEED_TABLE  # the ingest's groups, not the batch's payloads
        assert len({h[:10] for h in update.hours}) > 1  # late events reached earlier days
        assert 0 < update.new_users <= update.rows_read
        compacted |= update.compacted
    assert compacted  # the state bin-packed its small files, and stayed exact
    assert key_files >= 2 and len(lake.side_files(HOURLY_USERS_TABLE, "_key_files")) >= 2
    # New events of users already counted in their cells, on dates the key files cover: the key
    # files say they are not new (a key file that missed them would count them again).
    users_state.compact_state(lake, marts.MART_APP_ID, key_file_days=30, today=START.date())
    known = (lake.scan(EVENTS_TABLE).select("event_name", "created_at", pl.col("payload").str.json_path_match("$.user_id"))
             .drop_nulls().sort("created_at").collect().gather_every(7).head(40))
    again = write_object(raw_dir, [event(f"again-{i}", name, at + 0.001, user_id=u)
                                   for i, (name, at, u) in enumerate(known.iter_rows())], hour=START.replace(hour=14), minute=59)
    assert ingest_keys(settings, [again]).total("inserted") == known.height == 40
    update = _update_and_compare(lake, lake_dir, marts.ADD)
    assert update.new_users == 0 and update.rows_read == 40
    # The feed no longer holds the batches the mart added (pruned once it had 3 files).
    fed = pl.from_arrow(DeltaTable(str(lake_dir / HOURLY_FEED_TABLE)).to_pyarrow_table(columns=["_batch_id"]))
    assert fed.filter(pl.col("_batch_id") <= max(update.batch_ids) - 3).height == 0

    # Redeliveries of the history (and of the same hour) in a later arrival hour: all dropped.
    before = mart_frame(lake_dir)
    redeliver = sample_records(LocalStorage(str(raw_dir)), 0.2, seed=5)
    later = _zone(raw_dir, 200, seed=4, start=START.replace(hour=15), redeliver=redeliver)
    summary = ingest_keys(settings, later)
    assert summary.total("duplicates") >= len(redeliver) > 20
    update = _update_and_compare(lake, lake_dir, marts.ADD)
    assert mart_frame(lake_dir).get_column("events").sum() == before.get_column("events").sum() + summary.total(
        "inserted")

    # Compaction rewrites files without changing rows: nothing to do, no commit; the next batch adds.
    mart_version = DeltaTable(str(lake_dir / HOURLY_COUNTS_TABLE)).version()
    compaction.compact(lake, settings.compact_target_file_bytes, settings.compact_group_max_bytes)
    assert marts.update_hourly_counts(lake).mode == marts.NOTHING
    assert DeltaTable(str(lake_dir / HOURLY_COUNTS_TABLE)).version() == mart_version
    ingest_keys(settings, _zone(raw_dir, 200, seed=6, start=START.replace(hour=16)))
    _update_and_compare(lake, lake_dir, marts.ADD)
    # A batch without feed rows (as in a lake older than the feed), that a compaction merged into old
    # files before the mart ran: its rows are read from those.
    ingest_keys(settings, _zone(raw_dir, 200, seed=7, start=START.replace(hour=17)))
    shutil.rmtree(lake_dir / HOURLY_FEED_TABLE)
    compaction.compact(lake, settings.compact_target_file_bytes, settings.compact_group_max_bytes)
    update = _update_and_compare(lake, lake_dir, marts.ADD)
    assert update.rows_read == 200 and update.rows_from == EVENTS_TABLE

    # A rebuild of arrival hour 13 removes its rows and ingests them again: those dates are recomputed.
    ingest_hours(settings, START, START, rebuild=True)
    update = _update_and_compare(lake, lake_dir, marts.RECOMPUTE)
    assert "non-append" in update.reason and len(update.hours) >= 24


def _versions(lake_dir) -> tuple[int, int]:
    return (DeltaTable(str(lake_dir / HOURLY_COUNTS_TABLE)).version(), DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).version())


def _lose_race(lake, lake_dir, mode: str) -> None:
    """Two updates plan on the same snapshots (as two ingests with separate Dagster instances do);
    the first commits; the second commits nothing, fails as a CommitRace, and a new look is exact."""
    loser = marts.plan_update(lake)
    assert loser.mode == mode, (loser.mode, loser.touched.reason)
    assert marts.update_hourly_counts(lake).mode == mode
    before = _versions(lake_dir)
    with pytest.raises(CommitRace, match="another"):
        marts.apply_update(lake, loser)
    assert _versions(lake_dir) == before  # nothing of the loser's was committed
    again = _update_and_compare(lake, lake_dir, marts.NOTHING)
    assert again.events_version == again.since_version


def test_an_update_that_lost_a_commit_race_commits_nothing_and_the_next_look_is_exact(settings, raw_dir, lake, lake_dir):
    keys = _zone(raw_dir, 400, seed=12)
    ingest_keys(settings, keys[:1])
    _lose_race(lake, lake_dir, marts.ADD)  # the first build from the feed: both create the state
    ingest_keys(settings, keys[1:2])
    _lose_race(lake, lake_dir, marts.ADD)  # a batch added on the same state and mart
    ingest_hours(settings, START, START, rebuild=True)
    _lose_race(lake, lake_dir, marts.RECOMPUTE)  # hours recomputed from events on the same state


def test_an_update_that_planned_between_the_two_commits_of_another_loses_only_its_mart_commit(
    settings, raw_dir, lake, lake_dir
):
    keys = _zone(raw_dir, 400, seed=13)
    ingest_keys(settings, keys[:1])
    marts.update_hourly_counts(lake)
    ingest_keys(settings, keys[1:2])
    mart_before = DeltaTable(str(lake_dir / HOURLY_COUNTS_TABLE))
    assert marts.update_hourly_counts(lake).mode == marts.ADD  # the other update, both commits
    # As this one saw the lake had it looked between them: the state already holds the batch.
    seen = marts.Snapshots(DeltaTable(str(lake_dir / EVENTS_TABLE)), mart_before,
                           DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)))
    late = marts.plan_update(lake, seen)
    assert late.mode == marts.RECOMPUTE and "users state" in late.touched.reason
    state_version = DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).version()
    with pytest.raises(CommitRace):
        marts.apply_update(lake, late)
    # Its state commit landed (a recompute of the same hours at the same events version); its
    # mart commit did not. The two agree again, so the next look has nothing to do and is exact.
    assert DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).version() == state_version + 1
    assert users_state.state_version(lake, marts.MART_APP_ID) == marts.mart_events_version(lake)
    _update_and_compare(lake, lake_dir, marts.NOTHING)


def test_an_update_that_crashed_between_its_two_commits_is_recomputed(settings, raw_dir, lake, lake_dir):
    keys = _zone(raw_dir, 400, seed=8)
    ingest_keys(settings, keys[:2])
    marts.update_hourly_counts(lake)
    since = marts.mart_events_version(lake)
    old = DeltaTable(str(lake_dir / HOURLY_COUNTS_TABLE)).to_pyarrow_table()
    ingest_keys(settings, keys[2:3])
    assert marts.update_hourly_counts(lake).mode == marts.ADD
    # As if the mart's commit had never happened: the state holds the batch, the mart does not.
    write_deltalake(str(lake_dir / HOURLY_COUNTS_TABLE), old, mode="overwrite",
                    commit_properties=CommitProperties(app_transactions=[Transaction(marts.MART_APP_ID, since)]))
    assert marts.mart_events_version(lake) == since
    assert users_state.state_version(lake, marts.MART_APP_ID) != since
    update = _update_and_compare(lake, lake_dir, marts.RECOMPUTE)
    assert "users state" in update.reason


def test_an_existing_mart_without_its_users_state_is_rebuilt(settings, raw_dir, lake, lake_dir):
    ingest_keys(settings, _zone(raw_dir, 300, seed=9))
    marts.update_hourly_counts(lake)
    shutil.rmtree(lake_dir / HOURLY_USERS_TABLE)
    ingest_keys(settings, _zone(raw_dir, 100, seed=10, start=START.replace(hour=14)))
    update = _update_and_compare(lake, lake_dir, marts.REBUILD)
    assert "users state does not exist" in update.reason


def test_a_batch_of_events_without_users_adds_events_and_no_users(settings, raw_dir, lake, lake_dir):
    write_object(raw_dir, [event("a", at=T0 + 1, user_id="u1"), event("b", at=T0 + 2)], minute=1)
    ingest_one_object_per_batch(settings)
    marts.update_hourly_counts(lake)
    k = write_object(raw_dir, [event("c", at=T0 + 3), event("d", at=T0 + 4, user_id="u1")], minute=2)
    ingest_keys(settings, [k])
    update = _update_and_compare(lake, lake_dir, marts.ADD)
    assert update.new_users == 0 and update.rows_read == 2
    row = mart_frame(lake_dir).row(0, named=True)
    assert (row["events"], row["unique_users"]) == (4, 1)
    assert DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).metadata().partition_columns == ["event_date"]


def test_a_batch_the_feed_does_not_account_for_is_read_from_events(settings, raw_dir, lake, lake_dir):
    keys = _zone(raw_dir, 300, seed=11)
    ingest_keys(settings, keys[:1])
    marts.update_hourly_counts(lake)
    ingest_keys(settings, keys[1:2])
    ingest_keys(settings, keys[2:3])
    # The feed lost one group of the last batch: its sum no longer equals the batch's events.
    last = max(pl.from_arrow(DeltaTable(str(lake_dir / HOURLY_FEED_TABLE)).to_pyarrow_table()).get_column("_batch_id"))
    lake.delete(HOURLY_FEED_TABLE, f"_batch_id = {last} AND events = 1 AND user_id IS NOT NULL")
    update = _update_and_compare(lake, lake_dir, marts.ADD)
    assert update.rows_from == EVENTS_TABLE and len(update.batch_ids) == 2
    # With the feed whole, the next batch is added from it.
    ingest_keys(settings, _zone(raw_dir, 100, seed=12, start=START.replace(hour=14)))
    assert _update_and_compare(lake, lake_dir, marts.ADD).rows_from == HOURLY_FEED_TABLE


def test_a_new_mart_is_rebuilt_from_events_when_the_feed_does_not_hold_every_batch(settings, raw_dir, lake, lake_dir):
    keys = _zone(raw_dir, 300, seed=13)
    ingest_keys(settings, keys[:1])
    shutil.rmtree(lake_dir / HOURLY_FEED_TABLE)  # as in a lake older than the feed
    ingest_keys(settings, keys[1:2])
    first = _update_and_compare(lake, lake_dir, marts.REBUILD)
    assert first.full_rebuild and "does not exist" in first.reason


def test_a_payload_duckdb_cannot_read_counts_as_an_event_without_a_user(settings, raw_dir, lake, lake_dir):
    # The contract keeps a lone surrogate escape as received; DuckDB's JSON reader rejects it.
    lone = (b'{"event_uuid": "b", "event_name": "page:view", "created_at": %r, "user_id": "u9", "note": "\\ud800"}'
            % (T0 + 2))
    k = write_object(raw_dir, [event("a", at=T0 + 1, user_id="u1"), lone, event("c", at=T0 + 3, user_id="u2")],
                     minute=1)
    summary = ingest_keys(settings, [k])  # the feed's grouping does not fail the batch
    assert summary.total("inserted") == 3
    update = _update_and_compare(lake, lake_dir, marts.ADD)
    assert update.rows_from == HOURLY_FEED_TABLE
    row = mart_frame(lake_dir).row(0, named=True)
    assert (row["events"], row["unique_users"]) == (3, 2)  # u1 and u2; b's u9 unreadable


def test_a_batchs_rows_are_read_from_files_whose_partition_values_need_quoting(settings, raw_dir, lake):
    # The mart reads a batch's rows from the files its log names (URL-encoded: "a=b" is "a%253Db"
    # there); those paths once named no file, and the update failed.
    names = ["a=b:c", "café au lait/x:ordered", "50% off:viewed"]
    write_object(raw_dir, [event(f"q{i}", name) for i, name in enumerate(names)])
    assert ingest_one_object_per_batch(settings) == 1
    rows = marts._new_rows(lake, lake.table(EVENTS_TABLE), [1])
    assert sorted(rows.column("event_name").to_pylist()) == sorted(names)
