# Long-running services: one task each. The daemon must be a singleton, so its
# deployments stop the old task before starting the new one. Runs are not a
# service: the daemon starts one Fargate task per run, so run compute is zero
# while no data arrives.

locals {
  desired_count = local.services_enabled ? 1 : 0
}

resource "aws_ecs_service" "code_location" {
  name                    = var.service_names.code_location
  cluster                 = aws_ecs_cluster.this.id
  task_definition         = aws_ecs_task_definition.code_location.arn
  desired_count           = local.desired_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.code_location.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.code_location.arn
  }
}

resource "aws_ecs_service" "webserver" {
  name                    = var.service_names.webserver
  cluster                 = aws_ecs_cluster.this.id
  task_definition         = aws_ecs_task_definition.webserver.arn
  desired_count           = local.desired_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  health_check_grace_period_seconds  = 180
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.webserver.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.webserver.arn
    container_name   = "webserver"
    container_port   = local.webserver_port
  }

  depends_on = [aws_lb_listener.http]
}

resource "aws_ecs_service" "daemon" {
  name                    = var.service_names.daemon
  cluster                 = aws_ecs_cluster.this.id
  task_definition         = aws_ecs_task_definition.daemon.arn
  desired_count           = local.desired_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  # Never two daemons at once.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.daemon.id]
    assign_public_ip = false
  }
}
