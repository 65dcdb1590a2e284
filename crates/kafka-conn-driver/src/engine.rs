//! The drive loop itself, written once for both ways of running a
//! connection: the [`Engine`] owns the socket and the core [`Connection`]
//! and does all the I/O (vectored writes, reads straight into the core's
//! buffer, the core's deadlines, the credential provider); what the core
//! reports goes to an [`Outcomes`]. The spawned task of [`Client`]
//! (`driver.rs`) hands outcomes to waiting handles; [`DirectClient`]
//! (`direct.rs`) queues them for its own caller.
//!
//! [`Client`]: crate::Client
//! [`DirectClient`]: crate::DirectClient

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_io::AsyncWrite;
use kafka_conn_core::sasl::{Credential, CredentialRequest};
use kafka_conn_core::{
    ApiKey, ApiVersions, CloseReason, Connection, CorrelationId, CredentialError, Event,
    RequestError, Response, SaslSession, State,
};

use crate::credentials::{CallbackError, CredentialContext, Credentials, Unanswered};
use crate::observe::{close_reason_label, Observing};
use crate::runtime::{BoxFuture, BoxTimer, Runtime};
use crate::spare_read::SpareRead;
use wakers::{ClonedWaker, NotingWaker};

mod wakers;

/// How many slices one vectored write gathers.
const MAX_SLICES: usize = 64;
/// The slice array for a write of a few requests (a header and a body
/// each). The array is initialised before every write, and 64 slices are
/// 1 KiB of stack: at one request in flight that was about 150 of the
/// 5,600 instructions a request costs (issue 20, callgrind).
const FEW_SLICES: usize = 8;
/// The read after a short read, on the stack (see `Engine::poll_read`).
const PROBE: usize = 64;
/// Loop turns per poll before yielding to the executor, so that a broker
/// flooding us cannot starve the other tasks on the same thread.
const TURN_BUDGET: usize = 32;

/// How the handshake ended: the versions and SASL session, or why not.
pub(crate) type ReadyResult = Result<(Arc<ApiVersions>, Option<SaslSession>), CloseReason>;

/// The end of the Kafka handshake, for `connect`: the outcome, when it
/// came, and when the broker's versions became known (`None` if they never
/// did, or were given as a hint), which splits ApiVersions from SASL.
pub(crate) struct ReadyReport {
    pub(crate) result: ReadyResult,
    pub(crate) versions_known_at: Option<Instant>,
    pub(crate) at: Instant,
}

/// Where the engine's outcomes go. Every method is called from inside the
/// engine's poll, right after the input that caused it.
pub(crate) trait Outcomes {
    /// Called when a poll ends (and before the handshake's end is
    /// reported): hand the outcomes of the poll to whoever waits for them,
    /// in one go. Counters must be visible no later than any answer is (a
    /// caller holding a response must never read stats that do not count
    /// it yet).
    fn flush(&mut self, conn: &Connection);
    /// The response to request `response.correlation_id`.
    fn response(&mut self, response: Response);
    /// Request `id` failed.
    fn request_failed(&mut self, id: CorrelationId, error: RequestError);
    /// The handshake ended (called once, with `Err` if the connection
    /// closed first).
    fn ready(&mut self, report: ReadyReport);
    /// Re-authentication (KIP-368) succeeded.
    fn reauthenticated(&mut self, session: SaslSession);
    /// The broker sent a TLS alert (an mTLS refusal arrives so with TLS 1.3).
    fn tls_alert(&mut self, alert: String);
    /// The connection closed; the core has already failed every request
    /// it accepted.
    fn closed(&mut self, reason: &CloseReason, conn: &Connection);
    /// The requests queued in front of the connection, for the observer
    /// ([`crate::InFlightEvent::client_queued`]): sent by callers and not yet
    /// given to the core, and callers waiting for room. Only asked when the
    /// observer samples. None by default (a `DirectClient` has no queue).
    fn client_queue(&self) -> (usize, usize) {
        (0, 0)
    }
}

/// The socket and the core, and the state of their I/O.
pub(crate) struct Engine<R: Runtime, S> {
    rt: R,
    pub(crate) conn: Connection,
    /// The transport; `None` once released after the close.
    io: Option<S>,
    /// The connection's one timer, kept for its lifetime and moved
    /// whenever the core's earliest deadline moves (no allocation per
    /// re-arm, see [`Runtime::timer`]), and the deadline it is armed for
    /// (`None`: fired or not needed; it is then not polled).
    timer: Option<BoxTimer>,
    armed: Option<Instant>,
    /// The timer was polled `Pending` with `timer_waker` and neither fired
    /// nor moved since: polling it again would only cost the runtime's
    /// timer bookkeeping (about 220 instructions on tokio), after every
    /// input. As for `read_blocked`, the forwarding waker says when it
    /// fired, whichever task polls the engine then.
    timer_waiting: bool,
    timer_waker: Arc<NotingWaker>,
    timer_waker_handle: Waker,
    credentials: Credentials,
    /// Who the connection is to, for the credential provider.
    peer: CredentialContext,
    credential: Option<BoxFuture<'static, Result<Credential, CallbackError>>>,
    /// Handshake timing (see [`ReadyReport`]): still negotiating versions,
    /// and when that ended.
    negotiating: bool,
    versions_known_at: Option<Instant>,
    ready_reported: bool,
    /// Bytes went into the transport since the last flush (TLS buffers them).
    unflushed: bool,
    /// The transport's `poll_read` returned `Pending` with `read_waker`
    /// registered, and that waker has not fired since: reading again would
    /// only cost a readiness check (tokio) or a failing `recv` syscall and an
    /// `epoll_ctl` (smol, async-std), e.g. on every wake-up for a new request.
    read_blocked: bool,
    /// Reads go into the core's spare capacity, not zero-filled
    /// ([`SpareRead`]): fixed with the transport.
    reads_spare: bool,
    read_waker: Arc<NotingWaker>,
    /// `read_waker` as a `Waker`, and the task waker it (and
    /// `timer_waker`) last forwarded to.
    read_waker_handle: Waker,
    forwarding_to: Option<ClonedWaker>,
    /// The latest clock reading of the current poll (`None` outside a poll
    /// and until the poll first reads the clock): an input that needs a
    /// time but no fresh one (a read that found nothing, the deadline check
    /// at the end of a turn) reuses it rather than read the clock again.
    /// A reading costs about 26 ns on the 2-vCPU KVM guest of
    /// `docs/benchmarks.md` (`Instant::now` in a loop), several times what
    /// its instructions suggest; a request at concurrency 1 took five, now
    /// three: the submit, the write and the read (issue 20).
    polled_at: Option<Instant>,
    pub(crate) closed: Option<CloseReason>,
    /// The application's observer, if any (`None`: one branch per event).
    observing: Option<Observing>,
}

impl<R: Runtime, S: SpareRead<R> + AsyncWrite + Send> Engine<R, S> {
    pub(crate) fn new(
        rt: R,
        conn: Connection,
        io: S,
        credentials: Credentials,
        peer: CredentialContext,
    ) -> Self {
        let negotiating = matches!(conn.state(), State::Negotiating { .. });
        let read_waker = Arc::new(NotingWaker::default());
        let timer_waker = Arc::new(NotingWaker::default());
        let reads_spare = io.reads_spare(&rt);
        Self {
            rt,
            conn,
            io: Some(io),
            timer: None,
            armed: None,
            timer_waiting: false,
            timer_waker: timer_waker.clone(),
            timer_waker_handle: Waker::from(timer_waker),
            credentials,
            peer,
            credential: None,
            negotiating,
            versions_known_at: None,
            ready_reported: false,
            unflushed: false,
            read_blocked: false,
            reads_spare,
            read_waker: read_waker.clone(),
            read_waker_handle: Waker::from(read_waker),
            forwarding_to: None,
            polled_at: None,
            closed: None,
            observing: None,
        }
    }

    /// Reports what this connection does to an observer.
    pub(crate) fn with_observing(mut self, observing: Option<Observing>) -> Self {
        self.observing = observing;
        self
    }

    /// The runtime's clock: every `now` given to the core comes from here.
    pub(crate) fn now(&self) -> Instant {
        self.rt.now()
    }

    /// The clock, read now, for an input inside a poll that is timed by
    /// it (bytes written or received: send times, round trips); later
    /// inputs of the same poll may reuse the reading (see [`Self::recent`]).
    fn read_clock(&mut self) -> Instant {
        let now = self.rt.now();
        self.polled_at = Some(now);
        now
    }

    /// The latest reading of this poll, or the clock if it has none yet:
    /// for inputs that only need a time no older than this poll's last I/O
    /// (a read that found nothing, which the core does not time; the
    /// deadline check, which the timer repeats with a fresh reading if it
    /// fires in between).
    fn recent(&mut self) -> Instant {
        match self.polled_at {
            Some(now) => now,
            None => self.read_clock(),
        }
    }

    /// One poll of the connection, for whichever task runs it: drains what
    /// the core queued, then runs the drive loop until nothing makes
    /// progress (`Pending`, with every source holding `cx`'s waker) or the
    /// connection has closed (`Ready`, and the transport is released).
    /// `first_turn` is progress the caller made before (e.g. commands it
    /// fed the core): the loop's first turn counts it.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut impl Outcomes,
        first_turn: bool,
    ) -> Poll<()> {
        // Events queued before the first poll (ready at once with a
        // version hint), or by commands since the last.
        self.drain_events(out);
        self.begin_poll(cx);
        let done = self.poll_io(cx, out, first_turn);
        // A reading is reused within one poll only: the next starts after
        // an unknown wait.
        self.polled_at = None;
        if done.is_ready() {
            self.release_transport(cx);
        }
        done
    }

    /// The drive loop of [`Engine::poll`].
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut impl Outcomes,
        first_turn: bool,
    ) -> Poll<()> {
        for turn in 0..TURN_BUDGET {
            let mut progress = turn == 0 && first_turn;
            progress |= self.poll_credential(cx, out);
            progress |= self.poll_write(cx, out);
            if !self.read_blocked {
                progress |= self.poll_read(out);
            }
            // The deadlines once the rest has settled (they move with every
            // request and response), and before yielding when busy.
            if !progress || turn + 1 == TURN_BUDGET {
                progress |= self.poll_timer(out);
            }
            if self.closed.is_some() {
                return Poll::Ready(());
            }
            if !progress {
                self.flush(out);
                return Poll::Pending;
            }
        }
        // Still busy: let other tasks run, then continue.
        self.flush(out);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Called at the start of every poll, before any source is polled: makes
    /// the read side's waker forward to this task, and notes whether it
    /// fired. A source that returned `Pending` has our waker and is not
    /// polled again until that waker fires (see [`NotingWaker`]).
    fn begin_poll(&mut self, cx: &Context<'_>) {
        if !self
            .forwarding_to
            .as_ref()
            .is_some_and(|w| w.is_clone_of(cx.waker()))
        {
            self.forwarding_to = Some(ClonedWaker::of(cx.waker()));
            self.read_waker.forward_to(cx.waker().clone());
            self.timer_waker.forward_to(cx.waker().clone());
        }
        if self.read_waker.woken.swap(false, Ordering::Acquire) {
            self.read_blocked = false;
        }
        if self.timer_waker.woken.swap(false, Ordering::Acquire) {
            self.timer_waiting = false;
        }
    }

    /// After close: a TLS close_notify or TCP FIN, best effort, without
    /// waiting, then the socket is dropped (a [`DirectClient`] may outlive
    /// its connection, and not every runtime's `poll_close` shuts TCP down).
    ///
    /// [`DirectClient`]: crate::DirectClient
    fn release_transport(&mut self, cx: &mut Context<'_>) {
        if let Some(mut io) = self.io.take() {
            let _ = Pin::new(&mut io).poll_close(cx);
        }
    }

    /// Writes what the core has to send (vectored). Returns whether
    /// anything was written.
    fn poll_write(&mut self, cx: &mut Context<'_>, out: &mut impl Outcomes) -> bool {
        let mut progress = false;
        while self.conn.transmit_len() > 0 && !self.conn.is_closed() {
            let Some(io) = &mut self.io else { break };
            let written = if self.conn.transmit_slices() <= FEW_SLICES {
                write_vectored::<FEW_SLICES, _>(&self.conn, io, cx)
            } else {
                write_vectored::<MAX_SLICES, _>(&self.conn, io, cx)
            };
            match written {
                Poll::Ready(Ok(0)) => {
                    self.conn.handle_io_error(
                        std::io::ErrorKind::WriteZero,
                        "the socket accepted no bytes".to_owned(),
                        self.rt.now(),
                    );
                    progress = true;
                }
                Poll::Ready(Ok(written)) => {
                    let now = self.read_clock();
                    self.conn.transmit_complete(written, now);
                    self.unflushed = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    self.conn
                        .handle_io_error(e.kind(), e.to_string(), self.rt.now());
                    progress = true;
                }
                Poll::Pending => break,
            }
            self.drain_events(out);
        }
        // TLS holds records in its own buffer until flushed.
        if let Some(io) = (self.io.as_mut()).filter(|_| self.unflushed && !self.conn.is_closed()) {
            match Pin::new(io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => {
                    self.conn
                        .handle_io_error(e.kind(), e.to_string(), self.rt.now());
                    self.drain_events(out);
                    progress = true;
                }
                Poll::Pending => {}
            }
        }
        progress
    }

    /// Reads straight into the core's buffer until the socket has nothing.
    ///
    /// After a read that did not fill its window the socket is most likely
    /// drained, and the next read is only a probe that ends `Pending` (which
    /// registers our waker); so is the first read of a connection that holds
    /// no receive buffer (before the first read, or idle after giving it
    /// back). The core zero-fills every window it hands out
    /// (safe Rust), 16-64 KiB on a connection with large responses, so the
    /// probe reads into [`PROBE`] bytes on the stack instead; whatever it
    /// does find goes to the core by copy, and reading goes on in the
    /// core's buffer. A transport that reads into spare capacity
    /// ([`SpareRead`], tokio's plain TCP) reads into the core's buffer
    /// without any zero-fill; the probe still spares it opening a window
    /// that most likely stays empty.
    fn poll_read(&mut self, out: &mut impl Outcomes) -> bool {
        let mut progress = false;
        // A connection that gave its receive buffer back (idle, see
        // `Config::with_receive_buffer_release`) probes first too: a
        // wake-up with nothing to read then takes no buffer, and one with
        // bytes hands the first to the core, which takes a small buffer.
        let mut probe = self.conn.receive_buffer_capacity() == 0;
        let mut small = [0u8; PROBE];
        for _ in 0..TURN_BUDGET {
            let Some(io) = self.io.as_mut().filter(|_| !self.conn.is_closed()) else {
                break;
            };
            // Through `read_waker`, so that we know whether this side woke us.
            let mut read_cx = Context::from_waker(&self.read_waker_handle);
            let (result, window) = if probe {
                (Pin::new(io).poll_read(&mut read_cx, &mut small), PROBE)
            } else if self.reads_spare {
                let mut spare = self.conn.recv_spare();
                let window = spare.limit();
                (
                    io.poll_read_spare(&self.rt, &mut read_cx, &mut spare),
                    window,
                )
            } else {
                let buf = self.conn.recv_buf();
                let window = buf.len();
                (Pin::new(io).poll_read(&mut read_cx, buf), window)
            };
            // The clock only for a read that ended (most probes are Pending).
            match result {
                Poll::Ready(Ok(0)) => {
                    let now = self.read_clock();
                    self.conn.handle_eof(now)
                }
                Poll::Ready(Ok(n)) => {
                    let now = self.read_clock();
                    if probe {
                        self.conn.handle_input(&small[..n], now);
                    } else {
                        self.conn.recv_commit(n, now);
                    }
                    probe = n < window;
                }
                Poll::Ready(Err(e)) => {
                    if let Some(rustls::Error::AlertReceived(alert)) =
                        e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
                    {
                        out.tls_alert(format!("{alert:?}"));
                    }
                    let now = self.read_clock();
                    self.conn.handle_io_error(e.kind(), e.to_string(), now)
                }
                Poll::Pending => {
                    if !probe {
                        // Close the core's window (nothing was read): an
                        // open one would keep an idle connection's empty
                        // buffer from being given back
                        // (`Config::with_receive_buffer_release`). The
                        // core does not time an empty read: no fresh
                        // reading for it.
                        let now = self.recent();
                        self.conn.recv_commit(0, now);
                    }
                    self.read_blocked = true;
                    break;
                }
            }
            progress = true;
            self.drain_events(out);
        }
        progress
    }

    /// Fires the core's deadlines. The clock decides, not the timer: a
    /// timer may wake early, late or for a deadline that has since moved.
    fn poll_timer(&mut self, out: &mut impl Outcomes) -> bool {
        let Some(deadline) = self.conn.poll_timeout() else {
            // Kept for the next deadline, not polled meanwhile (a wake-up
            // from it would only make us look at the clock).
            self.armed = None;
            return false;
        };
        // This poll's latest reading, microseconds old: a deadline that
        // passed since is found when the timer fires, below.
        let now = self.recent();
        if now >= deadline {
            self.armed = None;
            self.conn.handle_timeout(now);
            self.drain_events(out);
            return true;
        }
        // Re-arm only when the armed timer would fire too late; one that
        // fires too early just makes us look at the clock again.
        if self.armed.is_none_or(|at| at > deadline) {
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(self.rt.timer(deadline)),
            }
            self.armed = Some(deadline);
            // A moved timer registers its new deadline when polled.
            self.timer_waiting = false;
        }
        if let Some(timer) = self.timer.as_mut().filter(|_| !self.timer_waiting) {
            // Through `timer_waker`, so that we know when it fires.
            let mut timer_cx = Context::from_waker(&self.timer_waker_handle);
            if timer.as_mut().poll(&mut timer_cx).is_ready() {
                self.armed = None;
                // The deadline passed after this poll's latest reading:
                // the next turn reads the clock again and acts on it.
                self.polled_at = None;
                return true;
            }
            self.timer_waiting = true;
        }
        false
    }

    /// Polls the credential provider's answer in flight, if any.
    fn poll_credential(&mut self, cx: &mut Context<'_>, out: &mut impl Outcomes) -> bool {
        let Some(fut) = &mut self.credential else {
            return false;
        };
        let Poll::Ready(result) = fut.as_mut().poll(cx) else {
            return false;
        };
        self.credential = None;
        let now = self.rt.now();
        match result {
            Ok(credential) => match self.conn.provide_credential(credential, now) {
                Ok(()) => tracing::debug!("credential provided"),
                // The core closed the connection with the reason.
                Err(CredentialError::Rejected(e)) => {
                    tracing::warn!(error = %e, "credential rejected")
                }
                Err(e) => tracing::debug!(error = %e, "credential no longer needed"),
            },
            Err(e) => match e.downcast_ref::<Unanswered>() {
                Some(Unanswered(why)) => self.fail_locally(why.clone()),
                None => self.fail_locally(format!("the credential callback failed: {e}")),
            },
        }
        self.drain_events(out);
        true
    }

    /// A credential provider failed (or none is configured): the core
    /// fails the authentication and closes with `AuthFailed`.
    fn fail_locally(&mut self, message: String) {
        tracing::warn!(%message, "credential not available: authentication fails");
        if let Err(e) = self.conn.credential_failed(&message, self.rt.now()) {
            tracing::debug!(error = %e, "no credential was pending");
        }
    }

    fn on_credential_required(&mut self, request: CredentialRequest) {
        // Asked after the connection was ready: a KIP-368 re-authentication.
        let reauthentication = self.ready_reported;
        tracing::debug!(
            kind = credential_kind(&request),
            reauthentication,
            "credential required"
        );
        let context = self.peer.clone().with_reauthentication(reauthentication);
        match self.credentials.answer(request, context) {
            Ok(fut) => self.credential = Some(fut),
            Err(why) => self.fail_locally(why),
        }
    }

    /// Notes when the core leaves version negotiation (checked on every
    /// drain, i.e. right after each input).
    fn note_negotiated(&mut self) {
        if self.negotiating && !matches!(self.conn.state(), State::Negotiating { .. }) {
            self.negotiating = false;
            if self.conn.api_versions().is_some() {
                self.versions_known_at = Some(self.rt.now());
            }
            if let Some(o) = &self.observing {
                o.negotiated(&self.conn);
            }
        }
    }

    /// The end of a poll (or the handshake): the observer's gauges, then
    /// every outcome of the poll to `out` in one go, so that a caller
    /// holding its response sees counters and gauges that count it.
    fn flush(&mut self, out: &mut impl Outcomes) {
        if let Some(o) = &mut self.observing {
            o.publish(&self.conn, || out.client_queue());
        }
        out.flush(&self.conn);
    }

    /// Tells `out` how the handshake ended, once.
    fn report_ready(&mut self, out: &mut impl Outcomes, result: ReadyResult) {
        if !self.ready_reported {
            self.ready_reported = true;
            // `connect` reads the counters once it has the report.
            self.flush(out);
            out.ready(ReadyReport {
                result,
                versions_known_at: self.versions_known_at,
                at: self.rt.now(),
            });
        }
    }

    /// Hands every event the core has queued to `out`. Call after every
    /// input to the core.
    // Most inputs queue no event (a write, a read of part of a frame, an
    // empty read): with no negotiation to note and no observer, the check
    // is inlined at each call and the drain not entered (120 of the 5,410
    // instructions a request cost at concurrency 1, issue 20).
    #[inline]
    pub(crate) fn drain_events(&mut self, out: &mut impl Outcomes) {
        if self.negotiating || self.observing.is_some() || self.conn.has_events() {
            self.drain_queued(out);
        }
    }

    /// [`Self::drain_events`] when there may be something to do.
    fn drain_queued(&mut self, out: &mut impl Outcomes) {
        self.note_negotiated();
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Response(response) => {
                    if let Some(o) = &self.observing {
                        o.response(&response);
                    }
                    tracing::trace!(
                        name: "kafka_conn.response",
                        api_key = response.api_key.name().unwrap_or("unknown"),
                        api_version = response.api_version,
                        correlation_id = response.correlation_id.0,
                        latency_us = response.rtt.as_micros() as u64,
                        request_bytes = response.request_bytes,
                        response_bytes = response.response_bytes,
                        "response"
                    );
                    out.response(response)
                }
                Event::RequestFailed {
                    correlation_id,
                    api_key,
                    error,
                } => {
                    if let Some(o) = &self.observing {
                        o.request_failed(correlation_id, api_key, &error);
                    }
                    tracing::debug!(
                        name: "kafka_conn.request_failed",
                        api_key = api_key.name().unwrap_or("unknown"),
                        correlation_id = correlation_id.0,
                        retriable = error.is_retriable(),
                        %error,
                        "request failed"
                    );
                    out.request_failed(correlation_id, error)
                }
                Event::Throttled {
                    api_key,
                    api_version,
                    throttle_time,
                    applied,
                } => {
                    if let Some(o) = &self.observing {
                        o.throttled(api_key, api_version, throttle_time, applied);
                    }
                }
                Event::Ready { api_versions, sasl } => {
                    tracing::info!(
                        apis = api_versions.len(),
                        api_versions_version = ?api_versions.negotiated_with,
                        fell_back = api_versions.fell_back,
                        sasl = sasl.as_ref().map(|s| s.mechanism.as_str()),
                        "connection ready"
                    );
                    if let Some(o) = &mut self.observing {
                        o.ready(self.rt.now(), sasl.is_some());
                    }
                    self.report_ready(out, Ok((api_versions, sasl)));
                }
                Event::CredentialRequired(request) => self.on_credential_required(request),
                Event::Reauthenticated(session) => {
                    tracing::info!(
                        mechanism = %session.mechanism,
                        lifetime = ?session.session_lifetime,
                        "re-authenticated"
                    );
                    if let Some(o) = &mut self.observing {
                        o.reauthenticated(self.rt.now());
                    }
                    out.reauthenticated(session);
                }
                Event::Closed(reason) => self.on_closed(out, reason),
                other => tracing::debug!(event = ?other, "unhandled event"),
            }
        }
        if let Some(o) = &mut self.observing {
            let rt = &self.rt;
            o.after_drain(&self.conn, || rt.now());
        }
    }

    fn on_closed(&mut self, out: &mut impl Outcomes, reason: CloseReason) {
        let close_reason = close_reason_label(&reason);
        if reason == CloseReason::Shutdown {
            tracing::info!(
                name: "kafka_conn.closed",
                close_reason,
                retriable = false,
                "connection closed: {reason}"
            );
        } else {
            tracing::warn!(
                name: "kafka_conn.closed",
                close_reason,
                retriable = reason.is_retriable(),
                "connection closed: {reason}"
            );
        }
        if let Some(o) = &mut self.observing {
            o.closed(&reason, &self.conn, self.rt.now());
        }
        self.credential = None;
        self.timer = None;
        self.armed = None;
        self.timer_waiting = false;
        out.closed(&reason, &self.conn);
        self.report_ready(out, Err(reason.clone()));
        self.closed = Some(reason);
    }
}

/// A response to `version` of `api_key` carried `throttle_time_ms`
/// (KIP-219): the core decides whether to hold later requests.
pub(crate) fn apply_throttle(
    conn: &mut Connection,
    api_key: ApiKey,
    version: i16,
    throttle_time_ms: i32,
    now: Instant,
) {
    if let Some(d) = conn.handle_throttle_time(api_key, version, throttle_time_ms, now) {
        tracing::info!(
            api = %api_key,
            version,
            throttle = ?d,
            held = conn.held(),
            "broker throttled this connection (KIP-219): holding new requests"
        );
    }
}

/// One vectored write of what the core has to send, gathered into an array
/// of `N` slices (the first `N` pieces; the loop in `poll_write` writes the
/// rest).
fn write_vectored<const N: usize, S: AsyncWrite + Unpin>(
    conn: &Connection,
    io: &mut S,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); N];
    let n = conn.poll_transmit(&mut slices);
    Pin::new(io).poll_write_vectored(cx, &slices[..n])
}

fn credential_kind(r: &CredentialRequest) -> &'static str {
    match r {
        CredentialRequest::OAuthBearerToken => "oauthbearer-token",
        CredentialRequest::GssapiToken { .. } => "gssapi-token",
        CredentialRequest::ScramSaltedPassword(_) => "scram-pbkdf2",
        _ => "custom",
    }
}

#[cfg(test)]
mod tests;
