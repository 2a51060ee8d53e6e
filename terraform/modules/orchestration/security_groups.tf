# One security group per component; ingress only from the component that calls it.
# Nothing accepts traffic from 0.0.0.0/0. Egress to 0.0.0.0/0 is HTTPS only (AWS
# APIs and ECR through the NAT gateway; S3 through the gateway endpoint).
# Run tasks are started by the EcsRunLauncher with the network configuration of
# the daemon task (use_current_ecs_task_config), so they share the daemon group.

locals {
  alb_ports               = var.webserver_certificate_arn == null ? [80] : [80, 443]
  alb_ingress             = { for pair in setproduct(local.webserver_allowed_cidrs, local.alb_ports) : "${pair[0]}-${pair[1]}" => { cidr = pair[0], port = pair[1] } }
  postgres                = 5432
  https_egress            = { webserver = aws_security_group.webserver.id, daemon = aws_security_group.daemon.id, code_location = aws_security_group.code_location.id }
  db_clients              = local.https_egress
  webserver_allowed_cidrs = length(var.webserver_allowed_cidrs) > 0 ? var.webserver_allowed_cidrs : [var.vpc_cidr]
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-dagster-alb"
  description = "Internal ALB in front of the Dagster webserver"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "webserver" {
  name        = "${var.name}-dagster-webserver"
  description = "Dagster webserver tasks"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "daemon" {
  name        = "${var.name}-dagster-daemon"
  description = "Dagster daemon tasks and the run tasks it launches"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "code_location" {
  name        = "${var.name}-dagster-code-location"
  description = "Dagster code location (gRPC server)"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "db" {
  name        = "${var.name}-dagster-db"
  description = "Dagster Postgres (RDS)"
  vpc_id      = var.vpc_id
}

# ALB: from the allowed CIDRs (default: the VPC) to the webserver only.
resource "aws_vpc_security_group_ingress_rule" "alb_from_clients" {
  for_each = local.alb_ingress

  security_group_id = aws_security_group.alb.id
  description       = "Dagster UI from ${each.value.cidr}"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
}

resource "aws_vpc_security_group_egress_rule" "alb_to_webserver" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Forward to webserver tasks"
  referenced_security_group_id = aws_security_group.webserver.id
  ip_protocol                  = "tcp"
  from_port                    = local.webserver_port
  to_port                      = local.webserver_port
}

resource "aws_vpc_security_group_ingress_rule" "webserver_from_alb" {
  security_group_id            = aws_security_group.webserver.id
  description                  = "HTTP from the internal ALB"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.webserver_port
  to_port                      = local.webserver_port
}

# Code location: gRPC from webserver and daemon only.
resource "aws_vpc_security_group_ingress_rule" "code_location_from_webserver" {
  security_group_id            = aws_security_group.code_location.id
  description                  = "gRPC from the webserver"
  referenced_security_group_id = aws_security_group.webserver.id
  ip_protocol                  = "tcp"
  from_port                    = local.grpc_port
  to_port                      = local.grpc_port
}

resource "aws_vpc_security_group_ingress_rule" "code_location_from_daemon" {
  security_group_id            = aws_security_group.code_location.id
  description                  = "gRPC from the daemon"
  referenced_security_group_id = aws_security_group.daemon.id
  ip_protocol                  = "tcp"
  from_port                    = local.grpc_port
  to_port                      = local.grpc_port
}

resource "aws_vpc_security_group_egress_rule" "grpc_to_code_location" {
  for_each = {
    webserver = aws_security_group.webserver.id
    daemon    = aws_security_group.daemon.id
  }

  security_group_id            = each.value
  description                  = "gRPC to the code location"
  referenced_security_group_id = aws_security_group.code_location.id
  ip_protocol                  = "tcp"
  from_port                    = local.grpc_port
  to_port                      = local.grpc_port
}

# Database: Postgres from the Dagster components only.
resource "aws_vpc_security_group_ingress_rule" "db_from_clients" {
  for_each = local.db_clients

  security_group_id            = aws_security_group.db.id
  description                  = "Postgres from ${each.key}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = local.postgres
  to_port                      = local.postgres
}

resource "aws_vpc_security_group_egress_rule" "postgres_to_db" {
  for_each = local.db_clients

  security_group_id            = each.value
  description                  = "Postgres to Dagster storage"
  referenced_security_group_id = aws_security_group.db.id
  ip_protocol                  = "tcp"
  from_port                    = local.postgres
  to_port                      = local.postgres
}

# HTTPS to AWS APIs (S3, ECR, ECS, SNS, Secrets Manager, Logs).
resource "aws_vpc_security_group_egress_rule" "https_to_aws_apis" {
  for_each = local.https_egress

  security_group_id = each.value
  description       = "HTTPS to AWS APIs and ECR"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}
