//! The handle callers hold: a cheap `Clone` that queues requests for the
//! connection's task and awaits the answers in completion slots (see
//! `queue.rs`).

use std::future::Future;
use std::ops::{Deref, RangeInclusive};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_channel::oneshot;
use kafka_conn_core::{ApiKey, ApiVersions, CloseReason, Request, Response, SaslSession, Stats};

use crate::error::RequestFailure;
use crate::info::ConnectInfo;
use crate::queue::{task_gone_reason, Command, Outcome, Shared};

/// The connecting future's, then the [`Client`]'s, hold on the
/// connection's task: when it is dropped (the last clone, or a `connect`
/// that was abandoned), the task closes the connection.
#[derive(Debug)]
pub(crate) struct Handle(pub(crate) Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.handles_gone();
    }
}

/// A connection to one broker. Cheap to clone; all clones share the
/// connection, and requests from many tasks are pipelined on it. Dropping
/// the last clone closes the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    info: Arc<ConnectInfo>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.info.address)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(handle: Handle, info: ConnectInfo) -> Self {
        Self {
            inner: Arc::new(Inner {
                handle,
                info: Arc::new(info),
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.handle.0
    }

    /// Sends a request and waits for its response.
    ///
    /// When the connection already holds
    /// [`max_queued`](Self::max_queued) requests (see
    /// [`ConnectConfig::with_max_queued_requests`](crate::ConnectConfig::with_max_queued_requests)),
    /// the future first waits for one of them to finish (backpressure, in
    /// the order the senders came); [`Client::try_send`] fails instead.
    ///
    /// Cancellation safe: the future only queues the request for the
    /// connection's task, which alone writes to the socket, so dropping it
    /// at any point never leaves half a frame behind. A dropped request's
    /// response is read and discarded when it arrives, and its place in
    /// the queue is given back.
    ///
    /// A request built with [`Request::without_response`] is refused with
    /// [`RequestFailure::NoResponseExpected`]: use
    /// [`Client::send_without_response`] for it.
    pub fn send(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, RequestFailure>> + Send + '_ {
        ResponseOf::new(self.shared(), request)
    }

    /// Queues a request at once, or fails at once with
    /// [`RequestFailure::Overloaded`] when the connection already holds
    /// [`max_queued`](Self::max_queued) requests (or with
    /// [`RequestFailure::Refused`] when it is closed); the returned future
    /// then waits for the response as [`Client::send`]'s does (and, like
    /// it, may be dropped at any point). For callers that would rather shed
    /// load than wait: Overloaded is retriable.
    pub fn try_send(
        &self,
        request: Request,
    ) -> Result<impl Future<Output = Result<Response, RequestFailure>> + Send + '_, RequestFailure>
    {
        if !request.expects_response() {
            return Err(RequestFailure::NoResponseExpected);
        }
        let mut request = Some(request);
        match self.shared().submit(None, &mut request, &mut None) {
            Poll::Ready(Ok(slot)) => Ok(ResponseOf(SendFuture {
                shared: self.shared(),
                state: State::Waiting(slot),
            })),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => unreachable!("a submit without a waker never waits"),
        }
    }

    /// Sends a request that gets no response (Produce with `acks=0`) and
    /// returns once the connection has accepted it: its bytes go out in
    /// order with the other requests. Nothing tells whether the broker
    /// processed it; that is what `acks=0` means. It waits for room as
    /// [`Client::send`] does.
    pub async fn send_without_response(&self, request: Request) -> Result<(), RequestFailure> {
        SendFuture {
            shared: self.shared(),
            state: State::Submit(Some(request.without_response()), None),
        }
        .await
        .into_accepted()
    }

    /// Tells the connection that a response to `version` of `api_key`
    /// carried `throttle_time_ms` (KIP-219), for callers that decode
    /// responses themselves (`Client::send_typed` does it for you). Where
    /// that version expects the client to back off
    /// ([`ApiKey::client_throttles`]) and the time is positive, requests sent
    /// after this call wait (queued, not refused) until the throttle ends;
    /// otherwise nothing happens. The wait shows in [`Stats::throttled`].
    pub fn handle_throttle_time(&self, api_key: ApiKey, version: i16, throttle_time_ms: i32) {
        // Every positive throttle goes to the core: it holds requests only
        // where KIP-219 says so, and reports each one to observers.
        if throttle_time_ms > 0 {
            // An error means the connection closed: there is nothing left to hold.
            let _ = self.shared().command(Command::Throttle {
                api_key,
                version,
                throttle_time_ms,
            });
        }
    }

    /// What the broker supports (negotiated before `connect` returned).
    pub fn api_versions(&self) -> &Arc<ApiVersions> {
        &self.inner.info.api_versions
    }

    /// The highest version of `api_key` both the broker and `ours` support.
    pub fn negotiate(&self, api_key: ApiKey, ours: RangeInclusive<i16>) -> Option<i16> {
        self.inner.info.api_versions.negotiate(api_key, ours)
    }

    /// How the connection was made: address, timings, TLS, versions, SASL.
    pub fn info(&self) -> &ConnectInfo {
        &self.inner.info
    }

    /// The current SASL session (updated by re-authentication).
    pub fn sasl_session(&self) -> Option<SaslSession> {
        self.shared().lock().sasl.clone()
    }

    /// The connection's counters, as of the task's last turn. They already
    /// count every response that any handle has been given.
    pub fn stats(&self) -> Stats {
        self.shared().lock().stats
    }

    /// Requests awaiting a response on the wire, as of the task's last turn
    /// (including dropped ones whose responses will be discarded). Like
    /// [`Client::stats`], it is never older than the responses handed out.
    pub fn in_flight(&self) -> usize {
        self.shared().lock().in_flight
    }

    /// Requests this connection holds for its callers now: from the
    /// `send` that queued one until its caller has the outcome (waiting for
    /// the connection's task, held back by the core, on the wire, or
    /// answered and not yet taken), plus dropped ones whose cancellation
    /// the task has not seen yet. Never more than
    /// [`max_queued`](Self::max_queued): the gauge of the backpressure.
    pub fn queued(&self) -> usize {
        self.shared().lock().queued()
    }

    /// The bound on [`queued`](Self::queued)
    /// ([`ConnectConfig::with_max_queued_requests`](crate::ConnectConfig::with_max_queued_requests)).
    pub fn max_queued(&self) -> usize {
        self.shared().lock().max_queued()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.shared().lock().close_reason.is_some()
    }

    /// Why the connection closed, if it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared().lock().close_reason.clone()
    }

    /// Starts a graceful close: pending requests fail with
    /// [`CloseReason::Shutdown`]. Await [`Client::closed`] for the end. The
    /// close overtakes requests still waiting for room.
    pub fn close(&self) {
        self.shared().request_close();
    }

    /// Waits until the connection closes and returns why.
    pub async fn closed(&self) -> CloseReason {
        if let Some(r) = self.close_reason() {
            return r;
        }
        let (tx, rx) = oneshot::channel();
        if self.shared().command(Command::WatchClose(tx)).is_ok() {
            if let Ok(reason) = rx.await {
                return reason;
            }
        }
        self.close_reason().unwrap_or_else(task_gone_reason)
    }
}

/// Where a request is between its caller and the connection.
enum State {
    /// Not queued yet (waiting for room, with its ticket once it waits).
    Submit(Option<Request>, Option<u64>),
    /// Queued: the outcome comes in this slot.
    Waiting(u32),
    /// Refused before queueing: a request without a response given to
    /// `send` ([`RequestFailure::NoResponseExpected`], the only refusal
    /// made before queueing). A unit variant rather than the error itself:
    /// the error is built when polled, and does not size every request's
    /// future.
    NoResponse,
    Done,
}

/// One request's future: a slot, no channel (see `queue.rs`). Dropping it
/// gives back its place in the line for room, or its slot (the task
/// cancels the request in the core).
///
/// `S` is how it reaches the connection's queue: `&Shared` for
/// [`Client::send`] (the future borrows the `Client`), [`Held`] for an
/// [`OwnedSend`] (the future owns what keeps the `Client` alive).
struct SendFuture<S: Deref<Target = Shared>> {
    shared: S,
    state: State,
}

impl<S: Deref<Target = Shared> + Unpin> Future for SendFuture<S> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        match &mut this.state {
            State::Submit(request, ticket) => {
                match this.shared.submit(Some(cx), request, ticket) {
                    // The task has not seen it yet: nothing to look at
                    // before it wakes us.
                    Poll::Ready(Ok(slot)) => {
                        this.state = State::Waiting(slot);
                        Poll::Pending
                    }
                    Poll::Ready(Err(e)) => {
                        this.state = State::Done;
                        Poll::Ready(Outcome::failed(e))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            State::Waiting(slot) => {
                let done = this.shared.poll_slot(cx, *slot);
                if done.is_ready() {
                    this.state = State::Done;
                }
                done
            }
            State::NoResponse => {
                this.state = State::Done;
                Poll::Ready(Outcome::failed(RequestFailure::NoResponseExpected))
            }
            State::Done => panic!("a send future polled after it completed"),
        }
    }
}

impl<S: Deref<Target = Shared>> Drop for SendFuture<S> {
    fn drop(&mut self) {
        match self.state {
            State::Submit(_, Some(ticket)) => self.shared.leave_room_queue(ticket),
            State::Waiting(slot) => self.shared.abandon(slot),
            State::Submit(_, None) | State::NoResponse | State::Done => {}
        }
    }
}

/// [`SendFuture`] for a request that expects a response.
struct ResponseOf<S: Deref<Target = Shared>>(SendFuture<S>);

impl<S: Deref<Target = Shared>> ResponseOf<S> {
    /// `send`'s future: `request` queued at the first poll, or refused
    /// then if it expects no response.
    fn new(shared: S, request: Request) -> Self {
        let state = if request.expects_response() {
            State::Submit(Some(request), None)
        } else {
            State::NoResponse
        };
        ResponseOf(SendFuture { shared, state })
    }
}

impl<S: Deref<Target = Shared> + Unpin> Future for ResponseOf<S> {
    type Output = Result<Response, RequestFailure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0)
            .poll(cx)
            .map(Outcome::into_response)
    }
}

/// The connection's queue reached through an owner of a [`Client`] (a
/// `Client` itself, or a lease that holds one alive): what an
/// [`OwnedSend`] holds instead of a borrow.
struct Held<H>(H);

impl<H: AsRef<Client>> Deref for Held<H> {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        self.0.as_ref().shared()
    }
}

/// [`Client::send`]'s future, owning `H`, what keeps the [`Client`] alive,
/// instead of borrowing it: for callers that must keep something else with
/// the request for as long as it runs (the cluster's lease, which counts it
/// in flight) without wrapping the send in one more `async` state machine.
/// Behaves as `Client::send`'s future does (same queueing, backpressure,
/// errors, and cancellation safety: dropping it gives back its place or
/// its slot, then drops `H`).
pub(crate) struct OwnedSend<H: AsRef<Client>>(ResponseOf<Held<H>>);

impl<H: AsRef<Client>> OwnedSend<H> {
    /// Sends `request` on `holder`'s `Client` (queued at the first poll,
    /// as [`Client::send`] does).
    #[inline]
    pub(crate) fn new(holder: H, request: Request) -> Self {
        OwnedSend(ResponseOf::new(Held(holder), request))
    }

    /// What the future owns (the lease, for the error path).
    #[inline]
    pub(crate) fn holder(&self) -> &H {
        &self.0 .0.shared.0
    }
}

impl<H: AsRef<Client> + Unpin> Future for OwnedSend<H> {
    type Output = Result<Response, RequestFailure>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-byte holder, as the cluster's lease is.
    struct Pair {
        client: Client,
        _other: usize,
    }

    impl AsRef<Client> for Pair {
        fn as_ref(&self) -> &Client {
            &self.client
        }
    }

    /// The sizes the request path moves: `Client::send`'s future, and an
    /// owned one with a 16-byte holder, stay below 128 bytes (above that,
    /// moving a future is a `memcpy` call rather than inline moves; see
    /// docs/benchmarks.md, issue 15). The refusal state holds no error
    /// (88 bytes), so the request and its ticket size the state.
    #[test]
    fn send_futures_stay_small() {
        let borrowed = std::mem::size_of::<ResponseOf<&Shared>>();
        let owned = std::mem::size_of::<OwnedSend<Pair>>();
        eprintln!("Client::send's future: {borrowed} bytes; owned, 16-byte holder: {owned}");
        assert!(borrowed < 128, "Client::send's future is {borrowed} bytes");
        assert!(owned < 128, "an owned send future is {owned} bytes");
    }
}
