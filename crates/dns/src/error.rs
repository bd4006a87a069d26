//! Errors of the DNS layer, split by what the caller should do about them.

use thiserror::Error;

/// The resolver could not be built: a start-up problem for the operator.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error(
        "cannot read the system DNS configuration (/etc/resolv.conf): {0}; set [resolver] nameservers"
    )]
    SystemConfig(String),
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
    /// `[resolver] trust_anchor` cannot be used.
    #[error("[resolver] trust_anchor {path}: {reason}")]
    TrustAnchor { path: String, reason: String },
}

/// Why a look-up gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    /// The name does not exist (NXDOMAIN): permanent.
    #[error("the name does not exist (NXDOMAIN)")]
    NotFound,
    /// The name exists but has no records of the type asked for (NODATA).
    #[error("no records of that type")]
    NoRecords,
    /// Timeout, SERVFAIL, refused, network error, malformed name: try again later.
    #[error("{0}")]
    Temporary(String),
    /// DNSSEC says the answer is bogus, or its status is indeterminate (RFC 4035 §4.3): the
    /// records, if any, must not be used. Temporary as far as retries go (a zone operator
    /// may fix their signatures); DANE skips such a host (RFC 7672 §2.2). In `trust-ad`
    /// mode this needs the resolver's Extended DNS Error (RFC 8914; unbound: `ede: yes`):
    /// a SERVFAIL without one is [`LookupError::Temporary`], which DANE treats the same.
    #[error("{0}")]
    Bogus(String),
}

impl LookupError {
    /// Worth asking again later: [`LookupError::Temporary`] and [`LookupError::Bogus`].
    pub fn is_temporary(&self) -> bool {
        matches!(self, LookupError::Temporary(_) | LookupError::Bogus(_))
    }

    /// DNSSEC validation failed (see [`LookupError::Bogus`]).
    pub fn is_bogus(&self) -> bool {
        matches!(self, LookupError::Bogus(_))
    }
}
