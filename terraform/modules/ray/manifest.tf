# The KubeRay RayCluster and its service account (applied with kubectl; see outputs.tf).
# Workers: minReplicas 0, so with no batch running only the head node is paid for.

locals {
  pod_env = [for k, v in var.lake_environment : { name = k, value = v }]

  container = {
    image = var.ray_image
    env   = local.pod_env
    securityContext = {
      allowPrivilegeEscalation = false
      runAsNonRoot             = true
      runAsUser                = 1000
    }
  }

  manifest = join("\n---\n", [
    yamlencode({
      apiVersion = "v1"
      kind       = "ServiceAccount"
      metadata = {
        name        = var.service_account
        namespace   = var.namespace
        annotations = { "eks.amazonaws.com/role-arn" = one(aws_iam_role.ray[*].arn) }
      }
    }),
    yamlencode({
      apiVersion = "ray.io/v1"
      kind       = "RayCluster"
      metadata   = { name = local.cluster_resource_name, namespace = var.namespace }
      spec = {
        enableInTreeAutoscaling = true
        autoscalerOptions       = { idleTimeoutSeconds = 120, upscalingMode = "Default" }
        headGroupSpec = {
          # The head runs no tasks (num-cpus 0): workers do, so the head node stays small.
          rayStartParams = { "num-cpus" = "0", "dashboard-host" = "0.0.0.0" }
          # Reachable from the Dagster run tasks in the VPC (internal load balancer), not from the internet.
          headService = {
            metadata = {
              annotations = {
                "service.beta.kubernetes.io/aws-load-balancer-scheme" = "internal"
                "service.beta.kubernetes.io/aws-load-balancer-type"   = "nlb"
              }
            }
            spec = { type = "LoadBalancer" }
          }
          template = {
            spec = {
              serviceAccountName = var.service_account
              nodeSelector       = local.head_label
              containers = [merge(local.container, {
                name      = "ray-head"
                resources = { requests = { cpu = "1", memory = "4Gi" }, limits = { cpu = "2", memory = "6Gi" } }
              })]
            }
          }
        }
        workerGroupSpecs = [{
          groupName      = "workers"
          minReplicas    = 0
          replicas       = 0
          maxReplicas    = var.worker_max_nodes
          rayStartParams = {}
          template = {
            spec = {
              serviceAccountName = var.service_account
              nodeSelector       = local.worker_label
              containers = [merge(local.container, {
                name      = "ray-worker"
                resources = { requests = { cpu = "7", memory = "28Gi" }, limits = { cpu = "8", memory = "30Gi" } }
              })]
            }
          }
        }]
      }
    }),
  ])
}
