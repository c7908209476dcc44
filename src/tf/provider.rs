//! The interface between the protocol server and a provider implementation.
//!
//! The server decodes each RPC against the schema, calls one of these
//! methods, and encodes the answer. Domain failures travel as diagnostics;
//! nothing here knows about gRPC.

use std::future::Future;

use super::diag::{Diagnostic, Diagnostics};
use super::function::{Function, FunctionError};
use super::path::AttributePath;
use super::schema::Schema;
use super::value::Value;

/// Everything `GetProviderSchema` returns.
#[derive(Debug, Clone)]
pub struct ProviderSchema {
    pub provider: Schema,
    /// Resource type name -> schema.
    pub resources: Vec<(String, Schema)>,
    /// Data source type name -> schema.
    pub data_sources: Vec<(String, Schema)>,
    /// Function name (without `provider::<name>::`) -> signature.
    pub functions: Vec<(String, Function)>,
}

impl ProviderSchema {
    pub fn resource(&self, type_name: &str) -> Option<&Schema> {
        self.resources
            .iter()
            .find(|(n, _)| n == type_name)
            .map(|(_, s)| s)
    }

    pub fn data_source(&self, type_name: &str) -> Option<&Schema> {
        self.data_sources
            .iter()
            .find(|(n, _)| n == type_name)
            .map(|(_, s)| s)
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f)
    }
}

/// State as stored, before upgrade: the JSON of the attributes written by
/// the schema at `version`.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    pub type_name: String,
    pub version: i64,
    /// Already decoded from `RawState.json` against the current schema type.
    pub raw_state: Value,
}

#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub type_name: String,
    pub current_state: Value,
    pub private: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct ReadResponse {
    /// `Value::Null` when the remote object is gone.
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub type_name: String,
    /// Null on create.
    pub prior_state: Value,
    /// Null on destroy.
    pub proposed_new_state: Value,
    /// Null on destroy.
    pub config: Value,
    pub prior_private: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanResponse {
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
    pub planned_private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub type_name: String,
    /// Null on create.
    pub prior_state: Value,
    /// Null on destroy.
    pub planned_state: Value,
    /// Null on destroy.
    pub config: Value,
    pub planned_private: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct ApplyResponse {
    /// Null after a destroy. After a failed step, the state of what exists.
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

#[derive(Debug, Clone)]
pub struct ImportedResource {
    pub type_name: String,
    pub state: Value,
    pub private: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportResponse {
    pub imported: Vec<ImportedResource>,
    pub diagnostics: Diagnostics,
}

#[derive(Debug, Clone)]
pub struct ReadDataSourceRequest {
    pub type_name: String,
    pub config: Value,
}

#[derive(Debug, Clone, Default)]
pub struct ReadDataSourceResponse {
    /// The configuration with every computed attribute filled in.
    pub state: Value,
    pub diagnostics: Diagnostics,
}

/// The answer of a part the schema lists but the provider does not serve:
/// a provider bug, so it says so rather than answering empty.
fn not_served(kind: &str, name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("{kind} not served"),
        format!("The provider lists the {kind} {name:?} in its schema but does not serve it. This is a bug in the provider."),
    )
}

/// A provider as the protocol server sees it. Every method that talks to a
/// remote system is async; validation and schema are pure.
pub trait Provider: Send + Sync + 'static {
    fn schema(&self) -> ProviderSchema;

    fn validate_provider_config(&self, config: &Value) -> Diagnostics;

    /// Builds clients; must not make network calls.
    fn configure(
        &self,
        terraform_version: &str,
        config: &Value,
    ) -> impl Future<Output = Diagnostics> + Send;

    fn validate_resource_config(&self, type_name: &str, config: &Value) -> Diagnostics;

    /// Returns the upgraded state (the current schema's shape).
    fn upgrade_resource_state(&self, req: UpgradeRequest) -> (Value, Diagnostics);

    fn read_resource(&self, req: ReadRequest) -> impl Future<Output = ReadResponse> + Send;

    fn plan_resource_change(&self, req: PlanRequest) -> impl Future<Output = PlanResponse> + Send;

    fn apply_resource_change(
        &self,
        req: ApplyRequest,
    ) -> impl Future<Output = ApplyResponse> + Send;

    fn import_resource_state(
        &self,
        type_name: &str,
        id: &str,
    ) -> impl Future<Output = ImportResponse> + Send;

    /// Called only for a data source type the schema lists.
    fn validate_data_resource_config(&self, type_name: &str, _config: &Value) -> Diagnostics {
        not_served("data source", type_name).into()
    }

    /// Called only for a data source type the schema lists.
    fn read_data_source(
        &self,
        req: ReadDataSourceRequest,
    ) -> impl Future<Output = ReadDataSourceResponse> + Send {
        let diagnostics = not_served("data source", &req.type_name).into();
        async move {
            ReadDataSourceResponse {
                state: Value::Null,
                diagnostics,
            }
        }
    }

    /// Called only for a function the schema lists, with one argument per
    /// parameter (and any number for a variadic one), each decoded against
    /// its parameter's type. Functions are pure: no configuration, no I/O.
    fn call_function(&self, name: &str, _arguments: &[Value]) -> Result<Value, FunctionError> {
        Err(FunctionError::new(not_served("function", name).detail))
    }

    /// Terraform's StopProvider: cancel in-flight work promptly. Must not block.
    fn stop(&self);
}
