//! `terraform test` on the module `examples/modules/rotation`, with the
//! freshly built provider (dev_overrides): its `tests/mocked.tftest.hcl`
//! with no AWS at all, and its `tests/emulator.tftest.hcl` against the
//! local emulator, after which nothing of the runs may be left in AWS.
//! Each suite is also shown to fail when the module breaks, so that a
//! pass means something.
//!
//! `terraform test` exists from 1.6 and `mock_provider` from 1.7: only
//! clients at least that new run here (1.0.3 is left out, and without a
//! newer one the suite fails under `RDSROT_REQUIRE_TOOLS=1`; 1.0.3 still
//! validates the module's own `.tf` files in
//! `e2e::every_example_passes_terraform_validate`).

use std::path::Path;

use serde_json::Value;

use crate::e2e::block_on;
use crate::support::moto::{create_database_secret, repo_root, DatabaseSecret, Emulator};
use crate::support::observe;
use crate::support::terraform::{clients_at_least, Client, Run, Workspace};

const MODULE: &str = "examples/modules/rotation";
const MOCKED: &str = "tests/mocked.tftest.hcl";
const EMULATED: &str = "tests/emulator.tftest.hcl";

const MOCKED_RUNS: [&str; 6] = [
    "inputs_reach_the_resource",
    "no_vpc_means_no_placement",
    "outputs_pass_through",
    "existing_lambda_instead_of_a_template",
    "rejects_an_unknown_rotation_type",
    "rejects_a_fractional_limit",
];
const EMULATED_RUNS: [&str; 5] = [
    "local_emulator",
    "multi_user_rotation_is_on",
    "shorter_limit_updates_in_place",
    "disabled_keeps_the_lambda",
    "rejects_a_one_day_limit",
];

/// The clients with `terraform test` and `mock_provider`.
fn test_clients() -> Vec<Client> {
    clients_at_least(1, 7, "`terraform test` with mock_provider")
}

/// Copies `from` into `to` with its subdirectories, leaving out what a run
/// by hand may have left in the repository (`.terraform`, state, lock file).
fn copy_tree(from: &Path, to: &Path) {
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text == ".terraform"
            || name_text == ".terraform.lock.hcl"
            || name_text.starts_with("terraform.tfstate")
        {
            continue;
        }
        let target = to.join(&name);
        if path.is_dir() {
            std::fs::create_dir_all(&target)
                .unwrap_or_else(|e| panic!("create {}: {e}", target.display()));
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
        }
    }
}

/// A workspace holding a copy of the module, its test files and the
/// emulator helper module, with the helper installed (`terraform get`:
/// with dev_overrides, `terraform init` would look the provider up in the
/// registry).
fn module_workspace(client: &Client) -> Workspace {
    let ws = Workspace::new(client);
    copy_tree(&repo_root().join(MODULE), ws.path());
    for needed in [MOCKED, EMULATED, "tests/emulator/main.tf"] {
        assert!(
            ws.path().join(needed).is_file(),
            "{MODULE}/{needed} is missing"
        );
    }
    ws.terraform(&["get", "-no-color"]).assert_success();
    ws
}

/// Replaces `from` by `to` in the copy's `file`, as a bug in the module
/// would; panics when the module no longer holds `from`.
fn break_module(ws: &Workspace, file: &str, from: &str, to: &str) {
    let path = ws.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
    assert!(
        text.contains(from),
        "{MODULE}/{file} no longer contains {from:?}: update this test"
    );
    std::fs::write(&path, text.replace(from, to)).unwrap_or_else(|e| panic!("write {file}: {e}"));
}

/// What `terraform test -json` reported.
struct Report {
    /// (run name, status) of every run of the file, in order. The status
    /// is "pass", "fail" (an assertion did not hold), "error" (the run
    /// could not finish, e.g. an input was refused) or "skip" (a run after
    /// an error).
    runs: Vec<(String, String)>,
    /// The `test_summary` object: status, passed, failed, errored, skipped.
    summary: Value,
    /// The details of the error diagnostics (assertion messages among them).
    errors: Vec<String>,
}

impl Report {
    fn parse(run: &Run) -> Report {
        let mut report = Report {
            runs: Vec::new(),
            summary: Value::Null,
            errors: Vec::new(),
        };
        for line in run.stdout.lines() {
            let Ok(message) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            match message["type"].as_str() {
                Some("test_run") if message["test_run"]["progress"] == "complete" => {
                    report.runs.push((
                        message["test_run"]["run"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        message["test_run"]["status"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                }
                Some("test_summary") => report.summary = message["test_summary"].clone(),
                Some("diagnostic") if message["@level"] == "error" => {
                    report.errors.push(format!(
                        "{}: {}",
                        message["diagnostic"]["summary"]
                            .as_str()
                            .unwrap_or_default(),
                        message["diagnostic"]["detail"].as_str().unwrap_or_default()
                    ));
                }
                _ => {}
            }
        }
        report
    }

    fn status_of(&self, name: &str) -> Option<&str> {
        self.runs
            .iter()
            .find(|(run, _)| run == name)
            .map(|(_, status)| status.as_str())
    }

    /// Checks the summary's counts and each run's status.
    #[track_caller]
    fn assert(&self, client: &Client, expected: &[(&str, &str)], run: &Run) {
        let context = || {
            format!(
                "{client}: terraform {}:\nerrors: {:#?}\n{}",
                run.args.join(" "),
                self.errors,
                run.output()
            )
        };
        let names: Vec<&str> = self.runs.iter().map(|(n, _)| n.as_str()).collect();
        let expected_names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, expected_names, "{}", context());
        for (name, status) in expected {
            assert_eq!(
                self.status_of(name),
                Some(*status),
                "run {name:?}: {}",
                context()
            );
        }
        let count = |status: &str| expected.iter().filter(|(_, s)| *s == status).count();
        for (field, status) in [
            ("passed", "pass"),
            ("failed", "fail"),
            ("errored", "error"),
            ("skipped", "skip"),
        ] {
            assert_eq!(
                self.summary[field].as_u64(),
                Some(count(status) as u64),
                "summary {field}: {}\n{}",
                self.summary,
                context()
            );
        }
    }
}

/// `terraform test -json` on one test file, with `-var` pairs.
fn terraform_test(ws: &Workspace, file: &str, vars: &[(&str, &str)]) -> (Run, Report) {
    let mut args = vec![
        "test".to_owned(),
        "-json".to_owned(),
        "-no-color".to_owned(),
        format!("-filter={file}"),
    ];
    for (name, value) in vars {
        args.push(format!("-var={name}={value}"));
    }
    let run = ws.terraform(&args);
    let report = Report::parse(&run);
    (run, report)
}

/// Leaves the workspace without any AWS credentials or endpoint, so that a
/// single AWS call would fail the run.
fn without_aws(ws: &mut Workspace) {
    for key in Emulator::aws_env_remove().iter().chain(&[
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
    ]) {
        ws.unset_env(key);
    }
    ws.set_env("AWS_CONFIG_FILE", "/dev/null");
    ws.set_env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    ws.set_env("AWS_EC2_METADATA_DISABLED", "true");
}

fn all(runs: &[&'static str], status: &'static str) -> Vec<(&'static str, &'static str)> {
    runs.iter().map(|r| (*r, status)).collect()
}

/// Every run passes except the named ones, which fail.
fn passing_except(runs: &[&'static str], failing: &[&str]) -> Vec<(&'static str, &'static str)> {
    runs.iter()
        .map(|r| (*r, if failing.contains(r) { "fail" } else { "pass" }))
        .collect()
}

#[test]
fn the_module_validates_with_its_test_files() {
    for client in test_clients() {
        let ws = module_workspace(&client);
        // From 1.6, validate also parses the test files under tests/ (their
        // blocks and arguments), which a validate of the .tf files alone skips.
        ws.terraform(&["validate", "-no-color"]).assert_success();
    }
}

#[test]
fn mocked_tests_pass_without_any_aws_and_fail_on_broken_output_wiring() {
    for client in test_clients() {
        let mut ws = module_workspace(&client);
        without_aws(&mut ws);
        let (run, report) = terraform_test(&ws, MOCKED, &[]);
        run.assert_success();
        report.assert(&client, &all(&MOCKED_RUNS, "pass"), &run);

        // An output reading the wrong attribute is what the mocked file
        // exists to catch.
        break_module(
            &ws,
            "outputs.tf",
            "value       = rdsrot_rotation.this.rotation_lambda_arn",
            "value       = rdsrot_rotation.this.rotation_lambda_role_arn",
        );
        let (run, report) = terraform_test(&ws, MOCKED, &[]);
        run.assert_code(1);
        let expected = passing_except(
            &MOCKED_RUNS,
            &[
                "outputs_pass_through",
                "existing_lambda_instead_of_a_template",
            ],
        );
        report.assert(&client, &expected, &run);
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("rotation_lambda_arn is arn:aws:iam::123456789012:role/")),
            "{client}: the failing assertion's message is not reported: {:#?}",
            report.errors
        );
    }
}

/// A master secret and a PostgreSQL database secret whose `masterarn` names it.
fn emulator_with_secrets(tag: &str) -> Option<(Emulator, DatabaseSecret, DatabaseSecret)> {
    let emulator = Emulator::try_start()?;
    let sm = emulator.secretsmanager();
    let (secret, master) = block_on(async {
        let master =
            create_database_secret(&sm, &format!("{tag}/db-master"), "postgres", None).await;
        let secret =
            create_database_secret(&sm, &format!("{tag}/db"), "postgres", Some(&master.arn)).await;
        (secret, master)
    });
    Some((emulator, secret, master))
}

/// A module workspace whose only way to the emulator is the test file's
/// provider block: credentials from the environment, no endpoint there.
fn emulator_workspace(
    client: &Client,
    emulator: &Emulator,
    secrets: [&DatabaseSecret; 2],
) -> Workspace {
    let mut ws = module_workspace(client).with_emulator(emulator);
    ws.unset_env("AWS_ENDPOINT_URL");
    for secret in secrets {
        ws.forbid(&secret.password);
    }
    ws
}

/// Rotation off, no stack, Lambda or role left, no AWSPENDING label in the
/// way of the next rotation; and the secret was rotated while it lasted.
#[track_caller]
fn assert_nothing_left(emulator: &Emulator, client: &Client, secret_arn: &str) {
    eprintln!("{client}: checking what terraform test left for {secret_arn}");
    block_on(observe::assert_nothing_left(
        emulator, secret_arn, None, None,
    ));
    // The runs made every function and role there is: none may stay.
    let functions = block_on(observe::functions(emulator));
    assert!(
        functions.is_empty(),
        "{client}: Lambdas left: {functions:?}"
    );
    let roles = block_on(emulator.iam().list_roles().send()).expect("list roles");
    let roles: Vec<&str> = roles.roles().iter().map(|r| r.role_name()).collect();
    assert!(roles.is_empty(), "{client}: roles left: {roles:?}");
}

/// How many versions the secret has: each rotation adds one.
fn version_count(emulator: &Emulator, secret_arn: &str) -> usize {
    block_on(
        emulator
            .secretsmanager()
            .describe_secret()
            .secret_id(secret_arn)
            .send(),
    )
    .expect("describe the secret")
    .version_ids_to_stages()
    .map_or(0, |m| m.len())
}

#[test]
fn emulator_tests_apply_the_module_and_leave_nothing_behind() {
    for client in test_clients() {
        let Some((emulator, secret, master)) = emulator_with_secrets("tftest") else {
            return;
        };
        let ws = emulator_workspace(&client, &emulator, [&secret, &master]);
        let (run, report) = terraform_test(
            &ws,
            EMULATED,
            &[
                ("emulator_endpoint", &emulator.endpoint),
                ("secret_id", &secret.arn),
                ("master_secret_arn", &master.arn),
            ],
        );
        run.assert_success();
        report.assert(&client, &all(&EMULATED_RUNS, "pass"), &run);
        assert!(
            version_count(&emulator, &secret.arn) > 1,
            "{client}: the secret was never rotated: the runs did not reach the emulator"
        );
        assert_nothing_left(&emulator, &client, &secret.arn);
        ws.assert_no_leaks();
    }
}

#[test]
fn emulator_tests_fail_on_a_wrong_interval_and_refuse_a_remote_endpoint() {
    for client in test_clients() {
        let Some((emulator, secret, master)) = emulator_with_secrets("tftest-broken") else {
            return;
        };
        let ws = emulator_workspace(&client, &emulator, [&secret, &master]);

        // An endpoint off this machine stops the file before the provider is
        // configured: the helper's input check errors and nothing else runs.
        let (run, report) = terraform_test(
            &ws,
            EMULATED,
            &[
                (
                    "emulator_endpoint",
                    "https://secretsmanager.us-east-1.amazonaws.com",
                ),
                ("secret_id", &secret.arn),
                ("master_secret_arn", &master.arn),
            ],
        );
        run.assert_code(1);
        let mut expected = all(&EMULATED_RUNS, "skip");
        expected[0].1 = "error";
        report.assert(&client, &expected, &run);
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("must be a local emulator")),
            "{client}: {:#?}",
            report.errors
        );
        assert_eq!(version_count(&emulator, &secret.arn), 1, "{client}");

        // The module forgets the compliance rule and passes the limit as the
        // interval: only the provider's real answer shows it.
        break_module(
            &ws,
            "main.tf",
            "    max_credential_age_days = var.max_credential_age_days",
            "    automatically_after_days = var.max_credential_age_days",
        );
        let (run, report) = terraform_test(
            &ws,
            EMULATED,
            &[
                ("emulator_endpoint", &emulator.endpoint),
                ("secret_id", &secret.arn),
                ("master_secret_arn", &master.arn),
            ],
        );
        run.assert_code(1);
        let expected = passing_except(
            &EMULATED_RUNS,
            &[
                "multi_user_rotation_is_on",
                "shorter_limit_updates_in_place",
            ],
        );
        report.assert(&client, &expected, &run);
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("must rotate every 44 days, not 90")),
            "{client}: {:#?}",
            report.errors
        );
        // Failed runs are torn down too.
        assert_nothing_left(&emulator, &client, &secret.arn);
        ws.assert_no_leaks();
    }
}
