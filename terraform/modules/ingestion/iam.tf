# --- Firehose role: read the stream, write raw/ and errors/ of the raw bucket -----

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "firehose" {
  name               = "${var.name}-firehose"
  description        = "Firehose ${var.delivery_stream_name}: reads ${var.stream_name}, writes the raw bucket"
  assume_role_policy = data.aws_iam_policy_document.firehose_assume.json
}

data "aws_iam_policy_document" "firehose" {
  statement {
    sid = "ReadSourceStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:GetShardIterator",
      "kinesis:GetRecords",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.events.arn]
  }

  statement {
    sid = "LocateRawBucket"
    actions = [
      "s3:GetBucketLocation",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
    ]
    resources = [var.raw_bucket_arn]
  }

  statement {
    sid = "WriteRawAndErrorPrefixes"
    actions = [
      "s3:PutObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [
      "${var.raw_bucket_arn}/${var.raw_prefix}*",
      "${var.raw_bucket_arn}/${var.error_prefix}*",
    ]
  }

  statement {
    sid = "UseDataKeyViaS3AndKinesis"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "s3.${data.aws_region.current.name}.amazonaws.com",
        "kinesis.${data.aws_region.current.name}.amazonaws.com",
      ]
    }
  }

  statement {
    sid       = "WriteDeliveryErrorLogs"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "deliver-stream-to-raw"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

# --- Producer policy: attach to whatever publishes events -------------------------
# The delivery stream reads from Kinesis, so producers write to the stream only:
# Firehose rejects PutRecord/PutRecordBatch on a delivery stream whose source is a
# Kinesis stream (DirectPut is used only against the local moto emulator).

data "aws_iam_policy_document" "producer" {
  statement {
    sid = "PutEventsOnStream"
    actions = [
      "kinesis:PutRecord",
      "kinesis:PutRecords",
      "kinesis:DescribeStreamSummary",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.events.arn]
  }

  statement {
    sid       = "EncryptWithStreamKey"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["kinesis.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "producer" {
  name        = "${var.name}-event-producer"
  description = "Publish events to ${var.stream_name}; attach to producer roles."
  policy      = data.aws_iam_policy_document.producer.json
}
