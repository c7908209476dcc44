//! Who can make the rotation Lambda act, and with which credentials, through
//! real Terraform (every client) against the local AWS emulator: Secrets
//! Manager may invoke a Lambda the provider deploys or manages only for the
//! rotated secret; an account-wide scope is refused where the Lambda holds a
//! master secret; the template's own unconditioned statement, or ours
//! stripped of its condition, is drift that apply puts right; and a stack
//! parameter changed behind Terraform's back shows even when the argument
//! is left unset.

use serde_json::Value;

use crate::e2e::block_on;
use crate::support::moto::{
    create_database_secret, create_existing_rotation_lambda, Emulator, ACCOUNT_ID,
    USER_INVOKE_STATEMENT,
};
use crate::support::observe::{live_stacks, secrets_manager_statements, InvokeStatement};
use crate::support::terraform::{clients, required_providers_block, Client, Workspace};

const SECRETS_MANAGER: &str = "secretsmanager.amazonaws.com";

/// Settings that keep these tests off the databases: rotation is turned on
/// and tested only by the schedule, and no apply waits for a rotation.
const NO_ROTATION_NOW: &str = r#"
  rotate_immediately        = false
  wait_for_rotation_timeout = "0"
"#;

fn workspace(client: &Client, emulator: &Emulator, body: &str) -> Workspace {
    let ws = Workspace::new(client).with_emulator(emulator);
    ws.write(
        "main.tf",
        &format!(
            "{}\nprovider \"rdsrot\" {{}}\n{body}",
            required_providers_block()
        ),
    );
    ws
}

fn text(values: &Value, key: &str) -> String {
    values[key].as_str().unwrap_or_default().to_owned()
}

/// The `aws:SourceArn` values of a statement, whatever the operator.
fn source_arns(st: &InvokeStatement) -> Vec<String> {
    st.conditions
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(Value::as_object)
        .flatten()
        .filter(|(k, _)| k.eq_ignore_ascii_case("aws:SourceArn"))
        .filter_map(|(_, v)| v.as_str().map(str::to_owned))
        .collect()
}

/// Statements on `lambda` that let Secrets Manager invoke it without an
/// `aws:SourceArn` naming `secret_arn` exactly, but the user's own on a
/// Lambda the user brought (`USER_INVOKE_STATEMENT`: never the provider's).
async fn open_statements(emulator: &Emulator, lambda: &str, secret_arn: &str) -> Vec<String> {
    secrets_manager_statements(emulator, lambda)
        .await
        .into_iter()
        .filter(|st| st.sid != USER_INVOKE_STATEMENT)
        .filter(|st| source_arns(st) != [secret_arn.to_owned()])
        .map(|st| st.to_string())
        .collect()
}

async fn add_unconditioned_statement(emulator: &Emulator, lambda: &str, sid: &str) {
    emulator
        .lambda()
        .add_permission()
        .function_name(lambda)
        .statement_id(sid)
        .action("lambda:InvokeFunction")
        .principal(SECRETS_MANAGER)
        .send()
        .await
        .unwrap_or_else(|e| panic!("add {sid} to {lambda}: {e:?}"));
}

#[test]
fn account_scope_with_a_master_secret_is_refused_at_plan_before_anything_is_made() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let (secret, lambda) = block_on(async {
            let sm = emulator.secretsmanager();
            let master = create_database_secret(&sm, "scope-master", "postgres", None).await;
            let secret =
                create_database_secret(&sm, "scope-db", "postgres", Some(&master.arn)).await;
            let lambda =
                create_existing_rotation_lambda(&emulator.sdk_config(), "scope-rotator").await;
            (secret, lambda)
        });
        let master = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:scope-master");
        for (what, body) in [
            (
                "multi user template",
                format!(
                    r#"
resource "rdsrot_rotation" "this" {{
  secret_id         = "{}"
  rotation_type     = "postgresql_multi_user"
  master_secret_arn = "{master}"
  permission_scope  = "account"
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
                    secret.arn
                ),
            ),
            (
                "existing Lambda with a master secret",
                format!(
                    r#"
resource "rdsrot_rotation" "this" {{
  secret_id           = "{}"
  rotation_lambda_arn = "{lambda}"
  master_secret_arn   = "{master}"
  permission_scope    = "account"
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
                    secret.arn
                ),
            ),
        ] {
            let ws = workspace(&client, &emulator, &body);
            let plan = ws.plan(&[]);
            plan.assert_code(1)
                .assert_mentions("permission_scope = \"account\" with a master secret")
                .assert_mentions("permission_scope = \"secret\"");
            assert!(
                plan.output().contains("on main.tf line")
                    && plan.output().contains("permission_scope"),
                "{client}: {what}: the error names the attribute:\n{}",
                plan.output()
            );
            assert!(
                block_on(live_stacks(&emulator)).is_empty(),
                "{client}: {what}: a refused plan made a stack"
            );
            let statements = block_on(secrets_manager_statements(&emulator, &lambda));
            assert!(
                statements.iter().all(|s| s.sid == USER_INVOKE_STATEMENT),
                "{client}: {what}: a refused plan added a statement: {statements:?}"
            );
        }
    }
}

#[test]
fn after_apply_no_statement_lets_secrets_manager_invoke_the_lambda_for_another_secret() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let (single, multi, master, existing, lambda) = block_on(async {
            let sm = emulator.secretsmanager();
            let single = create_database_secret(&sm, "open-single", "postgres", None).await;
            let master = create_database_secret(&sm, "open-master", "postgres", None).await;
            let multi =
                create_database_secret(&sm, "open-multi", "postgres", Some(&master.arn)).await;
            let existing = create_database_secret(&sm, "open-existing", "mysql", None).await;
            let lambda =
                create_existing_rotation_lambda(&emulator.sdk_config(), "open-rotator").await;
            (single, multi, master, existing, lambda)
        });
        let body = format!(
            r#"
resource "rdsrot_rotation" "single_user" {{
  secret_id     = "{}"
  rotation_type = "postgresql_single_user"
{NO_ROTATION_NOW}
  rotation_rules {{
    automatically_after_days = 30
  }}
}}

resource "rdsrot_rotation" "multi_user" {{
  secret_id         = "{}"
  rotation_type     = "postgresql_multi_user"
  master_secret_arn = "{}"
{NO_ROTATION_NOW}
  rotation_rules {{
    automatically_after_days = 30
  }}
}}

resource "rdsrot_rotation" "existing_lambda" {{
  secret_id           = "{}"
  rotation_lambda_arn = "{lambda}"
{NO_ROTATION_NOW}
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
            single.arn, multi.arn, master.arn, existing.arn
        );
        let ws = workspace(&client, &emulator, &body);
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        for (name, secret) in [
            ("single_user", &single.arn),
            ("multi_user", &multi.arn),
            ("existing_lambda", &existing.arn),
        ] {
            let values = ws.resource_values(&format!("rdsrot_rotation.{name}"));
            let function = text(&values, "rotation_lambda_arn");
            let open = block_on(open_statements(&emulator, &function, secret));
            assert!(
                open.is_empty(),
                "{client}: {name}: statements let Secrets Manager invoke {function} for other \
secrets: {open:?}"
            );
            let ours = text(&values, "permission_statement_id");
            assert!(
                block_on(secrets_manager_statements(&emulator, &function))
                    .iter()
                    .any(|st| st.sid == ours),
                "{client}: {name}: its own statement {ours} is there"
            );
        }
        // The user's own statement on the Lambda they brought is theirs.
        assert!(
            block_on(secrets_manager_statements(&emulator, &lambda))
                .iter()
                .any(|st| st.sid == USER_INVOKE_STATEMENT),
            "{client}: the user's own statement was left in place"
        );
        ws.destroy(&[]);
    }
}

#[test]
fn an_unconditioned_statement_on_the_stacks_lambda_is_drift_and_apply_scopes_it_again() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let secret = block_on(create_database_secret(
            &emulator.secretsmanager(),
            "reopened",
            "postgres",
            None,
        ));
        let body = format!(
            r#"
resource "rdsrot_rotation" "this" {{
  secret_id     = "{}"
  rotation_type = "postgresql_single_user"
{NO_ROTATION_NOW}
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
            secret.arn
        );
        let ws = workspace(&client, &emulator, &body);
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let values = ws.resource_values("rdsrot_rotation.this");
        let function = text(&values, "rotation_lambda_arn");
        let ours = text(&values, "permission_statement_id");

        // The template's statement back, as CloudFormation puts it when it
        // replaces the permission.
        block_on(add_unconditioned_statement(
            &emulator,
            &function,
            "RotationLambdaInvokePermission",
        ));
        ws.plan(&[])
            .assert_code(2)
            .assert_mentions("permission_statement_id");
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let open = block_on(open_statements(&emulator, &function, &secret.arn));
        assert!(open.is_empty(), "{client}: still open: {open:?}");

        // Ours stripped of its conditions.
        block_on(
            emulator
                .lambda()
                .remove_permission()
                .function_name(&function)
                .statement_id(&ours)
                .send(),
        )
        .expect("remove our statement");
        block_on(add_unconditioned_statement(&emulator, &function, &ours));
        ws.plan(&[])
            .assert_code(2)
            .assert_mentions("permission_statement_id");
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let statements = block_on(secrets_manager_statements(&emulator, &function));
        let restored = statements.iter().find(|st| st.sid == ours);
        assert_eq!(
            restored.map(source_arns),
            Some(vec![secret.arn.clone()]),
            "{client}: our statement names the secret again: {statements:?}"
        );
        let open = block_on(open_statements(&emulator, &function, &secret.arn));
        assert!(open.is_empty(), "{client}: still open: {open:?}");
        ws.destroy(&[]);
    }
}

/// Makes a change set on the stack through the repository, as someone with
/// the console would, setting `endpoint` and the version when given and
/// keeping the rest.
async fn update_stack(
    emulator: &Emulator,
    stack_id: &str,
    version: Option<&str>,
    endpoint: Option<&str>,
) {
    let cfn = emulator.cloudformation();
    let described = cfn
        .describe_stacks()
        .stack_name(stack_id)
        .send()
        .await
        .expect("describe the stack");
    let stack = &described.stacks()[0];
    let tag = |key: &str| {
        stack
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .unwrap_or_default()
            .to_owned()
    };
    let mut parameters = vec![];
    for p in stack.parameters() {
        let (Some(name), Some(value)) = (p.parameter_key(), p.parameter_value()) else {
            continue;
        };
        let value = match endpoint {
            Some(endpoint) if name == "endpoint" => endpoint,
            _ => value,
        };
        if !value.is_empty() && name != "invokingServicePrincipal" && name != "runtime" {
            parameters.push(
                aws_sdk_serverlessapplicationrepository::types::ParameterValue::builder()
                    .name(name)
                    .value(value)
                    .build(),
            );
        }
    }
    let name = stack.stack_name().unwrap_or_default();
    let owner = aws_sdk_serverlessapplicationrepository::types::Tag::builder()
        .key("rdsrot:secret")
        .value(tag("rdsrot:secret"))
        .build();
    let change_set = emulator
        .serverlessrepo()
        .create_cloud_formation_change_set()
        .application_id(tag("serverlessrepo:applicationId"))
        .semantic_version(
            version
                .map(str::to_owned)
                .unwrap_or_else(|| tag("serverlessrepo:semanticVersion")),
        )
        .stack_name(name.strip_prefix("serverlessrepo-").unwrap_or(name))
        .set_parameter_overrides(Some(parameters))
        .tags(owner)
        .capabilities("CAPABILITY_IAM")
        .capabilities("CAPABILITY_RESOURCE_POLICY")
        .send()
        .await
        .expect("a change set setting the endpoint");
    cfn.execute_change_set()
        .change_set_name(change_set.change_set_id().unwrap_or_default())
        .send()
        .await
        .expect("execute the change set");
    for _ in 0..100 {
        let now = cfn
            .describe_stacks()
            .stack_name(stack_id)
            .send()
            .await
            .expect("describe the stack");
        let status = now.stacks()[0]
            .stack_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        if !status.ends_with("_IN_PROGRESS") {
            assert_eq!(status, "UPDATE_COMPLETE", "the out-of-band update");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the out-of-band update did not finish");
}

async fn stack_version(emulator: &Emulator, stack_id: &str) -> Option<String> {
    let described = emulator
        .cloudformation()
        .describe_stacks()
        .stack_name(stack_id)
        .send()
        .await
        .expect("describe the stack");
    described.stacks()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("serverlessrepo:semanticVersion"))
        .and_then(|t| t.value())
        .map(str::to_owned)
}

#[test]
fn a_template_version_changed_on_the_stack_plans_a_change_while_the_argument_is_unset() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let secret = block_on(create_database_secret(
            &emulator.secretsmanager(),
            "version-drift",
            "postgres",
            None,
        ));
        let body = format!(
            r#"
resource "rdsrot_rotation" "this" {{
  secret_id     = "{}"
  rotation_type = "postgresql_single_user"
{NO_ROTATION_NOW}
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
            secret.arn
        );
        let ws = workspace(&client, &emulator, &body);
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let values = ws.resource_values("rdsrot_rotation.this");
        let stack_id = text(&values, "stack_id");
        let deployed = text(&values, "template_version");

        block_on(update_stack(&emulator, &stack_id, Some("1.1.367"), None));
        assert_eq!(
            block_on(stack_version(&emulator, &stack_id)).as_deref(),
            Some("1.1.367")
        );
        ws.plan(&[]).assert_code(2).assert_mentions("1.1.367");
        ws.apply(&[]);
        assert_eq!(
            block_on(stack_version(&emulator, &stack_id)).as_deref(),
            Some(deployed.as_str()),
            "{client}: apply put the version back"
        );
        ws.plan(&[]).assert_code(0);
        ws.destroy(&[]);
    }
}

async fn stack_endpoint(emulator: &Emulator, stack_id: &str) -> Option<String> {
    let described = emulator
        .cloudformation()
        .describe_stacks()
        .stack_name(stack_id)
        .send()
        .await
        .expect("describe the stack");
    described.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("endpoint"))
        .and_then(|p| p.parameter_value())
        .map(str::to_owned)
}

#[test]
fn an_endpoint_changed_on_the_stack_plans_a_change_while_the_argument_is_unset() {
    // Loopback, and not the emulator: nothing may be sent there.
    let elsewhere = "https://127.0.0.2:1/";
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let secret = block_on(create_database_secret(
            &emulator.secretsmanager(),
            "endpoint-drift",
            "postgres",
            None,
        ));
        let body = format!(
            r#"
resource "rdsrot_rotation" "this" {{
  secret_id     = "{}"
  rotation_type = "postgresql_single_user"
{NO_ROTATION_NOW}
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
            secret.arn
        );
        let ws = workspace(&client, &emulator, &body);
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let values = ws.resource_values("rdsrot_rotation.this");
        let stack_id = text(&values, "stack_id");
        let deployed = text(&values, "endpoint");
        assert_eq!(
            block_on(stack_endpoint(&emulator, &stack_id)).as_deref(),
            Some(deployed.as_str())
        );

        block_on(update_stack(&emulator, &stack_id, None, Some(elsewhere)));
        ws.plan(&[]).assert_code(2).assert_mentions(elsewhere);
        ws.apply(&[]);
        assert_eq!(
            block_on(stack_endpoint(&emulator, &stack_id)).as_deref(),
            Some(deployed.as_str()),
            "{client}: apply put the endpoint back"
        );
        ws.plan(&[]).assert_code(0);
        ws.destroy(&[]);
    }
}

fn existing_lambda_config(secret_arn: &str, lambda: &str, statement_id: Option<&str>) -> String {
    let sid = statement_id
        .map(|s| format!("  permission_statement_id = \"{s}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
resource "rdsrot_rotation" "this" {{
  secret_id           = "{secret_arn}"
  rotation_lambda_arn = "{lambda}"
{sid}{NO_ROTATION_NOW}
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#
    )
}

#[test]
fn a_statement_id_taken_by_a_statement_we_did_not_make_is_refused_at_plan() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let (secret, lambda) = block_on(async {
            let secret =
                create_database_secret(&emulator.secretsmanager(), "taken-id", "mysql", None).await;
            let lambda =
                create_existing_rotation_lambda(&emulator.sdk_config(), "taken-rotator").await;
            (secret, lambda)
        });
        let before = block_on(secrets_manager_statements(&emulator, &lambda));
        let ws = workspace(
            &client,
            &emulator,
            &existing_lambda_config(&secret.arn, &lambda, Some(USER_INVOKE_STATEMENT)),
        );
        let plan = ws.plan(&[]);
        plan.assert_code(1)
            .assert_mentions("permission_statement_id names another statement")
            .assert_mentions("terraform import");
        let after = block_on(secrets_manager_statements(&emulator, &lambda));
        assert_eq!(
            format!("{before:?}"),
            format!("{after:?}"),
            "{client}: the user's statement is unchanged"
        );
        let (enabled, _) = block_on(crate::support::observe::rotation_status(
            &emulator,
            &secret.arn,
        ));
        assert!(!enabled, "{client}: nothing was turned on");
    }
}

#[test]
fn destroy_leaves_a_statement_under_our_id_that_now_names_another_secret() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let (secret, other, lambda) = block_on(async {
            let sm = emulator.secretsmanager();
            let secret = create_database_secret(&sm, "taken-over", "mysql", None).await;
            let other = create_database_secret(&sm, "taker", "mysql", None).await;
            let lambda =
                create_existing_rotation_lambda(&emulator.sdk_config(), "taken-over-rotator").await;
            (secret, other, lambda)
        });
        let ws = workspace(
            &client,
            &emulator,
            &existing_lambda_config(&secret.arn, &lambda, None),
        );
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let ours = text(
            &ws.resource_values("rdsrot_rotation.this"),
            "permission_statement_id",
        );
        // Someone reuses the id for another secret's rotation.
        block_on(async {
            let l = emulator.lambda();
            l.remove_permission()
                .function_name(&lambda)
                .statement_id(&ours)
                .send()
                .await
                .expect("remove our statement");
            l.add_permission()
                .function_name(&lambda)
                .statement_id(&ours)
                .action("lambda:InvokeFunction")
                .principal(SECRETS_MANAGER)
                .source_arn(&other.arn)
                .source_account(ACCOUNT_ID)
                .send()
                .await
                .expect("the other secret's statement under our id");
        });
        ws.destroy(&[]);
        let left = block_on(secrets_manager_statements(&emulator, &lambda));
        let kept = left.iter().find(|st| st.sid == ours);
        assert_eq!(
            kept.map(source_arns),
            Some(vec![other.arn.clone()]),
            "{client}: the other secret's statement stays: {left:?}"
        );
    }
}
