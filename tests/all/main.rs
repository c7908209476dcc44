//! The one integration test binary. Modules:
//! - `support`: shared helpers (the local AWS emulator, the Terraform runner).
//! - `protocol`: the in-process gRPC server driven as Terraform drives it.
//! - `lifecycle`: the rotation resource against the local AWS emulator.
//! - `e2e`: the built provider binary driven by real Terraform.
//! - `chaos`: a mixed fleet through real Terraform under faults, Ctrl-C and a
//!   killed provider (`make chaos` for random rounds).
//! - `configs`: configurations as users write them (for_each, nulls,
//!   common mistakes), also through real Terraform.
//! - `under_load`: the emulator's faults, quotas and limits as the AWS SDK sees them.
//! - `functions`: the provider functions through Terraform 1.8 and later.
//! - `terraform_test`: `terraform test` on the example module, mocked and against the emulator.
//! - `status`: the `rdsrot_rotation_status` data source, in process and
//!   through Terraform with the CI drift-detection script.

mod chaos;
mod configs;
mod e2e;
mod functions;
mod lifecycle;
mod protocol;
mod status;
mod support;
mod terraform_test;
mod under_load;
