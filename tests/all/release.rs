//! The release: `scripts/release.sh` (zips, manifest, SHA256SUMS and its GPG
//! signature, as the registries read them), the release workflow, and a
//! filesystem mirror made from the release's zip, installed offline by both
//! Terraform clients.
//!
//! The host's binary is the debug build the suite already has; the other
//! platforms' binaries are stand-in files, since this machine builds only
//! its own target.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;

use crate::support::moto::{loud, repo_root, skip_or_fail, tools_required, venv_python};
use crate::support::terraform::{
    clients, filesystem_mirror_config, provider_binary, Workspace, PROVIDER_ADDRESS,
};

const NAME: &str = "terraform-provider-rdsrot";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Registry platform and the Rust target that builds it.
const PLATFORMS: [(&str, &str); 5] = [
    ("darwin_amd64", "x86_64-apple-darwin"),
    ("darwin_arm64", "aarch64-apple-darwin"),
    ("linux_amd64", "x86_64-unknown-linux-gnu"),
    ("linux_arm64", "aarch64-unknown-linux-gnu"),
    ("windows_amd64", "x86_64-pc-windows-msvc"),
];

/// This machine's platform in Go's names, as Terraform spells it.
fn host_platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}_{arch}")
}

fn zip_name(platform: &str) -> String {
    format!("{NAME}_{VERSION}_{platform}.zip")
}

fn sums_name() -> String {
    format!("{NAME}_{VERSION}_SHA256SUMS")
}

fn manifest_name() -> String {
    format!("{NAME}_{VERSION}_manifest.json")
}

/// Whether `program --version` runs; otherwise skips (or fails under
/// `RDSROT_REQUIRE_TOOLS=1`) on behalf of `test_needs`.
fn tool_available(program: &str, test_needs: &str) -> bool {
    let runs = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        skip_or_fail(test_needs, &format!("`{program}` is not installed"));
    }
    runs
}

/// Python with `zipfile` and PyYAML: the venv's, which `make venv` makes.
fn venv_python_available(test_needs: &str) -> bool {
    let python = venv_python();
    if !python.exists() {
        skip_or_fail(test_needs, &format!("{} does not exist", python.display()));
        return false;
    }
    true
}

/// A copy of this test build's provider binary in `dir`: other builds in
/// the same checkout may replace the original while a test reads it.
fn copy_of_provider_binary(dir: &Path) -> PathBuf {
    let copy = dir.join(NAME);
    std::fs::copy(provider_binary(), &copy).expect("copy the provider binary");
    copy
}

/// `scripts/release.sh` writing into `dist`, with `host_binary` for the
/// host's platform and other platforms' binaries under `binaries` (as cargo
/// lays them out); no signing key and no platform list unless the test
/// sets them.
fn release_script(dist: &Path, binaries: &Path, host_binary: &Path) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(repo_root().join("scripts/release.sh"))
        .stdin(Stdio::null())
        .env("DIST_DIR", dist)
        .env("RELEASE_BINARIES_DIR", binaries)
        .env("RELEASE_BINARY", host_binary)
        .env_remove("RELEASE_GPG_KEY")
        .env_remove("RELEASE_GPG_PASSPHRASE")
        .env_remove("RELEASE_PLATFORMS");
    command
}

fn run(mut command: Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        text(output)
    );
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// The SHA256SUMS file as (file name, hex digest) pairs.
fn sums(dist: &Path) -> Vec<(String, String)> {
    let content = std::fs::read_to_string(dist.join(sums_name())).expect("read the SUMS file");
    content
        .lines()
        .map(|line| {
            let (digest, file) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("not a sha256sum line: {line:?}"));
            (file.to_owned(), digest.to_owned())
        })
        .collect()
}

fn sha256_hex_of_file(path: &Path) -> String {
    let output = run({
        let mut c = Command::new("sha256sum");
        c.arg(path);
        c
    });
    assert_success("sha256sum", &output);
    String::from_utf8_lossy(&output.stdout)[..64].to_owned()
}

fn sha256_hex_of_bytes(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("stdin was piped")
        .write_all(bytes)
        .expect("write to sha256sum");
    let output = child.wait_with_output().expect("wait for sha256sum");
    String::from_utf8_lossy(&output.stdout)[..64].to_owned()
}

/// Each member of a zip: (name, Unix mode, SHA-256 of its content).
fn zip_members(zip: &Path) -> Vec<(String, u32, String)> {
    let script = "import hashlib, json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  print(json.dumps([[i.filename, i.external_attr >> 16,\n\
                  hashlib.sha256(z.read(i)).hexdigest()] for i in z.infolist()]))\n";
    let output = run({
        let mut c = Command::new(venv_python());
        c.args(["-c", script]).arg(zip);
        c
    });
    assert_success("reading the zip", &output);
    serde_json::from_slice(&output.stdout).expect("the zip listing is JSON")
}

/// A GPG keyring of its own with one fresh signing key, without a
/// passphrase; its agent is stopped when it is dropped.
struct ThrowawayKeyring {
    home: tempfile::TempDir,
    fingerprint: String,
}

impl ThrowawayKeyring {
    fn create() -> ThrowawayKeyring {
        // Short, under /tmp: the agent's socket path has a length limit.
        let home = tempfile::Builder::new()
            .prefix("rdsrot-gpg-")
            .tempdir_in("/tmp")
            .expect("a temporary GNUPGHOME");
        let mut keyring = ThrowawayKeyring {
            home,
            fingerprint: String::new(),
        };
        // RSA as the registries want it; 2048 bits keeps generation under a second.
        let made = run(keyring.gpg(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            "rdsrot release test <release-test@example.invalid>",
            "rsa2048",
            "sign",
            "never",
        ]));
        assert_success("gpg --quick-gen-key", &made);
        let listed = run(keyring.gpg(&["--with-colons", "--list-secret-keys"]));
        assert_success("gpg --list-secret-keys", &listed);
        keyring.fingerprint = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|f| !f.is_empty()))
            .expect("the new key's fingerprint")
            .to_owned();
        keyring
    }

    fn gpg(&self, args: &[&str]) -> Command {
        let mut command = Command::new("gpg");
        command
            .arg("--batch")
            .args(args)
            .env("GNUPGHOME", self.home.path())
            .stdin(Stdio::null());
        command
    }
}

impl Drop for ThrowawayKeyring {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", self.home.path())
            .status();
    }
}

#[test]
fn release_script_signs_sums_that_gpg_and_sha256sum_accept() {
    if !tool_available("gpg", "the signed release test")
        || !tool_available("sha256sum", "the signed release test")
        || !venv_python_available("the signed release test")
    {
        return;
    }
    let keyring = ThrowawayKeyring::create();
    let work = tempfile::tempdir().expect("a temporary directory");
    let dist = work.path().join("dist");
    let binary = copy_of_provider_binary(work.path());
    let mut script = release_script(&dist, &work.path().join("no-binaries"), &binary);
    script
        .env("GNUPGHOME", keyring.home.path())
        .env("RELEASE_GPG_KEY", &keyring.fingerprint);
    let output = run(script);
    assert_success("release.sh", &output);
    assert!(
        text(&output).contains(&format!("signed by {}", keyring.fingerprint)),
        "release.sh does not say it signed:\n{}",
        text(&output)
    );

    let host = host_platform();
    let sig_name = format!("{}.sig", sums_name());
    assert_eq!(
        file_names(&dist),
        BTreeSet::from([
            zip_name(&host),
            manifest_name(),
            sums_name(),
            sig_name.clone()
        ])
    );

    let members = zip_members(&dist.join(zip_name(&host)));
    let [(member, mode, digest)] = members.as_slice() else {
        panic!("the zip must hold exactly one file: {members:?}");
    };
    assert_eq!(member, &format!("{NAME}_v{VERSION}"));
    assert_eq!(
        mode & 0o777,
        0o755,
        "the binary in the zip is not executable"
    );
    assert_eq!(digest, &sha256_hex_of_file(&binary));

    assert_eq!(
        std::fs::read(dist.join(manifest_name())).expect("read the manifest"),
        std::fs::read(repo_root().join("terraform-registry-manifest.json"))
            .expect("read terraform-registry-manifest.json"),
    );

    let listed: BTreeSet<String> = sums(&dist).into_iter().map(|(file, _)| file).collect();
    assert_eq!(listed, BTreeSet::from([zip_name(&host), manifest_name()]));
    let checked = run({
        let mut c = Command::new("sha256sum");
        c.args(["-c", &sums_name()]).current_dir(&dist);
        c
    });
    assert_success("sha256sum -c", &checked);

    let signature = std::fs::read(dist.join(&sig_name)).expect("read the signature");
    assert!(
        !signature.starts_with(b"-----BEGIN"),
        "the registries want a binary signature, not an ASCII-armoured one"
    );
    let sig_path = dist.join(&sig_name);
    let sums_path = dist.join(sums_name());
    let verified = run(keyring.gpg(&[
        "--status-fd",
        "1",
        "--verify",
        sig_path.to_str().expect("a UTF-8 path"),
        sums_path.to_str().expect("a UTF-8 path"),
    ]));
    assert_success("gpg --verify", &verified);
    assert!(
        String::from_utf8_lossy(&verified.stdout)
            .contains(&format!("[GNUPG:] VALIDSIG {}", keyring.fingerprint)),
        "not a valid signature by the release key:\n{}",
        text(&verified)
    );
}

#[test]
fn release_script_without_a_key_writes_no_signature_and_says_so() {
    if !tool_available("sha256sum", "the unsigned release test")
        || !venv_python_available("the unsigned release test")
    {
        return;
    }
    let work = tempfile::tempdir().expect("a temporary directory");
    let dist = work.path().join("dist");
    std::fs::create_dir_all(&dist).expect("create dist");
    // Left by an earlier release of the same version: published next to
    // new sums, they would be a signature and a zip that nothing vouches for.
    let stale = [format!("{}.sig", sums_name()), zip_name("darwin_arm64")];
    for name in &stale {
        std::fs::write(dist.join(name), b"from an earlier run").expect("write a stale file");
    }
    let unrelated = "notes.txt";
    std::fs::write(dist.join(unrelated), b"not a release file").expect("write a file");

    let binary = copy_of_provider_binary(work.path());
    let output = run(release_script(
        &dist,
        &work.path().join("no-binaries"),
        &binary,
    ));
    assert_success("release.sh", &output);
    assert!(
        text(&output).contains("NOT SIGNED"),
        "release.sh must say that it did not sign:\n{}",
        text(&output)
    );
    let host = host_platform();
    assert_eq!(
        file_names(&dist),
        BTreeSet::from([
            zip_name(&host),
            manifest_name(),
            sums_name(),
            unrelated.to_owned()
        ])
    );
    let checked = run({
        let mut c = Command::new("sha256sum");
        c.args(["-c", &sums_name()]).current_dir(&dist);
        c
    });
    assert_success("sha256sum -c", &checked);
}

#[test]
fn release_script_for_all_platforms_names_the_missing_ones() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let dist = work.path().join("dist");
    let binary = work.path().join(NAME);
    std::fs::write(&binary, "stand-in for the host's binary").expect("write a binary");
    let mut script = release_script(&dist, &work.path().join("no-binaries"), &binary);
    script.env("RELEASE_PLATFORMS", "all");
    let output = run(script);
    assert!(
        !output.status.success(),
        "release.sh with RELEASE_PLATFORMS=all and one binary succeeded:\n{}",
        text(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let host = host_platform();
    for (platform, target) in PLATFORMS {
        let named = stderr.contains(platform) && stderr.contains(target);
        if platform == host {
            assert!(!named, "the host's binary was there:\n{stderr}");
        } else {
            assert!(
                named,
                "{platform} ({target}) is not named as missing:\n{stderr}"
            );
        }
    }
    assert!(
        !dist.join(sums_name()).exists(),
        "a release with missing platforms wrote files"
    );
}

#[test]
fn release_script_packs_every_platform_from_cargo_target_directories() {
    if !venv_python_available("the five-platform release test") {
        return;
    }
    let work = tempfile::tempdir().expect("a temporary directory");
    let binaries = work.path().join("binaries");
    for (platform, target) in PLATFORMS {
        let exe = if platform.starts_with("windows") {
            ".exe"
        } else {
            ""
        };
        let dir = binaries.join(target).join("release");
        std::fs::create_dir_all(&dir).expect("create the target directory");
        // Read-only, as an artifact copied between CI jobs may arrive.
        let binary = dir.join(format!("{NAME}{exe}"));
        std::fs::write(&binary, format!("stand-in for {platform}")).expect("write a binary");
        std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("make the binary read-only");
    }
    let dist = work.path().join("dist");
    let mut script = release_script(&dist, &binaries, Path::new(""));
    // The host's binary too comes from the cargo layout, as in the workflow.
    script
        .env_remove("RELEASE_BINARY")
        .env("RELEASE_PLATFORMS", "all");
    let output = run(script);
    assert_success("release.sh", &output);

    let mut expected: BTreeSet<String> = PLATFORMS.iter().map(|(p, _)| zip_name(p)).collect();
    let zips = expected.clone();
    expected.extend([manifest_name(), sums_name()]);
    assert_eq!(file_names(&dist), expected);

    for (platform, _) in PLATFORMS {
        let exe = if platform.starts_with("windows") {
            ".exe"
        } else {
            ""
        };
        let members = zip_members(&dist.join(zip_name(platform)));
        let [(member, mode, digest)] = members.as_slice() else {
            panic!("{platform}: the zip must hold exactly one file: {members:?}");
        };
        assert_eq!(member, &format!("{NAME}_v{VERSION}{exe}"), "{platform}");
        assert_eq!(mode & 0o777, 0o755, "{platform}: not executable in the zip");
        assert_eq!(
            digest,
            &sha256_hex_of_bytes(format!("stand-in for {platform}").as_bytes()),
            "{platform}: the zip holds another platform's binary"
        );
    }
    let listed: BTreeSet<String> = sums(&dist).into_iter().map(|(file, _)| file).collect();
    let mut summed = zips;
    summed.insert(manifest_name());
    assert_eq!(listed, summed);
}

/// A workflow of `.github/workflows` as JSON, every scalar a string (so
/// `on` stays a key and is not read as YAML 1.1's boolean).
fn workflow(file: &str) -> serde_json::Value {
    let path = repo_root().join(".github/workflows").join(file);
    let output = run({
        let mut c = Command::new(venv_python());
        c.args([
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps(yaml.load(open(sys.argv[1]), Loader=yaml.BaseLoader)))",
        ])
        .arg(&path);
        c
    });
    assert_success(&format!("parsing {file}"), &output);
    serde_json::from_slice(&output.stdout).expect("the workflow as JSON")
}

/// The job of `workflow` with a platform matrix: its name, the job and
/// the matrix entries, after checking that they are exactly the five
/// platforms, each on a runner of its own platform.
#[track_caller]
fn platform_matrix_job(
    workflow: &serde_json::Value,
) -> (&String, &serde_json::Value, &Vec<serde_json::Value>) {
    let jobs = workflow["jobs"].as_object().expect("jobs");
    let (name, job) = jobs
        .iter()
        .find(|(_, job)| job["strategy"]["matrix"]["include"].is_array())
        .expect("a job with a platform matrix");
    let matrix = job["strategy"]["matrix"]["include"]
        .as_array()
        .expect("matrix entries");
    let built: BTreeSet<(String, String)> = matrix
        .iter()
        .map(|entry| {
            (
                entry["platform"].as_str().unwrap_or("").to_owned(),
                entry["target"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let wanted: BTreeSet<(String, String)> = PLATFORMS
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect();
    assert_eq!(
        built, wanted,
        "the matrix must hold exactly the five targets"
    );
    assert_eq!(matrix.len(), 5, "a target is there twice: {matrix:?}");
    for entry in matrix {
        let platform = entry["platform"].as_str().unwrap_or("");
        let runner = entry["runner"].as_str().unwrap_or("");
        // Native runners: unit tests run on the platform they guard.
        let native = match platform {
            "linux_amd64" => runner.starts_with("ubuntu-") && !runner.ends_with("-arm"),
            "linux_arm64" => runner.starts_with("ubuntu-") && runner.ends_with("-arm"),
            "darwin_amd64" => runner.ends_with("-intel") || runner == "macos-13",
            "darwin_arm64" => {
                runner == "macos-latest"
                    || (runner.starts_with("macos-1") && !runner.ends_with("-intel"))
            }
            "windows_amd64" => runner.starts_with("windows-"),
            _ => false,
        };
        assert!(
            native,
            "{platform} does not run on a native runner: {runner}"
        );
    }
    assert_eq!(job["runs-on"], "${{ matrix.runner }}");
    (name, job, matrix)
}

/// The `run` scripts of a job's steps.
fn job_runs(job: &serde_json::Value) -> Vec<&str> {
    job["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(step_runs)
        .collect()
}

fn step_runs(step: &serde_json::Value) -> &str {
    step["run"].as_str().unwrap_or("")
}

#[test]
fn release_workflow_builds_the_five_targets_and_publishes_a_signed_release() {
    if !venv_python_available("the release workflow test") {
        return;
    }
    let workflow = workflow("release.yml");
    let tags = &workflow["on"]["push"]["tags"];
    assert!(
        tags.as_array().is_some_and(|t| t.iter().any(|t| t == "v*")),
        "the workflow must run on v* tags: {tags}"
    );

    let (build_name, build, _) = platform_matrix_job(&workflow);
    let build_steps = job_runs(build);
    for wanted in ["cargo test", "cargo build"] {
        let step = build_steps
            .iter()
            .find(|run| run.contains(wanted))
            .unwrap_or_else(|| panic!("no `{wanted}` step in {build_name}"));
        assert!(step.contains("--target ${{ matrix.target }}"), "{step}");
    }
    assert!(build_steps
        .iter()
        .any(|r| r.contains("cargo test") && r.contains("--lib")));
    assert!(build_steps
        .iter()
        .any(|r| r.contains("cargo build") && r.contains("--release")));

    let jobs = workflow["jobs"].as_object().expect("jobs");
    let (_, release) = jobs
        .iter()
        .find(|(_, job)| {
            job["steps"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| step_runs(s).contains("scripts/release.sh"))
            })
        })
        .expect("a job that runs scripts/release.sh");
    let needs = &release["needs"];
    assert!(
        needs == build_name
            || needs
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == build_name)),
        "the release job must wait for {build_name}: needs {needs}"
    );
    assert_eq!(release["permissions"]["contents"], "write");
    let steps = release["steps"].as_array().expect("release steps");
    let script_at = steps
        .iter()
        .position(|s| step_runs(s).contains("scripts/release.sh"))
        .expect("the release.sh step");
    let env = &steps[script_at]["env"];
    assert_eq!(env["RELEASE_PLATFORMS"], "all");
    assert!(
        env["RELEASE_GPG_KEY"]
            .as_str()
            .is_some_and(|k| !k.is_empty()),
        "release.sh must sign: {env}"
    );
    let before: String = steps[..script_at]
        .iter()
        .map(|s| serde_json::to_string(s).expect("JSON"))
        .collect();
    assert!(
        before.contains("secrets.GPG_PRIVATE_KEY"),
        "the key must be imported before release.sh runs"
    );
    assert!(
        serde_json::to_string(&steps[script_at])
            .expect("JSON")
            .contains("secrets.PASSPHRASE")
            || before.contains("secrets.PASSPHRASE"),
        "the key's passphrase must reach gpg"
    );
    let publishes = steps[script_at + 1..]
        .iter()
        .any(|s| step_runs(s).contains("gh release create") && step_runs(s).contains("dist/*"));
    assert!(
        publishes,
        "no step after release.sh publishes dist/* as a GitHub release"
    );
}

#[test]
fn ci_workflow_runs_the_unit_tests_on_the_five_targets() {
    if !venv_python_available("the CI workflow test") {
        return;
    }
    let workflow = workflow("ci.yml");
    assert!(
        workflow["on"]["pull_request"].is_object() || workflow["on"]["pull_request"].is_string(),
        "CI must run on pull requests: {}",
        workflow["on"]
    );
    let (name, job, _) = platform_matrix_job(&workflow);
    assert!(
        job_runs(job).iter().any(|r| r.contains("cargo test")
            && r.contains("--lib")
            && r.contains("--target ${{ matrix.target }}")),
        "{name} runs no unit tests for the matrix target"
    );
}

/// The `hashes` of the provider's block in a `.terraform.lock.hcl`.
fn locked_hashes(lock_file: &Path) -> BTreeSet<String> {
    let lock = std::fs::read_to_string(lock_file)
        .unwrap_or_else(|e| panic!("read {}: {e}", lock_file.display()));
    let block = lock
        .split("provider \"")
        .find(|b| b.starts_with(&format!("{PROVIDER_ADDRESS}\"")))
        .unwrap_or_else(|| panic!("no block for {PROVIDER_ADDRESS}:\n{lock}"));
    block
        .split('"')
        .filter(|s| s.starts_with("h1:") || s.starts_with("zh:"))
        .map(str::to_owned)
        .collect()
}

/// Terraform's `h1:` hash of an unpacked package: the SHA-256 of the
/// package's `sha256sum`-style listing, in base64.
fn h1_hash(files: &[(&str, &Path)]) -> String {
    let mut listing: Vec<String> = files
        .iter()
        .map(|(name, path)| format!("{}  {name}\n", sha256_hex_of_file(path)))
        .collect();
    listing.sort_by(|a, b| a[66..].cmp(&b[66..]));
    let hex = sha256_hex_of_bytes(listing.concat().as_bytes());
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn lock_file_with(hash: &str) -> String {
    format!(
        "provider \"{PROVIDER_ADDRESS}\" {{\n  version     = \"{VERSION}\"\n  constraints = \"{VERSION}\"\n  hashes = [\n    \"{hash}\",\n  ]\n}}\n"
    )
}

#[test]
fn filesystem_mirror_of_the_release_zip_installs_offline_with_both_clients() {
    if !tool_available("sha256sum", "the filesystem mirror test")
        || !venv_python_available("the filesystem mirror test")
    {
        return;
    }
    let clients = clients();
    if clients.is_empty() {
        return;
    }
    if !clients.iter().any(|c| c.at_least(1, 11)) {
        if tools_required() {
            panic!("the filesystem mirror test needs Terraform 1.11.4 (RDSROT_REQUIRE_TOOLS=1)");
        }
        loud("=== the filesystem mirror test runs without Terraform 1.11.4 ===");
    }
    let host = host_platform();
    let work = tempfile::tempdir().expect("a temporary directory");
    let dist = work.path().join("dist");
    let binary = copy_of_provider_binary(work.path());
    let output = run(release_script(
        &dist,
        &work.path().join("no-binaries"),
        &binary,
    ));
    assert_success("release.sh", &output);

    // The packed layout: HOSTNAME/NAMESPACE/TYPE/<the release's zip>.
    let mirror = work.path().join("mirror");
    let provider_dir: PathBuf = mirror.join(PROVIDER_ADDRESS);
    std::fs::create_dir_all(&provider_dir).expect("create the mirror");
    std::fs::copy(
        dist.join(zip_name(&host)),
        provider_dir.join(zip_name(&host)),
    )
    .expect("copy the zip into the mirror");
    let zip_hash = sums(&dist)
        .into_iter()
        .find(|(file, _)| *file == zip_name(&host))
        .map(|(_, digest)| format!("zh:{digest}"))
        .expect("the zip's line in SHA256SUMS");
    let member = format!("{NAME}_v{VERSION}");
    let package_hash = h1_hash(&[(member.as_str(), binary.as_path())]);

    for client in &clients {
        let ws = Workspace::new(client).with_cli_config(&filesystem_mirror_config(&mirror));
        ws.write(
            "main.tf",
            &format!(
                "terraform {{\n  required_providers {{\n    rdsrot = {{\n      source  = \"rdsrot/rdsrot\"\n      version = \"{VERSION}\"\n    }}\n  }}\n}}\n"
            ),
        );
        let lock_file = ws.path().join(".terraform.lock.hcl");
        let fresh = || {
            let _ = std::fs::remove_dir_all(ws.path().join(".terraform"));
            let _ = std::fs::remove_file(&lock_file);
        };
        let init = || ws.terraform(&["init", "-input=false", "-no-color"]);

        // Terraform records `zh:` hashes only from a registry's signed sums;
        // from a mirror it hashes what it unpacked.
        init().assert_success();
        assert_eq!(
            locked_hashes(&lock_file),
            BTreeSet::from([package_hash.clone()]),
            "{client}: terraform init from the mirror"
        );

        fresh();
        let fs_mirror = format!("-fs-mirror={}", mirror.display());
        let platform = format!("-platform={host}");
        ws.terraform(&["providers", "lock", "-no-color", &fs_mirror, &platform])
            .assert_success();
        assert_eq!(
            locked_hashes(&lock_file),
            BTreeSet::from([package_hash.clone()]),
            "{client}: terraform providers lock -fs-mirror"
        );

        // A lock file as the registry's sums leave it: the zip's SHA-256
        // from SHA256SUMS is what Terraform checks the mirror's zip against.
        fresh();
        std::fs::write(&lock_file, lock_file_with(&zip_hash)).expect("write the lock file");
        init().assert_success();
        assert_eq!(
            locked_hashes(&lock_file),
            BTreeSet::from([zip_hash.clone(), package_hash.clone()]),
            "{client}: terraform init with the SUMS hash locked"
        );

        fresh();
        let other_zip = format!("zh:{}", "0".repeat(64));
        std::fs::write(&lock_file, lock_file_with(&other_zip)).expect("write the lock file");
        init()
            .assert_code(1)
            .assert_mentions("doesn't match any of the checksums");
    }
}
