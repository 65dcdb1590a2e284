//! `raw-tokio-owned`, `raw-smol-owned` (opt-in): the raw loop plus the
//! least that a client keeps for what it promises its callers, and nothing
//! of kafka-conn. It answers: of `DirectClient`'s cost over the raw loop,
//! how much does any client with these promises pay, whoever writes it?
//!
//! On top of [`raw_async`](super::raw_async) it
//!
//! - hands every response out as owned `Bytes` split off the receive
//!   buffer (zero-copy, as kafka-conn's `Response::body`): safe Rust reads
//!   only into initialised memory, so the buffer's spare room is
//!   zero-filled before a read, and once the responses handed out are gone
//!   their memory counts as uninitialised again. Zero-filled scratch is
//!   kept across reads, so each byte received is zeroed a little over once
//!   (1.29 times in the tests' 27.6 KB reads);
//! - times every request out: a send time per request (one clock reading
//!   per batch written), one clock reading per read, the oldest request's
//!   deadline checked against it, a round-trip time per response; one
//!   runtime timer stays armed for the run (a client with a request timeout
//!   always has one);
//! - matches every response to its request by correlation id, in order
//!   (the pre-encoded frames all carry id 0, so the check is against the
//!   queue's expected id; its cost, not its variety, is what counts).
//!
//! It does not decode, negotiate, authenticate, count statistics, handle
//! throttling, or queue events for a caller.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_conn_driver::Runtime;

use super::{armed_timer_now, measure_with, raw_async_connect, write_frames_async};
use crate::{stop_after, Job, Sample};

/// The request timeout of every request (kafka-conn's default is 30 s).
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Spare room below which the buffer gathers or grows before a read.
const MIN_WINDOW: usize = 64 << 10;
/// What the buffer asks for when it gathers or grows (the raw loop's
/// buffer size).
const BLOCK: usize = 256 << 10;

/// The receive buffer: responses leave it as `Bytes`; `buf[filled..]` is
/// zero-filled scratch for the next read.
pub(super) struct OwnedReader {
    buf: BytesMut,
    filled: usize,
    /// Bytes zero-filled so far (for the tests).
    #[cfg(test)]
    zeroed: usize,
}

impl OwnedReader {
    pub(super) fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(BLOCK),
            filled: 0,
            #[cfg(test)]
            zeroed: 0,
        }
    }

    /// The room to read into: the scratch, made at least `MIN_WINDOW` long.
    pub(super) fn window(&mut self) -> &mut [u8] {
        if self.buf.len() - self.filled < MIN_WINDOW {
            self.buf.truncate(self.filled);
            // Takes the allocation back (moving the partial response to its
            // front) once every response split off it was dropped;
            // otherwise allocates. Asking for no more than the allocation
            // holds is what lets `reserve` take it back instead of growing
            // it.
            self.buf
                .reserve(MIN_WINDOW.max(BLOCK.saturating_sub(self.filled)));
            let capacity = self.buf.capacity();
            #[cfg(test)]
            {
                self.zeroed += capacity - self.buf.len();
            }
            self.buf.resize(capacity, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// After a read of `n` bytes into [`OwnedReader::window`]: every whole
    /// response now buffered goes to `on_response` as owned `Bytes` (its
    /// size prefix stripped).
    pub(super) fn commit(
        &mut self,
        n: usize,
        mut on_response: impl FnMut(bytes::Bytes) -> std::io::Result<()>,
    ) -> std::io::Result<usize> {
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.filled += n;
        let mut completed = 0;
        while self.filled >= 4 {
            let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            let size = usize::try_from(size)
                .map_err(|_| std::io::Error::other("negative response size"))?;
            if self.filled < 4 + size {
                break;
            }
            let mut frame = self.buf.split_to(4 + size).freeze();
            self.filled -= 4 + size;
            bytes::Buf::advance(&mut frame, 4);
            on_response(frame)?;
            completed += 1;
        }
        Ok(completed)
    }
}

/// One request on the wire: what its response is matched and timed by.
struct InFlight {
    correlation_id: i32,
    sent_at: Instant,
    deadline: Instant,
}

/// What a client keeps per request for its promises: the requests on the
/// wire in order, each with its send time and deadline, and the sum of
/// the round trips measured (`raw-<runtime>-owned` and
/// `raw-<runtime>-shared-owned` keep the same).
pub(super) struct Promises {
    in_flight: VecDeque<InFlight>,
    rtt_sum: Duration,
}

impl Promises {
    pub(super) fn new() -> Self {
        Self {
            in_flight: VecDeque::new(),
            rtt_sum: Duration::ZERO,
        }
    }

    /// Whether no request is on the wire.
    pub(super) fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// `n` requests went out at `now` (one clock reading per batch).
    pub(super) fn sent(&mut self, now: Instant, n: usize) {
        for _ in 0..n {
            self.in_flight.push_back(InFlight {
                correlation_id: 0,
                sent_at: now,
                deadline: now + REQUEST_TIMEOUT,
            });
        }
    }

    /// After a read at `now`: fails when the oldest request's deadline
    /// has passed.
    pub(super) fn check_deadline(&self, now: Instant) -> std::io::Result<()> {
        if self.in_flight.front().is_some_and(|f| f.deadline <= now) {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(())
    }

    /// `response` came in a read at `now`: it is matched to the oldest
    /// request by correlation id (see the module docs), and its round trip
    /// is timed.
    pub(super) fn answer(&mut self, now: Instant, response: &bytes::Bytes) -> std::io::Result<()> {
        let request = self
            .in_flight
            .pop_front()
            .ok_or_else(|| std::io::Error::other("unsolicited response"))?;
        let id = response
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if id != Some(request.correlation_id) {
            return Err(std::io::Error::other("correlation id mismatch"));
        }
        self.rtt_sum += now.saturating_duration_since(request.sent_at);
        Ok(())
    }

    /// The round trips summed (read once at the end, so that the
    /// optimizer keeps the timing).
    pub(super) fn rtt_sum(&self) -> Duration {
        self.rtt_sum
    }
}

/// The loop: see the module docs.
pub(super) async fn raw_owned<R: Runtime>(job: &Job, rt: R) -> Result<Sample, String> {
    use smol::io::AsyncReadExt;
    let e = |e: std::io::Error| e.to_string();
    let (s, frame, response_bytes) = raw_async_connect(job, &rt).await?;
    let _armed = armed_timer_now(&rt, REQUEST_TIMEOUT).await;
    let state = (s, OwnedReader::new(), Promises::new());

    measure_with(
        job,
        response_bytes,
        state,
        |(mut s, mut reader, mut promises), seconds| {
            let (frame, rt) = (&frame, &rt);
            async move {
                let stop = stop_after(seconds);
                let n = async {
                    write_frames_async(&mut s, frame, job.concurrency).await?;
                    promises.sent(rt.now(), job.concurrency);
                    let mut done = 0u64;
                    while !promises.is_empty() {
                        let read = s.read(reader.window()).await?;
                        let now = rt.now();
                        promises.check_deadline(now)?;
                        let completed = reader.commit(read, |response| {
                            promises.answer(now, &response)?;
                            // The caller's: dropped here, as the benchmark's
                            // kafka-conn clients drop theirs.
                            drop(std::hint::black_box(response));
                            Ok(())
                        })?;
                        done += completed as u64;
                        crate::note_done(completed as u64, &stop);
                        if completed > 0 && !stop.load(Ordering::Relaxed) {
                            write_frames_async(&mut s, frame, completed).await?;
                            promises.sent(rt.now(), completed);
                        }
                    }
                    std::hint::black_box(promises.rtt_sum());
                    Ok::<u64, std::io::Error>(done)
                }
                .await
                .map_err(e);
                ((s, reader, promises), n)
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` frames with bodies of varied sizes (up to 40 KB), body `i`
    /// filled with byte `i as u8`.
    fn stream(count: usize) -> (Vec<u8>, Vec<usize>) {
        let mut wire = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..count {
            let size = (i * 7_919) % 40_000 + 4;
            wire.extend_from_slice(&(size as i32).to_be_bytes());
            wire.extend(std::iter::repeat_n(i as u8, size));
            sizes.push(size);
        }
        (wire, sizes)
    }

    /// Feeds `wire` in reads of up to `chunk` bytes; returns the bodies
    /// handed out, the largest capacity the buffer reached and the bytes
    /// it zero-filled.
    fn feed(wire: &[u8], chunk: usize, keep: bool) -> (Vec<bytes::Bytes>, usize, usize) {
        let mut reader = OwnedReader::new();
        let mut out = Vec::new();
        let mut max_capacity = 0;
        let mut at = 0;
        while at < wire.len() {
            let window = reader.window();
            let n = window.len().min(chunk).min(wire.len() - at);
            window[..n].copy_from_slice(&wire[at..at + n]);
            at += n;
            reader
                .commit(n, |frame| {
                    if keep {
                        out.push(frame);
                    }
                    Ok(())
                })
                .unwrap();
            max_capacity = max_capacity.max(reader.buf.capacity());
        }
        assert_eq!(reader.filled, 0, "a partial frame was left over");
        (out, max_capacity, reader.zeroed)
    }

    #[test]
    fn every_frame_comes_out_whole_and_in_order_across_reads() {
        let (wire, sizes) = stream(500);
        for chunk in [1_000, 27_600, 300_000] {
            let (frames, _, _) = feed(&wire, chunk, true);
            assert_eq!(frames.len(), sizes.len(), "reads of {chunk}");
            for (i, (frame, size)) in frames.iter().zip(&sizes).enumerate() {
                assert_eq!(frame.len(), *size, "frame {i}, reads of {chunk}");
                assert!(
                    frame.iter().all(|&b| b == i as u8),
                    "frame {i}, reads of {chunk}"
                );
            }
        }
    }

    #[test]
    fn the_buffer_takes_its_allocation_back_once_the_frames_are_dropped() {
        // 500 frames are about 10 MB: a buffer that grew instead of taking
        // its allocation back (as `reserve(BLOCK)` on a full block does)
        // would reach megabytes.
        let (wire, _) = stream(500);
        let (_, max_capacity, _) = feed(&wire, 27_600, false);
        assert!(
            max_capacity <= BLOCK + MIN_WINDOW,
            "the buffer grew to {max_capacity} bytes"
        );
    }

    #[test]
    fn each_byte_received_is_zeroed_about_once() {
        // The scratch is kept across reads: only room that the buffer took
        // back is zeroed again. (27.6 KB is the mean read at Metadata c=64.)
        let (wire, _) = stream(500);
        let (_, _, zeroed) = feed(&wire, 27_600, false);
        let per_byte = zeroed as f64 / wire.len() as f64;
        eprintln!(
            "zeroed {zeroed} bytes for {} received: {per_byte:.2} per byte",
            wire.len()
        );
        assert!(
            per_byte < 1.5,
            "{per_byte:.2} bytes zeroed per byte received"
        );
    }

    /// A response body whose correlation id is `id`.
    fn response(id: i32) -> bytes::Bytes {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(b"rest");
        body.into()
    }

    #[test]
    fn promises_match_in_order_and_time_each_round_trip() {
        let start = Instant::now();
        let mut promises = Promises::new();
        promises.sent(start, 2);
        promises.sent(start + Duration::from_millis(5), 1);
        let read = start + Duration::from_millis(10);
        promises.check_deadline(read).unwrap();
        for _ in 0..3 {
            promises.answer(read, &response(0)).unwrap();
        }
        assert!(promises.is_empty());
        // 10 + 10 + 5 ms.
        assert_eq!(promises.rtt_sum(), Duration::from_millis(25));
    }

    #[test]
    fn promises_refuse_a_stray_response_a_wrong_id_and_a_passed_deadline() {
        let start = Instant::now();
        let mut promises = Promises::new();
        let stray = promises.answer(start, &response(0)).unwrap_err();
        assert!(stray.to_string().contains("unsolicited"), "{stray}");

        promises.sent(start, 1);
        let wrong = promises.answer(start, &response(7)).unwrap_err();
        assert!(wrong.to_string().contains("correlation id"), "{wrong}");
        // A body too short to hold an id is a mismatch too.
        promises.sent(start, 1);
        let short = promises
            .answer(start, &bytes::Bytes::from_static(b"ab"))
            .unwrap_err();
        assert!(short.to_string().contains("correlation id"), "{short}");

        promises.sent(start, 1);
        let before = start + REQUEST_TIMEOUT - Duration::from_millis(1);
        promises.check_deadline(before).unwrap();
        let late = promises
            .check_deadline(start + REQUEST_TIMEOUT)
            .unwrap_err();
        assert_eq!(late.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_negative_size_is_an_error_and_end_of_stream_too() {
        let mut reader = OwnedReader::new();
        reader.window()[..4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(reader.commit(4, |_| Ok(())).is_err());
        let mut reader = OwnedReader::new();
        let _ = reader.window();
        let eof = reader.commit(0, |_| Ok(())).unwrap_err();
        assert_eq!(eof.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
