output "bucket_names" {
  description = "Buckets of this environment."
  value       = module.lakehouse.bucket_names
}

output "raw_uri" {
  description = "Set LAKE_RAW_URI to this."
  value       = module.lakehouse.raw_uri
}

output "lake_uri" {
  description = "Set LAKE_URI to this."
  value       = module.lakehouse.lake_uri
}

output "stream_names" {
  description = "Kinesis stream and Firehose delivery stream."
  value       = module.lakehouse.stream_names
}

output "producer_policy_arn" {
  description = "Attach to roles that publish events."
  value       = module.lakehouse.producer_policy_arn
}

output "glue_database" {
  description = "Glue database of the Delta tables."
  value       = module.lakehouse.glue_database
}

output "athena_workgroup" {
  description = "Athena workgroup."
  value       = module.lakehouse.athena_workgroup
}

output "analyst_policy_arn" {
  description = "Attach to roles that query the lake with Athena."
  value       = module.lakehouse.analyst_policy_arn
}

output "alert_topic_arn" {
  description = "SNS alert topic."
  value       = module.lakehouse.alert_topic_arn
}

output "ecr_repository_url" {
  description = "Push the pipeline image here."
  value       = module.lakehouse.ecr_repository_url
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = module.lakehouse.ecs_cluster_name
}

output "ecs_service_names" {
  description = "ECS services."
  value       = module.lakehouse.ecs_service_names
}

output "dagster_webserver_url" {
  description = "Dagster UI through the internal ALB."
  value       = module.lakehouse.dagster_webserver_url
}

output "lake_environment" {
  description = "LAKE_* variables the Dagster tasks run with."
  value       = module.lakehouse.lake_environment
}
