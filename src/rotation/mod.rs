//! The `rdsrot_rotation` resource, free of gRPC.
//!
//! - `schema` and `model`: the typed value;
//! - `validate` and `schedule`: pure plan-time checks; `plan`: pure planning;
//!   `plan_checks`: read-only look-ups at plan time; `preflight`: the check of
//!   the secret's JSON, at plan and before apply's first step; `master_key`:
//!   the master secret's KMS key, at plan;
//! - `private`: what the provider made, for undoing it;
//! - one module per AWS part, each with what apply, read and destroy do to
//!   it: `secret` (the secret and its rotation schedule), `stack` (the
//!   template's stack), `permission` (the invoke permission),
//!   `master_policy` (the master-secret policy) and `vpc` (the Lambda's VPC
//!   placement);
//! - `verify`: waiting for the rotation an apply started, and explaining
//!   one that failed from the function's own log;
//! - `template`: the rotation templates, one row per `rotation_type`;
//! - `apply`: the order of the steps; `read`: drift detection and import;
//! - `resource`: the resource as the provider serves it (the RPC glue).

pub mod adopt;
pub mod apply;
pub mod master_key;
pub mod master_policy;
pub mod model;
pub mod permission;
pub mod plan;
pub mod plan_checks;
pub mod preflight;
pub mod private;
pub mod read;
pub mod resource;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod stack;
pub mod template;
pub mod validate;
pub mod verify;
pub mod vpc;
