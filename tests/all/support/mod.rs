//! Shared test helpers.

pub mod grpc;
