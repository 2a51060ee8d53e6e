# Buckets of one environment.
#
#   raw   <project>-<env>-raw   Firehose landing zone: raw/YYYY/MM/dd/HH/..., errors/...
#   lake  <project>-<env>-lake  Delta tables under lake/<table> (events, quarantine, ...)
#   ops   <project>-<env>-ops   Athena query results, Dagster compute logs
#   logs  <project>-<env>-access-logs  S3 server access logs and ALB access logs
#
# raw/lake names follow lake_pipeline.settings.bucket_names(env, project); the
# tests in tests/terraform check that they agree.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_elb_service_account" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
}

module "raw" {
  source = "../s3_bucket"

  name                               = var.raw_bucket_name
  kms_key_arn                        = var.kms_key_arn
  access_log_bucket                  = aws_s3_bucket.access_logs.id
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days

  lifecycle_rules = [
    {
      # Landed objects are immutable and read within hours; after that only a
      # reconciliation backfill or a replay reads them.
      id     = "raw-tiering-and-retention"
      prefix = var.raw_prefix
      transitions = [
        { days = var.raw_transition_ia_days, storage_class = "STANDARD_IA" },
        { days = var.raw_transition_glacier_ir_days, storage_class = "GLACIER_IR" },
      ]
      expiration_days = var.raw_retention_days
    },
    {
      id              = "firehose-errors-retention"
      prefix          = var.error_prefix
      expiration_days = var.raw_retention_days
    },
  ]
}

module "lake" {
  source = "../s3_bucket"

  name              = var.lake_bucket_name
  kms_key_arn       = var.kms_key_arn
  access_log_bucket = aws_s3_bucket.access_logs.id
  # Delta VACUUM deletes unreferenced files; versioning keeps them for this many
  # days more, which is the recovery window for a bad vacuum or overwrite.
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  # Current versions of curated tables never expire and never leave STANDARD:
  # Delta readers need every referenced file to be instantly readable.
  lifecycle_rules = []
}

module "ops" {
  source = "../s3_bucket"

  name                               = var.ops_bucket_name
  kms_key_arn                        = var.kms_key_arn
  access_log_bucket                  = aws_s3_bucket.access_logs.id
  noncurrent_version_expiration_days = 7

  lifecycle_rules = [
    {
      id              = "athena-results-retention"
      prefix          = var.athena_results_prefix
      expiration_days = var.athena_results_retention_days
    },
    {
      id              = "dagster-compute-logs-retention"
      prefix          = var.compute_logs_prefix
      expiration_days = var.compute_log_retention_days
    },
  ]
}

# --- Access-log bucket --------------------------------------------------------
# S3 server access logs and ALB access logs can only be delivered to a bucket
# whose default encryption is SSE-S3, so this one bucket does not use the KMS key.

resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target bucket itself; logging it into itself would create a feedback loop.
  #checkov:skip=CKV_AWS_145:S3 server access logs and ALB access logs can only be delivered to buckets with SSE-S3 (AES256) default encryption; SSE-KMS is not supported for log targets.
  #checkov:skip=CKV_AWS_144:Access logs are audit copies with a fixed retention; replicating them to a second region is not required.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events for log objects; they are read ad hoc (Athena) during investigations.
  bucket = var.access_log_bucket_name

  tags = {
    Name = var.access_log_bucket_name
  }
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  rule {
    id     = "access-log-retention"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.access_logs]
}

data "aws_iam_policy_document" "access_logs" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.access_logs.arn,
      "${aws_s3_bucket.access_logs.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "S3ServerAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs.arn}/s3/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values = [
        "arn:${data.aws_partition.current.partition}:s3:::${var.raw_bucket_name}",
        "arn:${data.aws_partition.current.partition}:s3:::${var.lake_bucket_name}",
        "arn:${data.aws_partition.current.partition}:s3:::${var.ops_bucket_name}",
      ]
    }
  }

  statement {
    sid       = "AlbAccessLogDeliveryLegacyRegions"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs.arn}/${var.alb_log_prefix}/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.current.arn]
    }
  }

  statement {
    sid       = "AlbAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs.arn}/${var.alb_log_prefix}/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["logdelivery.elasticloadbalancing.amazonaws.com"]
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  policy = data.aws_iam_policy_document.access_logs.json

  depends_on = [aws_s3_bucket_public_access_block.access_logs]
}
