# Ray on EKS (KubeRay) for LAKE_ENGINE=ray: off unless ray_enabled (terraform/modules/ray).

variable "ray_enabled" {
  description = "Create the EKS cluster for a KubeRay Ray cluster (LAKE_ENGINE=ray). Off: nothing is created."
  type        = bool
  default     = false
  nullable    = false
}

variable "ray_worker_max_nodes" {
  description = "Most Ray worker nodes (Spot); the worker group scales from zero to this and back."
  type        = number
  default     = 10
  nullable    = false
}

variable "ray_worker_instance_types" {
  description = "Instance types of the Ray worker nodes."
  type        = list(string)
  default     = ["m6i.2xlarge", "m5.2xlarge"]
  nullable    = false
}

module "ray" {
  source = "../ray"

  enabled               = var.ray_enabled
  name                  = local.name
  private_subnet_ids    = module.network.private_subnet_ids
  raw_bucket_arn        = module.storage.raw_bucket_arn
  raw_prefix            = local.raw_prefix
  lake_bucket_arn       = module.storage.lake_bucket_arn
  lake_prefix           = local.lake_prefix
  data_kms_key_arn      = module.kms.data_key_arn
  platform_kms_key_arn  = module.kms.platform_key_arn
  log_retention_days    = var.log_retention_days
  worker_max_nodes      = var.ray_worker_max_nodes
  worker_instance_types = var.ray_worker_instance_types
  ray_image             = var.image_tag != "" ? "${module.orchestration.ecr_repository_url}:${var.image_tag}" : ""
  lake_environment      = module.orchestration.lake_environment
}

output "ray_cluster_name" {
  description = "EKS cluster of the Ray deployment (null unless ray_enabled)."
  value       = module.ray.cluster_name
}

output "ray_role_arn" {
  description = "IRSA role of the Ray pods (null unless ray_enabled)."
  value       = module.ray.ray_role_arn
}

output "ray_cluster_manifest" {
  description = "KubeRay RayCluster + service account to kubectl apply (null unless ray_enabled)."
  value       = module.ray.ray_cluster_manifest
}
