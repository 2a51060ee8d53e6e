"""run_failure_alert_sensor after real failed runs: a webhook on 127.0.0.1 and SNS on the session's moto server."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import datetime

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lake_pipeline.contract import EVENTS_SCHEMA
from lake_pipeline.defs.maintenance.alerts import AlertsResource
from lake_pipeline.ops.alerts import AlertDeliveryError, FailedStep, RunFailureAlert, destination_kind
from lake_pipeline.settings import EVENTS_TABLE, load_settings
from tests.support.records import T0, event, write_object
from tests.support.runs import ingest_run


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received, server.status = [], 200
    # A short poll interval: shutdown() waits for serve_forever's next poll (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _failure_context(defs, instance, result, alerts: AlertsResource):
    assert not result.success
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        resources={"alerts": alerts},
    ).for_run_failure()


def _failed_ingest(defs, settings, instance):
    """A real ingest run that fails: its raw object is not there to read."""
    return ingest_run(defs, settings, instance, ["2025/11/20/13/events-1-2025-11-20-13-05-00-gone.gz"])


def test_failed_run_is_posted_to_the_webhook(defs, settings, instance, webhook):
    result = _failed_ingest(defs, settings, instance)
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
    url = f"http://127.0.0.1:{webhook.server_port}/services/T000/B000/secret"
    context = _failure_context(defs, instance, result, AlertsResource(destination=url, dagster_ui_url="http://ui:3000"))
    sensor(context)

    assert len(webhook.received) == 1
    post = webhook.received[0]
    assert post["path"] == "/services/T000/B000/secret" and post["type"] == "application/json"
    text, alert = post["body"]["text"], post["body"]["alert"]
    assert result.run_id in text and "ingest_job" in text
    assert "failed step: ingest_batch" in text
    assert "StorageError" in text and "gone.gz" in text
    assert f"http://ui:3000/runs/{result.run_id}" in text
    assert alert["run_id"] == result.run_id and alert["job_name"] == "ingest_job"
    assert [s["step"] for s in alert["steps"]] == ["ingest_batch"]
    assert alert["steps"][0]["error"].startswith("StorageError: ")


def test_no_destination_skips_and_a_refusing_webhook_fails_the_tick(defs, settings, instance, webhook):
    result = _failed_ingest(defs, settings, instance)
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
    skipped = sensor(_failure_context(defs, instance, result, AlertsResource(destination="")))
    assert isinstance(skipped, dg.SkipReason) and "LAKE_ALERT_DESTINATION" in skipped.skip_message
    assert webhook.received == []

    webhook.status = 500
    url = f"http://127.0.0.1:{webhook.server_port}/hook"
    with pytest.raises(AlertDeliveryError, match="answered HTTP 500") as failed:
        sensor(_failure_context(defs, instance, result, AlertsResource(destination=url)))
    assert "/hook" not in str(failed.value)  # webhook paths are secrets: not in logs
    assert len(webhook.received) == 1  # one attempt; the next tick retries, not a loop here


@pytest.fixture
def moto_sns(aws_env, aws_names):
    """An SNS topic on the session's moto server that delivers into an SQS queue we can read."""
    from lake_pipeline.storage.aws import client

    sns, sqs = client("sns"), client("sqs")
    topic = sns.create_topic(Name=aws_names["topic"])["TopicArn"]
    queue = sqs.create_queue(QueueName=aws_names["queue"])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue, sqs


@pytest.mark.e2e  # the moto server
def test_failed_blocking_check_is_published_to_sns(defs, settings, raw_dir, lake_dir, instance, moto_sns, monkeypatch):
    topic, queue, sqs = moto_sns
    # A forged row for the next batch makes its blocking conservation check fail, which fails the run.
    row = {"event_uuid": "forged", "event_name": "page:view", "created_at": T0 + 60,
           "created_datetime": "2025-11-20T13:01:00.000000Z", "event_type": "page", "event_subtype": "view",
           "event_date": datetime(2025, 11, 20).date(), "payload": "{}", "_source_key": "manual", "_ordinal": 0,
           "_batch_id": 1}
    write_deltalake(str(lake_dir / EVENTS_TABLE), pa.Table.from_pylist([row], schema=EVENTS_SCHEMA), mode="append",
                    partition_by=["event_date", "event_type"])
    key = write_object(raw_dir, [event("a")], minute=1)
    result = ingest_run(defs, settings, instance, [key])

    # The resource reads LAKE_ALERT_DESTINATION the way the code location does.
    monkeypatch.setenv("LAKE_ALERT_DESTINATION", f"sns:{topic}")
    alerts = AlertsResource.from_settings(load_settings())
    assert isinstance(alerts.destination, dg.EnvVar)
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
    sensor(_failure_context(defs, instance, result, AlertsResource(destination=f"sns:{topic}")))

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])  # SNS -> SQS wraps the message
    assert envelope["TopicArn"] == topic
    assert envelope["Subject"] == "[lake] run of ingest_job failed at events_batch_checks"
    text = envelope["Message"]
    assert result.run_id in text
    assert "failed step: events_batch_checks" in text
    assert "events_conservation_check" in text and "blocking" in text


def test_alert_format_and_destinations():
    alert = RunFailureAlert("r1", "ingest_job", [FailedStep("ingest_batch", "x" * 10_000 + "\nmore")],
                            run_error="Steps failed")
    assert len(alert.text()) < 4_000 and "(truncated)" in alert.text()
    long = RunFailureAlert("r1", "j" * 200 + "é", [FailedStep("s\nstep", "e")])
    assert len(long.subject) <= 100 and long.subject.isascii() and "\n" not in long.subject
    assert destination_kind("") == "none"
    assert destination_kind("sns:arn:aws:sns:us-east-1:123456789012:alerts") == "sns"
    assert destination_kind("https://hooks.slack.com/services/x") == "webhook"
    for bad in ("sns:alerts", "ftp://host/x", "slack"):
        with pytest.raises(ValueError):
            destination_kind(bad)
