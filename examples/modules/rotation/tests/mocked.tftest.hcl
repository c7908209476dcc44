# Checks the module's wiring with no AWS at all: `mock_provider` answers
# plan and apply with the values below (Terraform 1.7 or later), while the
# real provider is still loaded for its schema and checks every
# configuration as `terraform validate` does.
#
#   terraform test -filter=tests/mocked.tftest.hcl
#
# What a mock cannot show is the provider's own work, such as the interval
# it derives from max_credential_age_days: emulator.tftest.hcl checks that.

mock_provider "rdsrot" {
  mock_resource "rdsrot_rotation" {
    # Values for the computed attributes after apply. A nested block's
    # defaults are written as one object, not a list.
    defaults = {
      secret_arn               = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders/db-AbCdEf"
      rotation_lambda_arn      = "arn:aws:lambda:us-east-1:123456789012:function:mocked-rotator"
      rotation_lambda_role_arn = "arn:aws:iam::123456789012:role/mocked-rotator-role"
      stack_id                 = "arn:aws:cloudformation:us-east-1:123456789012:stack/serverlessrepo-mocked/00000000-0000-0000-0000-000000000000"
      permission_statement_id  = "rdsrot-mocked"
      enabled                  = true
      rotation_rules = {
        automatically_after_days = 45
      }
    }
  }
}

variables {
  secret_id               = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders/db-AbCdEf"
  rotation_type           = "postgresql_multi_user"
  master_secret_arn       = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders/db-master-GhIjKl"
  max_credential_age_days = 90
  rotation_window         = "3h"
  vpc_subnet_ids          = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
  vpc_security_group_ids  = ["sg-0123456789abcdef0"]
}

run "inputs_reach_the_resource" {
  command = plan

  assert {
    condition     = rdsrot_rotation.this.secret_id == var.secret_id
    error_message = "secret_id does not reach the resource."
  }

  assert {
    condition     = rdsrot_rotation.this.rotation_type == "postgresql_multi_user"
    error_message = "rotation_type does not reach the resource."
  }

  assert {
    condition     = rdsrot_rotation.this.master_secret_arn == var.master_secret_arn
    error_message = "master_secret_arn does not reach the resource."
  }

  assert {
    condition     = rdsrot_rotation.this.rotation_rules[0].max_credential_age_days == 90 && rdsrot_rotation.this.rotation_rules[0].duration == "3h"
    error_message = "The limit or the window does not reach rotation_rules."
  }

  assert {
    condition     = rdsrot_rotation.this.vpc_subnet_ids == toset(["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]) && rdsrot_rotation.this.vpc_security_group_ids == toset(["sg-0123456789abcdef0"])
    error_message = "The VPC placement does not reach the resource."
  }

  assert {
    condition     = rdsrot_rotation.this.rotate_immediately == true && rdsrot_rotation.this.enabled == true
    error_message = "The module must default to rotating at once and to rotation on."
  }
}

run "no_vpc_means_no_placement" {
  command = plan

  variables {
    vpc_subnet_ids         = []
    vpc_security_group_ids = []
  }

  assert {
    condition     = rdsrot_rotation.this.vpc_subnet_ids == null && rdsrot_rotation.this.vpc_security_group_ids == null
    error_message = "Empty VPC inputs must leave the placement unset (null), not empty sets."
  }
}

run "outputs_pass_through" {
  assert {
    condition     = output.rotation_lambda_arn == "arn:aws:lambda:us-east-1:123456789012:function:mocked-rotator"
    error_message = "rotation_lambda_arn is ${output.rotation_lambda_arn}, not the resource's."
  }

  assert {
    condition     = output.rotation_lambda_role_arn == "arn:aws:iam::123456789012:role/mocked-rotator-role"
    error_message = "rotation_lambda_role_arn is ${output.rotation_lambda_role_arn}, not the resource's."
  }

  assert {
    condition     = output.stack_id == "arn:aws:cloudformation:us-east-1:123456789012:stack/serverlessrepo-mocked/00000000-0000-0000-0000-000000000000"
    error_message = "stack_id is ${output.stack_id}, not the resource's."
  }

  assert {
    condition     = output.secret_arn == var.secret_id && output.permission_statement_id == "rdsrot-mocked"
    error_message = "secret_arn or permission_statement_id is not the resource's."
  }

  assert {
    condition     = output.rotation_enabled == true && output.rotation_interval_days == 45
    error_message = "rotation_enabled or rotation_interval_days is not the resource's."
  }
}

run "existing_lambda_instead_of_a_template" {
  variables {
    rotation_type       = null
    master_secret_arn   = null
    rotation_lambda_arn = "arn:aws:lambda:us-east-1:123456789012:function:billing-rotator"
    rotate_immediately  = false
  }

  assert {
    condition     = rdsrot_rotation.this.rotation_type == null && output.rotation_lambda_arn == "arn:aws:lambda:us-east-1:123456789012:function:billing-rotator"
    error_message = "The given Lambda must be the rotation Lambda, with no template."
  }

  assert {
    condition     = rdsrot_rotation.this.rotate_immediately == false
    error_message = "rotate_immediately does not reach the resource."
  }
}

run "rejects_an_unknown_rotation_type" {
  command = plan

  variables {
    rotation_type = "cassandra_single_user"
  }

  expect_failures = [var.rotation_type]
}

run "rejects_a_fractional_limit" {
  command = plan

  variables {
    max_credential_age_days = 45.5
  }

  expect_failures = [var.max_credential_age_days]
}
