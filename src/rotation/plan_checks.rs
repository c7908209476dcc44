//! Plan-time checks against AWS: read-only look-ups that catch, before
//! anything is made, the mistakes that would otherwise fail halfway through
//! an apply (a secret that does not exist, a secret or Lambda in another
//! region, a Lambda that does not exist).
//!
//! Each check runs only when the value it needs is known, and only when the
//! value is new to this resource (a create, or a changed value): an
//! unchanged secret or Lambda was just looked at by the refresh, and a
//! quota-bound account should not pay for the same look-up twice.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::aws::arn::Arn;
use crate::aws::{lambda, secretsmanager as sm, AwsError, Clients, Deadline};
use crate::tf::{AttributePath, Diagnostic, Diagnostics};

use super::model::Rotation;
use super::stack;

/// What the checks found. `Err` is a failure of the look-ups themselves that
/// the caller must report (no credentials); other look-up failures become
/// warnings here, since apply checks again.
pub async fn check(
    c: &Clients,
    d: &Deadline,
    config: &Rotation,
    prior: Option<&Rotation>,
) -> Result<Diagnostics, AwsError> {
    let mut diags = Diagnostics::new();
    let region = c.region.as_deref();

    if let Some(p) = prior.filter(|p| recorded_gone(p)) {
        remember_deleted(p.secret_id.known());
        remember_deleted(config.secret_id.known());
    }
    if config
        .secret_id
        .known()
        .is_some_and(|id| prior.is_none() && known_deleted(id))
    {
        // The create half of the replacement the first call planned: that
        // call warned, and the create checks the secret again at apply.
        return Ok(diags);
    }

    let new_secret = config
        .secret_id
        .known()
        .filter(|id| prior.is_none_or(|p| p.secret_id.known() != Some(*id)));
    if let Some(id) = new_secret {
        if let Some(e) = region_mismatch("secret_id", "secret", id, region) {
            diags.push(e);
        } else {
            match sm::find_secret(c, d, id).await {
                Ok(Some(s)) => {
                    if let Some(e) = unusable_secret(&s) {
                        diags.push(e);
                    }
                }
                Ok(None) => diags.push(
                    Diagnostic::error(
                        "Secret not found",
                        format!(
                            "No secret {id:?} exists in {} for these credentials. Check the name or \
ARN, and that the provider's region and account are the secret's.",
                            region.unwrap_or("the provider's region")
                        ),
                    )
                    .at(AttributePath::root("secret_id")),
                ),
                Err(e) if e.is_no_credentials() => return Err(e),
                Err(e) => diags.push(could_not_check("secret_id", "the secret", &e)),
            }
        }
    }

    let new_lambda = config
        .rotation_lambda_arn
        .known()
        .filter(|arn| prior.is_none_or(|p| p.rotation_lambda_arn.known() != Some(*arn)));
    if let Some(arn) = new_lambda {
        if let Some(e) = region_mismatch("rotation_lambda_arn", "Lambda function", arn, region) {
            diags.push(e);
        } else {
            match lambda::find_function_configuration(c, d, arn).await {
                Ok(Some(_)) => {}
                Ok(None) => diags.push(
                    Diagnostic::error(
                        "Rotation Lambda not found",
                        format!(
                            "No Lambda function {arn} exists. Create it first, or name an \
existing function; to have a rotation Lambda deployed for you, set `rotation_type` instead."
                        ),
                    )
                    .at(AttributePath::root("rotation_lambda_arn")),
                ),
                Err(e) if e.is_no_credentials() => return Err(e),
                Err(e) => diags.push(could_not_check(
                    "rotation_lambda_arn",
                    "the Lambda function",
                    &e,
                )),
            }
        }
    }
    // A statement id taken on the Lambda by a statement this resource did
    // not make: adding ours would replace it.
    if let (false, Some((function, sid))) = (
        diags.has_errors(),
        super::permission::statement_id_to_check(config, prior),
    ) {
        let secret = match prior.and_then(|p| p.secret_arn.known().cloned()) {
            Some(arn) => Ok(Some(arn)),
            None => match config.secret_id.known() {
                Some(id) => sm::find_secret(c, d, id).await.map(|s| s.map(|s| s.arn)),
                None => Ok(None),
            },
        };
        let checked = match secret {
            Ok(Some(arn)) => {
                super::permission::check_statement_id(c, d, &function, &sid, &arn).await
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match checked {
            Ok(Some(found)) => diags.push(found),
            Ok(None) => {}
            Err(e) if e.is_no_credentials() => return Err(e),
            Err(e) => diags.push(could_not_check(
                "permission_statement_id",
                "the Lambda's statements",
                &e,
            )),
        }
    }
    // The secret's JSON, once the secret is known to be there.
    if !diags.has_errors() {
        diags.extend(super::preflight::at_plan(c, d, config, prior).await?);
        diags.extend(super::master_key::at_plan(c, d, config, prior).await?);
    }
    Ok(diags)
}

/// The template's stack creates a Lambda named `function_name`: a function
/// of that name that exists already, and that no stack deployed for this
/// secret made, is somebody else's. (A stack of ours for the secret is
/// adopted by apply: an earlier create cut off, or the instance a
/// replacement replaces.) Checked when the name is known and new to this
/// resource; `planned` carries the default name when none is configured.
pub async fn function_name(
    c: &Clients,
    d: &Deadline,
    planned: &Rotation,
    prior: Option<&Rotation>,
) -> Result<Diagnostics, AwsError> {
    let mut diags = Diagnostics::new();
    let (Some(_), Some(name), Some(secret_id)) = (
        planned.rotation_type.known(),
        planned.function_name.known(),
        planned.secret_id.known(),
    ) else {
        return Ok(diags);
    };
    if prior.is_some_and(|p| p.function_name.known() == Some(name)) {
        return Ok(diags);
    }
    let looked_up = async {
        let Some(found) = lambda::find_function_configuration(c, d, name).await? else {
            return Ok(None);
        };
        let secret_arn = match planned.secret_arn.known() {
            Some(arn) => Some(arn.clone()),
            None => sm::find_secret(c, d, secret_id).await?.map(|s| s.arn),
        };
        // A secret that is gone is reported by the secret's own check; the
        // function may well be the stack's that rotated it.
        let Some(arn) = secret_arn else {
            return Ok(None);
        };
        let ours = stack::find_owned(c, d, &stack::stack_name_for(name), &arn)
            .await?
            .is_some();
        Ok::<_, AwsError>((!ours).then_some(found.arn))
    };
    match looked_up.await {
        Ok(Some(existing)) => diags.push(
            Diagnostic::error(
                "Lambda function name already taken",
                stack::function_name_taken(name, &existing),
            )
            .at(AttributePath::root("function_name")),
        ),
        Ok(None) => {}
        Err(e) if e.is_no_credentials() => return Err(e),
        Err(e) => diags.push(could_not_check("function_name", "the function name", &e)),
    }
    Ok(diags)
}

/// Secrets the refresh recorded deleted, by `secret_id`, in this provider
/// process. Terraform plans a replacement in two calls, both in the process
/// that refreshed: the first with the prior state, the second, for the
/// create half, with none. Without this memo the second call would look the
/// secret up as a new one and fail the plan (and the refresh before a
/// destroy) with "Secret not found", leaving the stack and grants in place.
static DELETED_SECRETS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The refresh found the secret deleted or scheduled for deletion (see
/// `secret::record_gone`).
fn recorded_gone(prior: &Rotation) -> bool {
    prior.id.known().is_some() && prior.secret_arn.is_null()
}

fn remember_deleted(secret_id: Option<&String>) {
    if let Some(id) = secret_id {
        // A poisoned set still holds whole entries.
        let mut set = DELETED_SECRETS.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(id.clone());
    }
}

fn known_deleted(secret_id: &str) -> bool {
    let set = DELETED_SECRETS.lock().unwrap_or_else(|p| p.into_inner());
    set.contains(secret_id)
}

/// Secrets Manager finds a secret, and invokes a rotation Lambda, only in
/// its own region: an ARN of another region is a configuration mistake that
/// AWS would report only as "not found".
pub fn region_mismatch(
    attribute: &str,
    what: &str,
    value: &str,
    provider_region: Option<&str>,
) -> Option<Diagnostic> {
    let arn = Arn::parse(value)?;
    let provider_region = provider_region?;
    if arn.region.is_empty() || arn.region == provider_region {
        return None;
    }
    let alias = arn.region.replace('-', "_");
    Some(
        Diagnostic::error(
            format!("{attribute} is in another region"),
            format!(
                "`{attribute}` names a {what} in {}, but this provider is configured for \
{provider_region}, and a rotation works only within one region. Use a provider configuration \
for {}: add `provider \"rdsrot\" {{ alias = \"{alias}\"  region = \"{}\" }}` and set \
`provider = rdsrot.{alias}` on this resource.",
                arn.region, arn.region, arn.region
            ),
        )
        .at(AttributePath::root(attribute)),
    )
}

/// A secret that exists but whose rotation this provider cannot manage.
pub fn unusable_secret(s: &sm::SecretInfo) -> Option<Diagnostic> {
    let detail = if s.scheduled_for_deletion {
        format!(
            "Secret {} is scheduled for deletion. Restore it (`aws secretsmanager \
restore-secret`) or point `secret_id` at another secret.",
            s.arn
        )
    } else if let Some(owner) = &s.owning_service {
        format!(
            "Secret {} is managed by {owner}, which controls its rotation. Change its rotation \
through {owner} instead.",
            s.arn
        )
    } else {
        return None;
    };
    Some(
        Diagnostic::error("Secret cannot be rotated here", detail)
            .at(AttributePath::root("secret_id")),
    )
}

fn could_not_check(attribute: &str, what: &str, e: &AwsError) -> Diagnostic {
    Diagnostic::warning(
        format!("Could not check {what} at plan time"),
        format!("{e}. Apply checks again before it changes anything."),
    )
    .at(AttributePath::root(attribute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_arn_of_another_region_is_named_with_the_fix() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";
        let d = region_mismatch("secret_id", "secret", arn, Some("eu-west-1")).expect("a mismatch");
        assert_eq!(d.summary, "secret_id is in another region");
        assert!(d.detail.contains("us-east-1") && d.detail.contains("eu-west-1"));
        assert!(d.detail.contains("alias = \"us_east_1\""), "{}", d.detail);
        assert_eq!(
            d.attribute.map(|p| p.to_string()).as_deref(),
            Some("secret_id")
        );
        assert!(region_mismatch("secret_id", "secret", arn, Some("us-east-1")).is_none());
        // A name has no region; an unknown provider region decides nothing.
        assert!(region_mismatch("secret_id", "secret", "app/db", Some("eu-west-1")).is_none());
        assert!(region_mismatch("secret_id", "secret", arn, None).is_none());
    }

    #[test]
    fn deleted_and_service_owned_secrets_are_refused() {
        let mut s = sm::SecretInfo {
            arn: "arn:s".into(),
            ..Default::default()
        };
        assert!(unusable_secret(&s).is_none());
        s.scheduled_for_deletion = true;
        assert!(unusable_secret(&s).is_some_and(|d| d.detail.contains("scheduled for deletion")));
        s.scheduled_for_deletion = false;
        s.owning_service = Some("rds".into());
        assert!(unusable_secret(&s).is_some_and(|d| d.detail.contains("managed by rds")));
    }
}
