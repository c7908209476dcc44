//! The emulator runs rotation functions as AWS does
//! (`tests/support/lambda_runtime.py`, `function_iam.py` and the
//! `RotateSecret` correction in `emulator.py`): a function's own code runs
//! on every invocation, with its role's credentials, its timeout and
//! loopback-only network; `RotateSecret` answers at once and runs the four
//! steps in the background; the function's calls are checked against its
//! role's policies; its output lands in CloudWatch Logs.
//!
//! The functions here are small ones written for these tests (a zip made
//! with the venv's Python), so that each test pins one behaviour.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, InvocationType, LogType, Runtime};
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use base64::Engine;
use serde_json::Value;

use crate::emulator_or_skip;
use crate::support::moto::{venv_python, Emulator, ACCOUNT_ID};

/// A rotation function that works without a database: createSecret gives
/// the token's version a value, finishSecret moves AWSCURRENT onto it.
/// Every event is printed, so the tests read what the function received.
const ROTATION_FUNCTION: &str = r#"
import json
import os
import time

import boto3


def lambda_handler(event, context):
    print("EVENT " + json.dumps(event))
    client = boto3.client("secretsmanager", endpoint_url=os.environ.get("SECRETS_MANAGER_ENDPOINT"))
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    if step == "createSecret":
        if os.environ.get("BROKEN") == "yes":
            settings = {}
            return settings["masterarn"]
        time.sleep(float(os.environ.get("CREATE_SECONDS", "0")))
        client.put_secret_value(
            SecretId=arn, ClientRequestToken=token, SecretString="rotated-" + token, VersionStages=["AWSPENDING"]
        )
    elif step == "testSecret":
        pending = client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        print("TESTED " + pending["SecretString"])
    elif step == "finishSecret":
        stages = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
        current = next(version for version, labels in stages.items() if "AWSCURRENT" in labels)
        client.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
        )
"#;

/// What a rotation function's role is given by AWS's templates, on every secret.
const ROTATION_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:DescribeSecret","secretsmanager:GetSecretValue","secretsmanager:PutSecretValue","secretsmanager:UpdateSecretVersionStage"],"Resource":"*"}]}"#;

/// A zip holding `lambda_function.py` with `source`.
fn zip_of(source: &str) -> Vec<u8> {
    let mut python = Command::new(venv_python())
        .args([
            "-c",
            "import io, sys, zipfile\n\
             archive = io.BytesIO()\n\
             with zipfile.ZipFile(archive, 'w') as z:\n    z.writestr('lambda_function.py', sys.stdin.read())\n\
             sys.stdout.buffer.write(archive.getvalue())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the venv's Python zips the function");
    python
        .stdin
        .take()
        .expect("stdin was piped")
        .write_all(source.as_bytes())
        .expect("write the function's source");
    let output = python.wait_with_output().expect("zip the function");
    assert!(output.status.success(), "zipping failed");
    output.stdout
}

async fn create_role(emulator: &Emulator, name: &str, policy: Option<&str>) -> String {
    let iam = emulator.iam();
    let role = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("create the role");
    if let Some(policy) = policy {
        iam.put_role_policy()
            .role_name(name)
            .policy_name("function")
            .policy_document(policy)
            .send()
            .await
            .expect("put the role's policy");
    }
    role.role()
        .expect("CreateRole answers the role")
        .arn()
        .to_owned()
}

/// Creates a Python function from `source`; returns its ARN.
async fn create_function(
    emulator: &Emulator,
    name: &str,
    role_arn: &str,
    source: &str,
    timeout_seconds: i32,
    variables: &[(&str, &str)],
) -> String {
    let mut environment = Environment::builder();
    for (key, value) in variables {
        environment = environment.variables(*key, *value);
    }
    emulator
        .lambda()
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python312)
        .handler("lambda_function.lambda_handler")
        .role(role_arn)
        .timeout(timeout_seconds)
        .environment(environment.build())
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(source)))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create function {name}: {e:?}"))
        .function_arn()
        .expect("CreateFunction answers the ARN")
        .to_owned()
}

/// The permission the provider adds: Secrets Manager, for this secret only.
async fn let_secrets_manager_invoke(emulator: &Emulator, function: &str, secret_arn: &str) {
    emulator
        .lambda()
        .add_permission()
        .function_name(function)
        .statement_id(format!("secretsmanager-{}", uuid::Uuid::new_v4().simple()))
        .action("lambda:InvokeFunction")
        .principal("secretsmanager.amazonaws.com")
        .source_arn(secret_arn)
        .source_account(ACCOUNT_ID)
        .send()
        .await
        .expect("add the invoke permission");
}

async fn create_secret(emulator: &Emulator, name: &str, value: &str) -> String {
    emulator
        .secretsmanager()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create the secret")
        .arn()
        .expect("CreateSecret answers the ARN")
        .to_owned()
}

/// A secret with the rotation function above, allowed to rotate it.
async fn rotatable_secret(
    emulator: &Emulator,
    name: &str,
    variables: &[(&str, &str)],
) -> (String, String) {
    let secret_arn = create_secret(emulator, name, "original").await;
    let role = create_role(emulator, &format!("{name}-role"), Some(ROTATION_POLICY)).await;
    let function = create_function(
        emulator,
        &format!("{name}-rotation"),
        &role,
        ROTATION_FUNCTION,
        10,
        variables,
    )
    .await;
    let_secrets_manager_invoke(emulator, &function, &secret_arn).await;
    (secret_arn, function)
}

async fn stages(emulator: &Emulator, secret: &str) -> HashMap<String, Vec<String>> {
    emulator
        .secretsmanager()
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .expect("describe the secret")
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default()
}

fn version_with(stages: &HashMap<String, Vec<String>>, label: &str) -> Option<String> {
    stages
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(id, _)| id.clone())
}

/// The function's CloudWatch Logs events matching `pattern`, oldest first.
async fn log_events(emulator: &Emulator, function: &str, pattern: &str) -> Vec<String> {
    let name = function.rsplit(':').next().unwrap_or(function);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&emulator.sdk_config());
    match logs
        .filter_log_events()
        .log_group_name(format!("/aws/lambda/{name}"))
        .filter_pattern(pattern)
        .send()
        .await
    {
        Ok(found) => found
            .events()
            .iter()
            .filter_map(|e| e.message().map(str::to_owned))
            .collect(),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Vec::new(),
        Err(e) => panic!("filter the logs of {name}: {e:?}"),
    }
}

/// Polls `check` until it answers Some, for at most `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < limit, "{what}: not after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events the function received, as it printed them.
async fn received_events(emulator: &Emulator, function: &str) -> Vec<Value> {
    log_events(emulator, function, "EVENT")
        .await
        .iter()
        .filter_map(|m| m.strip_prefix("EVENT "))
        .map(|json| serde_json::from_str(json).expect("the function prints JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_runs_the_four_steps_in_the_background_with_the_secret_arn() {
    let emulator = emulator_or_skip!();
    let (secret_arn, function) =
        rotatable_secret(&emulator, "app-db", &[("CREATE_SECONDS", "1")]).await;
    let client = emulator.secretsmanager();
    let original =
        version_with(&stages(&emulator, "app-db").await, "AWSCURRENT").expect("a current version");

    let asked = Instant::now();
    let answer = client
        .rotate_secret()
        .secret_id("app-db")
        .rotation_lambda_arn(&function)
        .send()
        .await
        .expect("RotateSecret starts the rotation");
    let answered_after = asked.elapsed();
    let token = answer
        .version_id()
        .expect("RotateSecret answers the new version")
        .to_owned();
    assert!(
        answered_after < Duration::from_millis(900),
        "RotateSecret waited for the rotation ({answered_after:?}); createSecret alone takes 1 s"
    );
    let labels = stages(&emulator, "app-db").await;
    assert_eq!(
        labels.get(&token),
        Some(&vec!["AWSPENDING".to_owned()]),
        "{labels:?}"
    );

    eventually(
        "AWSCURRENT moves to the new version",
        Duration::from_secs(20),
        || async {
            (version_with(&stages(&emulator, "app-db").await, "AWSCURRENT").as_deref()
                == Some(token.as_str()))
            .then_some(())
        },
    )
    .await;
    let labels = stages(&emulator, "app-db").await;
    assert_eq!(
        version_with(&labels, "AWSPREVIOUS").as_deref(),
        Some(original.as_str()),
        "{labels:?}"
    );
    let current = client
        .get_secret_value()
        .secret_id("app-db")
        .send()
        .await
        .expect("read the secret");
    assert_eq!(
        current.secret_string(),
        Some(format!("rotated-{token}").as_str())
    );
    let previous = client
        .get_secret_value()
        .secret_id("app-db")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("read the previous value");
    assert_eq!(previous.secret_string(), Some("original"));

    assert_eq!(
        log_events(&emulator, &function, "TESTED").await,
        [format!("TESTED rotated-{token}")],
        "testSecret read the new value on AWSPENDING"
    );
    let events = received_events(&emulator, &function).await;
    let steps: Vec<&str> = events.iter().filter_map(|e| e["Step"].as_str()).collect();
    assert_eq!(
        steps,
        ["createSecret", "setSecret", "testSecret", "finishSecret"]
    );
    let mut rotation_tokens = Vec::new();
    for event in &events {
        assert_eq!(event["SecretId"], secret_arn.as_str(), "{event}");
        assert_eq!(event["ClientRequestToken"], token.as_str(), "{event}");
        let rotation_token = event["RotationToken"]
            .as_str()
            .expect("each step has a RotationToken");
        assert!(uuid::Uuid::parse_str(rotation_token).is_ok(), "{event}");
        rotation_tokens.push(rotation_token.to_owned());
    }
    rotation_tokens.dedup();
    assert_eq!(rotation_tokens.len(), 4, "a fresh RotationToken per step");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_later_tests_a_copy_of_the_current_value_then_removes_its_awspending() {
    let emulator = emulator_or_skip!();
    let (_, function) = rotatable_secret(&emulator, "later-db", &[]).await;
    let client = emulator.secretsmanager();
    let original = version_with(&stages(&emulator, "later-db").await, "AWSCURRENT")
        .expect("a current version");
    let token = client
        .rotate_secret()
        .secret_id("later-db")
        .rotation_lambda_arn(&function)
        .rotate_immediately(false)
        .send()
        .await
        .expect("RotateSecret with RotateImmediately=false")
        .version_id()
        .expect("a version id")
        .to_owned();

    let tested = eventually("testSecret runs", Duration::from_secs(20), || async {
        log_events(&emulator, &function, "TESTED")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        tested, "TESTED original",
        "testSecret read a copy of AWSCURRENT on AWSPENDING"
    );
    let labels = eventually("AWSPENDING is removed", Duration::from_secs(5), || async {
        let labels = stages(&emulator, "later-db").await;
        version_with(&labels, "AWSPENDING")
            .is_none()
            .then_some(labels)
    })
    .await;
    assert_eq!(
        version_with(&labels, "AWSCURRENT").as_deref(),
        Some(original.as_str()),
        "{labels:?}"
    );
    assert!(
        labels.get(&token).is_none_or(|l| l.is_empty()),
        "{labels:?}"
    );
    let steps: Vec<String> = received_events(&emulator, &function)
        .await
        .iter()
        .filter_map(|e| e["Step"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(steps, ["testSecret"], "only testSecret runs now");
    let described = client
        .describe_secret()
        .secret_id("later-db")
        .send()
        .await
        .expect("describe");
    assert_eq!(described.rotation_enabled(), Some(true));
    client
        .rotate_secret()
        .secret_id("later-db")
        .send()
        .await
        .expect("the test left no unfinished rotation behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_leaves_awspending_and_the_next_rotation_is_refused() {
    let emulator = emulator_or_skip!();
    let (_, function) = rotatable_secret(&emulator, "broken-db", &[("BROKEN", "yes")]).await;
    let client = emulator.secretsmanager();
    let token = client
        .rotate_secret()
        .secret_id("broken-db")
        .rotation_lambda_arn(&function)
        .send()
        .await
        .expect("RotateSecret starts the rotation")
        .version_id()
        .expect("a version id")
        .to_owned();

    let error = eventually(
        "the error reaches the function's logs",
        Duration::from_secs(20),
        || async {
            log_events(&emulator, &function, "\"[ERROR]\"")
                .await
                .into_iter()
                .next()
        },
    )
    .await;
    assert!(
        error.starts_with(
            "[ERROR] KeyError: 'masterarn'\nTraceback (most recent call last):\n  File "
        ),
        "one event with the error and its traceback: {error:?}"
    );
    // The rotation stopped at createSecret: no later step ran.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let steps: Vec<String> = received_events(&emulator, &function)
        .await
        .iter()
        .filter_map(|e| e["Step"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(steps, ["createSecret"]);
    let labels = stages(&emulator, "broken-db").await;
    assert_eq!(
        labels.get(&token),
        Some(&vec!["AWSPENDING".to_owned()]),
        "{labels:?}"
    );

    let refused = client
        .rotate_secret()
        .secret_id("broken-db")
        .send()
        .await
        .expect_err("a second rotation while the first is unfinished");
    assert_eq!(refused.code(), Some("InvalidRequestException"));
    assert_eq!(
        refused.message(),
        Some("A previous rotation isn't complete. That rotation will be continued.")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_token_starts_no_second_rotation() {
    let emulator = emulator_or_skip!();
    let (_, function) = rotatable_secret(&emulator, "idempotent-db", &[]).await;
    let client = emulator.secretsmanager();
    let token = uuid::Uuid::new_v4().to_string();
    let rotate = || {
        client
            .rotate_secret()
            .secret_id("idempotent-db")
            .rotation_lambda_arn(&function)
            .client_request_token(&token)
            .send()
    };
    let first = rotate().await.expect("the first RotateSecret");
    assert_eq!(first.version_id(), Some(token.as_str()));
    eventually("the rotation finishes", Duration::from_secs(20), || async {
        (version_with(&stages(&emulator, "idempotent-db").await, "AWSCURRENT").as_deref()
            == Some(token.as_str()))
        .then_some(())
    })
    .await;

    let again = rotate()
        .await
        .expect("the same token is answered, not refused");
    assert_eq!(again.version_id(), Some(token.as_str()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let starts = log_events(&emulator, &function, "START").await.len();
    assert_eq!(starts, 4, "one rotation, four invocations");
    assert_eq!(
        stages(&emulator, "idempotent-db").await.len(),
        2,
        "no third version"
    );
}

const SLEEPING_FUNCTION: &str = r#"
import time


def lambda_handler(event, context):
    print("sleeping", event["seconds"])
    time.sleep(event["seconds"])
    return {"slept": event["seconds"]}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_function_past_its_timeout_is_killed_with_the_timeout_line() {
    let emulator = emulator_or_skip!();
    let role = create_role(&emulator, "sleeper-role", None).await;
    create_function(&emulator, "sleeper", &role, SLEEPING_FUNCTION, 2, &[]).await;
    let lambda = emulator.lambda();
    let invoke = |seconds: u32| {
        lambda
            .invoke()
            .function_name("sleeper")
            .log_type(LogType::Tail)
            .payload(Blob::new(format!(r#"{{"seconds": {seconds}}}"#)))
            .send()
    };

    let started = Instant::now();
    let answer = invoke(10).await.expect("Invoke answers");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "killed at its 2 s timeout, not after the 10 s sleep: {took:?}"
    );
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let tail = decode_tail(answer.log_result());
    let timeout_line = tail
        .lines()
        .find(|l| l.ends_with(" Task timed out after 2.00 seconds"))
        .unwrap_or_else(|| panic!("no timeout line in {tail}"));
    let (stamp, rest) = timeout_line.split_once(' ').expect("a timestamp first");
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "an ISO timestamp: {stamp}"
    );
    assert!(
        rest.starts_with(&request_id_of(&tail)),
        "then the request id: {timeout_line}"
    );
    assert!(
        tail.contains("sleeping 10"),
        "what it printed before the kill is kept: {tail}"
    );

    // The killed worker is replaced: the next invocation runs.
    let next = invoke(0).await.expect("Invoke answers");
    assert_eq!(next.function_error(), None);
    let body: Value =
        serde_json::from_slice(next.payload().expect("a body").as_ref()).expect("JSON");
    assert_eq!(body["slept"], 0);
}

fn decode_tail(log_result: Option<&str>) -> String {
    let encoded = log_result.expect("LogType=Tail gives the log's tail");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

fn request_id_of(tail: &str) -> String {
    tail.lines()
        .find_map(|l| l.strip_prefix("START RequestId: "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no START line in {tail}"))
        .to_owned()
}

const FAILING_FUNCTION: &str = r#"
def lambda_handler(event, context):
    print("reading the master secret")
    settings = {}
    return settings["masterarn"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn invoke_returns_the_function_error_and_tail_log() {
    let emulator = emulator_or_skip!();
    let role = create_role(&emulator, "failing-role", None).await;
    create_function(&emulator, "failing", &role, FAILING_FUNCTION, 3, &[]).await;
    let lambda = emulator.lambda();

    let answer = lambda
        .invoke()
        .function_name("failing")
        .log_type(LogType::Tail)
        .payload(Blob::new("{}"))
        .send()
        .await
        .expect("Invoke answers");
    assert_eq!(answer.status_code(), 200);
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let body: Value =
        serde_json::from_slice(answer.payload().expect("a body").as_ref()).expect("JSON");
    assert_eq!(body["errorType"], "KeyError");
    assert_eq!(body["errorMessage"], "'masterarn'");
    let stack = body["stackTrace"].as_array().expect("a stack trace");
    assert!(
        stack.len() == 1
            && stack[0]
                .as_str()
                .is_some_and(|f| f.contains("lambda_function.py")),
        "the function's own frame only: {stack:?}"
    );

    let tail = decode_tail(answer.log_result());
    let request_id = request_id_of(&tail);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(
        lines[0],
        format!("START RequestId: {request_id} Version: $LATEST")
    );
    assert_eq!(lines[1], "reading the master secret");
    assert_eq!(lines[2], "[ERROR] KeyError: 'masterarn'");
    assert_eq!(lines[3], "Traceback (most recent call last):");
    let end = lines
        .iter()
        .position(|l| l.starts_with("END "))
        .expect("an END line");
    assert_eq!(lines[end], format!("END RequestId: {request_id}"));
    let report = lines[end + 1];
    assert!(
        report.starts_with(&format!("REPORT RequestId: {request_id}\tDuration: "))
            && report.contains("\tBilled Duration: ")
            && report.contains("\tMemory Size: 128 MB\tMax Memory Used: "),
        "{report}"
    );

    // The same events are in CloudWatch Logs, the error as one event.
    let logged = log_events(&emulator, "failing", "\"[ERROR]\"").await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].contains("\nTraceback (most recent call last):\n"),
        "{logged:?}"
    );

    let queued = lambda
        .invoke()
        .function_name("failing")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new("{}"))
        .send()
        .await
        .expect("an asynchronous Invoke");
    assert_eq!(queued.status_code(), 202);
    assert_eq!(queued.function_error(), None);
    eventually(
        "the queued invocation runs",
        Duration::from_secs(20),
        || async {
            (log_events(&emulator, "failing", "\"[ERROR]\"").await.len() == 2).then_some(())
        },
    )
    .await;
    let dry = lambda
        .invoke()
        .function_name("failing")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .expect("a dry run");
    assert_eq!(dry.status_code(), 204);
}

const READING_FUNCTION: &str = r#"
import boto3
from botocore.exceptions import ClientError


def lambda_handler(event, context):
    client = boto3.client("secretsmanager")
    try:
        return {"value": client.get_secret_value(SecretId=event["secret"])["SecretString"]}
    except ClientError as error:
        return {"code": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn function_role_calls_are_allowed_only_by_the_role_policy() {
    let emulator = emulator_or_skip!();
    let readable = create_secret(&emulator, "readable", "open").await;
    let hidden = create_secret(&emulator, "hidden", "closed").await;
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"{readable}"}}]}}"#
    );
    let role = create_role(&emulator, "reader-role", Some(&policy)).await;
    create_function(&emulator, "reader", &role, READING_FUNCTION, 10, &[]).await;
    let read = |secret: &'static str| {
        let lambda = emulator.lambda();
        async move {
            let answer = lambda
                .invoke()
                .function_name("reader")
                .payload(Blob::new(format!(r#"{{"secret": "{secret}"}}"#)))
                .send()
                .await
                .expect("Invoke answers");
            assert_eq!(answer.function_error(), None);
            serde_json::from_slice::<Value>(answer.payload().expect("a body").as_ref())
                .expect("JSON")
        }
    };

    assert_eq!(
        read("readable").await["value"],
        "open",
        "allowed on its ARN, asked by name"
    );
    let denied = read("hidden").await;
    assert_eq!(denied["code"], "AccessDeniedException");
    assert_eq!(
        denied["message"],
        format!(
            "User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/reader-role/reader is not authorized to perform: \
             secretsmanager:GetSecretValue on resource: {hidden} because no identity-based policy allows \
             the secretsmanager:GetSecretValue action"
        )
    );
    // The tests' own credentials are not the function's: unchecked.
    let direct = emulator
        .secretsmanager()
        .get_secret_value()
        .secret_id("hidden")
        .send()
        .await;
    assert_eq!(
        direct.expect("the tests read any secret").secret_string(),
        Some("closed")
    );

    emulator
        .iam()
        .put_role_policy()
        .role_name("reader-role")
        .policy_name("deny")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:readable-*"}]}"#,
        )
        .send()
        .await
        .expect("add a Deny");
    let now_denied = read("readable").await;
    assert_eq!(now_denied["code"], "AccessDeniedException");
    assert!(
        now_denied["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!(
                "on resource: {readable} with an explicit deny in an identity-based policy"
            ))),
        "{now_denied}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_secret_refuses_a_function_secrets_manager_may_not_invoke() {
    let emulator = emulator_or_skip!();
    let secret_arn = create_secret(&emulator, "guarded", "original").await;
    let other_arn = create_secret(&emulator, "other", "original").await;
    let role = create_role(&emulator, "guarded-role", Some(ROTATION_POLICY)).await;
    let function = create_function(
        &emulator,
        "guarded-rotation",
        &role,
        ROTATION_FUNCTION,
        10,
        &[],
    )
    .await;
    let client = emulator.secretsmanager();
    let rotate = || {
        client
            .rotate_secret()
            .secret_id("guarded")
            .rotation_lambda_arn(&function)
            .send()
    };
    let refusal = "Secrets Manager cannot invoke the specified Lambda function. \
                   Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.";

    let refused = rotate().await.expect_err("no permission at all");
    assert_eq!(
        (refused.code(), refused.message()),
        (Some("AccessDeniedException"), Some(refusal))
    );
    let_secrets_manager_invoke(&emulator, &function, &other_arn).await;
    let refused = rotate().await.expect_err("a permission for another secret");
    assert_eq!(
        (refused.code(), refused.message()),
        (Some("AccessDeniedException"), Some(refusal))
    );
    assert!(
        version_with(&stages(&emulator, "guarded").await, "AWSPENDING").is_none(),
        "a refused rotation leaves no pending version"
    );

    let_secrets_manager_invoke(&emulator, &function, &secret_arn).await;
    rotate().await.expect("allowed for this secret");
}

const NETWORK_FUNCTION: &str = r#"
import os
import socket
import sys
import time
import urllib.request


def attempt(action):
    started = time.monotonic()
    try:
        action()
        outcome = "ok"
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    return {"outcome": outcome, "seconds": time.monotonic() - started}


def lambda_handler(event, context):
    def moto_importable():
        import moto  # noqa: F401

    return {
        "resolve": attempt(lambda: socket.getaddrinfo("db.example.invalid", 5432)),
        "connect": attempt(lambda: socket.create_connection(("10.255.255.1", 5432), timeout=30).close()),
        "emulator": attempt(lambda: urllib.request.urlopen(os.environ["AWS_ENDPOINT_URL"] + "/moto-api/", timeout=10).read()),
        "moto": attempt(moto_importable),
        "boto3": attempt(lambda: __import__("boto3")),
        "path": sys.path,
        "environment": {k: v for k, v in os.environ.items() if k not in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")},
        "pid": os.getpid(),
    }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_function_reaches_only_loopback() {
    let emulator = emulator_or_skip!();
    let role = create_role(&emulator, "network-role", None).await;
    let variables = [
        (
            "SECRETS_MANAGER_ENDPOINT",
            "https://secretsmanager.us-east-1.amazonaws.com",
        ),
        ("VAULT_ENDPOINT", "https://vault.example.invalid"),
        ("MODE", "test"),
    ];
    create_function(
        &emulator,
        "network",
        &role,
        NETWORK_FUNCTION,
        10,
        &variables,
    )
    .await;
    let invoke = || async {
        let started = Instant::now();
        let answer = emulator
            .lambda()
            .invoke()
            .function_name("network")
            .send()
            .await
            .expect("Invoke answers");
        assert_eq!(answer.function_error(), None, "{:?}", answer.payload());
        let body: Value =
            serde_json::from_slice(answer.payload().expect("a body").as_ref()).expect("JSON");
        (body, started.elapsed())
    };

    let (body, cold) = invoke().await;
    for (attempt, failure) in [
        (
            "resolve",
            "gaierror: [Errno -2] Name or service not known: db.example.invalid",
        ),
        (
            "connect",
            "OSError: [Errno 101] Network is unreachable: 10.255.255.1",
        ),
    ] {
        assert_eq!(body[attempt]["outcome"], failure, "{body}");
        assert!(
            body[attempt]["seconds"].as_f64().is_some_and(|s| s < 0.5),
            "fails at once: {body}"
        );
    }
    assert_eq!(
        body["emulator"]["outcome"], "ok",
        "loopback is reachable: {body}"
    );
    assert_eq!(body["boto3"]["outcome"], "ok", "{body}");
    assert_eq!(
        body["moto"]["outcome"], "ModuleNotFoundError: No module named 'moto'",
        "{body}"
    );

    let environment = &body["environment"];
    assert_eq!(
        environment["SECRETS_MANAGER_ENDPOINT"],
        emulator.endpoint.as_str()
    );
    assert_eq!(
        environment["VAULT_ENDPOINT"], "https://vault.example.invalid",
        "not an AWS host"
    );
    assert_eq!(environment["AWS_ENDPOINT_URL"], emulator.endpoint.as_str());
    assert_eq!(environment["MODE"], "test");
    for (key, value) in [
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_LAMBDA_FUNCTION_NAME", "network"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", "10"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/network"),
    ] {
        assert_eq!(environment[key], value, "{key}");
    }
    let stream = environment["AWS_LAMBDA_LOG_STREAM_NAME"]
        .as_str()
        .expect("a log stream");
    let (day, hex) = stream
        .split_once("/[$LATEST]")
        .expect("YYYY/MM/DD/[$LATEST]<hex>");
    assert!(day.len() == 10 && hex.len() == 32, "{stream}");
    assert!(
        environment["AWS_ACCESS_KEY_ID"]
            .as_str()
            .is_some_and(|k| k != "testing"),
        "the role's own keys"
    );
    let task_root = environment["LAMBDA_TASK_ROOT"]
        .as_str()
        .expect("a task root");
    assert_eq!(body["path"][0], task_root);

    // A warm worker answers the next invocation; a configuration change replaces it.
    let (again, warm) = invoke().await;
    assert_eq!(again["pid"], body["pid"], "the same execution environment");
    eprintln!("network function: cold invocation {cold:?}, warm {warm:?}");
    // A function just created is Pending a moment; Lambda refuses a change
    // until it is Active.
    crate::support::observe::wait_function_settled(&emulator.lambda(), "network").await;
    emulator
        .lambda()
        .update_function_configuration()
        .function_name("network")
        .environment(Environment::builder().variables("MODE", "changed").build())
        .send()
        .await
        .expect("change the environment");
    let (changed, _) = invoke().await;
    assert_ne!(changed["pid"], body["pid"], "a new execution environment");
    assert_eq!(changed["environment"]["MODE"], "changed");
}

const PID_FUNCTION: &str = r#"
import os
import time


def lambda_handler(event, context):
    time.sleep(0.5)
    return {"pid": os.getpid()}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_invocations_share_at_most_four_warm_workers_per_function() {
    let emulator = emulator_or_skip!();
    let role = create_role(&emulator, "pid-role", None).await;
    create_function(&emulator, "pid", &role, PID_FUNCTION, 10, &[]).await;
    let invoke = || {
        let lambda = emulator.lambda();
        async move {
            let answer = lambda
                .invoke()
                .function_name("pid")
                .send()
                .await
                .expect("Invoke answers");
            let body: Value =
                serde_json::from_slice(answer.payload().expect("a body").as_ref()).expect("JSON");
            body["pid"].as_u64().expect("a pid")
        }
    };
    let started = Instant::now();
    let mut pids: Vec<u64> = futures::future::join_all((0..8).map(|_| invoke())).await;
    let took = started.elapsed();
    pids.sort_unstable();
    pids.dedup();
    assert!(
        (2..=4).contains(&pids.len()),
        "several execution environments, four at most: {pids:?}"
    );
    assert!(
        took >= Duration::from_millis(1000),
        "eight half-second runs on four workers take two rounds: {took:?}"
    );
    let again = invoke().await;
    assert!(
        pids.contains(&again),
        "a later invocation reuses a warm worker"
    );
}
