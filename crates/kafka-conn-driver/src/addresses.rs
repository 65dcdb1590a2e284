//! Which resolved addresses a dial tries, in which order: the address
//! family setting, then RFC 8305 section 4's interleaving. Pure functions
//! and a small cache of answers, no I/O.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which IP versions a dial uses, and which it tries first.
///
/// The counterpart of the Java client's `java.net.preferIPv4Stack` /
/// `preferIPv6Addresses` JVM properties and of librdkafka's
/// `broker.address.family` (`any`, `v4`, `v6`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressFamily {
    /// Both, starting with the family of the resolver's first answer (the
    /// system resolver sorts by RFC 6724, which puts working IPv6 first)
    /// and alternating from there (RFC 8305 section 4).
    #[default]
    Any,
    /// Both, IPv4 first, then alternating.
    PreferV4,
    /// Both, IPv6 first, then alternating.
    PreferV6,
    /// IPv4 addresses only.
    V4Only,
    /// IPv6 addresses only.
    V6Only,
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressFamily::Any => "any",
            AddressFamily::PreferV4 => "prefer IPv4",
            AddressFamily::PreferV6 => "prefer IPv6",
            AddressFamily::V4Only => "IPv4 only",
            AddressFamily::V6Only => "IPv6 only",
        })
    }
}

/// The addresses to try, in order: duplicates removed, filtered by
/// `family`, then the two families interleaved one by one (RFC 8305
/// section 4, "First Address Family Count" 1), starting with the
/// preferred family or, for [`AddressFamily::Any`], the family of the
/// first address. Within a family the resolver's order is kept.
pub(crate) fn order(resolved: &[SocketAddr], family: AddressFamily) -> Vec<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(resolved.len());
    for a in resolved {
        if !unique.contains(a) {
            unique.push(*a);
        }
    }
    let first_v6 = match family {
        AddressFamily::V4Only => return unique.into_iter().filter(SocketAddr::is_ipv4).collect(),
        AddressFamily::V6Only => return unique.into_iter().filter(SocketAddr::is_ipv6).collect(),
        AddressFamily::PreferV4 => false,
        AddressFamily::PreferV6 => true,
        AddressFamily::Any => unique.first().is_some_and(SocketAddr::is_ipv6),
    };
    let (v6, v4): (Vec<_>, Vec<_>) = unique.into_iter().partition(SocketAddr::is_ipv6);
    let (mut first, mut second) = if first_v6 {
        (v6.into_iter(), v4.into_iter())
    } else {
        (v4.into_iter(), v6.into_iter())
    };
    let mut out = Vec::with_capacity(first.len() + second.len());
    loop {
        match (first.next(), second.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Cached answers by host and port, with when each was resolved.
type Entries = HashMap<(String, u16), (Instant, Vec<SocketAddr>)>;

/// Resolved addresses kept for a while, shared by every clone of the
/// [`ConnectConfig`](crate::ConnectConfig) that made it (see
/// [`ConnectConfig::with_dns_cache`](crate::ConnectConfig::with_dns_cache)).
#[derive(Clone)]
pub(crate) struct DnsCache {
    lifetime: Duration,
    entries: Arc<Mutex<Entries>>,
}

impl fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsCache")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl DnsCache {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            entries: Arc::default(),
        }
    }

    /// The answer for `host:port` if it is younger than the lifetime at `now`.
    pub(crate) fn get(&self, host: &str, port: u16, now: Instant) -> Option<Vec<SocketAddr>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (host.to_owned(), port);
        match entries.get(&key) {
            Some((at, found)) if now.saturating_duration_since(*at) < self.lifetime => {
                Some(found.clone())
            }
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps `found` for `host:port` from `now`.
    pub(crate) fn put(&self, host: &str, port: u16, found: &[SocketAddr], now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert((host.to_owned(), port), (now, found.to_vec()));
    }

    /// Forgets `host:port`: none of its cached addresses could be reached,
    /// so the next dial asks the resolver again.
    pub(crate) fn forget(&self, host: &str, port: u16) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(host.to_owned(), port));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_interleave_from_the_first_answer() {
        let resolved = [
            a("[2001:db8::1]:9092"),
            a("[2001:db8::2]:9092"),
            a("192.0.2.1:9092"),
            a("[2001:db8::3]:9092"),
            a("192.0.2.2:9092"),
        ];
        assert_eq!(
            order(&resolved, AddressFamily::Any),
            [
                a("[2001:db8::1]:9092"),
                a("192.0.2.1:9092"),
                a("[2001:db8::2]:9092"),
                a("192.0.2.2:9092"),
                a("[2001:db8::3]:9092"),
            ]
        );
        assert_eq!(
            order(&resolved, AddressFamily::PreferV4),
            [
                a("192.0.2.1:9092"),
                a("[2001:db8::1]:9092"),
                a("192.0.2.2:9092"),
                a("[2001:db8::2]:9092"),
                a("[2001:db8::3]:9092"),
            ]
        );
        assert_eq!(
            order(&resolved, AddressFamily::V4Only),
            [a("192.0.2.1:9092"), a("192.0.2.2:9092")]
        );
        assert_eq!(
            order(&resolved[2..3], AddressFamily::V6Only),
            Vec::<SocketAddr>::new()
        );
        // Duplicates (one per socket type from some resolvers) go.
        assert_eq!(
            order(
                &[a("192.0.2.1:1"), a("192.0.2.1:1"), a("192.0.2.2:1")],
                AddressFamily::PreferV6
            ),
            [a("192.0.2.1:1"), a("192.0.2.2:1")]
        );
    }

    #[test]
    fn the_cache_keeps_answers_for_their_lifetime() {
        let t0 = Instant::now();
        let cache = DnsCache::new(Duration::from_secs(30));
        assert_eq!(cache.get("broker", 9092, t0), None);
        cache.put("broker", 9092, &[a("192.0.2.1:9092")], t0);
        let clone = cache.clone();
        assert_eq!(
            clone.get("broker", 9092, t0 + Duration::from_secs(29)),
            Some(vec![a("192.0.2.1:9092")])
        );
        assert_eq!(cache.get("broker", 9093, t0), None);
        assert_eq!(
            cache.get("broker", 9092, t0 + Duration::from_secs(30)),
            None
        );
        cache.put("broker", 9092, &[a("192.0.2.1:9092")], t0);
        cache.forget("broker", 9092);
        assert_eq!(cache.get("broker", 9092, t0), None);
    }

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (0..4u8).prop_map(|n| SocketAddr::from(([192, 0, 2, n], 9092))),
            (0..4u16).prop_map(|n| SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, n], 9092))),
        ]
    }

    proptest! {
        #[test]
        fn ordering_keeps_every_allowed_address_once_and_alternates(
            resolved in prop::collection::vec(addr(), 0..12),
            family in prop_oneof![
                Just(AddressFamily::Any),
                Just(AddressFamily::PreferV4),
                Just(AddressFamily::PreferV6),
                Just(AddressFamily::V4Only),
                Just(AddressFamily::V6Only),
            ],
        ) {
            let out = order(&resolved, family);
            let allowed = |x: &SocketAddr| match family {
                AddressFamily::V4Only => x.is_ipv4(),
                AddressFamily::V6Only => x.is_ipv6(),
                _ => true,
            };
            // The same set, each once.
            let mut want: Vec<_> = resolved.iter().copied().filter(allowed).collect();
            want.sort();
            want.dedup();
            let mut got = out.clone();
            got.sort();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(got.len(), out.len());
            // Each family keeps the resolver's order.
            for v6 in [false, true] {
                let first_seen: Vec<_> = resolved.iter().filter(|x| x.is_ipv6() == v6 && allowed(x))
                    .fold(Vec::new(), |mut v, x| { if !v.contains(x) { v.push(*x) } v });
                let kept: Vec<_> = out.iter().copied().filter(|x| x.is_ipv6() == v6).collect();
                prop_assert_eq!(kept, first_seen);
            }
            // The families alternate while both have addresses left.
            let v6_left = |from: usize| out[from..].iter().any(SocketAddr::is_ipv6);
            let v4_left = |from: usize| out[from..].iter().any(SocketAddr::is_ipv4);
            for i in 1..out.len() {
                if out[i].is_ipv6() == out[i - 1].is_ipv6() {
                    let other_left = if out[i].is_ipv6() { v4_left(i) } else { v6_left(i) };
                    prop_assert!(!other_left, "two of a family in a row with the other left: {:?}", out);
                }
            }
            // The preferred family comes first when present.
            if let Some(first) = out.first() {
                match family {
                    AddressFamily::PreferV4 if want.iter().any(SocketAddr::is_ipv4) => prop_assert!(first.is_ipv4()),
                    AddressFamily::PreferV6 if want.iter().any(SocketAddr::is_ipv6) => prop_assert!(first.is_ipv6()),
                    AddressFamily::Any => prop_assert_eq!(first.is_ipv6(), resolved[0].is_ipv6()),
                    _ => {}
                }
            }
        }
    }
}
