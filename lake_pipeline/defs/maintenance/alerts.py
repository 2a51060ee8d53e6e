"""run_failure_alert_sensor: tell on-call when any run of this code location fails.

The destination is LAKE_ALERT_DESTINATION (`sns:<topic-arn>` or a Slack-style webhook
URL), held by the `alerts` resource; formatting and delivery are in ops/alerts.py.
A failed blocking asset check fails its run too, so it is alerted like a failed step.
"""

import dagster as dg

from lake_pipeline.ops.alerts import FailedStep, RunFailureAlert, error_text, send
from lake_pipeline.settings import env_vars_set, load_settings


class AlertsResource(dg.ConfigurableResource):
    """Where run-failure alerts go ("" = nowhere), the webhook timeout, and the UI URL to link runs."""

    destination: str = ""
    timeout_seconds: float = 10.0
    dagster_ui_url: str = ""

    def deliver(self, alert: RunFailureAlert) -> str:
        return send(self.destination, alert, self.timeout_seconds)

    @classmethod
    def from_settings(cls, settings) -> "AlertsResource":
        values: dict[str, object] = {
            "destination": settings.alert_destination,
            "timeout_seconds": settings.alert_timeout_seconds,
            "dagster_ui_url": settings.dagster_ui_url,
        }
        env = env_vars_set()
        for field, setting in (("destination", "alert_destination"), ("dagster_ui_url", "dagster_ui_url")):
            if setting in env:  # shown as an env var in the UI
                values[field] = dg.EnvVar(env[setting])
        return cls(**values)


def failure_alert(context: dg.RunFailureSensorContext, ui_url: str = "") -> RunFailureAlert:
    run = context.dagster_run
    steps = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        steps.append(FailedStep(event.step_key or "?", error_text(data.error) if data and data.error else event.message or ""))
    origin = run.remote_job_origin
    return RunFailureAlert(
        run_id=run.run_id,
        job_name=run.job_name,
        steps=steps,
        run_error=context.failure_event.message or "",
        location=origin.location_name if origin is not None else "",
        run_url=f"{ui_url.rstrip('/')}/runs/{run.run_id}" if ui_url else "",
        tags=dict(run.tags),
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Posts every failed run (job, run id, failing step, error) to LAKE_ALERT_DESTINATION: "
    "an SNS topic (sns:<arn>) or a webhook URL such as Slack's.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertsResource):
    if not alerts.destination:
        return dg.SkipReason("LAKE_ALERT_DESTINATION is not set: no alert sent")
    delivered = alerts.deliver(failure_alert(context, alerts.dagster_ui_url))
    context.log.info(f"alert for run {context.dagster_run.run_id}: {delivered}")
    return None


@dg.definitions
def alerts() -> dg.Definitions:
    # A module with a @dg.definitions function contributes only what that function returns.
    return dg.Definitions(
        sensors=[run_failure_alert_sensor],
        resources={"alerts": AlertsResource.from_settings(load_settings())},
    )
