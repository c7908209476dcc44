//! The `rdsrot_rotation` resource against the local AWS emulator, driven
//! through the `tf::Provider` methods with `tf::Value`s (no gRPC): every
//! template and an existing Lambda, each drift case, import, a failure at
//! each create step, and destroy.

use rdsrot::aws::{Clients, Endpoints};
use rdsrot::provider::RdsrotProvider;
use rdsrot::rotation::apply::Step;
use rdsrot::rotation::model::{Attr, Rotation, RotationRules};
use rdsrot::tf::{ApplyRequest, Diagnostics, PlanRequest, Provider, ReadRequest, Value};

use crate::emulator_or_skip;
use crate::support::engines::{self, NEW_ROTATION_TYPES};
use crate::support::faults::{Fault, FaultRule};
use crate::support::moto::{self, Emulator};
use crate::support::observe::{
    assert_nothing_left, live_stacks, look, pending_label_blocks, Applied, Drift,
};

pub(crate) const TYPE: &str = "rdsrot_rotation";

pub(crate) fn provider(em: &Emulator) -> RdsrotProvider {
    RdsrotProvider::with_clients(Clients::new(&em.sdk_config(), &Endpoints::default()))
}

/// A resource as Terraform holds it between operations.
#[derive(Clone, Debug)]
pub(crate) struct Tracked {
    pub(crate) state: Value,
    pub(crate) private: Vec<u8>,
}

pub(crate) fn errors(d: &Diagnostics) -> Vec<String> {
    d.iter()
        .map(|x| format!("{}: {}", x.summary, x.detail))
        .collect()
}

pub(crate) fn config(secret: &str, f: impl FnOnce(&mut Rotation)) -> Value {
    let mut c = Rotation {
        secret_id: Attr::Known(secret.into()),
        rotation_rules: Attr::Known(vec![RotationRules {
            automatically_after_days: Attr::Known(30),
            ..Default::default()
        }]),
        ..Default::default()
    };
    f(&mut c);
    c.to_value()
}

pub(crate) async fn plan(p: &RdsrotProvider, config: &Value, prior: &Tracked) -> (Value, bool) {
    let r = p
        .plan_resource_change(PlanRequest {
            type_name: TYPE.into(),
            prior_state: prior.state.clone(),
            proposed_new_state: config.clone(),
            config: config.clone(),
            prior_private: prior.private.clone(),
        })
        .await;
    // A plan that moves the rotation to another Lambda says so; nothing
    // else may be said.
    let unexpected: Vec<String> = errors(&r.diagnostics)
        .into_iter()
        .filter(|d| !d.starts_with("The rotation moves to another Lambda: "))
        .collect();
    assert!(unexpected.is_empty(), "plan: {unexpected:?}");
    let empty = r.requires_replace.is_empty() && r.planned_state.same_as(&prior.state);
    (r.planned_state, empty)
}

/// Plan then apply, as `terraform apply` does; returns the new tracked
/// resource and the apply's diagnostics.
pub(crate) async fn apply(
    p: &RdsrotProvider,
    config: &Value,
    prior: &Tracked,
) -> (Tracked, Diagnostics) {
    let (planned, _) = plan(p, config, prior).await;
    let planned_copy = planned.clone();
    let r = p
        .apply_resource_change(ApplyRequest {
            type_name: TYPE.into(),
            prior_state: prior.state.clone(),
            planned_state: planned,
            config: config.clone(),
            planned_private: prior.private.clone(),
        })
        .await;
    if r.diagnostics.is_empty() {
        assert_consistent(&planned_copy, &r.new_state);
    }
    (
        Tracked {
            state: r.new_state,
            private: r.private,
        },
        r.diagnostics,
    )
}

/// Terraform's rule: every value known in the plan comes back unchanged
/// from apply ("Provider produced inconsistent result after apply").
pub(crate) fn assert_consistent(planned: &Value, applied: &Value) {
    let (Some(p), Some(a)) = (planned.as_object(), applied.as_object()) else {
        panic!("planned and applied states are objects: {planned:?} / {applied:?}");
    };
    for (name, want) in p {
        if want.is_wholly_known() {
            let got = a.get(name).unwrap_or(&Value::Null);
            assert!(
                want.same_as(got),
                "{name}: planned {want:?}, apply returned {got:?}"
            );
        }
    }
}

pub(crate) async fn apply_ok(p: &RdsrotProvider, config: &Value, prior: &Tracked) -> Tracked {
    let (t, d) = apply(p, config, prior).await;
    assert!(d.is_empty(), "apply: {:?}", errors(&d));
    t
}

pub(crate) async fn read(p: &RdsrotProvider, t: &Tracked) -> Tracked {
    let r = p
        .read_resource(ReadRequest {
            type_name: TYPE.into(),
            current_state: t.state.clone(),
            private: t.private.clone(),
        })
        .await;
    assert!(
        r.diagnostics.is_empty(),
        "read: {:?}",
        errors(&r.diagnostics)
    );
    Tracked {
        state: r.new_state,
        private: r.private,
    }
}

pub(crate) async fn destroy(p: &RdsrotProvider, t: &Tracked) {
    let r = p
        .apply_resource_change(ApplyRequest {
            type_name: TYPE.into(),
            prior_state: t.state.clone(),
            planned_state: Value::Null,
            config: Value::Null,
            planned_private: t.private.clone(),
        })
        .await;
    assert!(
        r.diagnostics.is_empty(),
        "destroy: {:?}",
        errors(&r.diagnostics)
    );
    assert!(r.new_state.is_null());
}

pub(crate) fn none() -> Tracked {
    Tracked {
        state: Value::Null,
        private: vec![],
    }
}

pub(crate) fn model(t: &Tracked) -> Rotation {
    Rotation::from_value(&t.state)
}

pub(crate) async fn master_secret(em: &Emulator, name: &str) -> String {
    master_secret_of(em, name, "postgres").await
}

/// A master secret for a database of `engine`: the alternating-users
/// functions sign in with it to that database.
pub(crate) async fn master_secret_of(em: &Emulator, name: &str, engine: &str) -> String {
    moto::create_database_secret(&em.secretsmanager(), name, engine, None)
        .await
        .arn
}

/// An IAM role and a Lambda made outside the provider: the test stack's
/// working rotation function, as `support::moto` makes it for every suite.
pub(crate) async fn existing_lambda(em: &Emulator, name: &str) -> (String, String) {
    let arn = moto::create_existing_rotation_lambda(&em.sdk_config(), name).await;
    let role = em
        .lambda()
        .get_function_configuration()
        .function_name(&arn)
        .send()
        .await
        .expect("the function just made")
        .role()
        .expect("a function has a role")
        .to_string();
    (arn, role)
}

pub(crate) fn leaked(t: &Tracked, password: &str) -> bool {
    format!("{:?}", t.state).contains(password)
        || String::from_utf8_lossy(&t.private).contains(password)
}

#[tokio::test]
async fn every_template_creates_plans_empty_and_destroys_clean() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let postgres_master = master_secret(&em, "master").await;
    let mysql_master = master_secret_of(&em, "mysql-master", "mysql").await;
    for rotation_type in [
        "mysql_single_user",
        "mysql_multi_user",
        "postgresql_single_user",
        "postgresql_multi_user",
        "generic",
    ] {
        let multi = rotation_type.ends_with("_multi_user");
        let (engine, master) = if rotation_type.starts_with("mysql") {
            ("mysql", mysql_master.clone())
        } else {
            ("postgres", postgres_master.clone())
        };
        let secret = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("db-{rotation_type}"),
            engine,
            multi.then_some(master.as_str()),
        )
        .await;
        let cfg = config(&secret.arn, |c| {
            c.rotation_type = Attr::Known(rotation_type.into());
            if multi {
                c.master_secret_arn = Attr::Known(master.clone());
            }
        });
        let t = apply_ok(&p, &cfg, &none()).await;
        let s = model(&t);
        assert_eq!(s.secret_arn.as_deref(), Some(secret.arn.as_str()));
        let stack = s.stack_id.known().cloned().expect("stack id");
        let lambda = s.rotation_lambda_arn.known().cloned().expect("lambda");
        let role = s.rotation_lambda_role_arn.known().cloned().expect("role");
        let seen = look(&em, &secret.arn, Some(&lambda), Some(&role)).await;
        assert!(seen.rotation_enabled, "{rotation_type}: {seen:?}");
        assert_eq!(seen.rotation_lambda.as_deref(), Some(lambda.as_str()));
        assert!(seen.live_stacks.contains(&stack));
        assert_eq!(
            seen.our_statements,
            vec![s
                .permission_statement_id
                .known()
                .cloned()
                .unwrap_or_default()]
        );
        assert_eq!(seen.master_policy, multi, "{rotation_type}");
        assert!(!leaked(&t, &secret.password));

        let t = read(&p, &t).await;
        let (_, empty) = plan(&p, &cfg, &t).await;
        assert!(empty, "{rotation_type}: plan after apply must be empty");

        destroy(&p, &t).await;
        assert_nothing_left(&em, &secret.arn, Some(&lambda), Some(&role)).await;
    }
}

#[tokio::test]
async fn an_existing_lambda_is_used_placed_and_restored() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (lambda, role) = existing_lambda(&em, "own-rotator").await;
    let master = master_secret_of(&em, "master", "mysql").await;
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "db", "mysql", Some(&master)).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(lambda.clone());
        c.master_secret_arn = Attr::Known(master.clone());
        c.vpc_subnet_ids = Attr::Known(vec!["subnet-0a".into()]);
        c.vpc_security_group_ids = Attr::Known(vec!["sg-0a".into()]);
    });
    let t = apply_ok(&p, &cfg, &none()).await;
    assert!(model(&t).stack_id.is_null());
    assert_eq!(
        model(&t).rotation_lambda_role_arn.as_deref(),
        Some(role.as_str())
    );
    let f = em
        .lambda()
        .get_function_configuration()
        .function_name(&lambda)
        .send()
        .await
        .expect("fn");
    assert_eq!(
        f.vpc_config().map(|v| v.subnet_ids().to_vec()),
        Some(vec!["subnet-0a".to_string()])
    );
    let seen = look(&em, &secret.arn, Some(&lambda), Some(&role)).await;
    assert!(
        seen.rotation_enabled && seen.master_policy && seen.our_statements.len() == 1,
        "{seen:?}"
    );

    let t = read(&p, &t).await;
    assert!(plan(&p, &cfg, &t).await.1, "plan after apply must be empty");

    // Moving to another existing Lambda puts the first one back as it was.
    let (second, second_role) = existing_lambda(&em, "second-rotator").await;
    let cfg2 = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(second.clone());
        c.master_secret_arn = Attr::Known(master.clone());
        c.vpc_subnet_ids = Attr::Known(vec!["subnet-0a".into()]);
        c.vpc_security_group_ids = Attr::Known(vec!["sg-0a".into()]);
    });
    let t = apply_ok(&p, &cfg2, &t).await;
    assert_left_as_found(&em, &secret.arn, &lambda, &role).await;
    let seen = look(&em, &secret.arn, Some(&second), Some(&second_role)).await;
    assert!(
        seen.rotation_enabled && seen.master_policy && seen.our_statements.len() == 1,
        "{seen:?}"
    );
    assert_eq!(seen.rotation_lambda.as_deref(), Some(second.as_str()));
    assert!(plan(&p, &cfg2, &read(&p, &t).await).await.1);

    destroy(&p, &t).await;
    assert_left_as_found(&em, &secret.arn, &second, &second_role).await;
    assert_nothing_left(&em, &secret.arn, Some(&second), Some(&second_role)).await;
}

/// The Lambda still exists, out of any VPC as it was made, with no
/// statement or role policy of ours.
pub(crate) async fn assert_left_as_found(em: &Emulator, secret: &str, lambda: &str, role: &str) {
    let f = em
        .lambda()
        .get_function_configuration()
        .function_name(lambda)
        .send()
        .await
        .expect("the Lambda is left alone");
    assert!(
        f.vpc_config().is_none_or(|v| v.subnet_ids().is_empty()),
        "VPC placement restored: {:?}",
        f.vpc_config()
    );
    let seen = look(em, secret, Some(lambda), Some(role)).await;
    assert!(
        seen.role_policies.is_empty() && seen.our_statements.is_empty(),
        "{seen:?}"
    );
}

/// Whether the attribute `name` differs between two states; the schedule's
/// attributes are looked up in the `rotation_rules` block.
pub(crate) fn attribute_changed(before: &Value, after: &Value, name: &str) -> bool {
    let top = |v: &Value| v.get(name).clone();
    let rules = |v: &Value| v.get("rotation_rules").clone();
    if name == "automatically_after_days" || name == "schedule_expression" {
        return !rules(before).same_as(&rules(after));
    }
    !top(before).same_as(&top(after))
}

/// One change behind Terraform's back, on a multi-user template: read shows
/// it on one of its attributes, the plan is not empty, apply repairs it, the
/// next plan is empty, and destroy leaves nothing.
async fn drift_is_detected_and_repaired(drift: Drift) {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let master = master_secret(&em, "master").await;
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "db", "postgres", Some(&master)).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("postgresql_multi_user".into());
        c.master_secret_arn = Attr::Known(master.clone());
        // Only a function whose role may manage network interfaces (the
        // template gives its role that in a VPC) can be moved in one.
        if drift == Drift::VpcMoved {
            c.vpc_subnet_ids = Attr::Known(vec!["subnet-0a1b2c3d4e5f60718".into()]);
            c.vpc_security_group_ids = Attr::Known(vec!["sg-0123456789abcdef0".into()]);
        }
    });
    let t = apply_ok(&p, &cfg, &none()).await;
    let s = model(&t);
    let known = |a: &Attr<String>| a.known().cloned().unwrap_or_default();
    let applied = Applied {
        secret_arn: known(&s.secret_arn),
        lambda: known(&s.rotation_lambda_arn),
        role: known(&s.rotation_lambda_role_arn),
        statement_id: known(&s.permission_statement_id),
        stack_id: known(&s.stack_id),
    };
    drift.inflict(&em.sdk_config(), &applied).await;

    // The next plan is a new Terraform operation: a new provider process,
    // which reads afresh.
    let p = provider(&em);
    let drifted = read(&p, &t).await;
    assert!(
        drift
            .attributes()
            .iter()
            .any(|name| attribute_changed(&t.state, &drifted.state, name)),
        "{drift:?}: read shows none of {:?}: {:#?}",
        drift.attributes(),
        model(&drifted)
    );
    assert!(
        !plan(&p, &cfg, &drifted).await.1,
        "{drift:?}: plan shows a diff"
    );
    let repaired = apply_ok(&p, &cfg, &drifted).await;
    let again = read(&p, &repaired).await;
    assert!(
        plan(&p, &cfg, &again).await.1,
        "{drift:?}: plan after repair is empty: {:#?}",
        model(&again)
    );
    let seen = look(
        &em,
        &secret.arn,
        model(&again).rotation_lambda_arn.as_deref(),
        model(&again).rotation_lambda_role_arn.as_deref(),
    )
    .await;
    assert!(
        seen.rotation_enabled && seen.master_policy && seen.our_statements.len() == 1,
        "{drift:?}: repaired: {seen:?}"
    );
    destroy(&p, &again).await;
    let s = model(&again);
    eprintln!("{drift:?}: checking what destroy left");
    assert_nothing_left(
        &em,
        &secret.arn,
        s.rotation_lambda_arn.as_deref(),
        s.rotation_lambda_role_arn.as_deref(),
    )
    .await;
}

#[tokio::test]
async fn drift_rotation_cancelled() {
    drift_is_detected_and_repaired(Drift::RotationCancelled).await;
}

#[tokio::test]
async fn drift_schedule_changed() {
    drift_is_detected_and_repaired(Drift::ScheduleChanged).await;
}

#[tokio::test]
async fn drift_lambda_switched() {
    drift_is_detected_and_repaired(Drift::LambdaSwitched).await;
}

#[tokio::test]
async fn drift_invoke_permission_removed() {
    drift_is_detected_and_repaired(Drift::PermissionRemoved).await;
}

#[tokio::test]
async fn drift_invoke_permission_broadened() {
    drift_is_detected_and_repaired(Drift::PermissionBroadened).await;
}

#[tokio::test]
async fn drift_master_secret_policy_removed() {
    drift_is_detected_and_repaired(Drift::MasterPolicyRemoved).await;
}

#[tokio::test]
async fn drift_master_secret_policy_edited() {
    drift_is_detected_and_repaired(Drift::MasterPolicyEdited).await;
}

#[tokio::test]
async fn drift_master_secret_policy_broadened() {
    drift_is_detected_and_repaired(Drift::MasterPolicyBroadened).await;
}

#[tokio::test]
async fn drift_lambda_vpc_placement_changed() {
    drift_is_detected_and_repaired(Drift::VpcMoved).await;
}

#[tokio::test]
async fn drift_stack_deleted() {
    drift_is_detected_and_repaired(Drift::StackDeleted).await;
}

#[tokio::test]
async fn drift_stack_lambda_deleted() {
    drift_is_detected_and_repaired(Drift::StackLambdaDeleted).await;
}

/// Item: an update that fails before its change set is deployed returns the
/// state as it is (the old version), not as planned, and the next plan
/// still shows the change.
#[tokio::test]
async fn a_failed_update_is_not_recorded_as_done() {
    let em = emulator_or_skip!();
    let p = provider_without_retries(&em);
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "update-fails", "postgres", None).await;
    let cfg = |version: &str, endpoint: &str| {
        config(&secret.arn, |c| {
            c.rotation_type = Attr::Known("postgresql_single_user".into());
            c.template_version = Attr::Known(version.into());
            c.endpoint = Attr::Known(endpoint.into());
        })
    };
    let old = cfg("1.1.367", "https://secretsmanager.us-east-1.amazonaws.com");
    let new = cfg(
        "1.1.671",
        "https://vpce-1.secretsmanager.us-east-1.vpce.amazonaws.com",
    );
    let t = apply_ok(&p, &old, &none()).await;
    em.set_faults(
        1,
        &[FaultRule::on(
            "serverlessrepo",
            "CreateCloudFormationChangeSet",
            Fault::ServerError,
        )],
    );
    let (failed, d) = apply(&p, &new, &t).await;
    em.clear_faults();
    assert!(d.has_errors());
    let s = model(&failed);
    assert_eq!(s.template_version, Attr::Known("1.1.367".into()));
    assert_eq!(
        s.endpoint,
        Attr::Known("https://secretsmanager.us-east-1.amazonaws.com".into())
    );
    let fresh = provider(&em);
    assert!(
        !plan(&fresh, &new, &read(&fresh, &failed).await).await.1,
        "the change is still to do"
    );
    let t = apply_ok(&fresh, &new, &read(&fresh, &failed).await).await;
    assert!(plan(&fresh, &new, &read(&fresh, &t).await).await.1);
    destroy(&fresh, &t).await;
}

/// Item: an update meets a stack stuck in UPDATE_ROLLBACK_FAILED (which
/// CloudFormation leaves when a rollback itself fails): the apply stops
/// with the command that continues the rollback, changes nothing, and goes
/// through once the rollback is done.
#[tokio::test]
async fn an_update_meeting_a_stuck_rollback_stops_with_the_recovery_command() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "rollback-stuck", "postgres", None)
            .await;
    let cfg = |version: &str| {
        config(&secret.arn, |c| {
            c.rotation_type = Attr::Known("postgresql_single_user".into());
            c.template_version = Attr::Known(version.into());
        })
    };
    let t = apply_ok(&p, &cfg("1.1.367"), &none()).await;
    let stack = model(&t).stack_id.known().cloned().expect("a stack id");
    em.set_stack_status(&stack, "UPDATE_ROLLBACK_FAILED");

    let (failed, d) = apply(&p, &cfg("1.1.671"), &t).await;
    let message = errors(&d).join(" ");
    assert!(
        message.contains("UPDATE_ROLLBACK_FAILED")
            && message.contains(&format!("continue-update-rollback --stack-name {stack}")),
        "{message}"
    );
    assert_eq!(
        model(&failed).template_version,
        Attr::Known("1.1.367".into())
    );
    assert_eq!(
        stack_tags(&em, &stack).await["serverlessrepo:semanticVersion"],
        "1.1.367"
    );
    assert!(look(&em, &secret.arn, None, None).await.rotation_enabled);

    // The operator continued the rollback.
    em.set_stack_status(&stack, "UPDATE_ROLLBACK_COMPLETE");
    let fresh = provider(&em);
    let t = apply_ok(&fresh, &cfg("1.1.671"), &read(&fresh, &failed).await).await;
    assert_eq!(
        stack_tags(&em, &stack).await["serverlessrepo:semanticVersion"],
        "1.1.671"
    );
    assert!(
        plan(&fresh, &cfg("1.1.671"), &read(&fresh, &t).await)
            .await
            .1
    );
    destroy(&fresh, &t).await;
}

/// Item: a stack whose deletion fails (DELETE_FAILED) fails the destroy,
/// which keeps the resource so that Terraform tries again; the next destroy
/// deletes the stack. A stack found in DELETE_FAILED by a refresh is drift,
/// and the apply deletes it and deploys anew.
#[tokio::test]
async fn a_stack_whose_deletion_failed_is_deleted_again() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "delete-fails", "postgres", None).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("postgresql_single_user".into());
    });
    let t = apply_ok(&p, &cfg, &none()).await;
    let stack = model(&t).stack_id.known().cloned().expect("a stack id");

    // Found in DELETE_FAILED (a deletion someone else started): drift.
    em.set_stack_status(&stack, "DELETE_FAILED");
    let fresh = provider(&em);
    let refreshed = read(&fresh, &t).await;
    assert!(
        !plan(&fresh, &cfg, &refreshed).await.1,
        "a failed stack is drift"
    );
    let t = apply_ok(&fresh, &cfg, &refreshed).await;
    let replaced = model(&t).stack_id.known().cloned().expect("a stack id");
    assert!(live_stacks(&em).await.contains(&replaced));
    assert!(plan(&fresh, &cfg, &read(&fresh, &t).await).await.1);

    // Our own deletion fails once.
    em.fail_stack_deletions(&replaced, 1);
    let p = provider(&em);
    let r = p
        .apply_resource_change(ApplyRequest {
            type_name: TYPE.into(),
            prior_state: t.state.clone(),
            planned_state: Value::Null,
            config: Value::Null,
            planned_private: t.private.clone(),
        })
        .await;
    let message = errors(&r.diagnostics).join(" ");
    assert!(
        r.diagnostics.has_errors() && message.contains("deleting stack"),
        "{message}"
    );
    assert!(
        !r.new_state.is_null(),
        "the resource stays for the next destroy"
    );
    assert!(live_stacks(&em).await.contains(&replaced));
    let kept = Tracked {
        state: r.new_state,
        private: r.private,
    };
    destroy(&p, &kept).await;
    assert!(!live_stacks(&em).await.contains(&replaced));
    assert!(!look(&em, &secret.arn, None, None).await.rotation_enabled);
}

/// Item: a `rotation_type` change that fails after the new stack was
/// deployed but before rotation moved to its Lambda: a retry that fails at
/// the same point still keeps the old stack, which the secret rotates with;
/// the one that succeeds deletes it.
#[tokio::test]
async fn the_replaced_stack_stays_until_rotation_has_moved() {
    let em = emulator_or_skip!();
    let p = provider_without_retries(&em);
    let master = master_secret(&em, "moving-master").await;
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "moving", "postgres", Some(&master))
            .await;
    let single = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("postgresql_single_user".into());
    });
    let multi = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("postgresql_multi_user".into());
        c.master_secret_arn = Attr::Known(master.clone());
    });
    let t = apply_ok(&p, &single, &none()).await;
    let old_stack = model(&t).stack_id.known().cloned().expect("a stack");
    let old_lambda = model(&t)
        .rotation_lambda_arn
        .known()
        .cloned()
        .expect("a Lambda");
    let mut t = t;
    for attempt in 0..2 {
        em.set_faults(
            1,
            &[FaultRule::on(
                "secretsmanager",
                "RotateSecret",
                Fault::ServerError,
            )],
        );
        let (failed, d) = apply(&p, &multi, &t).await;
        em.clear_faults();
        assert!(d.has_errors(), "attempt {attempt}");
        let seen = look(&em, &secret.arn, None, None).await;
        assert!(
            seen.live_stacks.contains(&old_stack) && seen.live_stacks.len() == 2,
            "attempt {attempt}: the old stack must stay: {seen:?}"
        );
        assert_eq!(seen.rotation_lambda.as_deref(), Some(old_lambda.as_str()));
        t = failed;
    }
    let t = apply_ok(&p, &multi, &t).await;
    let seen = look(&em, &secret.arn, None, None).await;
    assert_eq!(
        seen.live_stacks,
        model(&t)
            .stack_id
            .known()
            .cloned()
            .into_iter()
            .collect::<Vec<_>>()
    );
    destroy(&p, &t).await;
    assert!(look(&em, &secret.arn, None, None)
        .await
        .live_stacks
        .is_empty());
}

#[tokio::test]
async fn import_gives_a_state_whose_plan_is_empty() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let master = master_secret_of(&em, "master", "mysql").await;
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "db", "mysql", Some(&master)).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("mysql_multi_user".into());
        c.master_secret_arn = Attr::Known(master.clone());
        c.rotation_rules = Attr::Known(vec![RotationRules {
            schedule_expression: Attr::Known("rate(12 hours)".into()),
            duration: Attr::Known("2h".into()),
            ..Default::default()
        }]);
    });
    let created = apply_ok(&p, &cfg, &none()).await;

    // A fresh provider, as a new `terraform import` run would have.
    let fresh = provider(&em);
    let r = fresh.import_resource_state(TYPE, &secret.arn).await;
    assert!(r.diagnostics.is_empty(), "{:?}", errors(&r.diagnostics));
    let imported = r.imported.first().expect("one resource");
    let t = read(
        &fresh,
        &Tracked {
            state: imported.state.clone(),
            private: imported.private.clone(),
        },
    )
    .await;
    let (planned, empty) = plan(&fresh, &cfg, &t).await;
    assert!(
        empty,
        "imported {:#?}\nplanned {:#?}",
        model(&t),
        Rotation::from_value(&planned)
    );
    assert_eq!(model(&t).stack_id, model(&created).stack_id);
    destroy(&fresh, &t).await;
    let seen = look(&em, &secret.arn, None, None).await;
    assert!(
        !seen.rotation_enabled && seen.live_stacks.is_empty(),
        "{seen:?}"
    );
}

/// A provider that makes one attempt per AWS call: an injected fault then
/// fails its step at once.
///
/// AWS's request quotas are turned off for the emulator it talks to. The
/// provider paces itself to them, but the test's own look-ups draw from the
/// same account's buckets (Lambda's 15 control-plane calls a second most of
/// all), and without retries a throttle they caused would fail a step the
/// test did not choose. Throttling is covered by the suites that keep the
/// retries (`under_load`, `chaos`).
pub(crate) fn provider_without_retries(em: &Emulator) -> RdsrotProvider {
    em.set_quota_scale(0.0);
    RdsrotProvider::with_clients(
        Clients::new(&em.sdk_config(), &Endpoints::default()).with_max_attempts(1),
    )
}

/// The first AWS call of each create step (and how many of the same call
/// come before it, e.g. at plan time) for a multi-user template.
const FIRST_CALL_OF_STEP: [(Step, &str, &str, u64); 6] = [
    // The plan looks up the secret and the master secret (for the
    // pre-flight check and for its KMS key), and apply's pre-flight check
    // the master secret, before this step's look-up.
    (Step::CheckSecret, "secretsmanager", "DescribeSecret", 4),
    (
        Step::DeployTemplate,
        "serverlessrepo",
        "CreateCloudFormationChangeSet",
        0,
    ),
    // The plan looks up whether a function already has the stack's name,
    // and the deployment reads the new function's tags (its owner mark).
    (Step::ReadLambda, "lambda", "GetFunction", 2),
    (Step::AddPermission, "lambda", "GetPolicy", 0),
    (Step::GrantMasterSecret, "iam", "GetRolePolicy", 0),
    (Step::TurnOnRotation, "secretsmanager", "RotateSecret", 0),
];

#[tokio::test]
async fn a_failure_at_each_create_step_leaves_everything_recorded() {
    let em = emulator_or_skip!();
    let p = provider_without_retries(&em);
    let master = master_secret(&em, "master").await;
    for (i, (step, service, call, skip)) in FIRST_CALL_OF_STEP.iter().enumerate() {
        let step = step.describe();
        let secret = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("db-{i}"),
            "postgres",
            Some(&master),
        )
        .await;
        let cfg = config(&secret.arn, |c| {
            c.rotation_type = Attr::Known("postgresql_multi_user".into());
            c.master_secret_arn = Attr::Known(master.clone());
        });
        em.set_faults(
            1,
            &[FaultRule::on(service, call, Fault::ServerError)
                .skip(*skip)
                .times(1)],
        );
        let (t, d) = apply(&p, &cfg, &none()).await;
        em.clear_faults();
        let message = errors(&d).join("\n");
        assert!(
            message.contains(&format!("Creating rotation failed while {step}"))
                && message.contains(&format!("Secret: {}.", secret.arn)),
            "{step}: {message}"
        );
        // Every live stack is the one the state records.
        let s = model(&t);
        let seen = look(
            &em,
            &secret.arn,
            s.rotation_lambda_arn.as_deref(),
            s.rotation_lambda_role_arn.as_deref(),
        )
        .await;
        let ours: Vec<String> = s.stack_id.known().cloned().into_iter().collect();
        assert_eq!(seen.live_stacks, ours, "{step}: unrecorded stack");
        if t.state.is_null() {
            // Nothing recorded: then nothing may exist.
            assert!(
                seen.live_stacks.is_empty() && !seen.rotation_enabled,
                "{step}: {seen:?}"
            );
            assert!(i <= 1, "{step}: a step after the stack returned no state");
            continue;
        }
        // Destroy from the partial state leaves nothing.
        destroy(&p, &t).await;
        let seen = look(
            &em,
            &secret.arn,
            s.rotation_lambda_arn.as_deref(),
            s.rotation_lambda_role_arn.as_deref(),
        )
        .await;
        assert!(
            seen.live_stacks.is_empty()
                && seen.our_statements.is_empty()
                && !seen.master_policy
                && !seen.rotation_enabled,
            "{step}: {seen:?}"
        );
    }
}

/// Applies `cfg` over `prior` with the answer of `call` lost (the emulator
/// carries the call out, then resets the connection) and no retry: the
/// apply fails. Returns the partial state.
async fn apply_losing_answer(
    em: &Emulator,
    p: &RdsrotProvider,
    (service, call): (&str, &str),
    cfg: &Value,
    prior: &Tracked,
) -> Tracked {
    em.set_faults(
        1,
        &[FaultRule::on(service, call, Fault::ResetAfter).times(1)],
    );
    let (t, d) = apply(p, cfg, prior).await;
    em.clear_faults();
    assert!(d.has_errors(), "{call}: the lost answer fails the apply");
    assert!(
        !t.state.is_null(),
        "{call}: what the call made must be in the state"
    );
    t
}

const CHANGE_SET: (&str, &str) = ("serverlessrepo", "CreateCloudFormationChangeSet");
const ADD_PERMISSION: (&str, &str) = ("lambda", "AddPermission");
const EXECUTE_CHANGE_SET: (&str, &str) = ("cloudformation", "ExecuteChangeSet");

#[tokio::test]
async fn a_call_whose_answer_is_lost_leaves_what_it_made_recorded() {
    let em = emulator_or_skip!();
    let p = provider_without_retries(&em);
    let (lambda, role) = existing_lambda(&em, "lost-answer-rotator").await;

    // The change set: only a template makes one.
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "lost-0", "postgres", None).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("postgresql_single_user".into());
    });
    let t = apply_losing_answer(&em, &p, CHANGE_SET, &cfg, &none()).await;
    let seen = look(&em, &secret.arn, None, None).await;
    assert_eq!(seen.live_stacks.len(), 1, "{seen:?}");
    destroy(&p, &t).await;
    let seen = look(&em, &secret.arn, None, None).await;
    assert!(seen.live_stacks.is_empty(), "{seen:?}");

    // The invoke permission, on an existing Lambda: nothing else is made
    // before it.
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "lost-1", "postgres", None).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(lambda.clone());
    });
    let t = apply_losing_answer(&em, &p, ADD_PERMISSION, &cfg, &none()).await;
    let seen = look(&em, &secret.arn, Some(&lambda), Some(&role)).await;
    assert_eq!(seen.our_statements.len(), 1, "{seen:?}");
    destroy(&p, &t).await;
    let seen = look(&em, &secret.arn, Some(&lambda), Some(&role)).await;
    assert!(seen.our_statements.is_empty(), "{seen:?}");

    // The permission on a second Lambda, while the first one's is still
    // recorded: destroy removes both.
    let t = apply_ok(&p, &cfg, &none()).await;
    let (second, second_role) = existing_lambda(&em, "lost-answer-second").await;
    let cfg2 = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(second.clone());
    });
    let t = apply_losing_answer(&em, &p, ADD_PERMISSION, &cfg2, &t).await;
    assert_eq!(
        look(&em, &secret.arn, Some(&second), None)
            .await
            .our_statements
            .len(),
        1
    );
    destroy(&p, &t).await;
    for (function, role) in [(&lambda, &role), (&second, &second_role)] {
        let seen = look(&em, &secret.arn, Some(function), Some(role)).await;
        assert!(
            seen.our_statements.is_empty() && !seen.rotation_enabled,
            "{function}: {seen:?}"
        );
    }
}

/// Applies `cfg` while `call` loses its first answer (the call happened),
/// and checks that the fault was injected and that the apply converged: it
/// succeeded and the next plan is empty.
async fn apply_after_lost_answer(
    em: &Emulator,
    p: &RdsrotProvider,
    (service, call): (&str, &str),
    cfg: &Value,
) -> Tracked {
    em.set_faults(
        1,
        &[FaultRule::on(service, call, Fault::ResetAfter).times(1)],
    );
    let (t, d) = apply(p, cfg, &none()).await;
    let counts = em.fault_counts();
    em.clear_faults();
    assert_eq!(
        counts["calls"][format!("{service}:{call}")]["faults"]["reset_after"],
        1,
        "{call}: the answer was lost once: {counts}"
    );
    assert!(
        d.is_empty(),
        "{call}: the replay succeeds: {:?}",
        errors(&d)
    );
    assert!(
        plan(p, cfg, &read(p, &t).await).await.1,
        "{call}: plan after"
    );
    t
}

/// A call whose answer was lost is sent again, and the replay counts as
/// done when the first attempt did the work: AddPermission finds its
/// statement id taken, RotateSecret, CreateCloudFormationChangeSet and
/// ExecuteChangeSet repeat their token. The apply converges with one
/// statement of ours, and destroy leaves nothing.
#[tokio::test]
async fn a_replay_after_a_lost_answer_succeeds() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    // A function that rotates, since the provider waits for the rotation
    // RotateSecret starts.
    let lambda = moto::create_existing_rotation_lambda(&em.sdk_config(), "replay-rotator").await;
    let role = em
        .iam()
        .get_role()
        .role_name("replay-rotator-role")
        .send()
        .await
        .expect("the rotator's role")
        .role()
        .map(|r| r.arn().to_owned())
        .expect("role arn");
    let master = master_secret(&em, "replay-master").await;
    let calls = [
        ADD_PERMISSION,
        ("lambda", "UpdateFunctionConfiguration"),
        ("iam", "PutRolePolicy"),
        ("secretsmanager", "RotateSecret"),
    ];
    for (i, call) in calls.into_iter().enumerate() {
        let secret = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("replay-{i}"),
            "postgres",
            Some(&master),
        )
        .await;
        let cfg = config(&secret.arn, |c| {
            c.rotation_lambda_arn = Attr::Known(lambda.clone());
            c.master_secret_arn = Attr::Known(master.clone());
            c.vpc_subnet_ids = Attr::Known(vec![format!("subnet-{i}")]);
            c.vpc_security_group_ids = Attr::Known(vec!["sg-1".into()]);
        });
        let t = apply_after_lost_answer(&em, &p, call, &cfg).await;
        let seen = look(&em, &secret.arn, Some(&lambda), Some(&role)).await;
        assert_eq!(seen.our_statements.len(), 1, "{call:?}: {seen:?}");
        assert!(seen.master_policy, "{call:?}: {seen:?}");
        destroy(&p, &t).await;
        assert_nothing_left(&em, &secret.arn, Some(&lambda), Some(&role)).await;
    }
    for call in [CHANGE_SET, EXECUTE_CHANGE_SET] {
        let secret = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("replay-{}", call.1),
            "postgres",
            None,
        )
        .await;
        let cfg = config(&secret.arn, |c| {
            c.rotation_type = Attr::Known("postgresql_single_user".into());
        });
        let t = apply_after_lost_answer(&em, &p, call, &cfg).await;
        let seen = look(&em, &secret.arn, None, None).await;
        assert_eq!(seen.live_stacks.len(), 1, "{call:?}: one stack: {seen:?}");
        destroy(&p, &t).await;
        assert_nothing_left(&em, &secret.arn, None, None).await;
    }
}

/// Regression: a switch to a second Lambda whose invoke permission fails to
/// be added, then a refresh. The first Lambda's statement must
/// stay recorded, so that destroy still removes it.
#[tokio::test]
async fn a_refresh_after_a_failed_lambda_switch_keeps_the_old_statement_recorded() {
    let em = emulator_or_skip!();
    let p = provider_without_retries(&em);
    let (first, first_role) = existing_lambda(&em, "switch-first").await;
    let (second, _) = existing_lambda(&em, "switch-second").await;
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "switch", "postgres", None).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(first.clone());
    });
    let t = apply_ok(&p, &cfg, &none()).await;
    let cfg2 = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(second.clone());
    });
    em.set_faults(
        1,
        &[FaultRule::on("lambda", "AddPermission", Fault::ServerError).times(1)],
    );
    let (t, d) = apply(&p, &cfg2, &t).await;
    em.clear_faults();
    assert!(
        errors(&d)
            .join(" ")
            .contains(Step::AddPermission.describe()),
        "{d:?}"
    );
    let t = read(&p, &t).await;
    destroy(&p, &t).await;
    let seen = look(&em, &secret.arn, Some(&first), Some(&first_role)).await;
    assert!(seen.our_statements.is_empty(), "{seen:?}");
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

#[tokio::test]
async fn create_refuses_a_rotation_set_up_by_someone_else_and_import_takes_it_over() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (theirs, _) = existing_lambda(&em, "their-rotator").await;
    let (lambda, _) = existing_lambda(&em, "rotator").await;
    let secret = moto::create_database_secret(&em.secretsmanager(), "db", "postgres", None).await;
    rotate_out_of_band(&em, &secret.arn, &theirs).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(lambda.clone())
    });
    let (t, d) = apply(&p, &cfg, &none()).await;
    assert!(t.state.is_null());
    let message = errors(&d).join(" ");
    assert!(
        message.contains("terraform import") && message.contains(&theirs),
        "{message}"
    );
    let seen = look(&em, &secret.arn, Some(&lambda), None).await;
    assert!(seen.our_statements.is_empty(), "nothing made: {seen:?}");

    // Import it instead. The rotation made outside lacks our scoped invoke
    // permission: the plan adds it and nothing else, and after apply the
    // plan is empty.
    let r = p.import_resource_state(TYPE, &secret.name).await;
    let imported = r.imported.first().expect("imported");
    let t = Tracked {
        state: imported.state.clone(),
        private: imported.private.clone(),
    };
    let cfg = cfg_named(&secret.name, &theirs);
    let t = read(&p, &t).await;
    assert!(model(&t).permission_statement_id.is_null());
    let (planned, empty) = plan(&p, &cfg, &t).await;
    assert!(!empty);
    let mut expected = model(&t);
    expected.permission_statement_id = Rotation::from_value(&planned).permission_statement_id;
    assert!(
        planned.same_as(&expected.to_value()),
        "{:#?}",
        Rotation::from_value(&planned)
    );
    let t = apply_ok(&p, &cfg, &t).await;
    assert!(plan(&p, &cfg, &read(&p, &t).await).await.1);
}

/// Item: an interrupted create (the provider killed, or its answer lost,
/// after RotateSecret) left rotation on with our Lambda and no state. The
/// next apply adopts it instead of refusing the secret.
#[tokio::test]
async fn a_create_interrupted_after_rotation_was_turned_on_is_adopted() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (lambda, role) = existing_lambda(&em, "adopted-rotator").await;
    let master = master_secret(&em, "adopt-master").await;

    // The configured Lambda.
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "adopt-0", "postgres", None).await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(lambda.clone())
    });
    let _lost = apply_ok(&p, &cfg, &none()).await;
    let t = apply_ok(&p, &cfg, &none()).await;
    assert!(plan(&p, &cfg, &read(&p, &t).await).await.1);
    destroy(&p, &t).await;
    let seen = look(&em, &secret.arn, Some(&lambda), Some(&role)).await;
    assert!(
        !seen.rotation_enabled && seen.our_statements.is_empty(),
        "{seen:?}"
    );

    // The Lambda of a stack deployed for this secret.
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "adopt-1", "postgres", Some(&master))
            .await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("postgresql_multi_user".into());
        c.master_secret_arn = Attr::Known(master.clone());
    });
    let lost = apply_ok(&p, &cfg, &none()).await;
    let t = apply_ok(&p, &cfg, &none()).await;
    assert_eq!(model(&t).stack_id, model(&lost).stack_id, "the same stack");
    assert!(plan(&p, &cfg, &read(&p, &t).await).await.1);
    destroy(&p, &t).await;
    let s = model(&lost);
    let seen = look(
        &em,
        &secret.arn,
        s.rotation_lambda_arn.as_deref(),
        s.rotation_lambda_role_arn.as_deref(),
    )
    .await;
    assert!(
        seen.live_stacks.is_empty() && !seen.rotation_enabled && !seen.master_policy,
        "{seen:?}"
    );
}

/// Item: a deleted secret keeps the resource in state, and the plan offers
/// a replacement whose destroy half removes what was made for it.
#[tokio::test]
async fn a_deleted_secret_keeps_the_resource_so_destroy_cleans_up() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let master = master_secret(&em, "deleted-master").await;
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "deleted", "postgres", Some(&master))
            .await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("postgresql_multi_user".into());
        c.master_secret_arn = Attr::Known(master.clone());
    });
    let t = apply_ok(&p, &cfg, &none()).await;
    let made = model(&t);
    em.secretsmanager()
        .delete_secret()
        .secret_id(&secret.arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete secret");
    let t = read(&p, &t).await;
    assert!(!t.state.is_null(), "the resource stays in state");
    assert!(model(&t).secret_arn.is_null());
    let r = p
        .plan_resource_change(PlanRequest {
            type_name: TYPE.into(),
            prior_state: t.state.clone(),
            proposed_new_state: cfg.clone(),
            config: cfg.clone(),
            prior_private: t.private.clone(),
        })
        .await;
    assert!(!r.diagnostics.has_errors(), "{:?}", errors(&r.diagnostics));
    assert!(
        !r.requires_replace.is_empty(),
        "the plan replaces the resource"
    );
    destroy(&p, &t).await;
    let seen = look(
        &em,
        &secret.arn,
        made.rotation_lambda_arn.as_deref(),
        made.rotation_lambda_role_arn.as_deref(),
    )
    .await;
    assert!(
        seen.live_stacks.is_empty() && !seen.master_policy,
        "{seen:?}"
    );
}

fn cfg_named(name: &str, lambda: &str) -> Value {
    config(name, |c| {
        c.rotation_lambda_arn = Attr::Known(lambda.into());
        c.rotation_rules = Attr::Known(vec![RotationRules {
            automatically_after_days: Attr::Known(7),
            ..Default::default()
        }]);
    })
}

/// This test binary, set to run only the ignored test `probe` (a name in
/// this module): for checks that need an environment of their own, which
/// is process-wide.
fn probe_command(probe: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        &format!("lifecycle::{probe}"),
        "--exact",
        "--ignored",
        "--nocapture",
    ]);
    cmd
}

/// Runs a probe and asserts that it ran, and passed.
fn assert_probe_passes(cmd: &mut std::process::Command) {
    let out = cmd.output().expect("run the probe");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the probe ran: {text}");
}

/// Set in the child process of `configure_honours_endpoint_variables`.
const PROBE_ENDPOINT: &str = "RDSROT_TEST_PROBE_ENDPOINT";

/// ConfigureProvider reads the standard `AWS_ENDPOINT_URL_<SERVICE>`
/// variables, and the `endpoints` block wins over them. Environment
/// variables are process-wide, so the check runs in a child process (this
/// test binary, running only `probe_configure_from_environment`).
#[tokio::test]
async fn configure_honours_endpoint_variables() {
    let em = emulator_or_skip!();
    let dead = "http://127.0.0.1:9";
    let mut cmd = probe_command("probe_configure_from_environment");
    cmd.env_remove("AWS_PROFILE")
        .env(PROBE_ENDPOINT, &em.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", moto::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        // Everything not named otherwise goes nowhere...
        .env("AWS_ENDPOINT_URL", dead)
        // ...these two reach the emulator through their own variables...
        .env(
            "AWS_ENDPOINT_URL_SERVERLESSAPPLICATIONREPOSITORY",
            &em.endpoint,
        )
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &em.endpoint)
        // ...and Lambda's variable loses to the provider's `endpoints` block.
        .env("AWS_ENDPOINT_URL_LAMBDA", dead);
    assert_probe_passes(&mut cmd);
}

#[tokio::test]
#[ignore = "run by configure_honours_endpoint_variables in a child process"]
async fn probe_configure_from_environment() {
    let Ok(emulator) = std::env::var(PROBE_ENDPOINT) else {
        panic!("run only by configure_honours_endpoint_variables");
    };
    let p = RdsrotProvider::new();
    let endpoints = Value::object([
        ("secretsmanager", Value::Null),
        ("lambda", Value::string(emulator.clone())),
        ("iam", Value::Null),
        ("cloudformation", Value::Null),
        ("serverlessrepo", Value::Null),
        ("sts", Value::Null),
        ("logs", Value::Null),
    ]);
    let d = p
        .configure(
            "1.0.3",
            &Value::object([
                ("region", Value::Null),
                ("profile", Value::Null),
                ("max_retries", Value::int(0)),
                ("assume_role", Value::Null),
                ("endpoints", endpoints),
            ]),
        )
        .await;
    assert!(d.is_empty(), "{:?}", errors(&d));
    let c = p.clients().expect("configured");
    assert_eq!(
        c.region.as_deref(),
        Some(moto::REGION),
        "region from AWS_REGION"
    );
    let app = rdsrot::aws::serverlessrepo::application_arn(
        "SecretsManagerRotationTemplate",
        moto::REGION,
    );
    c.serverlessrepo
        .get_application()
        .application_id(app)
        .send()
        .await
        .expect("AWS_ENDPOINT_URL_SERVERLESSAPPLICATIONREPOSITORY is honoured");
    c.secretsmanager
        .list_secrets()
        .send()
        .await
        .expect("AWS_ENDPOINT_URL_SECRETS_MANAGER is honoured");
    c.lambda
        .list_functions()
        .send()
        .await
        .expect("the endpoints block wins over AWS_ENDPOINT_URL_LAMBDA");
    assert!(
        c.iam.list_roles().send().await.is_err(),
        "IAM follows AWS_ENDPOINT_URL, which goes nowhere"
    );

    // assume_role: credentials come from STS (through `endpoints.sts`), and
    // only when first needed.
    let assumed = RdsrotProvider::new();
    let d = assumed
        .configure(
            "1.0.3",
            &Value::object([
                ("region", Value::string(moto::REGION)),
                ("profile", Value::Null),
                ("max_retries", Value::int(0)),
                (
                    "assume_role",
                    Value::object([
                        (
                            "role_arn",
                            Value::string("arn:aws:iam::123456789012:role/deployer"),
                        ),
                        ("session_name", Value::string("lifecycle")),
                        ("external_id", Value::string("x-1")),
                    ]),
                ),
                (
                    "endpoints",
                    Value::object([
                        ("secretsmanager", Value::string(emulator.clone())),
                        ("lambda", Value::Null),
                        ("iam", Value::Null),
                        ("cloudformation", Value::Null),
                        ("serverlessrepo", Value::Null),
                        ("sts", Value::string(emulator.clone())),
                    ]),
                ),
            ]),
        )
        .await;
    assert!(d.is_empty(), "{:?}", errors(&d));
    assumed
        .clients()
        .expect("configured")
        .secretsmanager
        .list_secrets()
        .send()
        .await
        .expect("a call signed with the assumed role's credentials");
}

pub(crate) async fn pending_versions(em: &Emulator, secret: &str) -> usize {
    let d = em
        .secretsmanager()
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .expect("describe");
    d.version_ids_to_stages()
        .map(|m| {
            m.values()
                .filter(|labels| labels.iter().any(|l| l == "AWSPENDING"))
                .count()
        })
        .unwrap_or(0)
}

/// Whether the AWSPENDING version holds a value (see its use).
/// The version holding AWSCURRENT.
pub(crate) async fn current_version(em: &Emulator, secret: &str) -> String {
    em.secretsmanager()
        .get_secret_value()
        .secret_id(secret)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("read the current version")
        .version_id()
        .unwrap_or_default()
        .to_string()
}

/// Everything the function (by ARN) logged, oldest first.
pub(crate) async fn function_log(em: &Emulator, function_arn: &str) -> String {
    let name = function_arn.rsplit(':').next().unwrap_or_default();
    let events = aws_sdk_cloudwatchlogs::Client::new(&em.sdk_config())
        .filter_log_events()
        .log_group_name(format!("/aws/lambda/{name}"))
        .send()
        .await
        .expect("read the function's log");
    events
        .events()
        .iter()
        .filter_map(|e| e.message())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) async fn stack_parameter(em: &Emulator, stack: &str, key: &str) -> Option<String> {
    let out = em
        .cloudformation()
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .expect("describe stack");
    out.stacks()
        .first()?
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some(key))
        .and_then(|p| p.parameter_value().map(str::to_string))
}

#[tokio::test]
async fn updates_in_place_and_a_new_template_replaces_the_stack() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let sm = em.secretsmanager();
    let secret = moto::create_database_secret(&sm, "db", "postgres", None).await;
    let base = |f: &dyn Fn(&mut Rotation)| {
        config(&secret.arn, |c| {
            c.rotation_type = Attr::Known("postgresql_single_user".into());
            f(c)
        })
    };
    let t = apply_ok(&p, &base(&|_| {}), &none()).await;
    let first_stack = model(&t).stack_id.known().cloned().expect("stack");
    assert_eq!(
        pending_versions(&em, &secret.arn).await,
        1,
        "rotated immediately"
    );

    // Schedule, without rotating at once.
    let cfg = base(&|c| {
        c.rotate_immediately = Attr::Known(false);
        c.rotation_rules = Attr::Known(vec![RotationRules {
            schedule_expression: Attr::Known("cron(0 4 ? * SUN *)".into()),
            duration: Attr::Known("3h".into()),
            ..Default::default()
        }]);
    });
    let t = apply_ok(&p, &cfg, &read(&p, &t).await).await;
    let d = sm
        .describe_secret()
        .secret_id(&secret.arn)
        .send()
        .await
        .expect("describe");
    let rules = d.rotation_rules().expect("rules");
    assert_eq!(rules.schedule_expression(), Some("cron(0 4 ? * SUN *)"));
    assert_eq!(rules.duration(), Some("3h"));
    assert!(plan(&p, &cfg, &read(&p, &t).await).await.1);

    // Disabled: rotation cancelled and the orphan AWSPENDING label removed.
    let off = base(&|c| c.enabled = Attr::Known(false));
    let t = apply_ok(&p, &off, &read(&p, &t).await).await;
    let d = sm
        .describe_secret()
        .secret_id(&secret.arn)
        .send()
        .await
        .expect("describe");
    assert_eq!(d.rotation_enabled(), Some(false));
    assert_eq!(pending_versions(&em, &secret.arn).await, 0);
    assert!(plan(&p, &off, &read(&p, &t).await).await.1);
    let t = apply_ok(&p, &base(&|_| {}), &read(&p, &t).await).await;
    let d = sm
        .describe_secret()
        .secret_id(&secret.arn)
        .send()
        .await
        .expect("describe");
    assert_eq!(d.rotation_enabled(), Some(true));

    // A template parameter: a change set on the same stack.
    let chars = base(&|c| c.exclude_characters = Attr::Known("%&".into()));
    let t = apply_ok(&p, &chars, &read(&p, &t).await).await;
    assert_eq!(model(&t).stack_id.known(), Some(&first_stack));
    assert_eq!(
        stack_parameter(&em, &first_stack, "excludeCharacters")
            .await
            .as_deref(),
        Some("%&")
    );
    assert!(plan(&p, &chars, &read(&p, &t).await).await.1);

    // Another template with the same, user-set function name: the old
    // stack must go before the new one can take the name.
    let named = |t: &str| {
        let t = t.to_string();
        config(&secret.arn, move |c| {
            c.rotation_type = Attr::Known(t.clone());
            c.function_name = Attr::Known("shared-rotator".into());
        })
    };
    let t = apply_ok(&p, &named("postgresql_single_user"), &read(&p, &t).await).await;
    let named_stack = model(&t).stack_id.known().cloned().expect("stack");
    let t = apply_ok(&p, &named("generic"), &read(&p, &t).await).await;
    let seen = look(&em, &secret.arn, None, None).await;
    assert_eq!(seen.live_stacks.len(), 1, "{seen:?}");
    assert_ne!(seen.live_stacks.first(), Some(&named_stack));
    assert!(plan(&p, &named("generic"), &read(&p, &t).await).await.1);

    // Another template (the PostgreSQL one again, under its own default
    // function name): a new stack, rotation moved to it, the old one gone.
    let default_named = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("postgresql_single_user".into());
    });
    let t = apply_ok(&p, &default_named, &read(&p, &t).await).await;
    let s = model(&t);
    let new_stack = s.stack_id.known().cloned().expect("stack");
    assert_ne!(new_stack, first_stack);
    let seen = look(&em, &secret.arn, None, None).await;
    assert_eq!(seen.live_stacks, vec![new_stack]);
    assert_eq!(
        seen.rotation_lambda.as_deref(),
        s.rotation_lambda_arn.as_deref()
    );
    assert!(plan(&p, &default_named, &read(&p, &t).await).await.1);

    // From a template to an existing Lambda: the stack goes.
    let (own, own_role) = existing_lambda(&em, "own-rotator").await;
    let existing = config(&secret.arn, |c| {
        c.rotation_lambda_arn = Attr::Known(own.clone());
    });
    let t = apply_ok(&p, &existing, &read(&p, &t).await).await;
    let seen = look(&em, &secret.arn, Some(&own), Some(&own_role)).await;
    assert!(seen.live_stacks.is_empty(), "{seen:?}");
    assert_eq!(seen.rotation_lambda.as_deref(), Some(own.as_str()));
    assert_eq!(seen.our_statements.len(), 1);
    assert!(plan(&p, &existing, &read(&p, &t).await).await.1);

    destroy(&p, &t).await;
    // AWSPENDING may stay beside AWSCURRENT after a finished rotation, as
    // on AWS; alone on another version it would block the next rotation.
    assert!(!pending_label_blocks(&em, &secret.arn).await);
    assert_left_as_found(&em, &secret.arn, &own, &own_role).await;
    assert_nothing_left(&em, &secret.arn, Some(&own), Some(&own_role)).await;
}

#[tokio::test]
async fn created_disabled_sets_everything_up_but_does_not_rotate() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let secret = moto::create_database_secret(&em.secretsmanager(), "db", "mysql", None).await;
    let off = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("generic".into());
        c.enabled = Attr::Known(false);
    });
    let t = apply_ok(&p, &off, &none()).await;
    let s = model(&t);
    let lambda = s
        .rotation_lambda_arn
        .known()
        .cloned()
        .expect("the Lambda exists");
    let seen = look(&em, &secret.arn, Some(&lambda), None).await;
    assert!(!seen.rotation_enabled, "{seen:?}");
    assert_eq!(seen.our_statements.len(), 1, "the permission is in place");
    assert_eq!(pending_versions(&em, &secret.arn).await, 0);
    assert!(plan(&p, &off, &read(&p, &t).await).await.1);

    // Enabled without an immediate rotation: Secrets Manager runs only the
    // function's testSecret step, and AWSCURRENT stays where it was.
    let current_before = current_version(&em, &secret.arn).await;
    let on = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("generic".into());
        c.rotate_immediately = Attr::Known(false);
    });
    let t = apply_ok(&p, &on, &read(&p, &t).await).await;
    assert!(look(&em, &secret.arn, None, None).await.rotation_enabled);
    assert_eq!(
        current_version(&em, &secret.arn).await,
        current_before,
        "RotateImmediately=false rotated the secret"
    );
    let log = function_log(&em, &lambda).await;
    assert!(
        log.contains("testSecret") && !log.contains("createSecret"),
        "RotateImmediately=false was not what the function saw:\n{log}"
    );
    assert!(plan(&p, &on, &read(&p, &t).await).await.1);
    destroy(&p, &t).await;
}

/// ConfigureProvider makes no network call: not for the region (never from
/// instance metadata) and not for credentials (resolved on first use). The
/// check runs in a child process whose instance-metadata endpoint is a
/// local listener counting connections.
#[test]
fn configure_makes_no_network_call() {
    let mut cmd = probe_command("probe_configure_offline");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_ENDPOINT_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(PROBE_ENDPOINT, "offline")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    assert_probe_passes(&mut cmd);
}

#[tokio::test]
#[ignore = "run by configure_makes_no_network_call in a child process"]
async fn probe_configure_offline() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    assert_eq!(
        std::env::var(PROBE_ENDPOINT).as_deref(),
        Ok("offline"),
        "run only by configure_makes_no_network_call"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    // This process runs only this test: changing its environment is safe.
    std::env::set_var(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    let provider_config = |region: Value| {
        Value::object([
            ("region", region),
            ("profile", Value::Null),
            ("max_retries", Value::int(0)),
            ("assume_role", Value::Null),
            ("endpoints", Value::Null),
        ])
    };

    // No region anywhere: a clear error, and no instance-metadata lookup.
    let d = RdsrotProvider::new()
        .configure("1.0.3", &provider_config(Value::Null))
        .await;
    assert!(
        d.iter().any(|x| x.summary == "No AWS region"),
        "{:?}",
        errors(&d)
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "configure without a region called out"
    );
    let p = RdsrotProvider::new();
    let d = p
        .configure("1.0.3", &provider_config(Value::string("eu-west-1")))
        .await;
    assert!(d.is_empty(), "{:?}", errors(&d));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "configure called out"
    );

    // The listener does see the credential lookup of a first real call.
    let clients = p.clients().expect("configured");
    let _ = clients
        .secretsmanager
        .config()
        .region()
        .expect("region set");
    let call = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        clients.secretsmanager.list_secrets().send(),
    )
    .await;
    assert!(!matches!(call, Ok(Ok(_))), "no credentials, no success");
    assert!(
        connections.load(Ordering::SeqCst) > 0,
        "the first call looked for instance credentials at the listener"
    );
}

/// The stack's tags: application and version as the repository set them.
pub(crate) async fn stack_tags(
    em: &Emulator,
    stack: &str,
) -> std::collections::BTreeMap<String, String> {
    let described = em
        .cloudformation()
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .expect("describe the stack");
    described
        .stacks()
        .first()
        .map(|st| {
            st.tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Item: every engine the templates cover, single user and alternating
/// users: each deploys its own application at the version pinned for it,
/// rotates with its Lambda, plans empty and destroys clean.
#[tokio::test]
async fn every_engine_template_creates_plans_empty_and_destroys_clean() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    for rotation_type in NEW_ROTATION_TYPES {
        let tpl = engines::template_of(rotation_type);
        let (secret, master) = engines::create_secrets(
            &em.secretsmanager(),
            &format!("db-{rotation_type}"),
            rotation_type,
        )
        .await;
        let cfg = config(&secret.arn, |c| {
            c.rotation_type = Attr::Known(rotation_type.into());
            c.master_secret_arn = Attr::from_option(master.as_ref().map(|m| m.arn.clone()));
        });
        let t = apply_ok(&p, &cfg, &none()).await;
        let s = model(&t);
        let pinned = tpl.default_version(moto::REGION).expect("a pinned version");
        assert_eq!(
            s.template_version.as_deref(),
            Some(pinned),
            "{rotation_type}"
        );
        let stack = s.stack_id.known().cloned().expect("stack id");
        let tags = stack_tags(&em, &stack).await;
        assert_eq!(
            tags.get("serverlessrepo:applicationId"),
            Some(&tpl.application_arn(moto::REGION)),
            "{rotation_type}"
        );
        assert_eq!(
            tags.get("serverlessrepo:semanticVersion")
                .map(String::as_str),
            Some(pinned),
            "{rotation_type}"
        );
        let lambda = s.rotation_lambda_arn.known().cloned().expect("lambda");
        let role = s.rotation_lambda_role_arn.known().cloned().expect("role");
        let seen = look(&em, &secret.arn, Some(&lambda), Some(&role)).await;
        assert!(seen.rotation_enabled, "{rotation_type}: {seen:?}");
        assert_eq!(seen.rotation_lambda.as_deref(), Some(lambda.as_str()));
        assert!(seen.live_stacks.contains(&stack), "{rotation_type}");
        assert_eq!(seen.our_statements.len(), 1, "{rotation_type}: {seen:?}");
        // Db2's single-user Lambda signs in as the master user too.
        assert_eq!(
            seen.master_policy, tpl.needs_master_secret,
            "{rotation_type}"
        );
        assert!(!leaked(&t, &secret.password), "{rotation_type}");
        if let Some(m) = &master {
            assert!(!leaked(&t, &m.password), "{rotation_type}");
        }

        let t = read(&p, &t).await;
        assert_eq!(model(&t).rotation_type.as_deref(), Some(rotation_type));
        let (_, empty) = plan(&p, &cfg, &t).await;
        assert!(empty, "{rotation_type}: plan after apply must be empty");

        destroy(&p, &t).await;
        assert_nothing_left(&em, &secret.arn, Some(&lambda), Some(&role)).await;
    }
}

/// Item: the generic template has no pinned version: the plan leaves it to
/// the apply, which deploys the newest published one and records it, and
/// the next plan keeps it.
#[tokio::test]
async fn the_generic_template_records_the_newest_version_it_deployed() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (secret, _) = engines::create_secrets(&em.secretsmanager(), "generic-db", "generic").await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("generic".into());
    });
    let (planned, _) = plan(&p, &cfg, &none()).await;
    assert!(Rotation::from_value(&planned).template_version.is_unknown());
    let newest = em
        .serverlessrepo()
        .get_application()
        .application_id(engines::template_of("generic").application_arn(moto::REGION))
        .send()
        .await
        .expect("get application")
        .version()
        .and_then(|v| v.semantic_version().map(str::to_string))
        .expect("the newest version");
    let t = apply_ok(&p, &cfg, &none()).await;
    assert_eq!(model(&t).template_version.as_deref(), Some(newest.as_str()));
    let t = read(&p, &t).await;
    assert!(plan(&p, &cfg, &t).await.1, "plan after apply must be empty");
    destroy(&p, &t).await;
}

/// Item: a `template_version` the application does not publish fails the
/// apply with the reason, before any stack or rotation exists.
#[tokio::test]
async fn a_version_the_repository_does_not_publish_fails_before_anything_is_made() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (secret, _) =
        engines::create_secrets(&em.secretsmanager(), "unpublished", "mariadb_single_user").await;
    // 1.1.399 was pinned once for aws-us-gov, where it was never published;
    // nor is it in the aws partition.
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("mariadb_single_user".into());
        c.template_version = Attr::Known("1.1.399".into());
    });
    let (failed, d) = apply(&p, &cfg, &none()).await;
    let text = errors(&d).join("\n");
    assert!(d.has_errors());
    assert!(
        text.contains("no version 1.1.399")
            && text.contains("SecretsManagerRDSMariaDBRotationSingleUser")
            && text.contains("template_version"),
        "{text}"
    );
    let seen = look(&em, &secret.arn, None, None).await;
    assert!(
        seen.live_stacks.is_empty() && !seen.rotation_enabled,
        "{seen:?}"
    );
    assert!(model(&failed).stack_id.is_null());
}

/// Item: when GetApplication keeps failing, the deploy stops with an error
/// saying so after the read's retries, and sends no change set with a
/// guessed list of parameters; once the repository answers, apply works.
#[tokio::test]
async fn a_failing_get_application_stops_the_deploy_without_a_fallback() {
    let em = emulator_or_skip!();
    let p = RdsrotProvider::with_clients(
        Clients::new(&em.sdk_config(), &Endpoints::default()).with_max_attempts(3),
    );
    let (secret, master) =
        engines::create_secrets(&em.secretsmanager(), "no-definitions", "oracle_multi_user").await;
    let master = master.expect("a master secret").arn;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("oracle_multi_user".into());
        c.master_secret_arn = Attr::Known(master.clone());
    });
    em.set_faults(
        1,
        &[FaultRule::on(
            "serverlessrepo",
            "GetApplication",
            Fault::ServerError,
        )],
    );
    let (failed, d) = apply(&p, &cfg, &none()).await;
    let counts = em.fault_counts();
    em.clear_faults();
    let text = errors(&d).join("\n");
    assert!(d.has_errors());
    assert!(
        text.contains("GetApplication")
            && text.contains("InternalServerErrorException")
            && text.contains("nothing was deployed"),
        "{text}"
    );
    let calls = &counts["calls"];
    assert_eq!(
        calls["serverlessrepo:GetApplication"]["seen"], 3,
        "retried as a read, then given up: {counts:#}"
    );
    assert!(
        calls["serverlessrepo:CreateCloudFormationChangeSet"]["seen"]
            .as_u64()
            .unwrap_or(0)
            == 0,
        "no change set without the template's parameters: {counts:#}"
    );
    let seen = look(&em, &secret.arn, None, None).await;
    assert!(
        seen.live_stacks.is_empty() && !seen.rotation_enabled,
        "{seen:?}"
    );

    assert!(model(&failed).stack_id.is_null());

    // Terraform replaces the failed create; nothing was made to remove.
    let t = apply_ok(&p, &cfg, &none()).await;
    assert!(look(&em, &secret.arn, None, None).await.rotation_enabled);
    destroy(&p, &t).await;
}
