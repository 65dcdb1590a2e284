//! [`KafkaProxy`]: a Kafka-aware TCP forwarder in front of the brokers of a
//! real cluster, on plain threads (so it works under every runtime).
//!
//! Each node gets its own listener that forwards to its broker. Metadata
//! responses passing through are rewritten (decoded and re-encoded with the
//! `kafka-protocol` crate) so that every node is advertised at its
//! listener, as Kafka proxies (kroxylicious, Envoy's Kafka filter) do: a
//! client that learns the cluster from Metadata keeps connecting through
//! the forwarders. Tests read how many connections each node accepted,
//! advertise a node at an address nobody listens on, point a node at
//! another broker (another cluster), and cut connections.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_conn_driver::core::typed::kafka_protocol::messages::MetadataResponse;
use kafka_conn_driver::core::typed::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Largest frame the proxy forwards (the brokers' responses here are small).
const MAX_FRAME: usize = 64 << 20;

/// The forwarders of one cluster's nodes. Dropping it stops every listener
/// and cuts every connection.
pub struct KafkaProxy {
    nodes: Arc<BTreeMap<i32, Arc<Node>>>,
    stop: Arc<AtomicBool>,
}

struct Node {
    listener: SocketAddr,
    upstream: Mutex<String>,
    /// Where Metadata says the node is: its listener, unless overridden.
    advertised: Mutex<(String, i32)>,
    accepted: AtomicUsize,
    open: AtomicUsize,
    sockets: Mutex<Vec<TcpStream>>,
}

impl KafkaProxy {
    /// One forwarder per `(node id, upstream host:port)`, e.g. each broker of
    /// a [`MockCluster`](crate::MockCluster) by id.
    pub fn start(routes: &[(i32, String)]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut listeners = Vec::new();
        let mut nodes = BTreeMap::new();
        for (id, upstream) in routes {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            nodes.insert(
                *id,
                Arc::new(Node {
                    listener: addr,
                    upstream: Mutex::new(upstream.clone()),
                    advertised: Mutex::new((addr.ip().to_string(), i32::from(addr.port()))),
                    accepted: AtomicUsize::new(0),
                    open: AtomicUsize::new(0),
                    sockets: Mutex::new(Vec::new()),
                }),
            );
            listeners.push((*id, listener));
        }
        let nodes = Arc::new(nodes);
        for (id, listener) in listeners {
            let (nodes, stop) = (nodes.clone(), stop.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let node = nodes[&id].clone();
                    node.accepted.fetch_add(1, Ordering::SeqCst);
                    let all = nodes.clone();
                    thread::spawn(move || forward(client, &node, &all));
                }
            });
        }
        Self { nodes, stop }
    }

    /// A forwarder for each of brokers `1..=brokers` of `mock`.
    pub fn in_front_of(mock: &crate::MockCluster, brokers: i32) -> Self {
        let routes: Vec<(i32, String)> = (1..=brokers).map(|id| (id, mock.address(id))).collect();
        Self::start(&routes)
    }

    /// `127.0.0.1:PORT` of node `id`'s forwarder.
    pub fn address(&self, id: i32) -> String {
        self.node(id).listener.to_string()
    }

    /// Connections node `id`'s forwarder has accepted so far.
    pub fn accepted(&self, id: i32) -> usize {
        self.node(id).accepted.load(Ordering::SeqCst)
    }

    /// Connections through node `id`'s forwarder open now.
    pub fn open(&self, id: i32) -> usize {
        self.node(id).open.load(Ordering::SeqCst)
    }

    /// From now on Metadata advertises node `id` at `host:port` (e.g. a
    /// port nobody listens on: a broker whose advertised.listeners are
    /// wrong).
    pub fn advertise(&self, id: i32, host: &str, port: i32) {
        *self.node(id).advertised.lock().unwrap() = (host.to_owned(), port);
    }

    /// New connections to node `id` go to `upstream` from now on.
    pub fn retarget(&self, id: i32, upstream: &str) {
        *self.node(id).upstream.lock().unwrap() = upstream.to_owned();
    }

    /// Cuts every connection through node `id`'s forwarder (both sides).
    pub fn cut(&self, id: i32) {
        for s in self.node(id).sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn node(&self, id: i32) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no forwarder for node {id}"))
    }
}

impl Drop for KafkaProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for node in self.nodes.values() {
            // Wake the accept loop so it sees the flag.
            let _ = TcpStream::connect(node.listener);
            for s in node.sockets.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Counts a forwarded connection open until both directions end.
struct Open<'a>(&'a Node);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Forwards one client connection to the node's upstream, rewriting the
/// Metadata responses on the way back.
fn forward(client: TcpStream, node: &Node, all: &BTreeMap<i32, Arc<Node>>) {
    node.open.fetch_add(1, Ordering::SeqCst);
    let _open = Open(node);
    let upstream = node.upstream.lock().unwrap().clone();
    let Ok(server) = TcpStream::connect(&upstream) else {
        return;
    };
    {
        let mut sockets = node.sockets.lock().unwrap();
        sockets.push(client.try_clone().unwrap());
        sockets.push(server.try_clone().unwrap());
    }
    // Correlation id -> (api key, version) of the requests in flight.
    let asked: Arc<Mutex<HashMap<i32, (i16, i16)>>> = Arc::default();
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let requests = asked.clone();
    let upward = thread::spawn(move || {
        while let Some(frame) = read_frame(&mut from_client) {
            if frame.len() >= 8 {
                let mut h = &frame[..8];
                let (key, version, correlation) = (h.get_i16(), h.get_i16(), h.get_i32());
                requests.lock().unwrap().insert(correlation, (key, version));
            }
            if write_frame(&mut to_server, &frame).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Both);
    });
    let (mut from_server, mut to_client) = (server, client);
    while let Some(frame) = read_frame(&mut from_server) {
        let correlation = frame.get(..4).map(|mut c| c.get_i32());
        let asked_for = correlation.and_then(|c| asked.lock().unwrap().remove(&c));
        let frame = match asked_for {
            Some((3, version)) => rewrite_metadata(&frame, version, all).unwrap_or(frame),
            _ => frame,
        };
        if write_frame(&mut to_client, &frame).is_err() {
            break;
        }
    }
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = upward.join();
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let size = usize::try_from(i32::from_be_bytes(size)).ok()?;
    if size > MAX_FRAME {
        return None;
    }
    let mut frame = vec![0u8; size];
    s.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn write_frame(s: &mut TcpStream, frame: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.put_i32(frame.len() as i32);
    out.extend_from_slice(frame);
    s.write_all(&out)
}

/// The Metadata response `frame` (correlation id, header, body) with every
/// node that has a forwarder advertised where [`KafkaProxy`] says.
fn rewrite_metadata(frame: &[u8], version: i16, all: &BTreeMap<i32, Arc<Node>>) -> Option<Vec<u8>> {
    // Response header v1 (a tagged-field count, 0 here) from v9 on.
    let header = if version >= 9 { 5 } else { 4 };
    let mut body = Bytes::copy_from_slice(frame.get(header..)?);
    let mut md = MetadataResponse::decode(&mut body, version).ok()?;
    for b in &mut md.brokers {
        if let Some(node) = all.get(&b.node_id.0) {
            let (host, port) = node.advertised.lock().unwrap().clone();
            b.host = StrBytes::from_string(host);
            b.port = port;
        }
    }
    let mut out = BytesMut::from(&frame[..header]);
    md.encode(&mut out, version).ok()?;
    Some(out.to_vec())
}
