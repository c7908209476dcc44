//! The protocol server driven as Terraform drives it: an in-process server
//! with a small test provider, reached over AutoMTLS with a Terraform-like
//! client certificate (or plaintext), plus the built binary's handshake.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rdsrot::server::proto::plugin::Empty;
use rdsrot::server::proto::tfplugin6 as pb;
use rdsrot::server::proto::tfplugin6::provider_client::ProviderClient;
use rdsrot::tf::{
    msgpack, ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, Diagnostic, Diagnostics,
    ImportResponse, ImportedResource, NestedBlock, Nesting, PathStep, PlanRequest, PlanResponse,
    Provider, ProviderSchema, ReadRequest, ReadResponse, Schema, Type, UpgradeRequest, Value,
};
use tokio::sync::Notify;
use tonic::transport::Channel;

use crate::support::grpc::{
    connect_tls, controller_client, provider_client, within, ClientIdentity, InProcessServer,
};

const WIDGET: &str = "test_widget";

// --- A small provider with one resource ------------------------------------

/// One resource, `test_widget`, with required, optional, computed and
/// sensitive attributes and a nested block, and simple, checkable behaviour.
#[derive(Default)]
struct WidgetProvider {
    /// When set, ConfigureProvider waits until StopProvider arrives.
    configure_waits_for_stop: bool,
    stopped: AtomicBool,
    stop_signal: Notify,
}

fn widget_schema() -> Schema {
    Schema {
        version: 1,
        block: Block {
            attributes: vec![
                Attribute::required("name", Type::String, "The widget's name."),
                Attribute::optional("size", Type::Number, "How big."),
                Attribute::computed("id", Type::String, "Assigned on create."),
                Attribute::optional("secret", Type::String, "Never shown.").sensitive(),
                Attribute::optional("tags", Type::map(Type::String), "Labels."),
            ],
            block_types: vec![NestedBlock {
                type_name: "rule".into(),
                block: Block {
                    attributes: vec![Attribute::required("days", Type::Number, "Every N days.")],
                    ..Block::default()
                },
                nesting: Nesting::List,
                min_items: 0,
                max_items: 1,
            }],
            description: "A widget.".into(),
            deprecated: false,
        },
    }
}

fn widget_type() -> Type {
    widget_schema().block.value_type()
}

fn provider_schema() -> Schema {
    Schema {
        version: 0,
        block: Block {
            attributes: vec![Attribute::optional("region", Type::String, "Where.")],
            ..Block::default()
        },
    }
}

/// `value` with attribute `name` replaced.
fn with(value: &Value, name: &str, new: Value) -> Value {
    let mut fields = value.as_object().cloned().unwrap_or_default();
    fields.insert(name.to_string(), new);
    Value::Object(fields)
}

impl Provider for WidgetProvider {
    fn schema(&self) -> ProviderSchema {
        ProviderSchema {
            provider: provider_schema(),
            resources: vec![(WIDGET.to_string(), widget_schema())],
            data_sources: vec![],
            functions: vec![],
        }
    }

    fn validate_provider_config(&self, config: &Value) -> Diagnostics {
        match config.get("region").as_str() {
            Some("") => Diagnostic::error("Empty region", "Set a region or leave it out.")
                .at(AttributePath::root("region"))
                .into(),
            _ => Diagnostics::new(),
        }
    }

    async fn configure(&self, _terraform_version: &str, _config: &Value) -> Diagnostics {
        if self.configure_waits_for_stop && !self.stopped.load(Ordering::SeqCst) {
            self.stop_signal.notified().await;
            return Diagnostic::error("Cancelled", "StopProvider arrived.").into();
        }
        Diagnostics::new()
    }

    fn validate_resource_config(&self, _type_name: &str, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if let Some(rules) = config.get("rule").elements() {
            for (i, rule) in rules.iter().enumerate() {
                if rule.get("days").as_i64().is_some_and(|d| d < 1) {
                    diags.push(
                        Diagnostic::error("Invalid days", "days must be at least 1.")
                            .at(AttributePath::root("rule").index(i as i64).attr("days")),
                    );
                }
            }
        }
        diags
    }

    fn upgrade_resource_state(&self, req: UpgradeRequest) -> (Value, Diagnostics) {
        // Version 0 had no size: such widgets were all size 1.
        if req.version == 0 && req.raw_state.get("size").is_null() {
            return (
                with(&req.raw_state, "size", Value::int(1)),
                Diagnostics::new(),
            );
        }
        (req.raw_state, Diagnostics::new())
    }

    async fn read_resource(&self, req: ReadRequest) -> ReadResponse {
        if req.current_state.get("name").as_str() == Some("gone") {
            return ReadResponse {
                new_state: Value::Null,
                private: Vec::new(),
                diagnostics: Diagnostics::new(),
            };
        }
        ReadResponse {
            new_state: req.current_state,
            private: req.private,
            diagnostics: Diagnostics::new(),
        }
    }

    async fn plan_resource_change(&self, req: PlanRequest) -> PlanResponse {
        if req.proposed_new_state.is_null() {
            return PlanResponse {
                planned_state: Value::Null,
                planned_private: req.prior_private,
                ..Default::default()
            };
        }
        if req.prior_state.is_null() {
            return PlanResponse {
                planned_state: with(&req.proposed_new_state, "id", Value::Unknown),
                ..Default::default()
            };
        }
        let mut requires_replace = Vec::new();
        if req.prior_state.get("name") != req.proposed_new_state.get("name") {
            requires_replace.push(AttributePath::root("name"));
        }
        PlanResponse {
            planned_state: with(
                &req.proposed_new_state,
                "id",
                req.prior_state.get("id").clone(),
            ),
            requires_replace,
            planned_private: req.prior_private,
            diagnostics: Diagnostics::new(),
        }
    }

    async fn apply_resource_change(&self, req: ApplyRequest) -> ApplyResponse {
        if req.planned_state.is_null() {
            return ApplyResponse::default();
        }
        let name = req
            .planned_state
            .get("name")
            .as_str()
            .unwrap_or("")
            .to_string();
        ApplyResponse {
            new_state: with(&req.planned_state, "id", Value::string(format!("w-{name}"))),
            private: b"created-v1".to_vec(),
            diagnostics: Diagnostics::new(),
        }
    }

    async fn import_resource_state(&self, type_name: &str, id: &str) -> ImportResponse {
        ImportResponse {
            imported: vec![ImportedResource {
                type_name: type_name.to_string(),
                state: Value::object([
                    ("id", Value::string(id)),
                    ("name", Value::string(id.trim_start_matches("w-"))),
                    ("size", Value::Null),
                    ("secret", Value::Null),
                    ("tags", Value::Null),
                    ("rule", Value::List(Vec::new())),
                ]),
                private: b"imported".to_vec(),
            }],
            diagnostics: Diagnostics::new(),
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop_signal.notify_waiters();
    }
}

// --- Helpers ---------------------------------------------------------------

fn widget(name: &str, id: Value, days: Option<i64>) -> Value {
    Value::object([
        ("name", Value::string(name)),
        ("size", Value::int(3)),
        ("id", id),
        ("secret", Value::string("hunter2")),
        (
            "tags",
            Value::Map(
                [("env".to_string(), Value::string("test"))]
                    .into_iter()
                    .collect(),
            ),
        ),
        (
            "rule",
            Value::List(
                days.map(|d| vec![Value::object([("days", Value::int(d))])])
                    .unwrap_or_default(),
            ),
        ),
    ])
}

fn dv(value: &Value) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: msgpack::encode(value, &widget_type()).expect("test value encodes"),
        json: Vec::new(),
    })
}

fn decoded(value: Option<&pb::DynamicValue>) -> Value {
    let bytes = &value.expect("value set").msgpack;
    msgpack::decode(bytes, &widget_type()).expect("server sent valid msgpack")
}

fn error_summaries(diags: &[pb::Diagnostic]) -> Vec<&str> {
    diags
        .iter()
        .filter(|d| d.severity == pb::diagnostic::Severity::Error as i32)
        .map(|d| d.summary.as_str())
        .collect()
}

fn path_of(d: &pb::Diagnostic) -> AttributePath {
    rdsrot::server::convert::path_from_proto(d.attribute.as_ref().expect("diagnostic has a path"))
}

async fn tls_server(provider: WidgetProvider) -> (InProcessServer, ClientIdentity) {
    let client = ClientIdentity::terraform_like();
    let server = InProcessServer::start(Arc::new(provider), Some(&client)).await;
    (server, client)
}

/// A widget provider served over mTLS, and a client connected as Terraform.
/// The server stops when its handle is dropped: keep it alive.
async fn widget_rpc() -> (InProcessServer, ProviderClient<Channel>) {
    let (server, client) = tls_server(WidgetProvider::default()).await;
    let rpc = provider_client(server.connect(Some(&client)).await.expect("connect"));
    (server, rpc)
}

// --- Schema and metadata ---------------------------------------------------

#[tokio::test]
async fn schema_round_trip_over_mtls() {
    let (server, client) = tls_server(WidgetProvider::default()).await;
    let channel = within("connect", server.connect(Some(&client)))
        .await
        .expect("the pinned client connects");
    let mut rpc = provider_client(channel);
    let schema = within(
        "GetProviderSchema",
        rpc.get_provider_schema(pb::get_provider_schema::Request {}),
    )
    .await
    .expect("schema served")
    .into_inner();

    let provider = schema.provider.expect("provider schema present");
    let provider_block = provider.block.expect("provider block present");
    assert_eq!(provider_block.attributes[0].name, "region");

    let widget = schema
        .resource_schemas
        .get(WIDGET)
        .expect("resource present");
    assert_eq!(widget.version, 1);
    let block = widget.block.as_ref().expect("resource block present");
    assert_eq!(block.description_kind, pb::StringKind::Markdown as i32);
    for attr in &block.attributes {
        let json: serde_json::Value =
            serde_json::from_slice(&attr.r#type).expect("type is valid JSON");
        assert_eq!(Type::from_json(&json).map(|_| ()), Ok(()), "{}", attr.name);
        assert!(!attr.write_only);
        assert_eq!(attr.description_kind, pb::StringKind::Markdown as i32);
    }
    let by_name = |n: &str| block.attributes.iter().find(|a| a.name == n).expect(n);
    assert!(by_name("name").required);
    assert!(by_name("size").optional && !by_name("size").computed);
    assert!(by_name("id").computed && !by_name("id").optional);
    assert!(by_name("secret").sensitive);
    assert_eq!(by_name("tags").r#type, br#"["map","string"]"#.to_vec());
    let rule = &block.block_types[0];
    assert_eq!(rule.type_name, "rule");
    assert_eq!(
        rule.nesting,
        pb::schema::nested_block::NestingMode::List as i32
    );
    assert_eq!(rule.max_items, 1);
    assert!(rule.block.is_some());

    let caps = schema.server_capabilities.expect("capabilities present");
    assert!(caps.plan_destroy);
    assert!(caps.get_provider_schema_optional);
    assert!(schema.diagnostics.is_empty());
}

#[tokio::test]
async fn newer_rpcs_answer_cleanly() {
    let (_server, mut rpc) = widget_rpc().await;

    let meta = rpc
        .get_metadata(pb::get_metadata::Request {})
        .await
        .expect("GetMetadata answers")
        .into_inner();
    assert_eq!(meta.resources.len(), 1);
    assert_eq!(meta.resources[0].type_name, WIDGET);
    assert!(meta.server_capabilities.expect("capabilities").plan_destroy);

    let identities = rpc
        .get_resource_identity_schemas(pb::get_resource_identity_schemas::Request {})
        .await
        .expect("GetResourceIdentitySchemas answers")
        .into_inner();
    assert!(identities.identity_schemas.is_empty());

    let functions = rpc
        .get_functions(pb::get_functions::Request {})
        .await
        .expect("GetFunctions answers")
        .into_inner();
    assert!(functions.functions.is_empty());

    // Not implemented at all: a clean UNIMPLEMENTED status.
    let status = rpc
        .validate_ephemeral_resource_config(pb::validate_ephemeral_resource_config::Request {
            type_name: "test_thing".into(),
            config: None,
        })
        .await
        .expect_err("ephemeral resources are not implemented");
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    // Data sources: none exist, which is a diagnostic, not a transport error.
    let data = rpc
        .validate_data_resource_config(pb::validate_data_resource_config::Request {
            type_name: "test_data".into(),
            config: None,
        })
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(
        error_summaries(&data.diagnostics),
        vec!["Unknown data source type"]
    );
}

#[tokio::test]
async fn unknown_resource_type_is_a_diagnostic() {
    let (_server, mut rpc) = widget_rpc().await;
    let answer = rpc
        .validate_resource_config(pb::validate_resource_config::Request {
            type_name: "test_gadget".into(),
            config: None,
            client_capabilities: None,
        })
        .await
        .expect("an OK response")
        .into_inner();
    assert_eq!(
        error_summaries(&answer.diagnostics),
        vec!["Unknown resource type"]
    );
    assert!(answer.diagnostics[0].detail.contains("test_gadget"));

    let upgraded = rpc
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: "test_gadget".into(),
            version: 0,
            raw_state: None,
        })
        .await
        .expect("an OK response")
        .into_inner();
    assert!(
        upgraded.upgraded_state.is_some(),
        "upgraded_state is always set"
    );
    assert_eq!(
        error_summaries(&upgraded.diagnostics),
        vec!["Unknown resource type"]
    );
}

// --- Validation ------------------------------------------------------------

#[tokio::test]
async fn validate_reports_errors_on_attribute_paths() {
    let (_server, mut rpc) = widget_rpc().await;

    let bad = widget("a", Value::Null, Some(0));
    let answer = rpc
        .validate_resource_config(pb::validate_resource_config::Request {
            type_name: WIDGET.into(),
            config: dv(&bad),
            client_capabilities: None,
        })
        .await
        .expect("OK response")
        .into_inner();
    assert_eq!(error_summaries(&answer.diagnostics), vec!["Invalid days"]);
    assert_eq!(
        path_of(&answer.diagnostics[0]).0,
        vec![
            PathStep::Attribute("rule".into()),
            PathStep::ElementKeyInt(0),
            PathStep::Attribute("days".into())
        ]
    );

    let good = widget("a", Value::Null, Some(30));
    let answer = rpc
        .validate_resource_config(pb::validate_resource_config::Request {
            type_name: WIDGET.into(),
            config: dv(&good),
            client_capabilities: None,
        })
        .await
        .expect("OK response")
        .into_inner();
    assert!(answer.diagnostics.is_empty(), "{:?}", answer.diagnostics);

    // Unknown values in configuration are fine at validation time.
    let unknown_days = with(
        &good,
        "rule",
        Value::List(vec![Value::object([("days", Value::Unknown)])]),
    );
    let answer = rpc
        .validate_resource_config(pb::validate_resource_config::Request {
            type_name: WIDGET.into(),
            config: dv(&unknown_days),
            client_capabilities: None,
        })
        .await
        .expect("OK response")
        .into_inner();
    assert!(answer.diagnostics.is_empty(), "{:?}", answer.diagnostics);
}

#[tokio::test]
async fn validate_provider_config_uses_field_two_and_paths() {
    let (_server, mut rpc) = widget_rpc().await;
    let provider_type = provider_schema().block.value_type();
    let config = Value::object([("region", Value::string(""))]);
    let answer = rpc
        .validate_provider_config(pb::validate_provider_config::Request {
            config: Some(pb::DynamicValue {
                msgpack: msgpack::encode(&config, &provider_type).expect("encodes"),
                json: Vec::new(),
            }),
        })
        .await
        .expect("OK response")
        .into_inner();
    assert_eq!(error_summaries(&answer.diagnostics), vec!["Empty region"]);
    assert_eq!(
        path_of(&answer.diagnostics[0]),
        AttributePath::root("region")
    );
}

#[tokio::test]
async fn undecodable_values_are_diagnostics_not_crashes() {
    let (_server, mut rpc) = widget_rpc().await;
    let answer = rpc
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: WIDGET.into(),
            prior_state: None,
            // A string where an object is required.
            proposed_new_state: Some(pb::DynamicValue {
                msgpack: vec![0xa1, b'x'],
                json: Vec::new(),
            }),
            config: None,
            ..Default::default()
        })
        .await
        .expect("OK response")
        .into_inner();
    assert_eq!(
        error_summaries(&answer.diagnostics),
        vec!["Invalid proposed new state from Terraform"]
    );
}

// --- The resource lifecycle ------------------------------------------------

#[tokio::test]
async fn create_read_update_destroy_round_trip() {
    let (_server, mut rpc) = widget_rpc().await;
    let config = widget("alpha", Value::Null, Some(7));

    // Plan a create: the computed id becomes unknown.
    let plan = rpc
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: WIDGET.into(),
            prior_state: dv(&Value::Null),
            proposed_new_state: dv(&config),
            config: dv(&config),
            ..Default::default()
        })
        .await
        .expect("plan")
        .into_inner();
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let planned = decoded(plan.planned_state.as_ref());
    assert_eq!(planned.get("id"), &Value::Unknown);
    assert_eq!(planned.get("name"), &Value::string("alpha"));
    assert_eq!(planned.get("secret"), &Value::string("hunter2"));

    // Apply it.
    let applied = rpc
        .apply_resource_change(pb::apply_resource_change::Request {
            type_name: WIDGET.into(),
            prior_state: dv(&Value::Null),
            planned_state: plan.planned_state.clone(),
            config: dv(&config),
            planned_private: plan.planned_private.clone(),
            ..Default::default()
        })
        .await
        .expect("apply")
        .into_inner();
    assert!(applied.diagnostics.is_empty(), "{:?}", applied.diagnostics);
    let state = decoded(applied.new_state.as_ref());
    assert_eq!(state.get("id"), &Value::string("w-alpha"));
    assert!(state.is_wholly_known());
    assert_eq!(applied.private, b"created-v1".to_vec());
    assert!(!applied.legacy_type_system);

    // Read it back, private data carried through.
    let read = rpc
        .read_resource(pb::read_resource::Request {
            type_name: WIDGET.into(),
            current_state: applied.new_state.clone(),
            private: applied.private.clone(),
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner();
    assert!(decoded(read.new_state.as_ref()).same_as(&state));
    assert_eq!(read.private, applied.private);

    // A rename forces replacement, reported on the attribute's path.
    let renamed = with(&config, "name", Value::string("beta"));
    let plan = rpc
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: WIDGET.into(),
            prior_state: applied.new_state.clone(),
            proposed_new_state: dv(&with(&renamed, "id", Value::string("w-alpha"))),
            config: dv(&renamed),
            prior_private: applied.private.clone(),
            ..Default::default()
        })
        .await
        .expect("plan update")
        .into_inner();
    assert_eq!(plan.requires_replace.len(), 1);
    assert_eq!(
        rdsrot::server::convert::path_from_proto(&plan.requires_replace[0]),
        AttributePath::root("name")
    );

    // Plan a destroy (Terraform >= 1.3 with plan_destroy): null proposed state.
    let plan = rpc
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: WIDGET.into(),
            prior_state: applied.new_state.clone(),
            proposed_new_state: dv(&Value::Null),
            config: dv(&Value::Null),
            prior_private: applied.private.clone(),
            ..Default::default()
        })
        .await
        .expect("plan destroy")
        .into_inner();
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    assert_eq!(decoded(plan.planned_state.as_ref()), Value::Null);

    // Destroy as Terraform 1.0 sends it: an apply with a null planned state
    // and (after conversion) a null config.
    let destroyed = rpc
        .apply_resource_change(pb::apply_resource_change::Request {
            type_name: WIDGET.into(),
            prior_state: applied.new_state.clone(),
            planned_state: Some(pb::DynamicValue {
                msgpack: vec![0xc0],
                json: Vec::new(),
            }),
            config: Some(pb::DynamicValue {
                msgpack: vec![0xc0],
                json: Vec::new(),
            }),
            planned_private: applied.private.clone(),
            ..Default::default()
        })
        .await
        .expect("destroy")
        .into_inner();
    assert!(
        destroyed.diagnostics.is_empty(),
        "{:?}",
        destroyed.diagnostics
    );
    assert_eq!(decoded(destroyed.new_state.as_ref()), Value::Null);
}

#[tokio::test]
async fn read_of_a_vanished_object_returns_null() {
    let (_server, mut rpc) = widget_rpc().await;
    let gone = widget("gone", Value::string("w-gone"), None);
    let read = rpc
        .read_resource(pb::read_resource::Request {
            type_name: WIDGET.into(),
            current_state: dv(&gone),
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner();
    assert!(read.diagnostics.is_empty());
    assert_eq!(decoded(read.new_state.as_ref()), Value::Null);
}

#[tokio::test]
async fn import_returns_state_and_private() {
    let (_server, mut rpc) = widget_rpc().await;
    let answer = rpc
        .import_resource_state(pb::import_resource_state::Request {
            type_name: WIDGET.into(),
            id: "w-gamma".into(),
            ..Default::default()
        })
        .await
        .expect("import")
        .into_inner();
    assert!(answer.diagnostics.is_empty(), "{:?}", answer.diagnostics);
    assert_eq!(answer.imported_resources.len(), 1);
    let imported = &answer.imported_resources[0];
    assert_eq!(imported.type_name, WIDGET);
    assert_eq!(imported.private, b"imported".to_vec());
    let state = decoded(imported.state.as_ref());
    assert_eq!(state.get("id"), &Value::string("w-gamma"));
    assert_eq!(state.get("name"), &Value::string("gamma"));
    assert_eq!(state.get("rule"), &Value::List(Vec::new()));
}

#[tokio::test]
async fn upgrade_reads_json_state_and_always_answers_msgpack() {
    let (_server, mut rpc) = widget_rpc().await;

    // State written by schema version 0: no size; attributes may be missing.
    let raw = br#"{"id":"w-old","name":"old","secret":null,"tags":{"a":"b"},"rule":[]}"#;
    let answer = rpc
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: WIDGET.into(),
            version: 0,
            raw_state: Some(pb::RawState {
                json: raw.to_vec(),
                flatmap: Default::default(),
            }),
        })
        .await
        .expect("upgrade")
        .into_inner();
    assert!(answer.diagnostics.is_empty(), "{:?}", answer.diagnostics);
    let upgraded = answer.upgraded_state.expect("always set");
    assert!(upgraded.json.is_empty(), "answers are msgpack");
    let state = decoded(Some(&upgraded));
    assert_eq!(state.get("size").as_i64(), Some(1));
    assert_eq!(state.get("name"), &Value::string("old"));

    // Same version: passed through unchanged.
    let answer = rpc
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: WIDGET.into(),
            version: 1,
            raw_state: Some(pb::RawState {
                json: raw.to_vec(),
                flatmap: Default::default(),
            }),
        })
        .await
        .expect("upgrade")
        .into_inner();
    assert!(decoded(answer.upgraded_state.as_ref())
        .get("size")
        .is_null());

    // Pre-0.12 flatmap state: an error diagnostic, upgraded_state still set.
    let answer = rpc
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: WIDGET.into(),
            version: 0,
            raw_state: Some(pb::RawState {
                json: Vec::new(),
                flatmap: [("id".to_string(), "w-old".to_string())]
                    .into_iter()
                    .collect(),
            }),
        })
        .await
        .expect("upgrade")
        .into_inner();
    assert_eq!(
        error_summaries(&answer.diagnostics),
        vec!["Unsupported state format"]
    );
    assert!(answer.upgraded_state.is_some());
}

#[tokio::test]
async fn messages_beyond_tonics_4_mib_default_pass_both_ways() {
    let (_server, mut rpc) = widget_rpc().await;
    let big = "x".repeat(6 << 20);
    let raw =
        format!(r#"{{"id":"w-big","name":"big","size":2,"tags":{{"blob":"{big}"}},"rule":[]}}"#);
    let answer = within(
        "a 6 MiB upgrade",
        rpc.upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: WIDGET.into(),
            version: 1,
            raw_state: Some(pb::RawState {
                json: raw.into_bytes(),
                flatmap: Default::default(),
            }),
        }),
    )
    .await
    .expect("a 6 MiB request and response are accepted")
    .into_inner();
    assert!(answer.diagnostics.is_empty(), "{:?}", answer.diagnostics);
    let state = decoded(answer.upgraded_state.as_ref());
    assert_eq!(
        state.get("tags").get("blob").as_str().map(str::len),
        Some(6 << 20)
    );
}

// --- Stopping and shutting down --------------------------------------------

#[tokio::test]
async fn stop_provider_returns_while_a_slow_call_is_in_flight() {
    let provider = WidgetProvider {
        configure_waits_for_stop: true,
        ..WidgetProvider::default()
    };
    let (server, client) = tls_server(provider).await;
    let channel = server.connect(Some(&client)).await.expect("connect");
    let mut slow = provider_client(channel.clone());
    let mut stopper = provider_client(channel);

    let in_flight = tokio::spawn(async move {
        slow.configure_provider(pb::configure_provider::Request {
            terraform_version: "1.0.3".into(),
            config: None,
            client_capabilities: None,
        })
        .await
    });
    // Give the slow call time to reach the provider.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!in_flight.is_finished(), "configure waits for StopProvider");

    let stopped = within(
        "StopProvider",
        stopper.stop_provider(pb::stop_provider::Request {}),
    )
    .await
    .expect("StopProvider answers")
    .into_inner();
    assert_eq!(stopped.error, "");

    // The stop reached the provider, which cancelled the slow call.
    let configured = within("the cancelled call", in_flight)
        .await
        .expect("task ran")
        .expect("OK response")
        .into_inner();
    assert_eq!(error_summaries(&configured.diagnostics), vec!["Cancelled"]);
}

#[tokio::test]
async fn controller_shutdown_ends_serve() {
    let (mut server, client) = tls_server(WidgetProvider::default()).await;
    let channel = server.connect(Some(&client)).await.expect("connect");
    // Open the streams Terraform opens: they must not hold up shutdown.
    let mut stdio =
        rdsrot::server::proto::plugin::grpc_stdio_client::GrpcStdioClient::new(channel.clone());
    let stdio_stream = stdio.stream_stdio(()).await.expect("stdio stream opens");
    let started = Instant::now();
    within("Shutdown", controller_client(channel).shutdown(Empty {}))
        .await
        .expect("Shutdown answers");
    within("serve to return", server.stopped())
        .await
        .expect("serve ends cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "Terraform kills a plugin still alive 2 s after Shutdown; took {:?}",
        started.elapsed()
    );
    // The stdio stream ended with the server.
    let mut stdio_stream = stdio_stream.into_inner();
    let next = within("stdio stream end", stdio_stream.message()).await;
    assert!(!matches!(next, Ok(Some(_))), "no stdio data: {next:?}");
}

#[tokio::test]
async fn caller_shutdown_ends_serve() {
    let (server, _client) = tls_server(WidgetProvider::default()).await;
    within("serve to return", server.stop())
        .await
        .expect("serve ends cleanly");
}

#[tokio::test]
async fn health_reports_plugin_serving() {
    use rdsrot::server::proto::health::{health_client::HealthClient, HealthCheckRequest};
    let (server, client) = tls_server(WidgetProvider::default()).await;
    let mut health = HealthClient::new(server.connect(Some(&client)).await.expect("connect"));
    let answer = health
        .check(HealthCheckRequest {
            service: "plugin".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        answer.status,
        rdsrot::server::proto::health::health_check_response::ServingStatus::Serving as i32
    );
}

// --- Who may connect -------------------------------------------------------

/// Connects and makes one call; Err if either step fails.
async fn try_schema_call(
    server: &InProcessServer,
    client: Option<&ClientIdentity>,
) -> Result<(), String> {
    let channel = server.connect(client).await?;
    provider_client(channel)
        .get_provider_schema(pb::get_provider_schema::Request {})
        .await
        .map(|_| ())
        .map_err(|status| status.to_string())
}

#[tokio::test]
async fn a_different_client_certificate_is_refused() {
    let (server, client) = tls_server(WidgetProvider::default()).await;
    let stranger = ClientIdentity::terraform_like();
    let refused = within(
        "a stranger's call",
        try_schema_call(&server, Some(&stranger)),
    )
    .await;
    assert!(
        refused.is_err(),
        "a different P-521 certificate must be refused"
    );
    // The refusal did not stop the server: the right client still gets in.
    within(
        "the pinned client's call",
        try_schema_call(&server, Some(&client)),
    )
    .await
    .expect("the pinned certificate is accepted after a refusal");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let (server, client) = tls_server(WidgetProvider::default()).await;
    let refused = within("an anonymous call", try_schema_call(&server, None)).await;
    assert!(
        refused.is_err(),
        "a client without a certificate must be refused"
    );
    within(
        "the pinned client's call",
        try_schema_call(&server, Some(&client)),
    )
    .await
    .expect("the pinned certificate is accepted after a refusal");
}

#[tokio::test]
async fn tls_1_2_clients_are_held_to_the_same_pin() {
    use crate::support::grpc::connect_tls_with_versions;
    let (server, client) = tls_server(WidgetProvider::default()).await;
    let server_cert = server.server_cert.clone().expect("TLS server");
    let call = |channel: tonic::transport::Channel| async move {
        provider_client(channel)
            .get_provider_schema(pb::get_provider_schema::Request {})
            .await
            .map(|_| ())
            .map_err(|s| s.to_string())
    };
    let tls12 = &[&rustls::version::TLS12];

    // Under TLS 1.2 the P-521 signature is checked too (Go sends it there).
    let channel = within(
        "TLS 1.2 connect",
        connect_tls_with_versions(server.addr, server_cert.clone(), Some(&client), tls12),
    )
    .await
    .expect("the pinned client connects over TLS 1.2");
    within("TLS 1.2 call", call(channel))
        .await
        .expect("the pinned client's call succeeds over TLS 1.2");

    let stranger = ClientIdentity::terraform_like();
    let refused = within("a stranger over TLS 1.2", async {
        let channel =
            connect_tls_with_versions(server.addr, server_cert.clone(), Some(&stranger), tls12)
                .await?;
        call(channel).await
    })
    .await;
    assert!(
        refused.is_err(),
        "a different certificate is refused over TLS 1.2"
    );
}

#[tokio::test]
async fn a_plaintext_client_cannot_talk_to_the_tls_server() {
    let (server, _client) = tls_server(WidgetProvider::default()).await;
    let attempt = within("a plaintext call", async {
        let channel = crate::support::grpc::connect_plain(server.addr).await?;
        provider_client(channel)
            .get_provider_schema(pb::get_provider_schema::Request {})
            .await
            .map(|_| ())
            .map_err(|s| s.to_string())
    })
    .await;
    assert!(attempt.is_err());
}

#[tokio::test]
async fn plaintext_mode_serves_without_tls() {
    let server = InProcessServer::start(Arc::new(WidgetProvider::default()), None).await;
    assert!(server.server_cert.is_none());
    within("a plaintext call", try_schema_call(&server, None))
        .await
        .expect("plaintext server answers a plaintext client");
}

// --- The binary ------------------------------------------------------------

const BINARY: &str = env!("CARGO_BIN_EXE_terraform-provider-rdsrot");
const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// The binary with a clean plugin environment: none of the variables
/// Terraform sets, whatever the test runner's environment holds.
fn plugin_command() -> Command {
    let mut cmd = Command::new(BINARY);
    for var in [
        "TF_PLUGIN_MAGIC_COOKIE",
        "PLUGIN_PROTOCOL_VERSIONS",
        "PLUGIN_MIN_PORT",
        "PLUGIN_MAX_PORT",
        "PLUGIN_CLIENT_CERT",
        "TF_LOG",
        "TF_LOG_PROVIDER",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

#[test]
fn binary_run_by_hand_explains_itself_and_exits_1() {
    let out = plugin_command().output().expect("binary runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("This binary is a plugin"), "{stderr}");
    assert!(stderr.contains("not meant to be run by hand"), "{stderr}");
}

#[test]
fn binary_refuses_hosts_without_protocol_6() {
    let out = plugin_command()
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("protocol version 6"), "{stderr}");
    assert!(stderr.contains("\"5\""), "{stderr}");
}

#[test]
fn binary_reports_a_bad_port_range() {
    let out = plugin_command()
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_MIN_PORT", "lots")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLUGIN_MIN_PORT"));
}

/// The plugin binary running as Terraform runs it, with its stdout read
/// line by line in the background. Killed if a test fails before it exits.
struct RunningPlugin {
    child: Child,
    stdout_lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl RunningPlugin {
    fn spawn(mut cmd: Command) -> RunningPlugin {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (line_tx, stdout_lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        RunningPlugin {
            child,
            stdout_lines,
        }
    }

    /// The next line on stdout.
    async fn line(&mut self, what: &str) -> String {
        within(what, self.stdout_lines.recv())
            .await
            .unwrap_or_else(|| panic!("stdout closed before {what}"))
    }

    /// Sends SIGINT, as a terminal's Ctrl-C does.
    #[cfg(unix)]
    fn interrupt(&self) {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    /// Waits for the process to exit by itself, at most 2 seconds after
    /// `after` (named in the failure).
    async fn exit_status(&mut self, after: &str) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "still running 2 s after {after}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RunningPlugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn binary_handshake_serves_mtls_and_exits_on_shutdown() {
    let client = ClientIdentity::terraform_like();
    let mut cmd = plugin_command();
    cmd.env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6,5")
        .env("PLUGIN_CLIENT_CERT", &client.cert_pem);
    let mut plugin = RunningPlugin::spawn(cmd);
    let line = plugin.line("the handshake line").await;

    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields.len(), 6, "{line}");
    assert_eq!(&fields[..3], &["1", "6", "tcp"]);
    assert_eq!(fields[4], "grpc");
    let addr: std::net::SocketAddr = fields[3].parse().expect("an address");
    assert!(addr.ip().is_loopback());
    assert!((10000..=25000).contains(&addr.port()));
    assert!(!fields[5].contains('='), "no base64 padding");
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(fields[5])
        .expect("the certificate is unpadded standard base64");
    // DER: a SEQUENCE with a long-form length.
    assert_eq!(der.first(), Some(&0x30));
    let server_cert = rustls::pki_types::CertificateDer::from(der);

    // A terminal Ctrl-C reaches the plugin too; it must keep serving and
    // wait for StopProvider instead.
    #[cfg(unix)]
    {
        plugin.interrupt();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            plugin.child.try_wait().expect("wait").is_none(),
            "the plugin survives SIGINT"
        );
    }

    // Terraform's first call, over the announced certificate.
    let channel = within("connect", connect_tls(addr, server_cert, Some(&client)))
        .await
        .expect("TLS connection with the pinned certificate");
    let schema = within(
        "GetProviderSchema",
        provider_client(channel.clone()).get_provider_schema(pb::get_provider_schema::Request {}),
    )
    .await
    .expect("schema served")
    .into_inner();
    assert!(schema.provider.and_then(|p| p.block).is_some());

    // Shutdown: the process exits promptly and successfully.
    within("Shutdown", controller_client(channel).shutdown(Empty {}))
        .await
        .expect("Shutdown answers");
    let status = plugin.exit_status("Shutdown").await;
    assert!(status.success(), "{status:?}");
    // Nothing else ever reached stdout.
    let extra = plugin.stdout_lines.recv().await;
    assert_eq!(extra, None, "stdout carries only the handshake line");
}

#[cfg(unix)]
#[tokio::test]
async fn binary_debug_mode_prints_reattach_config_and_serves_plaintext() {
    let mut cmd = plugin_command();
    cmd.arg("--debug");
    let mut plugin = RunningPlugin::spawn(cmd);
    let line = plugin.line("the reattach line").await;
    let json = line
        .strip_prefix("TF_REATTACH_PROVIDERS='")
        .and_then(|rest| rest.strip_suffix('\''))
        .unwrap_or_else(|| panic!("not an export line: {line}"));
    let config: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    let entry = &config["registry.terraform.io/rdsrot/rdsrot"];
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Test"], true);
    assert_eq!(entry["Pid"], plugin.child.id());
    // Plaintext, so on a socket only this user can open, not a port.
    assert_eq!(entry["Addr"]["Network"], "unix");
    let socket = std::path::PathBuf::from(entry["Addr"]["String"].as_str().expect("a path"));

    let channel = within("connect", connect_unix(socket))
        .await
        .expect("plaintext connection");
    within(
        "GetProviderSchema",
        provider_client(channel).get_provider_schema(pb::get_provider_schema::Request {}),
    )
    .await
    .expect("schema served in debug mode");

    // In debug mode Ctrl-C is how the user stops it.
    plugin.interrupt();
    let status = plugin.exit_status("Ctrl-C").await;
    assert!(status.success(), "{status:?}");
}

// --- Provider functions ----------------------------------------------------

/// The rdsrot provider itself over mTLS: its functions need no
/// configuration and no AWS.
async fn rdsrot_rpc() -> (InProcessServer, ProviderClient<Channel>) {
    let client = ClientIdentity::terraform_like();
    let server = InProcessServer::start(
        Arc::new(rdsrot::provider::RdsrotProvider::new()),
        Some(&client),
    )
    .await;
    let rpc = provider_client(server.connect(Some(&client)).await.expect("connect"));
    (server, rpc)
}

fn argument(value: &Value, ty: &Type) -> pb::DynamicValue {
    pb::DynamicValue {
        msgpack: msgpack::encode(value, ty).expect("argument encodes"),
        json: Vec::new(),
    }
}

async fn call(
    rpc: &mut ProviderClient<Channel>,
    name: &str,
    arguments: Vec<pb::DynamicValue>,
) -> pb::call_function::Response {
    within(
        "CallFunction",
        rpc.call_function(pb::call_function::Request {
            name: name.into(),
            arguments,
        }),
    )
    .await
    .expect("CallFunction answers OK even for bad arguments")
    .into_inner()
}

#[tokio::test]
async fn functions_are_listed_with_cty_types_in_every_listing() {
    let (_server, mut rpc) = rdsrot_rpc().await;
    let functions = rpc
        .get_functions(pb::get_functions::Request {})
        .await
        .expect("GetFunctions answers")
        .into_inner()
        .functions;
    let mut names: Vec<&String> = functions.keys().collect();
    names.sort();
    assert_eq!(names, ["rotation_interval_days", "template_application_id"]);
    let interval = &functions["rotation_interval_days"];
    let parameters: Vec<(&str, &[u8])> = interval
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.r#type.as_slice()))
        .collect();
    assert_eq!(
        parameters,
        [
            ("max_credential_age_days", br#""number""#.as_slice()),
            ("strategy", br#""string""#.as_slice())
        ]
    );
    assert_eq!(
        interval.r#return.as_ref().expect("return").r#type,
        br#""number""#.to_vec()
    );
    let template = &functions["template_application_id"];
    assert_eq!(
        template.r#return.as_ref().expect("return").r#type,
        br#""string""#.to_vec()
    );
    assert!(functions
        .values()
        .all(|f| !f.summary.is_empty() && !f.description.is_empty()));

    let schema = rpc
        .get_provider_schema(pb::get_provider_schema::Request {})
        .await
        .expect("GetProviderSchema answers")
        .into_inner();
    assert_eq!(
        schema.functions, functions,
        "field 7 lists the same functions"
    );
    let meta = rpc
        .get_metadata(pb::get_metadata::Request {})
        .await
        .expect("GetMetadata answers")
        .into_inner();
    let mut listed: Vec<&str> = meta.functions.iter().map(|f| f.name.as_str()).collect();
    listed.sort();
    assert_eq!(
        listed,
        ["rotation_interval_days", "template_application_id"]
    );
    assert_eq!(meta.resources[0].type_name, "rdsrot_rotation");
}

#[tokio::test]
async fn call_function_answers_values_and_errors_naming_the_argument() {
    let (_server, mut rpc) = rdsrot_rpc().await;

    let answer = call(
        &mut rpc,
        "rotation_interval_days",
        vec![
            argument(&Value::int(90), &Type::Number),
            argument(&Value::string("multi_user"), &Type::String),
        ],
    )
    .await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    let result = answer.result.expect("a result");
    assert_eq!(
        msgpack::decode(&result.msgpack, &Type::Number).expect("a number"),
        Value::int(44)
    );

    // Arguments in JSON decode too, as every DynamicValue may come.
    let answer = call(
        &mut rpc,
        "template_application_id",
        vec![
            pb::DynamicValue {
                msgpack: Vec::new(),
                json: br#""postgresql_multi_user""#.to_vec(),
            },
            argument(&Value::string("eu-west-1"), &Type::String),
        ],
    )
    .await;
    let result = answer.result.expect("a result");
    assert_eq!(
        msgpack::decode(&result.msgpack, &Type::String).expect("a string"),
        Value::string(
            "arn:aws:serverlessrepo:us-east-1:297356227824:applications/\
SecretsManagerRDSPostgreSQLRotationMultiUser"
        )
    );

    for (name, arguments, at, mentions) in [
        (
            "rotation_interval_days",
            vec![
                argument(&Value::int(1), &Type::Number),
                argument(&Value::string("multi_user"), &Type::String),
            ],
            Some(0),
            "max_credential_age_days",
        ),
        (
            "rotation_interval_days",
            vec![
                argument(&Value::int(30), &Type::Number),
                argument(&Value::string("dual_user"), &Type::String),
            ],
            Some(1),
            "dual_user",
        ),
        (
            "template_application_id",
            vec![
                argument(&Value::string("generic"), &Type::String),
                argument(&Value::string("Mars North"), &Type::String),
            ],
            Some(1),
            "Mars North",
        ),
        (
            "template_application_id",
            vec![
                argument(&Value::string("cobol_single_user"), &Type::String),
                argument(&Value::string("eu-west-1"), &Type::String),
            ],
            Some(0),
            "cobol_single_user",
        ),
        // A string where a number is declared: the decoding names it.
        (
            "rotation_interval_days",
            vec![
                argument(&Value::string("ninety"), &Type::String),
                argument(&Value::string("multi_user"), &Type::String),
            ],
            Some(0),
            "max_credential_age_days",
        ),
        (
            "rotation_interval_days",
            vec![argument(&Value::int(30), &Type::Number)],
            None,
            "takes 2 arguments",
        ),
        ("no_such_function", vec![], None, "no_such_function"),
    ] {
        let answer = call(&mut rpc, name, arguments).await;
        assert!(answer.result.is_none(), "{name}: no result with an error");
        let error = answer.error.expect("a function error");
        assert_eq!(error.function_argument, at, "{name}: {}", error.text);
        assert!(
            error.text.contains(mentions),
            "{name}: {:?} does not mention {mentions:?}",
            error.text
        );
    }
}

// --- Transport without TLS, and the connection cap -------------------------

/// A plaintext channel over the Unix socket at `path`, as go-plugin's client
/// dials a `unix` handshake address.
#[cfg(unix)]
async fn connect_unix(path: std::path::PathBuf) -> Result<Channel, String> {
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_timeout(crate::support::grpc::STEP_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| format!("{e:?}"))
}

/// Without PLUGIN_CLIENT_CERT (TF_DISABLE_PLUGIN_TLS) nothing guards a TCP
/// port from other local users, so the binary announces a Unix socket that
/// only its owner can open, in a fresh private directory under
/// PLUGIN_UNIX_SOCKET_DIR, and removes both when it exits.
#[cfg(unix)]
#[tokio::test]
async fn binary_without_tls_serves_on_a_private_unix_socket() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    let socket_dir = tempfile::tempdir().expect("a socket directory");
    let mut cmd = plugin_command();
    cmd.env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env("PLUGIN_UNIX_SOCKET_DIR", socket_dir.path());
    let mut plugin = RunningPlugin::spawn(cmd);
    let line = plugin.line("the handshake line").await;

    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields.len(), 6, "{line}");
    assert_eq!(&fields[..3], &["1", "6", "unix"], "{line}");
    assert_eq!(fields[4], "grpc");
    assert_eq!(fields[5], "", "no certificate without TLS");
    let socket = std::path::PathBuf::from(fields[3]);
    let private_dir = socket.parent().expect("the socket's directory").to_owned();
    assert_eq!(private_dir.parent(), Some(socket_dir.path()), "{line}");
    let dir_mode = std::fs::metadata(&private_dir)
        .expect("directory")
        .permissions();
    assert_eq!(dir_mode.mode() & 0o777, 0o700, "directory mode");
    let socket_meta = std::fs::metadata(&socket).expect("socket file");
    assert!(socket_meta.file_type().is_socket());
    assert_eq!(
        socket_meta.permissions().mode() & 0o777,
        0o600,
        "socket mode"
    );

    let channel = within("connect", connect_unix(socket.clone()))
        .await
        .expect("plaintext connection over the Unix socket");
    let schema = within(
        "GetProviderSchema",
        provider_client(channel.clone()).get_provider_schema(pb::get_provider_schema::Request {}),
    )
    .await
    .expect("schema served")
    .into_inner();
    assert!(schema.provider.and_then(|p| p.block).is_some());

    within("Shutdown", controller_client(channel).shutdown(Empty {}))
        .await
        .expect("Shutdown answers");
    let status = plugin.exit_status("Shutdown").await;
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "socket removed on exit");
    assert!(!private_dir.exists(), "its directory removed on exit");
}

/// Connections that never finish their TLS handshake hold a slot each for
/// up to the handshake timeout; past `MAX_CONNECTIONS` the server accepts
/// nothing more until one closes, and then serves again.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let (server, client) = tls_server(WidgetProvider::default()).await;
    let mut silent = Vec::new();
    for _ in 0..rdsrot::server::MAX_CONNECTIONS {
        let tcp = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("a TCP connection");
        silent.push(tcp);
    }
    let held_off = tokio::time::timeout(
        Duration::from_millis(1500),
        try_schema_call(&server, Some(&client)),
    )
    .await;
    assert!(
        held_off.is_err(),
        "with every slot held, a new connection must wait: {held_off:?}"
    );
    drop(silent);
    within(
        "a call once the slots are free",
        try_schema_call(&server, Some(&client)),
    )
    .await
    .expect("served once the silent connections closed");
}

/// `TF_DISABLE_PLUGIN_TLS=1`: Terraform passes no client certificate and
/// dials the Unix socket the handshake names; a plan reading the status
/// data source from the emulator goes through it, with every client.
#[test]
fn terraform_plans_with_plugin_tls_disabled() {
    use crate::support::moto::{create_secret, Emulator};
    use crate::support::terraform::{clients, required_providers_block, Workspace};

    for client in clients() {
        let Some(emulator) = Emulator::try_start() else {
            return;
        };
        let arn = crate::e2e::block_on(create_secret(
            &emulator.secretsmanager(),
            "transport/no-tls",
            "{\"username\":\"app\",\"password\":\"transport-no-tls-4821\"}",
        ));
        let mut ws = Workspace::new(&client).with_emulator(&emulator);
        ws.set_env("TF_DISABLE_PLUGIN_TLS", "1");
        let socket_dir = ws.path().display().to_string();
        ws.set_env("PLUGIN_UNIX_SOCKET_DIR", &socket_dir);
        ws.forbid("transport-no-tls-4821");
        ws.write(
            "main.tf",
            &format!(
                "{}\nprovider \"rdsrot\" {{}}\n\n\
                 data \"rdsrot_rotation_status\" \"db\" {{\n  secret_id = \"{arn}\"\n}}\n\n\
                 output \"rotation_in_progress\" {{\n  \
                 value = data.rdsrot_rotation_status.db.rotation_in_progress\n}}\n",
                required_providers_block()
            ),
        );
        let plan = ws.terraform(&["plan", "-input=false", "-no-color"]);
        plan.assert_success();
        plan.assert_mentions("rotation_in_progress = false");
        // The provider's own log line, which Terraform copies into its trace.
        let trace = std::fs::read_to_string(&ws.trace_log).expect("the trace log");
        let serving = trace
            .lines()
            .find(|l| l.contains("plugin serving"))
            .unwrap_or_else(|| panic!("{client}: no \"plugin serving\" line in the trace"));
        assert!(serving.contains("tls=false"), "{client}: {serving}");
        let socket = serving
            .split_whitespace()
            .find_map(|field| field.strip_prefix("address="))
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| panic!("{client}: no address in {serving}"));
        assert_eq!(
            socket.parent().and_then(|d| d.parent()),
            Some(ws.path()),
            "{client}: {serving}"
        );
        assert!(
            !socket.exists(),
            "{client}: the socket outlived the provider"
        );
        ws.assert_no_leaks();
    }
}
