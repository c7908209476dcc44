//! The `rdsrot_rotation` schema. Attribute names are part of the public
//! interface (documentation and user configurations depend on them).
//!
//! `rotation_rules` is required. SINGLE nesting cannot express a required
//! block in Terraform 1.0.3 (its min/max items must both be 0 or both 1, and
//! 1 is not honoured for SINGLE everywhere), so it is a LIST block with
//! exactly one element: paths read `rotation_rules[0].<name>`.
//! `timeouts` is an optional SINGLE block.

use crate::tf::{Attribute, Block, NestedBlock, Nesting, Schema, Type};

pub const TYPE_NAME: &str = "rdsrot_rotation";

pub fn schema() -> Schema {
    Schema {
        version: 0,
        block: Block {
            description: "Turns on AWS Secrets Manager rotation for an RDS database secret: \
deploys the rotation Lambda from a Serverless Application Repository template (or uses an \
existing Lambda), grants Secrets Manager the right to invoke it, grants it access to a master \
secret, places it in a VPC and sets the rotation schedule. Out-of-band changes to any of these \
parts show in `terraform plan`; destroy removes exactly what the resource made."
                .into(),
            attributes: attributes(),
            block_types: vec![rotation_rules_block(), timeouts_block()],
            deprecated: false,
        },
    }
}

fn attributes() -> Vec<Attribute> {
    let s = Type::String;
    let set = || Type::set(Type::String);
    vec![
        Attribute::computed("id", s.clone(), "The full ARN of the rotated secret."),
        Attribute::required(
            "secret_id",
            s.clone(),
            "ARN or name of the database secret to rotate. Changing it replaces the resource.",
        ),
        Attribute::computed("secret_arn", s.clone(), "The full ARN of the rotated secret."),
        Attribute::optional(
            "rotation_type",
            s.clone(),
            "Rotation template to deploy: `<engine>_single_user` or `<engine>_multi_user` for \
the engines `mysql`, `postgresql`, `mariadb`, `oracle`, `sqlserver`, `db2`, `redshift` and \
`mongodb` (DocumentDB), or `generic`; each deploys the matching Serverless Application \
Repository application (e.g. `oracle_multi_user`: SecretsManagerRDSOracleRotationMultiUser). \
Multi-user types and `db2_single_user` need `master_secret_arn`. Exactly one of \
`rotation_type` and `rotation_lambda_arn` must be set.",
        ),
        Attribute::optional_computed(
            "rotation_lambda_arn",
            s.clone(),
            "ARN of an existing rotation Lambda to use instead of a template; the provider never \
creates or deletes such a Lambda. With `rotation_type`, computed from the stack output \
`RotationLambdaARN`.",
        ),
        Attribute::computed(
            "rotation_lambda_role_arn",
            s.clone(),
            "ARN of the rotation Lambda's execution role.",
        ),
        Attribute::computed(
            "stack_id",
            s.clone(),
            "ID of the CloudFormation stack deployed from the template (null with an existing \
Lambda).",
        ),
        Attribute::optional_computed(
            "template_version",
            s.clone(),
            "Semantic version of the Serverless Application Repository template. Defaults to \
the version this provider pins for the application in the secret's partition (the versions AWS \
CDK pins); for `generic`, which has no pinned version, the newest one published when the stack \
is first deployed.",
        ),
        Attribute::optional_computed(
            "function_name",
            s.clone(),
            "Name of the rotation Lambda the template creates (template only). Defaults to a \
valid name of at most 64 characters derived from the secret.",
        ),
        Attribute::optional_computed(
            "endpoint",
            s.clone(),
            "Secrets Manager endpoint the rotation Lambda calls (template only). Defaults to \
`https://secretsmanager.<region>.<dns suffix>`.",
        ),
        Attribute::optional(
            "master_secret_arn",
            s.clone(),
            "ARN of the master secret whose credentials change the user's password. Required \
for `*_multi_user` types, rejected for `*_single_user`. The Lambda's role is granted \
`secretsmanager:GetSecretValue` and `secretsmanager:DescribeSecret` on it.",
        ),
        Attribute::optional(
            "master_secret_kms_key_arn",
            s.clone(),
            "ARN of the KMS key that encrypts the master secret; the Lambda's role is granted \
`kms:Decrypt` on it.",
        ),
        Attribute::optional(
            "kms_key_arn",
            s.clone(),
            "ARN of the KMS key that encrypts the rotated secret (template parameter).",
        ),
        Attribute::optional(
            "exclude_characters",
            s.clone(),
            "Characters the generated passwords must not contain (template parameter).",
        ),
        Attribute::optional(
            "vpc_subnet_ids",
            set(),
            "Subnets to place the rotation Lambda in. Set together with \
`vpc_security_group_ids`.",
        ),
        Attribute::optional(
            "vpc_security_group_ids",
            set(),
            "Security groups of the rotation Lambda. Set together with `vpc_subnet_ids`.",
        ),
        Attribute::optional_computed(
            "rotate_immediately",
            Type::Bool,
            "Whether Secrets Manager rotates at once on create and on updates that change the \
schedule or the Lambda. `false` runs only the `testSecret` step. Defaults to `true`.",
        ),
        Attribute::optional_computed(
            "preflight_check",
            Type::Bool,
            "Whether plan and apply first read the secret's current value (in memory only, never \
stored or logged) and check that it is the JSON the rotation template needs: `engine` for the \
template's database, `host`, `username`, `password`, and `masterarn` naming `master_secret_arn` \
for multi-user. Only for template rotations other than `generic`. Changing it changes nothing \
in AWS. Defaults to `true`.",
        ),
        Attribute::optional_computed(
            "wait_for_rotation_timeout",
            s.clone(),
            "How long an apply that starts a rotation (turning rotation on, a new Lambda or \
schedule, a retry) waits for it to finish, e.g. `5m`, `90s`: until the new version holds \
AWSCURRENT, or with `rotate_immediately = false` until the `testSecret` run ended. A rotation \
that fails or does not finish in time fails the apply, quoting the rotation function's own error \
lines from its CloudWatch Logs group. `\"0\"` switches the wait off. Changing it changes nothing \
in AWS. Defaults to `5m`.",
        ),
        Attribute::computed(
            "rotation_verified",
            Type::Bool,
            "Whether the last rotation an apply started was seen to finish: `true`; `false` when \
it failed or did not finish within `wait_for_rotation_timeout` (the next apply retries it, \
without redeploying what is in place); null when no apply waited for one, or when the \
function's log, the only judge of a `rotate_immediately = false` test run, could not be read.",
        ),
        Attribute::optional_computed(
            "enabled",
            Type::Bool,
            "`false` keeps everything in place but cancels rotation (on create: sets everything up without turning rotation on). Defaults to `true`.",
        ),
        Attribute::optional_computed(
            "permission_scope",
            s.clone(),
            "Whose invocations the invoke permission allows: `\"secret\"` (the default), one \
statement per secret, scoped to it (`aws:SourceArn`) and its account; or `\"account\"`, one \
statement per Lambda shared by every rotation that uses it, scoped to the account's secrets in \
the Lambda's region. A Lambda's policy holds at most 20 KB, about 50 statements of the first \
kind: use `\"account\"` for a Lambda shared by more secrets.",
        ),
        Attribute::optional_computed(
            "permission_statement_id",
            s,
            "Sid of the Lambda invoke permission the provider adds for Secrets Manager, scoped \
to this secret (`aws:SourceArn`) and its account (`aws:SourceAccount`). Defaults to a \
deterministic `rdsrot-` name.",
        ),
    ]
}

fn rotation_rules_block() -> NestedBlock {
    NestedBlock {
        type_name: "rotation_rules".into(),
        nesting: Nesting::List,
        min_items: 1,
        max_items: 1,
        block: Block {
            description: "When rotation runs. Set exactly one of `automatically_after_days`, \
`schedule_expression` and `max_credential_age_days`."
                .into(),
            attributes: vec![
                Attribute::optional_computed(
                    "automatically_after_days",
                    Type::Number,
                    "Days between rotations (1 to 1000). Computed when \
`max_credential_age_days` is set.",
                ),
                Attribute::optional(
                    "schedule_expression",
                    Type::String,
                    "`rate(N hours)` / `rate(N days)` (at least 4 hours, at most 1000 days) or a \
six-field `cron(...)` expression (UTC).",
                ),
                Attribute::optional(
                    "max_credential_age_days",
                    Type::Number,
                    "The longest any credential may stay valid, e.g. a compliance limit. The \
rotation interval becomes half of it for multi-user rotation (old credentials stay valid one \
more cycle) and one day less for every other strategy.",
                ),
                Attribute::optional(
                    "duration",
                    Type::String,
                    "Length of the rotation window, `Nh` with N from 1 to 24.",
                ),
            ],
            block_types: vec![],
            deprecated: false,
        },
    }
}

fn timeouts_block() -> NestedBlock {
    let t = |name: &str, default: &str| {
        Attribute::optional(
            name,
            Type::String,
            &format!(
                "Longest time the {name} may take, e.g. `30m`, `1h30m`, `45s`. Defaults to \
`{default}`."
            ),
        )
    };
    NestedBlock {
        type_name: "timeouts".into(),
        nesting: Nesting::Single,
        min_items: 0,
        max_items: 0,
        block: Block {
            description: "Operation timeouts.".into(),
            attributes: vec![t("create", "30m"), t("update", "30m"), t("delete", "30m")],
            block_types: vec![],
            deprecated: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_has_a_description() {
        let s = schema();
        let mut all: Vec<&Attribute> = s.block.attributes.iter().collect();
        for b in &s.block.block_types {
            all.extend(b.block.attributes.iter());
        }
        for a in all {
            assert!(!a.description.is_empty(), "{} lacks a description", a.name);
            assert!(
                [a.required, a.optional, a.computed].iter().any(|f| *f),
                "{} has no flag",
                a.name
            );
            assert!(!(a.required && (a.optional || a.computed)), "{}", a.name);
        }
    }

    #[test]
    fn rotation_rules_is_a_required_single_element_list() {
        let s = schema();
        let b = s.block.block_type("rotation_rules").expect("block exists");
        assert_eq!((b.nesting, b.min_items, b.max_items), (Nesting::List, 1, 1));
        assert_eq!(
            s.block.block_type("timeouts").map(|b| b.nesting),
            Some(Nesting::Single)
        );
    }
}
