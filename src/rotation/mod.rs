//! The `rdsrot_rotation` resource.

pub mod apply;
pub mod model;
pub mod parts;
pub mod plan;
pub mod private;
pub mod read;
pub mod schedule;
pub mod schema;
pub mod validate;
