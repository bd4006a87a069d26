//! Message authentication: SPF, DKIM and DMARC checks on received mail, DKIM signing of
//! mail we send, Authentication-Results, and the DNS records to publish. Built on
//! mail-auth 0.13; this crate adds the policy (what a result means for the SMTP
//! transaction), the DNS plumbing and caches, key handling and the header edits.
//!
//! The session uses three calls: [`Verifier::spf`] at MAIL FROM (a `fail` can be refused
//! before any data is sent), [`Verifier::message`] once the message is complete and before
//! the 250 (DKIM, DMARC, headers, decision), and [`Signer::sign`] for mail from trusted
//! clients. [`headers::new_head`] turns the results into the new top of the stored
//! message.
//!
//! # Security
//! - Everything checked is attacker-controlled: the message, its signatures, and DNS
//!   answers for the sender's domains. mail-auth parses them; every check runs under a
//!   time limit, and DNS errors become `temperror`, never a crash or a hang.
//! - SPF evaluation is bounded by RFC 7208 §4.6.4: ten DNS-querying terms (enforced by
//!   mail-auth) and two void look-ups (enforced here, see `dns::Counting`).
//! - Incoming Authentication-Results fields that claim our authserv-id are removed
//!   (RFC 8601 §5), so downstream filters can trust the one we add.
//! - A DNS temporary error never rejects: it defers (451) only where the policy would
//!   otherwise reject, and is recorded as `temperror` everywhere else.
//! - Only domains with a configured key are signed, chosen from the From header; the
//!   signature is computed over the message exactly as stored, and nothing is changed
//!   after signing. Private keys are read once at start-up and never logged.
//! - Reply texts name the domain and result, never text from DNS (an SPF `exp=`
//!   explanation is the sender's domain owner's words, not ours to repeat).
//!
//! # Standards
//! RFC 7208 (SPF; §2.3 HELO, §2.4 MAIL FROM, §4.6.4 limits, §9.1 Received-SPF),
//! RFC 6376 (DKIM), RFC 8301 (DKIM key sizes and algorithms), RFC 8463 (Ed25519-SHA256),
//! RFC 7489 and RFC 9989 (DMARC; the tree walk of RFC 9989 replaces the public suffix
//! list), RFC 8601 (Authentication-Results), RFC 7372 (enhanced status codes for SPF).

mod b64;
pub mod config;
pub mod dns;
pub mod headers;
pub mod keygen;
pub mod records;
pub mod sign;
pub mod sources;
pub mod verify;

use std::net::SocketAddr;
use std::time::Duration;

pub use config::{
    AuthConfig, DkimMode, DkimSignConfig, DmarcPolicy, QuarantineAction, SignAlgorithm, SpfPolicy,
};
pub use mail_auth::SpfResult;
pub use sign::{Signed, Signer};
pub use sources::{SignSource, SignSourceRule};
pub use verify::{Received, SpfCheck, SpfDecision, Verdict, Verifier};

/// Everything `[auth]` configures, ready to use.
#[derive(Debug)]
pub struct Auth {
    verifier: Option<Verifier>,
    signer: Signer,
    exempt_trusted_networks: bool,
    max_message_size: u64,
    hold_quarantined: bool,
}

impl Auth {
    /// Load the keys and build the resolver. `nameservers` and `timeout` come from
    /// `[resolver]` (empty: the system configuration).
    pub fn new(
        cfg: &AuthConfig,
        hostname: &str,
        nameservers: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Auth, String> {
        let signer = Signer::load(&cfg.dkim_sign).map_err(|e| e.to_string())?;
        let verifier = if cfg.verifies() {
            let a = dns::authenticator(nameservers, timeout)?;
            Some(Verifier::new(cfg, a, hostname))
        } else {
            None
        };
        Ok(Auth {
            verifier,
            signer,
            exempt_trusted_networks: cfg.exempt_trusted_networks,
            max_message_size: cfg.max_message_size.bytes(),
            hold_quarantined: cfg.quarantine_action == QuarantineAction::Hold,
        })
    }

    /// `None` when every check is off.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Whether clients in trusted networks skip the checks.
    pub fn exempt_trusted_networks(&self) -> bool {
        self.exempt_trusted_networks
    }

    /// Whether mail quarantined by DMARC goes on hold (`quarantine_action = "hold"`).
    pub fn hold_quarantined(&self) -> bool {
        self.hold_quarantined
    }

    /// Largest message verified or signed (held in memory for it).
    pub fn max_message_size(&self) -> u64 {
        self.max_message_size
    }
}
