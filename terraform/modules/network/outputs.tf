output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "VPC CIDR block."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets (ECS tasks, RDS, internal ALB)."
  value       = aws_subnet.private[*].id
}

output "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint, for security-group egress rules."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}

output "interface_endpoint_services" {
  description = "AWS services with an interface endpoint in this VPC."
  value       = sort(keys(aws_vpc_endpoint.interface))
}
