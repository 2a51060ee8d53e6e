# Inputs of this environment root. Values come from ../<env>.tfvars; anything
# not set there is null here and takes the default of modules/lakehouse.
# This file is identical in every env root (tests/terraform checks it).

variable "region" {
  description = "AWS region of this environment."
  type        = string
}

variable "aws_account_id" {
  description = "AWS account this environment lives in; the provider refuses any other account."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be a 12-digit AWS account id."
  }
}

variable "tags" {
  description = "Extra tags on every resource (Environment and ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

variable "project" {
  description = "Project prefix of every name (lake_pipeline.settings.PROJECT). S3 names are global: pick a unique one."
  type        = string
  default     = null
}

variable "vpc_cidr" {
  description = "VPC CIDR (/16)."
  type        = string
  default     = null
}

variable "availability_zones" {
  description = "2-3 availability zones of the region, by name (pinned so the network never changes on its own)."
  type        = list(string)
  default     = null
}

variable "nat_gateways" {
  description = "NAT gateways: none (interface endpoints only), one (shared by all AZs) or per_az (survives an AZ outage)."
  type        = string
  default     = null
}

variable "interface_endpoint_az_count" {
  description = "AZs carrying the interface VPC endpoints (ECR, Logs, Secrets Manager, ECS, EC2, SNS, STS, Kinesis, Firehose); 0: none. Required with nat_gateways = \"none\"."
  type        = number
  default     = null
}

variable "kinesis_stream_mode" {
  description = "ON_DEMAND (default) or PROVISIONED."
  type        = string
  default     = null
}

variable "kinesis_shard_count" {
  description = "Shards when kinesis_stream_mode = PROVISIONED (see docs/deployment.md for sizing)."
  type        = number
  default     = null
}

variable "kinesis_retention_hours" {
  description = "Stream retention (hours): how long Firehose can be down before records are lost."
  type        = number
  default     = null
}

variable "kinesis_shard_level_metrics" {
  description = "Enhanced shard-level metrics, e.g. [\"IncomingBytes\", \"WriteProvisionedThroughputExceeded\"]."
  type        = list(string)
  default     = null
}

variable "firehose_buffering_size_mb" {
  description = "Firehose buffer size (MiB, 1-128)."
  type        = number
  default     = null
}

variable "firehose_buffering_interval_seconds" {
  description = "Firehose buffer interval (s, 0-900): worst-case landing latency at low volume."
  type        = number
  default     = null
}

variable "raw_transition_ia_days" {
  description = "Days until raw objects move to STANDARD_IA (>= 30)."
  type        = number
  default     = null
}

variable "raw_transition_glacier_ir_days" {
  description = "Days until raw objects move to GLACIER_IR."
  type        = number
  default     = null
}

variable "raw_retention_days" {
  description = "Days until raw (and Firehose error) objects expire."
  type        = number
  default     = null
}

variable "noncurrent_version_expiration_days" {
  description = "Days overwritten/deleted object versions are kept (recovery window after a bad VACUUM)."
  type        = number
  default     = null
}

variable "athena_results_retention_days" {
  description = "Days Athena results are kept."
  type        = number
  default     = null
}

variable "compute_log_retention_days" {
  description = "Days Dagster compute logs are kept."
  type        = number
  default     = null
}

variable "access_log_retention_days" {
  description = "Days S3/ALB access logs are kept."
  type        = number
  default     = null
}

variable "log_retention_days" {
  description = "CloudWatch log retention (days) for all log groups."
  type        = number
  default     = null
}

variable "athena_bytes_scanned_cutoff_per_query" {
  description = "Athena cancels queries scanning more than this many bytes (default 100 GiB)."
  type        = number
  default     = null
}

variable "image_tag" {
  description = "Pipeline image tag in ECR. Empty until the first push: services then run 0 tasks."
  type        = string
  default     = null
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 for all tasks."
  type        = string
  default     = null
}

variable "webserver_cpu" {
  description = "Webserver CPU units."
  type        = number
  default     = null
}

variable "webserver_memory" {
  description = "Webserver memory (MiB)."
  type        = number
  default     = null
}

variable "daemon_cpu" {
  description = "Daemon CPU units."
  type        = number
  default     = null
}

variable "daemon_memory" {
  description = "Daemon memory (MiB)."
  type        = number
  default     = null
}

variable "code_location_cpu" {
  description = "Code location CPU units (sensor evaluation runs here)."
  type        = number
  default     = null
}

variable "code_location_memory" {
  description = "Code location memory (MiB)."
  type        = number
  default     = null
}

variable "run_cpu" {
  description = "CPU units per run task."
  type        = number
  default     = null
}

variable "run_memory" {
  description = "Memory (MiB) per run task."
  type        = number
  default     = null
}

variable "run_ephemeral_storage_gib" {
  description = "Ephemeral disk per run task (21-200 GiB)."
  type        = number
  default     = null
}

variable "lake_settings" {
  description = "Extra LAKE_* settings for every Dagster task, e.g. { LAKE_BATCH_MAX_OBJECTS = \"500\" }."
  type        = map(string)
  default     = null
}

variable "webserver_allowed_cidrs" {
  description = "Private CIDRs allowed to reach the Dagster UI (VPN, bastion). Empty: the VPC CIDR."
  type        = list(string)
  default     = null
}

variable "webserver_certificate_arn" {
  description = "ACM certificate ARN for HTTPS on the internal ALB; null keeps HTTP inside the VPC."
  type        = string
  default     = null
}

variable "alb_deletion_protection" {
  description = "Deletion protection of the internal ALB."
  type        = bool
  default     = null
}

variable "webserver_wake_cron" {
  description = "Application Auto Scaling schedule that starts the Dagster UI, e.g. \"cron(0 8 ? * MON-FRI *)\"; empty with webserver_sleep_cron empty: the UI never sleeps."
  type        = string
  default     = null
}

variable "webserver_sleep_cron" {
  description = "Schedule that stops the Dagster UI, e.g. \"cron(0 19 * * ? *)\" (every evening). `make ui-wake ENV=...` starts it in between."
  type        = string
  default     = null
}

variable "schedule_timezone" {
  description = "IANA time zone of webserver_wake_cron and webserver_sleep_cron, e.g. \"Europe/Dublin\"."
  type        = string
  default     = null
}

variable "dagster_idle_sleep_minutes" {
  description = "Stop the daemon and code location after this many minutes without incoming records, open UI or running runs; the first record wakes them. 0: always on."
  type        = number
  default     = null
}

variable "db_instance_class" {
  description = "RDS instance class of Dagster storage."
  type        = string
  default     = null
}

variable "db_allocated_storage_gb" {
  description = "Initial RDS storage (GiB)."
  type        = number
  default     = null
}

variable "db_max_allocated_storage_gb" {
  description = "RDS storage autoscaling ceiling (GiB)."
  type        = number
  default     = null
}

variable "db_multi_az" {
  description = "RDS Multi-AZ standby."
  type        = bool
  default     = null
}

variable "db_deletion_protection" {
  description = "RDS deletion protection (keep true in prod)."
  type        = bool
  default     = null
}

variable "db_skip_final_snapshot" {
  description = "Skip the final RDS snapshot on destroy."
  type        = bool
  default     = null
}

variable "db_backup_retention_days" {
  description = "RDS automated backup retention (days)."
  type        = number
  default     = null
}

variable "db_engine" {
  description = "Dagster storage: rds-postgres (an RDS instance) or aurora-serverless-v2 (scales to 0 ACUs and pauses when idle)."
  type        = string
  default     = null
}

variable "db_min_capacity_acu" {
  description = "Aurora Serverless v2 minimum ACUs; 0 lets the database pause after db_seconds_until_auto_pause without connections."
  type        = number
  default     = null
}

variable "db_max_capacity_acu" {
  description = "Aurora Serverless v2 maximum ACUs."
  type        = number
  default     = null
}

variable "db_seconds_until_auto_pause" {
  description = "Idle seconds (no connections) before Aurora pauses, 300-86400 (used when db_min_capacity_acu = 0)."
  type        = number
  default     = null
}

variable "alert_emails" {
  description = "E-mail subscribers of the alert topic."
  type        = list(string)
  default     = null
}

variable "iterator_age_alarm_threshold_ms" {
  description = "Kinesis iterator-age alarm threshold (ms)."
  type        = number
  default     = null
}

variable "firehose_freshness_alarm_threshold_seconds" {
  description = "Firehose DataFreshness alarm threshold (s)."
  type        = number
  default     = null
}

variable "serve_cpu" {
  description = "Fargate CPU units of one `lake serve` task."
  type        = number
  default     = null
}

variable "serve_memory" {
  description = "Fargate memory (MiB) of one `lake serve` task."
  type        = number
  default     = null
}

variable "serve_min_tasks" {
  description = "Fewest `lake serve` tasks while an image is deployed."
  type        = number
  default     = null
}

variable "serve_max_tasks" {
  description = "Most `lake serve` tasks request-count autoscaling may run."
  type        = number
  default     = null
}

variable "serve_requests_per_task_per_minute" {
  description = "ALBRequestCountPerTarget target of the `lake serve` autoscaling."
  type        = number
  default     = null
}

# Ray on EKS (terraform/modules/ray); defaults live in modules/lakehouse/ray.tf.
variable "ray_enabled" {
  description = "Create the EKS cluster for KubeRay (LAKE_ENGINE=ray)."
  type        = bool
  default     = null
}

variable "ray_worker_max_nodes" {
  description = "Most Ray worker nodes."
  type        = number
  default     = null
}

variable "ray_worker_instance_types" {
  description = "Instance types of the Ray worker nodes."
  type        = list(string)
  default     = null
}
