//! The task that owns the socket and the core [`Connection`]: one
//! hand-written future whose poll runs the whole drive loop.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream as _;
use futures_io::{AsyncRead, AsyncWrite};
use kafka_conn_core::sasl::{Credential, CredentialRequest};
use kafka_conn_core::{
    ApiVersions, CloseReason, Connection, CorrelationId, CredentialError, Event, RequestError,
    Response, SaslSession, State, Stats,
};

use crate::client::{Command, Shared};
use crate::credentials::{CallbackError, Credentials};
use crate::error::RequestFailure;
use crate::runtime::{BoxFuture, Runtime};

/// How many slices one vectored write gathers.
const MAX_SLICES: usize = 64;
/// Loop turns per poll before yielding to the executor, so that a broker
/// flooding us cannot starve the other tasks on the same thread.
const TURN_BUDGET: usize = 32;

/// What the task reports once the connection is ready (or not).
pub(crate) type ReadyResult = Result<(Arc<ApiVersions>, Option<SaslSession>), CloseReason>;

/// The end of the Kafka handshake, for `connect`: the outcome, when it
/// came, and when the broker's versions became known (`None` if they never
/// did, or were given as a hint), which splits ApiVersions from SASL.
pub(crate) struct ReadyReport {
    pub(crate) result: ReadyResult,
    pub(crate) versions_known_at: Option<Instant>,
    pub(crate) at: Instant,
}

type Reply = oneshot::Sender<Result<Response, RequestFailure>>;

/// The drive loop.
pub(crate) struct Driver<R: Runtime, S> {
    rt: R,
    conn: Connection,
    io: S,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Every handle is gone: the connection was closed for that.
    handles_gone: bool,
    /// Waiters by correlation id, and the ids by the handles' keys (a
    /// dropped send future only knows its key).
    pending: IdMap<CorrelationId, (u64, Reply)>,
    ids: IdMap<u64, CorrelationId>,
    timer: Option<(Instant, BoxFuture<'static, ()>)>,
    credentials: Credentials,
    credential: Option<BoxFuture<'static, Result<Credential, CallbackError>>>,
    shared: Arc<Shared>,
    ready: Option<oneshot::Sender<ReadyReport>>,
    /// Handshake timing (see [`ReadyReport`]): still negotiating versions,
    /// and when that ended.
    negotiating: bool,
    versions_known_at: Option<Instant>,
    close_watchers: Vec<oneshot::Sender<CloseReason>>,
    /// Bytes went into the transport since the last flush (TLS buffers them).
    unflushed: bool,
    /// The transport's `poll_read` returned `Pending` with `read_waker`
    /// registered, and that waker has not fired since: reading again would
    /// only cost a readiness check (tokio) or a failing `recv` syscall and an
    /// `epoll_ctl` (smol, async-std), e.g. on every wake-up for a new request.
    read_blocked: bool,
    read_waker: Arc<ReadWaker>,
    /// `read_waker` as a `Waker`, and the task waker it last forwarded to.
    read_waker_handle: Waker,
    forwarding_to: Option<Waker>,
    /// What `publish` last wrote to `shared`: unchanged counters skip the
    /// lock.
    published: (Stats, usize),
    closed: Option<CloseReason>,
}

impl<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + Send> Driver<R, S> {
    pub(crate) fn new(
        rt: R,
        conn: Connection,
        io: S,
        commands: mpsc::UnboundedReceiver<Command>,
        credentials: Credentials,
        shared: Arc<Shared>,
        ready: oneshot::Sender<ReadyReport>,
    ) -> Self {
        let negotiating = matches!(conn.state(), State::Negotiating { .. });
        let read_waker = Arc::new(ReadWaker::default());
        Self {
            rt,
            conn,
            io,
            commands,
            handles_gone: false,
            pending: IdMap::default(),
            ids: IdMap::default(),
            timer: None,
            credentials,
            credential: None,
            shared,
            ready: Some(ready),
            negotiating,
            versions_known_at: None,
            close_watchers: Vec::new(),
            unflushed: false,
            read_blocked: false,
            read_waker: read_waker.clone(),
            read_waker_handle: Waker::from(read_waker),
            forwarding_to: None,
            published: (Stats::default(), 0),
            closed: None,
        }
    }

    /// Takes commands from the handles. Returns whether any came.
    fn poll_commands(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while !self.handles_gone {
            match Pin::new(&mut self.commands).poll_next(cx) {
                Poll::Ready(Some(cmd)) => {
                    progress = true;
                    self.on_command(cmd);
                }
                Poll::Ready(None) => {
                    // Every handle (and the connecting future) is gone.
                    tracing::debug!("last handle dropped: closing");
                    self.handles_gone = true;
                    self.conn.close(Instant::now());
                    progress = true;
                }
                Poll::Pending => break,
            }
            self.drain_events();
        }
        progress
    }

    fn on_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Send {
                key,
                request,
                reply,
            } => {
                if reply.is_canceled() {
                    return;
                }
                match self.conn.send_request(request, now) {
                    Ok(id) => {
                        self.ids.insert(key, id);
                        self.pending.insert(id, (key, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(RequestFailure::Refused(e)));
                    }
                }
            }
            Command::SendWithoutResponse { request, reply } => {
                let accepted = self.conn.send_request(request, now);
                let _ = reply.send(accepted.map(drop).map_err(RequestFailure::Refused));
            }
            Command::Cancel { key } => {
                if let Some(id) = self.ids.remove(&key) {
                    self.pending.remove(&id);
                    // The slot stays in the core so the response is read and dropped.
                    self.conn.cancel(id, now);
                }
            }
            Command::Close => self.conn.close(now),
            Command::Throttle {
                api_key,
                version,
                throttle_time_ms,
            } => {
                // KIP-219: the core holds later requests until the throttle ends.
                if let Some(d) =
                    self.conn
                        .handle_throttle_time(api_key, version, throttle_time_ms, now)
                {
                    tracing::info!(
                        api = %api_key,
                        version,
                        throttle = ?d,
                        held = self.conn.held(),
                        "broker throttled this connection (KIP-219): holding new requests"
                    );
                }
            }
            Command::WatchClose(tx) => match &self.closed {
                Some(r) => {
                    let _ = tx.send(r.clone());
                }
                None => self.close_watchers.push(tx),
            },
        }
    }

    /// Writes what the core has to send (vectored). Returns whether
    /// anything was written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while self.conn.transmit_len() > 0 && !self.conn.is_closed() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.conn.poll_transmit(&mut slices);
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => {
                    self.conn.handle_io_error(
                        std::io::ErrorKind::WriteZero,
                        "the socket accepted no bytes".to_owned(),
                        Instant::now(),
                    );
                    progress = true;
                }
                Poll::Ready(Ok(written)) => {
                    self.conn.transmit_complete(written, Instant::now());
                    self.unflushed = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    self.conn
                        .handle_io_error(e.kind(), e.to_string(), Instant::now());
                    progress = true;
                }
                Poll::Pending => break,
            }
            self.drain_events();
        }
        // TLS holds records in its own buffer until flushed.
        if self.unflushed && !self.conn.is_closed() {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => {
                    self.conn
                        .handle_io_error(e.kind(), e.to_string(), Instant::now());
                    self.drain_events();
                    progress = true;
                }
                Poll::Pending => {}
            }
        }
        progress
    }

    /// Reads straight into the core's buffer until the socket has nothing.
    fn poll_read(&mut self) -> bool {
        let mut progress = false;
        for _ in 0..TURN_BUDGET {
            if self.conn.is_closed() {
                break;
            }
            // Through `read_waker`, so that we know whether this side woke us.
            let mut read_cx = Context::from_waker(&self.read_waker_handle);
            let result = Pin::new(&mut self.io).poll_read(&mut read_cx, self.conn.recv_buf());
            // The clock only for a read that ended (most probes are Pending).
            let now = Instant::now;
            match result {
                Poll::Ready(Ok(0)) => self.conn.handle_eof(now()),
                Poll::Ready(Ok(n)) => self.conn.recv_commit(n, now()),
                Poll::Ready(Err(e)) => {
                    if let Some(rustls::Error::AlertReceived(alert)) =
                        e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
                    {
                        self.shared.lock().tls_alert = Some(format!("{alert:?}"));
                    }
                    self.conn.handle_io_error(e.kind(), e.to_string(), now())
                }
                Poll::Pending => {
                    self.read_blocked = true;
                    break;
                }
            }
            progress = true;
            self.drain_events();
        }
        progress
    }

    /// Fires the core's deadlines. The clock decides, not the timer: a
    /// timer may wake early, late or for a deadline that has since moved.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.conn.poll_timeout() else {
            self.timer = None;
            return false;
        };
        let now = Instant::now();
        if now >= deadline {
            self.timer = None;
            self.conn.handle_timeout(now);
            self.drain_events();
            return true;
        }
        // Re-arm only when the armed timer would fire too late; one that
        // fires too early just makes us look at the clock again.
        if !matches!(&self.timer, Some((at, _)) if *at <= deadline) {
            self.timer = Some((deadline, self.rt.sleep_until(deadline)));
        }
        if let Some((_, sleep)) = &mut self.timer {
            if sleep.as_mut().poll(cx).is_ready() {
                self.timer = None;
                return true;
            }
        }
        false
    }

    /// Polls the credential callback in flight, if any.
    fn poll_credential(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(fut) = &mut self.credential else {
            return false;
        };
        let Poll::Ready(result) = fut.as_mut().poll(cx) else {
            return false;
        };
        self.credential = None;
        let now = Instant::now();
        match result {
            Ok(credential) => match self.conn.provide_credential(credential, now) {
                Ok(()) => tracing::debug!("credential provided"),
                // The core closed the connection with the reason.
                Err(CredentialError::Rejected(e)) => {
                    tracing::warn!(error = %e, "credential rejected")
                }
                Err(e) => tracing::debug!(error = %e, "credential no longer needed"),
            },
            Err(e) => self.fail_locally(format!("the credential callback failed: {e}")),
        }
        self.drain_events();
        true
    }

    /// A credential callback failed (or none is configured): the core
    /// fails the authentication and closes with `AuthFailed`.
    fn fail_locally(&mut self, message: String) {
        tracing::warn!(%message, "credential not available: authentication fails");
        if let Err(e) = self.conn.credential_failed(&message, Instant::now()) {
            tracing::debug!(error = %e, "no credential was pending");
        }
    }

    fn on_credential_required(&mut self, request: &CredentialRequest) {
        tracing::debug!(kind = credential_kind(request), "credential required");
        match self.credentials.answer(request) {
            Ok(fut) => self.credential = Some(fut),
            Err(why) => self.fail_locally(why.to_owned()),
        }
    }

    /// Notes when the core leaves version negotiation (checked on every
    /// drain, i.e. right after each input).
    fn note_negotiated(&mut self) {
        if self.negotiating && !matches!(self.conn.state(), State::Negotiating { .. }) {
            self.negotiating = false;
            if self.conn.api_versions().is_some() {
                self.versions_known_at = Some(Instant::now());
            }
        }
    }

    /// Tells `connect` how the handshake ended.
    fn report_ready(&mut self, result: ReadyResult) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(ReadyReport {
                result,
                versions_known_at: self.versions_known_at,
                at: Instant::now(),
            });
        }
    }

    fn drain_events(&mut self) {
        self.note_negotiated();
        // Counters go out before the first answer (or ready report) does: a
        // caller that holds a response must never read stats that do not
        // count it yet (on a multi-threaded runtime it can run before this
        // task's turn ends).
        let mut published = false;
        while let Some(event) = self.conn.poll_event() {
            if !published {
                self.publish();
                published = true;
            }
            match event {
                Event::Response(response) => {
                    if let Some((key, reply)) = self.pending.remove(&response.correlation_id) {
                        self.ids.remove(&key);
                        // The caller may have gone meanwhile: nothing to do then.
                        let _ = reply.send(Ok(response));
                    }
                }
                Event::RequestFailed {
                    correlation_id,
                    error,
                } => {
                    if let Some((key, reply)) = self.pending.remove(&correlation_id) {
                        self.ids.remove(&key);
                        let _ = reply.send(Err(RequestFailure::Failed(error)));
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
                    self.shared.lock().sasl = sasl.clone();
                    self.report_ready(Ok((api_versions, sasl)));
                }
                Event::CredentialRequired(request) => self.on_credential_required(&request),
                Event::Reauthenticated(session) => {
                    tracing::info!(
                        mechanism = %session.mechanism,
                        lifetime = ?session.session_lifetime,
                        "re-authenticated"
                    );
                    self.shared.lock().sasl = Some(session);
                }
                Event::Closed(reason) => self.on_closed(reason),
                other => tracing::debug!(event = ?other, "unhandled event"),
            }
        }
    }

    fn on_closed(&mut self, reason: CloseReason) {
        if reason == CloseReason::Shutdown {
            tracing::info!("connection closed: {reason}");
        } else {
            tracing::warn!(
                retriable = reason.is_retriable(),
                "connection closed: {reason}"
            );
        }
        self.credential = None;
        self.timer = None;
        // The core fails every request it accepted before Closed; these are
        // only ones it never saw, kept for safety.
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(RequestFailure::Failed(RequestError::ConnectionClosed(
                reason.clone(),
            ))));
        }
        self.ids.clear();
        {
            let mut p = self.shared.lock();
            p.close_reason = Some(reason.clone());
            p.stats = self.conn.stats();
            p.in_flight = 0;
        }
        self.report_ready(Err(reason.clone()));
        for tx in self.close_watchers.drain(..) {
            let _ = tx.send(reason.clone());
        }
        self.closed = Some(reason);
    }

    /// After close: answer what is still queued, then end.
    fn finish(&mut self, cx: &mut Context<'_>) {
        // Best effort: a TLS close_notify or TCP FIN, without waiting.
        let _ = Pin::new(&mut self.io).poll_close(cx);
        self.commands.close();
        let reason = self.closed.clone().expect("finish only after close");
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Send { reply, .. } => {
                    let _ = reply.send(Err(RequestFailure::Refused(
                        kafka_conn_core::SendError::Closed(reason.clone()),
                    )));
                }
                Command::SendWithoutResponse { reply, .. } => {
                    let _ = reply.send(Err(RequestFailure::Refused(
                        kafka_conn_core::SendError::Closed(reason.clone()),
                    )));
                }
                Command::WatchClose(tx) => {
                    let _ = tx.send(reason.clone());
                }
                Command::Cancel { .. } | Command::Close | Command::Throttle { .. } => {}
            }
        }
    }

    fn publish(&mut self) {
        let now = (self.conn.stats(), self.conn.in_flight());
        if now == self.published {
            return;
        }
        self.published = now;
        let (stats, in_flight) = now;
        let mut p = self.shared.lock();
        if stats.throttled > p.stats.throttled {
            tracing::debug!(
                waited = ?(stats.throttled - p.stats.throttled),
                total = ?stats.throttled,
                "throttle (KIP-219) over: sending held requests"
            );
        }
        p.stats = stats;
        p.in_flight = in_flight;
    }
}

impl<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + Send> Future for Driver<R, S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Events queued before the first poll (ready at once with a version hint).
        this.drain_events();
        // A source that returned Pending has our waker: it is not polled
        // again until that waker fires. The read side's waker tells (see
        // `ReadWaker`); the command channel returns only once empty (or
        // closed), so one call per poll is enough.
        if !this
            .forwarding_to
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            this.forwarding_to = Some(cx.waker().clone());
            this.read_waker.forward_to(cx.waker().clone());
        }
        if this.read_waker.woken.swap(false, Ordering::Acquire) {
            this.read_blocked = false;
        }
        let mut commands_polled = false;
        for turn in 0..TURN_BUDGET {
            let mut progress = false;
            if !commands_polled {
                progress |= this.poll_commands(cx);
                commands_polled = true;
            }
            progress |= this.poll_credential(cx);
            progress |= this.poll_write(cx);
            if !this.read_blocked {
                progress |= this.poll_read();
            }
            // The deadlines once the rest has settled (they move with every
            // request and response), and before yielding when busy.
            if !progress || turn + 1 == TURN_BUDGET {
                progress |= this.poll_timer(cx);
            }
            if this.closed.is_some() {
                this.finish(cx);
                return Poll::Ready(());
            }
            if !progress {
                this.publish();
                return Poll::Pending;
            }
        }
        // Still busy: let other tasks run, then continue.
        this.publish();
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The waker the transport's read side gets: it notes that it fired, then
/// wakes the connection's task.
#[derive(Debug, Default)]
struct ReadWaker {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl ReadWaker {
    fn forward_to(&self, task: Waker) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }
}

impl Wake for ReadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(task) = &*self.task.lock().unwrap_or_else(|p| p.into_inner()) {
            task.wake_by_ref();
        }
    }
}

/// The driver's maps are keyed by ids it chose itself (correlation ids and
/// handle keys, both sequential): SipHash's flooding resistance buys
/// nothing there and costs a few percent of the CPU per request.
type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing: one multiply spreads sequential ids over all bits.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn credential_kind(r: &CredentialRequest) -> &'static str {
    match r {
        CredentialRequest::OAuthBearerToken => "oauthbearer-token",
        CredentialRequest::GssapiToken { .. } => "gssapi-token",
        _ => "custom",
    }
}
