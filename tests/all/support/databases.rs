//! Real database servers for the tests (`tests/support/databases.py`): one
//! PostgreSQL cluster and one MariaDB server per test process, on 127.0.0.1,
//! shared by every test of the process. Tests keep out of each other's way
//! by naming what they create uniquely ([`unique_name`]).
//!
//! [`Databases::try_shared`] (or the [`databases_or_skip!`] macro) starts
//! them on first use; when a server or its client is not installed the test
//! is skipped loudly, unless `RDSROT_REQUIRE_TOOLS=1` (`make test`, CI)
//! turns that into a failure, as for the AWS emulator.
//!
//! Everything goes through the real command-line clients (`psql`,
//! `mariadb`), as a person checking by hand would: passwords travel in the
//! environment (`PGPASSWORD`, `MYSQL_PWD`) and SQL on stdin, never on a
//! command line, and are masked in every message.
//!
//! Engines are named as in the RDS secret format: `postgres`, and `mysql`
//! (also `mariadb`; MariaDB answers for both).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::moto::{loud, repo_root, skip_or_fail, venv_python};

/// How long both servers may take to print their line (MariaDB's first
/// start writes its system tables: about 4 s on two busy cores).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// A client gives up on a server that does not answer after this long.
const CONNECT_TIMEOUT_SECONDS: u32 = 5;
/// `databases.py` exits with this when a server or client is not installed.
const EXIT_MISSING_TOOLS: i32 = 3;

/// Returns from the calling test (after a loud SKIPPED line) when the
/// database servers cannot run here; see [`Databases::try_shared`].
#[macro_export]
macro_rules! databases_or_skip {
    () => {
        match $crate::support::databases::Databases::try_shared() {
            Some(databases) => databases,
            None => return,
        }
    };
}

/// Which server a secret's `engine` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    /// MariaDB, answering for `mysql` and `mariadb` secrets.
    Mysql,
}

impl Engine {
    /// The engine of an RDS secret's `engine` value.
    pub fn named(engine: &str) -> Engine {
        match engine {
            "postgres" | "postgresql" | "aurora-postgresql" => Engine::Postgres,
            "mysql" | "mariadb" | "aurora-mysql" => Engine::Mysql,
            other => panic!("no local database server for the engine {other:?}"),
        }
    }

    /// The key of this engine in `databases.py`'s JSON line.
    pub fn key(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }
}

/// Where one server listens and its admin account.
#[derive(Clone, Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// `postgres` (a superuser) or `root`.
    pub user: String,
    pub password: String,
}

/// The two servers of this test process.
pub struct Databases {
    postgres: Server,
    mysql: Server,
    /// Never dropped (it lives in a static): the pipe closes only when the
    /// test process ends, however it ends, and `databases.py`
    /// (`--exit-on-stdin-eof`) then stops both servers and removes their
    /// directories.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static SHARED: OnceLock<Option<Databases>> = OnceLock::new();

impl Databases {
    /// The servers, started on first use; `None` after a loud SKIPPED line
    /// when they cannot run here (a panic instead under
    /// `RDSROT_REQUIRE_TOOLS=1`).
    pub fn try_shared() -> Option<&'static Databases> {
        let shared = SHARED.get_or_init(Databases::start).as_ref();
        if shared.is_none() {
            skip_or_fail(
                "real database servers",
                "PostgreSQL or MariaDB is not installed (see the line from databases.py above); `make databases` installs them",
            );
        }
        shared
    }

    /// The servers; panics when they cannot run here.
    pub fn shared() -> &'static Databases {
        SHARED
            .get_or_init(Databases::start)
            .as_ref()
            .expect("PostgreSQL and MariaDB are installed (`make databases`)")
    }

    fn start() -> Option<Databases> {
        let started = Instant::now();
        let script = repo_root().join("tests/support/databases.py");
        // The script needs only the standard library: any Python will do.
        let python = if venv_python().exists() {
            venv_python().into_os_string()
        } else {
            "python3".into()
        };
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--exit-on-stdin-eof")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("stdin was piped");
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");

        // Its stderr, kept to explain a failed start; read to the end so the
        // script never blocks on a full pipe.
        let diagnostics = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&diagnostics);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut text) = collected.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first_line = String::new();
            let _ = reader.read_line(&mut first_line);
            let _ = sender.send(first_line);
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = receiver.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let said = || diagnostics.lock().map(|t| t.clone()).unwrap_or_default();

        let servers: Option<Value> = serde_json::from_str(line.trim()).ok();
        let Some(servers) = servers else {
            let _ = child.kill();
            let status = child.wait().ok().and_then(|s| s.code());
            // Let the stderr reader catch up with a script that just exited.
            std::thread::sleep(Duration::from_millis(100));
            if status == Some(EXIT_MISSING_TOOLS) {
                loud(said().trim_end());
                return None;
            }
            panic!(
                "databases.py did not start the servers (exit {status:?}); it said:\n{}",
                said()
            );
        };
        let server = |engine: Engine| {
            let entry = &servers[engine.key()];
            Server {
                host: entry["host"].as_str().expect("host").to_owned(),
                port: entry["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .expect("port"),
                user: entry["user"].as_str().expect("user").to_owned(),
                password: entry["password"].as_str().expect("password").to_owned(),
            }
        };
        let databases = Databases {
            postgres: server(Engine::Postgres),
            mysql: server(Engine::Mysql),
            _stdin: Mutex::new(stdin),
            _child: Mutex::new(child),
        };
        eprintln!(
            "PostgreSQL on {}:{} and MariaDB on {}:{} ready after {} ms",
            databases.postgres.host,
            databases.postgres.port,
            databases.mysql.host,
            databases.mysql.port,
            started.elapsed().as_millis()
        );
        Some(databases)
    }

    /// PostgreSQL: host, port, the superuser `postgres` and its password.
    pub fn postgres(&self) -> &Server {
        &self.postgres
    }

    /// MariaDB (for `mysql` and `mariadb`): host, port, `root` and its password.
    pub fn mysql(&self) -> &Server {
        &self.mysql
    }

    /// The server of an RDS secret's `engine`.
    pub fn server(&self, engine: &str) -> &Server {
        match Engine::named(engine) {
            Engine::Postgres => &self.postgres,
            Engine::Mysql => &self.mysql,
        }
    }

    /// Runs `sql` as `user` and returns what the client printed (one row a
    /// line, columns tab-separated, no headers), or its error with
    /// `password` masked.
    pub fn sql_as(
        &self,
        engine: &str,
        user: &str,
        password: &str,
        sql: &str,
    ) -> Result<String, String> {
        let engine = Engine::named(engine);
        let server = self.server(engine.key());
        let mut command = match engine {
            Engine::Postgres => {
                let mut psql = Command::new("psql");
                psql.args(["-X", "-q", "-t", "-A", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
                    .args(["-h", &server.host, "-p", &server.port.to_string()])
                    .args(["-U", user, "-d", "postgres"])
                    .env("PGPASSWORD", password)
                    .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS.to_string())
                    // Nothing from the environment may pick another server,
                    // database or password.
                    .env_remove("PGPASSFILE")
                    .env_remove("PGSERVICE")
                    .env_remove("PGDATABASE")
                    .env_remove("PGOPTIONS");
                psql
            }
            Engine::Mysql => {
                let mut mariadb = Command::new(mariadb_client());
                mariadb
                    .args([
                        "--no-defaults",
                        "--protocol=TCP",
                        "--batch",
                        "--skip-column-names",
                    ])
                    .arg(format!("--host={}", server.host))
                    .arg(format!("--port={}", server.port))
                    .arg(format!("--user={user}"))
                    .arg(format!("--connect-timeout={CONNECT_TIMEOUT_SECONDS}"))
                    .env("MYSQL_PWD", password);
                mariadb
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run the {} client: {e}", engine.key()))?;
        child
            .stdin
            .take()
            .expect("stdin was piped")
            .write_all(sql.as_bytes())
            .map_err(|e| format!("cannot send SQL to the {} client: {e}", engine.key()))?;
        let output = child
            .wait_with_output()
            .map_err(|e| format!("the {} client: {e}", engine.key()))?;
        let masked = |text: &[u8]| self.mask(&String::from_utf8_lossy(text), &[password]);
        if output.status.success() {
            Ok(masked(&output.stdout))
        } else {
            Err(format!(
                "{} as {user} failed ({}): {}",
                engine.key(),
                output.status,
                masked(&output.stderr).trim_end()
            ))
        }
    }

    /// Runs `sql` as the engine's admin; panics with the (masked) error.
    pub fn admin_sql(&self, engine: &str, sql: &str) -> String {
        let server = self.server(engine);
        self.sql_as(engine, &server.user, &server.password, sql)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A login user with a privilege of its own to clone: SELECT and INSERT
    /// on the table [`Databases::notes_table`] names, which the admin owns.
    pub fn create_user(&self, engine: &str, name: &str, password: &str) {
        let table = self.notes_table(engine, name);
        let sql = match Engine::named(engine) {
            Engine::Postgres => format!(
                "CREATE ROLE {user} LOGIN PASSWORD {password};\n\
                 CREATE TABLE {table} (note text);\n\
                 GRANT SELECT, INSERT ON {table} TO {user};\n",
                user = postgres_identifier(name),
                password = postgres_literal(password),
            ),
            Engine::Mysql => format!(
                "CREATE USER {user} IDENTIFIED BY {password};\n\
                 CREATE DATABASE {database};\n\
                 CREATE TABLE {table} (note text);\n\
                 GRANT SELECT, INSERT ON {table} TO {user};\n",
                user = mysql_account(name),
                password = mysql_literal(password),
                database = mysql_identifier(&format!("{name}_db")),
            ),
        };
        self.admin_sql_masking(engine, &sql, password);
    }

    /// A user allowed to create users, change their passwords and hand on
    /// what the users of [`Databases::create_user`] hold, as a rotation
    /// function's master secret needs: PostgreSQL `CREATEROLE` (in
    /// PostgreSQL 15, admin of every role that is not a superuser: it may
    /// grant an app user's role, and so its privileges, to a clone);
    /// MariaDB `CREATE USER`, plus `SELECT` (which also reads the grant
    /// tables, for `SHOW GRANTS`) and `INSERT` on everything with
    /// `GRANT OPTION`, to grant a clone what the app user holds.
    pub fn create_master_user(&self, engine: &str, name: &str, password: &str) {
        let sql = match Engine::named(engine) {
            Engine::Postgres => format!(
                "CREATE ROLE {user} LOGIN CREATEROLE PASSWORD {password};\n",
                user = postgres_identifier(name),
                password = postgres_literal(password),
            ),
            Engine::Mysql => format!(
                "CREATE USER {user} IDENTIFIED BY {password};\n\
                 GRANT CREATE USER, SELECT, INSERT ON *.* TO {user} WITH GRANT OPTION;\n",
                user = mysql_account(name),
                password = mysql_literal(password),
            ),
        };
        self.admin_sql_masking(engine, &sql, password);
    }

    /// True when `user` signs in with `password` (and can run a query).
    pub fn can_sign_in(&self, engine: &str, user: &str, password: &str) -> bool {
        self.sql_as(engine, user, password, "SELECT 1;")
            .is_ok_and(|answer| answer.trim() == "1")
    }

    /// True when the server has an account named `user` (any host for MariaDB).
    pub fn user_exists(&self, engine: &str, user: &str) -> bool {
        let sql = match Engine::named(engine) {
            Engine::Postgres => format!(
                "SELECT count(*) FROM pg_roles WHERE rolname = {};",
                postgres_literal(user)
            ),
            Engine::Mysql => format!(
                "SELECT COUNT(*) FROM mysql.user WHERE User = {};",
                mysql_literal(user)
            ),
        };
        self.admin_sql(engine, &sql).trim() != "0"
    }

    /// The table [`Databases::create_user`] made for `owner`, as SQL.
    pub fn notes_table(&self, engine: &str, owner: &str) -> String {
        match Engine::named(engine) {
            Engine::Postgres => postgres_identifier(&format!("{owner}_notes")),
            Engine::Mysql => format!("{}.notes", mysql_identifier(&format!("{owner}_db"))),
        }
    }

    /// True when `user` signed in with `password` may read `owner`'s notes
    /// table: how a clone's privileges show.
    pub fn can_read_notes_of(&self, engine: &str, user: &str, password: &str, owner: &str) -> bool {
        let sql = format!("SELECT count(*) FROM {};", self.notes_table(engine, owner));
        self.sql_as(engine, user, password, &sql).is_ok()
    }

    fn admin_sql_masking(&self, engine: &str, sql: &str, secret: &str) {
        let server = self.server(engine);
        if let Err(error) = self.sql_as(engine, &server.user, &server.password, sql) {
            panic!("{}", self.mask(&error, &[secret]));
        }
    }

    /// `text` with the admin passwords and `secrets` replaced by `***`.
    fn mask(&self, text: &str, secrets: &[&str]) -> String {
        let mut masked = text.to_owned();
        let admins = [
            self.postgres.password.as_str(),
            self.mysql.password.as_str(),
        ];
        for secret in secrets.iter().chain(admins.iter()) {
            if !secret.is_empty() {
                masked = masked.replace(secret, "***");
            }
        }
        masked
    }
}

/// A name no other test of this process (nor of a process run beside it)
/// uses: `prefix`, a counter and a random tail, lowercase, within the
/// 63-character identifier limit of PostgreSQL and MariaDB's 80 for users.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let tail = uuid::Uuid::new_v4().simple().to_string();
    let name = format!(
        "{}_{}_{}",
        prefix.to_ascii_lowercase().replace('-', "_"),
        NEXT.fetch_add(1, Ordering::Relaxed),
        &tail[..8]
    );
    assert!(
        name.len() <= 40,
        "{name} is too long for a database user name"
    );
    name
}

fn mariadb_client() -> &'static str {
    static CLIENT: OnceLock<&'static str> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let on_path = |program: &str| {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
            })
        };
        if on_path("mariadb") {
            "mariadb"
        } else {
            "mysql"
        }
    })
}

fn postgres_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn postgres_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn mysql_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn mysql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A user on every host, as RDS users are (names are never resolved, so
/// `%` is what a TCP client from 127.0.0.1 matches).
fn mysql_account(name: &str) -> String {
    format!("{}@'%'", mysql_literal(name))
}
