# producers --PutRecords--> Kinesis Data Stream --> Firehose --GZIP--> s3://<raw>/raw/YYYY/MM/dd/HH/
#
# The Firehose prefix is built from FIREHOSE_RAW_PREFIX ("raw/") followed by the
# hour layout yyyy/MM/dd/HH that the Dagster landing sensor lists; failed
# deliveries go under FIREHOSE_ERROR_PREFIX ("errors/"). Both values come in as
# variables from the lakehouse module, which mirrors lake_pipeline.settings.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  on_demand = var.stream_mode == "ON_DEMAND"
  # Joda-time layout of one landing hour; the sensor lists exactly these prefixes.
  hour_layout = "yyyy/MM/dd/HH"
}

resource "aws_kinesis_stream" "events" {
  name             = var.stream_name
  retention_period = var.retention_hours
  shard_count      = local.on_demand ? null : var.shard_count
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  shard_level_metrics = var.shard_level_metrics

  stream_mode_details {
    stream_mode = var.stream_mode
  }
}

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/${var.name}/firehose/${var.delivery_stream_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_cloudwatch_log_stream" "firehose_s3_delivery" {
  name           = "S3Delivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

resource "aws_kinesis_firehose_delivery_stream" "raw" {
  #checkov:skip=CKV_AWS_240:Firehose server-side encryption applies only to DirectPut sources. With a Kinesis stream as source, records are encrypted at rest by the stream (KMS, customer-managed key) and in S3 by kms_key_arn below.
  #checkov:skip=CKV_AWS_241:Same as CKV_AWS_240: delivery-stream SSE cannot be enabled with a Kinesis source; the stream and the S3 objects use the customer-managed data key.
  name        = var.delivery_stream_name
  destination = "extended_s3"

  kinesis_source_configuration {
    kinesis_stream_arn = aws_kinesis_stream.events.arn
    role_arn           = aws_iam_role.firehose.arn
  }

  extended_s3_configuration {
    role_arn   = aws_iam_role.firehose.arn
    bucket_arn = var.raw_bucket_arn

    # s3://<raw>/raw/2025/11/20/13/<delivery-stream>-1-2025-11-20-13-05-22-<uuid>.gz
    prefix              = "${var.raw_prefix}!{timestamp:${local.hour_layout}}/"
    error_output_prefix = "${var.error_prefix}!{firehose:error-output-type}/!{timestamp:${local.hour_layout}}/"

    compression_format = "GZIP"
    kms_key_arn        = var.kms_key_arn

    buffering_size     = var.buffering_size_mb
    buffering_interval = var.buffering_interval_seconds

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.firehose_s3_delivery.name
    }
  }
}
