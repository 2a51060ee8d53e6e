variable "name" {
  description = "Resource name prefix: <project>-<env>."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster the serving service runs in (the Dagster cluster)."
  type        = string
}

variable "service_name" {
  description = "ECS service name of `lake serve`."
  type        = string
  default     = "lake-serve"
}

variable "image" {
  description = "Pipeline image (ECR repository URL), the same image the Dagster tasks run."
  type        = string
}

variable "image_tag" {
  description = "Image tag; empty keeps the service at 0 tasks (as the Dagster services)."
  type        = string
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64, as the Dagster tasks."
  type        = string
}

variable "cpu" {
  description = "Fargate CPU units of one `lake serve` task."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate memory (MiB) of one task."
  type        = number
  default     = 2048
}

variable "min_tasks" {
  description = "Fewest tasks while an image is deployed (2: one per AZ survives an AZ loss)."
  type        = number
  default     = 2

  validation {
    condition     = var.min_tasks >= 1
    error_message = "min_tasks must be at least 1."
  }
}

variable "max_tasks" {
  description = "Most tasks the request-count autoscaling may run."
  type        = number
  default     = 10
}

variable "requests_per_task_per_minute" {
  description = "Target of ALBRequestCountPerTarget (requests per task per minute) that autoscaling tracks."
  type        = number
  default     = 120000
}

variable "vpc_id" {
  description = "VPC of the tasks and the EFS spool."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets of the tasks and the EFS mount targets."
  type        = list(string)
}

variable "alb_listener_arn" {
  description = "Listener of the existing internal ALB (HTTPS when it has a certificate) that routes the API paths here."
  type        = string
}

variable "alb_security_group_id" {
  description = "Security group of that ALB."
  type        = string
}

variable "alb_arn_suffix" {
  description = "arn_suffix of that ALB (for the ALBRequestCountPerTarget metric)."
  type        = string
}

variable "execution_role_arn" {
  description = "ECS execution role (image pull, logs) shared with the Dagster tasks."
  type        = string
}

variable "raw_uri" {
  description = "LAKE_RAW_URI."
  type        = string
}

variable "lake_uri" {
  description = "LAKE_URI."
  type        = string
}

variable "stream_name" {
  description = "Kinesis stream POSTed events go to (LAKE_SERVE_STREAM)."
  type        = string
}

variable "delivery_stream_name" {
  description = "LAKE_DELIVERY_STREAM_NAME."
  type        = string
}

variable "lake_bucket_arn" {
  description = "Lake bucket."
  type        = string
}

variable "lake_prefix" {
  description = "Prefix of the lake in its bucket (lake/)."
  type        = string
}

variable "data_kms_key_arn" {
  description = "KMS key of the buckets and the stream."
  type        = string
}

variable "platform_kms_key_arn" {
  description = "KMS key of logs and the EFS spool."
  type        = string
}

variable "log_retention_days" {
  description = "CloudWatch log retention."
  type        = number
}

variable "lake_settings" {
  description = "Extra LAKE_* variables (lake_pipeline.settings), as for the Dagster tasks."
  type        = map(string)
  default     = {}
}
