"""Run-failure alerts: format the message, send it (business logic; no Dagster here).

Destinations (``LAKE_ALERT_DESTINATION``):

- ``sns:<topic-arn>``: published with boto3 SNS (the standard AWS environment, so
  ``AWS_ENDPOINT_URL`` points it at the moto server locally);
- ``http://...`` or ``https://...``: a JSON POST, as a Slack incoming webhook expects
  (``{"text": ...}``), with the same facts structured under ``"alert"``;
- ``""``: no alerts.

There is no retry loop here: a failed delivery raises :class:`AlertDeliveryError`,
the sensor tick fails visibly, and Dagster evaluates the same failed run again on
the next tick.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field

from lake_pipeline.storage.aws import client

MAX_ERROR_CHARS = 3000  # SNS allows 256 KiB and Slack 40k chars; keep messages readable
SNS_SUBJECT_CHARS = 100


class AlertDeliveryError(RuntimeError):
    """The alert could not be delivered; the message says where and why."""


@dataclass
class FailedStep:
    step: str
    error: str


@dataclass
class RunFailureAlert:
    run_id: str
    job_name: str
    steps: list[FailedStep] = field(default_factory=list)
    run_error: str = ""  # the run-level failure message (e.g. a resource failed before any step)
    location: str = ""
    run_url: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        step = f" at {self.steps[0].step}" if self.steps else ""
        text = f"[lake] run of {self.job_name} failed{step}"
        # SNS subjects: ASCII, no line breaks, at most 100 characters.
        text = text.encode("ascii", "replace").decode().replace("\n", " ")
        return text[:SNS_SUBJECT_CHARS]

    def text(self) -> str:
        lines = [f":rotating_light: Dagster run failed: job `{self.job_name}`", f"run id: {self.run_id}"]
        if self.run_url:
            lines.append(f"run: {self.run_url}")
        if self.location:
            lines.append(f"code location: {self.location}")
        trigger = {k: v for k, v in self.tags.items() if k.startswith("lake/") or k in ("dagster/schedule_name", "dagster/sensor_name", "dagster/backfill")}
        if trigger:
            lines.append("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(trigger.items())))
        if self.steps:
            for s in self.steps:
                lines.append(f"failed step: {s.step}")
                lines.append(f"error: {_clip(s.error)}")
        else:
            lines.append("failed step: (none; the run failed outside a step)")
        if self.run_error:
            lines.append(f"run failure: {_clip(self.run_error)}")
        return "\n".join(lines)

    def payload(self) -> dict:
        """Slack-compatible body: ``text`` for people, ``alert`` for machines."""
        return {"text": self.text(), "alert": asdict(self)}


def error_text(error) -> str:
    """A Dagster ``SerializableErrorInfo`` as text: the user's error first ('Cls: message'), then
    what caused it; Dagster's "error occurred while executing op" wrapper is left out."""
    parts = []
    while error is not None:
        if error.cls_name != "DagsterExecutionStepExecutionError" or error.cause is None:
            msg = error.message.strip()
            head, sep, rest = msg.partition(": ")
            if sep and head.rsplit(".", 1)[-1] == error.cls_name:  # "pkg.mod.Cls: ..." -> "Cls: ..."
                msg = f"{error.cls_name}: {rest}"
            parts.append(msg)
        error = error.cause
    return "\ncaused by ".join(parts)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 15] + " …(truncated)"


def destination_kind(destination: str) -> str:
    """'sns', 'webhook' or 'none'; raises ValueError for anything else."""
    d = destination.strip()
    if not d:
        return "none"
    if d.startswith("sns:"):
        if not d[4:].startswith("arn:"):
            raise ValueError(f"alert destination {d!r}: expected sns:<topic-arn>")
        return "sns"
    if d.startswith(("http://", "https://")):
        return "webhook"
    raise ValueError(f"alert destination {d!r}: expected sns:<topic-arn> or an http(s) webhook URL")


def send(destination: str, alert: RunFailureAlert, timeout: float = 10.0) -> str:
    """Deliver ``alert``; return a short description of the delivery (for the sensor's log)."""
    kind = destination_kind(destination)
    if kind == "none":
        return "no alert destination configured"
    if kind == "sns":
        return _send_sns(destination.strip()[4:], alert)
    return _send_webhook(destination.strip(), alert, timeout)


def _send_sns(topic_arn: str, alert: RunFailureAlert) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client("sns").publish(TopicArn=topic_arn, Subject=alert.subject, Message=alert.text())
    except (BotoCoreError, ClientError) as exc:
        raise AlertDeliveryError(f"cannot publish the alert to SNS topic {topic_arn}: {exc}") from exc
    return f"published to {topic_arn} (message id {response.get('MessageId', '?')})"


def _redact(url: str) -> str:
    """Webhook URLs carry their secret in the path: show only scheme and host."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/…"


def _send_webhook(url: str, alert: RunFailureAlert, timeout: float) -> str:
    body = json.dumps(alert.payload()).encode()
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "lake-pipeline-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise AlertDeliveryError(f"webhook {_redact(url)} answered HTTP {exc.code}: {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise AlertDeliveryError(f"cannot reach webhook {_redact(url)}: {exc}") from exc
    return f"posted to {_redact(url)} (HTTP {status})"
