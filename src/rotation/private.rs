//! Private state: what the provider created and must undo, as versioned
//! JSON (`{"v":1,...}`). Keys are never reused for a different meaning.
//! No secret value is ever recorded here.

use serde::{Deserialize, Serialize};

use crate::aws::serverlessrepo::deployed_stack_name;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    pub v: u32,
    /// The Lambda rotation runs: the stack's, or the existing one configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<String>,
    /// The CloudFormation stack deployed from the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackRecord>,
    /// A stack being replaced (a new rotation type, or an existing Lambda
    /// instead of the template): recorded until it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_stack: Option<StackRecord>,
    /// The invoke permission statement we added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<PermissionRecord>,
    /// The inline role policy we put on the Lambda's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_policy: Option<RolePolicyRecord>,
    /// The VPC placement an existing Lambda had before we changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_vpc: Option<VpcRecord>,
    /// What import took over from a rotation set up outside this provider
    /// (see `adopt`): those objects carry no mark of ours, and destroy
    /// removes them as it removes what the provider made.
    #[serde(default, skip_serializing_if = "Adopted::is_empty")]
    pub adopted: Adopted,
    /// The template inputs the last deployment of the stack was given,
    /// configured or chosen by default: what an unset argument is compared
    /// with, so that a change made to the stack outside Terraform shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed: Option<DeployedInputs>,
    /// This resource instance's own id, made at create. It marks what the
    /// instance makes and uses (see `stack::OWNER_MARK_TAG`), so that two
    /// instances for one secret (a replacement created before the old one
    /// is destroyed, or two configurations) tell whose a part is. A record
    /// written before it existed has none: that instance is the sole owner
    /// of what it recorded, as before, unless another instance marked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What was done to the Lambda rotation used before a switch to
    /// another one: undone only once the secret rotates with the new
    /// Lambda, so that a failed switch leaves the old one still working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_permission: Option<PermissionRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_role_policy: Option<RolePolicyRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_vpc: Option<VpcRecord>,
    /// Keys this version does not know (written by a newer provider): kept
    /// and written back, so that going back and forth between versions loses
    /// no record of what to undo.
    #[serde(flatten)]
    pub unknown: serde_json::Map<String, serde_json::Value>,
}

/// The objects import took over, each by what identifies it in AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopted {
    /// The stack's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_id: Option<String>,
    /// The invoke statement: `(function ARN, statement id)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<(String, String)>,
    /// The inline role policy: `(role name, policy name)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_policy: Option<(String, String)>,
}

impl Adopted {
    pub fn is_empty(&self) -> bool {
        self == &Adopted::default()
    }

    /// Whether this statement is the one import took over.
    pub fn has_statement(&self, function: &str, sid: &str) -> bool {
        self.statement
            .as_ref()
            .is_some_and(|(f, s)| f == function && s == sid)
    }

    /// Whether this stack (by id) is the one import took over.
    pub fn has_stack(&self, stack_id: &str) -> bool {
        self.stack_id.as_deref() == Some(stack_id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackRecord {
    /// The name given to the repository; the stack is `serverlessrepo-<name>`.
    pub name: String,
    /// `None` when the creation's answer never came: the name still finds
    /// the stack.
    #[serde(default)]
    pub id: Option<String>,
    /// The Lambda the stack made, once known.
    #[serde(default)]
    pub lambda_arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionRecord {
    pub function: String,
    pub sid: String,
    /// The statement is shared by every rotation that uses the function
    /// (`permission_scope = "account"`): removed only by the last of them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolePolicyRecord {
    pub role: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedInputs {
    /// The type the stack was deployed for: the other values mean nothing
    /// for another template.
    pub rotation_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    /// `None`: the template's own default (no `endpoint` parameter sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcRecord {
    /// The function this placement belongs to.
    #[serde(default)]
    pub function: Option<String>,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

impl StackRecord {
    /// What names the stack to CloudFormation: its id, or else its name.
    pub fn stack_ref(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| deployed_stack_name(&self.name))
    }
}

impl Private {
    pub fn new() -> Private {
        Private {
            v: VERSION,
            ..Default::default()
        }
    }

    /// The private state, and a warning for the user when it cannot be read
    /// whole. Empty bytes (a resource never applied) give an empty record.
    /// Unreadable bytes give an empty record too, with a warning: starting
    /// empty only forgets what to undo, and the read step rebuilds what it
    /// can from AWS, which beats failing every operation on the resource.
    pub fn decode(bytes: &[u8]) -> (Private, Option<String>) {
        if bytes.is_empty() {
            return (Private::new(), None);
        }
        match serde_json::from_slice::<Private>(bytes) {
            Ok(p) if p.v > VERSION => {
                let warning = format!(
                    "The provider's private record of this resource was written by a newer \
version of the provider (record version {}, this one reads {VERSION}). What this version knows \
is used; the rest is kept unchanged. Use the newer provider to be sure destroy removes \
everything it made.",
                    p.v
                );
                (p, Some(warning))
            }
            Ok(p) => (p, None),
            Err(e) => (
                Private::new(),
                Some(format!(
                    "The provider's private record of this resource is unreadable ({e}), so it \
is treated as empty: what the provider made is rebuilt from AWS where it can be found. An \
object it made that cannot be found that way (for example a changed VPC placement) may not be \
undone by destroy."
                )),
            ),
        }
    }

    /// A new instance id: random, so that no two instances share one.
    pub fn new_instance_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Whether anything is recorded that destroy would have to undo.
    pub fn holds_anything(&self) -> bool {
        self.stack.is_some()
            || self.retiring_stack.is_some()
            || self.permission.is_some()
            || self.role_policy.is_some()
            || self.original_vpc.is_some()
            || self.retiring_permission.is_some()
            || self.retiring_role_policy.is_some()
            || self.retiring_vpc.is_some()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut p = self.clone();
        // A newer record keeps its version: its unknown keys are still in it.
        p.v = p.v.max(VERSION);
        // Serialising plain strings and options cannot fail.
        serde_json::to_vec(&p).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let p = Private {
            v: VERSION,
            stack: Some(StackRecord {
                name: "s".into(),
                id: Some("id".into()),
                lambda_arn: None,
            }),
            ..Default::default()
        };
        let bytes = p.encode();
        assert!(bytes.starts_with(b"{\"v\":1"));
        assert_eq!(Private::decode(&bytes), (p, None));
        assert_eq!(Private::decode(b""), (Private::new(), None));
        let (empty, warning) = Private::decode(b"not json");
        assert_eq!(empty, Private::new());
        assert!(warning.is_some_and(|w| w.contains("unreadable")));
    }

    #[test]
    fn an_instance_and_parts_set_aside_round_trip_and_count_as_made() {
        let mut p = Private::new();
        assert!(!p.holds_anything());
        p.instance = Some(Private::new_instance_id());
        assert!(!p.holds_anything(), "an id alone is nothing to undo");
        p.retiring_role_policy = Some(RolePolicyRecord {
            role: "r".into(),
            name: "n".into(),
        });
        assert!(p.holds_anything());
        assert_eq!(Private::decode(&p.encode()), (p.clone(), None));
        assert_ne!(Private::new_instance_id(), Private::new_instance_id());
        // A record from before instance ids reads back without one.
        let (old, _) = Private::decode(br#"{"v":1,"lambda":"arn:f"}"#);
        assert_eq!(old.instance, None);
    }

    #[test]
    fn a_newer_record_keeps_its_version_and_unknown_keys_and_warns() {
        let newer = br#"{"v":2,"lambda":"arn:f","shared_statement":{"sid":"s"}}"#;
        let (p, warning) = Private::decode(newer);
        assert_eq!(p.lambda.as_deref(), Some("arn:f"));
        assert!(warning.is_some_and(|w| w.contains("newer")));
        let written: serde_json::Value =
            serde_json::from_slice(&p.encode()).expect("written as JSON");
        assert_eq!(written["v"], 2);
        assert_eq!(written["shared_statement"]["sid"], "s");
    }

    #[test]
    fn a_stack_is_found_by_its_id_or_else_by_its_deployed_name() {
        let mut rec = StackRecord {
            name: "rdsrot-db".into(),
            id: None,
            lambda_arn: None,
        };
        assert_eq!(rec.stack_ref(), "serverlessrepo-rdsrot-db");
        // A record written before the id was known reads back the same.
        let p = Private {
            v: VERSION,
            stack: Some(rec.clone()),
            ..Default::default()
        };
        assert_eq!(Private::decode(&p.encode()), (p, None));
        rec.id = Some("arn:aws:cloudformation:us-east-1:1:stack/x/y".into());
        assert_eq!(
            rec.stack_ref(),
            "arn:aws:cloudformation:us-east-1:1:stack/x/y"
        );
    }
}
