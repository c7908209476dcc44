//! ARN parsing: `arn:partition:service:region:account:resource`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        let valid =
            arn.partition.starts_with("aws") && !arn.service.is_empty() && !arn.resource.is_empty();
        valid.then_some(arn)
    }
}

/// The DNS suffix of a partition's service endpoints.
pub fn dns_suffix(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    }
}

/// The partition a region belongs to.
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The role name of an IAM role ARN (`arn:aws:iam::123:role/path/name`).
pub fn role_name(role_arn: &str) -> Option<&str> {
    let arn = Arn::parse(role_arn)?;
    let rest = arn.resource.strip_prefix("role/")?;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_secret_arn_whose_name_has_colons_in_resource() {
        let a = Arn::parse("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf")
            .expect("valid");
        assert_eq!(a.service, "secretsmanager");
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.account, "123456789012");
        assert_eq!(a.resource, "secret:db-AbCdEf");
    }

    #[test]
    fn rejects_non_arns() {
        assert!(Arn::parse("db").is_none());
        assert!(Arn::parse("arn:aws:lambda").is_none());
        assert!(Arn::parse("arn:xyz:lambda:r:1:function:f").is_none());
    }

    #[test]
    fn role_name_drops_the_path() {
        assert_eq!(role_name("arn:aws:iam::1:role/service/x/r1"), Some("r1"));
        assert_eq!(role_name("arn:aws:iam::1:role/r2"), Some("r2"));
        assert_eq!(role_name("arn:aws:iam::1:user/u"), None);
    }
}
