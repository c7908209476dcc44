//! IAM: the inline policy the provider puts on the rotation Lambda's role.

use percent_encoding::percent_decode_str;

use super::error::{classify, AwsError, OptionalExt};
use super::pacing::Quota;
use super::retry::{IAM_CHANGE, READ};
use super::wait::Deadline;
use super::Clients;

/// The role policy document, decoded (IAM returns it percent-encoded).
pub async fn find_role_policy(
    c: &Clients,
    d: &Deadline,
    role: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, AwsError> {
    let out = c
        .call(d, &READ, Quota::Unpublished, || async {
            c.iam
                .get_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .map_err(classify)
        })
        .await
        .or_not_found()?;
    let Some(out) = out else { return Ok(None) };
    Ok(Some(decode_policy_document(out.policy_document())))
}

/// The names of the role's inline policies (every page).
pub async fn list_role_policy_names(
    c: &Clients,
    d: &Deadline,
    role: &str,
) -> Result<Vec<String>, AwsError> {
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = c
            .call(d, &READ, Quota::Unpublished, || async {
                c.iam
                    .list_role_policies()
                    .role_name(role)
                    .set_marker(marker.clone())
                    .send()
                    .await
                    .map_err(classify)
            })
            .await?;
        names.extend(out.policy_names().iter().cloned());
        match out.marker().filter(|m| out.is_truncated() && !m.is_empty()) {
            Some(m) => marker = Some(m.to_string()),
            None => return Ok(names),
        }
    }
}

pub fn decode_policy_document(raw: &str) -> serde_json::Value {
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    serde_json::from_str(&decoded)
        .or_else(|_| serde_json::from_str(raw))
        .unwrap_or(serde_json::Value::Null)
}

/// Putting the same document twice is harmless: a replay after a lost
/// answer needs no check.
pub async fn put_role_policy(
    c: &Clients,
    d: &Deadline,
    role: &str,
    name: &str,
    document: &serde_json::Value,
) -> Result<(), AwsError> {
    let document = document.to_string();
    c.call(d, &IAM_CHANGE, Quota::Unpublished, || async {
        c.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(&document)
            .send()
            .await
            .map_err(classify)
    })
    .await?;
    Ok(())
}

/// Not found (role or policy) counts as done.
pub async fn delete_role_policy(
    c: &Clients,
    d: &Deadline,
    role: &str,
    name: &str,
) -> Result<(), AwsError> {
    c.call(d, &IAM_CHANGE, Quota::Unpublished, || async {
        c.iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .map_err(classify)
    })
    .await
    .or_not_found()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_encoded_documents() {
        let raw = "%7B%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(decode_policy_document(raw)["Version"], "2012-10-17");
        assert_eq!(decode_policy_document("{\"a\":1}")["a"], 1);
    }
}
