output "raw_bucket_name" {
  description = "Raw bucket name."
  value       = module.raw.id
}

output "raw_bucket_arn" {
  description = "Raw bucket ARN."
  value       = module.raw.arn
}

output "lake_bucket_name" {
  description = "Lake bucket name."
  value       = module.lake.id
}

output "lake_bucket_arn" {
  description = "Lake bucket ARN."
  value       = module.lake.arn
}

output "ops_bucket_name" {
  description = "Ops bucket name."
  value       = module.ops.id
}

output "ops_bucket_arn" {
  description = "Ops bucket ARN."
  value       = module.ops.arn
}

output "access_log_bucket_name" {
  description = "Access-log bucket name."
  value       = aws_s3_bucket.access_logs.id
}

output "alb_log_prefix" {
  description = "Prefix of ALB access logs in the access-log bucket."
  value       = var.alb_log_prefix
}
