//! The IAM policy `docs/index.md` asks users to grant, tested as exactly
//! enough: the provider runs as an IAM user the emulator holds to that
//! policy (parsed out of the docs, so the two cannot differ), and what
//! CloudFormation does for the user's stacks is checked as the user too.
//!
//! - the whole lifecycle passes with it, and every action it lists is used
//!   by some step, or named below with the step that needs it;
//! - without any one of its statements, the step that needs it fails (or,
//!   where the docs say so, warns) naming a missing action of that statement;
//! - the roles of the rotation functions get only what a rotation needs,
//!   and a real rotation still succeeds with them;
//! - a role session held to its policy is refused as each service refuses.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::e2e::block_on;
use crate::support::databases::Databases;
use crate::support::engines;
use crate::support::moto::{
    create_enforced_user, create_existing_rotation_lambda, create_rotation_lambda_for,
    create_secret, repo_root, DatabaseSecret, Emulator, EnforcedUser, ACCOUNT_ID, ENFORCED_TAG,
    REGION,
};
use crate::support::observe::assert_nothing_left;
use crate::support::terraform::{clients, required_providers_block, Client, Run, Workspace};
use aws_sdk_secretsmanager::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use rdsrot::aws::iam::decode_policy_document;

// ---------------------------------------------------------------------------
// The documented policy
// ---------------------------------------------------------------------------

/// The policy of the "IAM permissions" section of `docs/index.md`: its one
/// JSON code block.
fn documented_policy() -> Value {
    let docs = std::fs::read_to_string(repo_root().join("docs/index.md"))
        .expect("docs/index.md is readable");
    let section = docs
        .split("\n## IAM permissions")
        .nth(1)
        .expect("docs/index.md has an \"IAM permissions\" section");
    let block = section
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the IAM permissions section has a JSON code block");
    serde_json::from_str(block).unwrap_or_else(|e| panic!("the documented policy is JSON: {e}"))
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"]
        .as_array()
        .expect("the policy has a Statement list")
}

fn sid(statement: &Value) -> &str {
    statement["Sid"]
        .as_str()
        .expect("each documented statement has a Sid")
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|a| a.as_str().expect("an action is a string").to_owned())
            .collect(),
        other => panic!("{} has no Action list: {other}", sid(statement)),
    }
}

fn without_statement(policy: &Value, dropped: &str) -> Value {
    let mut narrower = policy.clone();
    narrower["Statement"] = Value::Array(
        statements(policy)
            .iter()
            .filter(|s| sid(s) != dropped)
            .cloned()
            .collect(),
    );
    narrower
}

/// Actions the docs list that no step of the lifecycle test takes, and the
/// step that needs each. The stand-in templates attach no managed policy:
/// the real ones attach Lambda's basic execution policy to their role.
const USED_ELSEWHERE: [(&str, &str); 8] = [
    (
        "logs:FilterLogEvents",
        "explaining a failed rotation (the statement loop)",
    ),
    (
        "cloudformation:DescribeStackEvents",
        "explaining a failed stack (the statement loop)",
    ),
    (
        "cloudformation:DeleteChangeSet",
        "a redeploy whose change set has no changes",
    ),
    (
        "cloudformation:DescribeStackResources",
        "taking the provider's master grant off a template's role before its stack goes",
    ),
    (
        "secretsmanager:UpdateSecretVersionStage",
        "removing an AWSPENDING label an unfinished rotation left",
    ),
    (
        "lambda:UpdateFunctionCode",
        "a template_version change (stack update)",
    ),
    (
        "iam:AttachRolePolicy",
        "the real templates' managed policies, on create",
    ),
    (
        "iam:DetachRolePolicy",
        "the real templates' managed policies, on delete",
    ),
];

// ---------------------------------------------------------------------------
// Running Terraform as the enforced user
// ---------------------------------------------------------------------------

fn configuration(blocks: &str) -> String {
    format!(
        "{}\nprovider \"rdsrot\" {{}}\n{blocks}",
        required_providers_block()
    )
}

fn rotation_block(name: &str, secret_arn: &str, settings: &str) -> String {
    format!(
        "\nresource \"rdsrot_rotation\" \"{name}\" {{\n  secret_id = \"{secret_arn}\"\n{settings}  rotation_rules {{\n    automatically_after_days = 30\n  }}\n}}\n"
    )
}

const VPC: &str = "  vpc_subnet_ids = [\"subnet-0a1b2c3d4e5f60718\"]\n  vpc_security_group_ids = [\"sg-0a1b2c3d4e5f60718\"]\n";

fn workspace_as(client: &Client, emulator: &Emulator, user: &EnforcedUser) -> Workspace {
    let mut ws = Workspace::new(client).with_emulator(emulator);
    ws.set_env("AWS_ACCESS_KEY_ID", &user.access_key_id);
    ws.set_env("AWS_SECRET_ACCESS_KEY", &user.secret_access_key);
    ws
}

fn squashed(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the emulator refused `user`, as `action -> resources`.
fn refused(emulator: &Emulator, user: &EnforcedUser) -> BTreeMap<String, Value> {
    emulator.iam_decisions()[&user.arn]["refused"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn allowed_actions(emulator: &Emulator, user: &EnforcedUser) -> BTreeSet<String> {
    emulator.iam_decisions()[&user.arn]["allowed"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn role_name(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().expect("a role ARN has a name")
}

/// Every inline policy document of a role, by name.
async fn inline_policies(emulator: &Emulator, role_arn: &str) -> BTreeMap<String, Value> {
    let iam = emulator.iam();
    let names = iam
        .list_role_policies()
        .role_name(role_name(role_arn))
        .send()
        .await
        .expect("list the role's policies");
    let mut documents = BTreeMap::new();
    for name in names.policy_names() {
        let got = iam
            .get_role_policy()
            .role_name(role_name(role_arn))
            .policy_name(name)
            .send()
            .await
            .expect("read a role policy");
        let document = decode_policy_document(got.policy_document());
        assert!(
            document.is_object(),
            "{name} on {role_arn} is not a JSON document: {}",
            got.policy_document()
        );
        documents.insert(name.to_owned(), document);
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name(role_name(role_arn))
        .send()
        .await
        .expect("list the role's managed policies");
    // AWS's VPC access policy is what Lambda needs to place a function in a
    // VPC (the templates attach it then); it grants nothing on secrets.
    let others: Vec<_> = attached
        .attached_policies()
        .iter()
        .filter(|p| p.policy_arn() != Some(crate::support::moto::VPC_ACCESS_POLICY))
        .collect();
    assert!(
        others.is_empty(),
        "{role_arn} has managed policies attached: {others:?}"
    );
    documents
}

/// One allowed (action, resource, condition) of a role's policies.
#[derive(Debug)]
struct Grant {
    action: String,
    resource: String,
    condition: Value,
}

fn grants(documents: &BTreeMap<String, Value>) -> Vec<Grant> {
    let mut all = Vec::new();
    for document in documents.values() {
        for statement in statements(document) {
            assert_eq!(
                statement["Effect"], "Allow",
                "only Allow statements: {statement}"
            );
            assert!(
                statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
                "no NotAction or NotResource: {statement}"
            );
            let resources = match &statement["Resource"] {
                Value::String(one) => vec![one.clone()],
                Value::Array(many) => many
                    .iter()
                    .map(|r| r.as_str().unwrap_or_default().to_owned())
                    .collect(),
                other => panic!("a statement without Resource: {other}"),
            };
            for action in actions(statement) {
                for resource in &resources {
                    all.push(Grant {
                        action: action.clone(),
                        resource: resource.clone(),
                        condition: statement.get("Condition").cloned().unwrap_or(Value::Null),
                    });
                }
            }
        }
    }
    all
}

/// What a rotation function's role may do, checked grant by grant: the
/// rotated secret's actions only where its rotation function is this one,
/// the master secret's value by its ARN alone, a password from Secrets
/// Manager, and a key only through Secrets Manager.
fn assert_least_privilege(
    role_arn: &str,
    documents: &BTreeMap<String, Value>,
    function_arn: &str,
    rotated: &str,
    master: Option<&str>,
) {
    let all = grants(documents);
    let rotated_actions = [
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    ];
    for grant in &all {
        let action = grant.action.as_str();
        let ok = if action == "secretsmanager:GetRandomPassword" {
            grant.resource == "*"
        } else if master == Some(grant.resource.as_str()) {
            // AWS's alternating-users functions describe an RDS-managed
            // master secret (only `username` and `password`) to find its
            // database: that ARN alone, no more.
            action == "secretsmanager:GetSecretValue" || action == "secretsmanager:DescribeSecret"
        } else if rotated_actions.contains(&action) {
            let scoped_to_secret = grant.resource == rotated;
            let scoped_to_function = grant.condition["StringEquals"]
                ["secretsmanager:resource/AllowRotationLambdaArn"]
                == function_arn;
            scoped_to_secret || scoped_to_function
        } else if action == "kms:Decrypt" || action == "kms:GenerateDataKey" {
            grant.resource.starts_with("arn:aws:kms:")
                && !grant.resource.contains('*')
                && grant.condition["StringEquals"]["kms:ViaService"]
                    == format!("secretsmanager.{REGION}.amazonaws.com")
        } else {
            false
        };
        assert!(
            ok,
            "{role_arn} is granted more than rotating {rotated} needs: {grant:?} (all: {documents:#?})"
        );
    }
    if let Some(master) = master {
        assert!(
            all.iter()
                .any(|g| g.action == "secretsmanager:GetSecretValue" && g.resource == master),
            "{role_arn} may not read the master secret {master}: {documents:#?}"
        );
        assert!(
            !all.iter().any(|g| g.resource == "*"
                && g.action.starts_with("secretsmanager:")
                && g.action != "secretsmanager:GetRandomPassword"),
            "{role_arn} reaches every secret: {documents:#?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The whole lifecycle with the documented policy
// ---------------------------------------------------------------------------

struct Fixtures {
    single: DatabaseSecret,
    multi: DatabaseSecret,
    multi_master: DatabaseSecret,
    own: DatabaseSecret,
    own_master: DatabaseSecret,
    own_lambda: String,
}

async fn lifecycle_fixtures(emulator: &Emulator) -> Fixtures {
    let sm = emulator.secretsmanager();
    let (single, _) = engines::create_secrets(&sm, "policy/single", "postgresql_single_user").await;
    let (multi, multi_master) =
        engines::create_secrets(&sm, "policy/multi", "postgresql_multi_user").await;
    let (own, own_master) =
        engines::create_secrets(&sm, "policy/own", "postgresql_multi_user").await;
    // The user's own function may touch its own secret only: the master
    // secret is readable through the provider's grant alone.
    let own_lambda = create_rotation_lambda_for(
        &emulator.sdk_config(),
        "policy-own-rotation",
        "postgresql_multi_user",
        &own.arn,
    )
    .await;
    Fixtures {
        single,
        multi,
        multi_master: multi_master.expect("a multi-user type has a master secret"),
        own,
        own_master: own_master.expect("a multi-user type has a master secret"),
        own_lambda,
    }
}

fn lifecycle_configuration(f: &Fixtures) -> String {
    let mut blocks = rotation_block(
        "single",
        &f.single.arn,
        &format!("  rotation_type = \"postgresql_single_user\"\n{VPC}"),
    );
    blocks += &rotation_block(
        "multi",
        &f.multi.arn,
        &format!(
            "  rotation_type = \"postgresql_multi_user\"\n  master_secret_arn = \"{}\"\n",
            f.multi_master.arn
        ),
    );
    blocks += &rotation_block(
        "own",
        &f.own.arn,
        &format!(
            "  rotation_lambda_arn = \"{}\"\n  master_secret_arn = \"{}\"\n{VPC}",
            f.own_lambda, f.own_master.arn
        ),
    );
    blocks += "\ndata \"rdsrot_rotation_status\" \"single\" {\n  secret_id = rdsrot_rotation.single.id\n}\n\noutput \"single_problems\" {\n  value = data.rdsrot_rotation_status.single.problems\n}\n";
    configuration(&blocks)
}

fn assert_nothing_refused(emulator: &Emulator, user: &EnforcedUser, step: &str) {
    let refused = refused(emulator, user);
    assert!(
        refused.is_empty(),
        "{step}: the documented policy is too narrow, refused: {refused:#?}"
    );
}

/// With exactly the documented policy: two templates (one in a VPC), an
/// existing Lambda with a master secret placed in a VPC, the pre-flight
/// check, the status data source, an import and the destroy all work, the
/// first rotations really rotate, and every listed action is used.
#[test]
fn the_documented_policy_is_enough_for_the_whole_lifecycle() {
    let policy = documented_policy();
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let Some(_) = Databases::try_shared() else {
            return;
        };
        let (fixtures, user) = block_on(async {
            let fixtures = lifecycle_fixtures(&emulator).await;
            let user =
                create_enforced_user(&emulator.sdk_config(), "deployer", &policy.to_string()).await;
            (fixtures, user)
        });
        let mut ws = workspace_as(&client, &emulator, &user);
        for secret in [
            &fixtures.single,
            &fixtures.multi,
            &fixtures.multi_master,
            &fixtures.own,
            &fixtures.own_master,
        ] {
            ws.forbid(&secret.password);
        }
        ws.write("main.tf", &lifecycle_configuration(&fixtures));

        let applied = ws.apply(&[]);
        assert_nothing_refused(&emulator, &user, "apply");
        assert!(
            !squashed(&applied.output()).contains("GetSecretValue"),
            "the pre-flight check could not read a secret:\n{}",
            applied.output()
        );
        let state = ws.state();
        let mut roles = BTreeMap::new();
        for address in ["single", "multi", "own"] {
            let values = ws.resource_values(&format!("rdsrot_rotation.{address}"));
            assert_eq!(
                values["rotation_verified"], true,
                "{address}: the first rotation did not finish: {values:#}"
            );
            roles.insert(address, values);
        }
        assert!(state.to_string().contains("single_problems"));

        // The rotation functions' roles hold what a rotation needs, no more.
        block_on(async {
            for (address, rotated, master) in [
                ("single", &fixtures.single, None),
                ("multi", &fixtures.multi, Some(&fixtures.multi_master)),
                ("own", &fixtures.own, Some(&fixtures.own_master)),
            ] {
                let values = &roles[address];
                let role = values["rotation_lambda_role_arn"]
                    .as_str()
                    .expect("the role ARN is in the state");
                let function = values["rotation_lambda_arn"]
                    .as_str()
                    .expect("the function ARN is in the state");
                let documents = inline_policies(&emulator, role).await;
                assert_least_privilege(
                    role,
                    &documents,
                    function,
                    &rotated.arn,
                    master.map(|m| m.arn.as_str()),
                );
            }
        });

        // Import, then a plan that finds nothing to do.
        ws.terraform(&["state", "rm", "rdsrot_rotation.multi"])
            .assert_success();
        ws.terraform(&[
            "import",
            "-input=false",
            "-no-color",
            "rdsrot_rotation.multi",
            &fixtures.multi.arn,
        ])
        .assert_success();
        let plan = ws.plan(&[]);
        assert!(
            plan.code == 0 || plan.code == 2,
            "plan after import failed:\n{}",
            plan.output()
        );
        assert_nothing_refused(&emulator, &user, "import and plan");

        ws.destroy(&[]);
        assert_nothing_refused(&emulator, &user, "destroy");
        block_on(async {
            assert_nothing_left(&emulator, &fixtures.single.arn, None, None).await;
            assert_nothing_left(&emulator, &fixtures.multi.arn, None, None).await;
            let own_role = format!("arn:aws:iam::{ACCOUNT_ID}:role/policy-own-rotation-role");
            assert_nothing_left(
                &emulator,
                &fixtures.own.arn,
                Some(&fixtures.own_lambda),
                Some(&own_role),
            )
            .await;
        });

        // Nothing listed goes unused.
        let used = allowed_actions(&emulator, &user);
        let elsewhere: BTreeSet<&str> = USED_ELSEWHERE.iter().map(|(a, _)| *a).collect();
        let unused: Vec<String> = statements(&policy)
            .iter()
            .flat_map(actions)
            .filter(|a| !used.contains(a) && !elsewhere.contains(a.as_str()))
            .collect();
        assert!(
            unused.is_empty(),
            "{client}: the documented policy grants actions no step used: {unused:?}; used: {used:?}"
        );
        eprintln!("{client}: the documented policy covered the lifecycle");
    }
}

// ---------------------------------------------------------------------------
// Each statement is needed
// ---------------------------------------------------------------------------

/// What one case of the loop saw.
enum Outcome {
    /// A step failed, or warned where the docs promise a warning.
    Stopped { step: &'static str, run: Run },
    /// Every step passed: the statement was not needed.
    Unneeded,
}

/// Whether the provider warned (Terraform's own note on the development
/// overrides this suite runs with does not count).
fn provider_warns(run: &Run) -> bool {
    run.output().matches("Warning: ").count()
        > run
            .output()
            .matches("Warning: Provider development overrides")
            .count()
}

/// The steps, cheapest first: an apply of a generic template and of an
/// existing Lambda with a master secret placed in a VPC (each rotation on
/// the secret alone), its destroy, then an apply whose first rotation fails.
fn run_steps(client: &Client, emulator: &Emulator, user: &EnforcedUser, tag: &str) -> Outcome {
    let (secret, own, own_master, lambda, broken) = block_on(async {
        let sm = emulator.secretsmanager();
        let (secret, _) =
            engines::create_secrets(&sm, &format!("loop/{tag}"), "oracle_single_user").await;
        let (own, own_master) =
            engines::create_secrets(&sm, &format!("loop/{tag}-own"), "oracle_multi_user").await;
        let lambda = create_rotation_lambda_for(
            &emulator.sdk_config(),
            &format!("loop-{tag}"),
            "generic",
            &own.arn,
        )
        .await;
        // A PostgreSQL secret on a host that is not this machine: its
        // function fails at setSecret, without a network to reach it.
        let broken = create_secret(
            &sm,
            &format!("loop/{tag}-broken"),
            &serde_json::json!({
                "engine": "postgres",
                "host": "orders.cluster-abc.us-east-1.rds.amazonaws.com",
                "username": "app",
                "password": "not-a-real-one",
                "dbname": "postgres",
                "port": 5432,
            })
            .to_string(),
        )
        .await;
        (
            secret,
            own,
            own_master.expect("a master secret"),
            lambda,
            broken,
        )
    });
    let mut ws = workspace_as(client, emulator, user);
    ws.forbid(&secret.password);
    ws.forbid(&own.password);
    ws.forbid(&own_master.password);
    let mut blocks = rotation_block(
        "template",
        &secret.arn,
        "  rotation_type = \"oracle_single_user\"\n",
    );
    blocks += &rotation_block(
        "own",
        &own.arn,
        &format!(
            "  rotation_lambda_arn = \"{lambda}\"\n  master_secret_arn = \"{}\"\n{VPC}",
            own_master.arn
        ),
    );
    ws.write("main.tf", &configuration(&blocks));
    let apply = ws.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    if apply.code != 0 || provider_warns(&apply) {
        return Outcome::Stopped {
            step: "apply",
            run: apply,
        };
    }
    let destroy = ws.terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    if destroy.code != 0 {
        return Outcome::Stopped {
            step: "destroy",
            run: destroy,
        };
    }
    ws.write(
        "main.tf",
        &configuration(&rotation_block(
            "broken",
            &broken,
            "  rotation_type = \"postgresql_single_user\"\n  wait_for_rotation_timeout = \"20s\"\n",
        )),
    );
    let failing = ws.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_ne!(
        failing.code,
        0,
        "a rotation against a host that is not here succeeded:\n{}",
        failing.output()
    );
    // With the logs readable the apply quotes the function's own error.
    if !squashed(&failing.output()).contains("The rotation function logged") {
        return Outcome::Stopped {
            step: "explaining a failed rotation",
            run: failing,
        };
    }
    let _ = ws.terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    Outcome::Unneeded
}

/// Without any one statement of the documented policy, the step that needs
/// it stops, naming an action of that statement; the full policy takes
/// every step (so each stop is the statement's doing).
#[test]
fn each_statement_of_the_documented_policy_is_needed() {
    let policy = documented_policy();
    let Some(client) = clients().into_iter().last() else {
        return;
    };
    let Some(emulator) = Emulator::try_start() else {
        return;
    };
    let full = block_on(create_enforced_user(
        &emulator.sdk_config(),
        "full",
        &policy.to_string(),
    ));
    match run_steps(&client, &emulator, &full, "full") {
        Outcome::Unneeded => {}
        Outcome::Stopped { step, run } => panic!(
            "with the whole documented policy, {step} stopped:\n{}",
            run.output()
        ),
    }
    let mut unneeded = Vec::new();
    for (index, statement) in statements(&policy).iter().enumerate() {
        let dropped = sid(statement);
        let user = block_on(create_enforced_user(
            &emulator.sdk_config(),
            &format!("without-{index}"),
            &without_statement(&policy, dropped).to_string(),
        ));
        match run_steps(&client, &emulator, &user, &format!("s{index}")) {
            Outcome::Unneeded => unneeded.push(dropped.to_owned()),
            Outcome::Stopped { step, run } => {
                let said = squashed(&run.output());
                let named: Vec<String> = actions(statement)
                    .into_iter()
                    .filter(|a| said.contains(a.as_str()))
                    .collect();
                assert!(
                    !named.is_empty(),
                    "without {dropped}, {step} stopped without naming any of {:?}:\n{}",
                    actions(statement),
                    run.output()
                );
                eprintln!("without {dropped}: {step} stopped naming {named:?}");
            }
        }
    }
    assert!(
        unneeded.is_empty(),
        "the documented policy has statements no step needs: {unneeded:?}"
    );
}

// ---------------------------------------------------------------------------
// The enforcement itself
// ---------------------------------------------------------------------------

/// `config` with its requests signed by these keys instead.
fn signed_as(
    config: &aws_config::SdkConfig,
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> aws_config::SdkConfig {
    config
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.map(str::to_owned),
            None,
            "enforced",
        )))
        .build()
}

/// HTTP status, error code and message of a refused call.
fn refusal<E: ProvideErrorMetadata>(error: SdkError<E>) -> (u16, String, String) {
    let status = error.raw_response().map(|r| r.status().as_u16());
    (
        status.expect("the call got an answer"),
        error.code().unwrap_or_default().to_owned(),
        error.message().unwrap_or_default().to_owned(),
    )
}

/// A role tagged as enforced, assumed through STS: its session may do what
/// the role's policy allows and is refused the rest, before the resource is
/// even looked up, in each service's own shape, with AWS's message naming
/// the session, the action and the resource.
#[test]
fn an_enforced_role_session_is_refused_in_each_services_shape() {
    let Some(emulator) = Emulator::try_start() else {
        return;
    };
    block_on(async {
        let admin = emulator.sdk_config();
        let secret = create_secret(&emulator.secretsmanager(), "enforced/one", "{}").await;
        let iam = emulator.iam();
        iam.create_role()
            .role_name("auditor")
            .assume_role_policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#,
            )
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(ENFORCED_TAG.0)
                    .value(ENFORCED_TAG.1)
                    .build()
                    .expect("a tag"),
            )
            .send()
            .await
            .expect("create the role");
        iam.put_role_policy()
            .role_name("auditor")
            .policy_name("describe-only")
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}]}"#,
            )
            .send()
            .await
            .expect("the role's policy");
        let assumed = aws_sdk_sts::Client::new(&admin)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/auditor"))
            .role_session_name("audit-run")
            .send()
            .await
            .expect("assume the role");
        let keys = assumed
            .credentials()
            .expect("AssumeRole answers credentials");
        let session = signed_as(
            &admin,
            keys.access_key_id(),
            keys.secret_access_key(),
            Some(keys.session_token()),
        );
        let who = format!("User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/auditor/audit-run is not authorized to perform:");

        aws_sdk_secretsmanager::Client::new(&session)
            .describe_secret()
            .secret_id(&secret)
            .send()
            .await
            .expect("DescribeSecret is allowed");
        let (status, code, message) = refusal(
            aws_sdk_secretsmanager::Client::new(&session)
                .get_secret_value()
                .secret_id(&secret)
                .send()
                .await
                .expect_err("GetSecretValue is not allowed"),
        );
        assert_eq!((status, code.as_str()), (400, "AccessDeniedException"));
        assert_eq!(
            message,
            format!("{who} secretsmanager:GetSecretValue on resource: {secret} because no identity-based policy allows the secretsmanager:GetSecretValue action")
        );

        let (status, code, message) = refusal(
            aws_sdk_lambda::Client::new(&session)
                .get_function()
                .function_name("not-there")
                .send()
                .await
                .expect_err("GetFunction is not allowed"),
        );
        assert_eq!((status, code.as_str()), (403, "AccessDeniedException"));
        assert!(
            message.starts_with(&format!("{who} lambda:GetFunction on resource: arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:not-there")),
            "{message}"
        );

        let (status, code, message) = refusal(
            aws_sdk_iam::Client::new(&session)
                .get_role()
                .role_name("auditor")
                .send()
                .await
                .expect_err("GetRole is not allowed"),
        );
        assert_eq!((status, code.as_str()), (403, "AccessDenied"));
        assert!(
            message.starts_with(&format!(
                "{who} iam:GetRole on resource: arn:aws:iam::{ACCOUNT_ID}:role/auditor"
            )),
            "{message}"
        );

        let (status, code, message) = refusal(
            aws_sdk_cloudformation::Client::new(&session)
                .describe_stacks()
                .stack_name("serverlessrepo-x")
                .send()
                .await
                .expect_err("DescribeStacks is not allowed"),
        );
        assert_eq!((status, code.as_str()), (403, "AccessDenied"));
        assert!(
            message.contains("cloudformation:DescribeStacks on resource: arn:aws:cloudformation:"),
            "{message}"
        );
        let refused = emulator.iam_decisions();
        let session_arn = format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/auditor/audit-run");
        assert!(
            refused[&session_arn]["refused"]["secretsmanager:GetSecretValue"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == &Value::String(secret.clone()))),
            "the refusal is recorded: {refused:#}"
        );
    });
}

/// GetFunction answers a function's tags only to a caller allowed
/// `lambda:ListTags`, as AWS documents; the provider, reading tags through
/// GetFunction, then asks ListTags, whose refusal names the action instead
/// of passing for a function without tags (ownership is read from tags).
#[test]
fn tags_withheld_by_get_function_are_asked_of_list_tags() {
    use rdsrot::aws::wait::Deadline;
    use rdsrot::aws::{lambda, Clients, Endpoints};

    let Some(emulator) = Emulator::try_start() else {
        return;
    };
    block_on(async {
        let admin = emulator.sdk_config();
        let function = create_existing_rotation_lambda(&admin, "tagged-rotator").await;
        aws_sdk_lambda::Client::new(&admin)
            .tag_resource()
            .resource(&function)
            .tags("rdsrot:owner", "instance-1")
            .send()
            .await
            .expect("tag the function");
        let as_user = |user: &EnforcedUser| {
            signed_as(&admin, &user.access_key_id, &user.secret_access_key, None)
        };
        let policy = |actions: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{actions}],"Resource":"*"}}]}}"#
            )
        };
        let reader = create_enforced_user(
            &admin,
            "function-reader",
            &policy(r#""lambda:GetFunction""#),
        )
        .await;
        let tag_reader = create_enforced_user(
            &admin,
            "tag-reader",
            &policy(r#""lambda:GetFunction","lambda:ListTags""#),
        )
        .await;

        // The emulator, as AWS: the call passes, the tags are left out.
        let answer = aws_sdk_lambda::Client::new(&as_user(&reader))
            .get_function()
            .function_name(&function)
            .send()
            .await
            .expect("GetFunction is allowed");
        assert!(answer.configuration().is_some());
        assert_eq!(answer.tags(), None, "tags answered without lambda:ListTags");
        let answer = aws_sdk_lambda::Client::new(&as_user(&tag_reader))
            .get_function()
            .function_name(&function)
            .send()
            .await
            .expect("GetFunction is allowed");
        assert_eq!(
            answer
                .tags()
                .and_then(|t| t.get("rdsrot:owner"))
                .map(String::as_str),
            Some("instance-1")
        );

        // The provider: the tags, or a refusal naming lambda:ListTags.
        let deadline = || {
            Deadline::new(
                "test",
                std::time::Duration::from_secs(30),
                Default::default(),
            )
        };
        let clients = Clients::new(&as_user(&tag_reader), &Endpoints::default());
        let tags = lambda::function_tags(&clients, &deadline(), &function)
            .await
            .expect("the tags");
        assert_eq!(
            tags.get("rdsrot:owner").map(String::as_str),
            Some("instance-1")
        );
        let clients = Clients::new(&as_user(&reader), &Endpoints::default());
        let refused = lambda::function_tags(&clients, &deadline(), &function)
            .await
            .expect_err("tags withheld read as no tags");
        assert!(refused.to_string().contains("lambda:ListTags"), "{refused}");
    });
}
