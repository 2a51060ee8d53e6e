"""Glue tables and the Athena workgroup agree with the lake layout in lake_pipeline.settings."""

from __future__ import annotations

import pytest
from tests.support.terraform import ENV_NAMES, MODULES, env_scope, load_module, resolve

from lake_pipeline import settings

CATALOG = MODULES / "catalog"

EVENTS_COLUMNS = {
    "event_uuid": "string",
    "event_name": "string",
    "created_at": "double",
    "created_datetime": "string",
    "event_subtype": "string",
    "payload": "string",
    "_source_key": "string",
    "_batch_id": "bigint",
}
EVENTS_PARTITIONS = {"event_date": "date", "event_type": "string"}
QUARANTINE_COLUMNS = {
    "raw_record": "string",
    "reason": "string",
    "source_key": "string",
    "quarantined_at": "timestamp",
    "_batch_id": "bigint",
}


def tables() -> dict:
    return load_module(CATALOG).locals["tables"]


def glue_table():
    return load_module(CATALOG).of_type("aws_glue_catalog_table")["delta"]


def test_catalog_tables_are_the_settings_tables():
    assert glue_table()["for_each"] == "${local.tables}"
    assert set(tables()) == set(settings.CATALOG_TABLES)
    assert glue_table()["name"] == "${each.key}"


def test_tables_are_native_delta_tables_athena_can_read():
    table = glue_table()
    assert table["table_type"] == "EXTERNAL_TABLE"
    params = table["parameters"]
    assert params["table_type"] == "DELTA"
    assert params["spark.sql.sources.provider"] == "delta"
    assert params["EXTERNAL"] == "TRUE"
    sd = table["storage_descriptor"][0]
    assert sd["location"] == "${var.lake_uri}/${each.key}"
    assert sd["ser_de_info"][0]["parameters"]["path"] == sd["location"]


@pytest.mark.parametrize("env", ENV_NAMES)
def test_table_locations_are_under_the_lake_uri(env):
    scope = env_scope(env).child("catalog")
    lake_bucket = settings.bucket_names(env, env_scope(env).var("project"))["lake"]
    location = glue_table()["storage_descriptor"][0]["location"]
    for name in settings.CATALOG_TABLES:
        resolved = resolve(location.replace("${each.key}", name), scope)
        assert resolved == f"s3://{lake_bucket}/lake/{name}"


def test_events_schema_matches_the_data_contract():
    events = tables()[settings.EVENTS_TABLE]
    assert {c["name"]: c["type"] for c in events["columns"]} == EVENTS_COLUMNS
    assert {c["name"]: c["type"] for c in events["partition_keys"]} == EVENTS_PARTITIONS
    assert [c["name"] for c in events["partition_keys"]] == ["event_date", "event_type"]
    quarantine = tables()[settings.QUARANTINE_TABLE]
    assert {c["name"]: c["type"] for c in quarantine["columns"]} == QUARANTINE_COLUMNS


def test_athena_workgroup_enforces_encrypted_results_and_a_scan_limit():
    wg = load_module(CATALOG).of_type("aws_athena_workgroup")["this"]
    conf = wg["configuration"][0]
    assert conf["enforce_workgroup_configuration"] is True
    assert conf["bytes_scanned_cutoff_per_query"] == "${var.bytes_scanned_cutoff_per_query}"
    result = conf["result_configuration"][0]
    assert result["output_location"] == "s3://${var.ops_bucket_name}/${var.athena_results_prefix}"
    enc = result["encryption_configuration"][0]
    assert enc["encryption_option"] == "SSE_KMS"
    assert enc["kms_key_arn"] == "${var.kms_key_arn}"
    assert conf["engine_version"][0]["selected_engine_version"] == "Athena engine version 3"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_athena_scan_limit_is_set_per_environment(env):
    cutoff = env_scope(env).child("catalog").var("bytes_scanned_cutoff_per_query")
    assert 10 * 1024**2 <= cutoff <= 10 * 1024**4
