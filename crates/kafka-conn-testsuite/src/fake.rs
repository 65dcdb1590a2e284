//! Misbehaving peers over real sockets, on plain threads (so they work
//! under every runtime): a listener that never answers, one that answers
//! garbage, a proxy to a real broker that can be frozen and killed, and
//! the core's simulated broker behind a socket.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use futures_channel::mpsc;
use kafka_conn_driver::core::sim::SimBroker;

/// A listener on 127.0.0.1 that hands every connection to a behaviour on
/// its own thread. Dropping it (or [`Fake::kill`]) stops it and shuts
/// every connection down.
pub struct Fake {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    listener: TcpListener,
}

impl Fake {
    /// Listens and runs `behaviour` for each accepted connection.
    pub fn start(behaviour: impl Fn(TcpStream) + Send + Sync + 'static) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), behaviour)
    }

    /// Runs `behaviour` for each connection `listener` accepts.
    pub fn start_on(
        listener: TcpListener,
        behaviour: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let own = listener.try_clone().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(behaviour);
        let (s, k) = (stop.clone(), sockets.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                k.lock().unwrap().push(conn.try_clone().unwrap());
                let b = behaviour.clone();
                thread::spawn(move || b(conn));
            }
        });
        Self {
            addr,
            stop,
            sockets,
            listener: own,
        }
    }

    /// Accepts, reads and discards everything, never answers. Each
    /// connection's end of stream (the client closed) is reported on the
    /// returned channel.
    pub fn silent() -> (Self, mpsc::UnboundedReceiver<()>) {
        let (tx, rx) = mpsc::unbounded();
        let fake = Self::start(move |mut s| {
            let mut buf = [0u8; 4096];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            let _ = tx.unbounded_send(());
        });
        (fake, rx)
    }

    /// Reads the first bytes of a request, answers `reply`, keeps the
    /// connection open until the client goes.
    pub fn answering(reply: &'static [u8]) -> Self {
        Self::start(move |mut s| {
            let mut buf = [0u8; 4096];
            if matches!(s.read(&mut buf), Ok(n) if n > 0) {
                let _ = s.write_all(reply);
            }
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        })
    }

    /// The core's simulated broker behind a real socket: each connection
    /// gets a fresh broker from `make`, which reads every byte the client
    /// writes and answers as it is scripted to. For what no real broker
    /// here does, such as a SASL mechanism of our own.
    pub fn simulated(make: impl Fn() -> SimBroker + Send + Sync + 'static) -> Self {
        Self::start(move |mut s| {
            let mut broker = make();
            let mut buf = [0u8; 16384];
            while let Ok(n @ 1..) = s.read(&mut buf) {
                broker.receive(&buf[..n]);
                let out = broker.take_output(usize::MAX);
                if s.write_all(&out).is_err() {
                    break;
                }
                if broker.is_closed() {
                    break;
                }
            }
            let _ = s.shutdown(Shutdown::Both);
        })
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Stops accepting and shuts every connection down, like a broker
    /// process that died (the kernel closes its sockets).
    pub fn kill(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            // Wake the accept loop so it sees the flag: shutting a listening
            // socket down fails its pending accept (Linux); a connection
            // does it elsewhere (bounded: the listener may be unreachable).
            let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Both);
            let _ = TcpStream::connect_timeout(&self.addr, std::time::Duration::from_millis(200));
        }
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy to a real broker. Freezing it swallows the broker's
/// responses (requests stay in flight); killing it drops every connection.
pub struct Proxy {
    fake: Fake,
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    /// Proxies to `upstream` (`host:port`).
    pub fn to(upstream: &str) -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap(), upstream)
    }

    /// Proxies the connections `listener` accepts to `upstream` (`host:port`).
    pub fn on(listener: TcpListener, upstream: &str) -> Self {
        let upstream = upstream.to_owned();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        let extra = Arc::new(Mutex::new(Vec::<TcpStream>::new()));
        let fake = Fake::start_on(listener, move |client| {
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            extra.lock().unwrap().push(server.try_clone().unwrap());
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(Shutdown::Both);
            });
            let (mut s_read, mut c_write) = (server, client);
            let mut buf = [0u8; 16384];
            loop {
                let n = match s_read.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if !f.load(Ordering::SeqCst) && c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = c_write.shutdown(Shutdown::Both);
        });
        Self { fake, frozen }
    }

    /// `host:port` of the proxy.
    pub fn address(&self) -> String {
        self.fake.address()
    }

    /// From now on the broker's bytes are read and dropped.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Kills every proxied connection.
    pub fn kill(&self) {
        self.fake.kill();
    }
}

/// A small Kafka broker on a thread that speaks just enough (ApiVersions,
/// SaslHandshake v1, SaslAuthenticate v2, Metadata v4) to authenticate
/// OAUTHBEARER clients with a short session lifetime, so KIP-368
/// re-authentication happens within a test. It records every bearer token
/// it receives.
pub struct OAuthBroker {
    fake: Fake,
    tokens: Arc<Mutex<Vec<String>>>,
}

impl OAuthBroker {
    /// Sessions last `session_lifetime_ms`.
    pub fn start(session_lifetime_ms: i64) -> Self {
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let t = tokens.clone();
        let fake = Fake::start(move |s| {
            let _ = serve_oauth(s, session_lifetime_ms, &t);
        });
        Self { fake, tokens }
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        self.fake.address()
    }

    /// The bearer tokens received, in order.
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }
}

fn serve_oauth(
    mut s: TcpStream,
    lifetime_ms: i64,
    tokens: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use bytes::BufMut;
    use kafka_conn_driver::core::server;
    use kafka_conn_driver::core::wire::Reader;

    loop {
        let mut size = [0u8; 4];
        s.read_exact(&mut size)?;
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut frame)?;
        let mut r = Reader::new(&frame);
        let api = r.i16("api").unwrap();
        let version = r.i16("version").unwrap();
        let correlation = r.i32("correlation").unwrap();
        r.nullable_string("client id").unwrap();
        let flexible_request = (api == 18 && version >= 3) || (api == 36 && version >= 2);
        if flexible_request {
            r.skip_tagged_fields().unwrap();
        }
        let body = r.rest();
        let mut out = Vec::new();
        out.put_i32(correlation);
        // Response header v1 (tagged fields) for flexible APIs, except ApiVersions.
        if api == 36 && version >= 2 {
            out.put_u8(0);
        }
        match api {
            18 => server::api_versions_response(
                &mut out,
                version,
                0,
                &[(18, 0, 4), (17, 0, 1), (36, 0, 2), (3, 0, 4)],
            ),
            17 => server::handshake_response(&mut out, 0, &["OAUTHBEARER"]),
            36 => {
                let auth = server::authenticate_request(body, version).unwrap();
                let text = String::from_utf8_lossy(&auth).into_owned();
                let token = text
                    .split('\x01')
                    .find_map(|kv| kv.strip_prefix("auth=Bearer "))
                    .unwrap_or_default()
                    .to_owned();
                tokens.lock().unwrap().push(token);
                server::authenticate_response(&mut out, version, 0, None, b"", lifetime_ms);
            }
            3 => {
                let mut rb = Reader::new(body);
                rb.i32("topics").unwrap();
                let topic = rb.string("topic").unwrap();
                out.put_i32(0); // throttle
                out.put_i32(0); // brokers
                out.put_i16(-1); // cluster id: null
                out.put_i32(-1); // controller
                out.put_i32(1);
                out.put_i16(3); // UNKNOWN_TOPIC_OR_PARTITION
                out.put_i16(topic.len() as i16);
                out.put_slice(topic.as_bytes());
                out.put_u8(0);
                out.put_i32(0);
            }
            _ => return Ok(()),
        }
        let mut framed = Vec::with_capacity(out.len() + 4);
        framed.put_i32(out.len() as i32);
        framed.extend_from_slice(&out);
        s.write_all(&framed)?;
    }
}

/// A listener on 127.0.0.1 whose accept queue is full and is never
/// drained: a SYN to it is dropped (Linux does that when the queue is
/// full), so a connect hangs as it does to a firewalled host. The backlog
/// is 0 (one queued connection on Linux) and filled by connections made
/// here until one times out. `None` where the system answers otherwise
/// (no connect hung after 64).
pub struct FullBacklog {
    listener: socket2::Socket,
    _fillers: Vec<TcpStream>,
}

impl FullBacklog {
    /// Listens and fills the queue.
    pub fn start() -> Option<Self> {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..64 {
            match TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Some(Self {
                        listener,
                        _fillers: fillers,
                    })
                }
                Err(e) => panic!("filling the backlog of {addr}: {e}"),
            }
        }
        None
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap().as_socket().unwrap()
    }
}
