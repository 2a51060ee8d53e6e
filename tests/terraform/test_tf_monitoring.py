"""Alarms that say the pipeline is stuck, all routed to the encrypted SNS topic."""

from __future__ import annotations

from tests.support.terraform import MODULES, load_module, ref_name

MON = MODULES / "monitoring"

REQUIRED = {
    ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"),
    ("AWS/Kinesis", "WriteProvisionedThroughputExceeded"),
    ("AWS/Firehose", "DeliveryToS3.DataFreshness"),
    ("AWS/Firehose", "DeliveryToS3.Success"),
    ("ECS/ContainerInsights", "RunningTaskCount"),
}


def alarms():
    return load_module(MON).of_type("aws_cloudwatch_metric_alarm")


def test_at_least_four_alarms_cover_stream_firehose_and_dagster():
    assert len(alarms()) >= 4
    assert REQUIRED <= {(a["namespace"], a["metric_name"]) for a in alarms().values()}


def test_every_alarm_notifies_the_alert_topic():
    for name, alarm in alarms().items():
        assert alarm["alarm_actions"] == "${local.actions}", name
        assert alarm["alarm_description"], name
    assert load_module(MON).locals["actions"] == ["${aws_sns_topic.alerts.arn}"]


def test_alert_topic_is_kms_encrypted_and_writable_by_cloudwatch():
    topic = load_module(MON).of_type("aws_sns_topic")["alerts"]
    assert topic["kms_master_key_id"] == "${var.kms_key_arn}"
    policy = load_module(MON).of_type("aws_sns_topic_policy")["alerts"]
    assert ref_name(policy["policy"]) == "data.aws_iam_policy_document.alerts.json"
    statements = load_module(MON).data_of_type("aws_iam_policy_document")["alerts"]["statement"]
    assert any(s["principals"][0]["identifiers"] == ["cloudwatch.amazonaws.com"] for s in statements)


def test_daemon_down_alarm_watches_the_daemon_service():
    ecs = alarms()["ecs_service_not_running"]
    assert ecs["dimensions"] == {"ClusterName": "${var.ecs_cluster_name}", "ServiceName": "${each.key}"}
    assert ecs["comparison_operator"] == "LessThanThreshold" and ecs["threshold"] == 1
    lakehouse = load_module(MODULES / "lakehouse")
    watched = lakehouse.modules["monitoring"]["ecs_service_names"]
    assert "${local.ecs_service_names.daemon}" in watched
    assert "${local.ecs_service_names.code_location}" in watched
    # Same names the orchestration module gives the services.
    assert lakehouse.modules["orchestration"]["service_names"] == "${local.ecs_service_names}"
    assert lakehouse.modules["monitoring"]["ecs_cluster_name"] == lakehouse.modules["orchestration"]["cluster_name"]


def test_kinesis_and_firehose_alarms_watch_the_deployed_streams():
    lakehouse = load_module(MODULES / "lakehouse")
    assert lakehouse.modules["monitoring"]["stream_name"] == lakehouse.modules["ingestion"]["stream_name"]
    assert lakehouse.modules["monitoring"]["delivery_stream_name"] == lakehouse.modules["ingestion"]["delivery_stream_name"]
    for name, alarm in alarms().items():
        if alarm["namespace"] == "AWS/Kinesis":
            assert alarm["dimensions"] == {"StreamName": "${var.stream_name}"}, name
        if alarm["namespace"] == "AWS/Firehose":
            assert alarm["dimensions"] == {"DeliveryStreamName": "${var.delivery_stream_name}"}, name
