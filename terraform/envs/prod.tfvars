# prod: three AZs sharing one NAT gateway, a pausing Aurora Serverless database with
# a reader in a second AZ and deletion protection, a week of stream retention for replays, one year of logs.
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
vpc_cidr                    = "10.41.0.0/16"
availability_zones          = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
nat_gateways                = "one" # see docs/deployment.md: one NAT is cheaper than endpoints in 3 AZs
interface_endpoint_az_count = 0

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
run_cpu                     = 2048
run_memory                  = 8192
run_ephemeral_storage_gib   = 50
db_instance_class           = "db.t4g.small" # used when db_engine = "rds-postgres"
db_engine                   = "aurora-serverless-v2"
db_min_capacity_acu         = 0 # pauses on idle weekends; a reader in a second AZ (db_multi_az)
db_max_capacity_acu         = 8
db_seconds_until_auto_pause = 900
db_multi_az                 = true
db_deletion_protection      = true
db_skip_final_snapshot      = false
db_backup_retention_days    = 14
alb_deletion_protection     = true

# Off-hours: the UI sleeps 19:00-08:00 and at weekends (make ui-wake ENV=prod wakes
# it); the daemon and code location sleep after two hours without records, UI or
# runs, and the first record wakes them (docs/deployment.md, "Quiet hours").
schedule_timezone          = "Europe/Dublin"
webserver_wake_cron        = "cron(0 8 ? * MON-FRI *)"
webserver_sleep_cron       = "cron(0 19 * * ? *)"
dagster_idle_sleep_minutes = 120

# Deployed pipeline image (tag in this env's ECR repository, printed by
# `make infra-image ENV=prod`). Empty: the Dagster services run 0 tasks.
image_tag = ""

# VPN range that may open the Dagster UI (never 0.0.0.0/0; validated).
webserver_allowed_cidrs = ["10.100.0.0/16"]

# Set to an ACM certificate ARN to serve the UI over HTTPS.
webserver_certificate_arn = null

alert_emails = ["data-oncall@example.com"]

# Ray on EKS for LAKE_ENGINE=ray (docs/scaling.md): off; true creates the cluster (workers scale from zero).
ray_enabled = false
