//! The pre-flight check of the secret: before a template rotation is turned
//! on, the secret's AWSCURRENT value is read and checked for what the
//! template's Lambda needs, so that a secret the Lambda cannot use fails the
//! plan (or the apply, before anything is made) instead of the first
//! rotation, hours later, in the Lambda's logs.
//!
//! What each template needs comes from its `lambda_function.py` in
//! aws-samples/aws-secrets-manager-rotation-lambdas (`get_secret_dict`):
//!
//! | engine prefix of `rotation_type` | `engine` values the template accepts |
//! |---|---|
//! | `mysql` | `mysql`, `aurora-mysql` (not the old `aurora`) |
//! | `postgresql` | `postgres`, `aurora-postgresql` |
//! | `mariadb` | `mariadb` |
//! | `oracle` | `oracle` (and the secret needs `dbname`) |
//! | `sqlserver` | `sqlserver` |
//! | `db2` | any value starting with `db2` |
//! | `redshift` | `redshift` |
//! | `mongodb` | `mongo` |
//!
//! Every template needs `host`, `username` and `password`; every template
//! fails without `engine` (the single-user ones test for it, the multi-user
//! ones list it among the required keys). The multi-user templates, and
//! Db2's single-user one, sign in with the secret named by `masterarn`.
//!
//! The value lives only in a `Zeroizing` buffer and in parsed strings that
//! are wiped before they are dropped; no finding quotes it, and nothing here
//! logs it.

use serde_json::{Map, Value as Json};
use zeroize::Zeroize;

use crate::aws::arn::Arn;
use crate::aws::secretsmanager::{self as sm, SecretValue};
use crate::aws::{AwsError, Clients, Deadline};
use crate::tf::{AttributePath, Diagnostic, Diagnostics};

use super::model::Rotation;
use super::template::{self, Template};

/// The template whose secret format `rotation_type` is checked against:
/// `None` for `generic` (its format is the user's own) and unknown types.
fn checked_template(rotation_type: &str) -> Option<&'static Template> {
    template::find(rotation_type).filter(|t| !t.secret.engines.is_empty())
}

/// What the secret is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub rotation_type: &'a str,
    /// The master secret, as a full ARN when Secrets Manager resolved it,
    /// else as configured.
    pub master_secret: Option<&'a str>,
}

/// The parsed secret, whose strings are wiped when it is dropped: a parsed
/// copy of the password must not outlive the check either.
struct Parsed(Json);

impl Drop for Parsed {
    fn drop(&mut self) {
        fn wipe(v: &mut Json) {
            match v {
                Json::String(s) => s.zeroize(),
                Json::Array(items) => items.iter_mut().for_each(wipe),
                Json::Object(m) => m.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

fn at_secret(d: Diagnostic) -> Diagnostic {
    d.at(AttributePath::root("secret_id"))
}

fn format_error(summary: &str, detail: String) -> Diagnostic {
    at_secret(Diagnostic::error(
        summary,
        format!(
            "{detail} The rotation template's Lambda reads this JSON at every rotation and would \
fail on it. Fix the secret's value, or set `preflight_check = false` if the Lambda that reads it \
is not the template's. Nothing was changed in AWS."
        ),
    ))
}

/// Checks the secret's current `SecretString` against what the template
/// needs. Pure: no finding quotes a value of the secret, only key names and
/// the configuration.
pub fn check_secret_string(secret: &str, expected: &Expected) -> Vec<Diagnostic> {
    let Some(tpl) = checked_template(expected.rotation_type) else {
        return vec![];
    };
    let engine = tpl.secret;
    let multi = tpl.is_multi_user();
    let t = expected.rotation_type;
    // serde_json's error names a line and column, never the text there.
    let parsed = match serde_json::from_str::<Json>(secret) {
        Ok(v) => Parsed(v),
        Err(e) => {
            return vec![format_error(
                "The secret's value is not JSON",
                format!(
                    "The secret's current value does not parse as JSON (at line {}, column {}); \
the {t} template needs a JSON object with `engine`, `host`, `username` and `password` keys.",
                    e.line(),
                    e.column()
                ),
            )]
        }
    };
    let Json::Object(map) = &parsed.0 else {
        return vec![format_error(
            "The secret's value is not a JSON object",
            format!(
                "The secret's current value is JSON but not an object; the {t} template needs an \
object with `engine`, `host`, `username` and `password` keys."
            ),
        )];
    };

    let mut found = Vec::new();
    match map.get("engine") {
        None => found.push(format_error(
            "The secret's JSON has no \"engine\" key",
            format!(
                "The secret's JSON has no \"engine\" key; the {t} template needs it set to {}.",
                engine.accepted_list()
            ),
        )),
        Some(Json::String(e)) if engine.accepts(e) => {}
        Some(Json::String(e)) => {
            // Saying which database the secret is for makes the mistake
            // plain, but only a known engine name is quoted: whatever else
            // is there may be a credential put under the wrong key.
            let is = match known_engine_name(e) {
                Some(name) => format!("is {name:?}"),
                None => "is not an engine name of any rotation template".to_string(),
            };
            found.push(format_error(
                "The secret's \"engine\" is not the template's",
                format!(
                    "The secret's \"engine\" key {is}, but `rotation_type` {t} rotates with a \
template that takes only {}. Choose the `rotation_type` of the secret's database, or correct \
\"engine\".",
                    engine.accepted_list()
                ),
            ))
        }
        Some(_) => found.push(format_error(
            "The secret's \"engine\" is not a string",
            format!(
                "The secret's \"engine\" key is not a string; the {t} template needs it set to {}.",
                engine.accepted_list()
            ),
        )),
    }

    let mut required = vec!["host", "username", "password"];
    if engine.needs_dbname {
        required.push("dbname");
    }
    for key in required {
        if let Some(d) = missing_string(map, key, t) {
            found.push(d);
        }
    }

    if tpl.needs_master_secret {
        found.extend(check_masterarn(map, expected, multi));
    }

    if let Some(Json::String(host)) = map.get("host") {
        if host.contains(".cluster-ro-") {
            found.push(at_secret(Diagnostic::warning(
                "The secret's host is a reader endpoint",
                format!(
                    "The secret's \"host\" key names an Aurora reader endpoint (\".cluster-ro-\"). \
A password can be changed only on the writer: the {t} template's Lambda would fail to set it. Use \
the cluster (writer) endpoint."
                ),
            )));
        }
    }
    found
}

/// `value` when it is an `engine` value some template takes, as a
/// `'static` name that holds nothing of the secret.
fn known_engine_name(value: &str) -> Option<&'static str> {
    template::TEMPLATES
        .iter()
        .flat_map(|t| t.secret.engines.iter())
        .find(|a| **a == value)
        .copied()
}

fn missing_string(map: &Map<String, Json>, key: &str, t: &str) -> Option<Diagnostic> {
    match map.get(key) {
        Some(Json::String(_)) => None,
        None => Some(format_error(
            &format!("The secret's JSON has no {key:?} key"),
            format!("The secret's JSON has no {key:?} key, which the {t} template needs."),
        )),
        Some(_) => Some(format_error(
            &format!("The secret's {key:?} is not a string"),
            format!("The secret's {key:?} key is not a string, which the {t} template needs."),
        )),
    }
}

fn check_masterarn(map: &Map<String, Json>, expected: &Expected, multi: bool) -> Vec<Diagnostic> {
    let t = expected.rotation_type;
    let why = if multi {
        "The multi-user template signs in with the secret named by \"masterarn\" to change the \
other user's password"
    } else {
        "The Db2 single-user template signs in with the secret named by \"masterarn\", since a Db2 \
user cannot change its own password"
    };
    let written = match map.get("masterarn") {
        Some(Json::String(s)) => s,
        None => {
            let fix = match expected.master_secret {
                Some(m) => format!(" Add \"masterarn\": {m:?} to the secret's JSON."),
                None => String::new(),
            };
            return vec![format_error(
                "The secret's JSON has no \"masterarn\" key",
                format!("{why}, and the secret's JSON has no \"masterarn\" key ({t}).{fix}"),
            )];
        }
        Some(_) => {
            return vec![format_error(
                "The secret's \"masterarn\" is not a string",
                format!("{why}; the secret's \"masterarn\" key must be a string ARN ({t})."),
            )]
        }
    };
    let Some(master) = expected.master_secret else {
        return vec![];
    };
    if same_secret(written, master) {
        return vec![];
    }
    // A Secrets Manager ARN names a secret, not a credential: quoting it
    // says which secret the Lambda would use instead. Anything else is not
    // quoted, in case a credential was put under the wrong key.
    let is = match Arn::parse(written) {
        Some(arn) if arn.service == "secretsmanager" => format!("is {written:?}"),
        _ => "names another secret".to_string(),
    };
    vec![Diagnostic::error(
        "The secret's \"masterarn\" names another secret",
        format!(
            "The secret's \"masterarn\" key {is}, but `master_secret_arn` is {master:?}. \
The template's Lambda signs in with the secret in \"masterarn\", while the provider grants the \
Lambda access only to `master_secret_arn`. Make the two name the same secret. Nothing was \
changed in AWS."
        ),
    )
    .at(AttributePath::root("master_secret_arn"))]
}

/// Whether two references name the same secret: full ARNs, partial ARNs
/// (without the six-character suffix AWS adds) or names.
pub fn same_secret(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let name = |s: &str| -> Option<String> {
        match Arn::parse(s) {
            Some(arn) => arn.resource.strip_prefix("secret:").map(str::to_string),
            None => Some(s.to_string()),
        }
    };
    if let (Some(x), Some(y)) = (Arn::parse(a), Arn::parse(b)) {
        if (x.partition, x.region, x.account) != (y.partition, y.region, y.account) {
            return false;
        }
    }
    let (Some(x), Some(y)) = (name(a), name(b)) else {
        return false;
    };
    let without_suffix = |n: &str| -> Option<String> {
        n.rsplit_once('-')
            .filter(|(base, suffix)| suffix.len() == 6 && !base.is_empty())
            .map(|(base, _)| base.to_string())
    };
    x == y || without_suffix(&x).as_deref() == Some(&y) || without_suffix(&y).as_deref() == Some(&x)
}

/// A binary secret: the templates read only `SecretString`.
pub fn binary_secret(rotation_type: &str) -> Diagnostic {
    format_error(
        "The secret holds a binary value",
        format!(
            "The secret's current value is SecretBinary; the {rotation_type} template reads only \
SecretString, which must be a JSON string with `engine`, `host`, `username` and `password` keys."
        ),
    )
}

/// Whether AWS refused to let these credentials read or decrypt the value.
pub fn is_denied(e: &AwsError) -> bool {
    matches!(
        e.code(),
        Some(
            "AccessDeniedException"
                | "AccessDenied"
                | "DecryptionFailure"
                | "KMSAccessDeniedException"
        )
    )
}

/// The check could not read the secret: a warning, the rotation goes on.
pub fn unreadable(e: &AwsError) -> Diagnostic {
    let why = if is_denied(e) {
        "these credentials may not read the secret's value (`secretsmanager:GetSecretValue`, and \
`kms:Decrypt` on its key when it is a customer managed key)"
    } else {
        "the secret's value could not be read"
    };
    at_secret(Diagnostic::warning(
        "Pre-flight check of the secret skipped",
        format!(
            "The secret's JSON was not checked: {why} ({e}). The rotation goes on; its Lambda \
will report a secret it cannot use at the first rotation. Grant the permission, or set \
`preflight_check = false` to skip the check."
        ),
    ))
}

/// Whether the check applies to this configuration or plan: on, and a
/// template rotation whose template reads an RDS-format secret.
pub fn applies(r: &Rotation) -> bool {
    r.preflight_check.known() != Some(&false)
        && r.rotation_type
            .as_deref()
            .is_some_and(|t| checked_template(t).is_some())
}

/// Whether what the check looks at is new: a create, or a change of
/// `rotation_type`, `master_secret_arn` or `secret_id`. An unchanged
/// rotation was checked when it was made.
pub fn inputs_changed(r: &Rotation, prior: Option<&Rotation>) -> bool {
    prior.is_none_or(|p| {
        p.rotation_type != r.rotation_type
            || p.master_secret_arn != r.master_secret_arn
            || p.secret_id != r.secret_id
    })
}

/// Reads the secret and checks it. `Err` only for what the caller must
/// report itself (no credentials, a stop); any other failure to read
/// becomes a warning.
pub async fn run(c: &Clients, d: &Deadline, r: &Rotation) -> Result<Diagnostics, AwsError> {
    let mut diags = Diagnostics::new();
    let (Some(secret_id), Some(t)) = (r.secret_id.as_deref(), r.rotation_type.as_deref()) else {
        return Ok(diags);
    };
    let fatal = |e: &AwsError| e.is_no_credentials() || matches!(e, AwsError::Cancelled);
    // IAM and Secrets Manager compare full ARNs; a configured name or
    // partial ARN is resolved as the master-secret policy resolves it.
    let configured_master = r.master_secret_arn.as_deref();
    let resolved = match configured_master {
        Some(m) => match sm::find_secret(c, d, m).await {
            Ok(found) => found.map(|s| s.arn),
            Err(e) if fatal(&e) => return Err(e),
            Err(_) => None,
        },
        None => None,
    };
    let value = match sm::get_secret_value(c, d, secret_id).await {
        Ok(v) => v,
        Err(e) if fatal(&e) => return Err(e),
        Err(e) => {
            diags.push(unreadable(&e));
            return Ok(diags);
        }
    };
    let expected = Expected {
        rotation_type: t,
        master_secret: resolved.as_deref().or(configured_master),
    };
    let found = match &value {
        SecretValue::Text(text) => check_secret_string(text, &expected),
        SecretValue::Binary => vec![binary_secret(t)],
    };
    drop(value);
    for f in found {
        diags.push(f);
    }
    Ok(diags)
}

/// The check as plan runs it: when the plan creates the rotation or changes
/// what is checked, and the values it needs are known.
pub async fn at_plan(
    c: &Clients,
    d: &Deadline,
    config: &Rotation,
    prior: Option<&Rotation>,
) -> Result<Diagnostics, AwsError> {
    let known = config.secret_id.known().is_some()
        && !config.master_secret_arn.is_unknown()
        && config.rotation_type.known().is_some();
    if !known || !applies(config) || !inputs_changed(config, prior) {
        return Ok(Diagnostics::new());
    }
    run(c, d, config).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tf::Severity;

    const MASTER: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-master-AbCdEf";
    const PASSWORD: &str = "Pw-distinctive-5e1f";

    fn secret(engine: Option<&str>, masterarn: Option<&str>) -> String {
        let mut v = serde_json::json!({
            "host": "db.cluster-abc.us-east-1.rds.amazonaws.com",
            "username": "app",
            "password": PASSWORD,
            "dbname": "app",
            "port": 5432,
        });
        if let Some(e) = engine {
            v["engine"] = e.into();
        }
        if let Some(m) = masterarn {
            v["masterarn"] = m.into();
        }
        v.to_string()
    }

    fn check(t: &str, value: &str) -> Vec<Diagnostic> {
        let found = check_secret_string(
            value,
            &Expected {
                rotation_type: t,
                master_secret: t.ends_with("_multi_user").then_some(MASTER),
            },
        );
        for d in &found {
            assert!(
                !d.summary.contains(PASSWORD) && !d.detail.contains(PASSWORD),
                "a finding quotes the password: {d:?}"
            );
        }
        found
    }

    /// `value`, a JSON object, without `key`.
    fn without(value: &str, key: &str) -> String {
        let mut v: Json = serde_json::from_str(value).expect("test JSON");
        if let Some(m) = v.as_object_mut() {
            m.remove(key);
        }
        v.to_string()
    }

    fn only(found: &[Diagnostic]) -> &Diagnostic {
        assert_eq!(found.len(), 1, "{found:#?}");
        &found[0]
    }

    fn path(d: &Diagnostic) -> Option<String> {
        d.attribute.as_ref().map(|p| p.to_string())
    }

    #[test]
    fn a_good_secret_passes_for_every_engine_and_alias() {
        for (t, e) in [
            ("mysql_single_user", "mysql"),
            ("mysql_single_user", "aurora-mysql"),
            ("postgresql_single_user", "postgres"),
            ("postgresql_single_user", "aurora-postgresql"),
            ("mariadb_single_user", "mariadb"),
            ("oracle_single_user", "oracle"),
            ("sqlserver_single_user", "sqlserver"),
            ("redshift_single_user", "redshift"),
            ("mongodb_single_user", "mongo"),
        ] {
            assert!(check(t, &secret(Some(e), None)).is_empty(), "{t} with {e}");
            let multi = t.replace("_single_user", "_multi_user");
            assert!(
                check(&multi, &secret(Some(e), Some(MASTER))).is_empty(),
                "{multi} with {e}"
            );
        }
        // Db2's template takes any engine starting with db2, and its
        // single-user template needs masterarn too.
        for e in ["db2", "db2-se", "db2-ae"] {
            assert!(check("db2_single_user", &secret(Some(e), Some(MASTER))).is_empty());
        }
    }

    #[test]
    fn generic_and_unknown_types_are_not_checked() {
        assert!(check("generic", "not json").is_empty());
        assert!(check("cassandra_single_user", "not json").is_empty());
        assert!(checked_template("generic").is_none());
        assert!(checked_template("oracle_multi_user").is_some_and(|t| t.secret.needs_dbname));
    }

    #[test]
    fn not_json_and_not_an_object_are_errors_on_secret_id() {
        let d = only(&check("postgresql_single_user", PASSWORD)).clone();
        assert_eq!(d.severity, Severity::Error);
        assert_eq!(d.summary, "The secret's value is not JSON");
        assert_eq!(path(&d).as_deref(), Some("secret_id"));
        let d = only(&check("postgresql_single_user", &format!("[{PASSWORD:?}]"))).clone();
        assert_eq!(d.summary, "The secret's value is not a JSON object");
        let d = only(&check("postgresql_single_user", &format!("{PASSWORD:?}"))).clone();
        assert_eq!(d.summary, "The secret's value is not a JSON object");
    }

    #[test]
    fn a_missing_engine_is_named() {
        let d = only(&check("postgresql_single_user", &secret(None, None))).clone();
        assert_eq!(d.summary, "The secret's JSON has no \"engine\" key");
        assert!(
            d.detail.contains("\"postgres\" or \"aurora-postgresql\""),
            "{}",
            d.detail
        );
        assert_eq!(path(&d).as_deref(), Some("secret_id"));
    }

    #[test]
    fn an_engine_of_another_database_is_named_with_what_is_taken() {
        let d = only(&check(
            "postgresql_single_user",
            &secret(Some("mysql"), None),
        ))
        .clone();
        assert_eq!(d.summary, "The secret's \"engine\" is not the template's");
        assert!(d.detail.contains("\"mysql\"") && d.detail.contains("\"postgres\""));
        // The old `aurora` spelling is not taken by the MySQL template.
        let d = only(&check("mysql_single_user", &secret(Some("aurora"), None))).clone();
        assert_eq!(d.summary, "The secret's \"engine\" is not the template's");
        // Only Db2 matches by prefix.
        assert_eq!(
            check("mysql_single_user", &secret(Some("mysql-8"), None)).len(),
            1
        );
        assert_eq!(
            check("mongodb_single_user", &secret(Some("mongodb"), None)).len(),
            1
        );
        let d = only(&check(
            "mysql_single_user",
            r#"{"engine":3,"host":"h","username":"u","password":"p"}"#,
        ))
        .clone();
        assert_eq!(d.summary, "The secret's \"engine\" is not a string");
    }

    #[test]
    fn missing_host_username_password_and_oracle_dbname_are_each_named() {
        for key in ["host", "username", "password"] {
            let v = without(&secret(Some("postgres"), None), key);
            let d = only(&check("postgresql_single_user", &v)).clone();
            assert_eq!(d.summary, format!("The secret's JSON has no \"{key}\" key"));
            assert_eq!(path(&d).as_deref(), Some("secret_id"));
        }
        let v = without(&secret(Some("oracle"), None), "dbname");
        let d = only(&check("oracle_single_user", &v)).clone();
        assert_eq!(d.summary, "The secret's JSON has no \"dbname\" key");
        // Other templates do not need dbname.
        assert!(check("postgresql_single_user", &v.replace("oracle", "postgres")).is_empty());
        let d = only(&check(
            "postgresql_single_user",
            r#"{"engine":"postgres","host":"h","username":"u","password":7}"#,
        ))
        .clone();
        assert_eq!(d.summary, "The secret's \"password\" is not a string");
    }

    #[test]
    fn multi_user_needs_masterarn_on_secret_id() {
        let d = only(&check("mysql_multi_user", &secret(Some("mysql"), None))).clone();
        assert_eq!(d.summary, "The secret's JSON has no \"masterarn\" key");
        assert!(
            d.detail.contains(MASTER),
            "the fix names the master: {}",
            d.detail
        );
        assert_eq!(path(&d).as_deref(), Some("secret_id"));
        // Db2 single-user too, even without master_secret_arn set.
        let found = check_secret_string(
            &secret(Some("db2"), None),
            &Expected {
                rotation_type: "db2_single_user",
                master_secret: None,
            },
        );
        assert_eq!(
            only(&found).summary,
            "The secret's JSON has no \"masterarn\" key"
        );
        // Other single-user templates do not read it.
        assert!(check("mysql_single_user", &secret(Some("mysql"), None)).is_empty());
    }

    #[test]
    fn a_masterarn_naming_another_secret_is_an_error_on_master_secret_arn() {
        let other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-master-XyZabc";
        let d = only(&check(
            "postgresql_multi_user",
            &secret(Some("postgres"), Some(other)),
        ))
        .clone();
        assert_eq!(d.summary, "The secret's \"masterarn\" names another secret");
        assert_eq!(path(&d).as_deref(), Some("master_secret_arn"));
        assert!(d.detail.contains(other) && d.detail.contains(MASTER));
    }

    #[test]
    fn only_engine_names_and_secret_arns_are_quoted_back() {
        let d = only(&check(
            "postgresql_single_user",
            &secret(Some(PASSWORD), None),
        ))
        .clone();
        assert!(d.detail.contains("is not an engine name"), "{}", d.detail);
        let d = only(&check(
            "postgresql_multi_user",
            &secret(Some("postgres"), Some(PASSWORD)),
        ))
        .clone();
        assert_eq!(path(&d).as_deref(), Some("master_secret_arn"));
        assert!(
            d.detail.contains("key names another secret"),
            "{}",
            d.detail
        );
        // `check` itself asserts that no finding contains the password.
    }

    #[test]
    fn the_same_master_by_name_partial_or_full_arn_passes() {
        for written in [
            MASTER,
            "db-master",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-master",
        ] {
            assert!(
                check(
                    "postgresql_multi_user",
                    &secret(Some("postgres"), Some(written))
                )
                .is_empty(),
                "{written}"
            );
        }
        assert!(same_secret(
            "db-master",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-master"
        ));
        assert!(!same_secret(
            "db-master",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-master-2"
        ));
        assert!(!same_secret(
            "arn:aws:secretsmanager:us-east-1:999999999999:secret:db-master-AbCdEf",
            MASTER
        ));
        assert!(!same_secret("db", MASTER));
    }

    #[test]
    fn a_reader_endpoint_is_a_warning() {
        let v =
            secret(Some("aurora-postgresql"), None).replace("db.cluster-abc", "db.cluster-ro-abc");
        let d = only(&check("postgresql_single_user", &v)).clone();
        assert_eq!(d.severity, Severity::Warning);
        assert!(d.summary.contains("reader endpoint"));
        assert_eq!(path(&d).as_deref(), Some("secret_id"));
    }

    #[test]
    fn a_binary_secret_is_an_error_saying_it_must_be_a_json_string() {
        let d = binary_secret("mysql_single_user");
        assert_eq!(d.severity, Severity::Error);
        assert!(d
            .detail
            .contains("SecretString, which must be a JSON string"));
        assert_eq!(path(&d).as_deref(), Some("secret_id"));
    }

    #[test]
    fn denied_reads_are_warnings_and_name_the_permissions() {
        let api = |code: &str| AwsError::Api {
            kind: crate::aws::error::Kind::Other,
            code: Some(code.into()),
            message: "denied".into(),
        };
        for code in ["AccessDeniedException", "DecryptionFailure"] {
            assert!(is_denied(&api(code)));
            let d = unreadable(&api(code));
            assert_eq!(d.severity, Severity::Warning);
            assert!(
                d.detail.contains("secretsmanager:GetSecretValue")
                    && d.detail.contains("kms:Decrypt")
            );
        }
        assert!(!is_denied(&api("InvalidRequestException")));
        assert!(!unreadable(&api("InvalidRequestException"))
            .detail
            .contains("kms:Decrypt"));
    }

    #[test]
    fn applies_only_to_template_rotations_with_the_check_on() {
        use crate::rotation::model::Attr;
        let mut r = Rotation {
            rotation_type: Attr::Known("mysql_single_user".into()),
            ..Default::default()
        };
        assert!(applies(&r), "null means on");
        r.preflight_check = Attr::Known(false);
        assert!(!applies(&r));
        r.preflight_check = Attr::Known(true);
        r.rotation_type = Attr::Known("generic".into());
        assert!(!applies(&r));
        r.rotation_type = Attr::Null;
        r.rotation_lambda_arn = Attr::Known("arn:aws:lambda:us-east-1:1:function:f".into());
        assert!(!applies(&r));
    }

    #[test]
    fn only_a_create_or_a_change_of_what_is_checked_checks_again() {
        use crate::rotation::model::Attr;
        let r = Rotation {
            secret_id: Attr::Known("db".into()),
            rotation_type: Attr::Known("mysql_multi_user".into()),
            master_secret_arn: Attr::Known(MASTER.into()),
            ..Default::default()
        };
        assert!(inputs_changed(&r, None));
        let mut p = r.clone();
        p.preflight_check = Attr::Known(false);
        p.exclude_characters = Attr::Known("x".into());
        assert!(!inputs_changed(&r, Some(&p)));
        for change in [
            |p: &mut Rotation| p.rotation_type = Attr::Known("mysql_single_user".into()),
            |p: &mut Rotation| p.master_secret_arn = Attr::Known("other".into()),
            |p: &mut Rotation| p.secret_id = Attr::Known("other".into()),
        ] {
            let mut p = r.clone();
            change(&mut p);
            assert!(inputs_changed(&r, Some(&p)));
        }
    }
}
