//! Bounded retries and polling, both under a named operation deadline and
//! cancellable when Terraform sends StopProvider.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::AwsError;

/// The budget of one resource operation (create, update, delete, read).
#[derive(Clone, Debug)]
pub struct Deadline {
    /// e.g. "create (timeouts.create = 30m)".
    pub name: String,
    pub until: Instant,
    pub cancel: CancellationToken,
}

impl Deadline {
    pub fn new(name: impl Into<String>, budget: Duration, cancel: CancellationToken) -> Deadline {
        Deadline {
            name: name.into(),
            until: Instant::now() + budget,
            cancel,
        }
    }

    /// A shorter deadline inside this one (e.g. the 2-minute IAM
    /// propagation window).
    pub fn within(&self, name: &str, budget: Duration) -> Deadline {
        Deadline {
            name: format!("{name} (within {})", self.name),
            until: self.until.min(Instant::now() + budget),
            cancel: self.cancel.clone(),
        }
    }

    /// Sleeps, failing early on cancellation or when the deadline would pass.
    pub async fn sleep(&self, d: Duration) -> Result<(), AwsError> {
        let now = Instant::now();
        if now + d > self.until {
            return Err(AwsError::Timeout(self.name.clone()));
        }
        tokio::select! {
            _ = self.cancel.cancelled() => Err(AwsError::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Resolves when Terraform cancels the operation or its time runs out,
    /// with the error that says which: for racing a whole operation.
    pub async fn expired(&self) -> AwsError {
        tokio::select! {
            _ = self.cancel.cancelled() => AwsError::Cancelled,
            _ = tokio::time::sleep_until(self.until) => AwsError::Timeout(self.name.clone()),
        }
    }

    /// Waits for `fut` (a lock another operation holds, a read another
    /// operation is making) only as long as this operation may: Terraform's
    /// stop and this operation's deadline end the wait.
    pub async fn bound<F: Future>(&self, fut: F) -> Result<F::Output, AwsError> {
        tokio::select! {
            biased;
            out = fut => Ok(out),
            e = self.expired() => Err(e),
        }
    }

    pub fn check(&self) -> Result<(), AwsError> {
        if self.cancel.is_cancelled() {
            return Err(AwsError::Cancelled);
        }
        if Instant::now() >= self.until {
            return Err(AwsError::Timeout(self.name.clone()));
        }
        Ok(())
    }
}

/// Polling intervals: short first so tests against a local emulator stay
/// fast, growing to a few seconds for real AWS.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(250),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// What one poll saw.
pub enum Poll<T> {
    Ready(T),
    Pending,
}

/// Polls until `Ready`, an error, the deadline, or cancellation.
pub async fn poll_until<T, F, Fut>(deadline: &Deadline, mut f: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, AwsError>>,
{
    let mut backoff = Backoff::default();
    loop {
        deadline.check()?;
        if let Poll::Ready(v) = f().await? {
            return Ok(v);
        }
        deadline.sleep(backoff.next_delay()).await?;
    }
}

/// Calls `f` again while `retryable` says its error is one of the named,
/// transient ones, with exponential backoff, inside `deadline`. Any other
/// error, or the deadline passing, returns the last error (it says more than
/// "timed out"); a StopProvider returns `Cancelled`, so the user sees why
/// the retries ended.
pub async fn retry_while<T, F, Fut>(
    deadline: &Deadline,
    retryable: impl Fn(&AwsError) -> bool,
    mut f: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut backoff = Backoff::default();
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) => match deadline.sleep(backoff.next_delay()).await {
                Ok(()) => {}
                Err(AwsError::Cancelled) => return Err(AwsError::Cancelled),
                Err(_) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> AwsError {
        AwsError::Failed("transient".into())
    }

    #[tokio::test]
    async fn retries_named_errors_until_success() {
        let calls = AtomicU32::new(0);
        let d = Deadline::new("t", Duration::from_secs(60), CancellationToken::new());
        let r = retry_while(
            &d,
            |e| *e == transient(),
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(transient())
                } else {
                    Ok(7)
                }
            },
        )
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried_and_the_deadline_bounds_retries() {
        let d = Deadline::new("t", Duration::from_millis(900), CancellationToken::new());
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry_while(
            &d,
            |_| false,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transient())
            },
        )
        .await;
        assert_eq!((r, calls.load(Ordering::SeqCst)), (Err(transient()), 1));
        let start = Instant::now();
        let r: Result<(), _> = retry_while(&d, |_| true, || async { Err(transient()) }).await;
        assert_eq!(r, Err(transient()));
        assert!(start.elapsed() <= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn retries_end_at_once_on_cancel_and_say_so() {
        let cancel = CancellationToken::new();
        let d = Deadline::new("t", Duration::from_secs(3600), cancel.clone());
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry_while(
            &d,
            |_| true,
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 1 {
                    cancel.cancel();
                }
                Err(transient())
            },
        )
        .await;
        assert_eq!(
            (r, calls.load(Ordering::SeqCst)),
            (Err(AwsError::Cancelled), 2)
        );
    }

    #[tokio::test]
    async fn expired_says_whether_cancelled_or_out_of_time() {
        let d = Deadline::new("read", Duration::from_millis(50), CancellationToken::new());
        assert_eq!(d.expired().await, AwsError::Timeout("read".into()));
        let cancel = CancellationToken::new();
        let d = Deadline::new("read", Duration::from_secs(3600), cancel.clone());
        cancel.cancel();
        assert_eq!(d.expired().await, AwsError::Cancelled);
    }

    #[tokio::test]
    async fn polling_stops_on_cancel_and_on_timeout() {
        let cancel = CancellationToken::new();
        let d = Deadline::new("create", Duration::from_secs(3600), cancel.clone());
        cancel.cancel();
        let r: Result<(), _> = poll_until(&d, || async { Ok(Poll::Pending) }).await;
        assert_eq!(r, Err(AwsError::Cancelled));
        let d = Deadline::new(
            "create",
            Duration::from_millis(600),
            CancellationToken::new(),
        );
        let r: Result<(), _> = poll_until(&d, || async { Ok(Poll::Pending) }).await;
        assert_eq!(r, Err(AwsError::Timeout("create".into())));
    }
}
