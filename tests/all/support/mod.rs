//! Shared test helpers.
//! - `moto`: the local AWS emulator (one per test) and AWS fixtures.
//! - `terraform`: the Terraform clients, their CLI configuration and runs.

pub mod moto;
pub mod terraform;
