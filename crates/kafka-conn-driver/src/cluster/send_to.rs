//! [`SendTo`]: the future of [`Cluster::send_to`](super::Cluster::send_to).
//!
//! The ready node's path is routed when `send_to` is called, not in an
//! `async` function around the send: the request is counted on the
//! connection's `InFlight` ([`Counted`], two pointers) and handed to the
//! connection's own send future, which owns that lease
//! ([`OwnedSend`]). An `async fn` would have to borrow the `Client` from
//! the lease it also holds, which safe Rust allows only inside one more
//! state machine: the request moved through more layers, a larger future
//! and one more dispatch per poll, measured at about 200 user-space
//! instructions per request (docs/benchmarks.md, issue 15). Anything else
//! (a node being dialed, backing off, unknown, …) goes through the policy
//! in a boxed future, so that its state does not size the ready path's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use kafka_conn_cluster::{NodeId, Target};
use kafka_conn_core::{Request, Response};

use super::error::ClusterError;
use super::shared::{Counted, Shared};
use crate::client::OwnedSend;
use crate::runtime::Runtime;

/// The future of [`Cluster::send_to`](super::Cluster::send_to): resolves to
/// the node's response or a [`ClusterError`] saying why there is none.
///
/// When the node's connection is ready, the request is counted in flight on
/// it as soon as `send_to` returns (before the first poll) until the future
/// is dropped (`.await` drops it as it completes). Ending the count at
/// completion instead cost about 37 instructions per request (a second
/// drop of the whole future), measured in docs/benchmarks.md.
///
/// Cancellation safe, as [`Client::send`](crate::Client::send): it may be
/// dropped at any point (never polled, waiting for a dial, queued, on the
/// wire); the request is then cancelled on its connection (its response,
/// if one comes, is read and discarded), its place in the queue given
/// back, and its in-flight count ended. It is `Send` and `Unpin`.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct SendTo<'a, R: Runtime>(Path<'a, R>);

/// Which way the request went.
enum Path<'a, R: Runtime> {
    /// The node's connection was ready: the connection's own send future,
    /// holding the lease that counts the request in flight.
    Ready(OwnedSend<Counted<'a, R>>),
    /// Routed by the policy (a dial to wait for, or a refusal). Polling
    /// either after it completed panics, as `Client::send`'s future does.
    Routed(Pin<Box<dyn Future<Output = Result<Response, ClusterError>> + Send + 'a>>),
}

impl<'a, R: Runtime> SendTo<'a, R> {
    /// Sends `request` to `node`: counted on its ready connection now, or
    /// routed through the policy when polled.
    #[inline]
    pub(super) fn new(shared: &'a Arc<Shared<R>>, node: NodeId, request: Request) -> Self {
        match shared.counted(node) {
            Some(lease) => SendTo(Path::Ready(OwnedSend::new(lease, request))),
            None => SendTo(Path::Routed(routed(shared, node, request))),
        }
    }
}

/// The path through the policy, boxed: its state (the lease's routing, a
/// dial's latch) would otherwise size every request's future.
fn routed<'a, R: Runtime>(
    shared: &'a Arc<Shared<R>>,
    node: NodeId,
    request: Request,
) -> Pin<Box<dyn Future<Output = Result<Response, ClusterError>> + Send + 'a>> {
    Box::pin(async move {
        let lease = shared.lease(Target::Node(node)).await?;
        lease.send(request).await
    })
}

impl<R: Runtime> Future for SendTo<'_, R> {
    type Output = Result<Response, ClusterError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Path::Ready(send) => match Pin::new(&mut *send).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(response)) => Poll::Ready(Ok(response)),
                // While the lease still counts the request: a closed
                // connection is told to the policy before the count ends.
                Poll::Ready(Err(failure)) => Poll::Ready(Err(send.holder().failed(failure))),
            },
            Path::Routed(routed) => routed.as_mut().poll(cx),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for SendTo<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = match self.0 {
            Path::Ready(_) => "ready",
            Path::Routed(_) => "routed",
        };
        f.debug_tuple("SendTo").field(&path).finish()
    }
}

/// `send_to`'s future is `Send` and `Unpin` on every runtime (checked at
/// compile time: the function is never called).
#[allow(dead_code)]
fn send_to_is_send_and_unpin<R: Runtime>(cluster: &super::Cluster<R>, request: Request) {
    fn check<T: Send + Unpin>(_: &T) {}
    check(&cluster.send_to(NodeId(1), request));
}
