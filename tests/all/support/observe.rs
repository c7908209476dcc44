//! What AWS holds for a rotation, looked at with the SDK directly (never
//! through the provider), and the changes made behind Terraform's back
//! that every suite inflicts the same way: the `Drift` cases.

use aws_config::SdkConfig;
use rdsrot::rotation::master_policy::policy_name_for;
use serde_json::Value;

use super::moto::{create_existing_rotation_lambda, create_secret, Emulator, USER_ROLE_POLICY};

/// Inline policy the rotation templates give their role (not ours).
pub const TEMPLATE_ROLE_POLICY: &str = "SecretsManagerRotationPolicy";

type Described = aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;

/// The secret as DescribeSecret gives it; `None` when it is gone.
async fn describe(emulator: &Emulator, secret_arn: &str) -> Option<Described> {
    emulator
        .secretsmanager()
        .describe_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .ok()
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

/// The invoke-permission statements on `function` scoped to `secret_arn`.
pub async fn statements_for_secret(
    emulator: &Emulator,
    function: &str,
    secret_arn: &str,
) -> Vec<Value> {
    let Ok(policy) = emulator
        .lambda()
        .get_policy()
        .function_name(function)
        .send()
        .await
    else {
        return Vec::new();
    };
    let document: Value = serde_json::from_str(policy.policy().unwrap_or("{}")).unwrap_or_default();
    document["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|statement| statement.to_string().contains(secret_arn))
        .cloned()
        .collect()
}

fn role_name(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or_default()
}

/// Inline policies of `role` other than the template's own and those a
/// user's own Lambda came with.
pub async fn our_role_policies(config: &SdkConfig, role_arn: &str) -> Vec<String> {
    let Ok(listed) = aws_sdk_iam::Client::new(config)
        .list_role_policies()
        .role_name(role_name(role_arn))
        .send()
        .await
    else {
        return Vec::new();
    };
    listed
        .policy_names()
        .iter()
        .filter(|name| name.as_str() != TEMPLATE_ROLE_POLICY && name.as_str() != USER_ROLE_POLICY)
        .cloned()
        .collect()
}

/// What AWS holds for one secret's rotation.
#[derive(Debug)]
pub struct Seen {
    pub rotation_enabled: bool,
    pub rotation_lambda: Option<String>,
    /// Every live stack (not only this secret's).
    pub live_stacks: Vec<String>,
    /// Sids of the statements on the Lambda scoped to the secret.
    pub our_statements: Vec<String>,
    /// The secret's own master-secret policy is on the role.
    pub master_policy: bool,
    pub pending_blocks: bool,
}

impl Seen {
    /// Nothing of ours left: rotation off, no stack, statement, policy, or
    /// AWSPENDING label in the way.
    pub fn nothing_left(&self) -> bool {
        !self.rotation_enabled
            && self.live_stacks.is_empty()
            && self.our_statements.is_empty()
            && !self.master_policy
            && !self.pending_blocks
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
            .iter()
            .map(|s| s["Sid"].as_str().unwrap_or_default().to_string())
            .collect(),
        None => vec![],
    };
    let master_policy = match role {
        Some(r) => emulator
            .iam()
            .get_role_policy()
            .role_name(role_name(r))
            .policy_name(policy_name_for(secret_arn))
            .send()
            .await
            .is_ok(),
        None => false,
    };
    Seen {
        rotation_enabled,
        rotation_lambda,
        live_stacks: live_stacks(emulator).await,
        our_statements,
        master_policy,
        pending_blocks: pending_blocks(described.as_ref()),
    }
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
            Drift::StackDeleted | Drift::StackLambdaDeleted => &["stack_id"],
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
