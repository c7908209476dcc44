//! The plugin process as go-plugin expects it: check that Terraform started
//! us, agree on protocol 6, listen (127.0.0.1 with mutual TLS; a Unix socket
//! without), announce the address (and our certificate) in one line on
//! stdout, then serve until told to stop.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use tokio::net::TcpListener;

use super::tls::TlsSetup;
use crate::logging;
use crate::tf::Provider;

/// The variable and value go-plugin hosts set to mark a process they started
/// as their plugin; the value is Terraform's.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// go-plugin's own handshake version, first field of the line.
const CORE_PROTOCOL_VERSION: u32 = 1;
/// The only Terraform plugin protocol this binary speaks.
pub const PROTOCOL_VERSION: u32 = 6;
/// Terraform leaves the port range unset; go-plugin then uses these.
const DEFAULT_MIN_PORT: u16 = 10000;
const DEFAULT_MAX_PORT: u16 = 25000;

/// The provider's address in the registry, as `TF_REATTACH_PROVIDERS` keys it.
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/rdsrot/rdsrot";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HandshakeError {
    #[error(
        "This binary is a plugin: terraform-provider-rdsrot is a Terraform and OpenTofu \
         provider, started by Terraform when a configuration uses the rdsrot/rdsrot \
         provider. It is not meant to be run by hand.\n\
         To debug it, run it with --debug and export the TF_REATTACH_PROVIDERS value it prints."
    )]
    NotStartedByTerraform,
    #[error(
        "terraform-provider-rdsrot speaks plugin protocol version {PROTOCOL_VERSION} only, \
         but the host offered {offered:?} (PLUGIN_PROTOCOL_VERSIONS). \
         Use Terraform 1.0 or later, or OpenTofu."
    )]
    UnsupportedProtocol { offered: String },
    #[error("{variable}={value:?} is not a port number between 1 and 65535")]
    BadPort {
        variable: &'static str,
        value: String,
    },
    #[error("PLUGIN_MIN_PORT ({min}) is greater than PLUGIN_MAX_PORT ({max})")]
    EmptyPortRange { min: u16, max: u16 },
    #[error("no free port on 127.0.0.1 between {min} and {max}: {last_error}")]
    NoFreePort {
        min: u16,
        max: u16,
        last_error: String,
    },
    #[error("creating the plugin's Unix socket in {dir}: {error} (set PLUGIN_UNIX_SOCKET_DIR or TMPDIR to a short, writable directory)")]
    UnixSocket { dir: String, error: String },
}

/// Where the plugin listens, as the handshake line and
/// `TF_REATTACH_PROVIDERS` name it.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginAddr {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

impl PluginAddr {
    /// go-plugin's network name: Go's `net.Addr.Network()`.
    fn network(&self) -> &'static str {
        match self {
            PluginAddr::Tcp(_) => "tcp",
            #[cfg(unix)]
            PluginAddr::Unix(_) => "unix",
        }
    }
}

impl std::fmt::Display for PluginAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginAddr::Tcp(addr) => write!(f, "{addr}"),
            #[cfg(unix)]
            PluginAddr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The magic cookie must be exactly Terraform's.
pub fn check_magic_cookie(value: Option<&str>) -> Result<(), HandshakeError> {
    match value {
        Some(v) if v == MAGIC_COOKIE_VALUE => Ok(()),
        _ => Err(HandshakeError::NotStartedByTerraform),
    }
}

/// `PLUGIN_PROTOCOL_VERSIONS` is a comma list in no particular order; it
/// must contain 6. When it is absent, the host is assumed to speak 6.
/// Entries that are not numbers are skipped, as go-plugin skips them.
pub fn check_protocol_versions(value: Option<&str>) -> Result<(), HandshakeError> {
    let Some(list) = value else {
        return Ok(());
    };
    let offers_ours = list
        .split(',')
        .filter_map(|v| v.trim().parse::<u32>().ok())
        .any(|v| v == PROTOCOL_VERSION);
    if offers_ours {
        Ok(())
    } else {
        Err(HandshakeError::UnsupportedProtocol {
            offered: list.to_string(),
        })
    }
}

/// The ports to try, from `PLUGIN_MIN_PORT` and `PLUGIN_MAX_PORT`.
pub fn port_range(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<RangeInclusive<u16>, HandshakeError> {
    fn parse(
        variable: &'static str,
        value: Option<&str>,
        default: u16,
    ) -> Result<u16, HandshakeError> {
        match value.map(str::trim) {
            None | Some("") => Ok(default),
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 => Ok(port),
                _ => Err(HandshakeError::BadPort {
                    variable,
                    value: text.to_string(),
                }),
            },
        }
    }
    let min = parse("PLUGIN_MIN_PORT", min, DEFAULT_MIN_PORT)?;
    let max = parse("PLUGIN_MAX_PORT", max, DEFAULT_MAX_PORT)?;
    if min > max {
        return Err(HandshakeError::EmptyPortRange { min, max });
    }
    Ok(min..=max)
}

/// Binds the first free port of `ports` on 127.0.0.1.
pub async fn bind_in_range(ports: RangeInclusive<u16>) -> Result<TcpListener, HandshakeError> {
    let (min, max) = (*ports.start(), *ports.end());
    let mut last_error = String::from("no port tried");
    for port in ports {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(HandshakeError::NoFreePort {
        min,
        max,
        last_error,
    })
}

/// A Unix socket only its owner can reach: `plugin.sock` in a fresh
/// directory of mode 0700 under `PLUGIN_UNIX_SOCKET_DIR` (go-plugin's
/// variable), else the temporary directory. The directory, not the socket's
/// own mode, is what keeps other users out from the moment of `bind`; the
/// socket is 0600 too. Both are removed when the returned guard drops.
#[cfg(unix)]
pub fn bind_unix_socket(
    socket_dir: Option<&str>,
) -> Result<(tokio::net::UnixListener, UnixSocketFile), HandshakeError> {
    use std::os::unix::fs::PermissionsExt;

    let base = match socket_dir.map(str::trim).filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir(),
    };
    let failed = |error: std::io::Error| HandshakeError::UnixSocket {
        dir: base.display().to_string(),
        error: error.to_string(),
    };
    let dir = fresh_private_dir(&base).map_err(failed)?;
    // From here on the guard removes what was made, on every error too.
    let socket = UnixSocketFile {
        path: dir.join("plugin.sock"),
        dir,
    };
    std::fs::set_permissions(&socket.dir, std::fs::Permissions::from_mode(0o700))
        .map_err(failed)?;
    let listener = tokio::net::UnixListener::bind(&socket.path).map_err(failed)?;
    std::fs::set_permissions(&socket.path, std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    Ok((listener, socket))
}

/// A new directory `rdsrot-plugin-XXXXXXXXXXXX` in `base`, made with mode
/// 0700 (less if the umask says so; `bind_unix_socket` then sets it
/// exactly). Never an existing one: someone else could have made it.
#[cfg(unix)]
fn fresh_private_dir(base: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;

    let mut last_error = None;
    for _ in 0..16 {
        let name: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(12)
            .collect();
        let dir = base.join(format!("rdsrot-plugin-{name}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no name left to try")))
}

/// The socket file and its directory, removed on drop (when the plugin
/// exits normally; a killed process leaves them, as go-plugin's do).
#[cfg(unix)]
#[derive(Debug)]
pub struct UnixSocketFile {
    pub path: PathBuf,
    pub dir: PathBuf,
}

#[cfg(unix)]
impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The one line go-plugin reads from stdout:
/// `1|6|NETWORK|ADDRESS|grpc|CERT` (`tcp` and `127.0.0.1:PORT`, or `unix`
/// and the socket's path), CERT being the server certificate's DER in
/// unpadded standard base64 (Go decodes it with RawStdEncoding), or empty
/// when serving plaintext. No seventh field: old clients would glue it onto
/// the certificate.
pub fn handshake_line(addr: &PluginAddr, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    let network = addr.network();
    format!("{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|{network}|{addr}|grpc|{cert}")
}

/// The `TF_REATTACH_PROVIDERS` value for a provider served unmanaged at
/// `addr`. `Test: true` makes go-plugin keep protocol version 6 (without it
/// Terraform 1.0 assumes 5) and stops Terraform from killing the process.
pub fn reattach_config(addr: &PluginAddr, pid: u32) -> String {
    serde_json::json!({
        PROVIDER_ADDRESS: {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": pid,
            "Test": true,
            "Addr": { "Network": addr.network(), "String": addr.to_string() },
        }
    })
    .to_string()
}

/// Where to serve: 127.0.0.1 in `ports` when `tls` (mutual TLS guards the
/// port) or where there are no Unix sockets; else a private Unix socket,
/// since plaintext on a port would let any local user call the provider
/// with the operator's AWS credentials. `ports` is parsed by the caller
/// either way, so a bad `PLUGIN_MIN_PORT` is reported whichever is used.
async fn listen(
    ports: RangeInclusive<u16>,
    tls: bool,
) -> Result<(super::PluginListener, PluginAddr, Option<ListenGuard>), String> {
    #[cfg(unix)]
    if !tls {
        let (listener, socket) = bind_unix_socket(env("PLUGIN_UNIX_SOCKET_DIR").as_deref())
            .map_err(|e| e.to_string())?;
        let addr = PluginAddr::Unix(socket.path.clone());
        return Ok((listener.into(), addr, Some(socket)));
    }
    #[cfg(not(unix))]
    let _ = tls; // no Unix sockets here: TCP, as go-plugin does on Windows
    let listener = bind_in_range(ports).await.map_err(|e| e.to_string())?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("reading the listening address: {e}"))?;
    Ok((listener.into(), PluginAddr::Tcp(addr), None))
}

/// What must live as long as the listener: the Unix socket's files.
#[cfg(unix)]
type ListenGuard = UnixSocketFile;
#[cfg(not(unix))]
type ListenGuard = ();

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Mode {
    /// Started by Terraform.
    Managed,
    /// Started by hand: serve plaintext and print `TF_REATTACH_PROVIDERS`.
    Debug,
}

fn mode_from_args(args: &[String]) -> Result<Mode, String> {
    match args {
        [] => Ok(Mode::Managed),
        [flag] if flag == "--debug" || flag == "-debug" => Ok(Mode::Debug),
        _ => Err(format!(
            "unexpected arguments {args:?}; the only option is --debug"
        )),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The whole plugin process: handshake, serve `provider`, exit. Returns the
/// process exit code; errors are written to stderr, never stdout.
pub fn run_plugin<P: Provider>(provider: P) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match mode_from_args(&args) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("terraform-provider-rdsrot: {message}");
            return ExitCode::FAILURE;
        }
    };
    if mode == Mode::Managed {
        // Checked before anything else, so that a person running the binary
        // gets the explanation and nothing more.
        if let Err(e) = check_magic_cookie(env(MAGIC_COOKIE_KEY).as_deref()) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        if let Err(e) = check_protocol_versions(env("PLUGIN_PROTOCOL_VERSIONS").as_deref()) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("terraform-provider-rdsrot: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let provider = Arc::new(provider);
        let result = match mode {
            Mode::Managed => serve_managed(provider).await,
            Mode::Debug => serve_debug(provider).await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                logging::error("server", &message);
                eprintln!("terraform-provider-rdsrot: {message}");
                ExitCode::FAILURE
            }
        }
    });
    // Work still running (a cancelled AWS call, say) must not delay exit:
    // Terraform kills a plugin that lingers after Shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

async fn serve_managed<P: Provider>(provider: Arc<P>) -> Result<(), String> {
    let ports = port_range(
        env("PLUGIN_MIN_PORT").as_deref(),
        env("PLUGIN_MAX_PORT").as_deref(),
    )
    .map_err(|e| e.to_string())?;
    // AutoMTLS is on unless Terraform was told otherwise
    // (TF_DISABLE_PLUGIN_TLS), in which case no certificate is passed.
    let tls = match env("PLUGIN_CLIENT_CERT").filter(|pem| !pem.trim().is_empty()) {
        Some(pem) => Some(TlsSetup::new(&pem).map_err(|e| e.to_string())?),
        None => None,
    };
    let (listener, addr, _socket_file) = listen(ports, tls.is_some()).await?;
    // Before the handshake: from then on Terraform may be interrupted.
    ignore_interrupts();
    let line = handshake_line(&addr, tls.as_ref().map(|t| t.server_cert_der().as_ref()));
    announce(&line)?;
    logging::log(
        logging::Level::Debug,
        "server",
        "plugin serving",
        &[
            ("address", &addr.to_string()),
            ("tls", if tls.is_some() { "true" } else { "false" }),
        ],
    );
    super::serve(provider, listener, tls, std::future::pending())
        .await
        .map_err(|e| e.to_string())
}

async fn serve_debug<P: Provider>(provider: Arc<P>) -> Result<(), String> {
    let ports = port_range(
        env("PLUGIN_MIN_PORT").as_deref(),
        env("PLUGIN_MAX_PORT").as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let (listener, addr, _socket_file) = listen(ports, false).await?;
    let reattach = reattach_config(&addr, std::process::id());
    eprintln!(
        "terraform-provider-rdsrot is serving in debug mode at {addr} (plaintext).\n\
         In the shell where you run Terraform, export the line printed on stdout;\n\
         stop this process with Ctrl-C."
    );
    // Terraform never shuts down a provider it did not start: Ctrl-C does.
    // Listened for before the line is printed, so that a Ctrl-C as soon as
    // the user sees it stops the server instead of killing it.
    let interrupted = first_interrupt();
    announce(&format!("TF_REATTACH_PROVIDERS='{reattach}'"))?;
    super::serve(provider, listener, None, interrupted)
        .await
        .map_err(|e| e.to_string())
}

/// The first Ctrl-C from now on: the listener is registered at once, not
/// when the future is first polled. Never, when none can be registered.
fn first_interrupt() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let listener = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    #[cfg(windows)]
    let listener = tokio::signal::windows::ctrl_c();
    async move {
        match listener {
            Ok(mut interrupts) => {
                if interrupts.recv().await.is_some() {
                    return;
                }
            }
            Err(e) => logging::warn("server", &format!("cannot listen for Ctrl-C: {e}")),
        }
        std::future::pending::<()>().await
    }
}

/// Writes `line` to stdout and flushes it: the only stdout output ever.
fn announce(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing the handshake to stdout: {e}"))
}

/// Terraform runs providers in its own process group, so a Ctrl-C in the
/// terminal reaches us too; Terraform then asks for a graceful stop with
/// StopProvider. Dying on the signal instead would abandon work mid-apply.
fn ignore_interrupts() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::interrupt()) {
            Ok(mut interrupts) => {
                tokio::spawn(async move {
                    while interrupts.recv().await.is_some() {
                        logging::debug("server", "interrupt ignored; waiting for StopProvider");
                    }
                });
            }
            Err(e) => logging::warn("server", &format!("cannot ignore SIGINT: {e}")),
        }
    }
    // A console's Ctrl-C reaches every process attached to it, and its
    // default handler ends the process; while a listener is registered it
    // does not.
    #[cfg(windows)]
    {
        match tokio::signal::windows::ctrl_c() {
            Ok(mut interrupts) => {
                tokio::spawn(async move {
                    while interrupts.recv().await.is_some() {
                        logging::debug("server", "Ctrl-C ignored; waiting for StopProvider");
                    }
                });
            }
            Err(e) => logging::warn("server", &format!("cannot ignore Ctrl-C: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_must_match_exactly() {
        assert_eq!(check_magic_cookie(Some(MAGIC_COOKIE_VALUE)), Ok(()));
        assert_eq!(
            check_magic_cookie(None),
            Err(HandshakeError::NotStartedByTerraform)
        );
        assert_eq!(
            check_magic_cookie(Some("d602bf8f")),
            Err(HandshakeError::NotStartedByTerraform)
        );
    }

    #[test]
    fn not_a_plugin_message_says_what_this_is() {
        let text = HandshakeError::NotStartedByTerraform.to_string();
        assert!(text.contains("This binary is a plugin"));
        assert!(text.contains("not meant to be run by hand"));
        assert!(text.contains("Terraform"));
    }

    #[test]
    fn protocol_versions_in_any_order() {
        for offered in ["6", "5,6", "6,5", " 5 , 6 ", "x,6"] {
            assert_eq!(check_protocol_versions(Some(offered)), Ok(()), "{offered}");
        }
        assert_eq!(check_protocol_versions(None), Ok(()));
    }

    #[test]
    fn protocol_versions_without_six_are_refused() {
        for offered in ["5", "4,5", "", "16", "7"] {
            let err = check_protocol_versions(Some(offered)).expect_err(offered);
            assert!(err.to_string().contains("protocol version 6"), "{err}");
        }
    }

    #[test]
    fn port_range_defaults_and_overrides() {
        assert_eq!(port_range(None, None), Ok(10000..=25000));
        assert_eq!(port_range(Some("12000"), Some("12010")), Ok(12000..=12010));
        assert_eq!(port_range(Some(""), Some("30000")), Ok(10000..=30000));
    }

    #[test]
    fn bad_port_values_are_named() {
        let err = port_range(Some("abc"), None).expect_err("not a number");
        assert!(err.to_string().contains("PLUGIN_MIN_PORT"));
        let err = port_range(None, Some("70000")).expect_err("too big");
        assert!(err.to_string().contains("PLUGIN_MAX_PORT"));
        assert!(port_range(Some("0"), None).is_err());
        assert_eq!(
            port_range(Some("20000"), Some("10000")),
            Err(HandshakeError::EmptyPortRange {
                min: 20000,
                max: 10000
            })
        );
    }

    #[tokio::test]
    async fn binds_the_next_free_port_in_range() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind any port");
        let port = taken.local_addr().expect("addr").port();
        // The first port is taken; the range continues past it, if it can.
        if let Some(next) = port.checked_add(1) {
            match bind_in_range(port..=next).await {
                Ok(listener) => assert_eq!(listener.local_addr().expect("addr").port(), next),
                // Someone else may hold the next port too.
                Err(e) => assert!(matches!(e, HandshakeError::NoFreePort { .. })),
            }
        }
        let err = bind_in_range(port..=port).await.expect_err("taken");
        assert!(err.to_string().contains(&port.to_string()));
    }

    #[test]
    fn handshake_line_has_six_fields_and_unpadded_cert() {
        let addr = PluginAddr::Tcp("127.0.0.1:10001".parse().expect("addr"));
        // 4 bytes: standard base64 would pad this to "AQIDBA==".
        let line = handshake_line(&addr, Some(&[1, 2, 3, 4]));
        assert_eq!(line, "1|6|tcp|127.0.0.1:10001|grpc|AQIDBA");
        assert_eq!(line.split('|').count(), 6);
        assert_eq!(handshake_line(&addr, None), "1|6|tcp|127.0.0.1:10001|grpc|");
    }

    #[cfg(unix)]
    #[test]
    fn handshake_line_names_a_unix_socket_by_its_path() {
        let addr = PluginAddr::Unix(PathBuf::from("/tmp/rdsrot-plugin-x/plugin.sock"));
        assert_eq!(
            handshake_line(&addr, None),
            "1|6|unix|/tmp/rdsrot-plugin-x/plugin.sock|grpc|"
        );
        let json: serde_json::Value =
            serde_json::from_str(&reattach_config(&addr, 7)).expect("JSON");
        let entry = &json[PROVIDER_ADDRESS]["Addr"];
        assert_eq!(entry["Network"], "unix");
        assert_eq!(entry["String"], "/tmp/rdsrot-plugin-x/plugin.sock");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn unix_socket_is_private_and_removed_on_drop() {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};

        let base = tempfile::tempdir().expect("a base directory");
        let base_text = base.path().to_str().expect("UTF-8 path");
        let (listener, socket) = bind_unix_socket(Some(base_text)).expect("socket");
        assert_eq!(
            socket.dir.parent(),
            Some(base.path()),
            "in PLUGIN_UNIX_SOCKET_DIR"
        );
        let dir_meta = std::fs::metadata(&socket.dir).expect("directory");
        assert_eq!(dir_meta.permissions().mode() & 0o777, 0o700);
        let sock_meta = std::fs::metadata(&socket.path).expect("socket file");
        assert!(sock_meta.file_type().is_socket());
        assert_eq!(sock_meta.permissions().mode() & 0o777, 0o600);
        // It is the listener's own socket.
        let dialed = tokio::net::UnixStream::connect(&socket.path);
        let (accepted, dialed) = tokio::join!(listener.accept(), dialed);
        accepted.expect("accepted");
        dialed.expect("dialed");

        let (path, dir) = (socket.path.clone(), socket.dir.clone());
        drop(socket);
        assert!(!path.exists(), "socket removed");
        assert!(!dir.exists(), "directory removed");
    }

    #[cfg(unix)]
    #[test]
    fn a_unix_socket_dir_that_cannot_be_used_is_named() {
        let err = bind_unix_socket(Some("/nonexistent/rdsrot")).expect_err("no such dir");
        let text = err.to_string();
        assert!(text.contains("/nonexistent/rdsrot"), "{text}");
        assert!(text.contains("PLUGIN_UNIX_SOCKET_DIR"), "{text}");
    }

    #[test]
    fn reattach_config_is_what_terraform_parses() {
        let addr = PluginAddr::Tcp("127.0.0.1:12345".parse().expect("addr"));
        let text = reattach_config(&addr, 42);
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let entry = &json[PROVIDER_ADDRESS];
        assert_eq!(entry["Protocol"], "grpc");
        assert_eq!(entry["ProtocolVersion"], 6);
        assert_eq!(entry["Pid"], 42);
        assert_eq!(entry["Test"], true);
        assert_eq!(entry["Addr"]["Network"], "tcp");
        assert_eq!(entry["Addr"]["String"], "127.0.0.1:12345");
    }

    #[test]
    fn arguments() {
        assert_eq!(mode_from_args(&[]), Ok(Mode::Managed));
        assert_eq!(mode_from_args(&["--debug".into()]), Ok(Mode::Debug));
        assert!(mode_from_args(&["--serve".into()]).is_err());
    }
}
