//! Plan-time checks of an `rdsrot_rotation` configuration. Pure: no AWS
//! call. A value that is not known yet skips the checks that need it.

use crate::aws::arn::Arn;
use crate::aws::endpoint::{self, EndpointHost, AWS_DOMAINS};
use crate::tf::{AttributePath, Diagnostic, Diagnostics};

use super::model::{Attr, Rotation};
use super::schedule;
use super::template;
use super::verify;

/// Every `rotation_type`: one per row of the template table.
pub const ROTATION_TYPES: [&str; template::TEMPLATES.len()] = template::ROTATION_TYPES;

fn root(name: &str) -> AttributePath {
    AttributePath::root(name)
}
pub fn rules_path(name: &str) -> AttributePath {
    AttributePath::root("rotation_rules").index(0).attr(name)
}
fn invalid(path: AttributePath, summary: &str, detail: impl Into<String>) -> Diagnostic {
    Diagnostic::error(summary, detail).at(path)
}

pub fn validate(c: &Rotation) -> Diagnostics {
    let mut d = Diagnostics::new();

    if let Some(id) = c.secret_id.as_deref() {
        if let Err(e) = check_secret_id(id) {
            d.push(invalid(root("secret_id"), "Invalid secret_id", e));
        }
    }

    // Template or existing Lambda: exactly one. An unknown value (a
    // variable or `each.value` at validate time) counts neither as set nor as
    // unset: the check runs again at plan, when it is known.
    match (&c.rotation_type, &c.rotation_lambda_arn) {
        (Attr::Null, Attr::Null) => d.push(invalid(
            root("rotation_type"),
            "Missing rotation_type or rotation_lambda_arn",
            "Set `rotation_type` to deploy a rotation template, or `rotation_lambda_arn` to use \
an existing rotation Lambda.",
        )),
        (Attr::Known(_), Attr::Known(_)) => d.push(invalid(
            root("rotation_lambda_arn"),
            "Conflicting rotation_type and rotation_lambda_arn",
            "Set only one of `rotation_type` (deploy a template) and `rotation_lambda_arn` (use \
an existing Lambda).",
        )),
        _ => {}
    }
    if let Some(t) = c.rotation_type.as_deref() {
        match template::find(t) {
            None => d.push(invalid(
                root("rotation_type"),
                "Unknown rotation_type",
                format!("{t:?} is not one of {}.", ROTATION_TYPES.join(", ")),
            )),
            Some(tpl) if tpl.needs_master_secret && c.master_secret_arn.is_null() => {
                let why = if tpl.is_multi_user() {
                    "signs in with a master secret"
                } else {
                    // Db2: a user cannot change its own password.
                    "changes the user's password signed in as the master secret's user, as Db2 \
users cannot change their own"
                };
                d.push(invalid(
                    root("master_secret_arn"),
                    "Missing master_secret_arn",
                    format!(
                        "The {t} strategy {why}: set `master_secret_arn` (and the `masterarn` \
key of the secret's JSON) to its ARN."
                    ),
                ));
            }
            // The generic template's code is yours: it may use a master
            // secret or not.
            Some(tpl)
                if tpl.strategy == template::Strategy::SingleUser
                    && !tpl.needs_master_secret
                    && c.master_secret_arn.known().is_some() =>
            {
                d.push(invalid(
                    root("master_secret_arn"),
                    "master_secret_arn with a single-user rotation",
                    format!(
                        "The {t} strategy changes the user's own password and uses no master \
secret: remove `master_secret_arn` or choose a multi-user type."
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if c.rotation_lambda_arn.known().is_some() {
        for name in ["function_name", "endpoint", "template_version"] {
            let set = match name {
                "function_name" => c.function_name.known().is_some(),
                "endpoint" => c.endpoint.known().is_some(),
                _ => c.template_version.known().is_some(),
            };
            if set {
                d.push(invalid(
                    root(name),
                    "Template argument with an existing Lambda",
                    format!(
                        "`{name}` configures the rotation template; it has no meaning with \
`rotation_lambda_arn`."
                    ),
                ));
            }
        }
    }

    let arn_checks: [(&str, &Attr<String>, &str, &[&str]); 4] = [
        (
            "rotation_lambda_arn",
            &c.rotation_lambda_arn,
            "lambda",
            &["function:"],
        ),
        (
            "master_secret_arn",
            &c.master_secret_arn,
            "secretsmanager",
            &["secret:"],
        ),
        (
            "master_secret_kms_key_arn",
            &c.master_secret_kms_key_arn,
            "kms",
            &["key/"],
        ),
        ("kms_key_arn", &c.kms_key_arn, "kms", &["key/"]),
    ];
    for (name, value, service, prefixes) in arn_checks {
        if let Some(v) = value.as_deref() {
            // The key ARN goes into an IAM policy's Resource, where an alias
            // never matches: IAM compares key ARNs only.
            let alias =
                service == "kms" && Arn::parse(v).is_some_and(|a| a.resource.starts_with("alias/"));
            if alias {
                d.push(invalid(
                    root(name),
                    &format!("Invalid {name}"),
                    format!(
                        "{v:?} is an alias ARN. The key is granted in an IAM policy, which matches keys by key ARN only (`arn:...:kms:<region>:<account>:key/<key id>`): give the key ARN the alias points to (`aws kms describe-key --key-id <alias>`)."
                    ),
                ));
            } else if let Err(e) = check_arn(v, service, prefixes) {
                d.push(invalid(root(name), &format!("Invalid {name}"), e));
            } else if let Err(e) = check_unqualified(name, v) {
                d.push(invalid(root(name), &format!("Invalid {name}"), e));
            }
        }
    }
    for (name, value) in [
        ("secret_id", &c.secret_id),
        ("master_secret_arn", &c.master_secret_arn),
        ("master_secret_kms_key_arn", &c.master_secret_kms_key_arn),
        ("kms_key_arn", &c.kms_key_arn),
        ("rotation_lambda_arn", &c.rotation_lambda_arn),
    ] {
        if let Some(e) = value.as_deref().and_then(wildcard_in_arn) {
            d.push(invalid(root(name), &format!("Wildcard in {name}"), e));
        }
    }
    if let (Some(id), Some(master)) = (c.secret_id.as_deref(), c.master_secret_arn.as_deref()) {
        if same_secret(id, master) {
            d.push(invalid(
                root("master_secret_arn"),
                "master_secret_arn is the secret being rotated",
                format!(
                    "{master:?} names the same secret as `secret_id` ({id:?}). The master \
secret holds the credentials that change the rotated user's password: point \
`master_secret_arn` at the database's administrator secret."
                ),
            ));
        }
    }

    if let Some(f) = c.function_name.as_deref() {
        if !is_lambda_name(f) {
            d.push(invalid(
                root("function_name"),
                "Invalid function_name",
                format!("{f:?} must be 1 to 64 letters, digits, hyphens or underscores."),
            ));
        }
    }
    if let Some(e) = c.endpoint.as_deref() {
        match check_url(e).and_then(|()| check_rotation_endpoint(e)) {
            Err(msg) => d.push(invalid(root("endpoint"), "Invalid endpoint", msg)),
            Ok(Some(host)) => d.push(
                Diagnostic::warning(
                    "endpoint outside AWS",
                    format!(
                        "The rotation Lambda will send every new password to {host}, which is \
not in one of AWS's domains ({}). Check that this host is a Secrets Manager endpoint you trust.",
                        AWS_DOMAINS.join(", ")
                    ),
                )
                .at(root("endpoint")),
            ),
            Ok(None) => {}
        }
    }
    if let Some(sid) = c.permission_statement_id.as_deref() {
        let ok = !sid.is_empty()
            && sid.len() <= 100
            && sid
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !ok {
            d.push(invalid(
                root("permission_statement_id"),
                "Invalid permission_statement_id",
                format!("{sid:?} must be 1 to 100 letters, digits, hyphens or underscores."),
            ));
        }
    }
    match c.permission_scope.as_deref() {
        None | Some("secret") => {}
        Some("account") => {
            if c.permission_statement_id.known().is_some() {
                d.push(invalid(
                    root("permission_statement_id"),
                    "permission_statement_id with permission_scope = \"account\"",
                    "With `permission_scope = \"account\"` every rotation that uses the Lambda \
shares one statement, whose id the provider sets: remove `permission_statement_id`."
                        .to_string(),
                ));
            }
        }
        Some(other) => d.push(invalid(
            root("permission_scope"),
            "Invalid permission_scope",
            format!("{other:?} is not a scope: use \"secret\" or \"account\"."),
        )),
    }
    if let Some(why) = account_scope_with_master_secret(c) {
        d.push(invalid(
            root("permission_scope"),
            "permission_scope = \"account\" with a master secret",
            format!(
                "{why} With `permission_scope = \"account\"` Secrets Manager may invoke the \
Lambda for any secret of the account, and the Lambda signs in as the master secret named by the \
`masterarn` key of whichever secret invoked it; IAM cannot tie the Lambda's read of a master \
secret to the secret that invoked it. So anyone who can create a secret and turn on its \
rotation with this Lambda could make it use this master secret's credentials. Use \
`permission_scope = \"secret\"` (the default): each secret then has its own statement, and \
only the secrets whose rotation you configure can invoke the Lambda."
            ),
        ));
    }

    for (name, value, prefix) in [
        ("vpc_subnet_ids", &c.vpc_subnet_ids, "subnet-"),
        ("vpc_security_group_ids", &c.vpc_security_group_ids, "sg-"),
    ] {
        let bad: Vec<&String> = value
            .known()
            .into_iter()
            .flatten()
            .filter(|id| !is_vpc_id(id, prefix))
            .collect();
        if !bad.is_empty() {
            d.push(invalid(
                root(name),
                &format!("Invalid {name}"),
                format!(
                    "{bad:?}: each must be an id {prefix}<hex digits>, as the EC2 console shows \
it (the ids are joined with commas into one template parameter)."
                ),
            ));
        }
    }

    // VPC: both or neither.
    match (&c.vpc_subnet_ids, &c.vpc_security_group_ids) {
        (Attr::Known(s), Attr::Null) if !s.is_empty() => d.push(invalid(
            root("vpc_security_group_ids"),
            "Subnets without security groups",
            "Set `vpc_security_group_ids` together with `vpc_subnet_ids`.",
        )),
        (Attr::Null, Attr::Known(g)) if !g.is_empty() => d.push(invalid(
            root("vpc_subnet_ids"),
            "Security groups without subnets",
            "Set `vpc_subnet_ids` together with `vpc_security_group_ids`.",
        )),
        (Attr::Known(s), Attr::Known(g)) if s.is_empty() != g.is_empty() => d.push(invalid(
            root(if s.is_empty() {
                "vpc_subnet_ids"
            } else {
                "vpc_security_group_ids"
            }),
            "Subnets and security groups go together",
            "Set both `vpc_subnet_ids` and `vpc_security_group_ids`, or neither.",
        )),
        _ => {}
    }

    validate_rules(c, &mut d);

    if let Some(text) = c.wait_for_rotation_timeout.as_deref() {
        if let Err(e) = verify::parse_bound(text) {
            d.push(invalid(
                root("wait_for_rotation_timeout"),
                "Invalid wait_for_rotation_timeout",
                format!("{e}, or \"0\" to not wait."),
            ));
        }
    }

    if let Attr::Known(t) = &c.timeouts {
        for (name, v) in [
            ("create", &t.create),
            ("update", &t.update),
            ("delete", &t.delete),
        ] {
            if let Some(text) = v.as_deref() {
                if let Err(e) = schedule::parse_timeout(text) {
                    d.push(invalid(root("timeouts").attr(name), "Invalid timeout", e));
                }
            }
        }
    }
    d
}

/// Why the rotation reads a master secret, when it does and its scope is
/// the account's: that pair lets any secret of the account borrow the
/// master credentials. An unknown value counts as neither: plan checks again.
fn account_scope_with_master_secret(c: &Rotation) -> Option<String> {
    if c.permission_scope.as_deref() != Some("account") {
        return None;
    }
    if c.master_secret_arn.known().is_some() {
        return Some(
            "This rotation gives its Lambda a master secret (`master_secret_arn`).".into(),
        );
    }
    let t = c.rotation_type.as_deref()?;
    template::find(t)
        .filter(|tpl| tpl.needs_master_secret)
        .map(|_| format!("The {t} strategy signs in with a master secret."))
}

fn validate_rules(c: &Rotation, d: &mut Diagnostics) {
    let rules = match &c.rotation_rules {
        Attr::Known(r) => r,
        _ => return,
    };
    let Some(r) = rules.first() else {
        d.push(invalid(
            root("rotation_rules"),
            "Missing rotation_rules",
            "A `rotation_rules` block is required.",
        ));
        return;
    };
    // Only known values count as set, and the schedule is missing only when
    // every setting is known to be null: an unknown one may still turn out
    // either way, and plan checks again once it is known.
    let settings = [
        (
            "automatically_after_days",
            presence(&r.automatically_after_days),
        ),
        ("schedule_expression", presence(&r.schedule_expression)),
        (
            "max_credential_age_days",
            presence(&r.max_credential_age_days),
        ),
    ];
    let set: Vec<&str> = settings
        .iter()
        .filter(|(_, p)| *p == Presence::Set)
        .map(|(n, _)| *n)
        .collect();
    let maybe_set = settings.iter().any(|(_, p)| *p == Presence::NotYetKnown);
    if set.len() > 1 {
        d.push(invalid(
            rules_path(set[1]),
            "More than one schedule setting",
            format!(
                "Set exactly one of automatically_after_days, schedule_expression and \
max_credential_age_days; this block sets {}.",
                set.join(" and ")
            ),
        ));
    } else if set.is_empty() && !maybe_set {
        d.push(invalid(
            root("rotation_rules").index(0),
            "Missing schedule",
            "Set one of automatically_after_days, schedule_expression or \
max_credential_age_days.",
        ));
    }
    if let Some(days) = r.automatically_after_days.known() {
        if !(1..=schedule::MAX_DAYS).contains(days) {
            d.push(invalid(
                rules_path("automatically_after_days"),
                "Invalid automatically_after_days",
                format!(
                    "automatically_after_days must be between 1 and 1000 (got {}).",
                    display_number(*days)
                ),
            ));
        }
    }
    if let Some(e) = r.schedule_expression.as_deref() {
        if let Err(msg) = schedule::check_schedule_expression(e) {
            d.push(invalid(
                rules_path("schedule_expression"),
                "Invalid schedule_expression",
                msg,
            ));
        }
    }
    if let Some(n) = r.max_credential_age_days.known() {
        // Whether users alternate must be known to do the arithmetic.
        if let Some(alternating) = c.credentials_alternate() {
            if let Err(msg) = schedule::days_for_max_credential_age(*n, alternating) {
                d.push(invalid(
                    rules_path("max_credential_age_days"),
                    "Invalid max_credential_age_days",
                    msg,
                ));
            }
        }
    }
    if let Some(dur) = r.duration.as_deref() {
        match schedule::check_duration(dur) {
            Err(msg) => d.push(invalid(rules_path("duration"), "Invalid duration", msg)),
            Ok(hours) => {
                // AWS refuses a window that runs into the next one only at
                // RotateSecret, the last step of create: catch it here.
                let expression = r
                    .schedule_expression
                    .as_deref()
                    .filter(|e| schedule::check_schedule_expression(e).is_ok());
                if let Some(e) = expression {
                    if let Err(msg) = schedule::check_window(e, hours) {
                        d.push(invalid(
                            rules_path("duration"),
                            "Rotation window longer than the schedule allows",
                            msg,
                        ));
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Set,
    Unset,
    NotYetKnown,
}

fn presence<T>(a: &Attr<T>) -> Presence {
    match a {
        Attr::Known(_) => Presence::Set,
        Attr::Null => Presence::Unset,
        Attr::Unknown => Presence::NotYetKnown,
    }
}

fn display_number(n: i64) -> String {
    if n == i64::MIN {
        "a fraction".into()
    } else {
        n.to_string()
    }
}

fn check_secret_id(id: &str) -> Result<(), String> {
    if id.starts_with("arn:") {
        return check_arn(id, "secretsmanager", &["secret:"]);
    }
    let ok = !id.is_empty()
        && id.len() <= 512
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-!".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is neither a Secrets Manager secret ARN nor a valid secret name (1 to 512 \
letters, digits and /_+=.@-)."
        ))
    }
}

pub fn check_arn(text: &str, service: &str, resource_prefixes: &[&str]) -> Result<(), String> {
    let Some(arn) = Arn::parse(text) else {
        return Err(format!(
            "{text:?} is not an ARN (arn:partition:{service}:region:account:...)."
        ));
    };
    if arn.service != service {
        return Err(format!(
            "{text:?} is an ARN of the {} service; a {service} ARN is expected.",
            arn.service
        ));
    }
    let resource_ok = resource_prefixes.iter().any(|p| {
        arn.resource
            .strip_prefix(p)
            .is_some_and(|rest| !rest.is_empty())
    });
    // IAM is global: its ARNs have no region.
    let region_ok = !arn.region.is_empty() || service == "iam";
    if !region_ok || arn.account.is_empty() || !resource_ok {
        return Err(format!(
            "{text:?} does not have the shape arn:partition:{service}:region:account:{}...",
            resource_prefixes.join("|")
        ));
    }
    Ok(())
}

/// Secrets Manager invokes the function's unqualified ARN (its `$LATEST`),
/// and the invoke permission and role are the function's, not an alias's.
fn check_unqualified(attribute: &str, arn: &str) -> Result<(), String> {
    let qualifier = (attribute == "rotation_lambda_arn")
        .then(|| {
            Arn::parse(arn)?
                .resource
                .strip_prefix("function:")?
                .split_once(':')
        })
        .flatten();
    match qualifier {
        Some((function, qualifier)) => Err(format!(
            "{arn:?} names version or alias {qualifier:?} of {function}. Give the unqualified \
function ARN (without `:{qualifier}`): rotation always runs the function's latest code."
        )),
        None => Ok(()),
    }
}

/// The ARNs become the `Resource` of the grants the provider writes (the
/// invoke permission's source, the master-secret and key policies), where
/// `*` and `?` match other secrets, keys and functions too.
fn wildcard_in_arn(value: &str) -> Option<String> {
    let arn = Arn::parse(value)?;
    let wild = |part: &str| part.contains(['*', '?']);
    let part = [
        ("region", arn.region),
        ("account", arn.account),
        ("resource", arn.resource),
    ]
    .into_iter()
    .find(|(_, text)| wild(text))?;
    Some(format!(
        "{value:?} has a wildcard in its {}: the provider grants access to exactly this ARN, \
and a wildcard would widen the grant to every match. Give the one resource's full ARN.",
        part.0
    ))
}

/// AWS's random suffix on a secret's ARN: six letters or digits. A name's
/// last hyphenated word (`db-master`) also has six letters, so only a
/// suffix with an uppercase letter or a digit, as nearly all random ones
/// have, counts: a rare miss only skips this check.
fn without_random_suffix(name: &str) -> Option<&str> {
    let (base, suffix) = name.rsplit_once('-')?;
    let random = suffix.len() == 6
        && suffix.chars().all(|ch| ch.is_ascii_alphanumeric())
        && suffix
            .chars()
            .any(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit());
    (random && !base.is_empty()).then_some(base)
}

/// Whether two `secret_id`-style values (names, full or partial ARNs) name
/// the same secret, as far as the text tells. A name is taken to be in the
/// other value's region and account.
pub fn same_secret(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let split = |v: &'_ str| -> (Option<(String, String, String)>, String) {
        match Arn::parse(v) {
            Some(arn) => (
                Some((arn.partition.into(), arn.region.into(), arn.account.into())),
                arn.resource
                    .strip_prefix("secret:")
                    .unwrap_or(arn.resource)
                    .into(),
            ),
            None => (None, v.into()),
        }
    };
    let (scope_a, name_a) = split(a);
    let (scope_b, name_b) = split(b);
    if let (Some(x), Some(y)) = (&scope_a, &scope_b) {
        if x != y {
            return false;
        }
    }
    // Only an ARN carries the suffix; a name or partial ARN is the base.
    let base_a = scope_a
        .as_ref()
        .and_then(|_| without_random_suffix(&name_a));
    let base_b = scope_b
        .as_ref()
        .and_then(|_| without_random_suffix(&name_b));
    name_a == name_b || base_a == Some(name_b.as_str()) || base_b == Some(name_a.as_str())
}

fn is_vpc_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|ch| ch.is_ascii_hexdigit()))
}

/// The rotation Lambda sends each new password to `endpoint`.
/// `Ok(Some(host))` for a host outside AWS's domains, which deserves a
/// warning.
fn check_rotation_endpoint(url: &str) -> Result<Option<String>, String> {
    match endpoint::classify(url, "the rotation Lambda sends new passwords there")? {
        EndpointHost::OutsideAws(host) => Ok(Some(host)),
        EndpointHost::Loopback | EndpointHost::Aws => Ok(None),
    }
}

pub fn is_lambda_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with https:// (or http://)."))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host name."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::model::RotationRules;

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";
    const MASTER: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:master-AbCdEf";
    const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotator";

    fn k<T>(v: T) -> Attr<T> {
        Attr::Known(v)
    }
    fn base() -> Rotation {
        Rotation {
            secret_id: k(SECRET.into()),
            rotation_type: k("postgresql_single_user".into()),
            rotation_rules: k(vec![RotationRules {
                automatically_after_days: k(30),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }
    fn with_rules(f: impl FnOnce(&mut RotationRules)) -> Rotation {
        let mut c = base();
        let mut r = RotationRules::default();
        f(&mut r);
        c.rotation_rules = k(vec![r]);
        c
    }
    /// The paths of the diagnostics, as Terraform prints them.
    fn paths(c: &Rotation) -> Vec<String> {
        validate(c)
            .iter()
            .map(|d| {
                d.attribute
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn a_valid_config_has_no_diagnostics() {
        assert!(validate(&base()).is_empty());
        let mut multi = base();
        multi.rotation_type = k("mysql_multi_user".into());
        multi.master_secret_arn = k(MASTER.into());
        multi.vpc_subnet_ids = k(vec!["subnet-1".into()]);
        multi.vpc_security_group_ids = k(vec!["sg-1".into()]);
        assert!(validate(&multi).is_empty(), "{:?}", validate(&multi));
        let mut existing = base();
        existing.rotation_type = Attr::Null;
        existing.rotation_lambda_arn = k(LAMBDA.into());
        assert!(validate(&existing).is_empty());
    }

    #[test]
    fn unknown_rotation_type() {
        for bad in [
            "oracle",
            "Oracle_single_user",
            "mssql_single_user",
            "generic_multi_user",
            "",
        ] {
            let mut c = base();
            c.rotation_type = k(bad.into());
            assert_eq!(paths(&c), ["rotation_type"], "{bad:?}");
            let d = validate(&c);
            let detail = &d.iter().next().expect("one diagnostic").detail;
            assert!(
                detail.contains(&format!("{bad:?}")) && detail.contains("mongodb_multi_user"),
                "{detail}"
            );
        }
    }

    #[test]
    fn every_rotation_type_of_the_table_is_accepted() {
        for t in &template::TEMPLATES {
            let mut c = base();
            c.rotation_type = k(t.rotation_type.into());
            if t.needs_master_secret {
                c.master_secret_arn = k(MASTER.into());
            }
            assert!(
                validate(&c).is_empty(),
                "{}: {:?}",
                t.rotation_type,
                paths(&c)
            );
        }
        assert_eq!(ROTATION_TYPES.len(), 17);
    }

    #[test]
    fn db2_single_user_needs_the_master_secret_too() {
        let mut c = base();
        c.rotation_type = k("db2_single_user".into());
        assert_eq!(paths(&c), ["master_secret_arn"]);
        let d = validate(&c);
        let detail = &d.iter().next().expect("one diagnostic").detail;
        assert!(
            detail.contains("Db2") && detail.contains("masterarn"),
            "{detail}"
        );
        c.master_secret_arn = k(MASTER.into());
        assert!(validate(&c).is_empty());
    }

    #[test]
    fn the_generic_template_takes_a_master_secret_or_not() {
        let mut c = base();
        c.rotation_type = k("generic".into());
        assert!(validate(&c).is_empty());
        c.master_secret_arn = k(MASTER.into());
        assert!(validate(&c).is_empty());
    }

    #[test]
    fn both_or_neither_template_and_lambda() {
        let mut both = base();
        both.rotation_lambda_arn = k(LAMBDA.into());
        assert_eq!(paths(&both), ["rotation_lambda_arn"]);
        let mut neither = base();
        neither.rotation_type = Attr::Null;
        assert_eq!(paths(&neither), ["rotation_type"]);
    }

    #[test]
    fn multi_user_needs_master_and_single_user_rejects_it() {
        let mut multi = base();
        multi.rotation_type = k("postgresql_multi_user".into());
        assert_eq!(paths(&multi), ["master_secret_arn"]);
        let mut single = base();
        single.master_secret_arn = k(MASTER.into());
        assert_eq!(paths(&single), ["master_secret_arn"]);
        for t in [
            "mariadb",
            "oracle",
            "sqlserver",
            "db2",
            "redshift",
            "mongodb",
        ] {
            let mut multi = base();
            multi.rotation_type = k(format!("{t}_multi_user"));
            assert_eq!(paths(&multi), ["master_secret_arn"], "{t}");
            let mut single = base();
            single.rotation_type = k(format!("{t}_single_user"));
            single.master_secret_arn = k(MASTER.into());
            let want: &[&str] = if t == "db2" {
                &[]
            } else {
                &["master_secret_arn"]
            };
            assert_eq!(paths(&single), want, "{t}");
        }
    }

    #[test]
    fn days_out_of_range() {
        for days in [0, 1001, -3] {
            let c = with_rules(|r| r.automatically_after_days = k(days));
            assert_eq!(
                paths(&c),
                ["rotation_rules[0].automatically_after_days"],
                "{days}"
            );
        }
    }

    #[test]
    fn two_schedule_settings_or_none() {
        let c = with_rules(|r| {
            r.automatically_after_days = k(5);
            r.schedule_expression = k("rate(5 days)".into());
        });
        assert_eq!(paths(&c), ["rotation_rules[0].schedule_expression"]);
        let none = with_rules(|r| r.duration = k("2h".into()));
        assert_eq!(paths(&none), ["rotation_rules[0]"]);
    }

    #[test]
    fn bad_expressions_and_durations() {
        for e in ["rate(1 hours)", "cron(0 16 1 * ?)", "cron(x y z)", "weekly"] {
            let c = with_rules(|r| r.schedule_expression = k(e.into()));
            assert_eq!(paths(&c), ["rotation_rules[0].schedule_expression"], "{e}");
        }
        for dur in ["0h", "25h", "2d"] {
            let c = with_rules(|r| {
                r.automatically_after_days = k(3);
                r.duration = k(dur.into());
            });
            assert_eq!(paths(&c), ["rotation_rules[0].duration"], "{dur}");
        }
    }

    #[test]
    fn max_credential_age_arithmetic_is_checked() {
        let c = with_rules(|r| r.max_credential_age_days = k(1));
        assert_eq!(paths(&c), ["rotation_rules[0].max_credential_age_days"]);
        let ok = with_rules(|r| r.max_credential_age_days = k(90));
        assert!(validate(&ok).is_empty());
    }

    #[test]
    fn arns_of_the_wrong_service_or_shape() {
        let mut c = base();
        c.rotation_type = k("mysql_multi_user".into());
        c.master_secret_arn = k(LAMBDA.into());
        c.kms_key_arn = k("arn:aws:kms:us-east-1:1:nothing/x".into());
        c.master_secret_kms_key_arn = k("not-an-arn".into());
        assert_eq!(
            paths(&c),
            [
                "master_secret_arn",
                "master_secret_kms_key_arn",
                "kms_key_arn"
            ]
        );
        let mut l = base();
        l.rotation_type = Attr::Null;
        l.rotation_lambda_arn = k(MASTER.into());
        assert_eq!(paths(&l), ["rotation_lambda_arn"]);
        let mut s = base();
        s.secret_id = k("arn:aws:lambda:us-east-1:1:function:f".into());
        assert_eq!(paths(&s), ["secret_id"]);
    }

    #[test]
    fn subnets_without_security_groups() {
        let mut c = base();
        c.vpc_subnet_ids = k(vec!["subnet-1".into()]);
        assert_eq!(paths(&c), ["vpc_security_group_ids"]);
        let mut g = base();
        g.vpc_security_group_ids = k(vec!["sg-1".into()]);
        assert_eq!(paths(&g), ["vpc_subnet_ids"]);
    }

    #[test]
    fn bad_timeouts_point_at_the_timeout() {
        let mut c = base();
        c.timeouts = k(crate::rotation::model::Timeouts {
            delete: k("soon".into()),
            ..Default::default()
        });
        assert_eq!(paths(&c), ["timeouts.delete"]);
    }

    #[test]
    fn an_unknown_value_never_counts_as_set_in_a_conflict() {
        // rotation_type beside an unknown rotation_lambda_arn, either way round.
        let mut c = base();
        c.rotation_lambda_arn = Attr::Unknown;
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        let mut c = base();
        c.rotation_type = Attr::Unknown;
        c.rotation_lambda_arn = k(LAMBDA.into());
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        // Two schedule settings, one of them unknown (each.value.days).
        for unknown_side in ["days", "expression", "age"] {
            let c = with_rules(|r| {
                r.automatically_after_days = k(5);
                r.schedule_expression = k("rate(5 days)".into());
                r.max_credential_age_days = Attr::Null;
                match unknown_side {
                    "days" => r.automatically_after_days = Attr::Unknown,
                    "expression" => r.schedule_expression = Attr::Unknown,
                    _ => r.max_credential_age_days = Attr::Unknown,
                }
            });
            let p = paths(&c);
            if unknown_side == "age" {
                assert_eq!(p, ["rotation_rules[0].schedule_expression"], "two known");
            } else {
                assert!(p.is_empty(), "{unknown_side}: {p:?}");
            }
        }
        // A single-user template beside an unknown master secret.
        let mut c = base();
        c.master_secret_arn = Attr::Unknown;
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        // Template arguments beside an unknown Lambda, and unknown template
        // arguments beside a known Lambda.
        let mut c = base();
        c.rotation_type = Attr::Null;
        c.rotation_lambda_arn = Attr::Unknown;
        c.function_name = k("f".into());
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        let mut c = base();
        c.rotation_type = Attr::Null;
        c.rotation_lambda_arn = k(LAMBDA.into());
        c.function_name = Attr::Unknown;
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
    }

    #[test]
    fn an_unknown_value_never_counts_as_unset_either() {
        // Every schedule setting unknown or null: not "missing" yet.
        let c = with_rules(|r| r.schedule_expression = Attr::Unknown);
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        // Both sources: one unknown, one null.
        let mut c = base();
        c.rotation_type = Attr::Unknown;
        assert!(validate(&c).is_empty());
        // Known values at plan: the same checks then fire.
        let c = with_rules(|r| {
            r.automatically_after_days = Attr::Null;
            r.schedule_expression = Attr::Null;
        });
        assert_eq!(paths(&c), ["rotation_rules[0]"]);
    }

    #[test]
    fn a_window_longer_than_the_interval_is_refused_on_duration() {
        let c = with_rules(|r| {
            r.schedule_expression = k("rate(4 hours)".into());
            r.duration = k("6h".into());
        });
        assert_eq!(paths(&c), ["rotation_rules[0].duration"]);
        let ok = with_rules(|r| {
            r.schedule_expression = k("rate(6 hours)".into());
            r.duration = k("6h".into());
        });
        assert!(validate(&ok).is_empty());
    }

    #[test]
    fn an_overlong_timeout_is_a_diagnostic_not_a_panic() {
        let mut c = base();
        c.timeouts = k(crate::rotation::model::Timeouts {
            create: k("9999999999999999999s".into()),
            ..Default::default()
        });
        assert_eq!(paths(&c), ["timeouts.create"]);
    }

    #[test]
    fn unknown_values_skip_their_checks() {
        let mut c = base();
        c.rotation_type = Attr::Unknown;
        c.rotation_rules = Attr::Unknown;
        c.secret_id = Attr::Unknown;
        assert!(validate(&c).is_empty());
    }

    #[test]
    fn kms_alias_arns_are_refused_because_iam_never_matches_them() {
        let mut c = base();
        c.rotation_type = k("postgresql_multi_user".into());
        c.master_secret_arn =
            k("arn:aws:secretsmanager:us-east-1:123456789012:secret:m-AbCdEf".into());
        c.master_secret_kms_key_arn = k("arn:aws:kms:us-east-1:123456789012:alias/db".into());
        c.kms_key_arn = k("arn:aws:kms:us-east-1:123456789012:alias/db".into());
        assert_eq!(paths(&c), ["master_secret_kms_key_arn", "kms_key_arn"]);
        c.master_secret_kms_key_arn = k("arn:aws:kms:us-east-1:123456789012:key/1234".into());
        c.kms_key_arn = k("arn:aws:kms:us-east-1:123456789012:key/1234".into());
        assert!(validate(&c).is_empty());
    }

    #[test]
    fn the_account_scope_sets_its_own_statement_id() {
        let mut c = base();
        c.permission_scope = k("account".into());
        assert!(validate(&c).is_empty());
        c.permission_statement_id = k("mine".into());
        assert_eq!(paths(&c), ["permission_statement_id"]);
        c.permission_statement_id = Attr::Null;
        c.permission_scope = k("everyone".into());
        assert_eq!(paths(&c), ["permission_scope"]);
    }

    #[test]
    fn the_account_scope_is_refused_with_a_master_secret() {
        let master = "arn:aws:secretsmanager:us-east-1:123456789012:secret:m-AbCdEf";
        let lambda = "arn:aws:lambda:us-east-1:123456789012:function:rotator";
        let mut cases: Vec<(&str, Rotation)> = Vec::new();
        let mut c = base();
        c.rotation_type = k("postgresql_multi_user".into());
        c.master_secret_arn = k(master.into());
        cases.push(("multi user", c.clone()));
        // Known type, master secret not known yet: the type alone says it.
        c.master_secret_arn = Attr::Unknown;
        cases.push(("multi user, master unknown", c));
        let mut c = base();
        c.rotation_type = k("db2_single_user".into());
        c.master_secret_arn = k(master.into());
        cases.push(("db2 single user", c));
        let mut c = base();
        c.rotation_type = Attr::Null;
        c.rotation_lambda_arn = k(lambda.into());
        c.master_secret_arn = k(master.into());
        cases.push(("existing Lambda with a master secret", c));
        for (what, mut c) in cases {
            c.permission_scope = k("account".into());
            let found = validate(&c);
            let refusal = found
                .iter()
                .find(|d| d.summary.contains("with a master secret"))
                .unwrap_or_else(|| panic!("{what}: not refused: {found:?}"));
            assert_eq!(
                refusal.attribute.as_ref().map(|p| p.to_string()).as_deref(),
                Some("permission_scope"),
                "{what}"
            );
            assert!(
                refusal.detail.contains("permission_scope = \"secret\""),
                "{what}: says what to do instead"
            );
            c.permission_scope = k("secret".into());
            assert!(
                validate(&c).is_empty(),
                "{what}: the per-secret scope is fine"
            );
            c.permission_scope = Attr::Unknown;
            assert!(
                validate(&c).is_empty(),
                "{what}: unknown scope waits for plan"
            );
        }
        // Without a master secret the account scope stays allowed.
        let mut c = base();
        c.rotation_type = Attr::Null;
        c.rotation_lambda_arn = k(lambda.into());
        c.permission_scope = k("account".into());
        assert!(validate(&c).is_empty());
    }

    fn multi(master: &str) -> Rotation {
        let mut c = base();
        c.rotation_type = k("postgresql_multi_user".into());
        c.master_secret_arn = k(master.into());
        c
    }

    #[test]
    fn the_master_secret_cannot_be_the_rotated_secret() {
        // The same ARN, and a name against the ARN of that name's secret.
        assert_eq!(paths(&multi(SECRET)), ["master_secret_arn"]);
        let mut named = multi(SECRET);
        named.secret_id = k("db".into());
        assert_eq!(paths(&named), ["master_secret_arn"]);
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db";
        assert_eq!(paths(&multi(partial)), ["master_secret_arn"]);
        // Another secret, one whose name only starts the same, or one of
        // another account, is fine.
        assert!(validate(&multi(MASTER)).is_empty());
        let mut prefixed = multi("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-master");
        prefixed.secret_id = k("db".into());
        assert!(validate(&prefixed).is_empty(), "{:?}", paths(&prefixed));
        let other_account = "arn:aws:secretsmanager:us-east-1:210987654321:secret:db-AbCdEf";
        assert!(validate(&multi(other_account)).is_empty());
    }

    #[test]
    fn a_rotation_lambda_arn_with_a_version_or_alias_is_refused() {
        let mut c = base();
        c.rotation_type = Attr::Null;
        for qualified in [format!("{LAMBDA}:1"), format!("{LAMBDA}:live")] {
            c.rotation_lambda_arn = k(qualified.clone());
            assert_eq!(paths(&c), ["rotation_lambda_arn"], "{qualified}");
            let d = validate(&c);
            let detail = &d.iter().next().expect("one diagnostic").detail;
            assert!(detail.contains("unqualified"), "{detail}");
        }
    }

    #[test]
    fn wildcards_in_arns_are_refused_as_they_widen_the_grants() {
        let wild_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-*";
        let mut c = base();
        c.secret_id = k(wild_secret.into());
        assert_eq!(paths(&c), ["secret_id"]);
        let mut c = multi("arn:aws:secretsmanager:*:123456789012:secret:m-AbCdEf");
        c.master_secret_kms_key_arn = k("arn:aws:kms:us-east-1:12345678901?:key/1".into());
        c.kms_key_arn = k("arn:aws:kms:us-east-1:123456789012:key/*".into());
        assert_eq!(
            paths(&c),
            [
                "master_secret_arn",
                "master_secret_kms_key_arn",
                "kms_key_arn"
            ]
        );
        let mut c = base();
        c.rotation_type = Attr::Null;
        c.rotation_lambda_arn = k("arn:aws:lambda:us-east-1:123456789012:function:rot*".into());
        assert_eq!(paths(&c), ["rotation_lambda_arn"]);
    }

    #[test]
    fn subnet_and_security_group_ids_must_be_ec2_ids() {
        let mut c = base();
        c.vpc_subnet_ids = k(vec!["subnet-0a1b2c".into(), "subnet-1,subnet-2".into()]);
        c.vpc_security_group_ids = k(vec!["default".into()]);
        assert_eq!(paths(&c), ["vpc_subnet_ids", "vpc_security_group_ids"]);
        c.vpc_subnet_ids = k(vec!["subnet-0a1b2c".into(), "subnet-".into()]);
        c.vpc_security_group_ids = k(vec!["sg-0123456789abcdef0".into()]);
        assert_eq!(paths(&c), ["vpc_subnet_ids"]);
        c.vpc_subnet_ids = k(vec!["subnet-0a1b2c".into()]);
        assert!(validate(&c).is_empty());
    }

    #[test]
    fn the_endpoint_is_https_unless_on_this_machine_and_warned_outside_aws() {
        let at = |url: &str| {
            let mut c = base();
            c.endpoint = k(url.into());
            validate(&c)
                .iter()
                .map(|d| (d.severity, d.detail.clone()))
                .collect::<Vec<_>>()
        };
        for fine in [
            "https://secretsmanager.us-east-1.amazonaws.com",
            "https://secretsmanager-fips.us-gov-west-1.amazonaws.com",
            "https://secretsmanager.cn-north-1.amazonaws.com.cn",
            "https://secretsmanager.eu-west-1.api.aws",
            "https://vpce-0a.secretsmanager.us-east-1.vpce.amazonaws.com/",
            "http://127.0.0.1:5000",
            "http://localhost:5000/",
            "http://[::1]:5000",
        ] {
            assert!(at(fine).is_empty(), "{fine}: {:?}", at(fine));
        }
        for plain in [
            "http://secretsmanager.us-east-1.amazonaws.com",
            "http://10.0.0.5",
        ] {
            let d = at(plain);
            assert!(
                d.len() == 1 && d[0].0 == crate::tf::Severity::Error && d[0].1.contains("https://"),
                "{plain}: {d:?}"
            );
        }
        let d = at("https://secrets.example.net:8443/x");
        assert!(
            d.len() == 1
                && d[0].0 == crate::tf::Severity::Warning
                && d[0].1.contains("secrets.example.net"),
            "{d:?}"
        );
        // A look-alike is not AWS.
        assert_eq!(at("https://evil-amazonaws.com").len(), 1);
    }
}
