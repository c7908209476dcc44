//! The master-secret policy: for a multi-user rotation, an inline policy on
//! the rotation Lambda's role that lets it read the master secret (and
//! decrypt it, with `master_secret_kms_key_arn`, through Secrets Manager
//! only).
//!
//! Each secret has a policy of its own, named after the secret's ARN, so
//! that many secrets sharing one Lambda (and so one role) never overwrite or
//! delete each other's grant. The whole document is this provider's: any
//! change to it shows as drift.

use crate::aws::arn::{dns_suffix, role_name, Arn};
use crate::aws::error::AwsError;
use crate::aws::wait::Deadline;
use crate::aws::Clients;
use crate::aws::{iam, secretsmanager as sm};
use crate::logging;

use super::model::{Attr, Rotation};
use super::plan::stable_hash;
use super::private::{Private, RolePolicyRecord};

const LOG: &str = "rotation";

/// The one policy name earlier releases used for every secret. A record of
/// it is replaced by the secret's own name, and the policy itself removed
/// by the last secret rotating with the Lambda: the others on the role may
/// still rely on it (see `delete_recorded`).
pub const SHARED_LEGACY_NAME: &str = "rdsrot-master-secret-access";

/// The inline policy name for one secret: stable, and within IAM's 128
/// characters.
pub fn policy_name_for(secret_arn: &str) -> String {
    format!("rdsrot-master-{:016x}", stable_hash(secret_arn))
}

/// The document granting `master_arn` (the full ARN, with the random
/// suffix: IAM matches secret ARNs exactly) and, when given, decryption
/// with `kms_key_arn` for requests Secrets Manager makes in the master
/// secret's region.
pub fn document(master_arn: &str, kms_key_arn: Option<&str>) -> serde_json::Value {
    let mut statements = vec![serde_json::json!({
        "Sid": "ReadMasterSecret",
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        "Resource": master_arn,
    })];
    if let Some(key) = kms_key_arn {
        let mut decrypt = serde_json::json!({
            "Sid": "DecryptMasterSecret",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key,
        });
        if let Some(arn) = Arn::parse(master_arn).filter(|a| !a.region.is_empty()) {
            decrypt["Condition"] = serde_json::json!({
                "StringEquals": {
                    "kms:ViaService": format!(
                        "secretsmanager.{}.{}",
                        arn.region,
                        dns_suffix(arn.partition)
                    )
                }
            });
        }
        statements.push(decrypt);
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements})
}

/// What a policy grants, as far as the state can show it: the master
/// secret `GetSecretValue` is allowed on and the key `kms:Decrypt` is
/// allowed on, each when exactly one resource is named.
pub fn granted(doc: &serde_json::Value) -> (Option<String>, Option<String>) {
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => vec![],
    };
    let allows = |s: &serde_json::Value, action: &str| -> bool {
        if s["Effect"].as_str() != Some("Allow") {
            return false;
        }
        let matches = |a: &str| a.eq_ignore_ascii_case(action);
        match &s["Action"] {
            serde_json::Value::String(a) => matches(a),
            serde_json::Value::Array(a) => a.iter().any(|x| x.as_str().is_some_and(matches)),
            _ => false,
        }
    };
    let resource = |s: &serde_json::Value| -> Option<String> {
        match &s["Resource"] {
            serde_json::Value::String(r) => Some(r.clone()),
            serde_json::Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_string),
            _ => None,
        }
    };
    let find = |action: &str| {
        statements
            .iter()
            .find(|s| allows(s, action))
            .and_then(resource)
    };
    let master = find("secretsmanager:GetSecretValue").filter(|_| {
        statements
            .iter()
            .any(|s| allows(s, "secretsmanager:DescribeSecret"))
    });
    (master, find("kms:Decrypt"))
}

/// Whether `granted` names the configured master secret: the same ARN, or
/// the full ARN of a configured ARN without its random suffix.
fn names_master(granted: &str, configured: &str) -> bool {
    granted == configured
        || granted
            .strip_prefix(configured)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|suffix| suffix.len() == 6)
}

/// The configured master secret's full ARN, from Secrets Manager: IAM
/// matches only the full ARN, and a configuration may give it without the
/// random suffix.
async fn full_master_arn(c: &Clients, d: &Deadline, configured: &str) -> Result<String, AwsError> {
    match sm::find_secret(c, d, configured).await? {
        Some(s) => Ok(s.arn),
        None => Err(AwsError::Failed(format!(
            "the master secret {configured} does not exist (or these credentials cannot \
describe it)"
        ))),
    }
}

/// Deletes a recorded policy. One under the legacy shared name is every
/// secret's on the role that earlier releases set up (each wrote the same
/// name), so it goes only when no secret but this one rotates with
/// `function`, the Lambda with that role; with `function` unknown it
/// stays. Either way the record is this resource's no more.
async fn delete_recorded(
    c: &Clients,
    d: &Deadline,
    rec: &RolePolicyRecord,
    function: Option<&str>,
    secret_arn: &str,
) -> Result<(), AwsError> {
    if rec.name != SHARED_LEGACY_NAME {
        logging::debug(
            LOG,
            &format!("deleting role policy {} from {}", rec.name, rec.role),
        );
        return iam::delete_role_policy(c, d, &rec.role, &rec.name).await;
    }
    let Some(function) = function else {
        logging::debug(
            LOG,
            &format!(
                "leaving the shared role policy {} on {}",
                rec.name, rec.role
            ),
        );
        return Ok(());
    };
    let still_used = c
        .sharing
        .undo_unless_used(c, d, function, secret_arn, || async {
            logging::debug(
                LOG,
                &format!("deleting shared role policy {} from {}", rec.name, rec.role),
            );
            iam::delete_role_policy(c, d, &rec.role, &rec.name).await
        })
        .await?;
    if let Some(user) = still_used {
        logging::debug(
            LOG,
            &format!(
                "leaving the shared role policy {} on {}: {user}",
                rec.name, rec.role
            ),
        );
    }
    Ok(())
}

/// Puts the secret's policy on the Lambda's role when the plan has a master
/// secret, after removing one this resource put on another role (the Lambda
/// changed) or under the legacy shared name.
pub async fn ensure(
    c: &Clients,
    d: &Deadline,
    planned: &Rotation,
    secret_arn: &str,
    function: &str,
    role_arn: &str,
    p: &mut Private,
) -> Result<(), AwsError> {
    let role = role_name(role_arn)
        .ok_or_else(|| AwsError::Failed(format!("{role_arn:?} is not a role ARN")))?
        .to_string();
    let name = policy_name_for(secret_arn);
    if let Some(old) = p.role_policy.clone() {
        if old.role != role || old.name != name || planned.master_secret_arn.is_null() {
            // The Lambda is this secret's still: its decision must not
            // count the secret out of the function's users.
            let shared_on = (old.role == role).then_some(function);
            delete_recorded(c, d, &old, shared_on, secret_arn).await?;
            if shared_on.is_some() {
                c.sharing.join(d, function, secret_arn).await?;
            }
            p.role_policy = None;
        }
    }
    let Some(master) = planned.master_secret_arn.known() else {
        return Ok(());
    };
    let master = full_master_arn(c, d, master).await?;
    let want = document(&master, planned.master_secret_kms_key_arn.as_deref());
    let have = iam::find_role_policy(c, d, &role, &name).await?;
    if have.as_ref() != Some(&want) {
        logging::debug(LOG, &format!("putting role policy {name} on {role}"));
        // Record before the call: a put that reached AWS but failed to
        // answer must still be cleaned up.
        p.role_policy = Some(RolePolicyRecord {
            role: role.clone(),
            name: name.clone(),
        });
        d.check()?;
        iam::put_role_policy(c, d, &role, &name, &want).await?;
    }
    p.role_policy = Some(RolePolicyRecord { role, name });
    Ok(())
}

/// Where a read looks for the policy: on the role the Lambda has now (not
/// the state's, which may be out of date), under the recorded name when
/// the record is of that role, else under the secret's own name.
pub fn lookup(role_arn: Option<&str>, secret_arn: &str, p: &Private) -> Option<(String, String)> {
    let role = role_name(role_arn?)?.to_string();
    let name = p
        .role_policy
        .as_ref()
        .filter(|r| r.role == role)
        .map(|r| r.name.clone())
        .unwrap_or_else(|| policy_name_for(secret_arn));
    Some((role, name))
}

/// What a read found: the role and name looked at, and the document.
pub struct Observed {
    pub role: String,
    pub name: String,
    pub document: Option<serde_json::Value>,
}

pub async fn observe(
    c: &Clients,
    d: &Deadline,
    at: Option<(String, String)>,
) -> Result<Option<Observed>, AwsError> {
    let Some((role, name)) = at else {
        return Ok(None);
    };
    let document = iam::find_role_policy(c, d, &role, &name).await?;
    Ok(Some(Observed {
        role,
        name,
        document,
    }))
}

/// The policy as it grants: a missing policy, another master or key, or any
/// other change to the document (a broadened action or resource, an added
/// statement or condition) is drift on `master_secret_arn` or
/// `master_secret_kms_key_arn`, which apply then puts back.
pub fn record(found: Option<&Observed>, state: &Rotation, s: &mut Rotation, p: &mut Private) {
    if state.master_secret_arn.is_null() && p.role_policy.is_none() {
        return;
    }
    let Some(found) = found else {
        return;
    };
    let Some(doc) = &found.document else {
        s.master_secret_arn = Attr::Null;
        s.master_secret_kms_key_arn = Attr::Null;
        // Forget the record only when it is of the policy looked at: one on
        // another role (a Lambda switch failed halfway) must still go.
        if p.role_policy
            .as_ref()
            .is_some_and(|r| r.role == found.role && r.name == found.name)
        {
            p.role_policy = None;
        }
        return;
    };
    let configured_master = state.master_secret_arn.as_deref();
    // A policy taken over on import is the user's document: intact while it
    // grants the configured master secret (and key) and nothing else.
    let adopted = p
        .adopted
        .role_policy
        .as_ref()
        .is_some_and(|(role, name)| *role == found.role && *name == found.name);
    if adopted {
        if let Some((m, k)) = super::adopt::master_only_grant(doc) {
            if configured_master.is_some_and(|c| names_master(&m, c))
                && k.as_deref() == state.master_secret_kms_key_arn.as_deref()
            {
                return;
            }
        }
    }
    let (master, key) = granted(doc);
    let same_master = match (&master, configured_master) {
        (Some(g), Some(c)) => names_master(g, c),
        (None, None) => true,
        _ => false,
    };
    let intact = same_master
        && master
            .as_deref()
            .is_some_and(|m| *doc == document(m, state.master_secret_kms_key_arn.as_deref()));
    if intact {
        return;
    }
    s.master_secret_arn = if same_master {
        // Grants the master secret, but not only as configured.
        Attr::Null
    } else {
        Attr::from_option(master)
    };
    s.master_secret_kms_key_arn = Attr::from_option(key);
}

/// Destroy: the recorded policy, or the one the state implies, on the role
/// of `function` (the Lambda rotation used, when known).
pub async fn undo(
    c: &Clients,
    d: &Deadline,
    prior: &Rotation,
    function: Option<&str>,
    secret_arn: Option<&str>,
    p: &mut Private,
) -> Result<(), AwsError> {
    let policy = p.role_policy.clone().or_else(|| {
        prior.master_secret_arn.known()?;
        Some(RolePolicyRecord {
            role: role_name(prior.rotation_lambda_role_arn.known()?)?.to_string(),
            name: policy_name_for(secret_arn?),
        })
    });
    if let Some(pol) = policy {
        delete_recorded(c, d, &pol, function, secret_arn.unwrap_or_default()).await?;
    }
    p.role_policy = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:master-AbCdEf";
    const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234";

    fn state() -> Rotation {
        Rotation {
            master_secret_arn: Attr::Known(MASTER.into()),
            master_secret_kms_key_arn: Attr::Known(KEY.into()),
            ..Default::default()
        }
    }

    fn found(doc: serde_json::Value) -> Observed {
        Observed {
            role: "r".into(),
            name: policy_name_for("arn:s"),
            document: Some(doc),
        }
    }

    fn recorded(doc: serde_json::Value) -> Rotation {
        let state = state();
        let mut s = state.clone();
        let mut p = Private::new();
        record(Some(&found(doc)), &state, &mut s, &mut p);
        s
    }

    #[test]
    fn each_secret_has_its_own_policy_name() {
        let a = policy_name_for("arn:aws:secretsmanager:us-east-1:1:secret:a-AAAAAA");
        let b = policy_name_for("arn:aws:secretsmanager:us-east-1:1:secret:b-BBBBBB");
        assert_ne!(a, b);
        assert!(a.len() <= 128 && a.starts_with("rdsrot-master-"));
        assert_ne!(a, SHARED_LEGACY_NAME);
    }

    #[test]
    fn decryption_is_allowed_only_through_secrets_manager_of_the_region() {
        let doc = document(MASTER, Some(KEY));
        assert_eq!(
            doc["Statement"][1]["Condition"]["StringEquals"]["kms:ViaService"],
            "secretsmanager.eu-west-1.amazonaws.com"
        );
        let cn = document(
            "arn:aws-cn:secretsmanager:cn-north-1:1:secret:m-AbCdEf",
            Some("arn:aws-cn:kms:cn-north-1:1:key/k"),
        );
        assert_eq!(
            cn["Statement"][1]["Condition"]["StringEquals"]["kms:ViaService"],
            "secretsmanager.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn the_policy_as_put_is_no_drift() {
        let s = recorded(document(MASTER, Some(KEY)));
        assert_eq!(s, state());
    }

    #[test]
    fn a_broadened_action_or_resource_is_drift() {
        let mut doc = document(MASTER, Some(KEY));
        doc["Statement"][0]["Action"] = serde_json::json!("secretsmanager:*");
        doc["Statement"][0]["Resource"] = serde_json::json!("*");
        let s = recorded(doc);
        assert_ne!(s.master_secret_arn, state().master_secret_arn);
    }

    #[test]
    fn an_added_statement_or_condition_is_drift() {
        let mut doc = document(MASTER, Some(KEY));
        doc["Statement"]
            .as_array_mut()
            .expect("statements")
            .push(serde_json::json!({"Effect": "Allow", "Action": "iam:*", "Resource": "*"}));
        assert_eq!(recorded(doc).master_secret_arn, Attr::Null);
        let mut doc = document(MASTER, Some(KEY));
        doc["Statement"][1]
            .as_object_mut()
            .expect("statement")
            .remove("Condition");
        assert_eq!(recorded(doc).master_secret_arn, Attr::Null);
    }

    #[test]
    fn another_master_or_key_shows_as_that_value() {
        let other = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:other-XyZxYz";
        let s = recorded(document(other, Some(KEY)));
        assert_eq!(s.master_secret_arn, Attr::Known(other.into()));
        let s = recorded(document(MASTER, None));
        assert_eq!(s.master_secret_kms_key_arn, Attr::Null);
    }

    #[test]
    fn a_configured_arn_without_its_suffix_matches_the_full_arn() {
        let mut state = state();
        state.master_secret_arn =
            Attr::Known("arn:aws:secretsmanager:eu-west-1:111122223333:secret:master".into());
        let mut s = state.clone();
        let mut p = Private::new();
        record(
            Some(&found(document(MASTER, Some(KEY)))),
            &state,
            &mut s,
            &mut p,
        );
        assert_eq!(s, state);
    }

    #[test]
    fn a_missing_policy_forgets_only_its_own_record() {
        let state = state();
        let mut p = Private::new();
        p.role_policy = Some(RolePolicyRecord {
            role: "old-role".into(),
            name: policy_name_for("arn:s"),
        });
        let gone = Observed {
            role: "r".into(),
            name: policy_name_for("arn:s"),
            document: None,
        };
        let mut s = state.clone();
        record(Some(&gone), &state, &mut s, &mut p);
        assert_eq!(s.master_secret_arn, Attr::Null);
        assert!(
            p.role_policy.is_some(),
            "the old role's policy must still go"
        );
        p.role_policy = Some(RolePolicyRecord {
            role: "r".into(),
            name: policy_name_for("arn:s"),
        });
        record(Some(&gone), &state, &mut s, &mut p);
        assert!(p.role_policy.is_none());
    }

    #[test]
    fn the_read_looks_on_the_lambdas_current_role() {
        let mut p = Private::new();
        p.role_policy = Some(RolePolicyRecord {
            role: "old".into(),
            name: SHARED_LEGACY_NAME.into(),
        });
        let at = lookup(Some("arn:aws:iam::1:role/new"), "arn:s", &p);
        assert_eq!(at, Some(("new".into(), policy_name_for("arn:s"))));
        let at = lookup(Some("arn:aws:iam::1:role/old"), "arn:s", &p);
        assert_eq!(at, Some(("old".into(), SHARED_LEGACY_NAME.into())));
    }
}
