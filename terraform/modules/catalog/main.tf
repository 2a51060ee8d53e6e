# Glue Data Catalog entries for the Delta tables, and the Athena workgroup.
#
# Tables are registered as native Delta tables (parameter table_type = DELTA, as
# Athena's CREATE EXTERNAL TABLE ... TBLPROPERTIES ('table_type'='DELTA') does):
# Athena and Spark read schema, partitions and the live file list from the Delta
# transaction log under <location>/_delta_log, so the Glue columns below are a
# description for catalog browsers, not something a reader relies on.
# Table names and locations mirror lake_pipeline.settings.CATALOG_TABLES under the
# lake URI s3://<project>-<env>-lake/lake (tests check both).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  glue_arn   = "arn:${data.aws_partition.current.partition}:glue:${data.aws_region.current.name}:${local.account_id}"

  tables = {
    events = {
      description = "Curated events: one row per accepted event_uuid (deduplicated)."
      columns = [
        { name = "event_uuid", type = "string", comment = "Producer-assigned id; the dedupe key." },
        { name = "event_name", type = "string", comment = "As received, e.g. type:subtype." },
        { name = "created_at", type = "double", comment = "Epoch seconds as received, fraction kept." },
        { name = "created_datetime", type = "string", comment = "ISO 8601 UTC, fixed width, Z suffix, truncated." },
        { name = "event_subtype", type = "string", comment = "Second element of event_name, or null." },
        { name = "payload", type = "string", comment = "JSON text of every other input field (lossless)." },
        { name = "_source_key", type = "string", comment = "Raw object key the record came from." },
        { name = "_batch_id", type = "bigint", comment = "Ingest batch that inserted the row." },
      ]
      partition_keys = [
        { name = "event_date", type = "date", comment = "UTC date of created_at." },
        { name = "event_type", type = "string", comment = "First element of event_name." },
      ]
    }
    quarantine = {
      description = "Records and objects that could not be accepted, with a reason."
      columns = [
        { name = "raw_record", type = "string", comment = "Original text; null when a whole object was unreadable." },
        { name = "reason", type = "string", comment = "Why the record was rejected." },
        { name = "source_key", type = "string", comment = "Raw object key." },
        { name = "quarantined_at", type = "timestamp", comment = "When it was quarantined." },
        { name = "_batch_id", type = "bigint", comment = "Ingest batch that quarantined it." },
      ]
      partition_keys = []
    }
    hourly_event_counts = {
      description    = "Mart: events per hour and type. Its columns are owned by lake_pipeline; readers take them from the Delta log."
      columns        = []
      partition_keys = []
    }
  }
}

resource "aws_glue_catalog_database" "this" {
  name        = var.database_name
  description = "Delta tables of ${var.name} (lake ${var.lake_uri})"
}

resource "aws_glue_catalog_table" "delta" {
  for_each = local.tables

  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  description   = each.value.description
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "EXTERNAL"                   = "TRUE"
    "table_type"                 = "DELTA"
    "spark.sql.sources.provider" = "delta"
    "classification"             = "delta"
  }

  storage_descriptor {
    location      = "${var.lake_uri}/${each.key}"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters = {
        "path"                 = "${var.lake_uri}/${each.key}"
        "serialization.format" = "1"
      }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }

  dynamic "partition_keys" {
    for_each = each.value.partition_keys
    content {
      name    = partition_keys.value.name
      type    = partition_keys.value.type
      comment = partition_keys.value.comment
    }
  }
}

resource "aws_athena_workgroup" "this" {
  name          = var.name
  description   = "Queries over the ${var.name} lake; results encrypted in the ops bucket"
  state         = "ENABLED"
  force_destroy = false

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location       = "s3://${var.ops_bucket_name}/${var.athena_results_prefix}"
      expected_bucket_owner = local.account_id

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
}

# --- Analyst policy: query the lake through the workgroup, nothing else -----------

data "aws_iam_policy_document" "analyst" {
  statement {
    sid = "RunQueriesInWorkgroup"
    actions = [
      "athena:GetWorkGroup",
      "athena:StartQueryExecution",
      "athena:StopQueryExecution",
      "athena:GetQueryExecution",
      "athena:GetQueryResults",
      "athena:ListQueryExecutions",
    ]
    resources = [aws_athena_workgroup.this.arn]
  }

  statement {
    sid = "ReadCatalog"
    actions = [
      "glue:GetDatabase",
      "glue:GetTable",
      "glue:GetTables",
      "glue:GetPartition",
      "glue:GetPartitions",
    ]
    resources = [
      "${local.glue_arn}:catalog",
      aws_glue_catalog_database.this.arn,
      "${local.glue_arn}:table/${aws_glue_catalog_database.this.name}/*",
    ]
  }

  statement {
    sid       = "ListLakeTables"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.lake_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [trimsuffix(var.lake_prefix, "/"), "${var.lake_prefix}*"]
    }
  }

  statement {
    sid       = "ReadLakeTables"
    actions   = ["s3:GetObject"]
    resources = ["${var.lake_bucket_arn}/${var.lake_prefix}*"]
  }

  statement {
    sid       = "LocateResultsBucket"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket"]
    resources = [var.ops_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.athena_results_prefix}*"]
    }
  }

  statement {
    sid = "ReadWriteQueryResults"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${var.ops_bucket_arn}/${var.athena_results_prefix}*"]
  }

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_policy" "analyst" {
  name        = "${var.name}-lake-analyst"
  description = "Query the ${var.name} Delta tables with Athena (workgroup ${var.name}); attach to analyst roles."
  policy      = data.aws_iam_policy_document.analyst.json
}
