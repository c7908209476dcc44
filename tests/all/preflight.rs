//! The pre-flight check of the secret's JSON, against the local AWS
//! emulator through the `tf::Provider` methods: refused at plan and at
//! apply with the finding on the right attribute, skipped when off, and a
//! warning when the credentials may not read the value.

use rdsrot::provider::RdsrotProvider;
use rdsrot::rotation::model::{Attr, Rotation};
use rdsrot::tf::{ApplyRequest, Diagnostics, PlanRequest, Provider, Value};

use crate::emulator_or_skip;
use crate::lifecycle::*;
use crate::support::faults::{Fault, FaultRule};
use crate::support::moto::{self, Emulator};
use crate::support::observe::look;

/// A plan as Terraform asks for it, with its diagnostics left to the test.
async fn plan_response(
    p: &RdsrotProvider,
    config: &Value,
    prior: &Tracked,
) -> rdsrot::tf::PlanResponse {
    p.plan_resource_change(PlanRequest {
        type_name: TYPE.into(),
        prior_state: prior.state.clone(),
        proposed_new_state: config.clone(),
        config: config.clone(),
        prior_private: prior.private.clone(),
    })
    .await
}

async fn apply_planned(
    p: &RdsrotProvider,
    config: &Value,
    planned: Value,
    prior: &Tracked,
) -> rdsrot::tf::ApplyResponse {
    p.apply_resource_change(ApplyRequest {
        type_name: TYPE.into(),
        prior_state: prior.state.clone(),
        planned_state: planned,
        config: config.clone(),
        planned_private: prior.private.clone(),
    })
    .await
}

/// The one error of `d`, with its attribute path.
fn the_error(d: &Diagnostics) -> (String, String, Option<String>) {
    let errors: Vec<_> = d
        .iter()
        .filter(|x| x.severity == rdsrot::tf::Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{:?}", self::errors(d));
    let e = errors[0];
    (
        e.summary.clone(),
        e.detail.clone(),
        e.attribute.as_ref().map(|a| a.to_string()),
    )
}

/// A secret the template cannot use fails the plan naming the JSON key; a
/// secret that turns bad between plan and apply fails the apply before its
/// first step. Either way nothing is made and the value is quoted nowhere.
async fn refused_at_plan_and_apply(
    em: &Emulator,
    name: &str,
    engine: &str,
    bad_value: impl Fn(&str) -> String,
    configure: impl Fn(&mut Rotation),
    want: (&str, &str),
) {
    let p = provider(em);
    let sm = em.secretsmanager();
    let good = moto::create_database_secret(&sm, name, engine, None).await;
    let cfg = config(&good.arn, &configure);
    let put = |value: String| {
        let sm = sm.clone();
        let arn = good.arn.clone();
        async move {
            sm.put_secret_value()
                .secret_id(arn)
                .secret_string(value)
                .send()
                .await
                .expect("put secret value");
        }
    };
    let bad = bad_value(&good.password);

    // The bad value at plan.
    put(bad.clone()).await;
    let r = plan_response(&p, &cfg, &none()).await;
    let (summary, detail, path) = the_error(&r.diagnostics);
    assert_eq!(summary, want.0, "{detail}");
    assert_eq!(path.as_deref(), Some(want.1));
    assert!(!format!("{:?}", r.diagnostics).contains(&good.password));

    // A good value at plan, the bad one by apply.
    let configured = Rotation::from_value(&cfg);
    let good_value = moto::rds_secret_json(
        engine,
        &format!("{name}_user"),
        &good.password,
        configured.master_secret_arn.as_deref(),
    );
    put(good_value).await;
    let r = plan_response(&p, &cfg, &none()).await;
    assert!(r.diagnostics.is_empty(), "{:?}", errors(&r.diagnostics));
    put(bad).await;
    let r = apply_planned(&p, &cfg, r.planned_state, &none()).await;
    let (summary, _, path) = the_error(&r.diagnostics);
    assert_eq!(summary, want.0);
    assert_eq!(path.as_deref(), Some(want.1));
    assert!(r.new_state.is_null(), "nothing was made: no state");
    assert!(!format!("{:?}", r.diagnostics).contains(&good.password));
    let seen = look(em, &good.arn, None, None).await;
    assert!(seen.nothing_left(), "{seen:?}");
    assert!(seen.rotation_lambda.is_none(), "{seen:?}");
}

#[tokio::test]
async fn preflight_refuses_a_multi_user_secret_without_masterarn() {
    let em = emulator_or_skip!();
    let master = master_secret(&em, "master").await;
    refused_at_plan_and_apply(
        &em,
        "no-masterarn",
        "postgres",
        |password| moto::rds_secret_json("postgres", "no-masterarn_user", password, None),
        |c| {
            c.rotation_type = Attr::Known("postgresql_multi_user".into());
            c.master_secret_arn = Attr::Known(master.clone());
        },
        ("The secret's JSON has no \"masterarn\" key", "secret_id"),
    )
    .await;
}

#[tokio::test]
async fn preflight_refuses_a_secret_of_another_engine() {
    let em = emulator_or_skip!();
    refused_at_plan_and_apply(
        &em,
        "other-engine",
        "postgres",
        |password| moto::rds_secret_json("mysql", "other-engine_user", password, None),
        |c| c.rotation_type = Attr::Known("postgresql_single_user".into()),
        ("The secret's \"engine\" is not the template's", "secret_id"),
    )
    .await;
}

#[tokio::test]
async fn preflight_refuses_a_masterarn_naming_another_secret_on_master_secret_arn() {
    let em = emulator_or_skip!();
    let master = master_secret(&em, "master").await;
    let other = master_secret(&em, "other-master").await;
    refused_at_plan_and_apply(
        &em,
        "wrong-master",
        "mysql",
        |password| moto::rds_secret_json("mysql", "wrong-master_user", password, Some(&other)),
        |c| {
            c.rotation_type = Attr::Known("mysql_multi_user".into());
            c.master_secret_arn = Attr::Known(master.clone());
        },
        (
            "The secret's \"masterarn\" names another secret",
            "master_secret_arn",
        ),
    )
    .await;
}

#[tokio::test]
async fn preflight_accepts_masterarn_by_name_when_master_secret_arn_is_the_arn() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let master = master_secret_of(&em, "by-name-master", "mysql").await;
    // The Lambda resolves a name as well as an ARN.
    let secret = moto::create_database_secret(
        &em.secretsmanager(),
        "by-name",
        "mysql",
        Some("by-name-master"),
    )
    .await;
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("mysql_multi_user".into());
        c.master_secret_arn = Attr::Known(master.clone());
    });
    let t = apply_ok(&p, &cfg, &none()).await;
    assert!(look(&em, &secret.arn, None, None).await.rotation_enabled);
    destroy(&p, &t).await;
}

#[tokio::test]
async fn preflight_check_false_skips_the_check_and_changing_it_changes_nothing() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let master = master_secret(&em, "master").await;
    // A format this template cannot use, read by some other process: its
    // rotations fail, so the first one is not waited for either.
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "own-format", "postgres", None).await;
    let with = |check: bool| {
        config(&secret.arn, |c| {
            c.rotation_type = Attr::Known("postgresql_multi_user".into());
            c.master_secret_arn = Attr::Known(master.clone());
            c.preflight_check = Attr::Known(check);
            c.wait_for_rotation_timeout = Attr::Known("0".into());
        })
    };
    let t = apply_ok(&p, &with(false), &none()).await;
    let stack = model(&t).stack_id.known().cloned().expect("stack");
    assert!(look(&em, &secret.arn, None, None).await.rotation_enabled);

    // Turning the check back on neither replaces nor checks an unchanged
    // rotation, and its apply keeps every part as it is.
    let r = plan_response(&p, &with(true), &t).await;
    assert!(r.diagnostics.is_empty(), "{:?}", errors(&r.diagnostics));
    assert!(r.requires_replace.is_empty());
    let t = apply_ok(&p, &with(true), &t).await;
    assert_eq!(model(&t).stack_id.known(), Some(&stack));
    assert_eq!(model(&t).preflight_check, Attr::Known(true));
    let (_, empty) = plan(&p, &with(true), &read(&p, &t).await).await;
    assert!(empty);
    destroy(&p, &t).await;
}

#[tokio::test]
async fn preflight_that_cannot_read_the_secret_warns_and_the_apply_goes_on() {
    // moto does not enforce IAM, so an AccessDenied cannot be provoked here
    // (its classification is unit-tested); a read that fails every attempt
    // takes the same path: a warning, then the rotation.
    let em = emulator_or_skip!();
    let p = provider_without_retries(&em);
    let secret =
        moto::create_database_secret(&em.secretsmanager(), "unreadable", "mysql", None).await;
    // Every GetSecretValue fails, the rotation function's too: its rotation
    // cannot finish, and is not waited for.
    let cfg = config(&secret.arn, |c| {
        c.rotation_type = Attr::Known("mysql_single_user".into());
        c.wait_for_rotation_timeout = Attr::Known("0".into());
    });
    em.set_faults(
        1,
        &[FaultRule::on(
            "secretsmanager",
            "GetSecretValue",
            Fault::ServerError,
        )],
    );
    let r = plan_response(&p, &cfg, &none()).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", errors(&r.diagnostics));
    let warned = |d: &Diagnostics| {
        d.iter()
            .any(|x| x.summary == "Pre-flight check of the secret skipped")
    };
    assert!(warned(&r.diagnostics), "{:?}", errors(&r.diagnostics));
    let a = apply_planned(&p, &cfg, r.planned_state, &none()).await;
    em.clear_faults();
    assert!(!a.diagnostics.has_errors(), "{:?}", errors(&a.diagnostics));
    assert!(warned(&a.diagnostics));
    assert!(look(&em, &secret.arn, None, None).await.rotation_enabled);
    destroy(
        &p,
        &Tracked {
            state: a.new_state,
            private: a.private,
        },
    )
    .await;
}
