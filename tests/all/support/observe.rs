//! What AWS holds for a rotation, looked at with the SDK directly (never
//! through the provider), and the changes made behind Terraform's back
//! that every suite inflicts the same way: the `Drift` cases.

use aws_config::SdkConfig;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use rdsrot::rotation::master_policy::policy_name_for;
use serde_json::Value;

use super::moto::{
    create_existing_rotation_lambda, create_secret, Emulator, USER_INVOKE_STATEMENT,
    USER_ROLE_POLICY, VPC_ACCESS_POLICY,
};

/// Inline policy the rotation templates give their role (not ours).
pub const TEMPLATE_ROLE_POLICY: &str = "SecretsManagerRotationPolicy";

const SECRETS_MANAGER: &str = "secretsmanager.amazonaws.com";

/// The logical id of the templates' role, which CloudFormation puts in the
/// role's name: a role or function on such a role was made by a stack.
const TEMPLATE_ROLE_ID: &str = "RotationLambdaRole";

type Described = aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;

/// Waits until the function is neither being created (`State: Pending`)
/// nor updated (`LastUpdateStatus: InProgress`), as anyone changing a
/// function on AWS must before changing it again (Lambda refuses the change
/// with ResourceConflictException meanwhile).
pub async fn wait_function_settled(lambda: &aws_sdk_lambda::Client, function: &str) {
    use aws_sdk_lambda::types::{LastUpdateStatus, State};
    for _ in 0..300 {
        let out = lambda
            .get_function()
            .function_name(function)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetFunction {function}: {e:?}"));
        let configuration = out.configuration().expect("GetFunction's configuration");
        let pending = configuration.state() == Some(&State::Pending);
        let updating = configuration.last_update_status() == Some(&LastUpdateStatus::InProgress);
        if !pending && !updating {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the function {function} did not settle within 30 s");
}

/// The answer, or `None` when AWS says the thing does not exist. Anything
/// else (a throttle, a 500, an access error) fails the test: an observer
/// that took it for "absent" would pass a test that should fail.
fn unless_not_found<T, E, R>(answer: Result<T, SdkError<E, R>>, what: &str) -> Option<T>
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match answer {
        Ok(found) => Some(found),
        Err(e) if matches!(e.code(), Some("ResourceNotFoundException" | "NoSuchEntity")) => None,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// The secret as DescribeSecret gives it; `None` when it is gone.
async fn describe(emulator: &Emulator, secret_arn: &str) -> Option<Described> {
    unless_not_found(
        emulator
            .secretsmanager()
            .describe_secret()
            .secret_id(secret_arn)
            .send()
            .await,
        &format!("describe {secret_arn}"),
    )
}

/// Enabled, and with which Lambda. A deleted secret rotates no more.
fn rotation_of(described: Option<&Described>) -> (bool, Option<String>) {
    (
        described
            .and_then(|d| d.rotation_enabled())
            .unwrap_or(false),
        described
            .and_then(|d| d.rotation_lambda_arn())
            .map(str::to_owned),
    )
}

/// Whether an AWSPENDING label sits on a version that is not AWSCURRENT:
/// the next rotation would fail on it.
fn pending_blocks(described: Option<&Described>) -> bool {
    described
        .and_then(|d| d.version_ids_to_stages())
        .into_iter()
        .flat_map(|m| m.values())
        .any(|labels| {
            labels.iter().any(|l| l == "AWSPENDING") && !labels.iter().any(|l| l == "AWSCURRENT")
        })
}

/// What the AWS API says about the secret's rotation: enabled, and with
/// which Lambda.
pub async fn rotation_status(emulator: &Emulator, secret_arn: &str) -> (bool, Option<String>) {
    rotation_of(describe(emulator, secret_arn).await.as_ref())
}

/// Whether the secret's AWSPENDING label blocks the next rotation.
pub async fn pending_label_blocks(emulator: &Emulator, secret_arn: &str) -> bool {
    pending_blocks(describe(emulator, secret_arn).await.as_ref())
}

/// The ids of the stacks that still exist.
pub async fn live_stacks(emulator: &Emulator) -> Vec<String> {
    let listed = emulator
        .cloudformation()
        .describe_stacks()
        .send()
        .await
        .expect("describe stacks");
    listed
        .stacks()
        .iter()
        .filter(|s| {
            s.stack_status()
                .is_none_or(|st| st.as_str() != "DELETE_COMPLETE")
        })
        .filter_map(|s| s.stack_id().map(str::to_owned))
        .collect()
}

/// A statement on a function's resource policy that lets Secrets Manager
/// in, with its conditions as written (`Null` when it has none).
#[derive(Clone, Debug)]
pub struct InvokeStatement {
    pub sid: String,
    pub conditions: Value,
}

impl std::fmt::Display for InvokeStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.sid, self.conditions)
    }
}

impl InvokeStatement {
    /// The `aws:SourceArn` values, whatever the operator (IAM compares
    /// condition keys case-insensitively).
    fn source_arns(&self) -> Vec<String> {
        let mut found = vec![];
        for operator in self
            .conditions
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
        {
            for (key, value) in operator.as_object().into_iter().flatten() {
                if key.eq_ignore_ascii_case("aws:SourceArn") {
                    match value {
                        Value::String(v) => found.push(v.clone()),
                        Value::Array(vs) => {
                            found.extend(vs.iter().filter_map(|v| v.as_str().map(str::to_owned)))
                        }
                        _ => {}
                    }
                }
            }
        }
        found
    }

    /// Whether it lets Secrets Manager invoke the function for this secret:
    /// scoped to it, to a pattern it matches, or to no secret at all.
    pub fn grants(&self, secret_arn: &str) -> bool {
        let sources = self.source_arns();
        sources.is_empty() || sources.iter().any(|p| wildcard_match(p, secret_arn))
    }
}

/// IAM's `*` and `?` matching.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn names_secrets_manager(principal: &Value) -> bool {
    match principal {
        Value::String(s) => s == "*" || s == SECRETS_MANAGER,
        Value::Array(items) => items.iter().any(names_secrets_manager),
        Value::Object(o) => o.values().any(names_secrets_manager),
        _ => false,
    }
}

/// Every statement on `function`'s policy whose principal is Secrets
/// Manager (or anyone); none when the function or its policy is gone.
pub async fn secrets_manager_statements(
    emulator: &Emulator,
    function: &str,
) -> Vec<InvokeStatement> {
    let Some(policy) = unless_not_found(
        emulator
            .lambda()
            .get_policy()
            .function_name(function)
            .send()
            .await,
        &format!("get the policy of {function}"),
    ) else {
        return Vec::new();
    };
    let document: Value = serde_json::from_str(policy.policy().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the policy of {function} is JSON: {e}"));
    let statements = match &document["Statement"] {
        Value::Array(all) => all.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        other => panic!("the policy of {function} has statements: {other}"),
    };
    statements
        .iter()
        .filter(|s| names_secrets_manager(&s["Principal"]))
        .map(|s| InvokeStatement {
            sid: s["Sid"].as_str().unwrap_or_default().to_string(),
            conditions: s["Condition"].clone(),
        })
        .collect()
}

/// Whether a stack made `function` (it runs on a stack's role); `false`
/// when it is gone.
async fn made_by_a_stack(emulator: &Emulator, function: &str) -> bool {
    unless_not_found(
        emulator
            .lambda()
            .get_function_configuration()
            .function_name(function)
            .send()
            .await,
        &format!("get the configuration of {function}"),
    )
    .and_then(|f| f.role().map(|r| r.contains(TEMPLATE_ROLE_ID)))
    .unwrap_or(false)
}

/// The statements on `function` that let Secrets Manager invoke it for
/// `secret_arn` (scoped to it, by a wildcard, or account-wide), but the
/// user's own and, on a stack's function, the template's unconditioned
/// `AWS::Lambda::Permission` (the provider never writes one without a
/// condition, so none of its statements is left out).
pub async fn statements_for_secret(
    emulator: &Emulator,
    function: &str,
    secret_arn: &str,
) -> Vec<InvokeStatement> {
    let from_template = made_by_a_stack(emulator, function).await;
    secrets_manager_statements(emulator, function)
        .await
        .into_iter()
        .filter(|s| s.sid != USER_INVOKE_STATEMENT && s.grants(secret_arn))
        .filter(|s| !(from_template && s.conditions.is_null()))
        .collect()
}

fn role_name(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or_default()
}

/// The secrets the master-secret policy the provider put on `role` for
/// `secret_arn` lets the role read (`secretsmanager:GetSecretValue`
/// allowed on them); none when there is no such policy.
pub async fn master_secrets_granted(
    config: &SdkConfig,
    role_arn: &str,
    secret_arn: &str,
) -> Vec<String> {
    let iam = aws_sdk_iam::Client::new(config);
    let Some(policy) = unless_not_found(
        iam.get_role_policy()
            .role_name(role_name(role_arn))
            .policy_name(policy_name_for(secret_arn))
            .send()
            .await,
        "read the master-secret policy",
    ) else {
        return Vec::new();
    };
    // IAM answers policy documents URL-encoded.
    let text = percent_encoding::percent_decode_str(policy.policy_document())
        .decode_utf8_lossy()
        .into_owned();
    let document: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the master-secret policy is not JSON ({e}): {text}"));
    let as_list = |v: &Value| match v {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    };
    let mut granted = Vec::new();
    for statement in as_list(&document["Statement"]) {
        let reads = as_list(&statement["Action"]).iter().any(|a| {
            a.as_str().is_some_and(|a| {
                wildcard_match(&a.to_ascii_lowercase(), "secretsmanager:getsecretvalue")
            })
        });
        if statement["Effect"] == "Allow" && reads {
            granted.extend(
                as_list(&statement["Resource"])
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned)),
            );
        }
    }
    granted
}

/// Inline policies of `role` other than the template's own and those a
/// user's own Lambda came with, and every managed policy attached to it but
/// AWS's VPC access policy (the templates attach it to a placed function's
/// role, and a user's own Lambda comes with it); none when the role is gone.
pub async fn our_role_policies(config: &SdkConfig, role_arn: &str) -> Vec<String> {
    let iam = aws_sdk_iam::Client::new(config);
    let name = role_name(role_arn);
    let Some(inline) = unless_not_found(
        iam.list_role_policies().role_name(name).send().await,
        &format!("list the policies of {name}"),
    ) else {
        return Vec::new();
    };
    let attached = unless_not_found(
        iam.list_attached_role_policies()
            .role_name(name)
            .send()
            .await,
        &format!("list the managed policies of {name}"),
    );
    inline
        .policy_names()
        .iter()
        .filter(|name| name.as_str() != TEMPLATE_ROLE_POLICY && name.as_str() != USER_ROLE_POLICY)
        .cloned()
        .chain(
            attached
                .iter()
                .flat_map(|a| a.attached_policies())
                .filter_map(|p| p.policy_arn().map(str::to_owned))
                .filter(|arn| arn != VPC_ACCESS_POLICY),
        )
        .collect()
}

/// Every function, as `(name, role ARN)`.
pub async fn functions(emulator: &Emulator) -> Vec<(String, String)> {
    let listed = emulator
        .lambda()
        .list_functions()
        .send()
        .await
        .expect("list functions");
    listed
        .functions()
        .iter()
        .map(|f| {
            (
                f.function_name().unwrap_or_default().to_string(),
                f.role().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Every role a stack made (named after the templates' role).
pub async fn stack_roles(emulator: &Emulator) -> Vec<String> {
    let listed = emulator
        .iam()
        .list_roles()
        .send()
        .await
        .expect("list roles");
    listed
        .roles()
        .iter()
        .map(|r| r.role_name().to_string())
        .filter(|name| name.contains(TEMPLATE_ROLE_ID))
        .collect()
}

/// What AWS holds for one secret's rotation.
#[derive(Debug)]
pub struct Seen {
    pub rotation_enabled: bool,
    pub rotation_lambda: Option<String>,
    /// Every live stack (not only this secret's).
    pub live_stacks: Vec<String>,
    /// Sids of the statements on the Lambda that let Secrets Manager invoke
    /// it for this secret (scoped to it, by a wildcard or account-wide),
    /// but the user's own.
    pub our_statements: Vec<String>,
    /// The role's inline policies but the template's and the user's, and
    /// its managed ones.
    pub role_policies: Vec<String>,
    /// The secret's own master-secret policy is on the role.
    pub master_policy: bool,
    pub pending_blocks: bool,
    /// Functions on a role a stack made, and the stack-made roles.
    pub stack_functions: Vec<String>,
    pub stack_roles: Vec<String>,
}

impl Seen {
    /// Nothing of ours left: rotation off, no stack, statement, policy, or
    /// AWSPENDING label in the way.
    pub fn nothing_left(&self) -> bool {
        !self.rotation_enabled
            && self.live_stacks.is_empty()
            && self.our_statements.is_empty()
            && self.role_policies.is_empty()
            && !self.master_policy
            && !self.pending_blocks
            && self.stack_functions.is_empty()
            && self.stack_roles.is_empty()
    }
}

pub async fn look(
    emulator: &Emulator,
    secret_arn: &str,
    lambda: Option<&str>,
    role: Option<&str>,
) -> Seen {
    // One look at the secret for both its rotation and its labels.
    let described = describe(emulator, secret_arn).await;
    let (rotation_enabled, rotation_lambda) = rotation_of(described.as_ref());
    let our_statements = match lambda {
        Some(f) => statements_for_secret(emulator, f, secret_arn)
            .await
            .into_iter()
            .map(|s| s.sid)
            .collect(),
        None => vec![],
    };
    let (role_policies, master_policy) = match role {
        Some(r) => {
            let policies = our_role_policies(&emulator.sdk_config(), r).await;
            let master = policies.contains(&policy_name_for(secret_arn));
            (policies, master)
        }
        None => (vec![], false),
    };
    let stack_functions = functions(emulator)
        .await
        .into_iter()
        .filter(|(_, role)| role.contains(TEMPLATE_ROLE_ID))
        .map(|(name, _)| name)
        .collect();
    Seen {
        rotation_enabled,
        rotation_lambda,
        live_stacks: live_stacks(emulator).await,
        our_statements,
        role_policies,
        master_policy,
        pending_blocks: pending_blocks(described.as_ref()),
        stack_functions,
        stack_roles: stack_roles(emulator).await,
    }
}

/// After a destroy: rotation off, no AWSPENDING label in the way, no stack,
/// stack role or stack function left, and on the user's own Lambda (when
/// there is one) no statement letting Secrets Manager in for this secret
/// and no role policy but the user's own.
pub async fn assert_nothing_left(
    emulator: &Emulator,
    secret_arn: &str,
    lambda: Option<&str>,
    role: Option<&str>,
) {
    let seen = look(emulator, secret_arn, lambda, role).await;
    assert!(seen.nothing_left(), "left after destroy: {seen:#?}");
}

/// The parts of an applied rotation a drift case changes.
#[derive(Clone, Debug)]
pub struct Applied {
    pub secret_arn: String,
    pub lambda: String,
    pub role: String,
    pub statement_id: String,
    pub stack_id: String,
}

/// A change made behind Terraform's back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drift {
    RotationCancelled,
    ScheduleChanged,
    LambdaSwitched,
    PermissionRemoved,
    /// The statement's source widened to every secret.
    PermissionBroadened,
    MasterPolicyRemoved,
    /// The policy grants another master secret.
    MasterPolicyEdited,
    /// The policy grants every secret every action.
    MasterPolicyBroadened,
    VpcMoved,
    StackDeleted,
    /// The template's Lambda deleted, its stack left healthy.
    StackLambdaDeleted,
}

impl Drift {
    /// The attributes of which at least one must change in the refreshed
    /// state (and show in the plan).
    pub fn attributes(self) -> &'static [&'static str] {
        match self {
            Drift::RotationCancelled => &["enabled"],
            Drift::ScheduleChanged => &["automatically_after_days", "schedule_expression"],
            Drift::LambdaSwitched => &["rotation_lambda_arn"],
            Drift::PermissionRemoved | Drift::PermissionBroadened => &["permission_statement_id"],
            Drift::MasterPolicyRemoved
            | Drift::MasterPolicyEdited
            | Drift::MasterPolicyBroadened => &["master_secret_arn"],
            Drift::VpcMoved => &["vpc_subnet_ids", "vpc_security_group_ids"],
            // The stack took its Lambda, and the invoke permission with it.
            Drift::StackDeleted | Drift::StackLambdaDeleted => {
                &["stack_id", "permission_statement_id"]
            }
        }
    }

    /// Whether the case needs a template (a stack) and a master secret.
    pub fn needs_multi_user_template(self) -> bool {
        matches!(
            self,
            Drift::MasterPolicyRemoved
                | Drift::MasterPolicyEdited
                | Drift::MasterPolicyBroadened
                | Drift::VpcMoved
                | Drift::StackDeleted
                | Drift::StackLambdaDeleted
        )
    }

    pub async fn inflict(self, aws: &SdkConfig, applied: &Applied) {
        let sm = aws_sdk_secretsmanager::Client::new(aws);
        let lambda = aws_sdk_lambda::Client::new(aws);
        let iam = aws_sdk_iam::Client::new(aws);
        let policy_name = policy_name_for(&applied.secret_arn);
        match self {
            Drift::RotationCancelled => {
                sm.cancel_rotate_secret()
                    .secret_id(&applied.secret_arn)
                    .send()
                    .await
                    .expect("cancel rotation");
            }
            Drift::ScheduleChanged => {
                sm.rotate_secret()
                    .secret_id(&applied.secret_arn)
                    .rotation_lambda_arn(&applied.lambda)
                    .rotation_rules(
                        aws_sdk_secretsmanager::types::RotationRulesType::builder()
                            .schedule_expression("rate(10 days)")
                            .build(),
                    )
                    .rotate_immediately(false)
                    .send()
                    .await
                    .expect("change the schedule");
            }
            Drift::LambdaSwitched => {
                let other = create_existing_rotation_lambda(aws, "someone-elses-rotator").await;
                sm.rotate_secret()
                    .secret_id(&applied.secret_arn)
                    .rotation_lambda_arn(other)
                    .rotate_immediately(false)
                    .send()
                    .await
                    .expect("switch the Lambda");
            }
            Drift::PermissionRemoved | Drift::PermissionBroadened => {
                lambda
                    .remove_permission()
                    .function_name(&applied.lambda)
                    .statement_id(&applied.statement_id)
                    .send()
                    .await
                    .expect("remove the invoke permission");
                if self == Drift::PermissionBroadened {
                    let (region, account) = region_and_account(&applied.secret_arn);
                    lambda
                        .add_permission()
                        .function_name(&applied.lambda)
                        .statement_id(&applied.statement_id)
                        .action("lambda:InvokeFunction")
                        .principal("secretsmanager.amazonaws.com")
                        .source_arn(format!(
                            "arn:aws:secretsmanager:{region}:{account}:secret:*"
                        ))
                        .send()
                        .await
                        .expect("broaden the invoke permission");
                }
            }
            Drift::MasterPolicyRemoved => {
                iam.delete_role_policy()
                    .role_name(role_name(&applied.role))
                    .policy_name(&policy_name)
                    .send()
                    .await
                    .expect("delete the master-secret policy");
            }
            Drift::MasterPolicyEdited | Drift::MasterPolicyBroadened => {
                let resource = if self == Drift::MasterPolicyEdited {
                    create_secret(&sm, "another-master", "{}").await
                } else {
                    "*".to_string()
                };
                let action = if self == Drift::MasterPolicyEdited {
                    serde_json::json!([
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:DescribeSecret"
                    ])
                } else {
                    serde_json::json!("secretsmanager:*")
                };
                let document = serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]
                });
                iam.put_role_policy()
                    .role_name(role_name(&applied.role))
                    .policy_name(&policy_name)
                    .policy_document(document.to_string())
                    .send()
                    .await
                    .expect("edit the master-secret policy");
            }
            Drift::VpcMoved => {
                wait_function_settled(&lambda, &applied.lambda).await;
                lambda
                    .update_function_configuration()
                    .function_name(&applied.lambda)
                    .vpc_config(
                        aws_sdk_lambda::types::VpcConfig::builder()
                            .subnet_ids("subnet-0ffffffffffffffff")
                            .security_group_ids("sg-0ffffffffffffffff")
                            .build(),
                    )
                    .send()
                    .await
                    .expect("move the Lambda");
            }
            Drift::StackLambdaDeleted => {
                lambda
                    .delete_function()
                    .function_name(&applied.lambda)
                    .send()
                    .await
                    .expect("delete the stack's Lambda");
            }
            Drift::StackDeleted => {
                aws_sdk_cloudformation::Client::new(aws)
                    .delete_stack()
                    .stack_name(&applied.stack_id)
                    .send()
                    .await
                    .expect("delete the stack");
            }
        }
    }
}

fn region_and_account(arn: &str) -> (String, String) {
    let parts: Vec<&str> = arn.split(':').collect();
    (
        parts.get(3).copied().unwrap_or_default().to_string(),
        parts.get(4).copied().unwrap_or_default().to_string(),
    )
}

/// The observers themselves: a grant wider than the secret shows, and an
/// error is never taken for "absent".
#[cfg(test)]
mod checks {
    use super::*;
    use crate::e2e::block_on;
    use crate::support::faults::{Fault, FaultRule};
    use crate::support::moto::{create_database_secret, ACCOUNT_ID};

    fn grant(emulator: &Emulator, function: &str, sid: &str, source_arn: Option<&str>) {
        let mut request = emulator
            .lambda()
            .add_permission()
            .function_name(function)
            .statement_id(sid)
            .action("lambda:InvokeFunction")
            .principal(SECRETS_MANAGER);
        if let Some(arn) = source_arn {
            request = request.source_arn(arn).source_account(ACCOUNT_ID);
        }
        block_on(request.send()).unwrap_or_else(|e| panic!("grant {sid}: {e:?}"));
    }

    #[test]
    fn every_grant_for_the_secret_shows_but_the_users_own() {
        let emulator = crate::emulator_or_skip!();
        let config = emulator.sdk_config();
        let secret = block_on(create_database_secret(
            &emulator.secretsmanager(),
            "observed",
            "postgres",
            None,
        ));
        let other = block_on(create_database_secret(
            &emulator.secretsmanager(),
            "another",
            "postgres",
            None,
        ));
        let function = block_on(create_existing_rotation_lambda(&config, "observed-fn"));
        let sids = |found: Vec<InvokeStatement>| -> Vec<String> {
            let mut sids: Vec<String> = found.into_iter().map(|s| s.sid).collect();
            sids.sort();
            sids
        };
        // The user's own account-wide statement is there from the start.
        let none: Vec<String> = vec![];
        assert_eq!(
            sids(block_on(statements_for_secret(
                &emulator,
                &function,
                &secret.arn
            ))),
            none
        );
        grant(&emulator, &function, "exact", Some(&secret.arn));
        grant(&emulator, &function, "other-secret", Some(&other.arn));
        let pattern = format!(
            "{}*",
            &secret.arn[..secret.arn.rfind(':').expect("an ARN has colons") + 1]
        );
        grant(&emulator, &function, "every-secret", Some(&pattern));
        grant(&emulator, &function, "unconditioned", None);
        assert_eq!(
            sids(block_on(statements_for_secret(
                &emulator,
                &function,
                &secret.arn
            ))),
            ["every-secret", "exact", "unconditioned"]
        );

        let role = format!("arn:aws:iam::{ACCOUNT_ID}:role/observed-fn-role");
        block_on(
            emulator
                .iam()
                .put_role_policy()
                .role_name("observed-fn-role")
                .policy_name("left-behind")
                .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
                .send(),
        )
        .expect("put a role policy");
        assert_eq!(block_on(our_role_policies(&config, &role)), ["left-behind"]);
    }

    #[test]
    fn a_throttled_look_up_fails_the_test_instead_of_seeming_absent() {
        let emulator = crate::emulator_or_skip!();
        let function = block_on(create_existing_rotation_lambda(
            &emulator.sdk_config(),
            "throttled-fn",
        ));
        emulator.set_faults(1, &[FaultRule::on("lambda", "GetPolicy", Fault::Throttle)]);
        let looked = std::thread::scope(|scope| {
            scope
                .spawn(|| block_on(secrets_manager_statements(&emulator, &function)))
                .join()
        });
        emulator.clear_faults();
        assert!(
            looked.is_err(),
            "a throttled GetPolicy was taken for no policy: {looked:?}"
        );
    }
}
