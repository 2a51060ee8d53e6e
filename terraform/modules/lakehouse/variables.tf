# Defaults here are the production-safe ones. Env roots pass null for anything
# their tfvars do not set; nullable = false turns that null into the default, so
# every default lives in this one file.

# --- Identity -----------------------------------------------------------------------

variable "project" {
  description = "Project prefix of every name (lake_pipeline.settings.PROJECT). S3 names are global: pick a unique one."
  type        = string
  default     = "lakehouse"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.project))
    error_message = "project must be 3-32 lowercase letters, digits or hyphens."
  }
}

variable "env" {
  description = "Environment name (dev, staging, prod); set by the env root, not by tfvars."
  type        = string
  nullable    = false

  validation {
    condition     = contains(["dev", "staging", "prod"], var.env)
    error_message = "env must be dev, staging or prod."
  }
}

# --- Network --------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "VPC CIDR (/16)."
  type        = string
  default     = "10.40.0.0/16"
  nullable    = false
}

variable "availability_zones" {
  description = "2-3 availability zones of the region, by name (pinned so the network never changes on its own)."
  type        = list(string)
  nullable    = false
}

variable "nat_gateways" {
  description = "NAT gateways: none (interface endpoints only), one (shared by all AZs) or per_az (survives an AZ outage)."
  type        = string
  default     = "per_az"
  nullable    = false
}

variable "interface_endpoint_az_count" {
  description = "AZs carrying the interface VPC endpoints (ECR, Logs, Secrets Manager, ECS, EC2, SNS, STS, Kinesis, Firehose); 0: none. Required with nat_gateways = \"none\"."
  type        = number
  default     = 0
  nullable    = false
}

# --- Ingestion ------------------------------------------------------------------------

variable "kinesis_stream_mode" {
  description = "ON_DEMAND (default) or PROVISIONED."
  type        = string
  default     = "ON_DEMAND"
  nullable    = false
}

variable "kinesis_shard_count" {
  description = "Shards when kinesis_stream_mode = PROVISIONED (see docs/deployment.md for sizing)."
  type        = number
  default     = 3
  nullable    = false
}

variable "kinesis_retention_hours" {
  description = "Stream retention (hours): how long Firehose can be down before records are lost."
  type        = number
  default     = 48
  nullable    = false

  validation {
    condition     = var.kinesis_retention_hours >= 24 && var.kinesis_retention_hours <= 8760
    error_message = "kinesis_retention_hours must be between 24 and 8760."
  }
}

variable "kinesis_shard_level_metrics" {
  description = "Enhanced shard-level metrics, e.g. [\"IncomingBytes\", \"WriteProvisionedThroughputExceeded\"]."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "firehose_buffering_size_mb" {
  description = "Firehose buffer size (MiB, 1-128)."
  type        = number
  default     = 64
  nullable    = false
}

variable "firehose_buffering_interval_seconds" {
  description = "Firehose buffer interval (s, 0-900): worst-case landing latency at low volume."
  type        = number
  default     = 60
  nullable    = false
}

# --- Storage --------------------------------------------------------------------------

variable "raw_transition_ia_days" {
  description = "Days until raw objects move to STANDARD_IA (>= 30)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.raw_transition_ia_days >= 30
    error_message = "S3 requires at least 30 days before a transition to STANDARD_IA."
  }
}

variable "raw_transition_glacier_ir_days" {
  description = "Days until raw objects move to GLACIER_IR."
  type        = number
  default     = 90
  nullable    = false
}

variable "raw_retention_days" {
  description = "Days until raw (and Firehose error) objects expire."
  type        = number
  default     = 400
  nullable    = false

  validation {
    condition     = var.raw_transition_ia_days < var.raw_transition_glacier_ir_days && var.raw_transition_glacier_ir_days < var.raw_retention_days
    error_message = "Need raw_transition_ia_days < raw_transition_glacier_ir_days < raw_retention_days (S3 rejects expirations before transitions)."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days overwritten/deleted object versions are kept (recovery window after a bad VACUUM)."
  type        = number
  default     = 30
  nullable    = false
}

variable "athena_results_retention_days" {
  description = "Days Athena results are kept."
  type        = number
  default     = 30
  nullable    = false
}

variable "compute_log_retention_days" {
  description = "Days Dagster compute logs are kept."
  type        = number
  default     = 90
  nullable    = false
}

variable "access_log_retention_days" {
  description = "Days S3/ALB access logs are kept."
  type        = number
  default     = 365
  nullable    = false
}

variable "log_retention_days" {
  description = "CloudWatch log retention (days) for all log groups."
  type        = number
  default     = 365
  nullable    = false
}

# --- Catalog --------------------------------------------------------------------------

variable "athena_bytes_scanned_cutoff_per_query" {
  description = "Athena cancels queries scanning more than this many bytes (default 100 GiB)."
  type        = number
  default     = 107374182400
  nullable    = false
}

# --- Orchestration ------------------------------------------------------------------

variable "image_tag" {
  description = "Pipeline image tag in ECR. Empty until the first push: services then run 0 tasks."
  type        = string
  default     = ""
  nullable    = false
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 for all tasks."
  type        = string
  default     = "X86_64"
  nullable    = false
}

variable "webserver_cpu" {
  description = "Webserver CPU units."
  type        = number
  default     = 512
  nullable    = false
}

variable "webserver_memory" {
  description = "Webserver memory (MiB)."
  type        = number
  default     = 1024
  nullable    = false
}

variable "daemon_cpu" {
  description = "Daemon CPU units."
  type        = number
  default     = 512
  nullable    = false
}

variable "daemon_memory" {
  description = "Daemon memory (MiB)."
  type        = number
  default     = 1024
  nullable    = false
}

variable "code_location_cpu" {
  description = "Code location CPU units (sensor evaluation runs here)."
  type        = number
  default     = 512
  nullable    = false
}

variable "code_location_memory" {
  description = "Code location memory (MiB)."
  type        = number
  default     = 2048
  nullable    = false
}

variable "run_cpu" {
  description = "CPU units per run task."
  type        = number
  default     = 2048
  nullable    = false
}

variable "run_memory" {
  description = "Memory (MiB) per run task."
  type        = number
  default     = 8192
  nullable    = false
}

variable "run_ephemeral_storage_gib" {
  description = "Ephemeral disk per run task (21-200 GiB)."
  type        = number
  default     = 50
  nullable    = false
}

variable "lake_settings" {
  description = "Extra LAKE_* settings for every Dagster task, e.g. { LAKE_BATCH_MAX_OBJECTS = \"500\" }."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "webserver_allowed_cidrs" {
  description = "Private CIDRs allowed to reach the Dagster UI (VPN, bastion). Empty: the VPC CIDR."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "webserver_certificate_arn" {
  description = "ACM certificate ARN for HTTPS on the internal ALB; null keeps HTTP inside the VPC."
  type        = string
  default     = null
}

variable "alb_deletion_protection" {
  description = "Deletion protection of the internal ALB."
  type        = bool
  default     = true
  nullable    = false
}

variable "webserver_wake_cron" {
  description = "Application Auto Scaling schedule that starts the Dagster UI, e.g. \"cron(0 8 ? * MON-FRI *)\"; empty with webserver_sleep_cron empty: the UI never sleeps."
  type        = string
  default     = ""
  nullable    = false
}

variable "webserver_sleep_cron" {
  description = "Schedule that stops the Dagster UI, e.g. \"cron(0 19 * * ? *)\" (every evening). `make ui-wake ENV=...` starts it in between."
  type        = string
  default     = ""
  nullable    = false
}

variable "schedule_timezone" {
  description = "IANA time zone of webserver_wake_cron and webserver_sleep_cron, e.g. \"Europe/Dublin\"."
  type        = string
  default     = "UTC"
  nullable    = false
}

variable "dagster_idle_sleep_minutes" {
  description = "Stop the daemon and code location after this many minutes without incoming records, open UI or running runs; the first record wakes them. 0: always on."
  type        = number
  default     = 0
  nullable    = false
}

variable "db_instance_class" {
  description = "RDS instance class of Dagster storage."
  type        = string
  default     = "db.t4g.small"
  nullable    = false
}

variable "db_allocated_storage_gb" {
  description = "Initial RDS storage (GiB)."
  type        = number
  default     = 20
  nullable    = false
}

variable "db_max_allocated_storage_gb" {
  description = "RDS storage autoscaling ceiling (GiB)."
  type        = number
  default     = 200
  nullable    = false
}

variable "db_multi_az" {
  description = "RDS Multi-AZ standby."
  type        = bool
  default     = true
  nullable    = false
}

variable "db_deletion_protection" {
  description = "RDS deletion protection (keep true in prod)."
  type        = bool
  default     = true
  nullable    = false
}

variable "db_skip_final_snapshot" {
  description = "Skip the final RDS snapshot on destroy."
  type        = bool
  default     = false
  nullable    = false
}

variable "db_backup_retention_days" {
  description = "RDS automated backup retention (days)."
  type        = number
  default     = 14
  nullable    = false
}

variable "db_engine" {
  description = "Dagster storage: rds-postgres (an RDS instance) or aurora-serverless-v2 (scales to 0 ACUs and pauses when idle)."
  type        = string
  default     = "rds-postgres"
  nullable    = false
}

variable "db_min_capacity_acu" {
  description = "Aurora Serverless v2 minimum ACUs; 0 lets the database pause after db_seconds_until_auto_pause without connections."
  type        = number
  default     = 0
  nullable    = false
}

variable "db_max_capacity_acu" {
  description = "Aurora Serverless v2 maximum ACUs."
  type        = number
  default     = 4
  nullable    = false
}

variable "db_seconds_until_auto_pause" {
  description = "Idle seconds (no connections) before Aurora pauses, 300-86400 (used when db_min_capacity_acu = 0)."
  type        = number
  default     = 900
  nullable    = false
}

# --- Monitoring -----------------------------------------------------------------------

variable "alert_emails" {
  description = "E-mail subscribers of the alert topic."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "iterator_age_alarm_threshold_ms" {
  description = "Kinesis iterator-age alarm threshold (ms)."
  type        = number
  default     = 900000
  nullable    = false
}

variable "firehose_freshness_alarm_threshold_seconds" {
  description = "Firehose DataFreshness alarm threshold (s)."
  type        = number
  default     = 900
  nullable    = false
}

variable "serve_cpu" {
  description = "Fargate CPU units of one `lake serve` task."
  type        = number
  default     = 1024
  nullable    = false
}

variable "serve_memory" {
  description = "Fargate memory (MiB) of one `lake serve` task."
  type        = number
  default     = 2048
  nullable    = false
}

variable "serve_min_tasks" {
  description = "Fewest `lake serve` tasks while an image is deployed."
  type        = number
  default     = 2
  nullable    = false
}

variable "serve_max_tasks" {
  description = "Most `lake serve` tasks request-count autoscaling may run."
  type        = number
  default     = 10
  nullable    = false
}

variable "serve_requests_per_task_per_minute" {
  description = "ALBRequestCountPerTarget target of the `lake serve` autoscaling."
  type        = number
  default     = 120000
  nullable    = false
}
