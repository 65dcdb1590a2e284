//! The connection state machine.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

use crate::api::ApiKey;
use crate::auth::{self, Exchange, Stage, Transport};
use crate::codes;
use crate::config::Config;
use crate::error::{
    AuthFailure, BrokenCause, CloseReason, ConfigError, CredentialError, Incompatibility, Phase,
    ProtocolViolation, RequestError, SendError, TimeoutKind,
};
use crate::event::{Event, Response, SaslSession};
use crate::frame::FrameReader;
use crate::header;
use crate::request::Request;
use crate::sasl::{Credential, HandshakeMode, SaslError, Step};
use crate::stats::Stats;
use crate::transmit::TransmitQueue;
use crate::versions::{self, ApiVersions};

/// A request's correlation id, unique among the requests in flight on one
/// connection (ids wrap around at `i32::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(pub i32);

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `t + d`, saturating instead of panicking: a duration past what the
/// platform's clock can represent (`Duration::MAX` as "no timeout", from a
/// caller's request timeout, throttle or config) is a deadline that never
/// comes, not an overflow panic. The last fallback (`t` itself) is
/// unreachable on real platforms, whose `Instant` spans centuries.
fn later(t: Instant, d: Duration) -> Instant {
    /// Far beyond any connection's life.
    const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d)
        .or_else(|| t.checked_add(NEVER))
        .unwrap_or(t)
}

/// The close reason for a response that cannot be decoded.
fn malformed(api_key: ApiKey, error: crate::wire::DecodeError) -> CloseReason {
    CloseReason::Protocol(ProtocolViolation::MalformedResponse { api_key, error })
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

/// The KIP-368 schedule of an authenticated session.
#[derive(Debug, Clone, Copy)]
struct Session {
    reauth_at: Option<Instant>,
    expires_at: Option<Instant>,
}

/// One Kafka broker connection as a sans-IO state machine.
///
/// See the [crate documentation](crate) for the drive loop.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    state: State,
    reader: FrameReader,
    transmit: TransmitQueue,
    in_flight: VecDeque<Slot>,
    /// Whether the in-flight slots' deadlines never decrease from front to
    /// back (always so while every request uses the same timeout), which
    /// lets [`Connection::poll_timeout`] stop at the first slot not given
    /// up on instead of scanning them all. Only ever cleared by a push
    /// (pops keep the order); set again when a push finds the queue empty.
    in_flight_ordered: bool,
    held: VecDeque<Held>,
    events: VecDeque<Event>,
    next_id: i32,
    versions: Option<Arc<ApiVersions>>,
    /// Whether the ApiVersions fallback to v0 after an undecodable reply was used.
    v0_fallback_used: bool,
    handshake_deadline: Option<Instant>,
    last_activity: Instant,
    close_reason: Option<CloseReason>,
    auth: Option<Exchange>,
    session: Option<Session>,
    sasl_session: Option<SaslSession>,
    throttle_until: Option<Instant>,
    throttle_started: Option<Instant>,
    stats: Stats,
    jitter_state: u64,
}

impl Connection {
    /// A new connection whose transport has just been established (after
    /// TCP connect and any TLS handshake). Queues ApiVersions (or, with a
    /// version hint, goes straight to SASL or ready).
    pub fn new(config: Config, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut seed = [0u8; 8];
        // Jitter only spreads re-authentication; a failed random source
        // falls back to the clock-free constant, which is still correct.
        let _ = getrandom::getrandom(&mut seed);
        let mut conn = Self {
            reader: FrameReader::new(config.max_frame_size),
            state: State::Negotiating {
                version: config.api_versions_max,
            },
            transmit: TransmitQueue::default(),
            in_flight: VecDeque::new(),
            in_flight_ordered: true,
            held: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            versions: None,
            v0_fallback_used: false,
            handshake_deadline: Some(later(now, config.handshake_timeout)),
            last_activity: now,
            close_reason: None,
            auth: None,
            session: None,
            sasl_session: None,
            throttle_until: None,
            throttle_started: None,
            stats: Stats::default(),
            jitter_state: u64::from_le_bytes(seed) | 1,
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
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests accepted but not yet written.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Counters.
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

    /// Takes `n` bytes read into the last [`Connection::recv_buf`]. `n == 0`
    /// is not end of stream: call [`Connection::handle_eof`] for that.
    pub fn recv_commit(&mut self, n: usize, now: Instant) {
        if self.is_closed() {
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
                CloseReason::Protocol(v)
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

    /// Processes every deadline that has passed by `now`. Calling it early
    /// or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if let Some(d) = self.handshake_deadline {
            if now >= d {
                let phase = self.phase();
                return self.close_with(CloseReason::Timeout(TimeoutKind::Handshake {
                    after: self.config.handshake_timeout,
                    phase,
                }));
            }
        }
        // Held requests past their deadline never reached the wire.
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].deadline <= now {
                let h = self.held.remove(i).expect("index checked");
                self.fail_timed_out(
                    h.id,
                    h.request.timeout.unwrap_or(self.config.request_timeout),
                );
            } else {
                i += 1;
            }
        }
        for idx in 0..self.in_flight.len() {
            let slot = &self.in_flight[idx];
            if slot.deadline > now || slot.abandon_at.is_some() {
                continue;
            }
            if slot.owner.is_internal() {
                let (api_key, after) = (slot.api_key, slot.deadline - slot.sent_at);
                return self.close_with(CloseReason::Timeout(TimeoutKind::InternalRequest {
                    api_key,
                    after,
                }));
            }
            let after = slot.deadline - slot.sent_at;
            let slot = &mut self.in_flight[idx];
            slot.abandon_at = Some(later(slot.deadline, self.config.unanswered_grace));
            if slot.owner == Owner::User {
                slot.owner = Owner::TimedOut;
                let id = slot.id;
                self.fail_timed_out(id, after);
            }
        }
        if let Some(head) = self.in_flight.front() {
            if head.abandon_at.is_some_and(|a| a <= now) {
                let kind = TimeoutKind::Unanswered {
                    api_key: head.api_key,
                    correlation_id: head.id,
                    waited: now - head.sent_at,
                };
                return self.close_with(CloseReason::Timeout(kind));
            }
        }
        self.reap_if_idle(now);
        if self.is_closed() {
            return;
        }
        if let Some(session) = self.session {
            if session.expires_at.is_some_and(|e| e <= now) {
                return self.close_with(CloseReason::SessionExpired(
                    "before re-authentication completed (KIP-368)".into(),
                ));
            }
        }
        self.maybe_start_reauth(now);
        if self.is_closed() {
            return;
        }
        if self.throttle_until.is_some_and(|t| t <= now) {
            self.end_throttle(now);
        }
        self.flush_held(now);
        // flush_held may have refused the last held request (a version the
        // broker turned out not to support): the connection is idle now,
        // possibly since long ago (a long throttle), and poll_timeout must
        // not report a deadline that has already passed. Found by the
        // connection_ops fuzz target.
        self.reap_if_idle(now);
    }

    /// Closes the connection if it has been idle for the idle timeout.
    fn reap_if_idle(&mut self, now: Instant) {
        if let Some(deadline) = self.idle_deadline() {
            if now >= deadline {
                let idle_for = now - self.last_activity;
                self.close_with(CloseReason::Idle { idle_for });
            }
        }
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
    pub fn send_request(
        &mut self,
        request: Request,
        now: Instant,
    ) -> Result<CorrelationId, SendError> {
        if let Some(reason) = &self.close_reason {
            return Err(SendError::Closed(reason.clone()));
        }
        let hv = request.header_versions();
        if hv.request > 2 || hv.response > 1 {
            return Err(SendError::InvalidHeaderVersion {
                request: hv.request,
                response: hv.response,
            });
        }
        let size = header::request_header_len(hv.request, self.config.client_id.as_deref())
            + request.body.len();
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
        if !self.credential_pending() {
            return Err(CredentialError::NotPending);
        }
        let ex = self.auth.as_mut().expect("checked");
        let step = ex.mechanism.provide_credential(credential);
        match step {
            Ok(step) => {
                self.on_step(step, now);
                Ok(())
            }
            Err(e) => {
                self.auth_failed_locally(&e);
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
        if !self.credential_pending() {
            return Err(CredentialError::NotPending);
        }
        let ex = self.auth.as_ref().expect("checked");
        let failure = AuthFailure {
            mechanism: ex.mechanism.name().to_owned(),
            error_code: None,
            message: format!("the application could not provide a credential: {message}"),
            detail: None,
            reauthentication: ex.reauth,
        };
        self.close_with(CloseReason::AuthFailed(failure));
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

    // ----- outputs -------------------------------------------------------

    /// The bytes waiting to be written, as up to `dst.len()` slices in
    /// order (request headers and bodies, not copied). Returns how many
    /// slices were filled; write them (vectored, partially if need be) and
    /// report the count with [`Connection::transmit_complete`].
    pub fn poll_transmit<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.transmit.slices(dst)
    }

    /// The next whole chunk to write, removed from the queue: simpler than
    /// [`Connection::poll_transmit`] for loops that write each chunk fully.
    pub fn poll_transmit_chunk(&mut self, now: Instant) -> Option<Bytes> {
        let c = self.transmit.pop_chunk()?;
        self.on_bytes_sent(c.len(), now);
        Some(c)
    }

    /// Bytes waiting to be written.
    pub fn transmit_len(&self) -> usize {
        self.transmit.len()
    }

    /// `n` bytes from the start of [`Connection::poll_transmit`]'s slices were written.
    pub fn transmit_complete(&mut self, n: usize, now: Instant) {
        let n = n.min(self.transmit.len());
        self.transmit.advance(n);
        self.on_bytes_sent(n, now);
    }

    /// When [`Connection::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let mut t = self.handshake_deadline;
        let mut earliest = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        earliest(self.held.iter().map(|h| h.deadline).min());
        earliest(self.in_flight_deadline());
        earliest(self.idle_deadline());
        if let Some(s) = self.session {
            earliest(s.expires_at);
            // A due re-authentication waiting for a free in-flight slot
            // waits for a response, not for a time.
            if self.auth.is_none() && self.slot_free() {
                earliest(s.reauth_at);
            }
        }
        earliest(self.throttle_until);
        t
    }

    /// The earliest deadline among the requests on the wire.
    fn in_flight_deadline(&self) -> Option<Instant> {
        // Only the oldest slot is given up on (handle_timeout): Kafka answers
        // in order, so a later cancelled or timed-out slot cannot be
        // answered first, and its grace counts only once it is the oldest.
        // Reporting it earlier would be a deadline that handle_timeout never
        // clears: a driver spinning on it.
        let head_abandon = self.in_flight.front().and_then(|s| s.abandon_at);
        let waiting = || {
            (self.in_flight.iter())
                .filter(|s| s.abandon_at.is_none())
                .map(|s| s.deadline)
        };
        let earliest_waiting = if self.in_flight_ordered {
            // Deadlines never decrease towards the back: the first slot not
            // given up on has the earliest (one step, not one per slot, in
            // the common case of 64 pipelined requests).
            waiting().next()
        } else {
            waiting().min()
        };
        debug_assert_eq!(
            earliest_waiting,
            waiting().min(),
            "in_flight_ordered is stale"
        );
        head_abandon.into_iter().chain(earliest_waiting).min()
    }

    /// Puts a request on the in-flight queue (FIFO: Kafka answers in order).
    fn push_slot(&mut self, slot: Slot) {
        match self.in_flight.back() {
            None => self.in_flight_ordered = true,
            Some(last) => self.in_flight_ordered &= last.deadline <= slot.deadline,
        }
        self.in_flight.push_back(slot);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- internals -----------------------------------------------------

    fn phase(&self) -> Phase {
        match (&self.state, &self.auth) {
            (State::Negotiating { .. }, _) => Phase::Negotiating,
            (State::Ready, Some(_)) => Phase::Reauthenticating,
            (State::Ready | State::Closed, None) => Phase::Ready,
            (State::Authenticating | State::Closed, Some(a)) if a.stage == Stage::Handshake => {
                Phase::SaslHandshake
            }
            (_, _) => Phase::Authenticating,
        }
    }

    /// Whether a mechanism is waiting for the application's credential.
    fn credential_pending(&self) -> bool {
        !self.is_closed()
            && self
                .auth
                .as_ref()
                .is_some_and(|a| matches!(a.stage, Stage::FirstCredential | Stage::Credential))
    }

    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        // Ids wrap: Kafka only needs them unique among requests in flight.
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout?;
        (self.state == State::Ready
            && self.in_flight.is_empty()
            && self.held.is_empty()
            && self.auth.is_none())
        .then(|| later(self.last_activity, idle))
    }

    fn can_send_user(&self, now: Instant) -> bool {
        self.state == State::Ready
            && !self
                .auth
                .as_ref()
                .is_some_and(|a| a.stage != Stage::FirstCredential)
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

    /// Whether KIP-368 re-authentication is due and not yet started.
    fn reauth_due(&self, now: Instant) -> bool {
        self.auth.is_none()
            && self
                .session
                .is_some_and(|s| s.reauth_at.is_some_and(|r| r <= now))
    }

    /// Starts a due re-authentication once its SaslHandshake fits under
    /// `max_in_flight` (the exchange's requests count like any other);
    /// until then new requests are held, so the in-flight ones drain.
    fn maybe_start_reauth(&mut self, now: Instant) {
        if self.is_closed() || !self.reauth_due(now) || !self.slot_free() {
            return;
        }
        if let Some(s) = self.session.as_mut() {
            s.reauth_at = None;
        }
        self.start_auth(true, now);
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
        let client_id = self.config.client_id.as_deref();
        let ok = self.transmit.push_header(|buf| {
            header::encode_request_header(
                buf,
                hv.request,
                request.api_key.0,
                request.api_version,
                id,
                client_id,
                request.body.len(),
            )
        });
        debug_assert!(ok.is_ok(), "size checked in send_request");
        self.transmit.push(request.body.clone());
        self.stats.requests_sent += 1;
        self.last_activity = now;
        if request.expect_response {
            self.push_slot(Slot {
                id,
                api_key: request.api_key,
                api_version: request.api_version,
                response_header: hv.response,
                sent_at: now,
                deadline,
                abandon_at: None,
                owner,
            });
        }
    }

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

    fn send_api_versions(&mut self, version: i16, now: Instant) {
        self.state = State::Negotiating { version };
        let body = versions::encode_request(
            version,
            &self.config.software_name,
            &self.config.software_version,
        );
        self.send_internal(Owner::ApiVersions, ApiKey::API_VERSIONS, version, body, now);
    }

    fn on_bytes_sent(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.stats.bytes_sent += n as u64;
            self.last_activity = now;
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
                    self.close_with(CloseReason::Protocol(v));
                    break;
                }
            }
            if self.is_closed() {
                break;
            }
        }
        // A response may have freed the slot a due re-authentication waits for.
        self.maybe_start_reauth(now);
        self.flush_held(now);
    }

    fn on_frame(&mut self, mut frame: Bytes, now: Instant) {
        let Some(head) = self.in_flight.front() else {
            let id = header::decode_response_header(&frame, 0).map_or(-1, |(id, _)| id);
            return self.close_with(CloseReason::Protocol(ProtocolViolation::Unsolicited(id)));
        };
        if head.owner == Owner::LegacyToken {
            // Legacy SASL (SaslHandshake v0): the server's token has no header.
            self.in_flight.pop_front();
            return self.on_server_token(&frame, now);
        }
        let (id, header_len) = match header::decode_response_header(&frame, head.response_header) {
            Ok(x) => x,
            Err(_) if frame.len() < 4 => {
                return self.close_with(CloseReason::Protocol(ProtocolViolation::FrameTooSmall {
                    size: frame.len(),
                    header: 4,
                }))
            }
            Err(error) => {
                let api_key = head.api_key;
                return self.close_with(malformed(api_key, error));
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
            })),
            Owner::Cancelled | Owner::TimedOut => self.stats.late_responses += 1,
            Owner::ApiVersions => self.on_api_versions(&body, slot.api_version, now),
            Owner::SaslHandshake => self.on_handshake(&body, now),
            Owner::SaslAuthenticate => {
                self.on_authenticate(&body, slot.api_version, slot.sent_at, now)
            }
            Owner::LegacyToken => unreachable!("handled above"),
        }
    }

    // ----- version negotiation (KIP-511) ---------------------------------

    fn on_api_versions(&mut self, body: &[u8], version: i16, now: Instant) {
        let malformed = |error| malformed(ApiKey::API_VERSIONS, error);
        let error_code = match versions::peek_error_code(body) {
            Ok(c) => c,
            Err(e) => return self.close_with(malformed(e)),
        };
        if error_code == codes::UNSUPPORTED_VERSION {
            // KIP-511: the broker answers an unsupported ApiVersions version
            // with a v0 body listing (at least) its own ApiVersions range.
            let retry = match versions::decode_response(body, 0) {
                Ok(r) => r
                    .versions
                    .get(ApiKey::API_VERSIONS)
                    .map_or(0, |(_, max)| max.min(version - 1)),
                // An undecodable v0 body (the librdkafka mock cluster sends a
                // non-standard one): fall back to v0, which every broker speaks.
                Err(_) => 0,
            };
            // Only a strictly lower version: a broker cannot hold us in a loop.
            if retry < version && retry >= 0 && version > 0 {
                return self.send_api_versions(retry, now);
            }
            return self.close_with(CloseReason::Incompatible(Incompatibility::Negotiation(
                format!(
                "the broker rejected ApiVersions v{version} as unsupported and offers nothing lower"
            ),
            )));
        }
        let decoded = match versions::decode_response(body, version) {
            Ok(r) => r,
            Err(e) if version >= 3 && !self.v0_fallback_used => {
                // KIP-511: a reply that cannot be read at v3+ gets one retry at v0.
                let _ = e;
                self.v0_fallback_used = true;
                return self.send_api_versions(0, now);
            }
            Err(e) => return self.close_with(malformed(e)),
        };
        if decoded.error_code != 0 {
            return self.close_with(CloseReason::Incompatible(Incompatibility::Negotiation(
                format!(
                    "ApiVersions v{version} failed with error {} {}",
                    decoded.error_code,
                    codes::error_code_name(decoded.error_code)
                ),
            )));
        }
        let mut table = match versions::validated(decoded.versions) {
            Ok(t) => t,
            Err(why) => {
                return self.close_with(CloseReason::Incompatible(Incompatibility::Negotiation(
                    format!("invalid ApiVersions v{version} response: {why}"),
                )))
            }
        };
        table.fell_back = version < self.config.api_versions_max;
        // KIP-219: only ApiVersions v2+ asks the client to back off.
        self.handle_throttle_time(ApiKey::API_VERSIONS, version, decoded.throttle_time_ms, now);
        self.on_versions(table, now);
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

    // ----- SASL ----------------------------------------------------------

    fn start_auth(&mut self, reauth: bool, now: Instant) {
        let sasl = self.config.sasl.clone().expect("SASL configured");
        let versions = self.versions.clone().expect("negotiated");
        let authenticate = versions.negotiate(ApiKey::SASL_AUTHENTICATE, 0..=2);
        let handshake_v1 = versions.supports(ApiKey::SASL_HANDSHAKE, 1);
        let transport = match (sasl.handshake(), authenticate) {
            (HandshakeMode::LegacyV0, _) if !reauth => Transport::Legacy,
            (_, Some(v)) if handshake_v1 => Transport::Authenticate { version: v },
            (HandshakeMode::Auto, _) if !reauth => Transport::Legacy,
            (_, _) => {
                return self.close_with(CloseReason::Incompatible(Incompatibility::MissingApi {
                    api_key: ApiKey::SASL_AUTHENTICATE,
                    why: "SASL handshake v1 needs (KIP-152)",
                }))
            }
        };
        if !versions.supports(
            ApiKey::SASL_HANDSHAKE,
            if transport == Transport::Legacy { 0 } else { 1 },
        ) {
            return self.close_with(CloseReason::Incompatible(Incompatibility::MissingApi {
                api_key: ApiKey::SASL_HANDSHAKE,
                why: "SASL needs",
            }));
        }
        let mechanism = match sasl.factory.start() {
            Ok(m) => m,
            Err(e) => return self.auth_failed_with(sasl.mechanism().to_owned(), &e, reauth),
        };
        self.auth = Some(Exchange {
            mechanism,
            transport,
            stage: Stage::FirstCredential,
            reauth,
            first_message: None,
            session_lifetime_ms: 0,
            last_sent: None,
        });
        let first = self.auth.as_mut().expect("set").mechanism.step(None);
        match first {
            Ok(step) => self.on_step(step, now),
            Err(e) => self.auth_failed_locally(&e),
        }
    }

    /// Acts on what the mechanism wants next.
    fn on_step(&mut self, step: Step, now: Instant) {
        let ex = self.auth.as_mut().expect("exchange in progress");
        match step {
            Step::NeedCredential(req) => {
                if ex.stage != Stage::FirstCredential {
                    ex.stage = Stage::Credential;
                }
                self.events.push_back(Event::CredentialRequired(req));
            }
            Step::Send(msg) if ex.stage == Stage::FirstCredential => {
                // The first message is ready: now the handshake goes on the
                // wire (and, when re-authenticating, new requests are held).
                ex.first_message = Some(msg);
                ex.stage = Stage::Handshake;
                let version = match ex.transport {
                    Transport::Authenticate { .. } => 1,
                    Transport::Legacy => 0,
                };
                let body = auth::encode_handshake(ex.mechanism.name());
                self.send_internal(
                    Owner::SaslHandshake,
                    ApiKey::SASL_HANDSHAKE,
                    version,
                    body,
                    now,
                );
            }
            Step::Send(msg) => self.send_token(msg, now),
            Step::Done if ex.stage == Stage::FirstCredential => {
                self.auth_failed_locally(&SaslError::UnexpectedMessage("done before any message"));
            }
            Step::Done => self.auth_complete(now),
        }
    }

    fn send_token(&mut self, msg: Vec<u8>, now: Instant) {
        let ex = self.auth.as_mut().expect("exchange in progress");
        ex.stage = Stage::Exchange;
        ex.last_sent = Some(now);
        match ex.transport {
            Transport::Authenticate { version } => {
                let body = auth::encode_authenticate(version, &msg);
                self.send_internal(
                    Owner::SaslAuthenticate,
                    ApiKey::SASL_AUTHENTICATE,
                    version,
                    body,
                    now,
                );
            }
            Transport::Legacy => {
                // Raw token: a size prefix and the bytes, no Kafka header.
                let len = i32::try_from(msg.len()).unwrap_or(i32::MAX);
                self.transmit
                    .push_header(|buf| buf.extend_from_slice(&len.to_be_bytes()));
                self.transmit.push(Bytes::from(msg));
                let id = self.take_id();
                self.push_slot(Slot {
                    id,
                    api_key: ApiKey::SASL_AUTHENTICATE,
                    api_version: -1,
                    response_header: 0,
                    sent_at: now,
                    deadline: later(now, self.config.request_timeout),
                    abandon_at: None,
                    owner: Owner::LegacyToken,
                });
            }
        }
    }

    fn on_handshake(&mut self, body: &[u8], now: Instant) {
        let resp = match auth::decode_handshake(body) {
            Ok(r) => r,
            Err(error) => return self.close_with(malformed(ApiKey::SASL_HANDSHAKE, error)),
        };
        let ex = self.auth.as_mut().expect("exchange in progress");
        if resp.error_code != 0 {
            let mechanism = ex.mechanism.name().to_owned();
            if ex.reauth {
                // A broker that cannot re-authenticate (tansu answers 33 to
                // a second handshake): a new connection logs in afresh.
                let message = format!(
                    "the broker refused the re-authentication handshake (KIP-368); it lists: {}",
                    if resp.mechanisms.is_empty() {
                        "nothing".to_owned()
                    } else {
                        resp.mechanisms.join(", ")
                    }
                );
                return self.close_with(CloseReason::AuthFailed(AuthFailure {
                    mechanism,
                    error_code: Some(resp.error_code),
                    message,
                    detail: None,
                    reauthentication: true,
                }));
            }
            let reason = if resp.error_code == codes::UNSUPPORTED_SASL_MECHANISM {
                Incompatibility::MechanismNotEnabled {
                    mechanism,
                    offered: resp.mechanisms,
                }
            } else {
                Incompatibility::SaslHandshake {
                    code: resp.error_code,
                }
            };
            return self.close_with(CloseReason::Incompatible(reason));
        }
        let first = ex.first_message.take().unwrap_or_default();
        self.send_token(first, now);
    }

    fn on_authenticate(&mut self, body: &[u8], version: i16, sent_at: Instant, now: Instant) {
        let resp = match auth::decode_authenticate(body, version) {
            Ok(r) => r,
            Err(error) => return self.close_with(malformed(ApiKey::SASL_AUTHENTICATE, error)),
        };
        let ex = self.auth.as_mut().expect("exchange in progress");
        if resp.error_code != 0 {
            let detail = ex.mechanism.failure_detail().or_else(|| {
                // SCRAM puts `e=...` in the auth bytes of the failed step.
                std::str::from_utf8(resp.auth_bytes)
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("server said: {s}"))
            });
            let failure = AuthFailure {
                mechanism: ex.mechanism.name().to_owned(),
                error_code: Some(resp.error_code),
                message: resp
                    .error_message
                    .filter(|m| !m.is_empty())
                    .unwrap_or("the broker gave no message")
                    .to_owned(),
                detail,
                reauthentication: ex.reauth,
            };
            return self.close_with(CloseReason::AuthFailed(failure));
        }
        ex.session_lifetime_ms = resp.session_lifetime_ms;
        ex.last_sent = Some(sent_at);
        let step = ex.mechanism.step(Some(resp.auth_bytes));
        match step {
            Ok(step) => self.on_step(step, now),
            Err(e) => self.auth_failed_locally(&e),
        }
    }

    fn on_server_token(&mut self, token: &[u8], now: Instant) {
        let ex = self.auth.as_mut().expect("legacy exchange in progress");
        let step = ex.mechanism.step(Some(token));
        match step {
            Ok(step) => self.on_step(step, now),
            Err(e) => self.auth_failed_locally(&e),
        }
    }

    fn auth_complete(&mut self, now: Instant) {
        let ex = self.auth.take().expect("exchange in progress");
        let authenticated_at = ex.last_sent.unwrap_or(now);
        let lifetime = (ex.session_lifetime_ms > 0).then(|| {
            // KIP-368: clamp absurd values; under a second would make the
            // connection do nothing but re-authenticate.
            Duration::from_millis(ex.session_lifetime_ms as u64)
                .clamp(Duration::from_secs(1), Duration::from_secs(365 * 24 * 3600))
        });
        // Re-authenticate at a jittered 85-95% of the lifetime (KIP-368), and
        // before the credential itself expires.
        let fraction = 0.85 + 0.10 * self.next_jitter();
        let mut reauth_after = lifetime.map(|l| l.mul_f64(fraction));
        if let Some(exp) = ex.mechanism.credential_expiry() {
            let left = exp
                .saturating_duration_since(authenticated_at)
                .mul_f64(fraction);
            reauth_after = Some(reauth_after.map_or(left, |r| r.min(left)));
        }
        self.session = Some(Session {
            reauth_at: reauth_after.map(|d| authenticated_at + d),
            expires_at: lifetime.map(|l| authenticated_at + l),
        });
        let session = SaslSession {
            mechanism: ex.mechanism.name().to_owned(),
            session_lifetime: lifetime,
            reauthenticate_after: reauth_after,
        };
        self.sasl_session = Some(session.clone());
        if ex.reauth {
            self.stats.reauthentications += 1;
            self.events.push_back(Event::Reauthenticated(session));
            self.flush_held(now);
        } else {
            self.become_ready(now);
        }
    }

    /// A uniform value in [0, 1) from a xorshift generator seeded once from
    /// the OS; only used to spread re-authentication times.
    fn next_jitter(&mut self) -> f64 {
        let mut x = self.jitter_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter_state = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn auth_failed_locally(&mut self, e: &SaslError) {
        let (name, reauth) = match &self.auth {
            Some(ex) => (ex.mechanism.name().to_owned(), ex.reauth),
            None => (
                self.config
                    .sasl
                    .as_ref()
                    .map_or("SASL", |s| s.mechanism())
                    .to_owned(),
                false,
            ),
        };
        self.auth_failed_with(name, e, reauth);
    }

    fn auth_failed_with(&mut self, mechanism: String, e: &SaslError, reauthentication: bool) {
        let detail = self
            .auth
            .as_ref()
            .and_then(|a| a.mechanism.failure_detail());
        self.close_with(CloseReason::AuthFailed(AuthFailure {
            mechanism,
            error_code: None,
            message: e.to_string(),
            detail,
            reauthentication,
        }));
    }

    fn end_throttle(&mut self, now: Instant) {
        self.throttle_until = None;
        if let Some(start) = self.throttle_started.take() {
            self.stats.throttled += now.saturating_duration_since(start);
        }
    }

    fn fail_timed_out(&mut self, id: i32, after: Duration) {
        self.stats.timeouts += 1;
        self.events.push_back(Event::RequestFailed {
            correlation_id: CorrelationId(id),
            error: RequestError::TimedOut(after),
        });
    }

    fn close_with(&mut self, reason: CloseReason) {
        debug_assert!(self.close_reason.is_none());
        self.state = State::Closed;
        let fail = |id: i32| Event::RequestFailed {
            correlation_id: CorrelationId(id),
            error: RequestError::ConnectionClosed(reason.clone()),
        };
        for slot in self.in_flight.drain(..) {
            if slot.owner == Owner::User {
                self.events.push_back(fail(slot.id));
            }
        }
        for h in self.held.drain(..) {
            self.events.push_back(fail(h.id));
        }
        self.transmit.clear();
        self.auth = None;
        self.session = None;
        self.handshake_deadline = None;
        self.throttle_until = None;
        self.events.push_back(Event::Closed(reason.clone()));
        self.close_reason = Some(reason);
    }
}
