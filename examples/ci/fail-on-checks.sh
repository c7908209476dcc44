#!/bin/sh
# Fails when a `check` block of a saved plan failed or could not be
# evaluated. Terraform reports a failed check as a warning and still exits 0
# (or 2), so the plan's exit code alone does not catch it.
#
# Usage: fail-on-checks.sh PLANFILE   (needs terraform >= 1.5 and jq;
# TERRAFORM names another terraform binary)
set -eu
plan="${1:?usage: fail-on-checks.sh PLANFILE}"
terraform="${TERRAFORM:-terraform}"

json="$("$terraform" show -json "$plan")"
# `checks` lists every check block (and resource condition) with a status of
# pass, fail, error or unknown; plans from before Terraform 1.5 have none.
failed="$(printf '%s' "$json" | jq -r '
  .checks // []
  | map(select(.status == "fail" or .status == "error"))
  | .[]
  | "\(.address.to_display) \(.status): \([.instances[]?.problems[]?.message] | join("; "))"
')"
if [ -n "$failed" ]; then
  printf '%s\n' "$failed" | while IFS= read -r line; do
    echo "::error::check $line"
  done
  exit 1
fi
echo "Every check passed."
