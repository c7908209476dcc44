//! Pure conversions between the generated protobuf messages and the `tf`
//! protocol model. No I/O, no gRPC status codes: failures come back as
//! diagnostics for the handlers to return.

use std::collections::HashMap;

use super::proto::tfplugin6 as pb;
use crate::tf::{
    json, msgpack, AttributePath, Block, Diagnostic, Diagnostics, Function, FunctionError,
    NestedBlock, Nesting, Parameter, PathStep, Schema, Severity, Type, Value,
};

/// msgpack's nil: a null value of any type.
const MSGPACK_NIL: u8 = 0xc0;

// --- Schemas ---------------------------------------------------------------

pub fn schema_to_proto(schema: &Schema) -> pb::Schema {
    pb::Schema {
        version: schema.version,
        // Always present, even when empty: Terraform 1.0 dereferences it.
        block: Some(block_to_proto(&schema.block)),
    }
}

fn block_to_proto(block: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: block
            .attributes
            .iter()
            .map(|a| pb::schema::Attribute {
                name: a.name.clone(),
                r#type: a.ty.to_json_bytes(),
                nested_type: None,
                description: a.description.clone(),
                required: a.required,
                optional: a.optional,
                computed: a.computed,
                sensitive: a.sensitive,
                description_kind: pb::StringKind::Markdown as i32,
                deprecated: a.deprecated,
                write_only: false,
                deprecation_message: String::new(),
            })
            .collect(),
        block_types: block
            .block_types
            .iter()
            .map(nested_block_to_proto)
            .collect(),
        description: block.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: block.deprecated,
        deprecation_message: String::new(),
    }
}

fn nested_block_to_proto(nested: &NestedBlock) -> pb::schema::NestedBlock {
    use pb::schema::nested_block::NestingMode;
    let nesting = match nested.nesting {
        Nesting::Single => NestingMode::Single,
        Nesting::List => NestingMode::List,
        Nesting::Set => NestingMode::Set,
        Nesting::Map => NestingMode::Map,
        Nesting::Group => NestingMode::Group,
    };
    pb::schema::NestedBlock {
        type_name: nested.type_name.clone(),
        block: Some(block_to_proto(&nested.block)),
        nesting: nesting as i32,
        min_items: nested.min_items,
        max_items: nested.max_items,
    }
}

// --- Functions -------------------------------------------------------------

pub fn function_to_proto(function: &Function) -> pb::Function {
    pb::Function {
        parameters: function.parameters.iter().map(parameter_to_proto).collect(),
        variadic_parameter: function.variadic_parameter.as_ref().map(parameter_to_proto),
        r#return: Some(pb::function::Return {
            r#type: function.return_type.to_json_bytes(),
        }),
        summary: function.summary.clone(),
        description: function.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecation_message: function.deprecation_message.clone(),
    }
}

fn parameter_to_proto(parameter: &Parameter) -> pb::function::Parameter {
    pb::function::Parameter {
        name: parameter.name.clone(),
        r#type: parameter.ty.to_json_bytes(),
        allow_null_value: parameter.allow_null_value,
        allow_unknown_values: parameter.allow_unknown_values,
        description: parameter.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
    }
}

pub fn function_error_to_proto(error: &FunctionError) -> pb::FunctionError {
    pb::FunctionError {
        text: error.text.clone(),
        function_argument: error.argument.map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
    }
}

// --- Diagnostics and paths -------------------------------------------------

pub fn diagnostics_to_proto(diagnostics: &Diagnostics) -> Vec<pb::Diagnostic> {
    diagnostics.iter().map(diagnostic_to_proto).collect()
}

fn diagnostic_to_proto(d: &Diagnostic) -> pb::Diagnostic {
    // INVALID (0) is never sent: Terraform would show it with no severity.
    let severity = match d.severity {
        Severity::Error => pb::diagnostic::Severity::Error,
        Severity::Warning => pb::diagnostic::Severity::Warning,
    };
    pb::Diagnostic {
        severity: severity as i32,
        summary: d.summary.clone(),
        detail: d.detail.clone(),
        attribute: d.attribute.as_ref().map(path_to_proto),
    }
}

pub fn path_to_proto(path: &AttributePath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: path
            .0
            .iter()
            .map(|step| pb::attribute_path::Step {
                selector: Some(match step {
                    PathStep::Attribute(name) => Selector::AttributeName(name.clone()),
                    PathStep::ElementKeyString(key) => Selector::ElementKeyString(key.clone()),
                    PathStep::ElementKeyInt(index) => Selector::ElementKeyInt(*index),
                }),
            })
            .collect(),
    }
}

/// The reverse of `path_to_proto`; steps without a selector are skipped.
pub fn path_from_proto(path: &pb::AttributePath) -> AttributePath {
    use pb::attribute_path::step::Selector;
    AttributePath(
        path.steps
            .iter()
            .filter_map(|step| {
                step.selector.as_ref().map(|s| match s {
                    Selector::AttributeName(name) => PathStep::Attribute(name.clone()),
                    Selector::ElementKeyString(key) => PathStep::ElementKeyString(key.clone()),
                    Selector::ElementKeyInt(index) => PathStep::ElementKeyInt(*index),
                })
            })
            .collect(),
    )
}

// --- Values ----------------------------------------------------------------

/// Decodes a DynamicValue against `ty`. Missing or empty means null, as
/// Terraform itself reads it; msgpack wins when both encodings are present.
/// `what` names the value in the error diagnostic ("config", "prior state").
pub fn decode_value(
    dv: Option<&pb::DynamicValue>,
    ty: &Type,
    what: &str,
) -> Result<Value, Diagnostic> {
    let Some(dv) = dv else {
        return Ok(Value::Null);
    };
    let decoded = if !dv.msgpack.is_empty() {
        msgpack::decode(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        json::decode(&dv.json, ty)
    } else {
        return Ok(Value::Null);
    };
    decoded.map_err(|e| {
        Diagnostic::error(
            format!("Invalid {what} from Terraform"),
            format!("The provider could not decode the {what} it received: {e}."),
        )
    })
}

/// Encodes a value for Terraform, always as msgpack.
pub fn encode_value(value: &Value, ty: &Type, what: &str) -> Result<pb::DynamicValue, Diagnostic> {
    if value.is_null() {
        return Ok(null_value());
    }
    msgpack::encode(value, ty)
        .map(|bytes| pb::DynamicValue {
            msgpack: bytes,
            json: Vec::new(),
        })
        .map_err(|e| {
            Diagnostic::error(
                format!("Provider produced an invalid {what}"),
                format!(
                    "The {what} does not conform to the schema: {e}. This is a bug in the provider."
                ),
            )
        })
}

/// A null value of any type.
pub fn null_value() -> pb::DynamicValue {
    pb::DynamicValue {
        msgpack: vec![MSGPACK_NIL],
        json: Vec::new(),
    }
}

/// Decodes stored state for UpgradeResourceState. Only JSON state (written
/// by Terraform 0.12 and later) is supported; flatmap state predates
/// protocol 6 and cannot be upgraded here.
pub fn decode_raw_state(raw: Option<&pb::RawState>, ty: &Type) -> Result<Value, Diagnostic> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    if !raw.json.is_empty() {
        return json::decode(&raw.json, ty).map_err(|e| {
            Diagnostic::error(
                "Invalid stored state",
                format!("The stored state could not be read with the current schema: {e}."),
            )
        });
    }
    if !raw.flatmap.is_empty() {
        return Err(Diagnostic::error(
            "Unsupported state format",
            "The stored state is in the flatmap format of Terraform 0.11 and earlier, \
             which this provider cannot read. Remove the resource from state and import it again.",
        ));
    }
    Ok(Value::Null)
}

/// The resource types of a schema, by name, with their value types
/// precomputed: every request decodes against one of these.
pub struct SchemaIndex {
    pub provider_type: Type,
    pub resources: HashMap<String, ResourceEntry>,
    pub data_sources: HashMap<String, ResourceEntry>,
    pub functions: HashMap<String, Function>,
}

pub struct ResourceEntry {
    pub version: i64,
    pub ty: Type,
}

impl SchemaIndex {
    pub fn new(schema: &crate::tf::ProviderSchema) -> SchemaIndex {
        let entries = |schemas: &[(String, Schema)]| {
            schemas
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        ResourceEntry {
                            version: s.version,
                            ty: s.block.value_type(),
                        },
                    )
                })
                .collect()
        };
        SchemaIndex {
            provider_type: schema.provider.block.value_type(),
            resources: entries(&schema.resources),
            data_sources: entries(&schema.data_sources),
            functions: schema.functions.iter().cloned().collect(),
        }
    }

    /// The entry for the data source `type_name`, or the diagnostic for a
    /// type this provider does not have.
    pub fn data_source(&self, type_name: &str) -> Result<&ResourceEntry, Diagnostic> {
        self.data_sources
            .get(type_name)
            .ok_or_else(|| unknown_type("data source", type_name))
    }

    /// The signature of the function `name`, or the error for a function
    /// this provider does not have.
    pub fn function(&self, name: &str) -> Result<&Function, FunctionError> {
        self.functions
            .get(name)
            .ok_or_else(|| FunctionError::new(format!("This provider has no function {name:?}.")))
    }

    /// The entry for `type_name`, or the diagnostic Terraform shows when a
    /// configuration names a resource type this provider does not have.
    pub fn resource(&self, type_name: &str) -> Result<&ResourceEntry, Diagnostic> {
        self.resources
            .get(type_name)
            .ok_or_else(|| unknown_type("resource", type_name))
    }
}

pub fn unknown_type(kind: &str, type_name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!("This provider has no {kind} type {type_name:?}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tf::{Attribute, ProviderSchema};

    fn sample_schema() -> Schema {
        Schema {
            version: 2,
            block: Block {
                attributes: vec![
                    Attribute::required("name", Type::String, "The **name**."),
                    Attribute::optional("tags", Type::map(Type::String), "Tags."),
                    Attribute::computed("id", Type::String, "Id.").sensitive(),
                ],
                block_types: vec![NestedBlock {
                    type_name: "rule".into(),
                    block: Block {
                        attributes: vec![Attribute::required("days", Type::Number, "Days.")],
                        ..Block::default()
                    },
                    nesting: Nesting::List,
                    min_items: 0,
                    max_items: 1,
                }],
                description: "Sample.".into(),
                deprecated: false,
            },
        }
    }

    #[test]
    fn schema_keeps_flags_types_and_markdown_kind() {
        let proto = schema_to_proto(&sample_schema());
        assert_eq!(proto.version, 2);
        let block = proto.block.expect("block always set");
        assert_eq!(block.description_kind, pb::StringKind::Markdown as i32);
        let name = &block.attributes[0];
        assert!(name.required && !name.optional && !name.computed);
        assert_eq!(name.r#type, br#""string""#.to_vec());
        let tags = &block.attributes[1];
        assert_eq!(tags.r#type, br#"["map","string"]"#.to_vec());
        let id = &block.attributes[2];
        assert!(id.computed && id.sensitive && !id.write_only);
        let rule = &block.block_types[0];
        assert_eq!(
            rule.nesting,
            pb::schema::nested_block::NestingMode::List as i32
        );
        assert_eq!((rule.min_items, rule.max_items), (0, 1));
        assert!(rule.block.is_some());
    }

    #[test]
    fn functions_carry_typed_parameters_and_return() {
        let function = Function {
            parameters: vec![Parameter::new("days", Type::Number, "Days.")],
            variadic_parameter: None,
            return_type: Type::list(Type::String),
            summary: "Sum.".into(),
            description: "Desc.".into(),
            deprecation_message: String::new(),
        };
        let proto = function_to_proto(&function);
        assert_eq!(proto.parameters[0].name, "days");
        assert_eq!(proto.parameters[0].r#type, br#""number""#.to_vec());
        assert!(!proto.parameters[0].allow_null_value && !proto.parameters[0].allow_unknown_values);
        assert_eq!(
            proto.r#return.expect("return").r#type,
            br#"["list","string"]"#.to_vec()
        );
        assert_eq!(proto.description_kind, pb::StringKind::Markdown as i32);
        let error = function_error_to_proto(&FunctionError::argument(1, "bad"));
        assert_eq!(error.function_argument, Some(1));
        assert_eq!(
            function_error_to_proto(&FunctionError::new("x")).function_argument,
            None
        );
    }

    #[test]
    fn empty_schema_still_has_a_block() {
        let proto = schema_to_proto(&Schema {
            version: 0,
            block: Block::default(),
        });
        assert!(proto.block.is_some());
    }

    #[test]
    fn diagnostics_carry_severity_and_path() {
        let diags: Diagnostics = vec![
            Diagnostic::error("bad", "very bad")
                .at(AttributePath::root("rule").index(0).attr("days")),
            Diagnostic::warning("hmm", "").at(AttributePath::root("tags").key("env")),
        ]
        .into_iter()
        .collect();
        let proto = diagnostics_to_proto(&diags);
        assert_eq!(proto[0].severity, pb::diagnostic::Severity::Error as i32);
        assert_eq!(proto[1].severity, pb::diagnostic::Severity::Warning as i32);
        let path = path_from_proto(proto[0].attribute.as_ref().expect("path"));
        assert_eq!(path.to_string(), "rule[0].days");
        let path = path_from_proto(proto[1].attribute.as_ref().expect("path"));
        assert_eq!(path, AttributePath::root("tags").key("env"));
        assert!(proto.iter().all(|d| d.severity != 0));
    }

    #[test]
    fn missing_and_empty_values_are_null() {
        let ty = Type::String;
        assert_eq!(decode_value(None, &ty, "config"), Ok(Value::Null));
        let empty = pb::DynamicValue::default();
        assert_eq!(decode_value(Some(&empty), &ty, "config"), Ok(Value::Null));
        assert_eq!(decode_raw_state(None, &ty), Ok(Value::Null));
    }

    #[test]
    fn null_encodes_as_msgpack_nil() {
        let dv = encode_value(&Value::Null, &Type::String, "state").expect("null encodes");
        assert_eq!(dv.msgpack, vec![0xc0]);
        assert!(dv.json.is_empty());
    }

    #[test]
    fn flatmap_state_is_refused_with_a_diagnostic() {
        let raw = pb::RawState {
            json: Vec::new(),
            flatmap: [("id".to_string(), "x".to_string())].into_iter().collect(),
        };
        let err = decode_raw_state(Some(&raw), &Type::String).expect_err("flatmap refused");
        assert_eq!(err.severity, Severity::Error);
        assert!(err.summary.contains("Unsupported state format"));
    }

    #[test]
    fn index_finds_resources_and_names_unknown_ones() {
        let schema = ProviderSchema {
            provider: Schema {
                version: 0,
                block: Block::default(),
            },
            resources: vec![("x_thing".into(), sample_schema())],
            data_sources: vec![("x_info".into(), sample_schema())],
            functions: vec![],
        };
        let index = SchemaIndex::new(&schema);
        let entry = index.resource("x_thing").expect("known");
        assert_eq!(entry.version, 2);
        assert!(matches!(&entry.ty, Type::Object(fields) if fields.contains_key("rule")));
        let err = index.resource("x_other").err().expect("unknown");
        assert!(err.detail.contains("x_other"));
        assert_eq!(index.provider_type, Type::Object(Default::default()));
        assert!(index.data_source("x_info").is_ok());
        assert!(
            index.data_source("x_thing").is_err(),
            "a resource is no data source"
        );
        assert!(index.function("nothing").is_err());
    }

    // Round trips through the codecs: these exercise tf::msgpack and
    // tf::json as the handlers use them.
    #[test]
    fn values_round_trip_through_msgpack() {
        let ty = sample_schema().block.value_type();
        let value = Value::object([
            ("name", Value::string("a")),
            ("tags", Value::Null),
            ("id", Value::Unknown),
            (
                "rule",
                Value::List(vec![Value::object([("days", Value::int(30))])]),
            ),
        ]);
        let dv = encode_value(&value, &ty, "planned state").expect("encodes");
        let back = decode_value(Some(&dv), &ty, "planned state").expect("decodes");
        assert!(back.same_as(&value), "{back:?} != {value:?}");
    }

    #[test]
    fn json_dynamic_values_and_raw_state_decode() {
        let ty = sample_schema().block.value_type();
        let json_text = br#"{"name":"a","tags":{"k":"v"},"id":"i-1","rule":[{"days":7}]}"#;
        let dv = pb::DynamicValue {
            msgpack: Vec::new(),
            json: json_text.to_vec(),
        };
        let from_dv = decode_value(Some(&dv), &ty, "state").expect("json decodes");
        let raw = pb::RawState {
            json: json_text.to_vec(),
            flatmap: Default::default(),
        };
        let from_raw = decode_raw_state(Some(&raw), &ty).expect("raw state decodes");
        assert!(from_dv.same_as(&from_raw));
        assert_eq!(from_dv.get("name"), &Value::string("a"));
        assert_eq!(from_dv.get("rule").elements().map(<[Value]>::len), Some(1));
    }

    #[test]
    fn undecodable_bytes_become_a_diagnostic() {
        let dv = pb::DynamicValue {
            msgpack: vec![0x92, 0x01],
            json: Vec::new(),
        };
        let err = decode_value(Some(&dv), &Type::String, "config").expect_err("garbage");
        assert!(err.summary.contains("config"));
    }
}
