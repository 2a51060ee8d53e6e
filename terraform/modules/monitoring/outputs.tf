output "alert_topic_arn" {
  description = "SNS topic receiving alarms and pipeline alerts."
  value       = aws_sns_topic.alerts.arn
}

output "alarm_names" {
  description = "Names of the CloudWatch alarms."
  value = concat(
    [
      aws_cloudwatch_metric_alarm.kinesis_iterator_age.alarm_name,
      aws_cloudwatch_metric_alarm.kinesis_write_throttled.alarm_name,
      aws_cloudwatch_metric_alarm.firehose_freshness.alarm_name,
      aws_cloudwatch_metric_alarm.firehose_delivery_failures.alarm_name,
    ],
    aws_cloudwatch_metric_alarm.rds_free_storage[*].alarm_name,
    aws_cloudwatch_metric_alarm.aurora_capacity_at_max[*].alarm_name,
    [for a in aws_cloudwatch_metric_alarm.ecs_service_not_running : a.alarm_name],
  )
}
