//! Lambda: the rotation function's configuration, its resource policy
//! (invoke permissions) and its VPC placement.

use std::time::Duration;

use aws_sdk_lambda::types::{LastUpdateStatus, State, VpcConfig};

use super::cache::function_key;
use super::error::{classify, AwsError, OptionalExt};
use super::pacing::Quota;
use super::retry::{LAMBDA_CONFIG_CHANGE, LAMBDA_POLICY_CHANGE, READ};
use super::wait::{poll_until, Deadline, Poll};
use super::Clients;

pub const SECRETS_MANAGER_PRINCIPAL: &str = "secretsmanager.amazonaws.com";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionInfo {
    pub arn: String,
    pub role_arn: String,
    /// Sorted; empty when the function is not in a VPC.
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

/// The function's configuration, from `GetFunction`: it carries the same
/// configuration as `GetFunctionConfiguration` under a quota of 100 requests
/// per second instead of the 15 that every other Lambda call shares.
pub async fn find_function_configuration(
    c: &Clients,
    d: &Deadline,
    function: &str,
) -> Result<Option<FunctionInfo>, AwsError> {
    let key = function_key(function);
    c.reads
        .functions
        .get_or_fetch(d, &key, || async {
            let out = get_function(c, d, function).await.or_not_found()?;
            Ok(out.and_then(|o| o.configuration).map(|f| function_info(&f)))
        })
        .await
}

/// `GetFunction`: the configuration, the tags and the code's location,
/// under its own quota of 100 requests per second.
async fn get_function(
    c: &Clients,
    d: &Deadline,
    function: &str,
) -> Result<aws_sdk_lambda::operation::get_function::GetFunctionOutput, AwsError> {
    c.call(d, &READ, Quota::LambdaGetFunction, || async {
        c.lambda
            .get_function()
            .function_name(function)
            .send()
            .await
            .map_err(classify)
    })
    .await
}

fn function_info(f: &aws_sdk_lambda::types::FunctionConfiguration) -> FunctionInfo {
    let mut subnet_ids = f
        .vpc_config()
        .map(|v| v.subnet_ids().to_vec())
        .unwrap_or_default();
    let mut security_group_ids = f
        .vpc_config()
        .map(|v| v.security_group_ids().to_vec())
        .unwrap_or_default();
    subnet_ids.sort();
    security_group_ids.sort();
    FunctionInfo {
        arn: f.function_arn().unwrap_or_default().to_string(),
        role_arn: f.role().unwrap_or_default().to_string(),
        subnet_ids,
        security_group_ids,
    }
}

/// One statement of a function's resource policy, as far as we need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionStatement {
    pub sid: String,
    pub service_principal: Option<String>,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
}

/// A function's resource policy: its statements, and its size as Lambda
/// counts it against the 20 KB limit (the policy document's length).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionPolicy {
    pub statements: Vec<PermissionStatement>,
    pub size: usize,
}

/// The most a function's policy may hold, in bytes.
pub const POLICY_SIZE_LIMIT: usize = 20 * 1024;

/// The function's resource policy (empty when it has none).
pub async fn find_policy(
    c: &Clients,
    d: &Deadline,
    function: &str,
) -> Result<FunctionPolicy, AwsError> {
    let key = function_key(function);
    c.reads
        .policies
        .get_or_fetch(d, &key, || async {
            let out = c
                .call(d, &READ, Quota::LambdaGetPolicy, || async {
                    c.lambda
                        .get_policy()
                        .function_name(function)
                        .send()
                        .await
                        .map_err(classify)
                })
                .await
                .or_not_found()?;
            Ok(match out.as_ref().and_then(|o| o.policy()) {
                Some(policy) => FunctionPolicy {
                    statements: parse_policy(policy),
                    size: policy.len(),
                },
                None => FunctionPolicy::default(),
            })
        })
        .await
}

/// Every statement of the function's resource policy (none when it has no
/// policy).
pub async fn list_invoke_permissions(
    c: &Clients,
    d: &Deadline,
    function: &str,
) -> Result<Vec<PermissionStatement>, AwsError> {
    Ok(find_policy(c, d, function).await?.statements)
}

/// The statement AddPermission adds for Secrets Manager, as Lambda writes
/// it into the policy: to know, before adding, whether it still fits.
pub fn invoke_statement_json(
    function_arn: &str,
    sid: &str,
    source_arn: &str,
    account: &str,
) -> String {
    serde_json::json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": SECRETS_MANAGER_PRINCIPAL},
        "Action": "lambda:InvokeFunction",
        "Resource": function_arn,
        "Condition": {
            "StringEquals": {"AWS:SourceAccount": account},
            "ArnLike": {"AWS:SourceArn": source_arn},
        },
    })
    .to_string()
}

pub async fn find_invoke_permission(
    c: &Clients,
    d: &Deadline,
    function: &str,
    sid: &str,
) -> Result<Option<PermissionStatement>, AwsError> {
    Ok(list_invoke_permissions(c, d, function)
        .await?
        .into_iter()
        .find(|s| s.sid == sid))
}

fn parse_policy(policy: &str) -> Vec<PermissionStatement> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return vec![];
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => vec![],
    };
    // Condition keys are case-insensitive in IAM; AWS writes `AWS:SourceArn`.
    let condition = |s: &serde_json::Value, key: &str| -> Option<String> {
        let conds = s["Condition"].as_object()?;
        conds.values().find_map(|op| {
            op.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_str().map(str::to_string))
        })
    };
    statements
        .iter()
        .map(|s| PermissionStatement {
            sid: s["Sid"].as_str().unwrap_or_default().to_string(),
            service_principal: s["Principal"]["Service"].as_str().map(str::to_string),
            source_arn: condition(s, "aws:SourceArn"),
            source_account: condition(s, "aws:SourceAccount"),
        })
        .collect()
}

/// Whether an AddPermission failed because the statement id is taken.
pub fn is_statement_taken(e: &AwsError) -> bool {
    e.code() == Some("ResourceConflictException")
        && e.to_string()
            .to_ascii_lowercase()
            .contains("already exists")
}

/// Lets Secrets Manager invoke the function, for this secret only.
///
/// AddPermission takes no idempotency token: when an attempt's answer is
/// lost and the retry finds the statement id taken, the statement is read
/// back, and one scoped exactly as asked counts as this call's success.
pub async fn add_invoke_permission(
    c: &Clients,
    d: &Deadline,
    function: &str,
    sid: &str,
    secret_arn: &str,
    account: &str,
) -> Result<(), AwsError> {
    let lock = c.function_locks.lock_for(function);
    let guard = d.bound(lock.lock()).await?;
    // Whatever the outcome, the policy may have changed.
    c.reads.forget_function(function);
    let sent = c
        .call(d, &LAMBDA_POLICY_CHANGE, Quota::LambdaControl, || async {
            c.lambda
                .add_permission()
                .function_name(function)
                .statement_id(sid)
                .action("lambda:InvokeFunction")
                .principal(SECRETS_MANAGER_PRINCIPAL)
                .source_arn(secret_arn)
                .source_account(account)
                .send()
                .await
                .map_err(classify)
        })
        .await;
    drop(guard);
    match sent {
        Ok(_) => Ok(()),
        Err(e) if is_statement_taken(&e) => {
            let existing = find_invoke_permission(c, d, function, sid).await?;
            let as_asked = existing.is_some_and(|st| {
                st.service_principal.as_deref() == Some(SECRETS_MANAGER_PRINCIPAL)
                    && st.source_arn.as_deref() == Some(secret_arn)
                    && st.source_account.as_deref() == Some(account)
            });
            if as_asked {
                Ok(())
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

/// Not found (function or statement) counts as done, so a replay after a
/// lost answer is harmless.
pub async fn remove_permission(
    c: &Clients,
    d: &Deadline,
    function: &str,
    sid: &str,
) -> Result<(), AwsError> {
    let lock = c.function_locks.lock_for(function);
    let _guard = d.bound(lock.lock()).await?;
    c.reads.forget_function(function);
    c.call(d, &LAMBDA_POLICY_CHANGE, Quota::LambdaControl, || async {
        c.lambda
            .remove_permission()
            .function_name(function)
            .statement_id(sid)
            .send()
            .await
            .map_err(classify)
    })
    .await
    .or_not_found()?;
    Ok(())
}

/// Places the function in the given subnets and security groups (both
/// empty: out of any VPC), then waits for the update to finish.
pub async fn update_vpc_config(
    c: &Clients,
    function: &str,
    subnet_ids: &[String],
    security_group_ids: &[String],
    deadline: &Deadline,
) -> Result<(), AwsError> {
    let vpc = VpcConfig::builder()
        .set_subnet_ids(Some(subnet_ids.to_vec()))
        .set_security_group_ids(Some(security_group_ids.to_vec()))
        .build();
    // Held until the update has finished: a permission change meanwhile
    // would meet "update in progress".
    let lock = c.function_locks.lock_for(function);
    let _guard = deadline.bound(lock.lock()).await?;
    c.reads.forget_function(function);
    // Lambda refuses a change while the function is still being created or
    // another change of it runs (ResourceConflictException): a function a
    // stack or someone else has just made or changed is waited out first.
    wait_function_updated(c, function, deadline).await?;
    // Setting the same placement twice is harmless, so a replay after a lost
    // answer needs no check; "in progress" (our own first attempt still
    // running) is waited out by the policy.
    c.call(
        deadline,
        &LAMBDA_CONFIG_CHANGE,
        Quota::LambdaControl,
        || async {
            c.lambda
                .update_function_configuration()
                .function_name(function)
                .vpc_config(vpc.clone())
                .send()
                .await
                .map_err(classify)
        },
    )
    .await
    .map_err(|e| explain_missing_network_rights(e, function))?;
    let waited = wait_function_updated(c, function, deadline).await;
    // A read during the update may have kept the old placement.
    c.reads.forget_function(function);
    waited
}

/// The AWS managed policy that grants a function's role what Lambda needs
/// to place it in a VPC.
pub const VPC_ACCESS_POLICY: &str = "AWSLambdaVPCAccessExecutionRole";

/// Lambda refuses a VPC placement when the function's role may not manage
/// network interfaces; the answer names an EC2 call, not the fix.
fn explain_missing_network_rights(e: AwsError, function: &str) -> AwsError {
    match &e {
        AwsError::Api { code, message, .. }
            if code.as_deref() == Some("InvalidParameterValueException")
                && message.contains("NetworkInterface") =>
        {
            AwsError::Failed(format!(
                "Lambda refused to place {function} in the VPC: {message}. Attach the AWS managed \
policy {VPC_ACCESS_POLICY} (arn:aws:iam::aws:policy/service-role/{VPC_ACCESS_POLICY}) to the \
function's execution role, or grant it ec2:CreateNetworkInterface, \
ec2:DescribeNetworkInterfaces and ec2:DeleteNetworkInterface, then apply again."
            ))
        }
        _ => e,
    }
}

/// How long a function may take to settle after a creation or an update
/// before the provider gives up on it (Lambda takes seconds, a minute or
/// more when it sets up network interfaces in a VPC).
const FUNCTION_SETTLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Waits until the function is neither being created (`State: Pending`)
/// nor updated (`LastUpdateStatus: InProgress`), polling with backoff.
pub async fn wait_function_updated(
    c: &Clients,
    function: &str,
    deadline: &Deadline,
) -> Result<(), AwsError> {
    let deadline = &deadline.within(
        &format!("Lambda function {function} settling"),
        FUNCTION_SETTLE_TIMEOUT,
    );
    // GetFunction carries the update status under the larger quota.
    poll_until(deadline, || async {
        let out = get_function(c, deadline, function).await?;
        let Some(f) = out.configuration() else {
            return Ok(Poll::Ready(()));
        };
        match f.state() {
            Some(State::Pending) => return Ok(Poll::Pending),
            Some(State::Failed) => {
                return Err(AwsError::Failed(format!(
                    "creating Lambda function {function} failed: {}",
                    f.state_reason().unwrap_or("no reason given")
                )))
            }
            _ => {}
        }
        match f.last_update_status() {
            Some(LastUpdateStatus::InProgress) => Ok(Poll::Pending),
            Some(LastUpdateStatus::Failed) => Err(AwsError::Failed(format!(
                "updating Lambda function {function} failed: {}",
                f.last_update_status_reason().unwrap_or("no reason given")
            ))),
            _ => Ok(Poll::Ready(())),
        }
    })
    .await
}

/// The function's tags (CloudFormation tags what it creates with its stack).
///
/// Read with `GetFunction`, which carries them under its quota of 100
/// requests per second, where `ListTags` draws on the 15 per second that
/// Lambda's other control-plane calls share. `GetFunction` leaves the tags
/// out when the caller is not allowed `lambda:ListTags` (or says it could not
/// read them in `TagsError`): an answer without tags is then asked again of
/// `ListTags`, whose refusal is an error, so that a missing permission never
/// reads as a function without tags.
pub async fn function_tags(
    c: &Clients,
    d: &Deadline,
    function_arn: &str,
) -> Result<std::collections::HashMap<String, String>, AwsError> {
    let Some(out) = get_function(c, d, function_arn).await.or_not_found()? else {
        return Ok(Default::default());
    };
    match out.tags() {
        Some(tags) if !tags.is_empty() && out.tags_error().is_none() => Ok(tags.clone()),
        _ => listed_tags(c, d, function_arn).await,
    }
}

/// The function's tags from `ListTags`.
async fn listed_tags(
    c: &Clients,
    d: &Deadline,
    function_arn: &str,
) -> Result<std::collections::HashMap<String, String>, AwsError> {
    let out = c
        .call(d, &READ, Quota::LambdaControl, || async {
            c.lambda
                .list_tags()
                .resource(function_arn)
                .send()
                .await
                .map_err(classify)
        })
        .await
        .or_not_found()?;
    Ok(out.and_then(|o| o.tags().cloned()).unwrap_or_default())
}

/// Tags the function (TagResource): setting the same tags twice is
/// harmless.
pub async fn tag_function(
    c: &Clients,
    d: &Deadline,
    function_arn: &str,
    tags: &[(String, String)],
) -> Result<(), AwsError> {
    c.call(d, &LAMBDA_CONFIG_CHANGE, Quota::LambdaControl, || async {
        let mut req = c.lambda.tag_resource().resource(function_arn);
        for (k, v) in tags {
            req = req.tags(k, v);
        }
        req.send().await.map_err(classify)
    })
    .await?;
    Ok(())
}

/// Removes tags from the function; a function already gone counts as done.
pub async fn untag_function(
    c: &Clients,
    d: &Deadline,
    function_arn: &str,
    keys: &[&str],
) -> Result<(), AwsError> {
    c.call(d, &LAMBDA_CONFIG_CHANGE, Quota::LambdaControl, || async {
        let mut req = c.lambda.untag_resource().resource(function_arn);
        for k in keys {
            req = req.tag_keys(*k);
        }
        req.send().await.map_err(classify)
    })
    .await
    .or_not_found()?;
    Ok(())
}

/// How long after a role change Lambda and Secrets Manager may still refuse
/// (IAM is eventually consistent).
pub const PROPAGATION: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_statements_and_conditions() {
        let policy = r#"{"Version":"2012-10-17","Statement":[
          {"Sid":"a","Effect":"Allow","Principal":{"Service":"secretsmanager.amazonaws.com"},
           "Action":"lambda:InvokeFunction","Resource":"arn:f",
           "Condition":{"StringEquals":{"AWS:SourceAccount":"123"},"ArnLike":{"AWS:SourceArn":"arn:s"}}},
          {"Sid":"b","Principal":{"Service":"events.amazonaws.com"}}]}"#;
        let s = parse_policy(policy);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].sid, "a");
        assert_eq!(s[0].source_arn.as_deref(), Some("arn:s"));
        assert_eq!(s[0].source_account.as_deref(), Some("123"));
        assert_eq!(s[1].source_arn, None);
        assert!(parse_policy("garbage").is_empty());
    }
}
