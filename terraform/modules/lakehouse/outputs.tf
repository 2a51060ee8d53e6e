output "bucket_names" {
  description = "Buckets of this environment (raw/lake as in lake_pipeline.settings.bucket_names)."
  value = {
    raw         = module.storage.raw_bucket_name
    lake        = module.storage.lake_bucket_name
    ops         = module.storage.ops_bucket_name
    access_logs = module.storage.access_log_bucket_name
  }
}

output "raw_uri" {
  description = "LAKE_RAW_URI for this environment."
  value       = local.raw_uri
}

output "lake_uri" {
  description = "LAKE_URI for this environment."
  value       = local.lake_uri
}

output "stream_names" {
  description = "Kinesis stream and Firehose delivery stream."
  value = {
    kinesis  = module.ingestion.stream_name
    firehose = module.ingestion.delivery_stream_name
  }
}

output "producer_policy_arn" {
  description = "Attach to roles that publish events."
  value       = module.ingestion.producer_policy_arn
}

output "glue_database" {
  description = "Glue database of the Delta tables."
  value       = module.catalog.database_name
}

output "athena_workgroup" {
  description = "Athena workgroup."
  value       = module.catalog.athena_workgroup
}

output "analyst_policy_arn" {
  description = "Attach to roles that query the lake with Athena."
  value       = module.catalog.analyst_policy_arn
}

output "alert_topic_arn" {
  description = "SNS alert topic."
  value       = module.monitoring.alert_topic_arn
}

output "ecr_repository_url" {
  description = "Push the pipeline image here."
  value       = module.orchestration.ecr_repository_url
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = module.orchestration.cluster_name
}

output "ecs_service_names" {
  description = "ECS services."
  value       = module.orchestration.service_names
}

output "dagster_webserver_url" {
  description = "Dagster UI through the internal ALB."
  value       = module.orchestration.webserver_url
}

output "lake_environment" {
  description = "LAKE_* variables the Dagster tasks run with."
  value       = module.orchestration.lake_environment
}

output "serving" {
  description = "`lake serve` (the HTTP read path): its ECS service and the ALB paths routed to it."
  value = {
    service_name  = module.serving.service_name
    path_patterns = module.serving.path_patterns
  }
}
