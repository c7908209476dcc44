# Deliberately invalid: `terraform validate` must reject it and name
# automatically_after_days (the interval is 1 to 1000 days).
terraform {
  required_providers {
    rdsrot = {
      source = "rdsrot/rdsrot"
    }
  }
}

resource "rdsrot_rotation" "invalid" {
  secret_id     = "orders/db"
  rotation_type = "mysql_single_user"

  rotation_rules {
    automatically_after_days = 0
  }
}
