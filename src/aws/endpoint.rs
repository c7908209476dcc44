//! Where an endpoint URL points, as far as the safety of what travels to it
//! goes: session tokens and secret values (the provider's own calls), or
//! every new password (the rotation function's `endpoint`).

/// Hosts that never leave this machine. Only these three spellings: a
/// name that merely resolves to loopback could resolve elsewhere tomorrow.
pub const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// AWS's endpoint domains: the commercial and GovCloud partitions
/// (`amazonaws.com`), China (`amazonaws.com.cn`) and the dual-stack names
/// (`api.aws`). FIPS endpoints (`secretsmanager-fips.<region>.amazonaws.com`)
/// and VPC endpoints (`vpce-*.vpce.amazonaws.com`) are in them too.
pub const AWS_DOMAINS: [&str; 3] = ["amazonaws.com", "amazonaws.com.cn", "api.aws"];

#[derive(Debug, PartialEq, Eq)]
pub enum EndpointHost {
    /// This machine: a local emulator, for which plain `http://` is fine.
    Loopback,
    /// A host in one of AWS's domains.
    Aws,
    /// Any other host, named in a warning.
    OutsideAws(String),
}

/// Where `url` points. Plain `http://` off this machine is an error whose
/// text ends with `what_travels` (e.g. "the rotation Lambda sends new
/// passwords there").
pub fn classify(url: &str, what_travels: &str) -> Result<EndpointHost, String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_and_port.find(']') {
        Some(end) if host_and_port.starts_with('[') => &host_and_port[..=end],
        _ => host_and_port.split(':').next().unwrap_or_default(),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if LOOPBACK_HOSTS.contains(&host.as_str()) {
        return Ok(EndpointHost::Loopback);
    }
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "{url:?} must use https://: {what_travels}. Plain http:// is accepted only for this \
machine ({}).",
            LOOPBACK_HOSTS.join(", ")
        ));
    }
    let in_aws = AWS_DOMAINS
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")));
    Ok(if in_aws {
        EndpointHost::Aws
    } else {
        EndpointHost::OutsideAws(host)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_told_apart_without_resolving_them() {
        let why = "x";
        assert_eq!(
            classify("http://127.0.0.1:4566", why),
            Ok(EndpointHost::Loopback)
        );
        assert_eq!(
            classify("http://[::1]:4566/", why),
            Ok(EndpointHost::Loopback)
        );
        assert_eq!(
            classify("https://secretsmanager-fips.us-east-1.amazonaws.com", why),
            Ok(EndpointHost::Aws)
        );
        assert_eq!(
            classify("https://evil.example.com.", why),
            Ok(EndpointHost::OutsideAws("evil.example.com".into()))
        );
        assert_eq!(
            classify("https://amazonaws.com.evil.example", why),
            Ok(EndpointHost::OutsideAws(
                "amazonaws.com.evil.example".into()
            ))
        );
        assert!(classify("http://secretsmanager.us-east-1.amazonaws.com", why).is_err());
        assert!(classify("http://user@127.0.0.2", why).is_err());
    }
}
