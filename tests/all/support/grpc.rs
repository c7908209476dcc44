//! Talking to the plugin server as Terraform does: an in-process server on
//! port 0, a client certificate made the way go-plugin makes Terraform's
//! (ECDSA P-521, self-signed, flagged as a CA), and a gRPC channel over a
//! TLS stream that trusts only the server certificate from the handshake.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rdsrot::server::proto::plugin::grpc_controller_client::GrpcControllerClient;
use rdsrot::server::proto::tfplugin6::provider_client::ProviderClient;
use rdsrot::server::{serve, ServeError, TlsSetup};
use rdsrot::tf::Provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Uri};

/// How long any single step of a protocol test may take before it counts
/// as hung.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than `STEP_TIMEOUT`.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} took longer than {STEP_TIMEOUT:?}"),
    }
}

/// A client certificate and key as go-plugin generates Terraform's.
pub struct ClientIdentity {
    pub cert_der: CertificateDer<'static>,
    pub cert_pem: String,
    key_pkcs8: Vec<u8>,
}

impl ClientIdentity {
    pub fn terraform_like() -> ClientIdentity {
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
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(30);
        params.not_after = now + time::Duration::days(365);
        let cert = params.self_signed(&key).expect("self-signed certificate");
        ClientIdentity {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pkcs8: key.serialize_der(),
        }
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

/// A server running in this process.
pub struct InProcessServer {
    pub addr: SocketAddr,
    /// Present when serving TLS: what the handshake line would announce.
    pub server_cert: Option<CertificateDer<'static>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl InProcessServer {
    /// Serves `provider` on 127.0.0.1:0; with `client`, over TLS pinned to
    /// that client's certificate, else plaintext.
    pub async fn start<P: Provider>(provider: Arc<P>, client: Option<&ClientIdentity>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let tls = client.map(|c| TlsSetup::new(&c.cert_pem).expect("TLS setup from PEM"));
        let server_cert = tls.as_ref().map(|t| t.server_cert_der().clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(provider, listener, tls, async move {
            let _ = rx.await;
        }));
        InProcessServer {
            addr,
            server_cert,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A channel as Terraform opens it: TLS with `client`'s certificate when
    /// the server speaks TLS.
    pub async fn connect(&self, client: Option<&ClientIdentity>) -> Result<Channel, String> {
        match &self.server_cert {
            Some(cert) => connect_tls(self.addr, cert.clone(), client).await,
            None => connect_plain(self.addr).await,
        }
    }

    /// Waits for `serve` to return on its own (after GRPCController.Shutdown).
    pub async fn stopped(&mut self) -> Result<(), ServeError> {
        let task = self.task.take().expect("server task awaited once");
        task.await.expect("server task did not panic")
    }

    /// Asks the server to stop through the caller's shutdown future.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.stopped().await
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A plaintext (h2c) channel.
pub async fn connect_plain(addr: SocketAddr) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(STEP_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

/// A TLS channel trusting exactly `server_cert` for the name "localhost",
/// presenting `client`'s certificate if given, offering ALPN h2: what
/// go-plugin's client does.
pub async fn connect_tls(
    addr: SocketAddr,
    server_cert: CertificateDer<'static>,
    client: Option<&ClientIdentity>,
) -> Result<Channel, String> {
    connect_tls_with_versions(addr, server_cert, client, rustls::DEFAULT_VERSIONS).await
}

/// `connect_tls` limited to the given TLS versions. Like grpc-go since 1.67
/// (Terraform 1.13 and later, OpenTofu), the connection fails unless the
/// server selects ALPN h2.
pub async fn connect_tls_with_versions(
    addr: SocketAddr,
    server_cert: CertificateDer<'static>,
    client: Option<&ClientIdentity>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Channel, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert).map_err(|e| e.to_string())?;
    let builder =
        rustls::ClientConfig::builder_with_provider(rdsrot::server::tls::crypto_provider())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
    let mut config = match client {
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert_der.clone()], c.key())
            .map_err(|e| e.to_string())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // The URI is only for HTTP/2's :authority; the connector dials `addr`.
    let endpoint = Endpoint::from_static("http://localhost").connect_timeout(STEP_TIMEOUT);
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("localhost").expect("valid DNS name");
                let tls = connector.connect(name, tcp).await?;
                if tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
                    return Err(std::io::Error::other("server did not select ALPN h2"));
                }
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| format!("{e:?}"))
}

/// A Provider client with the server's message limits.
pub fn provider_client(channel: Channel) -> ProviderClient<Channel> {
    ProviderClient::new(channel)
        .max_decoding_message_size(rdsrot::server::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(rdsrot::server::MAX_MESSAGE_SIZE)
}

pub fn controller_client(channel: Channel) -> GrpcControllerClient<Channel> {
    GrpcControllerClient::new(channel)
}
