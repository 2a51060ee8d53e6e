# Ray on AWS: an EKS cluster in the private subnets for KubeRay, off unless enabled.
#
# - one on-demand node for the Ray head and the KubeRay operator;
# - a Spot worker node group that scales from zero (Ray's autoscaler asks for worker pods,
#   the cluster autoscaler adds nodes for them, and removes them when they are idle);
# - the Ray pods' service account assumes an IAM role (IRSA) that reads the landing zone
#   and writes the lake, nothing else.
# The RayCluster itself is a KubeRay manifest (output ray_cluster_manifest), applied with
# kubectl once the KubeRay operator is installed (docs/scaling.md, "Deploying").

locals {
  count                 = var.enabled ? 1 : 0
  cluster_name          = "${var.name}-ray"
  cluster_resource_name = "lake-ray"
  log_types             = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  worker_label          = { "lake.ray/role" = "worker" }
  head_label            = { "lake.ray/role" = "head" }
}

resource "aws_cloudwatch_log_group" "eks" {
  count = local.count

  # EKS writes its control plane logs to exactly this name.
  name              = "/aws/eks/${local.cluster_name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.platform_kms_key_arn
}

resource "aws_eks_cluster" "ray" {
  count = local.count

  name                      = local.cluster_name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster[0].arn
  enabled_cluster_log_types = local.log_types

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = false
  }

  access_config {
    authentication_mode = "API"
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = var.platform_kms_key_arn
    }
  }

  depends_on = [
    aws_cloudwatch_log_group.eks,
    aws_iam_role_policy_attachment.cluster,
  ]
}

resource "aws_eks_node_group" "head" {
  count = local.count

  cluster_name    = aws_eks_cluster.ray[0].name
  node_group_name = "ray-head"
  node_role_arn   = aws_iam_role.node[0].arn
  subnet_ids      = var.private_subnet_ids
  capacity_type   = "ON_DEMAND"
  instance_types  = [var.head_instance_type]
  labels          = local.head_label

  scaling_config {
    min_size     = 1
    desired_size = 1
    max_size     = 1
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_eks_node_group" "workers" {
  count = local.count

  cluster_name    = aws_eks_cluster.ray[0].name
  node_group_name = "ray-workers"
  node_role_arn   = aws_iam_role.node[0].arn
  subnet_ids      = var.private_subnet_ids
  capacity_type   = "SPOT"
  instance_types  = var.worker_instance_types
  labels          = local.worker_label

  # Zero nodes until Ray asks for workers; the cluster autoscaler moves desired_size.
  scaling_config {
    min_size     = 0
    desired_size = 0
    max_size     = var.worker_max_nodes
  }

  # The cluster autoscaler scales a group up from zero only if it knows the labels its nodes will have.
  tags = {
    "k8s.io/cluster-autoscaler/enabled"                           = "true"
    "k8s.io/cluster-autoscaler/${local.cluster_name}"             = "owned"
    "k8s.io/cluster-autoscaler/node-template/label/lake.ray/role" = "worker"
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# IRSA: the cluster's OIDC issuer, trusted by IAM for service-account tokens.
resource "aws_iam_openid_connect_provider" "eks" {
  count = local.count

  url            = aws_eks_cluster.ray[0].identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
}
