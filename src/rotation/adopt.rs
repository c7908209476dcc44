//! Import of a rotation set up outside this provider: with the console, the
//! CLI steps of AWS's guide, CloudFormation or another tool. Import takes
//! over the parts that serve this secret alone, so that a configuration
//! describing them plans no new stack or Lambda and no rotation, and
//! destroy later removes them as it removes what the provider made:
//!
//! - the stack the Serverless Application Repository deployed the secret's
//!   rotation Lambda with (`serverlessrepo-<name>`, tagged with the
//!   application), whatever its name, when no other secret rotates with
//!   that Lambda;
//! - one invoke statement that lets Secrets Manager call the Lambda for
//!   this secret: conditioned on the secret, or on nothing (as the guide's
//!   `add-permission` makes it); a stack's own statement stays the stack's;
//! - one inline policy on the Lambda's role that grants reading the master
//!   secret and nothing else.
//!
//! Anything else found (a stack another secret's rotation also uses, a
//! policy granting more than the master secret, statements for other
//! secrets) stays as it is, and is never removed by this resource.

use crate::aws::lambda::PermissionStatement;
use crate::aws::{cloudformation as cfn, iam, secretsmanager as sm, AwsError, Clients, Deadline};

const SECRETS_MANAGER: &str = "secretsmanager.amazonaws.com";

/// The statement id an `AWS::Lambda::Permission` resource of a stack made:
/// its physical id is the statement id, or `<function>|<statement id>`.
pub fn statement_id_of_permission_resource(physical_id: &str) -> &str {
    physical_id.rsplit('|').next().unwrap_or(physical_id)
}

/// The statement ids a stack's own `AWS::Lambda::Permission` resources made.
pub async fn stack_statement_ids(
    c: &Clients,
    d: &Deadline,
    stack_ref: &str,
) -> Result<Vec<String>, AwsError> {
    Ok(
        cfn::find_stack_resources_of_type(c, d, stack_ref, "AWS::Lambda::Permission")
            .await?
            .iter()
            .map(|id| statement_id_of_permission_resource(id).to_string())
            .collect(),
    )
}

/// A statement that lets Secrets Manager invoke the function for this
/// secret only, or for any secret (no condition).
fn invokes_for(st: &PermissionStatement, secret_arn: &str, account: Option<&str>) -> bool {
    st.service_principal.as_deref() == Some(SECRETS_MANAGER)
        && st.source_arn.as_deref().is_none_or(|a| a == secret_arn)
        && st
            .source_account
            .as_deref()
            .is_none_or(|a| Some(a) == account)
}

/// The statement import takes over: one scoped to this secret first, else
/// one with no condition; never one a stack made (`stack_sids`).
pub fn adoptable_statement<'a>(
    statements: &'a [PermissionStatement],
    secret_arn: &str,
    account: Option<&str>,
    stack_sids: &[String],
) -> Option<&'a PermissionStatement> {
    let candidates = || {
        statements
            .iter()
            .filter(|st| !stack_sids.contains(&st.sid))
            .filter(|st| invokes_for(st, secret_arn, account))
    };
    candidates()
        .find(|st| st.source_arn.is_some())
        .or_else(|| candidates().next())
}

/// What a policy grants when it grants reading one master secret and
/// nothing else: every statement an `Allow` without conditions of
/// `secretsmanager:GetSecretValue`/`DescribeSecret` on one secret ARN, or
/// of `kms:Decrypt` (which may be conditioned) on one key ARN. `(master,
/// key)`.
pub fn master_only_grant(doc: &serde_json::Value) -> Option<(String, Option<String>)> {
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => return None,
    };
    let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
        match v {
            serde_json::Value::String(s) => Some(vec![s.clone()]),
            serde_json::Value::Array(a) => {
                a.iter().map(|x| x.as_str().map(str::to_string)).collect()
            }
            _ => None,
        }
    };
    let mut key = None::<String>;
    // Every secret a statement names, and whether GetSecretValue is among
    // what is allowed on it: all one ARN, read at least once.
    let mut secrets = Vec::<String>::new();
    let mut reads_value = false;
    for st in &statements {
        if st["Effect"].as_str() != Some("Allow")
            || st.get("NotAction").is_some()
            || st.get("NotResource").is_some()
        {
            return None;
        }
        let actions = strings(&st["Action"])?;
        let resources = strings(&st["Resource"])?;
        let [resource] = resources.as_slice() else {
            return None;
        };
        if resource.contains(['*', '?']) {
            return None;
        }
        let lower: Vec<String> = actions.iter().map(|a| a.to_ascii_lowercase()).collect();
        if lower.iter().all(|a| a == "kms:decrypt") {
            if key
                .replace(resource.clone())
                .is_some_and(|k| &k != resource)
            {
                return None;
            }
            continue;
        }
        let reads = [
            "secretsmanager:getsecretvalue",
            "secretsmanager:describesecret",
        ];
        if st.get("Condition").is_some() || !lower.iter().all(|a| reads.contains(&a.as_str())) {
            return None;
        }
        reads_value |= lower.iter().any(|a| a == reads[0]);
        secrets.push(resource.clone());
    }
    let master = secrets.first()?.clone();
    if !reads_value || secrets.iter().any(|s| s != &master) {
        return None;
    }
    Some((master, key))
}

/// The inline policy import takes over: one on `role` that grants reading
/// a master secret (not the rotated secret itself) and nothing else.
/// `(name, master, key)`.
pub async fn find_master_policy(
    c: &Clients,
    d: &Deadline,
    role: &str,
    secret_arn: &str,
) -> Result<Option<(String, String, Option<String>)>, AwsError> {
    for name in iam::list_role_policy_names(c, d, role).await? {
        let Some(doc) = iam::find_role_policy(c, d, role, &name).await? else {
            continue;
        };
        if let Some((master, key)) = master_only_grant(&doc) {
            if master != secret_arn {
                return Ok(Some((name, master, key)));
            }
        }
    }
    Ok(None)
}

/// Whether no secret but `secret_arn` rotates with the function: parts
/// that serve several secrets are not one resource's to delete. When the
/// listing is refused or fails, nothing is adopted (the import still
/// succeeds, without taking anything over).
pub async fn serves_no_other_secret(
    c: &Clients,
    d: &Deadline,
    function: &str,
    secret_arn: &str,
) -> Result<bool, AwsError> {
    match sm::secrets_rotating_with(c, d, function).await {
        Ok(secrets) => Ok(secrets.iter().all(|s| s == secret_arn)),
        Err(e) if e.is_no_credentials() || matches!(e, AwsError::Cancelled) => Err(e),
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf";
    const MASTER: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/master-GhIjKl";
    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/0b4c6b2e-7d2a-4a8e-9b39-5a1f0c2d3e4f";

    fn statement(sid: &str, source_arn: Option<&str>) -> PermissionStatement {
        PermissionStatement {
            sid: sid.into(),
            service_principal: Some(SECRETS_MANAGER.into()),
            source_arn: source_arn.map(str::to_string),
            source_account: None,
        }
    }

    #[test]
    fn a_permission_resource_names_its_statement_in_either_shape() {
        assert_eq!(
            statement_id_of_permission_resource("stack-Perm-1AB2"),
            "stack-Perm-1AB2"
        );
        assert_eq!(
            statement_id_of_permission_resource(
                "arn:aws:lambda:us-east-1:1:function:f|stack-Perm-1AB2"
            ),
            "stack-Perm-1AB2"
        );
    }

    #[test]
    fn the_scoped_statement_is_taken_first_then_an_unconditioned_one_never_the_stacks() {
        let all = vec![
            statement("FromStack", None),
            statement("AllowSecretsManager", None),
            statement("OtherSecret", Some(MASTER)),
        ];
        let stack = vec!["FromStack".to_string()];
        let got =
            adoptable_statement(&all, SECRET, Some("111122223333"), &stack).map(|s| s.sid.as_str());
        assert_eq!(got, Some("AllowSecretsManager"));
        let mut with_scoped = all.clone();
        with_scoped.push(statement("Scoped", Some(SECRET)));
        let got = adoptable_statement(&with_scoped, SECRET, Some("111122223333"), &stack)
            .map(|s| s.sid.as_str());
        assert_eq!(got, Some("Scoped"));
        let only_others = vec![
            statement("FromStack", None),
            statement("OtherSecret", Some(MASTER)),
        ];
        assert!(adoptable_statement(&only_others, SECRET, None, &stack).is_none());
    }

    #[test]
    fn only_a_policy_granting_just_the_master_secret_is_taken() {
        let cli = json!({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": MASTER}});
        assert_eq!(master_only_grant(&cli), Some((MASTER.into(), None)));
        let with_key = json!({"Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": MASTER},
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY,
             "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}}]});
        assert_eq!(
            master_only_grant(&with_key),
            Some((MASTER.into(), Some(KEY.into())))
        );
        // The templates' own policy grants more: never taken over.
        let template = json!({"Statement": [{"Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            "Resource": "arn:aws:secretsmanager:us-east-1:111122223333:secret:*"}]});
        assert_eq!(master_only_grant(&template), None);
        let wildcard = json!({"Statement": {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/*"}});
        assert_eq!(master_only_grant(&wildcard), None);
        let two = json!({"Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": MASTER},
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRET}]});
        assert_eq!(master_only_grant(&two), None);
        let more = json!({"Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": MASTER},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/k"}]});
        assert_eq!(master_only_grant(&more), None);
        let conditioned = json!({"Statement": {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
            "Resource": MASTER, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}});
        assert_eq!(master_only_grant(&conditioned), None);
    }
}
