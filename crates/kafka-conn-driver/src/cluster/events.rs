//! [`ClusterEvents`]: what the policy reports (nodes added and removed, a
//! cluster id change, circuits opening, rebootstraps, …), for the
//! application. Every event is also logged through `tracing`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use kafka_conn_cluster::Event;

/// Events a subscriber may have waiting before the oldest are dropped
/// (counted in [`ClusterEvents::missed`]): a subscriber that never reads
/// must not make the cluster's memory grow.
pub(crate) const CAPACITY: usize = 1024;

/// The events of a [`Cluster`](super::Cluster), from
/// [`Cluster::events`](super::Cluster::events): a `Stream` (and
/// [`next`](Self::next)) that ends when the cluster is closed. Each
/// subscriber gets every event from its subscription on; at most 1,024 wait
/// unread, older ones are dropped and counted ([`missed`](Self::missed)).
#[derive(Debug)]
pub struct ClusterEvents {
    queue: Arc<Queue>,
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<Event>,
    missed: u64,
    closed: bool,
    waker: Option<Waker>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `event`; returns the subscriber's waker to wake (outside any
    /// lock the caller holds).
    fn push(&self, event: Event) -> Option<Waker> {
        let mut inner = self.lock();
        if inner.events.len() == CAPACITY {
            inner.events.pop_front();
            inner.missed += 1;
        }
        inner.events.push_back(event);
        inner.waker.take()
    }

    fn close(&self) -> Option<Waker> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.waker.take()
    }
}

/// The cluster's list of subscribers.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    queues: Vec<Weak<Queue>>,
}

impl Subscribers {
    /// A new subscriber (ended at once if the cluster is already closed).
    pub(crate) fn subscribe(&mut self, closed: bool) -> ClusterEvents {
        let queue = Arc::new(Queue::default());
        if closed {
            queue.close();
        } else {
            self.queues.retain(|q| q.strong_count() > 0);
            self.queues.push(Arc::downgrade(&queue));
        }
        ClusterEvents { queue }
    }

    /// Gives `event` to every subscriber; the wakers to wake go to `wake`.
    pub(crate) fn publish(&mut self, event: &Event, wake: &mut Vec<Waker>) {
        if self.queues.is_empty() {
            return;
        }
        self.queues.retain(|q| match q.upgrade() {
            Some(q) => {
                wake.extend(q.push(event.clone()));
                true
            }
            None => false,
        });
    }

    /// Ends every subscription (the cluster closed).
    pub(crate) fn close(&mut self, wake: &mut Vec<Waker>) {
        for q in self.queues.drain(..) {
            if let Some(q) = q.upgrade() {
                wake.extend(q.close());
            }
        }
    }
}

impl ClusterEvents {
    /// The next event; `None` once the cluster is closed and every event
    /// before the close has been read.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.queue.lock().events.pop_front()
    }

    /// How many events were dropped because 1,024 were waiting unread.
    pub fn missed(&self) -> u64 {
        self.queue.lock().missed
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut inner = self.queue.lock();
        if let Some(event) = inner.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if inner.closed {
            return Poll::Ready(None);
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl futures_core::Stream for ClusterEvents {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll_event(cx)
    }
}

#[cfg(test)]
mod tests {
    use kafka_conn_cluster::NodeId;

    use super::*;

    #[test]
    fn a_subscriber_that_never_reads_keeps_the_newest_and_counts_the_rest() {
        let mut subscribers = Subscribers::default();
        let mut events = subscribers.subscribe(false);
        let mut wake = Vec::new();
        for i in 0..CAPACITY as i32 + 10 {
            subscribers.publish(&Event::NodeRemoved { node: NodeId(i) }, &mut wake);
        }
        assert_eq!(events.missed(), 10);
        assert_eq!(
            events.try_next(),
            Some(Event::NodeRemoved { node: NodeId(10) })
        );
        // Dropped subscribers are forgotten at the next event.
        drop(events);
        subscribers.publish(&Event::NodeRemoved { node: NodeId(0) }, &mut wake);
        assert!(subscribers.queues.is_empty());
        // After the close, a stream ends once drained.
        let mut late = subscribers.subscribe(false);
        subscribers.publish(&Event::NodeRemoved { node: NodeId(1) }, &mut wake);
        subscribers.close(&mut wake);
        assert_eq!(
            late.try_next(),
            Some(Event::NodeRemoved { node: NodeId(1) })
        );
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(late.poll_event(&mut cx), Poll::Ready(None));
    }
}
