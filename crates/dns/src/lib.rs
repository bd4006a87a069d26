//! The one DNS layer of Postern: SPF, DKIM and DMARC checks (`postern-auth`), MX routing
//! (`postern-relay`) and, next, DANE and MTA-STS all ask DNS through this crate.
//!
//! - [`ResolverConfig`]: the `[resolver]` section (nameservers, timeout, attempts).
//! - [`Resolver`]: one hickory resolver built from it, shared by every user (cloning is
//!   cheap and shares the connections and hickory's own response cache), with typed
//!   look-ups for MX, addresses, TXT and TLSA.
//! - [`TtlCache`]: the cache for answers, bounded in time (the record's TTL, at most
//!   [`MAX_TTL`]) and in size ([`MAX_ENTRIES`] per cache). The mail-auth caches of
//!   `postern-auth` are instances of it too.
//! - [`Answer`]: every answer carries its [`Security`] (DNSSEC status). This release does
//!   not validate DNSSEC, so every answer is [`Security::Insecure`]; the status is stored
//!   with the answer (also in the cache), so validation can be added in one place
//!   ([`Resolver`]) and reaches every user.
//!
//! # Security
//! Everything DNS says is attacker-influenced unless DNSSEC proves it. Names given to the
//! resolver are always made absolute (no search domains, `ndots = 0`), and `/etc/hosts` is
//! only consulted when no explicit nameserver is configured (the system configuration).
//! Nothing here may panic on an answer: record data is copied into owned values, and an
//! answer without usable records is an error value, never an empty success that callers
//! might misread. A resolver that never answers is bounded by `timeout × attempts` per
//! question; callers bound whole resolutions with their own deadlines.
//!
//! # Standards
//! RFC 1035 (DNS), RFC 2308 (negative caching, via hickory), RFC 5321 §5.1 (MX, implicit
//! MX), RFC 7505 (null MX), RFC 6698 (TLSA record format), RFC 4035 §4.3 (the security
//! states secure / insecure / bogus / indeterminate).

mod answer;
mod cache;
mod config;
mod error;
mod resolver;

pub use answer::{Answer, MxAnswer, Security, Tlsa};
pub use cache::{MAX_ENTRIES, MAX_TTL, TtlCache};
pub use config::{ResolverConfig, validate};
pub use error::{BuildError, LookupError};
pub use resolver::Resolver;
