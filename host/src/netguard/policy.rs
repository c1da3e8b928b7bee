//! The address policy: which IP addresses outbound traffic on a tenant's
//! behalf may reach. Public unicast always; loopback, private, link-local,
//! CGNAT, unique-local, benchmarking, special-purpose and non-global IPv6
//! only with `plugins.allow_private_networks = true`; cloud metadata,
//! unspecified, multicast, broadcast, reserved and documentation addresses
//! never. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64,
//! 6to4) are judged by that address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where an address falls; the text says what it is, as the delivery log
/// shows it (`127.0.0.1 is a loopback address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Public unicast: may be reached.
    Public,
    /// Reachable only when private networks are allowed.
    Private(&'static str),
    /// Never reachable.
    Never(&'static str),
}

const NON_GLOBAL: &str = "a non-global IPv6 address";

pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Why `ip` may not be reached, or `None` if it may. `allow_private` opens
/// the [`Class::Private`] ranges, never the [`Class::Never`] ones.
pub fn refused_address(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match classify(ip) {
        Class::Public => None,
        Class::Private(_) if allow_private => None,
        Class::Private(why) | Class::Never(why) => Some(why),
    }
}

/// Refused when private networks are not allowed (tenant channels of
/// built-in kinds, whose checks are all-or-nothing).
pub fn is_forbidden(ip: IpAddr) -> bool {
    refused_address(ip, false).is_some()
}

/// Splits resolved addresses into those that may be reached and, for the
/// others, the address and why not.
pub fn partition(
    addrs: impl IntoIterator<Item = SocketAddr>,
    allow_private: bool,
) -> (Vec<SocketAddr>, Vec<(IpAddr, &'static str)>) {
    let mut vetted = Vec::new();
    let mut refused = Vec::new();
    for addr in addrs {
        match refused_address(addr.ip(), allow_private) {
            None => vetted.push(addr),
            Some(why) => refused.push((addr.ip(), why)),
        }
    }
    (vetted, refused)
}

/// Refuses a URL or host whose literal IP (or `localhost` name) is
/// forbidden: literals never reach the resolver.
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

fn classify_v4(ip: Ipv4Addr) -> Class {
    let o = ip.octets();
    if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        Class::Never("a cloud metadata address")
    } else if o[0] == 0 {
        Class::Never("the unspecified (\"this network\") range")
    } else if ip.is_broadcast() {
        Class::Never("the broadcast address")
    } else if ip.is_multicast() {
        Class::Never("a multicast address")
    } else if o[0] >= 240 {
        Class::Never("a reserved address")
    } else if ip.is_documentation() {
        Class::Never("a documentation address")
    } else if ip.is_loopback() {
        Class::Private("a loopback address")
    } else if ip.is_private() {
        Class::Private("a private address")
    } else if ip.is_link_local() {
        Class::Private("a link-local address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Class::Private("a carrier-grade NAT address")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Class::Private("a benchmarking address")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Class::Private("an IETF protocol-assignment address")
    } else {
        Class::Public
    }
}

fn classify_v6(v6: Ipv6Addr) -> Class {
    let s = v6.segments();
    if let Some(v4) = embedded_v4(v6) {
        return classify_v4(v4);
    }
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        // ::a.b.c.d, the deprecated "IPv4-compatible" form: judged by its
        // IPv4 address, and never public even when that one is.
        return match classify_v4(tail_v4(s)) {
            Class::Public => Class::Private(NON_GLOBAL),
            other => other,
        };
    }
    if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Class::Never("a cloud metadata address")
    } else if v6.is_unspecified() {
        Class::Never("the unspecified address")
    } else if v6.is_multicast() {
        Class::Never("a multicast address")
    } else if v6.is_loopback() {
        Class::Private("a loopback address")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Class::Private("a unique-local (private) address")
    } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
        // fe80::/10, and fec0::/10 (deprecated site-local)
        Class::Private("a link-local address")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Class::Never("a documentation address")
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        Class::Never("a discard-only address")
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        // 2001::/23 IETF protocol assignments (incl. Teredo 2001::/32)
        Class::Private("an IETF special-purpose address")
    } else if s[0] & 0xe000 != 0x2000 {
        // Only 2000::/3 is global unicast.
        Class::Private(NON_GLOBAL)
    } else {
        Class::Public
    }
}

/// The IPv4 address in the last 32 bits.
fn tail_v4(s: [u16; 8]) -> Ipv4Addr {
    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8)
}

/// IPv4 addresses IPv6 forms route to: mapped, NAT64 (global and local), 6to4.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some(v4)
    } else if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1) {
        // 64:ff9b::/96 NAT64, 64:ff9b:1::/48 local-use NAT64
        Some(tail_v4(s))
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )) // 2002::/16 6to4
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str, private: bool) -> Option<&'static str> {
        refused_address(s.parse().unwrap(), private)
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "149.154.167.220",
            "1.1.1.1",
            "2606:4700::1111",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            // IPv4-in-IPv6 forms of a public address
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::1",
        ] {
            assert_eq!(refused(ip, false), None, "{ip}");
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn private_ranges_need_allow_private() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "fd00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2002:c0a8:0101::1",
        ] {
            assert!(refused(ip, false).is_some(), "{ip}");
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
            assert_eq!(refused(ip, true), None, "{ip}");
        }
    }

    /// The ranges built-in senders and tenant SMTP relays let through
    /// before they shared this policy with plugin egress.
    #[test]
    fn ranges_the_built_in_path_newly_refuses() {
        for (ip, why) in [
            ("2001::1", "an IETF special-purpose address"), // Teredo 2001::/32
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "an IETF special-purpose address",
            ),
            ("2001:1ff::1", "an IETF special-purpose address"), // end of 2001::/23
            ("fec0::1", "a link-local address"),                // site-local fec0::/10
            ("feff::1", "a link-local address"),
            ("64:ff9b:1::a00:1", "a private address"), // local NAT64 of 10.0.0.1
            ("64:ff9b:1::7f00:1", "a loopback address"),
            ("4000::1", NON_GLOBAL), // outside 2000::/3
            ("1::1", NON_GLOBAL),
            ("e000::1", NON_GLOBAL),
            ("::101:101", NON_GLOBAL), // ::1.1.1.1, IPv4-compatible
        ] {
            assert_eq!(refused(ip, false), Some(why), "{ip}");
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
            assert_eq!(refused(ip, true), None, "{ip}");
        }
        assert!(check_literal("[2001::1]").is_err());
        assert!(check_literal("fec0::1").is_err());
        assert!(check_literal("[4000::1]").is_err());
    }

    #[test]
    fn metadata_and_special_addresses_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "100.100.100.200",
            "fd00:ec2::254",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "255.255.255.255",
            "224.0.0.1",
            "ff02::1",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(refused(ip, true).is_some(), "{ip}");
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(
            refused("169.254.169.254", true),
            Some("a cloud metadata address")
        );
    }

    #[test]
    fn partition_keeps_the_reachable_and_says_why_not() {
        let addrs: Vec<SocketAddr> = ["1.1.1.1:443", "127.0.0.1:443", "[fe80::1]:443"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let (ok, no) = partition(addrs.clone(), false);
        assert_eq!(ok, vec![addrs[0]]);
        assert_eq!(
            no,
            vec![
                (addrs[1].ip(), "a loopback address"),
                (addrs[2].ip(), "a link-local address")
            ]
        );
        assert_eq!(partition(addrs.clone(), true).0, addrs);
    }

    #[test]
    fn literals() {
        assert!(check_literal("localhost").is_err());
        assert!(check_literal("api.LOCALHOST").is_err());
        assert!(check_literal("[::1]").is_err());
        assert!(check_literal("10.0.0.5").is_err());
        assert!(check_literal("api.telegram.org").is_ok());
        assert!(check_literal("1.1.1.1").is_ok());
        assert_eq!(
            check_literal("127.0.0.1").unwrap_err(),
            "`127.0.0.1` is a private, loopback or reserved address; private networks are not allowed"
        );
    }
}
