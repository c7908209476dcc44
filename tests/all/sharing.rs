//! Secrets sharing one existing Lambda, against the local AWS emulator
//! through the `tf::Provider` methods: each keeps its own grant, the
//! shared statement and placement stay while any still rotates with the
//! Lambda, 120 of them fit (or fail before the 20 KB policy limit), and
//! a lagging `ListSecrets` or a rotation added in the same run keeps what
//! the others need.

use rdsrot::provider::RdsrotProvider;
use rdsrot::rotation::model::{Attr, Rotation};
use rdsrot::tf::{Diagnostics, Value};

use crate::emulator_or_skip;
use crate::lifecycle::*;
use crate::support::moto::{self, Emulator};
use crate::support::observe::{look, master_secrets_granted, rotation_status};

/// Item: many secrets share one existing Lambda (and its role). Each has
/// its own master-secret policy; reads do not flip; destroying one leaves
/// the others working.
#[tokio::test]
async fn secrets_sharing_one_lambda_keep_their_own_grants() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (lambda, role) = existing_lambda(&em, "shared-rotator").await;
    let mut tracked = vec![];
    let mut secrets = vec![];
    for i in 0..3 {
        let master = master_secret(&em, &format!("shared-master-{i}")).await;
        let secret = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("shared-{i}"),
            "postgres",
            Some(&master),
        )
        .await;
        let cfg = config(&secret.arn, |c| {
            c.rotation_lambda_arn = Attr::Known(lambda.clone());
            c.master_secret_arn = Attr::Known(master.clone());
        });
        tracked.push((apply_ok(&p, &cfg, &none()).await, cfg));
        secrets.push((secret, master));
    }
    for (t, cfg) in &tracked {
        let again = read(&p, t).await;
        assert!(
            plan(&p, cfg, &again).await.1,
            "no diff after the others applied"
        );
    }
    let (first, _) = tracked.remove(0);
    destroy(&p, &first).await;
    let gone = look(&em, &secrets[0].0.arn, Some(&lambda), Some(&role)).await;
    assert!(
        !gone.master_policy && gone.our_statements.is_empty(),
        "{gone:?}"
    );
    for ((t, cfg), (secret, master)) in tracked.iter().zip(&secrets[1..]) {
        let seen = look(&em, &secret.arn, Some(&lambda), Some(&role)).await;
        assert!(
            seen.master_policy && seen.our_statements.len() == 1 && seen.rotation_enabled,
            "{seen:?}"
        );
        assert_eq!(
            master_secrets_granted(&em.sdk_config(), &role, &secret.arn).await,
            vec![master.clone()],
            "each grant names its own master secret"
        );
        assert!(plan(&p, cfg, &read(&p, t).await).await.1);
    }
}

/// Applies `configs` ten at a time, as Terraform's default parallelism does.
async fn apply_all(p: &RdsrotProvider, configs: &[Value]) -> Vec<(Tracked, Diagnostics)> {
    use futures::stream::{self, StreamExt};
    let nothing = none();
    stream::iter(configs.iter().map(|cfg| apply(p, cfg, &nothing)))
        .buffered(10)
        .collect()
        .await
}

/// 120 secrets share one existing Lambda. With `permission_scope =
/// "account"` they share one statement: all apply, plans are empty, and
/// destroying them all leaves the policy empty (the statement stays until
/// the last one goes). With the default scope, the apply that would pass
/// Lambda's 20 KB policy limit fails before it changes anything, naming
/// `permission_scope`.
#[tokio::test]
async fn a_hundred_and_twenty_secrets_share_one_lambda() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (lambda, _) = existing_lambda(&em, "fleet-rotator").await;
    let mut secrets = vec![];
    for i in 0..120 {
        secrets.push(
            moto::create_database_secret(
                &em.secretsmanager(),
                &format!("fleet-{i}"),
                "postgres",
                None,
            )
            .await,
        );
    }
    let configs: Vec<Value> = secrets
        .iter()
        .map(|s| {
            config(&s.arn, |c| {
                c.rotation_lambda_arn = Attr::Known(lambda.clone());
                c.permission_scope = Attr::Known("account".into());
            })
        })
        .collect();
    let applied = apply_all(&p, &configs).await;
    let mut tracked = vec![];
    for ((t, d), cfg) in applied.into_iter().zip(&configs) {
        assert!(d.is_empty(), "{:?}", errors(&d));
        tracked.push((t, cfg.clone()));
    }
    let statements = em
        .lambda()
        .get_policy()
        .function_name(&lambda)
        .send()
        .await
        .expect("policy");
    let doc: serde_json::Value =
        serde_json::from_str(statements.policy().unwrap_or("{}")).expect("json");
    let ours: Vec<&serde_json::Value> = doc["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|st| st["Sid"] != moto::USER_INVOKE_STATEMENT)
        .collect();
    assert_eq!(ours.len(), 1, "one shared statement: {ours:?}");
    for s in &secrets {
        assert_eq!(
            rotation_status(&em, &s.arn).await,
            (true, Some(lambda.clone())),
            "{}",
            s.arn
        );
    }
    // A new operation (as the next `terraform plan` is) sees no drift, for
    // every one of them.
    let fresh = provider(&em);
    for (i, (t, cfg)) in tracked.iter().enumerate() {
        assert!(
            plan(&fresh, cfg, &read(&fresh, t).await).await.1,
            "rotation {i} plans a change"
        );
    }
    // Destroying all but one keeps the statement; the last one removes it,
    // with ListSecrets lagging as AWS says it may.
    em.set_list_secrets_lag(300.0);
    let (last, _) = tracked.pop().expect("one");
    for (t, _) in &tracked {
        destroy(&fresh, t).await;
    }
    let left = em.lambda().get_policy().function_name(&lambda).send().await;
    assert!(
        left.is_ok_and(|l| l
            .policy()
            .is_some_and(|p| p.contains("rdsrot-account-secrets"))),
        "the last rotation still needs the statement"
    );
    destroy(&fresh, &last).await;
    let gone = em.lambda().get_policy().function_name(&lambda).send().await;
    assert!(
        gone.map(|g| g.policy().map(str::to_string))
            .ok()
            .flatten()
            .is_none_or(|p| !p.contains("rdsrot-")),
        "no statement of ours left"
    );

    // The default scope: statements until the policy is full, then a clear
    // error before anything changes.
    let per_secret: Vec<Value> = secrets
        .iter()
        .map(|s| {
            config(&s.arn, |c| {
                c.rotation_lambda_arn = Attr::Known(lambda.clone())
            })
        })
        .collect();
    let p = provider(&em);
    let mut refused = None;
    let mut made = vec![];
    for (cfg, secret) in per_secret.iter().zip(&secrets) {
        let (t, d) = apply(&p, cfg, &none()).await;
        if d.has_errors() {
            refused = Some((t, d, secret.arn.clone()));
            break;
        }
        made.push(t);
    }
    let (t, d, arn) = refused.expect("the policy fills up before 120 statements");
    assert!(t.state.is_null(), "nothing half-made");
    let message = errors(&d).join(" ");
    // The policy also holds the user's own statement.
    assert!(
        message.contains("permission_scope")
            && message.contains(&format!("holds {} statements", made.len() + 1)),
        "{message}"
    );
    let seen = look(&em, &arn, Some(&lambda), None).await;
    assert!(
        !seen.rotation_enabled && seen.our_statements.is_empty(),
        "{seen:?}"
    );
    assert!(
        (40..70).contains(&made.len()),
        "{} statements fit",
        made.len()
    );
    for t in &made {
        destroy(&p, t).await;
    }
}

/// Item: two secrets share one existing Lambda and both place it in a VPC.
/// Both record the placement it had before either moved it (from the
/// Lambda's tags); destroying the first leaves the Lambda where the second
/// needs it, and destroying the second puts it back and removes the tags.
#[tokio::test]
async fn secrets_sharing_one_lambda_share_its_original_placement() {
    let em = emulator_or_skip!();
    let p = provider(&em);
    let (lambda, _) = existing_lambda(&em, "shared-vpc-rotator").await;
    let placement = |c: &mut Rotation| {
        c.rotation_lambda_arn = Attr::Known(lambda.clone());
        c.vpc_subnet_ids = Attr::Known(vec!["subnet-0a1b2c3d4e5f60718".into()]);
        c.vpc_security_group_ids = Attr::Known(vec!["sg-0123456789abcdef0".into()]);
    };
    let mut tracked = vec![];
    for i in 0..2 {
        let secret = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("shared-vpc-{i}"),
            "postgres",
            None,
        )
        .await;
        let cfg = config(&secret.arn, placement);
        tracked.push((apply_ok(&p, &cfg, &none()).await, cfg));
    }
    let subnets = |em: &Emulator| {
        let lambda = lambda.clone();
        let client = em.lambda();
        async move {
            let f = client
                .get_function_configuration()
                .function_name(&lambda)
                .send()
                .await
                .expect("the Lambda");
            f.vpc_config()
                .map(|v| v.subnet_ids().to_vec())
                .unwrap_or_default()
        }
    };
    assert_eq!(
        subnets(&em).await,
        vec!["subnet-0a1b2c3d4e5f60718".to_string()]
    );

    let (second, second_cfg) = tracked.pop().expect("two");
    let (first, _) = tracked.pop().expect("two");
    // Each destroy below is its own process; the second is given the list
    // the first one saw.
    em.set_list_secrets_lag(300.0);
    destroy(&provider(&em), &first).await;
    assert_eq!(
        subnets(&em).await,
        vec!["subnet-0a1b2c3d4e5f60718".to_string()],
        "the second rotation still needs the placement"
    );
    let fresh = provider(&em);
    assert!(
        plan(&fresh, &second_cfg, &read(&fresh, &second).await)
            .await
            .1
    );
    destroy(&fresh, &second).await;
    assert!(subnets(&em).await.is_empty(), "the last one puts it back");
    let tags = em
        .lambda()
        .list_tags()
        .resource(&lambda)
        .send()
        .await
        .expect("tags");
    assert!(
        tags.tags()
            .is_none_or(|t| !t.keys().any(|k| k.starts_with("rdsrot:"))),
        "{tags:?}"
    );
}

/// Whether `lambda`'s policy holds a statement of this provider, and its
/// `rdsrot:` tags are gone.
async fn shared_lambda_left(em: &Emulator, lambda: &str) -> (bool, Vec<String>, Vec<String>) {
    let statement = em
        .lambda()
        .get_policy()
        .function_name(lambda)
        .send()
        .await
        .ok()
        .and_then(|p| p.policy().map(str::to_string))
        .is_some_and(|p| p.contains("rdsrot-"));
    let subnets = em
        .lambda()
        .get_function_configuration()
        .function_name(lambda)
        .send()
        .await
        .expect("the Lambda")
        .vpc_config()
        .map(|v| v.subnet_ids().to_vec())
        .unwrap_or_default();
    let tags = em
        .lambda()
        .list_tags()
        .resource(lambda)
        .send()
        .await
        .expect("tags")
        .tags()
        .map(|t| {
            t.keys()
                .filter(|k| k.starts_with("rdsrot:"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    (statement, subnets, tags)
}

fn shared_with_placement(lambda: &str) -> impl Fn(&mut Rotation) + '_ {
    move |c: &mut Rotation| {
        c.rotation_lambda_arn = Attr::Known(lambda.to_string());
        c.permission_scope = Attr::Known("account".into());
        c.vpc_subnet_ids = Attr::Known(vec!["subnet-0a1b2c3d4e5f60718".into()]);
        c.vpc_security_group_ids = Attr::Known(vec!["sg-0123456789abcdef0".into()]);
    }
}

/// ListSecrets lags, as AWS documents it may: while twelve rotations that
/// share one Lambda (its account-wide statement and its VPC placement) are
/// destroyed ten at a time, every listing still shows all twelve rotating.
/// The last destroy still removes the statement, puts the Lambda back and
/// removes its tags; the whole destroy lists the secrets once.
#[tokio::test]
async fn a_lagging_list_of_secrets_does_not_keep_what_shared_rotations_did() {
    let em = emulator_or_skip!();
    let (lambda, _) = existing_lambda(&em, "lagging-rotator").await;
    let mut configs = vec![];
    for i in 0..12 {
        let secret = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("lagging-{i}"),
            "postgres",
            None,
        )
        .await;
        configs.push(config(&secret.arn, shared_with_placement(&lambda)));
    }
    let applied = apply_all(&provider(&em), &configs).await;
    let mut tracked = vec![];
    for (t, d) in applied {
        assert!(d.is_empty(), "{:?}", errors(&d));
        tracked.push(t);
    }
    assert_eq!(
        shared_lambda_left(&em, &lambda).await.1,
        vec!["subnet-0a1b2c3d4e5f60718".to_string()]
    );

    em.set_list_secrets_lag(300.0);
    // The answer the lagging list keeps: all twelve rotating.
    let listed = em
        .secretsmanager()
        .list_secrets()
        .max_results(100)
        .send()
        .await
        .expect("list");
    assert_eq!(
        listed
            .secret_list()
            .iter()
            .filter(|s| s.rotation_enabled() == Some(true))
            .count(),
        12
    );
    em.set_faults(0, &[]);

    use futures::stream::{self, StreamExt};
    let fresh = provider(&em);
    stream::iter(tracked.iter().map(|t| destroy(&fresh, t)))
        .buffer_unordered(10)
        .collect::<Vec<()>>()
        .await;

    assert!(
        em.list_secrets_replayed() >= 1,
        "the provider was given the lagging list"
    );
    let (statement, subnets, tags) = shared_lambda_left(&em, &lambda).await;
    assert!(!statement, "the shared statement is left behind");
    assert!(subnets.is_empty(), "the Lambda is still in {subnets:?}");
    assert!(tags.is_empty(), "tags left: {tags:?}");
    let listings = em.fault_counts()["calls"]["secretsmanager:ListSecrets"]["seen"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(listings, 1, "ListSecrets calls for twelve destroys");
}

/// One apply adds a rotation on a shared Lambda while it destroys the last
/// other rotation using it: whichever decides first, the new rotation ends
/// with the statement it needs, and its next plan is empty.
#[tokio::test]
async fn a_rotation_added_while_the_last_user_of_its_lambda_goes_keeps_the_statement() {
    let em = emulator_or_skip!();
    let (lambda, _) = existing_lambda(&em, "handover-rotator").await;
    let shared = |c: &mut Rotation| {
        c.rotation_lambda_arn = Attr::Known(lambda.clone());
        c.permission_scope = Attr::Known("account".into());
    };
    for round in 0..4 {
        let leaving = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("handover-old-{round}"),
            "postgres",
            None,
        )
        .await;
        let arriving = moto::create_database_secret(
            &em.secretsmanager(),
            &format!("handover-new-{round}"),
            "postgres",
            None,
        )
        .await;
        let old = apply_ok(&provider(&em), &config(&leaving.arn, shared), &none()).await;
        let p = provider(&em);
        let new_cfg = config(&arriving.arn, shared);
        let nothing = none();
        let (new, ()) = tokio::join!(apply_ok(&p, &new_cfg, &nothing), destroy(&p, &old));
        assert!(
            shared_lambda_left(&em, &lambda).await.0,
            "round {round}: the arriving rotation lost its statement"
        );
        let fresh = provider(&em);
        assert!(
            plan(&fresh, &new_cfg, &read(&fresh, &new).await).await.1,
            "round {round}: drift after the handover"
        );
        destroy(&fresh, &new).await;
        assert!(
            !shared_lambda_left(&em, &lambda).await.0,
            "round {round}: the last one removes the statement"
        );
    }
}
