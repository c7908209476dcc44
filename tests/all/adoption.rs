//! Bringing rotations set up outside the provider under Terraform, through
//! real Terraform (`terraform import` with every client, an `import` block
//! with the clients that have it) against the local AWS emulator.
//!
//! The rotations are made as AWS's guide makes them with the CLI: a stack
//! from the repository's multi-user template under a name of the user's
//! choosing, or a Lambda of the user's own; an invoke statement
//! `AllowSecretsManager` without conditions; an inline policy
//! `MasterSecretAccess` on the Lambda's role; `rotate-secret`.

use std::time::{Duration, Instant};

use aws_sdk_serverlessapplicationrepository::types::ParameterValue;
use serde_json::Value;

use crate::e2e::block_on;
use crate::support::moto::{
    create_database_secret, create_rotation_lambda_for, DatabaseSecret, Emulator,
    USER_INVOKE_STATEMENT,
};
use crate::support::terraform::{clients, required_providers_block, Client, Workspace};

const RESOURCE: &str = "rdsrot_rotation.this";
const GUIDE_STACK: &str = "MyLambdaCreationStack";
const GUIDE_STATEMENT: &str = "AllowSecretsManager";
const GUIDE_POLICY: &str = "MasterSecretAccess";
const POSTGRESQL_MULTI_USER: &str = "arn:aws:serverlessrepo:us-east-1:297356227824:applications/SecretsManagerRDSPostgreSQLRotationMultiUser";
/// What a rotation may take here before a test gives up on it.
const ROTATION_BOUND: Duration = Duration::from_secs(60);

/// A rotation made by hand, and what it is made of.
struct HandMade {
    secret: DatabaseSecret,
    master: DatabaseSecret,
    lambda_arn: String,
    role: String,
    stack_id: Option<String>,
}

async fn database_secrets(emulator: &Emulator, tag: &str) -> (DatabaseSecret, DatabaseSecret) {
    let sm = emulator.secretsmanager();
    let master = create_database_secret(&sm, &format!("{tag}/master"), "postgres", None).await;
    let secret =
        create_database_secret(&sm, &format!("{tag}/db"), "postgres", Some(&master.arn)).await;
    (secret, master)
}

/// The guide's `add-permission` (no condition) and the master secret's
/// grant under a name of the user's.
async fn grant_by_hand(emulator: &Emulator, lambda_arn: &str, role: &str, master_arn: &str) {
    emulator
        .lambda()
        .add_permission()
        .function_name(lambda_arn)
        .statement_id(GUIDE_STATEMENT)
        .action("lambda:InvokeFunction")
        .principal("secretsmanager.amazonaws.com")
        .send()
        .await
        .expect("add-permission");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": master_arn},
    });
    emulator
        .iam()
        .put_role_policy()
        .role_name(role)
        .policy_name(GUIDE_POLICY)
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("put-role-policy");
}

/// `rotate-secret` as the guide runs it, waited for until the first
/// rotation finished.
async fn rotate_by_hand(emulator: &Emulator, secret_arn: &str, lambda_arn: &str) {
    let version = emulator
        .secretsmanager()
        .rotate_secret()
        .secret_id(secret_arn)
        .rotation_lambda_arn(lambda_arn)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .expect("rotate-secret")
        .version_id()
        .expect("a new version")
        .to_owned();
    let started = Instant::now();
    while current_version(emulator, secret_arn).await != version {
        assert!(
            started.elapsed() < ROTATION_BOUND,
            "the hand-made rotation of {secret_arn} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn current_version(emulator: &Emulator, secret_arn: &str) -> String {
    let described = emulator
        .secretsmanager()
        .describe_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .expect("describe-secret");
    described
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .find(|(_, labels)| labels.iter().any(|l| l == "AWSCURRENT"))
        .map(|(v, _)| v.clone())
        .unwrap_or_default()
}

fn role_name_of(role_arn: &str) -> String {
    role_arn.rsplit('/').next().unwrap_or_default().to_owned()
}

/// The guide's steps with the multi-user PostgreSQL template: a change set
/// from the repository under the stack name `MyLambdaCreationStack`, run.
async fn template_rotation_by_hand(emulator: &Emulator, tag: &str) -> HandMade {
    let (secret, master) = database_secrets(emulator, tag).await;
    let function = format!("{tag}-rotation-function");
    let parameter =
        |name: &str, value: &str| ParameterValue::builder().name(name).value(value).build();
    let change_set = emulator
        .serverlessrepo()
        .create_cloud_formation_change_set()
        .application_id(POSTGRESQL_MULTI_USER)
        .stack_name(GUIDE_STACK)
        .capabilities("CAPABILITY_IAM")
        .capabilities("CAPABILITY_RESOURCE_POLICY")
        .parameter_overrides(parameter(
            "endpoint",
            "https://secretsmanager.us-east-1.amazonaws.com",
        ))
        .parameter_overrides(parameter("functionName", &function))
        .parameter_overrides(parameter("masterSecretArn", &master.arn))
        .send()
        .await
        .expect("create-cloud-formation-change-set");
    let cfn = emulator.cloudformation();
    cfn.execute_change_set()
        .change_set_name(change_set.change_set_id().expect("a change set id"))
        .send()
        .await
        .expect("execute-change-set");
    let stack_id = change_set.stack_id().expect("a stack id").to_owned();
    let started = Instant::now();
    loop {
        let stacks = cfn
            .describe_stacks()
            .stack_name(&stack_id)
            .send()
            .await
            .expect("describe-stacks");
        let status = stacks.stacks()[0]
            .stack_status()
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("CREATE_COMPLETE") {
            break;
        }
        assert!(
            started.elapsed() < ROTATION_BOUND,
            "the stack is {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let configuration = emulator
        .lambda()
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .expect("the stack's function");
    let lambda_arn = configuration.function_arn().expect("an ARN").to_owned();
    let role = role_name_of(configuration.role().expect("a role"));
    grant_by_hand(emulator, &lambda_arn, &role, &master.arn).await;
    rotate_by_hand(emulator, &secret.arn, &lambda_arn).await;
    HandMade {
        secret,
        master,
        lambda_arn,
        role,
        stack_id: Some(stack_id),
    }
}

/// The same with a Lambda of the user's own (its role may act on the
/// rotated secret only), with the guide's statement in place of the one it
/// came with.
async fn lambda_rotation_by_hand(emulator: &Emulator, tag: &str) -> HandMade {
    let (secret, master) = database_secrets(emulator, tag).await;
    let name = format!("{tag}-own-rotator");
    let lambda_arn = create_rotation_lambda_for(
        &emulator.sdk_config(),
        &name,
        "postgresql_multi_user",
        &secret.arn,
    )
    .await;
    emulator
        .lambda()
        .remove_permission()
        .function_name(&lambda_arn)
        .statement_id(USER_INVOKE_STATEMENT)
        .send()
        .await
        .expect("remove-permission");
    let role = format!("{name}-role");
    grant_by_hand(emulator, &lambda_arn, &role, &master.arn).await;
    rotate_by_hand(emulator, &secret.arn, &lambda_arn).await;
    HandMade {
        secret,
        master,
        lambda_arn,
        role,
        stack_id: None,
    }
}

/// The multi-user template with this rotation's master secret.
fn multi_user(rotation_type: &str, made: &HandMade) -> String {
    format!(
        "  rotation_type     = \"{rotation_type}\"\n  master_secret_arn = \"{}\"\n",
        made.master.arn
    )
}

fn configuration(describes: &str, secret: &HandMade, import_block: bool) -> String {
    let import = if import_block {
        format!(
            "import {{\n  to = {RESOURCE}\n  id = \"{}\"\n}}\n",
            secret.secret.arn
        )
    } else {
        String::new()
    };
    format!(
        r#"{}
provider "rdsrot" {{}}

{import}
resource "rdsrot_rotation" "this" {{
  secret_id         = "{}"
{describes}
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
        required_providers_block(),
        secret.secret.arn,
    )
}

/// Imports with an `import` block where the client has them (1.5 and
/// later), else with `terraform import`; then plans and applies. Returns
/// the plan's output.
fn import_and_apply(ws: &Workspace, client: &Client, describes: &str, made: &HandMade) -> String {
    let block = client.at_least(1, 5);
    ws.write("main.tf", &configuration(describes, made, block));
    if !block {
        ws.terraform(&[
            "import",
            "-input=false",
            "-no-color",
            RESOURCE,
            &made.secret.arn,
        ])
        .assert_success();
    }
    let plan = ws.plan(&[]);
    assert!(
        plan.code == 0 || plan.code == 2,
        "{client}: plan failed:\n{}",
        plan.output()
    );
    for never in ["must be replaced", "forces replacement", "will be created"] {
        assert!(
            !plan.output().contains(never),
            "{client}: the plan after import says {never:?}:\n{}",
            plan.output()
        );
    }
    ws.apply(&[]);
    plan.output()
}

/// Every statement on the function that lets Secrets Manager invoke it:
/// `(sid, the aws:SourceArn it is conditioned on)`.
async fn secrets_manager_statements(
    emulator: &Emulator,
    lambda_arn: &str,
) -> Vec<(String, Option<String>)> {
    let policy = match emulator
        .lambda()
        .get_policy()
        .function_name(lambda_arn)
        .send()
        .await
    {
        Ok(p) => p.policy().unwrap_or_default().to_owned(),
        Err(e) if format!("{e:?}").contains("ResourceNotFound") => return vec![],
        Err(e) => panic!("get-policy {lambda_arn}: {e:?}"),
    };
    let doc: Value = serde_json::from_str(&policy).expect("a policy document");
    doc["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["Principal"]["Service"] == "secretsmanager.amazonaws.com")
        .map(|s| {
            let source = s["Condition"]["ArnLike"]["AWS:SourceArn"]
                .as_str()
                .or(s["Condition"]["ArnLike"]["aws:SourceArn"].as_str())
                .or(s["Condition"]["ArnEquals"]["aws:SourceArn"].as_str())
                .or(s["Condition"]["StringEquals"]["aws:SourceArn"].as_str())
                .map(str::to_owned);
            (s["Sid"].as_str().unwrap_or_default().to_owned(), source)
        })
        .collect()
}

/// The inline policies on the role that mention the master secret.
async fn master_grants(emulator: &Emulator, role: &str, master_arn: &str) -> Vec<String> {
    let iam = emulator.iam();
    let names = match iam.list_role_policies().role_name(role).send().await {
        Ok(listed) => listed.policy_names().to_vec(),
        Err(e) if format!("{e:?}").contains("NoSuchEntity") => return vec![],
        Err(e) => panic!("list-role-policies {role}: {e:?}"),
    };
    let mut granting = vec![];
    for name in names {
        let doc = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(&name)
            .send()
            .await
            .expect("get-role-policy");
        let text = percent_encoding::percent_decode_str(doc.policy_document())
            .decode_utf8_lossy()
            .to_string();
        if text.contains(master_arn) {
            granting.push(name);
        }
    }
    granting
}

async fn live_stacks(emulator: &Emulator) -> Vec<String> {
    let listed = emulator
        .cloudformation()
        .describe_stacks()
        .send()
        .await
        .expect("describe-stacks");
    listed
        .stacks()
        .iter()
        .filter(|s| s.stack_status().map(|st| st.as_str()) != Some("DELETE_COMPLETE"))
        .filter_map(|s| s.stack_id().map(str::to_owned))
        .collect()
}

async fn function_names(emulator: &Emulator) -> Vec<String> {
    let listed = emulator
        .lambda()
        .list_functions()
        .send()
        .await
        .expect("list-functions");
    listed
        .functions()
        .iter()
        .filter_map(|f| f.function_name().map(str::to_owned))
        .collect()
}

async fn rotation_enabled(emulator: &Emulator, secret_arn: &str) -> bool {
    emulator
        .secretsmanager()
        .describe_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .expect("describe-secret")
        .rotation_enabled()
        .unwrap_or(false)
}

/// After the apply that follows the import: the same Lambda, no new
/// rotation, one statement (conditioned on this secret) in place of the
/// guide's, one master grant; and an empty plan.
fn assert_adopted(
    emulator: &Emulator,
    ws: &Workspace,
    client: &Client,
    made: &HandMade,
    version: &str,
) {
    block_on(async {
        assert_eq!(
            current_version(emulator, &made.secret.arn).await,
            version,
            "{client}: the apply after import rotated the secret"
        );
        let statements = secrets_manager_statements(emulator, &made.lambda_arn).await;
        let for_this_secret: Vec<_> = statements
            .iter()
            .filter(|(_, source)| source.as_deref() == Some(made.secret.arn.as_str()))
            .collect();
        assert_eq!(
            for_this_secret.len(),
            1,
            "{client}: one statement scoped to the secret, found {statements:?}"
        );
        assert!(
            !statements
                .iter()
                .any(|(sid, source)| sid == GUIDE_STATEMENT && source.is_none()),
            "{client}: the guide's unconditioned statement is still there: {statements:?}"
        );
        let grants = master_grants(emulator, &made.role, &made.master.arn).await;
        let outside_template: Vec<_> = grants
            .iter()
            .filter(|n| n.as_str() != "SecretsManagerRotationPolicy")
            .collect();
        assert_eq!(
            outside_template.len(),
            1,
            "{client}: one master-secret grant on the role, found {grants:?}"
        );
    });
    let values = ws.resource_values(RESOURCE);
    assert_eq!(
        values["rotation_lambda_arn"],
        made.lambda_arn.as_str(),
        "{client}: {values:#}"
    );
    ws.plan(&[]).assert_code(0);
}

/// A rotation made with the guide's CLI steps from the multi-user template
/// is imported into a configuration that describes it: no new stack or
/// Lambda, no rotation, the guide's statement and policy taken over (the
/// statement scoped to the secret), an empty plan after; destroy removes
/// the stack the guide made, its Lambda and the grants, and turns rotation
/// off.
#[test]
fn a_template_rotation_made_with_the_cli_is_adopted_and_destroy_removes_it() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let made = block_on(template_rotation_by_hand(&emulator, "guide"));
        let stack_id = made.stack_id.clone().expect("a stack");
        let (version, stacks, functions) = block_on(async {
            (
                current_version(&emulator, &made.secret.arn).await,
                live_stacks(&emulator).await,
                function_names(&emulator).await,
            )
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&made.secret.password);
        ws.forbid(&made.master.password);
        import_and_apply(
            &ws,
            &client,
            &multi_user("postgresql_multi_user", &made),
            &made,
        );
        let values = ws.resource_values(RESOURCE);
        assert_eq!(
            values["stack_id"],
            stack_id.as_str(),
            "{client}: {values:#}"
        );
        block_on(async {
            assert_eq!(
                live_stacks(&emulator).await,
                stacks,
                "{client}: a stack was deployed"
            );
            assert_eq!(
                function_names(&emulator).await,
                functions,
                "{client}: a function was made"
            );
        });
        assert_adopted(&emulator, &ws, &client, &made, &version);

        ws.destroy(&[]);
        block_on(async {
            assert!(
                !rotation_enabled(&emulator, &made.secret.arn).await,
                "{client}"
            );
            assert!(
                !live_stacks(&emulator).await.contains(&stack_id),
                "{client}: the guide's stack is still there"
            );
            let left = function_names(&emulator).await;
            assert!(
                !left
                    .iter()
                    .any(|f| made.lambda_arn.ends_with(&format!(":{f}"))),
                "{client}: the stack's function is still there: {left:?}"
            );
            assert_eq!(
                master_grants(&emulator, &made.role, &made.master.arn).await,
                Vec::<String>::new(),
                "{client}: a master grant is left"
            );
        });
    }
}

/// The same with a Lambda of the user's own, imported with
/// `rotation_lambda_arn`: the Lambda stays after destroy, the statement
/// and policy taken over on import do not.
#[test]
fn an_existing_lambda_rotation_made_with_the_cli_is_adopted_and_destroy_keeps_the_lambda() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let made = block_on(lambda_rotation_by_hand(&emulator, "own"));
        let version = block_on(current_version(&emulator, &made.secret.arn));
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&made.secret.password);
        ws.forbid(&made.master.password);
        let describes = format!(
            "  rotation_lambda_arn = \"{}\"\n  master_secret_arn = \"{}\"\n",
            made.lambda_arn, made.master.arn
        );
        import_and_apply(&ws, &client, &describes, &made);
        assert_adopted(&emulator, &ws, &client, &made, &version);

        ws.destroy(&[]);
        block_on(async {
            assert!(
                !rotation_enabled(&emulator, &made.secret.arn).await,
                "{client}"
            );
            assert!(
                function_names(&emulator)
                    .await
                    .iter()
                    .any(|f| made.lambda_arn.ends_with(&format!(":{f}"))),
                "{client}: the user's own Lambda was deleted"
            );
            let statements = secrets_manager_statements(&emulator, &made.lambda_arn).await;
            assert_eq!(statements, vec![], "{client}: statements are left");
            assert_eq!(
                master_grants(&emulator, &made.role, &made.master.arn).await,
                Vec::<String>::new(),
                "{client}: a master grant is left"
            );
        });
    }
}

/// After importing the guide's template rotation, a configuration that
/// asks for another template warns in the plan, before anything changes,
/// that a new Lambda is deployed and the secret rotated.
#[test]
fn asking_an_adopted_rotation_for_another_template_warns_at_plan() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let made = block_on(template_rotation_by_hand(&emulator, "switch"));
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&made.secret.password);
        ws.forbid(&made.master.password);
        ws.write(
            "main.tf",
            &configuration(&multi_user("postgresql_multi_user", &made), &made, false),
        );
        ws.terraform(&[
            "import",
            "-input=false",
            "-no-color",
            RESOURCE,
            &made.secret.arn,
        ])
        .assert_success();
        ws.write(
            "main.tf",
            &configuration(
                "  rotation_type     = \"postgresql_single_user\"\n",
                &made,
                false,
            ),
        );
        let stacks = block_on(live_stacks(&emulator));
        let plan = ws.plan(&[]);
        plan.assert_code(2)
            .assert_mentions("The rotation moves to another Lambda");
        let words = plan
            .output()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            words.contains("taken over on import") && words.contains("rotated with it at once"),
            "{client}: {}",
            plan.output()
        );
        assert_eq!(
            block_on(live_stacks(&emulator)),
            stacks,
            "{client}: plan changed something"
        );
    }
}

/// `terraform plan -generate-config-out` for a rotation of the user's own
/// Lambda, set up by hand with a statement scoped to the secret: the
/// configuration Terraform writes from the import plans no change at all.
#[test]
fn the_generated_configuration_of_an_adopted_rotation_plans_no_changes() {
    let newer = crate::support::terraform::clients_at_least(1, 5, "import blocks");
    for client in newer {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let made = block_on(async {
            let made = lambda_rotation_by_hand(&emulator, "generated").await;
            // The user scoped the statement to the secret and the account.
            let lambda = emulator.lambda();
            lambda
                .remove_permission()
                .function_name(&made.lambda_arn)
                .statement_id(GUIDE_STATEMENT)
                .send()
                .await
                .expect("remove-permission");
            lambda
                .add_permission()
                .function_name(&made.lambda_arn)
                .statement_id(GUIDE_STATEMENT)
                .action("lambda:InvokeFunction")
                .principal("secretsmanager.amazonaws.com")
                .source_arn(&made.secret.arn)
                .source_account(crate::support::moto::ACCOUNT_ID)
                .send()
                .await
                .expect("add-permission");
            made
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&made.secret.password);
        ws.forbid(&made.master.password);
        ws.write(
            "main.tf",
            &format!(
                "{}\nprovider \"rdsrot\" {{}}\n\nimport {{\n  to = {RESOURCE}\n  id = \"{}\"\n}}\n",
                required_providers_block(),
                made.secret.arn
            ),
        );
        let generated = ws.run_unchecked(&[
            "plan",
            "-input=false",
            "-no-color",
            "-generate-config-out=generated.tf",
        ]);
        let written = std::fs::read_to_string(ws.path().join("generated.tf")).unwrap_or_default();
        assert!(
            !written.is_empty(),
            "{client}: nothing generated:\n{}",
            generated.output()
        );
        // What was adopted is in it: the master grant and the statement.
        let words = written.split_whitespace().collect::<Vec<_>>().join(" ");
        for adopted in [
            format!("master_secret_arn = \"{}\"", made.master.arn),
            format!("permission_statement_id = \"{GUIDE_STATEMENT}\""),
        ] {
            assert!(
                words.contains(&adopted),
                "{client}: no {adopted} in\n{written}"
            );
        }
        let plan = ws.plan(&[]);
        assert!(
            plan.output()
                .contains("1 to import, 0 to add, 0 to change, 0 to destroy"),
            "{client}: the generated configuration plans changes:\n{written}\n{}",
            plan.output()
        );
    }
}
