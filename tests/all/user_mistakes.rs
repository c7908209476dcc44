//! Mistakes users make that the provider must take in its stride, through
//! real Terraform (every client of `support::terraform::clients`) against
//! the local AWS emulator.

use crate::e2e::block_on;
use crate::support::moto::{create_database_secret, Emulator};
use crate::support::observe::look;
use crate::support::terraform::{clients, required_providers_block, Workspace};

const RESOURCE: &str = "rdsrot_rotation.this";

fn template_config(secret_id: &str, master_secret_arn: &str) -> String {
    format!(
        r#"{}
provider "rdsrot" {{}}

resource "rdsrot_rotation" "this" {{
  secret_id         = "{secret_id}"
  master_secret_arn = "{master_secret_arn}"
  rotation_type     = "postgresql_multi_user"
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
        required_providers_block()
    )
}

/// Someone deleted the secret (`ForceDeleteWithoutRecovery`) while the
/// rotation was in place: plan says so and offers the replacement, and
/// destroy removes the stack, its Lambda, the invoke statement and the
/// master-secret policy.
#[test]
fn a_force_deleted_secret_plans_with_a_warning_and_destroys_cleanly() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (secret, master) = block_on(async {
            let master = create_database_secret(&sm, "gone/master", "postgres", None).await;
            let secret =
                create_database_secret(&sm, "gone/db", "postgres", Some(&master.arn)).await;
            (secret, master)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&secret.password);
        ws.forbid(&master.password);
        ws.write("main.tf", &template_config(&secret.arn, &master.arn));
        ws.apply(&[]);
        let values = ws.resource_values(RESOURCE);
        let lambda = values["rotation_lambda_arn"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let role = values["rotation_lambda_role_arn"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !lambda.is_empty() && !role.is_empty(),
            "{client}: {values:#}"
        );

        block_on(
            sm.delete_secret()
                .secret_id(&secret.arn)
                .force_delete_without_recovery(true)
                .send(),
        )
        .expect("delete the secret");

        let plan = ws.plan(&[]);
        plan.assert_code(2)
            .assert_mentions("Secret no longer exists");
        ws.destroy(&[]);
        let seen = block_on(look(&emulator, &secret.arn, Some(&lambda), Some(&role)));
        assert!(seen.nothing_left(), "{client}: left behind: {seen:?}");
        let lambda_left = block_on(
            emulator
                .lambda()
                .get_function()
                .function_name(&lambda)
                .send(),
        );
        assert!(
            lambda_left.is_err(),
            "{client}: the stack's Lambda {lambda} is left"
        );
        ws.assert_no_leaks();
    }
}

/// `secret_id` rewritten from the secret's ARN to its name and back (a
/// refactor, the same secret): an update in place each time, the stack and
/// its Lambda kept, and no second rotation of the secret.
#[test]
fn switching_secret_id_between_arn_and_name_keeps_the_stack() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (secret, master) = block_on(async {
            let master = create_database_secret(&sm, "same/master", "postgres", None).await;
            let secret =
                create_database_secret(&sm, "same/db", "postgres", Some(&master.arn)).await;
            (secret, master)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&secret.password);
        ws.forbid(&master.password);
        ws.write("main.tf", &template_config(&secret.arn, &master.arn));
        ws.apply(&[]);
        let before = ws.resource_values(RESOURCE);
        let versions = || {
            block_on(sm.list_secret_version_ids().secret_id(&secret.arn).send())
                .expect("list versions")
                .versions()
                .len()
        };
        let rotated_versions = versions();

        for secret_id in [secret.name.as_str(), secret.arn.as_str()] {
            ws.write("main.tf", &template_config(secret_id, &master.arn));
            let plan = ws.plan(&[]);
            plan.assert_code(2).assert_mentions("updated in-place");
            assert!(
                !plan.output().contains("must be replaced"),
                "{client}: {secret_id}: a replacement:\n{}",
                plan.output()
            );
            ws.apply(&[]);
            let after = ws.resource_values(RESOURCE);
            for kept in [
                "stack_id",
                "rotation_lambda_arn",
                "function_name",
                "permission_statement_id",
                "secret_arn",
            ] {
                assert_eq!(after[kept], before[kept], "{client}: {secret_id}: {kept}");
            }
            assert_eq!(after["secret_id"], secret_id, "{client}");
            ws.plan(&[]).assert_code(0);
        }
        assert_eq!(
            versions(),
            rotated_versions,
            "{client}: the secret was rotated again"
        );
        ws.destroy(&[]);
        ws.assert_no_leaks();
    }
}

/// A master secret encrypted with a customer managed key (as RDS-managed
/// master secrets often are) needs `kms:Decrypt` on that key for the
/// rotation function to read it: plan says so, naming the key and
/// `master_secret_kms_key_arn`, before anything is made, and stays quiet
/// once the attribute grants that key.
#[test]
fn a_master_secret_under_a_customer_managed_key_is_named_at_plan() {
    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/0b4c6b2e-7d2a-4a8e-9b39-5a1f0c2d3e4f";
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (secret, master) = block_on(async {
            let master = create_database_secret(&sm, "cmk/master", "postgres", None).await;
            sm.update_secret()
                .secret_id(&master.arn)
                .kms_key_id(KEY)
                .send()
                .await
                .expect("the master secret takes the key");
            let secret = create_database_secret(&sm, "cmk/db", "postgres", Some(&master.arn)).await;
            (secret, master)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&secret.password);
        ws.forbid(&master.password);
        let config = template_config(&secret.arn, &master.arn);
        ws.write("main.tf", &config);
        let plan = ws.plan(&[]);
        plan.assert_code(2)
            .assert_mentions("encrypted with a customer managed key");
        // Terraform wraps a diagnostic's detail: compare words.
        let words = plan
            .output()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            words.contains(&format!("Set `master_secret_kms_key_arn = \"{KEY}\"`")),
            "{client}: the warning does not give the fix:\n{}",
            plan.output()
        );

        ws.write(
            "main.tf",
            &config.replace(
                "  rotation_type     = \"postgresql_multi_user\"\n",
                &format!(
                    "  rotation_type     = \"postgresql_multi_user\"\n  master_secret_kms_key_arn = \"{KEY}\"\n"
                ),
            ),
        );
        let plan = ws.plan(&[]);
        plan.assert_code(2);
        assert!(
            !plan.output().contains("customer managed key"),
            "{client}: the granted key is still reported:\n{}",
            plan.output()
        );
        assert!(
            plan.output().contains(KEY),
            "{client}: the plan shows the key granted:\n{}",
            plan.output()
        );
    }
}

/// An existing Lambda placed in a VPC whose role may not manage network
/// interfaces: Lambda refuses the placement (as AWS does), and the apply
/// fails saying which managed policy to attach; once it is attached, the
/// next apply places the Lambda and the plan after is empty.
#[test]
fn a_vpc_placement_whose_role_lacks_network_rights_names_the_managed_policy() {
    use crate::support::moto::{create_rotation_lambda, VPC_ACCESS_POLICY};
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let (secret, lambda) = block_on(async {
            let secret =
                create_database_secret(&emulator.secretsmanager(), "eni/db", "postgres", None)
                    .await;
            let lambda = create_rotation_lambda(
                &emulator.sdk_config(),
                "eni-rotator",
                "postgresql_single_user",
            )
            .await;
            emulator
                .iam()
                .detach_role_policy()
                .role_name("eni-rotator-role")
                .policy_arn(VPC_ACCESS_POLICY)
                .send()
                .await
                .expect("detach the VPC access policy");
            (secret, lambda)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&secret.password);
        ws.write(
            "main.tf",
            &format!(
                r#"{}
provider "rdsrot" {{}}

resource "rdsrot_rotation" "this" {{
  secret_id              = "{}"
  rotation_lambda_arn    = "{lambda}"
  vpc_subnet_ids         = ["subnet-0a1b2c3d4e5f60718"]
  vpc_security_group_ids = ["sg-0123456789abcdef0"]
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
                required_providers_block(),
                secret.arn
            ),
        );
        let failed = ws.run_unchecked(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert_ne!(
            failed.code,
            0,
            "{client}: the placement was accepted:\n{}",
            failed.output()
        );
        let words = failed
            .output()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            words.contains("AWSLambdaVPCAccessExecutionRole")
                && words.contains("CreateNetworkInterface"),
            "{client}: the failure does not say what to attach:\n{}",
            failed.output()
        );

        block_on(async {
            emulator
                .iam()
                .attach_role_policy()
                .role_name("eni-rotator-role")
                .policy_arn(VPC_ACCESS_POLICY)
                .send()
                .await
                .expect("attach the VPC access policy");
        });
        ws.apply(&[]);
        ws.plan(&[]).assert_code(0);
        ws.destroy(&[]);
    }
}
