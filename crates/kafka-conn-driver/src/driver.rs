//! The task that [`Client`](crate::Client) talks to: it owns the
//! [`Engine`] (socket and core), takes the handles' commands in batches
//! and hands its outcomes to their completion slots (see `queue.rs`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_channel::oneshot;
use futures_io::AsyncWrite;
use kafka_conn_core::{
    CloseReason, Connection, CorrelationId, RequestError, Response, SaslSession, Stats,
};

use crate::engine::{apply_throttle, Engine, Outcomes, ReadyReport};
use crate::error::RequestFailure;
use crate::queue::{Command, Outcome, Shared};
use crate::runtime::Runtime;
use crate::spare_read::SpareRead;

/// The connection's task: the engine, and the handles' side of it.
pub(crate) struct Driver<R: Runtime, S> {
    engine: Engine<R, S>,
    handles: Handles,
}

/// What the task knows of the handles: their commands, the slots of the
/// requests in the core, and what it publishes for them.
struct Handles {
    shared: Arc<Shared>,
    /// Commands taken from the handles and not yet done: a request waits
    /// here while the core holds `max_queued` requests already.
    intake: VecDeque<Command>,
    max_queued: usize,
    /// Every handle is gone, or one asked to close: the connection was
    /// closed for that.
    gone: bool,
    close_requested: bool,
    /// The requests the core holds for callers, in the order they were
    /// sent (which is their correlation ids' order and, Kafka answering in
    /// order, their responses'), with their slots: a response is almost
    /// always the front one. A cancel, which knows only the slot, searches
    /// it (cancels are rare; a table by slot cost every request two writes).
    pending: VecDeque<(CorrelationId, u32)>,
    /// How many slots `pending`, `done` and `wakers` have room for.
    room_for_slots: usize,
    /// Outcomes of this poll, handed to their slots when it ends, and the
    /// callers to wake then (scratch space, kept for its capacity).
    done: Vec<(u32, Outcome)>,
    wakers: Vec<Waker>,
    ready: Option<oneshot::Sender<ReadyReport>>,
    close_watchers: Vec<oneshot::Sender<CloseReason>>,
    /// What was last published: unchanged counters are not written again.
    published: (Stats, usize),
    closed: Option<CloseReason>,
    /// Callers waiting for room, as the last look at the shared state saw
    /// them (for the observer's gauge; read under the lock taken anyway).
    waiting_for_room: usize,
}

impl<R: Runtime, S: SpareRead<R> + AsyncWrite + Send> Driver<R, S> {
    /// The task for `engine`, serving the handles through `shared`.
    pub(crate) fn new(
        engine: Engine<R, S>,
        shared: Arc<Shared>,
        ready: oneshot::Sender<ReadyReport>,
    ) -> Self {
        let max_queued = shared.lock().max_queued();
        Self {
            engine,
            handles: Handles {
                shared,
                intake: VecDeque::new(),
                max_queued,
                gone: false,
                close_requested: false,
                pending: VecDeque::new(),
                room_for_slots: 0,
                done: Vec::new(),
                wakers: Vec::new(),
                ready: Some(ready),
                close_watchers: Vec::new(),
                published: (Stats::default(), 0),
                closed: None,
                waiting_for_room: 0,
            },
        }
    }
}

impl Handles {
    /// Takes the handles' commands (one lock for all of them) and the
    /// close flags. Returns whether anything new came.
    fn take_commands<R: Runtime, S: SpareRead<R> + AsyncWrite + Send>(
        &mut self,
        engine: &mut Engine<R, S>,
        cx: &Context<'_>,
    ) -> bool {
        let before = self.intake.len();
        let flags = self.shared.take_commands(cx, &mut self.intake);
        self.waiting_for_room = flags.waiting_for_room;
        let mut progress = self.intake.len() != before;
        if flags.gone && !self.gone {
            tracing::debug!("last handle dropped: closing");
            self.gone = true;
            engine.conn.close(engine.now());
            progress = true;
        }
        if flags.close_requested && !self.close_requested {
            self.close_requested = true;
            engine.conn.close(engine.now());
            progress = true;
        }
        progress
    }

    /// Whether the core holds as many requests as the bound allows
    /// (including cancelled ones whose responses it still waits for).
    fn core_full(&self, conn: &Connection) -> bool {
        conn.in_flight() + conn.held() >= self.max_queued
    }

    /// Does the commands taken, in order, until a request finds the core
    /// full. Returns whether any was done.
    fn run_intake<R: Runtime, S: SpareRead<R> + AsyncWrite + Send>(
        &mut self,
        engine: &mut Engine<R, S>,
    ) -> bool {
        if self.intake.is_empty() || engine.conn.is_closed() {
            return false;
        }
        // One clock read for the batch.
        let now = engine.now();
        let mut progress = false;
        while let Some(command) = self.intake.front() {
            if matches!(command, Command::Send { .. }) && self.core_full(&engine.conn) {
                progress |= self.cancel_behind_stall(&mut engine.conn, now);
                break;
            }
            let Some(command) = self.intake.pop_front() else {
                break;
            };
            progress = true;
            self.on_command(command, &mut engine.conn, now);
        }
        engine.drain_events(self);
        progress
    }

    /// While requests wait for the core to have room, the cancels queued
    /// behind them are done at once: a dropped request still waiting here
    /// is removed with its cancel (it never reaches the core), one in the
    /// core is cancelled there; either way its place is given back now,
    /// not once the broker reads again. Returns whether any was done.
    fn cancel_behind_stall(&mut self, conn: &mut Connection, now: Instant) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.intake.len() {
            let Command::Cancel { slot } = self.intake[i] else {
                i += 1;
                continue;
            };
            let queued = (0..i)
                .find(|&j| matches!(&self.intake[j], Command::Send { slot: s, .. } if *s == slot));
            match queued {
                Some(j) => {
                    // The later index first, so that `j` stays valid.
                    self.intake.remove(i);
                    self.intake.remove(j);
                    self.done.push((slot, Outcome::Cancelled));
                    i -= 1;
                }
                None => {
                    self.intake.remove(i);
                    self.on_command(Command::Cancel { slot }, conn, now);
                }
            }
            progress = true;
        }
        progress
    }

    fn on_command(&mut self, command: Command, conn: &mut Connection, now: Instant) {
        match command {
            Command::Send { slot, request } => {
                let expects_response = request.expects_response();
                match conn.send_request(request, now) {
                    Ok(id) if expects_response => {
                        let need = slot as usize + 1;
                        if need > self.room_for_slots {
                            // A new slot (warm-up): room for an entry, an
                            // outcome and a wake-up per slot, so that a
                            // burst never allocates.
                            self.pending.reserve(need - self.pending.len());
                            self.done.reserve(need.saturating_sub(self.done.len()));
                            self.wakers.reserve(need.saturating_sub(self.wakers.len()));
                            self.room_for_slots = need;
                        }
                        self.pending.push_back((id, slot));
                    }
                    Ok(_) => self.done.push((slot, Outcome::Accepted)),
                    Err(e) => self
                        .done
                        .push((slot, Outcome::failed(RequestFailure::Refused(e)))),
                }
            }
            Command::Cancel { slot } => {
                // Not pending: its outcome came first, and freed the slot
                // (which no later request can hold yet: its `Send` is
                // queued behind this cancel).
                if let Some(pos) = self.pending.iter().position(|&(_, s)| s == slot) {
                    let (id, _) = self.pending.remove(pos).expect("found above");
                    // The core keeps a request on the wire so that its
                    // response is read and dropped; it counts towards
                    // `core_full` until then.
                    conn.cancel(id, now);
                    self.done.push((slot, Outcome::Cancelled));
                }
            }
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

    /// Stops tracking request `id`; returns its slot if it had one.
    fn forget(&mut self, id: CorrelationId) -> Option<u32> {
        match self.pending.front() {
            Some(&(front, slot)) if front == id => {
                self.pending.pop_front();
                Some(slot)
            }
            // Out of order: a cancelled request (its entry went first), a
            // late response to one, or the core's own requests.
            _ => {
                let pos = self.pending.iter().position(|&(p, _)| p == id)?;
                self.pending.remove(pos).map(|(_, slot)| slot)
            }
        }
    }

    /// The outcome of the request `id`, for its slot (if its caller still
    /// has one).
    fn outcome(&mut self, id: CorrelationId, outcome: Outcome) {
        if let Some(slot) = self.forget(id) {
            self.done.push((slot, outcome));
        }
    }
}

impl Outcomes for Handles {
    #[inline]
    fn client_queue(&self) -> (usize, usize) {
        // Asked whenever the connection goes idle (every request at
        // concurrency 1), when the intake is almost always empty.
        if self.intake.is_empty() {
            return (0, self.waiting_for_room);
        }
        // Only requests wait in the intake after a poll (it stops at a
        // request that finds the core full); count them, not cancels.
        let sends = self
            .intake
            .iter()
            .filter(|c| matches!(c, Command::Send { .. }))
            .count();
        (sends, self.waiting_for_room)
    }

    fn flush(&mut self, conn: &Connection) {
        let now = (conn.stats(), conn.in_flight());
        let changed = now != self.published;
        if !changed && self.done.is_empty() {
            return;
        }
        let published = if changed {
            if now.0.throttled > self.published.0.throttled {
                tracing::debug!(
                    waited = ?(now.0.throttled - self.published.0.throttled),
                    total = ?now.0.throttled,
                    "throttle (KIP-219) over: sending held requests"
                );
            }
            self.published = now;
            Some(now)
        } else {
            None
        };
        self.shared
            .complete(&mut self.done, published, &mut self.wakers);
    }

    fn response(&mut self, response: Response) {
        self.outcome(response.correlation_id, Outcome::Response(response));
    }

    fn request_failed(&mut self, id: CorrelationId, error: RequestError) {
        self.outcome(id, Outcome::failed(RequestFailure::Failed(error)));
    }

    fn ready(&mut self, report: ReadyReport) {
        {
            let mut p = self.shared.lock();
            if let Ok((_, sasl)) = &report.result {
                p.sasl.clone_from(sasl);
            }
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
        // The core failed every request it accepted before Closed: hand
        // those failures out first, then fail what it never saw.
        self.flush(conn);
        self.pending.clear();
        self.closed = Some(reason.clone());
        self.shared.close(
            reason,
            conn.stats(),
            &mut self.intake,
            &mut self.close_watchers,
        );
    }
}

impl<R: Runtime, S: SpareRead<R> + AsyncWrite + Send> Future for Driver<R, S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Driver { engine, handles } = self.get_mut();
        let mut progress = handles.take_commands(engine, cx);
        progress |= handles.run_intake(engine);
        loop {
            if engine.poll(cx, handles, progress).is_ready() {
                return Poll::Ready(());
            }
            // Responses made room in the core for requests that waited for
            // it: feed them and drive again (their callers wait on us).
            if handles.intake.is_empty() || handles.core_full(&engine.conn) {
                return Poll::Pending;
            }
            progress = handles.run_intake(engine);
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

impl<R: Runtime, S> Drop for Driver<R, S> {
    fn drop(&mut self) {
        // Dropped before the connection closed (its runtime shut down):
        // no caller may wait forever.
        if self.handles.closed.is_none() {
            self.handles.shared.task_gone();
        }
    }
}
