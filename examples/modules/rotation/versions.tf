terraform {
  # The module itself works with every client the provider supports; its
  # tests under tests/ need Terraform 1.7 or later (`mock_provider`).
  required_version = ">= 1.0"

  required_providers {
    rdsrot = {
      source = "rdsrot/rdsrot"
    }
  }
}
