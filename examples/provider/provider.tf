terraform {
  required_providers {
    rdsrot = {
      source = "rdsrot/rdsrot"
    }
  }
}

# Credentials come from the AWS default chain: environment variables, the
# shared config and credentials files, SSO, web identity, container and
# instance roles. Nothing secret belongs in this block.
provider "rdsrot" {
  region      = "eu-west-1"
  profile     = "platform"
  max_retries = 5

  # Optional: work in another account through a role.
  assume_role {
    role_arn     = "arn:aws:iam::123456789012:role/rotation-admin"
    session_name = "terraform-rdsrot"
    external_id  = "rotation-pipeline"
  }
}

# A second configuration pointed at a local AWS emulator. Every service can
# be redirected here, or for all providers at once with AWS_ENDPOINT_URL and
# AWS_ENDPOINT_URL_<SERVICE>; the endpoints block wins over the variables.
provider "rdsrot" {
  alias  = "local"
  region = "us-east-1"

  endpoints {
    secretsmanager = "http://127.0.0.1:5000"
    lambda         = "http://127.0.0.1:5000"
    iam            = "http://127.0.0.1:5000"
    cloudformation = "http://127.0.0.1:5000"
    serverlessrepo = "http://127.0.0.1:5000"
    sts            = "http://127.0.0.1:5000"
  }
}
