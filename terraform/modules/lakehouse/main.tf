# The whole deployment of one environment. Every env root (terraform/envs/<env>)
# calls this module with its own tfvars, so dev and prod cannot drift in shape,
# only in the sizes and switches their tfvars set.
#
# Names and prefixes below are the ones lake_pipeline/settings.py uses:
#   bucket_names(env, project) -> <project>-<env>-raw / <project>-<env>-lake
#   stream_names(env, project) -> <project>-<env>-events / <project>-<env>-events-to-raw
#   FIREHOSE_RAW_PREFIX = "raw/", FIREHOSE_ERROR_PREFIX = "errors/"
#   CATALOG_TABLES (events, quarantine, hourly_event_counts) under the lake URI
# tests/terraform parses this file and checks that they agree.

locals {
  name = "${var.project}-${var.env}"

  bucket_names = {
    raw         = "${local.name}-raw"
    lake        = "${local.name}-lake"
    ops         = "${local.name}-ops"
    access_logs = "${local.name}-access-logs"
  }

  stream_names = {
    kinesis  = "${local.name}-events"
    firehose = "${local.name}-events-to-raw"
  }

  raw_dir      = "raw"
  raw_prefix   = "${local.raw_dir}/"
  error_prefix = "errors/"
  lake_dir     = "lake"
  lake_prefix  = "${local.lake_dir}/"

  # Settings.raw_uri / Settings.lake_uri in AWS (LAKE_RAW_URI / LAKE_URI).
  raw_uri  = "s3://${local.bucket_names.raw}/${local.raw_dir}"
  lake_uri = "s3://${local.bucket_names.lake}/${local.lake_dir}"

  athena_results_prefix = "athena-results/"
  compute_logs_prefix   = "dagster/compute-logs/"

  glue_database = replace(local.name, "-", "_")
  cluster_name  = "${local.name}-dagster"
  db_identifier = "${local.name}-dagster"

  ecs_service_names = {
    webserver     = "dagster-webserver"
    daemon        = "dagster-daemon"
    code_location = "dagster-code-location"
  }

  # Services that scale to zero by design: their "no running task" alarm would
  # fire every night (the UI) or every idle period (daemon, code location).
  ecs_scaled_to_zero = concat(
    var.webserver_sleep_cron != "" ? [local.ecs_service_names.webserver] : [],
    var.dagster_idle_sleep_minutes > 0 ? [local.ecs_service_names.daemon, local.ecs_service_names.code_location] : [],
  )
}

module "kms" {
  source = "../kms"

  name = local.name
}

module "network" {
  source = "../network"

  name               = local.name
  vpc_cidr           = var.vpc_cidr
  availability_zones = var.availability_zones
  nat_gateways       = var.nat_gateways

  interface_endpoint_az_count = var.interface_endpoint_az_count
  log_retention_days          = var.log_retention_days
  log_kms_key_arn             = module.kms.platform_key_arn
}

module "storage" {
  source = "../storage"

  raw_bucket_name        = local.bucket_names.raw
  lake_bucket_name       = local.bucket_names.lake
  ops_bucket_name        = local.bucket_names.ops
  access_log_bucket_name = local.bucket_names.access_logs
  kms_key_arn            = module.kms.data_key_arn

  raw_prefix            = local.raw_prefix
  error_prefix          = local.error_prefix
  athena_results_prefix = local.athena_results_prefix
  compute_logs_prefix   = local.compute_logs_prefix

  raw_transition_ia_days             = var.raw_transition_ia_days
  raw_transition_glacier_ir_days     = var.raw_transition_glacier_ir_days
  raw_retention_days                 = var.raw_retention_days
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  athena_results_retention_days      = var.athena_results_retention_days
  compute_log_retention_days         = var.compute_log_retention_days
  access_log_retention_days          = var.access_log_retention_days
}

module "ingestion" {
  source = "../ingestion"

  name                 = local.name
  stream_name          = local.stream_names.kinesis
  delivery_stream_name = local.stream_names.firehose

  stream_mode         = var.kinesis_stream_mode
  shard_count         = var.kinesis_shard_count
  retention_hours     = var.kinesis_retention_hours
  shard_level_metrics = var.kinesis_shard_level_metrics

  kms_key_arn     = module.kms.data_key_arn
  log_kms_key_arn = module.kms.platform_key_arn
  raw_bucket_arn  = module.storage.raw_bucket_arn
  raw_prefix      = local.raw_prefix
  error_prefix    = local.error_prefix

  buffering_size_mb          = var.firehose_buffering_size_mb
  buffering_interval_seconds = var.firehose_buffering_interval_seconds
  log_retention_days         = var.log_retention_days
}

module "catalog" {
  source = "../catalog"

  name                           = local.name
  database_name                  = local.glue_database
  lake_uri                       = local.lake_uri
  lake_bucket_arn                = module.storage.lake_bucket_arn
  lake_prefix                    = local.lake_prefix
  ops_bucket_name                = module.storage.ops_bucket_name
  ops_bucket_arn                 = module.storage.ops_bucket_arn
  athena_results_prefix          = local.athena_results_prefix
  kms_key_arn                    = module.kms.data_key_arn
  bytes_scanned_cutoff_per_query = var.athena_bytes_scanned_cutoff_per_query
}

module "monitoring" {
  source = "../monitoring"

  name                                 = local.name
  kms_key_arn                          = module.kms.platform_key_arn
  alert_emails                         = var.alert_emails
  stream_name                          = local.stream_names.kinesis
  delivery_stream_name                 = local.stream_names.firehose
  ecs_cluster_name                     = local.cluster_name
  ecs_service_names                    = [local.ecs_service_names.daemon, local.ecs_service_names.code_location, local.ecs_service_names.webserver]
  ecs_alarms_enabled                   = var.image_tag != ""
  ecs_scaled_to_zero_service_names     = local.ecs_scaled_to_zero
  db_instance_identifier               = local.db_identifier
  db_engine                            = var.db_engine
  iterator_age_threshold_ms            = var.iterator_age_alarm_threshold_ms
  firehose_freshness_threshold_seconds = var.firehose_freshness_alarm_threshold_seconds
}

module "orchestration" {
  source = "../orchestration"

  name          = local.name
  cluster_name  = local.cluster_name
  service_names = local.ecs_service_names
  image_tag     = var.image_tag

  cpu_architecture          = var.cpu_architecture
  webserver_cpu             = var.webserver_cpu
  webserver_memory          = var.webserver_memory
  daemon_cpu                = var.daemon_cpu
  daemon_memory             = var.daemon_memory
  code_location_cpu         = var.code_location_cpu
  code_location_memory      = var.code_location_memory
  run_cpu                   = var.run_cpu
  run_memory                = var.run_memory
  run_ephemeral_storage_gib = var.run_ephemeral_storage_gib
  lake_settings             = var.lake_settings

  raw_uri              = local.raw_uri
  lake_uri             = local.lake_uri
  stream_name          = local.stream_names.kinesis
  delivery_stream_name = local.stream_names.firehose
  raw_bucket_arn       = module.storage.raw_bucket_arn
  raw_prefix           = local.raw_prefix
  lake_bucket_arn      = module.storage.lake_bucket_arn
  lake_prefix          = local.lake_prefix
  ops_bucket_name      = module.storage.ops_bucket_name
  ops_bucket_arn       = module.storage.ops_bucket_arn
  compute_logs_prefix  = local.compute_logs_prefix

  access_log_bucket_name = module.storage.access_log_bucket_name
  alb_log_prefix         = module.storage.alb_log_prefix
  alert_topic_arn        = module.monitoring.alert_topic_arn
  data_kms_key_arn       = module.kms.data_key_arn
  platform_kms_key_arn   = module.kms.platform_key_arn

  vpc_id                    = module.network.vpc_id
  vpc_cidr                  = module.network.vpc_cidr
  private_subnet_ids        = module.network.private_subnet_ids
  webserver_allowed_cidrs   = var.webserver_allowed_cidrs
  webserver_certificate_arn = var.webserver_certificate_arn
  alb_deletion_protection   = var.alb_deletion_protection
  log_retention_days        = var.log_retention_days

  db_identifier               = local.db_identifier
  db_instance_class           = var.db_instance_class
  db_allocated_storage_gb     = var.db_allocated_storage_gb
  db_max_allocated_storage_gb = var.db_max_allocated_storage_gb
  db_multi_az                 = var.db_multi_az
  db_deletion_protection      = var.db_deletion_protection
  db_skip_final_snapshot      = var.db_skip_final_snapshot
  db_backup_retention_days    = var.db_backup_retention_days
  db_engine                   = var.db_engine
  db_min_capacity_acu         = var.db_min_capacity_acu
  db_max_capacity_acu         = var.db_max_capacity_acu
  db_seconds_until_auto_pause = var.db_seconds_until_auto_pause

  webserver_wake_cron        = var.webserver_wake_cron
  webserver_sleep_cron       = var.webserver_sleep_cron
  schedule_timezone          = var.schedule_timezone
  dagster_idle_sleep_minutes = var.dagster_idle_sleep_minutes
}

module "serving" {
  source = "../serving"

  name             = local.name
  cluster_name     = module.orchestration.cluster_name
  image            = module.orchestration.ecr_repository_url
  image_tag        = var.image_tag
  cpu_architecture = var.cpu_architecture
  cpu              = var.serve_cpu
  memory           = var.serve_memory
  min_tasks        = var.serve_min_tasks
  max_tasks        = var.serve_max_tasks
  lake_settings    = var.lake_settings

  requests_per_task_per_minute = var.serve_requests_per_task_per_minute

  vpc_id                = module.network.vpc_id
  private_subnet_ids    = module.network.private_subnet_ids
  alb_listener_arn      = module.orchestration.alb.listener_arn
  alb_security_group_id = module.orchestration.alb.security_group_id
  alb_arn_suffix        = module.orchestration.alb.arn_suffix
  execution_role_arn    = module.orchestration.role_arns.execution

  raw_uri              = local.raw_uri
  lake_uri             = local.lake_uri
  stream_name          = local.stream_names.kinesis
  delivery_stream_name = local.stream_names.firehose
  lake_bucket_arn      = module.storage.lake_bucket_arn
  lake_prefix          = local.lake_prefix
  data_kms_key_arn     = module.kms.data_key_arn
  platform_kms_key_arn = module.kms.platform_key_arn
  log_retention_days   = var.log_retention_days
}
