//! End to end: the built provider binary driven by real Terraform (1.0.3 from
//! the venv, and `/usr/local/bin/terraform` when present) through
//! dev_overrides, against the local AWS emulator.
//!
//! Each test has its own emulator and its own working directory per client.
//! Every Terraform run is checked for "Provider produced inconsistent result",
//! "invalid plan" and the secret's password (see `support::terraform`).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::engines::{self, NEW_ROTATION_TYPES};
use crate::support::moto::{
    create_database_secret, create_existing_rotation_lambda, rds_secret_json, repo_root,
    DatabaseSecret, Emulator, ACCOUNT_ID,
};
use crate::support::observe::{
    self, live_stacks, our_role_policies, rotation_status, statements_for_secret, Applied, Drift,
};
use crate::support::terraform::{
    clients, filesystem_mirror_config, provider_binary, required_providers_block, Client,
    Workspace, PROVIDER_ADDRESS,
};

const RESOURCE: &str = "rdsrot_rotation.this";

pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

// ---------------------------------------------------------------------------
// Schema, docs, examples
// ---------------------------------------------------------------------------

fn schema_json(client: &Client) -> Value {
    let ws = Workspace::new(client);
    ws.write(
        "main.tf",
        &format!("{}\nprovider \"rdsrot\" {{}}\n", required_providers_block()),
    );
    let run = ws.terraform(&["providers", "schema", "-json"]);
    run.assert_success();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "{client}: providers schema -json is not JSON ({e}):\n{}",
            run.output()
        )
    })
}

#[test]
fn providers_schema_lists_the_provider_and_its_resource() {
    for client in clients() {
        let schema = schema_json(&client);
        let provider = &schema["provider_schemas"][PROVIDER_ADDRESS];
        assert!(
            provider.is_object(),
            "{client}: no {PROVIDER_ADDRESS} in {schema:#}"
        );
        let resource = &provider["resource_schemas"]["rdsrot_rotation"]["block"];
        for attribute in [
            "secret_id",
            "rotation_type",
            "rotation_lambda_arn",
            "secret_arn",
        ] {
            assert!(
                resource["attributes"][attribute].is_object(),
                "{client}: rdsrot_rotation lacks {attribute}: {resource:#}"
            );
        }
        assert!(
            resource["block_types"]["rotation_rules"].is_object(),
            "{client}: {resource:#}"
        );
    }
}

/// Every attribute and block name of a schema block, nested ones included.
fn schema_names(block: &Value, names: &mut BTreeSet<String>) {
    for (name, _) in block["attributes"].as_object().into_iter().flatten() {
        names.insert(name.clone());
    }
    for (name, nested) in block["block_types"].as_object().into_iter().flatten() {
        names.insert(name.clone());
        schema_names(&nested["block"], names);
    }
}

#[test]
fn every_schema_attribute_is_documented_on_the_resource_page() {
    let Some(client) = clients().into_iter().next() else {
        return;
    };
    let schema = schema_json(&client);
    let block = &schema["provider_schemas"][PROVIDER_ADDRESS]["resource_schemas"]
        ["rdsrot_rotation"]["block"];
    let mut names = BTreeSet::new();
    schema_names(block, &mut names);
    assert!(
        names.len() > 10,
        "suspiciously few names in the schema: {names:?}"
    );
    let page_path = repo_root().join("docs/resources/rotation.md");
    let page = std::fs::read_to_string(&page_path)
        .unwrap_or_else(|e| panic!("the resource page {} is missing: {e}", page_path.display()));
    let missing: Vec<_> = names
        .iter()
        .filter(|name| !page.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "attributes of `terraform providers schema -json` not documented (as `name`) in docs/resources/rotation.md: {missing:?}"
    );
}

/// Every directory under `examples/` holding `.tf` files.
fn example_dirs() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut has_tf = false;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "tf") {
                has_tf = true;
            }
        }
        if has_tf {
            found.push(dir.to_path_buf());
        }
    }
    let mut found = Vec::new();
    walk(&repo_root().join("examples"), &mut found);
    found.sort();
    found
}

#[test]
fn every_example_passes_terraform_validate() {
    let examples = example_dirs();
    let root = repo_root().join("examples");
    for expected in [
        "provider",
        "quickstart",
        "resources/rdsrot_rotation",
        "invalid",
    ] {
        assert!(
            examples.contains(&root.join(expected)),
            "examples/{expected} is missing (found {examples:?})"
        );
    }
    for client in clients() {
        for example in examples
            .iter()
            .filter(|e| !e.ends_with("invalid") && client.can_parse(e))
        {
            let ws = Workspace::new(&client);
            ws.copy_from(example);
            if !ws.path().join("versions.tf").exists() && !mentions_required_providers(ws.path()) {
                ws.write("zz_required_providers.tf", &required_providers_block());
            }
            let run = ws.terraform(&["validate", "-no-color"]);
            assert_eq!(
                run.code,
                0,
                "{client}: terraform validate fails on {}:\n{}",
                example.display(),
                run.output()
            );
        }
    }
}

fn mentions_required_providers(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|text| text.contains("required_providers"))
}

#[test]
fn the_invalid_example_fails_validation_naming_the_attribute() {
    let invalid = repo_root().join("examples/invalid");
    assert!(invalid.is_dir(), "examples/invalid is missing");
    for client in clients() {
        let ws = Workspace::new(&client);
        ws.copy_from(&invalid);
        if !mentions_required_providers(ws.path()) {
            ws.write("zz_required_providers.tf", &required_providers_block());
        }
        let run = ws.terraform(&["validate", "-no-color"]);
        assert_ne!(
            run.code,
            0,
            "{client}: examples/invalid validated:\n{}",
            run.output()
        );
        run.assert_mentions("automatically_after_days");
    }
}

#[test]
fn the_readme_example_passes_terraform_validate() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    // The example of the "## Example" section (other sections show
    // fragments, such as a provider block for the local emulator).
    let example: String = readme
        .split("\n## Example\n")
        .nth(1)
        .and_then(|section| section.split("```hcl").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has an ```hcl example")
        .to_owned();
    for client in clients() {
        let ws = Workspace::new(&client);
        ws.write("main.tf", &example);
        let run = ws.terraform(&["validate", "-no-color"]);
        assert_eq!(
            run.code,
            0,
            "{client}: the README example does not validate:\n{}",
            run.output()
        );
    }
}

#[test]
fn the_ci_drift_example_fails_the_job_on_plan_exit_code_2() {
    let path = repo_root().join("examples/ci/drift-detection.yml");
    let workflow =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        workflow.contains("schedule:"),
        "the workflow runs on a schedule"
    );
    assert!(
        workflow.contains("plan -detailed-exitcode"),
        "the workflow runs plan -detailed-exitcode"
    );
    assert!(
        workflow.contains("exit 1") || workflow.contains("exit 2"),
        "the workflow fails on drift"
    );
}

/// Nothing of ours left after `client`'s destroy (the shared check).
fn assert_nothing_left(
    emulator: &Emulator,
    client: &Client,
    secret_arn: &str,
    lambda: &str,
    role: &str,
) {
    eprintln!("{client}: checking what destroy left for {secret_arn}");
    block_on(observe::assert_nothing_left(
        emulator,
        secret_arn,
        Some(lambda),
        Some(role),
    ));
}

#[test]
fn quickstart_example_applies_plans_empty_and_destroys() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (secret, master) = block_on(async {
            let master = create_database_secret(&sm, "app/db-master", "postgres", None).await;
            let secret = create_database_secret(&sm, "app/db", "postgres", Some(&master.arn)).await;
            (secret, master)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.copy_from(&repo_root().join("examples/quickstart"));
        ws.forbid(&secret.password);
        ws.forbid(&master.password);
        ws.write(
            "terraform.tfvars",
            &format!(
                "region              = \"us-east-1\"\ndatabase_secret_arn = \"{}\"\nmaster_secret_arn   = \"{}\"\nsubnet_ids          = [\"subnet-0a1b2c3d4e5f60718\", \"subnet-0f1e2d3c4b5a69788\"]\nsecurity_group_ids  = [\"sg-0123456789abcdef0\"]\n",
                secret.arn, master.arn
            ),
        );
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let values = ws.resource_values("rdsrot_rotation.app_db");
        assert_eq!(
            values["rotation_rules"][0]["automatically_after_days"], 44,
            "{client}: {values:#}"
        );
        let outputs = ws.terraform(&["output", "-json"]);
        outputs.assert_success();
        let outputs: Value = serde_json::from_str(&outputs.stdout).unwrap_or_default();
        let lambda = outputs["rotation_lambda_arn"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let role = outputs["rotation_lambda_role_arn"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            lambda.starts_with("arn:aws:lambda:"),
            "{client}: outputs {outputs:#}"
        );
        let (enabled, used) = block_on(rotation_status(&emulator, &secret.arn));
        assert!(
            enabled && used.as_deref() == Some(lambda.as_str()),
            "{client}: rotation uses {used:?}"
        );
        ws.destroy(&[]);
        assert_nothing_left(&emulator, &client, &secret.arn, &lambda, &role);
        ws.assert_no_leaks();
    }
}

/// The data-source example and the module example, applied as users would
/// with every client (Terraform 1.0.3 included): the data source reports a
/// secret without rotation as such; a root configuration calling the
/// module turns rotation on at the interval its limit allows, plans empty,
/// and destroys clean.
#[test]
fn data_source_and_module_examples_apply_plan_empty_and_destroy() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (orders, billing) = block_on(async {
            // The data-source example names this secret.
            let orders = create_database_secret(&sm, "orders/db", "mysql", None).await;
            let billing = create_database_secret(&sm, "billing/db", "mysql", None).await;
            (orders, billing)
        });

        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.copy_from(&repo_root().join("examples/data-sources/rdsrot_rotation_status"));
        ws.write("zz_required_providers.tf", &required_providers_block());
        ws.forbid(&orders.password);
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let outputs = ws.terraform(&["output", "-json"]);
        outputs.assert_success();
        let outputs: Value = serde_json::from_str(&outputs.stdout).unwrap_or_default();
        assert_eq!(
            outputs["orders_rotation_problems"]["value"],
            serde_json::json!(["Rotation is turned off for this secret."]),
            "{client}: {outputs:#}"
        );
        ws.destroy(&[]);
        ws.assert_no_leaks();

        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        let module = ws.path().join("rotation");
        std::fs::create_dir(&module).expect("a directory for the module");
        for file in ["main.tf", "variables.tf", "outputs.tf", "versions.tf"] {
            std::fs::copy(
                repo_root().join("examples/modules/rotation").join(file),
                module.join(file),
            )
            .unwrap_or_else(|e| panic!("copy the module's {file}: {e}"));
        }
        ws.write(
            "main.tf",
            &format!(
                r#"{}
module "billing" {{
  source                  = "./rotation"
  secret_id               = "{}"
  rotation_type           = "mysql_single_user"
  max_credential_age_days = 30
}}

output "lambda" {{
  value = module.billing.rotation_lambda_arn
}}
"#,
                required_providers_block(),
                billing.arn
            ),
        );
        ws.forbid(&billing.password);
        // Local modules are installed by `get`; `init` would look for the
        // provider in a registry, which dev_overrides make unnecessary.
        ws.terraform(&["get", "-no-color"]).assert_success();
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        let values = ws.resource_values("module.billing.rdsrot_rotation.this");
        assert_eq!(
            values["rotation_rules"][0]["automatically_after_days"], 29,
            "{client}: one day less than the 30-day limit: {values:#}"
        );
        let lambda = text(&values, "rotation_lambda_arn");
        let role = text(&values, "rotation_lambda_role_arn");
        let (enabled, used) = block_on(rotation_status(&emulator, &billing.arn));
        assert!(
            enabled && used.as_deref() == Some(lambda.as_str()),
            "{client}: rotation uses {used:?}"
        );
        ws.destroy(&[]);
        assert_nothing_left(&emulator, &client, &billing.arn, &lambda, &role);
        ws.assert_no_leaks();
    }
}

#[test]
fn resource_examples_apply_plan_empty_and_destroy() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (secrets, master) = block_on(async {
            let orders = create_database_secret(&sm, "orders/db", "mysql", None).await;
            let master = create_database_secret(&sm, "reports/db-master", "postgres", None).await;
            let reports =
                create_database_secret(&sm, "reports/db", "postgres", Some(&master.arn)).await;
            let billing = create_database_secret(&sm, "billing/db", "mysql", None).await;
            // The example's default ARN names this function in this account and region.
            create_existing_rotation_lambda(&emulator.sdk_config(), "billing-db-rotation").await;
            (vec![orders, reports, billing], master)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.copy_from(&repo_root().join("examples/resources/rdsrot_rotation"));
        for secret in secrets.iter().chain([&master]) {
            ws.forbid(&secret.password);
        }
        let vars = [("reports_master_secret_arn", master.arn.as_str())];
        ws.apply(&vars);
        ws.plan(&vars).assert_code(0);
        // Import by the secret's name, as the example's import.sh shows.
        ws.terraform(&["state", "rm", "rdsrot_rotation.single_user"])
            .assert_success();
        let master_var = format!("reports_master_secret_arn={}", master.arn);
        ws.terraform(&[
            "import",
            "-input=false",
            "-no-color",
            "-var",
            master_var.as_str(),
            "rdsrot_rotation.single_user",
            "orders/db",
        ])
        .assert_success();
        ws.plan(&vars).assert_code(0);
        let mut made = Vec::new();
        for (name, secret) in ["single_user", "multi_user", "existing_lambda"]
            .iter()
            .zip(&secrets)
        {
            let values = ws.resource_values(&format!("rdsrot_rotation.{name}"));
            assert_eq!(text(&values, "secret_arn"), secret.arn, "{client}: {name}");
            let lambda = text(&values, "rotation_lambda_arn");
            let (enabled, used) = block_on(rotation_status(&emulator, &secret.arn));
            assert!(
                enabled && used.as_deref() == Some(lambda.as_str()),
                "{client}: {name} uses {used:?}"
            );
            made.push((
                secret.arn.clone(),
                lambda,
                text(&values, "rotation_lambda_role_arn"),
            ));
        }
        ws.destroy(&vars);
        for (secret_arn, lambda, role) in &made {
            assert_nothing_left(&emulator, &client, secret_arn, lambda, role);
        }
        block_on(
            emulator
                .lambda()
                .get_function()
                .function_name("billing-db-rotation")
                .send(),
        )
        .expect("destroy leaves the existing Lambda alone");
        ws.assert_no_leaks();
    }
}

// ---------------------------------------------------------------------------
// Apply, plan, import, destroy for each way of using the resource
// ---------------------------------------------------------------------------

/// One way of configuring the resource, with the AWS objects it needs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    /// A repository template, one user, no VPC, a day count.
    SingleUser,
    /// A repository template, alternating users, a master secret, in a VPC,
    /// the compliance form of the schedule (the quickstart's shape).
    MultiUserInVpc,
    /// A Lambda the user already has, a schedule expression with a window.
    ExistingLambda,
}

struct Fixture {
    secret: DatabaseSecret,
    master: Option<DatabaseSecret>,
    existing_lambda: Option<String>,
}

impl Fixture {
    async fn create(emulator: &Emulator, variant: Variant) -> Fixture {
        let sm = emulator.secretsmanager();
        let (secret, master, existing_lambda) = match variant {
            Variant::SingleUser => (
                create_database_secret(&sm, "app-db", "postgres", None).await,
                None,
                None,
            ),
            Variant::MultiUserInVpc => {
                let master = create_database_secret(&sm, "app-db-master", "postgres", None).await;
                let secret =
                    create_database_secret(&sm, "app-db", "postgres", Some(&master.arn)).await;
                (secret, Some(master), None)
            }
            Variant::ExistingLambda => {
                let lambda =
                    create_existing_rotation_lambda(&emulator.sdk_config(), "team-rotator").await;
                (
                    create_database_secret(&sm, "app-db", "mysql", None).await,
                    None,
                    Some(lambda),
                )
            }
        };
        Fixture {
            secret,
            master,
            existing_lambda,
        }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![("secret_id", self.secret.arn.clone())];
        if let Some(master) = &self.master {
            vars.push(("master_secret_arn", master.arn.clone()));
        }
        if let Some(lambda) = &self.existing_lambda {
            vars.push(("rotation_lambda_arn", lambda.clone()));
        }
        vars
    }
}

fn config(variant: Variant) -> String {
    let body = match variant {
        Variant::SingleUser => {
            r#"
resource "rdsrot_rotation" "this" {
  secret_id     = var.secret_id
  rotation_type = "postgresql_single_user"

  rotation_rules {
    automatically_after_days = 30
  }
}
"#
        }
        Variant::MultiUserInVpc => {
            r#"
variable "master_secret_arn" {
  type = string
}

resource "rdsrot_rotation" "this" {
  secret_id              = var.secret_id
  rotation_type          = "postgresql_multi_user"
  master_secret_arn      = var.master_secret_arn
  vpc_subnet_ids         = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
  vpc_security_group_ids = ["sg-0123456789abcdef0"]

  rotation_rules {
    max_credential_age_days = 90
  }
}
"#
        }
        Variant::ExistingLambda => {
            r#"
variable "rotation_lambda_arn" {
  type = string
}

resource "rdsrot_rotation" "this" {
  secret_id           = var.secret_id
  rotation_lambda_arn = var.rotation_lambda_arn

  rotation_rules {
    schedule_expression = "rate(10 days)"
    duration            = "2h"
  }
}
"#
        }
    };
    format!(
        "{}\nprovider \"rdsrot\" {{}}\n\nvariable \"secret_id\" {{\n  type = string\n}}\n{body}",
        required_providers_block()
    )
}

/// A workspace with the variant's config, the emulator's environment, and
/// the fixture's passwords forbidden everywhere.
fn workspace(
    client: &Client,
    emulator: &Emulator,
    variant: Variant,
    fixture: &Fixture,
) -> Workspace {
    let mut ws = Workspace::new(client).with_emulator(emulator);
    ws.write("main.tf", &config(variant));
    ws.forbid(&fixture.secret.password);
    if let Some(master) = &fixture.master {
        ws.forbid(&master.password);
    }
    ws
}

fn vars_ref<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn text(values: &Value, key: &str) -> String {
    values[key].as_str().unwrap_or_default().to_owned()
}

/// The attributes and blocks a plan's diff marks as added, removed or changed.
fn changed_attributes(plan: &str) -> Vec<String> {
    plan.lines()
        .skip_while(|line| !line.contains("will perform the following actions"))
        .take_while(|line| !line.starts_with("Plan:"))
        .map(str::trim_start)
        .filter_map(|line| {
            let rest = line
                .strip_prefix("+ ")
                .or_else(|| line.strip_prefix("- "))
                .or_else(|| line.strip_prefix("~ "))?;
            let name = rest.split_whitespace().next()?;
            (name != "resource").then(|| name.to_owned())
        })
        .collect()
}

/// apply, empty plan, state checks, import, empty plan, destroy, and the
/// AWS API shows nothing of ours left: for one variant and every client.
fn full_lifecycle(variant: Variant) {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let fixture = block_on(Fixture::create(&emulator, variant));
        let ws = workspace(&client, &emulator, variant, &fixture);
        let vars = fixture.vars();
        let vars = vars_ref(&vars);

        ws.apply(&vars);
        ws.plan(&vars).assert_code(0);

        let values = ws.resource_values(RESOURCE);
        assert_eq!(text(&values, "secret_arn"), fixture.secret.arn, "{client}");
        assert_eq!(text(&values, "id"), fixture.secret.arn, "{client}");
        let lambda = text(&values, "rotation_lambda_arn");
        let role = text(&values, "rotation_lambda_role_arn");
        assert!(
            lambda.starts_with("arn:aws:lambda:"),
            "{client}: {values:#}"
        );
        assert!(role.starts_with("arn:aws:iam::"), "{client}: {values:#}");
        let (enabled, used) = block_on(rotation_status(&emulator, &fixture.secret.arn));
        assert!(enabled, "{client}: rotation is not on after apply");
        assert_eq!(used.as_deref(), Some(lambda.as_str()), "{client}");
        let statements = block_on(statements_for_secret(
            &emulator,
            &lambda,
            &fixture.secret.arn,
        ));
        assert_eq!(
            statements.len(),
            1,
            "{client}: one invoke permission scoped to the secret: {statements:?}"
        );
        assert!(
            statements[0].to_string().contains(ACCOUNT_ID),
            "{client}: {statements:?}"
        );
        match variant {
            Variant::SingleUser => {
                assert_eq!(text(&values, "rotation_type"), "postgresql_single_user");
                assert!(
                    text(&values, "stack_id").contains(":stack/serverlessrepo-"),
                    "{values:#}"
                );
                assert_eq!(values["rotation_rules"][0]["automatically_after_days"], 30);
            }
            Variant::MultiUserInVpc => {
                assert!(
                    text(&values, "stack_id").contains(":stack/serverlessrepo-"),
                    "{values:#}"
                );
                // Two intervals of 44 days, each up to a day late: 90 days.
                assert_eq!(
                    values["rotation_rules"][0]["automatically_after_days"], 44,
                    "{values:#}"
                );
                assert_eq!(
                    block_on(our_role_policies(&emulator.sdk_config(), &role)).len(),
                    1,
                    "{client}: master policy"
                );
                let function = block_on(
                    emulator
                        .lambda()
                        .get_function_configuration()
                        .function_name(&lambda)
                        .send(),
                )
                .expect("the template's function");
                let subnets = function
                    .vpc_config()
                    .map(|v| v.subnet_ids().len())
                    .unwrap_or(0);
                assert_eq!(subnets, 2, "{client}: the function is in the VPC");
            }
            Variant::ExistingLambda => {
                assert_eq!(lambda, fixture.existing_lambda.clone().unwrap_or_default());
                assert!(values["stack_id"].is_null(), "{values:#}");
                let described = block_on(
                    emulator
                        .secretsmanager()
                        .describe_secret()
                        .secret_id(&fixture.secret.arn)
                        .send(),
                )
                .expect("describe");
                let rules = described.rotation_rules().expect("rules");
                assert_eq!(rules.schedule_expression(), Some("rate(10 days)"));
                assert_eq!(rules.duration(), Some("2h"));
            }
        }

        // Import: forget it, import by ARN, and the plan is empty again.
        ws.terraform(&["state", "rm", RESOURCE]).assert_success();
        let mut import: Vec<String> =
            vec!["import".into(), "-input=false".into(), "-no-color".into()];
        for (name, value) in &vars {
            import.push("-var".into());
            import.push(format!("{name}={value}"));
        }
        import.push(RESOURCE.into());
        import.push(fixture.secret.arn.clone());
        ws.terraform(&import).assert_success();
        let after_import = ws.plan(&vars);
        if variant == Variant::MultiUserInVpc && after_import.code == 2 {
            // AWS keeps only the resulting day count, never the
            // compliance limit it was derived from, so an import cannot
            // know `max_credential_age_days`: the one change allowed is
            // adding it back to the state (an apply with no AWS change).
            let changed = changed_attributes(&after_import.stdout);
            assert!(
                changed.iter().all(|a| a == "rotation_rules" || a == "max_credential_age_days"),
                "{client}: after import the plan changes more than max_credential_age_days: {changed:?}\n{}",
                after_import.output()
            );
            ws.apply(&vars);
            ws.plan(&vars).assert_code(0);
        } else {
            after_import.assert_code(0);
        }

        let before_destroy = emulator.last_request();
        ws.destroy(&vars);
        let destroy_requests = emulator.requests_after(before_destroy);
        assert_nothing_left(&emulator, &client, &fixture.secret.arn, &lambda, &role);
        if variant != Variant::ExistingLambda {
            // The stack deletion takes the Lambda's policy with it, and the
            // tags come with GetFunction (100 requests per second): the
            // destroy spends none of Lambda's 15 control-plane requests per
            // second on a function it is about to delete.
            let sent: Vec<String> = destroy_requests
                .into_iter()
                .filter(|r| !r.function)
                .map(|r| r.call)
                .collect();
            let control: Vec<&String> = sent
                .iter()
                .filter(|c| c.starts_with("lambda:") && !c.starts_with("lambda:GetFunction"))
                .filter(|c| *c != "lambda:GetPolicy")
                .collect();
            assert!(
                control.is_empty(),
                "{client}: the destroy sent Lambda control-plane calls: {control:?}; all: {sent:?}"
            );
            let policy_reads = sent.iter().filter(|c| *c == "lambda:GetPolicy").count();
            assert!(
                policy_reads <= 1,
                "{client}: only the destroy's refresh reads the policy: {sent:?}"
            );
            assert!(
                sent.iter().any(|c| c == "cloudformation:DeleteStack"),
                "{client}: {sent:?}"
            );
        }
        if variant == Variant::ExistingLambda {
            block_on(
                emulator
                    .lambda()
                    .get_function()
                    .function_name(&lambda)
                    .send(),
            )
            .expect("destroy leaves the user's own Lambda alone");
        }
        ws.assert_no_leaks();
    }
}

#[test]
fn single_user_template_lifecycle() {
    full_lifecycle(Variant::SingleUser);
}

#[test]
fn multi_user_template_in_vpc_lifecycle() {
    full_lifecycle(Variant::MultiUserInVpc);
}

#[test]
fn existing_lambda_lifecycle() {
    full_lifecycle(Variant::ExistingLambda);
}

// ---------------------------------------------------------------------------
// Drift: each out-of-band change is shown by plan, named, and repaired
// ---------------------------------------------------------------------------

/// What the drifted resource looked like in the state before the change.
/// Applies the variant the drift case needs, makes its change behind
/// Terraform's back, and checks: plan exits 2 naming one of its attributes,
/// apply repairs, plan exits 0, and destroy leaves nothing.
fn drift_case(drift: Drift) {
    let variant = if drift.needs_multi_user_template() {
        Variant::MultiUserInVpc
    } else if drift == Drift::LambdaSwitched {
        Variant::ExistingLambda
    } else {
        Variant::SingleUser
    };
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let fixture = block_on(Fixture::create(&emulator, variant));
        let ws = workspace(&client, &emulator, variant, &fixture);
        let vars = fixture.vars();
        let vars = vars_ref(&vars);
        ws.apply(&vars);
        ws.plan(&vars).assert_code(0);
        let values = ws.resource_values(RESOURCE);
        let applied = Applied {
            secret_arn: text(&values, "secret_arn"),
            lambda: text(&values, "rotation_lambda_arn"),
            role: text(&values, "rotation_lambda_role_arn"),
            statement_id: text(&values, "permission_statement_id"),
            stack_id: text(&values, "stack_id"),
        };

        block_on(drift.inflict(&emulator.sdk_config(), &applied));

        let (changed, unknown) = planned_changes(&ws, &vars);
        let named = drift.attributes();
        // Values the provider can tell must be those of the drift; values
        // only apply will know (a new stack's Lambda, whether the repaired
        // rotation verifies) may follow from the repair.
        let unexpected: Vec<_> = changed
            .iter()
            .filter(|path| !path_names_any(path, named))
            .collect();
        assert!(
            changed
                .iter()
                .chain(&unknown)
                .any(|path| path_names_any(path, named))
                && unexpected.is_empty(),
            "{client}: {drift:?}: the plan changes {changed:?} and leaves unknown {unknown:?}; \
             expected changes of {named:?} only"
        );
        ws.apply(&vars);
        ws.plan(&vars).assert_code(0);
        let (enabled, used) = block_on(rotation_status(&emulator, &applied.secret_arn));
        assert!(
            enabled,
            "{client}: {drift:?}: rotation is off after the repair"
        );
        let lambda = text(&ws.resource_values(RESOURCE), "rotation_lambda_arn");
        assert_eq!(
            used.as_deref(),
            Some(lambda.as_str()),
            "{client}: {drift:?}: rotation uses another Lambda"
        );
        assert_eq!(
            block_on(statements_for_secret(
                &emulator,
                &lambda,
                &applied.secret_arn
            ))
            .len(),
            1,
            "{client}: {drift:?}: the invoke permission is back"
        );
        let role = text(&ws.resource_values(RESOURCE), "rotation_lambda_role_arn");
        ws.destroy(&vars);
        assert_nothing_left(&emulator, &client, &applied.secret_arn, &lambda, &role);
        ws.assert_no_leaks();
    }
}

/// Whether a dotted attribute path (`rotation_rules.0.automatically_after_days`)
/// names one of `attributes` at any depth.
fn path_names_any(path: &str, attributes: &[&str]) -> bool {
    path.split('.').any(|segment| attributes.contains(&segment))
}

/// Plans into a file and reads it with `terraform show -json`: the paths of
/// the attributes of `RESOURCE` whose planned value differs from the prior
/// one, and of those unknown until apply, as dotted paths with list indexes
/// (`rotation_rules.0.automatically_after_days`). The plan must exit 2.
fn planned_changes(ws: &Workspace, vars: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let mut args: Vec<String> = [
        "plan",
        "-detailed-exitcode",
        "-input=false",
        "-no-color",
        "-out=drift.tfplan",
    ]
    .map(String::from)
    .to_vec();
    for (name, value) in vars {
        args.push("-var".into());
        args.push(format!("{name}={value}"));
    }
    ws.terraform(&args).assert_code(2);
    let shown = ws.terraform(&["show", "-json", "-no-color", "drift.tfplan"]);
    shown.assert_success();
    let plan: Value = serde_json::from_str(&shown.stdout).unwrap_or_else(|e| {
        panic!(
            "show -json of the plan is not JSON ({e}):\n{}",
            shown.stdout
        )
    });
    let change = plan["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["address"] == RESOURCE)
        .map(|c| &c["change"])
        .unwrap_or_else(|| panic!("the plan has no change of {RESOURCE}: {plan:#}"));
    let (mut changed, mut unknown) = (Vec::new(), Vec::new());
    diff_paths(
        "",
        &change["before"],
        &change["after"],
        &change["after_unknown"],
        &mut changed,
        &mut unknown,
    );
    (changed, unknown)
}

/// Appends the paths below `prefix` where `after_unknown` marks the value
/// unknown to `unknown`, and those where `before` and `after` differ to
/// `changed`.
fn diff_paths(
    prefix: &str,
    before: &Value,
    after: &Value,
    after_unknown: &Value,
    changed: &mut Vec<String>,
    unknown: &mut Vec<String>,
) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    if after_unknown == &Value::Bool(true) {
        unknown.push(prefix.to_owned());
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for key in keys {
                diff_paths(
                    &join(key),
                    b.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                    after_unknown.get(key).unwrap_or(&Value::Null),
                    changed,
                    unknown,
                );
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for i in 0..b.len().max(a.len()) {
                diff_paths(
                    &join(&i.to_string()),
                    b.get(i).unwrap_or(&Value::Null),
                    a.get(i).unwrap_or(&Value::Null),
                    after_unknown.get(i).unwrap_or(&Value::Null),
                    changed,
                    unknown,
                );
            }
        }
        (b, a) if b != a => changed.push(prefix.to_owned()),
        _ => {}
    }
}

#[test]
fn drift_rotation_cancelled() {
    drift_case(Drift::RotationCancelled);
}

#[test]
fn drift_schedule_changed() {
    drift_case(Drift::ScheduleChanged);
}

#[test]
fn drift_lambda_switched() {
    drift_case(Drift::LambdaSwitched);
}

#[test]
fn drift_invoke_permission_removed() {
    drift_case(Drift::PermissionRemoved);
}

#[test]
fn drift_master_secret_policy_removed() {
    drift_case(Drift::MasterPolicyRemoved);
}

#[test]
fn drift_master_secret_policy_edited() {
    drift_case(Drift::MasterPolicyEdited);
}

#[test]
fn drift_lambda_vpc_placement_changed() {
    drift_case(Drift::VpcMoved);
}

#[test]
fn drift_stack_deleted() {
    drift_case(Drift::StackDeleted);
}

// ---------------------------------------------------------------------------
// Installing from a filesystem mirror, as `make install` lays it out
// ---------------------------------------------------------------------------

fn crate_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-rdsrot_vVERSION`
fn lay_out_mirror(root: &Path) {
    let version = crate_version();
    let dir = root.join(format!(
        "registry.terraform.io/rdsrot/rdsrot/{version}/linux_amd64"
    ));
    std::fs::create_dir_all(&dir).expect("create the mirror directory");
    std::fs::copy(
        provider_binary(),
        dir.join(format!("terraform-provider-rdsrot_v{version}")),
    )
    .expect("copy the provider into the mirror");
}

#[test]
fn terraform_init_installs_from_a_filesystem_mirror() {
    for client in clients() {
        let mirror = tempfile::tempdir().expect("a mirror directory");
        lay_out_mirror(mirror.path());
        let config = format!(
            "terraform {{\n  required_providers {{\n    rdsrot = {{\n      source  = \"rdsrot/rdsrot\"\n      version = \"{}\"\n    }}\n  }}\n}}\n\nprovider \"rdsrot\" {{}}\n",
            crate_version()
        );

        // Through a `filesystem_mirror` block in the CLI configuration.
        let ws = Workspace::new(&client).with_cli_config(&filesystem_mirror_config(mirror.path()));
        ws.write("main.tf", &config);
        ws.terraform(&["init", "-input=false", "-no-color"])
            .assert_success();
        let lock =
            std::fs::read_to_string(ws.path().join(".terraform.lock.hcl")).unwrap_or_default();
        assert!(
            lock.contains(PROVIDER_ADDRESS),
            "{client}: lock file: {lock}"
        );
        ws.terraform(&["validate", "-no-color"]).assert_success();

        // Through `-plugin-dir`, with an empty CLI configuration.
        let ws = Workspace::new(&client).with_cli_config("");
        ws.write("main.tf", &config);
        let plugin_dir = format!("-plugin-dir={}", mirror.path().display());
        ws.terraform(&["init", "-input=false", "-no-color", plugin_dir.as_str()])
            .assert_success();
        ws.terraform(&["providers", "schema", "-json"])
            .assert_success();
    }
}

#[test]
fn every_engine_template_in_one_configuration_applies_plans_empty_and_destroys() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let fixtures: Vec<_> = block_on(async {
            let mut made = Vec::new();
            for rotation_type in NEW_ROTATION_TYPES {
                let (secret, master) =
                    engines::create_secrets(&sm, &format!("e2e/{rotation_type}"), rotation_type)
                        .await;
                made.push((rotation_type, secret, master));
            }
            made
        });
        let mut body = format!("{}\nprovider \"rdsrot\" {{}}\n", required_providers_block());
        for (rotation_type, secret, master) in &fixtures {
            let master_line = master
                .as_ref()
                .map(|m| format!("  master_secret_arn = \"{}\"\n", m.arn))
                .unwrap_or_default();
            body.push_str(&format!(
                "\nresource \"rdsrot_rotation\" \"{rotation_type}\" {{\n  secret_id     = \"{}\"\n  rotation_type = \"{rotation_type}\"\n{master_line}\n  rotation_rules {{\n    automatically_after_days = 30\n  }}\n}}\n",
                secret.arn
            ));
        }
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.write("main.tf", &body);
        for (_, secret, master) in &fixtures {
            ws.forbid(&secret.password);
            if let Some(m) = master {
                ws.forbid(&m.password);
            }
        }

        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);

        let mut made = Vec::new();
        for (rotation_type, secret, _) in &fixtures {
            let values = ws.resource_values(&format!("rdsrot_rotation.{rotation_type}"));
            let tpl = engines::template_of(rotation_type);
            assert_eq!(
                values["template_version"].as_str(),
                tpl.default_version("us-east-1"),
                "{client}: {rotation_type}: {values:#}"
            );
            let lambda = text(&values, "rotation_lambda_arn");
            let role = text(&values, "rotation_lambda_role_arn");
            let (enabled, used) = block_on(rotation_status(&emulator, &secret.arn));
            assert!(
                enabled && used.as_deref() == Some(lambda.as_str()),
                "{client}: {rotation_type} rotates with {used:?}, not {lambda}"
            );
            assert_eq!(
                block_on(our_role_policies(&emulator.sdk_config(), &role)).len(),
                usize::from(tpl.needs_master_secret),
                "{client}: {rotation_type}: the master-secret policy"
            );
            made.push((secret.arn.clone(), lambda, role));
        }
        assert_eq!(
            block_on(live_stacks(&emulator)).len(),
            NEW_ROTATION_TYPES.len(),
            "{client}: one stack per resource"
        );

        ws.destroy(&[]);
        for (secret_arn, lambda, role) in &made {
            assert_nothing_left(&emulator, &client, secret_arn, lambda, role);
        }
        ws.assert_no_leaks();
    }
}

// ---------------------------------------------------------------------------
// Pre-flight check of the secret
// ---------------------------------------------------------------------------

/// A multi-user secret without `masterarn` fails `terraform plan` naming the
/// key, with nothing made; once the secret is fixed, a full apply under
/// `TF_LOG=trace` reads it and leaves its password in no output, log or
/// state (the workspace forbids both passwords in every run).
#[test]
fn preflight_refuses_a_bad_secret_at_plan_and_leaks_no_value_of_a_good_one() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (master, secret) = block_on(async {
            let master = create_database_secret(&sm, "app-db-master", "postgres", None).await;
            let secret = create_database_secret(&sm, "app-db", "postgres", None).await;
            (master, secret)
        });
        let fixture = Fixture {
            secret,
            master: Some(master),
            existing_lambda: None,
        };
        let ws = workspace(&client, &emulator, Variant::MultiUserInVpc, &fixture);
        let vars = fixture.vars();
        let vars = vars_ref(&vars);

        ws.plan(&vars)
            .assert_code(1)
            .assert_mentions("Error: The secret's JSON has no \"masterarn\" key");
        assert!(
            block_on(live_stacks(&emulator)).is_empty(),
            "{client}: a refused plan made a stack"
        );
        assert!(!block_on(rotation_status(&emulator, &fixture.secret.arn)).0);

        let master_arn = fixture.master.as_ref().map(|m| m.arn.clone());
        block_on(
            sm.put_secret_value()
                .secret_id(&fixture.secret.arn)
                .secret_string(rds_secret_json(
                    "postgres",
                    "app-db_user",
                    &fixture.secret.password,
                    master_arn.as_deref(),
                ))
                .send(),
        )
        .expect("put the fixed value");
        ws.apply(&vars);
        assert!(block_on(rotation_status(&emulator, &fixture.secret.arn)).0);
        ws.plan(&vars).assert_code(0);
        let values = ws.resource_values(RESOURCE);
        ws.destroy(&vars);
        assert_nothing_left(
            &emulator,
            &client,
            &fixture.secret.arn,
            &text(&values, "rotation_lambda_arn"),
            &text(&values, "rotation_lambda_role_arn"),
        );
        ws.assert_no_leaks();
    }
}

// ---------------------------------------------------------------------------
// Lambda changes take time
// ---------------------------------------------------------------------------

/// Lambda refuses a change while a function is being created (`State:
/// Pending`) or changed (`LastUpdateStatus: InProgress`). A VPC placement
/// on an existing Lambda still being created waits for it instead of
/// failing, and destroy puts the Lambda back out of the VPC.
#[test]
fn a_placement_on_a_lambda_still_being_created_waits_for_it() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        // Pending long enough for the apply to meet it; the placement the
        // apply makes then takes the usual second.
        emulator.set_lambda_change_seconds(20.0);
        let fixture = block_on(Fixture::create(&emulator, Variant::ExistingLambda));
        emulator.set_lambda_change_seconds(1.0);
        let lambda = fixture.existing_lambda.clone().expect("an existing Lambda");
        let pending = block_on(
            emulator
                .lambda()
                .get_function()
                .function_name(&lambda)
                .send(),
        )
        .expect("GetFunction");
        assert_eq!(
            pending.configuration().and_then(|c| c.state()),
            Some(&aws_sdk_lambda::types::State::Pending),
            "{client}: the Lambda is still being created when apply starts"
        );
        let ws = workspace(&client, &emulator, Variant::ExistingLambda, &fixture);
        ws.write(
            "main.tf",
            &config(Variant::ExistingLambda).replace(
                "  rotation_lambda_arn = var.rotation_lambda_arn\n",
                "  rotation_lambda_arn = var.rotation_lambda_arn\n  vpc_subnet_ids         = [\"subnet-0a1b2c3d4e5f60718\"]\n  vpc_security_group_ids = [\"sg-0123456789abcdef0\"]\n",
            ),
        );
        let vars = fixture.vars();
        let vars = vars_ref(&vars);
        ws.apply(&vars);
        let placed = block_on(
            emulator
                .lambda()
                .get_function_configuration()
                .function_name(&lambda)
                .send(),
        )
        .expect("GetFunctionConfiguration");
        assert_eq!(
            placed.vpc_config().map(|v| v.subnet_ids().to_vec()),
            Some(vec!["subnet-0a1b2c3d4e5f60718".to_owned()]),
            "{client}: the Lambda is in the VPC"
        );
        ws.plan(&vars).assert_code(0);
        let role = text(&ws.resource_values(RESOURCE), "rotation_lambda_role_arn");
        ws.destroy(&vars);
        assert_nothing_left(&emulator, &client, &fixture.secret.arn, &lambda, &role);
        ws.assert_no_leaks();
    }
}
