output "database_name" {
  description = "Glue database of the Delta tables."
  value       = aws_glue_catalog_database.this.name
}

output "table_names" {
  description = "Registered Delta tables."
  value       = sort(keys(aws_glue_catalog_table.delta))
}

output "athena_workgroup" {
  description = "Athena workgroup name."
  value       = aws_athena_workgroup.this.name
}

output "analyst_policy_arn" {
  description = "Managed policy for Athena users of this lake."
  value       = aws_iam_policy.analyst.arn
}
