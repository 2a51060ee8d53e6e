"""The required-columns check decides from the files' statistics where they can say, and reads the
rows where they can't: both ways give the same answer, and a null in a required column fails it."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from lake_pipeline.quality import rules
from lake_pipeline.settings import EVENTS_TABLE
from tests.support.records import event, write_object
from tests.support.runs import ingest_one_object_per_batch, synthetic_landing_zone


@pytest.fixture
def ingested(settings, raw_dir, lake):
    synthetic_landing_zone(raw_dir, 600, seed=5, object_seconds=600)
    assert ingest_one_object_per_batch(settings) == 6
    return lake


def _from_files(lake, columns, batch_ids, dates=None):
    """The answer from the files alone (None: they can't say)."""
    return rules._null_counts_from_files(lake, lake.table(EVENTS_TABLE), columns, batch_ids, dates)


def _read_counts(lake, batch_ids) -> dict[str, int]:
    """The answer by reading the rows (what the check does when the files can't say)."""
    scan = lake.scan(EVENTS_TABLE)
    if batch_ids is not None:
        scan = scan.filter(pl.col("_batch_id").is_in(batch_ids))
    names = scan.collect_schema().names()
    return scan.select(pl.len().alias("__rows"), *[pl.col(c).null_count() for c in names]).collect().row(0, named=True)


def _partitions(lake) -> list[str]:
    return lake.table(EVENTS_TABLE).metadata().partition_columns


def test_the_files_say_what_reading_the_rows_says_for_a_batch_and_for_the_table(ingested):
    lake = ingested
    columns = [c for c in lake.scan(EVENTS_TABLE).collect_schema().names() if c != "_batch_id"]
    batches = sorted(set(lake.scan(EVENTS_TABLE).select("_batch_id").collect()["_batch_id"]))
    assert len(batches) >= 3
    for scope in ([batches[1]], batches[:2], None):
        from_files = _from_files(lake, columns, scope)
        assert from_files is not None, scope  # one batch per file: the files can say
        read = _read_counts(lake, scope)
        assert from_files == {"__rows": read["__rows"], **{c: read[c] for c in columns}}
        assert from_files["__rows"] > 0
        outcome = rules.required_columns(lake, scope)
        assert outcome.passed and outcome.metadata["rows"] == read["__rows"], outcome.description
    # The batch's event_dates (the run's metadata) prune the files and change nothing.
    dates = lake.scan(EVENTS_TABLE).filter(pl.col("_batch_id") == batches[1]).select("event_date").unique().collect()
    dates = sorted(str(d) for d in dates["event_date"])
    assert _from_files(lake, columns, [batches[1]], dates) == _from_files(lake, columns, [batches[1]])


def _with_nulls(lake, batches: list[int]) -> pa.Table:
    """Rows of one partition, of ``batches`` (one each), the first with a null event_name and the
    second with a null payload: columns the table declares required."""
    first = lake.scan(EVENTS_TABLE).head(1).collect()
    same = lake.scan(EVENTS_TABLE).filter(pl.col("event_date") == first["event_date"][0],
                                          pl.col("event_type") == first["event_type"][0])
    rows = same.head(len(batches)).collect().with_columns(_batch_id=pl.Series(batches, dtype=pl.Int64))
    assert rows.height == len(batches)
    rows = rows.with_columns(
        event_name=pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("event_name")),
        payload=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("payload")),
    )
    return rows.to_arrow()


def test_a_null_in_a_required_column_fails_the_check_by_statistics_and_by_reading(ingested):
    lake = ingested
    partitions = lake.table(EVENTS_TABLE).metadata().partition_columns
    single = _with_nulls(lake, [99, 99])  # one file of one batch
    actions = lake.write_files(EVENTS_TABLE, single, partitions)
    lake.commit_files(EVENTS_TABLE, actions, batch_id=99, schema=single.schema, partition_by=partitions)
    # Both nulls are in the add action's statistics: nothing is read.
    assert _from_files(lake, ["event_name", "payload"], [99]) == {
        "__rows": 2, "event_name": 1, "payload": 1}
    for scope in ([99], None):
        outcome = rules.required_columns(lake, scope)
        assert not outcome.passed
        assert "event_name=1" in outcome.description and "payload=1" in outcome.description, outcome.description
        assert outcome.metadata["null_values"] == 2

    # One file of two batches (as compaction makes them; delta-rs' own compaction refuses the
    # nulls): the files can't say for one batch, so its rows are read.
    mixed = _with_nulls(lake, [100, 101, 101])
    actions = lake.write_files(EVENTS_TABLE, mixed, partitions)
    lake.commit_files(EVENTS_TABLE, actions, batch_id=101, schema=mixed.schema, partition_by=partitions)
    assert _from_files(lake, ["event_name"], [100]) is None
    outcome = rules.required_columns(lake, [100])
    assert not outcome.passed and outcome.metadata["rows"] == 1, outcome.description
    assert outcome.description.endswith("event_name=1"), outcome.description
    outcome = rules.required_columns(lake, [101])
    assert not outcome.passed and outcome.metadata["rows"] == 2, outcome.description
    assert outcome.description.endswith("payload=1"), outcome.description


def test_after_compaction_mixes_batches_in_a_file_the_rows_are_read_and_the_answer_is_the_same(ingested):
    lake = ingested
    batches = sorted(set(lake.scan(EVENTS_TABLE).select("_batch_id").collect()["_batch_id"]))
    before = rules.required_columns(lake, [batches[0]])
    assert lake.compact(EVENTS_TABLE)["numFilesRemoved"] > 0
    assert _from_files(lake, ["event_name"], [batches[0]]) is None
    after = rules.required_columns(lake, [batches[0]])
    assert after.passed and after.metadata == before.metadata


def test_no_batches_is_no_rows(ingested):
    assert _from_files(ingested, ["event_name"], []) == {"__rows": 0, "event_name": 0}
    outcome = rules.required_columns(ingested, [])
    assert outcome.passed and outcome.metadata["rows"] == 0


def test_partition_values_that_need_quoting_are_found_by_their_files(settings, raw_dir, lake):
    # The log names such files URL-encoded ("café au lait/x" -> caf%25C3%25A9...): a footer read
    # by the log's path as written would find no file.
    names = ["café au lait/x:ordered", "50% off:viewed", "a=b:c"]
    write_object(raw_dir, [event(f"u{i}", name) for i, name in enumerate(names)])
    assert ingest_one_object_per_batch(settings) == 1
    counted = _from_files(lake, ["event_name", "payload"], [1])
    assert counted == {"__rows": 3, "event_name": 0, "payload": 0}
    outcome = rules.required_columns(lake, [1])
    assert outcome.passed and outcome.metadata["rows"] == 3, outcome.description
