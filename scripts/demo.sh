#!/usr/bin/env bash
# `make demo`: the whole rotation workflow on this machine, no AWS account.
#
# Starts a local AWS emulator on 127.0.0.1, creates a database secret and a
# master secret, applies examples/quickstart (PostgreSQL, alternating users,
# Lambda in a VPC, max_credential_age_days = 90), shows what it made,
# removes the invoke permission behind Terraform's back, shows
# `terraform plan -detailed-exitcode` catching it, repairs it, destroys, and
# stops the emulator whatever happens.
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
stop_emulator() {
    if [ -n "$emulator_pid" ] && kill -0 "$emulator_pid" 2>/dev/null; then
        kill "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
        say "emulator stopped."
    fi
    emulator_pid=
}
finish() {
    status=$?
    if [ -n "$emulator_pid" ]; then
        printf '\n\033[1m== Stopping the local AWS emulator\033[0m\n'
        stop_emulator
    fi
    if [ "$status" -ne 0 ]; then
        printf '\n\033[31mdemo failed during step %d (%s)\033[0m\n' "$step_number" "$step_title" >&2
        say "(emulator log kept in $work/emulator.log)"
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

step "Creating a database secret and a master secret in RDS format (engine, host, username, password, dbname, port, masterarn)"
eval "$("$python" scripts/demo_aws.py create-secrets)"
say "database secret: $DATABASE_SECRET_ARN"
say "master secret:   $MASTER_SECRET_ARN"
say "(the passwords were generated into the secrets and are never printed)"

step "Applying examples/quickstart: PostgreSQL, alternating users, Lambda in a VPC, credentials never older than 90 days"
cp examples/quickstart/*.tf "$work/"
cat >"$work/terraform.tfvars" <<EOF
region              = "us-east-1"
database_secret_arn = "$DATABASE_SECRET_ARN"
master_secret_arn   = "$MASTER_SECRET_ARN"
subnet_ids          = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
security_group_ids  = ["sg-0123456789abcdef0"]
EOF
say "with $("$terraform" version | head -n1) and the provider built at $provider"
say "(dev_overrides load the local build, so there is no \`terraform init\`)"
(cd "$work" && "$terraform" apply -auto-approve -input=false -compact-warnings)

step "Rotation status and the resources this one Terraform resource made"
"$python" scripts/demo_aws.py status "$DATABASE_SECRET_ARN"
say "multi-user rotation every 45 days: the previous user stays valid one more cycle, so no credential outlives 90 days."
say "(the emulator's Lambda runs no code, so the first rotation stays pending on a new AWSPENDING"
say " version; on AWS the function sets the new password and moves AWSCURRENT onto it)"

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

step "Stopping the local AWS emulator"
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
