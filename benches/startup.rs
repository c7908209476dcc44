//! Start-up as Terraform sees it: exec the provider with the environment
//! go-plugin gives it, and time how long the handshake line takes to appear
//! on stdout, then how long until the plugin answers over TLS.
//!
//! ```text
//! cargo bench --bench startup -- [--runs N] [--null PATH] [--also NAME=PATH]
//! ```
//!
//! - the release build of this provider, with AutoMTLS (`PLUGIN_CLIENT_CERT`
//!   set) and without it (what `TF_DISABLE_PLUGIN_TLS` gives);
//! - `--null PATH`: a Go provider (e.g. terraform-provider-null) with AutoMTLS;
//! - `--also NAME=PATH`: another build of this provider with AutoMTLS, such
//!   as a copy of the binary from before a change.
//!
//! Runs take turns (one of each, N times over) so that a burst of load on
//! the machine falls on every candidate alike. For each run:
//!
//! - `line`: from just before spawning to the end of the first stdout line;
//! - `RSS`: VmRSS of the process read from /proc right after the line;
//! - `ready`: from spawning to the first HTTP/2 bytes from the plugin over
//!   mutually authenticated TLS, i.e. when Terraform's first call could be
//!   served. The client offers what rustls offers by default (X25519MLKEM768
//!   first, as Go 1.24 and later do) and presents a P-521 certificate made
//!   as go-plugin makes it, pinning the certificate from the line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

const PROVIDER: &str = env!("CARGO_BIN_EXE_terraform-provider-rdsrot");
const MAGIC_COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// How long a plugin may take to print its line or answer before the run
/// counts as failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The client preface and an empty SETTINGS frame: what a gRPC client sends
/// first. Both servers answer with their own SETTINGS frame.
const HTTP2_PREFACE: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

struct Options {
    runs: usize,
    null: Option<PathBuf>,
    also: Vec<(String, PathBuf)>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        runs: 50,
        null: None,
        also: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes this to every bench target.
            "--bench" => {}
            "--runs" => {
                let value = args.next().ok_or("--runs needs a number")?;
                options.runs = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--runs {value:?} is not a positive number"))?;
            }
            "--null" => {
                let value = args.next().ok_or("--null needs a path")?;
                options.null = Some(PathBuf::from(value));
            }
            "--also" => {
                let value = args.next().ok_or("--also needs NAME=PATH")?;
                let (name, path) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--also {value:?} is not NAME=PATH"))?;
                options.also.push((name.to_string(), PathBuf::from(path)));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// The client side of AutoMTLS, made once: a self-signed ECDSA P-521 CA
/// certificate for localhost, as go-plugin's generateCert makes it.
struct ClientIdentity {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl ClientIdentity {
    fn go_plugin_like() -> ClientIdentity {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512)
            .expect("aws-lc-rs generates P-521 keys");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("valid SAN");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "HashiCorp");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyAgreement,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let cert = params.self_signed(&key).expect("self-signed");
        ClientIdentity {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }
}

/// Trusts exactly the certificate from the handshake line, as go-plugin
/// does by making it the only root. A pin instead of WebPKI because
/// go-plugin's own server certificate is a CA certificate, which WebPKI
/// refuses as an end entity and Go accepts.
#[derive(Debug)]
struct PinnedServerCert {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn client_config(identity: &ClientIdentity, server_cert: CertificateDer<'static>) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedServerCert {
        expected: server_cert,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            vec![identity.cert_der.clone()],
            PrivateKeyDer::Pkcs8(identity.key_der.clone_key()),
        )
        .expect("client certificate and key match");
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// What one candidate is and how to start it.
struct Candidate {
    name: String,
    binary: PathBuf,
    auto_mtls: bool,
    lines: Vec<f64>,
    rss_kib: Vec<u64>,
    ready: Vec<f64>,
}

impl Candidate {
    fn new(name: &str, binary: &Path, auto_mtls: bool) -> Candidate {
        Candidate {
            name: name.to_string(),
            binary: binary.to_path_buf(),
            auto_mtls,
            lines: Vec::new(),
            rss_kib: Vec::new(),
            ready: Vec::new(),
        }
    }
}

/// The command go-plugin's client runs: the parent's environment, less any
/// plugin or log settings of its own, plus the handshake variables.
fn plugin_command(candidate: &Candidate, identity: &ClientIdentity, tmp: &Path) -> Command {
    let mut cmd = Command::new(&candidate.binary);
    for var in [
        "PLUGIN_CLIENT_CERT",
        "TF_LOG",
        "TF_LOG_PROVIDER",
        "TF_REATTACH_PROVIDERS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("TF_PLUGIN_MAGIC_COOKIE", MAGIC_COOKIE)
        // Terraform offers both versions; each plugin picks its own.
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env("PLUGIN_MIN_PORT", "10000")
        .env("PLUGIN_MAX_PORT", "25000")
        // Older go-plugin servers listen on a Unix socket in TMPDIR, and a
        // killed one leaves it behind: keep those out of /tmp.
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if candidate.auto_mtls {
        cmd.env("PLUGIN_CLIENT_CERT", &identity.cert_pem);
    }
    cmd
}

/// Kills the plugin whatever happens to the run.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS line".to_string())
}

trait Transport: Read + Write {}
impl<T: Read + Write> Transport for T {}

fn dial(network: &str, address: &str) -> Result<Box<dyn Transport>, String> {
    let stream: Box<dyn Transport> = match network {
        "tcp" => {
            let tcp = TcpStream::connect(address).map_err(|e| format!("dialing {address}: {e}"))?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            tcp.set_read_timeout(Some(STEP_TIMEOUT))
                .map_err(|e| e.to_string())?;
            Box::new(tcp)
        }
        "unix" => {
            let unix =
                UnixStream::connect(address).map_err(|e| format!("dialing {address}: {e}"))?;
            unix.set_read_timeout(Some(STEP_TIMEOUT))
                .map_err(|e| e.to_string())?;
            Box::new(unix)
        }
        other => return Err(format!("unknown network {other:?}")),
    };
    Ok(stream)
}

/// Completes TLS with the plugin, sends the HTTP/2 preface and waits for
/// the first bytes the plugin sends back.
fn first_answer(
    network: &str,
    address: &str,
    identity: &ClientIdentity,
    server_cert: CertificateDer<'static>,
) -> Result<(), String> {
    let mut transport = dial(network, address)?;
    let config = Arc::new(client_config(identity, server_cert));
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let mut tls = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut stream = rustls::Stream::new(&mut tls, &mut transport);
    stream
        .write_all(HTTP2_PREFACE)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("TLS handshake or preface: {e}"))?;
    let mut first = [0u8; 9];
    match stream.read(&mut first) {
        Ok(0) => Err("the plugin closed the connection".to_string()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading the plugin's first frame: {e}")),
    }
}

/// One exec of `candidate`: the line, the RSS, then the first answer.
fn run_once(
    candidate: &mut Candidate,
    identity: &ClientIdentity,
    tmp: &Path,
) -> Result<(), String> {
    let mut cmd = plugin_command(candidate, identity, tmp);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", candidate.binary.display()))?;
    let mut running = Running(child);
    let stdout = running.0.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("reading the handshake line: {e}"))?;
    let line_time = started.elapsed();
    let rss = vm_rss_kib(running.0.id())?;

    let fields: Vec<&str> = line.trim_end().splitn(6, '|').collect();
    let [_, _, network, address, "grpc", cert] = fields[..] else {
        return Err(format!("not a gRPC handshake line: {line:?}"));
    };
    let ready_time = if candidate.auto_mtls {
        let der = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(cert)
            .map_err(|e| format!("certificate in the handshake line: {e}"))?;
        first_answer(network, address, identity, CertificateDer::from(der))?;
        Some(started.elapsed())
    } else if !cert.is_empty() {
        return Err("a certificate in the line without PLUGIN_CLIENT_CERT".to_string());
    } else {
        None
    };
    drop(running);

    candidate.lines.push(line_time.as_secs_f64() * 1000.0);
    candidate.rss_kib.push(rss);
    if let Some(ready) = ready_time {
        candidate.ready.push(ready.as_secs_f64() * 1000.0);
    }
    Ok(())
}

/// The nearest-rank percentile `p` (0 to 100) of `values`.
fn percentile<T: Copy + PartialOrd>(values: &[T], p: usize) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn report(candidates: &[Candidate], runs: usize) {
    println!("{runs} runs each, taking turns");
    println!(
        "| {:<34} | {:>11} | {:>8} | {:>12} | {:>12} | {:>9} |",
        "", "line median", "line p90", "ready median", "ready p90", "RSS (MiB)"
    );
    println!(
        "|{:-<36}|{:->13}|{:->10}|{:->14}|{:->14}|{:->11}|",
        "", "", "", "", "", ""
    );
    for c in candidates {
        let (ready_median, ready_p90) = if c.ready.is_empty() {
            ("n/a".to_string(), "n/a".to_string())
        } else {
            (
                format!("{:.1} ms", percentile(&c.ready, 50)),
                format!("{:.1} ms", percentile(&c.ready, 90)),
            )
        };
        println!(
            "| {:<34} | {:>8.1} ms | {:>5.1} ms | {:>12} | {:>12} | {:>9.1} |",
            c.name,
            percentile(&c.lines, 50),
            percentile(&c.lines, 90),
            ready_median,
            ready_p90,
            percentile(&c.rss_kib, 50) as f64 / 1024.0,
        );
    }
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("startup bench: {message}");
            std::process::exit(2);
        }
    };
    let identity = ClientIdentity::go_plugin_like();
    let tmp = tempfile::tempdir().expect("a temporary directory");

    let provider = Path::new(PROVIDER);
    let mut candidates = vec![
        Candidate::new("rdsrot, AutoMTLS", provider, true),
        Candidate::new("rdsrot, no TLS", provider, false),
    ];
    for (name, path) in &options.also {
        candidates.push(Candidate::new(&format!("{name}, AutoMTLS"), path, true));
    }
    if let Some(null) = &options.null {
        candidates.push(Candidate::new("Go null provider, AutoMTLS", null, true));
    }

    if let Some(load) = load_average() {
        println!("load average at the start (1, 5, 15 min): {load}");
    }
    // One unrecorded run each: page cache, and this process's own TLS set-up.
    for candidate in &mut candidates {
        if let Err(message) = run_once(candidate, &identity, tmp.path()) {
            eprintln!("startup bench: {}: {message}", candidate.name);
            std::process::exit(1);
        }
        candidate.lines.clear();
        candidate.rss_kib.clear();
        candidate.ready.clear();
    }
    for _ in 0..options.runs {
        for candidate in &mut candidates {
            if let Err(message) = run_once(candidate, &identity, tmp.path()) {
                eprintln!("startup bench: {}: {message}", candidate.name);
                std::process::exit(1);
            }
        }
    }
    report(&candidates, options.runs);
    report_ratio(&candidates);
    if let Some(load) = load_average() {
        println!("load average at the end (1, 5, 15 min): {load}");
    }
}

/// The target: this provider's first answer over TLS within a quarter of
/// the Go provider's, both medians from the same run.
fn report_ratio(candidates: &[Candidate]) {
    let median_ready = |name: &str| {
        candidates
            .iter()
            .find(|c| c.name == name && !c.ready.is_empty())
            .map(|c| percentile(&c.ready, 50))
    };
    if let (Some(ours), Some(go)) = (
        median_ready("rdsrot, AutoMTLS"),
        median_ready("Go null provider, AutoMTLS"),
    ) {
        println!(
            "ready median, rdsrot / Go null provider: {:.3} (target at most 0.25)",
            ours / go
        );
    }
}

/// What else the machine was doing, as the kernel averages it.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(", "),
    )
}
