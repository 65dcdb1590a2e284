//! Dialing against real sockets: the Happy Eyeballs race (a silent
//! address first, the real broker second), the resolver hook, the DNS
//! cache and the address family setting. "Silent" is a listener whose
//! full backlog drops SYNs ([`FullBacklog`]): a SYN that is never
//! answered, as from a firewalled or vanished host, not a refusal.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_conn_driver::{
    connect, connect_direct, AddressFamily, AttemptOutcome, ConnectConfig, ConnectError, Runtime,
};

use crate::fake::FullBacklog;
use crate::kafka::{assert_metadata_for, metadata_for};
use crate::tests::LIMIT;
use crate::{connected, env, refused};

/// A resolver answering every name with `addresses` and counting calls.
fn fixed(addresses: Vec<SocketAddr>, calls: Arc<AtomicUsize>) -> ConnectConfig {
    ConnectConfig::default().with_resolver(move |host, _port| {
        assert_eq!(
            host, "broker.test",
            "the resolver is asked for the host as given"
        );
        calls.fetch_add(1, Ordering::SeqCst);
        let found = addresses.clone();
        async move { Ok(found) }
    })
}

/// The name resolves to a silent address first and the real broker
/// second: the broker's attempt starts one attempt delay (250 ms) after the
/// first, wins, and the silent attempt is cancelled, long before the 10 s
/// connect timeout would have ended it.
pub async fn happy_eyeballs_live_address_wins_over_a_silent_one<R: Runtime>(rt: R) {
    let Some(live) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let Some(full) = FullBacklog::start() else {
        eprintln!("SKIPPED: a connect to a full backlog does not hang on this system");
        return;
    };
    let (dead, live): (SocketAddr, SocketAddr) = (full.addr(), live.parse().unwrap());
    let config =
        fixed(vec![dead, live], Arc::default()).with_connect_timeout(Duration::from_secs(10));
    for direct in [false, true] {
        let started = rt.now();
        let info = if direct {
            let c = connect_direct(rt.clone(), "broker.test:9092", config.clone());
            let mut client = connected(&rt, "broker.test", LIMIT, c).await;
            let r = client.request(metadata_for("kc-eyeballs")).await.unwrap();
            assert_metadata_for(&r, "kc-eyeballs");
            client.info().clone()
        } else {
            let c = connect(rt.clone(), "broker.test:9092", config.clone());
            let client = connected(&rt, "broker.test", LIMIT, c).await;
            let r = client.send(metadata_for("kc-eyeballs")).await.unwrap();
            assert_metadata_for(&r, "kc-eyeballs");
            client.info().clone()
        };
        let took = rt.now() - started;
        eprintln!(
            "direct={direct}: connected in {took:?}: {:#?}",
            info.attempts
        );
        // Within about the attempt delay, not the connect timeout.
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(info.address, live);
        assert_eq!(info.resolved, [dead, live]);
        let [first, second] = info.attempts.as_slice() else {
            panic!("two attempts: {:?}", info.attempts)
        };
        assert_eq!(
            (first.addr, first.outcome, first.started),
            (dead, AttemptOutcome::Cancelled, Duration::ZERO)
        );
        assert_eq!(first.reason, format!("cancelled: {live} connected first"));
        assert_eq!(
            (second.addr, second.outcome),
            (live, AttemptOutcome::Connected)
        );
        // The second address waited for the delay, since the first was pending.
        assert!(second.started >= Duration::from_millis(250), "{second:?}");
        assert!(first.took >= second.started, "{first:?}");
        assert_eq!(info.failed_attempts, std::slice::from_ref(first));
    }
}

/// A shorter attempt delay starts the live attempt sooner; the race is
/// the same.
pub async fn attempt_delay_is_configurable<R: Runtime>(rt: R) {
    let Some(live) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let Some(full) = FullBacklog::start() else {
        eprintln!("SKIPPED: a connect to a full backlog does not hang on this system");
        return;
    };
    let (dead, live): (SocketAddr, SocketAddr) = (full.addr(), live.parse().unwrap());
    let delay = Duration::from_millis(50);
    let config = fixed(vec![dead, live], Arc::default()).with_attempt_delay(delay);
    let c = connect(rt.clone(), "broker.test:9092", config);
    let client = connected(&rt, "broker.test", LIMIT, c).await;
    let attempts = &client.info().attempts;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[1].started >= delay, "{attempts:?}");
    assert!(
        attempts[1].started < Duration::from_millis(250),
        "{attempts:?}"
    );
    assert_eq!(attempts[0].outcome, AttemptOutcome::Cancelled);
}

/// Without a cache every connect asks the resolver; with one, the answer
/// is reused for its lifetime, and dropped when none of its addresses
/// connects.
pub async fn dns_is_resolved_on_every_connect_unless_cached<R: Runtime>(rt: R) {
    let Some(live) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let live: SocketAddr = live.parse().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let config = fixed(vec![live], calls.clone());
    for _ in 0..2 {
        let c = connect(rt.clone(), "broker.test:9092", config.clone());
        connected(&rt, "broker.test", LIMIT, c).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "no cache: one lookup per connect"
    );

    let calls = Arc::new(AtomicUsize::new(0));
    let cached = fixed(vec![live], calls.clone()).with_dns_cache(Duration::from_secs(60));
    for _ in 0..3 {
        let c = connect(rt.clone(), "broker.test:9092", cached.clone());
        let client = connected(&rt, "broker.test", LIMIT, c).await;
        assert!(client.info().timings.resolve.is_some());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "cached: one lookup");

    // A cached answer that no longer connects is forgotten.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let stale = fixed(vec![closed], calls.clone()).with_dns_cache(Duration::from_secs(60));
    for _ in 0..2 {
        let c = connect(rt.clone(), "broker.test:9092", stale.clone());
        let e = refused(&rt, "broker.test", LIMIT, c).await;
        assert!(matches!(e, ConnectError::Refused { .. }), "{e}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the stale answer was dropped"
    );
}

/// Restricting the family filters the resolver's answer; nothing left is
/// a clear error naming the setting.
pub async fn address_family_restricts_and_orders<R: Runtime>(rt: R) {
    let Some(live) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let live: SocketAddr = live.parse().unwrap();
    let v6: SocketAddr = "[::1]:1".parse().unwrap();
    let config = fixed(vec![v6, live], Arc::default());

    let only_v6 = config.clone().with_address_family(AddressFamily::V6Only);
    let e = refused(
        &rt,
        "broker.test",
        LIMIT,
        connect(rt.clone(), "broker.test:9092", only_v6),
    )
    .await;
    // [::1]:1 is closed (or IPv6 is off): either way the v4 broker was not tried.
    let p = e.progress().expect("progress");
    assert!(p.attempts.iter().all(|a| a.addr == v6), "{p:?}");

    let only_v4 = fixed(vec![v6], Arc::default()).with_address_family(AddressFamily::V4Only);
    let e = refused(
        &rt,
        "broker.test",
        LIMIT,
        connect(rt.clone(), "broker.test:9092", only_v4),
    )
    .await;
    assert!(
        matches!(
            e,
            ConnectError::NoAddressOfFamily {
                family: AddressFamily::V4Only,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "broker.test resolved to ::1, but none is allowed by the address family setting (IPv4 only)"
    );
    assert!(!e.is_retriable());

    // Preferring v4 tries the broker first: it connects without a race.
    let prefer_v4 = config.with_address_family(AddressFamily::PreferV4);
    let c = connect(rt.clone(), "broker.test:9092", prefer_v4);
    let client = connected(&rt, "broker.test", LIMIT, c).await;
    let attempts = &client.info().attempts;
    assert_eq!(attempts[0].addr, live, "{attempts:?}");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
}
