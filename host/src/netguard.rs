//! Which addresses outbound traffic on a tenant's behalf may reach: public
//! ones only, unless the operator allows private networks. Used by tenant
//! channels of built-in kinds (a DNS resolver that drops forbidden
//! addresses, so a name cannot be pointed at an internal service) and by
//! config checks of IP literals.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Loopback, private, link-local (incl. cloud metadata), CGNAT, benchmark,
/// multicast, reserved, unspecified — and the IPv6 forms that embed them.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // 100.64.0.0/10 CGNAT
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // 198.18.0.0/15 benchmarking
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
        || o[0] >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = ip.segments();
    // 64:ff9b::/96 NAT64 and 2002::/16 6to4 carry an IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return forbidden_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        return forbidden_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link local
        || (s[0] == 0 && s[1..6] == [0, 0, 0, 0, 0]) // ::/80 incl. IPv4-compatible
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

/// Why [`resolve_public`] found nothing to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} resolves to no public address; private networks are not allowed")]
    OnlyForbidden { host: String },
}

/// Resolves `host` and keeps only the addresses that are not forbidden.
pub async fn resolve_public(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ResolveError::Lookup {
            host: host.to_string(),
            source,
        })?
        .filter(|a| !is_forbidden(a.ip()))
        .collect();
    if addrs.is_empty() {
        return Err(ResolveError::OnlyForbidden {
            host: host.to_string(),
        });
    }
    Ok(addrs)
}

/// A reqwest resolver that never returns a forbidden address.
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_public(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Refuses a URL or host whose literal IP is forbidden (literals never reach
/// the resolver).
pub fn check_literal(host: &str) -> Result<(), String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost") {
        return Err(format!(
            "`{host}` is a loopback name; private networks are not allowed"
        ));
    }
    match h.parse::<IpAddr>() {
        Ok(ip) if is_forbidden(ip) => Err(format!(
            "`{host}` is a private, loopback or reserved address; private networks are not allowed"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::",
        ] {
            assert!(is_forbidden(bad.parse().unwrap()), "{bad}");
        }
        for good in ["1.1.1.1", "149.154.167.220", "2606:4700:4700::1111"] {
            assert!(!is_forbidden(good.parse().unwrap()), "{good}");
        }
        assert!(check_literal("localhost").is_err());
        assert!(check_literal("[::1]").is_err());
        assert!(check_literal("api.telegram.org").is_ok());
    }
}
