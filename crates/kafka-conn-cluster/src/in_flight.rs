//! [`InFlight`]: a ready connection's count of requests in flight, shared
//! between the policy and a driver's lock-free request path.
//!
//! The policy stays the one that decides: it creates the counter when a
//! connection becomes ready, reads it for its choices (least loaded, LRU,
//! whether a leaving connection can close at once) and *retires* it when
//! the connection stops being ready (closed, failed, drained, node removed
//! or moved). A driver may count a request on a ready connection without
//! calling [`ClusterPolicy::route`](crate::ClusterPolicy::route) (and so
//! without taking the lock around the policy): [`InFlight::try_begin`]
//! refuses once the counter is retired, and [`InFlight::end`] says when the
//! driver must tell the policy ([`ClusterPolicy::request_drained`]) that
//! the last request on a retired connection is over, so that a draining
//! connection still closes when its last request is done.
//!
//! Why atomics and not a plain count: the driver's request path runs on
//! any thread without the policy's lock. The ordering argument (both sides
//! `SeqCst`): the policy stores `retired` then reads the count; a request
//! path changes the count then reads `retired`. Whichever comes second in
//! the single total order sees the other, so a request is either refused,
//! or counted where the policy (or the request's own `end`) sees it: a
//! connection never closes under a request counted on it, and a draining
//! one is always told when its last request ends.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// A ready connection's requests in flight: see the module docs. Cheap to
/// clone (every clone is the same counter).
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Counter>);

#[derive(Debug, Default)]
struct Counter {
    count: AtomicU32,
    retired: AtomicBool,
}

/// What [`InFlight::try_begin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Begin {
    /// Counted: send the request, then call [`InFlight::end`] once.
    Begun,
    /// The connection is no longer ready (nothing counted): route through
    /// the policy. `drained`: the undone count was the last on a retired
    /// connection, so tell the policy first
    /// ([`ClusterPolicy::request_drained`](crate::ClusterPolicy::request_drained)).
    Retired {
        /// Whether the policy must be told.
        drained: bool,
    },
}

impl InFlight {
    /// A fresh counter (no request, not retired).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Requests counted now.
    // Inlined across crates: a driver calls these on every request.
    #[inline]
    pub fn get(&self) -> u32 {
        self.0.count.load(Ordering::SeqCst)
    }

    /// Whether the policy retired it (its connection is no longer ready).
    // Inlined across crates: a driver calls these on every request.
    #[inline]
    pub fn is_retired(&self) -> bool {
        self.0.retired.load(Ordering::SeqCst)
    }

    /// Counts a request unless the connection is no longer ready.
    // Inlined across crates: a driver calls these on every request.
    #[inline]
    pub fn try_begin(&self) -> Begin {
        if self.is_retired() {
            return Begin::Retired { drained: false };
        }
        self.0.count.fetch_add(1, Ordering::SeqCst);
        if self.is_retired() {
            // Retired meanwhile: undo (the policy may have seen this count).
            return Begin::Retired {
                drained: self.end(),
            };
        }
        Begin::Begun
    }

    /// A request counted by [`try_begin`](Self::try_begin) (or by the
    /// policy's `route`) is over. Returns `true` when it was the last one on
    /// a retired connection: the policy must then hear of it
    /// ([`ClusterPolicy::request_drained`](crate::ClusterPolicy::request_drained)),
    /// unless the policy itself made this call.
    // Inlined across crates: a driver calls these on every request.
    #[inline]
    pub fn end(&self) -> bool {
        let before = self.0.count.fetch_sub(1, Ordering::SeqCst);
        if before == 0 {
            // An end without a begin (a driver's bug): undo, never wrap.
            self.0.count.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        before == 1 && self.is_retired()
    }

    /// Counts a request the policy routed (`route`, under its own control).
    pub(crate) fn begin(&self) {
        self.0.count.fetch_add(1, Ordering::SeqCst);
    }

    /// The connection stops being ready: no request path counts on it any
    /// more. Returns the count seen after retiring (0: it may close now).
    pub(crate) fn retire(&self) -> u32 {
        self.0.retired.store(true, Ordering::SeqCst);
        self.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_refuses_once_retired_and_says_when_the_last_one_ends() {
        let c = InFlight::new();
        assert_eq!(c.try_begin(), Begin::Begun);
        c.begin();
        assert_eq!(c.get(), 2);
        assert!(!c.end());
        assert_eq!(c.retire(), 1);
        assert_eq!(c.try_begin(), Begin::Retired { drained: false });
        assert_eq!(c.get(), 1);
        // The last one on a retired counter: the policy must hear of it.
        assert!(c.end());
        assert_eq!(c.get(), 0);
        // Never below zero.
        assert!(!c.end());
        assert_eq!(c.get(), 0);
        // A clone is the same counter.
        let d = c.clone();
        assert!(d.is_retired());
    }

    #[test]
    fn racing_begins_and_a_retire_never_lose_a_count() {
        // Threads begin and end while the counter is retired: afterwards the
        // count is exactly the begun-and-not-ended requests, and exactly one
        // `end` (or undone begin) reported the drain if any were begun.
        for _ in 0..200 {
            let c = InFlight::new();
            let drained = Arc::new(AtomicU32::new(0));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let c = c.clone();
                    let drained = drained.clone();
                    std::thread::spawn(move || {
                        for _ in 0..50 {
                            match c.try_begin() {
                                Begin::Begun => {
                                    if c.end() {
                                        drained.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                                Begin::Retired { drained: true } => {
                                    drained.fetch_add(1, Ordering::SeqCst);
                                }
                                Begin::Retired { drained: false } => {}
                            }
                        }
                    })
                })
                .collect();
            let seen = c.retire();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(c.get(), 0);
            // If the policy saw requests when retiring, exactly the last
            // of them reported the drain; if it saw none, it closed at once
            // and any report after is ignored by the policy.
            if seen > 0 {
                assert!(drained.load(Ordering::SeqCst) >= 1);
            }
        }
    }
}
