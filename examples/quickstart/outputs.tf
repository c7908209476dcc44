output "secret_arn" {
  description = "Full ARN of the rotated secret."
  value       = rdsrot_rotation.app_db.secret_arn
}

output "rotation_lambda_arn" {
  description = "The rotation Lambda the template deployed."
  value       = rdsrot_rotation.app_db.rotation_lambda_arn
}

output "rotation_lambda_role_arn" {
  description = "The Lambda's execution role, e.g. for a key policy or a secret's resource policy."
  value       = rdsrot_rotation.app_db.rotation_lambda_role_arn
}

output "stack_id" {
  description = "The CloudFormation stack holding the Lambda and its role."
  value       = rdsrot_rotation.app_db.stack_id
}
