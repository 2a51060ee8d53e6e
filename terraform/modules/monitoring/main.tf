# Alert topic (KMS-encrypted) and the alarms that say the pipeline is stuck:
#   - Kinesis: consumer (Firehose) falling behind, producers throttled
#   - Firehose: data not reaching S3 (freshness) or deliveries failing
#   - ECS: the Dagster daemon / code location not running (Container Insights)
#   - Dagster storage: RDS running out of space, or Aurora pinned at its maximum ACUs
# Dagster run failures reach the same topic from the pipeline itself
# (LAKE_ALERT_DESTINATION = sns:<topic arn>).

data "aws_caller_identity" "current" {}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = var.kms_key_arn
}

data "aws_iam_policy_document" "alerts" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alert_emails)

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  actions = [aws_sns_topic.alerts.arn]
}

# --- Kinesis ----------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "kinesis_iterator_age" {
  alarm_name          = "${var.name}-kinesis-iterator-age"
  alarm_description   = "Firehose is falling behind ${var.stream_name}: the oldest unread record is older than ${var.iterator_age_threshold_ms} ms. Records expire after the stream retention period."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold           = var.iterator_age_threshold_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    StreamName = var.stream_name
  }
}

resource "aws_cloudwatch_metric_alarm" "kinesis_write_throttled" {
  alarm_name          = "${var.name}-kinesis-write-throttled"
  alarm_description   = "Producers are throttled on ${var.stream_name} (WriteProvisionedThroughputExceeded). Add shards, switch to ON_DEMAND, or spread partition keys."
  namespace           = "AWS/Kinesis"
  metric_name         = "WriteProvisionedThroughputExceeded"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    StreamName = var.stream_name
  }
}

# --- Firehose ---------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "firehose_freshness" {
  alarm_name          = "${var.name}-firehose-data-freshness"
  alarm_description   = "Records on ${var.delivery_stream_name} have waited more than ${var.firehose_freshness_threshold_seconds} s to reach S3 (DeliveryToS3.DataFreshness)."
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.DataFreshness"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold           = var.firehose_freshness_threshold_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    DeliveryStreamName = var.delivery_stream_name
  }
}

resource "aws_cloudwatch_metric_alarm" "firehose_delivery_failures" {
  alarm_name          = "${var.name}-firehose-delivery-failures"
  alarm_description   = "Some S3 deliveries of ${var.delivery_stream_name} failed (DeliveryToS3.Success below 1). Check the Firehose log group and errors/ in the raw bucket."
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.Success"
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    DeliveryStreamName = var.delivery_stream_name
  }
}

# --- ECS (Container Insights) -----------------------------------------------------

# Services that scale to zero by design (the UI off-hours, the daemon and code
# location when idle sleep is on) are left out: they would alarm every night. For
# those, orchestration's "<name>-dagster-asleep-while-records-arrive" alarm pages
# when records arrive and no daemon runs.
resource "aws_cloudwatch_metric_alarm" "ecs_service_not_running" {
  for_each = setsubtract(toset(var.ecs_service_names), var.ecs_scaled_to_zero_service_names)

  alarm_name          = "${var.name}-ecs-${each.key}-not-running"
  alarm_description   = "ECS service ${each.key} on ${var.ecs_cluster_name} has no running task: sensors, schedules and run launches stop while the daemon or code location is down."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  actions_enabled     = var.ecs_alarms_enabled
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    ClusterName = var.ecs_cluster_name
    ServiceName = each.key
  }
}

# --- RDS (Dagster storage) ----------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "rds_free_storage" {
  count = var.db_engine == "rds-postgres" ? 1 : 0

  alarm_name          = "${var.name}-dagster-db-free-storage"
  alarm_description   = "Dagster's Postgres (${var.db_instance_identifier}) has less than ${var.db_free_storage_threshold_bytes} bytes free; storage autoscaling may be at its maximum."
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = var.db_free_storage_threshold_bytes
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  actions_enabled     = true
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    DBInstanceIdentifier = var.db_instance_identifier
  }
}

# Aurora storage grows on its own (no free-storage limit to watch); what can run
# out is compute: the cluster pinned at its maximum ACUs.
resource "aws_cloudwatch_metric_alarm" "aurora_capacity_at_max" {
  count = var.db_engine == "aurora-serverless-v2" ? 1 : 0

  alarm_name          = "${var.name}-dagster-db-capacity-at-max"
  alarm_description   = "Dagster's Aurora Serverless cluster (${var.db_instance_identifier}) has used over 90% of its maximum ACUs for 15 minutes: raise db_max_capacity_acu."
  namespace           = "AWS/RDS"
  metric_name         = "ACUUtilization"
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold           = 90
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.actions
  ok_actions          = local.actions

  dimensions = {
    DBClusterIdentifier = var.db_instance_identifier
  }
}
