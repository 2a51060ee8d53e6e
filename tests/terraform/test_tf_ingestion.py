"""Kinesis -> Firehose -> raw bucket: wiring and key layout agree with lake_pipeline.settings."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from tests.support.terraform import ENV_NAMES, MODULES, env_scope, load_module, ref_name, resolve

from lake_pipeline import settings

INGESTION = MODULES / "ingestion"
DESIGN_EXAMPLE_KEY = "raw/2025/11/20/13/"  # DESIGN.md: s3://<raw>/raw/2025/11/20/13/<stream>-1-...gz

# Joda-time (Firehose !{timestamp:...}) -> strftime, for the tokens a key layout uses.
_JODA_TO_STRFTIME = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def joda_to_strftime(layout: str) -> str:
    tokens = re.split(r"(yyyy|MM|dd|HH|mm|ss)", layout)
    out = "".join(_JODA_TO_STRFTIME.get(t, t) for t in tokens)
    assert re.fullmatch(r"[%YmdHMS/\-_]*", out), f"unsupported Joda layout {layout!r}"
    return out


def firehose():
    return load_module(INGESTION).of_type("aws_kinesis_firehose_delivery_stream")["raw"]


def test_stream_is_on_demand_by_default_with_optional_provisioned_shards():
    mod = load_module(INGESTION)
    stream = mod.of_type("aws_kinesis_stream")["events"]
    assert stream["stream_mode_details"][0]["stream_mode"] == "${var.stream_mode}"
    # shard_count only applies in PROVISIONED mode (null on demand).
    assert re.fullmatch(r"\$\{local\.on_demand \? null : var\.shard_count\}", stream["shard_count"])
    assert mod.locals["on_demand"] == '${var.stream_mode == "ON_DEMAND"}'
    lakehouse = load_module(MODULES / "lakehouse")
    assert lakehouse.variables["kinesis_stream_mode"]["default"] == "ON_DEMAND"
    for env in ENV_NAMES:
        scope = env_scope(env).child("ingestion")
        assert scope.var("stream_mode") in {"ON_DEMAND", "PROVISIONED"}
        assert scope.var("shard_count") >= 1


def test_stream_is_encrypted_with_the_customer_managed_data_key():
    stream = load_module(INGESTION).of_type("aws_kinesis_stream")["events"]
    assert stream["encryption_type"] == "KMS"
    assert stream["kms_key_id"] == "${var.kms_key_arn}"
    lakehouse = load_module(MODULES / "lakehouse")
    assert lakehouse.modules["ingestion"]["kms_key_arn"] == "${module.kms.data_key_arn}"


def test_firehose_reads_the_stream_and_writes_gzip_to_the_raw_bucket():
    fh = firehose()
    assert fh["destination"] == "extended_s3"
    source = fh["kinesis_source_configuration"][0]
    assert ref_name(source["kinesis_stream_arn"]) == "aws_kinesis_stream.events.arn"
    assert ref_name(source["role_arn"]) == "aws_iam_role.firehose.arn"
    s3 = fh["extended_s3_configuration"][0]
    assert s3["compression_format"] == "GZIP"
    assert s3["bucket_arn"] == "${var.raw_bucket_arn}"
    assert s3["kms_key_arn"] == "${var.kms_key_arn}"
    assert s3["error_output_prefix"], "Firehose needs an error prefix when the prefix has expressions"
    assert s3["buffering_size"] == "${var.buffering_size_mb}"
    assert s3["buffering_interval"] == "${var.buffering_interval_seconds}"
    logging = s3["cloudwatch_logging_options"][0]
    assert logging["enabled"] is True
    assert ref_name(logging["log_group_name"]).startswith("aws_cloudwatch_log_group.")
    lakehouse = load_module(MODULES / "lakehouse")
    assert lakehouse.modules["ingestion"]["raw_bucket_arn"] == "${module.storage.raw_bucket_arn}"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_buffering_is_within_firehose_limits(env):
    scope = env_scope(env).child("ingestion")
    assert 1 <= scope.var("buffering_size_mb") <= 128
    assert 0 <= scope.var("buffering_interval_seconds") <= 900


@pytest.mark.parametrize("env", ENV_NAMES)
def test_prefixes_come_from_settings(env):
    scope = env_scope(env).child("ingestion")
    s3 = firehose()["extended_s3_configuration"][0]
    prefix = resolve(s3["prefix"], scope)
    error_prefix = resolve(s3["error_output_prefix"], scope)

    assert prefix.startswith(settings.FIREHOSE_RAW_PREFIX)
    assert prefix == f"{settings.FIREHOSE_RAW_PREFIX}!{{timestamp:yyyy/MM/dd/HH}}/"
    assert error_prefix.startswith(settings.FIREHOSE_ERROR_PREFIX)
    assert "!{firehose:error-output-type}" in error_prefix
    assert not error_prefix.startswith(settings.FIREHOSE_RAW_PREFIX), "errors must not land where the sensor lists"


def _sensor_hour_prefix():
    """lake_pipeline's own hour-prefix function (the landing sensor lists these), if written yet."""
    try:
        from lake_pipeline.ingest import firehose as key_layout
    except ImportError:
        return None
    return getattr(key_layout, "hour_prefix", None)


def test_hour_layout_matches_the_sensor_key_layout():
    scope = env_scope(ENV_NAMES[0]).child("ingestion")
    prefix = resolve(firehose()["extended_s3_configuration"][0]["prefix"], scope)
    m = re.fullmatch(re.escape(settings.FIREHOSE_RAW_PREFIX) + r"!\{timestamp:([^}]+)\}/", prefix)
    assert m, prefix
    strftime_layout = joda_to_strftime(m.group(1))
    assert strftime_layout == "%Y/%m/%d/%H"

    landed = datetime(2025, 11, 20, 13, 5, 22, tzinfo=UTC)
    firehose_hour_prefix = settings.FIREHOSE_RAW_PREFIX + landed.strftime(strftime_layout) + "/"
    assert firehose_hour_prefix == DESIGN_EXAMPLE_KEY

    # The sensor lists <raw URI>/<hour prefix>; the raw URI ends in FIREHOSE_RAW_PREFIX
    # without its slash, so both sides must name the same keys.
    hour_prefix = _sensor_hour_prefix()
    if hour_prefix is not None:
        assert settings.FIREHOSE_RAW_PREFIX + hour_prefix(landed) == firehose_hour_prefix


def test_joda_conversion_rejects_unknown_tokens():
    assert joda_to_strftime("yyyy/MM/dd/HH") == "%Y/%m/%d/%H"
    with pytest.raises(AssertionError):
        joda_to_strftime("yyyy/ww")
