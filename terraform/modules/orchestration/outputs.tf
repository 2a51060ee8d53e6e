output "ecr_repository_url" {
  description = "Push the pipeline image here."
  value       = aws_ecr_repository.this.repository_url
}

output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_names" {
  description = "ECS services."
  value = {
    webserver     = aws_ecs_service.webserver.name
    daemon        = aws_ecs_service.daemon.name
    code_location = aws_ecs_service.code_location.name
  }
}

output "run_task_definition_family" {
  description = "Task definition family the EcsRunLauncher starts for each run."
  value       = aws_ecs_task_definition.run.family
}

output "webserver_url" {
  description = "Dagster UI (internal ALB; reachable from webserver_allowed_cidrs)."
  value       = "${local.https ? "https" : "http"}://${aws_lb.webserver.dns_name}"
}

output "db_endpoint" {
  description = "Dagster Postgres endpoint."
  value       = local.db_address
}

output "db_engine" {
  description = "Dagster storage engine (rds-postgres or aurora-serverless-v2)."
  value       = var.db_engine
}

output "db_password_secret_arn" {
  description = "Secrets Manager secret holding the Dagster DB password."
  value       = aws_secretsmanager_secret.db_password.arn
}

output "lake_environment" {
  description = "LAKE_* variables every Dagster task gets."
  value       = local.lake_environment
}

output "role_arns" {
  description = "IAM roles of the Dagster components."
  value = {
    execution     = aws_iam_role.execution.arn
    webserver     = aws_iam_role.webserver.arn
    daemon        = aws_iam_role.daemon.arn
    code_location = aws_iam_role.code_location.arn
    run           = aws_iam_role.run.arn
  }
}

output "alb" {
  description = "The internal ALB, for services that add their own listener rules to it (modules/serving)."
  value = {
    listener_arn      = local.https ? aws_lb_listener.https[0].arn : aws_lb_listener.http.arn
    security_group_id = aws_security_group.alb.id
    arn_suffix        = aws_lb.webserver.arn_suffix
  }
}
