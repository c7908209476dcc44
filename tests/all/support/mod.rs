//! Shared test helpers.
//! - `databases`: real PostgreSQL and MariaDB servers on 127.0.0.1 (shared
//!   by the process) and what tests do with their users.
//! - `engines`: database secrets in the format of each rotation template.
//! - `faults`: fault rules and quota scale of the emulator's under-load layer.
//! - `grpc`: a client that dials the in-process server as Terraform does.
//! - `moto`: the local AWS emulator (one per test) and AWS fixtures.
//! - `observe`: what AWS holds for a rotation, and the drift cases every
//!   suite inflicts the same way.
//! - `terraform`: the Terraform clients, their CLI configuration and runs.

pub mod databases;
pub mod engines;
pub mod faults;
pub mod grpc;
pub mod moto;
pub mod observe;
pub mod terraform;
