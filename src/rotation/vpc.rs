//! The Lambda's VPC placement: the template puts its own Lambda where the
//! configuration says; an existing Lambda is moved only when the
//! configuration asks, and its earlier placement is recorded so that
//! destroy (or dropping the setting) puts it back.
//!
//! Many secrets may share one existing Lambda. The first rotation that
//! moves it writes the placement it had into two tags on the Lambda, so that
//! every rotation sharing it records the same original (not the placement
//! the first one made); and the placement is put back only by the last
//! rotation that uses the Lambda, which also removes the tags.

use std::collections::HashMap;

use crate::aws::error::AwsError;
use crate::aws::lambda::{self, FunctionInfo};
use crate::aws::wait::Deadline;
use crate::aws::Clients;
use crate::logging;

use super::model::{Attr, Rotation};
use super::private::{Private, VpcRecord};

const LOG: &str = "rotation";

/// The tags holding an existing Lambda's placement from before any rotation
/// moved it (comma-separated ids; empty: not in a VPC).
pub const ORIGINAL_SUBNETS_TAG: &str = "rdsrot:original-subnet-ids";
pub const ORIGINAL_SECURITY_GROUPS_TAG: &str = "rdsrot:original-security-group-ids";

fn split_ids(v: &str) -> Vec<String> {
    let mut ids: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// The original placement the tags hold, when both are there.
pub fn original_from_tags(tags: &HashMap<String, String>) -> Option<(Vec<String>, Vec<String>)> {
    Some((
        split_ids(tags.get(ORIGINAL_SUBNETS_TAG)?),
        split_ids(tags.get(ORIGINAL_SECURITY_GROUPS_TAG)?),
    ))
}

/// The tags for a placement, unless it is too long for a tag value (256
/// characters): then only the private state records it.
pub fn tags_for(subnets: &[String], groups: &[String]) -> Option<Vec<(String, String)>> {
    let (s, g) = (subnets.join(","), groups.join(","));
    (s.len() <= 256 && g.len() <= 256).then(|| {
        vec![
            (ORIGINAL_SUBNETS_TAG.to_string(), s),
            (ORIGINAL_SECURITY_GROUPS_TAG.to_string(), g),
        ]
    })
}

fn sorted(a: &Attr<Vec<String>>) -> Vec<String> {
    let mut v = a.known().cloned().unwrap_or_default();
    v.sort();
    v
}

fn configured(r: &Rotation) -> bool {
    !r.vpc_subnet_ids.is_null() || !r.vpc_security_group_ids.is_null()
}

pub async fn ensure(
    c: &Clients,
    d: &Deadline,
    planned: &Rotation,
    secret_arn: &str,
    function: &FunctionInfo,
    p: &mut Private,
) -> Result<(), AwsError> {
    // The rotation moved to another Lambda: the one we moved goes back first
    // (unless other rotations still use it there).
    if let Some(orig) = p.original_vpc.clone() {
        if let Some(other) = orig.function.as_ref().filter(|f| **f != function.arn) {
            restore(c, d, other, &orig, secret_arn).await?;
            p.original_vpc = None;
        }
    }
    let template = !planned.rotation_type.is_null();
    let configured = configured(planned);
    let (subnets, groups) = if configured || template {
        (
            sorted(&planned.vpc_subnet_ids),
            sorted(&planned.vpc_security_group_ids),
        )
    } else if let Some(orig) = p.original_vpc.clone() {
        // No longer configured: put back what the Lambda had, unless other
        // rotations still want it where it is.
        restore(c, d, &function.arn, &orig, secret_arn).await?;
        p.original_vpc = None;
        return Ok(());
    } else {
        return Ok(());
    };
    let in_place = function.subnet_ids == subnets && function.security_group_ids == groups;
    if !template && configured && p.original_vpc.is_none() {
        // Another rotation may have moved this Lambda already: the original
        // placement is then on its tags, not where the Lambda is now. The
        // tags are believed only then: rotations sharing a Lambda place it
        // alike, so one not yet where this one puts it was moved by no
        // rotation of ours, and tags on it (anyone allowed
        // `lambda:TagResource` may write them) would choose where the last
        // destroy moves it.
        let tags = lambda::function_tags(c, d, &function.arn).await?;
        let believed = original_from_tags(&tags).filter(|_| in_place);
        let (orig_subnets, orig_groups, tagged) = match believed {
            Some((s, g)) => (s, g, true),
            None => (
                function.subnet_ids.clone(),
                function.security_group_ids.clone(),
                false,
            ),
        };
        p.original_vpc = Some(VpcRecord {
            function: Some(function.arn.clone()),
            subnet_ids: orig_subnets.clone(),
            security_group_ids: orig_groups.clone(),
        });
        if !in_place && !tagged {
            if let Some(tags) = tags_for(&orig_subnets, &orig_groups) {
                d.check()?;
                lambda::tag_function(c, d, &function.arn, &tags).await?;
            }
        }
    }
    if in_place {
        return Ok(());
    }
    logging::debug(LOG, &format!("updating VPC placement of {}", function.arn));
    d.check()?;
    lambda::update_vpc_config(c, &function.arn, &subnets, &groups, d).await
}

/// Puts `function` back where `orig` says and removes the tags, when it
/// still exists and no other secret rotates with it (the rotations that do
/// still need it where it is; the last of them puts it back).
async fn restore(
    c: &Clients,
    d: &Deadline,
    function: &str,
    orig: &VpcRecord,
    secret_arn: &str,
) -> Result<(), AwsError> {
    let Some(current) = lambda::find_function_configuration(c, d, function).await? else {
        return Ok(());
    };
    let put_back = || async {
        if current.subnet_ids != orig.subnet_ids
            || current.security_group_ids != orig.security_group_ids
        {
            logging::debug(LOG, &format!("restoring VPC placement of {function}"));
            d.check()?;
            lambda::update_vpc_config(c, function, &orig.subnet_ids, &orig.security_group_ids, d)
                .await?;
        }
        lambda::untag_function(
            c,
            d,
            &current.arn,
            &[ORIGINAL_SUBNETS_TAG, ORIGINAL_SECURITY_GROUPS_TAG],
        )
        .await
    };
    let used = c
        .sharing
        .undo_unless_used(c, d, &current.arn, secret_arn, put_back)
        .await?;
    if let Some(used) = used {
        logging::debug(
            LOG,
            &format!("leaving the VPC placement of {function}: {used}"),
        );
    }
    Ok(())
}

/// A placement other than the state's is drift on the VPC attributes, for a
/// template's Lambda and for an existing Lambda whose placement is managed.
pub fn record(function: &FunctionInfo, state: &Rotation, s: &mut Rotation, p: &Private) {
    let tracked = !state.rotation_type.is_null() || configured(state) || p.original_vpc.is_some();
    if !tracked {
        return;
    }
    let as_attr = |v: &Vec<String>| {
        if v.is_empty() {
            Attr::Null
        } else {
            Attr::Known(v.clone())
        }
    };
    if sorted(&state.vpc_subnet_ids) != function.subnet_ids {
        s.vpc_subnet_ids = as_attr(&function.subnet_ids);
    }
    if sorted(&state.vpc_security_group_ids) != function.security_group_ids {
        s.vpc_security_group_ids = as_attr(&function.security_group_ids);
    }
}

/// Destroy: an existing Lambda this resource moved goes back, when no
/// other rotation still uses it. Runs after rotation was turned off.
pub async fn undo(
    c: &Clients,
    d: &Deadline,
    lambda_arn: Option<&str>,
    secret_arn: Option<&str>,
    p: &mut Private,
) -> Result<(), AwsError> {
    let Some(orig) = p.original_vpc.clone() else {
        return Ok(());
    };
    if let Some(function) = orig.function.as_deref().or(lambda_arn) {
        restore(c, d, function, &orig, secret_arn.unwrap_or_default()).await?;
    }
    p.original_vpc = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_placement_round_trips_through_tags() {
        let subnets = vec!["subnet-1".to_string(), "subnet-2".to_string()];
        let tags: HashMap<String, String> = tags_for(&subnets, &[])
            .expect("short enough")
            .into_iter()
            .collect();
        assert_eq!(original_from_tags(&tags), Some((subnets, vec![])));
        assert_eq!(original_from_tags(&HashMap::new()), None);
        let many: Vec<String> = (0..20)
            .map(|i| format!("subnet-0123456789abcde{i:02}"))
            .collect();
        assert!(tags_for(&many, &[]).is_none(), "too long for a tag value");
    }

    #[test]
    fn an_existing_lambda_is_tracked_only_when_its_placement_is_managed() {
        let function = FunctionInfo {
            arn: "arn:f".into(),
            subnet_ids: vec!["subnet-9".into()],
            security_group_ids: vec!["sg-9".into()],
            ..Default::default()
        };
        let unmanaged = Rotation::default();
        let mut s = unmanaged.clone();
        record(&function, &unmanaged, &mut s, &Private::new());
        assert_eq!(s, unmanaged);

        let managed = Rotation {
            vpc_subnet_ids: Attr::Known(vec!["subnet-1".into()]),
            vpc_security_group_ids: Attr::Known(vec!["sg-9".into()]),
            ..Default::default()
        };
        let mut s = managed.clone();
        record(&function, &managed, &mut s, &Private::new());
        assert_eq!(s.vpc_subnet_ids, Attr::Known(vec!["subnet-9".into()]));
        assert_eq!(s.vpc_security_group_ids, managed.vpc_security_group_ids);
    }
}
