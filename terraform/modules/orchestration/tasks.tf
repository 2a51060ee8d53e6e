# Task definitions. All four use the same image; they differ in command, size and
# task role. The run task definition is the one the EcsRunLauncher starts for
# every Dagster run (dagster.aws.yaml: task_definition from
# DAGSTER_RUN_TASK_DEFINITION); its command is supplied by the launcher.

locals {
  runtime_platform = {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # checkov CKV_AWS_336 (read-only root filesystem) is skipped on each task
  # definition: Dagster (DAGSTER_HOME/storage, compute-log staging), DuckDB and
  # Polars spill to local disk; Fargate ephemeral storage is private to the task
  # and discarded when it stops.
  base_container = {
    image                  = local.image
    essential              = true
    secrets                = local.container_secrets
    readonlyRootFilesystem = false
    privileged             = false
    stopTimeout            = 60
  }

  containers = {
    webserver = merge(local.base_container, {
      name        = "webserver"
      environment = local.service_environment
      command = [
        "dagster-webserver", "--host", "0.0.0.0", "--port", tostring(local.webserver_port),
        "--workspace", local.workspace_file, "--log-format", "json",
      ]
      portMappings = [{ containerPort = local.webserver_port, protocol = "tcp" }]
    })

    daemon = merge(local.base_container, {
      name        = "daemon"
      environment = local.service_environment
      command     = ["dagster-daemon", "run", "--workspace", local.workspace_file, "--log-format", "json"]
      healthCheck = { command = ["CMD-SHELL", "dagster-daemon liveness-check || exit 1"], interval = 60, timeout = 30, retries = 3, startPeriod = 120 }
    })

    code_location = merge(local.base_container, {
      name        = "code-location"
      environment = local.service_environment
      command = [
        "dagster", "code-server", "start", "--host", "0.0.0.0", "--port", tostring(local.grpc_port),
        "--module-name", var.code_location_module, "--location-name", var.code_location_name,
        "--log-format", "json",
      ]
      portMappings = [{ containerPort = local.grpc_port, protocol = "tcp" }]
      healthCheck  = { command = ["CMD-SHELL", "dagster api grpc-health-check --port ${local.grpc_port} || exit 1"], interval = 30, timeout = 10, retries = 3, startPeriod = 120 }
    })
  }

  # Separate from the services' containers: those reference this task
  # definition's ARN, so one map for all four would be a dependency cycle.
  run_container = merge(local.base_container, {
    name        = "run"
    environment = local.run_environment
  })

  log_configuration = {
    for k in ["webserver", "daemon", "code_location", "run"] : k => {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.this[k].name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = replace(k, "_", "-")
      }
    }
  }
}

resource "aws_ecs_task_definition" "webserver" {
  #checkov:skip=CKV_AWS_336:Dagster, DuckDB and Polars write temporary files to local disk; Fargate ephemeral storage is private to the task and discarded when it stops.
  family                   = "${var.name}-webserver"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.webserver_cpu
  memory                   = var.webserver_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.webserver.arn

  container_definitions = jsonencode([
    merge(local.containers.webserver, { logConfiguration = local.log_configuration.webserver }),
  ])

  runtime_platform {
    operating_system_family = local.runtime_platform.operating_system_family
    cpu_architecture        = local.runtime_platform.cpu_architecture
  }
}

resource "aws_ecs_task_definition" "daemon" {
  #checkov:skip=CKV_AWS_336:Dagster, DuckDB and Polars write temporary files to local disk; Fargate ephemeral storage is private to the task and discarded when it stops.
  family                   = "${var.name}-daemon"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.daemon_cpu
  memory                   = var.daemon_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.daemon.arn

  container_definitions = jsonencode([
    merge(local.containers.daemon, { logConfiguration = local.log_configuration.daemon }),
  ])

  runtime_platform {
    operating_system_family = local.runtime_platform.operating_system_family
    cpu_architecture        = local.runtime_platform.cpu_architecture
  }
}

resource "aws_ecs_task_definition" "code_location" {
  #checkov:skip=CKV_AWS_336:Dagster, DuckDB and Polars write temporary files to local disk; Fargate ephemeral storage is private to the task and discarded when it stops.
  family                   = "${var.name}-code-location"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.code_location_cpu
  memory                   = var.code_location_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.code_location.arn

  container_definitions = jsonencode([
    merge(local.containers.code_location, { logConfiguration = local.log_configuration.code_location }),
  ])

  runtime_platform {
    operating_system_family = local.runtime_platform.operating_system_family
    cpu_architecture        = local.runtime_platform.cpu_architecture
  }
}

resource "aws_ecs_task_definition" "run" {
  #checkov:skip=CKV_AWS_336:Dagster, DuckDB and Polars write temporary files to local disk; Fargate ephemeral storage is private to the task and discarded when it stops.
  family                   = local.run_task_family
  requires_compatibilities = ["FARGATE"]
  # Keep earlier revisions ACTIVE: a daemon that has not been redeployed yet can
  # still launch runs with the revision it knows.
  skip_destroy       = true
  network_mode       = "awsvpc"
  cpu                = var.run_cpu
  memory             = var.run_memory
  execution_role_arn = aws_iam_role.execution.arn
  task_role_arn      = aws_iam_role.run.arn

  container_definitions = jsonencode([
    merge(local.run_container, { logConfiguration = local.log_configuration.run }),
  ])

  ephemeral_storage {
    size_in_gib = var.run_ephemeral_storage_gib
  }

  runtime_platform {
    operating_system_family = local.runtime_platform.operating_system_family
    cpu_architecture        = local.runtime_platform.cpu_architecture
  }
}
