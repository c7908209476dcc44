# A helper for emulator.tftest.hcl, not a module to use. It declares the
# emulator's address as a variable, so that `terraform test -var
# emulator_endpoint=...` can set it: with Terraform 1.11, a test file's
# provider block sees a -var value that no module declares as unknown. It
# also refuses any address that is not on this machine, so that the test
# never applies to a real AWS account.
terraform {
  required_providers {
    rdsrot = {
      source = "rdsrot/rdsrot"
    }
  }
}

variable "emulator_endpoint" {
  description = "URL of the local AWS emulator, e.g. http://127.0.0.1:5000."
  type        = string
  default     = "http://127.0.0.1:5000"

  validation {
    condition     = can(regex("^http://(127\\.0\\.0\\.1|localhost|\\[::1\\]):[0-9]+/?$", var.emulator_endpoint))
    error_message = "The emulator_endpoint must be a local emulator's http:// address on 127.0.0.1, localhost or [::1] with a port: these tests create and delete AWS resources."
  }
}

output "endpoint" {
  value = var.emulator_endpoint
}
