//! Bytes waiting to be written, as a queue of chunks: the request headers
//! the core encodes, and the caller's bodies, never copied.
//!
//! Headers are written back to back into one buffer the queue owns (the
//! header arena) and handed out as slices of it. Each header used to be a
//! `Bytes` split off a shared buffer: two atomic reference-count operations
//! and about a hundred instructions per request, for 15-30 bytes.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// One piece of the queue, in write order.
#[derive(Debug)]
enum Chunk {
    /// The next `len` bytes of the header arena (headers are consumed in
    /// order, so the front header always starts at the arena's start).
    Header(usize),
    /// A caller's body (or a SASL token), shared, not copied.
    Body(Bytes),
}

#[derive(Debug)]
pub(crate) struct TransmitQueue {
    chunks: VecDeque<Chunk>,
    /// The headers still queued, in order. Never split or shared, so it
    /// keeps its allocation: consumed bytes are advanced past, and the room
    /// is taken back when the queue empties or the tail runs out.
    headers: BytesMut,
    len: usize,
    /// The longest header queued so far (for `reserve_for`).
    max_header: usize,
}

/// The header arena's capacity, taken at the first header (and again after
/// [`TransmitQueue::release`]): room for about ten headers. A connection
/// that pipelines more grows it once (it keeps its allocation); an idle
/// connection that gave it back costs this much of the allocator's room at
/// its next request (`docs/benchmarks.md`, "Memory per idle connection").
const HEADER_ARENA: usize = 256;

impl Default for TransmitQueue {
    fn default() -> Self {
        Self {
            chunks: VecDeque::new(),
            headers: BytesMut::new(),
            len: 0,
            max_header: 0,
        }
    }
}

impl TransmitQueue {
    /// Queues a header that `encode` appends to the arena (nothing else may
    /// be appended); returns what `encode` returned.
    pub(crate) fn push_header<T>(&mut self, encode: impl FnOnce(&mut BytesMut) -> T) -> T {
        if self.headers.capacity() == 0 {
            // Taken lazily: an idle connection gives it back (`release`).
            self.headers.reserve(HEADER_ARENA);
        }
        let before = self.headers.len();
        let result = encode(&mut self.headers);
        let n = self.headers.len() - before;
        if n > 0 {
            self.len += n;
            self.max_header = self.max_header.max(n);
            self.chunks.push_back(Chunk::Header(n));
        }
        result
    }

    /// Room for `requests` queued requests (a header and a body each)
    /// without allocating: twice their headers in the arena, so that when
    /// its tail runs out the live headers fit in the consumed front and are
    /// moved back rather than reallocated.
    pub(crate) fn reserve_for(&mut self, requests: usize) {
        self.chunks
            .reserve((2 * requests).saturating_sub(self.chunks.len()));
        self.headers.reserve(2 * requests * self.max_header);
    }

    /// Queues a body (not copied).
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(Chunk::Body(chunk));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Chunks queued: how many slices `slices` can fill.
    pub(crate) fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Whether nothing is queued but memory is held.
    pub(crate) fn releasable(&self) -> bool {
        self.len == 0 && (self.headers.capacity() > 0 || self.chunks.capacity() > 0)
    }

    /// Gives the (empty) queue's memory back; the next header takes a new
    /// arena. Does nothing unless [`TransmitQueue::releasable`].
    pub(crate) fn release(&mut self) {
        if self.releasable() {
            self.chunks = VecDeque::new();
            self.headers = BytesMut::new();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.headers.clear();
        self.len = 0;
    }

    /// Fills `dst` with the pending chunks in order; returns how many.
    pub(crate) fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut header_at = 0;
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = match chunk {
                Chunk::Header(len) => {
                    let s = &self.headers[header_at..header_at + len];
                    header_at += len;
                    IoSlice::new(s)
                }
                Chunk::Body(b) => IoSlice::new(b),
            };
            n += 1;
        }
        n
    }

    /// Removes the first `n` bytes. Returns false if fewer were pending
    /// (then everything pending is removed).
    pub(crate) fn advance(&mut self, mut n: usize) -> bool {
        if n >= self.len {
            // The common case: the write took the whole queue. Clearing drops
            // the bodies and starts the arena over where it stands, without
            // stepping past each header (about half of this method's
            // instructions per request at one request in flight, issue 20).
            let ok = n == self.len;
            // Popped one by one: `VecDeque::clear` (a general truncate, not
            // inlined) costs more than popping the few chunks of a write.
            while self.chunks.pop_front().is_some() {}
            self.headers.clear();
            self.len = 0;
            return ok;
        }
        // A partial write: it ends inside the queue, which stays non-empty.
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let front_len = match front {
                Chunk::Header(len) => *len,
                Chunk::Body(b) => b.len(),
            };
            if n < front_len {
                match front {
                    Chunk::Header(len) => {
                        self.headers.advance(n);
                        *len -= n;
                    }
                    Chunk::Body(b) => b.advance(n),
                }
                self.len -= n;
                return true;
            }
            if let Chunk::Header(len) = front {
                self.headers.advance(*len);
            }
            n -= front_len;
            self.len -= front_len;
            self.chunks.pop_front();
        }
        true
    }

    /// The whole first chunk (a header is copied out of the arena).
    pub(crate) fn pop_chunk(&mut self) -> Option<Bytes> {
        let c = match self.chunks.pop_front()? {
            Chunk::Header(len) => {
                let c = Bytes::copy_from_slice(&self.headers[..len]);
                self.headers.advance(len);
                c
            }
            Chunk::Body(b) => b,
        };
        self.len -= c.len();
        if self.chunks.is_empty() {
            self.headers.clear();
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(q: &TransmitQueue) -> Vec<u8> {
        let mut io = [IoSlice::new(&[]); 16];
        let n = q.slices(&mut io);
        io[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    fn header(q: &mut TransmitQueue, bytes: &[u8]) {
        q.push_header(|b| b.extend_from_slice(bytes));
    }

    #[test]
    fn partial_writes_advance_across_chunks() {
        let mut q = TransmitQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"defg"));
        assert_eq!(q.len(), 7);
        assert!(q.advance(2));
        assert_eq!(pending(&q), b"cdefg");
        assert!(q.advance(3));
        assert_eq!(q.pop_chunk().unwrap(), &b"fg"[..]);
        assert!(!q.advance(1));
    }

    #[test]
    fn headers_and_bodies_interleave_in_order_through_partial_writes() {
        let mut q = TransmitQueue::default();
        header(&mut q, b"H1");
        q.push(Bytes::from_static(b"body1"));
        header(&mut q, b"HDR2");
        q.push(Bytes::from_static(b"b2"));
        header(&mut q, b"");
        assert_eq!(q.len(), 13);
        assert_eq!(pending(&q), b"H1body1HDR2b2");
        // Into the first header, across it, then into the second one.
        assert!(q.advance(1));
        assert_eq!(pending(&q), b"1body1HDR2b2");
        assert!(q.advance(7));
        assert_eq!(pending(&q), b"DR2b2");
        // A header queued while another is half written goes after it.
        header(&mut q, b"H3");
        assert_eq!(pending(&q), b"DR2b2H3");
        assert_eq!(q.pop_chunk().unwrap(), &b"DR2"[..]);
        assert_eq!(pending(&q), b"b2H3");
        assert!(q.advance(4));
        assert_eq!(q.len(), 0);
        assert_eq!(pending(&q), b"");
        // Emptied: the arena starts over at its front.
        header(&mut q, b"H4");
        assert_eq!(pending(&q), b"H4");
        q.clear();
        assert_eq!((q.len(), pending(&q)), (0, Vec::new()));
    }

    #[test]
    fn a_whole_write_starts_the_arena_over_at_its_front() {
        let mut q = TransmitQueue::default();
        for round in 0..100 {
            header(&mut q, b"HEADER");
            q.push(Bytes::from_static(b"body"));
            header(&mut q, b"H2");
            assert!(q.advance(12), "round {round}");
            assert_eq!((q.len(), q.chunks()), (0, 0));
            // Nothing was stepped past: the whole arena is room again (a
            // `BytesMut` does not count room advanced past at its front).
            assert_eq!(q.headers.capacity(), HEADER_ARENA, "round {round}");
        }
        // More than is queued: everything goes, and the call says so.
        header(&mut q, b"H3");
        assert!(!q.advance(3));
        assert_eq!((q.len(), pending(&q)), (0, Vec::new()));
    }

    #[test]
    fn the_header_arena_keeps_its_allocation_when_never_emptied() {
        // A queue that always has something left (partial writes forever)
        // must not grow without bound.
        let mut q = TransmitQueue::default();
        header(&mut q, b"0123456789");
        let cap = q.headers.capacity();
        assert_eq!(cap, HEADER_ARENA);
        for _ in 0..10_000 {
            header(&mut q, b"0123456789");
            assert!(q.advance(10));
            assert_eq!(pending(&q), b"0123456789");
        }
        // (`capacity` does not count the room advanced past at the front.)
        assert!(
            q.headers.capacity() <= cap,
            "{} > {cap}",
            q.headers.capacity()
        );
    }

    #[test]
    fn an_empty_queue_gives_its_memory_back_and_takes_it_again() {
        let mut q = TransmitQueue::default();
        // Nothing is held before the first header.
        assert_eq!(q.headers.capacity(), 0);
        assert!(!q.releasable());
        header(&mut q, b"H1");
        q.push(Bytes::from_static(b"body"));
        // Something queued: kept.
        assert!(!q.releasable());
        q.release();
        assert_eq!(pending(&q), b"H1body");
        assert!(q.advance(6));
        assert!(q.releasable());
        q.release();
        assert_eq!((q.headers.capacity(), q.chunks.capacity()), (0, 0));
        assert!(!q.releasable());
        // The next header takes a whole arena again.
        header(&mut q, b"H2");
        assert_eq!(q.headers.capacity(), HEADER_ARENA);
        assert_eq!(pending(&q), b"H2");
    }
}
