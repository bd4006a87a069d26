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
pub mod facts;
pub mod headers;
pub mod keygen;
pub mod records;
pub mod sign;
pub mod sources;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use config::{
    AuthConfig, DkimMode, DkimSignConfig, DmarcPolicy, QuarantineAction, SignAlgorithm, SpfPolicy,
};
pub use facts::DmarcFacts;
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
    authserv_id: String,
    /// `memory_budget` in KiB permits.
    memory: Arc<Semaphore>,
    memory_kib: u32,
}

/// How long a message waits for room in the memory budget before `451 4.3.1`.
pub const MEMORY_WAIT: Duration = Duration::from_secs(10);

impl Auth {
    /// Load the keys; the checks ask DNS through `resolver`, the one shared with
    /// delivery (built from `[resolver]`).
    pub fn new(
        cfg: &AuthConfig,
        hostname: &str,
        resolver: &postern_dns::Resolver,
    ) -> Result<Auth, sign::KeyError> {
        let signer = Signer::load(&cfg.dkim_sign)?;
        let verifier = if cfg.verifies() {
            Some(Verifier::new(cfg, dns::for_resolver(resolver), hostname))
        } else {
            None
        };
        let memory_kib = u32::try_from(cfg.memory_budget.bytes() / 1024)
            .unwrap_or(u32::MAX)
            .max(1);
        Ok(Auth {
            verifier,
            signer,
            exempt_trusted_networks: cfg.exempt_trusted_networks,
            max_message_size: cfg.max_message_size.bytes(),
            hold_quarantined: cfg.quarantine_action == QuarantineAction::Hold,
            authserv_id: cfg
                .authserv_id
                .clone()
                .unwrap_or_else(|| hostname.to_string()),
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
        })
    }

    /// The authserv-id: Authentication-Results fields claiming it are removed from every
    /// incoming message, checked or not (RFC 8601 §5).
    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// Reserve `bytes` of the memory budget for a message held in memory, waiting at most
    /// [`MEMORY_WAIT`]; `None` when the budget stays exhausted. A request larger than the
    /// whole budget waits for all of it.
    pub async fn reserve_memory(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        self.reserve_memory_within(bytes, MEMORY_WAIT).await
    }

    async fn reserve_memory_within(
        &self,
        bytes: u64,
        wait: Duration,
    ) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_kib);
        tokio::time::timeout(wait, self.memory.clone().acquire_many_owned(kib))
            .await
            .ok()?
            .ok()
    }

    /// `None` when every check is off.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The queue's signing hook for its own reports (bounces, delay warnings, delivery
    /// reports from `MAILER-DAEMON@hostname`; `postern_queue::Sign`): `None` without
    /// `[[auth.dkim_sign]]` entries. The key is picked by the report's From domain.
    pub fn report_hook(self: std::sync::Arc<Self>) -> Option<sign::ReportSign> {
        (!self.signer.is_empty()).then(|| {
            std::sync::Arc::new(move |r: &[u8]| self.signer.sign_report(r)) as sign::ReportSign
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_budget_is_shared_and_bounded() {
        let cfg = AuthConfig {
            max_message_size: postern_config::Size(16 << 10),
            memory_budget: postern_config::Size(64 << 10),
            ..AuthConfig::default()
        };
        let resolver = postern_dns::Resolver::new(&postern_dns::ResolverConfig {
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            timeout: postern_config::Duration(Duration::from_secs(1)),
            attempts: 1,
            ..postern_dns::ResolverConfig::default()
        })
        .unwrap();
        let auth = Auth::new(&cfg, "mx.test", &resolver).unwrap();
        let short = Duration::from_millis(50);
        let a = auth.reserve_memory_within(40 << 10, short).await;
        assert!(a.is_some());
        // 40 + 30 KiB > 64 KiB: the second waits, then gives up.
        assert!(auth.reserve_memory_within(30 << 10, short).await.is_none());
        // More than the whole budget waits for all of it.
        assert!(auth.reserve_memory_within(1 << 30, short).await.is_none());
        drop(a);
        assert!(auth.reserve_memory_within(1 << 30, short).await.is_some());
        assert_eq!(auth.authserv_id(), "mx.test");
    }
}
