//! `terraform-provider-rdsrot`: the Terraform resource `rdsrot_rotation`,
//! that turns on Secrets Manager rotation for an RDS database secret, and
//! provider functions for its arithmetic and templates.
//!
//! # Layout
//! - `tf`: the plugin protocol model (values, types, schemas, diagnostics)
//!   and the `Provider` trait. Knows nothing of gRPC or AWS.
//! - `server`: the go-plugin handshake, AutoMTLS, the go-plugin services and
//!   the tfplugin6 gRPC service, which decodes requests into `tf` types and
//!   calls a `tf::Provider`. Knows nothing of AWS.
//! - `logging`: hclog-style JSON lines on stderr.
//! - `provider`: the rdsrot provider: its schema, configuration and AWS clients.
//! - `parts`: the trait each resource, data source and function implements,
//!   the one list that registers them, and the routing of each RPC to them.
//! - `aws`: one small module per AWS service (find, create, wait, delete),
//!   error classification and bounded retries.
//! - `rotation`: the `rdsrot_rotation` resource: schema, typed model, pure
//!   validation and planning, the apply, read, import and delete steps,
//!   and the RPC glue around them (`rotation::resource`).
//! - `functions`: the provider functions, one module each.

pub mod aws;
pub mod functions;
pub mod logging;
pub mod parts;
pub mod provider;
pub mod rotation;
pub mod server;
pub mod status;
pub mod tf;
