# Dagster on ECS Fargate.
#
#   internal ALB --3000--> webserver ----\
#                                         +--4000 (Cloud Map DNS)--> code location (gRPC)
#                          daemon -------/
#                            |  EcsRunLauncher: RunTask per Dagster run (family <name>-run)
#                            v
#                          run task (one Fargate task per run, exits when the run ends)
#
#   webserver, daemon, code location and runs all use Postgres (RDS, or Aurora
#   Serverless v2 that pauses when idle: database.tf) for Dagster's
#   run/event/schedule storage. The password lives in Secrets Manager and is
#   injected by ECS (execution role); task roles never read the secret.
#
# The same image runs everywhere; dagster_home/dagster.aws.yaml becomes
# $DAGSTER_HOME/dagster.yaml and reads everything below from the environment.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  dagster_home   = "/opt/dagster/dagster_home"
  workspace_file = "/opt/dagster/app/workspace.yaml"
  webserver_port = 3000
  grpc_port      = 4000

  # The services stay at 0 tasks until an image tag is given (first apply
  # creates the ECR repository; the image is pushed afterwards).
  services_enabled = var.image_tag != ""
  image            = "${aws_ecr_repository.this.repository_url}:${local.services_enabled ? var.image_tag : "unset"}"

  run_task_family    = "${var.name}-run"
  code_location_host = "${aws_service_discovery_service.code_location.name}.${aws_service_discovery_private_dns_namespace.this.name}"

  cluster_arn         = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:cluster/${var.cluster_name}"
  cluster_tasks_arn   = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${var.cluster_name}/*"
  run_task_definition = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${local.run_task_family}:*"

  compute_logs_prefix = trimsuffix(var.compute_logs_prefix, "/")

  # Runs on Spot. ECS never moves a task from one capacity provider to another when
  # Spot has no capacity (aws/containers-roadmap#852); FARGATE is listed with weight
  # 0 so that shifting runs to on-demand is a one-number change in the YAML.
  run_capacity_provider_strategy = [
    { capacityProvider = "FARGATE_SPOT", weight = 1, base = 0 },
    { capacityProvider = "FARGATE", weight = 0, base = 0 },
  ]

  # Runtime configuration of the pipeline: lake_pipeline.settings.Settings field
  # <x> is read from LAKE_<X>. Tests check every key is a Settings field.
  lake_environment_base = {
    LAKE_RAW_URI              = var.raw_uri
    LAKE_URI                  = var.lake_uri
    LAKE_STREAM_NAME          = var.stream_name
    LAKE_DELIVERY_STREAM_NAME = var.delivery_stream_name
    LAKE_S3_LOCKING           = "conditional_put"
    LAKE_ALERT_DESTINATION    = "sns:${var.alert_topic_arn}"
    LAKE_DAGSTER_UI_URL       = "${local.https ? "https" : "http"}://${aws_lb.webserver.dns_name}"
    # Firehose buffers 60-900 s before an object lands, so a tick every 15 s (not the local 4 s)
    # adds little latency; each tick is one LIST per recent hour prefix (~23k a day, ~$0.12).
    LAKE_SENSOR_INTERVAL_SECONDS = "15"
  }
  lake_environment = merge(local.lake_environment_base, var.lake_settings)

  # Read by dagster_home/dagster.aws.yaml and the image's workspace.yaml.
  dagster_environment = {
    DAGSTER_HOME                = local.dagster_home
    DAGSTER_PG_HOST             = local.db_address
    DAGSTER_PG_PORT             = tostring(local.db_port)
    DAGSTER_PG_DB               = var.db_name
    DAGSTER_PG_USERNAME         = var.db_username
    DAGSTER_RUN_TASK_DEFINITION = local.run_task_family
    DAGSTER_COMPUTE_LOGS_BUCKET = var.ops_bucket_name
    DAGSTER_COMPUTE_LOGS_PREFIX = local.compute_logs_prefix
    DAGSTER_GRPC_HOST           = local.code_location_host
    DAGSTER_GRPC_PORT           = tostring(local.grpc_port)
    AWS_REGION                  = local.region
    AWS_DEFAULT_REGION          = local.region
  }

  # Run tasks resolve the run task definition by family. The long-running
  # services get the revision's full ARN instead, so a new revision (image, size)
  # also redeploys the daemon and webserver that launch it.
  run_environment = [
    for k, v in merge(local.dagster_environment, local.lake_environment) : { name = k, value = v }
  ]
  service_environment = [
    for k, v in merge(local.dagster_environment, local.lake_environment, {
      DAGSTER_RUN_TASK_DEFINITION = aws_ecs_task_definition.run.arn
    }) : { name = k, value = v }
  ]

  container_secrets = [
    { name = "DAGSTER_PG_PASSWORD", valueFrom = aws_secretsmanager_secret.db_password.arn },
  ]
}

# --- Image registry ---------------------------------------------------------------

resource "aws_ecr_repository" "this" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.platform_kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Keep the most recent ${var.ecr_keep_images} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}

# --- Cluster, service discovery, logs ---------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  for_each = toset(["webserver", "daemon", "code_location", "run", "ecs_exec"])

  name              = "/${var.name}/dagster/${replace(each.key, "_", "-")}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.platform_kms_key_arn
}

resource "aws_ecs_cluster" "this" {
  name = var.cluster_name

  # Container Insights publishes RunningTaskCount per service (alarmed on).
  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = var.platform_kms_key_arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.this["ecs_exec"].name
      }
    }
  }
}

# FARGATE_SPOT is for run tasks only: the EcsRunLauncher passes the strategy in
# dagster_home/dagster.aws.yaml (run_launcher.config.run_task_kwargs), which
# tests/terraform/test_tf_cost.py holds to local.run_capacity_provider_strategy.
# The long-running services keep launch_type = "FARGATE" (services.tf).
resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = "${var.name}.internal"
  description = "Private DNS for the Dagster code location of ${var.name}"
  vpc         = var.vpc_id
}

resource "aws_service_discovery_service" "code_location" {
  name = "code-location"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"

    dns_records {
      ttl  = 10
      type = "A"
    }
  }
}
