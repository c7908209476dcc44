//! The provider functions through real Terraform: 1.8 and later list them
//! in `terraform providers schema -json` and evaluate them in outputs (the
//! repository's `examples/functions`); a bad argument fails the run naming
//! it. Clients older than 1.8 cannot parse a function call and are left out
//! here (`every_example_passes_terraform_validate` leaves the example out
//! for them too).

use serde_json::Value;

use crate::support::moto::repo_root;
use crate::support::terraform::{
    clients_at_least, required_providers_block, Client, Workspace, PROVIDER_ADDRESS,
};

const POSTGRESQL_MULTI_USER_APPLICATION: &str =
    "arn:aws:serverlessrepo:us-east-1:297356227824:applications/SecretsManagerRDSPostgreSQLRotationMultiUser";

/// The clients that know provider functions.
fn function_clients() -> Vec<Client> {
    clients_at_least(1, 8, "provider functions end to end")
}

fn json_of(client: &Client, run: &crate::support::terraform::Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{client}: not JSON ({e}):\n{}", run.output()))
}

#[test]
fn providers_schema_lists_both_functions() {
    for client in function_clients() {
        let ws = Workspace::new(&client);
        ws.write(
            "main.tf",
            &format!("{}\nprovider \"rdsrot\" {{}}\n", required_providers_block()),
        );
        let run = ws.terraform(&["providers", "schema", "-json"]);
        run.assert_success();
        let schema = json_of(&client, &run);
        let functions = &schema["provider_schemas"][PROVIDER_ADDRESS]["functions"];
        let interval = &functions["rotation_interval_days"];
        assert_eq!(interval["return_type"], "number", "{client}: {functions:#}");
        let names: Vec<&str> = interval["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["max_credential_age_days", "strategy"],
            "{client}: {functions:#}"
        );
        let template = &functions["template_application_id"];
        assert_eq!(template["return_type"], "string", "{client}: {functions:#}");
        assert_eq!(
            template["parameters"][1]["type"], "string",
            "{client}: {functions:#}"
        );
    }
}

#[test]
fn the_functions_example_evaluates_its_outputs() {
    for client in function_clients() {
        let ws = Workspace::new(&client);
        ws.copy_from(&repo_root().join("examples/functions"));
        ws.apply(&[]);
        let run = ws.terraform(&["output", "-json", "-no-color"]);
        run.assert_success();
        let outputs = json_of(&client, &run);
        let value = |name: &str| outputs[name]["value"].clone();
        assert_eq!(value("rotation_interval_days"), 44, "{client}: {outputs:#}");
        assert_eq!(
            value("rotation_interval_days_for_type"),
            44,
            "{client}: {outputs:#}"
        );
        assert_eq!(
            value("template_application_id"),
            POSTGRESQL_MULTI_USER_APPLICATION,
            "{client}: {outputs:#}"
        );
        assert_eq!(
            value("template_application_id_china"),
            "arn:aws-cn:serverlessrepo:cn-north-1:193023089310:applications/SecretsManagerRDSPostgreSQLRotationMultiUser",
            "{client}: {outputs:#}"
        );

        // Another input through -var: a single user rotates a day early.
        ws.apply(&[("rotation_type", "mysql_single_user")]);
        let run = ws.terraform(&["output", "-json", "-no-color"]);
        let outputs = json_of(&client, &run);
        assert_eq!(
            outputs["rotation_interval_days_for_type"]["value"], 89,
            "{client}: {outputs:#}"
        );
    }
}

#[test]
fn a_bad_argument_fails_the_run_naming_it() {
    for client in function_clients() {
        for (call, mentions) in [
            (
                r#"provider::rdsrot::rotation_interval_days(1, "multi_user")"#,
                "max_credential_age_days = 1",
            ),
            (
                r#"provider::rdsrot::rotation_interval_days(30, "dual_user")"#,
                r#"strategy "dual_user""#,
            ),
            (
                r#"provider::rdsrot::template_application_id("cobol_single_user", "eu-west-1")"#,
                r#"rotation_type "cobol_single_user""#,
            ),
        ] {
            let ws = Workspace::new(&client);
            ws.write(
                "main.tf",
                &format!(
                    "{}\nprovider \"rdsrot\" {{\n  region = \"eu-west-1\"\n}}\n\noutput \"bad\" {{\n  value = {call}\n}}\n",
                    required_providers_block()
                ),
            );
            let run = ws.terraform(&["plan", "-input=false", "-no-color"]);
            assert_ne!(run.code, 0, "{client}: {call} planned:\n{}", run.output());
            // Terraform wraps long lines of the error: compare without them.
            let output = run
                .output()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                output.contains(mentions) && output.contains("Invalid function argument"),
                "{client}: {call} failed without naming the argument ({mentions}):\n{}",
                run.output()
            );
        }
    }
}
