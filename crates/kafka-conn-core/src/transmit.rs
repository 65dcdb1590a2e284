//! Bytes waiting to be written, as a queue of chunks (request headers and
//! the caller's bodies, never copied).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

#[derive(Debug, Default)]
pub(crate) struct TransmitQueue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl TransmitQueue {
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Fills `dst` with the pending chunks in order; returns how many.
    pub(crate) fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// Removes the first `n` bytes. Returns false if fewer were pending
    /// (then everything pending is removed).
    pub(crate) fn advance(&mut self, mut n: usize) -> bool {
        let ok = n <= self.len;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if n < front.len() {
                front.advance(n);
                self.len -= n;
                return true;
            }
            n -= front.len();
            self.len -= front.len();
            self.chunks.pop_front();
        }
        ok
    }

    /// The whole first chunk.
    pub(crate) fn pop_chunk(&mut self) -> Option<Bytes> {
        let c = self.chunks.pop_front()?;
        self.len -= c.len();
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_advance_across_chunks() {
        let mut q = TransmitQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"defg"));
        assert_eq!(q.len(), 7);
        assert!(q.advance(2));
        let mut io = [IoSlice::new(&[]); 4];
        let n = q.slices(&mut io);
        let joined: Vec<u8> = io[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"cdefg");
        assert!(q.advance(3));
        assert_eq!(q.pop_chunk().unwrap(), &b"fg"[..]);
        assert!(!q.advance(1));
    }
}
