//! The `rdsrot_rotation` resource, free of gRPC: `schema` and `model` (the
//! typed value), `validate` and `schedule` (pure plan-time checks), `plan`
//! (pure planning), `plan_checks` (read-only look-ups at plan time), `private` (what the provider made, for undoing it),
//! `apply` (create/update/delete steps in order), `read` (drift detection
//! and import) and `parts` (names and documents shared by those steps).

pub mod apply;
pub mod model;
pub mod parts;
pub mod plan;
pub mod plan_checks;
pub mod private;
pub mod read;
pub mod schedule;
pub mod schema;
pub mod validate;
