//! Kerberos (SASL GSSAPI) against the real MIT KDC and the GSSAPI tansu
//! of `../shared/broker`, and the legacy SaslHandshake v0 flow against
//! the simulated broker with a real MIT acceptor.
//!
//! MIT krb5 reads its configuration from `KRB5_CONFIG` in the process
//! environment, and nothing else selects it. So [`prepare`] sets it once
//! per test process, before any Kerberos call and before the test's
//! runtime starts (every test of this suite calls it first, and the
//! others wait on the `OnceLock` until it is done): the shared krb5.conf,
//! plus a file of our own that adds two realms whose KDCs are a closed
//! port and a silent listener (an unreachable KDC without stopping the
//! shared one). It also sets `KRB5_KTNAME` (the broker keytab, for the
//! simulated broker's acceptor) and `KRB5RCACHEDIR`. The client under test
//! never relies on the environment for its credentials: each test passes
//! its keytab or credential cache explicitly, and the shared default cache
//! is never used.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_conn_driver::core::sasl::{HandshakeMode, SaslConfig};
use kafka_conn_driver::core::sim::{
    api_versions_reply, legacy_handshake_reply, Action, ReceivedRequest, SimBroker,
};
use kafka_conn_driver::core::{ApiKey, CloseReason, Config};
use kafka_conn_driver::{connect, ConnectConfig, ConnectError, Kerberos, Runtime};

use crate::kafka::metadata_all;
use crate::tests::{FixedDns, LIMIT};
use crate::{connected, env, refused};

/// What the GSSAPI tests need, prepared once per process.
#[derive(Debug)]
pub struct KerberosEnv {
    /// `localhost:port` of the GSSAPI tansu.
    pub bootstrap: String,
    /// Its host part, the host of its service principal.
    pub host: String,
    /// The client principal (`kafka-test@KAFKA.TEST`).
    pub principal: String,
    /// The client keytab.
    pub keytab: PathBuf,
    /// The client's password (for `kinit`).
    pub password: String,
    /// `sasl.kerberos.service.name`.
    pub service: String,
    /// A host whose `kafka/<host>` principal the KDC has but the broker does not.
    pub wrong_host: String,
    /// A directory of our own for caches and keytabs.
    pub dir: PathBuf,
    /// A keytab for `kafka-test@DOWN.TEST` (KDC: a closed port) and
    /// `kafka-test@SILENT.TEST` (KDC: a listener that never answers), or
    /// why there is none (no `ktutil`).
    pub unreachable_keytab: Result<PathBuf, String>,
    /// The broker's keytab, for the simulated broker's acceptor, if present.
    pub broker_keytab: Option<PathBuf>,
}

static PREPARED: OnceLock<Option<KerberosEnv>> = OnceLock::new();

/// Reads the GSSAPI environment and sets this process's Kerberos
/// variables, once; `None` (after a printed reason) skips the test.
pub fn prepare() -> Option<&'static KerberosEnv> {
    PREPARED.get_or_init(prepare_once).as_ref()
}

fn prepare_once() -> Option<KerberosEnv> {
    let bootstrap = env::sasl_var("KAFKA_SASL_GSSAPI_BOOTSTRAP")?;
    let config = env::sasl_var("KAFKA_KRB5_CONFIG")?;
    let principal = env::sasl_var("KAFKA_KRB5_CLIENT_PRINCIPAL")?;
    let keytab = PathBuf::from(env::sasl_var("KAFKA_KRB5_CLIENT_KEYTAB")?);
    let password = env::sasl_var("KAFKA_KRB5_CLIENT_PASSWORD")?;
    let service = env::sasl_var("KAFKA_KRB5_SERVICE_NAME")?;
    let wrong_host = env::sasl_var("KAFKA_KRB5_WRONG_SERVICE_HOST")?;
    let host = bootstrap
        .rsplit_once(':')
        .map_or(bootstrap.as_str(), |(h, _)| h)
        .to_owned();
    let dir = std::env::temp_dir().join(format!("kafka-conn-gssapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Two realms of our own whose KDCs cannot answer: a port nobody
    // listens on (TCP refused, then UDP refused: MIT gives up at once),
    // and a listener that accepts and stays silent, kept for the life of
    // the process (MIT waits about 25 s before it gives up on it).
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let extra = dir.join("krb5-unreachable.conf");
    std::fs::write(
        &extra,
        format!(
            "[realms]\n    DOWN.TEST = {{\n        kdc = 127.0.0.1:{closed_port}\n    }}\n    \
             SILENT.TEST = {{\n        kdc = 127.0.0.1:{silent_port}\n    }}\n"
        ),
    )
    .unwrap();
    let broker_keytab = Path::new(&config)
        .parent()
        .map(|d| d.join("kafka.keytab"))
        .filter(|p| p.exists());
    // SAFETY of the environment change: this runs once, before any
    // Kerberos call of this process and before this test's runtime
    // starts; every other test of this binary waits in `prepare` first.
    std::env::set_var("KRB5_CONFIG", format!("{config}:{}", extra.display()));
    std::env::set_var("KRB5RCACHEDIR", &dir);
    if let Some(kt) = &broker_keytab {
        std::env::set_var("KRB5_KTNAME", kt);
    }
    let unreachable_keytab = make_unreachable_keytab(&dir);
    Some(KerberosEnv {
        bootstrap,
        host,
        principal,
        keytab,
        password,
        service,
        wrong_host,
        dir,
        unreachable_keytab,
        broker_keytab,
    })
}

/// `ktutil` writes a keytab for the two unreachable realms (any key: the
/// KDC is never reached).
fn make_unreachable_keytab(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("unreachable.keytab");
    let mut script = String::new();
    for realm in ["DOWN.TEST", "SILENT.TEST"] {
        script.push_str(&format!(
            "addent -password -p kafka-test@{realm} -k 1 -e aes256-cts-hmac-sha1-96\nany-password\n"
        ));
    }
    script.push_str(&format!("wkt {}\nquit\n", path.display()));
    run_with_stdin(Command::new("ktutil"), &script)?;
    if path.exists() {
        Ok(path)
    } else {
        Err("ktutil wrote no keytab".into())
    }
}

fn run_with_stdin(mut cmd: Command, input: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e} (install krb5-user)"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A tool the test needs is missing: skip, or fail under `KAFKA_CONN_REQUIRE_BROKERS=1`.
fn missing(what: &str) {
    if std::env::var("KAFKA_CONN_REQUIRE_BROKERS").as_deref() == Ok("1") {
        panic!("{what} (KAFKA_CONN_REQUIRE_BROKERS=1)");
    }
    eprintln!("SKIPPED: {what}");
}

/// GSSAPI with `kerberos` as the provider: one config, good for every
/// broker (the service host comes from each connection's address).
fn gssapi_config(kerberos: &Kerberos) -> ConnectConfig {
    ConnectConfig::new(Config::new().with_sasl(SaslConfig::gssapi()))
        .with_credential_provider(kerberos.clone())
}

/// A runtime on which every name resolves to the address of `bootstrap`:
/// to reach the GSSAPI broker under another name (the service host is the
/// name connected to).
fn resolving_to<R: Runtime>(rt: &R, bootstrap: &str) -> FixedDns<R> {
    use std::net::ToSocketAddrs as _;
    FixedDns {
        inner: rt.clone(),
        addresses: bootstrap.to_socket_addrs().expect("resolvable").collect(),
    }
}

/// Connects and proves the session works with a request.
async fn authenticates<R: Runtime>(rt: &R, addr: &str, config: ConnectConfig) {
    let client = connected(rt, addr, LIMIT, connect(rt.clone(), addr, config)).await;
    let session = client.sasl_session().expect("authenticated");
    assert_eq!(session.mechanism, "GSSAPI");
    client
        .send(metadata_all())
        .await
        .unwrap_or_else(|e| panic!("request after GSSAPI: {e}"));
    client.close();
}

/// Connects to `addr` with `kerberos`, which must fail authentication:
/// the error, the broker's error code (if it refused) and the text.
async fn refused_auth<R: Runtime>(
    rt: &R,
    addr: &str,
    kerberos: &Kerberos,
) -> (ConnectError, Option<i16>, String) {
    let e = refused(
        rt,
        addr,
        LIMIT,
        connect(rt.clone(), addr, gssapi_config(kerberos)),
    )
    .await;
    let (code, text) = auth_failure(&e);
    (e, code, text)
}

/// The connection failed authentication; returns the failure's text.
fn auth_failure(e: &ConnectError) -> (Option<i16>, String) {
    match e.close_reason() {
        Some(CloseReason::AuthFailed(a)) => {
            assert_eq!(a.mechanism, "GSSAPI", "{e}");
            (a.error_code, a.to_string())
        }
        _ => panic!("expected an authentication failure, got {e}"),
    }
}

/// A ticket obtained with the client keytab (kept in a private in-memory
/// cache), twice: the second connection reuses the cached ticket. Then the
/// same config (one provider) for four connections authenticating at once,
/// each exchange kept apart in its connection's context.
pub async fn gssapi_ticket_from_keytab<R: Runtime>(rt: R) {
    let Some(k) = prepare() else { return };
    let kerberos = Kerberos::new()
        .with_service_name(&k.service)
        .with_principal(&k.principal)
        .with_keytab(&k.keytab);
    assert!(kerberos.credential_cache().unwrap().starts_with("MEMORY:"));
    let config = gssapi_config(&kerberos);
    for _ in 0..2 {
        authenticates(&rt, &k.bootstrap, config.clone()).await;
    }
    let together = (0..4).map(|_| authenticates(&rt, &k.bootstrap, config.clone()));
    futures_util::future::join_all(together).await;
    // The keytab alone names the principal (its first entry).
    let kerberos = Kerberos::new().with_keytab(&k.keytab);
    authenticates(&rt, &k.bootstrap, gssapi_config(&kerberos)).await;
}

/// A ticket from a credential cache that `kinit` filled (our own
/// `KRB5CCNAME=FILE:` in a temporary directory, never the default cache).
pub async fn gssapi_ticket_from_kinit_credential_cache<R: Runtime>(rt: R) {
    let Some(k) = prepare() else { return };
    let cache = format!(
        "FILE:{}",
        k.dir
            .join(format!("kinit-{:?}.ccache", std::thread::current().id()))
            .display()
    );
    let mut kinit = Command::new("kinit");
    kinit.env("KRB5CCNAME", &cache).arg(&k.principal);
    // kinit reads the password from standard input when it is not a terminal.
    if let Err(e) = run_with_stdin(kinit, &format!("{}\n", k.password)) {
        return missing(&format!("kinit: {e}"));
    }
    let kerberos = Kerberos::new()
        .with_service_name(&k.service)
        .with_credential_cache(&cache);
    authenticates(&rt, &k.bootstrap, gssapi_config(&kerberos)).await;
}

/// A ticket for `kafka/<wrong host>`, which the KDC issues but the broker
/// cannot decrypt: the broker refuses with error 58. (The broker is
/// reached under the wrong name through a runtime whose DNS maps it to the
/// broker's address: the provider takes the service host from the name
/// connected to.) A service the KDC does not know fails locally with
/// Kerberos's text.
pub async fn gssapi_wrong_service_is_refused<R: Runtime>(rt: R) {
    let Some(k) = prepare() else { return };
    let kerberos = Kerberos::new()
        .with_service_name(&k.service)
        .with_principal(&k.principal)
        .with_keytab(&k.keytab);
    let port = k.bootstrap.rsplit_once(':').expect("host:port").1;
    let wrong = format!("{}:{port}", k.wrong_host);
    let dns = resolving_to(&rt, &k.bootstrap);
    let (e, code, text) = refused_auth(&dns, &wrong, &kerberos).await;
    assert_eq!(code, Some(58), "{text}");
    assert!(!e.is_retriable(), "{e}");

    let kerberos = kerberos.with_service_name("no-such-service");
    let (_, code, text) = refused_auth(&rt, &k.bootstrap, &kerberos).await;
    assert_eq!(code, None, "{text}");
    assert!(text.contains("gss_init_sec_context"), "{text}");
    assert!(text.contains("no-such-service@localhost"), "{text}");
    assert!(
        text.contains("Server not found in Kerberos database")
            || text.contains("not found in Kerberos database"),
        "{text}"
    );
}

/// No ticket (a credential cache that `kinit` never filled, no keytab): a
/// local failure with GSS-API's status text, before the broker sees a
/// token.
pub async fn gssapi_without_a_ticket_fails_with_the_gss_status<R: Runtime>(rt: R) {
    let Some(k) = prepare() else { return };
    let cache = format!("FILE:{}", k.dir.join("empty.ccache").display());
    let kerberos = Kerberos::new()
        .with_service_name(&k.service)
        .with_credential_cache(&cache);
    let (_, code, text) = refused_auth(&rt, &k.bootstrap, &kerberos).await;
    assert_eq!(code, None, "{text}");
    // Major status, then the Kerberos (minor) status in parentheses.
    assert!(
        text.contains(
            "acquiring credentials (credential cache) for kafka@localhost failed: \
             No credentials were supplied, or the credentials were unavailable or inaccessible \
             (No credentials cache found)"
        ),
        "{text}"
    );
}

/// The KDC cannot be reached: a closed port fails at once with
/// "Cannot contact any KDC"; a KDC that never answers is cut off by the
/// connection's handshake deadline (here 3 s), never a hang.
pub async fn gssapi_unreachable_kdc_fails_within_the_deadline<R: Runtime>(rt: R) {
    let Some(k) = prepare() else { return };
    let keytab = match &k.unreachable_keytab {
        Ok(p) => p,
        Err(e) => return missing(e),
    };
    let kerberos = Kerberos::new()
        .with_service_name(&k.service)
        .with_principal("kafka-test@DOWN.TEST")
        .with_keytab(keytab);
    let (_, code, text) = refused_auth(&rt, &k.bootstrap, &kerberos).await;
    assert_eq!(code, None, "{text}");
    assert!(
        text.contains("Cannot contact any KDC for realm 'DOWN.TEST'"),
        "{text}"
    );

    let handshake = Duration::from_secs(3);
    let kerberos = kerberos.with_principal("kafka-test@SILENT.TEST");
    let config = ConnectConfig::new(
        Config::new()
            .with_sasl(SaslConfig::gssapi())
            .with_handshake_timeout(handshake),
    )
    .with_credential_provider(kerberos);
    let started = Instant::now();
    let e = refused(
        &rt,
        &k.bootstrap,
        LIMIT,
        connect(rt.clone(), &k.bootstrap, config),
    )
    .await;
    let took = started.elapsed();
    crate::assert_handshake_timeout(&e);
    assert!(took >= handshake && took < LIMIT, "{took:?}: {e}");
}

/// The legacy flow (SaslHandshake v0, then raw length-prefixed tokens, as
/// Kafka 0.10.0 brokers speak it) against the simulated broker, whose
/// GSSAPI side is a real MIT acceptor holding the test broker's keytab:
/// no real broker here speaks legacy SASL. The broker advertises no
/// SaslAuthenticate, so the connection picks the legacy flow by itself.
///
/// As Apache Kafka's broker, it sends nothing after the client's wrapped
/// security-layer reply (its GSSAPI server has no final token, and the
/// legacy flow sends a token only when there is one): the exchange ends
/// once the reply is written, and the request after it is answered.
pub async fn gssapi_legacy_v0_with_the_simulated_broker<R: Runtime>(rt: R) {
    let Some(k) = prepare() else { return };
    if k.broker_keytab.is_none() {
        return missing("the broker keytab (kafka.keytab beside KAFKA_KRB5_CONFIG) is missing");
    }
    let principals = Arc::new(Mutex::new(Vec::new()));
    let seen = principals.clone();
    let broker = crate::auth::sim_listener(move || legacy_gssapi_broker(seen.clone()));
    let kerberos = Kerberos::new()
        .with_service_name(&k.service)
        .with_principal(&k.principal)
        .with_keytab(&k.keytab);
    let config = ConnectConfig::new(
        Config::new().with_sasl(SaslConfig::gssapi().with_handshake(HandshakeMode::Auto)),
    )
    .with_credential_provider(kerberos);
    // By name: the service principal is kafka/localhost.
    let port = broker
        .address()
        .rsplit_once(':')
        .expect("host:port")
        .1
        .to_owned();
    let addr = format!("localhost:{port}");
    let client = connected(&rt, &addr, LIMIT, connect(rt.clone(), &addr, config)).await;
    assert_eq!(client.sasl_session().unwrap().mechanism, "GSSAPI");
    let r = client.send(metadata_all()).await.expect("metadata");
    assert_eq!(r.body, Bytes::from_static(b"metadata after GSSAPI"));
    assert_eq!(
        *principals.lock().unwrap(),
        vec![k.principal.clone()],
        "the acceptor's view of the client"
    );
}

/// A Kafka 0.10.0-like broker: ApiVersions without SaslAuthenticate,
/// SaslHandshake v0, then raw tokens handled by an MIT acceptor (the
/// default keytab, `KRB5_KTNAME`), as Apache Kafka's GSSAPI server does
/// them: AP-REQ -> AP-REP; empty token -> wrapped offer `01 00 00 00`;
/// wrapped reply -> checked, and no answer.
fn legacy_gssapi_broker(principals: Arc<Mutex<Vec<String>>>) -> SimBroker {
    use libgssapi::context::{SecurityContext, ServerCtx};
    let mut acceptor = ServerCtx::new(None);
    let mut round = 0;
    SimBroker::new(Box::new(move |r: &ReceivedRequest| {
        if let Some(a) = api_versions_reply(r, &[(18, 0, 3), (17, 0, 0), (3, 0, 4)]) {
            return vec![a];
        }
        if r.raw_token {
            round += 1;
            let reply: Vec<u8> = match round {
                1 => match acceptor.step(&r.body, None) {
                    Ok(out) => out.map(|b| b.to_vec()).unwrap_or_default(),
                    Err(e) => panic!("acceptor: {e}"),
                },
                2 => {
                    assert!(r.body.is_empty(), "round 2 must be empty");
                    acceptor.wrap(false, &[0x01, 0, 0, 0]).unwrap().to_vec()
                }
                _ => {
                    let reply = acceptor.unwrap(&r.body).expect("wrapped reply");
                    assert_eq!(&reply[..], &[0x01, 0, 0, 0], "no layer, size 0, no authzid");
                    let source = acceptor.source_name().unwrap().to_string();
                    principals.lock().unwrap().push(source);
                    // Nothing back: Kafka's broker has no token to send.
                    return vec![Action::ExitRawTokenMode];
                }
            };
            return vec![Action::RespondRawFrame(reply.into())];
        }
        match r.api_key {
            ApiKey::SASL_HANDSHAKE => {
                assert_eq!(r.api_version, 0);
                legacy_handshake_reply(&["GSSAPI"])
            }
            _ => {
                let mut b = BytesMut::new();
                b.put_slice(b"metadata after GSSAPI");
                vec![Action::Respond(b.freeze())]
            }
        }
    }))
}

/// Defines the GSSAPI tests on one runtime:
/// `gssapi_suite!(block_on_path, runtime_expression)`. Each test prepares
/// the process's Kerberos environment before its runtime starts.
#[macro_export]
macro_rules! gssapi_suite {
    ($block_on:path, $runtime:expr) => {
        $crate::gssapi_suite!(@each $block_on, $runtime;
            gssapi_ticket_from_keytab,
            gssapi_ticket_from_kinit_credential_cache,
            gssapi_wrong_service_is_refused,
            gssapi_without_a_ticket_fails_with_the_gss_status,
            gssapi_unreachable_kdc_fails_within_the_deadline,
            gssapi_legacy_v0_with_the_simulated_broker,
        );
    };
    (@each $block_on:path, $runtime:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::auth::gssapi::prepare();
                $block_on(async { $crate::auth::gssapi::$name($runtime).await });
            }
        )*
    };
}
