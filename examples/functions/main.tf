# Provider functions need Terraform 1.8 or later. They are pure: they make
# no AWS call and need no credentials, so `terraform console` answers too.
terraform {
  required_version = ">= 1.8.0"

  required_providers {
    rdsrot = {
      source = "rdsrot/rdsrot"
    }
  }
}

provider "rdsrot" {
  region = "eu-west-1"
}

variable "rotation_type" {
  type    = string
  default = "postgresql_multi_user"
}

# Credentials at most 90 days old: alternating users rotate every 44 days.
output "rotation_interval_days" {
  value = provider::rdsrot::rotation_interval_days(90, "multi_user")
}

# The same, with the rotation_type the resource is given.
output "rotation_interval_days_for_type" {
  value = provider::rdsrot::rotation_interval_days(90, var.rotation_type)
}

# The template the resource deploys, in the partition of eu-west-1.
output "template_application_id" {
  value = provider::rdsrot::template_application_id(var.rotation_type, "eu-west-1")
}

# The same template in AWS China comes from that partition's repository.
output "template_application_id_china" {
  value = provider::rdsrot::template_application_id(var.rotation_type, "cn-northwest-1")
}
