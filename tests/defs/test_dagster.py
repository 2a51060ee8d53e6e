"""Dagster wiring against a real instance and real Delta tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lake_pipeline.contract import EVENTS_SCHEMA
from lake_pipeline.defs.resources import NO_CHUNK_PARSER, LakeResource
from lake_pipeline.settings import EVENTS_TABLE
from tests.support.records import T0, event, write_object


def _run(defs, settings, instance, keys=None):
    ops = {"ingest_batch": {"config": {"source_keys": keys}}} if keys is not None else {}
    return defs.resolve_job_def("ingest_job").execute_in_process(
        run_config={"resources": {"lake": LakeResource.run_config(settings)}, "ops": ops},
        instance=instance,
        raise_on_error=False,
    )


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_code_location_has_the_contracted_assets_sensor_and_checks(defs):
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_landing_zone", "events", "quarantine"} <= keys
    assert graph.get(dg.AssetKey("raw_landing_zone")).is_external
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == dg.AssetKey("events")}
    assert checks == {
        "events_unique_uuid_check",
        "events_required_columns_check",
        "events_derived_columns_check",
        "events_conservation_check",
        "events_index_agrees_check",
        "events_index_full_check",
    }
    assert defs.resolve_sensor_def("firehose_landing_sensor").job_name == "ingest_job"
    assert graph.get(dg.AssetKey("events")).pools == {"lake_writer"}


def test_job_materializes_tables_with_counts_and_passing_checks(defs, settings, raw_dir, lake_dir, instance):
    write_object(raw_dir, [event("a"), event("a"), event("b", "click:x"), b"{oops}"], minute=1)
    result = _run(defs, settings, instance)  # no keys: the oldest pending objects
    assert result.success
    mats = {m.asset_key.to_user_string(): m for m in result.asset_materializations_for_node("ingest_batch")}
    meta = mats["events"].metadata
    assert (meta["records"].value, meta["inserted"].value, meta["duplicates"].value, meta["quarantined"].value) == (
        4, 2, 1, 1,
    )
    assert _checks(result) == {  # the whole-table uniqueness check runs on its schedule instead
        "events_required_columns_check": True,
        "events_derived_columns_check": True,
        "events_conservation_check": True,
        "events_index_agrees_check": True,
    }
    assert (meta["dedupe_source"].value, meta["late_beyond_index"].value) == ("index", 0)
    assert meta["dedupe_key_file_rows_read"].value == 0  # a first batch: no closed date to read
    assert DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table().num_rows == 2
    # The run is recorded in the instance, with its materializations.
    assert instance.get_run_by_id(result.run_id).is_success
    assert instance.get_latest_materialization_event(dg.AssetKey("quarantine")) is not None


def test_second_run_on_same_keys_changes_nothing(defs, settings, raw_dir, lake_dir, instance):
    key = write_object(raw_dir, [event("a"), event("b")], minute=1)
    assert _run(defs, settings, instance, [key]).success
    version = DeltaTable(str(lake_dir / EVENTS_TABLE)).version()
    again = _run(defs, settings, instance, [key])
    assert again.success
    meta = next(iter(again.asset_materializations_for_node("ingest_batch"))).metadata
    assert meta["records"].value == 0
    assert DeltaTable(str(lake_dir / EVENTS_TABLE)).version() == version


def _corrupt(lake_dir, **changes):
    """Append a row that breaks the contract, bypassing the pipeline."""
    row = {
        "event_uuid": "a", "event_name": "page:view", "created_at": T0 + 60,
        "created_datetime": "2025-11-20T13:01:00.000000Z", "event_type": "page", "event_subtype": "view",
        "event_date": datetime(2025, 11, 20).date(), "payload": "{}", "_source_key": "manual", "_ordinal": 0,
        "_batch_id": 1,
    }
    row.update(changes)
    write_deltalake(str(lake_dir / EVENTS_TABLE), pa.Table.from_pylist([row], schema=EVENTS_SCHEMA), mode="append",
                    partition_by=["event_date", "event_type"])


def test_checks_fail_on_bad_data(defs, settings, raw_dir, lake_dir, instance):
    key = write_object(raw_dir, [event("a"), event("b")], minute=1)
    assert _run(defs, settings, instance, [key]).success
    _corrupt(lake_dir, event_type="click")  # duplicate uuid, wrong derived type, ledger count now off
    job = defs.resolve_job_def("ingest_job")
    selection = dg.AssetSelection.checks_for_assets(dg.AssetKey("events"))
    result = dg.materialize(
        [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)] + list(defs.asset_checks or []),
        selection=selection,
        resources={"lake": LakeResource.from_settings(settings), "chunk_parser": NO_CHUNK_PARSER},
        instance=instance,
        raise_on_error=False,
    )
    assert job is not None
    checks = _checks(result)
    assert checks["events_unique_uuid_check"] is False
    assert checks["events_derived_columns_check"] is False
    assert checks["events_conservation_check"] is False
    assert checks["events_required_columns_check"] is True
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evals["events_unique_uuid_check"].metadata["duplicated_uuids"].value == 1
    assert evals["events_derived_columns_check"].metadata["mismatch_event_type"].value == 1


def _sensor_context(instance, settings, cursor=None):
    return dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lake": LakeResource.from_settings(settings)}
    )


def test_sensor_requests_new_objects_and_skips_ledgered_ones(defs, settings, raw_dir, instance):
    sensor = defs.resolve_sensor_def("firehose_landing_sensor")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    k1 = write_object(raw_dir, [event("a")], hour=now, minute=1)
    k2 = write_object(raw_dir, [event("b")], hour=now, minute=2)
    result = sensor(_sensor_context(instance, settings))
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    assert req.run_config["ops"]["ingest_batch"]["config"]["source_keys"] == [k1, k2]
    # Run it, then the next tick has nothing to do, and says why.
    assert _run(defs, settings, instance, [k1, k2]).success
    result2 = sensor(_sensor_context(instance, settings, cursor=result.cursor))
    assert result2.run_requests == []
    assert "no new raw objects" in result2.skip_reason.skip_message


def test_sensor_lists_recent_hours_and_a_periodic_catch_up_scan(defs, settings, raw_dir, instance):
    sensor = defs.resolve_sensor_def("firehose_landing_sensor")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old = write_object(raw_dir, [event("old")], hour=now - timedelta(days=2), minute=1)
    new = write_object(raw_dir, [event("new")], hour=now, minute=1)
    every = settings.sensor_catchup_every_ticks
    # A normal tick (not the first, not a catch-up one) only sees the recent hour prefixes.
    normal = sensor(_sensor_context(instance, settings, cursor=json.dumps({"tick": 1})))
    assert [r.run_config["ops"]["ingest_batch"]["config"]["source_keys"] for r in normal.run_requests] == [[new]]
    catch_up = sensor(_sensor_context(instance, settings, cursor=json.dumps({"tick": every - 1})))
    assert [r.run_config["ops"]["ingest_batch"]["config"]["source_keys"] for r in catch_up.run_requests] == [
        [old, new]
    ]


def test_sensor_splits_backlog_into_bounded_batches(defs, settings, raw_dir, instance):
    sensor = defs.resolve_sensor_def("firehose_landing_sensor")
    for m in range(5):
        write_object(raw_dir, [event(f"e{m}")], minute=m + 1)
    small = settings.with_overrides(batch_max_objects=2)
    result = sensor(_sensor_context(instance, small))
    sizes = [len(r.run_config["ops"]["ingest_batch"]["config"]["source_keys"]) for r in result.run_requests]
    assert sizes == [2, 2, 1]
    assert len({r.run_key for r in result.run_requests}) == 3


def test_lake_resource_reads_env_vars(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKE_RAW_URI", str(tmp_path / "r"))
    monkeypatch.setenv("LAKE_URI", str(tmp_path / "l"))
    monkeypatch.setenv("LAKE_DEDUPE_HORIZON_SECONDS", "120")
    from lake_pipeline.settings import load_settings

    res = LakeResource.from_settings(load_settings())
    s = res.settings()
    assert (s.raw_uri, s.lake_uri, s.dedupe_horizon_seconds) == (str(tmp_path / "r"), str(tmp_path / "l"), 120.0)


def test_uniqueness_check_runs_on_a_schedule_over_the_whole_table(defs, settings, raw_dir, lake_dir, instance):
    assert defs.resolve_schedule_def("events_uniqueness_schedule").job_name == "events_uniqueness_job"
    key = write_object(raw_dir, [event("a", at=T0), event("a", at=T0 + 5 * 3600)], minute=1)  # beyond the horizon
    assert _run(defs, settings, instance, [key]).success
    result = defs.resolve_job_def("events_uniqueness_job").execute_in_process(
        run_config={"resources": {"lake": LakeResource.run_config(settings)}}, instance=instance, raise_on_error=False
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    evaluation = evaluations["events_unique_uuid_check"]
    assert evaluation.passed is False
    assert evaluation.metadata["sample"].value == "a"
    # The seen-keys index holds both copies too (each was accepted): it agrees with events.
    full = evaluations["events_index_full_check"]
    assert full.passed is True and full.metadata["checked"].value == 2
