//! `postern dkim keygen` and `postern dns-records`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use postern_auth::keygen::{KeyKind, keygen};
use postern_auth::records::{Site, dns_records};

use crate::Config;

/// `postern dkim ...`
#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Create a DKIM signing key and print the DNS TXT record to publish for it.
    /// The key is written to DIR/DOMAIN.SELECTOR.key with mode 0600 (never overwritten);
    /// add it to the configuration as an [[auth.dkim_sign]] entry.
    Keygen {
        /// The signing domain (d=), e.g. example.org
        #[arg(long)]
        domain: String,
        /// The selector (s=), e.g. 2025a; the record goes at SELECTOR._domainkey.DOMAIN
        #[arg(long)]
        selector: String,
        /// rsa2048 is understood by every verifier; ed25519 (RFC 8463) is short and fast.
        /// Publish both (two selectors) to sign with both.
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Rsa2048)]
        algorithm: KeyAlgorithm,
        /// Directory for the key file.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

/// Key types for `dkim keygen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithm {
    Rsa2048,
    Ed25519,
}

/// Run `dkim keygen`.
pub fn dkim(cmd: DkimCommand) -> ExitCode {
    let DkimCommand::Keygen {
        domain,
        selector,
        algorithm,
        out,
    } = cmd;
    if !postern_auth::keygen::valid_names(&domain, &selector) {
        eprintln!(
            "postern: --domain and --selector must be DNS labels (letters, digits, '-', '_', '.')"
        );
        return ExitCode::from(2);
    }
    let kind = match algorithm {
        KeyAlgorithm::Rsa2048 => KeyKind::Rsa2048,
        KeyAlgorithm::Ed25519 => KeyKind::Ed25519,
    };
    match keygen(&domain, &selector, kind, &out) {
        Ok(g) => {
            print!("{}", g.instructions(&domain, &selector, kind));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run `dns-records`: the records for every configured domain, then TLSA (DANE).
pub fn dns_records_for(config: &Config) -> String {
    let hostname = config.hostname();
    let (certs, tls_dir) = (&config.tls.certificate, config.server.state_dir.join("tls"));
    dns_records(&Site {
        hostname: &hostname,
        local_domains: &config.relay.local_domains,
        addresses: postern_auth::records::publishable(
            config.listener.iter().map(|l| l.address.ip()),
        ),
        signing: &config.auth.dkim_sign,
        mta_sts: postern_sts::serve::dns_records(&config.mta_sts, &hostname),
    }) + &postern_tls::dane::dns_records_text(&hostname, certs, &tls_dir)
}
