"""Key files of closed dates (seen_index, "Key files"): a look-up through one gives the answers
the index's Parquet files give, rows added to the date later are read beside it, a key file whose
data files were rewritten is not used, and retention deletes them. Real Delta tables throughout."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from lake_pipeline.ingest import seen_index
from lake_pipeline.settings import DEDUPE_INDEX_TABLE
from lake_pipeline.tables.lake import Lake
from lake_pipeline.transforms.dedupe import ordered_key, uuid_hash

D = date(2025, 11, 10)
DAY = seen_index.day_number(D)
START = datetime(2025, 11, 10, tzinfo=UTC).timestamp()
HORIZON = 3600.0
BUCKETS = 4


def _rows(uuids: list[str], at: list[float], batch: int) -> pl.DataFrame:
    return pl.DataFrame({"event_uuid": uuids, "created_at": at, "event_date": [D] * len(uuids),
                         "_batch_id": [batch] * len(uuids), "_source_key": [f"raw/batch-{batch}"] * len(uuids)},
                        schema={"event_uuid": pl.String, "created_at": pl.Float64, "event_date": pl.Date,
                                "_batch_id": pl.Int64, "_source_key": pl.String})


def _day_rows(prefix: str, n: int, batch: int) -> pl.DataFrame:
    return _rows([f"{prefix}-{i}" for i in range(n)], [START + 3600 + i * (80000 / n) for i in range(n)], batch)


def _append(lake: Lake, rows: pl.DataFrame) -> None:
    seen_index.write_rows(lake, seen_index.index_rows(rows, BUCKETS), int(rows.get_column("_batch_id")[0]))


def _closed_lake(lake: Lake) -> pl.DataFrame:
    """Two batches on date D, one uuid indexed twice (10 h apart) whose key sits at the end of the
    first 2,048-row record batch, so that its rows straddle two batches; then D closed by compaction."""
    seen_index.create_index(lake, BUCKETS, ready=True)
    first, second = _day_rows("a", 3000, 1), _day_rows("b", 2500, 2)
    both = pl.concat([first, second])
    keys = ordered_key(uuid_hash(both.get_column("event_uuid")))
    edge = both.row(int(np.argsort(keys)[seen_index.ROW_GROUP_ROWS - 1]), named=True)
    twice = _rows([edge["event_uuid"]], [edge["created_at"] + 36000.0], 2)
    _append(lake, first)
    _append(lake, pl.concat([second, twice]))
    seen_index.compact_index(lake, HORIZON, now=datetime(2025, 11, 15, tzinfo=UTC))
    return pl.concat([both, twice])


def _chunk(history: pl.DataFrame, new: int) -> pl.DataFrame:
    """Every 50th indexed event again (at its own created_at) and ``new`` events never seen."""
    old = history.select("event_uuid", "created_at").gather_every(50)
    fresh = pl.DataFrame({"event_uuid": [f"new-{i}" for i in range(new)],
                          "created_at": [START + 5000.0 + i for i in range(new)]})
    return pl.concat([old, fresh])


def _truth(lake: Lake, chunk: pl.DataFrame) -> list[tuple]:
    """What a look-up must return: every index row of the chunk's uuids."""
    rows = (lake.scan(DEDUPE_INDEX_TABLE).filter(pl.col("event_uuid").is_in(chunk.get_column("event_uuid").implode()))
            .select("event_uuid", "created_at").collect())
    return sorted(rows.iter_rows())


def _looked_up(index: seen_index.SeenIndex, chunk: pl.DataFrame) -> tuple[list[tuple], seen_index.Lookup]:
    out = index.lookup(chunk, batch_id=10**9)
    return sorted(out.history.iter_rows()), out


def test_a_closed_date_is_looked_up_in_its_key_file_with_the_answers_of_its_parquet_files(lake):
    history = _closed_lake(lake)
    snapshot = lake.table(DEDUPE_INDEX_TABLE)
    assert snapshot.transaction_version(seen_index.key_file_app_id(DAY)) is not None
    assert len(lake.side_files(DEDUPE_INDEX_TABLE, seen_index.KEY_FILES_DIR)) == 1
    chunk = _chunk(history, 60)
    twice = history.filter(pl.col("event_uuid").is_duplicated()).get_column("event_uuid")[0]
    chunk = pl.concat([chunk, history.filter(pl.col("event_uuid") == twice).select("event_uuid", "created_at").head(1)])
    index = seen_index.SeenIndex.open(lake, HORIZON)
    found, out = _looked_up(index, chunk)
    assert found == _truth(lake, chunk) and len(found) > 100
    assert sum(1 for u, _ in found if u == twice) == 2  # both rows of the key that straddles two batches
    assert index.key_files[DAY] is not None
    assert all(f.parquet is None for f in index.files_by_day[DAY])  # no Parquet footer of the date decoded
    assert 0 < out.row_groups_read <= 4  # 5,501 rows: three record batches, all holding a key of the chunk
    assert out.key_file_rows_read == out.rows_read > 0  # every row read came from the key file
    # The key indexed twice alone: its two rows are the last of one record batch and the first of the next.
    alone, out = _looked_up(seen_index.SeenIndex.open(lake, HORIZON), chunk.filter(pl.col("event_uuid") == twice))
    assert [u for u, _ in alone] == [twice, twice] and out.row_groups_read == 2


def test_rows_a_batch_adds_to_a_closed_date_are_read_from_parquet_beside_the_key_file(lake):
    history = _closed_lake(lake)
    late = _day_rows("late", 40, 3)
    _append(lake, late)
    chunk = pl.concat([_chunk(history, 10), late.select("event_uuid", "created_at").head(15)])
    index = seen_index.SeenIndex.open(lake, HORIZON)
    found, out = _looked_up(index, chunk)
    assert found == _truth(lake, chunk)
    assert sum(1 for u, _ in found if u.startswith("late-")) == 15
    assert 0 < out.key_file_rows_read < out.rows_read  # the late batch's Parquet rows are counted beside
    covered = index.key_files[DAY].covers
    opened = {f.path for f in index.files_by_day[DAY] if f.parquet is not None}
    # The late batch's file (40 rows) is read whole, with the small files; none the key file stands for is opened.
    assert out.small_files_read == 1 and not opened & covered


def test_a_key_file_whose_data_files_were_rewritten_is_not_used(lake):
    history = _closed_lake(lake)
    lake.delete(DEDUPE_INDEX_TABLE, "_batch_id = 1")  # rewrites the compacted file (a rebuild does this)
    chunk = _chunk(history, 20)
    index = seen_index.SeenIndex.open(lake, HORIZON)
    found, _ = _looked_up(index, chunk)
    assert index.key_files[DAY] is None
    assert found == _truth(lake, chunk)
    first = set(history.filter(pl.col("_batch_id") == 1).select("event_uuid", "created_at").iter_rows())
    assert found and not first & set(found)  # batch 1's rows are gone, also from the answer


def test_retention_deletes_the_key_files_of_the_dates_it_drops(lake):
    _closed_lake(lake)
    assert lake.side_files(DEDUPE_INDEX_TABLE, seen_index.KEY_FILES_DIR)
    assert seen_index.drop_expired(lake, retention_days=2, today=date(2025, 11, 20)) > 0
    assert lake.side_files(DEDUPE_INDEX_TABLE, seen_index.KEY_FILES_DIR) == []


def test_vacuum_leaves_the_key_files_and_they_stay_in_use(lake):
    """Key files are beside the log, not in it: delta-rs' vacuum (also ``full``) must skip ``_key_files``."""
    history = _closed_lake(lake)
    before = lake.side_files(DEDUPE_INDEX_TABLE, seen_index.KEY_FILES_DIR)
    removed = lake.vacuum(DEDUPE_INDEX_TABLE, 0, enforce_retention_duration=False, full=True)
    assert removed  # the compacted-away files went, so the vacuum did run
    assert lake.side_files(DEDUPE_INDEX_TABLE, seen_index.KEY_FILES_DIR) == before
    index = seen_index.SeenIndex.open(lake, HORIZON)
    chunk = _chunk(history, 20)
    found, _ = _looked_up(index, chunk)
    assert index.key_files[DAY] is not None and found == _truth(lake, chunk)


def test_a_batchs_later_chunks_take_the_keys_its_earlier_chunks_read_from_the_cache(lake, monkeypatch):
    # A date not closed yet (no compaction): its keys are read from Parquet, per row group.
    seen_index.create_index(lake, BUCKETS, ready=True)
    history = pl.concat([_day_rows("a", 3000, 1), _day_rows("b", 2500, 2)])
    _append(lake, history.filter(pl.col("event_uuid").str.starts_with("a")))
    _append(lake, history.filter(pl.col("event_uuid").str.starts_with("b")))
    chunk = _chunk(history, 40)
    first, second = chunk.gather_every(2), chunk.gather_every(2, offset=1)

    def two_chunks():
        index = seen_index.SeenIndex.open(lake, HORIZON)
        index.small_file_rows = 0  # these files (3,000 and 2,500 rows) read by row group, not whole
        a, out_a = _looked_up(index, first)
        b, out_b = _looked_up(index, second)
        assert a == _truth(lake, first) and b == _truth(lake, second) and a and b
        return out_a.rows_read, out_b.rows_read

    read_first, read_second = two_chunks()
    assert read_first > 0 and read_second < read_first  # the second chunk's row groups were mostly read by the first
    monkeypatch.setattr(seen_index, "KEY_CACHE_ROWS", 0)  # no cache: each chunk reads its row groups
    uncached_first, uncached_second = two_chunks()
    assert uncached_first == read_first and uncached_second > read_second
