//! Stand-ins in front of a real broker that a test can stop, start again
//! and (for TLS) give another certificate, without touching the shared
//! brokers: a plain TCP forwarder and a TLS-terminating forwarder (rustls)
//! whose certificates the test makes with rcgen.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_rustls::rustls;

/// A running forwarder: its stop flag, accept thread and open sockets.
type Running = (Arc<AtomicBool>, JoinHandle<()>, Arc<Mutex<Vec<TcpStream>>>);

/// A TCP forwarder to `target` on a fixed local port; `stop` closes the
/// port and every forwarded connection, `start` opens it again.
pub struct TcpProxy {
    pub addr: SocketAddr,
    target: String,
    running: Option<Running>,
}

impl TcpProxy {
    /// A forwarder on a free port, running.
    pub fn start_new(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mut p = Self {
            addr,
            target: target.to_owned(),
            running: None,
        };
        p.run(listener);
        p
    }

    fn run(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, o, target) = (stop.clone(), open.clone(), self.target.clone());
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(upstream) = TcpStream::connect(&target) else {
                            continue;
                        };
                        let mut list = o.lock().unwrap();
                        for sock in [&client, &upstream] {
                            if let Ok(c) = sock.try_clone() {
                                list.push(c);
                            }
                        }
                        pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                        pipe(upstream, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        self.running = Some((stop, accept, open));
    }

    /// Closes the port and every connection through it.
    pub fn stop(&mut self) {
        if let Some((stop, accept, open)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = accept.join();
            for s in open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Opens the same port again.
    pub fn start(&mut self) {
        let listener = TcpListener::bind(self.addr).expect("bind the proxy's port again");
        self.run(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Certificates made at test time: a CA, optionally an intermediate, and
/// a server certificate for `localhost` and 127.0.0.1.
pub struct TestPki {
    /// The CA certificate (PEM), for `--tls-ca`.
    pub ca_pem: String,
    /// The CA, to sign another leaf ([`TestPki::rotate_leaf`]).
    ca: Arc<rcgen::Issuer<'static, rcgen::KeyPair>>,
    /// The chain the server presents: leaf first (DER).
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The server's key (PKCS#8 DER).
    pub key: Vec<u8>,
}

/// Validity of a certificate, in days from now (negative: in the past).
#[derive(Clone, Copy)]
pub struct Validity {
    pub from_days: i64,
    pub to_days: i64,
}

/// Valid from yesterday for `days`.
pub fn valid_for(days: i64) -> Validity {
    Validity {
        from_days: -1,
        to_days: days,
    }
}

fn params(
    names: Vec<String>,
    cn: &str,
    validity: Validity,
    serial: u64,
) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(names).expect("certificate params");
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(validity.from_days);
    p.not_after = now + time::Duration::days(validity.to_days);
    p.distinguished_name = rcgen::DistinguishedName::new();
    // Encoded in this order; shown most specific first: "CN=..., O=kconn tests".
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "kconn tests".to_owned());
    p.distinguished_name
        .push(rcgen::DnType::CommonName, cn.to_owned());
    p.serial_number = Some(rcgen::SerialNumber::from(serial));
    p
}

impl TestPki {
    /// A CA (valid 10 years), an intermediate if `intermediate` is given,
    /// and a leaf for localhost/127.0.0.1 with `leaf` validity and `serial`.
    pub fn new(leaf: Validity, intermediate: Option<Validity>, serial: u64) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = params(Vec::new(), "kconn test CA", valid_for(3650), 1);
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let ca = Arc::new(rcgen::Issuer::new(ca_params, ca_key));
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf_params = params(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            leaf,
            serial,
        );
        let mut chain = Vec::new();
        match intermediate {
            None => {
                let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf");
                chain.push(leaf.der().clone());
            }
            Some(v) => {
                let int_key = rcgen::KeyPair::generate().expect("intermediate key");
                let mut int_params = params(Vec::new(), "kconn test intermediate", v, 2);
                int_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                let int_cert = int_params.signed_by(&int_key, &ca).expect("intermediate");
                let int = rcgen::Issuer::new(int_params, int_key);
                let leaf = leaf_params.signed_by(&leaf_key, &int).expect("leaf");
                chain.push(leaf.der().clone());
                chain.push(int_cert.der().clone());
            }
        }
        Self {
            ca_pem: ca_cert.pem(),
            ca,
            chain,
            key: leaf_key.serialize_der(),
        }
    }

    /// The same CA with a new leaf (serial `serial`, valid a year): a
    /// rotated certificate.
    pub fn rotate_leaf(&self, serial: u64) -> Self {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = params(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            valid_for(365),
            serial,
        )
        .signed_by(&key, &self.ca)
        .expect("leaf");
        Self {
            ca_pem: self.ca_pem.clone(),
            ca: self.ca.clone(),
            chain: vec![leaf.der().clone()],
            key: key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key.clone().into());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .expect("server certificate"),
        )
    }
}

/// A TLS-terminating forwarder to a plaintext broker, serving the
/// certificate of a [`TestPki`] that the test can swap; `stop` closes it.
pub struct TlsProxy {
    pub addr: SocketAddr,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsProxy {
    /// Starts serving `pki`'s chain in front of `target`.
    pub fn start(pki: &TestPki, target: &str) -> Self {
        let config = Arc::new(Mutex::new(pki.server_config()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let (cfg, target) = (config.clone(), target.to_owned());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let (tcp, _) = tokio::select! {
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                        _ = &mut rx => break,
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg.lock().unwrap().clone());
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let Ok(mut up) = tokio::net::TcpStream::connect(&target).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    });
                }
            });
            // Dropping the runtime ends every forwarded connection.
        });
        Self {
            addr,
            config,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Serves another certificate from the next connection on.
    pub fn rotate(&self, pki: &TestPki) {
        *self.config.lock().unwrap() = pki.server_config();
    }

    /// Closes the port and every connection.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
