//! DNS for the checks, on the shared DNS layer (`postern-dns`): mail-auth's
//! `MessageAuthenticator` runs on the same hickory resolver as delivery, and the records
//! SPF, DKIM and DMARC look up are kept in `postern-dns`'s TTL- and size-bounded cache,
//! so that a key or an SPF include is fetched once per TTL, not once per message.
//!
//! mail-auth 0.13 takes its resolver as a concrete `MessageAuthenticator(TokioResolver)`
//! and its caches through its `ResolverCache` trait (one per record type, handed over in
//! `Parameters`); [`AuthCache`] adapts the shared cache to that trait.

use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mail_auth::{MX, MessageAuthenticator, Parameters, RecordSet, ResolverCache, Txt};
use postern_dns::{Resolver, TtlCache};

/// The authenticator on the shared resolver (connections and hickory's cache shared).
pub fn for_resolver(resolver: &Resolver) -> MessageAuthenticator {
    MessageAuthenticator(resolver.hickory().clone())
}

/// The shared cache, as mail-auth wants it. The TTL mail-auth hands over is honoured,
/// bounded by [`postern_dns::MAX_TTL`].
#[derive(Debug)]
pub struct AuthCache<K, V>(TtlCache<K, V>);

impl<K: Hash + Eq + Clone, V: Clone> AuthCache<K, V> {
    pub fn new() -> Self {
        AuthCache(TtlCache::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for AuthCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ResolverCache<K, V> for AuthCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name)
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.remove(name)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        self.0.insert(key, value, valid_until);
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

/// The five caches mail-auth can use.
#[derive(Default)]
pub struct Caches {
    pub txt: AuthCache<Box<str>, Txt>,
    pub mx: AuthCache<Box<str>, RecordSet<MX>>,
    pub ipv4: AuthCache<Box<str>, RecordSet<Ipv4Addr>>,
    pub ipv6: AuthCache<Box<str>, RecordSet<Ipv6Addr>>,
    pub ptr: AuthCache<IpAddr, RecordSet<Box<str>>>,
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
    AuthCache<Box<str>, Txt>,
    AuthCache<Box<str>, RecordSet<MX>>,
    AuthCache<Box<str>, RecordSet<Ipv4Addr>>,
    AuthCache<Box<str>, RecordSet<Ipv6Addr>>,
    AuthCache<IpAddr, RecordSet<Box<str>>>,
>;

/// Parameters with counting caches, for SPF.
pub type Counted<'x, P> = Parameters<
    'x,
    P,
    Counting<'x, AuthCache<Box<str>, Txt>>,
    Counting<'x, AuthCache<Box<str>, RecordSet<MX>>>,
    Counting<'x, AuthCache<Box<str>, RecordSet<Ipv4Addr>>>,
    Counting<'x, AuthCache<Box<str>, RecordSet<Ipv6Addr>>>,
    Counting<'x, AuthCache<IpAddr, RecordSet<Box<str>>>>,
>;

/// The five counting views over `caches`, kept alive by the caller for one evaluation.
pub struct CountingSet<'a> {
    txt: Counting<'a, AuthCache<Box<str>, Txt>>,
    mx: Counting<'a, AuthCache<Box<str>, RecordSet<MX>>>,
    ipv4: Counting<'a, AuthCache<Box<str>, RecordSet<Ipv4Addr>>>,
    ipv6: Counting<'a, AuthCache<Box<str>, RecordSet<Ipv6Addr>>>,
    ptr: Counting<'a, AuthCache<IpAddr, RecordSet<Box<str>>>>,
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
