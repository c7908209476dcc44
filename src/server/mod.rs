//! The plugin server: everything between Terraform and a `tf::Provider`.
//!
//! - `handshake`: what go-plugin expects of a plugin process (magic cookie,
//!   protocol version, port range, the one stdout line, debug mode).
//! - `tls`: AutoMTLS: a fresh server certificate and a verifier that accepts
//!   exactly the client certificate Terraform passed in.
//! - `plugin_services`: go-plugin's controller, stdio, broker and health
//!   services.
//! - `grpc`: the tfplugin6 `Provider` service: decode, call, encode.
//! - `convert`: pure conversions between protobuf messages and `tf` types.
//!
//! `serve` runs the server on a listener the caller provides, so tests can
//! run it in-process on port 0; `run_plugin` is the whole plugin process.
//! Nothing here knows about AWS.

pub mod convert;
pub mod grpc;
pub mod handshake;
pub mod plugin_services;
pub mod tls;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::logging;
use crate::tf::Provider;

pub use handshake::run_plugin;
pub use tls::TlsSetup;

/// Code generated from `proto/`, public so tests can act as Terraform.
pub mod proto {
    /// Terraform's provider protocol 6.10.
    #[allow(clippy::all, clippy::unwrap_used)]
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    /// go-plugin's controller, stdio and broker services.
    #[allow(clippy::all, clippy::unwrap_used)]
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
    /// The standard gRPC health service.
    #[allow(clippy::all, clippy::unwrap_used)]
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}

/// Largest message either way, as Terraform's own Go SDK allows: a state
/// or schema over tonic's 4 MiB default must not fail.
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

/// How long a client may take over its TLS handshake before it is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `serve` waits, once shutdown is asked for, for open calls and
/// streams to finish before it returns anyway. Terraform kills a plugin
/// that has not exited two seconds after `GRPCController.Shutdown`.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the provider and go-plugin's services on `listener` until
/// `shutdown` completes or a client calls `GRPCController.Shutdown`.
///
/// With `tls`, every connection must complete a TLS handshake presenting the
/// pinned client certificate; a failed handshake drops that connection only.
/// Without it, the server speaks plaintext HTTP/2 (h2c).
pub async fn serve<P: Provider>(
    provider: Arc<P>,
    listener: TcpListener,
    tls: Option<TlsSetup>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let stop = CancellationToken::new();

    let (conn_tx, conn_rx) = tokio::sync::mpsc::channel::<io::Result<PluginStream>>(16);
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config()));
    let accept_loop = tokio::spawn(accept_connections(
        listener,
        acceptor,
        conn_tx,
        stop.clone(),
    ));

    let router = tonic::transport::Server::builder()
        .add_service(grpc::provider_server(provider))
        .add_service(plugin_services::controller_server(stop.clone()))
        .add_service(plugin_services::stdio_server(stop.clone()))
        .add_service(plugin_services::broker_server(stop.clone()))
        .add_service(plugin_services::health_server(stop.clone()));

    let incoming = tokio_stream::wrappers::ReceiverStream::new(conn_rx);
    let stop_for_server = stop.clone();
    let served = router.serve_with_incoming_shutdown(incoming, async move {
        stop_for_server.cancelled().await;
    });
    tokio::pin!(served);

    let shutdown_requested = stop.clone();
    let result = tokio::select! {
        result = &mut served => result.map_err(ServeError::from),
        _ = shutdown => {
            stop.cancel();
            finish_within_grace(served).await
        }
        _ = shutdown_requested.cancelled() => finish_within_grace(served).await,
    };
    stop.cancel();
    accept_loop.abort();
    logging::debug("server", "stopped serving");
    result
}

/// Lets a shutting-down server finish its open calls, but not for long.
async fn finish_within_grace(
    served: Pin<&mut impl Future<Output = Result<(), tonic::transport::Error>>>,
) -> Result<(), ServeError> {
    match tokio::time::timeout(SHUTDOWN_GRACE, served).await {
        Ok(result) => result.map_err(ServeError::from),
        Err(_elapsed) => {
            logging::debug("server", "connections still open at shutdown; closing them");
            Ok(())
        }
    }
}

/// Accepts TCP connections, runs the TLS handshake for each (concurrently,
/// so one slow or hostile client holds up no one), and passes the
/// connections that made it on to the gRPC server.
async fn accept_connections(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    connections: tokio::sync::mpsc::Sender<io::Result<PluginStream>>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Usually a transient resource limit: pause instead of spinning.
                logging::warn("server", &format!("accepting a connection: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // gRPC sends many small frames; Nagle's delay would slow every call.
        if let Err(e) = tcp.set_nodelay(true) {
            logging::debug("server", &format!("setting TCP_NODELAY: {e}"));
        }
        match &acceptor {
            None => {
                if connections
                    .send(Ok(PluginStream::Plain(tcp)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let connections = connections.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = connections.send(Ok(PluginStream::Tls(Box::new(tls)))).await;
                        }
                        Ok(Err(e)) => logging::log(
                            logging::Level::Warn,
                            "server",
                            "refused a connection: TLS handshake failed",
                            &[("peer", &peer.to_string()), ("error", &e.to_string())],
                        ),
                        Err(_elapsed) => logging::log(
                            logging::Level::Warn,
                            "server",
                            "refused a connection: TLS handshake timed out",
                            &[("peer", &peer.to_string())],
                        ),
                    }
                });
            }
        }
    }
}

/// One accepted connection, with or without TLS.
pub enum PluginStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for PluginStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let tcp = match self {
            PluginStream::Plain(tcp) => tcp,
            PluginStream::Tls(tls) => tls.get_ref().0,
        };
        tcp.connect_info()
    }
}

impl AsyncRead for PluginStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PluginStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PluginStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PluginStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PluginStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PluginStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PluginStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PluginStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            PluginStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            PluginStream::Plain(s) => s.is_write_vectored(),
            PluginStream::Tls(s) => s.is_write_vectored(),
        }
    }
}
