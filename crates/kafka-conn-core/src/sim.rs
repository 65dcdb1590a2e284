//! A scripted, sans-IO simulated broker and a [`Pair`] that connects it to a
//! [`Connection`] in virtual time (in the manner of quinn-proto's test
//! `Pair`).
//!
//! It exists for what a real broker will not do on demand: answer out of
//! order, send garbage or huge size prefixes, deliver one byte at a time,
//! refuse ApiVersions forever, run SASL exchanges with a scripted server,
//! stay silent. Enabled with the `sim` feature (the crate's own tests, the
//! drivers' tests and the fuzzers use it); not part of the stable API.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::api::ApiKey;
use crate::sasl::CredentialRequest;
use crate::wire::{Reader, WriteExt};
use crate::{Config, Connection, Event};

/// A request as the simulated broker read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// API key.
    pub api_key: ApiKey,
    /// API version.
    pub api_version: i16,
    /// Correlation id.
    pub correlation_id: i32,
    /// Client id from the header.
    pub client_id: Option<String>,
    /// Body after the header (for a legacy raw SASL token: the token).
    pub body: Bytes,
    /// Whether this was a legacy raw SASL token (no Kafka header).
    pub raw_token: bool,
}

/// What the broker does in answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A response with this body, the right header for the request, and the
    /// request's correlation id.
    Respond(Bytes),
    /// A response with this body and a chosen correlation id.
    RespondWithId(i32, Bytes),
    /// A raw frame (size prefix added), e.g. a legacy SASL token.
    RespondRawFrame(Bytes),
    /// These exact bytes, no framing.
    Bytes(Bytes),
    /// No answer now (the request is remembered in `received`).
    Ignore,
    /// Close the connection (the client sees EOF).
    Close,
    /// From now on, read raw length-prefixed tokens (legacy SASL after SaslHandshake v0).
    EnterRawTokenMode,
    /// Back to Kafka framing (after the last legacy SASL token).
    ExitRawTokenMode,
}

/// A handler: called for every request, returns what to do.
pub type Handler = Box<dyn FnMut(&ReceivedRequest) -> Vec<Action> + Send>;

/// A scripted broker.
pub struct SimBroker {
    inbox: BytesMut,
    outbox: VecDeque<u8>,
    raw_tokens: bool,
    closed: bool,
    /// Every request read, in order.
    pub received: Vec<ReceivedRequest>,
    handler: Handler,
}

impl std::fmt::Debug for SimBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBroker")
            .field("received", &self.received.len())
            .field("outbox", &self.outbox.len())
            .field("closed", &self.closed)
            .finish()
    }
}

/// The ApiVersions table the default broker advertises (a Kafka 3.x-like
/// subset, including SASL).
pub const DEFAULT_VERSIONS: &[(i16, i16, i16)] = &[
    (0, 0, 11),
    (1, 0, 17),
    (2, 0, 9),
    (3, 0, 12),
    (17, 0, 1),
    (18, 0, 4),
    (19, 0, 7),
    (36, 0, 2),
];

impl SimBroker {
    /// A broker with a handler.
    pub fn new(handler: Handler) -> Self {
        Self {
            inbox: BytesMut::new(),
            outbox: VecDeque::new(),
            raw_tokens: false,
            closed: false,
            received: Vec::new(),
            handler,
        }
    }

    /// A well-behaved broker: ApiVersions answered with [`DEFAULT_VERSIONS`]
    /// (UNSUPPORTED_VERSION with a v0 body above v4); every other request is
    /// answered by echoing its body.
    pub fn echo() -> Self {
        Self::new(Box::new(|r| {
            match api_versions_reply(r, DEFAULT_VERSIONS) {
                Some(a) => vec![a],
                None => vec![Action::Respond(r.body.clone())],
            }
        }))
    }

    /// Whether the broker closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes waiting to be delivered to the client.
    pub fn pending_output(&self) -> usize {
        self.outbox.len()
    }

    /// Feeds bytes from the client and runs the handler on each complete request.
    pub fn receive(&mut self, data: &[u8]) {
        if self.closed {
            return;
        }
        self.inbox.extend_from_slice(data);
        while let Some(req) = self.next_request() {
            self.received.push(req.clone());
            let actions = (self.handler)(&req);
            self.apply(&req, actions);
            if self.closed {
                return;
            }
        }
    }

    /// Runs actions as if in answer to `req` (for responses sent later,
    /// e.g. answering an ignored request).
    pub fn apply(&mut self, req: &ReceivedRequest, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Respond(body) => self.respond(req, req.correlation_id, &body),
                Action::RespondWithId(id, body) => self.respond(req, id, &body),
                Action::RespondRawFrame(b) => {
                    self.outbox.extend((b.len() as i32).to_be_bytes());
                    self.outbox.extend(&b[..]);
                }
                Action::Bytes(b) => self.outbox.extend(&b[..]),
                Action::Ignore => {}
                Action::Close => self.closed = true,
                Action::EnterRawTokenMode => self.raw_tokens = true,
                Action::ExitRawTokenMode => self.raw_tokens = false,
            }
        }
    }

    fn respond(&mut self, req: &ReceivedRequest, id: i32, body: &[u8]) {
        let hv = req.api_key.header_versions(req.api_version).response;
        let mut hdr = BytesMut::new();
        hdr.put_i32(id);
        if hv >= 1 {
            hdr.put_empty_tagged_fields();
        }
        self.outbox
            .extend(((hdr.len() + body.len()) as i32).to_be_bytes());
        self.outbox.extend(&hdr[..]);
        self.outbox.extend(body);
    }

    /// Takes up to `max` bytes for the client.
    pub fn take_output(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.outbox.len());
        self.outbox.drain(..n).collect()
    }

    fn next_request(&mut self) -> Option<ReceivedRequest> {
        if self.inbox.len() < 4 {
            return None;
        }
        let size = i32::from_be_bytes(self.inbox[..4].try_into().ok()?) as usize;
        if self.inbox.len() < 4 + size {
            return None;
        }
        self.inbox.advance(4);
        let frame = self.inbox.split_to(size).freeze();
        if self.raw_tokens {
            return Some(ReceivedRequest {
                api_key: ApiKey::SASL_AUTHENTICATE,
                api_version: -1,
                correlation_id: -1,
                client_id: None,
                body: frame,
                raw_token: true,
            });
        }
        let mut r = Reader::new(&frame);
        let api_key = ApiKey(r.i16("api_key").ok()?);
        let api_version = r.i16("api_version").ok()?;
        let correlation_id = r.i32("correlation_id").ok()?;
        let hv = api_key.header_versions(api_version).request;
        let client_id = r.nullable_string("client_id").ok()?.map(str::to_owned);
        if hv >= 2 {
            r.skip_tagged_fields().ok()?;
        }
        let body = frame.slice(frame.len() - r.remaining()..);
        Some(ReceivedRequest {
            api_key,
            api_version,
            correlation_id,
            client_id,
            body,
            raw_token: false,
        })
    }
}

/// The standard answer to an ApiVersions request, or `None` for other APIs:
/// the table at the requested version, or UNSUPPORTED_VERSION (35) with a
/// v0 body listing the ApiVersions range when the version is above it.
pub fn api_versions_reply(req: &ReceivedRequest, table: &[(i16, i16, i16)]) -> Option<Action> {
    if req.api_key != ApiKey::API_VERSIONS || req.raw_token {
        return None;
    }
    let max = table.iter().find(|e| e.0 == 18).map_or(0, |e| e.2);
    let mut b = BytesMut::new();
    if req.api_version > max {
        let entry: Vec<_> = table.iter().copied().filter(|e| e.0 == 18).collect();
        crate::versions::encode_response(&mut b, 0, 35, &entry);
    } else {
        crate::versions::encode_response(&mut b, req.api_version, 0, table);
    }
    Some(Action::Respond(b.freeze()))
}

/// How the broker's bytes reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Everything pending at once.
    All,
    /// In chunks of this many bytes, one `handle_input` call each.
    Chunks(usize),
    /// Through `recv_buf` / `recv_commit`, at most this many bytes per read.
    ZeroCopy(usize),
}

/// What a broker of Kafka 0.10.0-0.10.1 answers to a SaslHandshake v0
/// that names one of `mechanisms`: the response, then raw SASL tokens
/// (leave that mode with [`Action::ExitRawTokenMode`] after the last one).
pub fn legacy_handshake_reply(mechanisms: &[&str]) -> Vec<Action> {
    let mut b = BytesMut::new();
    crate::auth::server::handshake_response(&mut b, 0, mechanisms);
    vec![Action::Respond(b.freeze()), Action::EnterRawTokenMode]
}

/// A connection and a simulated broker joined by a perfect network, in virtual time.
#[derive(Debug)]
pub struct Pair {
    /// The client side.
    pub conn: Connection,
    /// The broker side.
    pub broker: SimBroker,
    /// Virtual time.
    pub now: Instant,
    /// Every event the connection emitted, in order.
    pub events: Vec<Event>,
    /// How bytes are delivered to the client.
    pub delivery: Delivery,
    /// At most this many bytes are written per `poll_transmit` round
    /// (partial writes); `usize::MAX` writes everything.
    pub write_limit: usize,
    eof_delivered: bool,
}

impl Pair {
    /// Connects `config` to `broker` at an arbitrary start time.
    pub fn new(config: Config, broker: SimBroker) -> Self {
        let now = Instant::now();
        let conn = Connection::new(config, now).expect("valid config");
        Self {
            conn,
            broker,
            now,
            events: Vec::new(),
            delivery: Delivery::All,
            write_limit: usize::MAX,
            eof_delivered: false,
        }
    }

    /// Moves bytes both ways and collects events until nothing moves.
    /// SCRAM's PBKDF2 requests are answered on the spot (as the async
    /// drivers answer them, see [`crate::sasl::Scram`]); every other
    /// credential request is left to the caller.
    pub fn drive(&mut self) {
        loop {
            let mut moved = false;
            // Client -> broker, honouring the write limit (partial writes).
            while self.conn.transmit_len() > 0 {
                let mut slices = [IoSlice::new(&[]); 8];
                let n = self.conn.poll_transmit(&mut slices);
                let mut data = Vec::new();
                for s in &slices[..n] {
                    let room = self.write_limit - data.len().min(self.write_limit);
                    data.extend_from_slice(&s[..s.len().min(room)]);
                }
                let written = data.len();
                self.conn.transmit_complete(written, self.now);
                self.broker.receive(&data);
                moved = true;
                if self.write_limit != usize::MAX {
                    break;
                }
            }
            // Broker -> client.
            if self.broker.pending_output() > 0 {
                moved = true;
                match self.delivery {
                    Delivery::All => {
                        let out = self.broker.take_output(usize::MAX);
                        self.conn.handle_input(&out, self.now);
                    }
                    Delivery::Chunks(n) => {
                        let out = self.broker.take_output(n.max(1));
                        self.conn.handle_input(&out, self.now);
                    }
                    Delivery::ZeroCopy(n) => {
                        let buf = self.conn.recv_buf();
                        let max = n.max(1).min(buf.len());
                        let out = self.broker.take_output(max);
                        buf[..out.len()].copy_from_slice(&out);
                        let len = out.len();
                        self.conn.recv_commit(len, self.now);
                    }
                }
            } else if self.broker.is_closed() && !self.eof_delivered {
                self.eof_delivered = true;
                self.conn.handle_eof(self.now);
                moved = true;
            }
            while let Some(e) = self.conn.poll_event() {
                // SCRAM's PBKDF2 job is answered right here, as the async
                // drivers answer it on their blocking pool; the event is
                // still recorded.
                if let Event::CredentialRequired(CredentialRequest::ScramSaltedPassword(job)) = &e {
                    let salted = job.clone().run();
                    let _ = self.conn.provide_credential(salted, self.now);
                }
                self.events.push(e);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    /// Advances virtual time by `d`, fires timeouts and drives.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.conn.handle_timeout(self.now);
        self.drive();
    }

    /// Jumps to the connection's next timeout (if any), fires it and drives.
    pub fn advance_to_timeout(&mut self) -> bool {
        match self.conn.poll_timeout() {
            Some(t) => {
                if t > self.now {
                    self.now = t;
                }
                self.conn.handle_timeout(self.now);
                self.drive();
                true
            }
            None => false,
        }
    }

    /// Removes and returns the events collected so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// A connection made ready at once by a version hint offering Metadata
/// v0-v12, its events drained: where the micro-benchmarks start (no broker).
pub fn ready_metadata_connection(max_frame_size: usize, now: Instant) -> Connection {
    let table = crate::ApiVersions::from_ranges([(3, 0, 12)]).expect("valid table");
    let config = Config::new()
        .with_version_hint(table)
        .with_max_frame_size(max_frame_size);
    let mut conn = Connection::new(config, now).expect("valid config");
    while conn.poll_event().is_some() {}
    conn
}

/// Feeds `bytes` through `recv_buf` / `recv_commit`, each read filling
/// the window the core offers (as a socket read into it would).
pub fn feed_zero_copy(conn: &mut Connection, bytes: &[u8], now: Instant) {
    let mut fed = 0;
    while fed < bytes.len() {
        let buf = conn.recv_buf();
        let n = buf.len().min(bytes.len() - fed);
        buf[..n].copy_from_slice(&bytes[fed..fed + n]);
        conn.recv_commit(n, now);
        fed += n;
    }
}

/// Encodes a response frame (size, header, body) for tests that feed raw bytes.
pub fn response_frame(correlation_id: i32, header_version: u8, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    let hdr = if header_version >= 1 { 5 } else { 4 };
    b.put_i32((hdr + body.len()) as i32);
    b.put_i32(correlation_id);
    if header_version >= 1 {
        b.put_u8(0);
    }
    b.put_slice(body);
    b.to_vec()
}

/// An unsecured JWS (`{"alg":"none"}`, empty signature) for `sub`, issued
/// now and expiring `expires_in_secs` from now (negative: already expired).
/// Apache Kafka's default unsecured OAUTHBEARER validator accepts such
/// tokens, and so does the SASL test broker; tests use them in place of a
/// real token provider.
pub fn unsecured_jwt(sub: &str, expires_in_secs: i64) -> String {
    use base64::Engine as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none"}"#);
    let claims = b64.encode(format!(
        r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#,
        now + expires_in_secs
    ));
    format!("{header}.{claims}.")
}
