//! The connection state machine's skeleton: its state, its method families
//! (getters, `handle_*` inputs, commands, `poll_*` outputs) and the request
//! path (held requests, the in-flight queue, framing and correlation).
//!
//! The parts with a concern of their own live beside it, as state the
//! connection owns: every deadline in [`deadlines`] (derived in one place,
//! consumed by both `poll_timeout` and `handle_timeout`), version
//! negotiation in [`crate::versions::Negotiation`], the SASL exchange and
//! the KIP-368 schedule in [`crate::auth::Exchange`], KIP-219's table in
//! [`crate::throttle`]. None of them imports this module.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::buf::Limit;
use bytes::{Buf, Bytes, BytesMut};

use crate::api::ApiKey;
use crate::auth::{AuthOutput, Exchange, Jitter, Session};
use crate::config::Config;
use crate::error::{
    BrokenCause, CloseReason, ConfigError, CredentialError, Phase, ProtocolViolation, RequestError,
    SendError,
};
use crate::event::{Event, Response, SaslSession};
use crate::frame::FrameReader;
use crate::header::{self, RequestHeaders};
use crate::request::Request;
use crate::sasl::Credential;
use crate::stats::Stats;
use crate::throttle::throttle_to_apply;
use crate::transmit::TransmitQueue;
#[cfg(feature = "kafka-protocol")]
use crate::typed::{self, ThrottleTime, TypedError};
use crate::versions::{self, ApiVersions, Negotiated, Negotiation};

mod deadlines;

use deadlines::later;
pub(crate) use deadlines::Deadline;

/// A request's correlation id, unique among the requests in flight on one
/// connection (ids wrap around at `i32::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(pub i32);

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Negotiating API versions (ApiVersions at this version in flight).
    Negotiating {
        /// The ApiVersions version sent.
        version: i16,
    },
    /// SASL authentication in progress.
    Authenticating,
    /// Ready: requests flow.
    Ready,
    /// Closed; see [`Connection::close_reason`].
    Closed,
}

/// Who is waiting for a slot's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A caller's request.
    User,
    /// Cancelled by the caller: read and drop the response.
    Cancelled,
    /// Timed out (the caller was told): read and drop the response.
    TimedOut,
    /// The connection's own ApiVersions.
    ApiVersions,
    /// The connection's own SaslHandshake.
    SaslHandshake,
    /// The connection's own SaslAuthenticate.
    SaslAuthenticate,
    /// A legacy raw SASL token (its response has no header at all).
    LegacyToken,
}

impl Owner {
    fn is_internal(self) -> bool {
        !matches!(self, Owner::User | Owner::Cancelled | Owner::TimedOut)
    }
}

/// A request on the wire awaiting its response.
#[derive(Debug)]
struct Slot {
    id: i32,
    api_key: ApiKey,
    api_version: i16,
    response_header: u8,
    /// The request's size on the wire (size prefix included), for
    /// [`Response::request_bytes`].
    request_bytes: u32,
    sent_at: Instant,
    /// When the owner gives up (user or internal timeout).
    deadline: Instant,
    /// For cancelled and timed-out slots: when the connection gives up on the broker.
    abandon_at: Option<Instant>,
    owner: Owner,
}

/// A request accepted but not yet written (before ready, during a
/// re-authentication exchange, while throttled or at the in-flight limit).
#[derive(Debug)]
struct Held {
    id: i32,
    request: Request,
    deadline: Instant,
}

/// One Kafka broker connection as a sans-IO state machine.
///
/// It reads no clock and does no I/O: every input carries `now` from the
/// caller, and what the connection wants done comes out of the `poll_*`
/// methods. The [crate documentation](crate) writes the drive loop out.
/// The methods come in four families (as in quinn-proto):
///
/// - **Getters** (no effect): [`state`](Self::state),
///   [`is_closed`](Self::is_closed), [`close_reason`](Self::close_reason),
///   [`api_versions`](Self::api_versions), [`negotiate`](Self::negotiate),
///   [`in_flight`](Self::in_flight), [`held`](Self::held),
///   [`stats`](Self::stats), [`sasl_session`](Self::sasl_session),
///   [`receive_buffer_capacity`](Self::receive_buffer_capacity),
///   [`transmit_len`](Self::transmit_len),
///   [`transmit_slices`](Self::transmit_slices),
///   [`has_events`](Self::has_events).
/// - **Inputs**, what happened to the transport and the clock:
///   [`recv_buf`](Self::recv_buf) or [`recv_spare`](Self::recv_spare),
///   then [`recv_commit`](Self::recv_commit) (zero copy), or
///   [`handle_input`](Self::handle_input),
///   [`handle_eof`](Self::handle_eof),
///   [`handle_io_error`](Self::handle_io_error),
///   [`handle_timeout`](Self::handle_timeout).
/// - **Commands**, what the application wants:
///   [`send_request`](Self::send_request), [`cancel`](Self::cancel),
///   [`close`](Self::close),
///   [`provide_credential`](Self::provide_credential),
///   [`credential_failed`](Self::credential_failed),
///   [`handle_throttle`](Self::handle_throttle) and
///   [`handle_throttle_time`](Self::handle_throttle_time) (a throttle the
///   caller read from a response), and with the `kafka-protocol` feature
///   `send_typed` and `decode_typed`.
/// - **Outputs**, drained after every input and command:
///   [`poll_transmit`](Self::poll_transmit) +
///   [`transmit_complete`](Self::transmit_complete) (or
///   [`poll_transmit_chunk`](Self::poll_transmit_chunk)),
///   [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Connection {
    config: Config,
    /// The request header encoder (the client id encoded once).
    headers: RequestHeaders,
    state: State,
    reader: FrameReader,
    transmit: TransmitQueue,
    in_flight: VecDeque<Slot>,
    /// Whether the in-flight slots' deadlines never decrease from front to
    /// back (always so while every request uses the same timeout), which
    /// lets the request deadline stop at the first slot not given up on
    /// instead of scanning them all. Only ever cleared by a push (pops keep
    /// the order); set again when a push finds the queue empty.
    in_flight_ordered: bool,
    /// The most requests ever in flight at once: the event queue and the
    /// transmit queue are sized for it when it grows (see `push_slot`).
    in_flight_peak: usize,
    held: VecDeque<Held>,
    events: VecDeque<Event>,
    next_id: i32,
    versions: Option<Arc<ApiVersions>>,
    negotiation: Negotiation,
    handshake_deadline: Option<Instant>,
    last_activity: Instant,
    /// When the receive buffer was last given back (see
    /// `Deadline::ReleaseBuffer`).
    buffer_released_at: Option<Instant>,
    close_reason: Option<CloseReason>,
    auth: Option<Exchange>,
    session: Option<Session>,
    sasl_session: Option<SaslSession>,
    throttle_until: Option<Instant>,
    throttle_started: Option<Instant>,
    stats: Stats,
    jitter: Jitter,
}

impl Connection {
    /// A new connection whose transport has just been established (after
    /// TCP connect and any TLS handshake). Queues ApiVersions (or, with a
    /// version hint, goes straight to SASL or ready).
    pub fn new(config: Config, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut conn = Self {
            reader: FrameReader::new(config.max_frame_size),
            state: State::Negotiating {
                version: config.api_versions_max,
            },
            transmit: TransmitQueue::default(),
            in_flight: VecDeque::new(),
            in_flight_ordered: true,
            in_flight_peak: 0,
            held: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            versions: None,
            negotiation: Negotiation::default(),
            handshake_deadline: Some(later(now, config.handshake_timeout)),
            last_activity: now,
            buffer_released_at: None,
            close_reason: None,
            auth: None,
            session: None,
            sasl_session: None,
            throttle_until: None,
            throttle_started: None,
            stats: Stats::default(),
            jitter: Jitter::from_os(),
            headers: RequestHeaders::new(config.client_id.as_deref()),
            config,
        };
        match conn.config.version_hint.clone() {
            Some(hint) => conn.on_versions(hint, now),
            None => conn.send_api_versions(conn.config.api_versions_max, now),
        }
        Ok(conn)
    }

    // ----- getters -------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.close_reason.is_some()
    }

    /// Why the connection closed (sticky).
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_ref()
    }

    /// The broker's API versions, once known.
    pub fn api_versions(&self) -> Option<&Arc<ApiVersions>> {
        self.versions.as_ref()
    }

    /// The highest version of `api_key` that both the broker and `ours`
    /// support; `None` before negotiation or if there is none.
    pub fn negotiate(&self, api_key: ApiKey, ours: std::ops::RangeInclusive<i16>) -> Option<i16> {
        self.versions.as_ref()?.negotiate(api_key, ours)
    }

    /// Requests awaiting a response on the wire (including cancelled and
    /// timed-out ones whose late responses will be dropped).
    #[inline]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests accepted but not yet written.
    #[inline]
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Counters.
    #[inline]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The SASL session, once authenticated.
    pub fn sasl_session(&self) -> Option<&SaslSession> {
        self.sasl_session.as_ref()
    }

    /// Bytes of receive-buffer capacity held (it shrinks back after large frames).
    pub fn receive_buffer_capacity(&self) -> usize {
        self.reader.capacity()
    }

    /// Bytes waiting to be written.
    pub fn transmit_len(&self) -> usize {
        self.transmit.len()
    }

    /// How many slices [`Connection::poll_transmit`] can fill: the pieces
    /// waiting to be written (a header and a body per request). A driver
    /// sizes its `IoSlice` array by it.
    pub fn transmit_slices(&self) -> usize {
        self.transmit.chunks()
    }

    /// Whether [`Connection::poll_event`] has an event to return. A driver
    /// that drains the events after every input skips the drain when there
    /// are none: most inputs (a write, a read of part of a frame, an empty
    /// read) queue none.
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Whether a KIP-368 re-authentication exchange is under way on this
    /// ready connection (new requests are held until it ends). A driver
    /// notes when this turns true to time the re-authentication.
    #[inline]
    pub fn is_reauthenticating(&self) -> bool {
        self.state == State::Ready && self.auth.is_some()
    }

    /// Sets the next correlation id (tests of id wrap-around).
    #[cfg(any(test, feature = "sim"))]
    #[doc(hidden)]
    pub fn set_next_correlation_id_for_testing(&mut self, id: i32) {
        self.next_id = id;
    }

    // ----- inputs --------------------------------------------------------

    /// A buffer to read socket bytes into (zero-copy input). Follow with
    /// [`Connection::recv_commit`] saying how many bytes were read. After
    /// close the buffer is still returned but what is committed is ignored.
    pub fn recv_buf(&mut self) -> &mut [u8] {
        self.reader.recv_buf()
    }

    /// The same read window as [`Connection::recv_buf`], for a driver whose
    /// transport reads into memory that is not initialised yet (a
    /// [`BufMut`](bytes::BufMut) reader, such as tokio-util's `poll_read_buf`):
    /// the window is the receive buffer's spare capacity, limited to the
    /// window's length, and nothing is zero-filled. Safe Rust must
    /// zero-fill memory before it lends it out as `&mut [u8]`: 1.1 to 1.7
    /// bytes written per byte received on a connection with responses of
    /// 8-13 KB (issue 20; `docs/benchmarks.md`).
    ///
    /// Only append to it (`BufMut`'s methods; a read does). Follow with
    /// [`Connection::recv_commit`] saying how many bytes were appended.
    pub fn recv_spare(&mut self) -> Limit<&mut BytesMut> {
        self.reader.recv_spare()
    }

    /// Takes `n` bytes read into the last [`Connection::recv_buf`] or
    /// [`Connection::recv_spare`] window. `n == 0`
    /// is not end of stream (call [`Connection::handle_eof`] for that) but a
    /// read that found nothing (would block): it closes the window, so that
    /// an idle connection's empty buffer can be given back (see
    /// [`Config::with_receive_buffer_release`]).
    pub fn recv_commit(&mut self, n: usize, now: Instant) {
        if self.is_closed() || n == 0 {
            self.reader.commit(0);
            return;
        }
        if self.reader.commit(n) {
            self.on_bytes_received(n, now);
        }
    }

    /// Takes bytes received from the broker (copying input).
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.is_closed() || data.is_empty() {
            return;
        }
        self.reader.extend(data);
        self.on_bytes_received(data.len(), now);
    }

    /// The broker closed its side of the connection.
    pub fn handle_eof(&mut self, _now: Instant) {
        if self.is_closed() {
            return;
        }
        let reason = match self.reader.leftover_violation() {
            Some(v @ (ProtocolViolation::LooksLikeTls | ProtocolViolation::LooksLikeHttp)) => {
                v.into()
            }
            _ => CloseReason::Broken {
                cause: BrokenCause::Eof,
                during: self.phase(),
            },
        };
        self.close_with(reason);
    }

    /// The transport failed with an I/O error.
    pub fn handle_io_error(&mut self, kind: std::io::ErrorKind, message: String, _now: Instant) {
        if self.is_closed() {
            return;
        }
        let during = self.phase();
        self.close_with(CloseReason::Broken {
            cause: BrokenCause::Io { kind, message },
            during,
        });
    }

    /// Processes every deadline that has passed by `now`: the ones
    /// [`Connection::poll_timeout`] reports, from the same derivation
    /// (see the `deadlines` module). Calling it early or twice is harmless;
    /// afterwards `poll_timeout` is later than `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_due(now);
        // What the deadlines released (a throttle that ended, a
        // re-authentication now waiting for its credential) goes out in order.
        self.flush_held(now);
        // Refusing the last held request there (a version the broker turned
        // out not to support) can leave the connection idle since long ago
        // (a long throttle): reap it now rather than report a deadline in
        // the past (connection_ops fuzz finding 5).
        self.expire_due(now);
    }

    // ----- commands ------------------------------------------------------

    /// Queues a request and returns its correlation id.
    ///
    /// Before the connection is ready (and while a re-authentication
    /// exchange, broker throttling or the in-flight limit holds requests
    /// back) the request is held and sent in order later; its timeout runs
    /// from now. Once versions are known, a version the broker does not
    /// support is refused here and nothing is sent; a request held before
    /// that, whose version turns out unsupported, fails with
    /// [`Event::RequestFailed`] carrying [`RequestError::Unsupported`].
    #[must_use = "the correlation id is how the response is recognised"]
    pub fn send_request(
        &mut self,
        request: Request,
        now: Instant,
    ) -> Result<CorrelationId, SendError> {
        if let Some(reason) = &self.close_reason {
            return Err(reason.clone().into());
        }
        let hv = request.header_versions();
        if hv.request > 2 || hv.response > 1 {
            return Err(SendError::InvalidHeaderVersion {
                request: hv.request,
                response: hv.response,
            });
        }
        let size = self.headers.len(hv.request) + request.body.len();
        if size > i32::MAX as usize {
            return Err(SendError::TooLarge { size });
        }
        if self.state == State::Ready {
            self.check_version(&request)?;
        }
        let id = self.take_id();
        let deadline = later(now, request.timeout.unwrap_or(self.config.request_timeout));
        if self.held.is_empty() && self.can_send_user(now) {
            self.write_request(id, &request, Owner::User, deadline, now);
        } else {
            self.held.push_back(Held {
                id,
                request,
                deadline,
            });
        }
        Ok(CorrelationId(id))
    }

    /// Stops waiting for a request. A held request is dropped unsent; a
    /// request on the wire keeps its slot, so its response is read and
    /// dropped and the connection stays in sync. Returns whether the id
    /// was pending. No event follows for it.
    pub fn cancel(&mut self, id: CorrelationId, now: Instant) -> bool {
        if let Some(pos) = self.held.iter().position(|h| h.id == id.0) {
            self.held.remove(pos);
            return true;
        }
        let grace = self.config.unanswered_grace;
        if let Some(slot) = self
            .in_flight
            .iter_mut()
            .find(|s| s.id == id.0 && s.owner == Owner::User)
        {
            slot.owner = Owner::Cancelled;
            slot.abandon_at = Some(later(slot.deadline.max(now), grace));
            return true;
        }
        false
    }

    /// Closes the connection: pending requests fail with
    /// [`CloseReason::Shutdown`], unsent bytes are dropped and
    /// [`Event::Closed`] is the last event. The driver then closes the socket.
    pub fn close(&mut self, _now: Instant) {
        if !self.is_closed() {
            self.close_with(CloseReason::Shutdown);
        }
    }

    /// Answers [`Event::CredentialRequired`].
    pub fn provide_credential(
        &mut self,
        credential: Credential,
        now: Instant,
    ) -> Result<(), CredentialError> {
        let ex = self.pending_credential()?;
        match ex.provide_credential(credential, now) {
            Ok(out) => {
                self.on_auth(out, now);
                Ok(())
            }
            Err(e) => {
                let reason = ex.failure(&e);
                self.close_with(reason);
                Err(CredentialError::Rejected(e))
            }
        }
    }

    /// The application could not answer [`Event::CredentialRequired`]
    /// (its token provider failed): the authentication fails with
    /// `message`, and the connection closes with
    /// [`CloseReason::AuthFailed`]. Returns [`CredentialError::NotPending`]
    /// if no credential was asked for.
    pub fn credential_failed(
        &mut self,
        message: &str,
        _now: Instant,
    ) -> Result<(), CredentialError> {
        let reason = self.pending_credential()?.application_failure(message);
        self.close_with(reason);
        Ok(())
    }

    /// The broker asked this connection to back off (KIP-219
    /// `throttle_time_ms`): requests are held, not refused, until
    /// `now + throttle`. Responses keep flowing. The typed layer or the
    /// caller reads the field; the core applies it.
    pub fn handle_throttle(&mut self, throttle: Duration, now: Instant) {
        if self.is_closed() || throttle.is_zero() {
            return;
        }
        let until = later(now, throttle);
        if self.throttle_until.is_none_or(|t| t < until) {
            self.throttle_until = Some(until);
        }
        self.throttle_started.get_or_insert(now);
    }

    /// Applies a response's `throttle_time_ms` the way KIP-219 says: when
    /// `api_key` at `version` expects the client to back off and the time
    /// is positive, later requests are held (queued, not refused) for that
    /// long, as with [`Connection::handle_throttle`]; otherwise nothing
    /// happens. Returns the throttle applied, if any.
    ///
    /// For callers that decode responses themselves; the `typed` module
    /// (feature `kafka-protocol`) calls it for every response it decodes.
    /// The time spent holding shows in [`crate::Stats::throttled`].
    pub fn handle_throttle_time(
        &mut self,
        api_key: ApiKey,
        version: i16,
        throttle_time_ms: i32,
        now: Instant,
    ) -> Option<Duration> {
        if throttle_time_ms > 0 && !self.is_closed() {
            // For observers (metrics, hooks): the broker's own figure,
            // whether or not KIP-219 asks us to wait it out.
            let applied = throttle_to_apply(api_key, version, throttle_time_ms).is_some();
            self.events.push_back(Event::Throttled {
                api_key,
                api_version: version,
                throttle_time: Duration::from_millis(throttle_time_ms.unsigned_abs().into()),
                applied,
            });
        }
        let throttle = throttle_to_apply(api_key, version, throttle_time_ms)?;
        self.handle_throttle(throttle, now);
        Some(throttle)
    }

    /// Encodes `request` at the highest version both the broker and
    /// `kafka-protocol` support (or at `pinned`, see [`typed::pick_version`])
    /// and sends it with [`Connection::send_request`]. Needs the negotiated
    /// versions: call it once the connection is ready.
    #[cfg(feature = "kafka-protocol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "kafka-protocol")))]
    #[must_use = "the correlation id is how the response is recognised"]
    pub fn send_typed<R: kafka_protocol::protocol::Request>(
        &mut self,
        request: &R,
        pinned: Option<i16>,
        now: Instant,
    ) -> Result<CorrelationId, TypedError> {
        if let Some(reason) = self.close_reason() {
            return Err(SendError::from(reason.clone()).into());
        }
        let versions = self.api_versions().ok_or(TypedError::NotNegotiated)?;
        let version = typed::pick_version::<R>(versions, pinned)?;
        let request = typed::encode(request, version)?;
        Ok(self.send_request(request, now)?)
    }

    /// Decodes the response to a typed request and applies its
    /// `throttle_time_ms` (KIP-219) where the version asks the client to
    /// back off: later requests on this connection are held until it ends.
    #[cfg(feature = "kafka-protocol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "kafka-protocol")))]
    pub fn decode_typed<R>(
        &mut self,
        response: &Response,
        now: Instant,
    ) -> Result<R::Response, TypedError>
    where
        R: kafka_protocol::protocol::Request,
        R::Response: ThrottleTime,
    {
        let decoded = typed::decode::<R>(response)?;
        self.handle_throttle_time(
            response.api_key,
            response.api_version,
            decoded.throttle_time_ms(),
            now,
        );
        Ok(decoded)
    }

    // ----- outputs -------------------------------------------------------

    /// The bytes waiting to be written, as up to `dst.len()` slices in
    /// order (request headers and bodies, not copied). Returns how many
    /// slices were filled; write them (vectored, partially if need be) and
    /// report the count with [`Connection::transmit_complete`].
    #[must_use = "the filled slices must be written and reported with transmit_complete"]
    pub fn poll_transmit<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.transmit.slices(dst)
    }

    /// `n` bytes from the start of [`Connection::poll_transmit`]'s slices were written.
    pub fn transmit_complete(&mut self, n: usize, now: Instant) {
        let n = n.min(self.transmit.len());
        self.transmit.advance(n);
        self.on_bytes_sent(n, now);
    }

    /// The next whole chunk to write, removed from the queue: simpler than
    /// [`Connection::poll_transmit`] for loops that write each chunk fully.
    #[must_use = "the chunk is removed from the queue: write it"]
    pub fn poll_transmit_chunk(&mut self, now: Instant) -> Option<Bytes> {
        let c = self.transmit.pop_chunk()?;
        self.on_bytes_sent(c.len(), now);
        Some(c)
    }

    /// The next event, if any.
    #[must_use = "events must be acted on (responses, failures, credentials, close)"]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must be called next, if ever:
    /// the earliest deadline of the `deadlines` module's table.
    #[must_use = "arm a timer that calls handle_timeout at this instant"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.earliest_deadline()
    }

    // ----- the request path ----------------------------------------------

    fn phase(&self) -> Phase {
        match (&self.state, &self.auth) {
            (State::Negotiating { .. }, _) => Phase::Negotiating,
            (State::Ready, Some(_)) => Phase::Reauthenticating,
            (State::Ready | State::Closed, None) => Phase::Ready,
            (State::Authenticating | State::Closed, Some(a)) if a.in_handshake() => {
                Phase::SaslHandshake
            }
            (_, _) => Phase::Authenticating,
        }
    }

    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        // Ids wrap: Kafka only needs them unique among requests in flight.
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn can_send_user(&self, now: Instant) -> bool {
        self.state == State::Ready
            && !self.auth.as_ref().is_some_and(Exchange::holds_requests)
            && self.throttle_until.is_none()
            && !self.reauth_due(now)
            && self.config.max_in_flight.is_none_or(|max| {
                // A re-authentication waiting for its first credential keeps
                // a slot for its SaslHandshake.
                let reserved = usize::from(self.auth.is_some());
                self.in_flight.len() + reserved < max
            })
    }

    /// Whether another request may go on the wire under `max_in_flight`.
    fn slot_free(&self) -> bool {
        self.config
            .max_in_flight
            .is_none_or(|max| self.in_flight.len() < max)
    }

    /// Whether KIP-368 re-authentication is due and not yet started (new
    /// requests are held meanwhile, so that the in-flight ones drain).
    fn reauth_due(&self, now: Instant) -> bool {
        self.auth.is_none()
            && self
                .session
                .is_some_and(|s| s.reauth_at.is_some_and(|r| r <= now))
    }

    fn check_version(&self, request: &Request) -> Result<(), SendError> {
        let Some(v) = &self.versions else {
            return Ok(());
        };
        if v.supports(request.api_key, request.api_version) {
            return Ok(());
        }
        Err(SendError::UnsupportedVersion {
            api_key: request.api_key,
            version: request.api_version,
            broker_range: v.get(request.api_key),
        })
    }

    fn flush_held(&mut self, now: Instant) {
        while !self.held.is_empty() && self.can_send_user(now) {
            let h = self.held.pop_front().expect("not empty");
            if let Err(e) = self.check_version(&h.request) {
                self.events.push_back(Event::RequestFailed {
                    correlation_id: CorrelationId(h.id),
                    api_key: h.request.api_key,
                    error: RequestError::Unsupported(e),
                });
                continue;
            }
            self.write_request(h.id, &h.request, Owner::User, h.deadline, now);
        }
    }

    fn write_request(
        &mut self,
        id: i32,
        request: &Request,
        owner: Owner,
        deadline: Instant,
        now: Instant,
    ) {
        let hv = request.header_versions();
        let headers = &self.headers;
        let written = self.transmit.push_header(|buf| {
            headers.encode(
                buf,
                hv.request,
                request.api_key.0,
                request.api_version,
                id,
                request.body.len(),
            )
        });
        debug_assert!(written.is_ok(), "size checked in send_request");
        // The size prefix, the header and the body (checked to fit an i32).
        let request_bytes = written
            .ok()
            .and_then(|n| u32::try_from(n + request.body.len()).ok())
            .unwrap_or(u32::MAX);
        self.transmit.push(request.body.clone());
        self.stats.requests_sent += 1;
        self.last_activity = now;
        if request.expect_response {
            self.push_slot(Slot {
                id,
                api_key: request.api_key,
                api_version: request.api_version,
                response_header: hv.response,
                request_bytes,
                sent_at: now,
                deadline,
                abandon_at: None,
                owner,
            });
        }
    }

    /// Puts a request on the in-flight queue (FIFO: Kafka answers in order).
    fn push_slot(&mut self, slot: Slot) {
        match self.in_flight.back() {
            None => self.in_flight_ordered = true,
            Some(last) => self.in_flight_ordered &= last.deadline <= slot.deadline,
        }
        self.in_flight.push_back(slot);
        if self.in_flight.len() > self.in_flight_peak {
            // A burst can bring a response (an event) for every request in
            // flight, and queue a header for each: size both queues for the
            // new peak now, while in-flight grows (warm-up), rather than when
            // a burst that large first happens (issue 20: no allocation in
            // steady state, even at a burst's high-water mark).
            self.in_flight_peak = self.in_flight.len();
            self.events.reserve(self.in_flight_peak);
            self.transmit.reserve_for(self.in_flight_peak);
        }
        if self.in_flight.len() == 2 {
            // Pipelining (again, after an idle release): see
            // `FrameReader::prepare_for_pipelining` (nothing if prepared).
            self.reader.prepare_for_pipelining();
        }
    }

    /// Writes one of the connection's own requests (ApiVersions, SASL).
    fn send_internal(
        &mut self,
        owner: Owner,
        api_key: ApiKey,
        version: i16,
        body: Bytes,
        now: Instant,
    ) {
        let id = self.take_id();
        let request = Request::new(api_key, version, body);
        let deadline = later(now, self.config.request_timeout);
        self.write_request(id, &request, owner, deadline, now);
    }

    fn on_bytes_sent(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.stats.bytes_sent += n as u64;
            self.last_activity = now;
        }
        // A legacy exchange's last raw token has no answer: it is over once
        // the token is written. Nothing else is queued behind it (requests
        // are held until authenticated), so an empty queue means written.
        if self.transmit.len() == 0 {
            if let Some(out) = self.auth.as_ref().and_then(Exchange::written) {
                self.on_auth(out, now);
            }
        }
    }

    fn on_bytes_received(&mut self, n: usize, now: Instant) {
        self.stats.bytes_received += n as u64;
        self.last_activity = now;
        loop {
            match self.reader.next_frame() {
                Ok(Some(frame)) => self.on_frame(frame, now),
                Ok(None) => break,
                Err(v) => {
                    self.close_with(v.into());
                    break;
                }
            }
            if self.is_closed() {
                break;
            }
        }
        // A response may have freed the slot a due re-authentication waits for.
        self.expire_if_due(Deadline::Reauthenticate, now);
        self.flush_held(now);
    }

    fn on_frame(&mut self, mut frame: Bytes, now: Instant) {
        let Some(head) = self.in_flight.front() else {
            let id = header::decode_response_header(&frame, 0).map_or(-1, |(id, _)| id);
            return self.close_with(ProtocolViolation::Unsolicited(id).into());
        };
        if head.owner == Owner::LegacyToken {
            // Legacy SASL (SaslHandshake v0): the server's token has no header.
            self.in_flight.pop_front();
            let out = self.exchange().on_server_token(&frame, now);
            return self.on_auth(out, now);
        }
        let (id, header_len) = match header::decode_response_header(&frame, head.response_header) {
            Ok(x) => x,
            Err(_) if frame.len() < 4 => {
                let violation = ProtocolViolation::FrameTooSmall {
                    size: frame.len(),
                    header: 4,
                };
                return self.close_with(violation.into());
            }
            Err(error) => {
                let api_key = head.api_key;
                return self.close_with(CloseReason::malformed(api_key, error));
            }
        };
        if id != head.id {
            let expected = head.id;
            return self.close_with(CloseReason::OutOfSync {
                expected,
                received: id,
            });
        }
        let slot = self.in_flight.pop_front().expect("head exists");
        let rtt = now.saturating_duration_since(slot.sent_at);
        // The frame plus its size prefix (a frame is at most an i32 long).
        let response_bytes = u32::try_from(frame.len() + 4).unwrap_or(u32::MAX);
        self.stats.responses_received += 1;
        self.stats.record_rtt(rtt);
        // The body is the frame past its header: advancing moves the view
        // in place, where `slice` would take and drop a second reference
        // (two atomic operations per response).
        frame.advance(header_len);
        let body = frame;
        match slot.owner {
            Owner::User => self.events.push_back(Event::Response(Response {
                correlation_id: CorrelationId(slot.id),
                api_key: slot.api_key,
                api_version: slot.api_version,
                body,
                rtt,
                request_bytes: slot.request_bytes,
                response_bytes,
            })),
            Owner::Cancelled | Owner::TimedOut => self.stats.late_responses += 1,
            Owner::ApiVersions => self.on_api_versions(&body, slot.api_version, now),
            Owner::SaslHandshake => {
                let out = self.exchange().on_handshake(&body, now);
                self.on_auth(out, now);
            }
            Owner::SaslAuthenticate => {
                let out =
                    self.exchange()
                        .on_authenticate(&body, slot.api_version, slot.sent_at, now);
                self.on_auth(out, now);
            }
            Owner::LegacyToken => unreachable!("handled above"),
        }
    }

    fn fail_timed_out(&mut self, id: i32, api_key: ApiKey, after: Duration) {
        self.stats.timeouts += 1;
        self.events.push_back(Event::RequestFailed {
            correlation_id: CorrelationId(id),
            api_key,
            error: RequestError::TimedOut(after),
        });
    }

    fn close_with(&mut self, reason: CloseReason) {
        debug_assert!(self.close_reason.is_none());
        self.state = State::Closed;
        let fail = |id: i32, api_key: ApiKey| Event::RequestFailed {
            correlation_id: CorrelationId(id),
            api_key,
            error: reason.clone().into(),
        };
        for slot in self.in_flight.drain(..) {
            if slot.owner == Owner::User {
                self.events.push_back(fail(slot.id, slot.api_key));
            }
        }
        for h in self.held.drain(..) {
            self.events.push_back(fail(h.id, h.request.api_key));
        }
        self.transmit.clear();
        self.auth = None;
        self.session = None;
        self.handshake_deadline = None;
        self.throttle_until = None;
        self.events.push_back(Event::Closed(reason.clone()));
        self.close_reason = Some(reason);
    }

    // ----- version negotiation (KIP-511): versions::Negotiation decides ----

    fn send_api_versions(&mut self, version: i16, now: Instant) {
        self.state = State::Negotiating { version };
        let body = versions::encode_request(
            version,
            &self.config.software_name,
            &self.config.software_version,
        );
        self.send_internal(Owner::ApiVersions, ApiKey::API_VERSIONS, version, body, now);
    }

    fn on_api_versions(&mut self, body: &[u8], version: i16, now: Instant) {
        let max = self.config.api_versions_max;
        match self.negotiation.on_response(body, version, max) {
            Negotiated::Retry(lower) => self.send_api_versions(lower, now),
            Negotiated::Failed(reason) => self.close_with(reason),
            Negotiated::Table {
                table,
                throttle_time_ms,
            } => {
                // KIP-219: only ApiVersions v2+ asks the client to back off.
                self.handle_throttle_time(ApiKey::API_VERSIONS, version, throttle_time_ms, now);
                self.on_versions(table, now);
            }
        }
    }

    fn on_versions(&mut self, table: ApiVersions, now: Instant) {
        self.versions = Some(Arc::new(table));
        if self.config.sasl.is_some() {
            self.state = State::Authenticating;
            self.start_auth(false, now);
        } else {
            self.become_ready(now);
        }
    }

    fn become_ready(&mut self, now: Instant) {
        self.state = State::Ready;
        self.handshake_deadline = None;
        self.events.push_back(Event::Ready {
            api_versions: self.versions.clone().expect("negotiated"),
            sasl: self.sasl_session.clone(),
        });
        self.flush_held(now);
    }

    // ----- SASL (auth::Exchange decides; the connection carries it out) ----

    fn start_auth(&mut self, reauth: bool, now: Instant) {
        let sasl = self.config.sasl.as_ref().expect("SASL configured");
        let versions = self.versions.as_deref().expect("negotiated");
        match Exchange::start(sasl, versions, reauth) {
            Ok(exchange) => {
                let out = self.auth.insert(exchange).begin(now);
                self.on_auth(out, now);
            }
            Err(reason) => self.close_with(reason),
        }
    }

    /// The exchange a SASL response belongs to.
    fn exchange(&mut self) -> &mut Exchange {
        self.auth.as_mut().expect("exchange in progress")
    }

    /// The exchange waiting for the application's credential.
    fn pending_credential(&mut self) -> Result<&mut Exchange, CredentialError> {
        if self.is_closed() {
            return Err(CredentialError::NotPending);
        }
        (self.auth.as_mut())
            .filter(|a| a.awaits_credential())
            .ok_or(CredentialError::NotPending)
    }

    /// Carries out what the exchange asks for.
    fn on_auth(&mut self, out: AuthOutput, now: Instant) {
        match out {
            AuthOutput::Handshake { version, body } => {
                let key = ApiKey::SASL_HANDSHAKE;
                self.send_internal(Owner::SaslHandshake, key, version, body, now);
            }
            AuthOutput::Authenticate { version, body } => {
                let key = ApiKey::SASL_AUTHENTICATE;
                self.send_internal(Owner::SaslAuthenticate, key, version, body, now);
            }
            AuthOutput::LastRawToken(token) => self.push_raw_token(token),
            AuthOutput::RawToken(token) => {
                self.push_raw_token(token);
                let id = self.take_id();
                self.push_slot(Slot {
                    id,
                    api_key: ApiKey::SASL_AUTHENTICATE,
                    api_version: -1,
                    response_header: 0,
                    request_bytes: 0,
                    sent_at: now,
                    deadline: later(now, self.config.request_timeout),
                    abandon_at: None,
                    owner: Owner::LegacyToken,
                });
            }
            AuthOutput::Credential(request) => {
                self.events.push_back(Event::CredentialRequired(request));
            }
            AuthOutput::Done => self.auth_complete(now),
            AuthOutput::Failed(reason) => self.close_with(reason),
        }
    }

    /// A raw token: a size prefix and the bytes, no Kafka header (the
    /// exchange bounds its length).
    fn push_raw_token(&mut self, token: Bytes) {
        let len = i32::try_from(token.len()).unwrap_or(i32::MAX);
        self.transmit
            .push_header(|buf| buf.extend_from_slice(&len.to_be_bytes()));
        self.transmit.push(token);
    }

    fn auth_complete(&mut self, now: Instant) {
        let exchange = self.auth.take().expect("exchange in progress");
        let done = exchange.finish(now, self.jitter.reauth_fraction());
        self.session = Some(done.schedule);
        self.sasl_session = Some(done.session.clone());
        if done.reauth {
            self.stats.reauthentications += 1;
            self.events.push_back(Event::Reauthenticated(done.session));
            self.flush_held(now);
        } else {
            self.become_ready(now);
        }
    }
}
