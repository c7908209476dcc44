# A `check` block (Terraform 1.5 and later) that turns the rotation status
# into a warning on every plan and apply, and a failed job in CI with
# examples/ci/fail-on-checks.sh.

terraform {
  required_version = ">= 1.5"
  required_providers {
    rdsrot = {
      source = "rdsrot/rdsrot"
    }
  }
}

variable "secret_ids" {
  description = "Names or ARNs of the database secrets whose rotation must be healthy."
  type        = set(string)
  default     = ["orders/db", "reports/db"]
}

provider "rdsrot" {
  region = "us-east-1"
}

data "rdsrot_rotation_status" "db" {
  for_each  = var.secret_ids
  secret_id = each.value
}

check "rotations_are_healthy" {
  assert {
    condition = alltrue([
      for s in data.rdsrot_rotation_status.db : length(s.problems) == 0
    ])
    error_message = join("\n", flatten([
      for id, s in data.rdsrot_rotation_status.db : [for p in s.problems : "${id}: ${p}"]
    ]))
  }
}
