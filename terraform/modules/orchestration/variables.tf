variable "name" {
  description = "Name prefix, \"<project>-<env>\"."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name."
  type        = string
}

variable "service_names" {
  description = "ECS service names of the long-running Dagster components."
  type = object({
    webserver     = string
    daemon        = string
    code_location = string
  })
}

variable "image_tag" {
  description = "Tag of the pipeline image in this environment's ECR repository. Empty: services run 0 tasks (before the first push)."
  type        = string
  default     = ""
}

variable "ecr_keep_images" {
  description = "Number of images kept in ECR."
  type        = number
  default     = 30
}

variable "code_location_module" {
  description = "Python module the code location loads."
  type        = string
  default     = "lake_pipeline.definitions"
}

variable "code_location_name" {
  description = "Dagster code location name (must match the image's workspace.yaml)."
  type        = string
  default     = "lake_pipeline"
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 (ARM64 Fargate is ~20% cheaper; the image must be built for it)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "webserver_cpu" {
  description = "Fargate CPU units of the webserver task."
  type        = number
}

variable "webserver_memory" {
  description = "Fargate memory (MiB) of the webserver task."
  type        = number
}

variable "daemon_cpu" {
  description = "Fargate CPU units of the daemon task."
  type        = number
}

variable "daemon_memory" {
  description = "Fargate memory (MiB) of the daemon task."
  type        = number
}

variable "code_location_cpu" {
  description = "Fargate CPU units of the code-location task."
  type        = number
}

variable "code_location_memory" {
  description = "Fargate memory (MiB) of the code-location task."
  type        = number
}

variable "run_cpu" {
  description = "Fargate CPU units of each run task (one micro-batch, compaction, backfill)."
  type        = number
}

variable "run_memory" {
  description = "Fargate memory (MiB) of each run task."
  type        = number
}

variable "run_ephemeral_storage_gib" {
  description = "Ephemeral disk of each run task (21-200 GiB) for DuckDB/Polars spill."
  type        = number

  validation {
    condition     = var.run_ephemeral_storage_gib >= 21 && var.run_ephemeral_storage_gib <= 200
    error_message = "run_ephemeral_storage_gib must be between 21 and 200."
  }
}

variable "lake_settings" {
  description = "Extra LAKE_* environment variables (lake_pipeline.settings) for every Dagster task."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.lake_settings) : startswith(k, "LAKE_")])
    error_message = "lake_settings keys must start with LAKE_."
  }
}

variable "raw_uri" {
  description = "LAKE_RAW_URI: s3://<raw bucket>/raw."
  type        = string
}

variable "lake_uri" {
  description = "LAKE_URI (Settings.lake_uri): s3://<lake bucket>/lake."
  type        = string
}

variable "stream_name" {
  description = "Kinesis stream name (LAKE_STREAM_NAME)."
  type        = string
}

variable "delivery_stream_name" {
  description = "Firehose delivery stream name (LAKE_DELIVERY_STREAM_NAME)."
  type        = string
}

variable "raw_bucket_arn" {
  description = "Raw bucket ARN."
  type        = string
}

variable "raw_prefix" {
  description = "Prefix of landed objects in the raw bucket (\"raw/\")."
  type        = string
}

variable "lake_bucket_arn" {
  description = "Lake bucket ARN."
  type        = string
}

variable "lake_prefix" {
  description = "Prefix of the lake root in the lake bucket (\"lake/\")."
  type        = string
}

variable "ops_bucket_name" {
  description = "Ops bucket (Dagster compute logs)."
  type        = string
}

variable "ops_bucket_arn" {
  description = "Ops bucket ARN."
  type        = string
}

variable "compute_logs_prefix" {
  description = "Prefix of Dagster compute logs in the ops bucket."
  type        = string
}

variable "access_log_bucket_name" {
  description = "Bucket receiving ALB access logs."
  type        = string
}

variable "alb_log_prefix" {
  description = "Prefix of ALB access logs."
  type        = string
}

variable "alert_topic_arn" {
  description = "SNS topic for pipeline alerts (LAKE_ALERT_DESTINATION = sns:<arn>)."
  type        = string
}

variable "data_kms_key_arn" {
  description = "Data KMS key (S3 objects)."
  type        = string
}

variable "platform_kms_key_arn" {
  description = "Platform KMS key (logs, secrets, RDS, ECR, SNS)."
  type        = string
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "vpc_cidr" {
  description = "VPC CIDR (default client range of the internal ALB)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for tasks, RDS and the internal ALB."
  type        = list(string)
}

variable "webserver_allowed_cidrs" {
  description = "Private CIDRs allowed to reach the internal ALB (VPN, bastion). Empty: the VPC CIDR."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.webserver_allowed_cidrs, "0.0.0.0/0")
    error_message = "The Dagster UI has no authentication; never open it to 0.0.0.0/0."
  }
}

variable "webserver_certificate_arn" {
  description = "ACM certificate for an HTTPS listener on the ALB (HTTP then redirects). Null: HTTP only, inside the VPC."
  type        = string
  default     = null
}

variable "alb_deletion_protection" {
  description = "Deletion protection of the ALB."
  type        = bool
}

variable "log_retention_days" {
  description = "Retention of the ECS and RDS log groups."
  type        = number
}

variable "db_identifier" {
  description = "RDS instance identifier."
  type        = string
}

variable "db_name" {
  description = "Database name."
  type        = string
  default     = "dagster"
}

variable "db_username" {
  description = "Master user name."
  type        = string
  default     = "dagster"
}

variable "db_engine_major_version" {
  description = "PostgreSQL major version (minor versions upgrade automatically)."
  type        = string
  default     = "16"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "db_allocated_storage_gb" {
  description = "Initial storage (GiB)."
  type        = number
}

variable "db_max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling (GiB)."
  type        = number
}

variable "db_multi_az" {
  description = "Standby in a second AZ."
  type        = bool
}

variable "db_deletion_protection" {
  description = "RDS deletion protection."
  type        = bool
}

variable "db_skip_final_snapshot" {
  description = "Skip the final snapshot on destroy."
  type        = bool
}

variable "db_backup_retention_days" {
  description = "Automated backup retention (days)."
  type        = number
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can be restored (0 deletes immediately)."
  type        = number
  default     = 7
}

variable "db_engine" {
  description = "rds-postgres (aws_db_instance) or aurora-serverless-v2 (aws_rds_cluster with db.serverless instances)."
  type        = string

  validation {
    condition     = contains(["rds-postgres", "aurora-serverless-v2"], var.db_engine)
    error_message = "db_engine must be rds-postgres or aurora-serverless-v2."
  }
}

variable "db_aurora_engine_version" {
  description = "Aurora PostgreSQL version (0 ACUs and auto-pause need 16.3, 15.7, 14.12 or 13.15 and later)."
  type        = string
  default     = "16.6"
}

variable "db_min_capacity_acu" {
  description = "Aurora Serverless v2 minimum ACUs (0: pause after db_seconds_until_auto_pause without connections)."
  type        = number

  validation {
    condition     = var.db_min_capacity_acu >= 0 && var.db_min_capacity_acu <= 256
    error_message = "db_min_capacity_acu must be between 0 and 256."
  }
}

variable "db_max_capacity_acu" {
  description = "Aurora Serverless v2 maximum ACUs."
  type        = number

  validation {
    condition     = var.db_max_capacity_acu >= 1 && var.db_max_capacity_acu <= 256 && var.db_max_capacity_acu >= var.db_min_capacity_acu
    error_message = "db_max_capacity_acu must be between 1 and 256 and at least db_min_capacity_acu."
  }
}

variable "db_seconds_until_auto_pause" {
  description = "Seconds without connections before Aurora pauses (300-86400)."
  type        = number

  validation {
    condition     = var.db_seconds_until_auto_pause >= 300 && var.db_seconds_until_auto_pause <= 86400
    error_message = "db_seconds_until_auto_pause must be between 300 and 86400."
  }
}

variable "webserver_wake_cron" {
  description = "Application Auto Scaling schedule that starts the webserver (\"\": none)."
  type        = string
}

variable "webserver_sleep_cron" {
  description = "Application Auto Scaling schedule that stops the webserver (\"\": the UI never sleeps)."
  type        = string

  validation {
    condition     = (var.webserver_sleep_cron == "") == (var.webserver_wake_cron == "")
    error_message = "Set both webserver_wake_cron and webserver_sleep_cron, or neither."
  }
}

variable "schedule_timezone" {
  description = "IANA time zone of the webserver schedules."
  type        = string
}

variable "dagster_idle_sleep_minutes" {
  description = "Minutes without incoming records, UI or runs before the daemon and code location stop (0: never)."
  type        = number

  validation {
    condition     = var.dagster_idle_sleep_minutes == 0 || (var.dagster_idle_sleep_minutes >= 15 && var.dagster_idle_sleep_minutes <= 1440)
    error_message = "dagster_idle_sleep_minutes must be 0 (never) or 15-1440 (a CloudWatch alarm evaluates at most one day)."
  }
}
