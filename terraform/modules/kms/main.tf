# Two customer-managed keys per environment, both with yearly rotation:
#   data     - S3 buckets (raw, lake, ops), the Kinesis stream and Firehose output.
#   platform - CloudWatch log groups, the SNS alert topic, Secrets Manager,
#              RDS storage / Performance Insights and the ECR repository.
# Splitting them keeps a grant on the lake data from implying access to the
# operational secrets, and vice versa. Access to either key is granted through
# IAM policies of the individual roles (the key policies delegate to the account),
# plus the two AWS service principals that cannot use IAM roles.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}

data "aws_iam_policy_document" "data_key" {
  #checkov:skip=CKV_AWS_109:This document is a KMS key policy: "*" means "this key", and the account-root statement is the standard delegation that lets IAM policies grant key use.
  #checkov:skip=CKV_AWS_111:This document is a KMS key policy: "*" means "this key", and the account-root statement is the standard delegation that lets IAM policies grant key use.
  #checkov:skip=CKV_AWS_356:This document is a KMS key policy: "*" means "this key", not every resource in the account.
  statement {
    sid       = "AccountAdministersKeyAndDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

data "aws_iam_policy_document" "platform_key" {
  #checkov:skip=CKV_AWS_109:This document is a KMS key policy: "*" means "this key", and the account-root statement is the standard delegation that lets IAM policies grant key use.
  #checkov:skip=CKV_AWS_111:This document is a KMS key policy: "*" means "this key", and the account-root statement is the standard delegation that lets IAM policies grant key use.
  #checkov:skip=CKV_AWS_356:This document is a KMS key policy: "*" means "this key", not every resource in the account.
  statement {
    sid       = "AccountAdministersKeyAndDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsThisAccountsLogGroups"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "data" {
  description             = "${var.name}: lake data (S3 raw/lake/ops, Kinesis, Firehose)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.data_key.json
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

resource "aws_kms_key" "platform" {
  description             = "${var.name}: platform (logs, SNS, Secrets Manager, RDS, ECR)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.platform_key.json
}

resource "aws_kms_alias" "platform" {
  name          = "alias/${var.name}-platform"
  target_key_id = aws_kms_key.platform.key_id
}
