//! The request queue between the [`Client`](crate::Client) handles and the
//! connection's task: one lock, a slab of completion slots, and the bound
//! on queued requests (issues 18 and 20).
//!
//! A `send` takes a free slot (its index is the whole handle of the
//! request: no oneshot, no channel node, no allocation once the slab has
//! grown to the connection's concurrency), stores its waker there and
//! queues `Command::Send { slot, request }`; it wakes the task only if no
//! wake-up is pending already. The task swaps the whole command queue out
//! under the lock (a batch, into a deque of its own that keeps its
//! capacity), feeds the requests to the core, and when the poll ends hands
//! every response of the poll to its slot under one lock, then wakes each
//! waiting caller once, after unlocking. The caller takes its result and
//! frees the slot.
//!
//! Backpressure (issue 18): a connection holds at most `max_queued` slots,
//! counted from the `send` that takes one to the caller taking the result
//! (queued here, held by the core, on the wire, or answered and not yet
//! taken). A `send` that finds no room waits for one in FIFO order; the
//! non-waiting [`Client::try_send`](crate::Client::try_send) fails with
//! [`RequestFailure::Overloaded`] instead. The task also stops feeding
//! requests to the core while the core already holds `max_queued` of them
//! (in flight or held back), which bounds the requests whose callers gave
//! up (their responses are read and dropped) as well.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_channel::oneshot;
use kafka_conn_core::{
    ApiKey, BrokenCause, CloseReason, Phase, Request, RequestError, Response, SaslSession,
    SendError, Stats,
};

use crate::error::RequestFailure;

/// The default of [`ConnectConfig::with_max_queued_requests`](crate::ConnectConfig::with_max_queued_requests).
pub(crate) const DEFAULT_MAX_QUEUED: usize = 1024;

/// What a request's slot ends with. Not the public `Result`: a response
/// is what almost every request ends with, and it moves four times on its
/// way from the core to the caller (event, scratch list, slot, future), so
/// the rare failure is boxed and the outcome is a response's size, not a
/// failure's (issue 20).
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The response.
    Response(Response),
    /// The connection accepted a request that gets no response.
    Accepted,
    /// Why there is no response.
    Failed(Box<RequestFailure>),
    /// The caller dropped its future before the outcome came: nobody reads
    /// this, the slot is only freed.
    Cancelled,
}

impl Outcome {
    /// The outcome of a failure.
    pub(crate) fn failed(failure: RequestFailure) -> Self {
        Outcome::Failed(Box::new(failure))
    }

    /// What [`Client::send`](crate::Client::send) returns for it.
    pub(crate) fn into_response(self) -> Result<Response, RequestFailure> {
        match self {
            Outcome::Response(response) => Ok(response),
            Outcome::Failed(e) => Err(*e),
            // Not reached: the task answers a request that expects a
            // response with one or with a failure, and only a dropped
            // future's slot is cancelled.
            Outcome::Accepted | Outcome::Cancelled => Err(RequestFailure::Failed(
                RequestError::ConnectionClosed(CloseReason::Shutdown),
            )),
        }
    }

    /// What [`Client::send_without_response`](crate::Client::send_without_response)
    /// returns for it: a request without a response ends accepted (never
    /// with a response, never cancelled while its caller waits).
    pub(crate) fn into_accepted(self) -> Result<(), RequestFailure> {
        match self {
            Outcome::Failed(e) => Err(*e),
            Outcome::Accepted | Outcome::Response(_) | Outcome::Cancelled => Ok(()),
        }
    }
}

/// What a handle asks the connection's task to do. Closing and the last
/// handle's drop are flags, not commands, so that they overtake requests
/// waiting for the core to have room.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send the request of `slot` (a request without a response completes
    /// its slot with `Ok(None)` once the core accepted it).
    Send { slot: u32, request: Request },
    /// The caller of `slot` is gone: cancel its request in the core (its
    /// response is read and dropped) and free the slot.
    Cancel { slot: u32 },
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

/// One request's place between its caller and the task.
#[derive(Debug)]
enum Slot {
    Free,
    /// The request is queued, in the core or on the wire; the caller waits
    /// with this waker.
    Waiting(Option<Waker>),
    /// The outcome, for the caller to take.
    Done(Outcome),
    /// The caller dropped its future; the task frees the slot once its
    /// `Cancel` (queued behind the request) is through.
    Abandoned,
}

/// The state the task and the handles share, behind one lock.
#[derive(Debug)]
pub(crate) struct State {
    // What the task publishes for the handles to read without a round trip.
    pub(crate) stats: Stats,
    pub(crate) in_flight: usize,
    pub(crate) sasl: Option<SaslSession>,
    /// Set once the connection closed; nothing is queued after that.
    pub(crate) close_reason: Option<CloseReason>,
    /// A TLS alert the broker sent after the handshake (an mTLS refusal
    /// arrives that way with TLS 1.3), for `connect` to report.
    pub(crate) tls_alert: Option<String>,

    commands: VecDeque<Command>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots not `Free`.
    queued: usize,
    max_queued: usize,
    /// The task's waker, and whether a wake-up is pending (then nobody
    /// needs to wake it again before it takes the commands).
    task: Option<Waker>,
    notified: bool,
    close_requested: bool,
    /// Every handle (and the connecting future) is gone.
    gone: bool,
    /// Senders waiting for room, oldest first, by ticket.
    room: VecDeque<(u64, Waker)>,
    next_ticket: u64,
}

/// What [`Shared::take_commands`] tells the task besides the commands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flags {
    pub(crate) close_requested: bool,
    pub(crate) gone: bool,
    /// Callers waiting for room (the backpressure's queue), read under the
    /// lock taken anyway, for the observer's gauge.
    pub(crate) waiting_for_room: usize,
}

/// The shared state; see the module docs.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(max_queued: usize) -> Self {
        Self {
            state: Mutex::new(State {
                stats: Stats::default(),
                in_flight: 0,
                sasl: None,
                close_reason: None,
                tls_alert: None,
                commands: VecDeque::new(),
                slots: Vec::new(),
                free: Vec::new(),
                queued: 0,
                max_queued: max_queued.max(1),
                task: None,
                notified: false,
                close_requested: false,
                gone: false,
                room: VecDeque::new(),
                next_ticket: 0,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves consistent data behind
        // (every method below updates it before anything can panic).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- the handles' side ----

    /// Takes a slot for `request` and queues it, or (no room) registers
    /// `cx` to be woken when there is room, or without `cx` fails at once
    /// with `Overloaded`. `ticket` is the caller's place among the waiters,
    /// kept across polls. On success `request` is taken, and the slot holds
    /// `cx`'s waker.
    pub(crate) fn submit(
        &self,
        cx: Option<&Context<'_>>,
        request: &mut Option<Request>,
        ticket: &mut Option<u64>,
    ) -> Poll<Result<u32, RequestFailure>> {
        let mut s = self.lock();
        if let Some(reason) = &s.close_reason {
            let reason = reason.clone();
            s.leave_room_queue(ticket.take());
            return Poll::Ready(Err(RequestFailure::Refused(SendError::Closed(reason))));
        }
        if s.queued >= s.max_queued {
            let Some(cx) = cx else {
                return Poll::Ready(Err(RequestFailure::Overloaded {
                    max_queued: s.max_queued,
                }));
            };
            s.wait_for_room(cx, ticket);
            return Poll::Pending;
        }
        if let Some(t) = ticket.take() {
            // Polled again while still queued for room (e.g. by a select).
            s.room.retain(|(id, _)| *id != t);
        }
        let Some(request) = request.take() else {
            unreachable!("a send future submits its request once");
        };
        let waiting = Slot::Waiting(cx.map(|cx| cx.waker().clone()));
        let slot = match s.free.pop() {
            Some(i) => {
                s.slots[i as usize] = waiting;
                i
            }
            None => {
                let i = u32::try_from(s.slots.len()).expect("at most max_queued slots");
                s.slots.push(waiting);
                // Room for every slot in the free list now, while the slab
                // grows (warm-up), so that freeing never allocates later.
                let slots = s.slots.len();
                s.free.reserve(slots);
                s.keep_room_for_slots();
                i
            }
        };
        s.queued += 1;
        s.commands.push_back(Command::Send { slot, request });
        s.notify_task();
        Poll::Ready(Ok(slot))
    }

    /// The outcome of `slot` if it came (the slot is freed), else `cx` is
    /// registered to be woken when it does.
    pub(crate) fn poll_slot(&self, cx: &Context<'_>, slot: u32) -> Poll<Outcome> {
        let mut s = self.lock();
        let entry = &mut s.slots[slot as usize];
        match entry {
            Slot::Done(_) => {
                let Slot::Done(outcome) = std::mem::replace(entry, Slot::Free) else {
                    unreachable!()
                };
                let next = s.release(slot);
                drop(s);
                if let Some(w) = next {
                    w.wake();
                }
                Poll::Ready(outcome)
            }
            Slot::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Free | Slot::Abandoned => unreachable!("a live send future owns its slot"),
        }
    }

    /// The future of `slot` was dropped before it took the outcome.
    pub(crate) fn abandon(&self, slot: u32) {
        let mut s = self.lock();
        let next = match &s.slots[slot as usize] {
            Slot::Done(_) => {
                s.slots[slot as usize] = Slot::Free;
                s.release(slot)
            }
            Slot::Waiting(_) => {
                s.slots[slot as usize] = Slot::Abandoned;
                if s.close_reason.is_none() {
                    s.commands.push_back(Command::Cancel { slot });
                    s.notify_task();
                }
                None
            }
            Slot::Free | Slot::Abandoned => None,
        };
        drop(s);
        if let Some(w) = next {
            w.wake();
        }
    }

    /// A send future waiting for room was dropped.
    pub(crate) fn leave_room_queue(&self, ticket: u64) {
        let next = self.lock().leave_room_queue(Some(ticket));
        if let Some(w) = next {
            w.wake();
        }
    }

    /// Queues a command other than a request; `false` once closed.
    pub(crate) fn command(&self, command: Command) -> Result<(), Command> {
        let mut s = self.lock();
        if s.close_reason.is_some() {
            return Err(command);
        }
        s.commands.push_back(command);
        s.notify_task();
        Ok(())
    }

    /// Asks the task to close the connection.
    pub(crate) fn request_close(&self) {
        let mut s = self.lock();
        s.close_requested = true;
        s.notify_task();
    }

    /// The last handle is gone: the task closes the connection.
    pub(crate) fn handles_gone(&self) {
        let mut s = self.lock();
        s.gone = true;
        s.notify_task();
    }

    // ---- the task's side ----

    /// Registers the task's waker and moves the queued commands to the end
    /// of `intake` (by swapping when it is empty: both keep their capacity).
    pub(crate) fn take_commands(&self, cx: &Context<'_>, intake: &mut VecDeque<Command>) -> Flags {
        let mut s = self.lock();
        match &s.task {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.task = Some(cx.waker().clone()),
        }
        s.notified = false;
        if intake.is_empty() {
            std::mem::swap(intake, &mut s.commands);
            // The intake's old deque is the shared one now.
            s.keep_room_for_slots();
        } else {
            intake.append(&mut s.commands);
        }
        Flags {
            close_requested: s.close_requested,
            gone: s.gone,
            waiting_for_room: s.room.len(),
        }
    }

    /// Hands `done` to the slots and publishes `stats` in one critical
    /// section (so counters are never older than an answer a caller holds),
    /// then wakes each waiting caller once. `wakers` is scratch space.
    pub(crate) fn complete(
        &self,
        done: &mut Vec<(u32, Outcome)>,
        published: Option<(Stats, usize)>,
        wakers: &mut Vec<Waker>,
    ) {
        {
            let mut s = self.lock();
            if let Some((stats, in_flight)) = published {
                s.stats = stats;
                s.in_flight = in_flight;
            }
            for (slot, outcome) in done.drain(..) {
                let finished = s.finish_slot(slot, || outcome, wakers);
                // A slot is completed once.
                debug_assert!(finished, "slot {slot} completed twice");
            }
        }
        for w in wakers.drain(..) {
            w.wake();
        }
    }

    /// The connection closed: records `reason`, fails what is still queued
    /// (in `intake` and here), answers close watchers and wakes every
    /// sender waiting for room. From now on nothing is queued.
    pub(crate) fn close(
        &self,
        reason: &CloseReason,
        stats: Stats,
        intake: &mut VecDeque<Command>,
        watchers: &mut Vec<oneshot::Sender<CloseReason>>,
    ) {
        let mut wakers = Vec::new();
        {
            let mut s = self.lock();
            s.close_reason = Some(reason.clone());
            s.stats = stats;
            s.in_flight = 0;
            let queued = std::mem::take(&mut s.commands);
            let refused =
                || Outcome::failed(RequestFailure::Refused(SendError::Closed(reason.clone())));
            for command in intake.drain(..).chain(queued) {
                match command {
                    Command::Send { slot, .. } => {
                        s.finish_slot(slot, refused, &mut wakers);
                    }
                    Command::WatchClose(tx) => watchers.push(tx),
                    // Abandoned slots are freed below.
                    Command::Cancel { .. } | Command::Throttle { .. } => {}
                }
            }
            // Nothing holds the rest any more (the core failed each request
            // it accepted before it reported the close).
            let closed = || {
                Outcome::failed(RequestFailure::Failed(RequestError::ConnectionClosed(
                    reason.clone(),
                )))
            };
            for slot in 0..s.slots.len() {
                let slot = u32::try_from(slot).expect("at most max_queued slots");
                s.finish_slot(slot, closed, &mut wakers);
            }
            wakers.extend(s.room.drain(..).map(|(_, w)| w));
        }
        for tx in watchers.drain(..) {
            let _ = tx.send(reason.clone());
        }
        for w in wakers {
            w.wake();
        }
    }

    /// The task ended without closing (its runtime dropped it): fail
    /// everything so that no caller waits forever.
    pub(crate) fn task_gone(&self) {
        if self.lock().close_reason.is_some() {
            return;
        }
        let reason = task_gone_reason();
        let stats = self.lock().stats;
        self.close(&reason, stats, &mut VecDeque::new(), &mut Vec::new());
    }
}

impl State {
    /// Requests holding a slot: see [`crate::Client::queued`].
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    pub(crate) fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// Gives the shared command queue room for one command per slot.
    /// The task swaps this deque with its own intake, so each of the two
    /// must reach that size, whichever is shared when the callers burst;
    /// tying the growth to the slab's (warm-up) instead of to how many
    /// callers happened to submit between two task turns means that, once
    /// the slab stops growing, pushing a `Send` never allocates.
    fn keep_room_for_slots(&mut self) {
        let want = self.slots.len().saturating_sub(self.commands.len());
        if self.commands.capacity() < self.commands.len() + want {
            self.commands.reserve(want);
        }
    }

    fn notify_task(&mut self) {
        if !self.notified {
            self.notified = true;
            if let Some(w) = &self.task {
                w.wake_by_ref();
            }
        }
    }

    /// `slot` became free: returns the waker of the oldest sender waiting
    /// for room, to wake after unlocking.
    fn release(&mut self, slot: u32) -> Option<Waker> {
        self.free.push(slot);
        self.queued -= 1;
        self.room.pop_front().map(|(_, w)| w)
    }

    fn wait_for_room(&mut self, cx: &Context<'_>, ticket: &mut Option<u64>) {
        if let Some(t) = *ticket {
            if let Some((_, w)) = self.room.iter_mut().find(|(id, _)| *id == t) {
                if !w.will_wake(cx.waker()) {
                    *w = cx.waker().clone();
                }
                return;
            }
            // Woken for room that someone else took first: back to the
            // front, it waited longest.
            self.room.push_front((t, cx.waker().clone()));
            return;
        }
        let t = self.next_ticket;
        self.next_ticket += 1;
        *ticket = Some(t);
        self.room.push_back((t, cx.waker().clone()));
    }

    /// A waiting sender leaves: if it was already woken for room it will
    /// not use, the next one gets the wake-up instead.
    fn leave_room_queue(&mut self, ticket: Option<u64>) -> Option<Waker> {
        let t = ticket?;
        if let Some(pos) = self.room.iter().position(|(id, _)| *id == t) {
            self.room.remove(pos);
            return None;
        }
        if self.queued < self.max_queued {
            return self.room.pop_front().map(|(_, w)| w);
        }
        None
    }

    /// Ends `slot` with `outcome()` if its caller waits (built only then:
    /// a closing connection walks every slot, most of them free), or frees
    /// it if abandoned. Returns false, doing nothing, for a slot that is
    /// free or already done.
    fn finish_slot(
        &mut self,
        slot: u32,
        outcome: impl FnOnce() -> Outcome,
        wakers: &mut Vec<Waker>,
    ) -> bool {
        let entry = &mut self.slots[slot as usize];
        match entry {
            Slot::Waiting(waker) => {
                if let Some(w) = waker.take() {
                    wakers.push(w);
                }
                *entry = Slot::Done(outcome());
            }
            Slot::Abandoned => {
                *entry = Slot::Free;
                if let Some(w) = self.release(slot) {
                    wakers.push(w);
                }
            }
            Slot::Free | Slot::Done(_) => return false,
        }
        true
    }
}

/// The close reason of a task that vanished without closing.
pub(crate) fn task_gone_reason() -> CloseReason {
    CloseReason::Broken {
        cause: BrokenCause::Io {
            kind: std::io::ErrorKind::Other,
            message: "the connection task is gone (runtime shut down?)".to_owned(),
        },
        during: Phase::Ready,
    }
}

#[cfg(test)]
mod tests {
    //! The queue's bookkeeping without a connection: slots, the bound, the
    //! line for room and its hand-over when a waiter leaves.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use kafka_conn_core::ApiKey;

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn request() -> Option<Request> {
        Some(Request::new(ApiKey::API_VERSIONS, 0, bytes::Bytes::new()))
    }

    /// Takes a slot (must succeed) with `w`'s waker.
    fn take(q: &Shared, w: &Waker) -> u32 {
        let cx = Context::from_waker(w);
        match q.submit(Some(&cx), &mut request(), &mut None) {
            Poll::Ready(Ok(slot)) => slot,
            other => panic!("no slot: {other:?}"),
        }
    }

    /// The task's side: takes the commands and answers every request.
    fn answer_all(q: &Shared) {
        let (_, tw) = waker();
        let mut intake = VecDeque::new();
        q.take_commands(&Context::from_waker(&tw), &mut intake);
        let mut done: Vec<(u32, Outcome)> = intake
            .drain(..)
            .filter_map(|c| match c {
                Command::Send { slot, .. } => Some((slot, Outcome::Accepted)),
                _ => None,
            })
            .collect();
        q.complete(&mut done, None, &mut Vec::new());
    }

    /// A response moves through the queue in a response's size: the
    /// boxed failure keeps the outcome (and the slot holding it) from
    /// growing to a failure's (see [`Outcome`]).
    #[test]
    fn outcomes_are_the_size_of_a_response() {
        let response = std::mem::size_of::<Response>();
        let outcome = std::mem::size_of::<Outcome>();
        let slot = std::mem::size_of::<Slot>();
        let failure = std::mem::size_of::<RequestFailure>();
        eprintln!("response {response}, outcome {outcome}, slot {slot}, failure {failure} bytes");
        assert!(outcome <= response, "outcome {outcome} bytes");
        assert!(slot <= response, "slot {slot} bytes");
    }

    #[test]
    fn the_bound_refuses_or_queues_and_room_goes_to_the_oldest_waiter() {
        let q = Shared::new(2);
        let (_, w) = waker();
        let (a, b) = (take(&q, &w), take(&q, &w));
        assert_eq!(q.lock().queued(), 2);
        // Full: the non-waiting variant is refused with the bound.
        let refused = q.submit(None, &mut request(), &mut None);
        assert!(matches!(
            refused,
            Poll::Ready(Err(RequestFailure::Overloaded { max_queued: 2 }))
        ));
        // Two waiters line up.
        let ((c1, w1), (c2, w2)) = (waker(), waker());
        let (mut t1, mut t2) = (None, None);
        let (mut r1, mut r2) = (request(), request());
        assert!(q
            .submit(Some(&Context::from_waker(&w1)), &mut r1, &mut t1)
            .is_pending());
        assert!(q
            .submit(Some(&Context::from_waker(&w2)), &mut r2, &mut t2)
            .is_pending());
        // Answers come; taking one frees a slot and wakes the oldest waiter.
        answer_all(&q);
        let cx = Context::from_waker(&w);
        assert!(matches!(
            q.poll_slot(&cx, a),
            Poll::Ready(Outcome::Accepted)
        ));
        assert_eq!(
            (c1.0.load(Ordering::SeqCst), c2.0.load(Ordering::SeqCst)),
            (1, 0)
        );
        // The woken one leaves without using the room: the next is woken.
        q.leave_room_queue(t1.take().unwrap());
        assert_eq!(c2.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            q.submit(Some(&Context::from_waker(&w2)), &mut r2, &mut t2),
            Poll::Ready(Ok(_))
        ));
        assert!(r2.is_none() && t2.is_none());
        assert!(matches!(
            q.poll_slot(&cx, b),
            Poll::Ready(Outcome::Accepted)
        ));
        assert_eq!(q.lock().queued(), 1);
    }

    #[test]
    fn abandoned_slots_come_back_once_the_task_saw_them() {
        let q = Shared::new(4);
        let (_, w) = waker();
        let (a, b) = (take(&q, &w), take(&q, &w));
        answer_all(&q);
        // Answered but not taken: freed at once.
        q.abandon(a);
        assert_eq!(q.lock().queued(), 1);
        // Waiting: abandoned, and a cancel goes to the task.
        let c = take(&q, &w);
        q.abandon(c);
        assert_eq!(q.lock().queued(), 2);
        let (_, tw) = waker();
        let mut intake = VecDeque::new();
        q.take_commands(&Context::from_waker(&tw), &mut intake);
        assert!(matches!(
            intake.back(),
            Some(Command::Cancel { slot }) if *slot == c
        ));
        // The task frees it with its (unread) outcome.
        let mut done = vec![(c, Outcome::Cancelled)];
        q.complete(&mut done, None, &mut Vec::new());
        assert_eq!(q.lock().queued(), 1);
        let cx = Context::from_waker(&w);
        assert!(q.poll_slot(&cx, b).is_ready());
        assert_eq!(q.lock().queued(), 0);
    }

    #[test]
    fn close_fails_what_waits_and_refuses_what_comes() {
        let q = Shared::new(1);
        let (count, w) = waker();
        let a = take(&q, &w);
        let (waiter_count, ww) = waker();
        let mut t = None;
        let mut r = request();
        assert!(q
            .submit(Some(&Context::from_waker(&ww)), &mut r, &mut t)
            .is_pending());
        let mut intake = VecDeque::new();
        q.close(
            &CloseReason::Shutdown,
            Stats::default(),
            &mut intake,
            &mut Vec::new(),
        );
        // The queued request is refused, its caller woken; the waiter for
        // room is woken and refused on its next poll.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(waiter_count.0.load(Ordering::SeqCst), 1);
        let cx = Context::from_waker(&w);
        assert!(matches!(
            q.poll_slot(&cx, a),
            Poll::Ready(Outcome::Failed(failure))
                if *failure == RequestFailure::Refused(SendError::Closed(CloseReason::Shutdown))
        ));
        assert!(matches!(
            q.submit(Some(&Context::from_waker(&ww)), &mut r, &mut t),
            Poll::Ready(Err(RequestFailure::Refused(SendError::Closed(_))))
        ));
        assert_eq!(q.lock().queued(), 0);
    }
}
