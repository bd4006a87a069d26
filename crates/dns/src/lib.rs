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
//! - [`Answer`]: every answer carries its [`Security`] (DNSSEC status) and, when the name
//!   was an alias, its CNAME-expanded name ([`Answer::canonical`]). The status comes from
//!   `[resolver] dnssec` ([`DnssecMode`]): `off` (always insecure), `trust-ad` (the AD bit
//!   of a validating resolver on loopback) or `validate` (hickory's own validator). A
//!   bogus answer is an error, [`LookupError::Bogus`]; through a CNAME chain the status is
//!   the weakest link's.
//! - [`Resolver::probe_dnssec`] / [`dnssec_summary`]: does validation work at all? Asked
//!   at start-up ([`Resolver::started`]) and by `check-config`, like Postfix's
//!   `dnssec_probe`; a loud warning when it does not.
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
//! states secure / insecure / bogus / indeterminate), RFC 4035 §3.2 and RFC 6840 §5.7-5.8
//! (DO and AD bits), RFC 8914 (Extended DNS Errors), RFC 7672 §2.2 (DNSSEC for DANE:
//! CNAME chains, bogus and indeterminate answers).

mod answer;
mod cache;
mod config;
mod error;
pub mod exchange;
mod probe;
mod resolver;

pub use answer::{Answer, MxAnswer, Security, Tlsa};
pub use cache::{MAX_ENTRIES, MAX_TTL, TtlCache};
pub use config::{DnssecMode, ResolverConfig, validate};
pub use error::{BuildError, LookupError};
pub use probe::{ProbeQuery, ProbeQueryError, ProbeResult, dnssec_summary};
pub use resolver::{Resolver, load_trust_anchor};
