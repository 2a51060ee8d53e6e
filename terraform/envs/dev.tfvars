# dev: one NAT gateway, single-AZ database, short retention, small tasks.
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
vpc_cidr           = "10.40.0.0/16"
availability_zones = ["eu-west-1a", "eu-west-1b"]
single_nat_gateway = true

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
run_cpu                   = 1024
run_memory                = 4096
run_ephemeral_storage_gib = 30
db_instance_class         = "db.t4g.micro"
db_multi_az               = false
db_deletion_protection    = false
db_skip_final_snapshot    = true
db_backup_retention_days  = 1
alb_deletion_protection   = false

# Who may open the Dagster UI (VPN / bastion ranges); empty = the VPC only.
webserver_allowed_cidrs = []

# Deployed pipeline image (tag in this env's ECR repository, printed by
# `make infra-image ENV=dev`). Empty: the Dagster services run 0 tasks.
image_tag = ""

alert_emails = []
