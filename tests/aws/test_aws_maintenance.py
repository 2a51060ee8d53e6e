"""Compaction, vacuum and the hourly mart on a lake in S3 (the session's moto server over real HTTP).

The logic is tested on local lakes in tests/maintenance and tests/marts; this is the same
code on the emulated AWS path (object_store, conditional puts, vacuum deleting S3 objects).
"""

from __future__ import annotations

import polars as pl
import pytest
from deltalake import DeltaTable

from lake_pipeline.maintenance import compaction
from lake_pipeline.marts import hourly as marts
from lake_pipeline.storage.aws import client, delta_storage_options
from lake_pipeline.tables.lake import Lake
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_COUNTS_TABLE, HOURLY_FEED_TABLE, load_settings
from tests.support.runs import ingest_one_object_per_batch, synthetic_landing_zone

pytestmark = pytest.mark.e2e  # the moto server


def test_compaction_vacuum_and_mart_on_s3(aws_env, aws_names, raw_dir, monkeypatch):
    bucket = aws_names["lake_bucket"]
    client("s3").create_bucket(Bucket=bucket)
    settings = load_settings(raw_uri=str(raw_dir), lake_uri=f"s3://{bucket}/lake")
    lake = Lake.from_settings(settings)
    synthetic_landing_zone(raw_dir, 500, object_seconds=600)  # 6 objects, one batch each
    ingest_one_object_per_batch(settings)
    options = delta_storage_options(lake.uri)

    def contents() -> pl.DataFrame:
        table = DeltaTable(lake.table_uri(EVENTS_TABLE), storage_options=options)
        return pl.from_arrow(table.to_pyarrow_table()).sort("event_uuid")

    before = contents()
    assert compaction.table_file_stats(lake)["max_files_per_partition"] > 1
    plan, results = compaction.compact(lake, settings.compact_target_file_bytes, settings.compact_group_max_bytes)
    assert plan.groups and compaction.table_file_stats(lake)["max_files_per_partition"] == 1
    assert compaction.check_parity(lake, results).passed
    assert compaction.check_file_bound(lake, results, settings.compact_target_file_bytes).passed
    assert compaction.vacuum(lake, 0, enforce_retention_duration=False).files_deleted == plan.candidate_files
    assert contents().equals(before)

    # A new mart over ingest appends and compactions only: built from the feed, on S3 as well.
    update = marts.update_hourly_counts(lake)
    assert (update.mode, update.rows_from) == (marts.ADD, HOURLY_FEED_TABLE) and update.rows_written > 0
    assert marts.counts_match_events(lake, update.hours).passed
    mart = DeltaTable(lake.table_uri(HOURLY_COUNTS_TABLE), storage_options=options).to_pyarrow_table()
    assert mart.column("events").to_pylist() and sum(mart.column("events").to_pylist()) == before.height

    # The users state's compaction on S3: dates rewritten, key files written beside the state,
    # and a look-up of users the state holds answered from them (no Parquet read).
    from lake_pipeline.marts import users
    from lake_pipeline.settings import HOURLY_USERS_TABLE

    newest = before.get_column("event_date").max()
    done = users.compact_state(lake, marts.MART_APP_ID, key_file_days=30, today=newest)
    assert done["dates_rewritten"] == done["key_files_written"] == before.get_column("event_date").n_unique()
    listed = client("s3").list_objects_v2(Bucket=bucket, Prefix=f"lake/{HOURLY_USERS_TABLE}/_key_files/")
    assert len(listed.get("Contents", [])) == done["key_files_written"]
    state = pl.from_arrow(DeltaTable(lake.table_uri(HOURLY_USERS_TABLE), storage_options=options).to_pyarrow_table())
    asked = state.select(users.CELL + ["user_id"]).head(5)
    import pyarrow.parquet as pq

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", lambda *a, **k: pytest.fail("read from Parquet"))
    seen, read = users.seen_users(lake, asked, users.snapshot(lake))
    assert seen.join(asked, on=users.CELL + ["user_id"], how="semi").height == 5 and 0 < read <= 5 * 2048


def test_key_files_of_closed_dates_on_s3(aws_env, aws_names, raw_dir):
    """The seen-keys index's key files (tests/ingest/test_key_files.py) through S3's object store:
    written beside the index, listed, read one record batch at a time, deleted by retention."""
    from datetime import date

    from lake_pipeline.ingest import seen_index
    from lake_pipeline.settings import DEDUPE_INDEX_TABLE
    from tests.ingest.test_key_files import DAY, HORIZON, _chunk, _closed_lake, _looked_up, _truth

    bucket = aws_names["lake_bucket"]
    client("s3").create_bucket(Bucket=bucket)
    lake = Lake.from_settings(load_settings(raw_uri=str(raw_dir), lake_uri=f"s3://{bucket}/lake"))
    history = _closed_lake(lake)
    keys = client("s3").list_objects_v2(Bucket=bucket, Prefix=f"lake/{DEDUPE_INDEX_TABLE}/{seen_index.KEY_FILES_DIR}/")
    assert [o["Key"].rsplit("/", 1)[-1][:10] for o in keys.get("Contents", [])] == ["2025-11-10"]
    chunk = _chunk(history, 30)
    index = seen_index.SeenIndex.open(lake, HORIZON)
    found, _ = _looked_up(index, chunk)
    assert index.key_files[DAY] is not None and found == _truth(lake, chunk) and found
    assert seen_index.drop_expired(lake, retention_days=2, today=date(2025, 11, 20)) > 0
    assert lake.side_files(DEDUPE_INDEX_TABLE, seen_index.KEY_FILES_DIR) == []
