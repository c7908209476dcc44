//! Named retry policies, one per kind of call site.
//!
//! Every AWS call goes through [`call`] with the policy of its call site:
//! the SDK's own retries are switched off (see `Clients::new`), because they
//! share one retry budget per client, so that under throttling one busy call
//! can use up the retries of every other. Here each call retries on its own,
//! with jittered exponential backoff, a bounded number of attempts, inside
//! the resource operation's deadline, and stops at once on StopProvider.
//!
//! Every policy retries the transient errors all services share
//! (throttling, 5xx, connection resets, timeouts: `Kind::Retryable`); a
//! policy adds the in-progress conflicts of its own service. A retried call
//! must be safe to send twice: reads are, and each write's caller makes its
//! replay harmless (a token AWS accepts, or "already there, and ours" counted
//! as success).

use std::future::Future;
use std::time::Duration;

use super::error::AwsError;
use super::wait::Deadline;
use crate::logging;

/// How one kind of call site retries.
#[derive(Debug)]
pub struct RetryPolicy {
    /// Named in debug logs, so a slow apply shows which call waited.
    pub name: &'static str,
    /// Errors of this call site's service that are worth another attempt,
    /// beyond the transient errors every call retries.
    pub also_retry: fn(&AwsError) -> bool,
}

fn nothing_more(_: &AwsError) -> bool {
    false
}

/// Lambda refuses a change while another change of the same function is in
/// progress (`ResourceConflictException`, "An update is in progress"). The
/// same code also means "that statement id already exists", which another
/// attempt cannot fix: only the text tells the two apart.
pub fn lambda_update_in_progress(e: &AwsError) -> bool {
    e.code() == Some("ResourceConflictException")
        && e.to_string().to_ascii_lowercase().contains("in progress")
}

/// IAM refuses concurrent changes of one entity.
fn iam_concurrent_change(e: &AwsError) -> bool {
    e.code() == Some("ConcurrentModification")
}

/// Reads of every service: nothing to undo, safe to repeat.
pub const READ: RetryPolicy = RetryPolicy {
    name: "read",
    also_retry: nothing_more,
};
/// AddPermission, RemovePermission: one function's policy.
pub const LAMBDA_POLICY_CHANGE: RetryPolicy = RetryPolicy {
    name: "lambda policy change",
    also_retry: lambda_update_in_progress,
};
/// UpdateFunctionConfiguration: the same setting sent twice is harmless.
pub const LAMBDA_CONFIG_CHANGE: RetryPolicy = RetryPolicy {
    name: "lambda configuration change",
    also_retry: lambda_update_in_progress,
};
/// PutRolePolicy, DeleteRolePolicy: putting the same document twice, or
/// deleting an absent one (not found counts as done), is harmless.
pub const IAM_CHANGE: RetryPolicy = RetryPolicy {
    name: "iam change",
    also_retry: iam_concurrent_change,
};
/// ExecuteChangeSet, DeleteStack, DeleteChangeSet: sent with a client
/// request token, so a replay is the same request.
pub const STACK_CHANGE: RetryPolicy = RetryPolicy {
    name: "stack change",
    also_retry: nothing_more,
};
/// CreateCloudFormationChangeSet: sent with a client token.
pub const CHANGE_SET_CREATION: RetryPolicy = RetryPolicy {
    name: "change set creation",
    also_retry: nothing_more,
};
/// RotateSecret, CancelRotateSecret, UpdateSecretVersionStage: RotateSecret
/// carries a client request token; the others set a state, not add one.
pub const SECRET_CHANGE: RetryPolicy = RetryPolicy {
    name: "secret change",
    also_retry: nothing_more,
};

/// The first wait after a failed attempt, before jitter; it doubles up to
/// `MAX_DELAY`. Short, so that a local emulator's faults cost little.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(20);

/// The attempts one call makes unless the provider's `max_retries` says
/// otherwise: with the delays above, about a minute of throttling.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// The waits between attempts: exponential with "full jitter" (a uniform
/// draw below the cap), which spreads the retries of many resources
/// throttled at once instead of sending them back in step.
#[derive(Debug)]
pub struct JitteredBackoff {
    cap: Duration,
}

impl Default for JitteredBackoff {
    fn default() -> Self {
        JitteredBackoff { cap: FIRST_DELAY }
    }
}

impl JitteredBackoff {
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.cap;
        self.cap = (self.cap * 2).min(MAX_DELAY);
        // At least a tenth of the cap, so that retries never spin.
        let floor = cap / 10;
        floor + cap.mul_f64(fastrand::f64() * 0.9)
    }
}

/// Sends `f` until it succeeds, fails with an error the policy does not
/// retry, runs out of `max_attempts`, or the deadline passes or is
/// cancelled. Nothing is sent once the operation was cancelled or its time
/// is up. When retries end on time, the last AWS error is returned: it says
/// more than "timed out".
pub async fn call<T, F, Fut>(
    deadline: &Deadline,
    policy: &RetryPolicy,
    max_attempts: u32,
    mut f: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut backoff = JitteredBackoff::default();
    let mut attempt = 1;
    loop {
        deadline.check()?;
        let e = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let retryable = e.is_transient() || (policy.also_retry)(&e);
        if !retryable || attempt >= max_attempts.max(1) {
            return Err(e);
        }
        let delay = backoff.next_delay();
        logging::debug(
            "retry",
            &format!(
                "{} attempt {attempt} failed ({e}); again in {delay:?}",
                policy.name
            ),
        );
        match deadline.sleep(delay).await {
            Ok(()) => attempt += 1,
            Err(AwsError::Cancelled) => return Err(AwsError::Cancelled),
            Err(_) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::error::Kind;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio_util::sync::CancellationToken;

    fn api(kind: Kind, code: &str, message: &str) -> AwsError {
        AwsError::Api {
            kind,
            code: Some(code.into()),
            message: message.into(),
        }
    }
    fn throttled() -> AwsError {
        api(Kind::Retryable, "TooManyRequestsException", "Rate exceeded")
    }
    fn deadline(budget: Duration) -> Deadline {
        Deadline::new("t", budget, CancellationToken::new())
    }

    /// Calls that fail with `errors` in turn, then succeed; returns the result
    /// and the number of attempts.
    async fn run(
        policy: &RetryPolicy,
        max_attempts: u32,
        errors: Vec<AwsError>,
    ) -> (Result<u32, AwsError>, u32) {
        let calls = AtomicU32::new(0);
        let d = deadline(Duration::from_secs(60));
        let r = call(&d, policy, max_attempts, || {
            let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
            let e = errors.get(n).cloned();
            async move {
                match e {
                    Some(e) => Err(e),
                    None => Ok(7),
                }
            }
        })
        .await;
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn throttling_is_retried_by_every_policy() {
        for policy in [
            &READ,
            &LAMBDA_POLICY_CHANGE,
            &LAMBDA_CONFIG_CHANGE,
            &IAM_CHANGE,
            &STACK_CHANGE,
            &CHANGE_SET_CREATION,
            &SECRET_CHANGE,
        ] {
            let (r, n) = run(policy, 5, vec![throttled(), throttled()]).await;
            assert_eq!((r, n), (Ok(7), 3), "{}", policy.name);
        }
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_the_last_error_is_returned() {
        let (r, n) = run(&READ, 3, vec![throttled(); 10]).await;
        assert_eq!((r, n), (Err(throttled()), 3));
    }

    #[tokio::test]
    async fn a_lambda_update_in_progress_is_retried_but_an_existing_statement_is_not() {
        let in_progress = api(
            Kind::Other,
            "ResourceConflictException",
            "The operation cannot be performed at this time. An update is in progress for resource: arn:f",
        );
        let exists = api(
            Kind::Other,
            "ResourceConflictException",
            "The statement id (s) provided already exists. Please provide a new statement id, or remove the existing statement.",
        );
        let (r, n) = run(&LAMBDA_CONFIG_CHANGE, 5, vec![in_progress.clone()]).await;
        assert_eq!((r, n), (Ok(7), 2));
        let (r, n) = run(&LAMBDA_POLICY_CHANGE, 5, vec![exists.clone()]).await;
        assert_eq!((r, n), (Err(exists), 1));
        // Reads have no in-progress conflict to wait out.
        let (r, n) = run(&READ, 5, vec![in_progress.clone()]).await;
        assert_eq!((r, n), (Err(in_progress), 1));
    }

    #[tokio::test]
    async fn iam_concurrent_modification_is_retried_for_iam_changes_only() {
        let busy = api(
            Kind::Other,
            "ConcurrentModification",
            "Rate of change is too high",
        );
        assert_eq!(run(&IAM_CHANGE, 5, vec![busy.clone()]).await, (Ok(7), 2));
        assert_eq!(run(&READ, 5, vec![busy.clone()]).await, (Err(busy), 1));
    }

    #[tokio::test]
    async fn other_errors_are_returned_at_once() {
        let denied = api(Kind::Other, "AccessDeniedException", "no");
        assert_eq!(run(&READ, 5, vec![denied.clone()]).await, (Err(denied), 1));
    }

    #[tokio::test]
    async fn nothing_is_sent_after_a_stop_and_a_stop_ends_the_retries() {
        let cancel = CancellationToken::new();
        let d = Deadline::new("t", Duration::from_secs(3600), cancel.clone());
        cancel.cancel();
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = call(&d, &READ, 5, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .await;
        assert_eq!(
            (r, calls.load(Ordering::SeqCst)),
            (Err(AwsError::Cancelled), 0)
        );

        let cancel = CancellationToken::new();
        let d = Deadline::new("t", Duration::from_secs(3600), cancel.clone());
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = call(&d, &READ, 50, || {
            if calls.fetch_add(1, Ordering::SeqCst) == 1 {
                cancel.cancel();
            }
            async { Err(throttled()) }
        })
        .await;
        assert_eq!(
            (r, calls.load(Ordering::SeqCst)),
            (Err(AwsError::Cancelled), 2)
        );
    }

    #[tokio::test]
    async fn the_deadline_bounds_the_retries() {
        let d = deadline(Duration::from_millis(500));
        let start = tokio::time::Instant::now();
        let r: Result<(), _> = call(&d, &READ, 1000, || async { Err(throttled()) }).await;
        assert_eq!(r, Err(throttled()));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let mut b = JitteredBackoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(10) && delays[0] <= FIRST_DELAY);
        assert!(delays.iter().all(|d| *d <= MAX_DELAY));
        assert!(delays[11] >= MAX_DELAY / 10);
    }
}
