variable "name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the customer-managed KMS key used for default encryption (SSE-KMS)."
  type        = string
}

variable "access_log_bucket" {
  description = "Name of the bucket that receives this bucket's server access logs."
  type        = string
}

variable "noncurrent_version_expiration_days" {
  description = "Days a noncurrent (overwritten or deleted) object version is kept before it expires."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads are aborted."
  type        = number
  default     = 7
}

variable "lifecycle_rules" {
  description = "Extra per-prefix lifecycle rules: storage-class transitions and optional expiration of current versions."
  type = list(object({
    id     = string
    prefix = string
    transitions = optional(list(object({
      days          = number
      storage_class = string
    })), [])
    expiration_days = optional(number)
  }))
  default = []
}
