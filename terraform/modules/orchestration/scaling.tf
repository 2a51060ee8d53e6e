# Quiet hours: what stops when nobody needs it, and what starts it again.
#
#   UI        Scheduled actions take the webserver to 0 tasks at webserver_sleep_cron
#             and back to 1 at webserver_wake_cron (schedule_timezone). `make ui-wake
#             ENV=...` starts it in between (terraform/infra.py ui-wake); the next
#             sleep action stops it again.
#   Daemon +  With dagster_idle_sleep_minutes > 0, the daemon and the code location
#   code      stop once the pipeline has been idle that long, and start again as soon
#   location  as it is not: "activity" below is records arriving on the Kinesis stream,
#             plus every task in the cluster that is not the daemon or the code
#             location (the UI, run tasks). Sensors and schedules do not run while
#             they sleep; nothing arrives then, and the first record wakes them in a
#             few minutes (alarm period, task start, Aurora resume).
#
# With all of them stopped nothing connects to the database, so Aurora Serverless
# pauses (database.tf). Step-scaling alarms re-invoke their policy every minute
# while they stay in ALARM, so a manual or Terraform change of desired_count during
# a quiet period is undone within a minute, and a wake cannot be missed.

locals {
  ui_schedule = var.webserver_sleep_cron != ""
  idle_sleep  = var.dagster_idle_sleep_minutes > 0

  scaled_services = merge(
    local.ui_schedule ? { webserver = aws_ecs_service.webserver.name } : {},
    local.idle_sleep ? {
      daemon        = aws_ecs_service.daemon.name
      code_location = aws_ecs_service.code_location.name
    } : {},
  )
  sleeping_services = local.idle_sleep ? ["daemon", "code_location"] : []

  # 5-minute periods for the idle alarm (CloudWatch evaluates at most one day).
  idle_period  = 300
  idle_periods = ceil(var.dagster_idle_sleep_minutes * 60 / local.idle_period)

  # Activity = records in + tasks other than the daemon and the code location.
  activity_expression = "FILL(records, 0) + FILL(tasks, 0) - FILL(daemon, 0) - FILL(code_location, 0)"
  activity_metrics = {
    records       = { namespace = "AWS/Kinesis", metric_name = "IncomingRecords", stat = "Sum", dimensions = { StreamName = var.stream_name } }
    tasks         = { namespace = "ECS/ContainerInsights", metric_name = "TaskCount", stat = "Maximum", dimensions = { ClusterName = var.cluster_name } }
    daemon        = { namespace = "ECS/ContainerInsights", metric_name = "RunningTaskCount", stat = "Maximum", dimensions = { ClusterName = var.cluster_name, ServiceName = var.service_names.daemon } }
    code_location = { namespace = "ECS/ContainerInsights", metric_name = "RunningTaskCount", stat = "Maximum", dimensions = { ClusterName = var.cluster_name, ServiceName = var.service_names.code_location } }
  }
}

resource "aws_appautoscaling_target" "service" {
  for_each = local.scaled_services

  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${each.value}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = 0
  # 0 until an image exists, like desired_count.
  max_capacity = local.desired_count
}

# --- The UI's working hours --------------------------------------------------------

resource "aws_appautoscaling_scheduled_action" "webserver_wake" {
  count = local.ui_schedule ? 1 : 0

  name               = "${var.name}-webserver-wake"
  service_namespace  = aws_appautoscaling_target.service["webserver"].service_namespace
  resource_id        = aws_appautoscaling_target.service["webserver"].resource_id
  scalable_dimension = aws_appautoscaling_target.service["webserver"].scalable_dimension
  schedule           = var.webserver_wake_cron
  timezone           = var.schedule_timezone

  scalable_target_action {
    min_capacity = local.desired_count
    max_capacity = local.desired_count
  }
}

resource "aws_appautoscaling_scheduled_action" "webserver_sleep" {
  count = local.ui_schedule ? 1 : 0

  name               = "${var.name}-webserver-sleep"
  service_namespace  = aws_appautoscaling_target.service["webserver"].service_namespace
  resource_id        = aws_appautoscaling_target.service["webserver"].resource_id
  scalable_dimension = aws_appautoscaling_target.service["webserver"].scalable_dimension
  schedule           = var.webserver_sleep_cron
  timezone           = var.schedule_timezone

  scalable_target_action {
    min_capacity = 0
    max_capacity = 0
  }

  # Application Auto Scaling runs one change per target at a time.
  depends_on = [aws_appautoscaling_scheduled_action.webserver_wake]
}

# --- Idle sleep of the daemon and the code location ---------------------------------

resource "aws_appautoscaling_policy" "wake" {
  for_each = toset(local.sleeping_services)

  name               = "${var.name}-${replace(each.key, "_", "-")}-wake"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.service[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.service[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.service[each.key].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_appautoscaling_policy" "sleep" {
  for_each = toset(local.sleeping_services)

  name               = "${var.name}-${replace(each.key, "_", "-")}-sleep"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.service[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.service[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.service[each.key].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = 0
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "pipeline_active" {
  count = local.idle_sleep ? 1 : 0

  alarm_name          = "${var.name}-dagster-wake"
  alarm_description   = "Records arrive, the UI is up or a run is running: the Dagster daemon and code location run (scaling action, not a page)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [for s in local.sleeping_services : aws_appautoscaling_policy.wake[s].arn]

  metric_query {
    id          = "activity"
    expression  = local.activity_expression
    label       = "records in + tasks besides the daemon and code location"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.activity_metrics
    content {
      id = metric_query.key

      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        stat        = metric_query.value.stat
        period      = 60
        dimensions  = metric_query.value.dimensions
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "pipeline_idle" {
  count = local.idle_sleep ? 1 : 0

  alarm_name          = "${var.name}-dagster-sleep"
  alarm_description   = "No records, no UI and no runs for ${var.dagster_idle_sleep_minutes} minutes: the Dagster daemon and code location stop (scaling action, not a page)."
  comparison_operator = "LessThanOrEqualToThreshold"
  threshold           = 0
  evaluation_periods  = local.idle_periods
  datapoints_to_alarm = local.idle_periods
  # No datapoints at all (no records, no tasks) is the idlest state there is.
  treat_missing_data = "breaching"
  alarm_actions      = [for s in local.sleeping_services : aws_appautoscaling_policy.sleep[s].arn]

  metric_query {
    id          = "activity"
    expression  = local.activity_expression
    label       = "records in + tasks besides the daemon and code location"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.activity_metrics
    content {
      id = metric_query.key

      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        stat        = metric_query.value.stat
        period      = local.idle_period
        dimensions  = metric_query.value.dimensions
      }
    }
  }
}

# The page that replaces "daemon not running" for a daemon that may sleep: records
# have been arriving for 10 minutes and no daemon runs (the wake takes 2-5 minutes).
resource "aws_cloudwatch_metric_alarm" "asleep_while_records_arrive" {
  count = local.idle_sleep ? 1 : 0

  alarm_name          = "${var.name}-dagster-asleep-while-records-arrive"
  alarm_description   = "Records have arrived on ${var.stream_name} for 10 minutes and no Dagster daemon is running: the idle wake failed or the daemon cannot start. Nothing is ingested until it runs."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  treat_missing_data  = "notBreaching"
  actions_enabled     = local.services_enabled
  alarm_actions       = [var.alert_topic_arn]
  ok_actions          = [var.alert_topic_arn]

  metric_query {
    id          = "stuck"
    expression  = "IF(FILL(records, 0) > 0 AND FILL(daemon, 0) < 1, 1, 0)"
    label       = "records arriving while no daemon runs"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { for k, v in local.activity_metrics : k => v if contains(["records", "daemon"], k) }
    content {
      id = metric_query.key

      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        stat        = metric_query.value.stat
        period      = 60
        dimensions  = metric_query.value.dimensions
      }
    }
  }
}
