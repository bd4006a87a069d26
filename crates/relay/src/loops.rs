//! Mail-loop guards for delivery: a hop-count limit on `Received:` header fields, and
//! refusing to connect to ourselves.
//!
//! # Security
//! A sender controls where its reports go (`MAIL FROM:<x@[127.0.0.1]>`, or a domain
//! whose MX points at our own address). Without these guards a delivery report could
//! arrive at our own listener, be relayed as coming from a trusted network, and loop.
//!
//! * **Ourselves**: after resolution, an address is refused when it is the unspecified
//!   address (`0.0.0.0`, `::`: connecting there reaches this machine), or when it is the
//!   address and port of one of our listeners; a listener on `0.0.0.0`/`::` stands for
//!   every address of this machine (loopback, and any address an interface has). The mail then fails with
//!   `5.4.6 mail for DOMAIN loops back to myself` (Postfix's wording and status) unless a
//!   `[[route]]` names the next hop explicitly: a static next hop such as
//!   `smtp:[127.0.0.1]:10026` is the operator's choice and is never second-guessed.
//!   A local address on a port where we do not listen (another program on this machine)
//!   is not refused here; the hop-count limit ends any loop through such a program.
//! * **Hop count**: a message whose header carries as many `Received:` fields as the
//!   limit (default 50, as Postfix's `hopcount_limit`; our own field counts) or more is
//!   bounced with `5.4.6`, for every next hop (Maildir too).
//!
//! # Standards
//! RFC 5321 §6.3 (loop detection by counting `Received:` fields), RFC 3463 (5.4.6
//! routing loop detected).

use std::io::{BufRead, Read};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::RwLock;

use postern_queue::QueuedMessage;

/// Postfix's `hopcount_limit` default, used when nothing else is configured.
pub const DEFAULT_MAX_HOP_COUNT: usize = 50;

/// Whether a queued message with `stored` `Received:` fields has travelled too many hops.
/// The limit counts the fields a message arrives with, as the listeners' `max_hop_count`
/// does (more than that is refused with `554 5.4.6` at the end of DATA); a queued message
/// also carries the one field we added. So the queue bounces only what the listeners
/// would have refused: mail queued before the limit was lowered, or by a listener with a
/// higher limit than the largest one now configured.
pub fn too_many_hops(stored: usize, limit: usize) -> bool {
    stored > limit.saturating_add(1)
}

/// How much of a message's header section is read to count `Received:` fields: a
/// header longer than this counts what it holds up to here (enough for hundreds of hops).
const HEADER_SCAN_LIMIT: u64 = 1024 * 1024;

/// Our listening addresses, to recognise a delivery to ourselves.
#[derive(Debug, Default)]
pub struct OwnAddresses {
    listeners: RwLock<Vec<SocketAddr>>,
}

impl OwnAddresses {
    /// Replace the listener list (the configured addresses at start, the bound ones once
    /// the listeners run: port 0 becomes the real port).
    pub fn set(&self, listeners: Vec<SocketAddr>) {
        *self.listeners.write().unwrap_or_else(|p| p.into_inner()) = listeners;
    }

    /// Whether connecting to `ip`:`port` would reach one of our own listeners.
    pub fn is_self(&self, ip: IpAddr, port: u16) -> bool {
        let ip = ip.to_canonical();
        if ip.is_unspecified() {
            return true;
        }
        let listeners = self.listeners.read().unwrap_or_else(|p| p.into_inner());
        listeners.iter().any(|l| {
            l.port() == port
                && (l.ip().to_canonical() == ip || (l.ip().is_unspecified() && is_local(ip)))
        })
    }
}

/// Whether `ip` belongs to this machine: loopback, or an address some interface has
/// (binding a socket to it succeeds only then).
pub fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The number of `Received:` fields in the message's header section (blocking: run it
/// off the async workers).
pub fn received_count(msg: &QueuedMessage) -> std::io::Result<usize> {
    let reader = msg.open_body()?;
    count_received(reader.take(HEADER_SCAN_LIMIT))
}

fn count_received(mut r: impl BufRead) -> std::io::Result<usize> {
    let mut count = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(count);
        }
        if line == b"\r\n" || line == b"\n" {
            return Ok(count);
        }
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
            count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_received_fields_in_the_header_only() {
        let msg =
            b"Received: from a\r\n\tby b\r\nRECEIVED: x\r\nSubject: hi\r\n\r\nReceived: body\r\n";
        assert_eq!(count_received(&msg[..]).unwrap(), 2);
        assert_eq!(count_received(&b"Subject: x"[..]).unwrap(), 0);
    }

    #[test]
    fn the_queue_and_the_listeners_agree_on_the_hop_limit() {
        // 50 on arrival (accepted by a listener), plus ours: delivered.
        assert!(!too_many_hops(51, 50));
        // 51 on arrival would have been refused; queued anyway, it bounces.
        assert!(too_many_hops(52, 50));
        assert!(!too_many_hops(0, 0));
    }

    #[test]
    fn recognises_our_own_listeners() {
        let own = OwnAddresses::default();
        own.set(vec!["127.0.0.1:25".parse().unwrap()]);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(own.is_self(lo, 25));
        assert!(!own.is_self("127.0.0.2".parse().unwrap(), 25));
        assert!(own.is_self("::ffff:127.0.0.1".parse().unwrap(), 25));
        assert!(!own.is_self(lo, 2526), "another program on this machine");
        assert!(own.is_self("0.0.0.0".parse().unwrap(), 9));
        assert!(!own.is_self("192.0.2.1".parse().unwrap(), 25));
        own.set(vec!["0.0.0.0:25".parse().unwrap()]);
        assert!(own.is_self(lo, 25));
        assert!(own.is_self("::1".parse().unwrap(), 25));
    }
}
