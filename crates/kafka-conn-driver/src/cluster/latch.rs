//! [`Latch`]: a value set once that any number of tasks wait for. The
//! callers parked on one dial share one latch (single flight), and so do the
//! callers of `refresh_metadata` waiting for the same refresh.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A value set once, read by every waiter (each gets a clone).
#[derive(Debug)]
pub(crate) struct Latch<T> {
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    value: Option<T>,
    /// One slot per waiter that has polled: re-polls replace their waker
    /// instead of adding one, so a thousand waiters hold a thousand wakers.
    wakers: Vec<Option<Waker>>,
}

impl<T: Clone> Latch<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                value: None,
                wakers: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // Plain data: a panic elsewhere while holding it leaves it usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the value (a second call is ignored) and wakes every waiter,
    /// after releasing the latch's lock.
    pub(crate) fn set(&self, value: T) {
        let wakers = {
            let mut inner = self.lock();
            if inner.value.is_some() {
                return;
            }
            inner.value = Some(value);
            std::mem::take(&mut inner.wakers)
        };
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Waits for the value.
    pub(crate) fn wait(self: &Arc<Self>) -> Wait<T> {
        Wait {
            latch: self.clone(),
            slot: None,
        }
    }
}

/// The future of [`Latch::wait`]. Dropping it only leaves its slot empty.
#[derive(Debug)]
pub(crate) struct Wait<T> {
    latch: Arc<Latch<T>>,
    slot: Option<usize>,
}

impl<T: Clone> Future for Wait<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        let mut inner = this.latch.lock();
        if let Some(value) = &inner.value {
            return Poll::Ready(value.clone());
        }
        match this.slot {
            Some(i) => match &mut inner.wakers[i] {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            },
            None => {
                this.slot = Some(inner.wakers.len());
                inner.wakers.push(Some(cx.waker().clone()));
            }
        }
        Poll::Pending
    }
}

impl<T> Drop for Wait<T> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut inner = self.latch.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = inner.wakers.get_mut(i) {
                *w = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn every_waiter_is_woken_once_and_gets_the_value() {
        let latch = Latch::<u32>::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut waits: Vec<_> = (0..1000).map(|_| Box::pin(latch.wait())).collect();
        for _ in 0..3 {
            for w in &mut waits {
                assert!(w.as_mut().poll(&mut cx).is_pending());
            }
        }
        // Re-polls reuse their slot.
        assert_eq!(latch.lock().wakers.len(), 1000);
        // A dropped waiter is not woken.
        waits.pop();
        latch.set(7);
        latch.set(8);
        assert_eq!(count.0.load(Ordering::SeqCst), 999);
        for w in &mut waits {
            assert_eq!(w.as_mut().poll(&mut cx), Poll::Ready(7));
        }
        // A waiter that comes after the value gets it at once.
        assert_eq!(
            Box::pin(latch.wait()).as_mut().poll(&mut cx),
            Poll::Ready(7)
        );
    }
}
