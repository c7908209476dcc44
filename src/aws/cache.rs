//! Reads coalesced within one provider process.
//!
//! Terraform starts a provider process for each operation (a refresh and
//! plan, an apply), and many resources of one operation often look at the
//! same object: fifty secrets rotated by one Lambda read that Lambda's
//! configuration and policy fifty times, under Lambda's smallest quotas
//! (`GetPolicy` 15 requests per second per account). Here the first read of
//! an object is sent, concurrent reads of the same object wait for it
//! (single flight), and later reads reuse its answer until this process
//! writes to the object, which forgets it. A failed read is not kept: the
//! next caller sends it again.
//!
//! Changes made by others during one operation are not seen by the reads
//! that follow within it, as in any snapshot a plan is made from; the next
//! operation (a new process) reads afresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::error::AwsError;
use super::lambda::{FunctionInfo, FunctionPolicy};
use super::wait::Deadline;

/// One kind of answer, by object.
pub struct Coalesced<T> {
    entries: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
}

impl<T> Default for Coalesced<T> {
    fn default() -> Self {
        Coalesced {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Coalesced<T> {
    fn cell(&self, key: &str) -> Arc<OnceCell<T>> {
        // A poisoned map only means a thread panicked while holding it; the
        // entries are still whole.
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.entry(key.to_string()).or_default().clone()
    }

    /// The answer for `key`: the one already read, the one being read, or a
    /// new read with `fetch`. Waiting for another operation's read ends with
    /// this operation's stop or deadline (`d`), not the other's.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        d: &Deadline,
        key: &str,
        fetch: F,
    ) -> Result<T, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let cell = self.cell(key);
        d.bound(cell.get_or_try_init(fetch)).await?.cloned()
    }

    /// Forgets `key`: the next read goes to AWS.
    pub fn forget(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(key);
    }
}

/// A Lambda function as a cache key: its name, whether it was given by
/// name or by ARN (one provider process speaks to one account and region).
pub fn function_key(function: &str) -> String {
    match function.strip_prefix("arn:") {
        Some(rest) => {
            // arn:partition:lambda:region:account:function:name[:qualifier]
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.iter().position(|p| *p == "function") {
                Some(i) => parts[i + 1..].join(":"),
                None => function.to_string(),
            }
        }
        None => function.to_string(),
    }
}

/// The reads worth coalescing: those many resources share.
#[derive(Default)]
pub struct ReadCache {
    pub functions: Coalesced<Option<FunctionInfo>>,
    pub policies: Coalesced<FunctionPolicy>,
}

impl ReadCache {
    /// After any change this process makes to the function.
    pub fn forget_function(&self, function: &str) {
        let key = function_key(function);
        self.functions.forget(&key);
        self.policies.forget(&key);
    }
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadCache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    fn open() -> Deadline {
        Deadline::new("read", Duration::from_secs(60), CancellationToken::new())
    }

    #[tokio::test]
    async fn concurrent_reads_of_one_object_send_one_request() {
        let cache: Arc<Coalesced<u32>> = Arc::default();
        let sent = Arc::new(AtomicU32::new(0));
        let reads = (0..50).map(|_| {
            let cache = cache.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                cache
                    .get_or_fetch(&open(), "f", || async {
                        sent.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(7)
                    })
                    .await
            })
        });
        for r in futures::future::join_all(reads).await {
            assert_eq!(r.expect("joined"), Ok(7));
        }
        assert_eq!(sent.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_write_forgets_and_a_failure_is_not_kept() {
        let cache: Coalesced<u32> = Coalesced::default();
        let sent = AtomicU32::new(0);
        let fetch = || async {
            let n = sent.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                Err(AwsError::Failed("throttled".into()))
            } else {
                Ok(n)
            }
        };
        assert!(cache.get_or_fetch(&open(), "f", fetch).await.is_err());
        assert_eq!(cache.get_or_fetch(&open(), "f", fetch).await, Ok(1));
        assert_eq!(cache.get_or_fetch(&open(), "f", fetch).await, Ok(1));
        cache.forget("f");
        assert_eq!(cache.get_or_fetch(&open(), "f", fetch).await, Ok(2));
        assert_eq!(cache.get_or_fetch(&open(), "g", fetch).await, Ok(3));
    }

    /// A read another operation is making holds this one only until this
    /// one is stopped: Ctrl-C is not stuck behind someone else's slow read.
    #[tokio::test]
    async fn waiting_for_another_operations_read_ends_with_this_operations_stop() {
        let cache: Arc<Coalesced<u32>> = Arc::default();
        let slow = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_fetch(&open(), "f", || async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(1)
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stop = CancellationToken::new();
        let waiter = Deadline::new("read", Duration::from_secs(60), stop.clone());
        let waiting = cache.get_or_fetch(&waiter, "f", || async { Ok(2) });
        stop.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(outcome, Ok(Err(AwsError::Cancelled)));
        slow.abort();
    }

    #[test]
    fn a_function_is_one_key_by_name_or_arn() {
        assert_eq!(function_key("rotator"), "rotator");
        assert_eq!(
            function_key("arn:aws:lambda:us-east-1:123456789012:function:rotator"),
            "rotator"
        );
        assert_eq!(
            function_key("arn:aws:lambda:us-east-1:123456789012:function:rotator:live"),
            "rotator:live"
        );
    }
}
