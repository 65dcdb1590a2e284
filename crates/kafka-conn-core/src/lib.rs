//! # kafka-conn-core
//!
//! One Kafka broker connection as a pure state machine: framing,
//! correlation ids, API version negotiation (KIP-511), SASL (PLAIN,
//! SCRAM-SHA-256/512, OAUTHBEARER, GSSAPI, legacy v0) with KIP-368
//! re-authentication, request deadlines, idle reaping and typed close
//! reasons. It performs no I/O, reads no clock and never sleeps: every
//! input carries `now` from the caller. Drivers for tokio, smol and
//! async-std live in their own crates; anyone can drive a [`Connection`]
//! from their own event loop.
//!
//! ## The drive loop
//!
//! The rule: **after every input or command, drain the outputs**:
//! [`Connection::poll_transmit`] (write the bytes),
//! [`Connection::poll_event`] (act on the events) and
//! [`Connection::poll_timeout`] (arm a timer that calls
//! [`Connection::handle_timeout`]). Here is the whole loop over a blocking
//! `std::net::TcpStream`, step by step: it fetches the cluster's metadata
//! and closes. An async driver does the same with a socket, a timer and a
//! task (`kafka-conn-driver`); `examples/blocking.rs` is this loop as a
//! program.
//!
//! ```no_run
//! use std::io::{ErrorKind, IoSlice, Read, Write};
//! use std::net::TcpStream;
//! use std::time::{Duration, Instant};
//!
//! use kafka_conn_core::{ApiKey, Config, Connection, Event, Request};
//! use kafka_conn_core::sasl::CredentialRequest;
//!
//! # fn main() -> std::io::Result<()> {
//! // 1. The transport. (For an SSL listener, run TLS over it and feed the
//! //    core the decrypted bytes.)
//! let mut socket = TcpStream::connect("127.0.0.1:9092")?;
//! socket.set_nodelay(true)?;
//!
//! // 2. The core, once the transport is up: it queues ApiVersions (KIP-511)
//! //    and, when configured, SASL. Every call takes the time from the caller.
//! let mut conn = Connection::new(Config::new(), Instant::now()).expect("a valid config");
//!
//! // 3. A command: Metadata v1 for all topics (a null topic array). Sent
//! //    before the connection is ready, it is held and goes out in order
//! //    once versions are negotiated.
//! let metadata = Request::new(ApiKey::METADATA, 1, vec![0xff, 0xff, 0xff, 0xff]);
//! let id = conn.send_request(metadata, Instant::now()).expect("accepted");
//!
//! loop {
//!     // 4. Write what the core wants on the wire: request headers and the
//!     //    callers' bodies as slices, no copy; partial writes are fine.
//!     while conn.transmit_len() > 0 {
//!         let mut slices = [IoSlice::new(&[]); 16];
//!         let n = conn.poll_transmit(&mut slices);
//!         match socket.write_vectored(&slices[..n]) {
//!             Ok(written) => conn.transmit_complete(written, Instant::now()),
//!             Err(e) => {
//!                 conn.handle_io_error(e.kind(), e.to_string(), Instant::now());
//!                 break;
//!             }
//!         }
//!     }
//!
//!     // 5. Act on the events. `Closed` comes exactly once, always last.
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             Event::Ready { api_versions, .. } => {
//!                 println!("ready: the broker offers {} APIs", api_versions.len());
//!             }
//!             Event::Response(r) if r.correlation_id == id => {
//!                 println!("Metadata v{}: {} bytes", r.api_version, r.body.len());
//!                 conn.close(Instant::now()); // a command: its Closed follows
//!             }
//!             Event::RequestFailed { correlation_id, error, .. } => {
//!                 println!("request {correlation_id} failed: {error}");
//!             }
//!             Event::Closed(reason) => {
//!                 println!("closed: {reason}");
//!                 return Ok(());
//!             }
//!             // With SCRAM: PBKDF2, which a blocking loop runs in place
//!             // (an async driver runs it on its blocking pool).
//!             Event::CredentialRequired(CredentialRequest::ScramSaltedPassword(job)) => {
//!                 let _ = conn.provide_credential(job.run(), Instant::now());
//!             }
//!             _ => {} // other credential requests (OAuth, GSSAPI), re-authentication
//!         }
//!     }
//!
//!     // 6. The timer: wait for bytes at most until the next deadline
//!     //    (handshake, request timeouts, idle, re-authentication, throttle).
//!     let wait = conn.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
//!     if wait == Some(Duration::ZERO) {
//!         conn.handle_timeout(Instant::now()); // already due
//!         continue;
//!     }
//!     socket.set_read_timeout(wait)?;
//!
//!     // 7. Read straight into the core's buffer. End of stream, errors and
//!     //    the timer are inputs too; then round again to drain.
//!     match socket.read(conn.recv_buf()) {
//!         Ok(0) => conn.handle_eof(Instant::now()),
//!         Ok(n) => conn.recv_commit(n, Instant::now()),
//!         Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
//!             conn.handle_timeout(Instant::now());
//!         }
//!         Err(e) if e.kind() == ErrorKind::Interrupted => {}
//!         Err(e) => conn.handle_io_error(e.kind(), e.to_string(), Instant::now()),
//!     }
//! }
//! # }
//! ```
//!
//! `handle_timeout` may be called early or twice (it only acts on what is
//! due), so a timer that wakes up too soon costs nothing.
//!
//! ## Contract
//!
//! - Inputs: [`Connection::recv_buf`] (a zero-filled window) or
//!   [`Connection::recv_spare`] (spare capacity, for a reader into memory
//!   not yet initialised), then [`Connection::recv_commit`] (zero copy); or
//!   [`Connection::handle_input`] (copy); [`Connection::handle_eof`];
//!   [`Connection::handle_io_error`]; [`Connection::handle_timeout`]
//!   (spurious calls are no-ops).
//! - Commands: [`Connection::send_request`], [`Connection::cancel`],
//!   [`Connection::close`], [`Connection::provide_credential`],
//!   [`Connection::credential_failed`], [`Connection::handle_throttle`],
//!   [`Connection::handle_throttle_time`].
//! - Outputs: [`Connection::poll_transmit`] + [`Connection::transmit_complete`]
//!   (partial writes allowed; request bodies are never copied),
//!   [`Connection::poll_timeout`], [`Connection::poll_event`].
//! - Getters (no effect) and the families in full: see [`Connection`].
//! - [`Event::Closed`] is emitted exactly once and is always the last event;
//!   after it, every command fails with the same sticky [`CloseReason`].
//! - Memory is bounded by what arrives, never by what a peer claims:
//!   a 2 GiB size prefix allocates nothing until 2 GiB arrive (and is
//!   refused anyway above `max_frame_size`).
//! - Every accepted request gets exactly one outcome: an
//!   [`Event::Response`], an [`Event::RequestFailed`], or a `true` from
//!   [`Connection::cancel`]. Requests built with
//!   [`Request::without_response`] (Produce `acks=0`) get none once written.
//!
//! See `docs/architecture.md` in the repository for states and transitions.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod auth;
mod codes;
mod config;
mod connection;
mod error;
mod event;
mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_support;
mod header;
mod request;
pub mod sasl;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod stats;
mod throttle;
mod transmit;
#[cfg(feature = "kafka-protocol")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka-protocol")))]
pub mod typed;
mod versions;
pub mod wire;

pub use api::{ApiKey, HeaderVersions};
pub use codes::error_code_name;
pub use config::{Config, DEFAULT_MAX_FRAME_SIZE};
pub use connection::{Connection, CorrelationId, State};
pub use error::{
    AuthFailure, BrokenCause, CloseReason, ConfigError, CredentialError, Incompatibility, Phase,
    ProtocolViolation, RequestError, SendError, TimeoutKind,
};
pub use event::{Event, Response, SaslSession};
pub use request::Request;
pub use stats::Stats;
pub use versions::{ApiVersions, Feature, VersionRange, API_VERSIONS_MAX};

/// Encoders of broker-side messages, for simulated brokers and tests.
pub mod server {
    pub use crate::auth::server::{
        authenticate_request, authenticate_response, handshake_response,
    };
    pub use crate::versions::encode_response as api_versions_response;
}
