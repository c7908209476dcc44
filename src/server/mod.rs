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
//! `serve` runs the server on a listener the caller provides (TCP, or a
//! Unix socket), so tests can run it in-process on port 0; `run_plugin` is
//! the whole plugin process.
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
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// Most connections open at once, TLS handshakes in progress included.
/// Terraform opens one per provider process (a handful at most, with
/// retries), so this leaves room while bounding what another local user
/// can make the process hold: each unfinished handshake is a task, a
/// socket and rustls state for up to `TLS_HANDSHAKE_TIMEOUT`. Beyond it,
/// new connections wait in the kernel's backlog until one closes.
pub const MAX_CONNECTIONS: usize = 16;

/// How long `serve` waits, once shutdown is asked for, for open calls and
/// streams to finish before it returns anyway. Terraform kills a plugin
/// that has not exited two seconds after `GRPCController.Shutdown`.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Where the server accepts connections.
pub enum PluginListener {
    /// 127.0.0.1: with mutual TLS, or where Unix sockets do not exist.
    Tcp(TcpListener),
    /// A socket file only its owner may open: go-plugin's transport, and
    /// ours whenever TLS is off.
    #[cfg(unix)]
    Unix(UnixListener),
}

impl From<TcpListener> for PluginListener {
    fn from(listener: TcpListener) -> Self {
        PluginListener::Tcp(listener)
    }
}

#[cfg(unix)]
impl From<UnixListener> for PluginListener {
    fn from(listener: UnixListener) -> Self {
        PluginListener::Unix(listener)
    }
}

impl PluginListener {
    /// The next connection, and how to name its peer in a log line.
    async fn accept(&self) -> io::Result<(Connection, String)> {
        match self {
            PluginListener::Tcp(listener) => {
                let (tcp, peer) = listener.accept().await?;
                // gRPC sends many small frames; Nagle's delay would slow every call.
                if let Err(e) = tcp.set_nodelay(true) {
                    logging::debug("server", &format!("setting TCP_NODELAY: {e}"));
                }
                Ok((Connection::Tcp(tcp), peer.to_string()))
            }
            #[cfg(unix)]
            PluginListener::Unix(listener) => {
                let (unix, _) = listener.accept().await?;
                Ok((Connection::Unix(unix), "the Unix socket".to_string()))
            }
        }
    }
}

/// Serves the provider and go-plugin's services on `listener` until
/// `shutdown` completes or a client calls `GRPCController.Shutdown`.
///
/// With `tls`, every connection must complete a TLS handshake presenting the
/// pinned client certificate; a failed handshake drops that connection only.
/// Without it, the server speaks plaintext HTTP/2 (h2c). At most
/// `MAX_CONNECTIONS` connections are open at once.
pub async fn serve<P: Provider>(
    provider: Arc<P>,
    listener: impl Into<PluginListener>,
    tls: Option<TlsSetup>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let stop = CancellationToken::new();

    let (conn_tx, conn_rx) = tokio::sync::mpsc::channel::<io::Result<PluginStream>>(16);
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config()));
    let accept_loop = tokio::spawn(accept_connections(
        listener.into(),
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

/// Accepts connections, runs the TLS handshake for each (concurrently, so
/// one slow or hostile client holds up no one), and passes the connections
/// that made it on to the gRPC server.
async fn accept_connections(
    listener: PluginListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    connections: tokio::sync::mpsc::Sender<io::Result<PluginStream>>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A slot first: while all are taken, nothing more is accepted.
        let slot = tokio::select! {
            _ = stop.cancelled() => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => return,
            },
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (conn, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Usually a transient resource limit: pause instead of spinning.
                logging::warn("server", &format!("accepting a connection: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match &acceptor {
            None => {
                let stream = PluginStream {
                    io: Transport::Plain(conn),
                    _slot: slot,
                };
                if connections.send(Ok(stream)).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let connections = connections.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                        Ok(Ok(tls)) => {
                            let stream = PluginStream {
                                io: Transport::Tls(Box::new(tls)),
                                _slot: slot,
                            };
                            let _ = connections.send(Ok(stream)).await;
                        }
                        Ok(Err(e)) => logging::log(
                            logging::Level::Warn,
                            "server",
                            "refused a connection: TLS handshake failed",
                            &[("peer", &peer), ("error", &e.to_string())],
                        ),
                        Err(_elapsed) => logging::log(
                            logging::Level::Warn,
                            "server",
                            "refused a connection: TLS handshake timed out",
                            &[("peer", &peer)],
                        ),
                    }
                });
            }
        }
    }
}

/// One accepted connection, holding its slot among `MAX_CONNECTIONS` until
/// it is dropped.
pub struct PluginStream {
    io: Transport,
    _slot: OwnedSemaphorePermit,
}

enum Transport {
    Plain(Connection),
    Tls(Box<tokio_rustls::server::TlsStream<Connection>>),
}

/// The socket under a connection, before any TLS.
pub enum Connection {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl tonic::transport::server::Connected for PluginStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let conn = match &self.io {
            Transport::Plain(conn) => conn,
            Transport::Tls(tls) => tls.get_ref().0,
        };
        match conn {
            Connection::Tcp(tcp) => tcp.connect_info(),
            // A Unix peer has no address worth reporting.
            #[cfg(unix)]
            Connection::Unix(_) => tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: None,
            },
        }
    }
}

/// Forwards one `AsyncRead`/`AsyncWrite` call to whichever stream `$self`
/// holds; the arms differ only in type.
macro_rules! forward {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            Connection::Tcp($s) => $call,
            #[cfg(unix)]
            Connection::Unix($s) => $call,
        }
    };
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        forward!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        forward!(self, s => s.is_write_vectored())
    }
}

impl AsyncRead for PluginStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PluginStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }
}
