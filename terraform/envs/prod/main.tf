terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }

  # Partial configuration: `make infra-plan ENV=prod` passes bucket and region
  # (-backend-config), so one state bucket can hold every environment's state.
  # use_lockfile = S3-native state locking (Terraform >= 1.10), no DynamoDB table.
  backend "s3" {
    key          = "lakehouse/prod/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}

provider "aws" {
  region              = var.region
  allowed_account_ids = [var.aws_account_id]

  default_tags {
    tags = merge(var.tags, {
      Environment = "prod"
      ManagedBy   = "terraform"
    })
  }
}

module "lakehouse" {
  source = "../../modules/lakehouse"

  env = "prod"

  project                                    = var.project
  vpc_cidr                                   = var.vpc_cidr
  availability_zones                         = var.availability_zones
  nat_gateways                               = var.nat_gateways
  interface_endpoint_az_count                = var.interface_endpoint_az_count
  kinesis_stream_mode                        = var.kinesis_stream_mode
  kinesis_shard_count                        = var.kinesis_shard_count
  kinesis_retention_hours                    = var.kinesis_retention_hours
  kinesis_shard_level_metrics                = var.kinesis_shard_level_metrics
  firehose_buffering_size_mb                 = var.firehose_buffering_size_mb
  firehose_buffering_interval_seconds        = var.firehose_buffering_interval_seconds
  raw_transition_ia_days                     = var.raw_transition_ia_days
  raw_transition_glacier_ir_days             = var.raw_transition_glacier_ir_days
  raw_retention_days                         = var.raw_retention_days
  noncurrent_version_expiration_days         = var.noncurrent_version_expiration_days
  athena_results_retention_days              = var.athena_results_retention_days
  compute_log_retention_days                 = var.compute_log_retention_days
  access_log_retention_days                  = var.access_log_retention_days
  log_retention_days                         = var.log_retention_days
  athena_bytes_scanned_cutoff_per_query      = var.athena_bytes_scanned_cutoff_per_query
  image_tag                                  = var.image_tag
  cpu_architecture                           = var.cpu_architecture
  webserver_cpu                              = var.webserver_cpu
  webserver_memory                           = var.webserver_memory
  daemon_cpu                                 = var.daemon_cpu
  daemon_memory                              = var.daemon_memory
  code_location_cpu                          = var.code_location_cpu
  code_location_memory                       = var.code_location_memory
  run_cpu                                    = var.run_cpu
  run_memory                                 = var.run_memory
  run_ephemeral_storage_gib                  = var.run_ephemeral_storage_gib
  lake_settings                              = var.lake_settings
  webserver_allowed_cidrs                    = var.webserver_allowed_cidrs
  webserver_certificate_arn                  = var.webserver_certificate_arn
  alb_deletion_protection                    = var.alb_deletion_protection
  webserver_wake_cron                        = var.webserver_wake_cron
  webserver_sleep_cron                       = var.webserver_sleep_cron
  schedule_timezone                          = var.schedule_timezone
  dagster_idle_sleep_minutes                 = var.dagster_idle_sleep_minutes
  db_instance_class                          = var.db_instance_class
  db_allocated_storage_gb                    = var.db_allocated_storage_gb
  db_max_allocated_storage_gb                = var.db_max_allocated_storage_gb
  db_multi_az                                = var.db_multi_az
  db_deletion_protection                     = var.db_deletion_protection
  db_skip_final_snapshot                     = var.db_skip_final_snapshot
  db_backup_retention_days                   = var.db_backup_retention_days
  db_engine                                  = var.db_engine
  db_min_capacity_acu                        = var.db_min_capacity_acu
  db_max_capacity_acu                        = var.db_max_capacity_acu
  db_seconds_until_auto_pause                = var.db_seconds_until_auto_pause
  alert_emails                               = var.alert_emails
  iterator_age_alarm_threshold_ms            = var.iterator_age_alarm_threshold_ms
  firehose_freshness_alarm_threshold_seconds = var.firehose_freshness_alarm_threshold_seconds
  serve_cpu                                  = var.serve_cpu
  serve_memory                               = var.serve_memory
  serve_min_tasks                            = var.serve_min_tasks
  serve_max_tasks                            = var.serve_max_tasks
  serve_requests_per_task_per_minute         = var.serve_requests_per_task_per_minute

  # Ray on EKS (LAKE_ENGINE=ray), off unless ray_enabled.
  ray_enabled               = var.ray_enabled
  ray_worker_max_nodes      = var.ray_worker_max_nodes
  ray_worker_instance_types = var.ray_worker_instance_types
}
