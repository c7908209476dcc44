//! Passwords really rotate, through Terraform: the emulator runs the
//! rotation functions' code against the test stack's real PostgreSQL and
//! MariaDB, so what these tests check is what an application would meet
//! after `terraform apply`: the AWSCURRENT credentials sign in, the old
//! single-user password is refused, an alternating-users rotation hands the
//! original user's privileges to its `_clone`.
//!
//! They also check the apply's wait for the first rotation: a rotation that
//! fails fails the apply with the function's own error and a likely cause,
//! leaves nothing orphaned, and converges once the cause is fixed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e::block_on;
use crate::support::databases::Databases;
use crate::support::engines;
use crate::support::faults::{Fault, FaultRule};
use crate::support::moto::{
    create_database_secret, create_rotation_lambda, create_rotation_lambda_for, create_secret,
    distinctive_password, rds_secret_json, DatabaseSecret, Emulator,
};
use crate::support::observe::{look, pending_label_blocks};
use crate::support::terraform::{clients, required_providers_block, Client, Workspace};
use rdsrot::rotation::master_policy::policy_name_for;

/// How long a rotation the test starts may take: a cold function start,
/// four steps and a few database sign-ins take seconds on two busy cores.
const ROTATION_BOUND: Duration = Duration::from_secs(90);

/// What a failed apply may take beyond an apply that does not fail: the
/// configurations' `wait_for_rotation_timeout = "20s"`, plus a margin for
/// reading the function's log and a busy machine.
const FAILURE_MARGIN: Duration = Duration::from_secs(35);

// ---------------------------------------------------------------------------
// Configurations
// ---------------------------------------------------------------------------

fn configuration(blocks: &str) -> String {
    format!(
        "{}\nprovider \"rdsrot\" {{}}\n{blocks}",
        required_providers_block()
    )
}

/// One `rdsrot_rotation` with `settings` (attribute lines) besides the
/// secret and a schedule.
fn rotation_block(name: &str, secret_arn: &str, settings: &str) -> String {
    format!(
        "\nresource \"rdsrot_rotation\" \"{name}\" {{\n  secret_id = \"{secret_arn}\"\n{settings}\n  rotation_rules {{\n    automatically_after_days = 30\n  }}\n}}\n"
    )
}

/// Terraform wraps a diagnostic's prose to the terminal's width: compare
/// text with every run of whitespace as one space.
fn squashed(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[track_caller]
fn assert_says(run_output: &str, needle: &str, what: &str) {
    assert!(
        squashed(run_output).contains(&squashed(needle)),
        "{what}: the output does not say {needle:?}:\n{run_output}"
    );
}

fn text(values: &Value, key: &str) -> String {
    values[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {values:#}"))
        .to_owned()
}

/// The 1.11 client when there is one (this suite's single-client tests need
/// only one), else the first.
fn newest_client() -> Option<Client> {
    let all = clients();
    all.iter()
        .find(|c| c.at_least(1, 11))
        .or(all.first())
        .cloned()
}

// ---------------------------------------------------------------------------
// Looking at secrets and rotations with the SDK
// ---------------------------------------------------------------------------

/// The secret's value labelled `stage`, as JSON.
async fn value_at(emulator: &Emulator, secret_arn: &str, stage: &str) -> Value {
    let got = emulator
        .secretsmanager()
        .get_secret_value()
        .secret_id(secret_arn)
        .version_stage(stage)
        .send()
        .await
        .unwrap_or_else(|e| panic!("read {stage} of {secret_arn}: {e:?}"));
    serde_json::from_str(got.secret_string().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{stage} of {secret_arn} is not JSON: {e}"))
}

async fn stages(emulator: &Emulator, secret_arn: &str) -> HashMap<String, Vec<String>> {
    emulator
        .secretsmanager()
        .describe_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe {secret_arn}: {e:?}"))
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default()
}

fn function_name(lambda_arn: &str) -> &str {
    lambda_arn.rsplit(':').next().unwrap_or_default()
}

/// The error lines the function logged (first line of each): what a
/// failing rotation leaves behind, and the diagnosis when a wait times out.
async fn function_errors(emulator: &Emulator, lambda_arn: &str) -> Vec<String> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&emulator.sdk_config());
    let group = format!("/aws/lambda/{}", function_name(lambda_arn));
    let mut lines = Vec::new();
    let mut token = None;
    loop {
        let Ok(page) = logs
            .filter_log_events()
            .log_group_name(&group)
            .set_next_token(token)
            .send()
            .await
        else {
            return lines;
        };
        lines.extend(
            page.events()
                .iter()
                .filter_map(|e| e.message())
                .filter(|m| m.starts_with("[ERROR]") || m.contains("Task timed out"))
                .map(|m| m.lines().next().unwrap_or_default().to_owned()),
        );
        match page.next_token() {
            Some(next) if !page.events().is_empty() => token = Some(next.to_owned()),
            _ => return lines,
        }
    }
}

/// Starts a rotation as Secrets Manager's schedule would (no token: a new
/// version each time); returns the new version's id.
async fn start_rotation(emulator: &Emulator, secret_arn: &str) -> String {
    emulator
        .secretsmanager()
        .rotate_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RotateSecret {secret_arn}: {e:?}"))
        .version_id()
        .expect("RotateSecret answers the new version")
        .to_owned()
}

/// Waits until `version` holds AWSCURRENT: the rotation finished.
async fn wait_until_current(emulator: &Emulator, secret_arn: &str, version: &str, lambda: &str) {
    let started = Instant::now();
    loop {
        let now = stages(emulator, secret_arn).await;
        if now
            .get(version)
            .is_some_and(|labels| labels.iter().any(|l| l == "AWSCURRENT"))
        {
            return;
        }
        if started.elapsed() > ROTATION_BOUND {
            panic!(
                "the rotation of {secret_arn} (version {version}) did not finish within \
{ROTATION_BOUND:?}: labels {now:?}; the function logged {:?}",
                function_errors(emulator, lambda).await
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the function logged an error line containing `words`.
async fn wait_for_function_error(emulator: &Emulator, lambda: &str, words: &str) -> String {
    let started = Instant::now();
    loop {
        let errors = function_errors(emulator, lambda).await;
        if let Some(line) = errors.iter().find(|l| l.contains(words)) {
            return line.clone();
        }
        if started.elapsed() > ROTATION_BOUND {
            panic!("{lambda} logged no error with {words:?} within {ROTATION_BOUND:?}: {errors:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// ---------------------------------------------------------------------------
// What a rotation did to the database
// ---------------------------------------------------------------------------

/// A secret under test and the value it started with.
struct Rotating {
    address: String,
    secret_arn: String,
    original: Value,
    alternating: bool,
}

fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("the secret has no {key}"))
}

/// One rotation, judged on the real server: `before` was AWSCURRENT and is
/// now AWSPREVIOUS; `after` is AWSCURRENT and signs in. Passwords are never
/// printed: a failed check says which property failed.
async fn assert_rotated(emulator: &Emulator, it: &Rotating, before: &Value, when: &str) -> Value {
    let db = Databases::shared();
    let after = value_at(emulator, &it.secret_arn, "AWSCURRENT").await;
    let previous = value_at(emulator, &it.secret_arn, "AWSPREVIOUS").await;
    let what = format!("{} ({when})", it.address);
    let engine = field(&it.original, "engine");
    let original_user = field(&it.original, "username");
    let (user, password) = (field(&after, "username"), field(&after, "password"));
    assert!(
        previous == *before,
        "{what}: AWSPREVIOUS does not hold the value AWSCURRENT held before"
    );
    assert_ne!(
        password,
        field(before, "password"),
        "{what}: the password did not change"
    );
    assert!(
        db.can_sign_in(engine, user, password),
        "{what}: AWSCURRENT's user {user} cannot sign in with AWSCURRENT's password"
    );
    let old_user = field(before, "username");
    let old_password = field(before, "password");
    if it.alternating {
        let expected = if old_user == original_user {
            format!("{original_user}_clone")
        } else {
            original_user.to_owned()
        };
        assert_eq!(user, expected, "{what}: the users did not alternate");
        assert!(
            db.can_read_notes_of(engine, user, password, original_user),
            "{what}: {user} cannot read what {original_user} may read"
        );
        assert!(
            db.can_sign_in(engine, old_user, old_password),
            "{what}: the previous user lost its password (alternating users keep it)"
        );
    } else {
        assert_eq!(
            user, original_user,
            "{what}: a single-user rotation changed the user"
        );
        assert!(
            !db.can_sign_in(engine, old_user, old_password),
            "{what}: the old password still signs in"
        );
    }
    after
}

/// After the apply's rotation: every secret rotated once, the state says
/// verified, and the new passwords are forbidden in later runs too.
fn check_first_rotations(emulator: &Emulator, ws: &mut Workspace, rotating: &[Rotating]) {
    let client = ws.client.to_string();
    for it in rotating {
        assert!(
            !block_on(pending_label_blocks(emulator, &it.secret_arn)),
            "{client}: {}: the apply returned before its rotation finished",
            it.address
        );
        let values = ws.resource_values(&it.address);
        assert_eq!(
            values["rotation_verified"],
            Value::Bool(true),
            "{client}: {}: {values:#}",
            it.address
        );
        let after = block_on(assert_rotated(
            emulator,
            it,
            &it.original,
            "the apply's rotation",
        ));
        ws.forbid(field(&after, "password"));
    }
}

/// A second rotation of every secret, started by the test as the schedule
/// would start it: the function, its grants and the users still work.
fn check_second_rotations(emulator: &Emulator, ws: &mut Workspace, rotating: &[Rotating]) {
    block_on(async {
        let mut started = Vec::new();
        for it in rotating {
            let before = value_at(emulator, &it.secret_arn, "AWSCURRENT").await;
            let version = start_rotation(emulator, &it.secret_arn).await;
            started.push((before, version));
        }
        for (it, (before, version)) in rotating.iter().zip(&started) {
            let lambda = emulator
                .secretsmanager()
                .describe_secret()
                .secret_id(&it.secret_arn)
                .send()
                .await
                .ok()
                .and_then(|d| d.rotation_lambda_arn().map(str::to_owned))
                .unwrap_or_default();
            wait_until_current(emulator, &it.secret_arn, version, &lambda).await;
            let after = assert_rotated(emulator, it, before, "a second rotation").await;
            if it.alternating {
                assert_eq!(
                    field(&after, "username"),
                    field(&it.original, "username"),
                    "{}: the second rotation goes back to the original user",
                    it.address
                );
            }
            ws.forbid(field(&after, "password"));
        }
    });
}

/// Destroy, then nothing of ours is left in AWS for any of the secrets.
fn destroy_and_check_nothing_left(emulator: &Emulator, ws: &Workspace, rotating: &[Rotating]) {
    let client = ws.client.to_string();
    let made: Vec<(String, String, String)> = rotating
        .iter()
        .map(|it| {
            let values = ws.resource_values(&it.address);
            (
                it.secret_arn.clone(),
                text(&values, "rotation_lambda_arn"),
                text(&values, "rotation_lambda_role_arn"),
            )
        })
        .collect();
    ws.destroy(&[]);
    for (secret_arn, lambda, role) in &made {
        let seen = block_on(look(emulator, secret_arn, Some(lambda), Some(role)));
        assert!(
            seen.nothing_left(),
            "{client}: left after destroy for {secret_arn}: {seen:?}"
        );
    }
    ws.assert_no_leaks();
}

fn rotating(address: &str, secret: &DatabaseSecret, alternating: bool) -> Rotating {
    Rotating {
        address: address.to_owned(),
        secret_arn: secret.arn.clone(),
        original: Value::Null,
        alternating,
    }
}

/// Fills in each secret's starting value (before any apply).
fn with_originals(emulator: &Emulator, mut all: Vec<Rotating>) -> Vec<Rotating> {
    for it in &mut all {
        it.original = block_on(value_at(emulator, &it.secret_arn, "AWSCURRENT"));
    }
    all
}

// ---------------------------------------------------------------------------
// Rotations that work
// ---------------------------------------------------------------------------

const DATABASE_TEMPLATES: [&str; 4] = [
    "postgresql_single_user",
    "postgresql_multi_user",
    "mysql_single_user",
    "mysql_multi_user",
];

/// Each database template's function, deployed by the provider, rotates a
/// real user: right after the apply (which waited for it) and again when
/// the schedule would start it.
#[test]
fn every_database_template_rotates_a_real_password_through_terraform() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let Some(_) = Databases::try_shared() else {
            return;
        };
        let began = Instant::now();
        let sm = emulator.secretsmanager();
        let fixtures = block_on(async {
            let mut made = Vec::new();
            for rotation_type in DATABASE_TEMPLATES {
                let (secret, master) =
                    engines::create_secrets(&sm, &format!("rot/{rotation_type}"), rotation_type)
                        .await;
                made.push((rotation_type, secret, master));
            }
            made
        });
        let mut blocks = String::new();
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        let mut all = Vec::new();
        for (rotation_type, secret, master) in &fixtures {
            let master_line = master
                .as_ref()
                .map(|m| format!("  master_secret_arn = \"{}\"\n", m.arn))
                .unwrap_or_default();
            blocks.push_str(&rotation_block(
                rotation_type,
                &secret.arn,
                &format!("  rotation_type = \"{rotation_type}\"\n{master_line}"),
            ));
            ws.forbid(&secret.password);
            if let Some(m) = master {
                ws.forbid(&m.password);
            }
            all.push(rotating(
                &format!("rdsrot_rotation.{rotation_type}"),
                secret,
                master.is_some(),
            ));
        }
        let all = with_originals(&emulator, all);
        ws.write("main.tf", &configuration(&blocks));

        ws.apply(&[]);
        check_first_rotations(&emulator, &mut ws, &all);
        check_second_rotations(&emulator, &mut ws, &all);
        ws.plan(&[]).assert_code(0);
        destroy_and_check_nothing_left(&emulator, &ws, &all);
        eprintln!("{client}: four templates rotated in {:?}", began.elapsed());
    }
}

/// A function the user brought (`rotation_lambda_arn`) rotates as well:
/// the provider's invoke permission is all it needed.
#[test]
fn an_existing_lambda_rotates_a_real_password_through_terraform() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let Some(_) = Databases::try_shared() else {
            return;
        };
        let began = Instant::now();
        let sm = emulator.secretsmanager();
        let (secret, lambda) = block_on(async {
            let secret = create_database_secret(&sm, "rot/own-pg", "postgres", None).await;
            let lambda = create_rotation_lambda(
                &emulator.sdk_config(),
                "own-pg-rotation",
                "postgresql_single_user",
            )
            .await;
            (secret, lambda)
        });
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.forbid(&secret.password);
        ws.write(
            "main.tf",
            &configuration(&rotation_block(
                "this",
                &secret.arn,
                &format!("  rotation_lambda_arn = \"{lambda}\"\n"),
            )),
        );
        let all = with_originals(
            &emulator,
            vec![rotating("rdsrot_rotation.this", &secret, false)],
        );

        ws.apply(&[]);
        check_first_rotations(&emulator, &mut ws, &all);
        check_second_rotations(&emulator, &mut ws, &all);
        ws.plan(&[]).assert_code(0);
        destroy_and_check_nothing_left(&emulator, &ws, &all);
        eprintln!(
            "{client}: an existing Lambda rotated in {:?}",
            began.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------
// A first rotation that fails, and the recovery
// ---------------------------------------------------------------------------

/// One way for the apply's first rotation to fail.
struct FailingFirstRotation {
    /// The configuration, whose resource is `rdsrot_rotation.this`.
    config: String,
    secret_arn: String,
    forbidden: Vec<String>,
    /// Words of the function's own error line the apply must quote.
    function_error: String,
    /// Words of the likely cause the apply must give.
    cause: &'static str,
}

/// The apply fails within the wait's bound, quoting the function and the
/// cause, with everything made recorded in the state; once `fix` removed
/// the cause, untaint and apply converge on the same parts and the next
/// plan is empty; destroy leaves nothing.
fn fails_then_converges_after_the_fix(
    client: &Client,
    emulator: &Emulator,
    case: FailingFirstRotation,
    fix: impl FnOnce(),
) {
    const ADDRESS: &str = "rdsrot_rotation.this";
    let mut ws = Workspace::new(client).with_emulator(emulator);
    for value in &case.forbidden {
        ws.forbid(value);
    }
    ws.write("main.tf", &case.config);

    let began = Instant::now();
    let failed = ws.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let failed_took = began.elapsed();
    failed.assert_code(1);
    let output = failed.output();
    assert_says(&output, "The rotation failed", &format!("{client}"));
    assert_says(&output, "[ERROR]", &format!("{client}"));
    assert_says(&output, &case.function_error, &format!("{client}"));
    assert_says(&output, case.cause, &format!("{client}"));

    // Everything made is in the state, so nothing is orphaned.
    let state = ws.state();
    let resource = state["values"]["root_module"]["resources"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["address"] == ADDRESS))
        .unwrap_or_else(|| panic!("{client}: the failed create recorded nothing: {state:#}"))
        .clone();
    let values = &resource["values"];
    assert_eq!(
        values["rotation_verified"],
        Value::Bool(false),
        "{client}: {values:#}"
    );
    let lambda = text(values, "rotation_lambda_arn");
    let role = text(values, "rotation_lambda_role_arn");
    let stack_id = values["stack_id"].clone();
    let seen = block_on(look(emulator, &case.secret_arn, Some(&lambda), Some(&role)));
    assert!(
        seen.rotation_enabled && !seen.our_statements.is_empty(),
        "{client}: rotation on and the invoke statement in place: {seen:?}"
    );
    assert!(
        seen.our_statements
            .iter()
            .any(|sid| values["permission_statement_id"] == *sid.as_str()),
        "{client}: the state records the statement: {seen:?} {values:#}"
    );
    if let Some(id) = stack_id.as_str() {
        assert!(
            seen.live_stacks.iter().any(|s| s == id),
            "{client}: the recorded stack {id} is live: {seen:?}"
        );
    }
    // Terraform taints a resource whose create failed; untainting keeps
    // what was made, where a replacement would deploy it all again.
    assert_eq!(
        resource["tainted"],
        Value::Bool(true),
        "{client}: {resource:#}"
    );

    fix();
    ws.terraform(&["untaint", "-no-color", ADDRESS])
        .assert_success();
    let began = Instant::now();
    ws.apply(&[]);
    let converged_took = began.elapsed();
    assert!(
        failed_took.saturating_sub(converged_took) < FAILURE_MARGIN,
        "{client}: the failed apply took {failed_took:?}, {converged_took:?} without the \
failure: more than the 20 s wait and a margin"
    );
    let values = ws.resource_values(ADDRESS);
    assert_eq!(
        values["rotation_verified"],
        Value::Bool(true),
        "{client}: {values:#}"
    );
    assert_eq!(
        values["stack_id"], stack_id,
        "{client}: a new stack was deployed"
    );
    let current = block_on(value_at(emulator, &case.secret_arn, "AWSCURRENT"));
    assert!(
        Databases::shared().can_sign_in(
            field(&current, "engine"),
            field(&current, "username"),
            field(&current, "password")
        ),
        "{client}: AWSCURRENT signs in after the recovery"
    );
    ws.forbid(field(&current, "password"));
    ws.plan(&[]).assert_code(0);

    ws.destroy(&[]);
    let seen = block_on(look(emulator, &case.secret_arn, Some(&lambda), Some(&role)));
    assert!(
        seen.nothing_left(),
        "{client}: left after destroy: {seen:?}"
    );
    ws.assert_no_leaks();
    eprintln!("{client}: failed apply {failed_took:?}, converging apply {converged_took:?}");
}

/// A PostgreSQL secret whose current password the database no longer
/// takes: a rotation's test sign-in fails, and the function's error line
/// names the secret.
async fn secret_the_database_refuses(emulator: &Emulator, name: &str) -> DatabaseSecret {
    let sm = emulator.secretsmanager();
    let secret = create_database_secret(&sm, name, "postgres", None).await;
    let mut wrong = value_at(emulator, &secret.arn, "AWSCURRENT").await;
    wrong["password"] = Value::from(distinctive_password(&format!("{name}-wrong")));
    sm.put_secret_value()
        .secret_id(&secret.arn)
        .secret_string(wrong.to_string())
        .version_stages("AWSCURRENT")
        .send()
        .await
        .expect("put the wrong password");
    secret
}

/// A port on 127.0.0.1 nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("a bound address").port()
}

/// The database cannot be reached: the network cause.
#[test]
fn a_first_rotation_against_a_closed_port_fails_the_apply_with_the_functions_error() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let Some(_) = Databases::try_shared() else {
            return;
        };
        let began = Instant::now();
        let password = distinctive_password("closed-port");
        let right = rds_secret_json("postgres", "closed_port_user", &password, None);
        let mut wrong: Value = serde_json::from_str(&right).expect("the fixture is JSON");
        let port = closed_port();
        wrong["port"] = Value::from(port);
        let secret_arn = block_on(create_secret(
            &emulator.secretsmanager(),
            "rot/closed-port",
            &wrong.to_string(),
        ));
        let case = FailingFirstRotation {
            config: configuration(&rotation_block(
                "this",
                &secret_arn,
                "  rotation_type = \"postgresql_single_user\"\n  wait_for_rotation_timeout = \"20s\"\n",
            )),
            secret_arn: secret_arn.clone(),
            forbidden: vec![password],
            function_error: format!("and port {port}"),
            cause: "could not reach the database",
        };
        fails_then_converges_after_the_fix(&client, &emulator, case, || {
            block_on(
                emulator
                    .secretsmanager()
                    .put_secret_value()
                    .secret_id(&secret_arn)
                    .secret_string(&right)
                    .version_stages("AWSCURRENT")
                    .send(),
            )
            .expect("put the value with the right port");
        });
        eprintln!("{client}: closed port case in {:?}", began.elapsed());
    }
}

/// The function's role may not read the master secret: the permission cause.
#[test]
fn a_first_rotation_whose_role_may_not_read_the_master_secret_fails_the_apply() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let Some(_) = Databases::try_shared() else {
            return;
        };
        let began = Instant::now();
        let function = "denied-master-rotation";
        let (secret, master, lambda) = block_on(async {
            let (secret, master) = engines::create_secrets(
                &emulator.secretsmanager(),
                "rot/denied-master",
                "postgresql_multi_user",
            )
            .await;
            let master = master.expect("a multi-user type has a master secret");
            let lambda =
                create_rotation_lambda(&emulator.sdk_config(), function, "postgresql_multi_user")
                    .await;
            // An explicit Deny wins over every Allow, the provider's grant too.
            let deny = serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Deny",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": master.arn,
                }],
            });
            emulator
                .iam()
                .put_role_policy()
                .role_name(format!("{function}-role"))
                .policy_name("deny-master")
                .policy_document(deny.to_string())
                .send()
                .await
                .expect("put the Deny policy");
            (secret, master, lambda)
        });
        let case = FailingFirstRotation {
            config: configuration(&rotation_block(
                "this",
                &secret.arn,
                &format!(
                    "  rotation_lambda_arn = \"{lambda}\"\n  master_secret_arn = \"{}\"\n  wait_for_rotation_timeout = \"20s\"\n",
                    master.arn
                ),
            )),
            secret_arn: secret.arn.clone(),
            forbidden: vec![secret.password.clone(), master.password.clone()],
            function_error: "AccessDeniedException".to_owned(),
            cause: "not allowed to do what the rotation needs",
        };
        fails_then_converges_after_the_fix(&client, &emulator, case, || {
            block_on(
                emulator
                    .iam()
                    .delete_role_policy()
                    .role_name(format!("{function}-role"))
                    .policy_name("deny-master")
                    .send(),
            )
            .expect("delete the Deny policy");
        });
        eprintln!("{client}: denied master case in {:?}", began.elapsed());
    }
}

/// The secret lacks the key alternating users need, and no pre-flight
/// check stopped the apply: the secret-format cause.
#[test]
fn a_multi_user_secret_without_masterarn_fails_the_apply_when_the_preflight_is_off() {
    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let Some(_) = Databases::try_shared() else {
            return;
        };
        let began = Instant::now();
        let sm = emulator.secretsmanager();
        let (secret, master) = block_on(async {
            let (with_masterarn, master) =
                engines::create_secrets(&sm, "rot/no-masterarn", "postgresql_multi_user").await;
            let master = master.expect("a multi-user type has a master secret");
            // The same secret as users forget to write it: no `masterarn`.
            let mut value = value_at(&emulator, &with_masterarn.arn, "AWSCURRENT").await;
            value
                .as_object_mut()
                .expect("the secret is a JSON object")
                .remove("masterarn");
            sm.put_secret_value()
                .secret_id(&with_masterarn.arn)
                .secret_string(value.to_string())
                .version_stages("AWSCURRENT")
                .send()
                .await
                .expect("drop masterarn");
            (with_masterarn, master)
        });
        let case = FailingFirstRotation {
            config: configuration(&rotation_block(
                "this",
                &secret.arn,
                &format!(
                    "  rotation_type = \"postgresql_multi_user\"\n  master_secret_arn = \"{}\"\n  preflight_check = false\n  wait_for_rotation_timeout = \"20s\"\n",
                    master.arn
                ),
            )),
            secret_arn: secret.arn.clone(),
            forbidden: vec![secret.password.clone(), master.password.clone()],
            function_error: "'masterarn'".to_owned(),
            cause: "not in the format the function reads",
        };
        fails_then_converges_after_the_fix(&client, &emulator, case, || {
            block_on(async {
                let mut value = value_at(&emulator, &secret.arn, "AWSCURRENT").await;
                value["masterarn"] = Value::from(master.arn.clone());
                sm.put_secret_value()
                    .secret_id(&secret.arn)
                    .secret_string(value.to_string())
                    .version_stages("AWSCURRENT")
                    .send()
                    .await
                    .expect("put the value with masterarn");
            });
        });
        eprintln!("{client}: missing masterarn case in {:?}", began.elapsed());
    }
}

// ---------------------------------------------------------------------------
// A grant removed behind Terraform's back
// ---------------------------------------------------------------------------

/// A rotation function of `kind` whose role may act on `secret_arn` alone:
/// the master secret is readable only through the provider's grant. (The
/// stand-in templates' roles may read every secret of the account, so
/// removing the grant from a template's role would break nothing.)
async fn create_lambda_for_one_secret(
    emulator: &Emulator,
    name: &str,
    kind: &str,
    secret_arn: &str,
) -> String {
    create_rotation_lambda_for(&emulator.sdk_config(), name, kind, secret_arn).await
}

/// The provider's master-secret grant deleted behind Terraform's back: the
/// plan shows it, the next scheduled rotation fails (and the status data
/// source says why), and the apply that puts it back lets rotations work.
#[test]
fn a_master_grant_removed_out_of_band_shows_as_drift_and_breaks_the_next_rotation_until_applied() {
    let Some(client) = newest_client() else {
        return;
    };
    let Some(emulator) = Emulator::try_start() else {
        return;
    };
    let Some(db) = Databases::try_shared() else {
        return;
    };
    let began = Instant::now();
    let sm = emulator.secretsmanager();
    let (secret, master, own_lambda) = block_on(async {
        let (secret, master) =
            engines::create_secrets(&sm, "rot/grant-removed", "postgresql_multi_user").await;
        let master = master.expect("a multi-user type has a master secret");
        let lambda = create_lambda_for_one_secret(
            &emulator,
            "grant-removed-rotation",
            "postgresql_multi_user",
            &secret.arn,
        )
        .await;
        (secret, master, lambda)
    });
    let mut blocks = rotation_block(
        "this",
        &secret.arn,
        &format!(
            "  rotation_lambda_arn = \"{own_lambda}\"\n  master_secret_arn = \"{}\"\n  wait_for_rotation_timeout = \"60s\"\n",
            master.arn
        ),
    );
    blocks.push_str(&format!(
        "\ndata \"rdsrot_rotation_status\" \"this\" {{\n  secret_id = \"{}\"\n}}\n\n\
output \"outcome\" {{\n  value = data.rdsrot_rotation_status.this.last_rotation_outcome\n}}\n\n\
output \"error\" {{\n  value = data.rdsrot_rotation_status.this.last_rotation_error\n}}\n",
        secret.arn
    ));
    let mut ws = Workspace::new(&client).with_emulator(&emulator);
    ws.forbid(&secret.password);
    ws.forbid(&master.password);
    ws.write("main.tf", &configuration(&blocks));
    ws.apply(&[]);
    let values = ws.resource_values("rdsrot_rotation.this");
    assert_eq!(
        values["rotation_verified"],
        Value::Bool(true),
        "{client}: {values:#}"
    );
    let lambda = text(&values, "rotation_lambda_arn");
    let role = text(&values, "rotation_lambda_role_arn");
    let role_name = role.rsplit('/').next().unwrap_or_default().to_owned();

    let grant = policy_name_for(&secret.arn);
    assert!(grant.starts_with("rdsrot-master-"), "{grant}");
    block_on(
        emulator
            .iam()
            .delete_role_policy()
            .role_name(&role_name)
            .policy_name(&grant)
            .send(),
    )
    .expect("delete the provider's master-secret grant");
    ws.plan(&[])
        .assert_code(2)
        .assert_mentions("master_secret_arn");

    let denied = block_on(async {
        start_rotation(&emulator, &secret.arn).await;
        wait_for_function_error(&emulator, &lambda, "AccessDenied").await
    });
    assert!(denied.contains("AccessDeniedException"), "{denied}");

    ws.terraform(&[
        "apply",
        "-refresh-only",
        "-auto-approve",
        "-input=false",
        "-no-color",
    ])
    .assert_success();
    let outputs = ws.terraform(&["output", "-json", "-no-color"]);
    outputs.assert_success();
    let outputs: Value = serde_json::from_str(&outputs.stdout).expect("output -json is JSON");
    assert_eq!(
        outputs["outcome"]["value"], "failed",
        "{client}: {outputs:#}"
    );
    assert!(
        outputs["error"]["value"]
            .as_str()
            .is_some_and(|e| e.contains("AccessDeniedException")),
        "{client}: {outputs:#}"
    );

    ws.apply(&[]);
    let seen = block_on(look(&emulator, &secret.arn, Some(&lambda), Some(&role)));
    assert!(
        seen.master_policy,
        "{client}: the apply put the grant back: {seen:?}"
    );

    // As AWS advises for "A previous rotation isn't complete": take the
    // label off the failed version, then rotate again.
    block_on(async {
        let labels = stages(&emulator, &secret.arn).await;
        for (version, on) in &labels {
            if on.iter().any(|l| l == "AWSPENDING") && !on.iter().any(|l| l == "AWSCURRENT") {
                sm.update_secret_version_stage()
                    .secret_id(&secret.arn)
                    .version_stage("AWSPENDING")
                    .remove_from_version_id(version)
                    .send()
                    .await
                    .expect("take AWSPENDING off the failed version");
            }
        }
        let version = start_rotation(&emulator, &secret.arn).await;
        wait_until_current(&emulator, &secret.arn, &version, &lambda).await;
    });
    let current = block_on(value_at(&emulator, &secret.arn, "AWSCURRENT"));
    assert!(
        db.can_sign_in(
            field(&current, "engine"),
            field(&current, "username"),
            field(&current, "password")
        ),
        "{client}: AWSCURRENT signs in after the repaired rotation"
    );
    ws.forbid(field(&current, "password"));

    ws.destroy(&[]);
    let seen = block_on(look(&emulator, &secret.arn, Some(&lambda), Some(&role)));
    assert!(
        seen.nothing_left(),
        "{client}: left after destroy: {seen:?}"
    );
    ws.assert_no_leaks();
    eprintln!("{client}: grant drift case in {:?}", began.elapsed());
}

// ---------------------------------------------------------------------------
// A shared Lambda's test runs
// ---------------------------------------------------------------------------

/// Secrets that share one existing Lambda, their rotations tested in one
/// apply (`rotate_immediately = false`): the function logs every secret's
/// failure in one group, and each rotation is judged by the lines that
/// concern it. The one whose test fails fails the apply with its own error;
/// the others, tested by the same function at the same time, are created
/// and verified.
#[test]
fn test_runs_on_a_shared_lambda_are_judged_each_by_its_own_log_lines() {
    const PASSING: usize = 4;
    let Some(client) = newest_client() else {
        return;
    };
    let Some(emulator) = Emulator::try_start() else {
        return;
    };
    let Some(_) = Databases::try_shared() else {
        return;
    };
    let sm = emulator.secretsmanager();
    let (passing, failing, lambda) = block_on(async {
        let mut passing = Vec::new();
        for i in 0..PASSING {
            passing.push(
                create_database_secret(&sm, &format!("rot/shared-test-{i}"), "postgres", None)
                    .await,
            );
        }
        let failing = secret_the_database_refuses(&emulator, "rot/shared-test-bad").await;
        let lambda = create_rotation_lambda(
            &emulator.sdk_config(),
            "shared-test-rotation",
            "postgresql_single_user",
        )
        .await;
        (passing, failing, lambda)
    });
    let settings = format!(
        "  rotation_lambda_arn = \"{lambda}\"\n  rotate_immediately = false\n  wait_for_rotation_timeout = \"60s\"\n"
    );
    let mut blocks: String = passing
        .iter()
        .enumerate()
        .map(|(i, s)| rotation_block(&format!("ok{i}"), &s.arn, &settings))
        .collect();
    blocks.push_str(&rotation_block("bad", &failing.arn, &settings));
    let mut ws = Workspace::new(&client).with_emulator(&emulator);
    for secret in passing.iter().chain([&failing]) {
        ws.forbid(&secret.password);
    }
    ws.write("main.tf", &configuration(&blocks));

    let failed = ws.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    failed.assert_code(1);
    let output = squashed(&failed.output());
    assert_eq!(
        output.matches("Error: Creating rotation").count(),
        1,
        "{client}: only the failing secret's test fails the apply: {output}"
    );
    assert_says(&output, "rdsrot_rotation.bad", &format!("{client}"));
    assert_says(
        &output,
        &format!("the AWSPENDING secret of {}", failing.arn),
        &format!("{client}"),
    );
    assert_says(&output, "the test failed.", &format!("{client}"));
    assert_says(
        &output,
        "the database refused the credentials",
        &format!("{client}"),
    );
    // The failing secret's lines are in the same group: they must have
    // been there to read, and not counted against the others.
    let errors = block_on(function_errors(&emulator, &lambda));
    assert!(
        errors.iter().any(|line| line.contains(&failing.arn)),
        "{client}: the function logged the failure: {errors:?}"
    );
    for i in 0..PASSING {
        let values = ws.resource_values(&format!("rdsrot_rotation.ok{i}"));
        assert_eq!(
            values["rotation_verified"],
            Value::Bool(true),
            "{client}: ok{i}: {values:#}"
        );
    }
    ws.destroy(&[]);
    for secret in passing.iter().chain([&failing]) {
        let seen = block_on(look(&emulator, &secret.arn, Some(&lambda), None));
        assert!(
            !seen.rotation_enabled && seen.our_statements.is_empty(),
            "{client}: {}: {seen:?}",
            secret.name
        );
    }
    ws.assert_no_leaks();
}

/// With `rotate_immediately = false` only the function's log tells a failed
/// test from a passed one: when the log cannot be read, the apply neither
/// fails nor claims the test passed. It warns, naming the log group and the
/// permission, and leaves `rotation_verified` unset.
#[test]
fn a_test_run_whose_log_cannot_be_read_is_not_reported_as_passed() {
    let Some(client) = newest_client() else {
        return;
    };
    let Some(emulator) = Emulator::try_start() else {
        return;
    };
    let Some(_) = Databases::try_shared() else {
        return;
    };
    let (secret, lambda) = block_on(async {
        // The test sign-in fails: a failure only the log holds.
        let secret = secret_the_database_refuses(&emulator, "rot/unread-test").await;
        let lambda = create_rotation_lambda(
            &emulator.sdk_config(),
            "unread-test-rotation",
            "postgresql_single_user",
        )
        .await;
        (secret, lambda)
    });
    let settings = format!(
        "  rotation_lambda_arn = \"{lambda}\"\n  rotate_immediately = false\n  wait_for_rotation_timeout = \"60s\"\n"
    );
    let mut ws = Workspace::new(&client).with_emulator(&emulator);
    ws.forbid(&secret.password);
    ws.write(
        "main.tf",
        &configuration(&rotation_block("unread", &secret.arn, &settings)),
    );
    emulator.set_faults(
        3,
        &[FaultRule::on("logs", "FilterLogEvents", Fault::ServerError).times(1_000)],
    );
    let applied = ws.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    emulator.clear_faults();
    applied.assert_code(0);
    let output = squashed(&applied.output());
    assert_says(
        &output,
        "Warning: Rotation test not confirmed",
        &format!("{client}"),
    );
    assert_says(
        &output,
        "/aws/lambda/unread-test-rotation",
        &format!("{client}"),
    );
    assert_says(&output, "logs:FilterLogEvents", &format!("{client}"));
    let values = ws.resource_values("rdsrot_rotation.unread");
    assert_eq!(
        values["rotation_verified"],
        Value::Null,
        "{client}: a test nobody could read is not verified: {values:#}"
    );
    // The test did fail: the log the apply could not read says so.
    let errors = block_on(function_errors(&emulator, &lambda));
    assert!(
        errors.iter().any(|line| line.contains(&secret.arn)),
        "{client}: the function logged the failure: {errors:?}"
    );
    ws.destroy(&[]);
    ws.assert_no_leaks();
}
