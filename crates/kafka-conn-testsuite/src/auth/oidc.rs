//! OIDC client credentials (KIP-768) against the real OpenID provider that
//! `scripts/broker-up` runs (npm `oidc-provider`, HTTPS with the test CA,
//! RS256 JWT access tokens), and the OAUTHBEARER exchange with those
//! tokens against the simulated broker ([`SaslSim`]): the shared SASL
//! broker accepts only unsecured JWTs, not the provider's signed ones, so
//! no real broker here can take them. The simulated broker checks each
//! token's issuer, subject and expiry (not its signature).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kafka_conn_driver::core::sasl::SaslConfig;
use kafka_conn_driver::core::{CloseReason, Config};
use kafka_conn_driver::{
    connect, ClientAuth, ConnectConfig, OidcError, OidcTokenProvider, Runtime,
};

use crate::auth::SaslSim;
use crate::fake::Fake;
use crate::kafka::metadata_all;
use crate::tests::LIMIT;
use crate::{connected, refused, sleep};

/// The OpenID provider's settings from the env file.
#[derive(Debug, Clone)]
pub struct OidcEnv {
    /// The token endpoint URL.
    pub endpoint: String,
    /// The issuer (`iss` of its tokens).
    pub issuer: String,
    /// The client id (`sub` of its tokens).
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The CA file of its certificate.
    pub ca_file: String,
    /// The scope to ask for.
    pub scope: String,
}

/// A variable of the OpenID provider; skipped (even in CI) when
/// `KAFKA_CONN_OIDC_SKIP_REASON` says why it is absent.
fn oidc_var(name: &str) -> Option<String> {
    let reason = std::env::var("KAFKA_CONN_OIDC_SKIP_REASON").unwrap_or_default();
    if !reason.trim().is_empty() {
        eprintln!("SKIPPED: {name}: {reason}");
        return None;
    }
    crate::env::var(name)
}

/// The provider's settings, or `None` (with a printed reason) to skip.
pub fn oidc_env() -> Option<OidcEnv> {
    Some(OidcEnv {
        endpoint: oidc_var("KAFKA_CONN_OIDC_TOKEN_ENDPOINT")?,
        issuer: oidc_var("KAFKA_CONN_OIDC_ISSUER")?,
        client_id: oidc_var("KAFKA_CONN_OIDC_CLIENT_ID")?,
        client_secret: oidc_var("KAFKA_CONN_OIDC_CLIENT_SECRET")?,
        ca_file: oidc_var("KAFKA_CONN_OIDC_CA_FILE")?,
        scope: oidc_var("KAFKA_CONN_OIDC_SCOPE")?,
    })
}

fn provider(e: &OidcEnv) -> OidcTokenProvider {
    OidcTokenProvider::new(&e.endpoint, &e.client_id, &e.client_secret)
        .with_ca_file(&e.ca_file)
        .with_scope(&e.scope)
}

/// The claims of a compact JWT, unverified.
pub fn claims(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The bearer token and extensions of an OAUTHBEARER client message
/// (RFC 7628 section 3.1).
fn bearer(message: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8(message.to_vec()).expect("UTF-8");
    let mut token = None;
    let mut extensions = Vec::new();
    for kv in text.split('\x01').skip(1).filter(|kv| !kv.is_empty()) {
        match kv.strip_prefix("auth=Bearer ") {
            Some(t) => token = Some(t.to_owned()),
            None => extensions.push(kv.to_owned()),
        }
    }
    (token.expect("auth=Bearer"), extensions)
}

/// A simulated OAUTHBEARER broker that accepts only unexpired tokens of
/// this provider for this client (as a broker's JWT validator would,
/// minus the signature).
fn validating_broker(e: &OidcEnv, session_lifetime_ms: i64) -> SaslSim {
    let (issuer, client) = (e.issuer.clone(), e.client_id.clone());
    SaslSim::start("OAUTHBEARER", session_lifetime_ms, move |message| {
        let (token, _) = bearer(message);
        let c = claims(&token);
        if c["iss"] != issuer.as_str() || c["sub"] != client.as_str() {
            return Err(format!("wrong issuer or subject: {c}"));
        }
        match c["exp"].as_f64() {
            Some(exp) if exp > unix_now() => Ok(Vec::new()),
            _ => Err(format!("expired token: {c}")),
        }
    })
}

/// Tokens fetched with HTTP Basic and with the secret in the body both
/// authenticate, with the SASL extension; a second connection reuses the
/// cached token.
pub async fn oidc_tokens_by_basic_and_body_auth_authenticate<R: Runtime>(rt: R) {
    let Some(e) = oidc_env() else { return };
    let broker = validating_broker(&e, 60_000);
    let addr = broker.address();
    for auth in [ClientAuth::Basic, ClientAuth::RequestBody] {
        let p = provider(&e)
            .with_client_auth(auth)
            .with_extension("traceId", "kafka-conn-test");
        for _ in 0..2 {
            let config = ConnectConfig::new(Config::new().with_sasl(SaslConfig::oauthbearer()))
                .with_credential_provider(p.clone());
            let client = connected(&rt, &addr, LIMIT, connect(rt.clone(), &addr, config)).await;
            assert_eq!(client.sasl_session().unwrap().mechanism, "OAUTHBEARER");
            client.send(metadata_all()).await.expect("request");
            client.close();
        }
        assert_eq!(p.fetches(), 1, "{auth:?}: one fetch, then the cached token");
    }
    let received = broker.received();
    assert_eq!(received.len(), 4);
    let tokens: Vec<String> = received.iter().map(|m| bearer(m).0).collect();
    assert_eq!(tokens[0], tokens[1]);
    assert_eq!(tokens[2], tokens[3]);
    assert_ne!(tokens[0], tokens[2], "each provider fetched its own token");
    for m in &received {
        assert_eq!(bearer(m).1, ["traceId=kafka-conn-test"]);
    }
    let c = claims(&tokens[0]);
    assert_eq!(c["scope"], e.scope.as_str(), "{c}");
}

/// A wrong secret: the provider's `error` and `error_description` in the
/// error, no retry, the secret nowhere in the error.
pub async fn oidc_wrong_secret_is_refused_with_the_providers_error<R: Runtime>(rt: R) {
    let Some(e) = oidc_env() else { return };
    for auth in [ClientAuth::Basic, ClientAuth::RequestBody] {
        let p = OidcTokenProvider::new(&e.endpoint, &e.client_id, "wrong-secret-value")
            .with_ca_file(&e.ca_file)
            .with_client_auth(auth);
        let err = p.token().await.unwrap_err();
        assert_eq!(
            err,
            OidcError::Refused {
                status: 401,
                error: Some("invalid_client".into()),
                description: Some("client authentication failed".into()),
            },
            "{auth:?}"
        );
        assert_eq!(p.fetches(), 0);
        // Through a connection: an authentication failure with that text.
        let broker = validating_broker(&e, 60_000);
        let addr = broker.address();
        let config = ConnectConfig::new(Config::new().with_sasl(SaslConfig::oauthbearer()))
            .with_credential_provider(p.clone());
        let failure = refused(&rt, &addr, LIMIT, connect(rt.clone(), &addr, config)).await;
        let Some(CloseReason::AuthFailed(a)) = failure.close_reason() else {
            panic!("{failure}")
        };
        assert!(
            a.message
                .contains("HTTP 401, error invalid_client: client authentication failed"),
            "{a}"
        );
        assert!(!format!("{failure:?}").contains("wrong-secret-value"));
        assert!(broker.received().is_empty(), "no token reached the broker");
    }
}

/// An endpoint that is down (a closed port) fails after the configured
/// attempts; one that accepts and never answers is cut off by the
/// per-attempt timeout, attempt after attempt, never a hang.
pub async fn oidc_endpoint_down_or_silent_is_bounded<R: Runtime>(rt: R) {
    let Some(e) = oidc_env() else { return };
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = OidcTokenProvider::new(format!("https://{closed}/token"), &e.client_id, "s")
        .with_ca_file(&e.ca_file)
        .with_retries(3, Duration::from_millis(50), Duration::from_millis(100));
    let err = p.token().await.unwrap_err();
    match &err {
        OidcError::Transport { attempts, .. } => assert_eq!(*attempts, 3, "{err}"),
        _ => panic!("{err}"),
    }
    eprintln!("closed port: {err}");

    let (silent, _) = Fake::silent();
    let timeout = Duration::from_secs(1);
    let p = OidcTokenProvider::new(format!("https://{}/token", silent.address()), "id", "s")
        .with_ca_file(&e.ca_file)
        .with_timeout(timeout)
        .with_retries(2, Duration::from_millis(100), Duration::from_millis(100));
    let started = Instant::now();
    let err = crate::timeout(&rt, LIMIT, p.token())
        .await
        .expect("bounded by the timeout")
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("silent endpoint: {err} after {took:?}");
    match &err {
        OidcError::Transport {
            attempts, message, ..
        } => {
            assert_eq!(*attempts, 2, "{err}");
            assert!(message.contains("no answer within 1s"), "{err}");
        }
        _ => panic!("{err}"),
    }
    assert!(took >= timeout * 2, "{took:?}");
}

/// A token that would expire before the next re-authentication is
/// replaced: the broker's sessions are long (60 s), so the token's own
/// expiry (the provider's lifetime, 30 s) schedules the KIP-368
/// re-authentication, at 85-95% of it; by then 80% of the token's lifetime
/// has passed and the provider fetches a new one. The broker accepts only
/// unexpired tokens and sees two different ones.
pub async fn oidc_token_expiring_before_reauthentication_is_replaced<R: Runtime>(rt: R) {
    let Some(e) = oidc_env() else { return };
    let broker = validating_broker(&e, 60_000);
    let addr = broker.address();
    let p = provider(&e);
    let config = ConnectConfig::new(Config::new().with_sasl(SaslConfig::oauthbearer()))
        .with_credential_provider(p.clone());
    let client = connected(&rt, &addr, LIMIT, connect(rt.clone(), &addr, config)).await;
    let first = bearer(&broker.received()[0]).0;
    let lifetime = claims(&first)["exp"].as_f64().unwrap() - unix_now();
    assert!(lifetime > 0.0 && lifetime < 600.0, "{lifetime}");
    let until = Instant::now() + Duration::from_secs_f64(lifetime) + LIMIT;
    while client.stats().reauthentications < 1 {
        assert!(
            Instant::now() < until,
            "no re-authentication before the token expired"
        );
        client
            .send(metadata_all())
            .await
            .expect("requests flow across it");
        sleep(&rt, Duration::from_millis(250)).await;
    }
    let tokens: Vec<String> = broker.received().iter().map(|m| bearer(m).0).collect();
    assert_eq!(tokens.len(), 2, "one authentication, one re-authentication");
    assert_ne!(
        tokens[0], tokens[1],
        "a new token for the re-authentication"
    );
    assert!(claims(&tokens[1])["exp"].as_f64() > claims(&tokens[0])["exp"].as_f64());
    assert_eq!(p.fetches(), 2);
    client
        .send(metadata_all())
        .await
        .expect("still authenticated");
    assert!(!client.is_closed());
}

/// Defines the OIDC tests on one runtime: `oidc_suite!(block_on_path, runtime_expression)`.
#[macro_export]
macro_rules! oidc_suite {
    ($block_on:path, $runtime:expr) => {
        $crate::oidc_suite!(@each $block_on, $runtime;
            oidc_tokens_by_basic_and_body_auth_authenticate,
            oidc_wrong_secret_is_refused_with_the_providers_error,
            oidc_endpoint_down_or_silent_is_bounded,
            oidc_token_expiring_before_reauthentication_is_replaced,
        );
    };
    (@each $block_on:path, $runtime:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $block_on(async { $crate::auth::oidc::$name($runtime).await });
            }
        )*
    };
}
