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
//! [`Connection::handle_timeout`]).
//!
//! ```
//! use std::io::IoSlice;
//! use std::time::Instant;
//! use kafka_conn_core::{Config, Connection, Event, Request, ApiKey};
//!
//! let now = Instant::now();
//! // After the TCP (and TLS) connection is up:
//! let mut conn = Connection::new(Config::new(), now).unwrap();
//! // Requests sent before the connection is ready are held, then sent in order.
//! let id = conn.send_request(Request::new(ApiKey::METADATA, 1, vec![0, 0, 0, 0]), now).unwrap();
//!
//! // Drain: bytes to write ...
//! let mut slices = [IoSlice::new(&[]); 16];
//! let n = conn.poll_transmit(&mut slices);
//! let written: usize = slices[..n].iter().map(|s| s.len()).sum(); // socket.write_vectored(..)
//! conn.transmit_complete(written, now);
//! // ... events ...
//! while let Some(event) = conn.poll_event() {
//!     match event {
//!         Event::Response(r) => println!("{} answered", r.correlation_id),
//!         Event::Closed(reason) => println!("closed: {reason}"),
//!         _ => {}
//!     }
//! }
//! // ... and the next deadline.
//! let _wake_at = conn.poll_timeout();
//!
//! // Inputs: bytes read from the socket straight into the core's buffer
//! // (`let n = socket.read(conn.recv_buf())?; conn.recv_commit(n, now);`),
//! // `handle_eof` when the read returns 0, `handle_timeout` when the timer fires.
//! # let _ = id;
//! ```
//!
//! ## Contract
//!
//! - Inputs: [`Connection::recv_buf`] + [`Connection::recv_commit`] (zero
//!   copy) or [`Connection::handle_input`] (copy); [`Connection::handle_eof`];
//!   [`Connection::handle_io_error`]; [`Connection::handle_timeout`]
//!   (spurious calls are no-ops).
//! - Commands: [`Connection::send_request`], [`Connection::cancel`],
//!   [`Connection::close`], [`Connection::provide_credential`],
//!   [`Connection::handle_throttle`].
//! - Outputs: [`Connection::poll_transmit`] + [`Connection::transmit_complete`]
//!   (partial writes allowed; request bodies are never copied),
//!   [`Connection::poll_timeout`], [`Connection::poll_event`].
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
