//! The handle callers hold: a cheap `Clone` that sends commands to the
//! connection's task and awaits the answers.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_channel::{mpsc, oneshot};
use kafka_conn_core::{
    ApiKey, ApiVersions, BrokenCause, CloseReason, Phase, Request, RequestError, Response,
    SaslSession, SendError, Stats,
};

use crate::error::RequestFailure;
use crate::info::ConnectInfo;

/// What a handle asks the connection's task to do.
pub(crate) enum Command {
    /// Send a request; answer on `reply`.
    Send {
        key: u64,
        request: Request,
        reply: oneshot::Sender<Result<Response, RequestFailure>>,
    },
    /// Send a request that gets no response (Produce `acks=0`); answer on
    /// `reply` once the connection accepted it.
    SendWithoutResponse {
        request: Request,
        reply: oneshot::Sender<Result<(), RequestFailure>>,
    },
    /// The send future with this key was dropped: stop waiting.
    Cancel { key: u64 },
    /// Close gracefully.
    Close,
    /// Tell me the close reason when the connection closes.
    WatchClose(oneshot::Sender<CloseReason>),
    /// A response carried `throttle_time_ms` (KIP-219): let the core decide
    /// whether to hold later requests.
    Throttle {
        api_key: ApiKey,
        version: i16,
        throttle_time_ms: i32,
    },
}

/// State the task publishes for the handles to read without a round trip.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<Published>,
}

/// See [`Shared`].
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) stats: Stats,
    pub(crate) in_flight: usize,
    pub(crate) sasl: Option<SaslSession>,
    pub(crate) close_reason: Option<CloseReason>,
    /// A TLS alert the broker sent after the handshake (an mTLS refusal
    /// arrives that way with TLS 1.3), for `connect` to report.
    pub(crate) tls_alert: Option<String>,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        // A panic while holding this lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    next_key: AtomicU64,
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
    pub(crate) fn new(
        commands: mpsc::UnboundedSender<Command>,
        shared: Arc<Shared>,
        info: ConnectInfo,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                commands,
                shared,
                next_key: AtomicU64::new(0),
                info: Arc::new(info),
            }),
        }
    }

    /// Sends a request and waits for its response.
    ///
    /// Cancellation safe: the future only queues the request for the
    /// connection's task, which alone writes to the socket, so dropping it
    /// at any point never leaves half a frame behind. A dropped request's
    /// response is read and discarded when it arrives.
    ///
    /// A request built with [`Request::without_response`] is refused with
    /// [`RequestFailure::NoResponseExpected`]: use
    /// [`Client::send_without_response`] for it.
    pub async fn send(&self, request: Request) -> Result<Response, RequestFailure> {
        if !request.expects_response() {
            return Err(RequestFailure::NoResponseExpected);
        }
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let command = Command::Send {
            key,
            request,
            reply,
        };
        if self.inner.commands.unbounded_send(command).is_err() {
            return Err(RequestFailure::Refused(SendError::Closed(
                self.sticky_reason(),
            )));
        }
        let guard = CancelOnDrop {
            key,
            commands: &self.inner.commands,
            armed: true,
        };
        let outcome = answer.await;
        guard.disarm();
        match outcome {
            Ok(result) => result,
            // The task ended without answering (it only does that when it
            // is gone, e.g. its runtime shut down).
            Err(oneshot::Canceled) => Err(RequestFailure::Failed(RequestError::ConnectionClosed(
                self.sticky_reason(),
            ))),
        }
    }

    /// Sends a request that gets no response (Produce with `acks=0`) and
    /// returns once the connection has accepted it: its bytes go out in
    /// order with the other requests. Nothing tells whether the broker
    /// processed it; that is what `acks=0` means.
    pub async fn send_without_response(&self, request: Request) -> Result<(), RequestFailure> {
        let (reply, answer) = oneshot::channel();
        let command = Command::SendWithoutResponse {
            request: request.without_response(),
            reply,
        };
        if self.inner.commands.unbounded_send(command).is_err() {
            return Err(RequestFailure::Refused(SendError::Closed(
                self.sticky_reason(),
            )));
        }
        answer.await.unwrap_or_else(|oneshot::Canceled| {
            Err(RequestFailure::Refused(SendError::Closed(
                self.sticky_reason(),
            )))
        })
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
            // An error means the task is gone: there is nothing left to hold.
            let _ = self.inner.commands.unbounded_send(Command::Throttle {
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
        self.inner.shared.lock().sasl.clone()
    }

    /// The connection's counters, as of the task's last turn. They already
    /// count every response that any handle has been given.
    pub fn stats(&self) -> Stats {
        self.inner.shared.lock().stats
    }

    /// Requests awaiting a response on the wire, as of the task's last turn
    /// (including dropped ones whose responses will be discarded). Like
    /// [`Client::stats`], it is never older than the responses handed out.
    pub fn in_flight(&self) -> usize {
        self.inner.shared.lock().in_flight
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.lock().close_reason.is_some()
    }

    /// Why the connection closed, if it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.shared.lock().close_reason.clone()
    }

    /// Starts a graceful close: pending requests fail with
    /// [`CloseReason::Shutdown`]. Await [`Client::closed`] for the end.
    pub fn close(&self) {
        // An error means the task is already gone: nothing left to close.
        let _ = self.inner.commands.unbounded_send(Command::Close);
    }

    /// Waits until the connection closes and returns why.
    pub async fn closed(&self) -> CloseReason {
        if let Some(r) = self.close_reason() {
            return r;
        }
        let (tx, rx) = oneshot::channel();
        if self
            .inner
            .commands
            .unbounded_send(Command::WatchClose(tx))
            .is_ok()
        {
            if let Ok(reason) = rx.await {
                return reason;
            }
        }
        self.sticky_reason()
    }

    /// The published close reason; the task publishes it before it drops
    /// its end of the command channel, so this is only a fallback for a
    /// task that vanished (its runtime shut down).
    fn sticky_reason(&self) -> CloseReason {
        self.close_reason().unwrap_or(CloseReason::Broken {
            cause: BrokenCause::Io {
                kind: std::io::ErrorKind::Other,
                message: "the connection task is gone (runtime shut down?)".to_owned(),
            },
            during: Phase::Ready,
        })
    }
}

/// Tells the task a send future was dropped before its answer came.
struct CancelOnDrop<'a> {
    key: u64,
    commands: &'a mpsc::UnboundedSender<Command>,
    armed: bool,
}

impl CancelOnDrop<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Ignored error: a gone task has nothing left to cancel.
            let _ = self
                .commands
                .unbounded_send(Command::Cancel { key: self.key });
        }
    }
}
