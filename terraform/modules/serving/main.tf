# `lake serve` on ECS Fargate behind the existing internal ALB (lake_pipeline/serve/).
#
#   ALB listener rule (path patterns below) --8000--> lake serve tasks (2..max_tasks, private subnets)
#                                                       |  GET: reads the lake bucket (events, _user_events)
#                                                       |  POST: fsync into the EFS spool, then PutRecords
#                                                       v  to the Kinesis stream (Firehose lands it in raw/)
#   EFS spool: one owner directory per task under a flock; a replacement task adopts a dead
#   task's directory, so a POST answered 204 is delivered even when its task dies.
#
# Why ECS behind the ALB rather than API Gateway -> Kinesis for the POST side: at the design
# load a sustained 5,000 POST/s is ~13 billion requests a month, ~$13,000 at API Gateway's
# $0.90-1.00 per million (HTTP API), against two to a few Fargate tasks, ALB LCUs and EFS (~$250 a month, see
# docs/serving.md); the GETs need the tasks' in-memory hours anyway.
#
# Autoscaling tracks ALBRequestCountPerTarget; the service stays at 0 tasks until image_tag is set.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  port          = 8000
  spool_path    = "/spool"
  enabled       = var.image_tag != ""
  desired_count = local.enabled ? var.min_tasks : 0
  image         = "${var.image}:${local.enabled ? var.image_tag : "unset"}"
  path_patterns = ["/analytics", "/users/*", "/healthz", "/docs", "/openapi.json"]
  stream_arn    = "arn:${local.partition}:kinesis:${local.region}:${local.account_id}:stream/${var.stream_name}"
  lake_prefix   = trimsuffix(var.lake_prefix, "/")

  # lake_pipeline.settings fields (LAKE_<X>); tests check every key is one.
  environment = merge({
    LAKE_RAW_URI              = var.raw_uri
    LAKE_URI                  = var.lake_uri
    LAKE_DELIVERY_STREAM_NAME = var.delivery_stream_name
    LAKE_S3_LOCKING           = "conditional_put"
    LAKE_SERVE_STREAM         = var.stream_name
    LAKE_SERVE_SPOOL_DIR      = local.spool_path
    LAKE_SERVE_FLUSH_SECONDS  = "1"
  }, var.lake_settings)
}

resource "aws_cloudwatch_log_group" "serve" {
  name              = "/${var.name}/serve"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.platform_kms_key_arn
}

resource "aws_ecs_task_definition" "serve" {
  #checkov:skip=CKV_AWS_336:DuckDB and Polars may write temporary files to local disk; Fargate ephemeral storage is private to the task. The spool itself is on EFS.
  family                   = "${var.name}-serve"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = aws_iam_role.serve.arn

  container_definitions = jsonencode([{
    name                   = "serve"
    image                  = local.image
    essential              = true
    readonlyRootFilesystem = false
    privileged             = false
    stopTimeout            = 30 # SIGTERM: uvicorn drains, the spool is flushed
    command                = ["lake", "serve", "--host", "0.0.0.0", "--port", tostring(local.port)]
    environment            = [for k, v in local.environment : { name = k, value = v }]
    portMappings           = [{ containerPort = local.port, protocol = "tcp" }]
    mountPoints            = [{ sourceVolume = "spool", containerPath = local.spool_path, readOnly = false }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.serve.name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = "serve"
      }
    }
  }])

  volume {
    name = "spool"

    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.spool.id
      transit_encryption = "ENABLED"

      authorization_config {
        access_point_id = aws_efs_access_point.spool.id
        iam             = "ENABLED"
      }
    }
  }

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
}

resource "aws_ecs_service" "serve" {
  name                    = var.service_name
  cluster                 = var.cluster_name
  task_definition         = aws_ecs_task_definition.serve.arn
  desired_count           = local.desired_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.serve.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.serve.arn
    container_name   = "serve"
    container_port   = local.port
  }

  # Autoscaling owns the count once tasks run.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener_rule.serve]
}

# --- The ALB: a target group and a listener rule on the existing listener -------------

resource "aws_lb_target_group" "serve" {
  #checkov:skip=CKV_AWS_378:TLS terminates at the internal ALB; the hop to the task stays inside private subnets and security groups.
  name                 = substr("${var.name}-serve", 0, 32)
  port                 = local.port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    enabled             = true
    path                = "/healthz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener_rule" "serve" {
  listener_arn = var.alb_listener_arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.serve.arn
  }

  condition {
    path_pattern {
      values = local.path_patterns
    }
  }
}

# --- Autoscaling on request count ---------------------------------------------------

resource "aws_appautoscaling_target" "serve" {
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.serve.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = local.desired_count
  max_capacity       = local.enabled ? var.max_tasks : 0
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-serve-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.serve.service_namespace
  resource_id        = aws_appautoscaling_target.serve.resource_id
  scalable_dimension = aws_appautoscaling_target.serve.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_task_per_minute
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.alb_arn_suffix}/${aws_lb_target_group.serve.arn_suffix}"
    }
  }
}
