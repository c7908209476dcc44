//! The secret and its rotation: the first step of an apply (is this a
//! secret we may rotate?), the last (rotation on, with its schedule), what a
//! read sees of both, and turning rotation off again.

use std::time::Duration;

use crate::aws::arn::Arn;
use crate::aws::error::AwsError;
use crate::aws::wait::{retry_while, Deadline};
use crate::aws::Clients;
use crate::aws::{lambda, secretsmanager as sm};
use crate::logging;

use super::model::{Attr, Rotation, RotationRules};
use super::plan_checks;
use super::private::Private;
use super::stack;
use super::verify::{self, Started};

const LOG: &str = "rotation";

/// Where the secret is: its account and region pick the template's
/// partition and scope the invoke permission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPlace {
    pub account: String,
    pub region: String,
}

impl SecretPlace {
    /// From the secret's ARN; the provider's region stands in when the ARN
    /// does not say.
    pub fn of(secret: &sm::SecretInfo, provider_region: Option<&str>) -> SecretPlace {
        let arn = Arn::parse(&secret.arn);
        SecretPlace {
            account: arn
                .as_ref()
                .map(|a| a.account.to_string())
                .unwrap_or_default(),
            region: arn
                .as_ref()
                .map(|a| a.region)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .or_else(|| provider_region.map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

/// Why the first step refuses a secret. Only `Aws` is a failed call; the
/// others are sentences for the user.
#[derive(Debug)]
pub enum Refusal {
    Aws(AwsError),
    Said(String),
}

impl From<AwsError> for Refusal {
    fn from(e: AwsError) -> Refusal {
        Refusal::Aws(e)
    }
}

/// Finds the secret and checks that this resource may manage its rotation.
/// On create, a secret that already rotates is refused unless the rotation
/// is one this resource set up before it was interrupted (its Lambda is the
/// one configured, or the one a stack tagged for this secret made): then it
/// is adopted, so that re-running the apply converges.
pub async fn check(
    c: &Clients,
    d: &Deadline,
    planned: &Rotation,
    creating: bool,
    p: &Private,
) -> Result<sm::SecretInfo, Refusal> {
    let secret_id = planned
        .secret_id
        .known()
        .ok_or_else(|| Refusal::Said("secret_id is not known".into()))?;
    // The same checks as at plan, for values that were unknown then.
    if let Some(diag) =
        plan_checks::region_mismatch("secret_id", "secret", secret_id, c.region.as_deref())
    {
        return Err(Refusal::Said(diag.detail));
    }
    logging::debug(LOG, &format!("describing secret {secret_id}"));
    let secret = sm::find_secret(c, d, secret_id).await?.ok_or_else(|| {
        Refusal::Said(format!(
            "No secret {secret_id:?} exists in {}. Check the name or ARN, and that the \
provider's region and account are the secret's.",
            c.region.as_deref().unwrap_or("the provider's region")
        ))
    })?;
    if let Some(diag) = plan_checks::unusable_secret(&secret) {
        return Err(Refusal::Said(diag.detail));
    }
    if creating && secret.rotation_enabled && !is_our_rotation(c, d, planned, &secret, p).await? {
        return Err(Refusal::Said(format!(
            "Secret {} already has rotation configured, with Lambda {}, which this resource did \
not set up. To manage that rotation here, import it (`terraform import <address> {}`, or an \
`import` block) instead of creating it.",
            secret.arn,
            secret.rotation_lambda_arn.as_deref().unwrap_or("(none)"),
            secret.arn
        )));
    }
    Ok(secret)
}

/// Whether the secret's current rotation is one this resource made: the
/// Lambda the configuration names, the Lambda recorded in private state, or
/// the Lambda of the stack this resource deploys, when that stack carries
/// this secret's ownership tag.
async fn is_our_rotation(
    c: &Clients,
    d: &Deadline,
    planned: &Rotation,
    secret: &sm::SecretInfo,
    p: &Private,
) -> Result<bool, AwsError> {
    let Some(used) = secret.rotation_lambda_arn.as_deref() else {
        return Ok(false);
    };
    if planned.rotation_lambda_arn.as_deref() == Some(used) || p.lambda.as_deref() == Some(used) {
        return Ok(true);
    }
    let Some(function_name) = planned.function_name.known() else {
        return Ok(false);
    };
    let Some(found) =
        stack::find_owned(c, d, &stack::stack_name_for(function_name), &secret.arn).await?
    else {
        return Ok(false);
    };
    let made = stack::lambda_of(c, d, &found).await?;
    Ok(made.as_deref() == Some(used))
}

/// The rules to send to AWS for the planned block.
pub fn desired_rules(r: &RotationRules) -> sm::Rules {
    sm::Rules {
        automatically_after_days: if r.schedule_expression.is_null() {
            r.automatically_after_days.known().copied()
        } else {
            None
        },
        schedule_expression: r.schedule_expression.known().cloned(),
        duration: r.duration.known().cloned(),
    }
}

/// Whether AWS's rules are the ones wanted. AWS also reports a computed
/// `AutomaticallyAfterDays` next to a schedule expression: ignore it then.
pub fn rules_match(want: &sm::Rules, have: &sm::Rules) -> bool {
    let schedule = match &want.schedule_expression {
        Some(e) => have.schedule_expression.as_deref() == Some(e),
        None => {
            have.schedule_expression.is_none()
                && have.automatically_after_days == want.automatically_after_days
                || have.schedule_expression.as_deref()
                    == want
                        .automatically_after_days
                        .map(|d| format!("rate({d} days)"))
                        .as_deref()
        }
    };
    schedule && want.duration == have.duration
}

/// The state's block for rules found in AWS.
pub fn rules_from_aws(have: &sm::Rules) -> RotationRules {
    RotationRules {
        automatically_after_days: match &have.schedule_expression {
            Some(_) => Attr::Null,
            None => Attr::from_option(have.automatically_after_days),
        },
        schedule_expression: Attr::from_option(have.schedule_expression.clone()),
        max_credential_age_days: Attr::Null,
        duration: Attr::from_option(have.duration.clone()),
    }
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

/// Turns rotation on with the planned Lambda and schedule (or off, when
/// `enabled = false`); nothing when AWS already has it so, unless
/// `retry_failed` (the last rotation this resource started did not finish):
/// then that rotation is continued on its own version. Returns the rotation
/// started, for `verify` to wait on.
pub async fn ensure_rotation(
    c: &Clients,
    d: &Deadline,
    planned: &Rotation,
    secret: &sm::SecretInfo,
    lambda_arn: &str,
    retry_failed: bool,
) -> Result<Option<Started>, AwsError> {
    let enabled = planned.enabled.known().copied().unwrap_or(true);
    if !enabled {
        if secret.rotation_enabled {
            turn_off(c, d, secret).await?;
        }
        return Ok(None);
    }
    let want = planned
        .rules()
        .map(desired_rules)
        .ok_or_else(|| AwsError::Failed("rotation_rules is not known".into()))?;
    let current_ok = secret.rotation_enabled
        && secret.rotation_lambda_arn.as_deref() == Some(lambda_arn)
        && secret
            .rules
            .as_ref()
            .is_some_and(|have| rules_match(&want, have));
    if current_ok && !retry_failed {
        return Ok(None);
    }
    let immediately = planned.rotate_immediately.known().copied().unwrap_or(true);
    // One token for every attempt: a RotateSecret whose answer was lost and
    // is sent again starts no second rotation.
    let token = match retry_failed && immediately {
        true => rotation_to_retry(c, d, secret).await?,
        false => None,
    }
    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let started = Started {
        secret_arn: secret.arn.clone(),
        lambda_arn: lambda_arn.to_string(),
        token: token.clone(),
        immediately,
        at_ms: verify::now_ms(),
        master_secret_arn: planned.master_secret_arn.known().cloned(),
    };
    let window = d.within(
        "waiting for IAM to let Secrets Manager invoke the Lambda",
        PROPAGATION,
    );
    logging::debug(
        LOG,
        &format!("turning on rotation of {} with {lambda_arn}", secret.arn),
    );
    let send = || async {
        retry_while(&window, is_propagation_error, || {
            sm::rotate_secret(c, d, &secret.arn, lambda_arn, &want, immediately, &token)
        })
        .await
    };
    let mut sent = send().await;
    if sent.as_ref().is_err_and(is_previous_rotation_unfinished)
        && !is_ours(c, d, &secret.arn, lambda_arn, &token).await?
    {
        // Another rotation is under way (one Secrets Manager started on
        // schedule, or an earlier run's): AWS refuses a new one until it
        // ends. Wait for it, within the rotation wait, then ask again.
        let bound = verify::bound(planned).unwrap_or(UNFINISHED_ROTATION_WAIT);
        wait_for_unfinished_rotation(c, d, &secret.arn, bound).await?;
        sent = send().await;
    }
    match sent {
        Ok(_) => Ok(Some(started)),
        // A replay of our own call, whose first answer was lost, may meet
        // the rotation that call started; its version carries our token as
        // its id.
        Err(e) if e.code() == Some("InvalidRequestException") => {
            if is_ours(c, d, &secret.arn, lambda_arn, &token).await? {
                Ok(Some(started))
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

/// The token to retry a failed rotation with: its own version's, to
/// continue it (that version may hold the password the database already
/// took, which a new rotation would not know), unless AWSCURRENT was
/// replaced after it began (someone fixed the secret's value, which the
/// stuck version was derived from): then its label goes and `None` starts a
/// new rotation from the fixed value.
async fn rotation_to_retry(
    c: &Clients,
    d: &Deadline,
    secret: &sm::SecretInfo,
) -> Result<Option<String>, AwsError> {
    if !has_stuck_pending(secret) {
        return Ok(None);
    }
    let (Some(pending), Some(current)) = (
        secret.version_with("AWSPENDING"),
        secret.version_with("AWSCURRENT"),
    ) else {
        return Ok(None);
    };
    let versions = sm::list_versions(c, d, &secret.arn)
        .await?
        .unwrap_or_default();
    let created = |id: &str| {
        versions
            .iter()
            .find(|v| v.version_id == id)
            .and_then(|v| v.created_date)
    };
    if let (Some(p), Some(cur)) = (created(pending), created(current)) {
        if cur > p {
            sm::remove_orphan_pending_label(c, d, &secret.arn).await?;
            return Ok(None);
        }
    }
    Ok(Some(pending.to_string()))
}

/// How long a new rotation waits for one already under way when the
/// rotation wait is off.
const UNFINISHED_ROTATION_WAIT: Duration = Duration::from_secs(60);

fn is_previous_rotation_unfinished(e: &AwsError) -> bool {
    e.code() == Some("InvalidRequestException")
        && e.to_string()
            .to_ascii_lowercase()
            .contains("previous rotation")
}

/// Whether the secret's rotation is the one `token` started with `lambda_arn`.
async fn is_ours(
    c: &Clients,
    d: &Deadline,
    secret_arn: &str,
    lambda_arn: &str,
    token: &str,
) -> Result<bool, AwsError> {
    let now = sm::find_secret(c, d, secret_arn).await?;
    Ok(now.is_some_and(|s| {
        s.rotation_enabled
            && s.rotation_lambda_arn.as_deref() == Some(lambda_arn)
            && s.version_stages.contains_key(token)
    }))
}

/// Waits until no version holds AWSPENDING apart from AWSCURRENT's, or
/// says which version is stuck and how to release it.
async fn wait_for_unfinished_rotation(
    c: &Clients,
    d: &Deadline,
    secret_arn: &str,
    bound: Duration,
) -> Result<(), AwsError> {
    let window = d.within("waiting for the secret's unfinished rotation", bound);
    let mut delay = Duration::from_millis(500);
    loop {
        let Some(info) = sm::find_secret(c, &window, secret_arn).await? else {
            return Ok(());
        };
        if !has_stuck_pending(&info) {
            return Ok(());
        }
        match window.sleep(delay).await {
            Ok(()) => {}
            Err(AwsError::Timeout(_)) if d.check().is_ok() => {
                let stuck = info.version_with("AWSPENDING").unwrap_or("?");
                return Err(AwsError::Failed(format!(
                    "Secrets Manager refuses a new rotation of {secret_arn} while an earlier one is \
unfinished: version {stuck} has held AWSPENDING for longer than {}s. If that rotation failed (its \
function's log says why), fix the cause, take the label off it (`aws secretsmanager \
update-secret-version-stage --secret-id {secret_arn} --version-stage AWSPENDING \
--remove-from-version-id {stuck}`) and apply again.",
                    bound.as_secs()
                )));
            }
            Err(e) => return Err(e),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// What a read records of the secret: its ARN, whether rotation is on, the
/// Lambda it uses when that is not the one this resource manages, and the
/// schedule when it differs from the state's.
pub fn record(
    secret: &sm::SecretInfo,
    managed_lambda: Option<&str>,
    state: &Rotation,
    s: &mut Rotation,
) {
    s.id = Attr::Known(secret.arn.clone());
    s.secret_arn = Attr::Known(secret.arn.clone());
    s.enabled = Attr::Known(secret.rotation_enabled);
    if !secret.rotation_enabled {
        return;
    }
    // A rotation recorded as failed that is no longer stuck finished after
    // all (Secrets Manager retries failed rotations) or was mended out of
    // band: nothing is left to retry. (A failed test run of
    // `rotate_immediately = false` leaves no label to tell by: it stays.)
    let tested_only = state.rotate_immediately == Attr::Known(false);
    if state.rotation_verified == Attr::Known(false) && !tested_only && !has_stuck_pending(secret) {
        s.rotation_verified = Attr::Known(true);
    }
    if let Some(used) = &secret.rotation_lambda_arn {
        if managed_lambda != Some(used.as_str()) {
            s.rotation_lambda_arn = Attr::Known(used.clone());
        }
    }
    if let (Some(have), Some(block)) = (&secret.rules, state.rules()) {
        if !rules_match(&desired_rules(block), have) {
            s.rotation_rules = Attr::Known(vec![rules_from_aws(have)]);
        }
    }
}

/// AWSPENDING on a version that is not AWSCURRENT: a rotation that has not
/// finished (running, or failed and left behind).
pub fn has_stuck_pending(secret: &sm::SecretInfo) -> bool {
    secret
        .version_with("AWSPENDING")
        .is_some_and(|pending| secret.version_with("AWSCURRENT") != Some(pending))
}

/// A secret that is deleted, or scheduled for deletion, keeps the resource
/// in state (so that destroy still removes what was made for it), with its
/// ARN null: the plan then offers to replace the resource.
pub fn record_gone(s: &mut Rotation) {
    s.secret_arn = Attr::Null;
    s.enabled = Attr::Known(false);
}

/// Turns rotation off, when the secret still exists and rotates, and then
/// removes the AWSPENDING label its unfinished rotation left (see
/// `sm::remove_orphan_pending_label`). A secret that does not rotate is
/// left as it is: an AWSPENDING label on it is not a rotation of ours (a
/// user or an application may be staging a value by hand).
pub async fn undo(c: &Clients, d: &Deadline, secret_id: &str) -> Result<(), AwsError> {
    let Some(secret) = sm::find_secret(c, d, secret_id)
        .await?
        .filter(|s| !s.scheduled_for_deletion && s.rotation_enabled)
    else {
        return Ok(());
    };
    turn_off(c, d, &secret).await
}

/// Cancels the rotation of `secret` (as described just before) and takes
/// the AWSPENDING label off the version an unfinished rotation left. The
/// secret is described again for that only when there may be one: the
/// description showed it, or the cancel's answer names a version other than
/// AWSCURRENT's (a rotation that started after the description).
async fn turn_off(c: &Clients, d: &Deadline, secret: &sm::SecretInfo) -> Result<(), AwsError> {
    logging::debug(LOG, &format!("cancelling rotation of {}", secret.arn));
    let answered = sm::cancel_rotation(c, d, &secret.arn).await?;
    if may_leave_pending(secret, answered.as_deref()) {
        sm::remove_orphan_pending_label(c, d, &secret.arn).await?;
    }
    Ok(())
}

/// Whether a cancel may have left an AWSPENDING label to remove.
fn may_leave_pending(before: &sm::SecretInfo, answered_version: Option<&str>) -> bool {
    has_stuck_pending(before)
        || answered_version.is_some_and(|v| before.version_with("AWSCURRENT") != Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::error::Kind;

    #[test]
    fn a_cancel_is_followed_by_a_look_only_when_a_pending_label_may_be_left() {
        let secret = |stages: &[(&str, &[&str])]| sm::SecretInfo {
            version_stages: stages
                .iter()
                .map(|(v, l)| (v.to_string(), l.iter().map(|s| s.to_string()).collect()))
                .collect(),
            ..Default::default()
        };
        let settled = secret(&[
            ("v1", &["AWSCURRENT", "AWSPENDING"]),
            ("v0", &["AWSPREVIOUS"]),
        ]);
        // Nothing under way: the answer names no version, or AWSCURRENT's.
        assert!(!may_leave_pending(&settled, None));
        assert!(!may_leave_pending(&settled, Some("v1")));
        // A rotation that started after the description.
        assert!(may_leave_pending(&settled, Some("v2")));
        // One the description showed unfinished.
        let stuck = secret(&[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])]);
        assert!(may_leave_pending(&stuck, None));
    }

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
    fn rules_ignore_the_computed_days_beside_an_expression() {
        let want = sm::Rules {
            schedule_expression: Some("rate(10 days)".into()),
            ..Default::default()
        };
        let have = sm::Rules {
            automatically_after_days: Some(10),
            schedule_expression: Some("rate(10 days)".into()),
            duration: None,
        };
        assert!(rules_match(&want, &have));
        let days = sm::Rules {
            automatically_after_days: Some(10),
            ..Default::default()
        };
        assert!(rules_match(&days, &days));
        // `rate(10 days)` is the same schedule as 10 days; the reverse lacks the
        // expression that was asked for.
        assert!(rules_match(&days, &want));
        assert!(!rules_match(&want, &days));
        let changed = sm::Rules {
            automatically_after_days: Some(11),
            ..Default::default()
        };
        assert!(!rules_match(&days, &changed));
        let with_window = sm::Rules {
            duration: Some("2h".into()),
            ..days.clone()
        };
        assert!(!rules_match(&days, &with_window));
    }

    #[test]
    fn a_gone_secret_keeps_the_resource_with_a_null_arn() {
        let mut s = Rotation {
            id: Attr::Known("arn:s".into()),
            secret_arn: Attr::Known("arn:s".into()),
            enabled: Attr::Known(true),
            ..Default::default()
        };
        record_gone(&mut s);
        assert_eq!(s.id, Attr::Known("arn:s".into()));
        assert_eq!((s.secret_arn, s.enabled), (Attr::Null, Attr::Known(false)));
    }

    #[test]
    fn the_place_comes_from_the_arn_or_the_provider() {
        let secret = sm::SecretInfo {
            arn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf".into(),
            ..Default::default()
        };
        assert_eq!(
            SecretPlace::of(&secret, Some("us-east-1")),
            SecretPlace {
                account: "123456789012".into(),
                region: "eu-west-1".into()
            }
        );
        let odd = sm::SecretInfo {
            arn: "not-an-arn".into(),
            ..Default::default()
        };
        assert_eq!(SecretPlace::of(&odd, Some("us-east-1")).region, "us-east-1");
    }
}
