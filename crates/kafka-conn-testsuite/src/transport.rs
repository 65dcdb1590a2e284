//! Any transport: the dialer hook (`ConnectConfig::with_dialer`) and
//! `connect_over` against the real brokers. The suite's key cases
//! (plaintext, TLS, mTLS, every SASL mechanism, pipelining from many
//! tasks, a broker dying mid-flight, a DirectClient) run through a dialer
//! that dials TCP its own way (the runtime's `connect_tcp`, outside the
//! driver's dial) and through a Unix socket to a forwarder;
//! `connect_over` runs a connection over a Unix socket the test opened.
//!
//! The Unix socket is the runtime's own type, so those tests take a
//! [`UnixConnect`] from the adapter's test file ([`crate::transport_suite!`]).

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use kafka_conn_driver::core::{CloseReason, RequestError};
use kafka_conn_driver::{
    connect, connect_direct, connect_direct_over, connect_over, BoxFuture, Client, ConnectConfig,
    ConnectError, DialRequest, Dialed, RequestFailure, Runtime, TlsConfig, Transport,
};

use crate::fake::Proxy;
use crate::kafka::{assert_metadata_for, metadata_all, metadata_for};
use crate::tests::{sasl_cases, LIMIT};
use crate::{connected, env, refused, spawn, timeout};

/// Opens the runtime's Unix stream to a path, as a [`Transport`].
pub type UnixConnect = fn(PathBuf) -> BoxFuture<'static, std::io::Result<Box<dyn Transport>>>;

/// `config` with a dialer that dials `to` (whatever address is asked
/// for) with the runtime's own TCP connect: a user-written dial. Counts
/// its calls and checks what it is asked.
fn via_tcp<R: Runtime>(
    rt: &R,
    to: SocketAddr,
    calls: &Arc<AtomicUsize>,
    config: ConnectConfig,
) -> ConnectConfig {
    let (rt, calls) = (rt.clone(), calls.clone());
    let setup = config.connect_timeout();
    config.with_dialer(move |request: DialRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(request.setup_timeout, setup);
        let rt = rt.clone();
        async move {
            let tcp = rt.connect_tcp(to).await?;
            Ok(Dialed::new(tcp).with_peer_addr(to))
        }
    })
}

/// `config` with a dialer that opens a Unix socket at `path`.
fn via_unix(unix: UnixConnect, path: PathBuf, config: ConnectConfig) -> ConnectConfig {
    config.with_dialer(move |_request: DialRequest| {
        let connecting = unix(path.clone());
        async move { Ok(Dialed::new(connecting.await?)) }
    })
}

async fn must_connect<R: Runtime>(rt: &R, addr: &str, config: ConnectConfig) -> Client {
    connected(rt, addr, LIMIT, connect(rt.clone(), addr, config)).await
}

fn tls_config() -> Option<TlsConfig> {
    let [ca, name] = env::vars(["KAFKA_TLS_CA_FILE", "KAFKA_TLS_SERVER_NAME"])?;
    Some(TlsConfig::ca_file(ca).with_server_name(name))
}

/// The key cases through a dialer of the test's own: plaintext (Client
/// and DirectClient), TLS and mTLS on top of the dialed stream, every SASL
/// mechanism, 2,000 requests pipelined from 16 tasks, and a broker that
/// dies mid-flight. The dialer is called once per connection.
pub async fn key_cases_run_through_a_dialer<R: Runtime>(rt: R) {
    let Some(plain) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let to: SocketAddr = plain.parse().unwrap();
    // The name asked for is only the dialer's business.
    let broker = "broker.via-dialer:9092";

    let client = must_connect(
        &rt,
        broker,
        via_tcp(&rt, to, &calls, ConnectConfig::default()),
    )
    .await;
    let info = client.info();
    assert_eq!(info.address, to);
    assert!(
        info.attempts.is_empty(),
        "the driver dialed nothing: {info:?}"
    );
    assert_eq!(info.api_versions.negotiated_with, Some(4));
    let results = join_all((0..16).map(|t| {
        let c = client.clone();
        spawn(&rt, async move {
            for i in 0..125 {
                let topic = format!("kc-dialer-{t}-{i}");
                assert_metadata_for(&c.send(metadata_for(&topic)).await.unwrap(), &topic);
            }
        })
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "a sender panicked");
    client.close();

    let c = connect_direct(
        rt.clone(),
        broker,
        via_tcp(&rt, to, &calls, ConnectConfig::default()),
    );
    let mut direct = connected(&rt, broker, LIMIT, c).await;
    let r = direct
        .request(metadata_for("kc-dialer-direct"))
        .await
        .unwrap();
    assert_metadata_for(&r, "kc-dialer-direct");

    if let (Some(tls_addr), Some(tls)) = (env::var("KAFKA_TLS_BOOTSTRAP"), tls_config()) {
        let to: SocketAddr = tls_addr.parse().unwrap();
        let config = via_tcp(
            &rt,
            to,
            &calls,
            ConnectConfig::default().with_tls(tls.clone()),
        );
        let client = must_connect(&rt, "broker.via-dialer:9093", config).await;
        assert!(client.info().tls.is_some());
        assert_metadata_for(
            &client.send(metadata_for("kc-dialer-tls")).await.unwrap(),
            "kc-dialer-tls",
        );
        if let (Some(mtls), Some([cert, key])) = (
            env::var("KAFKA_MTLS_BOOTSTRAP"),
            env::vars(["KAFKA_TLS_CLIENT_CERT_FILE", "KAFKA_TLS_CLIENT_KEY_FILE"]),
        ) {
            let to: SocketAddr = mtls.parse().unwrap();
            let config = ConnectConfig::default().with_tls(tls.with_client_cert(cert, key));
            let client = must_connect(
                &rt,
                "broker.via-dialer:9094",
                via_tcp(&rt, to, &calls, config),
            )
            .await;
            assert_metadata_for(
                &client.send(metadata_for("kc-dialer-mtls")).await.unwrap(),
                "kc-dialer-mtls",
            );
        }
    }

    if let (Some(sasl), Some(user), Some(password)) = (
        env::sasl_var("KAFKA_SASL_SCRAM_BOOTSTRAP"),
        env::sasl_var("KAFKA_SASL_USERNAME"),
        env::sasl_var("KAFKA_SASL_PASSWORD"),
    ) {
        let to: SocketAddr = sasl.parse().unwrap();
        for (mechanism, config) in sasl_cases(&user, &password) {
            let client = must_connect(
                &rt,
                "broker.via-dialer:9095",
                via_tcp(&rt, to, &calls, config),
            )
            .await;
            assert_eq!(
                client.sasl_session().expect("authenticated").mechanism,
                mechanism
            );
            client.send(metadata_all()).await.unwrap();
            client.close();
        }
    }

    // A broker that dies mid-flight: pending requests fail, broken.
    let proxy = Proxy::to(&plain);
    let to: SocketAddr = proxy.address().parse().unwrap();
    let client = must_connect(
        &rt,
        broker,
        via_tcp(&rt, to, &calls, ConnectConfig::default()),
    )
    .await;
    assert_metadata_for(
        &client.send(metadata_for("kc-dialer-k")).await.unwrap(),
        "kc-dialer-k",
    );
    proxy.freeze();
    let pending = spawn(&rt, {
        let c = client.clone();
        async move { c.send(metadata_for("kc-dialer-lost")).await }
    });
    while client.in_flight() == 0 {
        crate::sleep(&rt, Duration::from_millis(5)).await;
    }
    proxy.kill();
    let failed = timeout(&rt, LIMIT, pending)
        .await
        .expect("fails")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            &failed,
            RequestFailure::Failed(RequestError::ConnectionClosed(CloseReason::Broken { .. }))
        ),
        "{failed}"
    );
    assert!(calls.load(Ordering::SeqCst) >= 4, "the dialer was used");
}

/// What a dialer's failure looks like: its error, or its time-out at the
/// setup timeout, as `ConnectError::Dial` naming the target.
pub async fn dialer_errors_and_time_outs_are_dial_errors<R: Runtime>(rt: R) {
    let config = ConnectConfig::default().with_dialer(|_request: DialRequest| async {
        Err::<Dialed, _>(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "no tunnel for you",
        ))
    });
    let e = refused(&rt, "b:1", LIMIT, connect(rt.clone(), "b:1", config)).await;
    assert!(matches!(e, ConnectError::Dial { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "the dialer could not open a transport to b:1: no tunnel for you"
    );

    let rt2 = rt.clone();
    let config = ConnectConfig::default()
        .with_connect_timeout(Duration::from_millis(300))
        .with_dialer(move |_request: DialRequest| {
            let rt = rt2.clone();
            async move {
                crate::sleep(&rt, Duration::from_secs(30)).await;
                Err::<Dialed, _>(std::io::Error::other("too late"))
            }
        });
    let started = rt.now();
    let e = refused(
        &rt,
        "[::1]:2",
        LIMIT,
        connect(rt.clone(), "[::1]:2", config),
    )
    .await;
    assert_eq!(
        e.to_string(),
        "the dialer could not open a transport to [::1]:2: the dialer did not finish within 300ms"
    );
    assert!(rt.now() - started < Duration::from_secs(10));
    assert!(e.is_retriable());
}

/// A Unix socket that forwards each connection to a TCP address, on
/// plain threads. The socket file lives in a fresh temporary directory,
/// removed on drop.
pub struct UnixForwarder {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<UnixStream>>>,
}

impl UnixForwarder {
    /// Forwards to `upstream` (`host:port`).
    pub fn to(upstream: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kafka-conn-unix-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = UnixListener::bind(dir.join("broker.sock")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (upstream, s, a) = (upstream.to_owned(), stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                a.lock().unwrap().push(client.try_clone().unwrap());
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(Shutdown::Both);
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n @ 1..) = s_read.read(&mut buf) {
                        if std::io::Write::write_all(&mut c_write, &buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_write.shutdown(Shutdown::Both);
                });
            }
        });
        Self {
            dir,
            stop,
            accepted,
        }
    }

    /// The socket's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join("broker.sock")
    }
}

impl Drop for UnixForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(self.path());
        for s in self.accepted.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `connect_over` and `connect_direct_over` on a Unix socket the test
/// opened, to a forwarder in front of the plaintext broker and, with TLS
/// on top, the TLS broker; and the dialer hook opening Unix sockets.
pub async fn connections_run_over_a_unix_socket<R: Runtime>(rt: R, unix: UnixConnect) {
    let Some(plain) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let forwarder = UnixForwarder::to(&plain);
    let stream = unix(forwarder.path())
        .await
        .expect("the Unix socket connects");
    let over = connect_over(rt.clone(), stream, "broker.unix", ConnectConfig::default());
    let client = connected(&rt, "unix socket", LIMIT, over).await;
    assert_eq!(
        client.info().address,
        "0.0.0.0:0".parse::<SocketAddr>().unwrap()
    );
    let results = join_all((0..200).map(|i| {
        let c = client.clone();
        async move { (i, c.send(metadata_for(&format!("kc-unix-{i}"))).await) }
    }))
    .await;
    for (i, r) in results {
        assert_metadata_for(&r.unwrap(), &format!("kc-unix-{i}"));
    }
    client.close();
    assert_eq!(client.closed().await, CloseReason::Shutdown);

    let stream = unix(forwarder.path()).await.unwrap();
    let over = connect_direct_over(rt.clone(), stream, "broker.unix", ConnectConfig::default());
    let mut direct = connected(&rt, "unix socket", LIMIT, over).await;
    assert_metadata_for(
        &direct.request(metadata_for("kc-unix-d")).await.unwrap(),
        "kc-unix-d",
    );

    // The dialer hook over Unix sockets: connect() by any name.
    let config = via_unix(unix, forwarder.path(), ConnectConfig::default());
    let client = must_connect(&rt, "broker.unix:9092", config).await;
    assert_metadata_for(
        &client.send(metadata_for("kc-unix-dialer")).await.unwrap(),
        "kc-unix-dialer",
    );

    // TLS over the Unix socket: verified against the name given.
    let (Some(tls_addr), Some([ca])) = (
        env::var("KAFKA_TLS_BOOTSTRAP"),
        env::vars(["KAFKA_TLS_CA_FILE"]),
    ) else {
        return;
    };
    let tls_forwarder = UnixForwarder::to(&tls_addr);
    let stream = unix(tls_forwarder.path()).await.unwrap();
    let config = ConnectConfig::default().with_tls(TlsConfig::ca_file(&ca));
    let client = connected(
        &rt,
        "unix socket",
        LIMIT,
        connect_over(rt.clone(), stream, "localhost", config.clone()),
    )
    .await;
    assert_eq!(client.info().tls.as_ref().unwrap().server_name, "localhost");
    assert_metadata_for(
        &client.send(metadata_for("kc-unix-tls")).await.unwrap(),
        "kc-unix-tls",
    );
    // A name the certificate does not carry is refused, as over TCP.
    let stream = unix(tls_forwarder.path()).await.unwrap();
    let over = connect_over(rt.clone(), stream, "not-the-broker.invalid", config);
    let e = refused(&rt, "unix socket", LIMIT, over).await;
    assert!(matches!(e, ConnectError::NameMismatch { .. }), "{e}");
}
