//! Apply: create and update run the same ordered steps, each of which
//! makes one part match the plan (and does nothing when it already does);
//! delete undoes what the provider made, in reverse.
//!
//! Every step records what it made, in the state being built and in the
//! private state, before the next one starts, so that a failure returns a
//! state naming everything that exists.

use std::time::Duration;

use crate::aws::arn::{role_name, Arn};
use crate::aws::error::AwsError;
use crate::aws::wait::{retry_while, Deadline};
use crate::aws::Clients;
use crate::aws::{cloudformation as cfn, iam, lambda, secretsmanager as sm, serverlessrepo as sar};
use crate::logging;
use crate::tf::AttributePath;

use super::model::{Attr, Rotation};
use super::parts::{self, MASTER_POLICY_NAME};
use super::plan_checks;
use super::private::{PermissionRecord, Private, RolePolicyRecord, StackRecord, VpcRecord};

const LOG: &str = "rotation";

/// The steps of create, in order. Tests name them to inject a failure.
pub const STEPS: [&str; 7] = [
    "checking the secret",
    "deploying the rotation template",
    "reading the rotation Lambda",
    "adding the invoke permission",
    "granting access to the master secret",
    "placing the Lambda in the VPC",
    "turning rotation on",
];

/// A failed step: which, why, and the attribute to blame.
#[derive(Debug, Clone)]
pub struct StepError {
    pub step: &'static str,
    pub cause: String,
    pub attribute: Option<AttributePath>,
    /// The step failed because no AWS credentials were found: the user is
    /// told that, not the step's details.
    pub no_credentials: bool,
}

/// What a step failed with: an AWS error, or a sentence of our own.
pub trait StepCause {
    fn into_cause(self) -> (String, bool);
}
impl StepCause for AwsError {
    fn into_cause(self) -> (String, bool) {
        let no_credentials = self.is_no_credentials();
        (self.to_string(), no_credentials)
    }
}
impl StepCause for String {
    fn into_cause(self) -> (String, bool) {
        (self, false)
    }
}
impl StepCause for &str {
    fn into_cause(self) -> (String, bool) {
        (self.to_string(), false)
    }
}

impl StepError {
    fn new(step: &'static str, cause: impl StepCause) -> StepError {
        let (cause, no_credentials) = cause.into_cause();
        StepError {
            step,
            cause,
            attribute: None,
            no_credentials,
        }
    }
    fn at(mut self, attribute: &str) -> StepError {
        self.attribute = Some(AttributePath::root(attribute));
        self
    }
}

/// The AWS calls that make something, named for tests that lose their
/// answer (see `ApplyOptions::lose_answer_of`).
pub const MAKING_CALLS: [&str; 2] = ["creating the change set", "adding the invoke permission"];

/// Options of one apply: test-only hooks that prove partial-failure
/// handling. `fail_before` makes the named step (one of `STEPS`) fail before
/// it calls AWS; `lose_answer_of` makes the named call (one of
/// `MAKING_CALLS`) fail after AWS carried it out, as when the answer is lost
/// on the way back.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    pub fail_before: Option<String>,
    pub lose_answer_of: Option<String>,
}

fn hook(opts: &ApplyOptions, step: &'static str) -> Result<(), StepError> {
    if opts.fail_before.as_deref() == Some(step) {
        return Err(StepError::new(step, "failure injected by a test"));
    }
    Ok(())
}

fn answer_hook(opts: &ApplyOptions, call: &str) -> Result<(), AwsError> {
    if opts.lose_answer_of.as_deref() == Some(call) {
        return Err(AwsError::Failed(format!(
            "{call}: answer lost (injected by a test)"
        )));
    }
    Ok(())
}

/// Unknown values left in a partial state have no value: null them.
fn settle(mut s: Rotation) -> Rotation {
    fn fix<T>(a: &mut Attr<T>) {
        if a.is_unknown() {
            *a = Attr::Null;
        }
    }
    fix(&mut s.id);
    fix(&mut s.secret_arn);
    fix(&mut s.rotation_lambda_arn);
    fix(&mut s.rotation_lambda_role_arn);
    fix(&mut s.stack_id);
    fix(&mut s.template_version);
    fix(&mut s.function_name);
    fix(&mut s.endpoint);
    fix(&mut s.permission_statement_id);
    s
}

pub struct Outcome {
    pub state: Rotation,
    pub private: Private,
    pub error: Option<StepError>,
}

/// Create (`prior` is `None`) or update in place.
pub async fn converge(
    c: &Clients,
    planned: &Rotation,
    prior: Option<&Rotation>,
    mut private: Private,
    deadline: &Deadline,
    opts: &ApplyOptions,
) -> Outcome {
    let mut state = planned.clone();
    let result = converge_steps(c, planned, prior, &mut state, &mut private, deadline, opts).await;
    Outcome {
        state: settle(state),
        private,
        error: result.err(),
    }
}

async fn converge_steps(
    c: &Clients,
    planned: &Rotation,
    prior: Option<&Rotation>,
    s: &mut Rotation,
    p: &mut Private,
    deadline: &Deadline,
    opts: &ApplyOptions,
) -> Result<(), StepError> {
    // 1. The secret.
    let step = STEPS[0];
    hook(opts, step)?;
    let secret_id = planned
        .secret_id
        .known()
        .ok_or_else(|| StepError::new(step, "secret_id is not known").at("secret_id"))?;
    // The same checks as at plan, for values that were unknown then.
    if let Some(d) =
        plan_checks::region_mismatch("secret_id", "secret", secret_id, c.region.as_deref())
    {
        return Err(StepError::new(step, d.detail).at("secret_id"));
    }
    logging::debug(LOG, &format!("describing secret {secret_id}"));
    let secret = sm::find_secret(c, secret_id)
        .await
        .map_err(|e| StepError::new(step, e).at("secret_id"))?
        .ok_or_else(|| {
            StepError::new(
                step,
                format!(
                    "No secret {secret_id:?} exists in {}. Check the name or ARN, and that the \
provider's region and account are the secret's.",
                    c.region.as_deref().unwrap_or("the provider's region")
                ),
            )
            .at("secret_id")
        })?;
    if let Some(d) = plan_checks::unusable_secret(&secret) {
        return Err(StepError::new(step, d.detail).at("secret_id"));
    }
    if prior.is_none() && secret.rotation_enabled {
        return Err(StepError::new(
            step,
            format!(
                "secret {} already has rotation configured (Lambda {}); to manage it, import it with \
`terraform import` instead of creating it",
                secret.arn,
                secret.rotation_lambda_arn.as_deref().unwrap_or("none")
            ),
        )
        .at("secret_id"));
    }
    s.id = Attr::Known(secret.arn.clone());
    s.secret_arn = Attr::Known(secret.arn.clone());
    // The secret's own region picks the template's partition; the
    // provider's region only stands in when the ARN does not say.
    let parsed_arn = Arn::parse(&secret.arn);
    let account = parsed_arn
        .as_ref()
        .map(|a| a.account.to_string())
        .unwrap_or_default();
    let region = parsed_arn
        .as_ref()
        .map(|a| a.region)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| c.region.clone())
        .unwrap_or_default();

    // 2. The stack (template only).
    let step = STEPS[1];
    hook(opts, step)?;
    // A stack from an earlier, interrupted replacement.
    retire_stack(c, p, deadline)
        .await
        .map_err(|e| StepError::new(step, e).at("rotation_type"))?;
    let type_changed = prior.is_some_and(|pr| pr.rotation_type != planned.rotation_type);
    let function_changed = prior.is_some_and(|pr| pr.function_name != planned.function_name);
    let lambda_arn = if let Some(rotation_type) = planned.rotation_type.known() {
        let function_name = planned.function_name.known().ok_or_else(|| {
            StepError::new(step, "function_name is not known").at("function_name")
        })?;
        // A new function name is a parameter change on the same stack; a
        // new template is a new stack.
        let stack_name = match &p.stack {
            Some(rec) if !type_changed => rec.name.clone(),
            _ => parts::stack_name_for(function_name),
        };
        if type_changed {
            // The stack being replaced stays recorded until it is deleted.
            p.retiring_stack = p.stack.take().or_else(|| {
                let id = prior.and_then(|r| r.stack_id.known())?;
                Some(StackRecord {
                    name: id.clone(),
                    id: Some(id.clone()),
                    lambda_arn: None,
                })
            });
            // With the same function (or stack) name the new stack cannot be
            // created beside the old one: the old one goes first.
            let same_name = p
                .retiring_stack
                .as_ref()
                .is_some_and(|r| r.name == stack_name);
            if p.retiring_stack.is_some() && (!function_changed || same_name) {
                retire_stack(c, p, deadline)
                    .await
                    .map_err(|e| StepError::new(step, e).at("rotation_type"))?;
            }
        }
        // A template input removed from the configuration cannot be seen in
        // the stack's parameters (the template default comes back): compare
        // with the prior state too.
        let inputs_changed =
            prior.is_some_and(|pr| template_inputs(pr) != template_inputs(planned));
        let arn = deploy_stack(
            c,
            planned,
            rotation_type,
            &stack_name,
            &region,
            inputs_changed,
            s,
            p,
            deadline,
            opts,
        )
        .await
        .map_err(|e| StepError::new(step, e).at("rotation_type"))?;
        s.stack_id = Attr::from_option(p.stack.as_ref().and_then(|r| r.id.clone()));
        arn
    } else {
        // From a template to an existing Lambda: the stack goes once
        // rotation has moved.
        if let Some(rec) = p.stack.take() {
            p.retiring_stack = Some(rec);
        }
        planned
            .rotation_lambda_arn
            .known()
            .cloned()
            .ok_or_else(|| {
                StepError::new(step, "rotation_lambda_arn is not known").at("rotation_lambda_arn")
            })?
    };
    p.lambda = Some(lambda_arn.clone());
    s.rotation_lambda_arn = Attr::Known(lambda_arn.clone());

    // 3. The Lambda and its role.
    let step = STEPS[2];
    hook(opts, step)?;
    let attr = if planned.rotation_type.is_null() {
        "rotation_lambda_arn"
    } else {
        "rotation_type"
    };
    let function = lambda::find_function_configuration(c, &lambda_arn)
        .await
        .map_err(|e| StepError::new(step, e).at(attr))?
        .ok_or_else(|| {
            StepError::new(step, format!("Lambda function {lambda_arn} does not exist")).at(attr)
        })?;
    s.rotation_lambda_role_arn = Attr::Known(function.role_arn.clone());

    // 4. The invoke permission.
    let step = STEPS[3];
    hook(opts, step)?;
    let sid = planned
        .permission_statement_id
        .known()
        .cloned()
        .ok_or_else(|| {
            StepError::new(step, "permission_statement_id is not known")
                .at("permission_statement_id")
        })?;
    ensure_permission(c, &lambda_arn, &sid, &secret.arn, &account, p, opts)
        .await
        .map_err(|e| StepError::new(step, e).at("permission_statement_id"))?;
    s.permission_statement_id = Attr::Known(sid);

    // 5. The master-secret policy.
    let step = STEPS[4];
    hook(opts, step)?;
    ensure_master_policy(c, planned, &function.role_arn, p)
        .await
        .map_err(|e| StepError::new(step, e).at("master_secret_arn"))?;

    // 6. VPC placement.
    let step = STEPS[5];
    hook(opts, step)?;
    ensure_vpc(c, planned, &function, p, deadline)
        .await
        .map_err(|e| StepError::new(step, e).at("vpc_subnet_ids"))?;

    // 7. Rotation on (or off).
    let step = STEPS[6];
    hook(opts, step)?;
    ensure_rotation(c, planned, &secret, &lambda_arn, deadline)
        .await
        .map_err(|e| StepError::new(step, e).at("rotation_rules"))?;

    // Rotation now runs on the new Lambda: the old stack can go.
    retire_stack(c, p, deadline)
        .await
        .map_err(|e| StepError::new("deleting the replaced stack", e).at("rotation_type"))?;
    Ok(())
}

/// Deletes the stack being replaced, if any; it stays recorded until then.
async fn retire_stack(c: &Clients, p: &mut Private, deadline: &Deadline) -> Result<(), AwsError> {
    let Some(old) = p.retiring_stack.clone() else {
        return Ok(());
    };
    let id = old.stack_ref();
    logging::debug(LOG, &format!("deleting replaced stack {id}"));
    cfn::delete_stack(c, &id, &uuid::Uuid::new_v4().to_string(), deadline).await?;
    p.retiring_stack = None;
    Ok(())
}

/// Everything the template is deployed from.
fn template_inputs(r: &Rotation) -> impl PartialEq + '_ {
    (
        (&r.template_version, &r.function_name, &r.endpoint),
        (&r.vpc_subnet_ids, &r.vpc_security_group_ids),
        (&r.exclude_characters, &r.kms_key_arn),
        (&r.master_secret_arn, &r.master_secret_kms_key_arn),
    )
}

/// The template parameters, named as the template names them and limited to
/// those it declares.
fn template_parameters(planned: &Rotation, declared: &[String]) -> Vec<(String, String)> {
    let join = |v: &Attr<Vec<String>>| v.known().map(|v| v.join(","));
    let candidates: Vec<(&str, Option<String>)> = vec![
        ("functionName", planned.function_name.known().cloned()),
        ("endpoint", planned.endpoint.known().cloned()),
        ("vpcSubnetIds", join(&planned.vpc_subnet_ids)),
        ("vpcSecurityGroupIds", join(&planned.vpc_security_group_ids)),
        (
            "excludeCharacters",
            planned.exclude_characters.known().cloned(),
        ),
        ("kmsKeyArn", planned.kms_key_arn.known().cloned()),
        (
            "masterSecretArn",
            planned.master_secret_arn.known().cloned(),
        ),
        (
            "masterSecretKmsKeyArn",
            planned.master_secret_kms_key_arn.known().cloned(),
        ),
    ];
    candidates
        .into_iter()
        .filter(|(name, _)| declared.iter().any(|d| d == name))
        .filter_map(|(name, v)| v.map(|v| (name.to_string(), v)))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn deploy_stack(
    c: &Clients,
    planned: &Rotation,
    rotation_type: &str,
    stack_name: &str,
    region: &str,
    inputs_changed: bool,
    s: &mut Rotation,
    p: &mut Private,
    deadline: &Deadline,
    opts: &ApplyOptions,
) -> Result<String, AwsError> {
    let app = sar::application_arn(rotation_type, region).ok_or_else(|| {
        AwsError::Failed(format!("no template for rotation_type {rotation_type:?}"))
    })?;
    let version = planned
        .template_version
        .known()
        .cloned()
        .unwrap_or_else(|| super::plan::DEFAULT_TEMPLATE_VERSION.to_string());
    let declared: Vec<String> = match sar::template_parameters(c, &app, &version).await {
        Ok(defs) if !defs.is_empty() => defs.into_iter().map(|(name, _)| name).collect(),
        Ok(_) | Err(_) => sar::known_parameters(rotation_type)
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let params = template_parameters(planned, &declared);

    // An existing healthy stack with the same version and parameters needs
    // no change set.
    let full_name = sar::deployed_stack_name(stack_name);
    let existing_id = p
        .stack
        .as_ref()
        .and_then(|r| r.id.clone())
        .unwrap_or(full_name.clone());
    let mut existing = cfn::find_stack(c, &existing_id).await?;
    if let Some(st) = existing.as_ref().filter(|st| st.is_failed_creation()) {
        logging::debug(
            LOG,
            &format!("deleting stack {} left by a failed creation", st.id),
        );
        cfn::delete_stack(c, &st.id, &uuid::Uuid::new_v4().to_string(), deadline).await?;
        p.stack = None;
        existing = None;
    }
    let up_to_date = existing.as_ref().is_some_and(|st| {
        !inputs_changed
            && st.is_healthy()
            && st
                .tags
                .get("serverlessrepo:semanticVersion")
                .is_none_or(|v| *v == version)
            && params.iter().all(|(k, v)| st.parameters.get(k) == Some(v))
    });
    if let (true, Some(st)) = (up_to_date, &existing) {
        p.stack = Some(StackRecord {
            name: stack_name.to_string(),
            id: Some(st.id.clone()),
            lambda_arn: p.stack.as_ref().and_then(|r| r.lambda_arn.clone()),
        });
        s.stack_id = Attr::Known(st.id.clone());
    } else {
        logging::debug(
            LOG,
            &format!("creating change set for stack {full_name} from {app} {version}"),
        );
        // A creation may reach AWS even when its answer never comes back:
        // the name alone is enough to find and delete the stack later.
        if p.stack.is_none() {
            p.stack = Some(StackRecord {
                name: stack_name.to_string(),
                id: None,
                lambda_arn: None,
            });
        }
        let cs = sar::create_change_set(c, &app, &version, stack_name, &params).await?;
        answer_hook(opts, MAKING_CALLS[0])?;
        // The stack exists from here on (at least in REVIEW_IN_PROGRESS).
        p.stack = Some(StackRecord {
            name: stack_name.to_string(),
            id: Some(cs.stack_id.clone()),
            lambda_arn: None,
        });
        s.stack_id = Attr::Known(cs.stack_id.clone());
        match cfn::wait_change_set_created(c, &cs.change_set_id, &cs.stack_id, deadline).await? {
            cfn::ChangeSetOutcome::NoChanges => {
                logging::debug(LOG, "change set has no changes; deleting it");
                cfn::delete_change_set(c, &cs.change_set_id, &cs.stack_id).await?;
            }
            cfn::ChangeSetOutcome::Ready => {
                let token = uuid::Uuid::new_v4().to_string();
                cfn::execute_change_set(c, &cs.change_set_id, &cs.stack_id, &token).await?;
                cfn::wait_stack_settled(c, &cs.stack_id, deadline).await?;
            }
        }
    }
    let stack_id = p
        .stack
        .as_ref()
        .and_then(|r| r.id.clone())
        .unwrap_or(full_name);
    let stack = cfn::find_stack(c, &stack_id)
        .await?
        .ok_or_else(|| AwsError::not_found(format!("stack {stack_id} disappeared")))?;
    let arn = cfn::find_stack_lambda(c, &stack)
        .await?
        .ok_or_else(|| AwsError::Failed(format!("stack {stack_id} made no rotation Lambda")))?;
    // Resources may name the function rather than give its ARN.
    let arn = if arn.starts_with("arn:") {
        arn
    } else {
        lambda::find_function_configuration(c, &arn)
            .await?
            .map(|f| f.arn)
            .unwrap_or(arn)
    };
    if let Some(rec) = p.stack.as_mut() {
        rec.lambda_arn = Some(arn.clone());
    }
    Ok(arn)
}

async fn ensure_permission(
    c: &Clients,
    function: &str,
    sid: &str,
    secret_arn: &str,
    account: &str,
    p: &mut Private,
    opts: &ApplyOptions,
) -> Result<(), AwsError> {
    let existing = lambda::find_invoke_permission(c, function, sid).await?;
    let scoped = existing.as_ref().is_some_and(|st| {
        st.source_arn.as_deref() == Some(secret_arn)
            && st.service_principal.as_deref() == Some(lambda::SECRETS_MANAGER_PRINCIPAL)
    });
    if existing.is_some() && !scoped {
        logging::debug(
            LOG,
            &format!("replacing statement {sid} on {function}: scoped differently"),
        );
        lambda::remove_permission(c, function, sid).await?;
    }
    let new = PermissionRecord {
        function: function.to_string(),
        sid: sid.to_string(),
    };
    if !scoped {
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
        lambda::add_invoke_permission(c, function, sid, secret_arn, account).await?;
        answer_hook(opts, MAKING_CALLS[1])?;
    }
    if let Some(old) = p.permission.replace(new.clone()) {
        if old != new {
            logging::debug(
                LOG,
                &format!("removing old statement {} from {}", old.sid, old.function),
            );
            if let Err(e) = lambda::remove_permission(c, &old.function, &old.sid).await {
                p.permission = Some(old);
                return Err(e);
            }
        }
    }
    Ok(())
}

async fn ensure_master_policy(
    c: &Clients,
    planned: &Rotation,
    role_arn: &str,
    p: &mut Private,
) -> Result<(), AwsError> {
    let role = role_name(role_arn)
        .ok_or_else(|| AwsError::Failed(format!("{role_arn:?} is not a role ARN")))?
        .to_string();
    // A policy we put on another role (the Lambda changed) goes first.
    if let Some(old) = p.role_policy.clone() {
        if old.role != role || planned.master_secret_arn.is_null() {
            logging::debug(
                LOG,
                &format!("deleting role policy {} from {}", old.name, old.role),
            );
            iam::delete_role_policy(c, &old.role, &old.name).await?;
            p.role_policy = None;
        }
    }
    let Some(master) = planned.master_secret_arn.known() else {
        return Ok(());
    };
    let want = parts::master_policy_document(master, planned.master_secret_kms_key_arn.as_deref());
    let have = iam::find_role_policy(c, &role, MASTER_POLICY_NAME).await?;
    let up_to_date = have.as_ref().is_some_and(|doc| {
        parts::granted_by_master_policy(doc) == parts::granted_by_master_policy(&want)
    });
    if !up_to_date {
        logging::debug(
            LOG,
            &format!("putting role policy {MASTER_POLICY_NAME} on {role}"),
        );
        // Record before the call: a put that reached AWS but failed to
        // answer must still be cleaned up.
        p.role_policy = Some(RolePolicyRecord {
            role: role.clone(),
            name: MASTER_POLICY_NAME.into(),
        });
        iam::put_role_policy(c, &role, MASTER_POLICY_NAME, &want).await?;
    }
    p.role_policy = Some(RolePolicyRecord {
        role,
        name: MASTER_POLICY_NAME.into(),
    });
    Ok(())
}

async fn ensure_vpc(
    c: &Clients,
    planned: &Rotation,
    function: &lambda::FunctionInfo,
    p: &mut Private,
    deadline: &Deadline,
) -> Result<(), AwsError> {
    let sorted = |a: &Attr<Vec<String>>| {
        let mut v = a.known().cloned().unwrap_or_default();
        v.sort();
        v
    };
    // The rotation moved to another Lambda: the one we moved goes back first.
    if let Some(orig) = p.original_vpc.clone() {
        if let Some(other) = orig.function.as_ref().filter(|f| **f != function.arn) {
            if lambda::find_function_configuration(c, other)
                .await?
                .is_some()
            {
                logging::debug(LOG, &format!("restoring VPC placement of {other}"));
                lambda::update_vpc_config(
                    c,
                    other,
                    &orig.subnet_ids,
                    &orig.security_group_ids,
                    deadline,
                )
                .await?;
            }
            p.original_vpc = None;
        }
    }
    let template = !planned.rotation_type.is_null();
    let configured = !planned.vpc_subnet_ids.is_null() || !planned.vpc_security_group_ids.is_null();
    let (subnets, groups) = if configured || template {
        (
            sorted(&planned.vpc_subnet_ids),
            sorted(&planned.vpc_security_group_ids),
        )
    } else if let Some(orig) = &p.original_vpc {
        // No longer configured: put back what the Lambda had.
        (orig.subnet_ids.clone(), orig.security_group_ids.clone())
    } else {
        return Ok(());
    };
    if function.subnet_ids == subnets && function.security_group_ids == groups {
        if !configured && !template {
            p.original_vpc = None;
        }
        return Ok(());
    }
    if !template && configured && p.original_vpc.is_none() {
        p.original_vpc = Some(VpcRecord {
            function: Some(function.arn.clone()),
            subnet_ids: function.subnet_ids.clone(),
            security_group_ids: function.security_group_ids.clone(),
        });
    }
    logging::debug(LOG, &format!("updating VPC placement of {}", function.arn));
    lambda::update_vpc_config(c, &function.arn, &subnets, &groups, deadline).await?;
    if !configured && !template {
        p.original_vpc = None;
    }
    Ok(())
}

/// IAM is eventually consistent: right after a role or permission change,
/// Secrets Manager may not be able to invoke the Lambda yet. These are the
/// only errors retried, within this window.
const PROPAGATION: Duration = lambda::PROPAGATION;

fn is_propagation_error(e: &AwsError) -> bool {
    match e.code() {
        Some("AccessDeniedException") => true,
        // Only text tells this InvalidRequestException apart from a real
        // mistake: AWS sends no finer code.
        Some("InvalidRequestException") => {
            let text = e.to_string().to_ascii_lowercase();
            text.contains("lambda") && (text.contains("invoke") || text.contains("permission"))
        }
        _ => false,
    }
}

async fn ensure_rotation(
    c: &Clients,
    planned: &Rotation,
    secret: &sm::SecretInfo,
    lambda_arn: &str,
    deadline: &Deadline,
) -> Result<(), AwsError> {
    let enabled = planned.enabled.known().copied().unwrap_or(true);
    if !enabled {
        if secret.rotation_enabled {
            logging::debug(LOG, &format!("cancelling rotation of {}", secret.arn));
            sm::cancel_rotation(c, &secret.arn).await?;
            sm::remove_orphan_pending_label(c, &secret.arn).await?;
        }
        return Ok(());
    }
    let want = planned
        .rules()
        .map(parts::desired_rules)
        .ok_or_else(|| AwsError::Failed("rotation_rules is not known".into()))?;
    let current_ok = secret.rotation_enabled
        && secret.rotation_lambda_arn.as_deref() == Some(lambda_arn)
        && secret
            .rules
            .as_ref()
            .is_some_and(|have| parts::rules_match(&want, have));
    if current_ok {
        return Ok(());
    }
    let immediately = planned.rotate_immediately.known().copied().unwrap_or(true);
    let token = uuid::Uuid::new_v4().to_string();
    let window = deadline.within(
        "waiting for IAM to let Secrets Manager invoke the Lambda",
        PROPAGATION,
    );
    logging::debug(
        LOG,
        &format!("turning on rotation of {} with {lambda_arn}", secret.arn),
    );
    retry_while(&window, is_propagation_error, || {
        sm::rotate_secret(c, &secret.arn, lambda_arn, &want, immediately, &token)
    })
    .await?;
    Ok(())
}

/// Destroy: undo what the provider made. Not found counts as done. Returns
/// the private state still holding whatever could not be removed.
pub async fn delete(
    c: &Clients,
    prior: &Rotation,
    mut p: Private,
    deadline: &Deadline,
) -> (Private, Result<(), StepError>) {
    let r = delete_steps(c, prior, &mut p, deadline).await;
    (p, r)
}

async fn delete_steps(
    c: &Clients,
    prior: &Rotation,
    p: &mut Private,
    deadline: &Deadline,
) -> Result<(), StepError> {
    let secret_id = prior
        .secret_arn
        .known()
        .or(prior.secret_id.known())
        .cloned();
    let lambda_arn = p
        .lambda
        .clone()
        .or(prior.rotation_lambda_arn.known().cloned());

    let step = "turning rotation off";
    if let Some(id) = &secret_id {
        let secret = sm::find_secret(c, id)
            .await
            .map_err(|e| StepError::new(step, e))?;
        if let Some(secret) = secret.filter(|s| !s.scheduled_for_deletion) {
            if secret.rotation_enabled {
                logging::debug(LOG, &format!("cancelling rotation of {}", secret.arn));
                sm::cancel_rotation(c, &secret.arn)
                    .await
                    .map_err(|e| StepError::new(step, e))?;
            }
            let step = "removing a leftover AWSPENDING label";
            sm::remove_orphan_pending_label(c, &secret.arn)
                .await
                .map_err(|e| StepError::new(step, e))?;
        }
    }

    let step = "removing the invoke permission";
    // The recorded statement, and the one the state names: they differ when
    // an update that moved the rotation to another Lambda failed halfway.
    let named_by_state = lambda_arn
        .clone()
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
        lambda::remove_permission(c, &perm.function, &perm.sid)
            .await
            .map_err(|e| StepError::new(step, e))?;
    }
    p.permission = None;

    let step = "removing the master-secret policy";
    let policy = p.role_policy.clone().or_else(|| {
        prior.master_secret_arn.known()?;
        Some(RolePolicyRecord {
            role: role_name(prior.rotation_lambda_role_arn.known()?)?.to_string(),
            name: MASTER_POLICY_NAME.into(),
        })
    });
    if let Some(pol) = policy {
        logging::debug(
            LOG,
            &format!("deleting role policy {} from {}", pol.name, pol.role),
        );
        iam::delete_role_policy(c, &pol.role, &pol.name)
            .await
            .map_err(|e| StepError::new(step, e))?;
    }
    p.role_policy = None;

    let step = "restoring the Lambda's VPC placement";
    let original = p.original_vpc.clone();
    let moved = original
        .as_ref()
        .and_then(|o| o.function.clone())
        .or(lambda_arn.clone());
    if let (Some(orig), Some(function)) = (original, &moved) {
        if lambda::find_function_configuration(c, function)
            .await
            .map_err(|e| StepError::new(step, e))?
            .is_some()
        {
            lambda::update_vpc_config(
                c,
                function,
                &orig.subnet_ids,
                &orig.security_group_ids,
                deadline,
            )
            .await
            .map_err(|e| StepError::new(step, e))?;
        }
        p.original_vpc = None;
    }

    let step = "deleting the replaced stack";
    retire_stack(c, p, deadline)
        .await
        .map_err(|e| StepError::new(step, e))?;

    let step = "deleting the stack";
    let stack = p
        .stack
        .as_ref()
        .map(StackRecord::stack_ref)
        .or(prior.stack_id.known().cloned());
    if let Some(stack) = stack {
        logging::debug(LOG, &format!("deleting stack {stack}"));
        cfn::delete_stack(c, &stack, &uuid::Uuid::new_v4().to_string(), deadline)
            .await
            .map_err(|e| StepError::new(step, e))?;
    }
    p.stack = None;
    p.lambda = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::error::Kind;

    fn api(code: &str, message: &str) -> AwsError {
        AwsError::Api {
            kind: Kind::Other,
            code: Some(code.into()),
            message: message.into(),
        }
    }

    #[test]
    fn only_named_propagation_errors_are_retried() {
        assert!(is_propagation_error(&api(
            "AccessDeniedException",
            "Secrets Manager cannot invoke the specified Lambda function."
        )));
        assert!(is_propagation_error(&api(
            "InvalidRequestException",
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com."
        )));
        assert!(!is_propagation_error(&api(
            "InvalidRequestException",
            "A previous rotation isn't complete. That rotation will be reattempted."
        )));
        assert!(!is_propagation_error(&api("ResourceNotFoundException", "")));
        assert!(!is_propagation_error(&AwsError::Cancelled));
    }

    #[test]
    fn template_parameters_are_limited_to_those_declared() {
        let planned = Rotation {
            function_name: Attr::Known("f".into()),
            endpoint: Attr::Known("https://e".into()),
            master_secret_arn: Attr::Known("arn:m".into()),
            vpc_subnet_ids: Attr::Known(vec!["subnet-1".into(), "subnet-2".into()]),
            vpc_security_group_ids: Attr::Known(vec!["sg-1".into()]),
            ..Default::default()
        };
        let declared: Vec<String> = [
            "functionName",
            "endpoint",
            "vpcSubnetIds",
            "vpcSecurityGroupIds",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let params = template_parameters(&planned, &declared);
        assert_eq!(
            params,
            vec![
                ("functionName".to_string(), "f".to_string()),
                ("endpoint".to_string(), "https://e".to_string()),
                ("vpcSubnetIds".to_string(), "subnet-1,subnet-2".to_string()),
                ("vpcSecurityGroupIds".to_string(), "sg-1".to_string()),
            ],
            "masterSecretArn is not declared by a single-user template"
        );
    }
}
