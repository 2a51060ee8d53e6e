# Not deployed: a root that calls the module with enabled = true, so that checkov
# (`make infra-check` scans every directory under terraform/) checks the resources the
# module creates when Ray is on. In the env roots ray_enabled = false gives them count = 0,
# and checkov leaves count-0 resources out.

module "ray_enabled" {
  source = "../"

  enabled              = true
  name                 = "lakehouse-checkov"
  private_subnet_ids   = ["subnet-00000000000000001", "subnet-00000000000000002"]
  raw_bucket_arn       = "arn:aws:s3:::lakehouse-checkov-raw"
  raw_prefix           = "raw/"
  lake_bucket_arn      = "arn:aws:s3:::lakehouse-checkov-lake"
  lake_prefix          = "lake/"
  data_kms_key_arn     = "arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-0000-0000-000000000001"
  platform_kms_key_arn = "arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-0000-0000-000000000002"
  log_retention_days   = 365
}
