//! Building [`Options`] from the files `postern tls-check` is given, checking each
//! before any connection is made.

use std::path::{Path, PathBuf};

use postern_tls::{LoadedCert, Profile, TlsError};

use crate::Options;

/// A file given to `tls-check` that cannot be used (named by its option).
#[derive(Debug)]
pub enum SetupError {
    ClientCert(TlsError),
    Ca(TlsError),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::ClientCert(e) => write!(f, "--client-cert: {e}"),
            SetupError::Ca(e) => write!(f, "--ca: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

impl Options {
    /// Options for `profile`, with trust anchors from `ca` (the system store when
    /// `None`) and a client certificate chain and key to present, if given.
    pub fn from_files(
        profile: Profile,
        ca: Option<PathBuf>,
        client_cert: Option<(&Path, &Path)>,
    ) -> Result<Options, SetupError> {
        let client_cert = client_cert
            .map(|(c, k)| LoadedCert::load(c, k, &postern_tls::provider(Profile::Default)))
            .transpose()
            .map_err(SetupError::ClientCert)?;
        if let Some(ca) = &ca {
            postern_tls::client::load_roots(Some(ca)).map_err(SetupError::Ca)?;
        }
        Ok(Options {
            profile,
            ca,
            client_cert,
        })
    }
}
