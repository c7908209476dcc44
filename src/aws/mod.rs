//! The AWS edge: clients, error classification, retries and waits, and one
//! small module per service with find / create / wait / delete helpers.
//! Nothing outside this module sees an SDK error type.

pub mod arn;
pub mod cache;
pub mod cloudformation;
pub mod endpoint;
pub mod error;
pub mod iam;
pub mod lambda;
pub mod logs;
pub mod pacing;
pub mod retry;
pub mod secretsmanager;
pub mod serverlessrepo;
pub mod sharing;
pub mod sts;
pub mod wait;

pub use error::{AwsError, OptionalExt};
pub use wait::Deadline;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One client per service, built from one `SdkConfig` without any network
/// call.
#[derive(Clone, Debug)]
pub struct Clients {
    pub secretsmanager: aws_sdk_secretsmanager::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub serverlessrepo: aws_sdk_serverlessapplicationrepository::Client,
    pub sts: aws_sdk_sts::Client,
    /// CloudWatch Logs: only to explain a failed rotation with the
    /// function's own error lines.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// The configured region, if any.
    pub region: Option<String>,
    /// Lambda rejects concurrent changes to one function (its policy or its
    /// configuration), so they are serialised per function.
    pub function_locks: FunctionLocks,
    /// Attempts per call (see `retry`); the provider's `max_retries` + 1.
    pub max_attempts: u32,
    /// Reads shared by many resources, coalesced for this process.
    pub reads: Arc<cache::ReadCache>,
    /// Calls paced per quota class, for this process.
    pub pacer: Arc<pacing::Pacer>,
    /// Which secrets rotate with a shared Lambda, for this process.
    pub sharing: Arc<sharing::Sharing>,
    /// Reads of a rotation function's error lines, shared by the rotations
    /// of this process that wait on the same function.
    pub error_reads: Arc<logs::SharedErrorReads>,
}

#[derive(Clone, Debug, Default)]
pub struct FunctionLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl FunctionLocks {
    pub fn lock_for(&self, function: &str) -> Arc<tokio::sync::Mutex<()>> {
        // A poisoned map only means another thread panicked while holding it;
        // the map itself is still usable.
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(function.to_string()).or_default().clone()
    }
}

/// Per-service endpoint overrides from the provider's `endpoints` block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub secretsmanager: Option<String>,
    pub lambda: Option<String>,
    pub iam: Option<String>,
    pub cloudformation: Option<String>,
    pub serverlessrepo: Option<String>,
    pub sts: Option<String>,
    pub logs: Option<String>,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig, endpoints: &Endpoints) -> Clients {
        macro_rules! client {
            ($krate:ident, $endpoint:expr) => {{
                let mut b = $krate::config::Builder::from(config)
                    // Retries are ours, per call site (see `retry`).
                    .retry_config(aws_config::retry::RetryConfig::disabled());
                if let Some(url) = $endpoint {
                    b = b.endpoint_url(url.clone());
                }
                $krate::Client::from_conf(b.build())
            }};
        }
        Clients {
            secretsmanager: client!(aws_sdk_secretsmanager, &endpoints.secretsmanager),
            lambda: client!(aws_sdk_lambda, &endpoints.lambda),
            iam: client!(aws_sdk_iam, &endpoints.iam),
            cloudformation: client!(aws_sdk_cloudformation, &endpoints.cloudformation),
            serverlessrepo: client!(
                aws_sdk_serverlessapplicationrepository,
                &endpoints.serverlessrepo
            ),
            sts: client!(aws_sdk_sts, &endpoints.sts),
            logs: client!(aws_sdk_cloudwatchlogs, &endpoints.logs),
            region: config.region().map(|r| r.to_string()),
            function_locks: FunctionLocks::default(),
            max_attempts: retry::DEFAULT_MAX_ATTEMPTS,
            reads: Arc::default(),
            pacer: Arc::default(),
            sharing: Arc::default(),
            error_reads: Arc::default(),
        }
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Clients {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sends one AWS call under the retry policy of its call site, each
    /// attempt paced in its quota class.
    pub async fn call<T, F, Fut>(
        &self,
        deadline: &Deadline,
        policy: &retry::RetryPolicy,
        quota: pacing::Quota,
        mut f: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        retry::call(deadline, policy, self.max_attempts, || {
            let attempt = f();
            async move {
                self.pacer.admit(quota, deadline).await?;
                let result = attempt.await;
                self.pacer.observe(quota, result.as_ref().map(|_| ()));
                result
            }
        })
        .await
    }
}
