output "stream_name" {
  description = "Kinesis stream name."
  value       = aws_kinesis_stream.events.name
}

output "stream_arn" {
  description = "Kinesis stream ARN."
  value       = aws_kinesis_stream.events.arn
}

output "delivery_stream_name" {
  description = "Firehose delivery stream name."
  value       = aws_kinesis_firehose_delivery_stream.raw.name
}

output "delivery_stream_arn" {
  description = "Firehose delivery stream ARN."
  value       = aws_kinesis_firehose_delivery_stream.raw.arn
}

output "firehose_role_arn" {
  description = "Role Firehose assumes."
  value       = aws_iam_role.firehose.arn
}

output "producer_policy_arn" {
  description = "Managed policy to attach to event producers."
  value       = aws_iam_policy.producer.arn
}

output "hour_layout" {
  description = "Joda-time layout of a landing hour under the raw prefix."
  value       = local.hour_layout
}
