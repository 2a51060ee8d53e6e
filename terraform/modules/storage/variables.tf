variable "raw_bucket_name" {
  description = "Raw landing-zone bucket, <project>-<env>-raw."
  type        = string
}

variable "lake_bucket_name" {
  description = "Delta lake bucket, <project>-<env>-lake."
  type        = string
}

variable "ops_bucket_name" {
  description = "Operational bucket (Athena results, Dagster compute logs)."
  type        = string
}

variable "access_log_bucket_name" {
  description = "Bucket receiving S3 server access logs and ALB access logs."
  type        = string
}

variable "kms_key_arn" {
  description = "Data KMS key used for SSE-KMS on raw, lake and ops."
  type        = string
}

variable "raw_prefix" {
  description = "Prefix Firehose writes records under (lake_pipeline.settings.FIREHOSE_RAW_PREFIX)."
  type        = string
}

variable "error_prefix" {
  description = "Prefix Firehose writes failed deliveries under (lake_pipeline.settings.FIREHOSE_ERROR_PREFIX)."
  type        = string
}

variable "athena_results_prefix" {
  description = "Prefix of Athena query results in the ops bucket."
  type        = string
}

variable "compute_logs_prefix" {
  description = "Prefix of Dagster compute logs in the ops bucket."
  type        = string
}

variable "alb_log_prefix" {
  description = "Prefix (no trailing slash) of ALB access logs in the access-log bucket."
  type        = string
  default     = "alb"
}

variable "raw_transition_ia_days" {
  description = "Days after landing when raw objects move to STANDARD_IA (minimum 30)."
  type        = number
}

variable "raw_transition_glacier_ir_days" {
  description = "Days after landing when raw objects move to GLACIER_IR."
  type        = number
}

variable "raw_retention_days" {
  description = "Days after landing when raw objects (and Firehose error objects) expire."
  type        = number
}

variable "noncurrent_version_expiration_days" {
  description = "Days noncurrent object versions are kept in raw and lake."
  type        = number
}

variable "athena_results_retention_days" {
  description = "Days Athena query results are kept."
  type        = number
}

variable "compute_log_retention_days" {
  description = "Days Dagster compute logs are kept."
  type        = number
}

variable "access_log_retention_days" {
  description = "Days S3/ALB access logs are kept."
  type        = number
}
