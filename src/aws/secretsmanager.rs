//! Secrets Manager: describe the secret, turn rotation on and off, clean up
//! a leftover AWSPENDING label, and read the current value for the
//! pre-flight check. That read is the only one: its value stays in memory,
//! wiped on drop, and is never logged (the SDK output's `Debug` redacts it,
//! and nothing here prints the output).

use std::collections::HashMap;

use aws_sdk_secretsmanager::types::RotationRulesType;
use zeroize::Zeroizing;

use super::cache::function_key;
use super::error::{classify, AwsError, OptionalExt};
use super::pacing::Quota;
use super::retry::{READ, SECRET_CHANGE};
use super::wait::Deadline;
use super::Clients;
use crate::logging;

/// The rotation rules as AWS reports or takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub automatically_after_days: Option<i64>,
    pub schedule_expression: Option<String>,
    pub duration: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretInfo {
    pub arn: String,
    pub name: String,
    pub scheduled_for_deletion: bool,
    pub owning_service: Option<String>,
    pub rotation_enabled: bool,
    pub rotation_lambda_arn: Option<String>,
    pub rules: Option<Rules>,
    /// Version id -> staging labels.
    pub version_stages: HashMap<String, Vec<String>>,
    /// When the last rotation finished (Unix seconds), if it ever did.
    pub last_rotated_date: Option<i64>,
    /// When Secrets Manager plans the next rotation (Unix seconds).
    pub next_rotation_date: Option<i64>,
    /// The KMS key that encrypts the secret, as it was given (a key ARN, key
    /// id, alias or alias ARN); `None` for Secrets Manager's AWS managed key.
    pub kms_key_id: Option<String>,
}

impl SecretInfo {
    /// The version holding `label`, if any.
    pub fn version_with(&self, label: &str) -> Option<&str> {
        self.version_stages
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(id, _)| id.as_str())
    }
}

/// The secret, or `None` when it does not exist. A secret scheduled for
/// deletion is returned with `scheduled_for_deletion` set: callers decide.
pub async fn find_secret(
    c: &Clients,
    d: &Deadline,
    secret_id: &str,
) -> Result<Option<SecretInfo>, AwsError> {
    let out = c
        .call(d, &READ, Quota::SecretsDescribe, || async {
            c.secretsmanager
                .describe_secret()
                .secret_id(secret_id)
                .send()
                .await
                .map_err(classify)
        })
        .await
        .or_not_found()?;
    let Some(out) = out else { return Ok(None) };
    Ok(Some(SecretInfo {
        arn: out.arn().unwrap_or_default().to_string(),
        name: out.name().unwrap_or_default().to_string(),
        scheduled_for_deletion: out.deleted_date().is_some(),
        owning_service: out.owning_service().map(str::to_string),
        rotation_enabled: out.rotation_enabled().unwrap_or(false),
        rotation_lambda_arn: out
            .rotation_lambda_arn()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        rules: out.rotation_rules().map(|r| Rules {
            automatically_after_days: r.automatically_after_days(),
            schedule_expression: r
                .schedule_expression()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            duration: r.duration().filter(|s| !s.is_empty()).map(str::to_string),
        }),
        version_stages: out.version_ids_to_stages().cloned().unwrap_or_default(),
        last_rotated_date: out.last_rotated_date().map(|t| t.secs()),
        next_rotation_date: out.next_rotation_date().map(|t| t.secs()),
        kms_key_id: out
            .kms_key_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    }))
}

/// Turns rotation on. The request token makes our own retries idempotent.
pub async fn rotate_secret(
    c: &Clients,
    d: &Deadline,
    secret_arn: &str,
    lambda_arn: &str,
    rules: &Rules,
    rotate_immediately: bool,
    client_request_token: &str,
) -> Result<Option<String>, AwsError> {
    let mut r = RotationRulesType::builder();
    if let Some(e) = &rules.schedule_expression {
        r = r.schedule_expression(e);
    } else if let Some(d) = rules.automatically_after_days {
        r = r.automatically_after_days(d);
    }
    if let Some(d) = &rules.duration {
        r = r.duration(d);
    }
    let rules = r.build();
    let out = c
        .call(d, &SECRET_CHANGE, Quota::SecretsRotation, || async {
            c.secretsmanager
                .rotate_secret()
                .secret_id(secret_arn)
                .client_request_token(client_request_token)
                .rotation_lambda_arn(lambda_arn)
                .rotation_rules(rules.clone())
                .rotate_immediately(rotate_immediately)
                .send()
                .await
                .map_err(classify)
        })
        .await?;
    Ok(out.version_id().map(str::to_string))
}

/// Turns rotation off. Not found counts as done. Returns the version the
/// answer names: AWS names the one a rotation under way had made.
pub async fn cancel_rotation(
    c: &Clients,
    d: &Deadline,
    secret_arn: &str,
) -> Result<Option<String>, AwsError> {
    let answer = c
        .call(d, &SECRET_CHANGE, Quota::SecretsRotation, || async {
            c.secretsmanager
                .cancel_rotate_secret()
                .secret_id(secret_arn)
                .send()
                .await
                .map_err(classify)
        })
        .await
        .or_not_found()?;
    Ok(answer.and_then(|a| a.version_id().map(str::to_owned)))
}

/// Removes AWSPENDING from a version that is not AWSCURRENT: a cancelled or
/// interrupted rotation leaves it behind, and it blocks the next rotation.
///
/// Called only after rotation was cancelled, as AWS's guidance for
/// CancelRotateSecret says. Why this is safe even when a rotation was
/// running: once rotation is cancelled Secrets Manager invokes no further
/// step, so the rotation cannot finish either way; a step already running
/// (at most the Lambda's timeout) may still have set the database password
/// to the pending value, and that is the cancel's doing, not the label's.
/// Only the label goes: the version and its value stay, and its id is
/// logged, so that the password can be read back by version id
/// (`get-secret-value --version-id`) if the database took it.
pub async fn remove_orphan_pending_label(
    c: &Clients,
    d: &Deadline,
    secret_arn: &str,
) -> Result<(), AwsError> {
    let Some(info) = find_secret(c, d, secret_arn).await? else {
        return Ok(());
    };
    let Some(pending) = info.version_with("AWSPENDING") else {
        return Ok(());
    };
    if info.version_with("AWSCURRENT") == Some(pending) {
        return Ok(());
    }
    logging::warn(
        "rotation",
        &format!(
            "removing the AWSPENDING label left on version {pending} of {secret_arn} by an \
unfinished rotation (the version itself is kept)"
        ),
    );
    c.call(d, &SECRET_CHANGE, Quota::SecretsWrite, || async {
        c.secretsmanager
            .update_secret_version_stage()
            .secret_id(secret_arn)
            .version_stage("AWSPENDING")
            .remove_from_version_id(pending)
            .send()
            .await
            .map_err(classify)
    })
    .await
    .or_not_found()?;
    Ok(())
}

/// The secrets whose rotation is on and uses `function` (by name or ARN),
/// as `ListSecrets` shows them: it may lag behind by minutes, see
/// `sharing` for how the answer is used.
pub async fn secrets_rotating_with(
    c: &Clients,
    d: &Deadline,
    function: &str,
) -> Result<Vec<String>, AwsError> {
    let key = function_key(function);
    let mut found = vec![];
    let mut next: Option<String> = None;
    loop {
        let token = next.clone();
        let page = c
            .call(d, &READ, Quota::SecretsList, || async {
                c.secretsmanager
                    .list_secrets()
                    .set_next_token(token.clone())
                    .max_results(100)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await?;
        for s in page.secret_list() {
            if s.rotation_enabled().unwrap_or(false)
                && s.rotation_lambda_arn().map(function_key).as_deref() == Some(key.as_str())
            {
                found.extend(s.arn().map(str::to_string));
            }
        }
        next = page
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if next.is_none() {
            return Ok(found);
        }
    }
}

/// A secret's AWSCURRENT value, as the pre-flight check sees it.
pub enum SecretValue {
    /// `SecretString`, wiped from memory when dropped.
    Text(Zeroizing<String>),
    /// `SecretBinary`: the check needs only to know it is there, so the
    /// bytes are wiped at once.
    Binary,
}

/// Reads the AWSCURRENT value of `secret_id` (the READ policy: an access
/// denial is not retried, it is the caller's to report).
pub async fn get_secret_value(
    c: &Clients,
    d: &Deadline,
    secret_id: &str,
) -> Result<SecretValue, AwsError> {
    let mut out = c
        .call(d, &READ, Quota::SecretsGetValue, || async {
            c.secretsmanager
                .get_secret_value()
                .secret_id(secret_id)
                .version_stage("AWSCURRENT")
                .send()
                .await
                .map_err(classify)
        })
        .await?;
    // Moved out, not copied, so that the one copy is the one wiped.
    if let Some(text) = out.secret_string.take() {
        return Ok(SecretValue::Text(Zeroizing::new(text)));
    }
    if let Some(blob) = out.secret_binary.take() {
        drop(Zeroizing::new(blob.into_inner()));
        return Ok(SecretValue::Binary);
    }
    Ok(SecretValue::Text(Zeroizing::new(String::new())))
}

/// One version of a secret as `ListSecretVersionIds` reports it: no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionInfo {
    pub version_id: String,
    pub stages: Vec<String>,
    /// When the version was created (Unix seconds).
    pub created_date: Option<i64>,
}

/// Every version of the secret that holds a staging label (deprecated
/// versions, which hold none, are left out), or `None` when the secret does
/// not exist. Reads no secret value.
pub async fn list_versions(
    c: &Clients,
    d: &Deadline,
    secret_id: &str,
) -> Result<Option<Vec<VersionInfo>>, AwsError> {
    let mut found = vec![];
    let mut next: Option<String> = None;
    loop {
        let token = next.clone();
        let page = c
            .call(d, &READ, Quota::SecretsListVersions, || async {
                c.secretsmanager
                    .list_secret_version_ids()
                    .secret_id(secret_id)
                    .include_deprecated(false)
                    .set_next_token(token.clone())
                    .max_results(100)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await
            .or_not_found()?;
        let Some(page) = page else { return Ok(None) };
        found.extend(page.versions().iter().map(|v| VersionInfo {
            version_id: v.version_id().unwrap_or_default().to_string(),
            stages: v.version_stages().to_vec(),
            created_date: v.created_date().map(|t| t.secs()),
        }));
        // An empty token means the same as none: a service that sent one
        // back would otherwise be asked for the same first page forever.
        next = page
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if next.is_none() {
            return Ok(Some(found));
        }
    }
}
