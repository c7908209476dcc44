//! The `rdsrot_rotation_status` data source: how a secret's rotation is
//! doing, from `DescribeSecret` and `ListSecretVersionIds` (never a secret
//! value) and the rotation Lambda's `GetFunction` and `GetPolicy`, with the
//! problems found as plain sentences (`assess`).
//!
//! The staging labels are flat attributes (`current_version_id`,
//! `current_version_created_date`, and the same for `pending_` and
//! `previous_`) rather than a map or a list of objects: each label is held
//! by at most one version, so a flat string is exact, is null when no
//! version holds the label, and reads plainly in a `check` condition
//! (`data.rdsrot_rotation_status.x.pending_version_id == null`).

pub mod assess;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::aws::lambda::{find_function_configuration, find_policy};
use crate::aws::secretsmanager::{find_secret, list_versions, SecretInfo, VersionInfo};
use crate::aws::{AwsError, Clients, Deadline};
use crate::parts::DataSource;
use crate::provider::RdsrotProvider;
use crate::tf::*;

use crate::aws::logs;
use crate::rotation::verify::function_name;
use assess::{
    parse_stuck_after, rfc3339, Checked, Observed, DEFAULT_STUCK_AFTER, FILTER_LOG_EVENTS,
    GET_FUNCTION, GET_POLICY,
};

pub const TYPE_NAME: &str = "rdsrot_rotation_status";

const READ_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The data source type `rdsrot_rotation_status`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RotationStatus;

fn schema() -> Schema {
    let s = || Type::String;
    let computed = |name: &str, ty: Type, text: &str| Attribute::computed(name, ty, text);
    let mut attributes = vec![
        Attribute::required(
            "secret_id",
            s(),
            "ARN or name of the secret whose rotation to look at.",
        ),
        Attribute::optional(
            "read_logs",
            Type::Bool,
            "Whether to read the rotation function's CloudWatch Logs (`logs:FilterLogEvents` on \
`/aws/lambda/<function>`) when a rotation has not finished, to report its error line. A denied \
read is reported in `problems`, not as an error. Defaults to `true`.",
        ),
        Attribute::optional(
            "stuck_after",
            s(),
            "How long a version may hold AWSPENDING (on a version other than AWSCURRENT's) before \
it is reported as a stuck rotation, e.g. `30m`, `2h`, `1h30m`, `90s`. Defaults to `2h`.",
        ),
        // Protocol 6 does not need an `id`; it is here because data sources
        // of SDKv2-era providers always had one and configurations refer to it.
        computed("id", s(), "The full ARN of the secret."),
        computed("secret_arn", s(), "The full ARN of the secret."),
        computed(
            "rotation_enabled",
            Type::Bool,
            "Whether Secrets Manager rotation is on.",
        ),
        computed(
            "rotation_lambda_arn",
            s(),
            "ARN of the rotation Lambda the secret names (null if none).",
        ),
        computed(
            "automatically_after_days",
            Type::Number,
            "The rotation rules' interval in days, as AWS reports it.",
        ),
        computed(
            "schedule_expression",
            s(),
            "The rotation rules' `rate()` or `cron()` expression, if any.",
        ),
        computed(
            "duration",
            s(),
            "The rotation window's length (e.g. `3h`), if set.",
        ),
        computed(
            "last_rotated_date",
            s(),
            "When the last rotation finished (RFC 3339, UTC); null if never.",
        ),
        computed(
            "next_rotation_date",
            s(),
            "When Secrets Manager plans the next rotation (RFC 3339, UTC); null if not planned.",
        ),
    ];
    for (label, prefix) in LABELS {
        attributes.push(computed(
            &format!("{prefix}_version_id"),
            s(),
            &format!("The version holding {label} (null if none)."),
        ));
        attributes.push(computed(
            &format!("{prefix}_version_created_date"),
            s(),
            &format!("When the version holding {label} was created (RFC 3339, UTC)."),
        ));
    }
    attributes.push(computed(
        "rotation_in_progress",
        Type::Bool,
        "Whether AWSPENDING is on a version other than AWSCURRENT's: a rotation started and has \
not finished.",
    ));
    attributes.push(computed(
        "last_rotation_outcome",
        s(),
        "How the last rotation went: `succeeded`, `failed` (the function logged an error for the \
unfinished rotation, or it is older than `stuck_after`), `in_progress`, or null when the secret \
never rotated.",
    ));
    attributes.push(computed(
        "last_rotation_error",
        s(),
        "When the last rotation failed, the error line its rotation function logged (the \
exception and its message, or the timeout line); null otherwise.",
    ));
    attributes.push(computed(
        "problems",
        Type::list(Type::String),
        "What is wrong with the rotation, one plain sentence each; empty when it is healthy.",
    ));
    Schema {
        version: 0,
        block: Block {
            description: "How a secret's Secrets Manager rotation is doing: whether it is on, its \
Lambda and schedule, the versions holding AWSCURRENT, AWSPENDING and AWSPREVIOUS, and a list of \
problems (rotation off, Lambda missing, no invoke permission, a stuck rotation, a missed \
rotation). Reads no secret value."
                .into(),
            attributes,
            block_types: vec![],
            deprecated: false,
        },
    }
}

/// Each staging label reported, with its attributes' prefix.
const LABELS: [(&str, &str); 3] = [
    ("AWSCURRENT", "current"),
    ("AWSPENDING", "pending"),
    ("AWSPREVIOUS", "previous"),
];

fn stuck_after_of(config: &Value) -> Result<(Duration, String), Diagnostic> {
    let text = config
        .get("stuck_after")
        .as_str()
        .unwrap_or(DEFAULT_STUCK_AFTER)
        .to_string();
    parse_stuck_after(&text)
        .map(|d| (d, text))
        .map_err(|e| {
            Diagnostic::error(
                "Invalid stuck_after",
                format!("{e}. stuck_after takes hours, minutes and seconds, e.g. `30m`, `2h`, `1h30m`, `90s`."),
            )
            .at(AttributePath::root("stuck_after"))
        })
}

fn is_denied(e: &AwsError) -> bool {
    matches!(
        e.code(),
        Some("AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation")
    )
}

/// The Lambda's invoke statements, as far as they could be seen.
async fn check_lambda(
    c: &Clients,
    d: &Deadline,
    arn: &str,
) -> Result<Checked<Vec<crate::aws::lambda::PermissionStatement>>, AwsError> {
    match find_function_configuration(c, d, arn).await {
        Ok(None) => return Ok(Checked::Missing),
        Ok(Some(_)) => {}
        Err(e) if is_denied(&e) => return Ok(Checked::Denied(GET_FUNCTION.into())),
        Err(e) => return Err(e),
    }
    match find_policy(c, d, arn).await {
        Ok(p) => Ok(Checked::Found(p.statements)),
        Err(e) if is_denied(&e) => Ok(Checked::Denied(GET_POLICY.into())),
        Err(e) => Err(e),
    }
}

/// What was read, before it becomes the state.
struct Read {
    secret: SecretInfo,
    observed: Observed,
}

async fn read(
    c: &Clients,
    d: &Deadline,
    secret_id: &str,
    stuck_after: (Duration, String),
    read_logs: bool,
) -> Result<Option<Read>, AwsError> {
    let Some(secret) = find_secret(c, d, secret_id).await? else {
        return Ok(None);
    };
    let Some(versions) = list_versions(c, d, &secret.arn).await? else {
        return Ok(None);
    };
    let lambda = match &secret.rotation_lambda_arn {
        Some(arn) => Some(check_lambda(c, d, arn).await?),
        None => None,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.as_secs() as i64)
        .unwrap_or_default();
    let log_group = secret
        .rotation_lambda_arn
        .as_deref()
        .and_then(function_name)
        .map(logs::function_log_group);
    let observed = Observed {
        secret_arn: secret.arn.clone(),
        rotation_enabled: secret.rotation_enabled,
        rotation_lambda_arn: secret.rotation_lambda_arn.clone(),
        lambda,
        next_rotation_date: secret.next_rotation_date,
        window: secret.rules.as_ref().and_then(|r| r.duration.clone()),
        versions,
        now,
        stuck_after: stuck_after.0,
        stuck_after_text: stuck_after.1,
        error_lines: None,
        log_group,
    };
    let mut observed = observed;
    if let (true, Some(pending), Some(group)) =
        (read_logs, observed.pending_rotation(), &observed.log_group)
    {
        let since_ms = pending.created_date.unwrap_or(now - 3600) * 1000 - 1000;
        observed.error_lines = Some(
            match c
                .error_reads
                .error_lines(c, d, group, since_ms, (&[], &[]), 50)
                .await
            {
                Ok(found) => Checked::Found(
                    lines_about(&found, &secret.arn)
                        .iter()
                        .map(|e| {
                            e.message
                                .lines()
                                .next()
                                .unwrap_or_default()
                                .trim()
                                .to_string()
                        })
                        .collect(),
                ),
                Err(e) if is_denied(&e) => Checked::Denied(FILTER_LOG_EVENTS.into()),
                Err(e) => return Err(e),
            },
        );
    }
    Ok(Some(Read { secret, observed }))
}

/// At most five of a function's error lines: those that name `secret_arn`
/// or no secret, when there are any. A Lambda that
/// rotates several secrets logs them all in one group; but a line naming
/// only another secret may still be this one's: the master secret its
/// function could not read.
fn lines_about<'a>(found: &'a [logs::LogEvent], secret_arn: &str) -> Vec<&'a logs::LogEvent> {
    let about: Vec<&logs::LogEvent> = found
        .iter()
        .filter(|e| logs::names_no_other_secret(&e.message, secret_arn))
        .collect();
    let chosen = if about.is_empty() {
        found.iter().collect()
    } else {
        about
    };
    chosen.into_iter().take(5).collect()
}

fn date(secs: Option<i64>) -> Value {
    Value::opt_string(secs.and_then(rfc3339))
}

fn state(config: &Value, r: &Read) -> Value {
    let rules = r.secret.rules.clone().unwrap_or_default();
    let mut fields = vec![
        ("secret_id", config.get("secret_id").clone()),
        ("stuck_after", config.get("stuck_after").clone()),
        ("id", Value::string(&r.secret.arn)),
        ("secret_arn", Value::string(&r.secret.arn)),
        ("rotation_enabled", Value::Bool(r.secret.rotation_enabled)),
        (
            "rotation_lambda_arn",
            Value::opt_string(r.secret.rotation_lambda_arn.clone()),
        ),
        (
            "automatically_after_days",
            // AWS reports 0 for "not set by days" on some schedules.
            rules
                .automatically_after_days
                .filter(|d| *d > 0)
                .map(Value::int)
                .unwrap_or(Value::Null),
        ),
        (
            "schedule_expression",
            Value::opt_string(rules.schedule_expression),
        ),
        ("duration", Value::opt_string(rules.duration)),
        ("last_rotated_date", date(r.secret.last_rotated_date)),
        ("next_rotation_date", date(r.secret.next_rotation_date)),
        (
            "rotation_in_progress",
            Value::Bool(r.observed.pending_rotation().is_some()),
        ),
        (
            "last_rotation_outcome",
            Value::opt_string(r.observed.last_rotation_outcome().map(str::to_string)),
        ),
        (
            "last_rotation_error",
            Value::opt_string(r.observed.last_rotation_error().map(str::to_string)),
        ),
        ("read_logs", config.get("read_logs").clone()),
        (
            "problems",
            Value::List(
                assess::problems(&r.observed)
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            ),
        ),
    ];
    let mut labelled = vec![];
    for (label, prefix) in LABELS {
        let v: Option<&VersionInfo> = r.observed.version_with(label);
        labelled.push((
            format!("{prefix}_version_id"),
            Value::opt_string(v.map(|v| v.version_id.clone())),
        ));
        labelled.push((
            format!("{prefix}_version_created_date"),
            date(v.and_then(|v| v.created_date)),
        ));
    }
    let mut out: Vec<(String, Value)> = fields.drain(..).map(|(k, v)| (k.to_string(), v)).collect();
    out.extend(labelled);
    Value::object(out)
}

impl DataSource for RotationStatus {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if config.get("stuck_after").is_unknown() {
            return diags;
        }
        if let Err(d) = stuck_after_of(config) {
            diags.push(d);
        }
        if config.get("secret_id").as_str() == Some("") {
            diags.push(
                Diagnostic::error(
                    "Empty secret_id",
                    "secret_id must be the ARN or name of a secret.",
                )
                .at(AttributePath::root("secret_id")),
            );
        }
        diags
    }

    async fn read(&self, provider: &RdsrotProvider, config: Value) -> ReadDataSourceResponse {
        let fail = |diagnostics: Diagnostics| ReadDataSourceResponse {
            state: Value::Null,
            diagnostics,
        };
        let clients = match provider.configured() {
            Ok(c) => c,
            Err(d) => return fail(d),
        };
        let stuck_after = match stuck_after_of(&config) {
            Ok(s) => s,
            Err(d) => return fail(d.into()),
        };
        let Some(secret_id) = config.get("secret_id").as_str().map(str::to_string) else {
            return fail(
                Diagnostic::error("Missing secret_id", "secret_id is required.")
                    .at(AttributePath::root("secret_id"))
                    .into(),
            );
        };
        let read_logs = config.get("read_logs").as_bool() != Some(false);
        let deadline = Deadline::new("read", READ_TIMEOUT, provider.cancellation());
        let result = tokio::select! {
            r = Box::pin(read(&clients, &deadline, &secret_id, stuck_after, read_logs)) => r,
            e = deadline.expired() => Err(e),
        };
        match result {
            Ok(Some(r)) => ReadDataSourceResponse {
                state: state(&config, &r),
                diagnostics: Diagnostics::new(),
            },
            Ok(None) => fail(
                Diagnostic::error(
                    "Secret not found",
                    format!(
                        "Secrets Manager has no secret {secret_id:?} in this account and region."
                    ),
                )
                .at(AttributePath::root("secret_id"))
                .into(),
            ),
            Err(e) if e.is_no_credentials() => fail(provider.no_credentials_once()),
            Err(e) => fail(
                Diagnostic::error(
                    "Reading rotation status failed",
                    format!("{e}\n\nSecret: {secret_id}."),
                )
                .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(stuck_after: Value) -> Value {
        Value::object([
            ("secret_id", Value::string("db")),
            ("stuck_after", stuck_after),
            ("read_logs", Value::Null),
        ])
    }

    #[test]
    fn the_lines_shown_are_this_secrets_when_there_are_any() {
        let event = |message: &str| logs::LogEvent {
            timestamp_ms: 0,
            stream: "s".into(),
            message: message.into(),
        };
        let ours = "arn:aws:secretsmanager:us-east-1:1:secret:db-a-AbCdEf";
        let other =
            event("[ERROR] cannot sign in for arn:aws:secretsmanager:us-east-1:1:secret:db-b-XyZ");
        let master = event(
            "[ERROR] AccessDenied on resource: arn:aws:secretsmanager:us-east-1:1:secret:master-Q",
        );
        let mine = event(&format!("[ERROR] cannot sign in for {ours}"));
        let both = [other, mine.clone()];
        assert_eq!(lines_about(&both, ours), vec![&mine]);
        // Nothing names this secret: the master secret's line is shown.
        let only_master = [master.clone()];
        assert_eq!(lines_about(&only_master, ours), vec![&master]);
    }

    #[test]
    fn a_bad_stuck_after_is_refused_on_its_path() {
        let d = RotationStatus.validate(&config(Value::string("2 hours")));
        let e = d.iter().next().expect("a diagnostic");
        assert!(d.has_errors() && e.summary == "Invalid stuck_after");
        assert_eq!(e.attribute, Some(AttributePath::root("stuck_after")));
        assert!(RotationStatus
            .validate(&config(Value::string("1h30m")))
            .is_empty());
        assert!(RotationStatus.validate(&config(Value::Null)).is_empty());
        assert!(RotationStatus.validate(&config(Value::Unknown)).is_empty());
    }

    #[test]
    fn only_access_denied_becomes_a_could_not_check_problem() {
        let err = |code: &str| AwsError::Api {
            kind: crate::aws::error::Kind::Other,
            code: Some(code.into()),
            message: "no".into(),
        };
        assert!(is_denied(&err("AccessDeniedException")));
        assert!(!is_denied(&err("InvalidParameterValueException")));
        assert!(!is_denied(&AwsError::Timeout("read".into())));
    }

    #[test]
    fn every_state_attribute_is_in_the_schema() {
        let s = schema();
        let r = Read {
            secret: SecretInfo {
                arn: "arn:s".into(),
                ..Default::default()
            },
            observed: Observed {
                secret_arn: "arn:s".into(),
                rotation_enabled: false,
                rotation_lambda_arn: None,
                lambda: None,
                next_rotation_date: None,
                window: None,
                versions: vec![],
                now: 0,
                stuck_after: Duration::from_secs(1),
                stuck_after_text: "1s".into(),
                error_lines: None,
                log_group: None,
            },
        };
        let v = state(&config(Value::Null), &r);
        let fields = v.as_object().expect("object");
        let names: Vec<&str> = s.block.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(fields.len(), names.len());
        for n in names {
            assert!(fields.contains_key(n), "{n}");
        }
        assert_eq!(v.get("id"), &Value::string("arn:s"));
        assert_eq!(
            v.get("problems"),
            &Value::List(vec![Value::string(
                "Rotation is turned off for this secret."
            )])
        );
    }
}
