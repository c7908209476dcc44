//! What each `rdsrot_rotation` instance owns, through real Terraform (every
//! client of `support::terraform::clients`) against the local AWS emulator:
//! a replacement made before the old instance is destroyed keeps what the
//! new one uses, and destroy removes only what its own instance made.

use rdsrot::provider::RdsrotProvider;
use rdsrot::rotation::apply::Step;
use rdsrot::rotation::master_policy::{self, SHARED_LEGACY_NAME};
use rdsrot::rotation::model::{Attr, Rotation};
use rdsrot::tf::{Diagnostics, PlanRequest, Provider, Value};

use crate::e2e::block_on;
use crate::emulator_or_skip;
use crate::lifecycle::{
    apply, apply_ok, config, destroy, errors, existing_lambda, none, provider,
    provider_without_retries, read, Tracked,
};
use crate::support::faults::{Fault, FaultRule};
use crate::support::moto::{
    create_database_secret, create_existing_rotation_lambda, DatabaseSecret, Emulator,
};
use crate::support::observe::{live_stacks, look, our_role_policies, statements_for_secret};
use crate::support::terraform::{clients, required_providers_block, Workspace};

const RESOURCE: &str = "rdsrot_rotation.this";

fn replaceable_config(secret_id: &str, master_secret_arn: &str) -> String {
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
  lifecycle {{
    create_before_destroy = true
  }}
}}
"#,
        required_providers_block()
    )
}

fn text(values: &serde_json::Value, key: &str) -> String {
    values[key].as_str().unwrap_or_default().to_owned()
}

/// `terraform apply -replace` with `create_before_destroy`: the new
/// instance is created while the old one still exists, and the old one's
/// destroy leaves the secret rotating with a Lambda that exists, may be
/// invoked for the secret and may read the master secret; the next plan is
/// empty, and the last destroy removes everything.
#[test]
fn a_replacement_created_before_the_old_is_destroyed_keeps_rotating() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (secret, master) = block_on(async {
            let master = create_database_secret(&sm, "cbd/master", "postgres", None).await;
            let secret = create_database_secret(&sm, "cbd/db", "postgres", Some(&master.arn)).await;
            (secret, master)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&secret.password);
        ws.forbid(&master.password);
        ws.write("main.tf", &replaceable_config(&secret.arn, &master.arn));
        ws.apply(&[]);

        let replace = format!("-replace={RESOURCE}");
        let run = ws.terraform(&[
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            replace.as_str(),
        ]);
        run.assert_success();
        assert!(
            run.output().contains("create replacement and then destroy"),
            "{client}: not a create-before-destroy replacement:\n{}",
            run.output()
        );

        let values = ws.resource_values(RESOURCE);
        let lambda = text(&values, "rotation_lambda_arn");
        let role = text(&values, "rotation_lambda_role_arn");
        let seen = block_on(look(&emulator, &secret.arn, Some(&lambda), Some(&role)));
        assert!(
            seen.rotation_enabled && seen.rotation_lambda.as_deref() == Some(lambda.as_str()),
            "{client}: the secret does not rotate with the state's Lambda {lambda}: {seen:?}"
        );
        let function = block_on(
            emulator
                .lambda()
                .get_function()
                .function_name(&lambda)
                .send(),
        );
        assert!(function.is_ok(), "{client}: the Lambda {lambda} is gone");
        let statements = block_on(statements_for_secret(&emulator, &lambda, &secret.arn));
        assert!(
            !statements.is_empty(),
            "{client}: no statement lets Secrets Manager invoke {lambda}: {seen:?}"
        );
        assert!(
            seen.master_policy,
            "{client}: the master-secret grant is gone from {role}: {seen:?}"
        );
        assert!(
            seen.live_stacks.len() == 1,
            "{client}: one stack expected: {seen:?}"
        );
        ws.plan(&[]).assert_code(0);

        ws.destroy(&[]);
        let seen = block_on(look(&emulator, &secret.arn, Some(&lambda), Some(&role)));
        assert!(seen.nothing_left(), "{client}: left behind: {seen:?}");
        ws.assert_no_leaks();
    }
}

/// A switch to another existing Lambda whose `RotateSecret` fails leaves
/// the secret rotating with the first Lambda, which keeps its invoke
/// statement and its master-secret grant; the next apply finishes the
/// switch and only then takes them off the first.
#[tokio::test]
async fn a_lambda_switch_whose_rotate_secret_fails_keeps_the_old_lambda_working() {
    let em = emulator_or_skip!();
    let p = provider_without_retries(&em);
    let (first, first_role) = existing_lambda(&em, "keep-first").await;
    let (second, second_role) = existing_lambda(&em, "keep-second").await;
    let sm = em.secretsmanager();
    let master = create_database_secret(&sm, "keep/master", "postgres", None).await;
    let secret = create_database_secret(&sm, "keep/db", "postgres", Some(&master.arn)).await;
    let with = |lambda: &str| {
        config(&secret.arn, |c| {
            c.rotation_lambda_arn = Attr::Known(lambda.to_string());
            c.master_secret_arn = Attr::Known(master.arn.clone());
        })
    };
    let t = apply_ok(&p, &with(&first), &none()).await;

    em.set_faults(
        1,
        &[FaultRule::on("secretsmanager", "RotateSecret", Fault::ServerError).times(1)],
    );
    let (t, d) = apply(&p, &with(&second), &t).await;
    em.clear_faults();
    assert!(
        errors(&d)
            .join(" ")
            .contains(Step::TurnOnRotation.describe()),
        "{d:?}"
    );
    let seen = look(&em, &secret.arn, Some(&first), Some(&first_role)).await;
    assert_eq!(
        seen.rotation_lambda.as_deref(),
        Some(first.as_str()),
        "{seen:?}"
    );
    assert!(
        !seen.our_statements.is_empty() && seen.master_policy,
        "the Lambda the secret still rotates with lost its statement or grant: {seen:?}"
    );

    let t = apply_ok(&p, &with(&second), &t).await;
    let old = look(&em, &secret.arn, Some(&first), Some(&first_role)).await;
    assert!(
        old.our_statements.is_empty() && !old.master_policy,
        "the old Lambda keeps what the switch should have undone: {old:?}"
    );
    let new = look(&em, &secret.arn, Some(&second), Some(&second_role)).await;
    assert!(
        new.rotation_lambda.as_deref() == Some(second.as_str())
            && !new.our_statements.is_empty()
            && new.master_policy,
        "{new:?}"
    );
    destroy(&p, &t).await;
    let seen = look(&em, &secret.arn, Some(&second), Some(&second_role)).await;
    assert!(seen.nothing_left(), "{seen:?}");
}

/// Destroy of a rotation that is off leaves an AWSPENDING label alone: no
/// rotation of this resource put it there.
#[tokio::test]
async fn destroy_of_a_rotation_that_is_off_leaves_a_staged_pending_value() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (lambda, _) = existing_lambda(&em, "off-rotator").await;
    let sm = em.secretsmanager();
    let secret = create_database_secret(&sm, "off/db", "postgres", None).await;
    let off = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(lambda.clone());
        c.enabled = Attr::Known(false);
    });
    let t = apply_ok(&p, &off, &none()).await;
    // Someone stages a value by hand, as an application might.
    let staged = sm
        .put_secret_value()
        .secret_id(&secret.arn)
        .secret_string("{\"staged\":\"by hand\"}")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("stage a value")
        .version_id()
        .expect("a version id")
        .to_string();
    destroy(&p, &t).await;
    let described = sm
        .describe_secret()
        .secret_id(&secret.arn)
        .send()
        .await
        .expect("describe");
    let labels = described
        .version_ids_to_stages()
        .and_then(|m| m.get(&staged))
        .cloned()
        .unwrap_or_default();
    assert!(
        labels.iter().any(|l| l == "AWSPENDING"),
        "destroy took AWSPENDING off the staged version: {labels:?}"
    );
}

/// Another secret's `generic` rotation, deployed by another resource: its
/// secret, the secret of ours, its state and its Lambda's name.
struct TheirStack {
    theirs: DatabaseSecret,
    ours: DatabaseSecret,
    tracked: Tracked,
    function_name: String,
}

async fn their_stack(em: &Emulator, p: &RdsrotProvider, prefix: &str) -> TheirStack {
    let sm = em.secretsmanager();
    let theirs = create_database_secret(&sm, &format!("{prefix}/theirs"), "mysql", None).await;
    let ours = create_database_secret(&sm, &format!("{prefix}/ours"), "mysql", None).await;
    let tracked = apply_ok(
        p,
        &config(&theirs.arn, |c| {
            c.rotation_type = Attr::Known("generic".into())
        }),
        &none(),
    )
    .await;
    let function_name = Rotation::from_value(&tracked.state)
        .function_name
        .known()
        .cloned()
        .expect("a function name");
    TheirStack {
        theirs,
        ours,
        tracked,
        function_name,
    }
}

/// Our rotation of `secret` as an interrupted create left it, with the
/// private record `private` (whose instance is another than theirs).
fn interrupted(secret: &str, function_name: &str, private: serde_json::Value) -> Tracked {
    Tracked {
        state: Rotation {
            id: Attr::Known(secret.into()),
            secret_id: Attr::Known(secret.into()),
            secret_arn: Attr::Known(secret.into()),
            rotation_type: Attr::Known("generic".into()),
            function_name: Attr::Known(function_name.into()),
            ..Default::default()
        }
        .to_value(),
        private: private.to_string().into_bytes(),
    }
}

/// A record of a stack known only by its name (its creation's answer never
/// came) deletes no stack of that name that this instance did not create:
/// here one another resource deployed for another secret.
#[tokio::test]
async fn destroy_by_name_leaves_a_stack_this_instance_did_not_create() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let them = their_stack(&em, &p, "name").await;
    let stacks = live_stacks(&em).await;
    assert_eq!(stacks.len(), 1, "{stacks:?}");

    let ours = interrupted(
        &them.ours.arn,
        &them.function_name,
        serde_json::json!({
            "v": 1,
            "instance": "another-instance",
            "stack": {"name": them.function_name},
        }),
    );
    destroy(&p, &ours).await;
    assert_eq!(
        live_stacks(&em).await,
        stacks,
        "a stack this instance did not create was deleted by its name"
    );
    destroy(&p, &them.tracked).await;
    assert!(live_stacks(&em).await.is_empty());
}

/// A recorded stack that is not this instance's is left with its Lambda,
/// and the statement this resource put on that Lambda is then removed on
/// its own: only a stack that destroy deletes carries the statement away.
#[tokio::test]
async fn a_statement_on_a_stack_left_in_place_is_still_removed() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let them = their_stack(&em, &p, "kept").await;
    let lambda = Rotation::from_value(&them.tracked.state)
        .rotation_lambda_arn
        .known()
        .cloned()
        .expect("the stack's Lambda");
    em.lambda()
        .add_permission()
        .function_name(&lambda)
        .statement_id("rdsrot-kept-ours")
        .action("lambda:InvokeFunction")
        .principal("secretsmanager.amazonaws.com")
        .source_arn(&them.ours.arn)
        .send()
        .await
        .expect("our statement on their Lambda");
    // Unmarked: a Lambda another instance marked was handed over to it,
    // with the statements on it (see `a_replacement_created_before…`).
    em.lambda()
        .untag_resource()
        .resource(&lambda)
        .tag_keys("rdsrot:owner")
        .send()
        .await
        .expect("untag");
    let stacks = live_stacks(&em).await;

    let ours = interrupted(
        &them.ours.arn,
        &them.function_name,
        serde_json::json!({
            "v": 1,
            "instance": "another-instance",
            "stack": {"name": them.function_name, "lambda_arn": lambda},
            "permission": {"function": lambda, "sid": "rdsrot-kept-ours"},
        }),
    );
    destroy(&p, &ours).await;
    assert_eq!(live_stacks(&em).await, stacks, "their stack was deleted");
    assert!(
        statements_for_secret(&em, &lambda, &them.ours.arn)
            .await
            .is_empty(),
        "our statement stayed on the Lambda of a stack left in place"
    );
    assert_eq!(
        statements_for_secret(&em, &lambda, &them.theirs.arn)
            .await
            .len(),
        1,
        "their own statement is theirs to remove"
    );
    destroy(&p, &them.tracked).await;
    assert!(live_stacks(&em).await.is_empty());
}

/// The diagnostics of planning `config` over `prior`.
async fn plan_diagnostics(p: &RdsrotProvider, config: &Value, prior: &Tracked) -> Diagnostics {
    p.plan_resource_change(PlanRequest {
        type_name: "rdsrot_rotation".into(),
        prior_state: prior.state.clone(),
        proposed_new_state: config.clone(),
        config: config.clone(),
        prior_private: prior.private.clone(),
    })
    .await
    .diagnostics
}

/// Two resources for two secrets with the same `function_name`: the second
/// is refused at plan, on `function_name`, and never takes over (and later
/// deletes) the first one's stack.
#[tokio::test]
async fn a_stack_deployed_for_another_secret_is_never_adopted() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let sm = em.secretsmanager();
    let first = create_database_secret(&sm, "same-name-0", "postgres", None).await;
    let second = create_database_secret(&sm, "same-name-1", "postgres", None).await;
    let cfg = |arn: &str| {
        config(arn, |c| {
            c.rotation_type = Attr::Known("postgresql_single_user".into());
            c.function_name = Attr::Known("shared-name".into());
        })
    };
    let t1 = apply_ok(&p, &cfg(&first.arn), &none()).await;
    let d = plan_diagnostics(&p, &cfg(&second.arn), &none()).await;
    let refused = d
        .iter()
        .find(|x| x.summary == "Lambda function name already taken")
        .unwrap_or_else(|| panic!("not refused at plan: {:?}", errors(&d)));
    assert_eq!(
        refused.attribute.as_ref().map(|a| a.to_string()).as_deref(),
        Some("function_name")
    );
    assert!(
        refused.detail.contains("shared-name") && refused.detail.contains("terraform import"),
        "{}",
        refused.detail
    );
    // The first is untouched: its plan is empty, and destroying it works.
    let t1 = read(&p, &t1).await;
    assert!(plan_diagnostics(&p, &cfg(&first.arn), &t1).await.is_empty());
    destroy(&p, &t1).await;
    let seen = look(&em, &first.arn, None, None).await;
    assert!(seen.live_stacks.is_empty(), "{seen:?}");
}

/// A `function_name` naming a function somebody made outside Terraform
/// fails the plan with what exists and what to do, and nothing is made.
#[test]
fn a_function_name_taken_by_another_function_fails_the_plan() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let sm = emulator.secretsmanager();
        let (secret, existing) = block_on(async {
            let secret = create_database_secret(&sm, "taken/db", "mysql", None).await;
            let existing =
                create_existing_rotation_lambda(&emulator.sdk_config(), "taken-name").await;
            (secret, existing)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&secret.password);
        ws.write(
            "main.tf",
            &format!(
                r#"{}
provider "rdsrot" {{}}

resource "rdsrot_rotation" "this" {{
  secret_id     = "{}"
  rotation_type = "mysql_single_user"
  function_name = "taken-name"
  rotation_rules {{
    automatically_after_days = 30
  }}
}}
"#,
                required_providers_block(),
                secret.arn
            ),
        );
        let plan = ws.plan(&[]);
        plan.assert_code(1)
            .assert_mentions("Lambda function name already taken")
            .assert_mentions(&existing)
            .assert_mentions("terraform import");
        let seen = block_on(look(&emulator, &secret.arn, None, None));
        assert!(seen.nothing_left(), "{client}: {seen:?}");
        ws.assert_no_leaks();
    }
}

/// Turns rotation on for `secret` with `lambda`, outside the provider.
async fn rotate_out_of_band(em: &Emulator, secret: &str, lambda: &str) {
    em.secretsmanager()
        .rotate_secret()
        .secret_id(secret)
        .rotation_lambda_arn(lambda)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(7)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .expect("rotate");
}

/// Earlier releases gave every secret on a role one master-secret policy
/// name. Importing one of two secrets that share a Lambda (and the master
/// secret the policy grants) and destroying it leaves that policy to the
/// other secret, which still rotates with the Lambda.
#[tokio::test]
async fn destroy_of_an_import_leaves_the_legacy_shared_policy_to_the_other_secrets() {
    let em = emulator_or_skip!();
    let (lambda, role) = existing_lambda(&em, "legacy-rotator").await;
    let sm = em.secretsmanager();
    let master = create_database_secret(&sm, "legacy/master", "postgres", None).await;
    let a = create_database_secret(&sm, "legacy/a", "postgres", Some(&master.arn)).await;
    let b = create_database_secret(&sm, "legacy/b", "postgres", Some(&master.arn)).await;
    em.iam()
        .put_role_policy()
        .role_name(role.rsplit('/').next().unwrap_or_default())
        .policy_name(SHARED_LEGACY_NAME)
        .policy_document(master_policy::document(&master.arn, None).to_string())
        .send()
        .await
        .expect("the policy an earlier release put");
    for secret in [&a.arn, &b.arn] {
        rotate_out_of_band(&em, secret, &lambda).await;
    }

    let p = provider(&em);
    let r = p.import_resource_state("rdsrot_rotation", &a.arn).await;
    assert!(r.diagnostics.is_empty(), "{:?}", errors(&r.diagnostics));
    let imported = r.imported.first().expect("one resource");
    let t = read(
        &p,
        &Tracked {
            state: imported.state.clone(),
            private: imported.private.clone(),
        },
    )
    .await;
    assert!(
        String::from_utf8_lossy(&t.private).contains(SHARED_LEGACY_NAME),
        "the import did not record the shared policy: {}",
        String::from_utf8_lossy(&t.private)
    );
    destroy(&p, &t).await;
    let left = our_role_policies(&em.sdk_config(), &role).await;
    assert!(
        left.iter().any(|n| n == SHARED_LEGACY_NAME),
        "the policy {b} still rotates with was deleted: {left:?}",
        b = b.arn
    );
}

/// Tags naming an "original" placement on an existing Lambda that no
/// rotation of ours has moved are not believed: destroy puts the Lambda
/// back where it really was, not where the tags say.
#[tokio::test]
async fn placement_tags_written_by_someone_else_do_not_choose_where_destroy_moves_the_lambda() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (lambda, _) = existing_lambda(&em, "tagged-rotator").await;
    em.lambda()
        .tag_resource()
        .resource(&lambda)
        .tags("rdsrot:original-subnet-ids", "subnet-0ffffffffffffffff")
        .tags("rdsrot:original-security-group-ids", "sg-0fffffffffffffff0")
        .send()
        .await
        .expect("tag the Lambda");
    let secret = create_database_secret(&em.secretsmanager(), "tagged/db", "postgres", None).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(lambda.clone());
        c.vpc_subnet_ids = Attr::Known(vec!["subnet-0a1b2c3d4e5f60718".into()]);
        c.vpc_security_group_ids = Attr::Known(vec!["sg-0123456789abcdef0".into()]);
    });
    let t = apply_ok(&p, &cfg, &none()).await;
    destroy(&p, &t).await;
    let placed = em
        .lambda()
        .get_function_configuration()
        .function_name(&lambda)
        .send()
        .await
        .expect("the Lambda");
    let subnets = placed
        .vpc_config()
        .map(|v| v.subnet_ids().to_vec())
        .unwrap_or_default();
    assert!(
        subnets.is_empty(),
        "destroy moved the Lambda to the subnets the tags named: {subnets:?}"
    );
}
