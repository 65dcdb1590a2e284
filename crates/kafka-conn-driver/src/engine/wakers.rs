//! The wakers the engine hands out and keeps: the noting waker the
//! transport's read side and the timer hold, and the clone of the task's
//! waker they forward to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

/// A clone of the task's waker, and the address of the vtable of the waker
/// it was cloned from.
///
/// `Waker::will_wake` compares vtable addresses, and some wakers' clones
/// get a vtable at another address than the original (tokio's `block_on`
/// waker in release builds: its vtable is a constant, instantiated apart in
/// the function that makes the waker and in the one that clones it).
/// Compared only with `will_wake`, such a caller's waker looked new on every
/// poll: three clones, two locks and three drops per poll, about 140
/// instructions (`scripts/bench-instructions`).
#[derive(Debug)]
pub(super) struct ClonedWaker {
    clone: Waker,
    original_vtable: usize,
}

impl ClonedWaker {
    pub(super) fn of(waker: &Waker) -> Self {
        Self {
            clone: waker.clone(),
            original_vtable: vtable_address(waker),
        }
    }

    /// Whether `waker` wakes what the clone wakes: `will_wake`, or the
    /// very waker (same data, same vtable) this was cloned from. The second
    /// holds only when the clone shares the original's data pointer: a waker
    /// is valid while any clone of it is, so that data cannot have been freed
    /// and its address taken by another waker in the meantime.
    pub(super) fn is_clone_of(&self, waker: &Waker) -> bool {
        self.clone.will_wake(waker)
            || (self.clone.data() == waker.data() && self.original_vtable == vtable_address(waker))
    }
}

fn vtable_address(waker: &Waker) -> usize {
    std::ptr::from_ref(waker.vtable()) as usize
}

/// The waker the transport's read side and the timer get: it notes that
/// it fired, then wakes the connection's task.
#[derive(Debug, Default)]
pub(super) struct NotingWaker {
    pub(super) woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl NotingWaker {
    pub(super) fn forward_to(&self, task: Waker) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }
}

impl Wake for NotingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(task) = &*self.task.lock().unwrap_or_else(|p| p.into_inner()) {
            task.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::task::Poll;

    use super::*;

    struct Task;

    impl Wake for Task {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn a_waker_and_its_clones_are_recognised_and_another_task_is_not() {
        let a = Waker::from(Arc::new(Task));
        let b = Waker::from(Arc::new(Task));
        let cloned = ClonedWaker::of(&a);
        assert!(cloned.is_clone_of(&a));
        assert!(cloned.is_clone_of(&a.clone()));
        assert!(!cloned.is_clone_of(&b));
        assert!(!ClonedWaker::of(&b).is_clone_of(&a));
    }

    /// A waker whose clones carry another vtable (at another address) than
    /// the original, as tokio's `block_on` waker's do in release builds,
    /// made by hand so that the case does not hang on how the compiler laid
    /// out tokio. No data: every function is a no-op but `clone`.
    #[allow(unsafe_code)]
    mod two_vtables {
        use std::task::{RawWaker, RawWakerVTable, Waker};

        static ORIGINAL: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
        static CLONED: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);

        fn clone(_: *const ()) -> RawWaker {
            RawWaker::new(std::ptr::null(), &CLONED)
        }

        fn noop(_: *const ()) {}

        pub(super) fn original() -> Waker {
            // SAFETY: the vtable's functions never read the (null) data
            // pointer, so any data pointer is valid for them, for any time.
            unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &ORIGINAL)) }
        }
    }

    #[test]
    fn a_waker_whose_clones_carry_another_vtable_is_recognised() {
        let waker = two_vtables::original();
        let cloned = ClonedWaker::of(&waker);
        assert!(
            !cloned.clone.will_wake(&waker),
            "the case under test: will_wake alone misses it"
        );
        assert!(cloned.is_clone_of(&waker));
        assert!(!cloned.is_clone_of(&Waker::from(Arc::new(Task))));
    }

    /// tokio's `block_on` hands its future the same waker on every poll, but
    /// a clone of it carries its vtable at another address, so `will_wake`
    /// alone calls them different (tokio 1.54; the test holds either way).
    #[test]
    fn the_tokio_block_on_waker_is_recognised_on_every_poll() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut kept: Option<ClonedWaker> = None;
        let mut polls = 0;
        let mut plain_will_wake = Vec::new();
        rt.block_on(poll_fn(|cx| {
            polls += 1;
            match &kept {
                None => kept = Some(ClonedWaker::of(cx.waker())),
                Some(k) => {
                    assert!(k.is_clone_of(cx.waker()), "poll {polls}");
                    plain_will_wake.push(k.clone.will_wake(cx.waker()));
                }
            }
            if polls == 4 {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }));
        assert_eq!(polls, 4);
        eprintln!("will_wake alone on polls 2-4: {plain_will_wake:?}");
    }

    #[test]
    fn a_noting_waker_notes_and_forwards() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let task = Arc::new(Count(Default::default()));
        let noting = Arc::new(NotingWaker::default());
        let waker = Waker::from(noting.clone());
        waker.wake_by_ref();
        assert!(
            noting.woken.swap(false, Ordering::Acquire),
            "noted with no task yet"
        );
        noting.forward_to(Waker::from(task.clone()));
        waker.wake_by_ref();
        assert!(noting.woken.load(Ordering::Acquire));
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
    }
}
