//! `postern dkim keygen` and `postern dns-records`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use postern_auth::keygen::{KeyKind, keygen, zone_strings};
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
    let check = postern_auth::DkimSignConfig {
        domain: domain.clone(),
        selector: selector.clone(),
        key: out.join("(new)"),
        algorithm: postern_auth::SignAlgorithm::RsaSha256,
        headers: postern_auth::config::default_signed_headers(),
        sources: Vec::new(),
    };
    if domain.is_empty()
        || selector.is_empty()
        || !domain
            .bytes()
            .chain(check.selector.bytes())
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
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
            println!("; private key written to {} (mode 0600)", g.path.display());
            println!("; publish this record, then add to the configuration:");
            println!(";   [[auth.dkim_sign]]");
            println!(";   domain = \"{domain}\"");
            println!(";   selector = \"{selector}\"");
            println!(";   key = \"{}\"", g.path.display());
            println!(";   algorithm = \"{}\"", kind.algorithm().as_str());
            println!("{}. IN TXT {}", g.record_name, zone_strings(&g.record));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run `dns-records`: the records for every configured domain.
pub fn dns_records_for(config: &Config) -> String {
    let hostname = config.hostname();
    let addresses: Vec<IpAddr> = config
        .listener
        .iter()
        .map(|l| l.address.ip())
        .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
        .collect();
    dns_records(&Site {
        hostname: &hostname,
        local_domains: &config.relay.local_domains,
        addresses,
        signing: &config.auth.dkim_sign,
    })
}
