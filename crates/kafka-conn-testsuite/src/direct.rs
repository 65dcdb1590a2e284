//! [`DirectClient`]: the connection run in the caller's own task, against
//! the same real brokers and faults as [`Client`](kafka_conn_driver::Client).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use kafka_conn_driver::core::sasl::{OAuthBearerToken, SaslConfig};
use kafka_conn_driver::core::{
    ApiKey, CloseReason, Config, CorrelationId, RequestError, SendError,
};
use kafka_conn_driver::{
    connect_direct, ConnectConfig, ConnectError, DirectClient, RequestFailure, Runtime, TlsConfig,
};

use crate::env::Plaintext;
use crate::fake::{Fake, OAuthBroker, Proxy};
use crate::kafka::{
    api_versions_error, api_versions_v0, assert_metadata_for, metadata_all, metadata_for,
};
use crate::tests::LIMIT;
use crate::{connected, env, hint, refused, sleep, timeout, xorshift};

async fn must_connect<R: Runtime>(rt: &R, addr: &str, config: ConnectConfig) -> DirectClient<R> {
    connected(rt, addr, LIMIT, connect_direct(rt.clone(), addr, config)).await
}

async fn must_fail<R: Runtime>(rt: &R, addr: &str, config: ConnectConfig) -> ConnectError {
    refused(rt, addr, LIMIT, connect_direct(rt.clone(), addr, config)).await
}

/// One task keeps 64 requests in flight with `submit` and `recv` until
/// 10,048 are answered; every completion names the topic its request
/// asked for. Then `request` on the same connection, a KIP-219 throttle
/// the caller reports, and the counters.
pub async fn direct_pipelines_10k_requests_in_one_task<R: Runtime>(rt: R, broker: Plaintext) {
    let addr = broker.addr;
    let mut client = must_connect(&rt, &addr, ConnectConfig::default()).await;
    const TOTAL: usize = 64 * 157;
    let mut topics: HashMap<CorrelationId, String> = HashMap::new();
    let mut sent = 0;
    let mut answered = 0;
    let started = Instant::now();
    while answered < TOTAL {
        while sent < TOTAL && topics.len() < 64 {
            let topic = format!("kc-direct-{sent}");
            let id = client.submit(metadata_for(&topic)).unwrap();
            topics.insert(id, topic);
            sent += 1;
        }
        let done = timeout(&rt, LIMIT, client.recv())
            .await
            .expect("a completion in time")
            .expect("the connection is open");
        let topic = topics
            .remove(&done.correlation_id)
            .expect("a completion for a request we sent");
        assert_metadata_for(&done.result.unwrap(), &topic);
        answered += 1;
    }
    eprintln!(
        "{TOTAL} Metadata requests, 64 in flight, one task: {:?}",
        started.elapsed()
    );
    let r = client.request(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
    // KIP-219: a throttle the caller reports holds the next request until
    // it ends (ApiVersions v2 is past KIP-219's bump); the wait is the
    // core's timer, fired from inside `request`.
    assert!(ApiKey::API_VERSIONS.client_throttles(2));
    client.handle_throttle_time(ApiKey::API_VERSIONS, 2, 300);
    let held = Instant::now();
    let r = client.request(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
    assert!(
        held.elapsed() >= Duration::from_millis(300),
        "{:?}",
        held.elapsed()
    );
    assert!(
        client.stats().throttled >= Duration::from_millis(300),
        "{:?}",
        client.stats()
    );
    let stats = client.stats();
    assert_eq!(stats.responses_received, stats.requests_sent);
    assert!(stats.responses_received > TOTAL as u64, "{stats:?}");
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.completed(), 0);
}

/// TLS (tansu behind stunnel) and the mock cluster's version fallback.
pub async fn direct_connects_over_tls_and_to_the_mock_cluster<R: Runtime>(rt: R) {
    let Some([addr, ca, name]) = env::vars([
        "KAFKA_TLS_BOOTSTRAP",
        "KAFKA_TLS_CA_FILE",
        "KAFKA_TLS_SERVER_NAME",
    ]) else {
        return;
    };
    let tls = TlsConfig::ca_file(ca).with_server_name(name);
    let mut client = must_connect(&rt, &addr, ConnectConfig::default().with_tls(tls)).await;
    assert!(client.info().tls.is_some());
    let topic = "kc-direct-tls";
    assert_metadata_for(&client.request(metadata_for(topic)).await.unwrap(), topic);
    client.close();
    assert_eq!(client.closed().await, CloseReason::Shutdown);

    let Some(bootstrap) = env::var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let addr = bootstrap.split(',').next().unwrap();
    let mut client = must_connect(&rt, addr, ConnectConfig::default()).await;
    assert!(
        client.api_versions().fell_back,
        "{:?}",
        client.api_versions()
    );
    let r = client.request(metadata_all()).await.unwrap();
    assert_eq!(r.api_key, ApiKey::METADATA);
}

/// `request` futures dropped mid-flight (after one poll, which wrote the
/// request, or after a short timeout): their responses
/// are read and discarded, later requests get their own answers, and
/// nothing is left over.
pub async fn direct_dropped_requests_keep_the_connection_in_sync<R: Runtime>(
    rt: R,
    broker: Plaintext,
) {
    let addr = broker.addr;
    let mut client = must_connect(&rt, &addr, ConnectConfig::default()).await;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut dropped = 0;
    for i in 0..600 {
        xorshift(&mut seed);
        let topic = format!("kc-direct-storm-{i}");
        // A third are dropped after their first poll (which wrote them,
        // with a waker that goes nowhere); the rest after a short timeout.
        if seed % 3 == 0 {
            match client.request(metadata_for(&topic)).now_or_never() {
                Some(r) => assert_metadata_for(&r.unwrap(), &topic),
                None => dropped += 1,
            }
            continue;
        }
        let wait = Duration::from_micros(seed % 1500);
        match timeout(&rt, wait, client.request(metadata_for(&topic))).await {
            Some(r) => assert_metadata_for(&r.unwrap(), &topic),
            None => dropped += 1,
        }
    }
    eprintln!("direct storm: {dropped} in-flight requests dropped");
    assert!(dropped > 150, "the storm dropped only {dropped} requests");
    for i in 0..200 {
        let topic = format!("kc-direct-after-{i}");
        assert_metadata_for(&client.request(metadata_for(&topic)).await.unwrap(), &topic);
    }
    // The late responses came before the last answer (one connection, in
    // order), and none became a completion.
    let s = client.stats();
    assert_eq!(s.requests_sent, s.responses_received, "{s:?}");
    assert!(s.late_responses > 0, "{s:?}");
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.completed(), 0);
    assert!(!client.is_closed());
}

/// A peer that never answers: the request deadline fires while `request`
/// is awaited; `close` fails what is in flight with Shutdown, `recv` then
/// ends, later sends are refused, and the peer sees the socket close.
pub async fn direct_deadlines_and_close<R: Runtime>(rt: R) {
    let (fake, mut eof) = Fake::silent();
    let config = Config::new()
        .with_version_hint(hint())
        .with_request_timeout(Duration::from_millis(300));
    let mut client = must_connect(&rt, &fake.address(), config.into()).await;
    let started = Instant::now();
    let r = client
        .request(metadata_all().with_timeout(Duration::from_millis(150)))
        .await;
    let took = started.elapsed();
    assert_eq!(
        r.unwrap_err(),
        RequestFailure::Failed(RequestError::TimedOut(Duration::from_millis(150)))
    );
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_millis(450), "fired late: {took:?}");
    assert!(
        !client.is_closed(),
        "a timeout must not close the connection"
    );

    let ids: Vec<_> = (0..10)
        .map(|_| client.submit(metadata_all()).unwrap())
        .collect();
    // Let them go out: `recv` writes them, then waits (nothing answers).
    assert!(timeout(&rt, Duration::from_millis(100), client.recv())
        .await
        .is_none());
    // 11: the timed-out request keeps its slot for the unanswered grace
    // period, so that a late answer is read and discarded in order.
    assert_eq!(client.in_flight(), 11);
    client.close();
    for id in ids {
        let done = client.recv().await.expect("a completion per request");
        assert_eq!(done.correlation_id, id);
        assert_eq!(
            done.result.unwrap_err(),
            RequestFailure::Failed(RequestError::ConnectionClosed(CloseReason::Shutdown))
        );
    }
    assert!(client.recv().await.is_none());
    assert_eq!(client.closed().await, CloseReason::Shutdown);
    assert_eq!(
        client.submit(metadata_all()).unwrap_err(),
        SendError::Closed(CloseReason::Shutdown)
    );
    timeout(&rt, LIMIT, eof.next())
        .await
        .expect("the peer saw the connection close");
}

/// The broker dies with 50 requests in flight: `recv` hands out 50
/// failures with a retriable Broken reason promptly, then ends.
pub async fn direct_broker_killed_mid_flight_fails_each_request<R: Runtime>(
    rt: R,
    broker: Plaintext,
) {
    let upstream = broker.addr;
    let proxy = Proxy::to(&upstream);
    let mut client = must_connect(&rt, &proxy.address(), ConnectConfig::default()).await;
    let topic = "kc-direct-kill";
    assert_metadata_for(&client.request(metadata_for(topic)).await.unwrap(), topic);
    proxy.freeze();
    for i in 0..50 {
        client.submit(metadata_for(&format!("kc-dk-{i}"))).unwrap();
    }
    assert!(timeout(&rt, Duration::from_millis(100), client.recv())
        .await
        .is_none());
    assert_eq!(client.in_flight(), 50);
    let killed = Instant::now();
    proxy.kill();
    for _ in 0..50 {
        let done = timeout(&rt, Duration::from_secs(5), client.recv())
            .await
            .expect("a failure, not a hang")
            .expect("one completion per request");
        let reason = done
            .result
            .unwrap_err()
            .close_reason()
            .cloned()
            .expect("a close reason");
        assert!(matches!(reason, CloseReason::Broken { .. }), "{reason}");
        assert!(reason.is_retriable());
    }
    assert!(client.recv().await.is_none());
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "{:?}",
        killed.elapsed()
    );
    assert!(matches!(
        client.close_reason(),
        Some(CloseReason::Broken { .. })
    ));
}

/// `connect_direct` reports failures as `connect` does: a closed port,
/// a TLS listener asked in plaintext, and a wrong SASL password on the
/// real SASL broker; and every SASL mechanism succeeds with the right one.
pub async fn direct_connect_errors_and_sasl<R: Runtime>(rt: R) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = must_fail(&rt, &format!("127.0.0.1:{port}"), ConnectConfig::default()).await;
    assert!(matches!(e, ConnectError::Refused { .. }), "{e}");
    if let Some(tls_port) = env::var("KAFKA_TLS_BOOTSTRAP") {
        let e = must_fail(&rt, &tls_port, ConnectConfig::default()).await;
        assert!(matches!(e, ConnectError::BrokerSpeaksTls { .. }), "{e}");
    }
    let (Some(addr), Some(user), Some(password)) = (
        env::sasl_var("KAFKA_SASL_SCRAM_BOOTSTRAP"),
        env::sasl_var("KAFKA_SASL_USERNAME"),
        env::sasl_var("KAFKA_SASL_PASSWORD"),
    ) else {
        return;
    };
    for (mechanism, config) in crate::tests::sasl_cases(&user, &password) {
        let mut client = must_connect(&rt, &addr, config).await;
        assert_eq!(client.sasl_session().unwrap().mechanism, mechanism);
        client
            .request(metadata_all())
            .await
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
    }
    let (mechanism, config) = crate::tests::sasl_cases(&user, "wrong-password").remove(0);
    let e = must_fail(&rt, &addr, config).await;
    let Some(CloseReason::AuthFailed(f)) = e.close_reason() else {
        panic!("{mechanism}: {e}")
    };
    assert_eq!(f.error_code, Some(58), "{mechanism}: {e}");
}

/// KIP-368 re-authentication with an async token callback, run by the
/// caller's own task between its requests (3 s sessions, 6.6 s of
/// requests): at least two re-authentications, each with a fresh token.
pub async fn direct_reauthenticates_between_requests<R: Runtime>(rt: R) {
    let broker = OAuthBroker::start(3000);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let rt2 = rt.clone();
    let config = ConnectConfig::new(Config::new().with_sasl(SaslConfig::oauthbearer()))
        .with_oauth_token_provider(move || {
            let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let rt = rt2.clone();
            async move {
                sleep(&rt, Duration::from_millis(20)).await;
                Ok(OAuthBearerToken::new(format!("token-{n}")))
            }
        });
    let mut client = must_connect(&rt, &broker.address(), config).await;
    let until = Instant::now() + Duration::from_millis(6600);
    let mut i = 0;
    while Instant::now() < until {
        let topic = format!("kc-direct-oauth-{i}");
        let r = client.request(metadata_for(&topic)).await;
        assert_metadata_for(&r.unwrap_or_else(|e| panic!("request {i}: {e}")), &topic);
        i += 1;
        sleep(&rt, Duration::from_millis(20)).await;
    }
    let reauths = client.stats().reauthentications;
    assert!(reauths >= 2, "{reauths} re-authentications in 6.6 s");
    let tokens = broker.tokens();
    assert_eq!(tokens.len() as u64, reauths + 1, "{tokens:?}");
    assert!(!client.is_closed());
}
