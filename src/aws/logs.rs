//! CloudWatch Logs: the rotation function's own lines, read only to explain
//! a rotation that failed. Never to judge whether it did (a function may
//! not log at all, its logs arrive late, or the caller may not read them).

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;

use super::error::{classify, AwsError, OptionalExt};
use super::pacing::Quota;
use super::retry::READ;
use super::wait::Deadline;
use super::Clients;

/// One event of a log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub stream: String,
    pub message: String,
}

/// Lambda's Python runtime writes a function's logs to this group.
pub fn function_log_group(function_name: &str) -> String {
    format!("/aws/lambda/{function_name}")
}

/// What a failed invocation leaves in the log: the runtime's `[ERROR]`
/// event for an unhandled exception, a `logging.error` line, or the
/// timeout line.
pub const ERROR_PATTERN: &str = "?ERROR ?\"Task timed out\"";

/// Whether a line is one `ERROR_PATTERN` is meant to find. The pattern is
/// also applied here, so that a service that ignores it (or answers more)
/// still yields only error lines.
pub fn is_error_line(message: &str) -> bool {
    message.contains("ERROR") || message.contains("Task timed out")
}

/// At most this many pages are read: a function that logs a lot must not
/// make an error message slow to build.
const MAX_PAGES: usize = 5;

/// The error lines of `group` since `since_ms`, oldest first, at most
/// `limit` of them. A group that does not exist has none.
pub async fn find_error_lines(
    c: &Clients,
    d: &Deadline,
    group: &str,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<LogEvent>, AwsError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = c
            .call(d, &READ, Quota::LogsFilter, || async {
                c.logs
                    .filter_log_events()
                    .log_group_name(group)
                    .start_time(since_ms)
                    .filter_pattern(ERROR_PATTERN)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        // CloudWatch Logs answers a missing group with this code.
                        if e.code() == Some("ResourceNotFoundException") {
                            AwsError::not_found(format!("log group {group} does not exist"))
                        } else {
                            classify(e)
                        }
                    })
            })
            .await
            .or_not_found()?;
        let Some(page) = page else { break };
        for event in page.events() {
            let message = event.message().unwrap_or_default().trim_end().to_string();
            if is_error_line(&message) {
                found.push(LogEvent {
                    timestamp_ms: event.timestamp().unwrap_or_default(),
                    stream: event.log_stream_name().unwrap_or_default().to_string(),
                    message,
                });
            }
        }
        if found.len() >= limit {
            break;
        }
        match page.next_token() {
            Some(next) if !next.is_empty() && token.as_deref() != Some(next) => {
                token = Some(next.to_string())
            }
            _ => break,
        }
    }
    found.sort_by_key(|e| e.timestamp_ms);
    found.truncate(limit);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_the_runtime_error_and_the_timeout() {
        assert!(is_error_line(
            "[ERROR] KeyError: 'masterarn'\nTraceback ..."
        ));
        assert!(is_error_line(
            "2026-12-06T02:00:00.000Z 1f2e Task timed out after 3.00 seconds"
        ));
        assert!(is_error_line(
            "[ERROR]\t2026-12-06T02:00:00Z\tabc\tsetSecret: cannot connect"
        ));
        assert!(!is_error_line("START RequestId: abc Version: $LATEST"));
        assert!(!is_error_line("[INFO] createSecret: put a new password"));
    }

    #[test]
    fn the_group_is_lambdas_own() {
        assert_eq!(function_log_group("rot-db"), "/aws/lambda/rot-db");
    }
}
