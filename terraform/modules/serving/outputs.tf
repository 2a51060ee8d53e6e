output "service_name" {
  description = "ECS service of `lake serve`."
  value       = aws_ecs_service.serve.name
}

output "path_patterns" {
  description = "Paths the ALB routes to `lake serve` (everything else stays the Dagster UI's)."
  value       = local.path_patterns
}

output "spool_file_system_id" {
  description = "EFS file system holding the POST spool."
  value       = aws_efs_file_system.spool.id
}

output "environment" {
  description = "LAKE_* variables of the serving tasks."
  value       = local.environment
}
