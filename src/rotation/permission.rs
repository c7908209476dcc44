//! The invoke permission: a statement on the rotation Lambda's resource
//! policy that lets Secrets Manager invoke it. With `permission_scope =
//! "secret"` (the default) there is one statement per secret, scoped to it
//! (`aws:SourceArn`) and its account (`aws:SourceAccount`). With
//! `"account"` there is one statement per Lambda, shared by every rotation
//! that uses it, scoped to the account's secrets in the Lambda's region: a
//! Lambda's policy holds at most 20 KB, about fifty statements of the first
//! kind.
//!
//! AWS's templates add a statement of their own, with no condition: Secrets
//! Manager may then invoke the template's Lambda for any secret of any
//! account. On the Lambda of the stack this resource deployed, every apply
//! removes such statements once its own scoped one is in place, and read
//! reports their return as drift.
//!
//! Ownership: the statement this resource adds is the one with its
//! `permission_statement_id`, recorded in private state, and only while it
//! still lets Secrets Manager in for this secret (`still_ours`): one that
//! now names another principal, secret or account is neither replaced nor
//! removed. Statements of other ids, even when scoped to the same secret,
//! are left alone, but for the unconditioned ones on the stack's own Lambda.
//! A shared statement is removed only by the last rotation that uses the
//! Lambda.

use crate::aws::arn::Arn;
use crate::aws::error::AwsError;
use crate::aws::lambda::{self, PermissionStatement, POLICY_SIZE_LIMIT, SECRETS_MANAGER_PRINCIPAL};
use crate::aws::wait::Deadline;
use crate::aws::Clients;
use crate::logging;

use crate::tf::{AttributePath, Diagnostic};

use super::model::{Attr, Rotation};
use super::plan::default_statement_id;
use super::private::{PermissionRecord, Private};

const LOG: &str = "rotation";

pub const SCOPE_SECRET: &str = "secret";
pub const SCOPE_ACCOUNT: &str = "account";

/// The id of the statement shared with `permission_scope = "account"`.
pub const ACCOUNT_STATEMENT_ID: &str = "rdsrot-account-secrets";

/// The prefix of every statement id this provider gives by default: an
/// imported statement of another id was not made here.
pub const STATEMENT_ID_PREFIX: &str = "rdsrot-";

/// The statement a rotation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub sid: String,
    /// The secret's ARN, or a pattern of the account's secrets in its region.
    pub source_arn: String,
    pub account: String,
    pub shared: bool,
}

/// Every secret of the account in the secret's region, as an `ArnLike`
/// pattern.
pub fn account_secrets_pattern(secret_arn: &str) -> Option<String> {
    let arn = Arn::parse(secret_arn)?;
    Some(format!(
        "arn:{}:secretsmanager:{}:{}:secret:*",
        arn.partition, arn.region, arn.account
    ))
}

impl Wanted {
    pub fn for_scope(scope: Option<&str>, sid: &str, secret_arn: &str, account: &str) -> Wanted {
        match (scope, account_secrets_pattern(secret_arn)) {
            (Some(SCOPE_ACCOUNT), Some(pattern)) => Wanted {
                sid: ACCOUNT_STATEMENT_ID.into(),
                source_arn: pattern,
                account: account.into(),
                shared: true,
            },
            _ => Wanted {
                sid: sid.into(),
                source_arn: secret_arn.into(),
                account: account.into(),
                shared: false,
            },
        }
    }

    /// The statement says what this rotation needs: Secrets Manager, this
    /// source, this account.
    pub fn is_met_by(&self, st: &PermissionStatement) -> bool {
        st.sid == self.sid
            && st.service_principal.as_deref() == Some(SECRETS_MANAGER_PRINCIPAL)
            && st.source_arn.as_deref() == Some(self.source_arn.as_str())
            && (self.account.is_empty() || st.source_account.as_deref() == Some(&self.account))
    }
}

/// Whether a statement under this resource's id still says what this
/// resource wrote: Secrets Manager, for this secret (or, shared, for the
/// account's secrets) in its account. Broadened, or stripped of its
/// conditions, it still lets Secrets Manager in for this secret and is ours
/// to put right; naming another principal, secret or account, someone has
/// made it theirs, and it is left alone.
pub fn still_ours(st: &PermissionStatement, secret_arn: &str) -> bool {
    let account = Arn::parse(secret_arn)
        .map(|a| a.account.to_string())
        .unwrap_or_default();
    st.service_principal.as_deref() == Some(SECRETS_MANAGER_PRINCIPAL)
        && st
            .source_arn
            .as_deref()
            .is_none_or(|source| arn_like(source, secret_arn))
        && st
            .source_account
            .as_deref()
            .is_none_or(|a| account.is_empty() || a == account)
}

/// IAM's `ArnLike`: `*` any run of characters, `?` any one.
fn arn_like(pattern: &str, text: &str) -> bool {
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

/// Statements letting Secrets Manager invoke the function for any secret of
/// any account: no `aws:SourceArn` condition. AWS's rotation templates add
/// one (`AWS::Lambda::Permission` with a principal and nothing else), and
/// with it anyone who can turn on rotation of a secret of their own with
/// this Lambda could make it act with this rotation's credentials.
pub fn unconditioned(statements: &Observed) -> impl Iterator<Item = &PermissionStatement> {
    statements.iter().filter(|st| {
        st.service_principal.as_deref() == Some(SECRETS_MANAGER_PRINCIPAL)
            && st.source_arn.is_none()
    })
}

/// Whether `function` is the Lambda of the stack this resource deployed:
/// its whole resource policy is then this resource's to keep scoped.
fn is_stack_lambda(p: &Private, function: Option<&str>) -> bool {
    function.is_some() && p.stack.as_ref().and_then(|s| s.lambda_arn.as_deref()) == function
}

/// Before anything is changed: a statement of its own must still fit in the
/// Lambda's policy. `Ok(Some(reason))` when it does not.
pub async fn check_room(
    c: &Clients,
    d: &Deadline,
    function_arn: &str,
    wanted: &Wanted,
) -> Result<Option<String>, AwsError> {
    let policy = lambda::find_policy(c, d, function_arn).await?;
    if policy.statements.iter().any(|st| st.sid == wanted.sid) {
        return Ok(None);
    }
    let added = lambda::invoke_statement_json(
        function_arn,
        &wanted.sid,
        &wanted.source_arn,
        &wanted.account,
    )
    .len();
    // The statement and the comma that joins it to the others.
    let after = policy.size + added + 1;
    if after <= POLICY_SIZE_LIMIT {
        return Ok(None);
    }
    let scope_hint = if wanted.shared {
        String::new()
    } else {
        " Set `permission_scope = \"account\"` on the rotations that share this Lambda: they \
then share one statement."
            .to_string()
    };
    Ok(Some(format!(
        "The resource policy of Lambda {function_arn} holds {} statements ({} bytes); one more \
for this secret would make it {after} bytes, past Lambda's limit of {POLICY_SIZE_LIMIT}.{scope_hint}",
        policy.statements.len(),
        policy.size
    )))
}

/// Adds the statement to `function` when it is missing or says something
/// else, then removes a statement recorded on another Lambda or under
/// another id (the rotation moved, or the scope changed).
pub async fn ensure(
    c: &Clients,
    d: &Deadline,
    function: &str,
    wanted: &Wanted,
    secret_arn: &str,
    p: &mut Private,
) -> Result<(), AwsError> {
    let sid = wanted.sid.as_str();
    let existing = lambda::find_invoke_permission(c, d, function, sid).await?;
    let met = existing.as_ref().is_some_and(|st| wanted.is_met_by(st));
    if let Some(st) = existing
        .as_ref()
        .filter(|st| !met && !still_ours(st, secret_arn))
    {
        return Err(AwsError::Failed(taken_statement(function, st, secret_arn)));
    }
    if existing.is_some() && !met {
        logging::debug(
            LOG,
            &format!("replacing statement {sid} on {function}: scoped differently"),
        );
        d.check()?;
        lambda::remove_permission(c, d, function, sid).await?;
    }
    let new = PermissionRecord {
        function: function.to_string(),
        sid: sid.to_string(),
        shared: wanted.shared,
    };
    if !met {
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
        lambda::add_invoke_permission(c, d, function, sid, &wanted.source_arn, &wanted.account)
            .await?;
    }
    if let Some(old) = p.permission.replace(new.clone()) {
        if old.function != new.function || old.sid != new.sid {
            if let Err(e) = remove(c, d, &old, secret_arn).await {
                p.permission = Some(old);
                return Err(e);
            }
        }
    }
    if is_stack_lambda(p, Some(function)) {
        remove_unconditioned(c, d, function, sid).await?;
    }
    Ok(())
}

/// Takes off the template's own invoke statement (and any other without a
/// condition) once this rotation's scoped statement is in place, which
/// grants Secrets Manager all the rotation needs. Removed rather than
/// rewritten: a rewritten copy would be a second statement for this secret
/// under an id this resource does not own. CloudFormation puts it back only
/// when it replaces the Lambda or the permission, after which this step
/// (every apply) and read (drift) see it again. Deleting the stack later
/// finds it gone, which CloudFormation counts as deleted.
async fn remove_unconditioned(
    c: &Clients,
    d: &Deadline,
    function: &str,
    own_sid: &str,
) -> Result<(), AwsError> {
    let statements = lambda::list_invoke_permissions(c, d, function).await?;
    let open: Vec<String> = unconditioned(&statements)
        .filter(|st| st.sid != own_sid && !st.sid.is_empty())
        .map(|st| st.sid.clone())
        .collect();
    for sid in open {
        logging::debug(
            LOG,
            &format!("removing statement {sid} from {function}: it lets Secrets Manager invoke it for any secret"),
        );
        d.check()?;
        lambda::remove_permission(c, d, function, &sid).await?;
    }
    Ok(())
}

/// Why a statement under this resource's id is not replaced.
fn taken_statement(function: &str, st: &PermissionStatement, secret_arn: &str) -> String {
    format!(
        "statement {} on Lambda {function} is not this rotation's: it lets {} invoke the function \
for {} (account {}), not Secrets Manager for {secret_arn}. The provider does not rewrite or \
remove a statement it did not make. Set `permission_statement_id` to an id of its own, or remove \
that statement (`aws lambda remove-permission --function-name {function} --statement-id {}`) if it \
is no longer used.",
        st.sid,
        st.service_principal
            .as_deref()
            .unwrap_or("another principal"),
        st.source_arn.as_deref().unwrap_or("any source"),
        st.source_account.as_deref().unwrap_or("any"),
        st.sid,
    )
}

/// Removes a statement this resource recorded: at once when it is the
/// secret's own; a shared one only when no other secret still rotates with
/// the function (see `sharing`).
async fn remove(
    c: &Clients,
    d: &Deadline,
    rec: &PermissionRecord,
    secret_arn: &str,
) -> Result<(), AwsError> {
    if !secret_arn.is_empty() {
        let found = lambda::find_invoke_permission(c, d, &rec.function, &rec.sid).await?;
        if let Some(st) = found.filter(|st| !still_ours(st, secret_arn)) {
            logging::warn(
                LOG,
                &format!(
                    "left statement {} on {} in place: it now lets {} invoke the function for {}, \
which this resource did not write",
                    st.sid,
                    rec.function,
                    st.service_principal
                        .as_deref()
                        .unwrap_or("another principal"),
                    st.source_arn.as_deref().unwrap_or("any source"),
                ),
            );
            return Ok(());
        }
    }
    let remove_it = || async {
        logging::debug(
            LOG,
            &format!("removing statement {} from {}", rec.sid, rec.function),
        );
        lambda::remove_permission(c, d, &rec.function, &rec.sid).await
    };
    if !rec.shared {
        return remove_it().await;
    }
    if lambda::find_function_configuration(c, d, &rec.function)
        .await?
        .is_none()
    {
        // The function is gone, and its policy with it.
        return Ok(());
    }
    let used = c
        .sharing
        .undo_unless_used(c, d, &rec.function, secret_arn, remove_it)
        .await?;
    if let Some(used) = used {
        logging::debug(
            LOG,
            &format!(
                "keeping shared statement {} on {}: {used}",
                rec.sid, rec.function
            ),
        );
    }
    Ok(())
}

/// Plan: the statement id this rotation would use, on a function that
/// already exists, when that id or function is new to the resource. `None`
/// with the account scope: its statement is shared by design.
pub fn statement_id_to_check(
    config: &Rotation,
    prior: Option<&Rotation>,
) -> Option<(String, String)> {
    if config.permission_scope.as_deref() == Some(SCOPE_ACCOUNT)
        || config.permission_scope.is_unknown()
    {
        return None;
    }
    let sid = match &config.permission_statement_id {
        Attr::Known(sid) => sid.clone(),
        Attr::Null => prior
            .and_then(|p| p.permission_statement_id.known().cloned())
            .filter(|sid| sid != ACCOUNT_STATEMENT_ID)
            .or_else(|| config.secret_id.known().map(|id| default_statement_id(id)))?,
        Attr::Unknown => return None,
    };
    // An existing Lambda, or the template's Lambda this resource already has
    // (on create it does not exist yet).
    let function = match config.rotation_lambda_arn.known() {
        Some(arn) => arn.clone(),
        None => prior
            .filter(|p| p.rotation_type == config.rotation_type)
            .and_then(|p| p.rotation_lambda_arn.known().cloned())?,
    };
    // Null in the prior state: the refresh found our statement missing or
    // changed (drift). Apply judges it then; a plan error here would also
    // block the destroy that must clean up after it.
    let known_to_us = prior.is_some_and(|p| {
        p.rotation_lambda_arn.known() == Some(&function)
            && (p.permission_statement_id.known() == Some(&sid)
                || p.permission_statement_id.is_null())
    });
    (!known_to_us).then_some((function, sid))
}

/// Plan: a `permission_statement_id` that names a statement this resource
/// did not make is refused, saying what it is: adding ours would replace it.
/// A statement already as this rotation wants it (an interrupted create)
/// is adopted by apply, so it is not refused.
pub async fn check_statement_id(
    c: &Clients,
    d: &Deadline,
    function: &str,
    sid: &str,
    secret_arn: &str,
) -> Result<Option<Diagnostic>, AwsError> {
    let Some(found) = lambda::find_invoke_permission(c, d, function, sid).await? else {
        return Ok(None);
    };
    let account = Arn::parse(secret_arn)
        .map(|a| a.account.to_string())
        .unwrap_or_default();
    let wanted = Wanted::for_scope(Some(SCOPE_SECRET), sid, secret_arn, &account);
    if wanted.is_met_by(&found) {
        return Ok(None);
    }
    Ok(Some(
        Diagnostic::error(
            "permission_statement_id names another statement",
            format!(
                "Lambda {function} already has a statement {sid}: it lets {} invoke the function \
for {} (account {}). The provider does not rewrite a statement it did not make. Set \
`permission_statement_id` to an id of its own. If that statement is this secret's rotation set \
up some other way, import the rotation instead (`terraform import <address> {secret_arn}`), or \
remove the statement (`aws lambda remove-permission --function-name {function} --statement-id \
{sid}`) and apply again.",
                found
                    .service_principal
                    .as_deref()
                    .unwrap_or("a principal other than a service"),
                found.source_arn.as_deref().unwrap_or("any source"),
                found.source_account.as_deref().unwrap_or("any"),
            ),
        )
        .at(AttributePath::root("permission_statement_id")),
    ))
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

/// A statement missing, or scoped to another source, principal or account,
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
    let scope = state.permission_scope.as_deref().or(Some(SCOPE_SECRET));
    let wanted = Wanted::for_scope(scope, sid, secret_arn, account);
    // On the stack's Lambda, the template's unconditioned statement is back
    // (or another like it): as open as a missing scope on ours.
    let opened = is_stack_lambda(p, looked_at) && unconditioned(statements).next().is_some();
    if statements.iter().any(|st| wanted.is_met_by(st)) && !opened {
        return;
    }
    s.permission_statement_id = Attr::Null;
    // Forget the record only when it is of the Lambda just looked at and
    // the statement is gone. A record of an earlier Lambda (an update that
    // switched Lambdas failed halfway), or of a statement that drifted,
    // still names a statement apply or destroy must remove.
    if p.permission
        .as_ref()
        .is_some_and(|r| Some(r.function.as_str()) == looked_at && r.sid == *sid)
        && !statements.iter().any(|st| st.sid == *sid)
    {
        p.permission = None;
    }
}

/// The statement for `secret_arn` among a Lambda's statements that this
/// provider made, with its scope: the secret's own (the default id
/// preferred), else the shared one.
pub fn find_ours<'a>(
    statements: &'a Observed,
    secret_arn: &str,
    default_sid: &str,
) -> Option<(&'a PermissionStatement, &'static str)> {
    let own = statements
        .iter()
        .filter(|st| st.sid.starts_with(STATEMENT_ID_PREFIX) && st.sid != ACCOUNT_STATEMENT_ID)
        .filter(|st| st.source_arn.as_deref() == Some(secret_arn))
        .max_by_key(|st| st.sid == default_sid);
    if let Some(st) = own {
        return Some((st, SCOPE_SECRET));
    }
    let pattern = account_secrets_pattern(secret_arn)?;
    statements
        .iter()
        .find(|st| st.sid == ACCOUNT_STATEMENT_ID && st.source_arn.as_deref() == Some(&pattern))
        .map(|st| (st, SCOPE_ACCOUNT))
}

/// Destroy: the recorded statement, and the one the state names. They
/// differ when an update that moved the rotation to another Lambda failed
/// halfway. Runs after rotation was turned off, so that a shared statement
/// counts this secret out. Statements on `left_to` (a function about to be
/// deleted, whose policy goes with it) stay recorded and in place.
pub async fn undo(
    c: &Clients,
    d: &Deadline,
    prior: &Rotation,
    lambda_arn: Option<&str>,
    secret_arn: Option<&str>,
    left_to: Option<&str>,
    p: &mut Private,
) -> Result<(), AwsError> {
    let shared = prior.permission_scope.as_deref() == Some(SCOPE_ACCOUNT);
    let named_by_state = lambda_arn
        .map(str::to_string)
        .zip(prior.permission_statement_id.known().cloned());
    let mut records: Vec<PermissionRecord> = p.permission.clone().into_iter().collect();
    if let Some((function, sid)) = named_by_state {
        if !records
            .iter()
            .any(|r| r.function == function && r.sid == sid)
        {
            records.push(PermissionRecord {
                function,
                sid,
                shared,
            });
        }
    }
    let goes_with = |rec: &PermissionRecord| left_to.is_some_and(|f| f == rec.function);
    for rec in records.iter().filter(|rec| !goes_with(rec)) {
        remove(c, d, rec, secret_arn.unwrap_or_default()).await?;
    }
    p.permission = p.permission.take().filter(goes_with);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf";

    fn statement(sid: &str, principal: &str, source: &str, account: &str) -> PermissionStatement {
        PermissionStatement {
            sid: sid.into(),
            service_principal: Some(principal.into()),
            source_arn: Some(source.into()),
            source_account: Some(account.into()),
        }
    }

    fn state(scope: &str, sid: &str) -> Rotation {
        Rotation {
            permission_scope: Attr::Known(scope.into()),
            permission_statement_id: Attr::Known(sid.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_statement_for_another_principal_or_account_is_drift() {
        let state = state(SCOPE_SECRET, "rdsrot-1");
        for (principal, account, drift) in [
            (SECRETS_MANAGER_PRINCIPAL, "111122223333", false),
            ("events.amazonaws.com", "111122223333", true),
            (SECRETS_MANAGER_PRINCIPAL, "444455556666", true),
        ] {
            let mut s = state.clone();
            let mut p = Private::new();
            let found = vec![statement("rdsrot-1", principal, SECRET, account)];
            record(
                &found,
                Some("arn:f"),
                SECRET,
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
    fn the_account_scope_wants_one_shared_statement_on_the_accounts_secrets() {
        let w = Wanted::for_scope(Some(SCOPE_ACCOUNT), "ignored", SECRET, "111122223333");
        assert_eq!(w.sid, ACCOUNT_STATEMENT_ID);
        assert_eq!(
            w.source_arn,
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:*"
        );
        assert!(w.shared);
        let state = state(SCOPE_ACCOUNT, ACCOUNT_STATEMENT_ID);
        let found = vec![statement(
            ACCOUNT_STATEMENT_ID,
            SECRETS_MANAGER_PRINCIPAL,
            &w.source_arn,
            "111122223333",
        )];
        let mut s = state.clone();
        record(
            &found,
            Some("arn:f"),
            SECRET,
            "111122223333",
            &state,
            &mut s,
            &mut Private::new(),
        );
        assert_eq!(s, state, "no drift");
        // Narrowed to another secret: drift.
        let narrowed = vec![statement(
            ACCOUNT_STATEMENT_ID,
            SECRETS_MANAGER_PRINCIPAL,
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:other-XyZxYz",
            "111122223333",
        )];
        record(
            &narrowed,
            Some("arn:f"),
            SECRET,
            "111122223333",
            &state,
            &mut s,
            &mut Private::new(),
        );
        assert!(s.permission_statement_id.is_null());
    }

    #[test]
    fn a_record_of_a_statement_still_there_is_kept_even_when_it_drifted() {
        let state = state(SCOPE_SECRET, "rdsrot-1");
        let mut s = state.clone();
        let mut p = Private::new();
        p.permission = Some(PermissionRecord {
            function: "arn:f".into(),
            sid: "rdsrot-1".into(),
            shared: false,
        });
        // Broadened out of band: still ours to remove on destroy.
        let found = vec![statement("rdsrot-1", SECRETS_MANAGER_PRINCIPAL, "*", "1")];
        record(&found, Some("arn:f"), SECRET, "1", &state, &mut s, &mut p);
        assert!(s.permission_statement_id.is_null());
        assert!(p.permission.is_some());
        // Gone: nothing left to remove.
        record(&vec![], Some("arn:f"), SECRET, "1", &state, &mut s, &mut p);
        assert!(p.permission.is_none());
    }

    #[test]
    fn import_takes_only_statements_this_provider_names() {
        let pattern = account_secrets_pattern(SECRET).expect("an ARN");
        let found = vec![
            statement(
                "SecretsManagerAccess",
                SECRETS_MANAGER_PRINCIPAL,
                SECRET,
                "1",
            ),
            statement(
                ACCOUNT_STATEMENT_ID,
                SECRETS_MANAGER_PRINCIPAL,
                &pattern,
                "1",
            ),
            statement("rdsrot-other", SECRETS_MANAGER_PRINCIPAL, SECRET, "1"),
            statement("rdsrot-default", SECRETS_MANAGER_PRINCIPAL, SECRET, "1"),
        ];
        let sid = |found: &Observed| {
            find_ours(found, SECRET, "rdsrot-default").map(|(s, scope)| (s.sid.clone(), scope))
        };
        assert_eq!(sid(&found), Some(("rdsrot-default".into(), SCOPE_SECRET)));
        assert_eq!(
            sid(&found[..3].to_vec()),
            Some(("rdsrot-other".into(), SCOPE_SECRET))
        );
        assert_eq!(
            sid(&found[..2].to_vec()),
            Some((ACCOUNT_STATEMENT_ID.into(), SCOPE_ACCOUNT))
        );
        assert!(sid(&found[..1].to_vec()).is_none());
    }

    #[test]
    fn a_statement_under_our_id_is_ours_only_while_it_lets_secrets_manager_in_for_this_secret() {
        let none = |mut st: PermissionStatement| {
            st.source_arn = None;
            st.source_account = None;
            st
        };
        let own = "111122223333";
        for (what, st, ours) in [
            (
                "as written",
                statement("s", SECRETS_MANAGER_PRINCIPAL, SECRET, own),
                true,
            ),
            (
                "broadened to the account's secrets",
                statement(
                    "s",
                    SECRETS_MANAGER_PRINCIPAL,
                    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:*",
                    own,
                ),
                true,
            ),
            (
                "conditions removed",
                none(statement("s", SECRETS_MANAGER_PRINCIPAL, SECRET, own)),
                true,
            ),
            (
                "another secret",
                statement(
                    "s",
                    SECRETS_MANAGER_PRINCIPAL,
                    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:other-XyZxYz",
                    own,
                ),
                false,
            ),
            (
                "another principal",
                statement("s", "events.amazonaws.com", SECRET, own),
                false,
            ),
            (
                "another account",
                statement("s", SECRETS_MANAGER_PRINCIPAL, SECRET, "444455556666"),
                false,
            ),
        ] {
            assert_eq!(still_ours(&st, SECRET), ours, "{what}");
        }
    }

    #[test]
    fn an_unconditioned_statement_on_the_stacks_lambda_is_drift() {
        let state = state(SCOPE_SECRET, "rdsrot-1");
        let ours = statement("rdsrot-1", SECRETS_MANAGER_PRINCIPAL, SECRET, "1");
        let template = PermissionStatement {
            sid: "serverlessrepo-x-RotationLambdaInvokePermission-1".into(),
            service_principal: Some(SECRETS_MANAGER_PRINCIPAL.into()),
            source_arn: None,
            source_account: None,
        };
        let stack_private = || {
            let mut p = Private::new();
            p.stack = Some(crate::rotation::private::StackRecord {
                name: "n".into(),
                id: Some("arn:stack".into()),
                lambda_arn: Some("arn:f".into()),
            });
            p
        };
        let found = vec![ours.clone(), template.clone()];
        let mut s = state.clone();
        record(
            &found,
            Some("arn:f"),
            SECRET,
            "1",
            &state,
            &mut s,
            &mut stack_private(),
        );
        assert!(
            s.permission_statement_id.is_null(),
            "the template's statement is back"
        );
        // Scoped, with ours: no drift.
        let mut scoped = template.clone();
        scoped.source_arn = Some(SECRET.into());
        let mut s = state.clone();
        record(
            &vec![ours.clone(), scoped],
            Some("arn:f"),
            SECRET,
            "1",
            &state,
            &mut s,
            &mut stack_private(),
        );
        assert_eq!(s, state);
        // Somebody else's Lambda: its other statements are not this
        // resource's to judge.
        let mut s = state.clone();
        record(
            &found,
            Some("arn:f"),
            SECRET,
            "1",
            &state,
            &mut s,
            &mut Private::new(),
        );
        assert_eq!(s, state);
        assert_eq!(
            unconditioned(&found)
                .map(|st| st.sid.as_str())
                .collect::<Vec<_>>(),
            [template.sid.as_str()]
        );
    }

    #[test]
    fn a_statement_id_is_checked_at_plan_only_when_new_to_the_resource_on_an_existing_function() {
        let lambda = "arn:aws:lambda:eu-west-1:111122223333:function:rotator";
        let config = Rotation {
            secret_id: Attr::Known(SECRET.into()),
            rotation_lambda_arn: Attr::Known(lambda.into()),
            ..Default::default()
        };
        // Create: the default id, on the configured Lambda.
        assert_eq!(
            statement_id_to_check(&config, None),
            Some((lambda.to_string(), default_statement_id(SECRET)))
        );
        // A chosen id.
        let mut chosen = config.clone();
        chosen.permission_statement_id = Attr::Known("AllowAll".into());
        assert_eq!(
            statement_id_to_check(&chosen, None),
            Some((lambda.to_string(), "AllowAll".to_string()))
        );
        // Already this resource's: not looked up again, nor when the refresh
        // found it drifted (apply judges it; destroy must not be blocked).
        let mut prior = chosen.clone();
        prior.permission_statement_id = Attr::Known("AllowAll".into());
        assert_eq!(statement_id_to_check(&chosen, Some(&prior)), None);
        prior.permission_statement_id = Attr::Null;
        assert_eq!(statement_id_to_check(&chosen, Some(&prior)), None);
        // Another id on the same Lambda is new to the resource.
        prior.permission_statement_id = Attr::Known("Before".into());
        assert!(statement_id_to_check(&chosen, Some(&prior)).is_some());
        // The account scope shares its statement by design.
        let mut shared = config.clone();
        shared.permission_scope = Attr::Known(SCOPE_ACCOUNT.into());
        assert_eq!(statement_id_to_check(&shared, None), None);
        // A template's Lambda does not exist before the create.
        let mut template = config.clone();
        template.rotation_lambda_arn = Attr::Null;
        template.rotation_type = Attr::Known("postgresql_single_user".into());
        assert_eq!(statement_id_to_check(&template, None), None);
    }

    #[test]
    fn the_statement_as_lambda_writes_it_is_measured() {
        let json = lambda::invoke_statement_json(
            "arn:aws:lambda:eu-west-1:111122223333:function:rotator",
            "rdsrot-0123456789abcdef",
            SECRET,
            "111122223333",
        );
        // About 300-400 bytes, as AWS documents.
        assert!((250..450).contains(&json.len()), "{}", json.len());
    }
}
