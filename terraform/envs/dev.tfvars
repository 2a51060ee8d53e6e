# dev: no NAT gateway (interface endpoints in one AZ), a pausing Aurora Serverless
# database, sleeping UI and daemon, short retention, small tasks.
# Used as: cd terraform/envs/dev && terraform plan -var-file=../dev.tfvars
# (make infra-plan ENV=dev does this). Unset variables take the defaults of
# terraform/modules/lakehouse/variables.tf.

region         = "eu-west-1"
aws_account_id = "111111111111" # replace with the dev account id

# Bucket names are global across AWS: <project>-dev-raw must be free. If you
# change project, the pipeline reads the same names from LAKE_* variables that
# Terraform sets on the ECS tasks, so nothing else changes.
project = "lakehouse"

tags = {
  CostCenter = "data-platform-dev"
}

# Network
vpc_cidr                    = "10.40.0.0/16"
availability_zones          = ["eu-west-1a", "eu-west-1b"]
nat_gateways                = "none" # interface endpoints carry the AWS API traffic
interface_endpoint_az_count = 1      # in one AZ: dev does not pay endpoint-hours for every AZ

# Ingestion: on-demand capacity, 1 day of replay
kinesis_stream_mode                 = "ON_DEMAND"
kinesis_retention_hours             = 24
firehose_buffering_size_mb          = 64
firehose_buffering_interval_seconds = 60

# Storage and logs: keep dev data briefly
raw_transition_ia_days             = 30
raw_transition_glacier_ir_days     = 60
raw_retention_days                 = 90
noncurrent_version_expiration_days = 7
log_retention_days                 = 30
access_log_retention_days          = 30
compute_log_retention_days         = 14

athena_bytes_scanned_cutoff_per_query = 10737418240 # 10 GiB

# Orchestration: small tasks, disposable database
run_cpu                     = 1024
run_memory                  = 4096
run_ephemeral_storage_gib   = 30
db_engine                   = "aurora-serverless-v2"
db_min_capacity_acu         = 0 # pauses when nothing is connected
db_max_capacity_acu         = 2
db_seconds_until_auto_pause = 300
db_multi_az                 = false
db_deletion_protection      = false
db_skip_final_snapshot      = true
db_backup_retention_days    = 1
alb_deletion_protection     = false

# Off-hours: the UI sleeps 19:00-08:00 and at weekends (make ui-wake ENV=dev wakes
# it); the daemon and code location sleep after an hour without records, UI or runs.
schedule_timezone          = "Europe/Dublin"
webserver_wake_cron        = "cron(0 8 ? * MON-FRI *)"
webserver_sleep_cron       = "cron(0 19 * * ? *)"
dagster_idle_sleep_minutes = 60

# Who may open the Dagster UI (VPN / bastion ranges); empty = the VPC only.
webserver_allowed_cidrs = []

# Deployed pipeline image (tag in this env's ECR repository, printed by
# `make infra-image ENV=dev`). Empty: the Dagster services run 0 tasks.
image_tag = ""

alert_emails = []

# Ray on EKS for LAKE_ENGINE=ray (docs/scaling.md): off; true creates the cluster (workers scale from zero).
ray_enabled = false
