//! The KMS key that encrypts the master secret. A multi-user rotation
//! function reads the master secret with its own role, so when that secret
//! is encrypted with a customer managed key (the usual case for the master
//! secrets RDS manages, `rds!db-...`, in accounts that set a key), the role
//! needs `kms:Decrypt` on the key, which `master_secret_kms_key_arn` grants.
//! Without it nothing fails until the first rotation: plan says so first.

use crate::aws::{secretsmanager as sm, AwsError, Clients, Deadline};
use crate::tf::{AttributePath, Diagnostic, Diagnostics};

use super::model::Rotation;

/// Secrets Manager's AWS managed key: every role of the account may use it
/// through Secrets Manager, so it needs no grant.
const AWS_MANAGED_ALIAS: &str = "alias/aws/secretsmanager";

/// The key a secret's `KmsKeyId` names when it is not Secrets Manager's AWS
/// managed key (absent, the alias, or the alias's ARN).
pub fn customer_managed_key(kms_key_id: Option<&str>) -> Option<&str> {
    kms_key_id.filter(|k| {
        let k = k.trim();
        !k.is_empty() && k != AWS_MANAGED_ALIAS && !k.ends_with(&format!(":{AWS_MANAGED_ALIAS}"))
    })
}

/// Whether the key names a key by its key ARN, the only form an IAM policy
/// matches; key ids, aliases and alias ARNs name it otherwise.
fn is_key_arn(key: &str) -> bool {
    key.starts_with("arn:") && key.contains(":key/")
}

/// What to tell about the master secret's key given what the configuration
/// grants: nothing when no grant is needed or the grant names that key.
pub fn finding(master_arn: &str, key: Option<&str>, granted: Option<&str>) -> Option<Diagnostic> {
    let key = customer_managed_key(key)?;
    let fix = if is_key_arn(key) {
        format!("Set `master_secret_kms_key_arn = \"{key}\"`")
    } else {
        format!(
            "Set `master_secret_kms_key_arn` to the key ARN of {key:?} (IAM matches keys by key \
ARN only)"
        )
    };
    let (summary, detail) = match granted {
        None => (
            "The master secret is encrypted with a customer managed key",
            format!(
                "The master secret {master_arn} is encrypted with the KMS key {key:?}, not Secrets \
Manager's AWS managed key, and `master_secret_kms_key_arn` is not set: the rotation function can \
read the master secret only with `kms:Decrypt` on that key, so the first rotation would fail. \
{fix} for the provider to grant it to the function's role, or grant it in the key's policy."
            ),
        ),
        Some(granted) if is_key_arn(key) && granted != key => (
            "master_secret_kms_key_arn names another key",
            format!(
                "The master secret {master_arn} is encrypted with the KMS key {key:?}, but \
`master_secret_kms_key_arn` grants {granted:?}: the rotation function could not read the master \
secret. {fix}."
            ),
        ),
        Some(_) => return None,
    };
    Some(Diagnostic::warning(summary, detail).at(AttributePath::root("master_secret_kms_key_arn")))
}

/// The check as plan runs it: when the master secret or the key granted is
/// new to the resource and both are known. A master secret that cannot be
/// described is left to the other checks (the pre-flight warns, apply
/// fails clearly).
pub async fn at_plan(
    c: &Clients,
    d: &Deadline,
    config: &Rotation,
    prior: Option<&Rotation>,
) -> Result<Diagnostics, AwsError> {
    let mut diags = Diagnostics::new();
    let Some(master) = config.master_secret_arn.known() else {
        return Ok(diags);
    };
    if config.master_secret_kms_key_arn.is_unknown() {
        return Ok(diags);
    }
    let unchanged = prior.is_some_and(|p| {
        p.master_secret_arn == config.master_secret_arn
            && p.master_secret_kms_key_arn == config.master_secret_kms_key_arn
    });
    if unchanged {
        return Ok(diags);
    }
    match sm::find_secret(c, d, master).await {
        Ok(Some(found)) => {
            let granted = config.master_secret_kms_key_arn.known().map(String::as_str);
            if let Some(f) = finding(&found.arn, found.kms_key_id.as_deref(), granted) {
                diags.push(f);
            }
        }
        Ok(None) => {}
        Err(e) if e.is_no_credentials() || matches!(e, AwsError::Cancelled) => return Err(e),
        Err(_) => {}
    }
    Ok(diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tf::Severity;

    const MASTER: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1-AbCdEf";
    const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/0b4c6b2e-7d2a-4a8e-9b39-5a1f0c2d3e4f";

    #[test]
    fn secrets_managers_own_key_needs_no_grant() {
        for k in [
            None,
            Some(""),
            Some("alias/aws/secretsmanager"),
            Some("arn:aws:kms:eu-west-1:123456789012:alias/aws/secretsmanager"),
        ] {
            assert_eq!(customer_managed_key(k), None, "{k:?}");
            assert!(finding(MASTER, k, None).is_none(), "{k:?}");
        }
    }

    #[test]
    fn a_customer_managed_key_without_a_grant_is_a_warning_naming_the_key_and_the_attribute() {
        let d = finding(MASTER, Some(KEY), None).expect("a finding");
        assert_eq!(d.severity, Severity::Warning);
        assert!(
            d.detail.contains(KEY) && d.detail.contains(MASTER),
            "{}",
            d.detail
        );
        assert!(d
            .detail
            .contains(&format!("master_secret_kms_key_arn = \"{KEY}\"")));
        assert_eq!(
            d.attribute.as_ref().map(|p| p.to_string()).as_deref(),
            Some("master_secret_kms_key_arn")
        );
    }

    #[test]
    fn an_alias_is_named_with_the_need_for_a_key_arn() {
        let d = finding(MASTER, Some("alias/team-db"), None).expect("a finding");
        assert!(
            d.detail.contains("key ARN of \"alias/team-db\""),
            "{}",
            d.detail
        );
    }

    #[test]
    fn the_granted_key_passes_and_another_key_is_named() {
        assert!(finding(MASTER, Some(KEY), Some(KEY)).is_none());
        let other = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555";
        let d = finding(MASTER, Some(KEY), Some(other)).expect("another key");
        assert!(
            d.detail.contains(other) && d.detail.contains(KEY),
            "{}",
            d.detail
        );
        // A key named by alias cannot be compared with a key ARN here: trusted.
        assert!(finding(MASTER, Some("alias/team-db"), Some(other)).is_none());
    }
}
