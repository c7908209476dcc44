//! The one integration test binary. Modules:
//! - `support`: shared helpers (the local AWS emulator, the Terraform runner).
//! - `protocol`: the in-process gRPC server driven as Terraform drives it.
//! - `lifecycle`: the rotation resource against the local AWS emulator.
//! - `sharing`: secrets sharing one existing Lambda, in process.
//! - `preflight`: the pre-flight check of the secret's JSON, in process.
//! - `e2e`: the built provider binary driven by real Terraform.
//! - `chaos`: a mixed fleet through real Terraform under faults, Ctrl-C and a
//!   killed provider (`make chaos` for random rounds).
//! - `configs`: configurations as users write them (for_each, nulls,
//!   common mistakes), also through real Terraform.
//! - `databases`: the real PostgreSQL and MariaDB servers tests sign in to.
//! - `under_load`: the emulator's faults, quotas and limits as the AWS SDK sees them.
//! - `emulator_runtime`: the emulator runs functions' code, rotations in the
//!   background and IAM on the functions' calls, as AWS does.
//! - `functions`: the provider functions through Terraform 1.8 and later.
//! - `terraform_test`: `terraform test` on the example module, mocked and against the emulator.
//! - `status`: the `rdsrot_rotation_status` data source, in process and
//!   through Terraform with the CI drift-detection script.
//! - `rotations`: passwords really rotate on the real databases through
//!   Terraform, and a failed first rotation fails the apply and recovers.
//! - `user_mistakes`: mistakes users make (a deleted secret, values refused at
//!   validate or plan, `secret_id` between name and ARN), through real Terraform.
//! - `adoption`: rotations set up outside the provider (the guide's CLI
//!   steps) imported and taken over, through real Terraform.
//! - `documented_policy`: the IAM policy of `docs/index.md`, held to as AWS
//!   would, is enough for the whole lifecycle and no statement is spare; the
//!   rotation functions' roles get only what a rotation needs.
//! - `invoke_scope`: who can make the rotation Lambda act and with which
//!   credentials (invoke statements, the account scope with a master secret),
//!   and template parameters changed behind Terraform's back, through real
//!   Terraform.
//! - `ownership`: what each rotation instance owns: a replacement created
//!   before the old instance is destroyed, destroy removing only its own.
//! - `release`: `scripts/release.sh`, the release workflow, and the release's
//!   zip as a filesystem mirror for both Terraform clients.

mod adoption;
mod chaos;
mod configs;
mod databases;
mod documented_policy;
mod e2e;
mod emulator_runtime;
mod functions;
mod invoke_scope;
mod lifecycle;
mod ownership;
mod preflight;
mod protocol;
mod release;
mod rotations;
mod sharing;
mod status;
mod support;
mod terraform_test;
mod under_load;
mod user_mistakes;
