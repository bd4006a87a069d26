//! Which MTA-STS policy applies to a recipient domain (RFC 8461 §3.3, §5.1), with the
//! cache in front, and the proactive refresher.
//!
//! 1. `_mta-sts.<domain>` TXT (through [`postern_dns::Resolver`], whose cache keeps the
//!    answer for its TTL: TXT checks are rate-limited by it).
//! 2. The `id` equals the cached policy's and the policy is unexpired: the cached policy.
//! 3. Otherwise (new `id`, or nothing cached): fetch. A failed fetch leaves an unexpired
//!    cached policy in force; without one there is no policy.
//! 4. No usable TXT record (none, several, malformed) or a DNS failure: an unexpired
//!    cached policy is still used (§5.1: only a successful fetch replaces it).
//! 5. Mode `none` is stored like any policy (it replaces an older one) but means no policy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postern_dns::{LookupError, Resolver};
use rustls::RootCertStore;
use tracing::{info, warn};

use crate::cache::{Cache, CacheError, Entry, now};
use crate::fetch::{FetchError, Fetcher, policy_url};
use crate::txt::{TxtError, policy_id};

/// How often the refresher looks for policies to refresh.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

/// Where the trust anchors for policy fetches come from (outbound `verify`'s, which a
/// SIGHUP may reload).
pub type Roots = Arc<dyn Fn() -> Arc<RootCertStore> + Send + Sync>;

/// MTA-STS for sending: lookup, fetch and cache.
pub struct Sts {
    dns: Resolver,
    fetcher: Fetcher,
    cache: Cache,
    roots: Roots,
    port: u16,
    /// Recent failed fetches, per domain: the TXT id and until when not to try again.
    /// A domain whose policy host is down is not asked again by every delivery attempt
    /// (each could wait for the fetch timeouts); a new TXT id is tried at once.
    failed: std::sync::Mutex<HashMap<String, Failed>>,
    /// Fetches in progress, per domain: deliveries that need the same new policy at once
    /// wait for one fetch instead of each making their own (entries leave when it ends).
    fetching: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holding a domain's fetch gate. Dropping it releases the gate, and removes it from the
/// map when nobody else holds or waits for it (checked under the map's lock, and only if
/// the map still has this very gate), so the map holds only domains being fetched.
struct FetchTurn<'a> {
    sts: &'a Sts,
    domain: String,
    gate: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for FetchTurn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.sts.fetching.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and ours; a waiter would hold a third.
        if map
            .get(&self.domain)
            .is_some_and(|g| Arc::ptr_eq(g, &self.gate) && Arc::strong_count(g) == 2)
        {
            map.remove(&self.domain);
        }
    }
}

/// A failed fetch, remembered for [`FETCH_RETRY_AFTER`].
#[derive(Debug, Clone)]
struct Failed {
    id: String,
    until: std::time::Instant,
    why: String,
}

/// How long a failed policy fetch for an unchanged TXT id is not repeated by delivery
/// (`postern mta-sts refresh` and the refresher always try).
pub const FETCH_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// Most failed fetches remembered (the oldest are dropped beyond this).
const MAX_FAILED: usize = 10_000;

impl std::fmt::Debug for Sts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sts")
            .field("port", &self.port)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The policy that applies, with the words for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub entry: Entry,
    /// `fetched ...` or `cached ...`, with id, age and expiry (and why the cache was used).
    pub about: String,
}

/// Why `refresh` stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("_mta-sts.{domain}: {why}")]
    Txt { domain: String, why: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
}

/// `3d 4h`, `5m`, `12s`.
pub fn human(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `id X, fetched 5m ago, expires in 6d 23h` (or `expired 2h ago`).
pub fn age(e: &Entry, now: u64) -> String {
    let ago = human(now.saturating_sub(e.fetched));
    let exp = e.expires();
    let expiry = if exp > now {
        format!("expires in {}", human(exp - now))
    } else {
        format!("expired {} ago", human(now - exp))
    };
    format!("id {}, fetched {ago} ago from {}, {expiry}", e.id, e.url)
}

impl Sts {
    /// MTA-STS with its cache under `<state_dir>/mta-sts`; policies fetched from port
    /// `port` (443 outside tests).
    pub fn new(
        dns: Resolver,
        port: u16,
        state_dir: &Path,
        roots: Roots,
    ) -> Result<Sts, CacheError> {
        Ok(Sts::with_cache(dns, port, Cache::open(state_dir)?, roots))
    }

    /// [`Sts::new`], falling back to a memory-only cache (with a warning) when
    /// `<state_dir>/mta-sts` cannot be used: policies are still applied, but not kept
    /// across restarts.
    pub fn new_or_memory(dns: Resolver, port: u16, state_dir: &Path, roots: Roots) -> Sts {
        let cache = Cache::open(state_dir).unwrap_or_else(|e| {
            warn!("MTA-STS policy cache unusable ({e}): policies are kept in memory only");
            Cache::memory()
        });
        Sts::with_cache(dns, port, cache, roots)
    }

    /// MTA-STS over a given cache.
    pub fn with_cache(dns: Resolver, port: u16, cache: Cache, roots: Roots) -> Sts {
        Sts {
            fetcher: Fetcher::new(dns.clone(), port),
            dns,
            cache,
            roots,
            port,
            failed: std::sync::Mutex::new(HashMap::new()),
            fetching: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Why the last fetch of `id` for `domain` failed, if that was recently.
    fn recently_failed(&self, domain: &str, id: &str) -> Option<String> {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed
            .get(domain)
            .filter(|f| f.id == id && f.until > std::time::Instant::now())
            .map(|f| f.why.clone())
    }

    fn remember_failure(&self, domain: &str, id: &str, why: String) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if failed.len() >= MAX_FAILED {
            failed.retain(|_, f| f.until > now);
            if failed.len() >= MAX_FAILED
                && let Some(oldest) = failed
                    .iter()
                    .min_by_key(|(_, f)| f.until)
                    .map(|(d, _)| d.clone())
            {
                failed.remove(&oldest);
            }
        }
        failed.insert(
            domain.to_string(),
            Failed {
                id: id.to_string(),
                until: now + FETCH_RETRY_AFTER,
                why,
            },
        );
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Domains whose policy is being fetched (or waited for) right now.
    pub fn fetches_in_progress(&self) -> usize {
        self.fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The policy id published for `domain`.
    async fn txt_id(&self, domain: &str) -> Result<String, String> {
        let name = format!("_mta-sts.{}", domain.trim_end_matches('.'));
        match self.dns.txt(&name).await {
            Ok(a) => policy_id(&a.records).map_err(|e| e.to_string()),
            Err(LookupError::NotFound | LookupError::NoRecords) => Err(TxtError::None.to_string()),
            Err(e) => Err(format!("DNS lookup failed: {e}")),
        }
    }

    /// The policy for `domain` (mode `none` included: callers treat it as no policy).
    pub async fn lookup(&self, domain: &str) -> Option<Found> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let now = now();
        let cached = self.cache.get(&domain).filter(|e| !e.expired(now));
        let id = match self.txt_id(&domain).await {
            Ok(id) => id,
            Err(why) => {
                let e = cached?;
                let about = format!(
                    "cached ({}); no usable _mta-sts TXT record now: {why}",
                    age(&e, now)
                );
                return Some(Found { entry: e, about });
            }
        };
        if let Some(e) = &cached
            && e.id == id
        {
            let about = format!("cached ({}); TXT id unchanged", age(e, now));
            return Some(Found {
                entry: e.clone(),
                about,
            });
        }
        // One fetch per domain at a time; whoever waited finds its result below.
        let _turn = self.turn(&domain).await;
        self.lookup_fetch(&domain, &id, cached, now).await
    }

    /// Wait for `domain`'s fetch gate (see `fetching`); held until the turn is dropped.
    async fn turn(&self, domain: &str) -> FetchTurn<'_> {
        let gate = self
            .fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(domain.to_string())
            .or_default()
            .clone();
        let guard = gate.clone().lock_owned().await;
        FetchTurn {
            sts: self,
            domain: domain.to_string(),
            gate,
            guard: Some(guard),
        }
    }

    /// [`Sts::lookup`] once the domain's fetch gate is held: the policy another delivery
    /// fetched meanwhile, the cached one after a recent failure, or a fetch now.
    async fn lookup_fetch(
        &self,
        domain: &str,
        id: &str,
        cached: Option<Entry>,
        now: u64,
    ) -> Option<Found> {
        if let Some(e) = self
            .cache
            .get(domain)
            .filter(|e| !e.expired(now) && e.id == id)
        {
            let about = format!("fetched just now by another delivery ({})", age(&e, now));
            return Some(Found { entry: e, about });
        }
        let domain = domain.to_string();
        if let Some(why) = self.recently_failed(&domain, id) {
            let e = cached?;
            let about = format!(
                "cached ({}); fetching TXT id {id} failed in the last {}s: {why}",
                age(&e, now),
                FETCH_RETRY_AFTER.as_secs()
            );
            return Some(Found { entry: e, about });
        }
        match self.fetch_store(&domain, id).await {
            Ok(e) => {
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&domain);
                let about = format!("fetched just now ({})", age(&e, now));
                Some(Found { entry: e, about })
            }
            Err(err) => {
                warn!(
                    "MTA-STS: policy for {domain} (TXT id {id}) not fetched: {err}; not tried again for this id for {}s",
                    FETCH_RETRY_AFTER.as_secs()
                );
                self.remember_failure(&domain, id, err.to_string());
                let e = cached?;
                let about = format!(
                    "cached ({}); fetching TXT id {id} failed: {err}",
                    age(&e, now)
                );
                Some(Found { entry: e, about })
            }
        }
    }

    async fn fetch_store(&self, domain: &str, id: &str) -> Result<Entry, RefreshError> {
        let policy = self.fetcher.fetch(domain, (self.roots)()).await?;
        let e = Entry {
            domain: domain.to_string(),
            id: id.to_string(),
            policy,
            url: policy_url(domain, self.port),
            fetched: now(),
        };
        self.cache.put(&e)?;
        info!(
            "MTA-STS: policy for {domain} fetched from {} (id {id}): mode {}, mx {}, max_age {}",
            e.url,
            e.policy.mode.as_str(),
            e.policy.mx.join(" "),
            e.policy.max_age
        );
        Ok(e)
    }

    /// Fetch `domain`'s policy now (the TXT record must name an id) and store it.
    pub async fn refresh(&self, domain: &str) -> Result<Entry, RefreshError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let id = self
            .txt_id(&domain)
            .await
            .map_err(|why| RefreshError::Txt {
                domain: domain.clone(),
                why,
            })?;
        let _turn = self.turn(&domain).await;
        self.fetch_store(&domain, &id).await
    }

    /// Refresh every cached policy that has used half its `max_age` or whose TXT id
    /// changed (RFC 8461 §10.2: refresh before expiry); expired ones are dropped. The
    /// number refreshed.
    pub async fn refresh_due(&self) -> usize {
        let now = now();
        let mut n = 0;
        for e in self.cache.entries() {
            let half = e.fetched.saturating_add(e.policy.max_age / 2);
            let id = self.txt_id(&e.domain).await.ok();
            let changed = id.as_ref().is_some_and(|i| *i != e.id);
            if now < half && !changed {
                continue;
            }
            let id = id.unwrap_or_else(|| e.id.clone());
            let turn = self.turn(&e.domain).await;
            let fetched = self.fetch_store(&e.domain, &id).await;
            drop(turn);
            match fetched {
                Ok(_) => n += 1,
                Err(err) if e.expired(now) => {
                    warn!(
                        "MTA-STS: expired policy for {} dropped; refreshing failed: {err}",
                        e.domain
                    );
                    let _ = self.cache.forget(&e.domain);
                }
                Err(err) => warn!(
                    "MTA-STS: policy for {} not refreshed (the cached one stays, {}): {err}",
                    e.domain,
                    age(&e, now)
                ),
            }
        }
        n
    }

    /// Refresh every [`REFRESH_INTERVAL`] until `stop` turns true.
    pub async fn refresher(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            self.refresh_due().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_times() {
        assert_eq!(human(5), "5s");
        assert_eq!(human(300), "5m");
        assert_eq!(human(3900), "1h 5m");
        assert_eq!(human(90000), "1d 1h");
    }
}
