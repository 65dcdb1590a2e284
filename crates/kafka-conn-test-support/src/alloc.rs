//! A counting global allocator.
//!
//! A test binary installs it and measures a closure:
//!
//! ```ignore
//! use kafka_conn_test_support::alloc::{allocations_in, CountingAllocator};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAllocator = CountingAllocator;
//!
//! let n = allocations_in(|| do_the_steady_state_work());
//! assert_eq!(n, 0);
//! ```
//!
//! Only the thread that runs [`allocations_in`] (or that called
//! [`count_this_thread`]) is counted: the test harness's own threads
//! allocate now and then while a test runs, which once made these tests
//! fail at random on a loaded machine. Work the measured code hands to
//! other threads is therefore not counted; a test that needs it counted
//! runs that work on the counting thread (a current-thread runtime).

// A global allocator is unsafe to implement; this is the only unsafe code of
// the test helpers, and the libraries under test forbid unsafe altogether.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting allocations (and reallocations) made by
/// threads that opted in. Install it with `#[global_allocator]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // `try_with`: the allocator also runs while a thread's locals are torn
    // down, when reading one would panic.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; counting touches only an atomic and a thread-local `Cell`,
// neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts (`true`) or stops (`false`) counting this thread's allocations.
pub fn count_this_thread(on: bool) {
    COUNTED.with(|c| c.set(on));
}

/// Allocations counted so far, by every counting thread.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Runs `work` on this thread with counting on and returns how many
/// allocations it made (with the closure's result). Requires
/// [`CountingAllocator`] to be the global allocator; without it the count
/// is always zero, so a test should also check that counting works (see
/// [`assert_counting_works`]).
pub fn allocations_in<T>(work: impl FnOnce() -> T) -> (u64, T) {
    let was = COUNTED.with(Cell::get);
    count_this_thread(true);
    let start = allocations();
    let out = work();
    let n = allocations() - start;
    count_this_thread(was);
    (n, out)
}

/// Panics unless an allocation on this thread is counted: proves that
/// [`CountingAllocator`] is installed, so that a zero from
/// [`allocations_in`] means something.
pub fn assert_counting_works() {
    let (n, v) = allocations_in(|| std::hint::black_box(vec![1u8; 64]));
    drop(v);
    assert!(
        n >= 1,
        "a Vec allocation was not counted: is CountingAllocator the #[global_allocator]?"
    );
}
