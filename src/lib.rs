//! `terraform-provider-rdsrot`: one Terraform resource, `rdsrot_rotation`,
//! that turns on Secrets Manager rotation for an RDS database secret.
//!
//! # Layout
//! - `tf`: the plugin protocol model (values, types, schemas, diagnostics)
//!   and the `Provider` trait. Knows nothing of gRPC or AWS.
//! - `server`: the go-plugin handshake, AutoMTLS, the go-plugin services and
//!   the tfplugin6 gRPC service, which decodes requests into `tf` types and
//!   calls a `tf::Provider`. Knows nothing of AWS.
//! - `logging`: hclog-style JSON lines on stderr.
//! - `provider`: the rdsrot provider: its schema, configuration and AWS clients.
//! - `aws`: one small module per AWS service (find, create, wait, delete),
//!   error classification and bounded retries.
//! - `rotation`: the `rdsrot_rotation` resource: schema, typed model, pure
//!   validation and planning, and the apply, read, import and delete steps.

pub mod aws;
pub mod logging;
pub mod provider;
pub mod rotation;
pub mod server;
pub mod tf;
