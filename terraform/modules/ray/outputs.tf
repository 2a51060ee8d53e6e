output "cluster_name" {
  description = "EKS cluster of the Ray deployment (null when disabled)."
  value       = one(aws_eks_cluster.ray[*].name)
}

output "ray_role_arn" {
  description = "IRSA role of the Ray pods' service account (null when disabled)."
  value       = one(aws_iam_role.ray[*].arn)
}

output "ray_address" {
  description = "LAKE_RAY_ADDRESS for a driver inside the VPC: the head service's Ray client port (null when disabled)."
  value       = var.enabled ? "ray://${local.cluster_resource_name}-head-svc.${var.namespace}.svc.cluster.local:10001" : null
}

output "ray_cluster_manifest" {
  description = "The KubeRay RayCluster (with its service account) to apply once the KubeRay operator runs: `terraform output -raw ray_cluster_manifest | kubectl apply -f -` (null when disabled)."
  value       = var.enabled ? local.manifest : null
}
