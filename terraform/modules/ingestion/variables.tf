variable "name" {
  description = "Name prefix, \"<project>-<env>\"."
  type        = string
}

variable "stream_name" {
  description = "Kinesis stream name (lake_pipeline.settings.stream_names(env)[\"kinesis\"])."
  type        = string
}

variable "delivery_stream_name" {
  description = "Firehose delivery stream name (lake_pipeline.settings.stream_names(env)[\"firehose\"])."
  type        = string
}

variable "stream_mode" {
  description = "ON_DEMAND (default, no capacity planning) or PROVISIONED (set shard_count)."
  type        = string

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  description = "Shards when stream_mode = PROVISIONED (ignored on demand). 1 shard = 1 MiB/s or 1000 records/s of writes."
  type        = number

  validation {
    condition     = var.shard_count >= 1
    error_message = "shard_count must be at least 1."
  }
}

variable "retention_hours" {
  description = "Stream retention in hours (24-8760). Longer retention allows replays after a Firehose outage."
  type        = number
}

variable "shard_level_metrics" {
  description = "Enhanced shard-level CloudWatch metrics (billed per shard); useful to find hot partition keys."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Data KMS key: stream encryption and Firehose S3 output."
  type        = string
}

variable "log_kms_key_arn" {
  description = "Platform KMS key for the Firehose log group."
  type        = string
}

variable "raw_bucket_arn" {
  description = "ARN of the raw landing bucket."
  type        = string
}

variable "raw_prefix" {
  description = "Prefix of delivered records (lake_pipeline.settings.FIREHOSE_RAW_PREFIX)."
  type        = string

  validation {
    condition     = endswith(var.raw_prefix, "/")
    error_message = "raw_prefix must end with \"/\"."
  }
}

variable "error_prefix" {
  description = "Prefix of failed deliveries (lake_pipeline.settings.FIREHOSE_ERROR_PREFIX)."
  type        = string

  validation {
    condition     = endswith(var.error_prefix, "/")
    error_message = "error_prefix must end with \"/\"."
  }
}

variable "buffering_size_mb" {
  description = "Firehose buffer size in MiB (1-128): an object is written when this fills or the interval passes."
  type        = number

  validation {
    condition     = var.buffering_size_mb >= 1 && var.buffering_size_mb <= 128
    error_message = "buffering_size_mb must be between 1 and 128."
  }
}

variable "buffering_interval_seconds" {
  description = "Firehose buffer interval in seconds (0-900): upper bound on landing latency."
  type        = number

  validation {
    condition     = var.buffering_interval_seconds >= 0 && var.buffering_interval_seconds <= 900
    error_message = "buffering_interval_seconds must be between 0 and 900."
  }
}

variable "log_retention_days" {
  description = "Retention of the Firehose log group."
  type        = number
}
