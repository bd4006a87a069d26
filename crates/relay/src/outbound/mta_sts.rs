//! MTA-STS for delivery: `postern_sts`'s lookup (TXT, HTTPS fetch, cache) as the
//! policy engine's [`StsLookup`], plugged into the agent ([`install`]).

use std::path::Path;
use std::sync::Arc;

use postern_sts::lookup::Sts;
use postern_sts::policy::Mode;
use rustls::RootCertStore;

use super::agent::SmtpAgent;
use super::config::OutboundConfig;
use super::engine::{StsLookup, StsMode, StsPolicy};

/// Plug MTA-STS into `agent` when `[outbound] mta_sts` is on (and SMTP delivery is):
/// the cache under `<state_dir>/mta-sts` (in memory only, with a warning, when that
/// directory cannot be used), the agent's resolver, and the trust anchors of
/// outbound `verify` (read from the agent at each fetch, so a SIGHUP reload applies).
/// [`build::build`](super::build::build) calls it; the daemon runs [`Sts::refresher`]
/// on [`SmtpAgent::mta_sts`].
pub fn install(agent: &Arc<SmtpAgent>, o: &OutboundConfig, state_dir: &Path) -> Option<Arc<Sts>> {
    if !o.mta_sts || !o.enabled {
        agent.set_sts(None);
        agent.set_mta_sts(None);
        return None;
    }
    let weak = Arc::downgrade(agent);
    let roots = Arc::new(move || {
        weak.upgrade()
            .map(|a| a.policies().default_policy().roots.clone())
            .unwrap_or_else(|| Arc::new(RootCertStore::empty()))
    });
    let sts = Arc::new(Sts::new_or_memory(
        agent.dns().clone(),
        o.mta_sts_port,
        state_dir,
        roots,
    ));
    agent.set_sts(Some(Arc::new(Adapter(sts.clone()))));
    agent.set_mta_sts(Some(sts.clone()));
    Some(sts)
}

/// `postern mta-sts show|refresh|forget DOMAIN`, with the cache of `state_dir`, the
/// resolver of `[resolver]` and the trust anchors of outbound `verify`.
pub fn cli(
    cmd: postern_sts::cli::MtaStsCommand,
    o: &OutboundConfig,
    resolver: &postern_dns::ResolverConfig,
    state_dir: &Path,
) -> std::process::ExitCode {
    let ctx = postern_sts::cli::Context {
        state_dir,
        resolver,
        ca: o.ca.as_deref(),
        port: o.mta_sts_port,
    };
    postern_sts::cli::run(cmd, ctx)
}

#[derive(Debug)]
struct Adapter(Arc<Sts>);

impl StsLookup for Adapter {
    fn policy<'a>(
        &'a self,
        domain: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<StsPolicy>> + Send + 'a>> {
        Box::pin(async move {
            let found = self.0.lookup(domain).await?;
            let mode = match found.entry.policy.mode {
                Mode::Enforce => StsMode::Enforce,
                Mode::Testing => StsMode::Testing,
                Mode::None => return None,
            };
            Some(StsPolicy {
                mode,
                mx: found.entry.policy.mx,
                max_age: found.entry.policy.max_age,
                about: found.about,
            })
        })
    }

    fn cached(&self, domain: &str) -> Option<StsPolicy> {
        let e = self.0.cache().get(domain)?;
        if e.expired(postern_queue::unix_now()) {
            return None;
        }
        let mode = match e.policy.mode {
            Mode::Enforce => StsMode::Enforce,
            Mode::Testing => StsMode::Testing,
            Mode::None => return None,
        };
        Some(StsPolicy {
            mode,
            max_age: e.policy.max_age,
            about: format!("cached (id {}), not refreshed", e.id),
            mx: e.policy.mx,
        })
    }
}
