//! CloudWatch Logs: the rotation function's own lines, read only to explain
//! a rotation that failed. Never to judge whether it did (a function may
//! not log at all, its logs arrive late, or the caller may not read them).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// A shared read reaches back at most this far before the rotation that
/// asks, to serve the rotations that started earlier in the same
/// operation with the same request.
const SHARED_LOOKBACK_MS: i64 = 10 * 60 * 1000;

/// A read of a group's error lines.
#[derive(Debug, Default)]
struct ErrorLines {
    /// Oldest first.
    events: Vec<LogEvent>,
    /// Whether the read reached the end within the page budget.
    whole: bool,
    /// When its first page was sent (after any wait for the quota): every
    /// line logged before then is in a whole read.
    sent_ms: i64,
}

/// The error lines of `group` since `since_ms`, within the page budget. A
/// group that does not exist has none.
async fn read_error_lines(
    c: &Clients,
    d: &Deadline,
    group: &str,
    since_ms: i64,
) -> Result<ErrorLines, AwsError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    let mut complete = false;
    let first_sent = AtomicI64::new(now_ms());
    for _ in 0..MAX_PAGES {
        let page = c
            .call(d, &READ, Quota::LogsFilter, || async {
                // Runs once the pacer let the attempt go.
                if token.is_none() {
                    first_sent.store(now_ms(), Ordering::Relaxed);
                }
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
        let Some(page) = page else {
            complete = true;
            break;
        };
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
        match page.next_token() {
            Some(next) if !next.is_empty() && token.as_deref() != Some(next) => {
                token = Some(next.to_string())
            }
            _ => {
                complete = true;
                break;
            }
        }
    }
    found.sort_by_key(|e| e.timestamp_ms);
    Ok(ErrorLines {
        events: found,
        whole: complete,
        sent_ms: first_sent.load(Ordering::Relaxed),
    })
}

/// Whether an error line may be about a rotation of `ours` (secret ARNs).
/// A Lambda that rotates several secrets logs all their failures in one
/// group: a line is another rotation's only when every secret it names is
/// one of `others` (secrets known to rotate with the same function) and
/// none is ours. A line that names no secret (a timeout, a crash), or a
/// secret of neither list (a master secret the function could not read),
/// may be anyone's, and counts.
pub fn may_concern(message: &str, ours: &[&str], others: &[&str]) -> bool {
    let named = secret_arns_in(message);
    named.is_empty()
        || named.iter().any(|n| is_one_of(n, ours))
        || !named.iter().all(|n| is_one_of(n, others))
}

/// Whether a line names the secret `arn`, or no secret at all.
pub fn names_no_other_secret(message: &str, arn: &str) -> bool {
    let named = secret_arns_in(message);
    named.is_empty() || named.iter().any(|n| is_one_of(n, &[arn]))
}

/// A named ARN is one of `arns`, also when either is cut short of the
/// secret's random suffix.
fn is_one_of(named: &str, arns: &[&str]) -> bool {
    arns.iter()
        .any(|a| !a.is_empty() && (named.starts_with(a) || a.starts_with(named)))
}

/// The Secrets Manager secret ARNs a log line names, without the
/// punctuation around them.
fn secret_arns_in(message: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = message;
    while let Some(at) = rest.find("arn:") {
        let tail = &rest[at..];
        let end = tail
            .find(|ch: char| ch.is_whitespace() || "\"'`,;()[]{}<>".contains(ch))
            .unwrap_or(tail.len());
        let arn = tail[..end].trim_end_matches(['.', ':']);
        if arn.contains(":secretsmanager:") && arn.contains(":secret:") {
            found.push(arn);
        }
        rest = &tail[end.max(4)..];
    }
    found
}

/// What one process last read of a log group's error lines.
struct GroupRead {
    from_ms: i64,
    /// Every error line from `from_ms` up to this time is in `events`: when
    /// the read was sent, or its last line when the page budget ran out.
    complete_to_ms: i64,
    /// Whether the read reached its end within the page budget.
    whole: bool,
    events: Vec<LogEvent>,
}

/// Error-line reads shared, within one process, by the rotations that wait
/// on the same function's log.
///
/// `FilterLogEvents` allows 5 requests per second per account: an apply of
/// a thousand rotations with `rotate_immediately = false`, each reading its
/// function's log once, would spend more than three minutes on it alone.
/// The rotations of one Lambda share its log group, so here one read at a
/// time is sent per group, and every rotation that asked while it was under
/// way is answered by the next: it was sent after they asked, and reaches
/// back to the earliest of them.
#[derive(Default)]
pub struct SharedErrorReads {
    groups: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<GroupRead>>>>>,
}

impl std::fmt::Debug for SharedErrorReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedErrorReads")
    }
}

impl SharedErrorReads {
    fn slot(&self, group: &str) -> Arc<tokio::sync::Mutex<Option<GroupRead>>> {
        // A poisoned map only means a thread panicked while holding it.
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.entry(group.to_string()).or_default().clone()
    }

    /// The error lines of `group` since `since_ms` that may concern `ours`
    /// rather than `others` (see [`may_concern`]), oldest first, at most
    /// `limit`: from a read sent after this call began.
    pub async fn error_lines(
        &self,
        c: &Clients,
        d: &Deadline,
        group: &str,
        since_ms: i64,
        (ours, others): (&[&str], &[&str]),
        limit: usize,
    ) -> Result<Vec<LogEvent>, AwsError> {
        self.error_lines_read_by(d, group, since_ms, (ours, others), limit, |from| {
            read_error_lines(c, d, group, from)
        })
        .await
    }

    /// [`error_lines`](Self::error_lines), with `read` sending the request
    /// for the lines from a time on.
    async fn error_lines_read_by<F, Fut>(
        &self,
        d: &Deadline,
        group: &str,
        since_ms: i64,
        (ours, others): (&[&str], &[&str]),
        limit: usize,
        read: F,
    ) -> Result<Vec<LogEvent>, AwsError>
    where
        F: FnOnce(i64) -> Fut,
        Fut: Future<Output = Result<ErrorLines, AwsError>>,
    {
        let asked_ms = now_ms();
        let slot = self.slot(group);
        let mut last = d.bound(slot.lock()).await?;
        let answers = last
            .as_ref()
            .is_some_and(|r| r.from_ms <= since_ms && r.complete_to_ms >= asked_ms);
        if !answers {
            // Back to the earliest rotation this process asked for, so that
            // the ones queued behind this read are answered by it too.
            let from = match last.as_ref() {
                Some(r) if r.whole && r.from_ms >= since_ms - SHARED_LOOKBACK_MS => {
                    r.from_ms.min(since_ms)
                }
                _ => since_ms,
            };
            let ErrorLines {
                events,
                whole,
                sent_ms,
            } = read(from).await?;
            let complete_to_ms = if whole {
                sent_ms
            } else {
                events.last().map_or(from, |e| e.timestamp_ms)
            };
            *last = Some(GroupRead {
                from_ms: from,
                complete_to_ms,
                whole,
                events,
            });
        }
        let read = last
            .as_ref()
            .map(|r| r.events.as_slice())
            .unwrap_or_default();
        Ok(read
            .iter()
            .filter(|e| e.timestamp_ms >= since_ms && may_concern(&e.message, ours, others))
            .take(limit)
            .cloned()
            .collect())
    }
}

/// Milliseconds since the Unix epoch, as log events are stamped.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.as_millis() as i64)
        .unwrap_or_default()
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
    fn a_line_naming_only_other_secrets_of_the_function_is_theirs() {
        let ours = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-a-AbCdEf";
        let master = "arn:aws:secretsmanager:us-east-1:123456789012:secret:master-XyZ123";
        let other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-b-GhIjKl";
        let line = |arn: &str| {
            format!("[ERROR] ValueError: Unable to log into database with secret arn {arn}.")
        };
        let others = [other];
        assert!(may_concern(&line(ours), &[ours], &others));
        assert!(!may_concern(&line(other), &[ours], &others));
        // A secret of neither list (the master secret this function could
        // not read) may be this rotation's.
        assert!(may_concern(&line(master), &[ours], &others));
        assert!(may_concern(&line(other), &[ours], &[]));
        // No secret named (a timeout, a crash): it may be anyone's.
        assert!(may_concern(
            "2026-12-06T02:00:00.000Z 1f2e Task timed out after 3.00 seconds",
            &[ours],
            &others
        ));
        // Quoted, or named by the ARN without its random suffix.
        assert!(may_concern(
            &format!("[ERROR] KeyError for '{ours}'"),
            &[ours],
            &others
        ));
        assert!(!may_concern(
            "[ERROR] no secret arn:aws:secretsmanager:us-east-1:123456789012:secret:db-b",
            &[ours],
            &others
        ));
        // Both named: ours is among them.
        assert!(may_concern(
            &format!("{} and {ours}", line(other)),
            &[ours],
            &others
        ));
        // Other ARNs (the function's own) are not secrets.
        assert!(may_concern(
            "[ERROR] AccessDenied: arn:aws:sts::123456789012:assumed-role/r/f",
            &[ours],
            &others
        ));
        assert!(names_no_other_secret(&line(ours), ours));
        assert!(!names_no_other_secret(&line(master), ours));
    }

    fn event(timestamp_ms: i64, message: &str) -> LogEvent {
        LogEvent {
            timestamp_ms,
            stream: "s".into(),
            message: message.into(),
        }
    }

    fn whole_read(events: Vec<LogEvent>) -> ErrorLines {
        ErrorLines {
            events,
            whole: true,
            sent_ms: now_ms(),
        }
    }

    fn open() -> Deadline {
        Deadline::new(
            "read",
            std::time::Duration::from_secs(60),
            tokio_util::sync::CancellationToken::new(),
        )
    }

    /// Rotations of one Lambda that ask while a read of its log is under
    /// way are all answered by the next read, which reaches back to the
    /// earliest of them; one that asks after it was sent gets a new read.
    #[tokio::test]
    async fn rotations_waiting_on_one_log_share_its_reads() {
        use std::sync::atomic::AtomicU32;
        let reads = Arc::new(SharedErrorReads::default());
        let sent = Arc::new(AtomicU32::new(0));
        let froms = Arc::new(Mutex::new(Vec::new()));
        let start = now_ms();
        let arn = |i: i64| format!("arn:aws:secretsmanager:us-east-1:1:secret:db-{i}-AbCdEf");
        let waiters = (0..10i64).map(|i| {
            let (reads, sent, froms) = (reads.clone(), sent.clone(), froms.clone());
            tokio::spawn(async move {
                // Each rotation started a little later than the one before.
                let since = start - 10_000 + i * 100;
                let ours = arn(i);
                let others: Vec<String> = (0..10).filter(|j| *j != i).map(arn).collect();
                let others: Vec<&str> = others.iter().map(String::as_str).collect();
                reads
                    .error_lines_read_by(
                        &open(),
                        "/aws/lambda/f",
                        since,
                        (&[&ours], &others),
                        5,
                        |from| {
                            sent.fetch_add(1, Ordering::SeqCst);
                            froms.lock().expect("the list").push(from);
                            async move {
                                let sent_ms = now_ms();
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                                let lines = (0..10i64)
                                    .map(|j| {
                                        event(
                                            start - 9_950 + j * 100,
                                            &format!("[ERROR] {}", arn(j)),
                                        )
                                    })
                                    .filter(|e| e.timestamp_ms >= from)
                                    .collect();
                                Ok(ErrorLines {
                                    events: lines,
                                    whole: true,
                                    sent_ms,
                                })
                            }
                        },
                    )
                    .await
            })
        });
        let answers = futures::future::join_all(waiters).await;
        for (i, answer) in answers.into_iter().enumerate() {
            let lines = answer.expect("joined").expect("read");
            assert_eq!(lines.len(), 1, "rotation {i}: {lines:?}");
            assert!(lines[0].message.contains(&arn(i as i64)), "{lines:?}");
        }
        let sent_then = sent.load(Ordering::SeqCst);
        assert!(sent_then <= 2, "10 waiters sent {sent_then} reads");
        // The second read reached back to the first rotation.
        assert!(froms
            .lock()
            .expect("the list")
            .iter()
            .all(|f| *f == start - 10_000));

        // Asked after those reads were sent: a read of its own.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        reads
            .error_lines_read_by(&open(), "/aws/lambda/f", start, (&[], &[]), 5, |_| {
                sent.fetch_add(1, Ordering::SeqCst);
                async { Ok(whole_read(Vec::new())) }
            })
            .await
            .expect("read");
        assert_eq!(sent.load(Ordering::SeqCst), sent_then + 1);
        // Another group is read on its own.
        reads
            .error_lines_read_by(&open(), "/aws/lambda/g", start, (&[], &[]), 5, |_| {
                sent.fetch_add(1, Ordering::SeqCst);
                async { Ok(whole_read(Vec::new())) }
            })
            .await
            .expect("read");
        assert_eq!(sent.load(Ordering::SeqCst), sent_then + 2);
    }

    /// A read that waits for its quota before it is sent answers the
    /// rotations that asked meanwhile: what counts is when it left.
    #[tokio::test]
    async fn a_read_waiting_for_its_quota_answers_those_who_asked_meanwhile() {
        use std::sync::atomic::AtomicU32;
        let reads = Arc::new(SharedErrorReads::default());
        let sent = Arc::new(AtomicU32::new(0));
        let since = now_ms() - 1_000;
        let ask = |delay_ms: u64| {
            let (reads, sent) = (reads.clone(), sent.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                reads
                    .error_lines_read_by(&open(), "g", since, (&[], &[]), 5, |_| {
                        sent.fetch_add(1, Ordering::SeqCst);
                        async {
                            // The pacer holds the request, then it leaves.
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            let sent_ms = now_ms();
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            Ok(ErrorLines {
                                sent_ms,
                                ..whole_read(Vec::new())
                            })
                        }
                    })
                    .await
            })
        };
        let first = ask(0);
        let during_the_wait: Vec<_> = (0..5).map(|_| ask(30)).collect();
        first.await.expect("joined").expect("read");
        for waiter in during_the_wait {
            waiter.await.expect("joined").expect("read");
        }
        assert_eq!(sent.load(Ordering::SeqCst), 1);
    }

    /// A read cut short by the page budget does not answer for lines past
    /// its last one, and a failed read is not kept.
    #[tokio::test]
    async fn a_partial_or_failed_read_answers_no_one_after_it() {
        let reads = SharedErrorReads::default();
        let start = now_ms() - 10_000;
        let partial = reads
            .error_lines_read_by(&open(), "g", start, (&[], &[]), 5, |from| async move {
                Ok(ErrorLines {
                    events: vec![event(from + 10, "[ERROR] first")],
                    whole: false,
                    sent_ms: now_ms(),
                })
            })
            .await
            .expect("read");
        assert_eq!(partial.len(), 1);
        let mut asked_from = None;
        reads
            .error_lines_read_by(&open(), "g", start + 5_000, (&[], &[]), 5, |from| {
                asked_from = Some(from);
                async { Err(AwsError::Failed("throttled".into())) }
            })
            .await
            .expect_err("the read failed");
        // Not reaching back past a partial read: it would be cut short again.
        assert_eq!(asked_from, Some(start + 5_000));
        let mut sent = false;
        reads
            .error_lines_read_by(&open(), "g", start + 5_000, (&[], &[]), 5, |_| {
                sent = true;
                async { Ok(whole_read(Vec::new())) }
            })
            .await
            .expect("read");
        assert!(sent, "the failed read answered a later caller");
    }

    #[test]
    fn the_group_is_lambdas_own() {
        assert_eq!(function_log_group("rot-db"), "/aws/lambda/rot-db");
    }
}
