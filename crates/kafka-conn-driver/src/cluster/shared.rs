//! [`Shared`]: the cluster's state behind its one lock, and the I/O side of
//! the drive contract: routing a call (waiting on a dial when one is under
//! way), the task of each connection (dial, then watch for its close), the
//! Metadata refreshes, and doing the policy's actions once the lock is
//! released.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use kafka_conn_cluster::{Address, Begin, CloseWhy, ConnId, Event, NodeId, Route, Target};
use kafka_conn_core::{ApiKey, CloseReason, Request, Response};

use super::config::ClusterConfig;
use super::dial::open_connection;
use super::error::{ClusterError, Reported};
use super::metadata::{metadata_request, METADATA_VERSIONS};
use super::observing::{self, ClusterObserving};
use super::state::{Conn, State, Work};
use crate::client::Client;
use crate::error::RequestFailure;
use crate::runtime::Runtime;

/// Each node's ready connection, sorted by node.
type ReadyTable = Vec<(NodeId, Arc<Conn>)>;

/// What every handle, connection task, refresh and the timer share.
pub(crate) struct Shared<R: Runtime> {
    pub(crate) rt: R,
    pub(crate) config: ClusterConfig,
    state: Mutex<State>,
    /// The lock-free request path's view: each node's ready connection, as
    /// the policy last said (kept in step under the state lock after every
    /// call to the policy; see [`Shared::sync_ready`]). A request to a node
    /// listed here counts itself on the connection's `InFlight` and never
    /// takes the state lock; the policy stays the one that decides (it
    /// retires the counter when the connection stops being ready, and the
    /// request then routes through it). `None` with a connection cap: the
    /// policy's least-recently-used choice needs every use routed.
    /// Sorted by node (binary search: cheaper than a B-tree's walk for the
    /// few nodes a cluster has, and fine for thousands).
    ready: Option<RwLock<ReadyTable>>,
}

/// A request's hold on a ready connection: counted in flight on it until
/// dropped, either way.
pub(crate) enum Lease<'a, R: Runtime> {
    /// Counted on the connection's `InFlight` without the policy (the
    /// lock-free path).
    Counted(Counted<'a, R>),
    /// Routed by the policy (`route`, then `request_done` when dropped).
    Routed(Routed<'a, R>),
}

/// A request counted on a ready connection's `InFlight` without the policy
/// (the lock-free path of [`Shared::counted`]); the count ends when this
/// is dropped. Two pointers (16 bytes): `send_to`'s ready path keeps it in
/// the connection's own send future, which moves it with every poll's
/// future.
pub(crate) struct Counted<'a, R: Runtime> {
    shared: &'a Arc<Shared<R>>,
    conn: Arc<Conn>,
}

/// A request the policy routed to a ready connection; `request_done` is
/// told when this is dropped.
pub(crate) struct Routed<'a, R: Runtime> {
    shared: &'a Arc<Shared<R>>,
    conn: Arc<Conn>,
}

impl<R: Runtime> Shared<R> {
    pub(crate) fn new(rt: R, config: ClusterConfig, mut state: State) -> Arc<Self> {
        if config.connect.observe.observer.is_some() {
            state.observing = Some(ClusterObserving::new());
        }
        let ready = config
            .policy
            .max_connections
            .is_none()
            .then(|| RwLock::new(Vec::new()));
        Arc::new(Self {
            rt,
            config,
            state: Mutex::new(state),
            ready,
        })
    }

    /// Brings the ready table in step with the policy (called with the
    /// state lock held, after every call to the policy): written only when
    /// it differs, which is when a connection became ready or stopped being
    /// ready, not per request.
    fn sync_ready(&self, st: &State) {
        let Some(ready) = &self.ready else { return };
        let same = {
            let table = ready.read().unwrap_or_else(|p| p.into_inner());
            let mut want = st.ready_conns();
            table
                .iter()
                .all(|(_, have)| want.next().is_some_and(|want| Arc::ptr_eq(have, want)))
                && want.next().is_none()
        };
        if !same {
            // In node order: the held connections are keyed by `ConnId`,
            // which orders by node first.
            let fresh: ReadyTable = st
                .ready_conns()
                .map(|c| (c.conn.node(), c.clone()))
                .collect();
            *ready.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every statement a panic could
        // leave it at (the policy's own methods do not panic): keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state under the lock with the runtime's `now`, drains
    /// the policy's outputs, and does the resulting work after releasing
    /// the lock. `timer`: `f` may have moved the policy's deadline (every
    /// input does; routing and `request_done` only when they produce output).
    pub(crate) fn with<T>(
        self: &Arc<Self>,
        timer: bool,
        f: impl FnOnce(&mut State, Instant) -> T,
    ) -> T {
        let now = self.rt.now();
        let (out, work) = {
            let mut st = self.lock();
            let out = f(&mut st, now);
            st.drain(timer);
            self.sync_ready(&st);
            (out, std::mem::take(&mut st.work))
        };
        if !work.is_empty() {
            self.run(work);
        }
        out
    }

    /// Reads the state under the lock (getters: nothing to drain).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock())
    }

    /// Does work queued under the lock: spawns tasks, closes connections,
    /// wakes callers. Never called with the lock held.
    fn run(self: &Arc<Self>, work: Vec<Work>) {
        // The events first: the observer knows what happened before any
        // caller the same input wakes does (and logs read in that order).
        self.report(&work);
        for w in work {
            match w {
                Work::Dial {
                    conn,
                    address,
                    setup_timeout,
                    cancel,
                } => {
                    tracing::debug!(%conn, %address, ?setup_timeout, "dialing");
                    let task = connection_task(self.clone(), conn, address, setup_timeout, cancel);
                    self.rt.spawn(Box::pin(task));
                }
                Work::Close { conn, client, why } => {
                    tracing::debug!(%conn, %why, "closing");
                    client.close();
                }
                // The dial's task may have ended: nobody to tell.
                Work::Cancel(cancel, why) => drop(cancel.send(why)),
                Work::Refresh { via, seq } => {
                    self.rt
                        .spawn(Box::pin(refresh_task(self.clone(), via, seq)));
                }
                Work::Wake(latch, outcome) => latch.set(outcome),
                Work::Refreshed(latch, outcome) => latch.set(outcome),
                Work::Event(..) | Work::Table(_) => {}
                Work::Waker(w) => w.wake(),
                Work::Finished(latch) => latch.set(()),
            }
        }
    }

    /// Logs the policy's events in `work` and tells the observer about
    /// them and the table ([`Observer::on_cluster_event`],
    /// [`Observer::on_cluster_table`]).
    ///
    /// [`Observer::on_cluster_event`]: crate::Observer::on_cluster_event
    /// [`Observer::on_cluster_table`]: crate::Observer::on_cluster_table
    fn report(&self, work: &[Work]) {
        let observer = self.config.connect.observe.observer.as_ref();
        for w in work {
            match (w, observer) {
                (Work::Event(event, context), observer) => {
                    log(event);
                    if let (Some(observer), Some(context)) = (observer, context) {
                        observing::report_event(observer, event, *context, self.rt.now());
                    }
                }
                (Work::Table(report), Some(observer)) => {
                    observing::report_table(observer, report);
                }
                _ => {}
            }
        }
    }

    /// Routes a call to `target`: a ready connection at once, or after the
    /// dial under way (started by this call or joined: single flight), or
    /// the policy's refusal. Never queues the request itself.
    pub(crate) async fn lease(
        self: &Arc<Self>,
        target: Target,
    ) -> Result<Lease<'_, R>, ClusterError> {
        if let Target::Node(node) = target {
            if let Some(counted) = self.counted(node) {
                return Ok(Lease::Counted(counted));
            }
        }
        let mut target = target;
        loop {
            let routed = self.with(false, |st, now| match st.policy.route(target, now) {
                Ok(Route::Ready(conn)) => match st.conns.get(&conn) {
                    Some(c) => Ok(Ok(c.clone())),
                    None => {
                        // The policy and the held connections change under
                        // the same lock: a ready connection is always held.
                        debug_assert!(false, "{conn} ready but not held");
                        st.policy.request_done(conn, now);
                        Err(ClusterError::UnknownNode(conn.node()))
                    }
                },
                Ok(Route::Wait(node)) => Ok(Err((node, st.park(node)))),
                Err(e) => Err(st.route_error(e)),
            })?;
            match routed {
                Ok(conn) => return Ok(Lease::Routed(Routed { shared: self, conn })),
                Err((node, latch)) => match latch.wait().await {
                    // Route again: the node is ready now (or, if it broke
                    // meanwhile, the policy says why).
                    Ok(_) => target = Target::Node(node),
                    Err(e) => return Err(self.read(|st| st.route_error(e))),
                },
            }
        }
    }

    /// The lock-free path: `node`'s ready connection from the ready table,
    /// the request counted on its `InFlight`; `None` (route through the
    /// policy) if the node has none or the policy retired it meanwhile.
    #[inline]
    pub(crate) fn counted(self: &Arc<Self>, node: NodeId) -> Option<Counted<'_, R>> {
        let conn = {
            let table = self
                .ready
                .as_ref()?
                .read()
                .unwrap_or_else(|p| p.into_inner());
            let i = table.binary_search_by_key(&node, |(n, _)| *n).ok()?;
            table[i].1.clone()
        };
        match conn.in_flight.try_begin() {
            Begin::Begun => Some(Counted { shared: self, conn }),
            Begin::Retired { drained } => {
                if drained {
                    self.request_drained(conn.conn);
                }
                None
            }
        }
    }

    /// Closes the cluster (idempotent).
    pub(crate) fn close(self: &Arc<Self>) {
        self.with(false, |st, now| st.close(now));
    }

    /// The cluster's timer: sleeps until the policy's deadline (re-armed
    /// whenever it comes earlier), calls `handle_timeout`, ends when the
    /// cluster is closed. One per cluster.
    pub(crate) fn timer_task(self: Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        let mut sleep: Option<(Instant, crate::runtime::BoxFuture<'static, ()>)> = None;
        std::future::poll_fn(move |cx| loop {
            let now = self.rt.now();
            let (closed, next, work) = {
                let mut st = self.lock();
                if !st
                    .timer
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    st.timer.waker = Some(cx.waker().clone());
                }
                if !st.is_closed() && st.policy.poll_timeout().is_some_and(|t| t <= now) {
                    st.policy.handle_timeout(now);
                    st.drain(false);
                }
                self.sync_ready(&st);
                let next = st.policy.poll_timeout();
                st.timer.armed = next;
                (st.is_closed(), next, std::mem::take(&mut st.work))
            };
            if !work.is_empty() {
                self.run(work);
            }
            if closed {
                return Poll::Ready(());
            }
            let Some(deadline) = next else {
                sleep = None;
                return Poll::Pending;
            };
            if sleep.as_ref().is_none_or(|(at, _)| *at != deadline) {
                sleep = Some((deadline, self.rt.sleep_until(deadline)));
            }
            let (_, timer) = sleep.as_mut().expect("just set");
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The deadline passed: handle it (the loop checks the clock).
            sleep = None;
        })
    }
}

impl<R: Runtime> Shared<R> {
    /// The error for a request that failed on `conn` (and, if it found the
    /// connection closed, the policy told at once). Out of line: the
    /// request path only calls it on a failure.
    #[cold]
    #[inline(never)]
    fn request_failed(self: &Arc<Self>, conn: &Conn, failure: RequestFailure) -> ClusterError {
        if let Some(reason) = failure.close_reason() {
            self.conn_closed(conn.conn, reason.clone());
        }
        ClusterError::Request {
            node: conn.conn.node(),
            address: conn.address.clone(),
            failure,
        }
    }

    /// A request found `conn` closed: tell the policy now rather than when
    /// the connection's task gets to it, so that the next call already sees
    /// the backoff instead of the closed connection.
    fn conn_closed(self: &Arc<Self>, conn: ConnId, reason: CloseReason) {
        self.with(true, |st, now| {
            if st.conns.remove(&conn).is_some() {
                st.policy.handle_closed(conn, reason, now);
            }
        });
    }

    /// The last request on `conn`, whose counter the policy retired
    /// meanwhile, has ended: a draining connection closes now. Out of line:
    /// rare, and it takes the lock.
    #[cold]
    #[inline(never)]
    fn request_drained(self: &Arc<Self>, conn: ConnId) {
        self.with(false, |st, now| st.policy.request_drained(conn, now));
    }
}

impl<R: Runtime> Lease<'_, R> {
    /// The leased connection.
    pub(crate) fn conn(&self) -> &Arc<Conn> {
        match self {
            Lease::Counted(c) => &c.conn,
            Lease::Routed(r) => &r.conn,
        }
    }

    /// Sends `request` on the leased connection.
    pub(crate) async fn send(&self, request: Request) -> Result<Response, ClusterError> {
        let result = self.conn().client.send(request).await;
        result.map_err(|failure| self.failed(failure))
    }

    /// The error for a request that failed on the leased connection (and,
    /// if it found the connection closed, the policy told at once).
    pub(crate) fn failed(&self, failure: RequestFailure) -> ClusterError {
        let shared = match self {
            Lease::Counted(c) => c.shared,
            Lease::Routed(r) => r.shared,
        };
        shared.request_failed(self.conn(), failure)
    }
}

impl<R: Runtime> Counted<'_, R> {
    /// The error for a request that failed on the counted connection, as
    /// [`Lease::failed`].
    pub(crate) fn failed(&self, failure: RequestFailure) -> ClusterError {
        self.shared.request_failed(&self.conn, failure)
    }
}

/// The request future holds the lease, and reaches the connection's queue
/// through it.
impl<R: Runtime> AsRef<Client> for Counted<'_, R> {
    #[inline]
    fn as_ref(&self) -> &Client {
        &self.conn.client
    }
}

impl<R: Runtime> Drop for Counted<'_, R> {
    #[inline]
    fn drop(&mut self) {
        // Told only when this was the last request on a connection the
        // policy retired meanwhile (a draining one closes now).
        if self.conn.in_flight.end() {
            self.shared.request_drained(self.conn.conn);
        }
    }
}

impl<R: Runtime> Drop for Routed<'_, R> {
    fn drop(&mut self) {
        let conn = self.conn.conn;
        self.shared
            .with(false, |st, now| st.policy.request_done(conn, now));
    }
}

/// Counts a connection task alive until it ends (or its runtime drops it).
struct TaskGuard<R: Runtime>(Arc<Shared<R>>);

impl<R: Runtime> Drop for TaskGuard<R> {
    fn drop(&mut self) {
        self.0.with(false, |st, _| st.task_ended());
    }
}

/// One connection's whole life: dial (unless the policy abandons it), report
/// the outcome, then watch the ready connection until it closes and report
/// why (EOF, a broker restart, idle reaping). A connection the policy closed
/// itself is not reported.
async fn connection_task<R: Runtime>(
    shared: Arc<Shared<R>>,
    conn: ConnId,
    address: Address,
    setup_timeout: Duration,
    cancel: oneshot::Receiver<CloseWhy>,
) {
    let guard = TaskGuard(shared);
    let shared = &guard.0;
    // Boxed: the dial's state (the connect future with its configuration,
    // about 2 KB) is freed once the dial is over, instead of sizing this
    // task, which lives as long as the connection.
    let dial = Box::pin(open_connection(
        &shared.rt,
        conn.node(),
        &address.host,
        address.port,
        setup_timeout,
        &shared.config.connect,
        cancel,
    ));
    // `None`: abandoned by the policy (its setup timeout ran out, the node
    // was removed, the cluster closed).
    let Some(outcome) = dial.await else {
        tracing::debug!(%conn, "dial abandoned");
        return;
    };
    let client = match outcome {
        Ok(client) => client,
        Err(error) => {
            tracing::debug!(%conn, %address, %error, "dial failed");
            shared.with(true, |st, now| {
                st.dial_ended(conn);
                let reported = Reported::of(&error);
                st.connect_failed(conn.node(), error);
                match reported {
                    Reported::Dial(failure) => st.policy.handle_dial_failed(conn, failure, now),
                    Reported::Handshake(reason) => st.policy.handle_closed(conn, reason, now),
                }
            });
            return;
        }
    };
    let held = shared.with(true, |st, now| {
        st.dial_ended(conn);
        let wanted = st.policy.handle_connected(conn, now);
        if wanted {
            st.hold(conn, client.clone(), address);
        }
        wanted
    });
    if !held {
        client.close();
        return;
    }
    tracing::debug!(%conn, addr = %client.info().address, "connected");
    let reason = client.closed().await;
    shared.with(true, |st, now| {
        // Still held: it closed by itself (a `Close` would have taken it).
        if st.conns.remove(&conn).is_some() {
            tracing::debug!(%conn, %reason, "connection closed");
            st.policy.handle_closed(conn, reason, now);
        }
    });
}

/// The `seq`-th Metadata refresh, through `via` (the policy's choice).
async fn refresh_task<R: Runtime>(shared: Arc<Shared<R>>, via: NodeId, seq: u64) {
    let outcome = refresh(&shared, via).await;
    if let Err(e) = &outcome {
        tracing::warn!(%via, error = %e, "Metadata refresh failed");
    }
    shared.with(true, |st, now| st.refresh_done(seq, &outcome, now));
}

async fn refresh<R: Runtime>(shared: &Arc<Shared<R>>, via: NodeId) -> Result<(), ClusterError> {
    let failed = |e: ClusterError| {
        shared.with(true, |st, now| st.policy.handle_metadata_failed(now));
        Err(e)
    };
    let lease = match shared.lease(Target::Node(via)).await {
        Ok(lease) => lease,
        Err(e) => return failed(e),
    };
    let Some(version) = lease
        .conn()
        .client
        .negotiate(ApiKey::METADATA, METADATA_VERSIONS)
    else {
        let address = lease.conn().address.clone();
        drop(lease);
        return failed(ClusterError::MetadataUnsupported { node: via, address });
    };
    let request = metadata_request(version, &shared.config.metadata_topics);
    let response = match lease.send(request).await {
        Ok(r) => r,
        Err(e) => {
            drop(lease);
            return failed(e);
        }
    };
    // Merged while the request still counts in flight: a node the response
    // drops (a bootstrap entry) drains and closes when the lease ends.
    let merged = shared.with(true, |st, now| {
        st.policy
            .handle_metadata(version, &response.body, now)
            .map_err(|error| ClusterError::Metadata { node: via, error })
    });
    drop(lease);
    merged
}

/// Logs one of the policy's events.
fn log(event: &Event) {
    match event {
        Event::ClusterIdChanged { expected, got } => tracing::warn!(
            ?expected,
            ?got,
            "a Metadata response came from another cluster: not merged"
        ),
        Event::ConnectionFailed {
            node,
            failures,
            failure,
        } => tracing::warn!(%node, failures, %failure, "connection failed"),
        Event::CircuitOpened { node, failures } => {
            tracing::warn!(%node, failures, "circuit opened: requests fail at once until a probe succeeds")
        }
        Event::Rebootstrapped { reason } => {
            tracing::warn!(%reason, "rebootstrapping: back to the bootstrap addresses")
        }
        Event::NodeAdded {
            node,
            address,
            rack,
        } => tracing::info!(%node, %address, ?rack, "node added"),
        Event::NodeRemoved { node } => tracing::info!(%node, "node removed"),
        Event::NodeAddressChanged { node, from, to } => {
            tracing::info!(%node, %from, %to, "node moved")
        }
        Event::CircuitHalfOpen { node } => {
            tracing::info!(%node, "circuit half-open: next request probes")
        }
        Event::CircuitClosed { node } => tracing::info!(%node, "circuit closed"),
        other => tracing::debug!(event = ?other, "cluster event"),
    }
}
