# The serving task's role: read the lake, keep its own _user_events table, put records on the
# stream, mount the spool. Nothing else (no Dagster database, no raw bucket).

data "aws_iam_policy_document" "assume" {
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
  }
}

resource "aws_iam_role" "serve" {
  name               = "${var.name}-serve"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "serve" {
  statement {
    sid       = "ListTheLake"
    actions   = ["s3:ListBucket"]
    resources = [var.lake_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.lake_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadTheLake"
    actions   = ["s3:GetObject"]
    resources = ["${var.lake_bucket_arn}/${local.lake_prefix}/*"]
  }

  statement {
    sid       = "KeepUserEvents"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.lake_bucket_arn}/${local.lake_prefix}/_user_events/*"]
  }

  statement {
    sid       = "PutPostedEvents"
    actions   = ["kinesis:PutRecords", "kinesis:PutRecord", "kinesis:DescribeStreamSummary"]
    resources = [local.stream_arn]
  }

  statement {
    sid       = "DataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.data_kms_key_arn]
  }

  statement {
    sid       = "MountTheSpool"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.spool.arn]
    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.spool.arn]
    }
  }
}

resource "aws_iam_role_policy" "serve" {
  name   = "serve"
  role   = aws_iam_role.serve.id
  policy = data.aws_iam_policy_document.serve.json
}

# --- Network: the ALB reaches the tasks, the tasks reach AWS APIs and the spool ----------

resource "aws_security_group" "serve" {
  name        = "${var.name}-serve"
  description = "lake serve tasks"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "spool" {
  name        = "${var.name}-serve-spool"
  description = "EFS mount targets of the lake serve spool"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "serve_from_alb" {
  security_group_id            = aws_security_group.serve.id
  description                  = "API traffic from the internal ALB"
  referenced_security_group_id = var.alb_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

resource "aws_vpc_security_group_egress_rule" "alb_to_serve" {
  security_group_id            = var.alb_security_group_id
  description                  = "The ALB forwards API paths to lake serve"
  referenced_security_group_id = aws_security_group.serve.id
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

resource "aws_vpc_security_group_egress_rule" "serve_https" {
  security_group_id = aws_security_group.serve.id
  description       = "AWS APIs (S3, Kinesis, KMS, ECR, logs) over HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "serve_nfs" {
  security_group_id            = aws_security_group.serve.id
  description                  = "NFS to the spool"
  referenced_security_group_id = aws_security_group.spool.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
}

resource "aws_vpc_security_group_ingress_rule" "spool_from_serve" {
  security_group_id            = aws_security_group.spool.id
  description                  = "NFS from lake serve tasks"
  referenced_security_group_id = aws_security_group.serve.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
}
