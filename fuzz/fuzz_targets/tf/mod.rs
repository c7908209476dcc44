//! The provider's value codec, compiled straight from its sources.
//!
//! Depending on the provider crate would build every AWS SDK crate with
//! coverage instrumentation (many minutes) for code the fuzzer never reaches;
//! these files depend only on `serde_json` and `thiserror`.

#![allow(dead_code)]

#[path = "../../../src/tf/codec.rs"]
mod codec;
#[path = "../../../src/tf/json.rs"]
pub mod json;
#[path = "../../../src/tf/msgpack.rs"]
pub mod msgpack;
#[path = "../../../src/tf/schema.rs"]
pub mod schema;
#[path = "../../../src/tf/types.rs"]
pub mod types;
#[path = "../../../src/tf/value.rs"]
pub mod value;

// What `src/rotation/schema.rs` imports from `crate::tf`.
pub use schema::{Attribute, Block, NestedBlock, Nesting, Schema};
pub use types::Type;
