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
    decode_raw_state, decode_value, diagnostics_to_proto, encode_value, null_value, path_to_proto,
    schema_to_proto, unknown_type, SchemaIndex,
};
use super::proto::tfplugin6 as pb;
use super::proto::tfplugin6::provider_server::{Provider as ProviderRpc, ProviderServer};
use super::MAX_MESSAGE_SIZE;
use crate::logging;
use crate::tf::{
    ApplyRequest, Diagnostic, Diagnostics, PlanRequest, Provider, ProviderSchema, ReadRequest,
    UpgradeRequest, Value,
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

/// Collects decode failures: a handler decodes every value, and any that
/// fail end the call with their diagnostics before the provider is called.
#[derive(Default)]
struct Decoded {
    diagnostics: Diagnostics,
}

impl Decoded {
    fn value(&mut self, result: Result<Value, Diagnostic>) -> Value {
        result.unwrap_or_else(|d| {
            self.diagnostics.push(d);
            Value::Null
        })
    }
    fn failed(&self) -> bool {
        self.diagnostics.has_errors()
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
        let diagnostics = match decode_value(
            req.config.as_ref(),
            &self.index.provider_type,
            "configuration",
        ) {
            Ok(config) => self.provider.validate_provider_config(&config),
            Err(d) => d.into(),
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
            .index
            .resource(&req.type_name)
            .and_then(|entry| decode_value(req.config.as_ref(), &entry.ty, "configuration"))
        {
            Ok(config) => self
                .provider
                .validate_resource_config(&req.type_name, &config),
            Err(d) => d.into(),
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
        // This provider has no data sources.
        let diagnostics: Diagnostics = unknown_type("data source", &req.type_name).into();
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
        let upgraded_state = match encode_value(&upgraded, &entry.ty, "upgraded state") {
            Ok(dv) => dv,
            Err(d) => {
                diagnostics.push(d);
                null_value()
            }
        };
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
        let diagnostics = match decode_value(
            req.config.as_ref(),
            &self.index.provider_type,
            "configuration",
        ) {
            Ok(config) => {
                self.provider
                    .configure(&req.terraform_version, &config)
                    .await
            }
            Err(d) => d.into(),
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
        let entry = match self.index.resource(&req.type_name) {
            Ok(entry) => entry,
            Err(d) => {
                return Ok(Response::new(pb::read_resource::Response {
                    new_state: req.current_state,
                    diagnostics: diagnostics_to_proto(&d.into()),
                    private: req.private,
                    ..Default::default()
                }))
            }
        };
        let mut decoded = Decoded::default();
        let current_state = decoded.value(decode_value(
            req.current_state.as_ref(),
            &entry.ty,
            "current state",
        ));
        if decoded.failed() {
            return Ok(Response::new(pb::read_resource::Response {
                new_state: req.current_state,
                diagnostics: diagnostics_to_proto(&decoded.diagnostics),
                private: req.private,
                ..Default::default()
            }));
        }
        let answer = self
            .provider
            .read_resource(ReadRequest {
                type_name: req.type_name,
                current_state,
                private: req.private,
            })
            .await;
        let mut diagnostics = answer.diagnostics;
        let new_state = encode_value(&answer.new_state, &entry.ty, "new state")
            .map_err(|d| diagnostics.push(d))
            .ok();
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
        let entry = match self.index.resource(&req.type_name) {
            Ok(entry) => entry,
            Err(d) => {
                return Ok(Response::new(pb::plan_resource_change::Response {
                    diagnostics: diagnostics_to_proto(&d.into()),
                    ..Default::default()
                }))
            }
        };
        let mut decoded = Decoded::default();
        let prior_state = decoded.value(decode_value(
            req.prior_state.as_ref(),
            &entry.ty,
            "prior state",
        ));
        let proposed_new_state = decoded.value(decode_value(
            req.proposed_new_state.as_ref(),
            &entry.ty,
            "proposed new state",
        ));
        let config = decoded.value(decode_value(
            req.config.as_ref(),
            &entry.ty,
            "configuration",
        ));
        if decoded.failed() {
            return Ok(Response::new(pb::plan_resource_change::Response {
                diagnostics: diagnostics_to_proto(&decoded.diagnostics),
                ..Default::default()
            }));
        }
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
        let planned_state = encode_value(&answer.planned_state, &entry.ty, "planned state")
            .map_err(|d| diagnostics.push(d))
            .ok();
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
        let entry = match self.index.resource(&req.type_name) {
            Ok(entry) => entry,
            Err(d) => {
                return Ok(Response::new(pb::apply_resource_change::Response {
                    new_state: req.prior_state,
                    diagnostics: diagnostics_to_proto(&d.into()),
                    ..Default::default()
                }))
            }
        };
        let mut decoded = Decoded::default();
        let prior_state = decoded.value(decode_value(
            req.prior_state.as_ref(),
            &entry.ty,
            "prior state",
        ));
        let planned_state = decoded.value(decode_value(
            req.planned_state.as_ref(),
            &entry.ty,
            "planned state",
        ));
        let config = decoded.value(decode_value(
            req.config.as_ref(),
            &entry.ty,
            "configuration",
        ));
        if decoded.failed() {
            // Nothing was done: the prior state still describes what exists.
            return Ok(Response::new(pb::apply_resource_change::Response {
                new_state: req.prior_state,
                private: req.planned_private,
                diagnostics: diagnostics_to_proto(&decoded.diagnostics),
                ..Default::default()
            }));
        }
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
        let new_state = encode_value(&answer.new_state, &entry.ty, "new state")
            .map_err(|d| diagnostics.push(d))
            .ok();
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
            let encoded = self
                .index
                .resource(&imported.type_name)
                .and_then(|entry| encode_value(&imported.state, &entry.ty, "imported state"));
            match encoded {
                Ok(state) => imported_resources.push(pb::import_resource_state::ImportedResource {
                    type_name: imported.type_name,
                    state: Some(state),
                    private: imported.private,
                    identity: None,
                }),
                Err(d) => diagnostics.push(d),
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
        let diagnostics: Diagnostics = unknown_type("data source", &req.type_name).into();
        Ok(Response::new(pb::read_data_source::Response {
            diagnostics: diagnostics_to_proto(&diagnostics),
            ..Default::default()
        }))
    }

    async fn get_functions(
        &self,
        _request: Request<pb::get_functions::Request>,
    ) -> Result<Response<pb::get_functions::Response>, Status> {
        trace_rpc("GetFunctions", "");
        Ok(Response::new(pb::get_functions::Response::default()))
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
