# Quickstart: rotate a PostgreSQL secret with the multi-user strategy, with
# the rotation Lambda inside the database's VPC, so that no credential is
# ever older than 90 days.
#
#   cp terraform.tfvars.example terraform.tfvars   # then fill in your values
#   terraform init && terraform apply

terraform {
  required_providers {
    rdsrot = {
      source = "rdsrot/rdsrot"
    }
  }
}

provider "rdsrot" {
  region = var.region
}

resource "rdsrot_rotation" "app_db" {
  secret_id         = var.database_secret_arn
  rotation_type     = "postgresql_multi_user"
  master_secret_arn = var.master_secret_arn

  # The Lambda runs in these subnets with these security groups: they must
  # reach the database and a Secrets Manager endpoint (NAT or VPC endpoint).
  vpc_subnet_ids         = var.subnet_ids
  vpc_security_group_ids = var.security_group_ids

  rotation_rules {
    # Multi-user keeps the previous user valid for one more interval, and a
    # rotation may run a day late, so the provider rotates every 44 days to
    # honour a 90-day limit.
    max_credential_age_days = 90
  }
}
