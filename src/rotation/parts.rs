//! Shared pieces of the apply, read and import steps: names the provider
//! gives to what it creates, the master-secret policy document, and rules
//! conversion between the model and AWS.

use crate::aws::secretsmanager::Rules;

use super::model::{Attr, RotationRules};

/// The inline policy on the rotation Lambda's role that grants access to
/// the master secret.
pub const MASTER_POLICY_NAME: &str = "rdsrot-master-secret-access";

/// The name passed to the repository; CloudFormation's stack is then
/// `serverlessrepo-<this>`. Stack names allow no underscores and must start
/// with a letter; default function names already start with `rdsrot-`.
pub fn stack_name_for(function_name: &str) -> String {
    let name = function_name.replace('_', "-");
    if name.starts_with("rdsrot-") {
        name
    } else {
        format!("rdsrot-{name}")
    }
}

pub fn master_policy_document(master_arn: &str, kms_key_arn: Option<&str>) -> serde_json::Value {
    let mut statements = vec![serde_json::json!({
        "Sid": "ReadMasterSecret",
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        "Resource": master_arn,
    })];
    if let Some(key) = kms_key_arn {
        statements.push(serde_json::json!({
            "Sid": "DecryptMasterSecret",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key,
        }));
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements})
}

/// What a (possibly edited) master policy actually grants: the secret that
/// `GetSecretValue` is allowed on, and the key `kms:Decrypt` is allowed on.
pub fn granted_by_master_policy(doc: &serde_json::Value) -> (Option<String>, Option<String>) {
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => vec![],
    };
    let allows = |s: &serde_json::Value, action: &str| -> bool {
        if s["Effect"].as_str() != Some("Allow") {
            return false;
        }
        match &s["Action"] {
            serde_json::Value::String(a) => a.eq_ignore_ascii_case(action),
            serde_json::Value::Array(a) => a
                .iter()
                .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(action))),
            _ => false,
        }
    };
    let resource = |s: &serde_json::Value| -> Option<String> {
        match &s["Resource"] {
            serde_json::Value::String(r) => Some(r.clone()),
            serde_json::Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_string),
            _ => None,
        }
    };
    let find = |action: &str| {
        statements
            .iter()
            .find(|s| allows(s, action))
            .and_then(resource)
    };
    let master = find("secretsmanager:GetSecretValue").filter(|_| {
        statements
            .iter()
            .any(|s| allows(s, "secretsmanager:DescribeSecret"))
    });
    (master, find("kms:Decrypt"))
}

/// The rules to send to AWS for the planned block.
pub fn desired_rules(r: &RotationRules) -> Rules {
    Rules {
        automatically_after_days: if r.schedule_expression.is_null() {
            r.automatically_after_days.known().copied()
        } else {
            None
        },
        schedule_expression: r.schedule_expression.known().cloned(),
        duration: r.duration.known().cloned(),
    }
}

/// Whether AWS's rules are the ones wanted. AWS also reports a computed
/// `AutomaticallyAfterDays` next to a schedule expression: ignore it then.
pub fn rules_match(want: &Rules, have: &Rules) -> bool {
    let schedule = match &want.schedule_expression {
        Some(e) => have.schedule_expression.as_deref() == Some(e),
        None => {
            have.schedule_expression.is_none()
                && have.automatically_after_days == want.automatically_after_days
                || have.schedule_expression.as_deref()
                    == want
                        .automatically_after_days
                        .map(|d| format!("rate({d} days)"))
                        .as_deref()
        }
    };
    schedule && want.duration == have.duration
}

/// The state's block for rules found in AWS.
pub fn rules_from_aws(have: &Rules) -> RotationRules {
    RotationRules {
        automatically_after_days: match &have.schedule_expression {
            Some(_) => Attr::Null,
            None => Attr::from_option(have.automatically_after_days),
        },
        schedule_expression: Attr::from_option(have.schedule_expression.clone()),
        max_credential_age_days: Attr::Null,
        duration: Attr::from_option(have.duration.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_valid_and_not_doubly_prefixed() {
        assert_eq!(stack_name_for("rdsrot-db-1234abcd"), "rdsrot-db-1234abcd");
        assert_eq!(stack_name_for("my_rotator"), "rdsrot-my-rotator");
        assert_eq!(stack_name_for("9lives"), "rdsrot-9lives");
    }

    #[test]
    fn master_policy_round_trips_and_edits_show() {
        let doc = master_policy_document("arn:m", Some("arn:k"));
        assert_eq!(
            granted_by_master_policy(&doc),
            (Some("arn:m".into()), Some("arn:k".into()))
        );
        let mut edited = doc.clone();
        edited["Statement"][0]["Action"] = serde_json::json!("secretsmanager:DescribeSecret");
        assert_eq!(
            granted_by_master_policy(&edited),
            (None, Some("arn:k".into()))
        );
        let mut other = doc;
        other["Statement"][0]["Resource"] = serde_json::json!("arn:other");
        assert_eq!(
            granted_by_master_policy(&other).0.as_deref(),
            Some("arn:other")
        );
    }

    #[test]
    fn rules_ignore_the_computed_days_beside_an_expression() {
        let want = Rules {
            schedule_expression: Some("rate(10 days)".into()),
            ..Default::default()
        };
        let have = Rules {
            automatically_after_days: Some(10),
            schedule_expression: Some("rate(10 days)".into()),
            duration: None,
        };
        assert!(rules_match(&want, &have));
        let days = Rules {
            automatically_after_days: Some(10),
            ..Default::default()
        };
        assert!(rules_match(&days, &days));
        // `rate(10 days)` is the same schedule as 10 days; the reverse lacks the
        // expression that was asked for.
        assert!(rules_match(&days, &want));
        assert!(!rules_match(&want, &days));
        let changed = Rules {
            automatically_after_days: Some(11),
            ..Default::default()
        };
        assert!(!rules_match(&days, &changed));
        let with_window = Rules {
            duration: Some("2h".into()),
            ..days.clone()
        };
        assert!(!rules_match(&days, &with_window));
    }
}
