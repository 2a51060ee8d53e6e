variable "name" {
  description = "Name prefix, \"<project>-<env>\"."
  type        = string
}

variable "kms_key_arn" {
  description = "Platform KMS key for the SNS topic."
  type        = string
}

variable "alert_emails" {
  description = "E-mail addresses subscribed to the alert topic (each must confirm the subscription)."
  type        = list(string)
  default     = []
}

variable "stream_name" {
  description = "Kinesis stream to watch."
  type        = string
}

variable "delivery_stream_name" {
  description = "Firehose delivery stream to watch."
  type        = string
}

variable "ecs_cluster_name" {
  description = "ECS cluster of the Dagster services."
  type        = string
}

variable "ecs_service_names" {
  description = "Long-running ECS services that must always have a running task."
  type        = list(string)
}

variable "ecs_alarms_enabled" {
  description = "Whether ECS not-running alarms notify (false while the services are scaled to 0 before the first image push)."
  type        = bool
  default     = true
}

variable "db_instance_identifier" {
  description = "RDS instance of Dagster storage."
  type        = string
}

variable "iterator_age_threshold_ms" {
  description = "Alarm when Firehose lags the stream by more than this (ms)."
  type        = number
  default     = 900000
}

variable "firehose_freshness_threshold_seconds" {
  description = "Alarm when the oldest record not yet in S3 is older than this (s); keep it above the buffering interval."
  type        = number
  default     = 900
}

variable "db_free_storage_threshold_bytes" {
  description = "Alarm when Dagster's database has less free storage than this."
  type        = number
  default     = 2147483648
}

variable "ecs_scaled_to_zero_service_names" {
  description = "ECS services that scale to zero by design (schedules, idle sleep): no \"not running\" alarm for them."
  type        = list(string)
  default     = []
}

variable "db_engine" {
  description = "rds-postgres (free-storage alarm) or aurora-serverless-v2 (capacity alarm)."
  type        = string
}
