//! Real Terraform driving the built provider binary.
//!
//! Clients: 1.0.3 from the repository's venv (the first release speaking
//! protocol 6) and `/usr/local/bin/terraform` (1.11.4 on the project's
//! machines; `RDSROT_TERRAFORM_NEWER` names another path) when present; a
//! missing one is announced loudly, and a test that needs a newer client
//! ([`clients_at_least`]) fails without one under `RDSROT_REQUIRE_TOOLS=1`.
//!
//! Every [`Workspace`] is a temporary directory with its own CLI
//! configuration (dev_overrides pointing at the freshly built binary, so no
//! `terraform init`), its own `TF_LOG=trace` log, and a list of strings that
//! must never show up (the secret's password): every run is checked for
//! them and for the two messages by which Terraform reports a provider that
//! broke the protocol's rules.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::moto::{loud, repo_root, skip_or_fail, Emulator};

/// Source address of the provider, as users write it.
pub const PROVIDER_SOURCE: &str = "rdsrot/rdsrot";
/// Its full address, as dev_overrides and `providers schema -json` spell it.
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/rdsrot/rdsrot";
/// Output by which Terraform reports that a provider broke its contract.
pub const CONTRACT_VIOLATIONS: [&str; 2] =
    ["Provider produced inconsistent result", "invalid plan"];

/// Longest any single Terraform command may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// One Terraform executable.
#[derive(Clone, Debug)]
pub struct Client {
    pub path: PathBuf,
    /// e.g. "1.0.3"
    pub version: String,
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Terraform {} ({})", self.version, self.path.display())
    }
}

impl Client {
    /// Whether this client is at least `major.minor`.
    pub fn at_least(&self, major: u64, minor: u64) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        found >= (major, minor)
    }

    /// Whether this client can parse the configuration in `dir`: calls of
    /// provider functions (`provider::rdsrot::...`) are a syntax error
    /// before Terraform 1.8, and `check` blocks before 1.5.
    pub fn can_parse(&self, dir: &Path) -> bool {
        (self.at_least(1, 8) || !calls_provider_functions(dir))
            && (self.at_least(1, 5) || !has_check_blocks(dir))
    }
}

/// Whether a `.tf` file of `dir` has a top-level `check` block.
pub fn has_check_blocks(dir: &Path) -> bool {
    any_tf_file(dir, |text| text.lines().any(|l| l.starts_with("check ")))
}

/// Whether a `.tf` file of `dir` calls a provider function.
pub fn calls_provider_functions(dir: &Path) -> bool {
    any_tf_file(dir, |text| text.contains("provider::"))
}

fn any_tf_file(dir: &Path, matches: impl Fn(&str) -> bool) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tf"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|text| matches(&text))
}

fn client_version(path: &Path) -> Option<String> {
    let output = Command::new(path)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next()?;
    first
        .strip_prefix("Terraform v")
        .map(|v| v.trim().to_owned())
}

/// Where the newer client is looked for: `RDSROT_TERRAFORM_NEWER` when set
/// (a test-only override: `/nonexistent` hides it, to check that a suite
/// needing it fails under `RDSROT_REQUIRE_TOOLS=1`), else
/// `/usr/local/bin/terraform`.
fn newer_client_path() -> PathBuf {
    std::env::var_os("RDSROT_TERRAFORM_NEWER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/terraform"))
}

fn found_clients() -> Vec<Client> {
    static FOUND: OnceLock<(Vec<Client>, Vec<String>)> = OnceLock::new();
    let (found, missing) = FOUND.get_or_init(|| {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        let venv = repo_root().join(".venv/bin/terraform");
        match client_version(&venv) {
            Some(version) => found.push(Client {
                path: venv,
                version,
            }),
            None => missing.push(format!("Terraform 1.0.3: {} does not run", venv.display())),
        }
        let newer = newer_client_path();
        match client_version(&newer) {
            Some(version) => found.push(Client {
                path: newer,
                version,
            }),
            None => missing.push(format!("Terraform 1.11.4: {} is absent", newer.display())),
        }
        (found, missing)
    });
    for why in missing {
        if why.starts_with("Terraform 1.0.3") {
            skip_or_fail("Terraform 1.0.3 from the venv", why);
        } else {
            loud(&format!(
                "=== SKIPPED for this client: {why}; the suite runs without it. ==="
            ));
        }
    }
    if found.iter().all(|c| !c.path.starts_with(repo_root())) {
        // Without the venv's client the suite is not what CI runs.
        return Vec::new();
    }
    found.clone()
}

/// One line naming the clients a test runs with, so that a run with fewer
/// than expected shows in the output.
fn announce(clients: &[Client]) {
    let versions: Vec<&str> = clients.iter().map(|c| c.version.as_str()).collect();
    if versions.is_empty() {
        loud("clients: none");
    } else {
        loud(&format!("clients: {}", versions.join(", ")));
    }
}

/// The Terraform clients to test with, announced. Empty (after a loud
/// SKIPPED line) when even the venv's 1.0.3 is missing and tools are not
/// required.
pub fn clients() -> Vec<Client> {
    let found = found_clients();
    announce(&found);
    found
}

/// The clients at `major.minor` or later, announced. None found fails the
/// test under `RDSROT_REQUIRE_TOOLS=1` (a test looping over no client would
/// pass having checked nothing), else prints a loud SKIPPED line naming
/// what went untested (`needs`).
pub fn clients_at_least(major: u64, minor: u64, needs: &str) -> Vec<Client> {
    let found: Vec<Client> = found_clients()
        .into_iter()
        .filter(|c| c.at_least(major, minor))
        .collect();
    announce(&found);
    if found.is_empty() {
        skip_or_fail(
            &format!("Terraform {major}.{minor} or later ({needs})"),
            &format!("{} does not run one", newer_client_path().display()),
        );
    }
    found
}

/// The provider binary this test build produced.
pub fn provider_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-rdsrot"))
}

/// `terraform { required_providers { rdsrot = ... } }`, to start a config.
pub fn required_providers_block() -> String {
    format!("terraform {{\n  required_providers {{\n    rdsrot = {{\n      source = \"{PROVIDER_SOURCE}\"\n    }}\n  }}\n}}\n")
}

/// The outcome of one Terraform command.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Run {
        assert_eq!(
            self.code,
            0,
            "terraform {} failed:\n{}",
            self.args.join(" "),
            self.output()
        );
        self
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            code,
            "terraform {} exited {} (expected {code}):\n{}",
            self.args.join(" "),
            self.code,
            self.output()
        );
        self
    }

    #[track_caller]
    pub fn assert_mentions(&self, needle: &str) -> &Run {
        assert!(
            self.output().contains(needle),
            "terraform {} does not mention {needle:?}:\n{}",
            self.args.join(" "),
            self.output()
        );
        self
    }
}

/// A Terraform working directory for one client.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub client: Client,
    pub cli_config: PathBuf,
    pub trace_log: PathBuf,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    /// Strings that must never appear in output, state or logs.
    forbidden: Vec<String>,
}

impl Workspace {
    /// A fresh directory whose CLI configuration overrides `rdsrot/rdsrot`
    /// with the binary of this build.
    pub fn new(client: &Client) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("rdsrot-e2e-")
            .tempdir()
            .expect("a temporary directory");
        let provider_dir = provider_binary()
            .parent()
            .expect("the binary lives in a directory")
            .to_path_buf();
        let cli_config = dir.path().join("terraform.rc");
        std::fs::write(&cli_config, dev_overrides_config(&provider_dir))
            .expect("write the CLI config");
        let trace_log = dir.path().join("terraform-trace.log");
        let env = [
            ("TF_CLI_CONFIG_FILE", cli_config.display().to_string()),
            ("CHECKPOINT_DISABLE", "1".to_owned()),
            ("TF_IN_AUTOMATION", "1".to_owned()),
            ("TF_INPUT", "0".to_owned()),
            ("TF_LOG", "trace".to_owned()),
            ("TF_LOG_PATH", trace_log.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Workspace {
            dir,
            client: client.clone(),
            cli_config,
            trace_log,
            env,
            env_remove: vec![
                "TF_LOG_PROVIDER".to_owned(),
                "TF_LOG_CORE".to_owned(),
                "TF_DATA_DIR".to_owned(),
            ],
            forbidden: Vec::new(),
        }
    }

    /// Points the provider (through the standard AWS variables) at `emulator`.
    pub fn with_emulator(mut self, emulator: &Emulator) -> Workspace {
        self.env.extend(emulator.aws_env());
        self.env_remove
            .extend(Emulator::aws_env_remove().iter().map(|s| (*s).to_owned()));
        self
    }

    /// Uses this CLI configuration instead of the dev_overrides one.
    pub fn with_cli_config(self, content: &str) -> Workspace {
        std::fs::write(&self.cli_config, content).expect("write the CLI config");
        self
    }

    /// Sets one more environment variable for every run.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Removes an environment variable from every run.
    pub fn unset_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env_remove.push(key.to_owned());
    }

    /// `value` must never appear in any output, the state or the trace log.
    pub fn forbid(&mut self, value: &str) {
        assert!(
            value.len() >= 8,
            "too short to be a meaningful leak check: {value:?}"
        );
        self.forbidden.push(value.to_owned());
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.path().join(name), content)
            .unwrap_or_else(|e| panic!("write {name}: {e}"));
    }

    /// Copies the files (not subdirectories) of `source`, e.g. an example.
    pub fn copy_from(&self, source: &Path) {
        let entries =
            std::fs::read_dir(source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                let name = path.file_name().expect("a file has a name");
                std::fs::copy(&path, self.path().join(name))
                    .unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
            }
        }
    }

    /// Runs `terraform ARGS` and checks the output for contract violations
    /// and forbidden strings.
    #[track_caller]
    pub fn terraform<S: AsRef<str>>(&self, args: &[S]) -> Run {
        let run = self.run_unchecked(args);
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        for violation in CONTRACT_VIOLATIONS {
            assert!(
                !run.output().contains(violation),
                "{} terraform {} printed {violation:?}:\n{}",
                self.client,
                args.join(" "),
                run.output()
            );
        }
        for secret in &self.forbidden {
            assert!(
                !run.output().contains(secret.as_str()),
                "{} terraform {} printed a secret value",
                self.client,
                args.join(" ")
            );
        }
        run
    }

    /// `program` set up to run in this workspace with its environment (for
    /// scripts that call Terraform themselves).
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir(self.path()).stdin(Stdio::null());
        for key in &self.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs `terraform ARGS` without any check (for runs meant to fail oddly).
    pub fn run_unchecked<S: AsRef<str>>(&self, args: &[S]) -> Run {
        self.run_interrupted(args, None)
    }

    /// Runs `terraform ARGS` and interrupts it as `how` says once `when`
    /// first answers true (it is asked every few milliseconds while the run
    /// lasts); no check of the outcome.
    pub fn run_interrupted<S: AsRef<str>>(
        &self,
        args: &[S],
        interrupt: Option<(&mut dyn FnMut() -> bool, Interrupt)>,
    ) -> Run {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let mut command = Command::new(&self.client.path);
        // A process group of its own: an interruption signals it as a
        // terminal would, and never the test process.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .args(&args)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for key in &self.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.client));
        let mut stdout = child.stdout.take().expect("stdout was piped");
        let mut stderr = child.stderr.take().expect("stderr was piped");
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let mut pending_interrupt = interrupt;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for terraform") {
                break status;
            }
            if let Some((when, how)) = pending_interrupt.as_mut() {
                if when() {
                    how.inflict(child.id());
                    pending_interrupt = None;
                }
            }
            if started.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} terraform {} took longer than {RUN_TIMEOUT:?}",
                    self.client,
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Run {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            code: status.code().unwrap_or(-1),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    }

    /// `terraform apply -auto-approve` with `-var` pairs; must succeed.
    #[track_caller]
    pub fn apply(&self, vars: &[(&str, &str)]) -> Run {
        let run = self.terraform(&with_vars(
            &["apply", "-auto-approve", "-input=false", "-no-color"],
            vars,
        ));
        run.assert_success();
        run
    }

    /// `terraform plan -detailed-exitcode` (0: no changes, 2: changes).
    #[track_caller]
    pub fn plan(&self, vars: &[(&str, &str)]) -> Run {
        self.terraform(&with_vars(
            &["plan", "-detailed-exitcode", "-input=false", "-no-color"],
            vars,
        ))
    }

    /// `terraform destroy -auto-approve`; must succeed.
    #[track_caller]
    pub fn destroy(&self, vars: &[(&str, &str)]) -> Run {
        let run = self.terraform(&with_vars(
            &["destroy", "-auto-approve", "-input=false", "-no-color"],
            vars,
        ));
        run.assert_success();
        run
    }

    /// The state as `terraform show -json` prints it.
    #[track_caller]
    pub fn state(&self) -> serde_json::Value {
        let run = self.terraform(&["show", "-json", "-no-color"]);
        run.assert_success();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("show -json is not JSON ({e}):\n{}", run.stdout))
    }

    /// The attribute values of the one resource at `address` in the state.
    #[track_caller]
    pub fn resource_values(&self, address: &str) -> serde_json::Value {
        let state = self.state();
        let mut found = None;
        let mut modules = vec![&state["values"]["root_module"]];
        while let Some(module) = modules.pop() {
            for resource in module["resources"].as_array().into_iter().flatten() {
                if resource["address"] == address {
                    found = Some(resource["values"].clone());
                }
            }
            modules.extend(module["child_modules"].as_array().into_iter().flatten());
        }
        found.unwrap_or_else(|| panic!("no {address} in the state: {state:#}"))
    }

    /// Checks that no forbidden string is in the state file or the trace log
    /// (and that the trace log was really written).
    #[track_caller]
    pub fn assert_no_leaks(&self) {
        let log = std::fs::read_to_string(&self.trace_log).unwrap_or_default();
        assert!(
            log.len() > 1000,
            "TF_LOG=trace wrote almost nothing to {}",
            self.trace_log.display()
        );
        let state =
            std::fs::read_to_string(self.path().join("terraform.tfstate")).unwrap_or_default();
        for secret in &self.forbidden {
            assert!(
                !state.contains(secret.as_str()),
                "{}: a secret value is in terraform.tfstate",
                self.client
            );
            assert!(
                !log.contains(secret.as_str()),
                "{}: a secret value is in the TF_LOG=trace log",
                self.client
            );
        }
    }
}

fn with_vars(base: &[&str], vars: &[(&str, &str)]) -> Vec<String> {
    let mut args: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
    for (name, value) in vars {
        args.push("-var".to_owned());
        args.push(format!("{name}={value}"));
    }
    args
}

/// A CLI configuration that loads `rdsrot/rdsrot` from `provider_dir` and
/// every other provider as usual.
pub fn dev_overrides_config(provider_dir: &Path) -> String {
    format!(
        "provider_installation {{\n  dev_overrides {{\n    \"{PROVIDER_ADDRESS}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
        provider_dir.display()
    )
}

/// A CLI configuration that installs `rdsrot/rdsrot` only from a local
/// filesystem mirror (as `make install` lays it out).
pub fn filesystem_mirror_config(mirror: &Path) -> String {
    format!(
        "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"{PROVIDER_ADDRESS}\"]\n  }}\n}}\n",
        mirror.display()
    )
}

/// How a test interrupts a Terraform run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// Ctrl-C: Terraform asks the provider to stop and waits for it.
    SigintTerraform,
    /// The provider process dies (as when a CI runner is killed): Terraform
    /// gets no answer for the call in flight.
    KillProvider,
}

impl Interrupt {
    fn inflict(self, terraform_pid: u32) {
        let targets: Vec<String> = match self {
            // As a terminal's Ctrl-C does: the whole process group (Terraform
            // runs in a group of its own, see `run_interrupted`), which holds
            // Terraform's panic-catching parent, Terraform itself and the
            // provider (which ignores it and waits for StopProvider).
            Interrupt::SigintTerraform => vec![format!("-{terraform_pid}")],
            Interrupt::KillProvider => provider_processes(terraform_pid)
                .iter()
                .map(u32::to_string)
                .collect(),
        };
        let signal = match self {
            Interrupt::SigintTerraform => "-INT",
            Interrupt::KillProvider => "-KILL",
        };
        for target in targets {
            let _ = Command::new("kill").args([signal, "--", &target]).status();
        }
    }
}

/// The parent pid of `pid`, from /proc.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": the comm may hold spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
}

/// The provider processes below Terraform (Terraform runs itself again as
/// a child, to catch its own panics, and that child starts the providers).
fn provider_processes(terraform_pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let descends = |mut pid: u32| {
        while let Some(parent) = parent_of(pid) {
            if parent == terraform_pid {
                return true;
            }
            if parent <= 1 {
                return false;
            }
            pid = parent;
        }
        false
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("terraform-provider-rdsrot")
                && descends(*pid)
        })
        .collect()
}
