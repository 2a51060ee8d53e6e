variable "enabled" {
  description = "Create the EKS cluster for Ray (KubeRay runs on it). Off by default: nothing is created."
  type        = bool
  default     = false
}

variable "name" {
  description = "Name prefix (<project>-<env>)."
  type        = string
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.31"
}

variable "private_subnet_ids" {
  description = "Private subnets for the control plane's interfaces and every node (no public IPs)."
  type        = list(string)
}

variable "raw_bucket_arn" {
  description = "Raw bucket: Ray workers read the landing zone under raw_prefix."
  type        = string
}

variable "raw_prefix" {
  description = "Prefix of the landing zone in the raw bucket (raw/)."
  type        = string
}

variable "lake_bucket_arn" {
  description = "Lake bucket: Ray workers write data files under lake_prefix (the driver commits them)."
  type        = string
}

variable "lake_prefix" {
  description = "Prefix of the lake in the lake bucket (lake/)."
  type        = string
}

variable "data_kms_key_arn" {
  description = "Customer-managed key of the raw and lake buckets."
  type        = string
}

variable "platform_kms_key_arn" {
  description = "Customer-managed key for Kubernetes secrets and the control plane's logs."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the EKS control plane log group."
  type        = number
}

variable "head_instance_type" {
  description = "Instance type of the one on-demand node that runs the Ray head (and the KubeRay operator)."
  type        = string
  default     = "m6i.large"
}

variable "worker_instance_types" {
  description = "Instance types of the Ray worker nodes (Spot)."
  type        = list(string)
  default     = ["m6i.2xlarge", "m5.2xlarge"]
}

variable "worker_max_nodes" {
  description = "Most Ray worker nodes; the group scales from zero to this and back."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_max_nodes >= 1
    error_message = "worker_max_nodes must be at least 1."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the RayCluster."
  type        = string
  default     = "ray"
}

variable "service_account" {
  description = "Kubernetes service account of the Ray pods (bound to the IRSA role)."
  type        = string
  default     = "lake-ray"
}

variable "ray_image" {
  description = "Container image of the Ray head and workers (the pipeline image: lake_pipeline and Ray installed)."
  type        = string
  default     = ""
}

variable "lake_environment" {
  description = "LAKE_* variables the Ray pods run with (the same as the Dagster tasks')."
  type        = map(string)
  default     = {}
}
