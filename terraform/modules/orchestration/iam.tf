# One role per component, each with only the calls that component makes.
#
#   execution      ECS agent: pull the image, write container logs, inject the DB secret
#   webserver      UI: terminate runs (EcsRunLauncher), read compute logs
#   daemon         run launcher + run monitoring: RunTask on the run family only
#   code_location  sensors: list/read landed objects and the ingest ledger, send alerts
#   run            one Dagster run: read raw, read/write/delete the lake, alert via SNS
#
# The pipeline's own AWS calls (lake_pipeline/**) are checked against the run role
# by tests/terraform/test_tf_iam.py.

locals {
  raw_objects         = "${var.raw_bucket_arn}/${var.raw_prefix}*"
  lake_objects        = "${var.lake_bucket_arn}/${var.lake_prefix}*"
  compute_log_objects = "${var.ops_bucket_arn}/${local.compute_logs_prefix}/*"

  # s3:prefix values a ListObjectsV2 may use: the URI root itself ("raw", as
  # lake_pipeline's storage probes it) and anything below it ("raw/2025/...").
  raw_list_prefixes  = [trimsuffix(var.raw_prefix, "/"), "${var.raw_prefix}*"]
  lake_list_prefixes = [trimsuffix(var.lake_prefix, "/"), "${var.lake_prefix}*"]
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

# --- Task execution role (ECS agent) ----------------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${var.name}-ecs-execution"
  description        = "ECS agent for ${var.name} Dagster tasks: image pull, logs, DB secret"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchGetImage",
    ]
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid       = "WriteContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in aws_cloudwatch_log_group.this : "${g.arn}:*"]
  }

  statement {
    sid       = "InjectDbPassword"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.db_password.arn]
  }

  statement {
    sid       = "DecryptSecretAndImage"
    actions   = ["kms:Decrypt"]
    resources = [var.platform_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "secretsmanager.${local.region}.amazonaws.com",
        "ecr.${local.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "ecs-agent"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- Webserver --------------------------------------------------------------------

resource "aws_iam_role" "webserver" {
  name               = "${var.name}-dagster-webserver"
  description        = "Dagster webserver of ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "webserver" {
  statement {
    # EcsRunLauncher resolves the run task definition when the instance loads.
    # DescribeTaskDefinition supports no resource-level permissions.
    sid       = "ResolveRunTaskDefinition"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "TerminateRunsFromUi"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.cluster_tasks_arn]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.cluster_arn]
    }
  }

  statement {
    sid       = "ListComputeLogs"
    actions   = ["s3:ListBucket"]
    resources = [var.ops_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.compute_logs_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadAndDeleteComputeLogs"
    actions   = ["s3:GetObject", "s3:DeleteObject"]
    resources = [local.compute_log_objects]
  }

  statement {
    sid       = "DecryptComputeLogs"
    actions   = ["kms:Decrypt"]
    resources = [var.data_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "webserver" {
  name   = "dagster-webserver"
  role   = aws_iam_role.webserver.id
  policy = data.aws_iam_policy_document.webserver.json
}

# --- Daemon (run launcher, run monitoring, schedules, sensors) --------------------

resource "aws_iam_role" "daemon" {
  name               = "${var.name}-dagster-daemon"
  description        = "Dagster daemon of ${var.name}: launches one ECS task per run"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "daemon" {
  statement {
    sid       = "LaunchRunTasks"
    actions   = ["ecs:RunTask"]
    resources = [local.run_task_definition]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.cluster_arn]
    }
  }

  statement {
    sid       = "TagRunTasksAtLaunch"
    actions   = ["ecs:TagResource"]
    resources = [local.cluster_tasks_arn]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "MonitorAndStopRunTasks"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.cluster_tasks_arn]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.cluster_arn]
    }
  }

  statement {
    # Neither call supports resource-level permissions. The launcher resolves the
    # run task definition and copies the daemon task's subnets/security groups.
    sid = "ReadTaskDefinitionsAndNetworkInterfaces"
    actions = [
      "ecs:DescribeTaskDefinition",
      "ec2:DescribeNetworkInterfaces",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "PassRunRolesToEcs"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.run.arn, aws_iam_role.execution.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    # Run monitoring attaches the last log lines of a failed run task to the run.
    sid       = "ReadFailedRunLogs"
    actions   = ["logs:GetLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this["run"].arn}:*"]
  }
}

resource "aws_iam_role_policy" "daemon" {
  name   = "dagster-daemon"
  role   = aws_iam_role.daemon.id
  policy = data.aws_iam_policy_document.daemon.json
}

# --- Code location (gRPC server; evaluates sensors and schedules) -----------------

resource "aws_iam_role" "code_location" {
  name               = "${var.name}-dagster-code-location"
  description        = "Dagster code location of ${var.name}: sensors read the landing zone and the ledger"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "code_location" {
  statement {
    sid       = "ResolveRunTaskDefinition"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "ListLandedObjects"
    actions   = ["s3:ListBucket"]
    resources = [var.raw_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.raw_list_prefixes
    }
  }

  statement {
    sid       = "ReadLandedObjects"
    actions   = ["s3:GetObject"]
    resources = [local.raw_objects]
  }

  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [var.lake_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.lake_list_prefixes
    }
  }

  statement {
    sid       = "ReadLakeLedger"
    actions   = ["s3:GetObject"]
    resources = [local.lake_objects]
  }

  statement {
    sid       = "ListComputeLogs"
    actions   = ["s3:ListBucket"]
    resources = [var.ops_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.compute_logs_prefix}/*"]
    }
  }

  statement {
    sid       = "WriteSensorTickLogs"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.compute_log_objects]
  }

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.data_kms_key_arn]
  }

  statement {
    # The run-failure alert sensor publishes from here.
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [var.alert_topic_arn]
  }

  statement {
    sid       = "EncryptAlertMessages"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.platform_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "code_location" {
  name   = "dagster-code-location"
  role   = aws_iam_role.code_location.id
  policy = data.aws_iam_policy_document.code_location.json
}

# --- Run task (one Dagster run) ---------------------------------------------------

resource "aws_iam_role" "run" {
  name               = "${var.name}-dagster-run"
  description        = "One Dagster run of ${var.name}: raw -> Delta lake"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "run" {
  statement {
    sid       = "ResolveRunTaskDefinition"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "ListRaw"
    actions   = ["s3:ListBucket"]
    resources = [var.raw_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.raw_list_prefixes
    }
  }

  statement {
    sid       = "ReadRaw"
    actions   = ["s3:GetObject"]
    resources = [local.raw_objects]
  }

  statement {
    # delta-rs (object_store) lists _delta_log/ and table directories.
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [var.lake_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.lake_list_prefixes
    }
  }

  statement {
    # Delta commits (conditional PutObject), data files, compaction and VACUUM.
    sid = "ReadWriteDeleteLake"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [local.lake_objects]
  }

  statement {
    sid       = "ListComputeLogs"
    actions   = ["s3:ListBucket"]
    resources = [var.ops_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.compute_logs_prefix}/*"]
    }
  }

  statement {
    sid       = "WriteComputeLogs"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.compute_log_objects]
  }

  statement {
    sid = "UseDataKey"
    actions = [
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.data_kms_key_arn]
  }

  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [var.alert_topic_arn]
  }

  statement {
    sid       = "EncryptAlertMessages"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.platform_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "run" {
  name   = "dagster-run"
  role   = aws_iam_role.run.id
  policy = data.aws_iam_policy_document.run.json
}
