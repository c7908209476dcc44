//! What is wrong with a secret's rotation, from facts already observed:
//! no AWS call here, so every sentence can be tested on its own.

use std::time::Duration;

use crate::aws::lambda::{PermissionStatement, SECRETS_MANAGER_PRINCIPAL};
use crate::aws::secretsmanager::VersionInfo;

/// How long an AWSPENDING version may sit before it counts as stuck, when
/// `stuck_after` is not set. A rotation Lambda runs for at most 15 minutes
/// per step and Secrets Manager retries a failed step a few times, so a
/// healthy rotation is over well within two hours.
pub const DEFAULT_STUCK_AFTER: &str = "2h";

/// The rotation window when the secret's rules set no `Duration`. AWS
/// closes a window without a duration at the end of the UTC day at the
/// latest, so a next rotation date more than a day old has been missed.
const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// `stuck_after` as a duration: `30m`, `2h`, `1h30m`, `90s`.
pub fn parse_stuck_after(text: &str) -> Result<Duration, String> {
    crate::rotation::schedule::parse_timeout(text)
}

/// The Lambda calls whose refusal is reported, not failed.
pub const GET_FUNCTION: &str = "lambda:GetFunction";
pub const GET_POLICY: &str = "lambda:GetPolicy";
pub const FILTER_LOG_EVENTS: &str = "logs:FilterLogEvents";

/// What could be learned about one of the rotation Lambda's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked<T> {
    Found(T),
    Missing,
    /// The call was refused (AccessDenied); the text names the call.
    Denied(String),
}

/// The facts the assessment works from.
#[derive(Debug, Clone)]
pub struct Observed {
    pub secret_arn: String,
    pub rotation_enabled: bool,
    pub rotation_lambda_arn: Option<String>,
    /// The Lambda's resource-policy statements; `None` when no Lambda is
    /// configured (nothing to check).
    pub lambda: Option<Checked<Vec<PermissionStatement>>>,
    pub next_rotation_date: Option<i64>,
    /// The rules' `Duration` (e.g. `3h`), if set.
    pub window: Option<String>,
    pub versions: Vec<VersionInfo>,
    /// Unix seconds.
    pub now: i64,
    pub stuck_after: Duration,
    /// `stuck_after` as the user wrote it, for the sentence.
    pub stuck_after_text: String,
    /// The rotation function's error lines since the unfinished rotation
    /// began (first lines only); `None` when not read (nothing unfinished,
    /// or `read_logs = false`).
    pub error_lines: Option<Checked<Vec<String>>>,
    /// The function's log group, for the sentences.
    pub log_group: Option<String>,
}

/// The last rotation's outcome, as `last_rotation_outcome` says it.
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const IN_PROGRESS: &str = "in_progress";

impl Observed {
    /// The version holding `label`, if any.
    pub fn version_with(&self, label: &str) -> Option<&VersionInfo> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == label))
    }

    /// AWSPENDING on a version other than AWSCURRENT's: a rotation started
    /// and has not finished (AWS moves AWSCURRENT onto the pending version
    /// in its last step, and a finished rotation leaves no AWSPENDING
    /// elsewhere).
    pub fn pending_rotation(&self) -> Option<&VersionInfo> {
        let pending = self.version_with("AWSPENDING")?;
        let current = self.version_with("AWSCURRENT").map(|v| &v.version_id);
        (current != Some(&pending.version_id)).then_some(pending)
    }

    fn stuck(&self, pending: &VersionInfo) -> bool {
        pending.created_date.is_some_and(|created| {
            self.now.saturating_sub(created) > self.stuck_after.as_secs() as i64
        })
    }

    fn logged_error(&self) -> Option<&str> {
        match &self.error_lines {
            Some(Checked::Found(lines)) => lines.last().map(String::as_str),
            _ => None,
        }
    }

    /// `succeeded`, `failed`, `in_progress`, or `None` when the secret never
    /// rotated. An unfinished rotation has failed once its function logged
    /// an error for it, or once it is older than `stuck_after`.
    pub fn last_rotation_outcome(&self) -> Option<&'static str> {
        match self.pending_rotation() {
            Some(pending) if self.logged_error().is_some() || self.stuck(pending) => Some(FAILED),
            Some(_) => Some(IN_PROGRESS),
            None if self.version_with("AWSPREVIOUS").is_some() => Some(SUCCEEDED),
            None => None,
        }
    }

    /// The error line of the failed last rotation, as the function logged it.
    pub fn last_rotation_error(&self) -> Option<&str> {
        self.pending_rotation().and(self.logged_error())
    }
}

/// Whether `value` matches an IAM `ArnLike` pattern (`*` any run, `?` one
/// character).
fn arn_like(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some((b'*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some((b'?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

/// Whether the statement lets Secrets Manager invoke the Lambda for this
/// secret: the service principal, and a source ARN condition (if any) that
/// the secret's ARN satisfies.
pub fn allows_secrets_manager(st: &PermissionStatement, secret_arn: &str) -> bool {
    st.service_principal.as_deref() == Some(SECRETS_MANAGER_PRINCIPAL)
        && st
            .source_arn
            .as_deref()
            .is_none_or(|p| arn_like(p, secret_arn))
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A duration in whole units, e.g. `2h 5m`, `40s`.
fn human(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

/// Every problem found, one plain sentence each, most basic first. Empty
/// for a healthy rotation.
pub fn problems(o: &Observed) -> Vec<String> {
    let mut out = vec![];
    if !o.rotation_enabled {
        out.push("Rotation is turned off for this secret.".to_string());
    }
    match (&o.rotation_lambda_arn, &o.lambda) {
        (None, _) if o.rotation_enabled => {
            out.push("Rotation is on but no rotation Lambda is configured.".to_string())
        }
        (Some(arn), Some(Checked::Missing)) => {
            out.push(format!("The rotation Lambda {arn} does not exist."))
        }
        (Some(arn), Some(Checked::Denied(call))) if call == GET_FUNCTION => out.push(format!(
            "Could not check the rotation Lambda {arn}: {call} was denied, so whether it exists is \
not known."
        )),
        (Some(arn), Some(Checked::Denied(call))) => out.push(format!(
            "Could not check whether Secrets Manager may invoke the rotation Lambda {arn}: {call} \
was denied."
        )),
        (Some(arn), Some(Checked::Found(statements)))
            if !statements
                .iter()
                .any(|st| allows_secrets_manager(st, &o.secret_arn)) =>
        {
            out.push(format!(
                "The rotation Lambda {arn} has no resource-policy statement that lets Secrets \
Manager ({SECRETS_MANAGER_PRINCIPAL}) invoke it for this secret, so rotations fail."
            ))
        }
        _ => {}
    }
    if let Some(line) = o.last_rotation_error() {
        out.push(format!(
            "The last rotation failed: the rotation function logged \"{line}\"{}.",
            o.log_group
                .as_deref()
                .map(|g| format!(" (in {g})"))
                .unwrap_or_default()
        ));
    }
    if let (Some(_), Some(Checked::Denied(call))) = (o.pending_rotation(), &o.error_lines) {
        out.push(format!(
            "Could not read the rotation function's log{} to say why the last rotation has not \
finished: {call} was denied.",
            o.log_group
                .as_deref()
                .map(|g| format!(" group {g}"))
                .unwrap_or_default()
        ));
    }
    if let Some(pending) = o.pending_rotation() {
        if let Some(created) = pending.created_date {
            let age = o.now.saturating_sub(created);
            if age > o.stuck_after.as_secs() as i64 {
                out.push(format!(
                    "Version {} has held AWSPENDING for {} (since {}), longer than stuck_after \
({}): the rotation is stuck and blocks the next one.",
                    pending.version_id,
                    human(age),
                    rfc3339(created).unwrap_or_else(|| created.to_string()),
                    o.stuck_after_text,
                ));
            }
        }
    }
    if o.rotation_enabled {
        if let Some(next) = o.next_rotation_date {
            let window = o
                .window
                .as_deref()
                .and_then(|w| parse_stuck_after(w).ok())
                .unwrap_or(DEFAULT_WINDOW);
            if o.now > next.saturating_add(window.as_secs() as i64) {
                out.push(format!(
                    "The next rotation was due at {} and has not happened.",
                    rfc3339(next).unwrap_or_else(|| next.to_string()),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";
    const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate";
    const NOW: i64 = 1_800_000_000;

    fn version(id: &str, stages: &[&str], created: i64) -> VersionInfo {
        VersionInfo {
            version_id: id.into(),
            stages: stages.iter().map(|s| s.to_string()).collect(),
            created_date: Some(created),
        }
    }

    fn invoke_statement(source_arn: Option<&str>) -> PermissionStatement {
        PermissionStatement {
            sid: "s".into(),
            service_principal: Some(SECRETS_MANAGER_PRINCIPAL.into()),
            source_arn: source_arn.map(str::to_string),
            source_account: Some("123456789012".into()),
        }
    }

    fn healthy() -> Observed {
        Observed {
            secret_arn: SECRET.into(),
            rotation_enabled: true,
            rotation_lambda_arn: Some(LAMBDA.into()),
            lambda: Some(Checked::Found(vec![invoke_statement(Some(SECRET))])),
            next_rotation_date: Some(NOW + 86_400),
            window: None,
            versions: vec![
                version("v2", &["AWSCURRENT"], NOW - 100),
                version("v1", &["AWSPREVIOUS"], NOW - 1000),
            ],
            now: NOW,
            stuck_after: Duration::from_secs(7200),
            stuck_after_text: "2h".into(),
            error_lines: None,
            log_group: Some("/aws/lambda/rotate".into()),
        }
    }

    #[test]
    fn the_last_rotation_outcome_comes_from_labels_and_the_log() {
        let mut o = healthy();
        assert_eq!(o.last_rotation_outcome(), Some(SUCCEEDED));
        o.versions = vec![version("v1", &["AWSCURRENT"], NOW - 1000)];
        assert_eq!(o.last_rotation_outcome(), None, "never rotated");
        o.versions.push(version("v2", &["AWSPENDING"], NOW - 60));
        o.error_lines = Some(Checked::Found(vec![]));
        assert_eq!(o.last_rotation_outcome(), Some(IN_PROGRESS));
        assert!(problems(&o).is_empty());
        o.error_lines = Some(Checked::Found(vec!["[ERROR] KeyError: 'masterarn'".into()]));
        assert_eq!(o.last_rotation_outcome(), Some(FAILED));
        assert_eq!(
            o.last_rotation_error(),
            Some("[ERROR] KeyError: 'masterarn'")
        );
        assert_eq!(
            problems(&o),
            [
                "The last rotation failed: the rotation function logged \"[ERROR] KeyError: \
'masterarn'\" (in /aws/lambda/rotate)."
            ]
        );
        o.error_lines = Some(Checked::Denied("logs:FilterLogEvents".into()));
        assert_eq!(o.last_rotation_outcome(), Some(IN_PROGRESS));
        assert_eq!(
            problems(&o),
            ["Could not read the rotation function's log group /aws/lambda/rotate to say why the \
last rotation has not finished: logs:FilterLogEvents was denied."]
        );
        o.now += 3 * 3600;
        assert_eq!(
            o.last_rotation_outcome(),
            Some(FAILED),
            "stuck past stuck_after"
        );
    }

    #[test]
    fn a_healthy_rotation_has_no_problems() {
        let o = healthy();
        assert_eq!(problems(&o), Vec::<String>::new());
        assert!(o.pending_rotation().is_none());
    }

    #[test]
    fn rotation_off_is_a_problem() {
        let mut o = healthy();
        o.rotation_enabled = false;
        assert_eq!(problems(&o), ["Rotation is turned off for this secret."]);
    }

    #[test]
    fn rotation_on_without_a_lambda_is_a_problem() {
        let mut o = healthy();
        o.rotation_lambda_arn = None;
        o.lambda = None;
        assert_eq!(
            problems(&o),
            ["Rotation is on but no rotation Lambda is configured."]
        );
    }

    #[test]
    fn a_missing_lambda_is_a_problem() {
        let mut o = healthy();
        o.lambda = Some(Checked::Missing);
        assert_eq!(
            problems(&o),
            [format!("The rotation Lambda {LAMBDA} does not exist.")]
        );
    }

    #[test]
    fn a_denied_check_says_what_could_not_be_checked() {
        let mut o = healthy();
        o.lambda = Some(Checked::Denied(GET_FUNCTION.into()));
        assert_eq!(
            problems(&o),
            [format!(
                "Could not check the rotation Lambda {LAMBDA}: lambda:GetFunction was denied, so \
whether it exists is not known."
            )]
        );
        o.lambda = Some(Checked::Denied(GET_POLICY.into()));
        assert_eq!(
            problems(&o),
            [format!(
                "Could not check whether Secrets Manager may invoke the rotation Lambda {LAMBDA}: \
lambda:GetPolicy was denied."
            )]
        );
    }

    #[test]
    fn no_invoke_permission_for_this_secret_is_a_problem() {
        for statements in [
            vec![],
            // Another secret's statement.
            vec![invoke_statement(Some(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-XyZ",
            ))],
            // Another service.
            vec![PermissionStatement {
                service_principal: Some("events.amazonaws.com".into()),
                ..invoke_statement(None)
            }],
        ] {
            let mut o = healthy();
            o.lambda = Some(Checked::Found(statements.clone()));
            let p = problems(&o);
            assert_eq!(p.len(), 1, "{statements:?}");
            assert!(p[0].contains("no resource-policy statement"), "{p:?}");
        }
    }

    #[test]
    fn an_account_wide_or_unconditioned_statement_counts() {
        for source in [
            None,
            Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:*"),
            Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-??????"),
        ] {
            let mut o = healthy();
            o.lambda = Some(Checked::Found(vec![invoke_statement(source)]));
            assert!(problems(&o).is_empty(), "{source:?}");
        }
    }

    #[test]
    fn a_pending_version_elsewhere_is_a_rotation_in_progress() {
        let mut o = healthy();
        o.versions.push(version("v3", &["AWSPENDING"], NOW - 60));
        assert_eq!(
            o.pending_rotation().map(|v| v.version_id.as_str()),
            Some("v3")
        );
        // Young: in progress, not stuck.
        assert!(problems(&o).is_empty());
        // AWSPENDING on the current version is a finished rotation.
        let mut done = healthy();
        done.versions[0].stages.push("AWSPENDING".into());
        assert!(done.pending_rotation().is_none());
    }

    #[test]
    fn a_pending_version_older_than_stuck_after_is_stuck() {
        let mut o = healthy();
        o.versions
            .push(version("v3", &["AWSPENDING"], NOW - 3 * 3600 - 120));
        let p = problems(&o);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("Version v3 has held AWSPENDING for 3h 2m (since ")
                && p[0].contains("longer than stuck_after (2h)"),
            "{p:?}"
        );
        o.stuck_after = Duration::from_secs(4 * 3600);
        assert!(problems(&o).is_empty());
    }

    #[test]
    fn an_overdue_rotation_is_a_problem_once_its_window_has_closed() {
        let mut o = healthy();
        o.next_rotation_date = Some(NOW - 3600);
        // Within the default window of a day.
        assert!(problems(&o).is_empty());
        o.next_rotation_date = Some(NOW - 25 * 3600);
        let due = rfc3339(NOW - 25 * 3600).expect("a date");
        assert_eq!(
            problems(&o),
            [format!(
                "The next rotation was due at {due} and has not happened."
            )]
        );
        // A 2-hour window closes sooner.
        o.next_rotation_date = Some(NOW - 3 * 3600);
        o.window = Some("2h".into());
        assert_eq!(problems(&o).len(), 1);
        // With rotation off, only that is said.
        o.rotation_enabled = false;
        assert_eq!(problems(&o), ["Rotation is turned off for this secret."]);
    }

    #[test]
    fn stuck_after_takes_hours_minutes_and_seconds() {
        assert_eq!(parse_stuck_after("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_stuck_after("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_stuck_after("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_stuck_after("90s"), Ok(Duration::from_secs(90)));
        for bad in ["", "2", "2d", "h", "0s", "-1h", "1.5h"] {
            assert!(parse_stuck_after(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_stuck_after(DEFAULT_STUCK_AFTER),
            Ok(Duration::from_secs(7200))
        );
    }

    #[test]
    fn dates_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_800_000_000).as_deref(),
            Some("2027-01-15T08:00:00Z")
        );
    }
}
