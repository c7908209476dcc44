//! The invoke permission: one statement on the rotation Lambda's resource
//! policy that lets Secrets Manager invoke it for this secret only
//! (`aws:SourceArn` the secret, `aws:SourceAccount` its account).
//!
//! Ownership: the statement this resource adds is the one with its
//! `permission_statement_id`, recorded in private state; statements of other
//! ids, even when scoped to the same secret, are left alone.

use crate::aws::error::AwsError;
use crate::aws::lambda::{self, PermissionStatement, SECRETS_MANAGER_PRINCIPAL};
use crate::aws::wait::Deadline;
use crate::aws::Clients;
use crate::logging;

use super::model::{Attr, Rotation};
use super::private::{PermissionRecord, Private};

const LOG: &str = "rotation";

/// The prefix of every statement id this provider gives by default: an
/// imported statement of another id was not made here.
pub const STATEMENT_ID_PREFIX: &str = "rdsrot-";

/// The statement as this resource wants it: Secrets Manager, this secret,
/// this account.
pub fn is_as_wanted(st: &PermissionStatement, secret_arn: &str, account: &str) -> bool {
    st.service_principal.as_deref() == Some(SECRETS_MANAGER_PRINCIPAL)
        && st.source_arn.as_deref() == Some(secret_arn)
        && (account.is_empty() || st.source_account.as_deref() == Some(account))
}

/// Adds the statement `sid` to `function` when it is missing or scoped
/// otherwise, then removes a statement recorded on another Lambda or under
/// another id (the rotation moved).
pub async fn ensure(
    c: &Clients,
    d: &Deadline,
    function: &str,
    sid: &str,
    secret_arn: &str,
    account: &str,
    p: &mut Private,
) -> Result<(), AwsError> {
    let existing = lambda::find_invoke_permission(c, d, function, sid).await?;
    let as_wanted = existing
        .as_ref()
        .is_some_and(|st| is_as_wanted(st, secret_arn, account));
    if existing.is_some() && !as_wanted {
        logging::debug(
            LOG,
            &format!("replacing statement {sid} on {function}: scoped differently"),
        );
        lambda::remove_permission(c, d, function, sid).await?;
    }
    let new = PermissionRecord {
        function: function.to_string(),
        sid: sid.to_string(),
    };
    if !as_wanted {
        logging::debug(
            LOG,
            &format!("adding invoke permission {sid} to {function}"),
        );
        // An addition may reach AWS even when its answer never comes back:
        // record it first. A statement replacing another one is still found
        // by delete through the state's Lambda and statement id.
        if p.permission.is_none() {
            p.permission = Some(new.clone());
        }
        d.check()?;
        lambda::add_invoke_permission(c, d, function, sid, secret_arn, account).await?;
    }
    if let Some(old) = p.permission.replace(new.clone()) {
        if old != new {
            logging::debug(
                LOG,
                &format!("removing old statement {} from {}", old.sid, old.function),
            );
            if let Err(e) = lambda::remove_permission(c, d, &old.function, &old.sid).await {
                p.permission = Some(old);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// What a read found on the Lambda's policy.
pub type Observed = Vec<PermissionStatement>;

pub async fn observe(
    c: &Clients,
    d: &Deadline,
    function: Option<&str>,
) -> Result<Observed, AwsError> {
    match function {
        Some(f) => lambda::list_invoke_permissions(c, d, f).await,
        None => Ok(vec![]),
    }
}

/// A statement missing, or scoped to another secret, principal or account,
/// is drift on `permission_statement_id` (null: the plan adds it back).
pub fn record(
    statements: &Observed,
    looked_at: Option<&str>,
    secret_arn: &str,
    account: &str,
    state: &Rotation,
    s: &mut Rotation,
    p: &mut Private,
) {
    let Some(sid) = state.permission_statement_id.known() else {
        return;
    };
    let ours = statements
        .iter()
        .any(|st| st.sid == *sid && is_as_wanted(st, secret_arn, account));
    if ours {
        return;
    }
    s.permission_statement_id = Attr::Null;
    // Forget the record only when it is of the Lambda just looked at. A
    // record of an earlier Lambda (an update that switched Lambdas failed
    // halfway) still names a statement apply or destroy must remove.
    if p.permission
        .as_ref()
        .is_some_and(|r| Some(r.function.as_str()) == looked_at && r.sid == *sid)
        && !statements.iter().any(|st| st.sid == *sid)
    {
        p.permission = None;
    }
}

/// The statement for `secret_arn` among a Lambda's statements that this
/// provider made: the default id if present, else another id of ours.
pub fn find_ours<'a>(
    statements: &'a Observed,
    secret_arn: &str,
    default_sid: &str,
) -> Option<&'a PermissionStatement> {
    statements
        .iter()
        .filter(|st| st.sid.starts_with(STATEMENT_ID_PREFIX))
        .filter(|st| st.source_arn.as_deref() == Some(secret_arn))
        .max_by_key(|st| st.sid == default_sid)
}

/// Destroy: the recorded statement, and the one the state names. They
/// differ when an update that moved the rotation to another Lambda failed
/// halfway.
pub async fn undo(
    c: &Clients,
    d: &Deadline,
    prior: &Rotation,
    lambda_arn: Option<&str>,
    p: &mut Private,
) -> Result<(), AwsError> {
    let named_by_state = lambda_arn
        .map(str::to_string)
        .zip(prior.permission_statement_id.known().cloned());
    let mut permissions: Vec<PermissionRecord> = p.permission.clone().into_iter().collect();
    if let Some((function, sid)) = named_by_state {
        let record = PermissionRecord { function, sid };
        if !permissions.contains(&record) {
            permissions.push(record);
        }
    }
    for perm in permissions {
        logging::debug(
            LOG,
            &format!("removing statement {} from {}", perm.sid, perm.function),
        );
        lambda::remove_permission(c, d, &perm.function, &perm.sid).await?;
    }
    p.permission = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sid: &str, principal: &str, source: &str, account: &str) -> PermissionStatement {
        PermissionStatement {
            sid: sid.into(),
            service_principal: Some(principal.into()),
            source_arn: Some(source.into()),
            source_account: Some(account.into()),
        }
    }

    #[test]
    fn a_statement_for_another_principal_or_account_is_drift() {
        let state = Rotation {
            permission_statement_id: Attr::Known("rdsrot-1".into()),
            ..Default::default()
        };
        for (principal, account, drift) in [
            (SECRETS_MANAGER_PRINCIPAL, "111122223333", false),
            ("events.amazonaws.com", "111122223333", true),
            (SECRETS_MANAGER_PRINCIPAL, "444455556666", true),
        ] {
            let mut s = state.clone();
            let mut p = Private::new();
            let found = vec![statement("rdsrot-1", principal, "arn:s", account)];
            record(
                &found,
                Some("arn:f"),
                "arn:s",
                "111122223333",
                &state,
                &mut s,
                &mut p,
            );
            assert_eq!(
                s.permission_statement_id.is_null(),
                drift,
                "{principal} {account}"
            );
        }
    }

    #[test]
    fn a_record_of_a_statement_still_there_is_kept_even_when_it_drifted() {
        let state = Rotation {
            permission_statement_id: Attr::Known("rdsrot-1".into()),
            ..Default::default()
        };
        let mut s = state.clone();
        let mut p = Private::new();
        p.permission = Some(PermissionRecord {
            function: "arn:f".into(),
            sid: "rdsrot-1".into(),
        });
        // Broadened out of band: still ours to remove on destroy.
        let found = vec![statement("rdsrot-1", SECRETS_MANAGER_PRINCIPAL, "*", "1")];
        record(&found, Some("arn:f"), "arn:s", "1", &state, &mut s, &mut p);
        assert!(s.permission_statement_id.is_null());
        assert!(p.permission.is_some());
        // Gone: nothing left to remove.
        record(&vec![], Some("arn:f"), "arn:s", "1", &state, &mut s, &mut p);
        assert!(p.permission.is_none());
    }

    #[test]
    fn import_takes_only_statements_this_provider_names() {
        let found = vec![
            statement(
                "SecretsManagerAccess",
                SECRETS_MANAGER_PRINCIPAL,
                "arn:s",
                "1",
            ),
            statement("rdsrot-other", SECRETS_MANAGER_PRINCIPAL, "arn:s", "1"),
            statement("rdsrot-default", SECRETS_MANAGER_PRINCIPAL, "arn:s", "1"),
        ];
        assert_eq!(
            find_ours(&found, "arn:s", "rdsrot-default").map(|s| s.sid.as_str()),
            Some("rdsrot-default")
        );
        assert_eq!(
            find_ours(&found[..2].to_vec(), "arn:s", "rdsrot-default").map(|s| s.sid.as_str()),
            Some("rdsrot-other")
        );
        assert!(find_ours(&found[..1].to_vec(), "arn:s", "rdsrot-default").is_none());
    }
}
