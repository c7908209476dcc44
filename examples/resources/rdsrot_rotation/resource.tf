terraform {
  required_providers {
    rdsrot = {
      source = "rdsrot/rdsrot"
    }
  }
}

variable "reports_master_secret_arn" {
  description = "ARN of the secret holding the reports database's admin credentials."
  type        = string
  default     = "arn:aws:secretsmanager:us-east-1:123456789012:secret:reports/db-master-AbCdEf"
}

variable "billing_rotation_lambda_arn" {
  description = "ARN of a rotation Lambda that already exists."
  type        = string
  default     = "arn:aws:lambda:us-east-1:123456789012:function:billing-db-rotation"
}

# Single user: the secret's own user changes its password at each rotation.
# Simple, but logins can fail for a few seconds while the password changes.
resource "rdsrot_rotation" "single_user" {
  secret_id     = "orders/db"
  rotation_type = "mysql_single_user"

  rotation_rules {
    automatically_after_days = 30
  }
}

# Multi user in a VPC: the Lambda alternates between two database users,
# using the master secret to manage them, so there is no downtime. The
# database secret's JSON must carry a "masterarn" key naming the master
# secret. With max_credential_age_days = 90 the provider rotates every
# 44 days: the previous user stays valid for one more interval, and each
# rotation may run up to a day late.
resource "rdsrot_rotation" "multi_user" {
  secret_id         = "reports/db"
  rotation_type     = "postgresql_multi_user"
  master_secret_arn = var.reports_master_secret_arn

  vpc_subnet_ids         = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
  vpc_security_group_ids = ["sg-0123456789abcdef0"]

  rotation_rules {
    max_credential_age_days = 90
    duration                = "3h"
  }

  timeouts {
    create = "20m"
    delete = "20m"
  }
}

# An existing rotation Lambda: the provider adds the invoke permission and
# turns rotation on, but never creates or deletes the function itself.
resource "rdsrot_rotation" "existing_lambda" {
  secret_id           = "billing/db"
  rotation_lambda_arn = var.billing_rotation_lambda_arn

  rotation_rules {
    schedule_expression = "cron(0 4 ? * SUN *)"
    duration            = "2h"
  }

  # Only run the Lambda's testSecret step now; the first real rotation
  # happens on schedule.
  rotate_immediately = false
}
