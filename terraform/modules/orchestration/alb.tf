# The Dagster UI has no authentication of its own, so it is reachable only through
# an internal ALB (private subnets, no public address) from the CIDRs in
# webserver_allowed_cidrs (default: the VPC; add your VPN / bastion range).
# With webserver_certificate_arn set, the ALB serves HTTPS and redirects HTTP.

locals {
  https    = var.webserver_certificate_arn != null
  alb_name = substr("${var.name}-dagster", 0, 32)
  tg_name  = substr("${var.name}-dagster-web", 0, 32)
}

resource "aws_lb" "webserver" {
  #checkov:skip=CKV2_AWS_20:HTTP redirects to HTTPS whenever webserver_certificate_arn is set (aws_lb_listener.http); without a certificate the internal-only ALB serves HTTP inside the VPC.
  #checkov:skip=CKV2_AWS_28:Internal-only ALB (no internet route, ingress limited to allowed private CIDRs); a WAF web ACL adds cost without an exposure it would filter.
  name                       = local.alb_name
  internal                   = true
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.private_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection

  access_logs {
    bucket  = var.access_log_bucket_name
    prefix  = var.alb_log_prefix
    enabled = true
  }
}

resource "aws_lb_target_group" "webserver" {
  #checkov:skip=CKV_AWS_378:TLS terminates at the internal ALB; the hop to the webserver task stays inside private subnets and security groups, and the webserver speaks only HTTP.
  name        = local.tg_name
  port        = local.webserver_port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  deregistration_delay = 30

  health_check {
    enabled             = true
    path                = "/server_info"
    matcher             = "200"
    interval            = 30
    timeout             = 10
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.webserver.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.webserver_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.webserver.arn
  }
}

resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2:Redirects to HTTPS whenever webserver_certificate_arn is set; without a certificate this internal-only listener serves the UI over HTTP inside the VPC (see docs/deployment.md).
  #checkov:skip=CKV_AWS_103:Same listener as above: TLS policy applies to the HTTPS listener, which is created when a certificate is configured.
  load_balancer_arn = aws_lb.webserver.arn
  port              = 80
  protocol          = "HTTP"

  dynamic "default_action" {
    for_each = local.https ? [1] : []
    content {
      type = "redirect"

      redirect {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }

  dynamic "default_action" {
    for_each = local.https ? [] : [1]
    content {
      type             = "forward"
      target_group_arn = aws_lb_target_group.webserver.arn
    }
  }
}
