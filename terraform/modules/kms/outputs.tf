output "data_key_arn" {
  description = "ARN of the data key (S3, Kinesis, Firehose)."
  value       = aws_kms_key.data.arn
}

output "platform_key_arn" {
  description = "ARN of the platform key (logs, SNS, Secrets Manager, RDS, ECR)."
  value       = aws_kms_key.platform.arn
}
