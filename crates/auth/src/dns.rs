//! DNS for the checks: a hickory resolver pointed at the `[resolver]` nameservers, and
//! bounded TTL caches for the records SPF, DKIM and DMARC look up, so that a key or an SPF
//! include is fetched once per TTL, not once per message.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::{MX, MessageAuthenticator, Parameters, RecordSet, ResolverCache, Txt};

/// Entries per cache; when full, expired entries go first, then the oldest half.
const MAX_ENTRIES: usize = 8192;
/// Longest time anything is cached, whatever its TTL says.
const MAX_TTL: Duration = Duration::from_secs(3600);

/// Build the authenticator: explicit nameservers (UDP with TCP fallback), or the system
/// configuration when the list is empty.
pub fn authenticator(
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<MessageAuthenticator, String> {
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?
    } else {
        let servers = nameservers
            .iter()
            .map(|sa| {
                let mut udp = ConnectionConfig::udp();
                udp.port = sa.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = sa.port();
                NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.ndots = 0;
    let resolver = builder
        .build()
        .map_err(|e| format!("cannot build the DNS resolver: {e}"))?;
    Ok(MessageAuthenticator(resolver))
}

/// A bounded cache honouring the TTL mail-auth hands over.
pub struct TtlCache<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new() -> Self {
        TtlCache {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TtlCache")
    }
}

impl<C> std::fmt::Debug for Counting<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counting")
    }
}

impl std::fmt::Debug for CountingSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountingSet")
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for TtlCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.lock();
        match map.get(name) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let now = Instant::now();
        let until = valid_until.min(now + MAX_TTL);
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= MAX_ENTRIES {
                let mut ages: Vec<(K, Instant)> =
                    map.iter().map(|(k, (_, u))| (k.clone(), *u)).collect();
                ages.sort_by_key(|(_, u)| *u);
                for (k, _) in ages.into_iter().take(MAX_ENTRIES / 2) {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, (value, until));
    }
}

/// The five caches mail-auth can use.
#[derive(Default)]
pub struct Caches {
    pub txt: TtlCache<Box<str>, Txt>,
    pub mx: TtlCache<Box<str>, RecordSet<MX>>,
    pub ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    pub ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    pub ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("txt", &self.txt.len())
            .field("mx", &self.mx.len())
            .finish_non_exhaustive()
    }
}

/// A view of a cache for one SPF evaluation that counts look-ups which went to DNS and
/// came back with nothing usable: mail-auth 0.13 enforces the 10-look-up limit of
/// RFC 7208 §4.6.4 but not the limit of two void look-ups, so the caller turns a result
/// reached after more than two into `permerror` (equivalent, because the limit makes any
/// evaluation that passes it end in `permerror`).
pub struct Counting<'a, C> {
    inner: &'a C,
    misses: &'a AtomicUsize,
    fills: &'a AtomicUsize,
}

impl<K, V, C: ResolverCache<K, V>> ResolverCache<K, V> for Counting<'_, C> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let v = self.inner.get(name);
        if v.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        v
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(name)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        self.fills.fetch_add(1, Ordering::Relaxed);
        self.inner.insert(key, value, valid_until);
    }
}

/// Counters for [`Counting`].
#[derive(Debug, Default)]
pub struct VoidCounter {
    misses: AtomicUsize,
    fills: AtomicUsize,
}

impl VoidCounter {
    /// Look-ups that found nothing (or failed): misses never filled.
    pub fn void(&self) -> usize {
        self.misses
            .load(Ordering::Relaxed)
            .saturating_sub(self.fills.load(Ordering::Relaxed))
    }
}

/// Parameters with every cache, as mail-auth wants them.
pub type Cached<'x, P> = Parameters<
    'x,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

/// Parameters with counting caches, for SPF.
pub type Counted<'x, P> = Parameters<
    'x,
    P,
    Counting<'x, TtlCache<Box<str>, Txt>>,
    Counting<'x, TtlCache<Box<str>, RecordSet<MX>>>,
    Counting<'x, TtlCache<Box<str>, RecordSet<Ipv4Addr>>>,
    Counting<'x, TtlCache<Box<str>, RecordSet<Ipv6Addr>>>,
    Counting<'x, TtlCache<IpAddr, RecordSet<Box<str>>>>,
>;

/// The five counting views over `caches`, kept alive by the caller for one evaluation.
pub struct CountingSet<'a> {
    txt: Counting<'a, TtlCache<Box<str>, Txt>>,
    mx: Counting<'a, TtlCache<Box<str>, RecordSet<MX>>>,
    ipv4: Counting<'a, TtlCache<Box<str>, RecordSet<Ipv4Addr>>>,
    ipv6: Counting<'a, TtlCache<Box<str>, RecordSet<Ipv6Addr>>>,
    ptr: Counting<'a, TtlCache<IpAddr, RecordSet<Box<str>>>>,
}

impl Caches {
    pub fn params<'x, P>(&'x self, p: P) -> Cached<'x, P> {
        Parameters::new(p)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }

    pub fn counting<'a>(&'a self, c: &'a VoidCounter) -> CountingSet<'a> {
        let (misses, fills) = (&c.misses, &c.fills);
        CountingSet {
            txt: Counting {
                inner: &self.txt,
                misses,
                fills,
            },
            mx: Counting {
                inner: &self.mx,
                misses,
                fills,
            },
            ipv4: Counting {
                inner: &self.ipv4,
                misses,
                fills,
            },
            ipv6: Counting {
                inner: &self.ipv6,
                misses,
                fills,
            },
            ptr: Counting {
                inner: &self.ptr,
                misses,
                fills,
            },
        }
    }
}

impl<'a> CountingSet<'a> {
    pub fn params<'x, P>(&'x self, p: P) -> Counted<'x, P>
    where
        'a: 'x,
    {
        Parameters::new(p)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_honoured_and_size_bounded() {
        let c: TtlCache<Box<str>, u32> = TtlCache::new();
        c.insert("a".into(), 1, Instant::now() + Duration::from_secs(60));
        c.insert("b".into(), 2, Instant::now());
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("b"), None);
        for i in 0..(MAX_ENTRIES + 10) {
            c.insert(
                format!("k{i}").into(),
                0,
                Instant::now() + Duration::from_secs(60 + i as u64),
            );
        }
        assert!(c.len() <= MAX_ENTRIES);
    }
}
