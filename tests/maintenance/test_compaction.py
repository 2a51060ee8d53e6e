"""Compaction and vacuum of `events` on real Delta tables, through the job and `lake compact`."""

from __future__ import annotations

import threading
import time

import dagster as dg
import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from lake_pipeline.cli.main import main as lake_cli
from lake_pipeline.defs.maintenance.compaction import (
    BOOKKEEPING_COMPACTION,
    EVENTS_COMPACTION,
    EVENTS_VACUUM,
    MART_STATE_MAINTENANCE,
)
from lake_pipeline.maintenance import compaction
from lake_pipeline.marts import hourly as marts
from lake_pipeline.maintenance.compaction import GroupResult, RetentionTooShort, file_bound, partition_files
from lake_pipeline.ops.instance import ensure_dagster_home
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_USERS_TABLE, LEDGER_TABLE, PLANS_TABLE, WRITER_POOL
from lake_pipeline.tables.lake import Lake
from tests.support.runs import ingest_one_object_per_batch, run_job, synthetic_landing_zone


def _contents(lake_dir) -> pl.DataFrame:
    table = DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table()
    return pl.from_arrow(table).sort("event_uuid")


def _files_per_partition(lake_dir) -> dict[tuple[str, str], int]:
    return {p: f.files for p, f in partition_files(DeltaTable(str(lake_dir / EVENTS_TABLE))).items()}


@pytest.mark.heavy
def test_lake_compact_after_one_object_per_run_keeps_contents_and_leaves_one_file_per_partition(
    settings, raw_dir, lake_dir, tmp_path, monkeypatch
):
    synthetic_landing_zone(raw_dir, 1500, object_seconds=180)  # 20 objects, late events on 3 dates
    assert ingest_one_object_per_batch(settings) == 20
    before = _contents(lake_dir)
    files_before = _files_per_partition(lake_dir)
    assert max(files_before.values()) >= 15  # one small file per batch and partition

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(lake_cli, ["compact", "--lake", str(lake_dir)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "check events_compaction_parity_check: passed" in out.output
    assert "check events_compaction_file_count_check: passed" in out.output
    assert "vacuum: 0 file(s) deleted (retention 168 h)" in out.output  # nothing is old enough yet

    assert _contents(lake_dir).equals(before)  # every row, every column, unchanged
    after = _files_per_partition(lake_dir)
    assert after.keys() == files_before.keys()
    assert set(after.values()) == {1}  # every partition here is far below the 128 MiB target
    history = DeltaTable(str(lake_dir / EVENTS_TABLE)).history()
    optimize = [h for h in history if h["operation"] == "OPTIMIZE"]
    dates = {p[0] for p, n in files_before.items() if n > 1}
    assert len(optimize) == len(dates)  # one commit per partition group (here: per event_date)
    assert all(h["operationParameters"]["predicate"].count("event_date") == 1 for h in optimize)

    # The run is in the instance of DAGSTER_HOME, so the UI shows it.
    with dg.DagsterInstance.get() as inst:
        runs = inst.get_runs(dg.RunsFilter(job_name="events_compaction_job"))
        assert len(runs) == 1 and runs[0].is_success

    # Nothing left to do: a second compaction makes no commit.
    version = DeltaTable(str(lake_dir / EVENTS_TABLE)).version()
    again = CliRunner().invoke(lake_cli, ["compact", "--lake", str(lake_dir), "--no-vacuum"])
    assert again.exit_code == 0, again.output
    assert "compacted 0 partition(s) in 0 commit(s)" in again.output
    assert DeltaTable(str(lake_dir / EVENTS_TABLE)).version() == version


@pytest.mark.heavy
def test_partitions_larger_than_the_target_stay_within_the_bound(settings, raw_dir, lake, lake_dir):
    synthetic_landing_zone(raw_dir, 3000, object_seconds=360)  # 10 objects
    ingest_one_object_per_batch(settings)
    before = _contents(lake_dir)
    table = DeltaTable(str(lake_dir / EVENTS_TABLE))
    sizes = {p: f.bytes for p, f in partition_files(table).items()}
    file_sizes = sorted(pa.table(table.get_add_actions(flatten=True)).column("size_bytes").to_pylist())
    target = int(file_sizes[len(file_sizes) // 2] * 3.5)  # about 3 micro-batch files per target-sized file
    plan, results = compaction.compact(lake, target, group_max_bytes=target * 4)
    assert len(plan.groups) > len({g.event_date for g in plan.groups})  # big dates split into several commits
    assert _contents(lake_dir).equals(before)
    after = _files_per_partition(lake_dir)
    big = [p for p, b in sizes.items() if b >= target]
    assert any(after[p] > 1 for p in big)
    for p, size in sizes.items():
        assert after[p] <= file_bound(size, target), (p, after[p], size)
        if size < target:
            assert after[p] == 1
    assert compaction.check_file_bound(lake, results, target).passed
    parity = compaction.check_parity(lake, results)
    assert parity.passed and parity.metadata["rows_checked"] == sum(
        f.rows for p, f in partition_files(DeltaTable(str(lake_dir / EVENTS_TABLE))).items()
        if p in {q for r in results for q in r.group.partitions()}
    )


def test_checks_catch_a_commit_that_changes_rows_and_a_partition_left_in_pieces(settings, raw_dir, lake, lake_dir):
    synthetic_landing_zone(raw_dir, 400, object_seconds=600)  # 6 objects
    ingest_one_object_per_batch(settings)
    table = DeltaTable(str(lake_dir / EVENTS_TABLE))
    parts = partition_files(table)
    (date, etype), _ = max(parts.items(), key=lambda kv: kv[1].files)
    v0 = table.version()
    # A "compaction" that lost rows: a real commit that deletes one row of the partition.
    rows = pl.from_arrow(table.to_pyarrow_table(filters=[("event_type", "=", etype)]))
    victim = rows.filter(pl.col("event_date").cast(pl.String) == date).row(0, named=True)
    table.delete(f"event_uuid = '{victim['event_uuid']}'")
    bad = GroupResult(date, [etype], v0, v0 + 1, 0, 0, 0, 0)
    parity = compaction.check_parity(lake, [bad])
    assert not parity.passed and parity.metadata["mismatched_groups"] == 1
    assert "row count changed" in parity.description
    # A partition that was not compacted still has many small files: the bound check says so.
    untouched = GroupResult(date, [etype], v0, None, 0, 0, 0, 0)
    bound = compaction.check_file_bound(lake, [untouched], settings.compact_target_file_bytes)
    assert not bound.passed and bound.metadata["violations"] == 1
    assert f"{date}/{etype}" in bound.description and "bound 1" in bound.description


def _state(lake_dir) -> pl.DataFrame:
    table = DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).to_pyarrow_table()
    return pl.from_arrow(table).sort("cell", "user_key")


def test_job_checks_gate_vacuum_and_metadata_is_plottable(defs, settings, raw_dir, lake_dir, instance):
    synthetic_landing_zone(raw_dir, 300, object_seconds=900)  # 4 objects
    ingest_one_object_per_batch(settings)
    lake = Lake(str(lake_dir))
    assert marts.update_hourly_counts(lake).mode == marts.ADD  # the mart, from the feed: its state above level 0
    state = _state(lake_dir)
    assert state.get_column("level").unique().to_list() == [2]
    ledger = {n: pl.from_arrow(DeltaTable(str(lake_dir / n)).to_pyarrow_table()).sort("_batch_id", descending=False)
              for n in (LEDGER_TABLE, PLANS_TABLE)}
    assert all(len(DeltaTable(str(lake_dir / n)).file_uris()) == 4 for n in ledger)  # one file per batch
    result = run_job(defs, "events_compaction_job", settings, instance)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"events_compaction_parity_check": True, "events_compaction_file_count_check": True}
    mats = {m.asset_key: m.materialization.metadata for m in result.get_asset_materialization_events()}
    meta = mats[EVENTS_COMPACTION]
    assert meta["files_after"].value < meta["files_before"].value
    assert meta["max_files_per_partition"].value == 1
    assert meta["commits"].value == len(meta["groups"].value) >= 1
    assert mats[EVENTS_VACUUM]["files_deleted"].value == 0
    # The mart's users state: every date (none has a level 0 yet) rewritten as level 0, same rows.
    dates = state.get_column("event_date").n_unique()
    assert mats[MART_STATE_MAINTENANCE]["dates_rewritten"].value == dates > 1
    assert mats[MART_STATE_MAINTENANCE]["rows_rewritten"].value == state.height
    after = _state(lake_dir)
    assert after.get_column("level").unique().to_list() == [0]
    assert after.drop("level").equals(state.drop("level"))
    assert marts.counts_match_events(lake).passed and marts.update_hourly_counts(lake).mode == marts.NOTHING
    # The ledger and the plans: one file each now, the same rows.
    books = mats[BOOKKEEPING_COMPACTION]
    assert books["ingest_ledger_files_compacted"].value == books["ingest_plans_files_compacted"].value == 4
    for name, rows in ledger.items():
        table = DeltaTable(str(lake_dir / name))
        assert len(table.file_uris()) == 1
        assert pl.from_arrow(table.to_pyarrow_table()).sort("_batch_id", descending=False).equals(rows)
    # The checks are blocking and the vacuum waits for them.
    graph = defs.resolve_asset_graph()
    assert all(graph.get_check_spec(k).blocking for k in graph.asset_check_keys if k.asset_key == EVENTS_COMPACTION)
    assert EVENTS_COMPACTION in graph.get(EVENTS_VACUUM).parent_keys
    assert defs.resolve_schedule_def("events_compaction_schedule").job_name == "events_compaction_job"


@pytest.mark.heavy
def test_vacuum_refuses_a_short_retention_unless_asked_explicitly(settings, raw_dir, lake, lake_dir, tmp_path,
                                                                   monkeypatch):
    synthetic_landing_zone(raw_dir, 300, object_seconds=900)
    ingest_one_object_per_batch(settings)
    monkeypatch.chdir(tmp_path)
    version = DeltaTable(str(lake_dir / EVENTS_TABLE)).version()
    refused = CliRunner().invoke(lake_cli, ["compact", "--lake", str(lake_dir), "--retention-hours", "0"])
    assert refused.exit_code == 2
    assert "--unsafe-retention" in refused.output
    assert DeltaTable(str(lake_dir / EVENTS_TABLE)).version() == version  # refused before compacting
    with pytest.raises(RetentionTooShort):
        compaction.vacuum(lake, 1)

    before = _contents(lake_dir)
    ok = CliRunner().invoke(lake_cli, ["compact", "--lake", str(lake_dir), "--retention-hours", "0",
                                       "--unsafe-retention"])
    assert ok.exit_code == 0, ok.output
    removed = len(set(DeltaTable(str(lake_dir / EVENTS_TABLE), version=version).file_uris())
                  - set(DeltaTable(str(lake_dir / EVENTS_TABLE)).file_uris()))
    assert f"vacuum: {removed} file(s) deleted (retention 0 h)" in ok.output and removed > 0
    assert _contents(lake_dir).equals(before)
    parquet = {p.name for p in (lake_dir / EVENTS_TABLE).rglob("*.parquet")}
    live = {u.rsplit("/", 1)[-1] for u in DeltaTable(str(lake_dir / EVENTS_TABLE)).file_uris()}
    assert parquet == live  # no file is left that the current version doesn't reference


@pytest.mark.heavy
def test_compaction_steps_wait_for_the_writer_pool_behind_ingest(defs, settings, raw_dir, lake_dir, tmp_path):
    synthetic_landing_zone(raw_dir, 300, object_seconds=900)
    ingest_one_object_per_batch(settings)
    graph = defs.resolve_asset_graph()
    assert graph.get(EVENTS_COMPACTION).pools == {WRITER_POOL} == graph.get(EVENTS_VACUUM).pools
    job = defs.resolve_job_def("events_compaction_job")
    assert job.graph.node_named("events_compaction").definition.node_named(
        "compact_partition_group").definition.tags["dagster/priority"] == "-1"

    # A real instance configured like dagster_home/dagster.yaml (pools default to one slot).
    home = ensure_dagster_home(tmp_path / "pool_home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(WRITER_POOL)
        assert storage.get_concurrency_info(WRITER_POOL).slot_count == 1
        # An ingest step holds the only slot.
        assert storage.claim_concurrency_slot(WRITER_POOL, "ingest-run", "ingest_batch", 0).is_claimed
        version = DeltaTable(str(lake_dir / EVENTS_TABLE)).version()
        outcome = {}

        def compact() -> None:
            try:
                outcome["result"] = run_job(defs, "events_compaction_job", settings, instance)
            except BaseException as exc:  # reported by the assertion below, not lost in the thread
                outcome["error"] = exc

        worker = threading.Thread(target=compact, daemon=True)
        worker.start()
        try:
            deadline, waiting = time.time() + 30, []
            while time.time() < deadline and not any("compact_partition_group[" in s.step_key for s in waiting):
                time.sleep(0.2)
                waiting = [s for s in storage.get_concurrency_info(WRITER_POOL).pending_steps
                           if s.run_id != "ingest-run"]
            # The compaction steps (and the bookkeeping tables' step, which needs nothing before it) wait.
            assert {s.step_key.split("[")[0] for s in waiting} <= {"events_compaction.compact_partition_group",
                                                                  "bookkeeping_compaction"}
            assert any(s.step_key.startswith("events_compaction.compact_partition_group[") for s in waiting)
            assert all(s.priority == -1 for s in waiting)  # an ingest step queued meanwhile (priority 0) goes first
            time.sleep(1.0)
            assert DeltaTable(str(lake_dir / EVENTS_TABLE)).version() == version  # nothing written meanwhile
        finally:  # released even when an assertion failed, so that the run ends
            storage.free_concurrency_slot_for_step("ingest-run", "ingest_batch")
        worker.join(timeout=180)  # a hang guard, not a timing assertion
        assert not worker.is_alive(), "the compaction run did not finish within 180 s of the slot's release"
        assert "result" in outcome, outcome.get("error")
        assert outcome["result"].success
        assert DeltaTable(str(lake_dir / EVENTS_TABLE)).version() > version
        assert storage.get_concurrency_info(WRITER_POOL).active_slot_count == 0


def test_plan_only_picks_partitions_with_small_files_that_fit_together(lake, lake_dir):
    from deltalake import write_deltalake

    uri = str(lake_dir / EVENTS_TABLE)
    schema = pa.schema([("event_date", pa.string()), ("event_type", pa.string()), ("x", pa.string())])
    for i in range(3):
        write_deltalake(uri, pa.table({"event_date": ["2025-11-20"], "event_type": ["a"], "x": [str(i)]}, schema=schema),
                        mode="append", partition_by=["event_date", "event_type"])
    write_deltalake(uri, pa.table({"event_date": ["2025-11-20"], "event_type": ["b"], "x": ["one"]}, schema=schema),
                    mode="append", partition_by=["event_date", "event_type"])
    plan = compaction.plan_compaction(lake, target_bytes=10_000_000, group_max_bytes=1 << 30)
    assert [(g.event_date, g.event_types, g.files) for g in plan.groups] == [("2025-11-20", ("a",), 3)]
    tiny = compaction.plan_compaction(lake, target_bytes=100, group_max_bytes=1 << 30)  # files > target: nothing fits
    assert tiny.groups == []
