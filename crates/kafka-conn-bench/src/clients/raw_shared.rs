//! The raw loop shared by many tasks (`raw-tokio-shared`, `raw-smol-shared`,
//! `raw-async-std-shared`): the floor under any handle that several tasks
//! share, written by hand for the benchmark. With the promises
//! (`raw-tokio-shared-owned`, `raw-smol-shared-owned`, opt-in) it is the
//! floor under a shared handle that also keeps what `Client` promises.
//!
//! The workers are spawned tasks, as `kc-<runtime>`'s are, each sending one
//! request at a time; one more task owns the socket and runs the raw loop
//! (pre-encoded frames, vectored writes, responses counted by their size
//! prefix, no decoding, no correlation, no deadlines). Between them is the
//! least a hand-over can be: one mutex, a queue of worker numbers in
//! request order (Kafka answers in order), a flag and a waker per worker,
//! no allocation per request. What it costs over `raw-<runtime>` is what
//! handing requests and responses between tasks costs on that runtime:
//! waking the socket's task when a request comes, waking each worker when
//! its response comes, and the runtime scheduling both. `kc-<runtime>`
//! (the `Client`) pays that too, so the difference between it and this loop
//! is kafka-conn's own (issue 20).
//!
//! The `-owned` variant adds what `raw-<runtime>-owned` adds to the raw
//! loop ([`Owned`]): each response handed to its worker as owned `Bytes`
//! split off a zero-filled receive buffer, a send time and deadline per
//! request, a clock reading per batch written and per read, the oldest
//! deadline checked, the correlation id matched, a round-trip time per
//! response, and one runtime timer armed for the run. Nothing of
//! kafka-conn is in either; `Client` over the `-owned` variant is what
//! kafka-conn's own code costs beyond the runtime, the hand-over between
//! tasks and those promises.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use kafka_conn_driver::Runtime;
use smol::io::{AsyncRead, AsyncWrite};

use super::raw_owned::{OwnedReader, Promises, REQUEST_TIMEOUT};
use super::{armed_timer_now, count_until, make_room, measure, raw_async_connect, take_frames};
use crate::{Job, Sample};

/// A spawned task's outcome: the requests it completed.
pub(super) type Task = Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>;

/// The most frames in one vectored write (as the core's drivers use).
const WRITE_SLICES: usize = 64;

/// What the socket's task does with the bytes it reads, and what a worker
/// gets for its request.
pub(super) trait Receive: Send + 'static {
    /// What a worker's request ends with.
    type Answer: Send + 'static;

    /// A runtime timer kept armed that long for the run, as a client with
    /// a request timeout keeps one; `None` for none.
    const ARMED_TIMER: Option<std::time::Duration>;

    /// The room for the next read.
    fn window(&mut self) -> &mut [u8];

    /// `n` requests were written.
    fn sent(&mut self, n: usize);

    /// After a read of `n` bytes into [`Receive::window`]: pushes an answer
    /// per whole response now buffered, in order.
    fn commit(&mut self, n: usize, answers: &mut Vec<Self::Answer>) -> std::io::Result<()>;
}

/// The shared floor's receiving: responses counted by their size prefix
/// in one reused buffer, not handed out.
pub(super) struct Counted {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Counted {
    pub(super) fn new() -> Self {
        Self {
            buf: vec![0u8; 256 << 10],
            start: 0,
            end: 0,
        }
    }
}

impl Receive for Counted {
    type Answer = ();
    const ARMED_TIMER: Option<std::time::Duration> = None;

    fn window(&mut self) -> &mut [u8] {
        make_room(&mut self.buf, &mut self.start, &mut self.end);
        &mut self.buf[self.end..]
    }

    fn sent(&mut self, _: usize) {}

    fn commit(&mut self, n: usize, answers: &mut Vec<()>) -> std::io::Result<()> {
        let completed = take_frames(&self.buf, n, &mut self.start, &mut self.end)?;
        // A vector of `()` holds no memory: this only counts.
        answers.extend(std::iter::repeat_n((), completed));
        Ok(())
    }
}

/// The shared floor with the promises: see the module docs.
pub(super) struct Owned<R> {
    reader: OwnedReader,
    promises: Promises,
    rt: R,
}

impl<R: Runtime> Owned<R> {
    pub(super) fn new(rt: R) -> Self {
        Self {
            reader: OwnedReader::new(),
            promises: Promises::new(),
            rt,
        }
    }
}

impl<R: Runtime> Receive for Owned<R> {
    type Answer = bytes::Bytes;
    const ARMED_TIMER: Option<std::time::Duration> = Some(REQUEST_TIMEOUT);

    fn window(&mut self) -> &mut [u8] {
        self.reader.window()
    }

    fn sent(&mut self, n: usize) {
        self.promises.sent(self.rt.now(), n);
    }

    fn commit(&mut self, n: usize, answers: &mut Vec<bytes::Bytes>) -> std::io::Result<()> {
        let now = self.rt.now();
        self.promises.check_deadline(now)?;
        let promises = &mut self.promises;
        self.reader.commit(n, |response| {
            promises.answer(now, &response)?;
            answers.push(response);
            Ok(())
        })?;
        Ok(())
    }
}

impl<R> Drop for Owned<R> {
    fn drop(&mut self) {
        // Read once, at the end of the run (as `raw-<runtime>-owned`
        // does), so that the optimizer keeps the timing.
        std::hint::black_box(self.promises.rtt_sum());
    }
}

/// What the workers and the socket's task share.
struct Shared<A> {
    state: Mutex<State<A>>,
    /// The next worker number (workers of one round are numbered
    /// `0..concurrency`; rounds do not overlap).
    next_worker: AtomicUsize,
}

struct State<A> {
    /// Requests submitted and not yet taken by the socket's task.
    submitted: usize,
    /// The worker of each request taken or submitted and not yet answered,
    /// in request order.
    order: VecDeque<usize>,
    /// Per worker: the answer to its request, until it takes it.
    answers: Vec<Option<A>>,
    /// Per worker: its waker while it waits.
    workers: Vec<Option<Waker>>,
    /// The socket task's waker while it waits for a request.
    socket_task: Option<Waker>,
    /// Set once the socket's task failed: every worker gets it.
    failed: Option<String>,
    /// Set when the measurement is over: the socket's task ends once
    /// nothing is in flight.
    shutdown: bool,
}

impl<A> Shared<A> {
    fn new(concurrency: usize) -> Self {
        Self {
            state: Mutex::new(State {
                submitted: 0,
                order: VecDeque::with_capacity(concurrency),
                answers: std::iter::repeat_with(|| None).take(concurrency).collect(),
                workers: vec![None; concurrency],
                socket_task: None,
                failed: None,
                shutdown: false,
            }),
            next_worker: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<A>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the workload through `concurrency` workers sharing one raw loop
/// that receives with `receive`; `spawn` starts a task on the runtime (the
/// workers and the socket's).
pub(super) async fn raw_shared<R, V, F, Fut>(
    job: &Job,
    rt: R,
    receive: V,
    spawn: F,
) -> Result<Sample, String>
where
    R: Runtime,
    V: Receive,
    F: Fn(Task) -> Fut,
    Fut: Future<Output = Result<u64, String>>,
{
    // Connected and one request checked, as the one-task raw loop starts.
    let (s, frame, response_bytes) = raw_async_connect(job, &rt).await?;
    let frame: Arc<[u8]> = frame.into();
    let _armed = match V::ARMED_TIMER {
        Some(after) => Some(armed_timer_now(&rt, after).await),
        None => None,
    };

    let concurrency = job.concurrency;
    let shared = Arc::new(Shared::<V::Answer>::new(concurrency));
    let socket_task = spawn(Box::pin(socket_loop(s, frame, receive, shared.clone())));
    let sample = measure(job, response_bytes, |stop| {
        let shared = shared.clone();
        let me = shared.next_worker.fetch_add(1, Ordering::Relaxed) % concurrency;
        spawn(Box::pin(async move {
            count_until(&stop, || Ask {
                shared: &shared,
                me,
                submitted: false,
            })
            .await
        }))
    })
    .await;
    let waker = {
        let mut state = shared.lock();
        state.shutdown = true;
        state.socket_task.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
    socket_task.await?;
    sample
}

/// One worker's request: submitted at the first poll, ready when answered.
struct Ask<'a, A> {
    shared: &'a Shared<A>,
    me: usize,
    submitted: bool,
}

impl<A> Future for Ask<'_, A> {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.me;
        let mut state = self.shared.lock();
        if let Some(e) = &state.failed {
            return Poll::Ready(Err(e.clone()));
        }
        if !self.submitted {
            state.submitted += 1;
            state.order.push_back(me);
            set_waker(&mut state.workers[me], cx);
            let socket_task = state.socket_task.take();
            drop(state);
            self.submitted = true;
            if let Some(w) = socket_task {
                w.wake();
            }
            return Poll::Pending;
        }
        if let Some(answer) = state.answers[me].take() {
            drop(state);
            // The caller's: dropped here, as the benchmark's kafka-conn
            // clients drop theirs.
            drop(std::hint::black_box(answer));
            return Poll::Ready(Ok(()));
        }
        set_waker(&mut state.workers[me], cx);
        Poll::Pending
    }
}

/// Keeps `cx`'s waker in `slot`, cloning only when it changed.
fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// The socket's task: writes a frame per submitted request, reads the
/// responses through `receive`, gives each worker its answer and wakes it,
/// in request order, until the shutdown with nothing in flight. Returns
/// the responses read.
async fn socket_loop<S, V>(
    mut s: S,
    frame: Arc<[u8]>,
    mut receive: V,
    shared: Arc<Shared<V::Answer>>,
) -> Result<u64, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
    V: Receive,
{
    // Frames to write, and how much of the first one is written already.
    let (mut unwritten, mut partial) = (0usize, 0usize);
    let mut in_flight = 0usize;
    let mut done = 0u64;
    let mut wake = Vec::with_capacity(shared.lock().workers.len());
    // The answers of one read (scratch, kept for its capacity).
    let mut answers = Vec::with_capacity(wake.capacity());
    let outcome = poll_fn(|cx| loop {
        let (submitted, shutdown) = {
            let mut state = shared.lock();
            let n = std::mem::take(&mut state.submitted);
            if n == 0 {
                set_waker(&mut state.socket_task, cx);
            }
            (n, state.shutdown)
        };
        if shutdown && submitted == 0 && unwritten == 0 && in_flight == 0 {
            return Poll::Ready(Ok(done));
        }
        unwritten += submitted;
        let mut wrote = false;
        while unwritten > 0 {
            let mut slices = [IoSlice::new(&frame); WRITE_SLICES];
            slices[0] = IoSlice::new(&frame[partial..]);
            let n = unwritten.min(WRITE_SLICES);
            match Pin::new(&mut s).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err("the socket took no bytes".into())),
                Poll::Ready(Ok(w)) => {
                    let bytes = partial + w;
                    let frames = bytes / frame.len();
                    partial = bytes % frame.len();
                    unwritten -= frames;
                    in_flight += frames;
                    receive.sent(frames);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.to_string())),
                Poll::Pending => break,
            }
        }
        match Pin::new(&mut s).poll_read(cx, receive.window()) {
            Poll::Ready(Ok(n)) => {
                if let Err(e) = receive.commit(n, &mut answers) {
                    return Poll::Ready(Err(e.to_string()));
                }
                let completed = answers.len();
                in_flight -= completed;
                done += completed as u64;
                let mut state = shared.lock();
                for answer in answers.drain(..) {
                    let Some(worker) = state.order.pop_front() else {
                        return Poll::Ready(Err("a response nobody asked for".into()));
                    };
                    state.answers[worker] = Some(answer);
                    wake.extend(state.workers[worker].take());
                }
                drop(state);
                wake.drain(..).for_each(Waker::wake);
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.to_string())),
            Poll::Pending if submitted == 0 && !wrote => return Poll::Pending,
            Poll::Pending => {}
        }
    })
    .await;
    if let Err(e) = &outcome {
        let mut state = shared.lock();
        state.failed = Some(e.clone());
        let wake: Vec<Waker> = state.workers.iter_mut().filter_map(Option::take).collect();
        drop(state);
        wake.into_iter().for_each(Waker::wake);
    }
    outcome
}
