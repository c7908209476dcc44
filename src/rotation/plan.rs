//! Planning: config + prior state + prior private state -> planned state
//! and replace paths. Pure.
//!
//! Values known only after apply are unknown on create and when their
//! inputs change; otherwise they are carried from the prior state so that a
//! plan with no change is empty. When a read found drift (a part missing or
//! changed), the prior state shows it and the plan puts the configured value
//! back, which is the diff Terraform prints.

use crate::aws::arn::{dns_suffix, partition_of_region, Arn};
use crate::tf::{AttributePath, Diagnostic, Diagnostics, Value};

use super::model::{Attr, Rotation, RotationRules};
use super::permission;
use super::private::{DeployedInputs, Private};
use super::schedule;
use super::secret;
use super::template;
use super::validate;
use super::verify;

pub struct PlanContext<'a> {
    /// The provider's region, for the default endpoint when `secret_id` is a
    /// name and not an ARN.
    pub region: Option<&'a str>,
}

#[derive(Debug, Default)]
pub struct Planned {
    pub state: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diagnostics: Diagnostics,
}

pub fn plan(config: &Value, prior: &Value, private: &Private, ctx: &PlanContext) -> Planned {
    if config.is_null() {
        // Destroy.
        return Planned {
            state: Value::Null,
            ..Default::default()
        };
    }
    let c = Rotation::from_value(config);
    let mut diagnostics = validate::validate(&c);
    let prior_exists = !prior.is_null();
    let p = Rotation::from_value(prior);

    let mut requires_replace = Vec::new();
    if prior_exists && c.secret_id != p.secret_id && !names_recorded_secret(&c.secret_id, &p) {
        requires_replace.push(AttributePath::root("secret_id"));
    }
    // Validate compares the two values as written; the recorded ARN also
    // tells a name from its secret's full ARN when the suffix looks like a
    // word.
    if let (Some(master), true) = (
        c.master_secret_arn.known(),
        prior_exists && names_recorded_secret(&c.secret_id, &p),
    ) {
        if p.secret_arn.known() == Some(master) {
            diagnostics.push(
                Diagnostic::error(
                    "master_secret_arn is the secret being rotated",
                    format!(
                        "{master:?} is the ARN of the secret `secret_id` names. The master \
secret holds the credentials that change the rotated user's password: point \
`master_secret_arn` at the database's administrator secret."
                    ),
                )
                .at(AttributePath::root("master_secret_arn")),
            );
        }
    }
    // The refresh found the secret deleted (or scheduled for deletion): what
    // was made for it is still recorded, and replacing the resource removes
    // it first. The diff is on `secret_arn`, null now, unknown in the plan.
    let secret_gone = prior_exists && p.id.known().is_some() && p.secret_arn.is_null();
    if secret_gone {
        requires_replace.push(AttributePath::root("secret_arn"));
        diagnostics.push(
            Diagnostic::warning(
                "Secret no longer exists",
                format!(
                "The secret {} was deleted or is scheduled for deletion. This plan replaces the \
rotation: destroying it first removes what the provider made for it (the stack and its Lambda, \
the invoke permission, the master-secret policy, a changed VPC placement); creating it again \
then needs the secret to exist. To only clean up, remove the resource from the configuration.",
                p.id.as_deref().unwrap_or("?")
            ),
            )
            .at(AttributePath::root("secret_id")),
        );
    }
    let replacing = !requires_replace.is_empty();
    // On create or replace, nothing is carried over.
    let p = if prior_exists && !replacing {
        p
    } else {
        Rotation::default()
    };

    let mut out = c.clone();
    out.id = p.id.clone().or(Attr::Unknown);
    out.secret_arn = p.secret_arn.clone().or(Attr::Unknown);
    out.rotate_immediately = c.rotate_immediately.clone().or(Attr::Known(true));
    // A state written before the attribute existed holds null, which means
    // on: keeping it avoids a diff that would change nothing.
    out.preflight_check = match &c.preflight_check {
        Attr::Null if prior_exists && !replacing => p.preflight_check.clone(),
        Attr::Null => Attr::Known(true),
        v => v.clone(),
    };
    out.enabled = c.enabled.clone().or(Attr::Known(true));
    // As with `preflight_check`: a state from before the attribute holds
    // null, which means the default.
    out.wait_for_rotation_timeout = match &c.wait_for_rotation_timeout {
        Attr::Null if prior_exists && !replacing => p.wait_for_rotation_timeout.clone(),
        Attr::Null => Attr::Known(verify::DEFAULT_TIMEOUT.into()),
        v => v.clone(),
    };
    out.permission_scope = c
        .permission_scope
        .clone()
        .or(Attr::Known(permission::SCOPE_SECRET.into()));
    out.permission_statement_id = match out.permission_scope.as_deref() {
        // One statement per Lambda, shared: its id is fixed.
        Some(permission::SCOPE_ACCOUNT) => Attr::Known(permission::ACCOUNT_STATEMENT_ID.into()),
        None => Attr::Unknown,
        Some(_) => c
            .permission_statement_id
            .clone()
            .or(p
                .permission_statement_id
                .clone()
                .filter_known(|sid| sid != permission::ACCOUNT_STATEMENT_ID))
            .or(match c.secret_id.known() {
                Some(id) => Attr::Known(default_statement_id(id)),
                None => Attr::Unknown,
            }),
    };

    let template = !c.rotation_type.is_null();
    if template {
        let same_type = p.rotation_type == c.rotation_type && !p.rotation_type.is_null();
        // An unset argument wants what the last deployment was given, not
        // what the stack says now: the refresh put the stack's live value in
        // the prior state, and carrying that would hide a change made to the
        // stack outside Terraform (an `endpoint` pointed at another host).
        let deployed = private
            .deployed
            .as_ref()
            .filter(|r| same_type && c.rotation_type.known() == Some(&r.rotation_type));
        let chosen = |pick: fn(&DeployedInputs) -> &Option<String>| {
            Attr::from_option(deployed.and_then(|r| pick(r).clone()))
        };
        out.template_version = c
            .template_version
            .clone()
            .or(chosen(|r| &r.template_version))
            .or(if same_type {
                p.template_version.clone()
            } else {
                Attr::Null
            })
            .or(match (c.rotation_type.known(), c.secret_id.known()) {
                (Some(t), Some(id)) => default_template_version(t, id, ctx.region)
                    .map(|v| Attr::Known(v.to_string()))
                    .unwrap_or(Attr::Unknown),
                _ => Attr::Unknown,
            });
        out.function_name = c
            .function_name
            .clone()
            .or(chosen(|r| &r.function_name))
            .or(if same_type {
                p.function_name.clone()
            } else {
                Attr::Null
            })
            .or(match (c.secret_id.known(), c.rotation_type.known()) {
                (Some(id), Some(t)) => Attr::Known(default_function_name(id, t)),
                _ => Attr::Unknown,
            });
        out.endpoint = c
            .endpoint
            .clone()
            .or(chosen(|r| &r.endpoint))
            .or(p.endpoint.clone())
            .or(match c.secret_id.known() {
                Some(id) => default_endpoint(id, ctx.region)
                    .map(Attr::Known)
                    .unwrap_or(Attr::Unknown),
                None => Attr::Unknown,
            });
        // The stack stays while the template stays; a deleted stack (null
        // after read) is planned anew.
        let keeps_stack = same_type && p.stack_id.known().is_some();
        out.stack_id = if keeps_stack {
            p.stack_id.clone()
        } else {
            Attr::Unknown
        };
        let keeps_lambda = keeps_stack && out.function_name == p.function_name;
        let stack_lambda = private
            .stack
            .as_ref()
            .and_then(|s| s.lambda_arn.clone())
            .map(Attr::Known)
            .unwrap_or(Attr::Null);
        out.rotation_lambda_arn = if keeps_lambda {
            stack_lambda
                .or(p.rotation_lambda_arn.clone())
                .or(Attr::Unknown)
        } else {
            Attr::Unknown
        };
        out.rotation_lambda_role_arn = if keeps_lambda {
            p.rotation_lambda_role_arn.clone().or(Attr::Unknown)
        } else {
            Attr::Unknown
        };
    } else {
        out.template_version = Attr::Null;
        out.function_name = Attr::Null;
        out.endpoint = Attr::Null;
        out.stack_id = Attr::Null;
        // The role is known when the Lambda is the one already in use.
        let same_lambda = c.rotation_lambda_arn.known().is_some_and(|arn| {
            private.lambda.as_ref() == Some(arn) || p.rotation_lambda_arn.known() == Some(arn)
        });
        out.rotation_lambda_role_arn = if same_lambda {
            p.rotation_lambda_role_arn.clone().or(Attr::Unknown)
        } else {
            Attr::Unknown
        };
    }

    out.rotation_rules = match &c.rotation_rules {
        Attr::Known(rules) => Attr::Known(rules.iter().map(|r| plan_rules(r, &c)).collect()),
        other => other.clone(),
    };
    out.rotation_verified = planned_verification(&out, &p, prior_exists && !replacing);
    if prior_exists && !replacing {
        if let Some(warning) = lambda_switch_warning(&out, &p, private) {
            diagnostics.push(warning);
        }
    }

    Planned {
        state: out.to_value(),
        requires_replace,
        diagnostics,
    }
}

/// A plan that moves the rotation to another Lambda (another template, or
/// between a template and an existing Lambda) says so before anything
/// changes: the new Lambda rotates the secret at once, and the stack in use
/// now, taken over on import or made by this resource, is deleted.
fn lambda_switch_warning(
    out: &Rotation,
    prior: &Rotation,
    private: &Private,
) -> Option<Diagnostic> {
    let was_template = prior.rotation_type.known().is_some();
    let to_template = out.rotation_type.known();
    let changes = match (prior.rotation_type.known(), to_template) {
        (Some(a), Some(b)) => a != b,
        (None, Some(_)) => true,
        (Some(_), None) => out.rotation_lambda_arn.known().is_some(),
        (None, None) => false,
    };
    if !changes {
        return None;
    }
    let new_lambda = match (to_template, out.rotation_lambda_arn.known()) {
        (Some(t), _) => format!("deploys a new rotation Lambda from the {t} template"),
        (None, Some(arn)) => format!("moves the rotation to the Lambda {arn}"),
        (None, None) => return None,
    };
    let old = match (was_template, private.adopted.stack_id.as_deref()) {
        (true, Some(id)) => format!(
            "The stack {id}, taken over on import, and its Lambda are deleted once the secret rotates with the new Lambda."
        ),
        (true, None) => "The stack of the template in use now, and its Lambda, are deleted once the secret rotates with the new Lambda."
            .to_string(),
        (false, _) => format!(
            "The Lambda in use now ({}) is not deleted; its invoke permission and master-secret grant for this secret are removed.",
            prior.rotation_lambda_arn.as_deref().unwrap_or("unknown")
        ),
    };
    let rotates = if out.rotate_immediately.known() == Some(&false) {
        "The secret rotates with it from its next scheduled rotation."
    } else {
        "The secret is rotated with it at once (`rotate_immediately`)."
    };
    let path = if to_template.is_some() {
        "rotation_type"
    } else {
        "rotation_lambda_arn"
    };
    Some(
        Diagnostic::warning(
            "The rotation moves to another Lambda",
            format!("This plan {new_lambda}. {rotates} {old}"),
        )
        .at(AttributePath::root(path)),
    )
}

/// Whether `secret_id` names the secret the prior state recorded: its ARN,
/// or the name in that ARN (the resource without AWS's six-character
/// suffix). Switching between the two is no new secret, so no replacement.
fn names_recorded_secret(secret_id: &Attr<String>, prior: &Rotation) -> bool {
    match (secret_id.known(), prior.secret_arn.known()) {
        (Some(id), Some(arn)) => id == arn || id == secret_short_name(arn),
        _ => false,
    }
}

/// `rotation_verified`: set by an apply that may start a rotation (a
/// create, a new Lambda, rotation turned on, new rules), so unknown then;
/// carried otherwise. A rotation that failed makes the plan an update even
/// when nothing else changed: applying it retries the rotation.
fn planned_verification(out: &Rotation, prior: &Rotation, updating: bool) -> Attr<bool> {
    if !updating {
        return Attr::Unknown;
    }
    let failed = prior.rotation_verified == Attr::Known(false);
    let enabled = out.enabled.known() != Some(&false);
    if (failed && enabled) || may_start_rotation(out, prior) {
        Attr::Unknown
    } else {
        prior.rotation_verified.clone()
    }
}

/// Whether applying `out` over `prior` may call `RotateSecret`: what
/// `secret::ensure_rotation` compares, as far as the plan knows it (an
/// unknown value may be anything).
fn may_start_rotation(out: &Rotation, prior: &Rotation) -> bool {
    fn rules(r: &Rotation) -> Option<crate::aws::secretsmanager::Rules> {
        let block = r.rules()?;
        let known = !block.automatically_after_days.is_unknown()
            && !block.schedule_expression.is_unknown()
            && !block.duration.is_unknown();
        known.then(|| secret::desired_rules(block))
    }
    out.rotation_lambda_arn != prior.rotation_lambda_arn
        || out.rotation_lambda_arn.is_unknown()
        || out.enabled != prior.enabled
        || rules(out).is_none()
        || rules(out) != rules(prior)
}

fn plan_rules(r: &RotationRules, c: &Rotation) -> RotationRules {
    let mut out = r.clone();
    if r.automatically_after_days.is_null() {
        out.automatically_after_days = match r.max_credential_age_days {
            Attr::Known(n) => match c.credentials_alternate() {
                Some(alternating) => match schedule::days_for_max_credential_age(n, alternating) {
                    Ok(days) => Attr::Known(days),
                    Err(_) => Attr::Unknown,
                },
                None => Attr::Unknown,
            },
            Attr::Null => Attr::Null,
            _ => Attr::Unknown,
        };
    }
    out
}

/// A 64-bit FNV-1a hash: stable across releases and platforms, which std's
/// hasher is not promised to be.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub fn default_statement_id(secret_id: &str) -> String {
    format!("rdsrot-{:016x}", stable_hash(secret_id))
}

/// The secret's name as far as `secret_id` tells it: an ARN's resource part
/// without the random six-character suffix AWS adds.
pub fn secret_short_name(secret_id: &str) -> &str {
    match Arn::parse(secret_id).and_then(|a| a.resource.strip_prefix("secret:")) {
        Some(name) => match name.rsplit_once('-') {
            Some((base, suffix)) if suffix.len() == 6 && !base.is_empty() => base,
            _ => name,
        },
        None => secret_id,
    }
}

/// `rdsrot-<secret name>-<hash>`, at most 64 characters, valid as a Lambda
/// name; the hash keeps two secrets with similar names apart and changes
/// with the rotation type, so a type change never collides with the old
/// stack's function.
pub fn default_function_name(secret_id: &str, rotation_type: &str) -> String {
    let hash = stable_hash(&format!("{secret_id}/{rotation_type}")) as u32;
    let name: String = secret_short_name(secret_id)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64 - "rdsrot-".len() - 9)
        .collect();
    format!("rdsrot-{name}-{hash:08x}")
}

/// The template version deployed when `template_version` is not set: the
/// one pinned for the application in the secret's partition. `None` when
/// none is pinned (or the region is not known yet): the apply then deploys
/// the newest version the repository publishes and records it.
pub fn default_template_version(
    rotation_type: &str,
    secret_id: &str,
    provider_region: Option<&str>,
) -> Option<&'static str> {
    let region = match Arn::parse(secret_id) {
        Some(a) if !a.region.is_empty() => a.region,
        _ => provider_region?,
    };
    template::find(rotation_type)?.default_version(region)
}

pub fn default_endpoint(secret_id: &str, provider_region: Option<&str>) -> Option<String> {
    let region = match Arn::parse(secret_id) {
        Some(a) if !a.region.is_empty() => a.region,
        _ => provider_region?,
    };
    let suffix = dns_suffix(partition_of_region(region));
    Some(format!("https://secretsmanager.{region}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::private::StackRecord;

    const SECRET: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf";
    const LAMBDA: &str = "arn:aws:lambda:eu-west-1:123456789012:function:stack-fn";
    const OTHER_LAMBDA: &str = "arn:aws:lambda:eu-west-1:123456789012:function:other";
    const ROLE: &str = "arn:aws:iam::123456789012:role/stack-role";
    const STACK: &str = "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1";

    fn ctx() -> PlanContext<'static> {
        PlanContext {
            region: Some("us-east-1"),
        }
    }
    fn config() -> Rotation {
        Rotation {
            secret_id: Attr::Known(SECRET.into()),
            rotation_type: Attr::Known("postgresql_single_user".into()),
            rotation_rules: Attr::Known(vec![RotationRules {
                automatically_after_days: Attr::Known(30),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }
    fn private() -> Private {
        Private {
            stack: Some(StackRecord {
                name: "rdsrot-x".into(),
                id: Some(STACK.into()),
                lambda_arn: Some(LAMBDA.into()),
            }),
            ..Private::new()
        }
    }
    /// What apply would have stored for `config()`.
    fn applied() -> Rotation {
        let planned = plan(&config().to_value(), &Value::Null, &Private::new(), &ctx());
        let mut s = Rotation::from_value(&planned.state);
        s.id = Attr::Known(SECRET.into());
        s.secret_arn = Attr::Known(SECRET.into());
        s.stack_id = Attr::Known(STACK.into());
        s.rotation_lambda_arn = Attr::Known(LAMBDA.into());
        s.rotation_lambda_role_arn = Attr::Known(ROLE.into());
        s.rotation_verified = Attr::Known(true);
        s
    }

    #[test]
    fn a_failed_rotation_plans_an_update_that_retries_it() {
        let mut prior = applied();
        let quiet = plan(&config().to_value(), &prior.to_value(), &private(), &ctx());
        assert_eq!(
            Rotation::from_value(&quiet.state).rotation_verified,
            Attr::Known(true)
        );

        prior.rotation_verified = Attr::Known(false);
        let retry = plan(&config().to_value(), &prior.to_value(), &private(), &ctx());
        assert!(retry.requires_replace.is_empty());
        let planned = Rotation::from_value(&retry.state);
        assert!(planned.rotation_verified.is_unknown());
        assert!(
            !retry.state.same_as(&prior.to_value()),
            "an update, not an empty plan"
        );

        // Nothing to retry once rotation is to be off.
        let mut off = config();
        off.enabled = Attr::Known(false);
        let planned = plan(&off.to_value(), &prior.to_value(), &private(), &ctx());
        assert!(
            Rotation::from_value(&planned.state)
                .rotation_verified
                .is_unknown(),
            "an update all the same"
        );
        prior.enabled = Attr::Known(false);
        let planned = plan(&off.to_value(), &prior.to_value(), &private(), &ctx());
        assert_eq!(
            Rotation::from_value(&planned.state).rotation_verified,
            Attr::Known(false)
        );
    }

    #[test]
    fn any_update_may_rotate_so_its_verification_is_unknown() {
        let prior = applied();
        let mut c = config();
        c.rotation_rules = Attr::Known(vec![RotationRules {
            automatically_after_days: Attr::Known(7),
            ..Default::default()
        }]);
        let planned = plan(&c.to_value(), &prior.to_value(), &private(), &ctx());
        let s = Rotation::from_value(&planned.state);
        assert!(s.rotation_verified.is_unknown());
        assert_eq!(s.wait_for_rotation_timeout, Attr::Known("5m".into()));
        let created = plan(&config().to_value(), &Value::Null, &Private::new(), &ctx());
        assert!(Rotation::from_value(&created.state)
            .rotation_verified
            .is_unknown());
    }

    #[test]
    fn create_plans_defaults_and_unknowns() {
        let planned = plan(&config().to_value(), &Value::Null, &Private::new(), &ctx());
        assert!(planned.diagnostics.is_empty());
        assert!(planned.requires_replace.is_empty());
        let s = Rotation::from_value(&planned.state);
        for a in [
            &s.id,
            &s.secret_arn,
            &s.stack_id,
            &s.rotation_lambda_arn,
            &s.rotation_lambda_role_arn,
        ] {
            assert!(a.is_unknown());
        }
        assert_eq!(s.enabled, Attr::Known(true));
        assert_eq!(s.rotate_immediately, Attr::Known(true));
        assert_eq!(
            s.template_version.as_deref(),
            Some("1.1.671"),
            "the version pinned for PostgreSQL single user in the aws partition"
        );
        assert_eq!(
            s.endpoint.as_deref(),
            Some("https://secretsmanager.eu-west-1.amazonaws.com"),
            "region comes from the secret ARN"
        );
        let f = s.function_name.as_deref().unwrap_or_default();
        assert!(
            f.starts_with("rdsrot-app-db-") && validate::is_lambda_name(f),
            "{f}"
        );
        assert_eq!(
            s.permission_statement_id,
            Attr::Known(default_statement_id(SECRET))
        );
    }

    #[test]
    fn identical_prior_gives_an_identical_plan() {
        let prior = applied().to_value();
        let planned = plan(&config().to_value(), &prior, &private(), &ctx());
        assert!(planned.requires_replace.is_empty());
        assert!(planned.state.same_as(&prior), "{:#?}", planned.state);
    }

    #[test]
    fn only_a_changed_secret_id_replaces() {
        let prior = applied().to_value();
        let mut c = config();
        c.rotation_rules = Attr::Known(vec![RotationRules {
            schedule_expression: Attr::Known("rate(10 days)".into()),
            ..Default::default()
        }]);
        let planned = plan(&c.to_value(), &prior, &private(), &ctx());
        assert!(planned.requires_replace.is_empty());
        c.secret_id = Attr::Known("another".into());
        let planned = plan(&c.to_value(), &prior, &private(), &ctx());
        assert_eq!(
            planned.requires_replace,
            vec![AttributePath::root("secret_id")]
        );
        assert!(Rotation::from_value(&planned.state).stack_id.is_unknown());
    }

    #[test]
    fn switching_secret_id_between_name_and_arn_keeps_the_rotation() {
        let by_name = |name: &str| {
            let mut c = config();
            c.secret_id = Attr::Known(name.into());
            c
        };
        let prior = applied();
        let planned = plan(
            &by_name("app/db").to_value(),
            &prior.to_value(),
            &private(),
            &ctx(),
        );
        assert!(
            planned.requires_replace.is_empty(),
            "{:?}",
            planned.requires_replace
        );
        let s = Rotation::from_value(&planned.state);
        assert_eq!(s.stack_id, prior.stack_id);
        assert_eq!(s.function_name, prior.function_name);
        assert_eq!(s.permission_statement_id, prior.permission_statement_id);
        assert_eq!(s.rotation_lambda_arn, prior.rotation_lambda_arn);

        // And back from the name to the ARN.
        let mut named = Rotation::from_value(&planned.state);
        named.rotation_verified = Attr::Known(true);
        let back = plan(&config().to_value(), &named.to_value(), &private(), &ctx());
        assert!(back.requires_replace.is_empty());
        let s = Rotation::from_value(&back.state);
        assert_eq!(s.function_name, prior.function_name);
        assert_eq!(s.permission_statement_id, prior.permission_statement_id);

        // Another secret, or one whose name only starts the same, replaces.
        for other in [
            "app/db2",
            "app",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-XyZxYz",
        ] {
            let planned = plan(
                &by_name(other).to_value(),
                &prior.to_value(),
                &private(),
                &ctx(),
            );
            assert_eq!(
                planned.requires_replace,
                vec![AttributePath::root("secret_id")],
                "{other}"
            );
        }
    }

    #[test]
    fn the_recorded_arn_of_the_secret_is_refused_as_its_master() {
        let mut c = config();
        c.secret_id = Attr::Known("app/db".into());
        c.rotation_type = Attr::Known("postgresql_multi_user".into());
        // A suffix that reads as a word: only the recorded ARN tells that
        // this is the secret's own ARN, not one of a secret "app/db-backup".
        let own_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-backup";
        c.master_secret_arn = Attr::Known(own_arn.into());
        let mut prior = applied();
        prior.secret_id = Attr::Known("app/db".into());
        prior.secret_arn = Attr::Known(own_arn.into());
        let planned = plan(&c.to_value(), &prior.to_value(), &private(), &ctx());
        assert!(planned
            .diagnostics
            .iter()
            .any(|d| d.severity == crate::tf::Severity::Error
                && d.attribute.as_ref().map(|p| p.to_string()).as_deref()
                    == Some("master_secret_arn")));
        c.master_secret_arn = Attr::Known(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-master-AbCdEf".into(),
        );
        let planned = plan(&c.to_value(), &prior.to_value(), &private(), &ctx());
        assert!(!planned.diagnostics.has_errors());
    }

    #[test]
    fn a_deleted_secret_plans_a_replacement_that_cleans_up_first() {
        let mut gone = applied();
        gone.secret_arn = Attr::Null;
        gone.enabled = Attr::Known(false);
        let planned = plan(&config().to_value(), &gone.to_value(), &private(), &ctx());
        assert_eq!(
            planned.requires_replace,
            vec![AttributePath::root("secret_arn")]
        );
        let s = Rotation::from_value(&planned.state);
        assert!(s.secret_arn.is_unknown() && s.stack_id.is_unknown());
        assert!(planned
            .diagnostics
            .iter()
            .any(|d| d.summary == "Secret no longer exists"
                && d.severity == crate::tf::Severity::Warning));
    }

    #[test]
    fn long_names_give_a_valid_function_name_and_cn_endpoints() {
        let long = "x".repeat(300);
        let f = default_function_name(&long, "generic");
        assert!(f.len() <= 64 && validate::is_lambda_name(&f), "{f}");
        assert_ne!(f, default_function_name(&long, "mysql_single_user"));
        assert_eq!(
            default_endpoint("db", Some("cn-north-1")).as_deref(),
            Some("https://secretsmanager.cn-north-1.amazonaws.com.cn")
        );
        assert_eq!(default_endpoint("db", None), None);
    }

    #[test]
    fn max_credential_age_computes_the_days() {
        let mut c = config();
        c.rotation_type = Attr::Known("mysql_multi_user".into());
        c.master_secret_arn =
            Attr::Known("arn:aws:secretsmanager:eu-west-1:1:secret:m-AbCdEf".into());
        c.rotation_rules = Attr::Known(vec![RotationRules {
            max_credential_age_days: Attr::Known(90),
            ..Default::default()
        }]);
        let days = |c: &Rotation| {
            Rotation::from_value(&plan(&c.to_value(), &Value::Null, &Private::new(), &ctx()).state)
                .rules()
                .map(|r| r.automatically_after_days.clone())
        };
        assert_eq!(days(&c), Some(Attr::Known(44)));

        // An existing Lambda given a master secret alternates users too.
        c.rotation_type = Attr::Null;
        c.rotation_lambda_arn = Attr::Known("arn:aws:lambda:eu-west-1:1:function:rotate".into());
        assert_eq!(days(&c), Some(Attr::Known(44)));
        c.master_secret_arn = Attr::Null;
        assert_eq!(days(&c), Some(Attr::Known(89)));
        c.master_secret_arn = Attr::Unknown;
        assert_eq!(days(&c), Some(Attr::Unknown));
    }

    /// Each drift a read records in the prior state plans back to config.
    #[test]
    fn drift_plans_back_to_the_configuration() {
        let cfg = config().to_value();
        let check = |drift: &dyn Fn(&mut Rotation), what: &dyn Fn(&Rotation) -> bool| {
            let mut prior = applied();
            drift(&mut prior);
            let planned = plan(&cfg, &prior.to_value(), &private(), &ctx());
            assert!(planned.requires_replace.is_empty());
            assert!(!planned.state.same_as(&prior.to_value()), "a diff");
            assert!(what(&Rotation::from_value(&planned.state)));
        };
        check(&|p| p.enabled = Attr::Known(false), &|s| {
            s.enabled == Attr::Known(true)
        });
        check(
            &|p| {
                p.rotation_rules = Attr::Known(vec![RotationRules {
                    schedule_expression: Attr::Known("rate(5 days)".into()),
                    ..Default::default()
                }])
            },
            &|s| s.rules().map(|r| r.automatically_after_days.clone()) == Some(Attr::Known(30)),
        );
        check(
            &|p| p.rotation_lambda_arn = Attr::Known(OTHER_LAMBDA.into()),
            &|s| s.rotation_lambda_arn.as_deref() == Some(LAMBDA),
        );
        check(&|p| p.permission_statement_id = Attr::Null, &|s| {
            s.permission_statement_id == Attr::Known(default_statement_id(SECRET))
        });
        check(&|p| p.stack_id = Attr::Null, &|s| {
            s.stack_id.is_unknown() && s.rotation_lambda_arn.is_unknown()
        });
        check(
            &|p| p.vpc_subnet_ids = Attr::Known(vec!["subnet-9".into()]),
            &|s| s.vpc_subnet_ids.is_null(),
        );
    }

    /// The refresh writes the stack's live parameters into the prior state;
    /// an unset argument must still plan what was deployed, so that a change
    /// made to the stack outside Terraform is a diff.
    #[test]
    fn unset_template_arguments_plan_back_what_was_deployed() {
        let prior = applied();
        let mut deployed = private();
        deployed.deployed = Some(DeployedInputs {
            rotation_type: "postgresql_single_user".into(),
            template_version: prior.template_version.known().cloned(),
            function_name: prior.function_name.known().cloned(),
            endpoint: prior.endpoint.known().cloned(),
        });
        let quiet = plan(&config().to_value(), &prior.to_value(), &deployed, &ctx());
        assert!(quiet.state.same_as(&prior.to_value()), "no drift, no diff");

        type Drift = fn(&mut Rotation);
        let drifts: [(&str, Drift); 3] = [
            ("endpoint", |r| {
                r.endpoint = Attr::Known("https://127.0.0.2:1/".into())
            }),
            ("template_version", |r| {
                r.template_version = Attr::Known("1.1.367".into())
            }),
            ("function_name", |r| {
                r.function_name = Attr::Known("someone-elses".into())
            }),
        ];
        for (what, drift) in drifts {
            let mut live = prior.clone();
            drift(&mut live);
            let planned = plan(&config().to_value(), &live.to_value(), &deployed, &ctx());
            let s = Rotation::from_value(&planned.state);
            assert!(!planned.state.same_as(&live.to_value()), "{what}: a diff");
            assert_eq!(
                (&s.endpoint, &s.template_version, &s.function_name),
                (
                    &prior.endpoint,
                    &prior.template_version,
                    &prior.function_name
                ),
                "{what}: planned back to what was deployed"
            );
            // A state from before deployments were recorded: the refresh
            // adopts the stack as it is (see `stack::record`), and nothing
            // spurious is planned meanwhile.
            let legacy = plan(&config().to_value(), &live.to_value(), &private(), &ctx());
            assert!(legacy.state.same_as(&live.to_value()), "{what}: legacy");
        }
        // A record of another template is not this one's.
        let mut c = config();
        c.rotation_type = Attr::Known("mysql_single_user".into());
        let other =
            Rotation::from_value(&plan(&c.to_value(), &prior.to_value(), &deployed, &ctx()).state);
        assert_ne!(other.function_name, prior.function_name);
    }

    #[test]
    fn another_existing_lambda_makes_its_role_unknown() {
        let mut c = config();
        c.rotation_type = Attr::Null;
        c.rotation_lambda_arn = Attr::Known(LAMBDA.into());
        let mut prior =
            Rotation::from_value(&plan(&c.to_value(), &Value::Null, &Private::new(), &ctx()).state);
        prior.rotation_lambda_arn = Attr::Known(LAMBDA.into());
        prior.rotation_lambda_role_arn = Attr::Known(ROLE.into());
        let kept = Rotation::from_value(
            &plan(&c.to_value(), &prior.to_value(), &Private::new(), &ctx()).state,
        );
        assert_eq!(kept.rotation_lambda_role_arn.as_deref(), Some(ROLE));
        c.rotation_lambda_arn = Attr::Known(OTHER_LAMBDA.into());
        let moved = Rotation::from_value(
            &plan(&c.to_value(), &prior.to_value(), &Private::new(), &ctx()).state,
        );
        assert!(moved.rotation_lambda_role_arn.is_unknown());
        assert!(moved.stack_id.is_null() && moved.function_name.is_null());
    }

    #[test]
    fn destroy_plans_null() {
        let planned = plan(&Value::Null, &applied().to_value(), &private(), &ctx());
        assert!(planned.state.is_null());
    }

    #[test]
    fn a_rotation_type_change_plans_a_new_stack() {
        let mut c = config();
        c.rotation_type = Attr::Known("mysql_single_user".into());
        let s = Rotation::from_value(
            &plan(&c.to_value(), &applied().to_value(), &private(), &ctx()).state,
        );
        assert!(s.stack_id.is_unknown());
        assert_ne!(s.function_name, applied().function_name);
    }

    #[test]
    fn moving_the_rotation_to_another_lambda_warns_before_anything_changes() {
        let warning = |planned: &Planned| {
            planned
                .diagnostics
                .0
                .iter()
                .find(|d| d.summary == "The rotation moves to another Lambda")
                .map(|d| d.detail.clone())
        };
        // Unchanged: no warning.
        let same = plan(
            &config().to_value(),
            &applied().to_value(),
            &private(),
            &ctx(),
        );
        assert_eq!(warning(&same), None);

        let mut c = config();
        c.rotation_type = Attr::Known("mysql_single_user".into());
        let mut adopted = private();
        adopted.adopted.stack_id = Some(STACK.into());
        let other = plan(&c.to_value(), &applied().to_value(), &adopted, &ctx());
        let detail = warning(&other).expect("a warning");
        assert!(detail.contains("mysql_single_user template"), "{detail}");
        assert!(
            detail.contains(STACK) && detail.contains("taken over on import"),
            "{detail}"
        );

        let mut existing = config();
        existing.rotation_type = Attr::Null;
        existing.rotation_lambda_arn =
            Attr::Known("arn:aws:lambda:eu-west-1:111122223333:function:own-rotator".into());
        let moved = plan(
            &existing.to_value(),
            &applied().to_value(),
            &private(),
            &ctx(),
        );
        let detail = warning(&moved).expect("a warning");
        assert!(detail.contains("own-rotator"), "{detail}");
    }

    fn planned_version(rotation_type: &str, secret_id: &str, region: Option<&str>) -> Attr<String> {
        let mut c = config();
        c.rotation_type = Attr::Known(rotation_type.into());
        c.secret_id = Attr::Known(secret_id.into());
        if template::find(rotation_type).is_some_and(|t| t.needs_master_secret) {
            c.master_secret_arn =
                Attr::Known("arn:aws:secretsmanager:eu-west-1:123456789012:secret:m-AbCdEf".into());
        }
        let planned = plan(
            &c.to_value(),
            &Value::Null,
            &Private::new(),
            &PlanContext { region },
        );
        Rotation::from_value(&planned.state).template_version
    }

    #[test]
    fn the_default_version_is_the_applications_pin_in_the_secrets_partition() {
        let cn = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:db-AbCdEf";
        let gov = "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:db-AbCdEf";
        assert_eq!(
            planned_version("mariadb_single_user", SECRET, None),
            Attr::Known("1.1.670".into())
        );
        assert_eq!(
            planned_version("mariadb_single_user", cn, None),
            Attr::Known("1.1.442".into())
        );
        assert_eq!(
            planned_version("db2_multi_user", gov, None),
            Attr::Known("1.1.223".into())
        );
        // A secret name: the provider's region picks the partition.
        assert_eq!(
            planned_version("db2_single_user", "app/db", Some("us-gov-east-1")),
            Attr::Known("1.1.222".into())
        );
        // No region to pick a partition, or no pinned version: the apply
        // deploys the newest version and records it.
        assert_eq!(
            planned_version("oracle_single_user", "app/db", None),
            Attr::Unknown
        );
        assert_eq!(planned_version("generic", SECRET, None), Attr::Unknown);
    }

    #[test]
    fn a_recorded_version_is_kept_while_the_type_stays() {
        let mut c = config();
        c.rotation_type = Attr::Known("generic".into());
        let mut prior = applied();
        prior.rotation_type = Attr::Known("generic".into());
        prior.template_version = Attr::Known("1.1.5".into());
        let s =
            Rotation::from_value(&plan(&c.to_value(), &prior.to_value(), &private(), &ctx()).state);
        assert_eq!(s.template_version, Attr::Known("1.1.5".into()));
    }
}
