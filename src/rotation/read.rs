//! Read (drift detection) and import.
//!
//! Read asks every part what AWS has, concurrently where the look-ups do
//! not depend on each other, and lets each part write what it found into
//! the state, so that the next plan shows each out-of-band change as a diff
//! on the attribute it concerns; apply then puts it back.

use crate::aws::arn::{role_name, Arn};
use crate::aws::error::AwsError;
use crate::aws::wait::Deadline;
use crate::aws::Clients;
use crate::aws::{cloudformation as cfn, iam, lambda, secretsmanager as sm, serverlessrepo as sar};

use super::model::{Attr, Rotation};
use super::plan::default_statement_id;
use super::private::{PermissionRecord, Private, RolePolicyRecord, StackRecord};
use super::{adopt, master_policy, permission, secret, stack, template, vpc};

/// The state as AWS has it. A deleted secret keeps the resource (see
/// `secret::record_gone`): destroy must still remove what was made for it.
pub async fn read(
    c: &Clients,
    d: &Deadline,
    state: &Rotation,
    p: &Private,
) -> Result<(Rotation, Private), AwsError> {
    let secret_id = state
        .secret_arn
        .known()
        .or(state.secret_id.known())
        .cloned()
        .unwrap_or_default();
    let secret_arn = state.secret_arn.known().or(state.id.known()).cloned();
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
    let lambda_ref = managed_lambda.as_deref();

    // The master-secret policy is looked up on the role the Lambda has now,
    // so role drift shows in this refresh, not the next one.
    let function_and_policy = async {
        let function = match lambda_ref {
            Some(f) => lambda::find_function_configuration(c, d, f).await?,
            None => None,
        };
        let role = function
            .as_ref()
            .map(|f| f.role_arn.clone())
            .or(state.rotation_lambda_role_arn.known().cloned());
        let wants_policy = !state.master_secret_arn.is_null() || p.role_policy.is_some();
        let at = match (&secret_arn, wants_policy) {
            (Some(arn), true) => master_policy::lookup(role.as_deref(), arn, p),
            _ => None,
        };
        let policy = master_policy::observe(c, d, at).await?;
        Ok::<_, AwsError>((function, policy))
    };
    // Boxed, each: together they are large (see `apply::converge`).
    let (found_secret, function_and_policy, statements, found_stack) = tokio::join!(
        Box::pin(sm::find_secret(c, d, &secret_id)),
        Box::pin(function_and_policy),
        Box::pin(permission::observe(c, d, lambda_ref)),
        Box::pin(stack::observe(c, d, stack_id.as_deref())),
    );
    let found_secret = found_secret?;
    let (function, policy) = function_and_policy?;
    let statements = statements?;
    let found_stack = found_stack?;

    let mut s = state.clone();
    let mut p = p.clone();
    let Some(found) = found_secret.filter(|f| !f.scheduled_for_deletion) else {
        secret::record_gone(&mut s);
        return Ok((s, p));
    };
    // A state written before `permission_scope` existed used one statement
    // per secret.
    if s.permission_scope.is_null() {
        s.permission_scope = Attr::Known(permission::SCOPE_SECRET.into());
    }
    let state = &Rotation {
        permission_scope: s.permission_scope.clone(),
        ..state.clone()
    };
    secret::record(&found, lambda_ref, state, &mut s);
    stack::record(&found_stack, state, &mut s, &mut p);
    let account = Arn::parse(&found.arn)
        .map(|a| a.account.to_string())
        .unwrap_or_default();
    permission::record(
        &statements,
        lambda_ref,
        &found.arn,
        &account,
        state,
        &mut s,
        &mut p,
    );
    master_policy::record(policy.as_ref(), state, &mut s, &mut p);
    match &function {
        Some(f) => {
            s.rotation_lambda_role_arn = Attr::Known(f.role_arn.clone());
            vpc::record(f, state, &mut s, &p);
        }
        // The template's Lambda deleted under its stack: the plan deploys
        // the stack anew (see `stack::ensure`).
        None if !state.rotation_type.is_null() && lambda_ref.is_some() => {
            s.stack_id = Attr::Null;
        }
        None => {}
    }
    Ok((s, p))
}

/// Rebuilds the state of a rotation configured on the secret `id` (an ARN
/// or a name). Recorded as the resource's own: what this provider made (a
/// stack tagged for this secret, statements with its id prefix, the
/// secret's own master-secret policy), or else, for a rotation set up
/// outside it, what `adopt` takes over. Destroying an imported rotation
/// then removes those and leaves anything else in place.
pub async fn import(c: &Clients, d: &Deadline, id: &str) -> Result<(Rotation, Private), AwsError> {
    let secret = sm::find_secret(c, d, id)
        .await?
        .filter(|s| !s.scheduled_for_deletion)
        .ok_or_else(|| AwsError::not_found(format!("secret {id} does not exist")))?;
    let lambda_arn = secret.rotation_lambda_arn.clone().ok_or_else(|| {
        AwsError::Failed(format!(
            "secret {} has no rotation configured to import",
            secret.arn
        ))
    })?;
    let function = lambda::find_function_configuration(c, d, &lambda_arn)
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
        preflight_check: Attr::Known(true),
        enabled: Attr::Known(secret.rotation_enabled),
        rotation_rules: Attr::Known(vec![secret::rules_from_aws(
            &secret.rules.clone().unwrap_or_default(),
        )]),
        ..Default::default()
    };
    let mut p = Private::new();
    p.lambda = Some(function.arn.clone());

    // A Lambda from a repository template: find its stack, when it was
    // deployed for this secret, by this provider or (adopted) outside it.
    let stack_found = find_lambda_stack(c, d, &function).await?;
    // What other secrets rotate with is theirs too: nothing is adopted then.
    let may_adopt = adopt::serves_no_other_secret(c, d, &function.arn, &secret.arn).await?;
    let stack_sids = match &stack_found {
        Some(st) => adopt::stack_statement_ids(c, d, &st.id).await?,
        None => vec![],
    };
    let found = match stack_found {
        Some(st) if st.tags.get(stack::OWNER_TAG) == Some(&stack::owner_tag_value(&secret.arn)) => {
            Some(st)
        }
        Some(st) if may_adopt && adoptable_stack(&st) => {
            p.adopted.stack_id = Some(st.id.clone());
            Some(st)
        }
        _ => None,
    };
    let app = found
        .as_ref()
        .and_then(|st| st.tags.get("serverlessrepo:applicationId"))
        .and_then(|a| template::of_application(a).map(|t| t.rotation_type));
    if let (Some(st), Some(rotation_type)) = (&found, app) {
        // A parameter left at the template's default was not configured.
        let version = st.tags.get(stack::VERSION_TAG).cloned();
        let app_arn = st
            .tags
            .get("serverlessrepo:applicationId")
            .cloned()
            .unwrap_or_default();
        let defaults = match &version {
            Some(v) => sar::template_parameters(c, d, &app_arn, v)
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
        s.template_version = Attr::from_option(version.clone());
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

    // Our invoke permission: the default id if present, else another
    // statement of ours scoped to this secret.
    let statements = lambda::list_invoke_permissions(c, d, &function.arn).await?;
    let default_sid = default_statement_id(id);
    // None of ours: one set up outside the provider for this secret, else
    // none (the next plan adds one, the default id).
    let account = Arn::parse(&secret.arn).map(|a| a.account.to_string());
    if let Some((st, scope)) = permission::find_ours(&statements, &secret.arn, &default_sid) {
        s.permission_statement_id = Attr::Known(st.sid.clone());
        s.permission_scope = Attr::Known(scope.to_string());
        p.permission = Some(PermissionRecord {
            function: function.arn.clone(),
            sid: st.sid.clone(),
            shared: scope == permission::SCOPE_ACCOUNT,
        });
    } else if let Some(st) =
        adopt::adoptable_statement(&statements, &secret.arn, account.as_deref(), &stack_sids)
            .filter(|_| may_adopt)
    {
        s.permission_statement_id = Attr::Known(st.sid.clone());
        s.permission_scope = Attr::Known(permission::SCOPE_SECRET.to_string());
        p.permission = Some(PermissionRecord {
            function: function.arn.clone(),
            sid: st.sid.clone(),
            shared: false,
        });
        p.adopted.statement = Some((function.arn.clone(), st.sid.clone()));
    }

    // The master-secret policy: the secret's own, or the legacy shared one.
    if let Some(role) = role_name(&function.role_arn) {
        for name in [
            master_policy::policy_name_for(&secret.arn),
            master_policy::SHARED_LEGACY_NAME.to_string(),
        ] {
            if let Some(doc) = iam::find_role_policy(c, d, role, &name).await? {
                let (master, key) = master_policy::granted(&doc);
                s.master_secret_arn = Attr::from_option(master);
                s.master_secret_kms_key_arn = Attr::from_option(key);
                p.role_policy = Some(RolePolicyRecord {
                    role: role.to_string(),
                    name,
                });
                break;
            }
        }
        if p.role_policy.is_none() && may_adopt {
            if let Some((name, master, key)) =
                adopt::find_master_policy(c, d, role, &secret.arn).await?
            {
                s.master_secret_arn = Attr::Known(master);
                s.master_secret_kms_key_arn = Attr::from_option(key);
                p.adopted.role_policy = Some((role.to_string(), name.clone()));
                p.role_policy = Some(RolePolicyRecord {
                    role: role.to_string(),
                    name,
                });
            }
        }
    }
    Ok((s, p))
}

/// A stack the repository deployed from one of the rotation templates
/// (`serverlessrepo-<name>`, tagged with the application) that carries no
/// owner tag of this provider: one set up outside it, which import may take
/// over. A stack of another name cannot be updated through the repository,
/// and one owned for another secret is not this resource's.
fn adoptable_stack(st: &cfn::StackInfo) -> bool {
    !st.tags.contains_key(stack::OWNER_TAG)
        && st.name.starts_with(sar::STACK_NAME_PREFIX)
        && st.is_healthy()
        && st
            .tags
            .get("serverlessrepo:applicationId")
            .is_some_and(|a| template::of_application(a).is_some())
}

/// The stack that made the function: named by its CloudFormation tags, by
/// the stack that holds a resource of the function's name, or by the
/// provider's own naming of stacks.
async fn find_lambda_stack(
    c: &Clients,
    d: &Deadline,
    function: &lambda::FunctionInfo,
) -> Result<Option<cfn::StackInfo>, AwsError> {
    // Tags are a hint only: without them the naming convention still works.
    let tags = lambda::function_tags(c, d, &function.arn)
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
        if candidates.is_empty() {
            // Only where the tags could not be read; a refusal of this
            // look-up too leaves the naming convention.
            match cfn::find_stack_holding(c, d, name).await {
                Ok(Some(id)) => candidates.push(id),
                Ok(None) => {}
                Err(e) if e.is_no_credentials() || matches!(e, AwsError::Cancelled) => {
                    return Err(e)
                }
                Err(_) => {}
            }
        }
        candidates.push(sar::deployed_stack_name(&stack::stack_name_for(name)));
    }
    for candidate in candidates {
        if let Some(st) = cfn::find_stack(c, d, &candidate).await? {
            let made = cfn::find_stack_lambda(c, d, &st).await?;
            let name = function.arn.rsplit(':').next().unwrap_or_default();
            if made.as_deref() == Some(function.arn.as_str()) || made.as_deref() == Some(name) {
                return Ok(Some(st));
            }
        }
    }
    Ok(None)
}
