//! Address literals (`user@[192.0.2.1]`, RFC 5321 §4.1.3) in envelopes.
//!
//! # Security
//! An address literal names a host directly, bypassing DNS. From a client that may not
//! relay, a sender literal that names this host or an internal network (loopback, private,
//! link-local, …) only serves to aim delivery reports back at us or into the inside: the
//! mail-loop of issue #11 started with `MAIL FROM:<x@[127.0.0.1]>` and `NOTIFY=SUCCESS`.
//! Such senders are refused at MAIL. A recipient literal that names this host is refused
//! at RCPT from every client (it could only loop); other recipient literals are never
//! local, so clients that may not relay get `Relay access denied` for them.

use std::net::IpAddr;

/// Is `ip` this host: loopback, the unspecified address, or the address the client
/// connected to?
pub(crate) fn is_self(ip: IpAddr, local: Option<IpAddr>) -> bool {
    let ip = canonical(ip);
    ip.is_loopback() || ip.is_unspecified() || local.map(canonical) == Some(ip)
}

/// Is `ip` this host or an address that is not on the public internet (private,
/// link-local, unique-local, multicast, broadcast, "this network")?
pub(crate) fn is_self_or_internal(ip: IpAddr, local: Option<IpAddr>) -> bool {
    if is_self(ip, local) {
        return true;
    }
    match canonical(ip) {
        IpAddr::V4(a) => {
            a.is_private()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.octets()[0] == 0
                // 100.64.0.0/10, shared address space (RFC 6598)
                || (a.octets()[0] == 100 && (a.octets()[1] & 0xC0) == 64)
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            a.is_multicast()
                || (first & 0xFE00) == 0xFC00 // fc00::/7 unique local
                || (first & 0xFFC0) == 0xFE80 // fe80::/10 link local
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
    }

    #[test]
    fn self_and_internal() {
        let local = Some(ip("192.0.2.25"));
        for s in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "0.0.0.0",
            "::",
            "192.0.2.25",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_self(ip(s), local), "{s}");
        }
        for s in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
            "224.0.0.1",
            "100.64.0.1",
        ] {
            assert!(!is_self(ip(s), local), "{s}");
            assert!(is_self_or_internal(ip(s), local), "{s}");
        }
        for s in ["192.0.2.26", "198.51.100.1", "2001:db8::25"] {
            assert!(!is_self_or_internal(ip(s), local), "{s}");
        }
    }
}
