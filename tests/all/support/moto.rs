//! The local AWS emulator (`tests/support/emulator.py`: moto plus a stand-in
//! for the Serverless Application Repository), one process per test so that
//! tests running in parallel never see each other's resources.
//!
//! Tests call [`Emulator::try_start`] (or the [`emulator_or_skip!`] macro):
//! when the venv is missing the test is skipped with a loud line, unless
//! `RDSROT_REQUIRE_TOOLS=1` (set by `make test` and CI), which turns the
//! missing tool into a failure.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::config::{Credentials, Region};

/// Region every test works in.
pub const REGION: &str = "us-east-1";
/// The account moto reports for the dummy credentials.
pub const ACCOUNT_ID: &str = "123456789012";

/// Scales the emulator's AWS request quotas for every test of a run
/// (`--quota-scale`; unset: AWS's real rates).
pub const QUOTA_SCALE_VARIABLE: &str = "RDSROT_QUOTA_SCALE";

/// How long the emulator may take to print its "listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Returns from the calling test (after a loud SKIPPED line) when the
/// emulator cannot run here; see [`Emulator::try_start`].
#[macro_export]
macro_rules! emulator_or_skip {
    () => {
        match $crate::support::moto::Emulator::try_start() {
            Some(emulator) => emulator,
            None => return,
        }
    };
}

/// The repository root (where `Cargo.toml` and `.venv` live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, which has moto and the Terraform 1.0.3 wrapper.
pub fn venv_python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

/// True when `make test` or CI asked that a missing tool fail the suite.
pub fn tools_required() -> bool {
    std::env::var("RDSROT_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Either fails (tools required) or prints a loud SKIPPED line.
/// Returns so that the caller can `return` from the test.
pub fn skip_or_fail(test_needs: &str, why: &str) {
    if tools_required() {
        panic!(
            "{test_needs} is required (RDSROT_REQUIRE_TOOLS=1) but {why}. Run `make venv` first."
        );
    }
    loud(&format!(
        "=== SKIPPED: {test_needs} unavailable: {why}. Run `make venv` (or `make test`) to run it. ==="
    ));
}

/// A line on the real stderr, past the test harness's output capture
/// (which only catches the print macros), so that skips are seen.
pub fn loud(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// One running emulator process.
pub struct Emulator {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub port: u16,
    child: Child,
    /// Held open: the emulator exits when it closes (`--exit-on-stdin-eof`),
    /// so even a test process killed outright leaves no server behind.
    stdin: Option<ChildStdin>,
    log: tempfile::NamedTempFile,
}

impl Emulator {
    /// Starts an emulator, or returns `None` after a loud SKIPPED line when the
    /// venv is missing (a panic instead under `RDSROT_REQUIRE_TOOLS=1`).
    pub fn try_start() -> Option<Emulator> {
        let python = venv_python();
        if !python.exists() {
            skip_or_fail(
                "the local AWS emulator",
                &format!("{} does not exist", python.display()),
            );
            return None;
        }
        Some(Emulator::start())
    }

    /// Starts an emulator; panics with the emulator's log when it cannot.
    pub fn start() -> Emulator {
        let started = Instant::now();
        let script = repo_root().join("tests/support/emulator.py");
        let log = tempfile::Builder::new()
            .prefix("rdsrot-emulator-")
            .suffix(".log")
            .tempfile()
            .expect("a temporary file for the emulator log");
        let stderr = log.reopen().expect("reopen the emulator log for writing");
        let mut command = Command::new(venv_python());
        command
            .arg(&script)
            .args(["--port", "0", "--exit-on-stdin-eof"]);
        // AWS's request quotas apply at their real rates unless a run asks
        // for other rates (0 turns them off), e.g. to tell a throttled test
        // from a broken one.
        if let Ok(scale) = std::env::var(QUOTA_SCALE_VARIABLE) {
            command.args(["--quota-scale", &scale]);
        }
        let mut child = command
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout was piped");

        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first_line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut first_line);
            let _ = sender.send(first_line);
            // Keep draining so the emulator never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = receiver.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let endpoint = line
            .trim()
            .strip_prefix("rdsrot-emulator listening on ")
            .map(str::to_owned);
        let mut emulator = Emulator {
            port: 0,
            endpoint: String::new(),
            child,
            stdin,
            log,
        };
        let Some(endpoint) = endpoint else {
            let _ = emulator.child.kill();
            let _ = emulator.child.wait();
            panic!(
                "the emulator did not start (first stdout line {line:?}); its log:\n{}",
                emulator.log_text()
            );
        };
        emulator.port = endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the listening line ends with the port");
        emulator.endpoint = endpoint;
        emulator.wait_ready(started);
        eprintln!(
            "emulator on {} ready after {} ms",
            emulator.endpoint,
            started.elapsed().as_millis()
        );
        emulator
    }

    fn wait_ready(&mut self, started: Instant) {
        while started.elapsed() < START_TIMEOUT {
            if let Ok((200, _)) = self.http("GET", "/moto-api/", "") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the emulator never answered /moto-api/; its log:\n{}",
            self.log_text()
        );
    }

    /// A plain HTTP/1.1 request to the emulator (its own control API).
    pub fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Wipes every resource (moto keeps its Lambda mode across a reset).
    pub fn reset(&self) {
        let (status, body) = self
            .http("POST", "/moto-api/reset", "")
            .expect("reset the emulator");
        assert_eq!(status, 200, "reset answered {body}");
    }

    /// What the emulator logged so far (requests, stand-in decisions, errors).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Environment for a process (Terraform, the provider, boto3) that must
    /// talk to this emulator and nothing else.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Variables that would point a child process somewhere else; remove them.
    pub fn aws_env_remove() -> &'static [&'static str] {
        &[
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ]
    }

    /// SDK configuration for this emulator (no environment or profile read).
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            // The tests' own look-ups share AWS's quotas with the provider
            // (the emulator enforces them): a throttle is waited out, as a
            // person checking by hand would, and anything else still fails.
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(10)
                    .with_max_backoff(std::time::Duration::from_secs(5)),
            )
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(
                aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(Credentials::new(
                    "testing",
                    "testing",
                    None,
                    None,
                    "rdsrot-tests",
                )),
            )
            .build()
    }

    pub fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config())
    }
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk_config())
    }
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config())
    }
    pub fn cloudformation(&self) -> aws_sdk_cloudformation::Client {
        aws_sdk_cloudformation::Client::new(&self.sdk_config())
    }
    pub fn serverlessrepo(&self) -> aws_sdk_serverlessapplicationrepository::Client {
        aws_sdk_serverlessapplicationrepository::Client::new(&self.sdk_config())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // A failed test's emulator log says what AWS was asked and what the
        // rotation functions did: kept, and named on stderr.
        if std::thread::panicking() {
            let kept =
                std::env::temp_dir().join(format!("rdsrot-emulator-failed-{}.log", self.port));
            if std::fs::copy(self.log.path(), &kept).is_ok() {
                loud(&format!(
                    "emulator log of the failed test kept in {}",
                    kept.display()
                ));
            }
        }
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The database secret of a test, in the RDS JSON format the rotation
/// functions read.
pub struct DatabaseSecret {
    pub arn: String,
    pub name: String,
    /// The password stored in it: tests check it never leaks.
    pub password: String,
}

/// A password unlikely to appear anywhere by chance (so finding it means a leak).
pub fn distinctive_password(tag: &str) -> String {
    format!("Pw-{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// The RDS secret JSON (`engine`, `host`, `username`, `password`, `dbname`,
/// `port`, and `masterarn` for the alternating-users strategy).
///
/// For the engines the test stack runs a server of (PostgreSQL, and
/// MariaDB for `mysql` and `mariadb`) the user really exists there, under a
/// name of its own derived from `username` (tests run in parallel against
/// the same servers), and may also act as a master user: a rotation of
/// such a secret really rotates. Other engines get a made-up host their
/// (generic) rotation function never connects to.
pub fn rds_secret_json(
    engine: &str,
    username: &str,
    password: &str,
    master_arn: Option<&str>,
) -> String {
    let mut value = match database_user(engine, username, password) {
        Some(user) => serde_json::json!({
            "engine": engine,
            "host": user.host,
            "username": user.username,
            "password": password,
            "dbname": user.dbname,
            "port": user.port,
        }),
        None => made_up_database(engine, username, password),
    };
    if let Some(master) = master_arn {
        value["masterarn"] = serde_json::Value::String(master.to_owned());
    }
    value.to_string()
}

/// A secret's database on a host that does not exist: for engines the test
/// stack has no server of.
fn made_up_database(engine: &str, username: &str, password: &str) -> serde_json::Value {
    // The engine's default port; Oracle's Lambda requires `dbname` (the
    // SID), the others default it and get one anyway.
    let port = match engine {
        "mysql" | "aurora-mysql" | "mariadb" => 3306,
        "oracle" => 1521,
        "sqlserver" => 1433,
        "db2" => 50000,
        "redshift" => 5439,
        "mongo" => 27017,
        _ => 5432,
    };
    serde_json::json!({
        "engine": engine,
        "host": format!("{engine}.cluster-abc.us-east-1.rds.amazonaws.com"),
        "username": username,
        "password": password,
        "dbname": if engine == "oracle" { "ORCL" } else { "app" },
        "port": port,
    })
}

/// A user made on one of the test stack's database servers.
pub struct DatabaseUser {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub dbname: String,
}

/// Makes a user on the server of `engine`, able to sign in, to own a
/// privilege a clone must inherit, and to act as a master user (create
/// users, set their passwords, grant what it holds); `None` for an engine
/// the test stack has no server of.
pub fn database_user(engine: &str, username: &str, password: &str) -> Option<DatabaseUser> {
    use super::databases::{unique_name, Databases, Engine};
    let kind = match engine {
        "postgres" | "aurora-postgresql" => Engine::Postgres,
        "mysql" | "aurora-mysql" | "mariadb" => Engine::Mysql,
        _ => return None,
    };
    let databases = Databases::try_shared()?;
    // MySQL allows 32 characters, and the alternating-users functions add
    // `_clone`: a short prefix keeps the unique name within that.
    let prefix: String = username.replace(['/', '.'], "_").chars().take(10).collect();
    let name = unique_name(&prefix);
    databases.create_user(engine, &name, password);
    let (grant, dbname) = match kind {
        Engine::Postgres => (
            format!("ALTER ROLE \"{name}\" CREATEROLE;"),
            "postgres".to_owned(),
        ),
        Engine::Mysql => (
            format!("GRANT CREATE USER, SELECT, INSERT ON *.* TO '{name}'@'%' WITH GRANT OPTION;"),
            format!("{name}_db"),
        ),
    };
    databases.admin_sql(engine, &grant);
    let server = databases.server(engine);
    Some(DatabaseUser {
        host: server.host.clone(),
        port: server.port,
        username: name,
        dbname,
    })
}

/// Creates a secret holding `secret_string`.
pub async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    secret_string: &str,
) -> String {
    let created = client
        .create_secret()
        .name(name)
        .secret_string(secret_string)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create secret {name}: {e:?}"));
    created
        .arn()
        .expect("CreateSecret answers the ARN")
        .to_owned()
}

/// A database secret in RDS format (and, with `master`, its masterarn).
pub async fn create_database_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    engine: &str,
    master_arn: Option<&str>,
) -> DatabaseSecret {
    let password = distinctive_password(name);
    let arn = create_secret(
        client,
        name,
        &rds_secret_json(engine, &format!("{name}_user"), &password, master_arn),
    )
    .await;
    DatabaseSecret {
        arn,
        name: name.to_owned(),
        password,
    }
}

/// The secret string labelled AWSCURRENT (moto's default-version pointer
/// goes stale after label moves, so always ask by stage).
pub async fn current_secret_string(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> String {
    client
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap_or_else(|e| panic!("read {secret_id}: {e:?}"))
        .secret_string()
        .unwrap_or_default()
        .to_owned()
}

/// An existing rotation Lambda (not made by the provider) and its role,
/// as a user would bring to `rotation_lambda_arn`: the test stack's generic
/// rotation function (the four steps on the secret alone), whose role may
/// read and write secrets. Returns the function ARN.
pub async fn create_existing_rotation_lambda(config: &SdkConfig, name: &str) -> String {
    create_rotation_lambda(config, name, "generic").await
}

/// A rotation Lambda of the test stack's `kind` (`generic`,
/// `postgresql_single_user`, `mysql_multi_user`, ...: see
/// `tests/support/rotation_functions/package.py`), made with `CreateFunction`
/// as a user makes their own, with a role allowed what a rotation needs on
/// every secret. Returns the function ARN.
pub async fn create_rotation_lambda(config: &SdkConfig, name: &str, kind: &str) -> String {
    create_rotation_lambda_for(config, name, kind, "*").await
}

/// As [`create_rotation_lambda`], with a role whose secret actions are
/// allowed only on `secrets` (an ARN or pattern): a master secret is then
/// readable only through a grant of its own.
pub async fn create_rotation_lambda_for(
    config: &SdkConfig,
    name: &str,
    kind: &str,
    secrets: &str,
) -> String {
    let iam = aws_sdk_iam::Client::new(config);
    let role = iam
        .create_role()
        .role_name(format!("{name}-role"))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create role for {name}: {e:?}"));
    let role_arn = role
        .role()
        .map(|r| r.arn().to_owned())
        .expect("CreateRole answers the role");
    iam.put_role_policy()
        .role_name(format!("{name}-role"))
        .policy_name(USER_ROLE_POLICY)
        .policy_document(rotation_role_policy(secrets))
        .send()
        .await
        .unwrap_or_else(|e| panic!("role policy for {name}: {e:?}"));
    // As users do for a function they place in a VPC (Lambda makes its
    // network interfaces with the role).
    iam.attach_role_policy()
        .role_name(format!("{name}-role"))
        .policy_arn(VPC_ACCESS_POLICY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("attach the VPC access policy for {name}: {e:?}"));
    let function = aws_sdk_lambda::Client::new(config)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .handler("lambda_function.lambda_handler")
        .role(role_arn)
        .timeout(30)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(
                    rotation_function_zip(kind),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create function {name}: {e:?}"));
    let arn = function
        .function_arn()
        .expect("CreateFunction answers the ARN")
        .to_owned();
    // As a user who set rotation up by hand has it: Secrets Manager may
    // invoke the function for the account's secrets (Secrets Manager checks
    // this on RotateSecret, so a rotation the test starts itself needs it).
    aws_sdk_lambda::Client::new(config)
        .add_permission()
        .function_name(&arn)
        .statement_id(USER_INVOKE_STATEMENT)
        .action("lambda:InvokeFunction")
        .principal("secretsmanager.amazonaws.com")
        .source_account(ACCOUNT_ID)
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke permission for {name}: {e:?}"));
    arn
}

/// The AWS managed policy a function's role needs to be placed in a VPC.
pub const VPC_ACCESS_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";

/// The invoke statement a user's own rotation Lambda comes with.
pub const USER_INVOKE_STATEMENT: &str = "AllowSecretsManagerInThisAccount";

/// The inline policy a user's own rotation Lambda's role comes with: the
/// user's, never the provider's.
pub const USER_ROLE_POLICY: &str = "rotate-secrets";

/// What a rotation function's role needs on the secrets it rotates.
fn rotation_role_policy(secrets: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:UpdateSecretVersionStage",
                ],
                "Resource": secrets,
            },
            {"Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"},
        ],
    })
    .to_string()
}

/// The zip of one kind of the test stack's rotation functions, built by
/// `package.py` (cached per kind: the bytes depend only on the sources).
pub fn rotation_function_zip(kind: &str) -> Vec<u8> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BUILT: std::sync::OnceLock<Mutex<HashMap<String, Vec<u8>>>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    if let Some(zip) = built.lock().unwrap_or_else(|p| p.into_inner()).get(kind) {
        return zip.clone();
    }
    let out = tempfile::NamedTempFile::new().expect("a temporary file for the zip");
    let status = Command::new(venv_python())
        .arg(repo_root().join("tests/support/rotation_functions/package.py"))
        .args(["--kind", kind, "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .status()
        .expect("run package.py");
    assert!(status.success(), "package.py --kind {kind} failed");
    let zip = std::fs::read(out.path()).expect("read the packaged zip");
    built
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(kind.to_owned(), zip.clone());
    zip
}

/// The tag that makes the emulator check an IAM user's or role's calls
/// against its identity policies (`tests/support/function_iam.py`).
pub const ENFORCED_TAG: (&str, &str) = ("rdsrot:iam", "enforced");

/// Access keys of an IAM user the emulator holds to its policies.
pub struct EnforcedUser {
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Makes an IAM user tagged [`ENFORCED_TAG`] whose only permissions are
/// `policy` (an inline policy document), with an access key: what it signs
/// is allowed, refused and recorded as AWS would for such a user.
pub async fn create_enforced_user(config: &SdkConfig, name: &str, policy: &str) -> EnforcedUser {
    let iam = aws_sdk_iam::Client::new(config);
    let user = iam
        .create_user()
        .user_name(name)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key(ENFORCED_TAG.0)
                .value(ENFORCED_TAG.1)
                .build()
                .expect("a tag has a key and a value"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create user {name}: {e:?}"));
    let arn = user
        .user()
        .map(|u| u.arn().to_owned())
        .expect("CreateUser answers the user");
    iam.put_user_policy()
        .user_name(name)
        .policy_name("granted")
        .policy_document(policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("policy of user {name}: {e:?}"));
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("access key of user {name}: {e:?}"));
    let key = key.access_key().expect("CreateAccessKey answers the key");
    EnforcedUser {
        arn,
        access_key_id: key.access_key_id().to_owned(),
        secret_access_key: key.secret_access_key().to_owned(),
    }
}

impl Emulator {
    /// Per enforced principal ARN, the actions it was `allowed` and
    /// `refused`, each with the resources it was asked for.
    pub fn iam_decisions(&self) -> serde_json::Value {
        let (status, body) = self
            .http("GET", "/_rdsrot/iam", "")
            .expect("read the IAM decisions");
        assert_eq!(status, 200, "GET /_rdsrot/iam answered {body}");
        let answer: serde_json::Value =
            serde_json::from_str(&body).expect("the IAM decisions are JSON");
        answer["principals"].clone()
    }
}

/// The emulator itself: the stand-in repository, the corrections to moto
/// and the fixtures behave as the provider's tests assume.
#[cfg(test)]
mod emulator_checks {
    use super::*;
    use aws_sdk_serverlessapplicationrepository::types::ParameterValue;

    const APPLICATIONS: [(&str, bool); 5] = [
        ("SecretsManagerRDSMySQLRotationSingleUser", false),
        ("SecretsManagerRDSMySQLRotationMultiUser", true),
        ("SecretsManagerRDSPostgreSQLRotationSingleUser", false),
        ("SecretsManagerRDSPostgreSQLRotationMultiUser", true),
        ("SecretsManagerRotationTemplate", false),
    ];

    fn application_arn(name: &str) -> String {
        format!("arn:aws:serverlessrepo:us-east-1:297356227824:applications/{name}")
    }

    fn param(name: &str, value: &str) -> ParameterValue {
        ParameterValue::builder().name(name).value(value).build()
    }

    /// Deploys one application through the stand-in as the provider does and
    /// returns (stack outputs' RotationLambdaARN, function configuration).
    async fn deploy(
        emulator: &Emulator,
        application: &str,
        stack: &str,
        extra: Vec<ParameterValue>,
    ) -> (String, aws_sdk_lambda::types::FunctionConfiguration) {
        let mut parameters = vec![
            param("functionName", &format!("{stack}-fn")),
            param("endpoint", "https://secretsmanager.us-east-1.amazonaws.com"),
        ];
        parameters.extend(extra);
        let change_set = emulator
            .serverlessrepo()
            .create_cloud_formation_change_set()
            .application_id(application_arn(application))
            .stack_name(stack)
            .semantic_version("1.1.671")
            .set_parameter_overrides(Some(parameters))
            .capabilities("CAPABILITY_IAM")
            .capabilities("CAPABILITY_RESOURCE_POLICY")
            .send()
            .await
            .unwrap_or_else(|e| panic!("change set for {application}: {e:?}"));
        let cfn = emulator.cloudformation();
        let change_set_id = change_set
            .change_set_id()
            .expect("answers the change set id");
        let described = cfn
            .describe_change_set()
            .change_set_name(change_set_id)
            .send()
            .await
            .expect("describe the change set");
        assert_eq!(
            described.status().map(|s| s.as_str()),
            Some("CREATE_COMPLETE"),
            "{described:?}"
        );
        cfn.execute_change_set()
            .change_set_name(change_set_id)
            .client_request_token("token-1")
            .send()
            .await
            .expect("execute the change set");
        let stacks = cfn
            .describe_stacks()
            .stack_name(format!("serverlessrepo-{stack}"))
            .send()
            .await
            .expect("describe the stack");
        let stack = &stacks.stacks()[0];
        assert!(
            stack
                .tags()
                .iter()
                .any(|t| t.key() == Some("serverlessrepo:applicationId")
                    && t.value() == Some(application_arn(application).as_str())),
            "the stack carries the application tag: {:?}",
            stack.tags()
        );
        let lambda_arn = stack
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some("RotationLambdaARN"))
            .and_then(|o| o.output_value())
            .unwrap_or_else(|| panic!("no RotationLambdaARN output: {stack:?}"))
            .to_owned();
        let function = emulator
            .lambda()
            .get_function()
            .function_name(&lambda_arn)
            .send()
            .await
            .expect("the stack made the function");
        let configuration = function
            .configuration()
            .expect("has a configuration")
            .clone();
        let policy = emulator
            .lambda()
            .get_policy()
            .function_name(&lambda_arn)
            .send()
            .await
            .expect("the stack made an invoke permission");
        assert!(
            policy
                .policy()
                .unwrap_or_default()
                .contains("secretsmanager.amazonaws.com"),
            "{policy:?}"
        );
        (lambda_arn, configuration)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_application_deploys_a_function_role_and_permission() {
        let emulator = emulator_or_skip!();
        let master = create_secret(&emulator.secretsmanager(), "master", "{}").await;
        for (index, (application, multi_user)) in APPLICATIONS.iter().enumerate() {
            let extra = if *multi_user {
                vec![param("masterSecretArn", &master)]
            } else {
                vec![]
            };
            let (arn, configuration) =
                deploy(&emulator, application, &format!("app{index}"), extra).await;
            assert!(arn.ends_with(&format!(":function:app{index}-fn")), "{arn}");
            assert!(configuration
                .vpc_config()
                .is_none_or(|v| v.subnet_ids().is_empty()));
            let role_name = configuration
                .role()
                .and_then(|r| r.rsplit('/').next())
                .expect("the function has a role")
                .to_owned();
            emulator
                .iam()
                .get_role()
                .role_name(&role_name)
                .send()
                .await
                .expect("the stack made the role");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn vpc_parameters_place_the_function_and_an_update_moves_it() {
        let emulator = emulator_or_skip!();
        let (_, configuration) = deploy(
            &emulator,
            "SecretsManagerRDSPostgreSQLRotationSingleUser",
            "vpc",
            vec![
                param("vpcSubnetIds", "subnet-1,subnet-2"),
                param("vpcSecurityGroupIds", "sg-1"),
            ],
        )
        .await;
        let vpc = configuration.vpc_config().expect("placed in a VPC");
        assert_eq!(vpc.subnet_ids(), ["subnet-1", "subnet-2"]);
        assert_eq!(vpc.security_group_ids(), ["sg-1"]);

        // Same stack again: an UPDATE change set; the same values are "no changes".
        let repo = emulator.serverlessrepo();
        let again = |subnets: &'static str| {
            repo.create_cloud_formation_change_set()
                .application_id(application_arn(
                    "SecretsManagerRDSPostgreSQLRotationSingleUser",
                ))
                .stack_name("vpc")
                .parameter_overrides(param("functionName", "vpc-fn"))
                .parameter_overrides(param(
                    "endpoint",
                    "https://secretsmanager.us-east-1.amazonaws.com",
                ))
                .parameter_overrides(param("vpcSubnetIds", subnets))
                .parameter_overrides(param("vpcSecurityGroupIds", "sg-1"))
                .capabilities("CAPABILITY_IAM")
                .capabilities("CAPABILITY_RESOURCE_POLICY")
                .send()
        };
        let cfn = emulator.cloudformation();
        let unchanged = again("subnet-1,subnet-2")
            .await
            .expect("an update change set");
        let described = cfn
            .describe_change_set()
            .change_set_name(unchanged.change_set_id().unwrap_or_default())
            .send()
            .await
            .expect("describe");
        assert_eq!(described.status().map(|s| s.as_str()), Some("FAILED"));
        assert!(described
            .status_reason()
            .unwrap_or_default()
            .contains("didn't contain changes"));

        let moved = again("subnet-3").await.expect("an update change set");
        cfn.execute_change_set()
            .change_set_name(moved.change_set_id().unwrap_or_default())
            .send()
            .await
            .expect("execute");
        let function = emulator
            .lambda()
            .get_function_configuration()
            .function_name("vpc-fn")
            .send()
            .await
            .expect("still there");
        assert_eq!(
            function.vpc_config().map(|v| v.subnet_ids().to_vec()),
            Some(vec!["subnet-3".to_owned()])
        );
    }

    /// CloudFormation updates only a stack at rest in a usable state; the
    /// repository passes its refusal on.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_stack_that_cannot_be_updated_refuses_an_update_change_set() {
        let emulator = emulator_or_skip!();
        deploy(
            &emulator,
            "SecretsManagerRDSPostgreSQLRotationSingleUser",
            "stuck",
            vec![],
        )
        .await;
        let stack_id = "serverlessrepo-stuck";
        let update = || {
            emulator
                .serverlessrepo()
                .create_cloud_formation_change_set()
                .application_id(application_arn(
                    "SecretsManagerRDSPostgreSQLRotationSingleUser",
                ))
                .stack_name("stuck")
                .parameter_overrides(param("functionName", "stuck-fn"))
                .parameter_overrides(param(
                    "endpoint",
                    "https://secretsmanager.us-east-1.amazonaws.com",
                ))
                .parameter_overrides(param("excludeCharacters", "/"))
                .capabilities("CAPABILITY_IAM")
                .capabilities("CAPABILITY_RESOURCE_POLICY")
                .send()
        };
        for status in [
            "UPDATE_ROLLBACK_FAILED",
            "ROLLBACK_COMPLETE",
            "DELETE_FAILED",
        ] {
            emulator.set_stack_status(stack_id, status);
            let refused = update().await.expect_err(status);
            let text = format!("{refused:?}");
            assert!(
                text.contains("BadRequestException")
                    && text.contains(&format!("is in {status} state and can not be updated")),
                "{status}: {text}"
            );
        }
        emulator.set_stack_status(stack_id, "UPDATE_ROLLBACK_COMPLETE");
        update()
            .await
            .expect("a stack rolled back to its last state is updated");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_repository_rejects_parameters_the_template_does_not_declare() {
        let emulator = emulator_or_skip!();
        let refused = emulator
            .serverlessrepo()
            .create_cloud_formation_change_set()
            .application_id(application_arn("SecretsManagerRDSMySQLRotationSingleUser"))
            .stack_name("bad")
            .parameter_overrides(param("functionName", "f"))
            .parameter_overrides(param("endpoint", "https://e"))
            .parameter_overrides(param(
                "masterSecretArn",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:m",
            ))
            .capabilities("CAPABILITY_IAM")
            .capabilities("CAPABILITY_RESOURCE_POLICY")
            .send()
            .await
            .expect_err("a single-user template declares no masterSecretArn");
        let service_error = refused.into_service_error();
        assert!(
            service_error.is_bad_request_exception(),
            "{service_error:?}"
        );
        assert!(format!("{service_error:?}").contains("masterSecretArn"));

        let application = emulator
            .serverlessrepo()
            .get_application()
            .application_id(application_arn("SecretsManagerRDSMySQLRotationMultiUser"))
            .send()
            .await
            .expect("get application");
        let names: Vec<_> = application
            .version()
            .map(|v| {
                v.parameter_definitions()
                    .iter()
                    .filter_map(|p| p.name().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert!(names.contains(&"masterSecretArn".to_owned()), "{names:?}");

        let unknown = emulator
            .serverlessrepo()
            .get_application()
            .application_id(application_arn("NoSuchApplication"))
            .send()
            .await
            .expect_err("unknown application");
        assert!(unknown.into_service_error().is_not_found_exception());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rotation_keeps_schedule_expression_and_duration_and_can_complete() {
        let emulator = emulator_or_skip!();
        let sm = emulator.secretsmanager();
        let secret = create_database_secret(&sm, "db", "postgres", None).await;
        let lambda =
            create_existing_rotation_lambda(&emulator.sdk_config(), "existing-rotator").await;
        let rules = |expression: &str| {
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .schedule_expression(expression)
                .duration("3h")
                .build()
        };
        let rotation = sm
            .rotate_secret()
            .secret_id(&secret.arn)
            .rotation_lambda_arn(&lambda)
            .rotation_rules(rules("cron(0 8 1 * ? *)"))
            .send()
            .await
            .expect("rotate");
        let described = sm
            .describe_secret()
            .secret_id(&secret.arn)
            .send()
            .await
            .expect("describe");
        assert_eq!(described.rotation_enabled(), Some(true));
        let described_rules = described.rotation_rules().expect("rules");
        assert_eq!(
            described_rules.schedule_expression(),
            Some("cron(0 8 1 * ? *)")
        );
        assert_eq!(described_rules.duration(), Some("3h"));
        assert_eq!(described.rotation_lambda_arn(), Some(lambda.as_str()));

        // The function (the test stack's generic one) finishes the rotation
        // by itself: the new version becomes AWSCURRENT, with a new value.
        let before = current_secret_string(&sm, &secret.arn).await;
        let version = rotation
            .version_id()
            .expect("RotateSecret answers the version");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let described = sm
                .describe_secret()
                .secret_id(&secret.arn)
                .send()
                .await
                .expect("describe");
            let current = described
                .version_ids_to_stages()
                .and_then(|m| m.get(version))
                .is_some_and(|labels| labels.iter().any(|l| l == "AWSCURRENT"));
            if current {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the rotation did not finish: {described:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_ne!(current_secret_string(&sm, &secret.arn).await, before);
    }

    #[test]
    fn emulators_are_independent() {
        let Some(first) = Emulator::try_start() else {
            return;
        };
        let Some(second) = Emulator::try_start() else {
            return;
        };
        assert_ne!(first.port, second.port);
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        runtime.block_on(async {
            create_secret(&first.secretsmanager(), "only-in-first", "x").await;
            let listed = second
                .secretsmanager()
                .list_secrets()
                .send()
                .await
                .expect("list");
            assert!(listed.secret_list().is_empty());
        });
        first.reset();
        drop(first);
        drop(second);
    }
}
