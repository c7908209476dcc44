//! The rdsrot provider. (Placeholder until the resource issue lands: it has
//! an empty provider schema and no resources.)

use crate::tf::*;

#[derive(Default)]
pub struct RdsrotProvider;

impl RdsrotProvider {
    pub fn new() -> Self {
        RdsrotProvider
    }
}

impl Provider for RdsrotProvider {
    fn schema(&self) -> ProviderSchema {
        ProviderSchema {
            provider: Schema {
                version: 0,
                block: Block::default(),
            },
            resources: Vec::new(),
        }
    }
    fn validate_provider_config(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }
    async fn configure(&self, _terraform_version: &str, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }
    fn validate_resource_config(&self, type_name: &str, _config: &Value) -> Diagnostics {
        unknown_type(type_name)
    }
    fn upgrade_resource_state(&self, req: UpgradeRequest) -> (Value, Diagnostics) {
        (Value::Null, unknown_type(&req.type_name))
    }
    async fn read_resource(&self, req: ReadRequest) -> ReadResponse {
        ReadResponse {
            diagnostics: unknown_type(&req.type_name),
            ..Default::default()
        }
    }
    async fn plan_resource_change(&self, req: PlanRequest) -> PlanResponse {
        PlanResponse {
            diagnostics: unknown_type(&req.type_name),
            ..Default::default()
        }
    }
    async fn apply_resource_change(&self, req: ApplyRequest) -> ApplyResponse {
        ApplyResponse {
            diagnostics: unknown_type(&req.type_name),
            ..Default::default()
        }
    }
    async fn import_resource_state(&self, type_name: &str, _id: &str) -> ImportResponse {
        ImportResponse {
            diagnostics: unknown_type(type_name),
            ..Default::default()
        }
    }
    fn stop(&self) {}
}

fn unknown_type(type_name: &str) -> Diagnostics {
    Diagnostic::error(
        "Unknown resource type",
        format!("This provider has no resource type {type_name:?}."),
    )
    .into()
}
