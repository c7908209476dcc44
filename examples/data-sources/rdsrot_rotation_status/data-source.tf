# How the rotation of one database secret is doing. Reads only the secret's
# metadata and version list (never its value) and the rotation Lambda's
# configuration and resource policy.
data "rdsrot_rotation_status" "orders" {
  secret_id = "orders/db"

  # A version that holds AWSPENDING longer than this counts as a stuck
  # rotation (default "2h").
  stuck_after = "1h"
}

output "orders_rotation_problems" {
  description = "What is wrong with the rotation of orders/db; empty when healthy."
  value       = data.rdsrot_rotation_status.orders.problems
}

output "orders_rotation_in_progress" {
  value = data.rdsrot_rotation_status.orders.rotation_in_progress
}

output "orders_current_version" {
  value = {
    id      = data.rdsrot_rotation_status.orders.current_version_id
    created = data.rdsrot_rotation_status.orders.current_version_created_date
  }
}
