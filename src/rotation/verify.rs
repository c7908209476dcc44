//! Whether the rotation an apply started worked.
//!
//! `RotateSecret` only starts a rotation: Secrets Manager then invokes the
//! function's four steps on its own, and a step that fails is reported
//! nowhere but in the function's log. An apply that turned rotation on
//! waits, within `wait_for_rotation_timeout`, until the secret's version
//! labels say the rotation finished: the new version holds AWSCURRENT (or,
//! with `rotate_immediately = false`, the test version's AWSPENDING is
//! gone). Labels are the judge because AWS exposes them to every caller,
//! cheaply (`DescribeSecret`, 40,000 requests per second); the function's
//! log is read afterwards, to say why a rotation did not finish, and after
//! a test run, whose labels look the same whether the test passed or
//! failed: there the log's error lines judge it, and a log that cannot be
//! read leaves it unconfirmed (a warning), never passed.

use std::time::Duration;

use crate::aws::logs::{self, LogEvent};
use crate::aws::secretsmanager::{self as sm, SecretInfo};
use crate::aws::wait::Deadline;
use crate::aws::{AwsError, Clients};
use crate::logging;

use super::model::Rotation;
use super::schedule::parse_timeout;

/// The default of `wait_for_rotation_timeout`: a rotation of AWS's templates
/// takes seconds; a Lambda's first start in a VPC can take tens of seconds.
pub const DEFAULT_TIMEOUT: &str = "5m";

/// The first look at the labels after `RotateSecret`; each next one waits
/// twice as long, up to 5 s.
const FIRST_LOOK: Duration = Duration::from_millis(100);

/// `wait_for_rotation_timeout` in effect: `None` when the wait is off.
pub fn bound(r: &Rotation) -> Option<Duration> {
    let text = r
        .wait_for_rotation_timeout
        .as_deref()
        .unwrap_or(DEFAULT_TIMEOUT);
    parse_bound(text).ok().flatten()
}

/// `"0"` (as in the AWS provider's `wait_for_capacity_timeout`) or any zero
/// duration switches the wait off.
pub fn parse_bound(text: &str) -> Result<Option<Duration>, String> {
    // `parse_timeout` refuses zero (an operation cannot take no time): a
    // zero of any unit is the "off" here.
    if matches!(text, "0" | "0s" | "0m" | "0h") {
        return Ok(None);
    }
    parse_timeout(text).map(Some)
}

/// A rotation this apply started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub secret_arn: String,
    pub lambda_arn: String,
    /// The `ClientRequestToken` sent, which is the new version's id.
    pub token: String,
    pub immediately: bool,
    /// Milliseconds since the Unix epoch, a little before `RotateSecret`.
    pub at_ms: i64,
    /// Alternating users: a line of the function's log that names the
    /// master secret concerns this rotation too.
    pub master_secret_arn: Option<String>,
}

pub use crate::aws::logs::now_ms;

/// What the labels say of a started rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Finished,
    Running,
    /// Rotation was turned off meanwhile: nothing will finish it.
    TurnedOff,
}

pub fn judge(info: &SecretInfo, started: &Started) -> Seen {
    if !info.rotation_enabled {
        return Seen::TurnedOff;
    }
    let labels = info.version_stages.get(&started.token);
    let has = |label: &str| labels.is_some_and(|l| l.iter().any(|x| x == label));
    let finished = if started.immediately {
        has("AWSCURRENT")
    } else {
        // Only testSecret runs, on a version labelled AWSPENDING for the
        // test and unlabelled after it.
        !has("AWSPENDING")
    };
    if finished {
        Seen::Finished
    } else {
        Seen::Running
    }
}

/// A rotation that did not finish, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub summary: String,
    pub detail: String,
}

/// A rotation the wait saw finish without a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Passed,
    /// A test run (`rotate_immediately = false`), whose result only the
    /// function's log holds, and the log could not be read: explained as a
    /// warning, since neither a pass nor a failure can be reported.
    Unconfirmed {
        summary: String,
        detail: String,
    },
}

/// Waits for `started` to finish. `Err(Ok(failure))` when it did not within
/// `bound`; `Err(Err(e))` when waiting itself failed (a stop, the
/// operation's own timeout, a call that kept failing).
pub async fn wait(
    c: &Clients,
    d: &Deadline,
    started: &Started,
    bound: Duration,
) -> Result<Verified, Result<Failure, AwsError>> {
    let window = d.within("waiting for the rotation to finish", bound);
    // Secrets Manager runs the steps after `RotateSecret` has answered, so
    // the first look waits a little; a warm function's test run takes tens
    // of milliseconds, and at fleet scale each apply's wait is what limits
    // how many rotations Terraform's parallel walk turns on per second.
    let mut delay = FIRST_LOOK;
    let seen = loop {
        match window.sleep(delay).await {
            Ok(()) => {}
            // The bound, not the operation's own timeout, ran out.
            Err(AwsError::Timeout(_)) if d.check().is_ok() => break Seen::Running,
            Err(e) => return Err(Err(e)),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
        let info = match sm::find_secret(c, &window, &started.secret_arn).await {
            Ok(Some(info)) => info,
            Ok(None) => return Err(Err(AwsError::not_found("the secret was deleted"))),
            Err(AwsError::Timeout(_)) if d.check().is_ok() => break Seen::Running,
            Err(e) => return Err(Err(e)),
        };
        match judge(&info, started) {
            Seen::Running => {}
            seen => break seen,
        }
    };
    if seen == Seen::Finished && started.immediately {
        // The labels said it: no log read (at fleet scale, FilterLogEvents'
        // 5 requests per second would be the bottleneck).
        return Ok(Verified::Passed);
    }
    let errors = read_errors(c, d, started).await;
    match seen {
        // The labels cannot say whether testSecret passed: its error line can.
        Seen::Finished => match &errors {
            Ok(lines) if !lines.is_empty() => Err(Ok(explain(started, bound, seen, &errors))),
            Ok(_) => Ok(Verified::Passed),
            Err(e) => Ok(unconfirmed(started, e)),
        },
        _ => Err(Ok(explain(started, bound, seen, &errors))),
    }
}

/// Why a test run's result is not known: its log could not be read.
fn unconfirmed(started: &Started, e: &AwsError) -> Verified {
    let group = function_name(&started.lambda_arn)
        .map(logs::function_log_group)
        .unwrap_or_else(|| "the function's log group".into());
    Verified::Unconfirmed {
        summary: "Rotation test not confirmed".into(),
        detail: format!(
            "With `rotate_immediately = false`, Secrets Manager ran the rotation function's test \
(`testSecret`) for {} and then removed its AWSPENDING label, which it does whether the test passed \
or failed: only the function's log says which, and reading {group} failed: {}. \
`rotation_verified` is left unset. Allow `logs:FilterLogEvents` on the function's log group (see \
the provider's IAM permissions), or look for an error in that log yourself.",
            started.secret_arn,
            first_line(&e.to_string()),
        ),
    }
}

/// The function's error lines since the rotation started, at most five.
async fn read_errors(
    c: &Clients,
    d: &Deadline,
    started: &Started,
) -> Result<Vec<LogEvent>, AwsError> {
    let Some(name) = function_name(&started.lambda_arn) else {
        return Ok(Vec::new());
    };
    // A short budget of its own: the explanation must not outlast the wait.
    let reading = d.within(
        "reading the rotation function's log",
        Duration::from_secs(30),
    );
    let group = logs::function_log_group(name);
    // A shared Lambda logs every secret's rotations in one group: the read
    // is shared with the rotations of this process that wait on it, and
    // the lines that name only other secrets it rotates are left out.
    let mut ours = vec![started.secret_arn.as_str()];
    ours.extend(started.master_secret_arn.as_deref());
    // The other secrets this process put on the function: their lines are
    // theirs. (A secret it does not know of counts as possibly this one's.)
    let others = c
        .sharing
        .joined(&reading, &started.lambda_arn)
        .await
        .unwrap_or_default();
    let others: Vec<&str> = others
        .iter()
        .map(String::as_str)
        .filter(|o| !ours.contains(o))
        .collect();
    let found = c
        .error_reads
        .error_lines(
            c,
            &reading,
            &group,
            started.at_ms - 1_000,
            (&ours, &others),
            5,
        )
        .await;
    if let Err(e) = &found {
        logging::warn(
            "rotation",
            &format!(
                "could not read {group} to explain the rotation of {}: {e}",
                started.secret_arn
            ),
        );
    }
    found
}

/// The function's name in its ARN (`arn:...:function:NAME[:qualifier]`).
pub fn function_name(lambda_arn: &str) -> Option<&str> {
    let rest = lambda_arn.split(":function:").nth(1)?;
    rest.split(':').next().filter(|n| !n.is_empty())
}

/// The likely cause of a failed rotation, from the function's error lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Network,
    DatabaseCredentials,
    Permission,
    SecretFormat,
    Unknown,
}

pub fn likely_cause(lines: &[&str]) -> Cause {
    let text = lines.join("\n");
    let lower = text.to_ascii_lowercase();
    let any = |words: &[&str]| {
        words
            .iter()
            .any(|w| lower.contains(&w.to_ascii_lowercase()))
    };
    // MySQL says "Access denied for user" for a wrong password: checked
    // before IAM's "AccessDenied".
    if any(&[
        "password authentication failed",
        "access denied for user",
        "authentication failed",
        "login failed",
        // The test stack's functions and AWS's own templates, when no
        // credentials they hold sign in.
        "unable to sign in",
        "unable to log into",
    ]) {
        Cause::DatabaseCredentials
    } else if any(&["accessdenied", "not authorized", "kms", "is not allowed to"]) {
        Cause::Permission
    } else if any(&[
        "task timed out",
        "timed out",
        "timeout",
        "connection refused",
        "could not connect",
        "can't connect",
        "cannot connect",
        "unreachable",
        "endpointconnectionerror",
        "could not connect to the endpoint",
        "name or service not known",
        "getaddrinfo",
        "no route to host",
    ]) {
        Cause::Network
    } else if any(&[
        "keyerror",
        "jsondecodeerror",
        "not valid json",
        "masterarn",
        "valueerror",
        "missing",
    ]) {
        Cause::SecretFormat
    } else {
        Cause::Unknown
    }
}

impl Cause {
    fn explain(self) -> &'static str {
        match self {
            Cause::Network => {
                "the function could not reach the database or Secrets Manager in time. A \
Lambda in a VPC needs a route to Secrets Manager (a VPC endpoint or a NAT gateway) and a security \
group the database accepts: check `vpc_subnet_ids`, `vpc_security_group_ids`, and the secret's \
`host` and `port`."
            }
            Cause::DatabaseCredentials => {
                "the database refused the credentials the function signed \
in with. Make sure the secret's current password (and, for alternating users, the master secret's) \
is the one the database has, and that the master user may create users and change passwords."
            }
            Cause::Permission => {
                "the function's execution role is not allowed to do what the \
rotation needs: read the master secret (`master_secret_arn`), decrypt with its KMS key \
(`master_secret_kms_key_arn`), or read and write the rotated secret. Check the role's policies; \
an apply puts back the grants this resource manages."
            }
            Cause::SecretFormat => {
                "the secret's value is not in the format the function reads. \
Check the keys the error names: `engine`, `host`, `username`, `password`, `port`, `dbname`, and \
`masterarn` for alternating users (see the resource documentation's secret format table)."
            }
            Cause::Unknown => {
                "the function's log does not say. Read the function's log group, or \
`rdsrot_rotation_status`, once the rotation has ended."
            }
        }
    }
}

/// The first line of an event: an `[ERROR]` event carries its traceback
/// after it, which says nothing more to the user and can be long.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    let mut cut: String = line.chars().take(300).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    cut
}

pub fn explain(
    started: &Started,
    bound: Duration,
    seen: Seen,
    errors: &Result<Vec<LogEvent>, AwsError>,
) -> Failure {
    let group = function_name(&started.lambda_arn)
        .map(logs::function_log_group)
        .unwrap_or_else(|| "the function's log group".into());
    let lines: Vec<String> = match errors {
        Ok(found) => found.iter().map(|e| first_line(&e.message)).collect(),
        Err(_) => Vec::new(),
    };
    let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let cause = likely_cause(&line_refs);
    let (summary, what) = match (seen, started.immediately) {
        (Seen::TurnedOff, _) => (
            "Rotation was turned off while the first rotation ran".to_string(),
            format!(
                "Rotation of {} was turned off (CancelRotateSecret) while the apply waited for the \
rotation it started (version {}).",
                started.secret_arn, started.token
            ),
        ),
        (_, true) if lines.is_empty() => (
            "The rotation did not finish".to_string(),
            format!(
                "Secrets Manager started rotating {} with {}, but the new version {} did not \
become AWSCURRENT within {} (`wait_for_rotation_timeout`).",
                started.secret_arn,
                started.lambda_arn,
                started.token,
                human(bound)
            ),
        ),
        (_, true) => (
            "The rotation failed".to_string(),
            format!(
                "Secrets Manager started rotating {} with {}, and the rotation function failed: the \
new version {} did not become AWSCURRENT within {} (`wait_for_rotation_timeout`).",
                started.secret_arn,
                started.lambda_arn,
                started.token,
                human(bound)
            ),
        ),
        (Seen::Finished, false) => (
            "The rotation test failed".to_string(),
            format!(
                "With `rotate_immediately = false`, Secrets Manager tested the rotation of {} with {} \
(the testSecret step only), and the test failed.",
                started.secret_arn, started.lambda_arn,
            ),
        ),
        (_, false) => (
            "The rotation test failed".to_string(),
            format!(
                "With `rotate_immediately = false`, Secrets Manager tested the rotation of {} with {} \
(the testSecret step only), and the test did not pass within {} (`wait_for_rotation_timeout`).",
                started.secret_arn,
                started.lambda_arn,
                human(bound)
            ),
        ),
    };
    let mut detail = what;
    match errors {
        Ok(_) if !lines.is_empty() => {
            detail.push_str(&format!("\n\nThe rotation function logged ({group}):"));
            for line in &lines {
                detail.push_str("\n  ");
                detail.push_str(line);
            }
            detail.push_str(&format!("\n\nLikely cause: {}", cause.explain()));
        }
        Ok(_) => detail.push_str(&format!(
            "\n\nNo error line was found in {group} since the rotation started: the function may \
not log, its log may be late, or it is still running (a first start in a VPC can take a while: \
raise `wait_for_rotation_timeout`)."
        )),
        Err(e) => detail.push_str(&format!(
            "\n\nIts log group {group} could not be read to say why ({e}); grant \
`logs:FilterLogEvents` on it to see the function's own error here."
        )),
    }
    detail.push_str(
        "\n\nOnce the cause is fixed, run the apply again: it retries the rotation without \
redeploying what is in place. (A resource whose creation failed is marked tainted, which would \
replace it: `terraform untaint <address>` keeps what was made and lets the apply retry only the \
rotation.)",
    );
    Failure { summary, detail }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn started(immediately: bool) -> Started {
        Started {
            secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf".into(),
            lambda_arn: "arn:aws:lambda:us-east-1:123456789012:function:rot-db".into(),
            token: "v2".into(),
            immediately,
            at_ms: 0,
            master_secret_arn: None,
        }
    }

    fn secret(enabled: bool, stages: &[(&str, &[&str])]) -> SecretInfo {
        SecretInfo {
            rotation_enabled: enabled,
            version_stages: stages
                .iter()
                .map(|(v, l)| (v.to_string(), l.iter().map(|s| s.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        }
    }

    #[test]
    fn a_rotation_is_finished_when_its_version_is_current() {
        let s = started(true);
        let running = secret(true, &[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])]);
        assert_eq!(judge(&running, &s), Seen::Running);
        let done = secret(
            true,
            &[
                ("v1", &["AWSPREVIOUS"]),
                ("v2", &["AWSCURRENT", "AWSPENDING"]),
            ],
        );
        assert_eq!(judge(&done, &s), Seen::Finished);
        let off = secret(false, &[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])]);
        assert_eq!(judge(&off, &s), Seen::TurnedOff);
    }

    #[test]
    fn a_test_run_is_finished_when_its_pending_label_is_gone() {
        let s = started(false);
        let testing = secret(true, &[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])]);
        assert_eq!(judge(&testing, &s), Seen::Running);
        let tested = secret(true, &[("v1", &["AWSCURRENT"])]);
        assert_eq!(judge(&tested, &s), Seen::Finished);
    }

    #[test]
    fn the_cause_comes_from_the_error_line() {
        assert_eq!(
            likely_cause(&["[ERROR] KeyError: 'masterarn'"]),
            Cause::SecretFormat
        );
        assert_eq!(
            likely_cause(&["2026-12-06T02:00:00Z abc Task timed out after 3.00 seconds"]),
            Cause::Network
        );
        assert_eq!(
            likely_cause(&["[ERROR] ClientError: An error occurred (AccessDeniedException) when calling the GetSecretValue operation: User: arn:aws:sts::1:assumed-role/r/f is not authorized"]),
            Cause::Permission
        );
        assert_eq!(
            likely_cause(&["[ERROR] OperationalError: (1045, \"Access denied for user 'app'@'127.0.0.1' (using password: YES)\")"]),
            Cause::DatabaseCredentials
        );
        assert_eq!(
            likely_cause(&["[ERROR] InterfaceError: Can't create a connection to host 127.0.0.1 and port 1: Connection refused"]),
            Cause::Network
        );
        assert_eq!(
            likely_cause(&["[ERROR] ZeroDivisionError: division by zero"]),
            Cause::Unknown
        );
        assert_eq!(
            likely_cause(&["[ERROR] ValueError: testSecret: unable to sign in as app with the AWSPENDING secret of arn:aws:secretsmanager:us-east-1:1:secret:db"]),
            Cause::DatabaseCredentials
        );
        assert_eq!(likely_cause(&[]), Cause::Unknown);
    }

    #[test]
    fn the_explanation_quotes_the_first_line_and_says_what_to_do() {
        let events = Ok(vec![LogEvent {
            timestamp_ms: 1,
            stream: "s".into(),
            message: "[ERROR] KeyError: 'masterarn'\nTraceback (most recent call last):\n  File x"
                .into(),
        }]);
        let f = explain(
            &started(true),
            Duration::from_secs(90),
            Seen::Running,
            &events,
        );
        assert_eq!(f.summary, "The rotation failed");
        assert!(f.detail.contains("/aws/lambda/rot-db"), "{}", f.detail);
        assert!(
            f.detail.contains("  [ERROR] KeyError: 'masterarn'"),
            "{}",
            f.detail
        );
        assert!(!f.detail.contains("Traceback"), "{}", f.detail);
        assert!(f.detail.contains("1m30s"), "{}", f.detail);
        assert!(f.detail.contains("`masterarn`"), "{}", f.detail);
        assert!(f.detail.contains("terraform untaint"), "{}", f.detail);

        let denied: Result<Vec<LogEvent>, AwsError> = Err(AwsError::Failed("AccessDenied".into()));
        let f = explain(
            &started(true),
            Duration::from_secs(60),
            Seen::Running,
            &denied,
        );
        assert_eq!(f.summary, "The rotation did not finish");
        assert!(f.detail.contains("logs:FilterLogEvents"), "{}", f.detail);
    }

    #[test]
    fn zero_switches_the_wait_off() {
        assert_eq!(parse_bound("0"), Ok(None));
        assert_eq!(parse_bound("0s"), Ok(None));
        assert_eq!(parse_bound("2m"), Ok(Some(Duration::from_secs(120))));
        assert!(parse_bound("2").is_err());
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:1:function:f:live"),
            Some("f")
        );
        assert_eq!(function_name("nonsense"), None);
    }
}
