"""Lake (lake_pipeline/tables/lake.py) on real Delta tables in temporary directories: time travel,
add actions, overwrite, delete, compact, vacuum, and the one error mapper behind all of them."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from deltalake import Transaction

from lake_pipeline.storage.errors import StorageError
from lake_pipeline.tables.lake import CHECKPOINT_INTERVAL, Lake, RetentionTooShort, add_actions

SCHEMA = pa.schema([("k", pa.string()), ("part", pa.string()), ("v", pa.int64())])


def _rows(keys: list[str], part: str = "p1") -> pa.Table:
    return pa.table({"k": keys, "part": [part] * len(keys), "v": list(range(len(keys)))}, schema=SCHEMA)


def _keys(lake: Lake, name: str = "t", version: int | None = None) -> list[str]:
    return sorted(lake.scan(name, version).collect().get_column("k").to_list())


def _one_line_naming(err: pytest.ExceptionInfo, lake: Lake, name: str = "t") -> str:
    message = str(err.value)
    assert "\n" not in message and lake.table_uri(name) in message, message
    return message


def _small_files(lake: Lake, per_part: int, parts=("p1", "p2")) -> None:
    """``per_part`` one-row files in each partition."""
    for i in range(per_part):
        for part in parts:
            lake.append("t", _rows([f"{part}-{i}"], part), partition_by=["part"])


def test_a_missing_table_reads_as_none_and_nothing_is_created(lake, lake_dir):
    assert lake.table("t") is None and lake.table("t", 0) is None
    assert lake.scan("t") is None and lake.read_arrow("t") is None and lake.add_actions("t") is None
    assert lake.delete("t", "k = 'a'") == 0
    assert lake.compact("t") == {}
    assert lake.vacuum("t", 0, enforce_retention_duration=False) == []
    assert not (lake_dir / "t").exists()


def test_tables_are_created_with_a_checkpoint_every_ten_commits_and_keep_their_history(lake, lake_dir):
    for i in range(2 * CHECKPOINT_INTERVAL + 1):
        lake.append("t", _rows([f"k{i}"]), partition_by=["part"])
    log = sorted(p.name for p in (lake_dir / "t" / "_delta_log").iterdir() if "checkpoint.parquet" in p.name)
    assert log == [f"{CHECKPOINT_INTERVAL - 1:020d}.checkpoint.parquet",
                   f"{2 * CHECKPOINT_INTERVAL - 1:020d}.checkpoint.parquet"]
    assert lake.table("t").metadata().configuration["delta.checkpointInterval"] == str(CHECKPOINT_INTERVAL)
    assert len(_keys(lake)) == 2 * CHECKPOINT_INTERVAL + 1
    assert _keys(lake, version=3) == ["k0", "k1", "k2"]  # versions before a checkpoint still open


def test_table_scan_and_read_open_the_current_version_or_an_older_one(lake):
    lake.append("t", _rows(["a", "b"]))
    first = lake.table("t").version()
    lake.append("t", _rows(["c"]))
    assert lake.table("t").version() == first + 1
    assert lake.table("t", first).version() == first
    assert _keys(lake, version=first) == ["a", "b"]
    assert _keys(lake) == ["a", "b", "c"]
    old = lake.table("t", first)
    assert sorted(lake.scan("t", snapshot=old).collect().get_column("k").to_list()) == ["a", "b"]
    assert sorted(lake.read_arrow("t", ["k"], snapshot=old).column("k").to_pylist()) == ["a", "b"]
    assert lake.read_arrow("t", ["k"]).column_names == ["k"]


def test_a_pinned_lake_reads_its_tables_at_the_version_it_first_opened_and_the_others_current(lake):
    lake.append("t", _rows(["a"]))
    lake.append("u", _rows(["x"]))
    pinned = lake.pinned("t")
    assert _keys(pinned) == ["a"] and pinned.table("t") is pinned.table("t")
    lake.append("t", _rows(["b"]))
    lake.append("u", _rows(["y"]))
    assert _keys(pinned) == ["a"] and _keys(lake) == ["a", "b"]  # t: as first opened
    assert _keys(pinned, "u") == ["x", "y"]  # u is not pinned: the current version
    assert _keys(pinned, version=lake.table("t").version()) == ["a", "b"]  # time travel opens that version
    assert _keys(lake.pinned(), "u") == ["x", "y"] and lake.pinned().table("missing") is None


def test_add_actions_list_one_row_per_data_file_with_partition_and_counts(lake):
    _small_files(lake, 2)
    files = lake.add_actions("t")
    assert files.num_rows == 4
    assert Counter(files.column("partition.part").to_pylist()) == {"p1": 2, "p2": 2}
    assert files.column("num_records").to_pylist() == [1, 1, 1, 1]
    assert all(size > 0 for size in files.column("size_bytes").to_pylist())
    first = lake.table("t", 1)  # version 0 is the empty table append() creates first
    assert lake.add_actions("t", 1).num_rows == 1 == add_actions(first).num_rows
    assert add_actions(lake.table("t")).column("path").to_pylist() == files.column("path").to_pylist()


def test_parquet_file_opens_each_data_file_by_its_add_actions_path_whatever_its_partition_value(lake):
    # The log URL-encodes a path once more than its directory is ("a%3Db" is "a%253Db" there),
    # for files delta-rs writes and files write_files writes alike.
    parts = ["a=b", "café au lait/x", "50% off", "plain"]
    for part in parts[:2]:
        lake.append("t", _rows([f"{part}-0", f"{part}-1"], part), partition_by=["part"])
    actions = lake.write_files("t", pa.concat_tables([_rows([f"{p}-w"], p) for p in parts[2:]]), ["part"])
    lake.commit_files("t", actions, batch_id=1, schema=SCHEMA, partition_by=["part"])
    files = lake.add_actions("t")
    assert any("%25" in path for path in files.column("path").to_pylist())  # escaped twice in the log
    rows = {part: lake.parquet_file("t", path).metadata.num_rows
            for part, path in zip(files.column("partition.part").to_pylist(), files.column("path").to_pylist(),
                                  strict=True)}
    assert rows == {"a=b": 2, "café au lait/x": 2, "50% off": 1, "plain": 1}


def test_delete_removes_exactly_the_matching_rows_and_keeps_the_rest(lake):
    lake.append("t", _rows(["a", "b", "c"], "p1"), partition_by=["part"])
    lake.append("t", _rows(["d", "e"], "p2"), partition_by=["part"])
    before = lake.table("t").version()
    kept = {r["k"]: r for r in lake.read_arrow("t").to_pylist() if r["k"] in ("a", "c", "d")}

    assert lake.delete("t", "k = 'b' OR k = 'e'", metadata={"lake/operation": "test-delete"}) == 2
    after = lake.read_arrow("t").to_pylist()
    assert sorted(r["k"] for r in after) == ["a", "c", "d"]
    assert {r["k"]: r for r in after} == kept  # the other rows, every column, unchanged
    commit = lake.table("t").history(1)[0]
    assert commit["operation"] == "DELETE" and commit["lake/operation"] == "test-delete"
    assert lake.delete("t", "k = 'nothing'") == 0
    assert _keys(lake, version=before) == ["a", "b", "c", "d", "e"]  # time travel still sees them


def test_overwrite_replaces_the_rows_a_predicate_selects_or_the_whole_table(lake):
    lake.append("t", _rows(["a", "b"], "p1"))
    lake.append("t", _rows(["c"], "p2"))
    lake.overwrite("t", _rows(["x"], "p1"), predicate="part = 'p1'", txn=Transaction("tests.app", 7),
                   metadata={"lake/operation": "test-overwrite"})
    assert sorted((r["k"], r["part"]) for r in lake.read_arrow("t").to_pylist()) == [("c", "p2"), ("x", "p1")]
    table = lake.table("t")
    assert table.transaction_version("tests.app") == 7
    assert table.history(1)[0]["lake/operation"] == "test-overwrite"

    lake.overwrite("t", _rows(["y"]))
    assert _keys(lake) == ["y"]
    other = pa.table({"n": pa.array([1], pa.int64())})
    with pytest.raises(StorageError, match="cannot overwrite Delta table") as err:
        lake.overwrite("t", other)  # another schema, not allowed to replace it
    _one_line_naming(err, lake)
    assert _keys(lake) == ["y"]
    lake.overwrite("t", other, replace_schema=True)
    assert lake.read_arrow("t").to_pylist() == [{"n": 1}]


def test_overwrite_creates_a_missing_table(lake):
    lake.overwrite("t", _rows(["a"]))
    assert _keys(lake) == ["a"]


def test_overwrite_of_a_snapshot_replaces_its_files_and_keeps_rows_committed_since(lake):
    """What the rebuild relies on when it rewrites the plans it read: a plan committed meanwhile stays."""
    lake.append("t", _rows(["a", "b"]))
    snapshot = lake.table("t")
    lake.append("t", _rows(["c"]))
    lake.overwrite("t", _rows(["a"]), snapshot=snapshot)
    assert _keys(lake) == ["a", "c"]


def test_compact_merges_the_small_files_of_the_selected_partitions_only(lake):
    _small_files(lake, 3)
    before = lake.read_arrow("t").sort_by("k")
    metrics = lake.compact("t", partition_filters=[("part", "=", "p1")], metadata={"lake/operation": "test-compact"})
    assert (metrics["numFilesRemoved"], metrics["numFilesAdded"]) == (3, 1)
    assert Counter(lake.add_actions("t").column("partition.part").to_pylist()) == {"p1": 1, "p2": 3}
    assert lake.read_arrow("t").sort_by("k").equals(before)
    commit = lake.table("t").history(1)[0]
    assert commit["operation"] == "OPTIMIZE" and commit["lake/operation"] == "test-compact"

    assert lake.compact("t")["numFilesRemoved"] == 3  # then p2, on the current snapshot
    assert lake.add_actions("t").num_rows == 2


def test_a_compaction_on_a_stale_snapshot_fails_with_one_line_that_says_to_run_it_again(lake):
    _small_files(lake, 3, parts=("p1",))
    stale = lake.table("t")
    assert lake.delete("t", "k = 'p1-1'") == 1  # another writer removes a file the compaction reads
    with pytest.raises(StorageError, match="another writer committed first") as err:
        lake.compact("t", snapshot=stale)
    assert _one_line_naming(err, lake).endswith("run it again")
    assert _keys(lake) == ["p1-0", "p1-2"]


def test_vacuum_deletes_only_unreferenced_files_and_refuses_a_short_retention(lake, lake_dir):
    _small_files(lake, 3, parts=("p1",))
    lake.compact("t")
    on_disk = lambda: {p.name for p in (lake_dir / "t").rglob("*.parquet")}  # noqa: E731
    live = {p.rsplit("/", 1)[-1] for p in lake.add_actions("t").column("path").to_pylist()}
    assert len(on_disk()) == 4 and len(live) == 1

    with pytest.raises(RetentionTooShort) as err:
        lake.vacuum("t", 0)
    assert "--unsafe-retention" in _one_line_naming(err, lake)
    assert len(on_disk()) == 4
    listed = lake.vacuum("t", 0, dry_run=True, enforce_retention_duration=False)
    assert len(listed) == 3 and len(on_disk()) == 4  # a dry run deletes nothing
    deleted = lake.vacuum("t", 0, enforce_retention_duration=False, full=True)
    assert sorted(deleted) == sorted(listed)
    assert on_disk() == live
    assert _keys(lake) == ["p1-0", "p1-1", "p1-2"]


def test_a_lake_under_a_regular_file_fails_with_one_line_naming_the_table(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    lake = Lake(str(blocker / "lake"))
    assert lake.table("t") is None  # nothing there to read
    writes = {
        "create": lambda: lake.create("t", SCHEMA),
        "append": lambda: lake.append("t", _rows(["a"])),
        "overwrite": lambda: lake.overwrite("t", _rows(["a"])),
    }
    for what, write in writes.items():
        with pytest.raises(StorageError) as err:
            write()
        assert "Not a directory" in _one_line_naming(err, lake), what
    assert blocker.read_text() == "x"


def test_a_broken_log_or_a_missing_version_fails_with_one_line_naming_the_table(lake, lake_dir):
    lake.append("t", _rows(["a"]))
    version = lake.table("t").version()
    with pytest.raises(StorageError, match=f"cannot open version {version + 5} of Delta table") as err:
        lake.table("t", version + 5)
    _one_line_naming(err, lake)

    (lake_dir / "t" / "_delta_log" / f"{version + 1:020d}.json").write_text("not json{")
    uses = {
        "table": lambda: lake.table("t"),
        "scan": lambda: lake.scan("t"),
        "read_arrow": lambda: lake.read_arrow("t"),
        "add_actions": lambda: lake.add_actions("t"),
        "append": lambda: lake.append("t", _rows(["b"])),
        "overwrite": lambda: lake.overwrite("t", _rows(["b"])),
        "delete": lambda: lake.delete("t", "k = 'a'"),
        "compact": lambda: lake.compact("t"),
        "vacuum": lambda: lake.vacuum("t", 0, enforce_retention_duration=False),
    }
    for what, use in uses.items():
        with pytest.raises(StorageError) as err:
            use()
        assert "Delta table" in _one_line_naming(err, lake), what
