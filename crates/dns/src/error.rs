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
}

impl LookupError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, LookupError::Temporary(_))
    }
}
