//! Read (drift detection) and import.
//!
//! Read looks at every part concurrently and writes what it finds into the
//! state, so that the next plan shows each out-of-band change as a diff on
//! the attribute it concerns; apply then puts it back.

use crate::aws::arn::role_name;
use crate::aws::error::AwsError;
use crate::aws::Clients;
use crate::aws::{cloudformation as cfn, iam, lambda, secretsmanager as sm, serverlessrepo as sar};

use super::model::{Attr, Rotation};
use super::parts::{self, MASTER_POLICY_NAME};
use super::plan::default_statement_id;
use super::private::{PermissionRecord, Private, RolePolicyRecord, StackRecord};

/// `Ok(None)`: the secret is gone or scheduled for deletion, so the
/// resource is gone.
pub async fn read(
    c: &Clients,
    state: &Rotation,
    p: &Private,
) -> Result<Option<(Rotation, Private)>, AwsError> {
    let secret_id = state
        .secret_arn
        .known()
        .or(state.secret_id.known())
        .cloned()
        .unwrap_or_default();
    let managed_lambda = p
        .lambda
        .clone()
        .or(p.stack.as_ref().and_then(|s| s.lambda_arn.clone()))
        .or(state.rotation_lambda_arn.known().cloned());
    let stack_id = p
        .stack
        .as_ref()
        .and_then(|s| s.id.clone())
        .or(state.stack_id.known().cloned());
    let role = state
        .rotation_lambda_role_arn
        .known()
        .and_then(|r| role_name(r))
        .map(str::to_string);

    let lambda_ref = managed_lambda.as_deref();
    let (secret, function, statements, stack, policy) = tokio::join!(
        sm::find_secret(c, &secret_id),
        async {
            match lambda_ref {
                Some(f) => lambda::find_function_configuration(c, f).await,
                None => Ok(None),
            }
        },
        async {
            match lambda_ref {
                Some(f) => lambda::list_invoke_permissions(c, f).await,
                None => Ok(vec![]),
            }
        },
        async {
            match &stack_id {
                Some(s) => cfn::find_stack(c, s).await,
                None => Ok(None),
            }
        },
        async {
            match &role {
                Some(r) => iam::find_role_policy(c, r, MASTER_POLICY_NAME).await,
                None => Ok(None),
            }
        },
    );
    let Some(secret) = secret?.filter(|s| !s.scheduled_for_deletion) else {
        return Ok(None);
    };
    let function = function?;
    let statements = statements?;
    let stack = stack?;
    let policy = policy?;

    let mut s = state.clone();
    let mut p = p.clone();
    s.id = Attr::Known(secret.arn.clone());
    s.secret_arn = Attr::Known(secret.arn.clone());

    // Rotation on or off, its Lambda and its schedule.
    s.enabled = Attr::Known(secret.rotation_enabled);
    if secret.rotation_enabled {
        if let Some(used) = &secret.rotation_lambda_arn {
            if managed_lambda.as_deref() != Some(used.as_str()) {
                s.rotation_lambda_arn = Attr::Known(used.clone());
            }
        }
        if let (Some(have), Some(block)) = (&secret.rules, state.rules()) {
            if !parts::rules_match(&parts::desired_rules(block), have) {
                s.rotation_rules = Attr::Known(vec![parts::rules_from_aws(have)]);
            }
        }
    }

    // The stack.
    if stack_id.is_some() && stack.is_none() {
        s.stack_id = Attr::Null;
        p.stack = None;
    }

    // The invoke permission.
    if let Some(sid) = state.permission_statement_id.known() {
        let ours = statements
            .iter()
            .any(|st| st.sid == *sid && st.source_arn.as_deref() == Some(secret.arn.as_str()));
        if !ours {
            s.permission_statement_id = Attr::Null;
            // Forget the record only when it is of the Lambda just looked at.
            // A record of an earlier Lambda (an update that switched Lambdas
            // failed halfway) still names a statement apply or destroy must
            // remove.
            if p.permission
                .as_ref()
                .is_some_and(|r| Some(r.function.as_str()) == lambda_ref)
            {
                p.permission = None;
            }
        }
    }

    // The master-secret policy, as it actually grants.
    if !state.master_secret_arn.is_null() || p.role_policy.is_some() {
        let (master, key) = policy
            .as_ref()
            .map(parts::granted_by_master_policy)
            .unwrap_or((None, None));
        s.master_secret_arn = Attr::from_option(master);
        s.master_secret_kms_key_arn = Attr::from_option(key);
        if policy.is_none() {
            p.role_policy = None;
        }
    }

    // The Lambda: its role and VPC placement.
    if let Some(f) = &function {
        s.rotation_lambda_role_arn = Attr::Known(f.role_arn.clone());
        let template = !state.rotation_type.is_null();
        let tracked = template
            || !state.vpc_subnet_ids.is_null()
            || !state.vpc_security_group_ids.is_null()
            || p.original_vpc.is_some();
        if tracked {
            let as_attr = |v: &Vec<String>| {
                if v.is_empty() {
                    Attr::Null
                } else {
                    Attr::Known(v.clone())
                }
            };
            let same = |a: &Attr<Vec<String>>, b: &Vec<String>| {
                let mut x = a.known().cloned().unwrap_or_default();
                x.sort();
                x == *b
            };
            if !same(&state.vpc_subnet_ids, &f.subnet_ids) {
                s.vpc_subnet_ids = as_attr(&f.subnet_ids);
            }
            if !same(&state.vpc_security_group_ids, &f.security_group_ids) {
                s.vpc_security_group_ids = as_attr(&f.security_group_ids);
            }
        }
    }
    Ok(Some((s, p)))
}

/// Rebuilds the state of a rotation configured on the secret `id` (an ARN
/// or a name).
pub async fn import(c: &Clients, id: &str) -> Result<(Rotation, Private), AwsError> {
    let secret = sm::find_secret(c, id)
        .await?
        .filter(|s| !s.scheduled_for_deletion)
        .ok_or_else(|| AwsError::not_found(format!("secret {id} does not exist")))?;
    let lambda_arn = secret.rotation_lambda_arn.clone().ok_or_else(|| {
        AwsError::Failed(format!(
            "secret {} has no rotation configured to import",
            secret.arn
        ))
    })?;
    let function = lambda::find_function_configuration(c, &lambda_arn)
        .await?
        .ok_or_else(|| {
            AwsError::not_found(format!("rotation Lambda {lambda_arn} does not exist"))
        })?;
    let mut s = Rotation {
        id: Attr::Known(secret.arn.clone()),
        secret_id: Attr::Known(id.to_string()),
        secret_arn: Attr::Known(secret.arn.clone()),
        rotation_lambda_arn: Attr::Known(function.arn.clone()),
        rotation_lambda_role_arn: Attr::Known(function.role_arn.clone()),
        rotate_immediately: Attr::Known(true),
        enabled: Attr::Known(secret.rotation_enabled),
        rotation_rules: Attr::Known(vec![parts::rules_from_aws(
            &secret.rules.clone().unwrap_or_default(),
        )]),
        ..Default::default()
    };
    let mut p = Private::new();
    p.lambda = Some(function.arn.clone());

    // A Lambda from a repository template: find its stack.
    let stack = find_lambda_stack(c, &function).await?;
    let app = stack
        .as_ref()
        .and_then(|st| st.tags.get("serverlessrepo:applicationId"))
        .and_then(|a| sar::rotation_type_of_application(a));
    if let (Some(st), Some(rotation_type)) = (&stack, app) {
        // A parameter left at the template's default was not configured.
        let version = st.tags.get("serverlessrepo:semanticVersion").cloned();
        let app_arn = st
            .tags
            .get("serverlessrepo:applicationId")
            .cloned()
            .unwrap_or_default();
        let defaults = match &version {
            Some(v) => sar::template_parameters(c, &app_arn, v)
                .await
                .unwrap_or_default(),
            None => vec![],
        };
        let is_default = |k: &str, v: &str| {
            defaults
                .iter()
                .any(|(name, d)| name == k && d.as_deref() == Some(v))
        };
        let param = |k: &str| {
            st.parameters
                .get(k)
                .filter(|v| !v.is_empty() && !is_default(k, v))
                .cloned()
        };
        let list = |k: &str| {
            param(k).map(|v| {
                let mut items: Vec<String> = v.split(',').map(|x| x.trim().to_string()).collect();
                items.sort();
                items
            })
        };
        s.rotation_type = Attr::Known(rotation_type.to_string());
        s.template_version =
            Attr::from_option(st.tags.get("serverlessrepo:semanticVersion").cloned());
        s.stack_id = Attr::Known(st.id.clone());
        s.function_name = Attr::from_option(param("functionName"));
        s.endpoint = Attr::from_option(param("endpoint"));
        s.kms_key_arn = Attr::from_option(param("kmsKeyArn"));
        s.exclude_characters = Attr::from_option(param("excludeCharacters"));
        s.vpc_subnet_ids = Attr::from_option(list("vpcSubnetIds"));
        s.vpc_security_group_ids = Attr::from_option(list("vpcSecurityGroupIds"));
        p.stack = Some(StackRecord {
            name: st
                .name
                .strip_prefix(sar::STACK_NAME_PREFIX)
                .unwrap_or(&st.name)
                .to_string(),
            id: Some(st.id.clone()),
            lambda_arn: Some(function.arn.clone()),
        });
        if s.rotation_type
            .as_deref()
            .is_some_and(|t| t.ends_with("_multi_user"))
        {
            s.master_secret_arn = Attr::from_option(param("masterSecretArn"));
            s.master_secret_kms_key_arn = Attr::from_option(param("masterSecretKmsKeyArn"));
        }
    } else if !function.subnet_ids.is_empty() {
        s.vpc_subnet_ids = Attr::Known(function.subnet_ids.clone());
        s.vpc_security_group_ids = Attr::Known(function.security_group_ids.clone());
    }

    // Our invoke permission: the default Sid if present, else any statement
    // scoped to this secret.
    let statements = lambda::list_invoke_permissions(c, &function.arn).await?;
    let default_sid = default_statement_id(id);
    let ours = statements
        .iter()
        .filter(|st| st.source_arn.as_deref() == Some(secret.arn.as_str()))
        .max_by_key(|st| st.sid == default_sid);
    if let Some(st) = ours {
        s.permission_statement_id = Attr::Known(st.sid.clone());
        p.permission = Some(PermissionRecord {
            function: function.arn.clone(),
            sid: st.sid.clone(),
        });
    }

    // The master-secret policy.
    if let Some(role) = role_name(&function.role_arn) {
        if let Some(doc) = iam::find_role_policy(c, role, MASTER_POLICY_NAME).await? {
            let (master, key) = parts::granted_by_master_policy(&doc);
            s.master_secret_arn = Attr::from_option(master);
            s.master_secret_kms_key_arn = Attr::from_option(key);
            p.role_policy = Some(RolePolicyRecord {
                role: role.to_string(),
                name: MASTER_POLICY_NAME.into(),
            });
        }
    }
    Ok((s, p))
}

/// The stack that made the function: named by its CloudFormation tags, or
/// by the provider's own naming of stacks.
async fn find_lambda_stack(
    c: &Clients,
    function: &lambda::FunctionInfo,
) -> Result<Option<cfn::StackInfo>, AwsError> {
    // Tags are a hint only: without them the naming convention still works.
    let tags = lambda::function_tags(c, &function.arn)
        .await
        .unwrap_or_default();
    let mut candidates: Vec<String> = [
        "aws:cloudformation:stack-id",
        "aws:cloudformation:stack-name",
    ]
    .iter()
    .filter_map(|k| tags.get(*k).cloned())
    .collect();
    if let Some(name) = function.arn.rsplit(':').next() {
        candidates.push(sar::deployed_stack_name(&parts::stack_name_for(name)));
    }
    for candidate in candidates {
        if let Some(st) = cfn::find_stack(c, &candidate).await? {
            let made = cfn::find_stack_lambda(c, &st).await?;
            let name = function.arn.rsplit(':').next().unwrap_or_default();
            if made.as_deref() == Some(function.arn.as_str()) || made.as_deref() == Some(name) {
                return Ok(Some(st));
            }
        }
    }
    Ok(None)
}
