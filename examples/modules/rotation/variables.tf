variable "secret_id" {
  description = "ARN or name of the database secret to rotate (RDS secret format: engine, host, username, password, and masterarn for the multi-user strategies)."
  type        = string
}

variable "rotation_type" {
  description = "Rotation template to deploy: <engine>_single_user or <engine>_multi_user for mysql, postgresql, mariadb, oracle, sqlserver, db2, redshift or mongodb, or generic. Leave null to use rotation_lambda_arn."
  type        = string
  default     = null

  validation {
    # A conditional rather than `||`: Terraform evaluates both sides of
    # `||`, and regex() refuses a null value.
    condition = var.rotation_type == null ? true : can(regex(
      "^(generic|(mysql|postgresql|mariadb|oracle|sqlserver|db2|redshift|mongodb)_(single|multi)_user)$",
      var.rotation_type,
    ))
    error_message = "The rotation_type must be <engine>_single_user or <engine>_multi_user for one of mysql, postgresql, mariadb, oracle, sqlserver, db2, redshift and mongodb, or generic; or null with rotation_lambda_arn."
  }
}

variable "rotation_lambda_arn" {
  description = "ARN of a rotation Lambda that already exists, instead of a template. Leave null with rotation_type."
  type        = string
  default     = null
}

variable "master_secret_arn" {
  description = "ARN of the master secret; required with the multi-user rotation types and db2_single_user."
  type        = string
  default     = null
}

variable "max_credential_age_days" {
  description = "The longest any credential may stay valid. The provider rotates every max_credential_age_days / 2 - 1 days (rounded down) when users alternate (the previous user stays valid one more interval, and a rotation may run a day late) and one day sooner than the limit otherwise."
  type        = number
  default     = 90

  validation {
    condition     = var.max_credential_age_days >= 2 && floor(var.max_credential_age_days) == var.max_credential_age_days
    error_message = "The max_credential_age_days must be a whole number of days, at least 2: the rotation interval it gives must be at least one day."
  }
}

variable "rotation_window" {
  description = "Length of the rotation window, Nh with N from 1 to 24; null for Secrets Manager's default window."
  type        = string
  default     = null
}

variable "vpc_subnet_ids" {
  description = "Subnets for the rotation Lambda, which must reach the database and a Secrets Manager endpoint. Empty: the Lambda runs outside any VPC."
  type        = set(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups for the rotation Lambda; set together with vpc_subnet_ids."
  type        = set(string)
  default     = []
}

variable "rotate_immediately" {
  description = "Whether Secrets Manager rotates at once when rotation is turned on; false runs only the Lambda's testSecret step."
  type        = bool
  default     = true
}

variable "enabled" {
  description = "false keeps the Lambda, its permission and policy in place but cancels rotation."
  type        = bool
  default     = true
}
