//! The services a go-plugin host expects next to the provider itself.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::proto::health::health_check_response::ServingStatus;
use super::proto::health::health_server::{Health, HealthServer};
use super::proto::health::{HealthCheckRequest, HealthCheckResponse};
use super::proto::plugin::grpc_broker_server::{GrpcBroker, GrpcBrokerServer};
use super::proto::plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use super::proto::plugin::grpc_stdio_server::{GrpcStdio, GrpcStdioServer};
use super::proto::plugin::{ConnInfo, Empty, StdioData};
use crate::logging;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A stream that yields nothing and ends when the server stops, so that an
/// open stream never holds up shutdown.
fn silent_until_stopped<T: Send + 'static>(stop: CancellationToken) -> BoxStream<T> {
    Box::pin(
        futures::stream::once(async move {
            stop.cancelled_owned().await;
        })
        .filter_map(|()| async { None }),
    )
}

/// `GRPCController.Shutdown`: Terraform is done with this process.
pub struct Controller {
    stop: CancellationToken,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        logging::debug("server", "shutdown requested by the host");
        // Answer first: the server stops once this call has been sent.
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            stop.cancel();
        });
        Ok(Response::new(Empty {}))
    }
}

pub fn controller_server(stop: CancellationToken) -> GrpcControllerServer<Controller> {
    GrpcControllerServer::new(Controller { stop })
}

/// `GRPCStdio.StreamStdio`. Nothing in this process writes to stdout after
/// the handshake and logs go to stderr directly, so there is nothing to
/// forward: the stream stays open and silent until shutdown.
pub struct Stdio {
    stop: CancellationToken,
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<BoxStream<StdioData>>, Status> {
        Ok(Response::new(silent_until_stopped(self.stop.clone())))
    }
}

pub fn stdio_server(stop: CancellationToken) -> GrpcStdioServer<Stdio> {
    GrpcStdioServer::new(Stdio { stop })
}

/// `GRPCBroker.StartStream`. Terraform opens it but never brokers a
/// connection; announcements are read and ignored.
pub struct Broker {
    stop: CancellationToken,
}

#[tonic::async_trait]
impl GrpcBroker for Broker {
    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<BoxStream<ConnInfo>>, Status> {
        let mut inbound = request.into_inner();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    message = inbound.message() => match message {
                        Ok(Some(info)) => logging::debug(
                            "server",
                            &format!("broker announcement for service {} ignored", info.service_id),
                        ),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
        });
        Ok(Response::new(silent_until_stopped(self.stop.clone())))
    }
}

pub fn broker_server(stop: CancellationToken) -> GrpcBrokerServer<Broker> {
    GrpcBrokerServer::new(Broker { stop })
}

/// `grpc.health.v1.Health`: service "plugin" (and the server as a whole,
/// the empty name) is SERVING, as go-plugin reports it.
pub struct HealthService {
    stop: CancellationToken,
}

fn status_of(service: &str) -> Option<ServingStatus> {
    match service {
        "" | "plugin" => Some(ServingStatus::Serving),
        _ => None,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match status_of(&service) {
            Some(status) => Ok(Response::new(HealthCheckResponse {
                status: status as i32,
            })),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<BoxStream<HealthCheckResponse>>, Status> {
        let status =
            status_of(&request.into_inner().service).unwrap_or(ServingStatus::ServiceUnknown);
        let first = futures::stream::once(async move {
            Ok(HealthCheckResponse {
                status: status as i32,
            })
        });
        Ok(Response::new(Box::pin(
            first.chain(silent_until_stopped(self.stop.clone())),
        )))
    }
}

pub fn health_server(stop: CancellationToken) -> HealthServer<HealthService> {
    HealthServer::new(HealthService { stop })
}
