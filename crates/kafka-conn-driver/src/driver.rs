//! The task that [`Client`](crate::Client) talks to: it owns the
//! [`Engine`] (socket and core) and hands its outcomes to the waiting
//! handles through oneshot channels.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream as _;
use futures_io::{AsyncRead, AsyncWrite};
use kafka_conn_core::{
    CloseReason, Connection, CorrelationId, RequestError, Response, SaslSession, Stats,
};

use crate::client::{Command, Shared};
use crate::engine::{apply_throttle, Engine, Outcomes, ReadyReport};
use crate::error::RequestFailure;
use crate::runtime::Runtime;

type Reply = oneshot::Sender<Result<Response, RequestFailure>>;

/// The connection's task: the engine, and the handles' side of it.
pub(crate) struct Driver<R: Runtime, S> {
    engine: Engine<R, S>,
    handles: Handles,
}

/// What the task knows of the handles: their commands, their waiters and
/// what it publishes for them.
struct Handles {
    commands: mpsc::UnboundedReceiver<Command>,
    /// Every handle is gone: the connection was closed for that.
    gone: bool,
    /// Waiters by correlation id, and the ids by the handles' keys (a
    /// dropped send future only knows its key).
    pending: IdMap<CorrelationId, (u64, Reply)>,
    ids: IdMap<u64, CorrelationId>,
    shared: Arc<Shared>,
    ready: Option<oneshot::Sender<ReadyReport>>,
    close_watchers: Vec<oneshot::Sender<CloseReason>>,
    /// What `publish` last wrote to `shared`: unchanged counters skip the
    /// lock.
    published: (Stats, usize),
    closed: Option<CloseReason>,
}

impl<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + Send> Driver<R, S> {
    /// The task for `engine`, serving the handles on `commands`.
    pub(crate) fn new(
        engine: Engine<R, S>,
        commands: mpsc::UnboundedReceiver<Command>,
        shared: Arc<Shared>,
        ready: oneshot::Sender<ReadyReport>,
    ) -> Self {
        Self {
            engine,
            handles: Handles {
                commands,
                gone: false,
                pending: IdMap::default(),
                ids: IdMap::default(),
                shared,
                ready: Some(ready),
                close_watchers: Vec::new(),
                published: (Stats::default(), 0),
                closed: None,
            },
        }
    }
}

impl Handles {
    /// Takes commands from the handles. Returns whether any came.
    fn poll_commands<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        engine: &mut Engine<R, S>,
        cx: &mut Context<'_>,
    ) -> bool {
        let mut progress = false;
        while !self.gone {
            match Pin::new(&mut self.commands).poll_next(cx) {
                Poll::Ready(Some(cmd)) => {
                    progress = true;
                    let now = engine.now();
                    self.on_command(cmd, &mut engine.conn, now);
                }
                Poll::Ready(None) => {
                    // Every handle (and the connecting future) is gone.
                    tracing::debug!("last handle dropped: closing");
                    self.gone = true;
                    engine.conn.close(engine.now());
                    progress = true;
                }
                Poll::Pending => break,
            }
            engine.drain_events(self);
        }
        progress
    }

    fn on_command(&mut self, cmd: Command, conn: &mut Connection, now: Instant) {
        match cmd {
            Command::Send {
                key,
                request,
                reply,
            } => {
                if reply.is_canceled() {
                    return;
                }
                match conn.send_request(request, now) {
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
                let accepted = conn.send_request(request, now);
                let _ = reply.send(accepted.map(drop).map_err(RequestFailure::Refused));
            }
            Command::Cancel { key } => {
                if let Some(id) = self.ids.remove(&key) {
                    self.pending.remove(&id);
                    // The slot stays in the core so the response is read and dropped.
                    conn.cancel(id, now);
                }
            }
            Command::Close => conn.close(now),
            Command::Throttle {
                api_key,
                version,
                throttle_time_ms,
            } => apply_throttle(conn, api_key, version, throttle_time_ms, now),
            Command::WatchClose(tx) => match &self.closed {
                Some(r) => {
                    let _ = tx.send(r.clone());
                }
                None => self.close_watchers.push(tx),
            },
        }
    }

    /// After close: answer what is still queued.
    fn finish(&mut self) {
        self.commands.close();
        let reason = self.closed.clone().expect("finish only after close");
        let refused =
            || RequestFailure::Refused(kafka_conn_core::SendError::Closed(reason.clone()));
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Send { reply, .. } => {
                    let _ = reply.send(Err(refused()));
                }
                Command::SendWithoutResponse { reply, .. } => {
                    let _ = reply.send(Err(refused()));
                }
                Command::WatchClose(tx) => {
                    let _ = tx.send(reason.clone());
                }
                Command::Cancel { .. } | Command::Close | Command::Throttle { .. } => {}
            }
        }
    }
}

impl Outcomes for Handles {
    fn publish(&mut self, conn: &Connection) {
        let now = (conn.stats(), conn.in_flight());
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

    fn response(&mut self, response: Response) {
        if let Some((key, reply)) = self.pending.remove(&response.correlation_id) {
            self.ids.remove(&key);
            // The caller may have gone meanwhile: nothing to do then.
            let _ = reply.send(Ok(response));
        }
    }

    fn request_failed(&mut self, id: CorrelationId, error: RequestError) {
        if let Some((key, reply)) = self.pending.remove(&id) {
            self.ids.remove(&key);
            let _ = reply.send(Err(RequestFailure::Failed(error)));
        }
    }

    fn ready(&mut self, report: ReadyReport) {
        if let Ok((_, sasl)) = &report.result {
            self.shared.lock().sasl.clone_from(sasl);
        }
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(report);
        }
    }

    fn reauthenticated(&mut self, session: SaslSession) {
        self.shared.lock().sasl = Some(session);
    }

    fn tls_alert(&mut self, alert: String) {
        self.shared.lock().tls_alert = Some(alert);
    }

    fn closed(&mut self, reason: &CloseReason, conn: &Connection) {
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
            p.stats = conn.stats();
            p.in_flight = 0;
        }
        for tx in self.close_watchers.drain(..) {
            let _ = tx.send(reason.clone());
        }
        self.closed = Some(reason.clone());
    }
}

impl<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + Send> Future for Driver<R, S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Driver { engine, handles } = self.get_mut();
        // The command channel returns Pending only once empty (or closed),
        // so one call per poll is enough.
        let commands = handles.poll_commands(engine, cx);
        match engine.poll(cx, handles, commands) {
            Poll::Ready(()) => {
                handles.finish();
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
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
