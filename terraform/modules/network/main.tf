# VPC for one environment: private subnets for every workload (ECS tasks, the
# database, the internal ALB), public subnets only for NAT gateways, an S3 gateway
# endpoint so lake/raw traffic (and ECR image layers) bypasses the NAT, interface
# endpoints for the other AWS APIs the tasks call (so an environment can run with
# no NAT gateway at all), VPC flow logs, and a default security group with no rules.
#
# nat_gateways = "none" | "one" | "per_az"; interface_endpoint_az_count = how many
# AZs carry the interface endpoints (0: none). The trade-off, with prices, is in
# docs/deployment.md ("Network: NAT gateways or interface endpoints").

# The AZs are pinned by name in tfvars, so the set never grows on its own when
# AWS adds a zone; the data source only proves they exist and are available.
data "aws_availability_zones" "pinned" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zones)
      error_message = "Some of ${join(", ", var.availability_zones)} do not exist or are not available in this region."
    }
  }
}

locals {
  az_count = length(var.availability_zones)
  azs      = sort(data.aws_availability_zones.pinned.names)
  # /16 -> /20 subnets: private ones first, public ones after them.
  private_cidrs = [for i in range(local.az_count) : cidrsubnet(var.vpc_cidr, 4, i)]
  public_cidrs  = [for i in range(local.az_count) : cidrsubnet(var.vpc_cidr, 4, i + 8)]
  nat_count     = { none = 0, one = 1, per_az = local.az_count }[var.nat_gateways]

  # Every AWS API an ECS task calls, besides S3 (gateway endpoint above):
  #   ecr.api, ecr.dkr   image pull (manifests; layers come from S3)
  #   logs               the awslogs driver; the run launcher reads a failed run's logs
  #   secretsmanager     the DB password, injected by the execution role
  #   ecs, ec2           EcsRunLauncher: RunTask/DescribeTasks, and the daemon's own ENI
  #                      (use_current_ecs_task_config reads its subnets and security groups)
  #   sns                pipeline alerts (lake_pipeline/ops/alerts.py)
  #   sts                regional STS for SDK credential and identity calls
  #   kinesis-streams, firehose   producers and tools inside the VPC (lake produce)
  # tests/terraform/test_tf_cost.py checks this list against the code's boto3 clients.
  interface_endpoint_services = [
    "ecr.api", "ecr.dkr", "logs", "secretsmanager", "ecs", "ec2", "sns", "sts", "kinesis-streams", "firehose",
  ]
  interface_endpoints = var.interface_endpoint_az_count > 0 ? toset(local.interface_endpoint_services) : toset([])
  endpoint_subnet_ids = slice(aws_subnet.private[*].id, 0, var.interface_endpoint_az_count)
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name = var.name
  }
}

resource "aws_default_security_group" "this" {
  # No ingress/egress blocks: the default security group allows nothing.
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${var.name}-default-deny"
  }
}

resource "aws_subnet" "private" {
  count = local.az_count

  vpc_id                  = aws_vpc.this.id
  cidr_block              = local.private_cidrs[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = {
    Name = "${var.name}-private-${local.azs[count.index]}"
    Tier = "private"
  }
}

resource "aws_subnet" "public" {
  count = local.az_count

  vpc_id                  = aws_vpc.this.id
  cidr_block              = local.public_cidrs[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = {
    Name = "${var.name}-public-${local.azs[count.index]}"
    Tier = "public"
  }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = {
    Name = var.name
  }
}

resource "aws_eip" "nat" {
  count  = local.nat_count
  domain = "vpc"

  tags = {
    Name = "${var.name}-nat-${count.index}"
  }
}

resource "aws_nat_gateway" "this" {
  count = local.nat_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = {
    Name = "${var.name}-${count.index}"
  }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${var.name}-public"
  }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = local.az_count

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  count  = local.az_count
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${var.name}-private-${local.azs[count.index]}"
  }
}

resource "aws_route" "private_nat" {
  count = local.nat_count > 0 ? local.az_count : 0

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.nat_gateways == "per_az" ? count.index : 0].id
}

resource "aws_route_table_association" "private" {
  count = local.az_count

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

data "aws_region" "current" {}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id

  tags = {
    Name = "${var.name}-s3"
  }
}

# --- Interface endpoints ---------------------------------------------------------
# Private DNS makes the regional API names (ecr.<region>.amazonaws.com, ...) resolve
# to the endpoints' addresses in the VPC, so the SDKs need no configuration. Each
# endpoint bills per AZ-hour, so they live in interface_endpoint_az_count AZs only;
# tasks in the other AZs reach them across AZs.

resource "aws_security_group" "endpoints" {
  count = length(local.interface_endpoints) > 0 ? 1 : 0

  name        = "${var.name}-vpc-endpoints"
  description = "Interface VPC endpoints: HTTPS from inside the VPC"
  vpc_id      = aws_vpc.this.id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_vpc" {
  count = length(local.interface_endpoints) > 0 ? 1 : 0

  security_group_id = aws_security_group.endpoints[0].id
  description       = "HTTPS to the AWS API endpoints from the VPC"
  cidr_ipv4         = aws_vpc.this.cidr_block
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = local.endpoint_subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]

  tags = {
    Name = "${var.name}-${each.key}"
  }
}

# --- Flow logs --------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/${var.name}/vpc-flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  name               = "${var.name}-vpc-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    sid = "WriteFlowLogsToOneLogGroup"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = [
      aws_cloudwatch_log_group.flow_logs.arn,
      "${aws_cloudwatch_log_group.flow_logs.arn}:*",
    ]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs.json
}

resource "aws_flow_log" "this" {
  vpc_id                   = aws_vpc.this.id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 600
}
