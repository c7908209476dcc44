//! The provider's parts: the small trait each kind of part implements
//! (`Resource`, `DataSource`, `ProviderFunction`), the one list that
//! registers them, and the `tf::Provider` implementation that routes each
//! RPC to the part it names.
//!
//! Async trait methods cannot be called through `dyn`, so the list expands
//! into one enum per kind with an arm per part, and the enum implements the
//! kind's trait by matching. Adding a part means writing its module and
//! adding one line to `register_parts!` below.

use std::future::Future;

use crate::logging;
use crate::provider::RdsrotProvider;
use crate::tf::*;

/// A managed resource type. Every async method gets the provider for its
/// clients and cancellation; none is called for another type name.
pub trait Resource {
    fn type_name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    /// Pure checks of a configuration (values may be unknown).
    fn validate(&self, config: &Value) -> Diagnostics;

    fn upgrade(&self, req: UpgradeRequest) -> (Value, Diagnostics);

    fn read(
        &self,
        provider: &RdsrotProvider,
        req: ReadRequest,
    ) -> impl Future<Output = ReadResponse> + Send;

    fn plan(
        &self,
        provider: &RdsrotProvider,
        req: PlanRequest,
    ) -> impl Future<Output = PlanResponse> + Send;

    fn apply(
        &self,
        provider: &RdsrotProvider,
        req: ApplyRequest,
    ) -> impl Future<Output = ApplyResponse> + Send;

    fn import(
        &self,
        provider: &RdsrotProvider,
        id: &str,
    ) -> impl Future<Output = ImportResponse> + Send;
}

/// A data source type: validated like a resource, read once per plan.
pub trait DataSource {
    fn type_name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    fn validate(&self, config: &Value) -> Diagnostics;

    fn read(
        &self,
        provider: &RdsrotProvider,
        config: Value,
    ) -> impl Future<Output = ReadDataSourceResponse> + Send;
}

/// A provider function (`provider::rdsrot::<name>`, Terraform 1.8 and
/// later). Pure: Terraform may call it before the provider is configured.
pub trait ProviderFunction {
    fn name(&self) -> &'static str;

    fn definition(&self) -> Function;

    /// `arguments` match `definition()`'s parameters in number and type.
    fn call(&self, arguments: &[Value]) -> Result<Value, FunctionError>;
}

/// Expands the list of parts into `ResourcePart`, `DataSourcePart` and
/// `FunctionPart`: each an enum with one arm per part, implementing its
/// kind's trait by dispatching to the arm, with `all()` and `named()`.
macro_rules! register_parts {
    (
        resources: [$($resource:ident => $resource_ty:ty),* $(,)?],
        data_sources: [$($data_source:ident => $data_source_ty:ty),* $(,)?],
        functions: [$($function:ident => $function_ty:ty),* $(,)?] $(,)?
    ) => {
        /// Every registered resource type.
        pub enum ResourcePart {
            $($resource($resource_ty)),*
        }

        impl ResourcePart {
            pub fn all() -> Vec<ResourcePart> {
                vec![$(ResourcePart::$resource(<$resource_ty as Default>::default())),*]
            }

            pub fn named(type_name: &str) -> Option<ResourcePart> {
                Self::all().into_iter().find(|p| p.type_name() == type_name)
            }
        }

        // With no part of a kind, its arms are empty and the arguments unused.
        #[allow(unused_variables)]
        // Each part's future is boxed: held inline, the largest part's
        // future (a whole rotation apply) would sit on the caller's stack,
        // which in debug builds overflows a test thread's 2 MiB.
        impl Resource for ResourcePart {
            fn type_name(&self) -> &'static str {
                match *self { $(ResourcePart::$resource(ref p) => p.type_name()),* }
            }
            fn schema(&self) -> Schema {
                match *self { $(ResourcePart::$resource(ref p) => p.schema()),* }
            }
            fn validate(&self, config: &Value) -> Diagnostics {
                match *self { $(ResourcePart::$resource(ref p) => p.validate(config)),* }
            }
            fn upgrade(&self, req: UpgradeRequest) -> (Value, Diagnostics) {
                match *self { $(ResourcePart::$resource(ref p) => p.upgrade(req)),* }
            }
            async fn read(&self, provider: &RdsrotProvider, req: ReadRequest) -> ReadResponse {
                match *self { $(ResourcePart::$resource(ref p) => Box::pin(p.read(provider, req)).await),* }
            }
            async fn plan(&self, provider: &RdsrotProvider, req: PlanRequest) -> PlanResponse {
                match *self { $(ResourcePart::$resource(ref p) => Box::pin(p.plan(provider, req)).await),* }
            }
            async fn apply(&self, provider: &RdsrotProvider, req: ApplyRequest) -> ApplyResponse {
                match *self { $(ResourcePart::$resource(ref p) => Box::pin(p.apply(provider, req)).await),* }
            }
            async fn import(&self, provider: &RdsrotProvider, id: &str) -> ImportResponse {
                match *self { $(ResourcePart::$resource(ref p) => Box::pin(p.import(provider, id)).await),* }
            }
        }

        /// Every registered data source type.
        pub enum DataSourcePart {
            $($data_source($data_source_ty)),*
        }

        impl DataSourcePart {
            pub fn all() -> Vec<DataSourcePart> {
                vec![$(DataSourcePart::$data_source(<$data_source_ty as Default>::default())),*]
            }

            pub fn named(type_name: &str) -> Option<DataSourcePart> {
                Self::all().into_iter().find(|p| p.type_name() == type_name)
            }
        }

        // With no part of a kind, its arms are empty and the arguments unused.
        #[allow(unused_variables)]
        impl DataSource for DataSourcePart {
            fn type_name(&self) -> &'static str {
                match *self { $(DataSourcePart::$data_source(ref p) => p.type_name()),* }
            }
            fn schema(&self) -> Schema {
                match *self { $(DataSourcePart::$data_source(ref p) => p.schema()),* }
            }
            fn validate(&self, config: &Value) -> Diagnostics {
                match *self { $(DataSourcePart::$data_source(ref p) => p.validate(config)),* }
            }
            async fn read(&self, provider: &RdsrotProvider, config: Value) -> ReadDataSourceResponse {
                match *self {
                    $(DataSourcePart::$data_source(ref p) => Box::pin(p.read(provider, config)).await),*
                }
            }
        }

        /// Every registered function.
        pub enum FunctionPart {
            $($function($function_ty)),*
        }

        impl FunctionPart {
            pub fn all() -> Vec<FunctionPart> {
                vec![$(FunctionPart::$function(<$function_ty as Default>::default())),*]
            }

            pub fn named(name: &str) -> Option<FunctionPart> {
                Self::all().into_iter().find(|p| p.name() == name)
            }
        }

        // With no part of a kind, its arms are empty and the arguments unused.
        #[allow(unused_variables)]
        impl ProviderFunction for FunctionPart {
            fn name(&self) -> &'static str {
                match *self { $(FunctionPart::$function(ref p) => p.name()),* }
            }
            fn definition(&self) -> Function {
                match *self { $(FunctionPart::$function(ref p) => p.definition()),* }
            }
            fn call(&self, arguments: &[Value]) -> Result<Value, FunctionError> {
                match *self { $(FunctionPart::$function(ref p) => p.call(arguments)),* }
            }
        }
    };
}

// The one list of what this provider serves.
register_parts! {
    resources: [
        Rotation => crate::rotation::resource::RotationResource,
    ],
    data_sources: [
        RotationStatus => crate::status::RotationStatus,
    ],
    functions: [
        RotationIntervalDays => crate::functions::RotationIntervalDays,
        TemplateApplicationId => crate::functions::TemplateApplicationId,
    ],
}

fn unknown_type(kind: &str, type_name: &str) -> Diagnostics {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!("This provider has no {kind} type {type_name:?}."),
    )
    .into()
}

fn unknown_resource(type_name: &str) -> Diagnostics {
    unknown_type("resource", type_name)
}

impl Provider for RdsrotProvider {
    fn schema(&self) -> ProviderSchema {
        ProviderSchema {
            provider: crate::provider::provider_schema(),
            resources: ResourcePart::all()
                .iter()
                .map(|p| (p.type_name().to_string(), p.schema()))
                .collect(),
            data_sources: DataSourcePart::all()
                .iter()
                .map(|p| (p.type_name().to_string(), p.schema()))
                .collect(),
            functions: FunctionPart::all()
                .iter()
                .map(|p| (p.name().to_string(), p.definition()))
                .collect(),
        }
    }

    fn validate_provider_config(&self, config: &Value) -> Diagnostics {
        self.validate_config(config)
    }

    async fn configure(&self, _terraform_version: &str, config: &Value) -> Diagnostics {
        self.configure_clients(config).await
    }

    fn validate_resource_config(&self, type_name: &str, config: &Value) -> Diagnostics {
        match ResourcePart::named(type_name) {
            Some(part) => part.validate(config),
            None => unknown_resource(type_name),
        }
    }

    fn upgrade_resource_state(&self, req: UpgradeRequest) -> (Value, Diagnostics) {
        match ResourcePart::named(&req.type_name) {
            Some(part) => part.upgrade(req),
            None => (Value::Null, unknown_resource(&req.type_name)),
        }
    }

    async fn read_resource(&self, req: ReadRequest) -> ReadResponse {
        match ResourcePart::named(&req.type_name) {
            Some(part) => part.read(self, req).await,
            None => ReadResponse {
                diagnostics: unknown_resource(&req.type_name),
                ..Default::default()
            },
        }
    }

    async fn plan_resource_change(&self, req: PlanRequest) -> PlanResponse {
        match ResourcePart::named(&req.type_name) {
            Some(part) => part.plan(self, req).await,
            None => PlanResponse {
                diagnostics: unknown_resource(&req.type_name),
                ..Default::default()
            },
        }
    }

    async fn apply_resource_change(&self, req: ApplyRequest) -> ApplyResponse {
        match ResourcePart::named(&req.type_name) {
            Some(part) => part.apply(self, req).await,
            None => ApplyResponse {
                diagnostics: unknown_resource(&req.type_name),
                ..Default::default()
            },
        }
    }

    async fn import_resource_state(&self, type_name: &str, id: &str) -> ImportResponse {
        match ResourcePart::named(type_name) {
            Some(part) => part.import(self, id).await,
            None => ImportResponse {
                diagnostics: unknown_resource(type_name),
                ..Default::default()
            },
        }
    }

    fn validate_data_resource_config(&self, type_name: &str, config: &Value) -> Diagnostics {
        match DataSourcePart::named(type_name) {
            Some(part) => part.validate(config),
            None => unknown_type("data source", type_name),
        }
    }

    async fn read_data_source(&self, req: ReadDataSourceRequest) -> ReadDataSourceResponse {
        match DataSourcePart::named(&req.type_name) {
            Some(part) => part.read(self, req.config).await,
            None => ReadDataSourceResponse {
                state: Value::Null,
                diagnostics: unknown_type("data source", &req.type_name),
            },
        }
    }

    fn call_function(&self, name: &str, arguments: &[Value]) -> Result<Value, FunctionError> {
        match FunctionPart::named(name) {
            Some(part) => part.call(arguments),
            None => Err(FunctionError::new(format!(
                "This provider has no function {name:?}."
            ))),
        }
    }

    fn stop(&self) {
        logging::info(
            "provider",
            "stop requested: cancelling in-flight operations",
        );
        self.cancellation().cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_listed_once_under_its_own_name() {
        let schema = RdsrotProvider::new().schema();
        let resources: Vec<&str> = schema.resources.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(resources, ["rdsrot_rotation"]);
        let data_sources: Vec<&str> = schema
            .data_sources
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(data_sources, ["rdsrot_rotation_status"]);
        let functions: Vec<&str> = schema.functions.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            functions,
            ["rotation_interval_days", "template_application_id"]
        );
        for (name, _) in &schema.resources {
            assert!(ResourcePart::named(name).is_some());
        }
        for (name, _) in &schema.data_sources {
            assert!(DataSourcePart::named(name).is_some());
        }
        for (name, _) in &schema.functions {
            assert!(FunctionPart::named(name).is_some());
        }
    }

    /// A data source registered the way a real one would be: one line in
    /// a `register_parts!` list, dispatched through `DataSourcePart`.
    mod one_more_part {
        use super::super::*;

        #[derive(Default)]
        pub struct Echo;

        impl DataSource for Echo {
            fn type_name(&self) -> &'static str {
                "rdsrot_echo"
            }
            fn schema(&self) -> Schema {
                Schema {
                    version: 0,
                    block: Block::default(),
                }
            }
            fn validate(&self, _config: &Value) -> Diagnostics {
                Diagnostic::warning("checked", "").into()
            }
            async fn read(
                &self,
                _provider: &RdsrotProvider,
                config: Value,
            ) -> ReadDataSourceResponse {
                ReadDataSourceResponse {
                    state: config,
                    diagnostics: Diagnostics::new(),
                }
            }
        }

        register_parts! {
            resources: [],
            data_sources: [Echo => Echo],
            functions: [],
        }

        #[tokio::test]
        async fn a_registered_data_source_is_found_and_dispatched() {
            assert!(ResourcePart::all().is_empty() && FunctionPart::all().is_empty());
            assert!(ResourcePart::named("rdsrot_echo").is_none());
            assert!(FunctionPart::named("rdsrot_echo").is_none());
            let part = DataSourcePart::named("rdsrot_echo").expect("registered");
            assert_eq!(part.validate(&Value::Null).iter().count(), 1);
            let read = part.read(&RdsrotProvider::new(), Value::string("in")).await;
            assert_eq!(read.state, Value::string("in"));
            assert!(DataSourcePart::named("rdsrot_other").is_none());
        }
    }

    #[tokio::test]
    async fn names_no_part_has_are_clear_errors() {
        let p = RdsrotProvider::new();
        let r = p.import_resource_state("rdsrot_other", "x").await;
        assert!(r
            .diagnostics
            .iter()
            .any(|d| d.summary == "Unknown resource type"));
        let d = p.validate_data_resource_config("rdsrot_other", &Value::Null);
        assert!(d.iter().any(|d| d.summary == "Unknown data source type"));
        let r = p
            .read_data_source(ReadDataSourceRequest {
                type_name: "rdsrot_other".into(),
                config: Value::Null,
            })
            .await;
        assert!(r.diagnostics.has_errors() && r.state.is_null());
        let e = p
            .call_function("nothing", &[])
            .expect_err("no such function");
        assert!(e.text.contains("nothing") && e.argument.is_none());
    }
}
