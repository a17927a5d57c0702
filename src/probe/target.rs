//! Which addresses we refuse to connect to: a monitored domain's DNS is untrusted, and must not
//! turn the exporter into a probe of the network it runs in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether private, loopback and other non-public addresses may be probed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow loopback, private, link-local, CGNAT and unique-local targets (tests, labs,
    /// private mail networks). Multicast, broadcast and unspecified are refused regardless.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// `Some(reason)` when `ip` must not be connected to.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = canonical(ip);
        if let Some(reason) = never(ip) {
            return Some(reason);
        }
        if self.allow_private {
            return None;
        }
        non_public(ip)
    }
}

/// IPv6 addresses that carry an IPv4 address are judged as that IPv4 address: IPv4-mapped
/// (::ffff:0:0/96), IPv4-compatible (::/96), NAT64 (64:ff9b::/96, RFC 6052; 64:ff9b:1::/48,
/// RFC 8215) and 6to4 (2002::/16).
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let from = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        // IPv4-compatible ::a.b.c.d (but not :: and ::1)
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => from(hi, lo),
        // NAT64 well-known prefix 64:ff9b::/96
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => from(hi, lo),
        // NAT64 local-use prefix 64:ff9b:1::/48 (the IPv4 address in the last 32 bits, /96)
        [0x64, 0xff9b, 1, ..] => from(s[6], s[7]),
        // 6to4: 2002:aabb:ccdd::/48
        [0x2002, hi, lo, ..] => from(hi, lo),
        _ => ip,
    }
}

fn never(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("unspecified address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast address"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("multicast address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified address"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("multicast address"),
        _ => None,
    }
}

fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback address")
    } else if ip.is_private() {
        Some("private address (RFC 1918)")
    } else if ip.is_link_local() {
        Some("link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT address (RFC 6598)")
    } else if a == 0 {
        Some("\"this network\" address (0.0.0.0/8)")
    } else if a >= 240 {
        Some("reserved address (240.0.0.0/4)")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique local address (fc00::/7)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str, allow_private: bool) -> bool {
        AddressPolicy { allow_private }
            .refusal(ip.parse().unwrap())
            .is_some()
    }

    #[test]
    fn non_public_addresses_refused_by_default() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(refused(ip, false), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_allowed() {
        for ip in [
            "8.8.8.8",
            "142.250.1.27",
            "100.128.0.1",
            "2a00:1450:4001::1b",
        ] {
            assert!(!refused(ip, false), "{ip} should be allowed");
        }
    }

    #[test]
    fn allow_private_still_refuses_unspecified_and_multicast() {
        assert!(!refused("127.0.0.1", true));
        assert!(!refused("10.0.0.1", true));
        assert!(refused("0.0.0.0", true));
        assert!(refused("224.0.0.1", true));
        assert!(refused("::", true));
    }
}
