output "secret_arn" {
  description = "Full ARN of the rotated secret."
  value       = rdsrot_rotation.this.secret_arn
}

output "rotation_enabled" {
  description = "Whether Secrets Manager rotates the secret."
  value       = rdsrot_rotation.this.enabled
}

output "rotation_interval_days" {
  description = "Days between rotations, as the provider derived them from max_credential_age_days."
  value       = rdsrot_rotation.this.rotation_rules[0].automatically_after_days
}

output "rotation_lambda_arn" {
  description = "The rotation Lambda: the template's, or the one given."
  value       = rdsrot_rotation.this.rotation_lambda_arn
}

output "rotation_lambda_role_arn" {
  description = "The Lambda's execution role, e.g. for a KMS key policy."
  value       = rdsrot_rotation.this.rotation_lambda_role_arn
}

output "stack_id" {
  description = "The CloudFormation stack holding the template's Lambda and role; null with an existing Lambda."
  value       = rdsrot_rotation.this.stack_id
}

output "permission_statement_id" {
  description = "Sid of the invoke permission that lets Secrets Manager call the Lambda for this secret."
  value       = rdsrot_rotation.this.permission_statement_id
}
