"""`Lake.write_files` + `Lake.commit_files`: data files written outside delta-rs, committed once per batch."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from lake_pipeline.tables.lake import INGEST_APP_ID

SCHEMA = pa.schema([("k", pa.string()), ("v", pa.float64()), ("at", pa.timestamp("us", tz="UTC")),
                    ("day", pa.date32()), ("kind", pa.string())])


def _data() -> pa.Table:
    return pa.table({
        "k": ["a", "b", "c", "d"],
        "v": [1.5, None, -2.0, 3.25],
        "at": [datetime(2025, 11, 20, 13, tzinfo=UTC)] * 4,
        "day": [date(2025, 11, 20), date(2025, 11, 20), date(2025, 11, 21), date(2025, 11, 21)],
        "kind": ["page", "a b/ü%", "", None],
    }, schema=SCHEMA)


def test_written_files_commit_once_and_read_back_with_partition_values(lake):
    actions = lake.write_files("t", _data(), ["day", "kind"])
    assert len(actions) == 4  # one per partition
    assert lake.commit_files("t", actions, batch_id=7, schema=SCHEMA, partition_by=["day", "kind"],
                             metadata={"batch_id": "7"})
    again = lake.write_files("t", _data(), ["day", "kind"])
    assert not lake.commit_files("t", again, batch_id=7, schema=SCHEMA, partition_by=["day", "kind"])
    table = DeltaTable(lake.table_uri("t"))
    assert table.version() == 1 and table.transaction_version(INGEST_APP_ID) == 7
    got = pl.from_arrow(table.to_pyarrow_table()).sort("k")
    assert got["k"].to_list() == ["a", "b", "c", "d"]
    assert got["v"].to_list() == [1.5, None, -2.0, 3.25]
    assert got["kind"].to_list() == ["page", "a b/ü%", None, None]  # empty partition values read back as null
    assert got["day"].to_list() == [date(2025, 11, 20)] * 2 + [date(2025, 11, 21)] * 2
    stats = pl.from_arrow(lake.add_actions("t"))
    assert sorted(stats["num_records"].to_list()) == [1, 1, 1, 1]
    assert stats["max.v"].drop_nulls().sort().to_list() == [-2.0, 1.5, 3.25]


def test_the_same_rows_as_delta_rs_writes_them(lake):
    lake.append("by_delta_rs", _data(), batch_id=1, partition_by=["day", "kind"])
    lake.commit_files("ours", lake.write_files("ours", _data(), ["day", "kind"]), batch_id=1, schema=SCHEMA,
                      partition_by=["day", "kind"])
    theirs, ours = (pl.from_arrow(DeltaTable(lake.table_uri(n)).to_pyarrow_table()).sort("k")
                    for n in ("by_delta_rs", "ours"))
    assert ours.equals(theirs)


def test_no_files_commit_nothing_but_the_batch(lake):
    assert lake.commit_files("t", [], batch_id=3, schema=SCHEMA)
    assert DeltaTable(lake.table_uri("t")).transaction_version(INGEST_APP_ID) == 3
    assert lake.batch_committed("t", 3)
