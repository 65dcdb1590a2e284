//! What the driver needs from an async runtime, and nothing more, plus
//! [`timeout`], written once on top of it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::buf::Limit;
use bytes::BytesMut;
use futures_channel::oneshot;
use futures_io::{AsyncRead, AsyncWrite};

/// A borrowed OS socket: a file descriptor on Unix, a `SOCKET` on Windows.
#[cfg(unix)]
pub type BorrowedSocket<'a> = std::os::fd::BorrowedFd<'a>;
/// A borrowed OS socket: a file descriptor on Unix, a `SOCKET` on Windows.
#[cfg(windows)]
pub type BorrowedSocket<'a> = std::os::windows::io::BorrowedSocket<'a>;

/// Types that hold an OS socket: every `AsFd` type on Unix and every
/// `AsSocket` type on Windows (the runtimes' TCP streams among them), for
/// [`Runtime::os_socket`].
pub trait AsOsSocket {
    /// The socket, borrowed.
    fn as_os_socket(&self) -> BorrowedSocket<'_>;
}

#[cfg(unix)]
impl<T: std::os::fd::AsFd> AsOsSocket for T {
    fn as_os_socket(&self) -> BorrowedSocket<'_> {
        self.as_fd()
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsSocket> AsOsSocket for T {
    fn as_os_socket(&self) -> BorrowedSocket<'_> {
        self.as_socket()
    }
}

/// Reads into the spare capacity of `buf` (at most its limit) through
/// `AsyncRead::poll_read`, zero-filling it first: what a transport without
/// a read into uninitialised memory can do.
pub(crate) fn read_zero_filled<S: AsyncRead + ?Sized>(
    io: Pin<&mut S>,
    cx: &mut Context<'_>,
    buf: &mut Limit<&mut BytesMut>,
) -> Poll<io::Result<usize>> {
    let want = buf.limit();
    let bytes: &mut BytesMut = buf.get_mut();
    let len = bytes.len();
    bytes.resize(len + want, 0);
    let read = io.poll_read(cx, &mut bytes[len..]);
    let n = match &read {
        Poll::Ready(Ok(n)) => (*n).min(want),
        _ => 0,
    };
    bytes.truncate(len + n);
    buf.set_limit(want - n);
    read
}

/// A boxed, sendable future: the runtime trait returns these so that it
/// needs no `async fn` in traits and no macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A sleep that can be moved to another deadline in place: the timer a
/// connection keeps for its deadlines (request timeouts, the idle
/// receive-buffer release, re-authentication), re-armed whenever the
/// earliest of them moves. Made by [`Runtime::timer`].
pub trait Timer: Future<Output = ()> + Send {
    /// Moves the timer to `deadline` (earlier or later, also after it
    /// fired): it then completes at (or after) `deadline`, as a new
    /// [`Runtime::sleep_until`] would, once polled again. The runtime
    /// crates do it without allocating.
    fn reset(self: Pin<&mut Self>, deadline: Instant);
}

/// A boxed [`Timer`], as [`Runtime::timer`] returns it.
pub type BoxTimer = Pin<Box<dyn Timer>>;

/// The default [`Runtime::timer`]: a new [`Runtime::sleep_until`] at each
/// reset (a runtime whose sleep cannot move allocates per reset, as
/// before this trait had the method).
struct Rearming<R> {
    rt: R,
    sleep: BoxFuture<'static, ()>,
}

impl<R: Runtime> Future for Rearming<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        self.get_mut().sleep.as_mut().poll(cx)
    }
}

impl<R: Runtime> Timer for Rearming<R> {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.sleep = this.rt.sleep_until(deadline);
    }
}

/// The pieces of an async runtime the driver uses: DNS, TCP, a clock and a
/// timer, spawning one task per connection, and a pool for blocking work.
///
/// `kafka-conn-tokio`, `kafka-conn-smol` and `kafka-conn-async-std`
/// implement it; implement it yourself to run on another executor (five
/// methods are required; [`os_socket`](Runtime::os_socket),
/// [`now`](Runtime::now), [`timer`](Runtime::timer),
/// [`reads_spare`](Runtime::reads_spare),
/// [`poll_read_spare`](Runtime::poll_read_spare) and
/// [`spawn_blocking`](Runtime::spawn_blocking) have defaults).
///
/// The driver reads the time only through [`now`](Runtime::now) and waits
/// only through [`sleep_until`](Runtime::sleep_until), so a runtime whose
/// clock is virtual (a test's, or tokio's paused clock) drives every
/// deadline of the connection in that virtual time.
pub trait Runtime: Clone + Send + Sync + Unpin + 'static {
    /// A connected TCP stream.
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Resolves `host` (a name or an IP literal) to socket addresses on `port`.
    fn resolve(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;

    /// Opens a TCP connection. The driver bounds it with its own timeout.
    fn connect_tcp(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>>;

    /// Sets `TCP_NODELAY`: Kafka requests are small and latency-bound, so
    /// Nagle's algorithm only adds delay.
    fn set_nodelay(&self, tcp: &Self::Tcp) -> io::Result<()>;

    /// The OS socket under `tcp`, on which the driver sets the options
    /// that have no portable API (keepalive timing, `TCP_USER_TIMEOUT`;
    /// see [`ConnectConfig::with_keepalive`](crate::ConnectConfig::with_keepalive)),
    /// the same way for every runtime. Implement it as
    /// `Some(tcp.as_os_socket())` ([`AsOsSocket`]).
    ///
    /// The default, `None`, is for a runtime whose streams are not OS
    /// sockets (a simulated network): those options are then not set, and
    /// the connection logs so.
    fn os_socket<'a>(&self, tcp: &'a Self::Tcp) -> Option<BorrowedSocket<'a>> {
        let _ = tcp;
        None
    }

    /// Whether [`poll_read_spare`](Runtime::poll_read_spare) reads into
    /// memory that is not initialised yet. The default, `false`, has the
    /// driver lend the core's receive buffer to `AsyncRead::poll_read` as
    /// `&mut [u8]`, which safe Rust must zero-fill first: 1.1 to 1.7 bytes
    /// written per byte received with responses of 8-13 KB (issue 20).
    /// `kafka-conn-tokio` says `true`; futures-io's `AsyncRead` (smol,
    /// async-std) has no such read.
    fn reads_spare(&self) -> bool {
        false
    }

    /// Reads from `tcp` into the spare capacity of `buf`, at most its limit,
    /// without zero-filling it, and returns how many bytes were appended
    /// (0: end of stream). Used instead of `poll_read` on a plaintext TCP
    /// connection when [`reads_spare`](Runtime::reads_spare) is `true`; the
    /// waker and readiness rules are `poll_read`'s. Implement it with the
    /// runtime's own read into uninitialised memory (tokio's
    /// `poll_read_buf`), so that no `unsafe` is needed here.
    ///
    /// The default zero-fills the window and reads through `poll_read`.
    fn poll_read_spare(
        &self,
        tcp: &mut Self::Tcp,
        cx: &mut Context<'_>,
        buf: &mut Limit<&mut BytesMut>,
    ) -> Poll<io::Result<usize>> {
        read_zero_filled(Pin::new(tcp), cx, buf)
    }

    /// The current time, as the timer of [`sleep_until`](Runtime::sleep_until)
    /// sees it. Every `now` the driver hands the core comes from here.
    /// Defaults to [`Instant::now`].
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// A future that completes at (or after) `deadline` on the clock of
    /// [`now`](Runtime::now). The driver checks the clock itself when it
    /// fires, so an early or late wake-up is harmless.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// A [`Timer`] that completes at (or after) `deadline` like
    /// [`sleep_until`](Runtime::sleep_until), and can be moved to another
    /// deadline in place: a connection keeps one for its lifetime and
    /// resets it whenever its earliest deadline moves (about once a second
    /// under load with the idle receive-buffer release on), so a runtime
    /// whose sleeps can move needs no allocation per re-arm.
    ///
    /// The default boxes a new `sleep_until` at each reset; the adapter
    /// crates move their runtime's own timer instead (tokio's
    /// `Sleep::reset`, async-io's `Timer::set_at`).
    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(Rearming {
            rt: self.clone(),
            sleep: self.sleep_until(deadline),
        })
    }

    /// Runs `task` in the background until it completes (detached).
    fn spawn(&self, task: BoxFuture<'static, ()>);

    /// Runs the blocking closure `f` off the executor (on the runtime's
    /// blocking pool) and resolves to its result: for work that would
    /// stall every task on the executor's thread, such as a Kerberos
    /// library call or a key derivation. A panic in `f` resumes in the task
    /// that awaits the future.
    ///
    /// The default starts one thread per call; the adapter crates use
    /// their runtime's pool instead.
    fn spawn_blocking<F, T>(&self, f: F) -> BoxFuture<'static, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_thread(f)
    }
}

/// A boxed blocking job, as handed to a blocking pool.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Splits `f` into a job for a blocking pool and the future of its result:
/// the job runs `f` and sends what it returned or the panic it raised; the
/// future resolves to the value or resumes the panic in the awaiting task.
pub(crate) fn run_caught<F, T>(f: F) -> (Job, BoxFuture<'static, T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
    });
    let result = Box::pin(async move {
        match rx.await {
            Ok(Ok(value)) => value,
            Ok(Err(payload)) => panic::resume_unwind(payload),
            Err(oneshot::Canceled) => {
                panic!("the blocking job was dropped before it ran (is the runtime shutting down?)")
            }
        }
    });
    (job, result)
}

/// Runs `f` on a thread of its own and resolves to its result, resuming a
/// panic of `f` in the awaiting task: the default of
/// [`Runtime::spawn_blocking`].
pub(crate) fn spawn_thread<F, T>(f: F) -> BoxFuture<'static, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (job, result) = run_caught(f);
    let spawned = std::thread::Builder::new()
        .name("kafka-conn-blocking".to_owned())
        .spawn(job);
    Box::pin(async move {
        if let Err(e) = spawned {
            panic!("cannot start a thread for blocking work: {e}");
        }
        result.await
    })
}

/// Runs `fut` for at most `after` on `rt`'s clock and timer; `None` when
/// the time ran out (then `fut` is dropped). Runtime-agnostic, for code
/// written against [`Runtime`].
pub async fn timeout<R: Runtime, F: Future>(rt: &R, after: Duration, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut sleep = rt.sleep_until(rt.now() + after);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};
    use std::thread::{self, Thread};

    use super::*;

    /// Wakes the thread that runs [`block_on`].
    struct Unpark(Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Runs `fut` on this thread, parking it while the future waits;
    /// returns the output, or the panic that polling it raised.
    pub(crate) fn block_on<T>(fut: BoxFuture<'static, T>) -> thread::Result<T> {
        let mut fut = fut;
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            match panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
                Ok(Poll::Ready(v)) => return Ok(v),
                Ok(Poll::Pending) => thread::park(),
                Err(payload) => return Err(payload),
            }
        }
    }

    #[test]
    fn default_spawn_blocking_runs_on_its_own_thread_and_resumes_panics() {
        let caller = thread::current().id();
        let (value, on) =
            block_on(spawn_thread(|| (6 * 7, thread::current().id()))).expect("no panic");
        assert_eq!(value, 42);
        assert_ne!(on, caller, "ran on the caller's thread");
        let payload = block_on(spawn_thread(|| -> u8 { panic!("boom off the executor") }))
            .expect_err("the panic resumes in the awaiting task");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"boom off the executor")
        );
    }

    /// Reads `chunk` once, then `Pending` (as a drained socket).
    struct Once(Option<Vec<u8>>);

    impl AsyncRead for Once {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            match self.0.take() {
                Some(chunk) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    Poll::Ready(Ok(n))
                }
                None => Poll::Pending,
            }
        }
    }

    #[test]
    fn a_zero_filled_read_appends_what_was_read_and_nothing_else() {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut bytes = BytesMut::from(&b"kept"[..]);
        let mut reader = Once(Some(b"0123456789".to_vec()));
        // A window of 6: the read takes 6 of the 10 bytes offered.
        let mut window = bytes::BufMut::limit(&mut bytes, 6);
        let read = read_zero_filled(Pin::new(&mut reader), &mut cx, &mut window);
        assert!(matches!(read, Poll::Ready(Ok(6))));
        assert_eq!(window.limit(), 0);
        assert_eq!(&bytes[..], b"kept012345");
        // Nothing to read: the window's zeros do not stay in the buffer.
        let mut window = bytes::BufMut::limit(&mut bytes, 8);
        let read = read_zero_filled(Pin::new(&mut reader), &mut cx, &mut window);
        assert!(read.is_pending());
        assert_eq!(window.limit(), 8);
        assert_eq!(&bytes[..], b"kept012345");
    }
}
