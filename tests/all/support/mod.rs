//! Shared test helpers.
//! - `grpc`: a client that dials the in-process server as Terraform does.
//! - `moto`: the local AWS emulator (one per test) and AWS fixtures.
//! - `terraform`: the Terraform clients, their CLI configuration and runs.

pub mod grpc;
pub mod moto;
