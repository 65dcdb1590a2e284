//! Connections through the real proxies `scripts/broker-up` runs (Debian's
//! microsocks for SOCKS5 with and without username/password, dante
//! refusing by rule, tinyproxy for HTTP CONNECT with and without Basic
//! auth and refusing with 403), to the real brokers, plaintext and TLS;
//! and the failures: missing and wrong credentials, refusals, a proxy that
//! is down. Skipped (even in CI) when `KAFKA_CONN_PROXY_SKIP_REASON` says
//! why the proxies are not there.

use std::net::SocketAddr;

use kafka_conn_driver::{
    connect, connect_direct, ConnectConfig, ConnectError, Proxy, ProxyFailure, ProxyKind,
    ProxyStep, Runtime, TlsConfig,
};

use crate::kafka::{assert_metadata_for, metadata_for};
use crate::tests::LIMIT;
use crate::{connected, env, refused};

/// The variables, or `None` when proxies are off for a stated reason or
/// a variable is missing (which fails under `KAFKA_CONN_REQUIRE_BROKERS=1`).
fn proxy_vars<const N: usize>(names: [&str; N]) -> Option<[String; N]> {
    let reason = std::env::var("KAFKA_CONN_PROXY_SKIP_REASON").unwrap_or_default();
    if !reason.trim().is_empty() {
        eprintln!("SKIPPED: {reason}");
        return None;
    }
    env::vars(names)
}

/// Connects through `proxy` to `broker` (TLS if `tls`), sends a request,
/// and checks what `ConnectInfo` says about the tunnel.
async fn through<R: Runtime>(
    rt: &R,
    broker: &str,
    proxy: Proxy,
    tls: Option<TlsConfig>,
    topic: &str,
) {
    let proxy_addr: SocketAddr = proxy.address().parse().unwrap();
    let shown = proxy.to_string();
    let mut config = ConnectConfig::default().with_proxy(proxy);
    if let Some(tls) = tls.clone() {
        config = config.with_tls(tls);
    }
    let client = connected(rt, broker, LIMIT, connect(rt.clone(), broker, config)).await;
    let info = client.info();
    eprintln!(
        "{broker} through {shown}: {:?} {:?}",
        info.proxy, info.timings
    );
    let tunnel = info.proxy.as_ref().expect("the tunnel is described");
    assert_eq!(tunnel.proxy, shown);
    assert_eq!(tunnel.target, broker);
    assert!(!tunnel.proxy.contains("secret"), "{tunnel:?}");
    // TCP went to the proxy.
    assert_eq!(info.address, proxy_addr);
    assert!(info.timings.proxy.is_some(), "{:?}", info.timings);
    assert_eq!(info.tls.is_some(), tls.is_some());
    if let Some(session) = &info.tls {
        // Verified against the broker's name, not the proxy's.
        assert_eq!(session.server_name, broker.rsplit_once(':').unwrap().0);
    }
    let r = client.send(metadata_for(topic)).await.unwrap();
    assert_metadata_for(&r, topic);
    client.close();
}

fn tls_ca() -> Option<TlsConfig> {
    let [ca] = env::vars(["KAFKA_TLS_CA_FILE"])?;
    Some(TlsConfig::ca_file(ca))
}

/// The broker at `localhost:<port of var>`: a name the proxy resolves.
fn by_name(var: &str) -> Option<String> {
    let addr: SocketAddr = env::var(var)?.parse().unwrap();
    Some(format!("localhost:{}", addr.port()))
}

/// SOCKS5 without authentication: by address (local DNS), by name with
/// remote DNS (address type 3), TLS through the tunnel, a DirectClient.
pub async fn socks5_proxy_carries_plaintext_and_tls<R: Runtime>(rt: R) {
    let Some([socks]) = proxy_vars(["KAFKA_CONN_SOCKS5_PROXY"]) else {
        return;
    };
    let (Some(plain), Some(plain_name), Some(tls_name), Some(tls)) = (
        env::var("KAFKA_PLAINTEXT_BOOTSTRAP"),
        by_name("KAFKA_PLAINTEXT_BOOTSTRAP"),
        by_name("KAFKA_TLS_BOOTSTRAP"),
        tls_ca(),
    ) else {
        return;
    };
    through(&rt, &plain, Proxy::socks5(&socks), None, "kc-socks-plain").await;
    let remote = Proxy::socks5(&socks).with_remote_dns(true);
    through(&rt, &plain_name, remote.clone(), None, "kc-socks-name").await;
    through(&rt, &tls_name, remote, Some(tls), "kc-socks-tls").await;
    // The URL form, and a DirectClient.
    let url: Proxy = format!("socks5h://{socks}").parse().unwrap();
    let config = ConnectConfig::default().with_proxy(url);
    let c = connect_direct(rt.clone(), &plain_name, config);
    let mut direct = connected(&rt, &plain_name, LIMIT, c).await;
    let r = direct
        .request(metadata_for("kc-socks-direct"))
        .await
        .unwrap();
    assert_metadata_for(&r, "kc-socks-direct");
}

/// SOCKS5 with username/password: the right ones work (plaintext and
/// TLS); none, or a wrong password, are named errors of the step.
pub async fn socks5_credentials_are_required_and_checked<R: Runtime>(rt: R) {
    let Some([proxy, user, password]) = proxy_vars([
        "KAFKA_CONN_SOCKS5_AUTH_PROXY",
        "KAFKA_CONN_SOCKS5_AUTH_USER",
        "KAFKA_CONN_SOCKS5_AUTH_PASSWORD",
    ]) else {
        return;
    };
    let (Some(plain), Some(tls_name), Some(tls)) = (
        env::var("KAFKA_PLAINTEXT_BOOTSTRAP"),
        by_name("KAFKA_TLS_BOOTSTRAP"),
        tls_ca(),
    ) else {
        return;
    };
    let good = Proxy::socks5(&proxy).with_credentials(&user, &password);
    through(&rt, &plain, good.clone(), None, "kc-socks-auth").await;
    through(
        &rt,
        &tls_name,
        good.with_remote_dns(true),
        Some(tls),
        "kc-socks-auth-tls",
    )
    .await;
    let url: Proxy = format!("socks5://{user}:{password}@{proxy}")
        .parse()
        .unwrap();
    through(&rt, &plain, url, None, "kc-socks-auth-url").await;

    let e = fails(&rt, &plain, Proxy::socks5(&proxy)).await;
    assert_proxy_error(&e, ProxyKind::Socks5, &ProxyStep::Greeting, |f| {
        matches!(
            f,
            ProxyFailure::NoAcceptableMethod {
                offered: "no authentication"
            }
        )
    });
    assert!(
        e.to_string().contains("requires a username and password"),
        "{e}"
    );
    assert!(!e.is_retriable());

    let wrong = Proxy::socks5(&proxy).with_credentials(&user, format!("{password}-wrong"));
    let e = fails(&rt, &plain, wrong).await;
    assert_proxy_error(
        &e,
        ProxyKind::Socks5,
        &ProxyStep::Authentication,
        |f| matches!(f, ProxyFailure::AuthRejected { status } if *status != 0),
    );
    assert!(!e.to_string().contains(&password), "{e}");
    assert!(!e.is_retriable());
}

/// Dante refuses every CONNECT by rule: reply 2, named.
pub async fn socks5_refusal_names_the_reply<R: Runtime>(rt: R) {
    let (Some([proxy]), Some(plain)) = (
        proxy_vars(["KAFKA_CONN_SOCKS5_DENY_PROXY"]),
        env::var("KAFKA_PLAINTEXT_BOOTSTRAP"),
    ) else {
        return;
    };
    let e = fails(&rt, &plain, Proxy::socks5(&proxy)).await;
    assert_proxy_error(
        &e,
        ProxyKind::Socks5,
        &ProxyStep::Tunnel(plain.clone()),
        |f| *f == ProxyFailure::Socks5Refused { code: 2 },
    );
    assert_eq!(
        e.to_string(),
        format!(
            "SOCKS5 proxy socks5://{proxy}, CONNECT {plain}: refused with reply 2 (connection not allowed by ruleset)"
        )
    );
    assert!(!e.is_retriable());
}

/// HTTP CONNECT: plaintext and TLS, with and without Basic auth; missing
/// and wrong credentials; a 403.
pub async fn http_connect_proxy_with_and_without_basic_auth<R: Runtime>(rt: R) {
    let Some([open, auth, user, password, deny]) = proxy_vars([
        "KAFKA_CONN_HTTP_PROXY",
        "KAFKA_CONN_HTTP_AUTH_PROXY",
        "KAFKA_CONN_HTTP_AUTH_USER",
        "KAFKA_CONN_HTTP_AUTH_PASSWORD",
        "KAFKA_CONN_HTTP_DENY_PROXY",
    ]) else {
        return;
    };
    let (Some(plain), Some(plain_name), Some(tls_name), Some(tls)) = (
        env::var("KAFKA_PLAINTEXT_BOOTSTRAP"),
        by_name("KAFKA_PLAINTEXT_BOOTSTRAP"),
        by_name("KAFKA_TLS_BOOTSTRAP"),
        tls_ca(),
    ) else {
        return;
    };
    through(&rt, &plain, Proxy::http(&open), None, "kc-http-plain").await;
    through(&rt, &plain_name, Proxy::http(&open), None, "kc-http-name").await;
    through(
        &rt,
        &tls_name,
        Proxy::http(&open),
        Some(tls.clone()),
        "kc-http-tls",
    )
    .await;
    let good = Proxy::http(&auth).with_credentials(&user, &password);
    through(&rt, &plain, good.clone(), None, "kc-http-auth").await;
    through(&rt, &tls_name, good, Some(tls), "kc-http-auth-tls").await;

    let step = ProxyStep::Tunnel(plain.clone());
    let e = fails(&rt, &plain, Proxy::http(&auth)).await;
    assert_proxy_error(&e, ProxyKind::Http, &step, |f| {
        matches!(f, ProxyFailure::HttpStatus { status: 407, .. })
    });
    assert!(e.to_string().contains("(set credentials)"), "{e}");
    let wrong = Proxy::http(&auth).with_credentials(&user, format!("{password}-wrong"));
    let e = fails(&rt, &plain, wrong).await;
    assert_proxy_error(&e, ProxyKind::Http, &step, |f| {
        matches!(
            f,
            ProxyFailure::HttpStatus {
                status: 401 | 407,
                ..
            }
        )
    });
    assert!(!e.is_retriable());
    let e = fails(&rt, &plain, Proxy::http(&deny)).await;
    assert_proxy_error(&e, ProxyKind::Http, &step, |f| {
        matches!(f, ProxyFailure::HttpStatus { status: 403, .. })
    });
    assert!(e.to_string().contains("refused with HTTP 403"), "{e}");
    assert!(!e.is_retriable());
}

/// A proxy that is down (nothing listens on its port): the error names
/// the proxy and the step, not the broker; retrying later may help.
pub async fn proxy_that_is_down_is_named<R: Runtime>(rt: R) {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    for proxy in [Proxy::socks5(&closed), Proxy::http(&closed)] {
        let kind = proxy.kind();
        let e = fails(&rt, "broker.invalid:9092", proxy).await;
        assert_proxy_error(&e, kind, &ProxyStep::Connect, |f| {
            matches!(f, ProxyFailure::Io(_))
        });
        assert!(e.to_string().contains("(is the proxy up?)"), "{e}");
        assert!(e.is_retriable());
        let p = e.progress().expect("progress");
        assert_eq!(p.failed_attempts.len(), 1, "{p:?}");
        assert_eq!(p.failed_attempts[0].addr.to_string(), closed);
    }
}

async fn fails<R: Runtime>(rt: &R, broker: &str, proxy: Proxy) -> ConnectError {
    let config = ConnectConfig::default().with_proxy(proxy);
    refused(rt, broker, LIMIT, connect(rt.clone(), broker, config)).await
}

fn assert_proxy_error(
    e: &ConnectError,
    want_kind: ProxyKind,
    want_step: &ProxyStep,
    failure: impl Fn(&ProxyFailure) -> bool,
) {
    match e {
        ConnectError::Proxy {
            kind,
            step,
            failure: f,
            ..
        } => {
            assert_eq!((kind, step), (&want_kind, want_step), "{e}");
            assert!(failure(f), "{e}");
        }
        other => panic!("expected a proxy error, got {other}"),
    }
}
