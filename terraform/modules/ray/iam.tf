data "aws_partition" "current" {}

locals {
  managed = "arn:${data.aws_partition.current.partition}:iam::aws:policy"
  node_policies = {
    worker   = "${local.managed}/AmazonEKSWorkerNodePolicy"
    cni      = "${local.managed}/AmazonEKS_CNI_Policy"
    registry = "${local.managed}/AmazonEC2ContainerRegistryReadOnly"
  }
  oidc_host = var.enabled ? replace(aws_eks_cluster.ray[0].identity[0].oidc[0].issuer, "https://", "") : ""
}

# --- Control plane ---------------------------------------------------------------------

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  count = local.count

  name               = "${local.cluster_name}-cluster"
  description        = "EKS control plane of ${local.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  count = local.count

  role       = aws_iam_role.cluster[0].name
  policy_arn = "${local.managed}/AmazonEKSClusterPolicy"
}

data "aws_iam_policy_document" "cluster_secrets" {
  statement {
    sid       = "EncryptKubernetesSecrets"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"]
    resources = [var.platform_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "cluster_secrets" {
  count = local.count

  name   = "kubernetes-secrets"
  role   = aws_iam_role.cluster[0].id
  policy = data.aws_iam_policy_document.cluster_secrets.json
}

# --- Nodes -------------------------------------------------------------------------------

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  count = local.count

  name               = "${local.cluster_name}-node"
  description        = "Nodes of ${local.cluster_name} (no data access: the Ray pods get theirs through IRSA)"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = var.enabled ? local.node_policies : {}

  role       = aws_iam_role.node[0].name
  policy_arn = each.value
}

# --- The Ray pods (IRSA): read the landing zone, write the lake ----------------------------

data "aws_iam_policy_document" "ray_assume" {
  count = local.count

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks[0].arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ray" {
  count = local.count

  name               = "${local.cluster_name}-pods"
  description        = "Ray head and workers of ${local.cluster_name}: read raw/, read and write lake/"
  assume_role_policy = data.aws_iam_policy_document.ray_assume[0].json
}

data "aws_iam_policy_document" "ray" {
  statement {
    sid       = "ListLandingZone"
    actions   = ["s3:ListBucket"]
    resources = [var.raw_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.raw_prefix, "${var.raw_prefix}*"]
    }
  }

  statement {
    sid       = "ReadLandingZone"
    actions   = ["s3:GetObject"]
    resources = ["${var.raw_bucket_arn}/${var.raw_prefix}*"]
  }

  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [var.lake_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.lake_prefix, "${var.lake_prefix}*"]
    }
  }

  statement {
    sid       = "ReadWriteLake"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${var.lake_bucket_arn}/${var.lake_prefix}*"]
  }

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.data_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "ray" {
  count = local.count

  name   = "lake-data"
  role   = aws_iam_role.ray[0].id
  policy = data.aws_iam_policy_document.ray.json
}
