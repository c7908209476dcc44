#!/usr/bin/env bash
# `make demo`: the whole rotation workflow on this machine, no AWS account.
#
# Starts a local AWS emulator and a local PostgreSQL on 127.0.0.1, makes an
# application user and a master user in it and a database secret and a
# master secret for them, applies examples/quickstart (PostgreSQL,
# alternating users, Lambda in a VPC, max_credential_age_days = 90), whose
# apply waits for the first rotation, then shows with psql that the secret
# now names the other user with a new password, rotates once more, reads the
# rotation status data source, removes the invoke permission behind
# Terraform's back, shows `terraform plan -detailed-exitcode` catching it,
# repairs it, destroys, and stops the emulator and the database whatever
# happens. No password is ever printed: only a hash prefix of each.
#
# Expects `make venv` and `cargo build` to have run (`make demo` does both).
# TERRAFORM=/path/to/terraform picks another client than the venv's 1.0.3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

step_number=0
step_title="getting ready"
step() {
    step_number=$((step_number + 1))
    step_title=$*
    printf '\n\033[1m== %d. %s\033[0m\n' "$step_number" "$*"
}
say() { printf '   %s\n' "$*"; }
fail() { printf '\n\033[31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

python=$repo/.venv/bin/python
terraform=${TERRAFORM:-$repo/.venv/bin/terraform}
provider=$repo/target/debug/terraform-provider-rdsrot
[ -x "$python" ] || fail "$python is missing: run \`make venv\` (or just \`make demo\`)"
[ -x "$terraform" ] || fail "$terraform is missing: run \`make venv\`"
[ -x "$provider" ] || fail "$provider is missing: run \`cargo build\`"

work=$(mktemp -d "${TMPDIR:-/tmp}/rdsrot-demo.XXXXXX")
emulator_pid=
database_pid=
# Each stop also waits for a helper that a Ctrl-C (sent to the whole
# process group) already made stop itself.
stop_database() {
    if [ -n "$database_pid" ]; then
        # databases.py stops the server and removes its directory on SIGTERM.
        kill "$database_pid" 2>/dev/null || true
        wait "$database_pid" 2>/dev/null || true
        say "PostgreSQL stopped; its directory removed."
    fi
    database_pid=
    # It held the admin password.
    rm -f "$work/database.json"
}
stop_emulator() {
    if [ -n "$emulator_pid" ]; then
        kill "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
        say "emulator stopped."
    fi
    emulator_pid=
}
finish() {
    status=$?
    # A second Ctrl-C must not cut the cleanup short.
    trap '' INT TERM
    if [ -n "$emulator_pid$database_pid" ]; then
        printf '\n\033[1m== Stopping the local AWS emulator and PostgreSQL\033[0m\n'
        stop_database
        stop_emulator
    fi
    if [ "$status" -eq 130 ]; then
        printf '\n\033[31mdemo interrupted during step %d (%s); everything it started is stopped\033[0m\n' \
            "$step_number" "$step_title" >&2
        rm -rf "$work"
    elif [ "$status" -ne 0 ]; then
        printf '\n\033[31mdemo failed during step %d (%s)\033[0m\n' "$step_number" "$step_title" >&2
        say "(logs kept in $work: emulator.log, database.log)"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

step "Starting the local AWS emulator (moto, plus a stand-in for the Serverless Application Repository) on 127.0.0.1"
"$python" tests/support/emulator.py --port 0 >"$work/emulator.out" 2>"$work/emulator.log" &
emulator_pid=$!
endpoint=
for _ in $(seq 1 300); do
    endpoint=$(sed -n 's/^rdsrot-emulator listening on //p' "$work/emulator.out")
    [ -n "$endpoint" ] && break
    kill -0 "$emulator_pid" 2>/dev/null || fail "the emulator exited: $(tail -n 5 "$work/emulator.log")"
    sleep 0.1
done
[ -n "$endpoint" ] || fail "the emulator did not start within 30 s"
say "listening on $endpoint"

# Everything below talks to the emulator only, with dummy credentials.
export AWS_ENDPOINT_URL=$endpoint AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_CLI_CONFIG_FILE=$work/terraform.rc
cat >"$TF_CLI_CONFIG_FILE" <<EOF
provider_installation {
  dev_overrides {
    "registry.terraform.io/rdsrot/rdsrot" = "$(dirname "$provider")"
  }
  direct {}
}
EOF

step "Starting a local PostgreSQL on 127.0.0.1 (tests/support/databases.py: a fresh server in a temporary directory)"
"$python" tests/support/databases.py --only postgres >"$work/database.json" 2>"$work/database.log" &
database_pid=$!
for _ in $(seq 1 600); do
    [ -s "$work/database.json" ] && break
    kill -0 "$database_pid" 2>/dev/null || fail "PostgreSQL did not start: $(tail -n 5 "$work/database.log")"
    sleep 0.1
done
[ -s "$work/database.json" ] || fail "PostgreSQL did not start within 60 s"
# The line holds the admin password: only demo_aws.py reads it.
database_port=$("$python" -c 'import json, sys; print(json.load(sys.stdin)["postgres"]["port"])' <"$work/database.json")
say "listening on 127.0.0.1:$database_port"

step "Creating an application user and a master user in PostgreSQL, and a secret for each in RDS format"
eval "$("$python" scripts/demo_aws.py create-secrets "$work/database.json")"
say "database secret: $DATABASE_SECRET_ARN"
say "master secret:   $MASTER_SECRET_ARN"
say "(engine postgres, host 127.0.0.1, port $database_port, dbname postgres; the database secret names"
say " the master secret in masterarn. The passwords went straight into PostgreSQL and the secrets:"
say " none is ever printed, only the first hex digits of its SHA-256)"
"$python" scripts/demo_aws.py versions "$DATABASE_SECRET_ARN"

step "Applying examples/quickstart: PostgreSQL, alternating users, Lambda in a VPC, credentials never older than 90 days"
cp examples/quickstart/*.tf "$work/"
cat >"$work/terraform.tfvars" <<TFVARS
region              = "us-east-1"
database_secret_arn = "$DATABASE_SECRET_ARN"
master_secret_arn   = "$MASTER_SECRET_ARN"
subnet_ids          = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
security_group_ids  = ["sg-0123456789abcdef0"]
TFVARS
say "with $("$terraform" version | head -n1) and the provider built at $provider"
say "(dev_overrides load the local build, so there is no \`terraform init\`)"
say "(enabling rotation rotates at once: the apply waits for that first rotation to finish)"
(cd "$work" && "$terraform" apply -auto-approve -input=false -compact-warnings)

step "Rotation status and the resources this one Terraform resource made"
"$python" scripts/demo_aws.py status "$DATABASE_SECRET_ARN"
say "(the emulator runs the function's own code; its subnets are made up, and it reaches 127.0.0.1 regardless)"

step "The first rotation, seen from PostgreSQL with psql"
"$python" scripts/demo_aws.py versions "$DATABASE_SECRET_ARN"
say "The function made app_user_clone (a member of app_user, so it reads app_user's table) with a new"
say "password, and moved AWSCURRENT onto it. The old user keeps its password: alternating users leave"
say "the previous one valid for one more cycle, so an application still holding it keeps working"
say "until the next rotation. Rotating every 45 days, no credential outlives 90."

step "A second rotation, started as \`aws secretsmanager rotate-secret\` would (RotateSecret)"
"$python" scripts/demo_aws.py rotate "$DATABASE_SECRET_ARN"
"$python" scripts/demo_aws.py versions "$DATABASE_SECRET_ARN"
say "AWSCURRENT is back on app_user, with yet another password; app_user_clone is AWSPREVIOUS and"
say "still signs in; app_user's first password (the version left with no label) is refused now."

step "The rdsrot_rotation_status data source after the rotation"
mkdir -p "$work/status"
cat >"$work/status/main.tf" <<'TF'
terraform {
  required_providers {
    rdsrot = { source = "rdsrot/rdsrot" }
  }
}

provider "rdsrot" {
  region = "us-east-1"
}

variable "secret_arn" {
  type = string
}

data "rdsrot_rotation_status" "app_db" {
  secret_id = var.secret_arn
}

output "last_rotation_outcome" { value = data.rdsrot_rotation_status.app_db.last_rotation_outcome }
output "current_version_id" { value = data.rdsrot_rotation_status.app_db.current_version_id }
output "previous_version_id" { value = data.rdsrot_rotation_status.app_db.previous_version_id }
output "rotation_in_progress" { value = data.rdsrot_rotation_status.app_db.rotation_in_progress }
output "problems" { value = data.rdsrot_rotation_status.app_db.problems }
TF
(cd "$work/status" && "$terraform" apply -auto-approve -input=false -compact-warnings \
    -var "secret_arn=$DATABASE_SECRET_ARN" >/dev/null && "$terraform" output)

step "Removing the Lambda's invoke permission behind Terraform's back (as a hurried cleanup might)"
"$python" scripts/demo_aws.py remove-permission "$DATABASE_SECRET_ARN"

step "terraform plan -detailed-exitcode catches the drift (exit code 2 means changes)"
set +e
(cd "$work" && "$terraform" plan -detailed-exitcode -input=false -compact-warnings)
plan_status=$?
set -e
[ "$plan_status" -eq 2 ] || fail "plan exited $plan_status, expected 2 (drift)"
say "plan exited 2: the missing permission is drift, and a CI job running this plan fails on it."

step "terraform apply puts the permission back; the next plan is clean"
(cd "$work" && "$terraform" apply -auto-approve -input=false -compact-warnings)
set +e
(cd "$work" && "$terraform" plan -detailed-exitcode -input=false >/dev/null)
plan_status=$?
set -e
[ "$plan_status" -eq 0 ] || fail "plan after the repair exited $plan_status, expected 0"
say "plan exited 0: AWS matches the configuration again."
"$python" scripts/demo_aws.py status "$DATABASE_SECRET_ARN" | grep -E 'rotation enabled|invoke permission'

step "terraform destroy: rotation off, and everything the provider made is removed"
(cd "$work" && "$terraform" destroy -auto-approve -input=false -compact-warnings)
"$python" scripts/demo_aws.py leftovers "$DATABASE_SECRET_ARN"

step "Stopping the local AWS emulator and PostgreSQL"
stop_database
stop_emulator

cat <<'EOF'

== Done. Next, with real AWS credentials:
   1. Make sure the database secret holds engine, host, port, dbname, username and
      password (and masterarn for the multi-user strategy), and that the chosen
      subnets reach both the database and a Secrets Manager endpoint.
   2. `make install` puts this provider into ~/.terraform.d/plugins, so that
      `terraform init` finds it offline (source = "rdsrot/rdsrot").
   3. Copy examples/quickstart, fill in terraform.tfvars from terraform.tfvars.example,
      and run `terraform init && terraform plan`. Credentials come from the usual
      AWS chain (environment, profile, SSO, instance role); docs/index.md lists the
      IAM permissions the caller needs.
   4. Enabling rotation rotates the secret at once: update every application to
      read the secret from Secrets Manager first.
   5. Schedule examples/ci/drift-detection.yml to catch out-of-band changes.
EOF
