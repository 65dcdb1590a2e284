//! Dead-peer detection on a real network path that goes silent: a broker
//! reached through a network namespace ([`Blackhole`]) whose packets are
//! all dropped once the connections are up. Keepalive (1 s idle, 1 s
//! interval, 2 probes) and `TCP_USER_TIMEOUT` (2 s) must end both an idle
//! connection and one with a request pending within seconds, with a close
//! reason that says the peer went silent, not after the 30 s request
//! timeout (or the OS's 15 minutes of retransmissions).

use std::time::Duration;

use kafka_conn_driver::core::{BrokenCause, CloseReason, Config, RequestError};
use kafka_conn_driver::{connect, ConnectConfig, Keepalive, RequestFailure, Runtime};

use crate::kafka::{assert_metadata_for, metadata_for};
use crate::netns::Blackhole;
use crate::tests::LIMIT;
use crate::{connected, env, timeout};

/// Generous: detection is configured for about 2-3 s.
const DETECTED_WITHIN: Duration = Duration::from_secs(10);

/// Asserts `reason` says the peer went silent, and may be retried.
fn assert_went_silent(reason: &CloseReason) {
    match reason {
        CloseReason::Broken {
            cause: BrokenCause::Io { kind, message },
            ..
        } => {
            assert_eq!(*kind, std::io::ErrorKind::TimedOut, "{reason}");
            assert!(message.starts_with("the peer went silent: "), "{reason}");
        }
        other => panic!("expected a silent peer, got {other}"),
    }
    assert!(reason.is_retriable(), "{reason}");
}

/// Connections through the namespace, idle and sending; the path is cut;
/// `TCP_USER_TIMEOUT` ends the busy one (its pending request fails with
/// the close reason), keepalive the idle ones (with and without a user
/// timeout).
pub async fn silent_peer_is_detected_by_keepalive_and_user_timeout<R: Runtime>(rt: R) {
    let Some(broker) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let Some(hole) = Blackhole::start(&broker) else {
        return;
    };
    let address = hole.address();
    let core = Config::new().with_request_timeout(Duration::from_secs(30));
    let keepalive_only = ConnectConfig::new(core.clone())
        .with_keepalive(Some(Keepalive::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
            2,
        )))
        .with_tcp_user_timeout(None);
    let config = keepalive_only
        .clone()
        .with_tcp_user_timeout(Some(Duration::from_secs(2)));
    let idle = connected(
        &rt,
        &address,
        LIMIT,
        connect(rt.clone(), &address, config.clone()),
    )
    .await;
    let busy = connected(&rt, &address, LIMIT, connect(rt.clone(), &address, config)).await;
    let probed = connect(rt.clone(), &address, keepalive_only);
    let probed = connected(&rt, &address, LIMIT, probed).await;
    for c in [&idle, &busy, &probed] {
        let r = c.send(metadata_for("kc-keepalive")).await.unwrap();
        assert_metadata_for(&r, "kc-keepalive");
    }

    hole.cut();
    let cut_at = rt.now();
    let failed = match timeout(&rt, DETECTED_WITHIN, busy.send(metadata_for("kc-silent"))).await {
        Some(Err(e)) => e,
        Some(Ok(r)) => panic!("a response through a cut path: {r:?}"),
        None => panic!("the pending request did not fail within {DETECTED_WITHIN:?}"),
    };
    let busy_took = rt.now() - cut_at;
    eprintln!("pending request failed after {busy_took:?}: {failed}");
    match &failed {
        RequestFailure::Failed(RequestError::ConnectionClosed(reason)) => {
            assert_went_silent(reason)
        }
        other => panic!("expected the connection's close, got {other}"),
    }
    assert!(failed.is_retriable(), "{failed}");

    let Some(reason) = timeout(&rt, DETECTED_WITHIN, idle.closed()).await else {
        panic!("the idle connection was not closed within {DETECTED_WITHIN:?}")
    };
    eprintln!(
        "idle connection closed after {:?}: {reason}",
        rt.now() - cut_at
    );
    assert_went_silent(&reason);

    // Keepalive alone (no user timeout) ends an idle connection too:
    // 2 probes 1 s apart after 1 s idle.
    let Some(reason) = timeout(&rt, DETECTED_WITHIN, probed.closed()).await else {
        panic!("keepalive alone did not close the idle connection within {DETECTED_WITHIN:?}")
    };
    eprintln!(
        "keepalive alone: closed after {:?}: {reason}",
        rt.now() - cut_at
    );
    assert_went_silent(&reason);
    if let CloseReason::Broken {
        cause: BrokenCause::Io { message, .. },
        ..
    } = &reason
    {
        assert!(!message.contains("TCP_USER_TIMEOUT"), "{message}");
    }
}

/// Without keepalive and user timeout, the same cut goes unnoticed by the
/// socket: the request fails at its own deadline instead, proving the
/// detection above is the options' doing.
pub async fn without_keepalive_a_silent_peer_waits_for_the_request_deadline<R: Runtime>(rt: R) {
    let Some(broker) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let Some(hole) = Blackhole::start(&broker) else {
        return;
    };
    let address = hole.address();
    let deadline = Duration::from_secs(4);
    let core = Config::new().with_request_timeout(deadline);
    let config = ConnectConfig::new(core)
        .with_keepalive(None)
        .with_tcp_user_timeout(None);
    let client = connected(&rt, &address, LIMIT, connect(rt.clone(), &address, config)).await;
    hole.cut();
    let cut_at = rt.now();
    let failed = timeout(&rt, LIMIT, client.send(metadata_for("kc-silent")))
        .await
        .expect("the request deadline ends it")
        .unwrap_err();
    assert!(
        matches!(
            failed,
            RequestFailure::Failed(RequestError::TimedOut { .. })
        ),
        "{failed}"
    );
    assert!(rt.now() - cut_at >= deadline);
}
