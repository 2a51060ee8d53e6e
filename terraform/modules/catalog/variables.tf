variable "name" {
  description = "Name prefix, \"<project>-<env>\"; also the Athena workgroup name."
  type        = string
}

variable "database_name" {
  description = "Glue database name (lowercase, underscores)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9_]+$", var.database_name))
    error_message = "database_name may contain only lowercase letters, digits and underscores."
  }
}

variable "lake_uri" {
  description = "Lake root, s3://<lake bucket>/lake (no trailing slash); tables live at <lake_uri>/<table>."
  type        = string

  validation {
    condition     = startswith(var.lake_uri, "s3://") && !endswith(var.lake_uri, "/")
    error_message = "lake_uri must be an s3:// URI without a trailing slash."
  }
}

variable "lake_bucket_arn" {
  description = "ARN of the lake bucket."
  type        = string
}

variable "lake_prefix" {
  description = "Key prefix of the lake root inside the lake bucket (\"lake/\")."
  type        = string
}

variable "ops_bucket_name" {
  description = "Bucket holding Athena query results."
  type        = string
}

variable "ops_bucket_arn" {
  description = "ARN of the ops bucket."
  type        = string
}

variable "athena_results_prefix" {
  description = "Key prefix of Athena results in the ops bucket (ends with /)."
  type        = string
}

variable "kms_key_arn" {
  description = "Data KMS key (lake objects, Athena results)."
  type        = string
}

variable "bytes_scanned_cutoff_per_query" {
  description = "Athena cancels any query of this workgroup that scans more bytes (minimum 10 MB)."
  type        = number

  validation {
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "bytes_scanned_cutoff_per_query must be at least 10485760 (10 MB)."
  }
}
