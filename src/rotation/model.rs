//! The typed form of an `rdsrot_rotation` value (config, plan or state),
//! decoded once from `tf::Value` and encoded back with every attribute.

use std::collections::BTreeMap;

use crate::tf::Value;

/// One attribute: null, not yet known, or a known value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Attr<T> {
    #[default]
    Null,
    Unknown,
    Known(T),
}

impl<T> Attr<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Attr::Known(v) => Some(v),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Attr::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Attr::Unknown)
    }
    pub fn from_option(v: Option<T>) -> Self {
        match v {
            Some(v) => Attr::Known(v),
            None => Attr::Null,
        }
    }
    /// `Null` when the value is known and fails `keep`.
    pub fn filter_known(self, keep: impl FnOnce(&T) -> bool) -> Attr<T> {
        match self {
            Attr::Known(v) if !keep(&v) => Attr::Null,
            v => v,
        }
    }
    /// `self` unless it is null, then `other`.
    pub fn or(self, other: Attr<T>) -> Attr<T> {
        match self {
            Attr::Null => other,
            v => v,
        }
    }
}

impl Attr<String> {
    pub fn as_deref(&self) -> Option<&str> {
        self.known().map(String::as_str)
    }
}

fn string(v: &Value) -> Attr<String> {
    match v {
        Value::Unknown => Attr::Unknown,
        Value::String(s) => Attr::Known(s.clone()),
        _ => Attr::Null,
    }
}
fn int(v: &Value) -> Attr<i64> {
    match v {
        Value::Unknown => Attr::Unknown,
        // A fractional number cannot be a day count: keep it as an out-of-range
        // value so validation rejects it rather than silently truncating.
        Value::Number(n) => Attr::Known(n.as_i64().unwrap_or(i64::MIN)),
        _ => Attr::Null,
    }
}
fn boolean(v: &Value) -> Attr<bool> {
    match v {
        Value::Unknown => Attr::Unknown,
        Value::Bool(b) => Attr::Known(*b),
        _ => Attr::Null,
    }
}
fn string_set(v: &Value) -> Attr<Vec<String>> {
    match v {
        Value::Unknown => Attr::Unknown,
        Value::Set(items) | Value::List(items) => {
            let mut out = Vec::new();
            for i in items {
                match i {
                    Value::String(s) => out.push(s.clone()),
                    _ => return Attr::Unknown,
                }
            }
            out.sort();
            out.dedup();
            Attr::Known(out)
        }
        _ => Attr::Null,
    }
}

fn enc_string(a: &Attr<String>) -> Value {
    match a {
        Attr::Null => Value::Null,
        Attr::Unknown => Value::Unknown,
        Attr::Known(s) => Value::String(s.clone()),
    }
}
fn enc_int(a: &Attr<i64>) -> Value {
    match a {
        Attr::Null => Value::Null,
        Attr::Unknown => Value::Unknown,
        Attr::Known(i) => Value::int(*i),
    }
}
fn enc_bool(a: &Attr<bool>) -> Value {
    match a {
        Attr::Null => Value::Null,
        Attr::Unknown => Value::Unknown,
        Attr::Known(b) => Value::Bool(*b),
    }
}
fn enc_set(a: &Attr<Vec<String>>) -> Value {
    match a {
        Attr::Null => Value::Null,
        Attr::Unknown => Value::Unknown,
        Attr::Known(v) => Value::string_set(v.iter().cloned()),
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RotationRules {
    pub automatically_after_days: Attr<i64>,
    pub schedule_expression: Attr<String>,
    pub max_credential_age_days: Attr<i64>,
    pub duration: Attr<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeouts {
    pub create: Attr<String>,
    pub update: Attr<String>,
    pub delete: Attr<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rotation {
    pub id: Attr<String>,
    pub secret_id: Attr<String>,
    pub secret_arn: Attr<String>,
    pub rotation_type: Attr<String>,
    pub rotation_lambda_arn: Attr<String>,
    pub rotation_lambda_role_arn: Attr<String>,
    pub stack_id: Attr<String>,
    pub template_version: Attr<String>,
    pub function_name: Attr<String>,
    pub endpoint: Attr<String>,
    pub master_secret_arn: Attr<String>,
    pub master_secret_kms_key_arn: Attr<String>,
    pub kms_key_arn: Attr<String>,
    pub exclude_characters: Attr<String>,
    pub vpc_subnet_ids: Attr<Vec<String>>,
    pub vpc_security_group_ids: Attr<Vec<String>>,
    pub rotate_immediately: Attr<bool>,
    pub preflight_check: Attr<bool>,
    pub enabled: Attr<bool>,
    pub permission_scope: Attr<String>,
    pub permission_statement_id: Attr<String>,
    pub wait_for_rotation_timeout: Attr<String>,
    pub rotation_verified: Attr<bool>,
    /// The block list: `Unknown` when the whole list is unknown (e.g. from
    /// a `dynamic` block over an unknown collection).
    pub rotation_rules: Attr<Vec<RotationRules>>,
    /// `Null` when the block is absent.
    pub timeouts: Attr<Timeouts>,
}

impl Rotation {
    /// Decodes a value of the schema's object type. A null value decodes to
    /// all-null attributes; callers check `Value::is_null` first when that matters.
    pub fn from_value(v: &Value) -> Rotation {
        let rules = match v.get("rotation_rules") {
            Value::Unknown => Attr::Unknown,
            Value::List(items) | Value::Set(items) => Attr::Known(
                items
                    .iter()
                    .map(|r| RotationRules {
                        automatically_after_days: int(r.get("automatically_after_days")),
                        schedule_expression: string(r.get("schedule_expression")),
                        max_credential_age_days: int(r.get("max_credential_age_days")),
                        duration: string(r.get("duration")),
                    })
                    .collect(),
            ),
            _ => Attr::Null,
        };
        let timeouts = match v.get("timeouts") {
            Value::Unknown => Attr::Unknown,
            Value::Null => Attr::Null,
            t => Attr::Known(Timeouts {
                create: string(t.get("create")),
                update: string(t.get("update")),
                delete: string(t.get("delete")),
            }),
        };
        Rotation {
            id: string(v.get("id")),
            secret_id: string(v.get("secret_id")),
            secret_arn: string(v.get("secret_arn")),
            rotation_type: string(v.get("rotation_type")),
            rotation_lambda_arn: string(v.get("rotation_lambda_arn")),
            rotation_lambda_role_arn: string(v.get("rotation_lambda_role_arn")),
            stack_id: string(v.get("stack_id")),
            template_version: string(v.get("template_version")),
            function_name: string(v.get("function_name")),
            endpoint: string(v.get("endpoint")),
            master_secret_arn: string(v.get("master_secret_arn")),
            master_secret_kms_key_arn: string(v.get("master_secret_kms_key_arn")),
            kms_key_arn: string(v.get("kms_key_arn")),
            exclude_characters: string(v.get("exclude_characters")),
            vpc_subnet_ids: string_set(v.get("vpc_subnet_ids")),
            vpc_security_group_ids: string_set(v.get("vpc_security_group_ids")),
            rotate_immediately: boolean(v.get("rotate_immediately")),
            preflight_check: boolean(v.get("preflight_check")),
            enabled: boolean(v.get("enabled")),
            permission_scope: string(v.get("permission_scope")),
            permission_statement_id: string(v.get("permission_statement_id")),
            wait_for_rotation_timeout: string(v.get("wait_for_rotation_timeout")),
            rotation_verified: boolean(v.get("rotation_verified")),
            rotation_rules: rules,
            timeouts,
        }
    }

    pub fn to_value(&self) -> Value {
        let mut m: BTreeMap<String, Value> = BTreeMap::new();
        let mut s = |k: &str, a: &Attr<String>| {
            m.insert(k.into(), enc_string(a));
        };
        s("id", &self.id);
        s("secret_id", &self.secret_id);
        s("secret_arn", &self.secret_arn);
        s("rotation_type", &self.rotation_type);
        s("rotation_lambda_arn", &self.rotation_lambda_arn);
        s("rotation_lambda_role_arn", &self.rotation_lambda_role_arn);
        s("stack_id", &self.stack_id);
        s("template_version", &self.template_version);
        s("function_name", &self.function_name);
        s("endpoint", &self.endpoint);
        s("master_secret_arn", &self.master_secret_arn);
        s("master_secret_kms_key_arn", &self.master_secret_kms_key_arn);
        s("kms_key_arn", &self.kms_key_arn);
        s("exclude_characters", &self.exclude_characters);
        s("permission_scope", &self.permission_scope);
        s("permission_statement_id", &self.permission_statement_id);
        s("wait_for_rotation_timeout", &self.wait_for_rotation_timeout);
        m.insert("vpc_subnet_ids".into(), enc_set(&self.vpc_subnet_ids));
        m.insert(
            "vpc_security_group_ids".into(),
            enc_set(&self.vpc_security_group_ids),
        );
        m.insert(
            "rotate_immediately".into(),
            enc_bool(&self.rotate_immediately),
        );
        m.insert("preflight_check".into(), enc_bool(&self.preflight_check));
        m.insert("enabled".into(), enc_bool(&self.enabled));
        m.insert(
            "rotation_verified".into(),
            enc_bool(&self.rotation_verified),
        );
        let rules = match &self.rotation_rules {
            Attr::Null => Value::List(vec![]),
            Attr::Unknown => Value::Unknown,
            Attr::Known(rs) => Value::List(
                rs.iter()
                    .map(|r| {
                        Value::object([
                            (
                                "automatically_after_days",
                                enc_int(&r.automatically_after_days),
                            ),
                            ("schedule_expression", enc_string(&r.schedule_expression)),
                            (
                                "max_credential_age_days",
                                enc_int(&r.max_credential_age_days),
                            ),
                            ("duration", enc_string(&r.duration)),
                        ])
                    })
                    .collect(),
            ),
        };
        m.insert("rotation_rules".into(), rules);
        let timeouts = match &self.timeouts {
            Attr::Null => Value::Null,
            Attr::Unknown => Value::Unknown,
            Attr::Known(t) => Value::object([
                ("create", enc_string(&t.create)),
                ("update", enc_string(&t.update)),
                ("delete", enc_string(&t.delete)),
            ]),
        };
        m.insert("timeouts".into(), timeouts);
        Value::Object(m)
    }

    /// The one `rotation_rules` element, if known.
    pub fn rules(&self) -> Option<&RotationRules> {
        self.rotation_rules.known().and_then(|r| r.first())
    }

    pub fn is_multi_user(&self) -> bool {
        self.rotation_type
            .as_deref()
            .is_some_and(|t| t.ends_with("_multi_user"))
    }

    /// Whether rotation alternates between two database users, so that a
    /// password stays valid, as the fallback, one interval after it stops
    /// being current: the multi-user types, and a master secret given to an
    /// existing Lambda or the generic template (its function signs in as
    /// the master user to set the other user's password; counted as
    /// alternating, the shorter interval keeps the promise either way).
    /// `None` while either value is unknown.
    pub fn credentials_alternate(&self) -> Option<bool> {
        if self.rotation_type.is_unknown() || self.master_secret_arn.is_unknown() {
            return None;
        }
        let single_user_type = self
            .rotation_type
            .as_deref()
            .is_some_and(|t| t.ends_with("_single_user"));
        Some(
            self.is_multi_user() || (!single_user_type && self.master_secret_arn.known().is_some()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::schema::schema;

    #[test]
    fn encodes_every_attribute_of_the_schema() {
        let v = Rotation::default().to_value();
        let obj = v.as_object().expect("an object");
        let block = schema().block;
        let expected = block.attributes.len() + block.block_types.len();
        assert_eq!(obj.len(), expected);
        for a in &block.attributes {
            assert!(obj.contains_key(&a.name), "{} missing", a.name);
        }
    }

    #[test]
    fn round_trips_known_null_and_unknown() {
        let r = Rotation {
            secret_id: Attr::Known("db".into()),
            id: Attr::Unknown,
            vpc_subnet_ids: Attr::Known(vec!["subnet-1".into(), "subnet-2".into()]),
            rotate_immediately: Attr::Known(false),
            preflight_check: Attr::Known(true),
            rotation_rules: Attr::Known(vec![RotationRules {
                automatically_after_days: Attr::Known(7),
                duration: Attr::Known("2h".into()),
                ..Default::default()
            }]),
            timeouts: Attr::Known(Timeouts {
                create: Attr::Known("10m".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(Rotation::from_value(&r.to_value()), r);
    }
}
