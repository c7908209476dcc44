//! The Lambda's VPC placement: the template puts its own Lambda where the
//! configuration says; an existing Lambda is moved only when the
//! configuration asks, and its earlier placement is recorded so that
//! destroy (or dropping the setting) puts it back.

use crate::aws::error::AwsError;
use crate::aws::lambda::{self, FunctionInfo};
use crate::aws::wait::Deadline;
use crate::aws::Clients;
use crate::logging;

use super::model::{Attr, Rotation};
use super::private::{Private, VpcRecord};

const LOG: &str = "rotation";

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
    function: &FunctionInfo,
    p: &mut Private,
) -> Result<(), AwsError> {
    // The rotation moved to another Lambda: the one we moved goes back first.
    if let Some(orig) = p.original_vpc.clone() {
        if let Some(other) = orig.function.as_ref().filter(|f| **f != function.arn) {
            restore(c, d, other, &orig).await?;
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
    } else if let Some(orig) = &p.original_vpc {
        // No longer configured: put back what the Lambda had.
        (orig.subnet_ids.clone(), orig.security_group_ids.clone())
    } else {
        return Ok(());
    };
    if function.subnet_ids == subnets && function.security_group_ids == groups {
        if !configured && !template {
            p.original_vpc = None;
        }
        return Ok(());
    }
    if !template && configured && p.original_vpc.is_none() {
        p.original_vpc = Some(VpcRecord {
            function: Some(function.arn.clone()),
            subnet_ids: function.subnet_ids.clone(),
            security_group_ids: function.security_group_ids.clone(),
        });
    }
    logging::debug(LOG, &format!("updating VPC placement of {}", function.arn));
    d.check()?;
    lambda::update_vpc_config(c, &function.arn, &subnets, &groups, d).await?;
    if !configured && !template {
        p.original_vpc = None;
    }
    Ok(())
}

/// Puts `function` back where `orig` says, when it still exists.
async fn restore(
    c: &Clients,
    d: &Deadline,
    function: &str,
    orig: &VpcRecord,
) -> Result<(), AwsError> {
    if lambda::find_function_configuration(c, d, function)
        .await?
        .is_none()
    {
        return Ok(());
    }
    logging::debug(LOG, &format!("restoring VPC placement of {function}"));
    lambda::update_vpc_config(c, function, &orig.subnet_ids, &orig.security_group_ids, d).await
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

/// Destroy: an existing Lambda this resource moved goes back.
pub async fn undo(
    c: &Clients,
    d: &Deadline,
    lambda_arn: Option<&str>,
    p: &mut Private,
) -> Result<(), AwsError> {
    let Some(orig) = p.original_vpc.clone() else {
        return Ok(());
    };
    if let Some(function) = orig.function.as_deref().or(lambda_arn) {
        restore(c, d, function, &orig).await?;
    }
    p.original_vpc = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
