//! Length-prefixed frames: the receive buffer and the size guard.
//!
//! Every Kafka message is a big-endian signed i32 size followed by that many
//! bytes. The buffer grows only as bytes actually arrive (in bounded steps),
//! never on the size a peer claims, so a 2 GiB prefix costs nothing until
//! 2 GiB arrive. A frame is handed out as `Bytes` split off the buffer, so
//! the body is never copied again. A driver whose transport reads into
//! memory that is not initialised yet reads into the buffer's spare
//! capacity (`recv_spare`); otherwise the window it reads into is
//! zero-filled first (`recv_buf`), as safe Rust requires.

use bytes::buf::Limit;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::ProtocolViolation;

/// What the receive buffer shrinks back to after a large frame.
const MIN_READ: usize = 16 * 1024;
/// The smallest read window. Memory must be zero-filled before it is first
/// handed out (safe Rust cannot hand out uninitialised memory); what a read
/// leaves unused is kept as scratch for the next window, so the zeroing
/// follows the bytes received rather than the windows. Unless a frame under
/// way needs more, the window is sized to what reads actually return,
/// between this and [`BIG_READ`], rather than always 16 KiB.
const SMALL_READ: usize = 512;
/// The read window floor a connection starts with, and starts again with
/// after giving its buffer back ([`FrameReader::release`]): enough for the
/// ApiVersions response and most small ones, and what an idle connection
/// costs at most until its buffer is given back. Larger reads double it.
const FIRST_READ: usize = 1024;
/// The largest the floor grows to when reads keep filling the window
/// (pipelined responses): fewer `read` calls, bounded zero-filling.
const BIG_READ: usize = 64 * 1024;
/// The largest single growth step while a big frame arrives: the buffer
/// grows with the bytes received, not with the claimed size.
const MAX_READ: usize = 1024 * 1024;
/// Capacity above which an empty buffer is given back (after a large frame).
const SHRINK_ABOVE: usize = 4 * MAX_READ;
/// The largest buffer kept as the spare (see `FrameReader::spare`), and
/// the most the buffer grows to for it.
const SPARE_MAX: usize = 4 * BIG_READ;

/// The receive side of a connection.
#[derive(Debug)]
pub(crate) struct FrameReader {
    /// The bytes received (`buf[..filled]`), then scratch room
    /// (`buf[filled..]`): memory zero-filled for an earlier read window and
    /// not used by it. The next window starts on the scratch, so only the
    /// part of a window beyond it is zero-filled: a read returning fewer
    /// bytes than its window no longer costs a zero-fill of the whole
    /// window on the next read (issue 20: that was 78% of the instructions
    /// of a `DirectClient` Metadata request at concurrency 1).
    buf: BytesMut,
    /// How many bytes at the front of `buf` are data.
    filled: usize,
    max_frame_size: usize,
    /// Whether a full frame was seen (TLS/HTTP sniffing applies to the first).
    seen_frame: bool,
    /// Length of the window handed out by `recv_buf` and not yet committed;
    /// it starts at `filled`.
    window: Option<usize>,
    /// The window's lower bound, adapted to the reads: doubled (up to
    /// [`BIG_READ`]) when a read returns at least this much, halved (down to
    /// [`SMALL_READ`]) when a read that starts a frame returns under a
    /// quarter of it. A read that ends a frame begun by an earlier read is
    /// short because the frame ended, which says nothing of the window:
    /// halving there made responses a little over half the largest window
    /// take two reads each, forever (issue 20: a 8.6 KiB Metadata response
    /// at concurrency 1 cost two `recvfrom` per response, the floor
    /// swinging between 8 and 16 KiB).
    floor: usize,
    /// The most room the buffer has had (its allocation, roughly): what
    /// `recv_buf` tries to gather back, without allocating, when the
    /// buffer is empty.
    room: usize,
    /// The allocation the buffer last moved out of because frames handed
    /// out still shared it when it ran out of room. Once the caller has
    /// dropped those frames it is unique again and is taken back instead of
    /// allocating, so a connection whose callers hold some responses while
    /// more arrive (pipelining) alternates between two allocations rather
    /// than allocating one, and promoting it to shared, per buffer-full
    /// (issue 20: zero allocations per request in steady state). Kept only
    /// up to [`SPARE_MAX`], and dropped with the buffer after a large frame.
    spare: Option<BytesMut>,
    /// Bytes zero-filled for read windows so far, for the tests.
    #[cfg(test)]
    zero_filled: usize,
}

impl FrameReader {
    /// No buffer yet: the first [`FrameReader::recv_buf`] takes one.
    pub(crate) fn new(max_frame_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            filled: 0,
            max_frame_size,
            seen_frame: false,
            window: None,
            floor: FIRST_READ,
            room: 0,
            spare: None,
            #[cfg(test)]
            zero_filled: 0,
        }
    }

    /// Whether the buffer holds memory but no bytes and no open window:
    /// what [`FrameReader::release`] may give back without losing anything.
    pub(crate) fn releasable(&self) -> bool {
        self.window.is_none()
            && self.filled == 0
            && (self.buf.capacity() > 0 || self.spare.is_some())
    }

    /// Gives the (empty) buffer back to the allocator: an idle connection
    /// then holds no receive memory. The next read window is
    /// [`FIRST_READ`] again and grows with what arrives. Does nothing unless
    /// [`FrameReader::releasable`].
    pub(crate) fn release(&mut self) {
        if self.releasable() {
            // A frame handed out earlier may still share the allocation: it
            // keeps its part alive; this only drops the reader's reference.
            self.buf = BytesMut::new();
            self.floor = FIRST_READ;
            self.room = 0;
            // And the spare: an idle connection holds no receive memory.
            self.spare = None;
        }
    }

    /// Forgets a window that was never committed: its bytes stay scratch.
    fn close_window(&mut self) {
        self.window = None;
    }

    /// The bytes received and not yet handed out as frames.
    fn data(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// Forgets the scratch room, before the data moves (moving the scratch
    /// too would cost what zero-filling it again costs) or the buffer grows.
    fn drop_scratch(&mut self) {
        self.buf.truncate(self.filled);
    }

    /// Capacity held, for the memory tests.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity() + self.spare.as_ref().map_or(0, BytesMut::capacity)
    }

    /// Called when requests start to be pipelined (two in flight): from
    /// now on the caller may hold responses while more arrive, so the
    /// buffer and its spare are made large enough for any read window near
    /// a frame's start, and shared, now rather than the first time that
    /// happens (which may be any time later: issue 20's zero allocations in
    /// steady state). A connection that never pipelines keeps one small
    /// buffer.
    pub(crate) fn prepare_for_pipelining(&mut self) {
        if self.spare.is_some() || self.room > SPARE_MAX {
            return;
        }
        let size = MIN_READ + BIG_READ;
        self.close_window();
        self.drop_scratch();
        self.buf.reserve(size.saturating_sub(self.filled));
        self.room = self.room.max(self.buf.capacity());
        let mut spare = BytesMut::with_capacity(size);
        // Splitting off an empty view makes it shared now (bytes allocates
        // its reference count on the first split).
        drop(spare.split_to(0));
        self.spare = Some(spare);
    }

    /// Makes room for `needed` bytes (the buffer's bytes included) when the
    /// buffer holds little (near a frame's start) and cannot grow in place,
    /// typically because frames handed out share it: the bytes move to the
    /// spare if it is free again, else to a new allocation, and the old
    /// buffer becomes the spare.
    fn make_room(&mut self, needed: usize) {
        // Only once pipelining (see `prepare_for_pipelining`): otherwise the
        // buffer grows in place, lazily, as before.
        if self.buf.capacity() >= needed || self.spare.is_none() {
            return;
        }
        let additional = needed - self.filled;
        self.drop_scratch();
        // Far into a frame, growing in place (`resize`, which doubles) is
        // what keeps a large frame's one copy: leave it to that.
        if self.buf.try_reclaim(additional) || self.filled > MIN_READ {
            return;
        }
        let Some(mut spare) = self.spare.take() else {
            return;
        };
        // The spare if it is unique again (its frames were dropped): no
        // allocation, and it is shared already (no promotion when the next
        // frame is split off either). A new buffer is large enough for any
        // read window near a frame's start (MIN_READ + BIG_READ), so the
        // spare fits every later one too: a window that grew after the
        // warm-up must not cost an allocation.
        let mut next = if spare.try_reclaim(needed) {
            spare
        } else {
            // Still shared: the frames held span both allocations. Grow,
            // until one allocation holds what the callers hold at once (up
            // to SPARE_MAX, beyond which none is kept).
            drop(spare);
            self.room = (2 * self.room).min(SPARE_MAX).max(self.room);
            BytesMut::with_capacity(needed.max(self.room).max(MIN_READ + BIG_READ))
        };
        next.extend_from_slice(&self.buf);
        let mut old = std::mem::replace(&mut self.buf, next);
        old.clear();
        if self.room <= SPARE_MAX {
            self.spare = Some(old);
        }
    }

    /// A window to read into, sized for the frame under way (bounded by
    /// [`MAX_READ`] per call) or to recent reads. Its bytes are initialised
    /// (zeros, or what an earlier read left unused), never data.
    pub(crate) fn recv_buf(&mut self) -> &mut [u8] {
        let (len, want) = self.open_window();
        if self.buf.capacity() < len + want {
            // Growing moves the bytes: the data only.
            self.drop_scratch();
        }
        // resize reuses spare capacity and zero-fills only what lies beyond
        // the scratch; it allocates only when the frame under way has
        // outgrown the buffer, and then by at most MAX_READ at a time.
        if self.buf.len() < len + want {
            #[cfg(test)]
            {
                self.zero_filled += len + want - self.buf.len();
            }
            self.buf.resize(len + want, 0);
        }
        self.room = self.room.max(self.buf.capacity());
        &mut self.buf[len..len + want]
    }

    /// The same window as [`FrameReader::recv_buf`], as the buffer's spare
    /// capacity for a reader that writes into memory that is not
    /// initialised yet (`BufMut`): nothing is zero-filled. The buffer ends
    /// at the data (the scratch is given up: its zeros are of no use to
    /// such a reader), and the read appends at most the window.
    pub(crate) fn recv_spare(&mut self) -> Limit<&mut BytesMut> {
        let (len, want) = self.open_window();
        self.drop_scratch();
        // Allocates only where `recv_buf`'s resize would: when the frame
        // under way has outgrown the buffer.
        self.buf.reserve(want);
        self.room = self.room.max(self.buf.capacity());
        debug_assert_eq!(self.buf.len(), len);
        (&mut self.buf).limit(want)
    }

    /// Sizes the next read window and makes room for it (see the two
    /// callers): returns where it starts (the data's end) and its length.
    fn open_window(&mut self) -> (usize, usize) {
        self.close_window();
        // The window follows the frame under way, but never by more than
        // what has actually arrived (doubling as bytes come), so a peer's
        // claimed size alone cannot make us allocate: found by fuzzing
        // (`connection_bytes`: 2 MiB held after 96 bytes).
        let arrived = self.filled.max(self.floor);
        let wanted = self.wanted();
        let want = wanted.min(arrived).clamp(self.floor, MAX_READ);
        let len = self.filled;
        // Near a frame's start, gather the room earlier frames left at the
        // front of the allocation while there is little or nothing to move:
        // otherwise a large frame runs out of tail room half-way and `resize`
        // moves all of it that has arrived (a second copy of every large
        // body). `try_reclaim` never allocates: the claimed size only decides
        // how much of the memory already held to gather, never how much to
        // take.
        // With nothing buffered, the room is gathered once half of it has
        // been used (or the window does not fit in what is left), not on
        // every empty buffer: gathering forgets the scratch (the memory at
        // the front counts as uninitialised again), so doing it after each
        // frame would zero-fill a whole window per read.
        let frame_room = wanted.min(MAX_READ);
        let gather = if len == 0 {
            if self.buf.capacity() < want.max(self.room / 2) {
                self.room
            } else {
                0
            }
        } else if len <= frame_room / 8 {
            frame_room
        } else {
            0
        };
        if gather > self.buf.capacity() - len {
            self.drop_scratch();
            // false: shared with a frame the caller still holds, or too
            // small; the resize below then grows it as before.
            let _ = self.buf.try_reclaim(gather);
        }
        self.make_room(len + want);
        self.window = Some(want);
        (len, want)
    }

    /// Keeps the first `n` bytes of the last [`FrameReader::recv_buf`] or
    /// [`FrameReader::recv_spare`] window. Returns false (keeping nothing)
    /// if no window is open, `n` is larger than the window, or fewer than
    /// `n` bytes were appended to a spare window. `n == 0` (a read that
    /// would block) closes the window and leaves the window sizing alone:
    /// nothing was read.
    pub(crate) fn commit(&mut self, n: usize) -> bool {
        match self.window.take() {
            Some(_) if n == 0 => true,
            // The bytes must be in the buffer: a `recv_spare` reader that
            // appended fewer than it reports keeps nothing.
            Some(window) if n <= window && self.filled + n <= self.buf.len() => {
                if n >= self.floor {
                    self.floor = (self.floor * 2).min(BIG_READ);
                } else if n < self.floor / 4 && self.filled == 0 {
                    self.floor = (self.floor / 2).max(SMALL_READ);
                }
                self.filled += n;
                true
            }
            Some(_) | None => false,
        }
    }

    /// Appends a copy of `data`.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        self.close_window();
        let end = self.filled + data.len();
        self.make_room(end);
        if self.buf.len() >= end {
            // Into the scratch: no zero-fill was needed, and none is.
            self.buf[self.filled..end].copy_from_slice(data);
        } else {
            self.drop_scratch();
            if self.buf.capacity() - self.filled < data.len() {
                // At least a read window's worth: a buffer sized exactly to
                // one frame would leave with that frame and be taken again
                // for the next (an allocation per response after a release
                // or at start).
                self.buf.reserve(data.len().max(self.floor));
            }
            self.buf.extend_from_slice(data);
        }
        self.filled = end;
    }

    /// Bytes still missing for the frame under way (a hint for read sizing).
    fn wanted(&self) -> usize {
        if self.filled < 4 {
            return 4 - self.filled;
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        match usize::try_from(size) {
            Ok(s) if s <= self.max_frame_size => (s + 4).saturating_sub(self.filled),
            _ => 0,
        }
    }

    /// The next complete frame (without its size prefix), if one is buffered.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Bytes>, ProtocolViolation> {
        self.close_window();
        if self.filled < 4 {
            // Three bytes are enough to recognise a TLS record.
            if !self.seen_frame && looks_like_tls(self.data()) {
                return Err(ProtocolViolation::LooksLikeTls);
            }
            return Ok(None);
        }
        let prefix = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
        let size = i32::from_be_bytes(prefix);
        if !self.seen_frame || size < 0 || size as usize > self.max_frame_size {
            if looks_like_tls(&prefix) {
                return Err(ProtocolViolation::LooksLikeTls);
            }
            if &prefix == b"HTTP" {
                return Err(ProtocolViolation::LooksLikeHttp);
            }
        }
        if size < 0 {
            return Err(ProtocolViolation::NegativeFrameSize(size));
        }
        let size = size as usize;
        if size > self.max_frame_size {
            return Err(ProtocolViolation::FrameTooLarge {
                size: size as i32,
                max: self.max_frame_size,
            });
        }
        if self.filled < 4 + size {
            return Ok(None);
        }
        self.seen_frame = true;
        let capacity_before = self.buf.capacity();
        // One split with the size prefix, stepped over in the frozen view:
        // advancing a `BytesMut` (its start, capacity and kind bookkeeping)
        // costs several times what moving a `Bytes` view does, and
        // `split_to` advances the buffer once already.
        let mut frame = self.buf.split_to(4 + size).freeze();
        frame.advance(4);
        self.filled -= 4 + size;
        if capacity_before > SHRINK_ABOVE && self.filled <= MIN_READ {
            // After a large frame, stop sharing its allocation: move the few
            // bytes of the next frame into a small buffer, so the memory goes
            // back as soon as the caller drops the frame.
            let mut fresh = BytesMut::with_capacity(MIN_READ);
            fresh.extend_from_slice(self.data());
            self.buf = fresh;
            self.room = MIN_READ;
            self.spare = None;
        }
        Ok(Some(frame))
    }

    /// What the leftover bytes at end of stream say, if anything.
    pub(crate) fn leftover_violation(&mut self) -> Option<ProtocolViolation> {
        self.close_window();
        let data = self.data();
        if data.is_empty() {
            return None;
        }
        if looks_like_tls(data) {
            return Some(ProtocolViolation::LooksLikeTls);
        }
        if data.starts_with(b"HTTP") {
            return Some(ProtocolViolation::LooksLikeHttp);
        }
        Some(ProtocolViolation::TruncatedFrame {
            buffered: data.len(),
        })
    }
}

/// A TLS record header: content type 20-24 (RFC 8446 section 5.1: change
/// cipher spec, alert, handshake, application data, heartbeat) followed by
/// legacy version 3.x. Needs at least three bytes.
fn looks_like_tls(b: &[u8]) -> bool {
    b.len() >= 3 && (0x14..=0x18).contains(&b[0]) && b[1] == 0x03 && b[2] <= 0x04
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_split_anywhere_give_the_same_frames() {
        let mut stream = frame(b"hello");
        stream.extend(frame(b""));
        stream.extend(frame(b"world!"));
        for split in 0..=stream.len() {
            let mut r = FrameReader::new(1024);
            let mut got = vec![];
            for part in [&stream[..split], &stream[split..]] {
                r.extend(part);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, vec![&b"hello"[..], &b""[..], &b"world!"[..]]);
        }
    }

    #[test]
    fn huge_prefix_allocates_nothing_up_front() {
        let mut r = FrameReader::new(usize::try_from(i32::MAX).unwrap());
        r.extend(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(r.next_frame().unwrap(), None);
        assert!(r.capacity() < 64 * 1024, "capacity {}", r.capacity());
        // The read window is bounded too.
        assert!(r.recv_buf().len() <= MAX_READ);
    }

    #[test]
    fn negative_and_oversized_prefixes_are_violations() {
        let mut r = FrameReader::new(100);
        r.extend(&(-1i32).to_be_bytes());
        assert_eq!(
            r.next_frame(),
            Err(ProtocolViolation::NegativeFrameSize(-1))
        );
        let mut r = FrameReader::new(100);
        r.extend(&101i32.to_be_bytes());
        assert!(matches!(
            r.next_frame(),
            Err(ProtocolViolation::FrameTooLarge { size: 101, .. })
        ));
    }

    #[test]
    fn tls_and_http_are_recognised() {
        let mut r = FrameReader::new(usize::try_from(i32::MAX).unwrap());
        r.extend(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]);
        assert_eq!(r.next_frame(), Err(ProtocolViolation::LooksLikeTls));
        let mut r = FrameReader::new(100);
        r.extend(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(r.next_frame(), Err(ProtocolViolation::LooksLikeHttp));
        let mut r = FrameReader::new(100);
        r.extend(&[0x16, 0x03, 0x01]);
        assert_eq!(r.next_frame(), Err(ProtocolViolation::LooksLikeTls));
    }

    #[test]
    fn the_read_window_follows_the_reads() {
        let mut r = FrameReader::new(64 << 20);
        assert_eq!(r.recv_buf().len(), FIRST_READ);
        // Small responses: the window shrinks.
        for _ in 0..8 {
            let win = r.recv_buf();
            win[..8].copy_from_slice(&frame(b"four"));
            assert!(r.commit(8));
            assert_eq!(r.next_frame().unwrap().as_deref(), Some(&b"four"[..]));
        }
        assert_eq!(r.recv_buf().len(), SMALL_READ);
        // Reads that fill it make it grow again, up to BIG_READ.
        let many: Vec<u8> = (0..40_000).flat_map(|_| frame(b"x")).collect();
        let mut fed = 0;
        let mut windows = vec![];
        while fed < many.len() {
            let win = r.recv_buf();
            windows.push(win.len());
            let n = win.len().min(many.len() - fed);
            win[..n].copy_from_slice(&many[fed..fed + n]);
            fed += n;
            assert!(r.commit(n));
            while r.next_frame().unwrap().is_some() {}
        }
        assert!(windows.windows(2).all(|w| w[1] >= w[0]), "{windows:?}");
        assert_eq!(*windows.last().unwrap(), BIG_READ, "{windows:?}");
        // A big frame under way gets windows that grow with the bytes that
        // arrived (doubling), never with the size the peer claims.
        let mut r = FrameReader::new(64 << 20);
        r.extend(&(1_000_000i32).to_be_bytes());
        assert_eq!(r.recv_buf().len(), FIRST_READ);
        let mut windows = vec![];
        let mut fed = 0;
        while fed < 1_000_000 {
            let win = r.recv_buf();
            windows.push(win.len());
            let n = win.len().min(1_000_000 - fed);
            fed += n;
            assert!(r.commit(n));
            assert!(
                r.capacity() <= 4 * (fed + 4) + 2 * BIG_READ,
                "{} after {fed}",
                r.capacity()
            );
        }
        assert!(
            windows.windows(2).all(|w| w[1] <= 2 * w[0] + FIRST_READ),
            "{windows:?}"
        );
        assert_eq!(r.next_frame().unwrap().map(|f| f.len()), Some(1_000_000));
    }

    #[test]
    fn a_response_that_arrived_whole_takes_one_read() {
        // One response at a time (concurrency 1), each wholly arrived
        // before the read: a socket read returns what its window takes of
        // it. Once the window has adapted, one read per response, for every
        // size up to BIG_READ (sizes just over half a window took two reads
        // each when the remainder's short read halved the window).
        for body in [
            100, 700, 3_000, 5_000, 8_573, 12_712, 20_000, 40_000, 60_000,
        ] {
            let mut r = FrameReader::new(64 << 20);
            let f = frame(&vec![7u8; body]);
            let mut reads_per_response = vec![];
            for _ in 0..50 {
                let mut fed = 0;
                let mut reads = 0;
                while fed < f.len() {
                    let win = r.recv_buf();
                    let n = win.len().min(f.len() - fed);
                    win[..n].copy_from_slice(&f[fed..fed + n]);
                    fed += n;
                    reads += 1;
                    assert!(r.commit(n));
                }
                reads_per_response.push(reads);
                assert_eq!(r.next_frame().unwrap().map(|b| b.len()), Some(body));
            }
            assert!(
                reads_per_response[10..].iter().all(|&n| n == 1),
                "body {body}: reads per response {reads_per_response:?}"
            );
        }
    }

    #[test]
    fn zero_filling_follows_the_bytes_received_not_the_windows() {
        // One response at a time (concurrency 1): every read returns one
        // frame, a fraction of its window. The windows' unused part is
        // reused by the next read instead of being zero-filled again, so
        // the zeroing is about the bytes received, not reads x window.
        for (body, responses) in [(100, 2_000), (3_000, 1_000), (20_000, 200)] {
            let mut r = FrameReader::new(64 << 20);
            let f = frame(&vec![1u8; body]);
            let (mut windows, mut received) = (0, 0);
            for _ in 0..responses {
                let win = r.recv_buf();
                windows += win.len();
                let n = win.len().min(f.len());
                win[..n].copy_from_slice(&f[..n]);
                assert!(r.commit(n));
                received += n;
                if n < f.len() {
                    r.extend(&f[n..]);
                    received += f.len() - n;
                }
                assert_eq!(r.next_frame().unwrap().map(|b| b.len()), Some(body));
            }
            // Never more than the windows handed out (what zero-filling
            // every window, as before, cost), and for responses much
            // smaller than the smallest window, at most twice the bytes
            // received (it was five times: a 512-byte window per 104
            // bytes).
            let bound = if f.len() * 4 <= SMALL_READ {
                2 * received
            } else {
                windows
            };
            assert!(
                r.zero_filled <= bound,
                "body {body}: zero-filled {} for {received} received ({windows} in windows)",
                r.zero_filled
            );
        }
    }

    #[test]
    fn an_empty_buffer_is_given_back_and_taken_again_small() {
        let mut r = FrameReader::new(64 << 20);
        // Nothing is held before the first read.
        assert_eq!(r.capacity(), 0);
        assert!(!r.releasable());
        assert_eq!(r.recv_buf().len(), FIRST_READ);
        // An open window is never given back (its bytes may be on their way).
        assert!(!r.releasable());
        r.release();
        assert!(r.capacity() >= FIRST_READ);
        // A read that would block closes it without touching the sizing.
        assert!(r.commit(0));
        assert!(r.releasable());
        // Half a frame buffered: kept.
        let f = frame(b"hello");
        r.recv_buf()[..3].copy_from_slice(&f[..3]);
        assert!(r.commit(3));
        assert!(!r.releasable());
        r.release();
        assert!(r.capacity() > 0);
        r.extend(&f[3..]);
        assert_eq!(r.next_frame().unwrap().as_deref(), Some(&b"hello"[..]));
        // Empty again: given back, and a frame handed out before (sharing
        // the allocation) stays whole.
        let win = r.recv_buf();
        win[..8].copy_from_slice(&frame(b"four"));
        assert!(r.commit(8));
        let held = r.next_frame().unwrap().unwrap();
        assert!(r.releasable());
        r.release();
        assert_eq!(r.capacity(), 0);
        assert!(!r.releasable());
        assert_eq!(&held[..], b"four");
        // The next window is small again, and reading goes on.
        assert_eq!(r.recv_buf().len(), FIRST_READ);
        r.recv_buf()[..9].copy_from_slice(&frame(b"again"));
        assert!(r.commit(9));
        assert_eq!(r.next_frame().unwrap().as_deref(), Some(&b"again"[..]));
    }

    #[test]
    fn memory_goes_back_down_after_a_large_frame() {
        let mut r = FrameReader::new(64 << 20);
        let big = frame(&vec![7u8; 16 << 20]);
        let mut fed = 0;
        while fed < big.len() {
            let win = r.recv_buf();
            let n = win.len().min(big.len() - fed);
            win[..n].copy_from_slice(&big[fed..fed + n]);
            fed += n;
            assert!(r.commit(n));
        }
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(f.len(), 16 << 20);
        drop(f);
        assert!(r.capacity() <= MIN_READ, "capacity {}", r.capacity());
    }

    /// Feeds `stream` through `recv_buf` windows as large as each window
    /// (a socket with everything ready); returns the frames and where each
    /// frame's bytes were when they arrived (the window that took its size
    /// prefix) next to where the frame handed out lives.
    fn feed_and_locate(r: &mut FrameReader, stream: &[u8]) -> Vec<(Bytes, usize, usize)> {
        let mut out = vec![];
        let (mut fed, mut frame_start) = (0, 0);
        let mut arrived_at = None;
        while fed < stream.len() {
            let win = r.recv_buf();
            let n = win.len().min(stream.len() - fed);
            if fed <= frame_start && frame_start < fed + n && arrived_at.is_none() {
                arrived_at = Some(win.as_ptr() as usize + (frame_start - fed));
            }
            win[..n].copy_from_slice(&stream[fed..fed + n]);
            fed += n;
            assert!(r.commit(n));
            while let Some(f) = r.next_frame().unwrap() {
                // The body starts 4 bytes after the size prefix.
                let at = arrived_at.take().expect("a frame arrived") + 4;
                frame_start += f.len() + 4;
                out.push((f.clone(), at, f.as_ptr() as usize));
                if frame_start < fed {
                    arrived_at = Some(r.buf.as_ptr() as usize);
                }
            }
        }
        out
    }

    #[test]
    fn a_large_frame_is_received_in_place() {
        // The first 1 MiB frame grows the buffer (moving what has arrived
        // when it reallocates); from then on the room is reused, and every
        // later large frame stays where its bytes were read: the read is its
        // one copy.
        let mut r = FrameReader::new(64 << 20);
        let big = frame(&vec![7u8; 1 << 20]);
        for round in 0..4 {
            let frames = feed_and_locate(&mut r, &big);
            assert_eq!(frames.len(), 1);
            let (f, arrived, handed_out) = &frames[0];
            assert_eq!(f.len(), 1 << 20);
            if round > 0 {
                assert_eq!(arrived, handed_out, "round {round}: the frame was moved");
            }
        }
    }

    /// Feeds `stream` in reads of at most `step` bytes, through
    /// `recv_spare` or `recv_buf`, draining frames after each read: the
    /// frames, and every window's length.
    fn read_all(
        r: &mut FrameReader,
        stream: &[u8],
        step: usize,
        spare: bool,
    ) -> (Vec<Bytes>, Vec<usize>) {
        let (mut frames, mut windows, mut fed) = (vec![], vec![], 0);
        while fed < stream.len() {
            let n;
            if spare {
                let mut win = r.recv_spare();
                windows.push(win.remaining_mut());
                n = win.remaining_mut().min(step).min(stream.len() - fed);
                win.put_slice(&stream[fed..fed + n]);
            } else {
                let win = r.recv_buf();
                windows.push(win.len());
                n = win.len().min(step).min(stream.len() - fed);
                win[..n].copy_from_slice(&stream[fed..fed + n]);
            }
            assert!(r.commit(n));
            fed += n;
            while let Some(f) = r.next_frame().unwrap() {
                frames.push(f);
            }
        }
        (frames, windows)
    }

    #[test]
    fn spare_windows_are_the_zero_filled_windows_without_the_zeros() {
        // Small and large frames, pipelined, in reads that fill the window,
        // split frames, or take a few bytes at a time.
        let mut stream = vec![];
        for (i, size) in [100usize, 12_000, 3, 70_000, 600, 1 << 20, 8_577]
            .iter()
            .enumerate()
        {
            stream.extend(frame(&vec![i as u8; *size]));
        }
        for step in [7, 1000, 8_581, 64 << 10, usize::MAX] {
            let mut zeroed = FrameReader::new(64 << 20);
            let mut spare = FrameReader::new(64 << 20);
            let (frames_a, windows_a) = read_all(&mut zeroed, &stream, step, false);
            let (frames_b, windows_b) = read_all(&mut spare, &stream, step, true);
            assert_eq!(frames_a, frames_b, "step {step}");
            assert_eq!(frames_b.len(), 7);
            // The same window sizing, so the same number of reads.
            assert_eq!(windows_a, windows_b, "step {step}");
            assert!(zeroed.zero_filled > 0);
            assert_eq!(spare.zero_filled, 0, "step {step}: nothing zero-filled");
            // And about the same memory.
            assert!(spare.capacity() <= zeroed.capacity().max(MIN_READ + BIG_READ) * 2);
        }
    }

    #[test]
    fn a_spare_commit_of_bytes_not_appended_keeps_nothing() {
        let mut r = FrameReader::new(1024);
        let mut win = r.recv_spare();
        win.put_slice(&frame(b"hi")[..3]);
        assert!(!r.commit(4), "one byte more than appended");
        // The window is gone; the three bytes were not taken as data.
        assert!(!r.commit(3));
        assert_eq!(r.filled, 0);
        let (frames, _) = read_all(&mut r, &frame(b"hello"), 2, true);
        assert_eq!(frames, vec![&b"hello"[..]]);
    }

    #[test]
    fn zero_filled_and_spare_reads_mix() {
        // A driver may switch (a probe copied in, then spare reads): the
        // scratch a zero-filled window left is dropped, never taken as data.
        let mut r = FrameReader::new(1 << 20);
        let f = frame(&[9u8; 3000]);
        let win = r.recv_buf();
        win.fill(0xa5);
        win[..10].copy_from_slice(&f[..10]);
        assert!(r.commit(10));
        let mut spare = r.recv_spare();
        let n = spare.remaining_mut().min(1990);
        spare.put_slice(&f[10..10 + n]);
        assert!(r.commit(n));
        r.extend(&f[10 + n..2500]);
        let win = r.recv_buf();
        win[..504].copy_from_slice(&f[2500..]);
        assert!(r.commit(504));
        assert_eq!(r.next_frame().unwrap().as_deref(), Some(&[9u8; 3000][..]));
        assert_eq!(r.next_frame().unwrap(), None);
    }

    #[test]
    fn a_large_frame_read_into_spare_capacity_is_received_in_place() {
        let mut r = FrameReader::new(64 << 20);
        let big = frame(&vec![7u8; 1 << 20]);
        for round in 0..4 {
            let mut fed = 0;
            let mut first_at = None;
            while fed < big.len() {
                let mut win = r.recv_spare();
                let n = win.remaining_mut().min(big.len() - fed);
                if fed == 0 {
                    first_at = Some(win.chunk_mut().as_mut_ptr() as usize);
                }
                win.put_slice(&big[fed..fed + n]);
                assert!(r.commit(n));
                fed += n;
            }
            let f = r.next_frame().unwrap().expect("the frame");
            assert_eq!(f.len(), 1 << 20);
            if round > 0 {
                assert_eq!(
                    first_at.unwrap() + 4,
                    f.as_ptr() as usize,
                    "round {round}: moved"
                );
            }
        }
    }
}
