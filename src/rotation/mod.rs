//! The `rdsrot_rotation` resource.

pub mod model;
pub mod schedule;
pub mod schema;
pub mod validate;
