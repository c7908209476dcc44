variable "region" {
  description = "AWS region of the secrets."
  type        = string
  default     = "us-east-1"
}

variable "database_secret_arn" {
  description = "ARN of the secret with the application's database credentials, in the RDS secret format (engine, host, port, dbname, username, password, masterarn)."
  type        = string
}

variable "master_secret_arn" {
  description = "ARN of the secret with credentials allowed to create and alter database users."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the rotation Lambda: ones that can reach the database."
  type        = set(string)
}

variable "security_group_ids" {
  description = "Security groups for the rotation Lambda; the database's group must let them in."
  type        = set(string)
}
