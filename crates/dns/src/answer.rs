//! Answers and their DNSSEC status.

use std::time::Instant;

/// The DNSSEC status of an answer (RFC 4035 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// Validated from a trust anchor: the answer is what the zone owner signed.
    Secure,
    /// Provably unsigned, or not validated at all (`[resolver] dnssec = "off"`, or an AD
    /// bit that is not trusted): usable, but an attacker on the path could have changed it.
    Insecure,
    /// Signed, but validation failed, or its status could not be determined: never use it
    /// where security depends on it (DANE skips such a host, RFC 7672 §2.2). Look-ups of
    /// this crate never return an answer with this status: a bogus answer is
    /// [`crate::LookupError::Bogus`]. It exists for statuses that callers combine
    /// ([`Security::min`]) or keep themselves.
    Bogus,
}

impl Security {
    /// `secure`, `insecure` or `bogus`, as logs and `policy explain` print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Secure => "secure",
            Security::Insecure => "insecure",
            Security::Bogus => "bogus",
        }
    }

    /// The weaker of two statuses: an answer reached through several look-ups (an MX and
    /// its host's addresses, a CNAME chain) is only as secure as the weakest of them.
    pub fn min(self, other: Security) -> Security {
        use Security::*;
        match (self, other) {
            (Bogus, _) | (_, Bogus) => Bogus,
            (Insecure, _) | (_, Insecure) => Insecure,
            (Secure, Secure) => Secure,
        }
    }
}

impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Records of one look-up, with their DNSSEC status and how long they may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    pub records: T,
    pub security: Security,
    /// When the answer expires (its TTL, bounded by [`crate::MAX_TTL`]).
    pub valid_until: Instant,
    /// The name the records were found at when the name asked is an alias: the end of the
    /// CNAME chain, lower case, without the trailing dot. `None` when there was no CNAME.
    /// DANE uses it for TLSA base names (RFC 7672 §2.2.2) when [`Answer::security`] is
    /// secure (the status already covers every link of the chain).
    pub canonical: Option<String>,
}

impl<T> Answer<T> {
    /// The records, dropping the status: only for callers to whom DNSSEC does not matter.
    pub fn into_records(self) -> T {
        self.records
    }

    /// The same status and lifetime with other records.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        Answer {
            records: f(self.records),
            security: self.security,
            valid_until: self.valid_until,
            canonical: self.canonical,
        }
    }
}

/// What an MX look-up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// Exchanges in the order to try them: by preference, random among equals (RFC 5321
    /// §5.1). Names are lower case, without the trailing dot.
    Hosts(Vec<(u16, String)>),
    /// `MX 0 .`: the domain accepts no mail (RFC 7505).
    NullMx,
    /// The domain exists but has no MX: use its own address (implicit MX).
    NoMx,
}

/// One TLSA record (RFC 6698 §2.1), as published: not yet checked for usability.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlsa {
    /// 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// 0 full certificate, 1 SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weakest_status_wins() {
        use Security::*;
        assert_eq!(Secure.min(Secure), Secure);
        assert_eq!(Secure.min(Insecure), Insecure);
        assert_eq!(Insecure.min(Bogus), Bogus);
        assert_eq!(Bogus.min(Secure), Bogus);
    }
}
