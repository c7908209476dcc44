//! The template's stack: deployed from a Serverless Application Repository
//! change set, found again by its id or name, compared on read with the
//! state (status, template version, parameters), and deleted on destroy or
//! when a new rotation type or an existing Lambda replaces it.
//!
//! Ownership: every stack this provider deploys carries the tag
//! `rdsrot:secret` naming the secret it rotates, and `rdsrot:instance`
//! naming the resource instance that created it. A stack of the same name
//! without the secret's tag, or tagged for another secret, is somebody
//! else's: it is never adopted, updated or deleted.
//!
//! A stack tagged for the secret may be adopted by a new instance for that
//! secret: an earlier create cut off before Terraform recorded it (a killed
//! provider) left it, or the instance a `create_before_destroy`
//! replacement is replacing still has it. Both instances then know the
//! stack, so the one that uses it marks its Lambda with `rdsrot:owner`
//! (its instance id), and destroy leaves alone a stack whose Lambda another
//! instance has marked: the instance it was handed over to removes it.

use crate::aws::error::AwsError;
use crate::aws::wait::Deadline;
use crate::aws::Clients;
use crate::aws::{cloudformation as cfn, iam, lambda, serverlessrepo as sar};
use crate::logging;

use super::model::{Attr, Rotation};
use super::plan::stable_hash;
use super::private::{DeployedInputs, Private, StackRecord};
use super::template;

const LOG: &str = "rotation";

/// The tag naming the secret a stack was deployed for.
pub const OWNER_TAG: &str = "rdsrot:secret";
/// The tag naming the resource instance that created a stack.
pub const INSTANCE_TAG: &str = "rdsrot:instance";
/// The tag on a stack's Lambda naming the instance that uses it now. Not
/// one of the stack's tags: CloudFormation copies those onto the Lambda,
/// and a stack update would write the creator back over the user.
pub const OWNER_MARK_TAG: &str = "rdsrot:owner";
/// The tag the repository puts on the stack with the template's version.
pub const VERSION_TAG: &str = "serverlessrepo:semanticVersion";

/// Whether `instance` may treat as its own a part whose tags are `tags`:
/// an unmarked part is its maker's (an instance recorded before instance
/// ids existed is the sole owner of what it made); a marked one is the
/// marked instance's only.
pub fn marked_for<'a>(mark: Option<&'a str>, instance: Option<&str>) -> Result<(), &'a str> {
    match (mark, instance) {
        (None, _) => Ok(()),
        (Some(m), Some(i)) if m == i => Ok(()),
        (Some(m), _) => Err(m),
    }
}

/// The value of `OWNER_TAG` for a secret: its ARN, or a hash of it when the
/// ARN is longer than a tag value may be (256 characters).
pub fn owner_tag_value(secret_arn: &str) -> String {
    if secret_arn.len() <= 256 {
        secret_arn.to_string()
    } else {
        format!("fnv1a64:{:016x}", stable_hash(secret_arn))
    }
}

fn is_owned_by(stack: &cfn::StackInfo, secret_arn: &str) -> bool {
    stack.tags.get(OWNER_TAG).map(String::as_str) == Some(owner_tag_value(secret_arn).as_str())
}

/// Whether a stack found by its name alone is the one this instance
/// created: tagged for the secret, and by this instance (or by none, when
/// an instance recorded before instance ids created it).
fn is_created_by(stack: &cfn::StackInfo, secret_arn: &str, instance: Option<&str>) -> bool {
    is_owned_by(stack, secret_arn)
        && marked_for(stack.tags.get(INSTANCE_TAG).map(String::as_str), instance).is_ok()
}

/// The name passed to the repository; CloudFormation's stack is then
/// `serverlessrepo-<this>`. Stack names allow no underscores and must start
/// with a letter; default function names already start with `rdsrot-`.
pub fn stack_name_for(function_name: &str) -> String {
    let name = function_name.replace('_', "-");
    if name.starts_with("rdsrot-") {
        name
    } else {
        format!("rdsrot-{name}")
    }
}

/// The stack deployed as `stack_name` when it is tagged for this secret.
pub async fn find_owned(
    c: &Clients,
    d: &Deadline,
    stack_name: &str,
    secret_arn: &str,
) -> Result<Option<cfn::StackInfo>, AwsError> {
    Ok(cfn::find_stack(c, d, &sar::deployed_stack_name(stack_name))
        .await?
        .filter(|st| is_owned_by(st, secret_arn)))
}

/// The ARN of the Lambda the stack made. Its resources may name the
/// function rather than give its ARN: then the function is looked up.
pub async fn lambda_of(
    c: &Clients,
    d: &Deadline,
    stack: &cfn::StackInfo,
) -> Result<Option<String>, AwsError> {
    let Some(made) = cfn::find_stack_lambda(c, d, stack).await? else {
        return Ok(None);
    };
    if made.starts_with("arn:") {
        return Ok(Some(made));
    }
    Ok(Some(
        lambda::find_function_configuration(c, d, &made)
            .await?
            .map(|f| f.arn)
            .unwrap_or(made),
    ))
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

/// What the stack step needs to know beyond the plan.
pub struct StackTarget<'a> {
    pub secret_arn: &'a str,
    /// The secret's region: it picks the template's partition.
    pub region: &'a str,
}

/// Makes the stack match the plan and returns the Lambda rotation will use:
/// the stack's for a template, or the configured one. A stack being replaced
/// (a new rotation type, or an existing Lambda instead of the template) is
/// recorded as retiring; it is deleted only once rotation has moved to the
/// new Lambda (see `retire`), unless the new stack needs its name.
pub async fn ensure(
    c: &Clients,
    d: &Deadline,
    planned: &Rotation,
    prior: Option<&Rotation>,
    target: &StackTarget<'_>,
    s: &mut Rotation,
    p: &mut Private,
) -> Result<String, AwsError> {
    let Some(rotation_type) = planned.rotation_type.known() else {
        // From a template to an existing Lambda: the stack goes once
        // rotation has moved.
        if let Some(rec) = p.stack.take() {
            p.retiring_stack.get_or_insert(rec);
        }
        s.stack_id = Attr::Null;
        return planned
            .rotation_lambda_arn
            .known()
            .cloned()
            .ok_or_else(|| AwsError::Failed("rotation_lambda_arn is not known".into()));
    };
    let function_name = planned
        .function_name
        .known()
        .ok_or_else(|| AwsError::Failed("function_name is not known".into()))?;
    let type_changed = prior.is_some_and(|pr| pr.rotation_type != planned.rotation_type);
    if type_changed && p.retiring_stack.is_none() {
        // The stack being replaced stays recorded until it is deleted. A
        // retry of an interrupted replacement already has it recorded, and
        // `p.stack` is then the new stack, or nothing yet.
        p.retiring_stack = p.stack.take().or_else(|| {
            let id = prior.and_then(|r| r.stack_id.known())?;
            Some(StackRecord {
                name: id.clone(),
                id: Some(id.clone()),
                lambda_arn: None,
            })
        });
    }
    // A new function name is a parameter change on the same stack; a new
    // template is a new stack.
    let stack_name = match &p.stack {
        Some(rec) => rec.name.clone(),
        None => stack_name_for(function_name),
    };
    // The new stack cannot be created beside an old one of the same name:
    // the old one goes first, although rotation still uses it until the last
    // step (there is no other way to reuse the name).
    let same_name = p.retiring_stack.as_ref().is_some_and(|r| {
        r.name == stack_name || r.id.as_deref() == Some(&sar::deployed_stack_name(&stack_name))
    });
    if same_name {
        retire(c, d, Some(target.secret_arn), p).await?;
    }
    // A template input removed from the configuration cannot be seen in the
    // stack's parameters (the template default comes back): compare with the
    // prior state too.
    let inputs_changed = prior.is_some_and(|pr| template_inputs(pr) != template_inputs(planned));
    let arn = Box::pin(deploy(
        c,
        d,
        planned,
        rotation_type,
        &stack_name,
        target,
        inputs_changed,
        s,
        p,
    ))
    .await?;
    s.stack_id = Attr::from_option(p.stack.as_ref().and_then(|r| r.id.clone()));
    Ok(arn)
}

#[allow(clippy::too_many_arguments)]
async fn deploy(
    c: &Clients,
    d: &Deadline,
    planned: &Rotation,
    rotation_type: &str,
    stack_name: &str,
    target: &StackTarget<'_>,
    inputs_changed: bool,
    s: &mut Rotation,
    p: &mut Private,
) -> Result<String, AwsError> {
    // Nothing recorded: a stack found under the name is adopted (see the
    // module's docs); one recorded is this instance's already.
    let adopting = p.stack.is_none();
    let tpl = template::find(rotation_type).ok_or_else(|| {
        AwsError::Failed(format!("no template for rotation_type {rotation_type:?}"))
    })?;
    let app = tpl.application_arn(target.region);
    // Configured, else the version pinned in this partition, else (nothing
    // pinned) the newest the repository publishes.
    let wanted = planned
        .template_version
        .known()
        .map(String::as_str)
        .or_else(|| tpl.default_version(target.region));
    let found = describe_template(c, d, &app, wanted).await?;
    let version = found.semantic_version;
    let declared: Vec<String> = found.parameters.into_iter().map(|(name, _)| name).collect();
    // The Lambda and the stack are named by `functionName`: a version
    // without it is not one this provider can deploy.
    if !declared.iter().any(|p| p == "functionName") {
        return Err(AwsError::Failed(format!(
            "version {version} of {app} declares no functionName parameter{}, so it is not a \
rotation template this provider can deploy: set `template_version` to another version",
            if declared.is_empty() {
                " (it declares no parameters at all)"
            } else {
                ""
            }
        )));
    }
    let params = template_parameters(planned, &declared);

    let full_name = sar::deployed_stack_name(stack_name);
    let recorded_id = p.stack.as_ref().and_then(|r| r.id.clone());
    let existing_ref = recorded_id.clone().unwrap_or(full_name.clone());
    // Another deployment (ours, interrupted, or a rollback) must finish
    // before a change set can be made.
    let mut existing = cfn::wait_while_in_progress(c, &existing_ref, d).await?;
    if let Some(st) = &existing {
        // Only a stack this resource recorded or tagged is ours to change.
        let ours = recorded_id.is_some()
            || if adopting {
                is_owned_by(st, target.secret_arn)
            } else {
                is_created_by(st, target.secret_arn, p.instance.as_deref())
            };
        if !ours {
            return Err(AwsError::Failed(format!(
                "a stack named {} already exists and was not deployed for this secret (it has \
no {OWNER_TAG} tag naming {}). Another rotation may use it: set `function_name` to a name of \
its own for this rotation.",
                st.name, target.secret_arn
            )));
        }
    }
    if let Some(st) = existing.clone() {
        let broken = if st.is_failed_creation() || st.status == "DELETE_FAILED" {
            Some(format!("left in {}", st.status))
        } else if st.status == "UPDATE_ROLLBACK_FAILED" {
            return Err(AwsError::Failed(format!(
                "stack {} is in UPDATE_ROLLBACK_FAILED: CloudFormation cannot roll it back by \
itself. Fix the cause named in its events, continue the rollback (`aws cloudformation \
continue-update-rollback --stack-name {}`), then apply again.",
                st.name, st.id
            )));
        } else if st.is_healthy() && lambda_is_missing(c, d, &st).await? {
            // A change set would find no change: the stack must be made anew.
            Some("its rotation Lambda no longer exists".to_string())
        } else {
            None
        };
        if let Some(why) = broken {
            logging::debug(
                LOG,
                &format!("deleting stack {} ({why}) to deploy it anew", st.id),
            );
            release_role_policy(c, d, &st.id, p).await?;
            cfn::delete_stack(c, &st.id, &uuid::Uuid::new_v4().to_string(), d).await?;
            p.stack = None;
            existing = None;
        }
    }
    let up_to_date = existing.as_ref().is_some_and(|st| {
        !inputs_changed
            && st.is_healthy()
            && st.tags.get(VERSION_TAG).is_none_or(|v| *v == version)
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
        let mut tags = vec![(OWNER_TAG.to_string(), owner_tag_value(target.secret_arn))];
        if let Some(instance) = &p.instance {
            tags.push((INSTANCE_TAG.to_string(), instance.clone()));
        }
        let token = uuid::Uuid::new_v4().to_string();
        let cs = sar::create_change_set(
            c,
            d,
            sar::ChangeSetRequest {
                application_arn: &app,
                version: &version,
                stack_name,
                parameters: &params,
                tags: &tags,
                client_token: &token,
            },
        )
        .await?;
        // The stack exists from here on (at least in REVIEW_IN_PROGRESS).
        p.stack = Some(StackRecord {
            name: stack_name.to_string(),
            id: Some(cs.stack_id.clone()),
            lambda_arn: None,
        });
        s.stack_id = Attr::Known(cs.stack_id.clone());
        match cfn::wait_change_set_created(c, &cs.change_set_id, &cs.stack_id, d).await? {
            cfn::ChangeSetOutcome::NoChanges => {
                logging::debug(LOG, "change set has no changes; deleting it");
                cfn::delete_change_set(c, d, &cs.change_set_id, &cs.stack_id).await?;
            }
            cfn::ChangeSetOutcome::Ready => {
                let token = uuid::Uuid::new_v4().to_string();
                cfn::execute_change_set(c, d, &cs.change_set_id, &cs.stack_id, &token).await?;
                cfn::wait_change_set_executed(c, &cs.change_set_id, &cs.stack_id, d).await?;
                cfn::wait_stack_settled(c, &cs.stack_id, d).await?;
            }
        }
    }
    let stack_id = p
        .stack
        .as_ref()
        .and_then(|r| r.id.clone())
        .unwrap_or(full_name);
    let stack = cfn::find_stack(c, d, &stack_id)
        .await?
        .ok_or_else(|| AwsError::not_found(format!("stack {stack_id} disappeared")))?;
    let arn = lambda_of(c, d, &stack)
        .await?
        .ok_or_else(|| AwsError::Failed(format!("stack {stack_id} made no rotation Lambda")))?;
    if let Some(rec) = p.stack.as_mut() {
        rec.lambda_arn = Some(arn.clone());
    }
    claim(c, d, &stack.id, &arn, adopting, p).await?;
    if !up_to_date {
        // The stack may have changed its Lambda: read it afresh.
        c.reads.forget_function(&arn);
    }
    // Recorded only now: a failed update keeps the version deployed before.
    let sent = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    p.deployed = Some(DeployedInputs {
        rotation_type: rotation_type.to_string(),
        template_version: Some(version.clone()),
        function_name: sent("functionName"),
        endpoint: sent("endpoint"),
    });
    s.template_version = Attr::Known(version);
    Ok(arn)
}

/// The version to deploy and the parameters it declares, from the
/// repository. Its answer decides which parameters are sent: when it
/// cannot be had (after the retries of transient errors), the deployment
/// stops here, before anything is made, rather than guess them.
async fn describe_template(
    c: &Clients,
    d: &Deadline,
    app: &str,
    version: Option<&str>,
) -> Result<sar::TemplateVersion, AwsError> {
    sar::template_version(c, d, app, version)
        .await
        .map_err(|e| match (&e, version) {
            (AwsError::Api { .. }, Some(v)) if e.is_not_found() => AwsError::Failed(format!(
                "the Serverless Application Repository has no version {v} of {app} ({e}): set \
`template_version` to a version it publishes (`aws serverlessrepo list-application-versions \
--application-id {app}`)"
            )),
            (AwsError::Api { .. }, _) if !e.is_no_credentials() => AwsError::Failed(format!(
                "could not read the parameters of the template {app} {} from the Serverless \
Application Repository (GetApplication: {e}); they decide which parameters the change set may \
carry, so nothing was deployed. Allow `serverlessrepo:GetApplication` on the application, or \
apply again once the repository answers",
                version.unwrap_or("(newest version)")
            )),
            _ => e,
        })
}

/// Why a `function_name` cannot be used: a function of that name exists
/// that no stack of this resource made.
pub fn function_name_taken(name: &str, existing_arn: &str) -> String {
    format!(
        "a Lambda function named {name:?} already exists ({existing_arn}), and this resource did not deploy it: the template's stack would have to create a function of that name. Set `function_name` to a name no function has. To rotate with that function itself, set `rotation_lambda_arn = \"{existing_arn}\"` instead of `rotation_type`; if an rdsrot_rotation of this secret that is not in this state set it up, import that rotation (`terraform import <address> <secret ARN>`) instead of creating a new one."
    )
}

/// Marks the stack's Lambda as this instance's (`OWNER_MARK_TAG`). A
/// stack this instance had recorded whose Lambda another instance has
/// marked since was handed over to that instance: it is not taken back.
async fn claim(
    c: &Clients,
    d: &Deadline,
    stack_id: &str,
    lambda_arn: &str,
    adopting: bool,
    p: &Private,
) -> Result<(), AwsError> {
    let tags = lambda::function_tags(c, d, lambda_arn).await?;
    let mark = tags.get(OWNER_MARK_TAG).map(String::as_str);
    match marked_for(mark, p.instance.as_deref()) {
        Err(other) if !adopting => return Err(AwsError::Failed(handed_over(stack_id, other))),
        Ok(()) if mark.is_some() => return Ok(()),
        _ => {}
    }
    let Some(instance) = &p.instance else {
        return Ok(());
    };
    logging::debug(
        LOG,
        &format!("marking {lambda_arn} as used by instance {instance}"),
    );
    d.check()?;
    lambda::tag_function(
        c,
        d,
        lambda_arn,
        &[(OWNER_MARK_TAG.to_string(), instance.clone())],
    )
    .await
}

fn handed_over(stack_id: &str, other: &str) -> String {
    format!(
        "stack {stack_id} and its Lambda are now used by another rdsrot_rotation of this secret (instance {other}), which adopted them when it was created (a replacement created before this one was destroyed, or a second configuration of the same secret). This resource no longer manages them: remove it from the state (`terraform state rm <address>`), or destroy it, which leaves them to the other one."
    )
}

/// The instance that uses the stack's Lambda now, by its mark: an import
/// takes that identity on, as it takes the stack on.
pub async fn marked_user(
    c: &Clients,
    d: &Deadline,
    p: &Private,
) -> Result<Option<String>, AwsError> {
    let Some(lambda_arn) = p.stack.as_ref().and_then(|r| r.lambda_arn.as_deref()) else {
        return Ok(None);
    };
    let tags = lambda::function_tags(c, d, lambda_arn).await?;
    Ok(tags.get(OWNER_MARK_TAG).cloned())
}

/// The instance this one's stack was handed over to (see the module's
/// docs), if any: destroy then leaves the stack and everything rotation
/// uses with its Lambda to that instance.
pub async fn taken_over_by(
    c: &Clients,
    d: &Deadline,
    p: &Private,
) -> Result<Option<String>, AwsError> {
    let mark = marked_user(c, d, p).await?;
    Ok(marked_for(mark.as_deref(), p.instance.as_deref())
        .err()
        .map(str::to_string))
}

async fn lambda_is_missing(
    c: &Clients,
    d: &Deadline,
    stack: &cfn::StackInfo,
) -> Result<bool, AwsError> {
    let Some(made) = cfn::find_stack_lambda(c, d, stack).await? else {
        return Ok(false);
    };
    Ok(lambda::find_function_configuration(c, d, &made)
        .await?
        .is_none())
}

/// Takes our master-secret policy off a role the stack made, before the
/// stack is deleted: IAM refuses to delete a role that holds policies
/// CloudFormation did not put there (`DeleteConflict`), which would leave
/// the stack in DELETE_FAILED. The master-secret step puts the policy on
/// the next Lambda's role.
async fn release_role_policy(
    c: &Clients,
    d: &Deadline,
    stack_ref: &str,
    p: &mut Private,
) -> Result<(), AwsError> {
    let Some(record) = p.role_policy.clone() else {
        return Ok(());
    };
    if cfn::find_stack_roles(c, d, stack_ref)
        .await?
        .contains(&record.role)
    {
        logging::debug(
            LOG,
            &format!(
                "deleting role policy {} from {} before its stack",
                record.name, record.role
            ),
        );
        iam::delete_role_policy(c, d, &record.role, &record.name).await?;
        p.role_policy = None;
    }
    Ok(())
}

/// What names a recorded stack for deletion: its id, which only the stack
/// this instance created has; else (the creation's answer never came) the
/// stack found under its name, when its tags say this instance created it
/// for `secret_arn`. `None`: no stack of ours to delete.
async fn own_stack_ref(
    c: &Clients,
    d: &Deadline,
    rec: &StackRecord,
    secret_arn: Option<&str>,
    instance: Option<&str>,
) -> Result<Option<String>, AwsError> {
    if let Some(id) = &rec.id {
        return Ok(Some(id.clone()));
    }
    let Some(found) = cfn::find_stack(c, d, &rec.stack_ref()).await? else {
        return Ok(None);
    };
    if secret_arn.is_some_and(|arn| is_created_by(&found, arn, instance)) {
        return Ok(Some(found.id));
    }
    logging::debug(
        LOG,
        &format!(
            "leaving stack {}: its tags do not say this resource created it",
            found.id
        ),
    );
    Ok(None)
}

/// Deletes the stack being replaced, if any; it stays recorded until then.
pub async fn retire(
    c: &Clients,
    d: &Deadline,
    secret_arn: Option<&str>,
    p: &mut Private,
) -> Result<(), AwsError> {
    let Some(old) = p.retiring_stack.clone() else {
        return Ok(());
    };
    if let Some(id) = own_stack_ref(c, d, &old, secret_arn, p.instance.as_deref()).await? {
        logging::debug(LOG, &format!("deleting replaced stack {id}"));
        cfn::delete_stack(c, &id, &uuid::Uuid::new_v4().to_string(), d).await?;
    }
    p.retiring_stack = None;
    Ok(())
}

/// What a read found of the stack.
pub enum Observed {
    /// The state names no stack.
    NotTracked,
    Gone,
    Found(cfn::StackInfo),
}

pub async fn observe(
    c: &Clients,
    d: &Deadline,
    stack_id: Option<&str>,
) -> Result<Observed, AwsError> {
    let Some(id) = stack_id else {
        return Ok(Observed::NotTracked);
    };
    Ok(match cfn::find_stack(c, d, id).await? {
        Some(st) => Observed::Found(st),
        None => Observed::Gone,
    })
}

/// A stack deleted or in a failed state is drift on `stack_id` (the plan
/// deploys it anew); a failed one stays recorded, since it still has to be
/// deleted. The template version and the parameters the state sets are
/// compared with the stack's, so that a change that failed to deploy, or one
/// made outside Terraform, shows in the plan.
pub fn record(found: &Observed, state: &Rotation, s: &mut Rotation, p: &mut Private) {
    let st = match found {
        Observed::NotTracked => return,
        Observed::Gone => {
            s.stack_id = Attr::Null;
            p.stack = None;
            return;
        }
        Observed::Found(st) => st,
    };
    let usable = st.is_healthy() || st.status == "UPDATE_ROLLBACK_COMPLETE";
    if !usable && !st.is_in_progress() {
        s.stack_id = Attr::Null;
        return;
    }
    if p.deployed.is_none() && !st.is_in_progress() {
        p.deployed = baseline(st, state);
    }
    if let (Some(have), Attr::Known(_)) = (st.tags.get(VERSION_TAG), &state.template_version) {
        s.template_version = Attr::Known(have.clone());
    }
    let compare = |attr: &Attr<String>, key: &str, out: &mut Attr<String>| {
        if attr.is_null() {
            return;
        }
        match st.parameters.get(key) {
            Some(v) if v.is_empty() => *out = Attr::Null,
            Some(v) => *out = Attr::Known(v.clone()),
            None => {}
        }
    };
    compare(&state.function_name, "functionName", &mut s.function_name);
    compare(&state.endpoint, "endpoint", &mut s.endpoint);
    compare(&state.kms_key_arn, "kmsKeyArn", &mut s.kms_key_arn);
    compare(
        &state.exclude_characters,
        "excludeCharacters",
        &mut s.exclude_characters,
    );
}

/// What a state written before deployments were recorded (or an import)
/// takes as deployed: the stack as it is at the first refresh. A change
/// made before then is taken as wanted; every later one shows.
fn baseline(st: &cfn::StackInfo, state: &Rotation) -> Option<DeployedInputs> {
    let param = |k: &str| st.parameters.get(k).filter(|v| !v.is_empty()).cloned();
    Some(DeployedInputs {
        rotation_type: state.rotation_type.known()?.clone(),
        template_version: st.tags.get(VERSION_TAG).cloned(),
        function_name: param("functionName"),
        endpoint: param("endpoint"),
    })
}

/// Destroy: the stack being replaced, then the stack. Returns the Lambda
/// that went with the stack: the one its record names, when the stack
/// deleted was the recorded one.
pub async fn undo(
    c: &Clients,
    d: &Deadline,
    prior: &Rotation,
    secret_arn: Option<&str>,
    p: &mut Private,
) -> Result<Option<String>, AwsError> {
    retire(c, d, secret_arn, p).await?;
    let (stack, lambda) = match &p.stack {
        Some(rec) => (
            own_stack_ref(c, d, rec, secret_arn, p.instance.as_deref()).await?,
            rec.lambda_arn.clone(),
        ),
        None => (prior.stack_id.known().cloned(), None),
    };
    let Some(stack) = stack else {
        p.stack = None;
        return Ok(None);
    };
    logging::debug(LOG, &format!("deleting stack {stack}"));
    cfn::delete_stack(c, &stack, &uuid::Uuid::new_v4().to_string(), d).await?;
    p.stack = None;
    Ok(lambda)
}

/// The Lambda that destroy deletes with the stack: the recorded stack's,
/// once known. Its resource policy goes with it, so the statement this
/// resource put there is not removed on its own (see `apply::delete`).
pub fn lambda_deleted_with_stack(p: &Private) -> Option<&str> {
    p.stack.as_ref()?.lambda_arn.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn stack_names_are_valid_and_not_doubly_prefixed() {
        assert_eq!(stack_name_for("rdsrot-db-1234abcd"), "rdsrot-db-1234abcd");
        assert_eq!(stack_name_for("my_rotator"), "rdsrot-my-rotator");
        assert_eq!(stack_name_for("9lives"), "rdsrot-9lives");
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

    #[test]
    fn ownership_is_the_tag_naming_this_secret() {
        let mut st = cfn::StackInfo::default();
        assert!(!is_owned_by(&st, "arn:s"));
        st.tags.insert(OWNER_TAG.into(), "arn:other".into());
        assert!(!is_owned_by(&st, "arn:s"));
        st.tags.insert(OWNER_TAG.into(), "arn:s".into());
        assert!(is_owned_by(&st, "arn:s"));
        let long = format!("arn:{}", "x".repeat(300));
        let value = owner_tag_value(&long);
        assert!(value.len() <= 256 && value.starts_with("fnv1a64:"));
    }

    #[test]
    fn an_unmarked_part_is_its_makers_and_a_marked_one_its_instances() {
        assert_eq!(marked_for(None, None), Ok(()));
        assert_eq!(marked_for(None, Some("a")), Ok(()));
        assert_eq!(marked_for(Some("a"), Some("a")), Ok(()));
        assert_eq!(marked_for(Some("b"), Some("a")), Err("b"));
        // An instance recorded before ids existed owns nothing marked.
        assert_eq!(marked_for(Some("b"), None), Err("b"));
    }

    #[test]
    fn a_stack_found_by_name_is_ours_only_when_created_by_this_instance() {
        let mut st = cfn::StackInfo::default();
        st.tags.insert(OWNER_TAG.into(), "arn:s".into());
        assert!(is_created_by(&st, "arn:s", Some("a")), "made before ids");
        assert!(!is_created_by(&st, "arn:other", Some("a")));
        st.tags.insert(INSTANCE_TAG.into(), "b".into());
        assert!(!is_created_by(&st, "arn:s", Some("a")));
        assert!(!is_created_by(&st, "arn:s", None));
        assert!(is_created_by(&st, "arn:s", Some("b")));
    }

    fn stack(status: &str, version: &str, params: &[(&str, &str)]) -> Observed {
        Observed::Found(cfn::StackInfo {
            id: "arn:stack".into(),
            status: status.into(),
            tags: BTreeMap::from([(VERSION_TAG.to_string(), version.to_string())]),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
    }

    fn state() -> Rotation {
        Rotation {
            stack_id: Attr::Known("arn:stack".into()),
            template_version: Attr::Known("1.1.671".into()),
            endpoint: Attr::Known("https://e".into()),
            kms_key_arn: Attr::Known("arn:k".into()),
            ..Default::default()
        }
    }

    #[test]
    fn read_shows_the_stacks_version_and_parameters() {
        let state = state();
        let mut s = state.clone();
        let mut p = Private::new();
        let found = stack(
            "UPDATE_COMPLETE",
            "1.1.600",
            &[("endpoint", "https://other"), ("kmsKeyArn", "")],
        );
        record(&found, &state, &mut s, &mut p);
        assert_eq!(s.template_version, Attr::Known("1.1.600".into()));
        assert_eq!(s.endpoint, Attr::Known("https://other".into()));
        assert_eq!(s.kms_key_arn, Attr::Null);
        assert_eq!(s.stack_id, state.stack_id);
        // An unset attribute is not compared: the template's default is not
        // the user's setting.
        assert_eq!(s.exclude_characters, Attr::Null);
    }

    #[test]
    fn the_first_refresh_without_a_record_adopts_the_stack_as_deployed() {
        let mut state = state();
        state.rotation_type = Attr::Known("postgresql_single_user".into());
        let found = stack(
            "UPDATE_COMPLETE",
            "1.1.600",
            &[
                ("endpoint", "https://e"),
                ("functionName", "f"),
                ("kmsKeyArn", ""),
            ],
        );
        let mut p = Private::new();
        record(&found, &state, &mut state.clone(), &mut p);
        let adopted = DeployedInputs {
            rotation_type: "postgresql_single_user".into(),
            template_version: Some("1.1.600".into()),
            function_name: Some("f".into()),
            endpoint: Some("https://e".into()),
        };
        assert_eq!(p.deployed.as_ref(), Some(&adopted));
        // Once recorded, a later change to the stack is not adopted.
        let changed = stack(
            "UPDATE_COMPLETE",
            "1.1.600",
            &[("endpoint", "https://127.0.0.2:1/"), ("functionName", "f")],
        );
        let mut s = state.clone();
        record(&changed, &state, &mut s, &mut p);
        assert_eq!(p.deployed, Some(adopted));
        assert_eq!(s.endpoint, Attr::Known("https://127.0.0.2:1/".into()));
    }

    #[test]
    fn a_failed_stack_is_drift_but_stays_recorded() {
        let state = state();
        let mut s = state.clone();
        let mut p = Private::new();
        p.stack = Some(StackRecord {
            name: "n".into(),
            id: Some("arn:stack".into()),
            lambda_arn: None,
        });
        record(
            &stack("ROLLBACK_COMPLETE", "1.1.671", &[]),
            &state,
            &mut s,
            &mut p,
        );
        assert_eq!(s.stack_id, Attr::Null);
        assert!(p.stack.is_some(), "a failed stack must still be deleted");
        let mut s = state.clone();
        record(&Observed::Gone, &state, &mut s, &mut p);
        assert_eq!((s.stack_id, p.stack), (Attr::Null, None));
    }
}
