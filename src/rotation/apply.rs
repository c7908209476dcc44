//! Apply: the order of the steps. Create and update run the same steps,
//! each of which makes one part match the plan (and does nothing when it
//! already does); delete undoes what the provider made, in reverse. The
//! parts themselves live in `secret`, `stack`, `permission`,
//! `master_policy` and `vpc`.
//!
//! Every step records what it made, in the state being built and in the
//! private state, before the next one starts, so that a failure returns a
//! state naming everything that exists. On update, an attribute takes its
//! planned value only once its step has succeeded: a failed update returns
//! what is true, not what was planned. Nothing new starts after Terraform
//! asked the provider to stop, or once the operation's time is up.

use crate::aws::error::AwsError;
use crate::aws::lambda;
use crate::aws::wait::Deadline;
use crate::aws::Clients;
use crate::tf::{AttributePath, Diagnostics};

use super::model::{Attr, Rotation};
use super::private::Private;
use super::secret::{self, Refusal, SecretPlace};
use super::stack::{self, StackTarget};
use super::{master_policy, permission, preflight, verify, vpc};

/// One step of an apply or destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CheckSecret,
    DeployTemplate,
    ReadLambda,
    AddPermission,
    GrantMasterSecret,
    PlaceInVpc,
    TurnOnRotation,
    ReleaseOldLambda,
    VerifyRotation,
    DeleteReplacedStack,
    TurnOffRotation,
    RemovePermission,
    RemoveMasterPolicy,
    RestoreVpc,
    DeleteStack,
}

/// The steps of create and update, in order.
pub const CONVERGE_STEPS: [Step; 10] = [
    Step::CheckSecret,
    Step::DeployTemplate,
    Step::ReadLambda,
    Step::AddPermission,
    Step::GrantMasterSecret,
    Step::PlaceInVpc,
    Step::TurnOnRotation,
    Step::ReleaseOldLambda,
    Step::VerifyRotation,
    Step::DeleteReplacedStack,
];

/// The steps of destroy, in order.
pub const DELETE_STEPS: [Step; 5] = [
    Step::TurnOffRotation,
    Step::RemovePermission,
    Step::RemoveMasterPolicy,
    Step::RestoreVpc,
    Step::DeleteStack,
];

impl Step {
    /// Completes "Creating rotation failed while …".
    pub fn describe(self) -> &'static str {
        match self {
            Step::CheckSecret => "checking the secret",
            Step::DeployTemplate => "deploying the rotation template",
            Step::ReadLambda => "reading the rotation Lambda",
            Step::AddPermission => "adding the invoke permission",
            Step::GrantMasterSecret => "granting access to the master secret",
            Step::PlaceInVpc => "placing the Lambda in the VPC",
            Step::TurnOnRotation => "turning rotation on",
            Step::ReleaseOldLambda => "undoing what was done to the Lambda used before",
            Step::VerifyRotation => "waiting for the rotation to finish",
            Step::DeleteReplacedStack => "deleting the replaced stack",
            Step::TurnOffRotation => "turning rotation off",
            Step::RemovePermission => "removing the invoke permission",
            Step::RemoveMasterPolicy => "removing the master-secret policy",
            Step::RestoreVpc => "restoring the Lambda's VPC placement",
            Step::DeleteStack => "deleting the stack",
        }
    }

    /// The attribute a failure of this step is reported on.
    fn blamed_attribute(self, planned: &Rotation) -> Option<&'static str> {
        let lambda = if planned.rotation_type.is_null() {
            "rotation_lambda_arn"
        } else {
            "rotation_type"
        };
        Some(match self {
            Step::CheckSecret => "secret_id",
            Step::DeployTemplate | Step::ReadLambda => lambda,
            Step::AddPermission => "permission_statement_id",
            Step::GrantMasterSecret => "master_secret_arn",
            Step::PlaceInVpc => "vpc_subnet_ids",
            Step::TurnOnRotation => "rotation_rules",
            Step::ReleaseOldLambda => lambda,
            Step::VerifyRotation => lambda,
            Step::DeleteReplacedStack => "rotation_type",
            _ => return None,
        })
    }

    /// Copies the attributes this step makes true from `from` into `to`.
    /// `computed` includes those the step itself sets from what AWS says.
    fn copy_attributes(self, to: &mut Rotation, from: &Rotation, computed: bool) {
        match self {
            Step::DeployTemplate => {
                to.rotation_type = from.rotation_type.clone();
                // Unknown in a plan without a pinned version: the step itself
                // records the version it deployed.
                if computed || !from.template_version.is_unknown() {
                    to.template_version = from.template_version.clone();
                }
                to.function_name = from.function_name.clone();
                to.endpoint = from.endpoint.clone();
                to.kms_key_arn = from.kms_key_arn.clone();
                to.exclude_characters = from.exclude_characters.clone();
                if computed {
                    to.stack_id = from.stack_id.clone();
                    to.rotation_lambda_arn = from.rotation_lambda_arn.clone();
                }
            }
            Step::ReadLambda if computed => {
                to.rotation_lambda_role_arn = from.rotation_lambda_role_arn.clone();
            }
            Step::AddPermission if computed => {
                to.permission_statement_id = from.permission_statement_id.clone();
                to.permission_scope = from.permission_scope.clone();
            }
            Step::GrantMasterSecret => {
                to.master_secret_arn = from.master_secret_arn.clone();
                to.master_secret_kms_key_arn = from.master_secret_kms_key_arn.clone();
            }
            Step::PlaceInVpc => {
                to.vpc_subnet_ids = from.vpc_subnet_ids.clone();
                to.vpc_security_group_ids = from.vpc_security_group_ids.clone();
            }
            Step::TurnOnRotation => {
                to.enabled = from.enabled.clone();
                to.rotation_rules = from.rotation_rules.clone();
                to.rotate_immediately = from.rotate_immediately.clone();
                to.wait_for_rotation_timeout = from.wait_for_rotation_timeout.clone();
            }
            Step::VerifyRotation if computed => {
                to.rotation_verified = from.rotation_verified.clone();
            }
            _ => {}
        }
    }
}

/// A failed step: which, why, and the attribute to blame.
#[derive(Debug, Clone)]
pub struct StepError {
    pub step: Step,
    pub cause: String,
    pub attribute: Option<AttributePath>,
    /// The step failed because no AWS credentials were found: the user is
    /// told that, not the step's details.
    pub no_credentials: bool,
    /// A summary of its own, when the step's failure is news in itself
    /// (a rotation that failed) rather than a failed call.
    pub summary: Option<String>,
}

impl StepError {
    fn aws(step: Step, e: AwsError) -> StepError {
        StepError {
            step,
            no_credentials: e.is_no_credentials(),
            cause: e.to_string(),
            attribute: None,
            summary: None,
        }
    }
    fn said(step: Step, cause: String) -> StepError {
        StepError {
            step,
            cause,
            attribute: None,
            no_credentials: false,
            summary: None,
        }
    }
    fn at(mut self, attribute: Option<&str>) -> StepError {
        self.attribute = attribute.map(AttributePath::root);
        self
    }
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
    fix(&mut s.enabled);
    fix(&mut s.rotation_verified);
    s
}

pub struct Outcome {
    pub state: Rotation,
    pub private: Private,
    pub error: Option<StepError>,
    /// What the user should know of an apply that did not fail.
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub summary: String,
    pub detail: String,
}

/// The pre-flight check of the secret, run before the first step of a
/// create or of an update that changes what it checks; errors in its
/// answer mean nothing may start. `Err` as for `preflight::run`.
pub async fn preflight(
    c: &Clients,
    planned: &Rotation,
    prior: Option<&Rotation>,
    d: &Deadline,
) -> Result<Diagnostics, AwsError> {
    if !preflight::applies(planned) || !preflight::inputs_changed(planned, prior) {
        return Ok(Diagnostics::new());
    }
    preflight::run(c, d, planned).await
}

/// Create (`prior` is `None`) or update in place.
pub async fn converge(
    c: &Clients,
    planned: &Rotation,
    prior: Option<&Rotation>,
    mut private: Private,
    d: &Deadline,
) -> Outcome {
    // On update, every part starts as it was; each takes the planned values
    // as its step succeeds.
    let mut state = planned.clone();
    // An instance recorded before instance ids existed gets one now: it
    // marks what it uses from here on (see `stack`).
    if private.instance.is_none() {
        private.instance = Some(Private::new_instance_id());
    }
    if let Some(prior) = prior {
        for step in CONVERGE_STEPS {
            step.copy_attributes(&mut state, prior, true);
        }
    } else {
        state.rotation_verified = Attr::Null;
    }
    // Boxed: the steps' futures together are large, and polling them inline
    // would put all of it on the caller's stack.
    let mut warnings = Vec::new();
    let result = Box::pin(converge_steps(
        c,
        planned,
        prior,
        &mut state,
        &mut private,
        &mut warnings,
        d,
    ))
    .await;
    Outcome {
        state: settle(state),
        private,
        error: result.err(),
        warnings,
    }
}

async fn converge_steps(
    c: &Clients,
    planned: &Rotation,
    prior: Option<&Rotation>,
    s: &mut Rotation,
    p: &mut Private,
    warnings: &mut Vec<Warning>,
    d: &Deadline,
) -> Result<(), StepError> {
    let fail = |step: Step, e: AwsError| StepError::aws(step, e).at(step.blamed_attribute(planned));
    let begin = |step: Step| d.check().map_err(|e| fail(step, e));
    let done = |step: Step, s: &mut Rotation| step.copy_attributes(s, planned, false);

    let step = Step::CheckSecret;
    begin(step)?;
    let found = secret::check(c, d, planned, prior.is_none(), p)
        .await
        .map_err(|r| match r {
            Refusal::Aws(e) => fail(step, e),
            Refusal::Said(why) => StepError::said(step, why).at(step.blamed_attribute(planned)),
        })?;
    s.id = Attr::Known(found.arn.clone());
    s.secret_arn = Attr::Known(found.arn.clone());
    let place = SecretPlace::of(&found, c.region.as_deref());
    let sid = planned
        .permission_statement_id
        .known()
        .cloned()
        .ok_or_else(|| {
            fail(
                Step::AddPermission,
                AwsError::Failed("permission_statement_id is not known".into()),
            )
        })?;
    let wanted = permission::Wanted::for_scope(
        planned.permission_scope.as_deref(),
        &sid,
        &found.arn,
        &place.account,
    );
    // An existing Lambda's policy must have room for the statement before
    // anything is changed (a template's Lambda is this rotation's own).
    if let Some(existing) = planned.rotation_lambda_arn.known() {
        let full = permission::check_room(c, d, existing, &wanted)
            .await
            .map_err(|e| fail(step, e))?;
        if let Some(why) = full {
            return Err(StepError::said(step, why).at(Some("permission_scope")));
        }
    }

    let step = Step::DeployTemplate;
    begin(step)?;
    let target = StackTarget {
        secret_arn: &found.arn,
        region: &place.region,
    };
    let lambda_arn = stack::ensure(c, d, planned, prior, &target, s, p)
        .await
        .map_err(|e| fail(step, e))?;
    done(step, s);
    p.lambda = Some(lambda_arn.clone());
    s.rotation_lambda_arn = Attr::Known(lambda_arn.clone());

    let step = Step::ReadLambda;
    begin(step)?;
    // Joined before the function is read: a destroy in this run deciding
    // whether this Lambda is still used (and so whether to move it back
    // out of its VPC, or remove a shared statement) either counts this
    // rotation in, or has finished by the time the read shows the
    // function, so the placement below is decided from where it really is.
    c.sharing
        .join(d, &lambda_arn, &found.arn)
        .await
        .map_err(|e| fail(step, e))?;
    let function = lambda::find_function_configuration(c, d, &lambda_arn)
        .await
        .map_err(|e| fail(step, e))?
        .ok_or_else(|| {
            fail(
                step,
                AwsError::not_found(format!("Lambda function {lambda_arn} does not exist")),
            )
        })?;
    s.rotation_lambda_role_arn = Attr::Known(function.role_arn.clone());

    // What was done to another Lambda stays until the secret has moved
    // off it: should turning rotation on fail, the secret still rotates
    // with a Lambda it may invoke, that may read the master secret, and
    // that sits where it was placed.
    set_aside_old_lambda(p, &function.arn, &function.role_arn);

    let step = Step::AddPermission;
    begin(step)?;
    permission::ensure(c, d, &lambda_arn, &wanted, &found.arn, p)
        .await
        .map_err(|e| fail(step, e))?;
    s.permission_statement_id = Attr::Known(wanted.sid.clone());
    s.permission_scope = planned.permission_scope.clone();

    let step = Step::GrantMasterSecret;
    begin(step)?;
    master_policy::ensure(
        c,
        d,
        planned,
        &found.arn,
        &function.arn,
        &function.role_arn,
        p,
    )
    .await
    .map_err(|e| fail(step, e))?;
    done(step, s);

    let step = Step::PlaceInVpc;
    begin(step)?;
    vpc::ensure(c, d, planned, &found.arn, &function, p)
        .await
        .map_err(|e| fail(step, e))?;
    done(step, s);

    // Never started after a stop: it rotates the password at once.
    let step = Step::TurnOnRotation;
    begin(step)?;
    let retry_failed = prior.is_some_and(|p| p.rotation_verified == Attr::Known(false));
    let started = secret::ensure_rotation(c, d, planned, &found, &lambda_arn, retry_failed)
        .await
        .map_err(|e| fail(step, e))?;
    done(step, s);

    // The secret has moved (or rotation is off): the old Lambda's parts go.
    let step = Step::ReleaseOldLambda;
    begin(step)?;
    release_old_lambda(c, d, planned, &found.arn, p)
        .await
        .map_err(|e| fail(step, e))?;

    // Judged before the replaced stack goes: a new Lambda that fails keeps
    // the old one's stack until a later apply sees the rotation work.
    let step = Step::VerifyRotation;
    let bound = verify::bound(planned);
    // A plan that knew no rotation would start promised the prior value:
    // it stays, whatever the wait sees (only a failure is recorded).
    let records = planned.rotation_verified.is_unknown();
    match (&started, bound) {
        (Some(started), Some(bound)) => {
            s.rotation_verified = Attr::Known(false);
            match verify::wait(c, d, started, bound).await {
                Ok(verify::Verified::Passed) if records => s.rotation_verified = Attr::Known(true),
                Ok(verify::Verified::Passed) => {
                    s.rotation_verified = planned.rotation_verified.clone()
                }
                // Neither a pass nor a failure: nothing is known of it.
                Ok(verify::Verified::Unconfirmed { summary, detail }) => {
                    s.rotation_verified = if records {
                        Attr::Null
                    } else {
                        planned.rotation_verified.clone()
                    };
                    warnings.push(Warning { summary, detail });
                }
                Err(Ok(failure)) => {
                    let mut e =
                        StepError::said(step, failure.detail).at(step.blamed_attribute(planned));
                    e.summary = Some(failure.summary);
                    return Err(e);
                }
                Err(Err(e)) => return Err(fail(step, e)),
            }
        }
        // Started but not waited for: nothing is known of it.
        (Some(_), None) if records => s.rotation_verified = Attr::Null,
        _ => {}
    }

    // Rotation now runs on the new Lambda: the old stack can go.
    let step = Step::DeleteReplacedStack;
    begin(step)?;
    stack::retire(c, d, Some(&found.arn), p)
        .await
        .map_err(|e| fail(step, e))?;
    Ok(())
}

/// Moves the records of what was done to a Lambda other than `function`
/// (its invoke statement, the master-secret policy on its role, its VPC
/// placement) aside, where the steps that make the new Lambda's do not
/// undo them. A record set aside by an earlier, failed switch stays.
fn set_aside_old_lambda(p: &mut Private, function: &str, role_arn: &str) {
    let role = crate::aws::arn::role_name(role_arn);
    if p.permission
        .as_ref()
        .is_some_and(|r| r.function != function)
        && p.retiring_permission.is_none()
    {
        p.retiring_permission = p.permission.take();
    }
    if p.role_policy
        .as_ref()
        .is_some_and(|r| Some(r.role.as_str()) != role)
        && p.retiring_role_policy.is_none()
    {
        p.retiring_role_policy = p.role_policy.take();
    }
    let other_vpc =
        |r: &super::private::VpcRecord| r.function.as_deref().is_some_and(|f| f != function);
    if p.original_vpc.as_ref().is_some_and(other_vpc) && p.retiring_vpc.is_none() {
        p.retiring_vpc = p.original_vpc.take();
    }
}

/// Undoes what `set_aside_old_lambda` kept: each part through its own
/// module's destroy, on a record holding that part alone.
async fn release_old_lambda(
    c: &Clients,
    d: &Deadline,
    prior: &Rotation,
    secret_arn: &str,
    p: &mut Private,
) -> Result<(), AwsError> {
    // The state's statement and policy are the new Lambda's: only the
    // records name the old one's.
    let by_record_only = Rotation {
        permission_scope: prior.permission_scope.clone(),
        ..Default::default()
    };
    // The Lambda used before, as far as the records tell it.
    let old_function = p
        .retiring_permission
        .as_ref()
        .map(|r| r.function.clone())
        .or_else(|| p.retiring_vpc.as_ref().and_then(|r| r.function.clone()));
    if let Some(rec) = p.retiring_permission.clone() {
        let mut only = Private {
            permission: Some(rec),
            ..Private::new()
        };
        permission::undo(
            c,
            d,
            &by_record_only,
            None,
            Some(secret_arn),
            None,
            &mut only,
        )
        .await?;
        p.retiring_permission = None;
    }
    if let Some(rec) = p.retiring_role_policy.clone() {
        let mut only = Private {
            role_policy: Some(rec),
            ..Private::new()
        };
        master_policy::undo(
            c,
            d,
            &by_record_only,
            old_function.as_deref(),
            Some(secret_arn),
            &mut only,
        )
        .await?;
        p.retiring_role_policy = None;
    }
    if let Some(rec) = p.retiring_vpc.clone() {
        let mut only = Private {
            original_vpc: Some(rec),
            ..Private::new()
        };
        vpc::undo(c, d, None, Some(secret_arn), &mut only).await?;
        p.retiring_vpc = None;
    }
    Ok(())
}

/// Destroy: undo what the provider made. Not found counts as done. Returns
/// the private state still holding whatever could not be removed.
pub async fn delete(
    c: &Clients,
    prior: &Rotation,
    mut p: Private,
    d: &Deadline,
) -> (Private, Result<(), StepError>) {
    let r = Box::pin(delete_steps(c, prior, &mut p, d)).await;
    (p, r)
}

async fn delete_steps(
    c: &Clients,
    prior: &Rotation,
    p: &mut Private,
    d: &Deadline,
) -> Result<(), StepError> {
    let secret_arn = prior.secret_arn.known().or(prior.id.known()).cloned();
    let secret_id = prior
        .secret_arn
        .known()
        .or(prior.secret_id.known())
        .cloned();
    let lambda_arn = p
        .lambda
        .clone()
        .or(prior.rotation_lambda_arn.known().cloned());
    // A stack another instance of this secret adopted (see `stack`) is that
    // instance's now, with the rotation on its Lambda, the Lambda's
    // statement and the grant on its role: this one undoes only what is
    // its own alone.
    // Decided before rotation is turned off, which it may forbid.
    let first = Step::TurnOffRotation;
    d.check().map_err(|e| StepError::aws(first, e))?;
    let taken_over = stack::taken_over_by(c, d, p)
        .await
        .map_err(|e| StepError::aws(first, e))?;
    if let Some(other) = &taken_over {
        crate::logging::debug(
            "rotation",
            &format!("leaving the stack and its Lambda to instance {other}, which adopted them"),
        );
        p.stack = None;
        p.permission = None;
        p.role_policy = None;
    }
    // What a failed switch of Lambdas left on the old one: the secret does
    // not rotate with it.
    if let Some(arn) = &secret_arn {
        release_old_lambda(c, d, prior, arn, p)
            .await
            .map_err(|e| StepError::aws(Step::RemovePermission, e))?;
    }
    for step in DELETE_STEPS {
        d.check().map_err(|e| StepError::aws(step, e))?;
        let result = match step {
            Step::TurnOffRotation if taken_over.is_some() => Ok(()),
            Step::TurnOffRotation => match &secret_id {
                Some(id) => {
                    let off = secret::undo(c, d, id).await;
                    match (off, &lambda_arn, &secret_arn) {
                        (Ok(()), Some(function), Some(arn)) => {
                            c.sharing.leave(d, function, arn).await
                        }
                        (off, _, _) => off,
                    }
                }
                None => Ok(()),
            },
            Step::RemovePermission | Step::RemoveMasterPolicy if taken_over.is_some() => Ok(()),
            Step::DeleteStack if taken_over.is_some() => {
                stack::retire(c, d, secret_arn.as_deref(), p).await
            }
            // The statement on the Lambda the stack deletion removes goes
            // with it: removing it first would only spend two of Lambda's
            // 15 control-plane requests per second per rotation.
            Step::RemovePermission => {
                let left_to = stack::lambda_deleted_with_stack(p).map(str::to_string);
                permission::undo(
                    c,
                    d,
                    prior,
                    lambda_arn.as_deref(),
                    secret_arn.as_deref(),
                    left_to.as_deref(),
                    p,
                )
                .await
            }
            Step::RemoveMasterPolicy => {
                master_policy::undo(c, d, prior, lambda_arn.as_deref(), secret_arn.as_deref(), p)
                    .await
            }
            Step::RestoreVpc => {
                vpc::undo(c, d, lambda_arn.as_deref(), secret_arn.as_deref(), p).await
            }
            Step::DeleteStack => {
                let left_to = stack::lambda_deleted_with_stack(p).map(str::to_string);
                match stack::undo(c, d, prior, secret_arn.as_deref(), p).await {
                    // The stack was not this resource's to delete after
                    // all: its Lambda stays, without our statement.
                    Ok(deleted_with) if deleted_with != left_to && left_to.is_some() => {
                        permission::undo(
                            c,
                            d,
                            prior,
                            lambda_arn.as_deref(),
                            secret_arn.as_deref(),
                            None,
                            p,
                        )
                        .await
                    }
                    Ok(_) => {
                        p.permission = None;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            _ => Ok(()),
        };
        result.map_err(|e| StepError::aws(step, e))?;
    }
    p.lambda = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    #[test]
    fn a_failed_update_keeps_the_prior_values_of_the_steps_not_done() {
        let prior = Rotation {
            template_version: Attr::Known("1.1.600".into()),
            endpoint: Attr::Known("https://old".into()),
            stack_id: Attr::Known("arn:stack".into()),
            ..Default::default()
        };
        let planned = Rotation {
            template_version: Attr::Known("1.1.671".into()),
            endpoint: Attr::Known("https://new".into()),
            stack_id: Attr::Known("arn:stack".into()),
            ..Default::default()
        };
        let mut s = planned.clone();
        for step in CONVERGE_STEPS {
            step.copy_attributes(&mut s, &prior, true);
        }
        assert_eq!(s.template_version, prior.template_version);
        assert_eq!(s.endpoint, prior.endpoint);
        Step::DeployTemplate.copy_attributes(&mut s, &planned, false);
        assert_eq!(s.template_version, planned.template_version);
        assert_eq!(s.stack_id, prior.stack_id, "set by the step itself");
    }

    #[test]
    fn a_switch_sets_the_old_lambdas_parts_aside_and_keeps_an_earlier_switchs() {
        use super::super::private::{PermissionRecord, RolePolicyRecord, VpcRecord};
        let old = "arn:aws:lambda:us-east-1:1:function:old";
        let new = "arn:aws:lambda:us-east-1:1:function:new";
        let mut p = Private {
            permission: Some(PermissionRecord {
                function: old.into(),
                sid: "s".into(),
                shared: false,
            }),
            role_policy: Some(RolePolicyRecord {
                role: "old-role".into(),
                name: "n".into(),
            }),
            original_vpc: Some(VpcRecord {
                function: Some(old.into()),
                ..Default::default()
            }),
            ..Private::new()
        };
        let same = p.clone();
        let mut kept = p.clone();
        set_aside_old_lambda(&mut kept, old, "arn:aws:iam::1:role/old-role");
        assert_eq!(kept, same, "the same Lambda: nothing is set aside");

        set_aside_old_lambda(&mut p, new, "arn:aws:iam::1:role/new-role");
        assert!(p.permission.is_none() && p.role_policy.is_none() && p.original_vpc.is_none());
        assert_eq!(p.retiring_permission, same.permission);
        assert_eq!(p.retiring_role_policy, same.role_policy);
        assert_eq!(p.retiring_vpc, same.original_vpc);
        assert!(p.holds_anything());

        // A second switch before the first finished keeps the first's old
        // parts: the secret may still rotate with that Lambda.
        p.permission = Some(PermissionRecord {
            function: new.into(),
            sid: "s".into(),
            shared: false,
        });
        set_aside_old_lambda(&mut p, "arn:aws:lambda:us-east-1:1:function:third", "r");
        assert_eq!(p.retiring_permission, same.permission);
    }

    #[tokio::test]
    async fn nothing_is_called_after_a_stop() {
        // No endpoint is reachable: a step that called AWS would fail with a
        // connection error, not with the stop.
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let c = Clients::new(&config, &Default::default());
        let cancel = CancellationToken::new();
        cancel.cancel();
        let d = Deadline::new("create", std::time::Duration::from_secs(60), cancel);
        let planned = Rotation {
            secret_id: Attr::Known("db".into()),
            ..Default::default()
        };
        let out = converge(&c, &planned, None, Private::new(), &d).await;
        let e = out.error.expect("stopped");
        assert_eq!(e.step, Step::CheckSecret);
        assert!(e.cause.contains("cancelled"), "{}", e.cause);
        let (_, r) = delete(&c, &planned, Private::new(), &d).await;
        assert!(r.is_err_and(|e| e.step == Step::TurnOffRotation && e.cause.contains("cancelled")));
    }
}
