//! The drive loop in virtual time: the [`Engine`] over an in-memory socket
//! whose far side is the core's simulated broker (`kafka_conn_core::sim`:
//! no real broker answers on a virtual clock, nor holds its answer back on
//! demand), on a [`Runtime`] whose clock and timer the test moves by hand.
//! The test polls the engine itself, with a waker that counts its wake-ups,
//! so every assertion is about one poll: what it read, what it armed, and
//! whether it asked to be polled again.
//!
//! The socket is written here rather than taken from a pipe crate: its far
//! side is a sans-IO broker stepped inside `poll_write`, and the tests need
//! to count reads, cap their size and hold the broker's answer back, which
//! a generic pipe does not expose.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::buf::Limit;
use bytes::{BufMut, Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};
use kafka_conn_core::sim::{Action, SimBroker};
use kafka_conn_core::{
    ApiKey, ApiVersions, CloseReason, Config, Connection, CorrelationId, Request, RequestError,
    Response, SaslSession,
};

use super::{Engine, Outcomes, ReadyReport, PROBE, TURN_BUDGET};
use crate::credentials::{CredentialContext, Credentials};
use crate::runtime::{BoxFuture, BoxTimer, Runtime, Timer};
use crate::spare_read::SpareRead;

/// Locks, ignoring poison (a failed assertion elsewhere must not hide
/// behind a second panic here).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The virtual clock: the time, the timers waiting for it (by id, each
/// with the waker of its last poll, as a real timer keeps one), and every
/// deadline a timer was asked for.
#[derive(Debug)]
struct Clock {
    now: Instant,
    sleepers: Vec<(u64, Instant, Waker)>,
    next_id: u64,
    armed: Vec<Instant>,
    /// Timers made by `Runtime::timer` (each later re-arm is a reset).
    timers_made: usize,
}

/// A [`Runtime`] on the virtual clock. It has no network (the engine is
/// given its socket) and spawns nothing (the test polls the engine).
#[derive(Debug, Clone)]
struct VirtualRuntime {
    clock: Arc<Mutex<Clock>>,
}

impl VirtualRuntime {
    fn new() -> Self {
        Self {
            clock: Arc::new(Mutex::new(Clock {
                now: Instant::now(),
                sleepers: Vec::new(),
                next_id: 0,
                armed: Vec::new(),
                timers_made: 0,
            })),
        }
    }

    /// Moves the clock to `to` and wakes every sleeper whose deadline came.
    fn advance_to(&self, to: Instant) {
        let due: Vec<Waker> = {
            let mut c = lock(&self.clock);
            assert!(to >= c.now, "virtual time runs forward only");
            c.now = to;
            let (due, waiting) = c.sleepers.drain(..).partition(|(_, at, _)| *at <= to);
            c.sleepers = waiting;
            due.into_iter().map(|(_, _, w)| w).collect()
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// The deadlines the engine armed a timer for, in order.
    fn armed(&self) -> Vec<Instant> {
        lock(&self.clock).armed.clone()
    }

    /// How many timers the engine made (`Runtime::timer`).
    fn timers_made(&self) -> usize {
        lock(&self.clock).timers_made
    }

    /// A sleeper of the virtual clock for `deadline`, the deadline noted
    /// among those armed.
    fn arm(&self, deadline: Instant) -> Sleep {
        let id = {
            let mut c = lock(&self.clock);
            c.armed.push(deadline);
            c.next_id += 1;
            c.next_id
        };
        Sleep {
            clock: self.clock.clone(),
            id,
            deadline,
        }
    }
}

/// A timer of the virtual clock.
struct Sleep {
    clock: Arc<Mutex<Clock>>,
    id: u64,
    deadline: Instant,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut c = lock(&self.clock);
        c.sleepers.retain(|(id, _, _)| *id != self.id);
        if c.now >= self.deadline {
            return Poll::Ready(());
        }
        c.sleepers
            .push((self.id, self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Timer for Sleep {
    // As a real timer moves: the old registration goes, the next poll
    // registers the new deadline.
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        let mut c = lock(&this.clock);
        c.sleepers.retain(|(id, _, _)| *id != this.id);
        c.armed.push(deadline);
        this.deadline = deadline;
    }
}

impl Drop for Sleep {
    // A dropped timer wakes nobody.
    fn drop(&mut self) {
        lock(&self.clock)
            .sleepers
            .retain(|(id, _, _)| *id != self.id);
    }
}

impl Runtime for VirtualRuntime {
    type Tcp = SimSocket;

    fn resolve(&self, _: String, _: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        Box::pin(async { Err(io::Error::other("no network in virtual time")) })
    }

    fn connect_tcp(&self, _: SocketAddr) -> BoxFuture<'static, io::Result<SimSocket>> {
        Box::pin(async { Err(io::Error::other("no network in virtual time")) })
    }

    fn set_nodelay(&self, _: &SimSocket) -> io::Result<()> {
        Ok(())
    }

    fn now(&self) -> Instant {
        lock(&self.clock).now
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(self.arm(deadline))
    }

    fn timer(&self, deadline: Instant) -> BoxTimer {
        lock(&self.clock).timers_made += 1;
        Box::pin(self.arm(deadline))
    }

    fn spawn(&self, _: BoxFuture<'static, ()>) {
        panic!("the engine runs in its caller's task and spawns nothing");
    }
}

/// The broker's end of the in-memory socket.
struct Wire {
    broker: SimBroker,
    /// The broker's bytes are held back (not readable) while set.
    hold: bool,
    /// At most this many bytes per read.
    max_read: usize,
    /// `poll_read` calls, and the bytes they returned.
    reads: usize,
    read_bytes: usize,
    /// The waker of the last read that returned `Pending`.
    read_waker: Option<Waker>,
    /// Run (once) by the next flush: time that passes inside a poll, after
    /// the write the engine last read the clock for.
    on_flush: Option<Box<dyn FnOnce() + Send>>,
    /// Reads into spare capacity ([`SpareRead`]) as tokio's TCP stream
    /// does, and how many did; the window of every read, either way.
    spare: bool,
    spare_reads: usize,
    windows: Vec<usize>,
}

impl Wire {
    fn readable(&self) -> bool {
        !self.hold && self.broker.pending_output() > 0
    }
}

/// An in-memory socket to a [`SimBroker`]: what the engine writes reaches
/// the broker at once, and the broker's answer is readable at once unless
/// held back. Cloned by the test to look at and steer the far side.
#[derive(Clone)]
struct SimSocket(Arc<Mutex<Wire>>);

impl SimSocket {
    fn new(broker: SimBroker) -> Self {
        Self(Arc::new(Mutex::new(Wire {
            broker,
            hold: false,
            max_read: usize::MAX,
            reads: 0,
            read_bytes: 0,
            read_waker: None,
            on_flush: None,
            spare: false,
            spare_reads: 0,
            windows: Vec::new(),
        })))
    }

    /// Reads up to `max` of the broker's bytes through `put`, or registers
    /// `cx` to be woken when there are some.
    fn read(
        &self,
        cx: &Context<'_>,
        max: usize,
        put: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<usize>> {
        let mut w = self.wire();
        w.reads += 1;
        w.windows.push(max);
        if !w.readable() {
            w.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let max = max.min(w.max_read);
        let out = w.broker.take_output(max);
        put(&out);
        w.read_bytes += out.len();
        Poll::Ready(Ok(out.len()))
    }

    fn wire(&self) -> MutexGuard<'_, Wire> {
        lock(&self.0)
    }

    /// Holds the broker's bytes back until [`SimSocket::release`].
    fn hold(&self) {
        self.wire().hold = true;
    }

    /// Makes the broker's bytes readable and, as a socket does when data
    /// arrives, wakes the read that waits for them.
    fn release(&self) {
        let waker = {
            let mut w = self.wire();
            w.hold = false;
            w.read_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl AsyncRead for SimSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let max = buf.len();
        self.read(cx, max, |out| buf[..out.len()].copy_from_slice(out))
    }
}

impl SpareRead<VirtualRuntime> for SimSocket {
    fn reads_spare(&self, _: &VirtualRuntime) -> bool {
        self.wire().spare
    }

    fn poll_read_spare(
        &mut self,
        _: &VirtualRuntime,
        cx: &mut Context<'_>,
        buf: &mut Limit<&mut BytesMut>,
    ) -> Poll<io::Result<usize>> {
        self.wire().spare_reads += 1;
        let max = buf.remaining_mut();
        // `put_slice` writes into the spare capacity: nothing is zeroed.
        self.read(cx, max, |out| buf.put_slice(out))
    }
}

impl AsyncWrite for SimSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let waker = {
            let mut w = self.wire();
            let data: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            w.broker.receive(&data);
            // The answer arrives: the waiting read is woken, as by a socket.
            if w.readable() {
                w.read_waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Taken out first: the hook may wake the engine's wakers.
        let hook = self.wire().on_flush.take();
        if let Some(hook) = hook {
            hook();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Counts the wake-ups of the engine's task.
#[derive(Default)]
struct WakeCount(AtomicUsize);

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What the engine reported, each with the virtual time it came at.
struct Recorder {
    clock: VirtualRuntime,
    responses: Vec<(Instant, Response)>,
    failures: Vec<(Instant, CorrelationId, RequestError)>,
    closed: Option<(Instant, CloseReason)>,
}

impl Recorder {
    fn at(&self) -> Instant {
        self.clock.now()
    }
}

impl Outcomes for Recorder {
    fn flush(&mut self, _: &Connection) {}

    fn response(&mut self, response: Response) {
        self.responses.push((self.at(), response));
    }

    fn request_failed(&mut self, id: CorrelationId, error: RequestError) {
        self.failures.push((self.at(), id, error));
    }

    fn ready(&mut self, report: ReadyReport) {
        assert!(report.result.is_ok(), "not ready: {:?}", report.result);
    }

    fn reauthenticated(&mut self, _: SaslSession) {}

    fn tls_alert(&mut self, alert: String) {
        panic!("no TLS here, yet an alert: {alert}");
    }

    fn closed(&mut self, reason: &CloseReason, _: &Connection) {
        self.closed = Some((self.at(), reason.clone()));
    }
}

/// An engine on the virtual runtime, its socket, and the test's waker.
struct Harness {
    rt: VirtualRuntime,
    socket: SimSocket,
    engine: Engine<VirtualRuntime, SimSocket>,
    out: Recorder,
    wakes: Arc<WakeCount>,
    waker: Waker,
    start: Instant,
}

impl Harness {
    /// A connection that is ready at once (a version hint skips
    /// ApiVersions), to `broker`, with the core's default settings.
    fn new(broker: SimBroker) -> Self {
        Self::with_config(broker, Config::new())
    }

    /// As [`Harness::new`], with `config`.
    fn with_config(broker: SimBroker, config: Config) -> Self {
        Self::with_reads(broker, config, false)
    }

    /// As [`Harness::with_config`], reading into spare capacity if `spare`.
    fn with_reads(broker: SimBroker, config: Config, spare: bool) -> Self {
        let rt = VirtualRuntime::new();
        let start = rt.now();
        let versions = ApiVersions::from_ranges([(3, 0, 12), (18, 0, 4)]).unwrap();
        let conn = Connection::new(config.with_version_hint(versions), start).unwrap();
        let socket = SimSocket::new(broker);
        socket.wire().spare = spare;
        let peer = CredentialContext::new("sim", SocketAddr::from(([127, 0, 0, 1], 9092)));
        let engine = Engine::new(
            rt.clone(),
            conn,
            socket.clone(),
            Credentials::default(),
            peer,
        );
        let wakes = Arc::new(WakeCount::default());
        let mut h = Self {
            out: Recorder {
                clock: rt.clone(),
                responses: Vec::new(),
                failures: Vec::new(),
                closed: None,
            },
            rt,
            socket,
            engine,
            waker: Waker::from(wakes.clone()),
            wakes,
            start,
        };
        assert!(h.poll().is_pending(), "ready and waiting");
        h
    }

    /// One poll of the engine, as its task would do when woken.
    fn poll(&mut self) -> Poll<()> {
        let mut cx = Context::from_waker(&self.waker);
        self.engine.poll(&mut cx, &mut self.out, false)
    }

    /// Queues a request with the core (no I/O), as `DirectClient::submit` does.
    fn submit(&mut self, request: Request) -> CorrelationId {
        let id = self
            .engine
            .conn
            .send_request(request, self.rt.now())
            .unwrap();
        self.engine.drain_events(&mut self.out);
        id
    }

    fn wakes(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }

    fn at(&self, after: Duration) -> Instant {
        self.start + after
    }
}

/// A broker that reads every request and never answers.
fn silent_broker() -> SimBroker {
    SimBroker::new(Box::new(|_| vec![Action::Ignore]))
}

fn metadata(timeout: Option<Duration>) -> Request {
    let r = Request::new(ApiKey::METADATA, 1, Bytes::from_static(&[0xff; 4]));
    match timeout {
        Some(t) => r.with_timeout(t),
        None => r,
    }
}

#[test]
fn a_request_deadline_fires_at_exactly_its_virtual_deadline() {
    let mut h = Harness::new(silent_broker());
    let id = h.submit(metadata(Some(Duration::from_secs(5))));
    assert!(h.poll().is_pending());
    assert_eq!(
        h.socket.wire().broker.received.len(),
        1,
        "the request went out"
    );
    // First the written (empty) transmit queue's memory goes back, after
    // the default release (1 s): that fails nothing.
    let release = h.at(Duration::from_secs(1));
    assert_eq!(h.rt.armed().last(), Some(&release), "{:?}", h.rt.armed());
    h.rt.advance_to(release);
    assert!(h.poll().is_pending());
    assert!(h.out.failures.is_empty(), "{:?}", h.out.failures);
    let deadline = h.at(Duration::from_secs(5));
    assert_eq!(h.rt.armed().last(), Some(&deadline), "{:?}", h.rt.armed());

    // A moment before: the timer does not fire, and a poll (a spurious
    // wake-up) changes nothing.
    let wakes = h.wakes();
    h.rt.advance_to(deadline - Duration::from_millis(1));
    assert_eq!(h.wakes(), wakes, "woken before the deadline");
    assert!(h.poll().is_pending());
    assert!(h.out.failures.is_empty(), "{:?}", h.out.failures);

    // At the deadline: the timer wakes the task, and the poll fails the
    // request, at exactly the deadline, without closing the connection.
    h.rt.advance_to(deadline);
    assert_eq!(h.wakes(), wakes + 1, "the timer did not wake the task");
    assert!(h.poll().is_pending());
    assert_eq!(
        h.out.failures,
        [(deadline, id, RequestError::TimedOut(Duration::from_secs(5)))]
    );
    assert!(h.out.closed.is_none());
}

#[test]
fn a_deadline_that_passes_after_the_polls_last_clock_reading_is_met_in_that_poll() {
    // The deadline check at the end of a poll reuses the clock reading of
    // the poll's last write or read. Here time passes after that reading,
    // inside the same poll (the flush after the write takes 6 s), beyond
    // the request's deadline: the check, with the write's reading, sees
    // nothing due and arms the timer, which is due already; the engine then
    // reads the clock again and fails the request in the same poll, rather
    // than spin through its turn budget on the old reading and wake itself.
    let config = Config::new().with_receive_buffer_release(None);
    let mut h = Harness::with_config(silent_broker(), config);
    let id = h.submit(metadata(Some(Duration::from_secs(5))));
    let late = h.at(Duration::from_secs(6));
    let rt = h.rt.clone();
    h.socket.wire().on_flush = Some(Box::new(move || rt.advance_to(late)));
    let wakes = h.wakes();

    assert!(h.poll().is_pending());
    assert_eq!(h.socket.wire().broker.received.len(), 1, "written");
    assert_eq!(
        h.out.failures,
        [(late, id, RequestError::TimedOut(Duration::from_secs(5)))]
    );
    assert_eq!(h.wakes(), wakes, "the engine woke itself to go on");
    assert!(h.out.closed.is_none());
}

#[test]
fn the_timer_is_rearmed_only_when_an_earlier_deadline_appears() {
    // A long grace: the connection outlives its unanswered timed-out
    // request, so each deadline fires as a request timeout.
    // No buffer release: its 1 s timer would be the earliest throughout and
    // hide the re-arming this test is about (its own test is below).
    let config = Config::new()
        .with_unanswered_grace(Duration::from_secs(3600))
        .with_receive_buffer_release(None);
    let mut h = Harness::with_config(silent_broker(), config);
    let a = h.submit(metadata(Some(Duration::from_secs(30))));
    assert!(h.poll().is_pending());
    assert_eq!(h.rt.armed().last(), Some(&h.at(Duration::from_secs(30))));

    // A later deadline: the armed timer fires first and the clock is
    // looked at again then, so no new timer.
    let armed = h.rt.armed().len();
    let c = h.submit(metadata(Some(Duration::from_secs(60))));
    assert!(h.poll().is_pending());
    assert_eq!(h.rt.armed().len(), armed, "re-armed for a later deadline");

    // An earlier one (the core's poll_timeout moved earlier): re-armed.
    let b = h.submit(metadata(Some(Duration::from_secs(2))));
    assert!(h.poll().is_pending());
    let early = h.at(Duration::from_secs(2));
    assert_eq!(h.rt.armed().len(), armed + 1);
    assert_eq!(h.rt.armed().last(), Some(&early));

    let wakes = h.wakes();
    h.rt.advance_to(early);
    assert_eq!(h.wakes(), wakes + 1);
    assert!(h.poll().is_pending());
    assert_eq!(
        h.out.failures,
        [(early, b, RequestError::TimedOut(Duration::from_secs(2)))]
    );

    // The others fire at theirs, each woken by the timer armed for it.
    for (id, secs) in [(a, 30), (c, 60)] {
        let deadline = h.at(Duration::from_secs(secs));
        assert_eq!(h.rt.armed().last(), Some(&deadline));
        let wakes = h.wakes();
        h.rt.advance_to(deadline);
        assert_eq!(h.wakes(), wakes + 1);
        assert!(h.poll().is_pending());
        let last = h.out.failures.last().unwrap();
        assert_eq!(
            last,
            &(
                deadline,
                id,
                RequestError::TimedOut(Duration::from_secs(secs))
            )
        );
    }
    // One timer for all of it, moved in place at each re-arm (also after
    // it fired): no allocation per re-arm on a runtime whose timers move.
    assert_eq!(h.rt.timers_made(), 1);
}

#[test]
fn the_default_request_and_idle_timeouts_are_40_s_and_540_s() {
    // A request with no timeout of its own gets the default 40 s.
    let mut h = Harness::new(silent_broker());
    let id = h.submit(metadata(None));
    assert!(h.poll().is_pending());
    let deadline = h.at(Duration::from_secs(40));
    h.rt.advance_to(deadline - Duration::from_nanos(1));
    assert!(h.poll().is_pending());
    assert!(h.out.failures.is_empty());
    h.rt.advance_to(deadline);
    assert!(h.poll().is_pending());
    assert_eq!(
        h.out.failures,
        [(
            deadline,
            id,
            RequestError::TimedOut(Duration::from_secs(40))
        )]
    );

    // A connection with nothing to do closes after 540 s of it.
    let mut h = Harness::new(silent_broker());
    let idle = h.at(Duration::from_secs(540));
    assert_eq!(h.rt.armed().last(), Some(&idle));
    h.rt.advance_to(idle - Duration::from_nanos(1));
    assert!(h.poll().is_pending());
    h.rt.advance_to(idle);
    assert!(h.poll().is_ready(), "still open after 540 s idle");
    let (at, reason) = h.out.closed.clone().expect("closed");
    assert_eq!(at, idle);
    assert!(
        matches!(reason, CloseReason::Idle { idle_for } if idle_for == Duration::from_secs(540)),
        "{reason}"
    );
}

#[test]
fn the_engine_yields_after_its_turn_budget_and_wakes_itself() {
    let mut h = Harness::new(SimBroker::echo());
    // The broker's answer trickles in one byte per read: every read makes
    // progress, so only the budget ends a poll.
    h.socket.wire().max_read = 1;
    let body = Bytes::from(vec![7u8; 4000]);
    // Written while the answer is held back; then it all arrives at once.
    h.socket.hold();
    let id = h.submit(Request::new(ApiKey::METADATA, 1, body.clone()));
    assert!(h.poll().is_pending());
    let wakes = h.wakes();
    h.socket.release();
    assert_eq!(h.wakes(), wakes + 1, "data did not wake the task");
    let per_poll = TURN_BUDGET * TURN_BUDGET;

    let mut polls = 0;
    loop {
        let (wakes, read) = (h.wakes(), h.socket.wire().read_bytes);
        assert!(h.poll().is_pending());
        polls += 1;
        let read_now = h.socket.wire().read_bytes - read;
        if !h.out.responses.is_empty() {
            // The last poll read the rest, found the socket drained and
            // ended without asking to be polled again.
            assert_eq!(h.wakes(), wakes, "woke itself with nothing to do");
            assert!(read_now <= per_poll);
            break;
        }
        // A busy poll stops at the budget and wakes its own task, so the
        // executor runs other tasks before this one goes on.
        assert_eq!(read_now, per_poll, "poll {polls}");
        assert_eq!(h.wakes(), wakes + 1, "poll {polls} did not wake itself");
        assert!(polls < 100, "never done");
    }
    let total = h.socket.wire().read_bytes;
    assert!(total > 4000, "{total}");
    assert_eq!(polls, total.div_ceil(per_poll));
    let (_, response) = &h.out.responses[0];
    assert_eq!((response.correlation_id, &response.body), (id, &body));
}

#[test]
fn a_read_blocked_engine_reads_again_only_when_data_wakes_it() {
    let mut h = Harness::new(SimBroker::echo());
    h.socket.hold();
    let first = h.submit(metadata(None));
    assert!(h.poll().is_pending());
    let reads = h.socket.wire().reads;
    assert!(reads >= 1);
    assert_eq!(h.socket.wire().broker.received.len(), 1);

    // The read side returned Pending and holds our waker: polls for other
    // reasons (a new request, a spurious wake-up) leave it alone.
    let second = h.submit(metadata(None));
    assert!(h.poll().is_pending());
    assert!(h.poll().is_pending());
    assert_eq!(h.socket.wire().broker.received.len(), 2, "not written");
    assert_eq!(h.socket.wire().reads, reads, "polled a blocked read");
    assert!(h.out.responses.is_empty());

    // Data arrives: the socket wakes the read's waker, which wakes the
    // task, and the next poll reads both answers.
    let wakes = h.wakes();
    h.socket.release();
    assert_eq!(h.wakes(), wakes + 1, "data did not wake the task");
    assert!(h.poll().is_pending());
    assert!(h.socket.wire().reads > reads);
    let ids: Vec<_> = h
        .out
        .responses
        .iter()
        .map(|(_, r)| r.correlation_id)
        .collect();
    assert_eq!(ids, [first, second]);
    assert!(h.out.closed.is_none());
}

#[test]
fn an_idle_engine_gives_its_receive_buffer_back_and_reads_the_next_answer() {
    let mut h = Harness::new(SimBroker::echo());
    // Before any byte arrived the engine read through its stack probe: no
    // buffer yet, so nothing to give back and only the idle deadline armed.
    assert_eq!(h.engine.conn.receive_buffer_capacity(), 0);
    assert_eq!(h.rt.armed().last(), Some(&h.at(Duration::from_secs(540))));

    // A response at 10 s takes a buffer; the default release (1 s) is now
    // the earliest deadline, and the timer is armed for it.
    let at = h.at(Duration::from_secs(10));
    h.rt.advance_to(at);
    let first = h.submit(metadata(None));
    // The write's answer wakes the blocked read; the task runs again.
    let wakes = h.wakes();
    assert!(h.poll().is_pending());
    assert_eq!(h.wakes(), wakes + 1);
    assert!(h.poll().is_pending());
    assert_eq!(h.out.responses.len(), 1);
    assert_eq!(h.out.responses[0].1.correlation_id, first);
    assert!(h.engine.conn.receive_buffer_capacity() > 0);
    let release = at + Duration::from_secs(1);
    assert_eq!(h.rt.armed().last(), Some(&release));

    // Not a nanosecond early; at the deadline the timer wakes the task and
    // the poll gives the buffer back, closing nothing, failing nothing.
    h.rt.advance_to(release - Duration::from_nanos(1));
    assert!(h.poll().is_pending());
    assert!(h.engine.conn.receive_buffer_capacity() > 0);
    let wakes = h.wakes();
    h.rt.advance_to(release);
    assert_eq!(h.wakes(), wakes + 1, "the timer did not wake the task");
    assert!(h.poll().is_pending());
    assert_eq!(h.engine.conn.receive_buffer_capacity(), 0);
    assert!(h.out.failures.is_empty() && h.out.closed.is_none());
    // Idle reaping still counts from the last activity (the response).
    assert_eq!(h.rt.armed().last(), Some(&h.at(Duration::from_secs(550))));

    // Spurious wake-ups take no buffer (the read side is blocked).
    assert!(h.poll().is_pending());
    assert_eq!(h.engine.conn.receive_buffer_capacity(), 0);

    // The next answer (larger than the probe and the first window) is read
    // whole into a new buffer.
    let body = Bytes::from(vec![5u8; 3000]);
    let second = h.submit(Request::new(ApiKey::METADATA, 1, body.clone()));
    let wakes = h.wakes();
    assert!(h.poll().is_pending());
    assert_eq!(h.wakes(), wakes + 1);
    assert!(h.poll().is_pending());
    let (_, response) = h.out.responses.last().unwrap();
    assert_eq!((response.correlation_id, &response.body), (second, &body));
    assert!(h.out.closed.is_none());
}

#[test]
fn reads_into_spare_capacity_deliver_what_zero_filled_reads_deliver() {
    // Pipelined echoes of small and large bodies, read at most 5,000 bytes
    // at a time (large responses take several reads, small ones share
    // one): once through zero-filled windows (smol, async-std, TLS), once
    // into the core's spare capacity (tokio's TCP stream).
    let sizes = [10usize, 3_000, 20_000, 100, 70_000, 7, 8_577];
    let mut runs = Vec::new();
    for spare in [false, true] {
        let mut h = Harness::with_reads(SimBroker::echo(), Config::new(), spare);
        h.socket.wire().max_read = 5_000;
        let mut ids = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let body = Bytes::from(vec![i as u8; *size]);
            ids.push((
                h.submit(Request::new(ApiKey::METADATA, 1, body.clone())),
                body,
            ));
        }
        for _ in 0..100 {
            if h.out.responses.len() == sizes.len() {
                break;
            }
            assert!(h.poll().is_pending());
        }
        let got: Vec<_> = h
            .out
            .responses
            .iter()
            .map(|(_, r)| (r.correlation_id, r.body.clone()))
            .collect();
        assert_eq!(got, ids, "spare {spare}");
        assert!(h.out.failures.is_empty() && h.out.closed.is_none());
        let w = h.socket.wire();
        if spare {
            // Every read into the core's buffer went to its spare capacity:
            // only the stack probes used `poll_read`.
            assert!(w.spare_reads > sizes.len());
            let plain = w.reads - w.spare_reads;
            assert_eq!(w.windows.iter().filter(|&&n| n == PROBE).count(), plain);
        } else {
            assert_eq!(w.spare_reads, 0);
        }
        runs.push((w.windows.clone(), w.read_bytes));
    }
    // The same windows, so the same reads: only the zero-fill differs.
    assert_eq!(runs[0], runs[1]);
}
