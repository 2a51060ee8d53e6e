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

variable "nat_gateways" {
  description = "none (the interface endpoints carry all AWS API traffic), one (shared by all AZs) or per_az (survives an AZ outage)."
  type        = string

  validation {
    condition     = contains(["none", "one", "per_az"], var.nat_gateways)
    error_message = "nat_gateways must be none, one or per_az."
  }
}

variable "interface_endpoint_az_count" {
  description = "AZs that carry the interface VPC endpoints (0: no interface endpoints; tasks then need a NAT gateway)."
  type        = number

  validation {
    condition     = var.interface_endpoint_az_count >= 0 && var.interface_endpoint_az_count <= length(var.availability_zones)
    error_message = "interface_endpoint_az_count must be between 0 and the number of availability zones."
  }

  validation {
    condition     = var.nat_gateways != "none" || var.interface_endpoint_az_count > 0
    error_message = "With nat_gateways = \"none\", the tasks reach ECR, Logs, ECS and the other APIs only through interface endpoints: set interface_endpoint_az_count >= 1."
  }
}

variable "log_retention_days" {
  description = "Retention of the flow-log group."
  type        = number
}

variable "log_kms_key_arn" {
  description = "Platform KMS key for the flow-log group."
  type        = string
}
