//! The protocol model: what Terraform exchanges with a provider, free of gRPC.
//!
//! The server layer converts generated protobuf messages into these types and
//! back; everything above it (the provider and its resources) sees only these.

mod codec;
pub mod diag;
pub mod function;
pub mod json;
pub mod msgpack;
pub mod path;
pub mod provider;
pub mod schema;
#[cfg(test)]
pub(crate) mod testgen;
pub mod types;
pub mod value;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use function::{Function, FunctionError, Parameter};
pub use path::{AttributePath, PathStep};
pub use provider::*;
pub use schema::{Attribute, Block, NestedBlock, Nesting, Schema};
pub use types::Type;
pub use value::{Number, Value};
