//! The `rdsrot_rotation_status` data source against the local AWS emulator:
//! through the `tf::Provider` methods for a healthy, a cancelled and a stuck
//! rotation, and through real Terraform with the CI drift-detection script,
//! whose `check` fails on a stuck rotation.

use std::time::Duration;

use rdsrot::aws::{Clients, Endpoints};
use rdsrot::provider::RdsrotProvider;
use rdsrot::rotation::model::{Attr, Rotation, RotationRules};
use rdsrot::tf::{ApplyRequest, PlanRequest, Provider, ReadDataSourceRequest, Value};

use crate::e2e::block_on;
use crate::emulator_or_skip;
use crate::support::moto::{
    create_database_secret, create_existing_rotation_lambda, current_secret_string, repo_root,
    skip_or_fail, Emulator,
};
use crate::support::terraform::{clients, required_providers_block, Workspace, PROVIDER_ADDRESS};

const DATA: &str = "rdsrot_rotation_status";

fn provider(em: &Emulator) -> RdsrotProvider {
    RdsrotProvider::with_clients(Clients::new(&em.sdk_config(), &Endpoints::default()))
}

/// A secret rotated by the `rdsrot_rotation` resource with an existing
/// Lambda, which finished the first rotation (the provider waits for it).
/// Returns the secret's ARN.
async fn healthy_rotation(em: &Emulator, p: &RdsrotProvider, name: &str) -> String {
    let sm = em.secretsmanager();
    let secret = create_database_secret(&sm, name, "mysql", None).await;
    let lambda = create_existing_rotation_lambda(
        &em.sdk_config(),
        &format!("{}-fn", name.replace('/', "-")),
    )
    .await;
    let config = Rotation {
        secret_id: Attr::Known(secret.arn.clone()),
        rotation_lambda_arn: Attr::Known(lambda),
        rotation_rules: Attr::Known(vec![RotationRules {
            automatically_after_days: Attr::Known(30),
            ..Default::default()
        }]),
        ..Default::default()
    }
    .to_value();
    let planned = p
        .plan_resource_change(PlanRequest {
            type_name: "rdsrot_rotation".into(),
            prior_state: Value::Null,
            proposed_new_state: config.clone(),
            config: config.clone(),
            prior_private: vec![],
        })
        .await;
    assert!(planned.diagnostics.is_empty(), "{:?}", planned.diagnostics);
    let applied = p
        .apply_resource_change(ApplyRequest {
            type_name: "rdsrot_rotation".into(),
            prior_state: Value::Null,
            planned_state: planned.planned_state,
            config,
            planned_private: vec![],
        })
        .await;
    assert!(applied.diagnostics.is_empty(), "{:?}", applied.diagnostics);
    secret.arn
}

/// The password the rotation gave the secret: what the data source must
/// never show.
async fn rotated_password(em: &Emulator, secret_arn: &str) -> String {
    let current = current_secret_string(&em.secretsmanager(), secret_arn).await;
    let value: serde_json::Value = serde_json::from_str(&current).expect("a JSON secret");
    value["password"]
        .as_str()
        .expect("the secret has a password")
        .to_owned()
}

async fn status(p: &RdsrotProvider, secret_id: &str, stuck_after: Option<&str>) -> Value {
    let r = p
        .read_data_source(ReadDataSourceRequest {
            type_name: DATA.into(),
            config: Value::object([
                ("secret_id", Value::string(secret_id)),
                ("stuck_after", Value::opt_string(stuck_after)),
            ]),
        })
        .await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    r.state
}

fn problems(state: &Value) -> Vec<String> {
    state
        .get("problems")
        .elements()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Puts a version labelled AWSPENDING on the secret, as a rotation that
/// stopped after its createSecret step leaves it.
async fn leave_pending_version(em: &Emulator, secret_arn: &str) -> String {
    let token = uuid::Uuid::new_v4().to_string();
    em.secretsmanager()
        .put_secret_value()
        .secret_id(secret_arn)
        .client_request_token(&token)
        .secret_string("{\"password\":\"never-finished-5678\"}")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("put a pending version");
    token
}

#[tokio::test]
async fn a_healthy_rotation_shows_no_problems() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let arn = healthy_rotation(&em, &p, "status/healthy").await;
    let s = status(&p, "status/healthy", None).await;
    assert_eq!(problems(&s), Vec::<String>::new());
    assert_eq!(s.get("id").as_str(), Some(arn.as_str()));
    assert_eq!(s.get("rotation_enabled"), &Value::Bool(true));
    assert_eq!(s.get("rotation_in_progress"), &Value::Bool(false));
    assert_eq!(s.get("automatically_after_days").as_i64(), Some(30));
    for date in [
        "last_rotated_date",
        "next_rotation_date",
        "current_version_created_date",
    ] {
        let text = s
            .get(date)
            .as_str()
            .unwrap_or_else(|| panic!("{date} is set"));
        assert!(text.ends_with('Z') && text.contains('T'), "{date}: {text}");
    }
    // The first rotation's new version is current, the original one previous.
    assert!(s.get("current_version_id").as_str().is_some());
    assert!(s.get("previous_version_id").as_str().is_some());
    assert_ne!(s.get("current_version_id"), s.get("previous_version_id"));
    // No secret value anywhere in what the data source answers.
    let password = rotated_password(&em, &arn).await;
    assert!(!format!("{s:?}").contains(&password));
}

#[tokio::test]
async fn a_cancelled_rotation_shows_rotation_off() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let arn = healthy_rotation(&em, &p, "status/cancelled").await;
    em.secretsmanager()
        .cancel_rotate_secret()
        .secret_id(&arn)
        .send()
        .await
        .expect("cancel rotation out of band");
    let s = status(&p, &arn, None).await;
    assert_eq!(s.get("rotation_enabled"), &Value::Bool(false));
    assert_eq!(problems(&s), ["Rotation is turned off for this secret."]);
}

#[tokio::test]
async fn a_stuck_pending_version_is_a_problem_and_in_progress() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let arn = healthy_rotation(&em, &p, "status/stuck").await;
    let pending = leave_pending_version(&em, &arn).await;
    // Young, under the default 2h: in progress, not a problem.
    let s = status(&p, &arn, None).await;
    assert_eq!(s.get("rotation_in_progress"), &Value::Bool(true));
    assert_eq!(s.get("pending_version_id").as_str(), Some(pending.as_str()));
    assert!(problems(&s).is_empty(), "{:?}", problems(&s));
    // Creation dates are whole seconds: wait until it is surely older.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let s = status(&p, &arn, Some("1s")).await;
    let found = problems(&s);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!("Version {pending} has held AWSPENDING for "))
            && found[0].contains("longer than stuck_after (1s)"),
        "{found:?}"
    );
    assert!(!format!("{s:?}").contains("never-finished-5678"));
}

#[tokio::test]
async fn a_lost_invoke_permission_and_a_deleted_lambda_are_problems() {
    let em = emulator_or_skip!();
    let arn = healthy_rotation(&em, &provider(&em), "status/lambda").await;
    let lambda = em.lambda();
    let function = "status-lambda-fn";
    let policy = lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .expect("the rotation made an invoke permission");
    let doc: serde_json::Value =
        serde_json::from_str(policy.policy().unwrap_or_default()).expect("policy JSON");
    for st in doc["Statement"].as_array().into_iter().flatten() {
        lambda
            .remove_permission()
            .function_name(function)
            .statement_id(st["Sid"].as_str().unwrap_or_default())
            .send()
            .await
            .expect("remove the permission out of band");
    }
    // A new provider process: Lambda answers are shared within one.
    let found = problems(&status(&provider(&em), &arn, None).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("has no resource-policy statement"),
        "{found:?}"
    );
    lambda
        .delete_function()
        .function_name(function)
        .send()
        .await
        .expect("delete the Lambda out of band");
    let found = problems(&status(&provider(&em), &arn, None).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("The rotation Lambda ") && found[0].ends_with(" does not exist."),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_missing_secret_is_an_error_on_secret_id() {
    let em = emulator_or_skip!();
    let r = provider(&em)
        .read_data_source(ReadDataSourceRequest {
            type_name: DATA.into(),
            config: Value::object([
                ("secret_id", Value::string("status/none")),
                ("stuck_after", Value::Null),
            ]),
        })
        .await;
    let d = r.diagnostics.iter().next().expect("a diagnostic");
    assert!(r.diagnostics.has_errors() && d.summary == "Secret not found");
    assert_eq!(
        d.attribute,
        Some(rdsrot::tf::AttributePath::root("secret_id"))
    );
}

fn status_config(secret_id: &str, stuck_after: &str, with_check: bool) -> String {
    let check = if with_check {
        r#"
check "rotation_healthy" {
  assert {
    condition     = length(data.rdsrot_rotation_status.db.problems) == 0
    error_message = join(" ", data.rdsrot_rotation_status.db.problems)
  }
}
"#
    } else {
        ""
    };
    format!(
        r#"{}
provider "rdsrot" {{}}

data "rdsrot_rotation_status" "db" {{
  secret_id   = "{secret_id}"
  stuck_after = "{stuck_after}"
}}

output "problems" {{
  value = data.rdsrot_rotation_status.db.problems
}}

output "rotation_in_progress" {{
  value = data.rdsrot_rotation_status.db.rotation_in_progress
}}
{check}"#,
        required_providers_block()
    )
}

/// The guide's CI job: `plan -detailed-exitcode -out=tfplan`, then the
/// check-reading script on `terraform show -json tfplan`. Its exit code.
fn ci_job(ws: &Workspace) -> (i32, String) {
    let plan = ws.terraform(&[
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        "-out=tfplan",
    ]);
    let code = plan.code;
    assert!(code == 0 || code == 2, "plan failed: {}", plan.output());
    let script = repo_root().join("examples/ci/fail-on-checks.sh");
    let out = ws
        .command(&script)
        .arg("tfplan")
        .env("TERRAFORM", &ws.client.path)
        .output()
        .expect("run the check script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn terraform_reads_the_status_and_ci_fails_on_a_failed_check() {
    let all = clients();
    // Only `check` blocks (Terraform 1.5) reach the failed-check path: with
    // 1.0.3 alone the test would pass without it.
    if !all.iter().any(|c| c.at_least(1, 5)) {
        skip_or_fail(
            "Terraform 1.5 or later (a failed check failing CI)",
            "only older clients ran",
        );
        return;
    }
    for client in all {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let p = provider(&emulator);
        let arn = block_on(healthy_rotation(&emulator, &p, "status/ci"));
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&block_on(rotated_password(&emulator, &arn)));
        ws.forbid("never-finished-5678");
        // Terraform 1.0.3 has no `check` blocks: it reads the data source.
        let with_check = client.at_least(1, 5);
        ws.write("main.tf", &status_config(&arn, "1s", with_check));
        if !with_check {
            ws.terraform(&["apply", "-input=false", "-no-color", "-auto-approve"])
                .assert_success();
            let out = ws.terraform(&["output", "-json", "problems"]);
            out.assert_success();
            assert_eq!(out.stdout.trim(), "[]", "{client}");
            continue;
        }
        let (code, text) = ci_job(&ws);
        assert_eq!(code, 0, "{client}: healthy rotation, CI passes: {text}");
        block_on(leave_pending_version(&emulator, &arn));
        std::thread::sleep(Duration::from_millis(2100));
        let (code, text) = ci_job(&ws);
        assert_ne!(code, 0, "{client}: a stuck rotation fails CI: {text}");
        assert!(
            text.contains("rotation_healthy") && text.contains("fail"),
            "{client}: {text}"
        );
        ws.assert_no_leaks();
    }
}

#[test]
fn terraform_lists_the_data_source_schema() {
    for client in clients() {
        let ws = Workspace::new(&client);
        ws.write(
            "main.tf",
            &format!("{}\nprovider \"rdsrot\" {{}}\n", required_providers_block()),
        );
        let out = ws.terraform(&["providers", "schema", "-json"]);
        out.assert_success();
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("schema JSON");
        let schemas = &json["provider_schemas"][PROVIDER_ADDRESS];
        let attrs = &schemas["data_source_schemas"][DATA]["block"]["attributes"];
        for name in [
            "secret_id",
            "stuck_after",
            "problems",
            "rotation_in_progress",
            "id",
        ] {
            assert!(attrs.get(name).is_some(), "{client}: {name} in {attrs}");
        }
    }
}

#[test]
fn every_attribute_is_documented_on_the_data_source_page() {
    let schema = Provider::schema(&RdsrotProvider::new());
    let (_, status) = schema
        .data_sources
        .iter()
        .find(|(name, _)| name == DATA)
        .expect("the data source is registered");
    let page = std::fs::read_to_string(repo_root().join("docs/data-sources/rotation_status.md"))
        .expect("docs/data-sources/rotation_status.md");
    let missing: Vec<&str> = status
        .block
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .filter(|name| !page.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented: {missing:?}");
}

#[test]
fn the_workflow_and_the_guide_run_the_same_check_script() {
    let workflow = std::fs::read_to_string(repo_root().join("examples/ci/drift-detection.yml"))
        .expect("the workflow");
    let guide = std::fs::read_to_string(repo_root().join("docs/guides/ci-drift-detection.md"))
        .expect("the guide");
    for (name, text) in [("workflow", &workflow), ("guide", &guide)] {
        assert!(
            text.contains("-detailed-exitcode") && text.contains("-out=drift.tfplan"),
            "{name} saves the plan"
        );
        assert!(
            text.contains("ci/fail-on-checks.sh drift.tfplan"),
            "{name} runs the check script on the saved plan"
        );
    }
}
