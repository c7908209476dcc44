//! Who else rotates with a shared Lambda, as one provider process knows it.
//!
//! Rotations that share an existing Lambda share what was done to it: the
//! account-wide invoke statement and its VPC placement. Only the last of
//! them may undo those, so each destroy asks whether another secret still
//! rotates with the function. Secrets Manager can answer only by listing
//! secrets, and `ListSecrets` is eventually consistent: AWS documents that
//! it may not reflect changes from the last five minutes. Taken at its
//! word, a destroy of fifty rotations that share one Lambda would see the
//! other forty-nine still rotating in every list and leave the statement
//! behind; and each of them paging through every secret of the account is
//! quadratic in `ListSecrets` calls, a quota of 100 per second shared with
//! every other tool in the account.
//!
//! So, per function and per process:
//! - a secret this process is putting on the function joins it before its
//!   statement is looked at, and counts as a user without any call (two
//!   rotations of one apply, one added and one removed, do not race);
//! - otherwise the listed candidates are each confirmed with
//!   `DescribeSecret`, which AWS names as the way to current information,
//!   and the answer is the first confirmed one;
//! - the list is read once and reused for five minutes (no staler than
//!   `ListSecrets` itself may be), and a candidate found not to rotate with
//!   the function, or that this process turned off, is not asked again.
//!
//! The decision and the undo it allows happen under one lock per function,
//! so that no secret joins between them. What stays open is a rotation
//! turned on by another process in the last few minutes, which the list
//! may not show yet: its next plan shows the statement missing, and the
//! apply puts it back.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

use super::cache::function_key;
use super::error::AwsError;
use super::secretsmanager as sm;
use super::wait::Deadline;
use super::Clients;

/// How long one listing of the secrets that rotate with a function is
/// reused: as long as `ListSecrets` may lag behind.
pub const LISTING_REUSED_FOR: Duration = Duration::from_secs(300);

/// Why a shared change stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StillUsed {
    /// A rotation this process is applying uses the function.
    ByThisRun(String),
    /// Secrets Manager says the secret rotates with the function.
    ByRotatingSecret(String),
}

impl std::fmt::Display for StillUsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StillUsed::ByThisRun(arn) => write!(f, "{arn} is being set up to rotate with it"),
            StillUsed::ByRotatingSecret(arn) => write!(f, "{arn} rotates with it"),
        }
    }
}

#[derive(Default)]
struct FunctionUse {
    /// Secrets this process is putting on the function.
    joined: HashSet<String>,
    /// Secrets known not to rotate with it: turned off here, or found so.
    not_using: HashSet<String>,
    /// Secrets the last listing showed rotating with it, and when.
    listed: Option<(Instant, Vec<String>)>,
}

/// Per function (by `function_key`), behind its own lock.
#[derive(Default)]
pub struct Sharing {
    functions: Mutex<HashMap<String, Arc<AsyncMutex<FunctionUse>>>>,
}

impl std::fmt::Debug for Sharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sharing")
    }
}

impl Sharing {
    fn of(&self, function: &str) -> Arc<AsyncMutex<FunctionUse>> {
        // A poisoned map only means a thread panicked while holding it; the
        // entries are still whole.
        let mut map = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(function_key(function)).or_default().clone()
    }

    /// `secret_arn` is about to rotate with `function`. Waits for a
    /// decision in progress on the function, so that a shared statement
    /// being removed is seen as gone by the caller's next read.
    pub async fn join(
        &self,
        d: &Deadline,
        function: &str,
        secret_arn: &str,
    ) -> Result<(), AwsError> {
        let entry = self.of(function);
        let mut us = d.bound(entry.lock()).await?;
        us.not_using.remove(secret_arn);
        us.joined.insert(secret_arn.to_string());
        Ok(())
    }

    /// The secrets this process put on `function` and has not turned off.
    pub async fn joined(&self, d: &Deadline, function: &str) -> Result<Vec<String>, AwsError> {
        let entry = self.of(function);
        let us = d.bound(entry.lock()).await?;
        Ok(us.joined.iter().cloned().collect())
    }

    /// `secret_arn` no longer rotates with `function`: this process turned
    /// its rotation off.
    pub async fn leave(
        &self,
        d: &Deadline,
        function: &str,
        secret_arn: &str,
    ) -> Result<(), AwsError> {
        let entry = self.of(function);
        let mut us = d.bound(entry.lock()).await?;
        us.joined.remove(secret_arn);
        us.not_using.insert(secret_arn.to_string());
        Ok(())
    }

    /// Runs `undo` when no secret other than `except` uses `function`;
    /// otherwise says which one does, and leaves the function alone.
    pub async fn undo_unless_used<F, Fut>(
        &self,
        c: &Clients,
        d: &Deadline,
        function: &str,
        except: &str,
        undo: F,
    ) -> Result<Option<StillUsed>, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), AwsError>>,
    {
        let entry = self.of(function);
        // The decision holds the function's entry while it lists the users:
        // concurrent destroys of one Lambda's rotations then share one
        // listing (ListSecrets is slow and rate-limited). A create joining
        // meanwhile waits, but no longer than its own stop or deadline.
        let mut us = d.bound(entry.lock()).await?;
        us.joined.remove(except);
        if let Some(user) = us.joined.iter().next() {
            return Ok(Some(StillUsed::ByThisRun(user.clone())));
        }
        if let Some(user) = confirmed_user(c, d, function, except, &mut us).await? {
            return Ok(Some(StillUsed::ByRotatingSecret(user)));
        }
        undo().await?;
        Ok(None)
    }
}

/// The first listed secret that `DescribeSecret` confirms still rotates
/// with `function`.
async fn confirmed_user(
    c: &Clients,
    d: &Deadline,
    function: &str,
    except: &str,
    us: &mut FunctionUse,
) -> Result<Option<String>, AwsError> {
    let fresh = us
        .listed
        .as_ref()
        .is_some_and(|(at, _)| at.elapsed() < LISTING_REUSED_FOR);
    if !fresh {
        let listed = sm::secrets_rotating_with(c, d, function).await?;
        us.listed = Some((Instant::now(), listed));
    }
    let candidates: Vec<String> = us
        .listed
        .as_ref()
        .map(|(_, l)| l.clone())
        .unwrap_or_default();
    let key = function_key(function);
    for arn in candidates {
        if arn == except || us.not_using.contains(&arn) {
            continue;
        }
        let rotates_with_it = sm::find_secret(c, d, &arn).await?.is_some_and(|s| {
            !s.scheduled_for_deletion
                && s.rotation_enabled
                && s.rotation_lambda_arn.as_deref().map(function_key) == Some(key.clone())
        });
        if rotates_with_it {
            return Ok(Some(arn));
        }
        us.not_using.insert(arn);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio_util::sync::CancellationToken;

    const LAMBDA: &str = "arn:aws:lambda:eu-west-1:111122223333:function:rotator";

    /// Clients with no endpoint behind a stopped deadline: any AWS call
    /// fails at once with "cancelled", so a test that passes made none.
    fn offline() -> (Clients, Deadline) {
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let cancel = CancellationToken::new();
        cancel.cancel();
        (
            Clients::new(&config, &Default::default()),
            Deadline::new("destroy", Duration::from_secs(60), cancel),
        )
    }

    impl Sharing {
        async fn seed_listing(&self, function: &str, secrets: &[&str]) {
            let entry = self.of(function);
            entry.lock().await.listed = Some((
                Instant::now(),
                secrets.iter().map(|s| s.to_string()).collect(),
            ));
        }
    }

    #[tokio::test]
    async fn a_secret_joined_in_this_process_keeps_the_function_without_a_call() {
        let (c, d) = offline();
        let undone = AtomicU32::new(0);
        c.sharing.join(&d, LAMBDA, "b").await.expect("joined");
        // The same function by name is the same entry.
        let used = c
            .sharing
            .undo_unless_used(&c, &d, "rotator", "a", || async {
                undone.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert_eq!(used, Ok(Some(StillUsed::ByThisRun("b".into()))));
        assert_eq!(undone.load(Ordering::SeqCst), 0);
    }

    /// A create joining a function while a destroy's decision on it holds
    /// the function (an undo that takes long) waits only until it is
    /// stopped.
    #[tokio::test]
    async fn a_join_waiting_for_a_decision_ends_with_its_stop() {
        let (c, d) = offline();
        let c = std::sync::Arc::new(c);
        c.sharing.seed_listing(LAMBDA, &[]).await;
        let deciding = {
            let (c, d) = (c.clone(), d.clone());
            tokio::spawn(async move {
                c.sharing
                    .undo_unless_used(&c, &d, LAMBDA, "a", || async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stop = CancellationToken::new();
        let joining = Deadline::new("create", Duration::from_secs(60), stop.clone());
        let join = c.sharing.join(&joining, LAMBDA, "b");
        stop.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), join).await;
        assert_eq!(outcome, Ok(Err(AwsError::Cancelled)));
        deciding.abort();
    }

    #[tokio::test]
    async fn the_deciding_secret_and_those_that_left_do_not_count() {
        let (c, d) = offline();
        let undone = AtomicU32::new(0);
        c.sharing.join(&d, LAMBDA, "a").await.expect("joined");
        c.sharing.join(&d, LAMBDA, "b").await.expect("joined");
        c.sharing.leave(&d, LAMBDA, "b").await.expect("left");
        // Listed as rotating, but this process turned b off and a decides.
        c.sharing.seed_listing(LAMBDA, &["a", "b"]).await;
        let used = c
            .sharing
            .undo_unless_used(&c, &d, LAMBDA, "a", || async {
                undone.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert_eq!(used, Ok(None));
        assert_eq!(undone.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_listed_candidate_is_confirmed_before_it_counts() {
        let (c, d) = offline();
        c.sharing.seed_listing(LAMBDA, &["c"]).await;
        // Confirming c needs DescribeSecret, which the stopped deadline
        // refuses: the decision fails instead of guessing, and nothing is
        // undone.
        let used = c
            .sharing
            .undo_unless_used(&c, &d, LAMBDA, "a", || async {
                Err(AwsError::Failed("undone without confirming c".into()))
            })
            .await;
        let refused = matches!(&used, Err(e) if e.to_string().contains("cancel"));
        assert!(refused, "{used:?}");
    }
}
