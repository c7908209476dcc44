# Applies the module against the local AWS emulator (tests/support/emulator.py
# in this repository) and checks what the provider really did. Needs
# Terraform 1.7 or later, the emulator, and two secrets in it: a PostgreSQL
# database secret whose JSON carries `masterarn`, and that master secret.
#
#   terraform get
#   terraform test -filter=tests/emulator.tftest.hcl \
#     -var emulator_endpoint=http://127.0.0.1:5000 \
#     -var secret_id=<database secret ARN> -var master_secret_arn=<master secret ARN>
#
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (any value: the
# emulator accepts every key). Terraform destroys what the runs made when
# the file ends, whether they passed or not.

# Every service goes to the emulator, whatever AWS_ENDPOINT_URL says: the
# endpoints block wins over the environment.
provider "rdsrot" {
  region = "us-east-1"

  endpoints {
    secretsmanager = run.local_emulator.endpoint
    lambda         = run.local_emulator.endpoint
    iam            = run.local_emulator.endpoint
    cloudformation = run.local_emulator.endpoint
    serverlessrepo = run.local_emulator.endpoint
    sts            = run.local_emulator.endpoint
  }
}

variables {
  rotation_type           = "postgresql_multi_user"
  max_credential_age_days = 90
  vpc_subnet_ids          = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
  vpc_security_group_ids  = ["sg-0123456789abcdef0"]
}

# Checks the emulator's address before the provider is configured with it.
run "local_emulator" {
  module {
    source = "./tests/emulator"
  }
}

run "multi_user_rotation_is_on" {
  assert {
    condition     = output.rotation_enabled == true
    error_message = "Rotation is not on after apply."
  }

  assert {
    condition     = output.rotation_interval_days == 44
    error_message = "A 90-day limit with alternating users must rotate every 44 days, not ${output.rotation_interval_days}."
  }

  assert {
    condition     = output.secret_arn == var.secret_id
    error_message = "secret_arn is ${output.secret_arn}, not the secret given."
  }

  assert {
    condition     = can(regex("^arn:aws:lambda:us-east-1:[0-9]{12}:function:rdsrot-", output.rotation_lambda_arn))
    error_message = "The template's Lambda has an unexpected ARN: ${output.rotation_lambda_arn}."
  }

  assert {
    condition     = can(regex("^arn:aws:iam::[0-9]{12}:role/", output.rotation_lambda_role_arn))
    error_message = "The Lambda's role has an unexpected ARN: ${output.rotation_lambda_role_arn}."
  }

  assert {
    condition     = can(regex("^arn:aws:cloudformation:us-east-1:[0-9]{12}:stack/serverlessrepo-", output.stack_id))
    error_message = "The template was not deployed as a serverlessrepo- stack: ${output.stack_id}."
  }

  assert {
    condition     = startswith(output.permission_statement_id, "rdsrot-")
    error_message = "The invoke permission is not the provider's own: ${output.permission_statement_id}."
  }
}

# A shorter limit changes the schedule in place: same stack, same Lambda.
run "shorter_limit_updates_in_place" {
  variables {
    max_credential_age_days = 30
  }

  assert {
    condition     = output.rotation_interval_days == 14
    error_message = "A 30-day limit with alternating users must rotate every 14 days, not ${output.rotation_interval_days}."
  }

  assert {
    condition     = output.stack_id == run.multi_user_rotation_is_on.stack_id
    error_message = "Changing the schedule replaced the stack."
  }

  assert {
    condition     = output.rotation_lambda_arn == run.multi_user_rotation_is_on.rotation_lambda_arn
    error_message = "Changing the schedule switched the Lambda."
  }
}

run "disabled_keeps_the_lambda" {
  variables {
    max_credential_age_days = 30
    enabled                 = false
  }

  assert {
    condition     = output.rotation_enabled == false
    error_message = "enabled = false left rotation on."
  }

  assert {
    condition     = output.stack_id == run.multi_user_rotation_is_on.stack_id
    error_message = "Turning rotation off replaced the stack."
  }
}

# The module's own input check stops a bad limit at plan, before any AWS call.
run "rejects_a_one_day_limit" {
  command = plan

  variables {
    max_credential_age_days = 1
  }

  expect_failures = [var.max_credential_age_days]
}
