# The POST spool on EFS: encrypted at rest (platform key) and in transit, mounted through one
# access point (uid/gid 1000, root /spool), reachable only from the serving tasks over NFS.

resource "aws_efs_file_system" "spool" {
  creation_token   = "${var.name}-serve-spool"
  encrypted        = true
  kms_key_id       = var.platform_kms_key_arn
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  tags = {
    Name = "${var.name}-serve-spool"
  }
}

resource "aws_efs_mount_target" "spool" {
  count = length(var.private_subnet_ids)

  file_system_id  = aws_efs_file_system.spool.id
  subnet_id       = var.private_subnet_ids[count.index]
  security_groups = [aws_security_group.spool.id]
}

resource "aws_efs_access_point" "spool" {
  file_system_id = aws_efs_file_system.spool.id

  posix_user {
    uid = 1000
    gid = 1000
  }

  root_directory {
    path = "/spool"

    creation_info {
      owner_uid   = 1000
      owner_gid   = 1000
      permissions = "0750"
    }
  }
}

resource "aws_efs_file_system_policy" "spool" {
  file_system_id = aws_efs_file_system.spool.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ServingTasksThroughTheAccessPointOverTLS"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.serve.arn }
        Action    = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
        Resource  = aws_efs_file_system.spool.arn
        Condition = {
          Bool         = { "aws:SecureTransport" = "true" }
          StringEquals = { "elasticfilesystem:AccessPointArn" = aws_efs_access_point.spool.arn }
        }
      },
    ]
  })
}
