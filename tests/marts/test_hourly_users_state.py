"""The mart's users state on a real Delta table: reads by cell, and merges by level that keep
its rows and make its files few."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lake_pipeline.marts import user_keys, users
from lake_pipeline.settings import HOURLY_USERS_TABLE
from lake_pipeline.tables.lake import CommitRace

H = datetime(2025, 11, 20, 13, tzinfo=UTC)


def _triples(n: int, start: int, hour: datetime = H, name: str = "page:view") -> pl.DataFrame:
    return pl.DataFrame({"event_hour": [hour] * n, "event_name": [name] * n,
                         "user_id": [f"u{i}" for i in range(start, start + n)]},
                        schema={"event_hour": pl.Datetime("us", "UTC"), "event_name": pl.String, "user_id": pl.String})


def _levels(lake_dir) -> list[int]:
    frame = pl.from_arrow(DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).to_pyarrow_table(columns=["level"]))
    return sorted(frame.get_column("level").unique().to_list())


def test_reads_by_cell_and_merges_by_level_keep_every_row(lake, lake_dir, monkeypatch):
    monkeypatch.setattr(users, "MERGE_FILES", 3)
    assert users.keep_files_few(lake, "app") is False  # no state yet
    users.append(lake, users.as_state(_triples(0, 0)), "app", 1, {}, users.snapshot(lake))  # an empty append still records the version
    assert users.state_version(lake, "app") == 1 and users.keep_files_few(lake, "app") is False
    users.replace(lake, [_triples(5000, 0).to_arrow()], "app", 2, {}, users.snapshot(lake))  # level 0: one cell of 5,000 users
    other = _triples(10, 0, name="click")
    for v in range(3, 5):
        users.append(lake, users.as_state(_triples(100, 10_000 + 100 * v)), "app", v, {}, users.snapshot(lake))
    assert users.keep_files_few(lake, "app") is False  # two files above level 0, MERGE_FILES is 3
    # Compaction: 200 rows above level 0 are under 1/16 of 5,000, so the date's upper files are
    # merged, not the whole date rewritten.
    assert users.compact_state(lake, "app") == {"dates_rewritten": 0, "dates_merged": 1, "rows_rewritten": 200,
                                                "key_files_written": 0}  # (H is long before the key files' week)
    assert _levels(lake_dir) == [0, 1]
    users.append(lake, users.as_state(_triples(100, 10_000 + 100 * 5)), "app", 5, {}, users.snapshot(lake))
    for v in range(6, 30, 8):
        batch = _triples(400, 20_000 + 400 * v)
        users.append(lake, users.as_state(pl.concat([batch, other]) if v == 6 else batch), "app", v, {},
                     users.snapshot(lake))
        if v == 6:  # level 1 + two level-2 files: the batch merges them, as level 1 again
            assert users.keep_files_few(lake, "app") is True and _levels(lake_dir) == [0, 1]
    # 1,510 rows above level 0 in three files, beyond 1/16 of the date: a batch still only merges them ...
    assert users.keep_files_few(lake, "app") is True and _levels(lake_dir) == [0, 1]
    # ... and compaction rewrites the whole date as level 0.
    assert users.compact_state(lake, "app") == {"dates_rewritten": 1, "dates_merged": 0, "rows_rewritten": 6510,
                                                "key_files_written": 0}
    assert _levels(lake_dir) == [0]
    assert users.compact_state(lake, "app") == dict.fromkeys(
        ("dates_rewritten", "dates_merged", "rows_rewritten", "key_files_written"), 0)
    assert users.state_version(lake, "app") == 22  # merges keep the version the state reflects
    # 6,500 users of the cell are in the state (5,000 + 300 + 1,200); ask for 20 of them and 20 others.
    asked = pl.concat([_triples(10, 0), _triples(10, 20_000 + 400 * 6), _triples(20, 900_000)])
    seen, read = users.seen_users(lake, asked, users.snapshot(lake))
    assert sorted(seen.get_column("user_id").to_list()) == sorted(asked.get_column("user_id").to_list()[:20])
    assert read >= 5000 + 300 + 1200
    # The same users under another name of the same hour: a cell of its own, with none of them.
    elsewhere, _ = users.seen_users(lake, asked.with_columns(event_name=pl.lit("nope")), users.snapshot(lake))
    assert elsewhere.height == 0
    clicks, read_clicks = users.seen_users(lake, other, users.snapshot(lake))
    assert clicks.height == 10 and read_clicks < read  # only the row groups that can hold the cell


def test_two_names_that_share_a_cell_key_keep_their_users_apart(lake):
    # Two names of one hour whose CRC-32 is the same: one cell key, two cells.
    a, b = "page:view29685295", "page:view32060020"
    assert users.with_cell(_triples(1, 0, name=a))["cell"].item() == users.with_cell(_triples(1, 0, name=b))["cell"].item()
    users.append(lake, users.as_state(_triples(100, 0, name=a)), "app", 1, {}, users.snapshot(lake))
    # 20 triples among 100 rows read (the triples' own rows kept), then 200 (the cells' rows kept).
    for asked in (20, 200):
        seen_a, read = users.seen_users(lake, _triples(asked, 0, name=a), users.snapshot(lake))
        seen_b, _ = users.seen_users(lake, _triples(asked, 0, name=b), users.snapshot(lake))
        assert set(seen_a.get_column("event_name")) == {a} and read == 100
        assert seen_a.height == (20 if asked == 20 else 100)
        assert seen_b.height == 0  # the same users under the other name are new to their cell


def test_a_merge_on_a_snapshot_another_update_appended_to_is_a_commit_race_and_loses_no_row(lake, monkeypatch):
    monkeypatch.setattr(users, "MERGE_FILES", 2)
    users.replace(lake, [_triples(100, 0).to_arrow()], "app", 1, {}, users.snapshot(lake))
    users.append(lake, users.as_state(_triples(5, 1000)), "app", 2, {}, users.snapshot(lake))
    users.append(lake, users.as_state(_triples(5, 2000)), "app", 3, {}, users.snapshot(lake))
    stale = users.snapshot(lake)  # the housekeeping's look: two files above level 0, a merge is due
    users.append(lake, users.as_state(_triples(5, 3000)), "app", 4, {}, users.snapshot(lake))  # another update
    with pytest.raises(CommitRace, match="another writer committed first"):
        users.keep_files_few(lake, "app", stale)
    everyone = _triples(100, 0).vstack(_triples(5, 1000)).vstack(_triples(5, 2000)).vstack(_triples(5, 3000))
    seen, _ = users.seen_users(lake, everyone, users.snapshot(lake))
    assert seen.height == 115 and users.state_version(lake, "app") == 4
    assert users.keep_files_few(lake, "app") is True  # on the current version, it merges
    assert users.seen_users(lake, everyone, users.snapshot(lake))[0].height == 115
    assert users.state_version(lake, "app") == 4


def test_a_key_that_matches_another_users_key_costs_a_read_not_a_wrong_answer(lake, lake_dir, monkeypatch):
    # One cell of 10,000 users: three row groups. A row whose user_key is the key of another
    # user (a 64-bit collision, forged): the key read finds it, and the names and users read
    # in its row group alone decide.
    state = users.as_state(_triples(10_000, 0))
    forged = pl.from_arrow(state).with_columns(
        pl.when(pl.col("user_id") == "u500").then(users.user_key(pl.Series(["u99999"])).item())
        .otherwise(pl.col("user_key")).alias("user_key"))
    users.append(lake, forged.to_arrow().cast(users.USERS_SCHEMA), "app", 1, {}, users.snapshot(lake))
    reads = []  # (columns, row groups) of each read of a state file (pyarrow's, recorded)
    read_row_groups = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", lambda self, groups, columns=None, **kw: (
        reads.append((tuple(columns), tuple(groups))) or read_row_groups(self, groups, columns=columns, **kw)))
    asked = pl.concat([_triples(1, 99_999), _triples(1, 7)])  # 2 triples for 10,000 rows: read by key
    seen, read = users.seen_users(lake, asked, users.snapshot(lake))
    assert read == 10_000 and seen.get_column("user_id").to_list() == ["u7"]
    keys_read, names_read = reads
    assert keys_read == (("cell", "user_key"), (0, 1, 2))
    # Only the row groups of the forged u500 and of u7 are read by name (rows are sorted by key).
    order = pl.from_arrow(DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).to_pyarrow_table(columns=["user_id"]))
    groups = tuple(sorted({order.get_column("user_id").index_of(u) // users.ROW_GROUP_ROWS for u in ("u500", "u7")}))
    assert names_read == (("cell", "event_name", "user_id"), groups) and len(groups) < 3


def test_user_keys_are_stable_and_the_empty_id_has_one(lake):
    ids = pl.Series(["u1", "", "a-much-longer-user-id-é", "u1", ""])
    keys = users.user_key(ids).to_list()
    assert keys[0] == keys[3] and keys[1] == keys[4] == 0 and len({keys[0], keys[2], 0}) == 3
    assert users.user_key(pl.Series(["", ""])).to_list() == [0, 0]
    assert users.user_key(pl.Series(["u1"])).to_list() == keys[:1]  # the same key alone as among others
    users.append(lake, users.as_state(pl.concat([_triples(100, 0), _triples(1, 0).with_columns(user_id=pl.lit(""))])),
                 "app", 1, {}, users.snapshot(lake))
    # 1 triple for 101 rows: found by key (0), then by name
    seen, read = users.seen_users(lake, _triples(1, 0).with_columns(user_id=pl.lit("")), users.snapshot(lake))
    assert read == 101 and seen.get_column("user_id").to_list() == [""]


def test_a_state_written_before_user_key_is_read_by_names_and_a_full_replace_gives_it_keys(lake, lake_dir):
    old = users.USERS_SCHEMA.remove(users.USERS_SCHEMA.get_field_index("user_key"))
    lake.create(HOURLY_USERS_TABLE, old, users.USERS_PARTITIONS)
    users.append(lake, users.as_state(_triples(100, 0)), "app", 1, {}, users.snapshot(lake))
    users.append(lake, users.as_state(_triples(10, 100)), "app", 2, {}, users.snapshot(lake))
    table = DeltaTable(str(lake_dir / HOURLY_USERS_TABLE))
    assert "user_key" not in table.schema().to_arrow().names  # appends kept the old layout
    asked = pl.concat([_triples(2, 5), _triples(1, 105), _triples(1, 5000)])
    seen, read = users.seen_users(lake, asked, users.snapshot(lake))
    assert read == 110 and sorted(seen.get_column("user_id").to_list()) == ["u105", "u5", "u6"]
    # A partial replace (one hour) and a merge keep the old layout too.
    users.replace(lake, [_triples(3, 200).to_arrow()], "app", 3, {}, users.snapshot(lake), hours=[H.strftime("%Y-%m-%dT%H")])
    for v in range(4, 4 + users.MERGE_FILES):
        users.append(lake, users.as_state(_triples(1, 1000 + v)), "app", v, {}, users.snapshot(lake))
    assert users.keep_files_few(lake, "app") is True
    assert "user_key" not in DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).schema().to_arrow().names
    asked = pl.concat([_triples(1, 201), _triples(1, 1004), _triples(1, 5)])
    seen, _ = users.seen_users(lake, asked, users.snapshot(lake))
    assert sorted(seen.get_column("user_id").to_list()) == ["u1004", "u201"]  # u5 left with the hour replaced
    users.replace(lake, [_triples(110, 0).to_arrow()], "app", 30, {}, users.snapshot(lake))
    table = DeltaTable(str(lake_dir / HOURLY_USERS_TABLE))
    assert "user_key" in table.schema().to_arrow().names and table.metadata().partition_columns == ["event_date"]
    seen, read = users.seen_users(lake, asked, users.snapshot(lake))
    asked = pl.concat([_triples(2, 5), _triples(1, 105), _triples(1, 5000)])
    seen, read = users.seen_users(lake, asked, users.snapshot(lake))
    assert read == 110 and sorted(seen.get_column("user_id").to_list()) == ["u105", "u5", "u6"]
    assert users.state_version(lake, "app") == 30


def _parquet_reads(monkeypatch) -> list:
    reads = []  # (columns, row groups) of each read of a state file (pyarrow's, recorded)
    read_row_groups = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", lambda self, groups, columns=None, **kw: (
        reads.append((tuple(columns), tuple(groups))) or read_row_groups(self, groups, columns=columns, **kw)))
    return reads


def test_compaction_writes_key_files_that_answer_as_parquet_does_and_only_while_they_stand_for_the_files(
        lake, lake_dir, monkeypatch):
    day = H.date()
    # Level 0 of one date: a cell of 10,000 users under a name, 10 under another, and two names
    # whose CRC-32 is the same (one cell key, two cells).
    a, b = "page:view29685295", "page:view32060020"
    users.replace(lake, [pl.concat([_triples(10_000, 0), _triples(10, 0, name="click"), _triples(50, 0, name=a)])
                         .to_arrow()], "app", 1, {}, users.snapshot(lake))
    asked = pl.concat([_triples(1, 7), _triples(1, 99_999), _triples(1, 3, name="click"), _triples(1, 30, name="click"),
                       _triples(1, 5, name=a), _triples(1, 5, name=b)])
    expected = sorted(["click/u3", f"{a}/u5", "page:view/u7"])

    def answer():  # which of the asked triples the state holds (it may return other rows of their cells)
        seen, read = users.seen_users(lake, asked, users.snapshot(lake))
        held = seen.join(asked, on=users.CELL + ["user_id"], how="semi").unique()
        return sorted(f"{n}/{u}" for n, u in held.select("event_name", "user_id").iter_rows()), read

    assert answer() == (expected, 10_060)  # from Parquet: every row group of the cells (one file, 3 groups)
    done = users.compact_state(lake, "app", key_file_days=2, today=day)
    assert done == {"dates_rewritten": 0, "dates_merged": 0, "rows_rewritten": 0, "key_files_written": 1}
    [kf] = lake.side_files(HOURLY_USERS_TABLE, "_key_files")
    assert kf.startswith(f"_key_files/{day.isoformat()}-")
    reads = _parquet_reads(monkeypatch)
    seen, read = answer()
    assert seen == expected and reads == [] and read <= 3 * user_keys.BATCH_ROWS  # one batch per pair, no Parquet
    assert users.compact_state(lake, "app", key_file_days=2, today=day)["key_files_written"] == 0  # still usable

    # A batch's append above level 0: read from Parquet beside the key file.
    users.append(lake, users.as_state(_triples(1, 99_999)), "app", 2, {}, users.snapshot(lake))
    expected = sorted([*expected, "page:view/u99999"])
    assert answer()[0] == expected and len(reads) == 1
    # A recompute of the hour rewrites the level-0 file: the key file no longer stands for the
    # date's files, which are read from Parquet again, and the next compaction writes a new one.
    users.replace(lake, [_triples(20, 0).to_arrow()], "app", 3, {}, users.snapshot(lake), hours=[H.strftime("%Y-%m-%dT%H")])
    assert answer() == (["page:view/u7"], 20)
    done = users.compact_state(lake, "app", key_file_days=2, today=day)
    assert done["key_files_written"] == 1 and len(lake.side_files(HOURLY_USERS_TABLE, "_key_files")) == 2
    reads.clear()
    assert answer()[0] == ["page:view/u7"] and reads == []
    # Dates before the window lose their key files (their look-ups read Parquet).
    users.compact_state(lake, "app", key_file_days=2, today=day.replace(day=day.day + 5))
    assert lake.side_files(HOURLY_USERS_TABLE, "_key_files") == []
    assert answer()[0] == ["page:view/u7"] and reads


def test_a_key_file_decides_on_both_hashes_so_a_forged_user_key_is_no_match(lake, monkeypatch):
    state = users.as_state(_triples(10_000, 0))
    forged = pl.from_arrow(state).with_columns(
        pl.when(pl.col("user_id") == "u500").then(users.user_key(pl.Series(["u99999"])).item())
        .otherwise(pl.col("user_key")).alias("user_key"))
    users.replace(lake, [forged.select(users.CELL + ["user_id"]).to_arrow()], "app", 1, {}, users.snapshot(lake))
    users.append(lake, forged.to_arrow().cast(users.USERS_SCHEMA), "app", 2, {}, users.snapshot(lake))
    users.compact_state(lake, "app", key_file_days=1, today=H.date())  # level 0 again, with the forged key, and a key file
    assert len(lake.side_files(HOURLY_USERS_TABLE, "_key_files")) == 1
    reads = _parquet_reads(monkeypatch)
    seen, _ = users.seen_users(lake, pl.concat([_triples(1, 99_999), _triples(1, 7)]), users.snapshot(lake))
    assert seen.get_column("user_id").to_list() == ["u7"] and reads == []
