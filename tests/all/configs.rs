//! Configurations as users write them, driven by real Terraform (both
//! clients) against the local AWS emulator: a `for_each` fleet whose
//! settings come from a map with nulls, variables that default to null, and
//! the common mistakes, each caught at validate or plan (never halfway
//! through an apply) with a message that names the attribute and the cause.

use crate::e2e::block_on;
use crate::support::moto::{create_database_secret, create_existing_rotation_lambda, Emulator};
use crate::support::observe::{assert_nothing_left, rotation_status};
use crate::support::terraform::{clients, required_providers_block, Client, Workspace};

const FLEET: &str = r#"
variable "secret_a" { type = string }
variable "secret_b" { type = string }
variable "secret_c" { type = string }
variable "secret_d" { type = string }
variable "lambda_arn" { type = string }

# Settings that an instance leaves out are null, as they are when they come
# from a map in a module's input.
locals {
  fleet = {
    a = { secret_id = var.secret_a, rotation_type = "postgresql_single_user", lambda = null, days = 7, schedule = null, duration = null }
    b = { secret_id = var.secret_b, rotation_type = "mysql_single_user", lambda = null, days = null, schedule = "rate(10 days)", duration = "2h" }
    c = { secret_id = var.secret_c, rotation_type = null, lambda = var.lambda_arn, days = 30, schedule = null, duration = null }
  }
}

resource "rdsrot_rotation" "fleet" {
  for_each            = local.fleet
  secret_id           = each.value.secret_id
  rotation_type       = each.value.rotation_type
  rotation_lambda_arn = each.value.lambda

  rotation_rules {
    automatically_after_days = each.value.days
    schedule_expression      = each.value.schedule
    duration                 = each.value.duration
  }
}

# A variable that defaults to null beside one that is set.
variable "days" {
  type    = number
  default = null
}
variable "schedule" {
  type    = string
  default = null
}
variable "other_lambda_arn" {
  type    = string
  default = null
}

resource "rdsrot_rotation" "single" {
  secret_id           = var.secret_d
  rotation_type       = "postgresql_single_user"
  rotation_lambda_arn = var.other_lambda_arn

  rotation_rules {
    automatically_after_days = var.days
    schedule_expression      = var.schedule
  }
}
"#;

fn provider_block(region: Option<&str>) -> String {
    let region = region
        .map(|r| format!("  region = \"{r}\"\n"))
        .unwrap_or_default();
    format!(
        "{}\nprovider \"rdsrot\" {{\n{region}}}\n",
        required_providers_block()
    )
}

#[test]
fn a_for_each_fleet_with_null_settings_validates_plans_applies_and_plans_empty() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        // Each secret's engine is its template's: the pre-flight check
        // refuses a MySQL template on a PostgreSQL secret.
        let [a, b, c, d] = [
            ("fleet-a", "postgres"),
            ("fleet-b", "mysql"),
            ("fleet-c", "postgres"),
            ("fleet-d", "postgres"),
        ]
        .map(|(name, engine)| block_on(create_database_secret(&sm, name, engine, None)));
        let lambda = block_on(create_existing_rotation_lambda(
            &emulator.sdk_config(),
            "fleet-rotator",
        ));
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        for secret in [&a, &b, &c, &d] {
            ws.forbid(&secret.password);
        }
        ws.write("main.tf", &format!("{}{FLEET}", provider_block(None)));
        let vars = [
            ("secret_a", a.arn.as_str()),
            ("secret_b", b.arn.as_str()),
            ("secret_c", c.arn.as_str()),
            ("secret_d", d.arn.as_str()),
            ("lambda_arn", lambda.as_str()),
            ("schedule", "rate(20 days)"),
        ];

        ws.terraform(&["validate", "-no-color"]).assert_success();
        ws.apply(&vars);
        ws.plan(&vars).assert_code(0);
        for secret in [&a, &b, &c, &d] {
            let (enabled, _) = block_on(rotation_status(&emulator, &secret.arn));
            assert!(enabled, "{client}: rotation of {} is not on", secret.name);
        }
        let b_values = ws.resource_values("rdsrot_rotation.fleet[\"b\"]");
        assert_eq!(
            b_values["rotation_rules"][0]["schedule_expression"], "rate(10 days)",
            "{client}"
        );
        assert!(
            b_values["rotation_rules"][0]["automatically_after_days"].is_null(),
            "{client}: {b_values:#}"
        );
        let c_values = ws.resource_values("rdsrot_rotation.fleet[\"c\"]");
        assert_eq!(c_values["rotation_lambda_arn"], lambda.as_str(), "{client}");
        ws.destroy(&vars);
        ws.assert_no_leaks();
        for secret in [&a, &b, &c, &d] {
            block_on(assert_nothing_left(
                &emulator,
                &secret.arn,
                Some(&lambda),
                None,
            ));
        }
    }
}

/// One mistake: its configuration, the phase that must catch it, and what
/// the message must say.
struct Mistake {
    name: &'static str,
    provider_region: Option<&'static str>,
    resource: String,
    /// "validate" or "plan": the first command that fails.
    caught_at: &'static str,
    summary: &'static str,
    /// The source line Terraform quotes for the attribute.
    attribute_line: &'static str,
}

fn mistakes(secret_arn: &str) -> Vec<Mistake> {
    let rules = "  rotation_rules {\n    automatically_after_days = 30\n  }\n";
    let missing_secret = secret_arn.replace("mistakes-db", "no-such-db");
    let missing_lambda = "arn:aws:lambda:us-east-1:123456789012:function:no-such-rotator";
    vec![
        Mistake {
            name: "a secret that does not exist",
            provider_region: None,
            resource: format!(
                "resource \"rdsrot_rotation\" \"this\" {{\n  secret_id     = \"{missing_secret}\"\n  rotation_type = \"postgresql_single_user\"\n{rules}}}\n"
            ),
            caught_at: "plan",
            summary: "Secret not found",
            attribute_line: "secret_id     =",
        },
        Mistake {
            name: "a secret in another region than the provider's",
            provider_region: Some("eu-west-1"),
            resource: format!(
                "resource \"rdsrot_rotation\" \"this\" {{\n  secret_id     = \"{secret_arn}\"\n  rotation_type = \"postgresql_single_user\"\n{rules}}}\n"
            ),
            caught_at: "plan",
            summary: "secret_id is in another region",
            attribute_line: "secret_id     =",
        },
        Mistake {
            name: "a rotation Lambda that does not exist",
            provider_region: None,
            resource: format!(
                "resource \"rdsrot_rotation\" \"this\" {{\n  secret_id           = \"{secret_arn}\"\n  rotation_lambda_arn = \"{missing_lambda}\"\n{rules}}}\n"
            ),
            caught_at: "plan",
            summary: "Rotation Lambda not found",
            attribute_line: "rotation_lambda_arn =",
        },
        Mistake {
            name: "a window longer than the interval",
            provider_region: None,
            resource: format!(
                "resource \"rdsrot_rotation\" \"this\" {{\n  secret_id     = \"{secret_arn}\"\n  rotation_type = \"postgresql_single_user\"\n  rotation_rules {{\n    schedule_expression = \"rate(4 hours)\"\n    duration            = \"6h\"\n  }}\n}}\n"
            ),
            caught_at: "validate",
            summary: "Rotation window longer than the schedule allows",
            attribute_line: "duration            =",
        },
    ]
}

fn assert_nothing_made(
    emulator: &Emulator,
    client: &Client,
    mistake: &str,
    secret_arn: &str,
    lambda: &str,
) {
    eprintln!("{client}: {mistake}: checking that nothing was made for {secret_arn}");
    block_on(assert_nothing_left(
        emulator,
        secret_arn,
        Some(lambda),
        None,
    ));
}

#[test]
fn each_common_mistake_fails_at_validate_or_plan_naming_the_attribute() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let secret = block_on(create_database_secret(
            &emulator.secretsmanager(),
            "mistakes-db",
            "postgres",
            None,
        ));
        let lambda = block_on(create_existing_rotation_lambda(
            &emulator.sdk_config(),
            "mistakes-rotator",
        ));
        for mistake in mistakes(&secret.arn) {
            let mut ws = Workspace::new(&client).with_emulator(&emulator);
            ws.forbid(&secret.password);
            ws.write(
                "main.tf",
                &format!(
                    "{}{}",
                    provider_block(mistake.provider_region),
                    mistake.resource
                ),
            );
            let validate = ws.terraform(&["validate", "-no-color"]);
            let failed = if mistake.caught_at == "validate" {
                validate.assert_code(1);
                validate
            } else {
                validate.assert_success();
                let plan = ws.plan(&[]);
                plan.assert_code(1);
                plan
            };
            failed
                .assert_mentions(mistake.summary)
                .assert_mentions(mistake.attribute_line);
            assert_nothing_made(&emulator, &client, mistake.name, &secret.arn, &lambda);
        }
    }
}

#[track_caller]
fn assert_said_once_in_plain_words(client: &Client, run: &crate::support::terraform::Run) {
    run.assert_code(1)
        .assert_mentions("No AWS credentials found");
    let output = run.output();
    assert_eq!(
        output.matches("No AWS credentials found").count(),
        1,
        "{client}: said more than once:\n{output}"
    );
    assert!(
        !output.contains("dispatch failure"),
        "{client}: the SDK's raw error leaked through:\n{output}"
    );
    assert!(
        output.contains("docs/index.md#authentication"),
        "{client}: no pointer to the docs:\n{output}"
    );
}

fn for_each_over(secrets: &[&str]) -> String {
    let keys: Vec<String> = secrets.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{}\nresource \"rdsrot_rotation\" \"this\" {{\n  for_each      = toset([{}])\n  secret_id     = each.key\n  rotation_type = \"postgresql_single_user\"\n  rotation_rules {{\n    automatically_after_days = 30\n  }}\n}}\n",
        provider_block(None),
        keys.join(", ")
    )
}

#[test]
fn missing_credentials_are_reported_once_in_plain_words() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        // No credentials anywhere; instance metadata stays disabled, so the
        // chain ends without a network call.
        let without_credentials = |ws: &mut Workspace| {
            ws.unset_env("AWS_ACCESS_KEY_ID");
            ws.unset_env("AWS_SECRET_ACCESS_KEY");
        };

        // Planning new resources: the plan-time look-ups.
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        without_credentials(&mut ws);
        let arn = |name: &str| {
            format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf")
        };
        ws.write(
            "main.tf",
            &for_each_over(&[&arn("one"), &arn("two"), &arn("three")]),
        );
        assert_said_once_in_plain_words(&client, &ws.plan(&[]));

        // Refreshing existing ones: the reads.
        let sm = emulator.secretsmanager();
        let secrets = ["creds-a", "creds-b", "creds-c"]
            .map(|n| block_on(create_database_secret(&sm, n, "postgres", None)));
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        let arns: Vec<&str> = secrets.iter().map(|s| s.arn.as_str()).collect();
        ws.write("main.tf", &for_each_over(&arns));
        ws.apply(&[]);
        without_credentials(&mut ws);
        assert_said_once_in_plain_words(&client, &ws.plan(&[]));
        for (key, value) in emulator.aws_env() {
            ws.set_env(&key, &value);
        }
        ws.destroy(&[]);
        for secret in &secrets {
            block_on(assert_nothing_left(&emulator, &secret.arn, None, None));
        }
    }
}
