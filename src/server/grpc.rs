//! The tfplugin6 `Provider` gRPC service over any `tf::Provider`.
//!
//! Every handler has the same shape: decode the request's values against
//! the schema, call the provider, encode the answer. Problems with the
//! request or the provider's answer travel as diagnostics in an OK
//! response; a gRPC error status would mean broken plumbing, and Terraform
//! shows those far less helpfully.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{
    decode_raw_state, decode_value, diagnostics_to_proto, encode_value, function_error_to_proto,
    function_to_proto, null_value, path_to_proto, schema_to_proto, SchemaIndex,
};
use super::proto::tfplugin6 as pb;
use super::proto::tfplugin6::provider_server::{Provider as ProviderRpc, ProviderServer};
use super::MAX_MESSAGE_SIZE;
use crate::logging;
use crate::tf::{
    ApplyRequest, Diagnostic, Diagnostics, FunctionError, PlanRequest, Provider, ProviderSchema,
    ReadDataSourceRequest, ReadRequest, Type, UpgradeRequest, Value,
};

/// The gRPC service for `provider`, with message limits raised to 256 MiB.
pub fn provider_server<P: Provider>(provider: Arc<P>) -> ProviderServer<ProviderService<P>> {
    ProviderServer::new(ProviderService::new(provider))
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

pub struct ProviderService<P> {
    provider: Arc<P>,
    /// The schema is fixed for the life of the process: read it once.
    schema: ProviderSchema,
    index: SchemaIndex,
}

impl<P: Provider> ProviderService<P> {
    pub fn new(provider: Arc<P>) -> Self {
        let schema = provider.schema();
        let index = SchemaIndex::new(&schema);
        ProviderService {
            provider,
            schema,
            index,
        }
    }
}

fn server_capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        // Destroys are planned too, so the provider sees them before apply.
        plan_destroy: true,
        // The schema never depends on anything but the binary.
        get_provider_schema_optional: true,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

fn trace_rpc(rpc: &str, type_name: &str) {
    if logging::enabled(logging::Level::Trace) {
        logging::log(
            logging::Level::Trace,
            "server",
            "received RPC",
            &[("rpc", rpc), ("type_name", type_name)],
        );
    }
}

/// Decodes each of a request's values, named by `what`, against `ty`. Every
/// value that fails is reported, and the provider is called only when all
/// decoded.
fn decode_all<const N: usize>(
    ty: &Type,
    values: [(Option<&pb::DynamicValue>, &str); N],
) -> Result<[Value; N], Diagnostics> {
    let mut diagnostics = Diagnostics::new();
    let decoded = values.map(|(dv, what)| {
        decode_value(dv, ty, what).unwrap_or_else(|d| {
            diagnostics.push(d);
            Value::Null
        })
    });
    if diagnostics.has_errors() {
        Err(diagnostics)
    } else {
        Ok(decoded)
    }
}

/// Encodes a value of the provider's answer. One that does not fit the
/// schema is a provider bug: it becomes a diagnostic and an absent value.
fn encode_answer(
    value: &Value,
    ty: &Type,
    what: &str,
    diagnostics: &mut Diagnostics,
) -> Option<pb::DynamicValue> {
    encode_value(value, ty, what)
        .map_err(|d| diagnostics.push(d))
        .ok()
}

impl<P> ProviderService<P> {
    /// The value type of the resource `type_name` and the request's values
    /// decoded against it, or the diagnostics that end the call.
    fn decode_resource_request<const N: usize>(
        &self,
        type_name: &str,
        values: [(Option<&pb::DynamicValue>, &str); N],
    ) -> Result<(&Type, [Value; N]), Diagnostics> {
        let entry = self.index.resource(type_name)?;
        Ok((&entry.ty, decode_all(&entry.ty, values)?))
    }

    /// The same for the data source `type_name`.
    fn decode_data_source_request<const N: usize>(
        &self,
        type_name: &str,
        values: [(Option<&pb::DynamicValue>, &str); N],
    ) -> Result<(&Type, [Value; N]), Diagnostics> {
        let entry = self.index.data_source(type_name)?;
        Ok((&entry.ty, decode_all(&entry.ty, values)?))
    }

    /// The arguments of a call to `name`, each decoded against its
    /// parameter's type; a missing, extra or undecodable argument is an
    /// error naming it.
    fn decode_arguments(
        &self,
        name: &str,
        arguments: &[pb::DynamicValue],
    ) -> Result<(&Type, Vec<Value>), FunctionError> {
        let function = self.index.function(name)?;
        let required = function.parameters.len();
        if arguments.len() < required
            || (function.variadic_parameter.is_none() && arguments.len() > required)
        {
            return Err(FunctionError::new(format!(
                "{name} takes {required} arguments; the call passed {}.",
                arguments.len()
            )));
        }
        let mut values = Vec::with_capacity(arguments.len());
        for (index, argument) in arguments.iter().enumerate() {
            let Some(parameter) = function.parameter_at(index) else {
                break;
            };
            let what = format!("argument {}", parameter.name);
            let value = decode_value(Some(argument), &parameter.ty, &what)
                .map_err(|d| FunctionError::argument(index, d.detail))?;
            values.push(value);
        }
        Ok((&function.return_type, values))
    }
}

impl<P> ProviderService<P> {
    fn functions_to_proto(&self) -> std::collections::HashMap<String, pb::Function> {
        self.schema
            .functions
            .iter()
            .map(|(name, function)| (name.clone(), function_to_proto(function)))
            .collect()
    }
}

#[tonic::async_trait]
impl<P: Provider> ProviderRpc for ProviderService<P> {
    async fn get_metadata(
        &self,
        _request: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        trace_rpc("GetMetadata", "");
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(server_capabilities()),
            resources: self
                .schema
                .resources
                .iter()
                .map(|(name, _)| pb::get_metadata::ResourceMetadata {
                    type_name: name.clone(),
                })
                .collect(),
            data_sources: self
                .schema
                .data_sources
                .iter()
                .map(|(name, _)| pb::get_metadata::DataSourceMetadata {
                    type_name: name.clone(),
                })
                .collect(),
            functions: self
                .schema
                .functions
                .iter()
                .map(|(name, _)| pb::get_metadata::FunctionMetadata { name: name.clone() })
                .collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        trace_rpc("GetProviderSchema", "");
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(schema_to_proto(&self.schema.provider)),
            resource_schemas: self
                .schema
                .resources
                .iter()
                .map(|(name, schema)| (name.clone(), schema_to_proto(schema)))
                .collect(),
            data_source_schemas: self
                .schema
                .data_sources
                .iter()
                .map(|(name, schema)| (name.clone(), schema_to_proto(schema)))
                .collect(),
            functions: self.functions_to_proto(),
            server_capabilities: Some(server_capabilities()),
            ..Default::default()
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        trace_rpc("ValidateProviderConfig", "");
        let req = request.into_inner();
        let diagnostics = match decode_all(
            &self.index.provider_type,
            [(req.config.as_ref(), "configuration")],
        ) {
            Ok([config]) => self.provider.validate_provider_config(&config),
            Err(diagnostics) => diagnostics,
        };
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: diagnostics_to_proto(&diagnostics),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("ValidateResourceConfig", &req.type_name);
        let diagnostics = match self
            .decode_resource_request(&req.type_name, [(req.config.as_ref(), "configuration")])
        {
            Ok((_, [config])) => self
                .provider
                .validate_resource_config(&req.type_name, &config),
            Err(diagnostics) => diagnostics,
        };
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: diagnostics_to_proto(&diagnostics),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("ValidateDataResourceConfig", &req.type_name);
        let diagnostics = match self
            .decode_data_source_request(&req.type_name, [(req.config.as_ref(), "configuration")])
        {
            Ok((_, [config])) => self
                .provider
                .validate_data_resource_config(&req.type_name, &config),
            Err(diagnostics) => diagnostics,
        };
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: diagnostics_to_proto(&diagnostics),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("UpgradeResourceState", &req.type_name);
        let entry = match self.index.resource(&req.type_name) {
            Ok(entry) => entry,
            Err(d) => {
                return Ok(Response::new(pb::upgrade_resource_state::Response {
                    // Always set: an unset value would read as null state.
                    upgraded_state: Some(null_value()),
                    diagnostics: diagnostics_to_proto(&d.into()),
                }));
            }
        };
        let (upgraded, mut diagnostics) = match decode_raw_state(req.raw_state.as_ref(), &entry.ty)
        {
            Ok(raw_state) => self.provider.upgrade_resource_state(UpgradeRequest {
                type_name: req.type_name.clone(),
                version: req.version,
                raw_state,
            }),
            Err(d) => (Value::Null, d.into()),
        };
        // Always set: an unset value would read as null state.
        let upgraded_state =
            encode_answer(&upgraded, &entry.ty, "upgraded state", &mut diagnostics)
                .unwrap_or_else(null_value);
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: Some(upgraded_state),
            diagnostics: diagnostics_to_proto(&diagnostics),
        }))
    }

    async fn get_resource_identity_schemas(
        &self,
        _request: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Result<Response<pb::get_resource_identity_schemas::Response>, Status> {
        trace_rpc("GetResourceIdentitySchemas", "");
        // No resource here has an identity schema.
        Ok(Response::new(
            pb::get_resource_identity_schemas::Response::default(),
        ))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        trace_rpc("ConfigureProvider", "");
        let req = request.into_inner();
        let diagnostics = match decode_all(
            &self.index.provider_type,
            [(req.config.as_ref(), "configuration")],
        ) {
            Ok([config]) => {
                self.provider
                    .configure(&req.terraform_version, &config)
                    .await
            }
            Err(diagnostics) => diagnostics,
        };
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: diagnostics_to_proto(&diagnostics),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("ReadResource", &req.type_name);
        let decoded = self.decode_resource_request(
            &req.type_name,
            [(req.current_state.as_ref(), "current state")],
        );
        let (ty, [current_state]) = match decoded {
            Ok(decoded) => decoded,
            // Nothing was read: the state stays as it was.
            Err(diagnostics) => {
                return Ok(Response::new(pb::read_resource::Response {
                    new_state: req.current_state,
                    diagnostics: diagnostics_to_proto(&diagnostics),
                    private: req.private,
                    ..Default::default()
                }))
            }
        };
        let answer = self
            .provider
            .read_resource(ReadRequest {
                type_name: req.type_name,
                current_state,
                private: req.private,
            })
            .await;
        let mut diagnostics = answer.diagnostics;
        let new_state = encode_answer(&answer.new_state, ty, "new state", &mut diagnostics);
        Ok(Response::new(pb::read_resource::Response {
            new_state,
            diagnostics: diagnostics_to_proto(&diagnostics),
            private: answer.private,
            ..Default::default()
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("PlanResourceChange", &req.type_name);
        let decoded = self.decode_resource_request(
            &req.type_name,
            [
                (req.prior_state.as_ref(), "prior state"),
                (req.proposed_new_state.as_ref(), "proposed new state"),
                (req.config.as_ref(), "configuration"),
            ],
        );
        let (ty, [prior_state, proposed_new_state, config]) = match decoded {
            Ok(decoded) => decoded,
            Err(diagnostics) => {
                return Ok(Response::new(pb::plan_resource_change::Response {
                    diagnostics: diagnostics_to_proto(&diagnostics),
                    ..Default::default()
                }))
            }
        };
        let answer = self
            .provider
            .plan_resource_change(PlanRequest {
                type_name: req.type_name,
                prior_state,
                proposed_new_state,
                config,
                prior_private: req.prior_private,
            })
            .await;
        let mut diagnostics = answer.diagnostics;
        let planned_state =
            encode_answer(&answer.planned_state, ty, "planned state", &mut diagnostics);
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state,
            requires_replace: answer.requires_replace.iter().map(path_to_proto).collect(),
            planned_private: answer.planned_private,
            diagnostics: diagnostics_to_proto(&diagnostics),
            ..Default::default()
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("ApplyResourceChange", &req.type_name);
        let decoded = self.decode_resource_request(
            &req.type_name,
            [
                (req.prior_state.as_ref(), "prior state"),
                (req.planned_state.as_ref(), "planned state"),
                (req.config.as_ref(), "configuration"),
            ],
        );
        let (ty, [prior_state, planned_state, config]) = match decoded {
            Ok(decoded) => decoded,
            // Nothing was done: the prior state still describes what exists.
            Err(diagnostics) => {
                return Ok(Response::new(pb::apply_resource_change::Response {
                    new_state: req.prior_state,
                    private: req.planned_private,
                    diagnostics: diagnostics_to_proto(&diagnostics),
                    ..Default::default()
                }))
            }
        };
        let answer = self
            .provider
            .apply_resource_change(ApplyRequest {
                type_name: req.type_name,
                prior_state,
                planned_state,
                config,
                planned_private: req.planned_private,
            })
            .await;
        let mut diagnostics = answer.diagnostics;
        let new_state = encode_answer(&answer.new_state, ty, "new state", &mut diagnostics);
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state,
            private: answer.private,
            diagnostics: diagnostics_to_proto(&diagnostics),
            ..Default::default()
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("ImportResourceState", &req.type_name);
        if let Err(d) = self.index.resource(&req.type_name) {
            return Ok(Response::new(pb::import_resource_state::Response {
                diagnostics: diagnostics_to_proto(&d.into()),
                ..Default::default()
            }));
        }
        let answer = self
            .provider
            .import_resource_state(&req.type_name, &req.id)
            .await;
        let mut diagnostics = answer.diagnostics;
        let mut imported_resources = Vec::with_capacity(answer.imported.len());
        for imported in answer.imported {
            let state = match self.index.resource(&imported.type_name) {
                Ok(entry) => encode_answer(
                    &imported.state,
                    &entry.ty,
                    "imported state",
                    &mut diagnostics,
                ),
                Err(d) => {
                    diagnostics.push(d);
                    None
                }
            };
            if let Some(state) = state {
                imported_resources.push(pb::import_resource_state::ImportedResource {
                    type_name: imported.type_name,
                    state: Some(state),
                    private: imported.private,
                    identity: None,
                });
            }
        }
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources,
            diagnostics: diagnostics_to_proto(&diagnostics),
            deferred: None,
        }))
    }

    async fn move_resource_state(
        &self,
        request: Request<pb::move_resource_state::Request>,
    ) -> Result<Response<pb::move_resource_state::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("MoveResourceState", &req.target_type_name);
        let diagnostics: Diagnostics = Diagnostic::error(
            "Moving resources is not supported",
            format!(
                "This provider cannot move {} resources from {} into {}.",
                req.source_type_name, req.source_provider_address, req.target_type_name
            ),
        )
        .into();
        Ok(Response::new(pb::move_resource_state::Response {
            diagnostics: diagnostics_to_proto(&diagnostics),
            ..Default::default()
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("ReadDataSource", &req.type_name);
        let decoded = self
            .decode_data_source_request(&req.type_name, [(req.config.as_ref(), "configuration")]);
        let (ty, [config]) = match decoded {
            Ok(decoded) => decoded,
            Err(diagnostics) => {
                return Ok(Response::new(pb::read_data_source::Response {
                    diagnostics: diagnostics_to_proto(&diagnostics),
                    ..Default::default()
                }))
            }
        };
        let answer = self
            .provider
            .read_data_source(ReadDataSourceRequest {
                type_name: req.type_name,
                config,
            })
            .await;
        let mut diagnostics = answer.diagnostics;
        let state = encode_answer(&answer.state, ty, "data source state", &mut diagnostics);
        Ok(Response::new(pb::read_data_source::Response {
            state,
            diagnostics: diagnostics_to_proto(&diagnostics),
            deferred: None,
        }))
    }

    async fn get_functions(
        &self,
        _request: Request<pb::get_functions::Request>,
    ) -> Result<Response<pb::get_functions::Response>, Status> {
        trace_rpc("GetFunctions", "");
        Ok(Response::new(pb::get_functions::Response {
            functions: self.functions_to_proto(),
            diagnostics: Vec::new(),
        }))
    }

    async fn call_function(
        &self,
        request: Request<pb::call_function::Request>,
    ) -> Result<Response<pb::call_function::Response>, Status> {
        let req = request.into_inner();
        trace_rpc("CallFunction", &req.name);
        let answer = self.decode_arguments(&req.name, &req.arguments).and_then(
            |(return_type, arguments)| {
                let result = self.provider.call_function(&req.name, &arguments)?;
                // A result that does not fit the declared type is a bug here,
                // reported as an error of the call rather than a broken value.
                encode_value(&result, return_type, "function result")
                    .map_err(|d| FunctionError::new(d.detail))
            },
        );
        Ok(Response::new(match answer {
            Ok(result) => pb::call_function::Response {
                result: Some(result),
                error: None,
            },
            Err(error) => pb::call_function::Response {
                result: None,
                error: Some(function_error_to_proto(&error)),
            },
        }))
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        trace_rpc("StopProvider", "");
        // Only signals the provider: the calls it cancels answer for
        // themselves, and this one must not wait behind them.
        self.provider.stop();
        Ok(Response::new(pb::stop_provider::Response {
            error: String::new(),
        }))
    }
}
