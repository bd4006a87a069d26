//! The inbound side: listeners, SMTP sessions, relay control.
//!
//! A [`Listener`] accepts connections and enforces connection limits; each connection runs
//! a session (see `session/`, one file per command) that is generic over its stream, so a
//! plain TCP connection can be upgraded in place by STARTTLS.
//!
//! # Security
//! - Relay control at RCPT: mail for `relay.local_domains` is accepted from anyone; any
//!   other domain only from `relay.trusted_networks`; everything else gets
//!   `554 5.7.1 Relay access denied`, unless the client presented a certificate trusted
//!   for relaying (`partner.rs`). Only the domain decides — `%`, `!`, quoted `@` and
//!   source routes in an address never do.
//! - STARTTLS: bytes pipelined after the STARTTLS command are discarded before the
//!   handshake (CVE-2011-0411 class) and all session state is reset after it (RFC 3207 §4.2).
//! - Message content goes through the strict readers of `postern-smtp`: bare CR / bare LF
//!   are refused, so nothing accepted here can be turned into a smuggled message later.
//! - Every read has a timeout, every message a deadline (`message_timeout`) and every
//!   session a lifetime (`max_session_time`); command lines, messages, header sections
//!   (fields and size, counted before anything parses them), `Received:` hops and
//!   recipient counts have limits; a 250 after DATA is sent only once the queue has
//!   fsynced the message. Per-client connection limits count an IPv6 /64 as one client.
//! - NUL is refused in content like bare CR/LF. Clients that talk before the greeting or
//!   pipeline where RFC 2920 does not allow it are refused (`session/pipelining.rs`).
//! - Address-literal senders naming this host or an internal network are refused from
//!   clients that may not relay (`literal.rs`).
//! - Every refusal is logged once, Postfix style: `NOQUEUE: reject: STAGE from ...`.
//!
//! # Standards
//! RFC 5321, RFC 3207 (STARTTLS), RFC 2920 (PIPELINING), RFC 3030 (CHUNKING),
//! RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3463 / 2034 (enhanced
//! status codes), RFC 5321 §4.4 and RFC 8314 §4.3 (Received header).

mod config;
mod conn;
mod listener;
mod literal;
mod local;
mod metrics;
pub mod observe;
pub mod partner;
mod received;
mod relay_control;
mod session;
pub mod tls_checks;

pub use config::{
    ClientCertificates, ListenerConfig, Mode, RelayConfig, validate as validate_config,
};
pub use listener::{DRAIN_TIMEOUT, Listener, ServerContext};
pub use local::LocalSubmit;
pub use partner::{InboundConfig, PartnerConfig, Partners};
pub use relay_control::RelayPolicy;
