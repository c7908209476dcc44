//! Client-side pacing per AWS quota class.
//!
//! AWS's API quotas are per account and region, fixed, and shared with
//! every other tool in the account. Ten resources refreshing at once would
//! otherwise send their `GetPolicy` calls together, be throttled together,
//! and retry together. Here every call of a quota class first takes a slot
//! from that class's token bucket, in the order the calls came (so the
//! retries of one call wait behind the others instead of starving them),
//! and the bucket's rate adapts: halved when AWS throttles, grown back by a
//! twentieth of the quota per answer that was not throttled, never above
//! the published quota.
//!
//! Classes whose quota AWS does not publish (IAM, CloudFormation, the
//! Serverless Application Repository) are not paced; their throttling is
//! handled by the retries alone.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::error::AwsError;
use super::wait::Deadline;

/// A quota class: the calls that share one published rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Lambda `GetFunction`: 100 requests per second.
    LambdaGetFunction,
    /// Lambda `GetPolicy`: 15 per second.
    LambdaGetPolicy,
    /// Every other Lambda control-plane call together: 15 per second.
    LambdaControl,
    /// Secrets Manager `DescribeSecret`: 40,000 per second (not paced).
    SecretsDescribe,
    /// Secrets Manager `GetSecretValue`: 10,000 per second (not paced; the
    /// pre-flight check makes one call per planned or applied rotation).
    SecretsGetValue,
    /// `RotateSecret` and `CancelRotateSecret` together: 50 per second.
    SecretsRotation,
    /// `PutSecretValue`, `UpdateSecret`, `UpdateSecretVersionStage`
    /// together: 50 per second.
    SecretsWrite,
    /// `ListSecrets`: 100 per second.
    SecretsList,
    /// `ListSecretVersionIds`: 50 per second, the figure the emulator's
    /// quota table (`tests/support/aws_under_load.py`) gives it, marked there
    /// as still to be confirmed on AWS's Secrets Manager quotas page. Paced
    /// on its own so that status reads never take DescribeSecret's share.
    SecretsListVersions,
    /// CloudWatch Logs `FilterLogEvents`: 5 per second. Read only to
    /// explain a failed rotation.
    LogsFilter,
    /// IAM, CloudFormation, the repository: no published rate.
    Unpublished,
}

const CLASSES: [Quota; 11] = [
    Quota::LambdaGetFunction,
    Quota::LambdaGetPolicy,
    Quota::LambdaControl,
    Quota::SecretsDescribe,
    Quota::SecretsGetValue,
    Quota::SecretsRotation,
    Quota::SecretsWrite,
    Quota::SecretsList,
    Quota::SecretsListVersions,
    Quota::LogsFilter,
    Quota::Unpublished,
];

impl Quota {
    /// Requests per second AWS publishes for the class, when it is worth
    /// pacing.
    pub fn published_rate(self) -> Option<f64> {
        match self {
            Quota::LambdaGetFunction | Quota::SecretsList => Some(100.0),
            Quota::LambdaGetPolicy | Quota::LambdaControl => Some(15.0),
            Quota::SecretsRotation | Quota::SecretsWrite | Quota::SecretsListVersions => Some(50.0),
            Quota::LogsFilter => Some(5.0),
            Quota::SecretsDescribe | Quota::SecretsGetValue | Quota::Unpublished => None,
        }
    }

    fn index(self) -> usize {
        CLASSES.iter().position(|q| *q == self).unwrap_or(0)
    }
}

/// One class's bucket. `tokens` may go below zero: each caller reserves the
/// next slot and waits until it comes.
#[derive(Debug)]
struct Bucket {
    published: f64,
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new(published: f64) -> Bucket {
        Bucket {
            published,
            rate: published,
            // A second's worth at once, as AWS's buckets allow.
            tokens: published,
            refilled: Instant::now(),
        }
    }

    /// Reserves the next slot; returns how long to wait for it.
    fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    fn throttled(&mut self) {
        // Never below a twentieth of the quota: AWS's bucket refills at its
        // own rate whatever ours says.
        self.rate = (self.rate / 2.0).max(self.published / 20.0);
        self.tokens = self.tokens.min(0.0);
    }

    fn answered(&mut self) {
        self.rate = (self.rate + self.published / 20.0).min(self.published);
    }
}

#[derive(Debug)]
pub struct Pacer {
    buckets: Vec<Option<Mutex<Bucket>>>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            buckets: CLASSES
                .iter()
                .map(|q| q.published_rate().map(|r| Mutex::new(Bucket::new(r))))
                .collect(),
        }
    }
}

impl Pacer {
    fn bucket(&self, q: Quota) -> Option<std::sync::MutexGuard<'_, Bucket>> {
        self.buckets[q.index()]
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits for this call's slot in its class, cancellably.
    pub async fn admit(&self, q: Quota, d: &Deadline) -> Result<(), AwsError> {
        let wait = match self.bucket(q) {
            Some(mut b) => b.reserve(Instant::now()),
            None => return Ok(()),
        };
        if wait.is_zero() {
            return Ok(());
        }
        d.sleep(wait).await
    }

    /// Feeds back what AWS answered.
    pub fn observe(&self, q: Quota, result: Result<(), &AwsError>) {
        if let Some(mut b) = self.bucket(q) {
            match result {
                Err(e) if e.is_throttling() => b.throttled(),
                _ => b.answered(),
            }
        }
    }

    /// The class's current rate, for tests and logs.
    pub fn rate(&self, q: Quota) -> Option<f64> {
        self.bucket(q).map(|b| b.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_past_the_bucket_waits_its_turn() {
        let mut b = Bucket::new(15.0);
        let now = Instant::now();
        let waits: Vec<Duration> = (0..30).map(|_| b.reserve(now)).collect();
        assert!(waits[..15].iter().all(|w| w.is_zero()));
        // The 16th waits one slot, the 30th fifteen: in order.
        assert!((waits[15].as_secs_f64() - 1.0 / 15.0).abs() < 1e-6);
        assert!((waits[29].as_secs_f64() - 1.0).abs() < 1e-6);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn throttling_halves_the_rate_and_answers_grow_it_back() {
        let mut b = Bucket::new(15.0);
        b.throttled();
        assert_eq!(b.rate, 7.5);
        for _ in 0..10 {
            b.throttled();
        }
        assert_eq!(b.rate, 0.75, "floor at a twentieth of the quota");
        for _ in 0..100 {
            b.answered();
        }
        assert_eq!(b.rate, 15.0, "never above the quota");
    }

    #[test]
    fn unpublished_quotas_are_not_paced() {
        let p = Pacer::default();
        assert_eq!(p.rate(Quota::Unpublished), None);
        assert_eq!(p.rate(Quota::LambdaGetPolicy), Some(15.0));
    }

    #[tokio::test]
    async fn admission_is_cancellable() {
        let p = Pacer::default();
        let cancel = tokio_util::sync::CancellationToken::new();
        let d = Deadline::new("t", Duration::from_secs(60), cancel.clone());
        for _ in 0..15 {
            p.admit(Quota::LambdaControl, &d)
                .await
                .expect("in the burst");
        }
        cancel.cancel();
        assert_eq!(
            p.admit(Quota::LambdaControl, &d).await,
            Err(AwsError::Cancelled)
        );
    }
}
