# prod: three AZs with a NAT gateway each, Multi-AZ database with deletion
# protection, a week of stream retention for replays, one year of logs.
# Used as: cd terraform/envs/prod && terraform plan -var-file=../prod.tfvars
# (make infra-plan ENV=prod does this). Unset variables take the defaults of
# terraform/modules/lakehouse/variables.tf, which are the production-safe ones.

region         = "eu-west-1"
aws_account_id = "222222222222" # replace with the prod account id

project = "lakehouse"

tags = {
  CostCenter = "data-platform"
}

# Network
vpc_cidr           = "10.41.0.0/16"
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
single_nat_gateway = false

# Ingestion. At ~280 events/s of ~1 KB with 5x spikes, PROVISIONED with 3 shards
# is cheaper than ON_DEMAND once the traffic is known (docs/deployment.md).
kinesis_stream_mode                 = "ON_DEMAND"
kinesis_shard_count                 = 3
kinesis_retention_hours             = 168
firehose_buffering_size_mb          = 64
firehose_buffering_interval_seconds = 60

# Storage
raw_transition_ia_days             = 30
raw_transition_glacier_ir_days     = 90
raw_retention_days                 = 400
noncurrent_version_expiration_days = 30
log_retention_days                 = 365
access_log_retention_days          = 365
compute_log_retention_days         = 90

athena_bytes_scanned_cutoff_per_query = 107374182400 # 100 GiB

# Orchestration
run_cpu                   = 2048
run_memory                = 8192
run_ephemeral_storage_gib = 50
db_instance_class         = "db.t4g.small"
db_multi_az               = true
db_deletion_protection    = true
db_skip_final_snapshot    = false
db_backup_retention_days  = 14
alb_deletion_protection   = true

# Deployed pipeline image (tag in this env's ECR repository, printed by
# `make infra-image ENV=prod`). Empty: the Dagster services run 0 tasks.
image_tag = ""

# VPN range that may open the Dagster UI (never 0.0.0.0/0; validated).
webserver_allowed_cidrs = ["10.100.0.0/16"]

# Set to an ACM certificate ARN to serve the UI over HTTPS.
webserver_certificate_arn = null

alert_emails = ["data-oncall@example.com"]
