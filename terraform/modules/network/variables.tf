variable "name" {
  description = "Name prefix, \"<project>-<env>\"."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC (a /16 is carved into /20 subnets)."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones by name, e.g. [\"eu-west-1a\", \"eu-west-1b\"]. RDS Multi-AZ and the ALB need at least 2."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "Give 2 or 3 availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheaper) instead of one per AZ (survives an AZ outage)."
  type        = bool
}

variable "log_retention_days" {
  description = "Retention of the flow-log group."
  type        = number
}

variable "log_kms_key_arn" {
  description = "Platform KMS key for the flow-log group."
  type        = string
}
