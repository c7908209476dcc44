//! The emulator's under-load layer (`tests/support/aws_under_load.py`) as the
//! AWS SDK for Rust sees it: injected throttles, 500s and 503s arrive in each
//! service's own wire shape, with the error code and the retry
//! classification AWS's own answers get; connection resets lose the call or
//! only its answer; rules pick exactly the requests they name; quotas
//! throttle bursts and let paced calls through; and Lambda refuses a resource
//! policy past 20 KB.
//!
//! Each test starts its own emulator.

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::retry::{RetryConfig, RetryPartition, TokenBucket};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use serde_json::Value;

use crate::emulator_or_skip;
use crate::support::faults::{Fault, FaultRule};
use crate::support::moto::{create_existing_rotation_lambda, create_secret, Emulator, ACCOUNT_ID};
use crate::support::observe::wait_function_settled;

/// A rotation application the repository stand-in serves.
const APPLICATION_ARN: &str =
    "arn:aws:serverlessrepo:us-east-1:297356227824:applications/SecretsManagerRDSMySQLRotationSingleUser";

/// How the SDK's retry strategy classifies a retryable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetryKind {
    Throttling,
    Transient,
}

impl RetryKind {
    fn other(self) -> RetryKind {
        match self {
            RetryKind::Throttling => RetryKind::Transient,
            RetryKind::Transient => RetryKind::Throttling,
        }
    }
}

/// The retry behaviour of a test's client.
#[derive(Clone, Copy, Debug)]
enum Retries {
    /// One attempt: the test sees the first answer as it came.
    Off,
    /// At most one retry, paid from a retry token bucket that can afford it
    /// only when the SDK's own classifiers call the first answer `kind`. A
    /// call that succeeds after one fault proves the classification.
    OnlyIfClassifiedAs(RetryKind),
}

/// Costs no bucket of the tests can pay.
const UNAFFORDABLE: u32 = 1_000;

impl Retries {
    fn retry_config(self) -> RetryConfig {
        match self {
            Retries::Off => RetryConfig::disabled(),
            Retries::OnlyIfClassifiedAs(_) => RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(10)),
        }
    }

    fn retry_partition(self) -> Option<RetryPartition> {
        static PARTITIONS: AtomicUsize = AtomicUsize::new(0);
        let Retries::OnlyIfClassifiedAs(kind) = self else {
            return None;
        };
        let cost = |of: RetryKind| if of == kind { 1 } else { UNAFFORDABLE };
        let bucket = TokenBucket::builder()
            .capacity(10)
            .throttling_retry_cost(cost(RetryKind::Throttling))
            .timeout_retry_cost(cost(RetryKind::Transient))
            .retry_cost(UNAFFORDABLE)
            .build();
        let name = format!("under-load-{}", PARTITIONS.fetch_add(1, Ordering::Relaxed));
        Some(RetryPartition::custom(name).token_bucket(bucket).build())
    }
}

/// A client of one service crate for this emulator with the given retries.
macro_rules! client {
    ($service:ident, $emulator:expr, $retries:expr) => {{
        let retries: Retries = $retries;
        let mut builder = $service::config::Builder::from(&$emulator.sdk_config())
            .retry_config(retries.retry_config());
        if let Some(partition) = retries.retry_partition() {
            builder = builder.retry_partition(partition);
        }
        $service::Client::from_conf(builder.build())
    }};
}

/// What the SDK made of a failed call.
#[derive(Debug)]
struct Refusal {
    status: Option<u16>,
    code: Option<String>,
    message: Option<String>,
    /// The operation error's variant (`TooManyRequestsException`), or
    /// `Unhandled` for a code the service's model does not declare.
    variant: Option<String>,
    dispatch_failed: bool,
    /// The whole error, shown through `Debug` when an assertion fails.
    #[allow(dead_code)]
    debug: String,
}

fn refusal<E: ProvideErrorMetadata + Debug>(error: SdkError<E, HttpResponse>) -> Refusal {
    let variant = error.as_service_error().map(|e| {
        let debug = format!("{e:?}");
        debug
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    Refusal {
        status: error.raw_response().map(|r| r.status().as_u16()),
        code: error.code().map(str::to_owned),
        message: error.message().map(str::to_owned),
        variant,
        dispatch_failed: matches!(
            error,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        debug: format!("{error:?}"),
    }
}

/// One fault and how the service's SDK must see it.
struct Expected {
    fault: Fault,
    status: u16,
    code: &'static str,
    variant: &'static str,
    kind: RetryKind,
}

fn calls(emulator: &Emulator) -> Value {
    emulator.fault_counts()["calls"].clone()
}

/// For each expectation: a rule faulting every request to `call` gives the
/// SDK (retries off) the expected status, code and error variant; with one
/// fault and one retry the SDK retries only when its bucket can pay for a
/// retry of the expected kind, which proves how it classified the answer.
async fn check_fault_answers<F, Fut>(
    emulator: &Emulator,
    service: &str,
    call: &str,
    expectations: &[Expected],
    attempt: F,
) where
    F: Fn(Retries) -> Fut,
    Fut: Future<Output = Result<(), Refusal>>,
{
    let key = format!("{service}:{call}");
    attempt(Retries::Off)
        .await
        .unwrap_or_else(|r| panic!("{key} works without faults: {r:?}"));
    for expected in expectations {
        let what = format!("{key} with {:?}", expected.fault);
        emulator.set_faults(1, &[FaultRule::on(service, call, expected.fault)]);
        let refused = attempt(Retries::Off)
            .await
            .expect_err(&format!("{what} fails"));
        assert_eq!(refused.status, Some(expected.status), "{what}: {refused:?}");
        assert_eq!(
            refused.code.as_deref(),
            Some(expected.code),
            "{what}: {refused:?}"
        );
        assert_eq!(
            refused.variant.as_deref(),
            Some(expected.variant),
            "{what}: {refused:?}"
        );
        assert!(refused.message.is_some(), "{what} says why: {refused:?}");

        emulator.set_faults(1, &[FaultRule::on(service, call, expected.fault).times(1)]);
        attempt(Retries::OnlyIfClassifiedAs(expected.kind))
            .await
            .unwrap_or_else(|r| {
                panic!(
                    "{what}: the SDK does not retry it as a {:?} error: {r:?}",
                    expected.kind
                )
            });
        let counts = &calls(emulator)[&key];
        assert_eq!(counts["seen"], 2, "{what}: one fault, one retry: {counts}");
        assert_eq!(counts["faults"][expected.fault.as_str()], 1, "{counts}");

        emulator.set_faults(1, &[FaultRule::on(service, call, expected.fault).times(1)]);
        let not_retried = attempt(Retries::OnlyIfClassifiedAs(expected.kind.other()))
            .await
            .expect_err(&format!(
                "{what}: the SDK retries it as a {:?} error",
                expected.kind.other()
            ));
        assert_eq!(
            not_retried.code.as_deref(),
            Some(expected.code),
            "{not_retried:?}"
        );
        assert_eq!(calls(emulator)[&key]["seen"], 1, "{what}: no retry");
    }
    emulator.clear_faults();
}

fn throttle(status: u16, code: &'static str, variant: &'static str) -> Expected {
    Expected {
        fault: Fault::Throttle,
        status,
        code,
        variant,
        kind: RetryKind::Throttling,
    }
}

fn server_error(code: &'static str, variant: &'static str) -> Expected {
    Expected {
        fault: Fault::ServerError,
        status: 500,
        code,
        variant,
        kind: RetryKind::Transient,
    }
}

fn unavailable(code: &'static str) -> Expected {
    Expected {
        fault: Fault::Unavailable,
        status: 503,
        code,
        variant: "Unhandled",
        kind: RetryKind::Transient,
    }
}

// ---------------------------------------------------------------------------
// Each service's wire shapes
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn secrets_manager_faults_come_in_aws_json_shape() {
    let em = emulator_or_skip!();
    let attempt = |retries| {
        let client = client!(aws_sdk_secretsmanager, em, retries);
        async move {
            client
                .list_secrets()
                .send()
                .await
                .map(drop)
                .map_err(refusal)
        }
    };
    check_fault_answers(
        &em,
        "secretsmanager",
        "ListSecrets",
        &[
            throttle(400, "ThrottlingException", "Unhandled"),
            server_error("InternalServiceError", "InternalServiceError"),
            unavailable("ServiceUnavailable"),
        ],
        attempt,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_faults_come_in_rest_json_shape() {
    let em = emulator_or_skip!();
    let attempt = |retries| {
        let client = client!(aws_sdk_lambda, em, retries);
        async move {
            client
                .list_functions()
                .send()
                .await
                .map(drop)
                .map_err(refusal)
        }
    };
    check_fault_answers(
        &em,
        "lambda",
        "ListFunctions",
        &[
            throttle(429, "TooManyRequestsException", "TooManyRequestsException"),
            server_error("ServiceException", "ServiceException"),
            unavailable("ServiceUnavailableException"),
        ],
        attempt,
    )
    .await;

    // Lambda says why it throttled and when to come back.
    em.set_faults(
        1,
        &[FaultRule::on("lambda", "ListFunctions", Fault::Throttle)],
    );
    let throttled = client!(aws_sdk_lambda, em, Retries::Off)
        .list_functions()
        .send()
        .await
        .expect_err("throttled")
        .into_service_error();
    let aws_sdk_lambda::operation::list_functions::ListFunctionsError::TooManyRequestsException(
        throttled,
    ) = throttled
    else {
        panic!("not a TooManyRequestsException: {throttled:?}");
    };
    assert_eq!(
        throttled.reason().map(|r| r.as_str()),
        Some("CallerRateLimitExceeded")
    );
    assert_eq!(throttled.retry_after_seconds(), Some("1"));
    assert_eq!(throttled.r#type(), Some("User"));
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_faults_come_in_query_xml_shape() {
    let em = emulator_or_skip!();
    let attempt = |retries| {
        let client = client!(aws_sdk_iam, em, retries);
        async move { client.list_roles().send().await.map(drop).map_err(refusal) }
    };
    check_fault_answers(
        &em,
        "iam",
        "ListRoles",
        &[
            throttle(400, "Throttling", "Unhandled"),
            server_error("ServiceFailure", "ServiceFailureException"),
            unavailable("ServiceUnavailable"),
        ],
        attempt,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudformation_faults_come_in_query_xml_shape() {
    let em = emulator_or_skip!();
    let attempt = |retries| {
        let client = client!(aws_sdk_cloudformation, em, retries);
        async move { client.list_stacks().send().await.map(drop).map_err(refusal) }
    };
    check_fault_answers(
        &em,
        "cloudformation",
        "ListStacks",
        &[
            throttle(400, "Throttling", "Unhandled"),
            server_error("InternalFailure", "Unhandled"),
            unavailable("ServiceUnavailable"),
        ],
        attempt,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serverless_application_repository_faults_come_in_rest_json_shape() {
    let em = emulator_or_skip!();
    let attempt = |retries| {
        let client = client!(aws_sdk_serverlessapplicationrepository, em, retries);
        async move {
            client
                .get_application()
                .application_id(APPLICATION_ARN)
                .send()
                .await
                .map(drop)
                .map_err(refusal)
        }
    };
    check_fault_answers(
        &em,
        "serverlessrepo",
        "GetApplication",
        &[
            throttle(429, "TooManyRequestsException", "TooManyRequestsException"),
            server_error(
                "InternalServerErrorException",
                "InternalServerErrorException",
            ),
            unavailable("ServiceUnavailableException"),
        ],
        attempt,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sts_faults_come_in_query_xml_shape() {
    let em = emulator_or_skip!();
    let attempt = |retries| {
        let client = client!(aws_sdk_sts, em, retries);
        async move {
            client
                .get_caller_identity()
                .send()
                .await
                .map(drop)
                .map_err(refusal)
        }
    };
    check_fault_answers(
        &em,
        "sts",
        "GetCallerIdentity",
        &[
            throttle(400, "Throttling", "Unhandled"),
            server_error("InternalFailure", "Unhandled"),
            unavailable("ServiceUnavailable"),
        ],
        attempt,
    )
    .await;
}

// ---------------------------------------------------------------------------
// Connection resets
// ---------------------------------------------------------------------------

async fn secret_exists(em: &Emulator, name: &str) -> bool {
    match client!(aws_sdk_secretsmanager, em, Retries::Off)
        .describe_secret()
        .secret_id(name)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => panic!("describe {name}: {e:?}"),
    }
}

async fn create_secret_with(em: &Emulator, fault: Fault, name: &str) -> Refusal {
    em.set_faults(1, &[FaultRule::on("secretsmanager", "CreateSecret", fault)]);
    let refused = client!(aws_sdk_secretsmanager, em, Retries::Off)
        .create_secret()
        .name(name)
        .secret_string("value")
        .send()
        .await
        .map_err(refusal)
        .expect_err("the connection was reset");
    assert_eq!(
        calls(em)["secretsmanager:CreateSecret"]["faults"][fault.as_str()],
        1
    );
    em.clear_faults();
    refused
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_before_loses_the_call() {
    let em = emulator_or_skip!();
    let refused = create_secret_with(&em, Fault::ResetBefore, "never-made").await;
    assert!(refused.dispatch_failed, "{refused:?}");
    assert_eq!(refused.status, None, "no answer at all: {refused:?}");
    assert!(!secret_exists(&em, "never-made").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_after_loses_only_the_answer() {
    let em = emulator_or_skip!();
    let refused = create_secret_with(&em, Fault::ResetAfter, "made-unanswered").await;
    assert!(refused.dispatch_failed, "{refused:?}");
    assert_eq!(refused.status, None, "no answer at all: {refused:?}");
    assert!(secret_exists(&em, "made-unanswered").await);
    // The server thread survived the reset and serves the next call.
    create_secret(&em.secretsmanager(), "after-the-reset", "value").await;
}

// ---------------------------------------------------------------------------
// Which requests a rule picks
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_on_one_call_leaves_other_calls_alone() {
    let em = emulator_or_skip!();
    em.set_faults(
        3,
        &[FaultRule::on(
            "secretsmanager",
            "CreateSecret",
            Fault::Throttle,
        )],
    );
    let sm = client!(aws_sdk_secretsmanager, em, Retries::Off);
    let refused = sm
        .create_secret()
        .name("throttled")
        .secret_string("v")
        .send()
        .await
        .map_err(refusal)
        .expect_err("CreateSecret is throttled");
    assert_eq!(refused.code.as_deref(), Some("ThrottlingException"));
    sm.list_secrets().send().await.expect("ListSecrets is not");
    sm.get_random_password()
        .send()
        .await
        .expect("GetRandomPassword is not");
    client!(aws_sdk_lambda, em, Retries::Off)
        .list_functions()
        .send()
        .await
        .expect("another service is not");

    let counts = calls(&em);
    assert_eq!(
        counts["secretsmanager:CreateSecret"]["faults"]["throttle"],
        1
    );
    for untouched in [
        "secretsmanager:ListSecrets",
        "secretsmanager:GetRandomPassword",
        "lambda:ListFunctions",
    ] {
        assert_eq!(counts[untouched]["seen"], 1, "{untouched}: {counts}");
        assert_eq!(
            counts[untouched]["faults"],
            serde_json::json!({}),
            "{counts}"
        );
    }
}

/// `true` for each call that was throttled.
async fn list_secrets_outcomes(em: &Emulator, calls: usize) -> Vec<bool> {
    let sm = client!(aws_sdk_secretsmanager, em, Retries::Off);
    let mut outcomes = Vec::new();
    for _ in 0..calls {
        outcomes.push(match sm.list_secrets().send().await {
            Ok(_) => false,
            Err(e) if e.code() == Some("ThrottlingException") => true,
            Err(e) => panic!("ListSecrets: {e:?}"),
        });
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_lets_requests_through_and_times_bounds_the_faults() {
    let em = emulator_or_skip!();
    em.set_faults(
        1,
        &[
            FaultRule::on("secretsmanager", "ListSecrets", Fault::Throttle)
                .skip(2)
                .times(2),
        ],
    );
    assert_eq!(
        list_secrets_outcomes(&em, 6).await,
        [false, false, true, true, false, false]
    );
    let rule = &em.fault_counts()["rules"][0];
    assert_eq!(
        rule["matched"], 4,
        "a used-up rule no longer matches: {rule}"
    );
    assert_eq!(rule["injected"], 2, "{rule}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_up_rule_gives_way_to_the_next() {
    let em = emulator_or_skip!();
    em.set_faults(
        1,
        &[
            FaultRule::on("secretsmanager", "ListSecrets", Fault::Throttle).times(1),
            FaultRule::on("secretsmanager", "*", Fault::Unavailable),
        ],
    );
    let sm = client!(aws_sdk_secretsmanager, em, Retries::Off);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let refused = sm.list_secrets().send().await.map_err(refusal);
        seen.push(refused.expect_err("faulted").code);
    }
    assert_eq!(
        seen,
        [
            Some("ThrottlingException".to_owned()),
            Some("ServiceUnavailable".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_seed_faults_the_same_requests() {
    let em = emulator_or_skip!();
    let rule = [FaultRule::on("secretsmanager", "ListSecrets", Fault::Throttle).share(0.5)];
    em.set_faults(7, &rule);
    let first = list_secrets_outcomes(&em, 24).await;
    em.set_faults(7, &rule);
    let again = list_secrets_outcomes(&em, 24).await;
    em.set_faults(8, &rule);
    let other_seed = list_secrets_outcomes(&em, 24).await;
    assert_eq!(first, again);
    assert!(
        first.contains(&true) && first.contains(&false),
        "a share of 0.5 faults some requests, not all: {first:?}"
    );
    assert_ne!(first, other_seed, "another seed draws otherwise");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_endpoints_are_never_faulted() {
    let em = emulator_or_skip!();
    em.set_faults(1, &[FaultRule::on("*", "*", Fault::ResetBefore)]);
    let report = em.fault_counts();
    assert_eq!(report["rules"][0]["fault"], "reset_before", "{report}");
    em.set_quota_scale(1.0);
    assert_eq!(em.quota_counts()["scale"], 1.0);
    let (status, _) = em.http("GET", "/moto-api/", "").expect("moto's own API");
    assert_eq!(status, 200, "unsigned requests are not AWS calls");
    client!(aws_sdk_sts, em, Retries::Off)
        .get_caller_identity()
        .send()
        .await
        .expect_err("AWS calls are faulted");
    em.clear_faults();
    client!(aws_sdk_sts, em, Retries::Off)
        .get_caller_identity()
        .send()
        .await
        .expect("no rules, no faults");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_named_by_service_and_operation() {
    let em = emulator_or_skip!();
    let config = em.sdk_config();
    let function = create_existing_rotation_lambda(&config, "named").await;
    let lambda = client!(aws_sdk_lambda, em, Retries::Off);
    lambda
        .get_function()
        .function_name(&function)
        .send()
        .await
        .expect("GetFunction");
    lambda
        .get_function_configuration()
        .function_name("named")
        .send()
        .await
        .expect("GetFunctionConfiguration");
    wait_function_settled(&lambda, &function).await;
    lambda
        .update_function_configuration()
        .function_name("named")
        .timeout(30)
        .send()
        .await
        .expect("UpdateFunctionConfiguration");
    lambda
        .add_permission()
        .function_name(&function)
        .statement_id("sid-1")
        .action("lambda:InvokeFunction")
        .principal("secretsmanager.amazonaws.com")
        .send()
        .await
        .expect("AddPermission");
    lambda
        .get_policy()
        .function_name(&function)
        .send()
        .await
        .expect("GetPolicy");
    lambda
        .remove_permission()
        .function_name(&function)
        .statement_id("sid-1")
        .send()
        .await
        .expect("RemovePermission");
    lambda
        .list_tags()
        .resource(&function)
        .send()
        .await
        .expect("ListTags");
    lambda
        .list_versions_by_function()
        .function_name("named")
        .send()
        .await
        .expect("ListVersionsByFunction");
    lambda
        .delete_function()
        .function_name("named")
        .send()
        .await
        .expect("DeleteFunction");
    let repository = client!(aws_sdk_serverlessapplicationrepository, em, Retries::Off);
    repository
        .get_application()
        .application_id(APPLICATION_ARN)
        .send()
        .await
        .expect("GetApplication");
    repository
        .list_application_versions()
        .application_id(APPLICATION_ARN)
        .send()
        .await
        .expect("ListApplicationVersions");
    client!(aws_sdk_sts, em, Retries::Off)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");

    let counts = calls(&em);
    for key in [
        "iam:CreateRole",
        "lambda:CreateFunction",
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:UpdateFunctionConfiguration",
        "lambda:AddPermission",
        "lambda:GetPolicy",
        "lambda:RemovePermission",
        "lambda:ListTags",
        "lambda:ListVersionsByFunction",
        "lambda:DeleteFunction",
        "serverlessrepo:GetApplication",
        "serverlessrepo:ListApplicationVersions",
        "sts:GetCallerIdentity",
    ] {
        if key == "lambda:GetFunction" {
            // Also the polls while the new function settles.
            assert!(
                counts[key]["seen"].as_u64() >= Some(1),
                "{key} in {counts:#}"
            );
            continue;
        }
        // The existing Lambda comes with the user's own invoke statement.
        let sent = if key == "lambda:AddPermission" { 2 } else { 1 };
        assert_eq!(counts[key]["seen"], sent, "{key} in {counts:#}");
    }
}

// ---------------------------------------------------------------------------
// Quotas
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_scaled_down_quota_throttles_a_burst_of_get_policy_but_not_paced_calls() {
    let em = emulator_or_skip!();
    let function = create_existing_rotation_lambda(&em.sdk_config(), "paced").await;
    let lambda = client!(aws_sdk_lambda, em, Retries::Off);
    lambda
        .add_permission()
        .function_name(&function)
        .statement_id("invoke")
        .action("lambda:InvokeFunction")
        .principal("secretsmanager.amazonaws.com")
        .send()
        .await
        .expect("a policy to read");
    // GetPolicy: 15/s at AWS, 1.5/s here, with a burst of 1.5 requests.
    em.set_quota_scale(0.1);
    let get_policy = || async {
        match lambda.get_policy().function_name(&function).send().await {
            Ok(_) => false,
            Err(e) => {
                let refused = refusal(e);
                assert_eq!(
                    (refused.status, refused.code.as_deref()),
                    (Some(429), Some("TooManyRequestsException")),
                    "{refused:?}"
                );
                true
            }
        }
    };
    let mut burst = Vec::new();
    for _ in 0..8 {
        burst.push(get_policy().await);
    }
    let throttled = burst.iter().filter(|t| **t).count();
    assert!(!burst[0], "a full bucket admits the first call: {burst:?}");
    assert!(throttled >= 5, "a burst of 8 at 1.5/s: {burst:?}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    for call in 0..4 {
        assert!(!get_policy().await, "paced call {call} was throttled");
        tokio::time::sleep(Duration::from_millis(800)).await;
    }

    let quotas = em.quota_counts();
    let class = &quotas["classes"]["lambda:GetPolicy"];
    assert_eq!(class["throttled"], throttled, "{quotas:#}");
    assert_eq!(class["scaled_rate"], 1.5, "{quotas:#}");
    assert_eq!(quotas["classes"]["lambda:GetFunction"]["throttled"], 0);
}

// ---------------------------------------------------------------------------
// Lambda's resource-policy limit
// ---------------------------------------------------------------------------

const POLICY_LIMIT: usize = 20_480;

async fn policy_of(lambda: &aws_sdk_lambda::Client, function: &str) -> (String, String) {
    let policy = lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .expect("GetPolicy");
    (
        policy.policy().unwrap_or_default().to_owned(),
        policy.revision_id().unwrap_or_default().to_owned(),
    )
}

/// The policy's size as AWS counts it: its compact JSON.
fn compact_size(policy: &str) -> usize {
    let document: Value = serde_json::from_str(policy).expect("the policy is JSON");
    document.to_string().len()
}

async fn grant(lambda: &aws_sdk_lambda::Client, function: &str, sid: &str) -> Result<(), Refusal> {
    lambda
        .add_permission()
        .function_name(function)
        .statement_id(sid)
        .action("lambda:InvokeFunction")
        .principal("secretsmanager.amazonaws.com")
        .source_account(ACCOUNT_ID)
        .source_arn(format!(
            "arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:team/application/{sid}-AbCdEf"
        ))
        .send()
        .await
        .map(drop)
        .map_err(refusal)
}

#[tokio::test(flavor = "multi_thread")]
async fn add_permission_past_20_kb_is_refused_and_leaves_the_policy_unchanged() {
    let em = emulator_or_skip!();
    // This test is about the size limit: AddPermission's 15/s quota would
    // only slow it down.
    em.set_quota_scale(0.0);
    let function = create_existing_rotation_lambda(&em.sdk_config(), "crowded").await;
    let lambda = client!(aws_sdk_lambda, em, Retries::Off);
    grant(&lambda, &function, "rotation-0")
        .await
        .expect("the first grant");
    for index in 1..100 {
        let before = policy_of(&lambda, &function).await;
        let sid = format!("rotation-{index}");
        let Err(refused) = grant(&lambda, &function, &sid).await else {
            continue;
        };
        assert_eq!(refused.status, Some(400), "{refused:?}");
        assert_eq!(
            refused.variant.as_deref(),
            Some("PolicyLengthExceededException"),
            "{refused:?}"
        );
        let message = refused.message.clone().unwrap_or_default();
        let final_size: usize = message
            .strip_prefix("The final policy size (")
            .and_then(|rest| rest.split(')').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the message names the size: {message}"));
        assert!(
            message.contains("bigger than the limit (20480)"),
            "{message}"
        );

        let size_before = compact_size(&before.0);
        assert!(size_before <= POLICY_LIMIT, "{size_before}");
        assert!(final_size > POLICY_LIMIT, "{final_size}");
        // One statement of this shape is a few hundred bytes.
        assert!(
            (200..600).contains(&(final_size - size_before)),
            "{size_before} -> {final_size}"
        );
        assert!(
            (40..70).contains(&index),
            "20 KB holds about 50-60 such statements, refused at {index}"
        );
        let after = policy_of(&lambda, &function).await;
        assert_eq!(after, before, "the refused grant left the policy as it was");
        assert!(
            !after.0.contains(&format!("\"{sid}\"")),
            "{sid} was not added"
        );

        // Room made, the same grant fits.
        lambda
            .remove_permission()
            .function_name(&function)
            .statement_id("rotation-0")
            .send()
            .await
            .expect("RemovePermission");
        grant(&lambda, &function, &sid)
            .await
            .expect("the grant fits once a statement is gone");
        assert!(compact_size(&policy_of(&lambda, &function).await.0) <= POLICY_LIMIT);
        return;
    }
    panic!("100 statements never reached 20 KB");
}

async fn change_timeout(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    seconds: i32,
) -> Result<
    aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationOutput,
    Refusal,
> {
    lambda
        .update_function_configuration()
        .function_name(function)
        .timeout(seconds)
        .send()
        .await
        .map_err(refusal)
}

/// Lambda takes a while to create a function and to apply a change to it:
/// the function is `Pending`, then its update `InProgress`, and a change
/// meanwhile is refused with 409 ResourceConflictException, as on AWS.
#[tokio::test(flavor = "multi_thread")]
async fn a_lambda_change_is_refused_while_the_function_is_created_or_updated() {
    use aws_sdk_lambda::types::{LastUpdateStatus, State};
    let em = emulator_or_skip!();
    let lambda = em.lambda();
    let function = create_existing_rotation_lambda(&em.sdk_config(), "settling").await;
    let status = |f: &aws_sdk_lambda::types::FunctionConfiguration| {
        (f.state().cloned(), f.last_update_status().cloned())
    };
    let described = lambda
        .get_function()
        .function_name(&function)
        .send()
        .await
        .expect("GetFunction");
    assert_eq!(
        described.configuration().map(status),
        Some((Some(State::Pending), None)),
        "right after CreateFunction"
    );
    let refused = change_timeout(&lambda, &function, 31)
        .await
        .expect_err("a change while the function is created");
    assert_eq!(refused.status, Some(409), "{refused:?}");
    assert_eq!(refused.code.as_deref(), Some("ResourceConflictException"));
    assert_eq!(
        refused.message.as_deref(),
        Some("The operation cannot be performed at this time. The function is currently in the following state: Pending")
    );

    wait_function_settled(&lambda, &function).await;
    let changed = change_timeout(&lambda, &function, 31)
        .await
        .expect("a change once the function is active");
    assert_eq!(
        (
            changed.state().cloned(),
            changed.last_update_status().cloned()
        ),
        (Some(State::Active), Some(LastUpdateStatus::InProgress)),
        "UpdateFunctionConfiguration's answer"
    );
    let refused = change_timeout(&lambda, &function, 32)
        .await
        .expect_err("a second change while the first runs");
    assert_eq!(refused.status, Some(409), "{refused:?}");
    assert_eq!(refused.code.as_deref(), Some("ResourceConflictException"));
    assert_eq!(
        refused.message,
        Some(format!(
            "The operation cannot be performed at this time. An update is in progress for resource: {function}"
        ))
    );

    wait_function_settled(&lambda, &function).await;
    let settled = lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .expect("GetFunctionConfiguration");
    assert_eq!(
        (settled.last_update_status().cloned(), settled.timeout()),
        (Some(LastUpdateStatus::Successful), Some(31)),
        "the first change applied, the refused one not"
    );
}
