//! [`DirectClient`]: a connection driven by its caller's task, with no
//! background task and no channel between the caller and the socket.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::task::{Context, Poll};

use kafka_conn_core::{
    ApiKey, ApiVersions, CloseReason, Connection, CorrelationId, Request, RequestError, Response,
    SaslSession, SendError, Stats,
};

use crate::engine::{apply_throttle, Engine, Outcomes, ReadyReport};
use crate::error::RequestFailure;
use crate::info::ConnectInfo;
use crate::runtime::Runtime;
use crate::stream::Stream;

/// One connection to one broker, driven by the task that holds it.
///
/// [`Client`](crate::Client) runs the connection in a task of its own and
/// talks to it through a channel; that costs a channel message, a oneshot
/// and a second task wake-up per request. A `DirectClient` runs the same
/// drive loop (the same code: writes, reads, deadlines, credential
/// provider, re-authentication) inside its own methods instead, so a
/// request costs only the socket I/O and the core. It suits a task that
/// owns its connection: a proxy's per-broker loop, a benchmark, a tool.
///
/// The connection makes progress only while one of its async methods is
/// being polled ([`recv`](Self::recv), [`request`](Self::request),
/// [`closed`](Self::closed)): nothing reads the socket, fires a request
/// deadline, re-authenticates or gives an idle connection's buffers back
/// (`Config::with_receive_buffer_release`) in between. A caller with requests in
/// flight should therefore keep a `recv` (or `request`) pending, e.g. in
/// its `select!` loop.
///
/// Pipelining: [`submit`](Self::submit) queues any number of requests (no
/// I/O) and returns their ids, and [`recv`](Self::recv) writes them, then
/// returns the completions in the order they arrive. [`request`](Self::request) is
/// both for one request; completions of other requests that arrive
/// meanwhile wait for `recv`.
///
/// Once the connection has closed, the socket is dropped at once, even if
/// the `DirectClient` lives on; dropping a `DirectClient` drops the socket.
pub struct DirectClient<R: Runtime> {
    engine: Engine<R, Stream<R::Tcp>>,
    out: Completions,
    info: ConnectInfo,
    span: tracing::Span,
}

/// How one request queued with [`DirectClient::submit`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Completion {
    /// The id [`DirectClient::submit`] returned.
    pub correlation_id: CorrelationId,
    /// The response, or why there is none.
    pub result: Result<Response, RequestFailure>,
}

/// What the engine reported and the caller has not taken yet.
#[derive(Default)]
pub(crate) struct Completions {
    queue: VecDeque<Completion>,
    pub(crate) ready: Option<ReadyReport>,
    sasl: Option<SaslSession>,
    pub(crate) tls_alert: Option<String>,
}

impl Outcomes for Completions {
    // The caller reads the counters from the core itself, always current,
    // and takes completions from the queue as they come.
    fn flush(&mut self, _conn: &Connection) {}

    fn response(&mut self, response: Response) {
        self.queue.push_back(Completion {
            correlation_id: response.correlation_id,
            result: Ok(response),
        });
    }

    fn request_failed(&mut self, id: CorrelationId, error: RequestError) {
        self.queue.push_back(Completion {
            correlation_id: id,
            result: Err(RequestFailure::Failed(error)),
        });
    }

    fn ready(&mut self, report: ReadyReport) {
        if let Ok((_, sasl)) = &report.result {
            self.sasl.clone_from(sasl);
        }
        self.ready = Some(report);
    }

    fn reauthenticated(&mut self, session: SaslSession) {
        self.sasl = Some(session);
    }

    fn tls_alert(&mut self, alert: String) {
        self.tls_alert = Some(alert);
    }

    // The core failed every request it accepted before it reported Closed,
    // and those failures are queued already.
    fn closed(&mut self, _reason: &CloseReason, _conn: &Connection) {}
}

impl<R: Runtime> std::fmt::Debug for DirectClient<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectClient")
            .field("address", &self.info.address)
            .field("in_flight", &self.engine.conn.in_flight())
            .field("closed", &self.engine.closed)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> DirectClient<R> {
    /// Wraps a connection whose handshake has finished (see `connect`).
    pub(crate) fn new(
        engine: Engine<R, Stream<R::Tcp>>,
        out: Completions,
        info: ConnectInfo,
        span: tracing::Span,
    ) -> Self {
        Self {
            engine,
            out,
            info,
            span,
        }
    }

    /// Queues a request and returns its correlation id, without I/O: the
    /// next [`recv`](Self::recv) or [`request`](Self::request) writes it.
    /// Its [`Completion`] comes out of `recv` under that id.
    ///
    /// A request built with [`Request::without_response`] (Produce with
    /// `acks=0`) gets no completion: it is done once written.
    ///
    /// (Named apart from [`Client::send`](crate::Client::send), which waits
    /// for the response: that is [`request`](Self::request) here.)
    pub fn submit(&mut self, request: Request) -> Result<CorrelationId, SendError> {
        let id = self.engine.conn.send_request(request, self.engine.now());
        // Room for a completion per request in flight, while that grows,
        // not when a burst that large first arrives.
        let in_flight = self.engine.conn.in_flight();
        if self.out.queue.capacity() < in_flight {
            self.out.queue.reserve(in_flight - self.out.queue.len());
        }
        self.engine.drain_events(&mut self.out);
        id
    }

    /// The old name of [`submit`](Self::submit), which it calls: it queues
    /// and returns an id, unlike `Client::send`, which waits for the
    /// response.
    #[deprecated(
        since = "0.1.0",
        note = "renamed `submit` (it queues and returns an id; `request` waits for the response)"
    )]
    pub fn send(&mut self, request: Request) -> Result<CorrelationId, SendError> {
        self.submit(request)
    }

    /// Drives the connection until a request completes, and returns that
    /// completion; `None` once the connection has closed and every
    /// completion has been taken (each request in flight at the close
    /// completes with the close reason first).
    ///
    /// With nothing in flight it keeps serving the connection (idle
    /// timeout, re-authentication) until the connection closes.
    ///
    /// Cancellation safe: dropping the future loses nothing. Completions
    /// are queued in `self`, and the core tracks how much of each frame
    /// the socket took, so the next call resumes where this one stopped.
    pub async fn recv(&mut self) -> Option<Completion> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](Self::recv) as a poll function, for hand-written futures
    /// and event loops.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Completion>> {
        if let Some(c) = self.out.queue.pop_front() {
            return Poll::Ready(Some(c));
        }
        self.drive(cx);
        match self.out.queue.pop_front() {
            Some(c) => Poll::Ready(Some(c)),
            None if self.engine.closed.is_some() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Sends a request and drives the connection until its response comes.
    ///
    /// Cancellation safe: if the future is dropped before the response
    /// came, the request is cancelled ([`cancel`](Self::cancel)) and its
    /// response read and discarded when it arrives.
    ///
    /// A request built with [`Request::without_response`] is refused with
    /// [`RequestFailure::NoResponseExpected`]: use [`submit`](Self::submit).
    pub async fn request(&mut self, request: Request) -> Result<Response, RequestFailure> {
        if !request.expects_response() {
            return Err(RequestFailure::NoResponseExpected);
        }
        let id = self.submit(request).map_err(RequestFailure::Refused)?;
        let mut guard = CancelOnDrop {
            client: self,
            id,
            armed: true,
        };
        let result = poll_fn(|cx| guard.client.poll_completion(cx, id)).await;
        guard.armed = false;
        result
    }

    /// Stops waiting for request `id`: its response is read and discarded
    /// when it arrives, and it gets no [`Completion`]. Returns whether the
    /// request was still waiting.
    pub fn cancel(&mut self, id: CorrelationId) -> bool {
        if let Some(pos) = self.queued(id) {
            self.out.queue.remove(pos);
            return true;
        }
        self.engine.conn.cancel(id, self.engine.now())
    }

    /// Tells the connection that a response to `version` of `api_key`
    /// carried `throttle_time_ms` (KIP-219), as
    /// [`Client::handle_throttle_time`](crate::Client::handle_throttle_time)
    /// does.
    pub fn handle_throttle_time(&mut self, api_key: ApiKey, version: i16, throttle_time_ms: i32) {
        // Every positive throttle goes to the core: it holds requests only
        // where KIP-219 says so, and reports each one to observers.
        if throttle_time_ms > 0 {
            let now = self.engine.now();
            apply_throttle(
                &mut self.engine.conn,
                api_key,
                version,
                throttle_time_ms,
                now,
            );
        }
    }

    /// Starts a graceful close: requests in flight complete with
    /// [`CloseReason::Shutdown`]. The next poll of any async method sends
    /// the TLS close_notify or TCP FIN and drops the socket; await
    /// [`closed`](Self::closed) for that.
    pub fn close(&mut self) {
        // The close is traced in the connection's span, as everything else.
        let _entered = self.span.enter();
        self.engine.conn.close(self.engine.now());
        self.engine.drain_events(&mut self.out);
    }

    /// Drives the connection until it closes, and returns why. Completions
    /// that arrive meanwhile stay queued for [`recv`](Self::recv).
    pub async fn closed(&mut self) -> CloseReason {
        poll_fn(|cx| {
            self.drive(cx);
            match &self.engine.closed {
                Some(reason) => Poll::Ready(reason.clone()),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// What the broker supports (negotiated before `connect` returned).
    pub fn api_versions(&self) -> &Arc<ApiVersions> {
        &self.info.api_versions
    }

    /// The highest version of `api_key` both the broker and `ours` support.
    pub fn negotiate(&self, api_key: ApiKey, ours: RangeInclusive<i16>) -> Option<i16> {
        self.info.api_versions.negotiate(api_key, ours)
    }

    /// How the connection was made: address, timings, TLS, versions, SASL.
    pub fn info(&self) -> &ConnectInfo {
        &self.info
    }

    /// The current SASL session (updated by re-authentication).
    pub fn sasl_session(&self) -> Option<&SaslSession> {
        self.out.sasl.as_ref()
    }

    /// The connection's counters, current (read from the core).
    pub fn stats(&self) -> Stats {
        self.engine.conn.stats()
    }

    /// Requests awaiting a response on the wire (including cancelled ones
    /// whose responses will be discarded).
    pub fn in_flight(&self) -> usize {
        self.engine.conn.in_flight()
    }

    /// Completions that came and wait for [`recv`](Self::recv).
    pub fn completed(&self) -> usize {
        self.out.queue.len()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.engine.closed.is_some()
    }

    /// Why the connection closed, if it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.engine.closed.as_ref()
    }

    /// Runs the drive loop once: every source is polled until none makes
    /// progress, and each holds `cx`'s waker.
    fn drive(&mut self, cx: &mut Context<'_>) {
        let _entered = self.span.enter();
        let _ = self.engine.poll(cx, &mut self.out, false);
    }

    fn poll_completion(
        &mut self,
        cx: &mut Context<'_>,
        id: CorrelationId,
    ) -> Poll<Result<Response, RequestFailure>> {
        if let Some(done) = self.take(id) {
            return Poll::Ready(done);
        }
        self.drive(cx);
        if let Some(done) = self.take(id) {
            return Poll::Ready(done);
        }
        match &self.engine.closed {
            // Not reached in practice (the core fails every request it
            // accepted before it closes), kept so that no caller can hang.
            Some(reason) => Poll::Ready(Err(RequestFailure::Failed(
                RequestError::ConnectionClosed(reason.clone()),
            ))),
            None => Poll::Pending,
        }
    }

    fn queued(&self, id: CorrelationId) -> Option<usize> {
        self.out.queue.iter().position(|c| c.correlation_id == id)
    }

    fn take(&mut self, id: CorrelationId) -> Option<Result<Response, RequestFailure>> {
        let pos = self.queued(id)?;
        self.out.queue.remove(pos).map(|c| c.result)
    }
}

/// Cancels the request of a dropped [`DirectClient::request`] future.
struct CancelOnDrop<'a, R: Runtime> {
    client: &'a mut DirectClient<R>,
    id: CorrelationId,
    armed: bool,
}

impl<R: Runtime> Drop for CancelOnDrop<'_, R> {
    fn drop(&mut self) {
        if self.armed {
            self.client.cancel(self.id);
        }
    }
}
