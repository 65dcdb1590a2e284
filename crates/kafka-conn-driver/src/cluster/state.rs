//! [`State`]: what the cluster's one lock protects (the policy, the
//! connections it holds, the dials under way, the parked callers) and the
//! drain that turns the policy's outputs into [`Work`] to do once the lock
//! is released. No I/O here, no runtime: the lock is never held across an
//! await or a socket call.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use kafka_conn_cluster::{
    Action, Address, CloseWhy, ClusterPolicy, ConnId, Event, Failure, InFlight, NodeId, NodeState,
    RouteError,
};

use super::error::ClusterError;
use super::events::Subscribers;
use super::latch::Latch;
use super::observing::{ClusterObserving, EventContext, TableReport};
use crate::client::Client;
use crate::error::ConnectError;

/// How a dial ended, for the callers parked on it.
pub(crate) type DialOutcome = Result<ConnId, RouteError>;
/// How a Metadata refresh ended, for the callers of `refresh_metadata`.
pub(crate) type RefreshOutcome = Result<(), ClusterError>;

/// A ready connection the cluster holds: shared (one `Arc`) by the held
/// table, the ready table of the lock-free request path, and every request
/// on it, so that a request clones one pointer.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) conn: ConnId,
    pub(crate) client: Client,
    /// For every request's error path: a failure names the address without
    /// a lookup.
    pub(crate) address: Address,
    /// The policy's counter of requests in flight on it (fixed for the
    /// connection's life: the policy retires it when the connection stops
    /// being ready, and a later connection gets another).
    pub(crate) in_flight: InFlight,
}

/// Something to do once the lock is released.
pub(crate) enum Work {
    /// Spawn the connection's task: dial `address`, then watch it.
    Dial {
        conn: ConnId,
        address: Address,
        setup_timeout: Duration,
        cancel: oneshot::Receiver<CloseWhy>,
    },
    /// Close a connection the policy gave up.
    Close {
        conn: ConnId,
        client: Client,
        why: CloseWhy,
    },
    /// Abandon a dial, saying why (dropping the sender cancels it too).
    Cancel(oneshot::Sender<CloseWhy>, CloseWhy),
    /// Spawn a Metadata refresh through `via`, the `seq`-th refresh.
    Refresh { via: NodeId, seq: u64 },
    /// Wake the callers parked on a dial.
    Wake(Arc<Latch<DialOutcome>>, DialOutcome),
    /// Tell the callers of `refresh_metadata` how their refresh ended.
    Refreshed(Arc<Latch<RefreshOutcome>>, RefreshOutcome),
    /// Log an event, and tell the observer (with the context read under
    /// the lock) when one is set.
    Event(Event, Option<EventContext>),
    /// Tell the observer the table's gauges changed.
    Table(TableReport),
    /// Wake a task (the timer, an event subscriber, the callers of `closed`).
    Waker(Waker),
    /// The cluster is closed and its last connection task ended.
    Finished(Arc<Latch<()>>),
}

/// The refreshes asked for by `refresh_metadata`, counted so that a caller
/// gets a refresh that started after its call.
#[derive(Debug, Default)]
pub(crate) struct Refreshes {
    /// How many refreshes have started (the last one's number).
    started: u64,
    /// Callers waiting for the refresh numbered at least this.
    waiters: Vec<(u64, Arc<Latch<RefreshOutcome>>)>,
}

/// The timer task's side: the deadline it sleeps until and its waker.
#[derive(Debug, Default)]
pub(crate) struct TimerSlot {
    pub(crate) armed: Option<Instant>,
    pub(crate) waker: Option<Waker>,
}

/// Everything behind the cluster's lock.
pub(crate) struct State {
    pub(crate) policy: ClusterPolicy,
    /// Ready (and draining) connections, by the policy's name for them. A
    /// B-tree: looked up on every request, and its ordered compare of a
    /// 16-byte key costs a fraction of SipHash (measured: 197 instructions
    /// per request for the `HashMap`).
    pub(crate) conns: BTreeMap<ConnId, Arc<Conn>>,
    /// Dials under way: dropping the sender cancels one.
    dials: HashMap<ConnId, oneshot::Sender<CloseWhy>>,
    /// Callers parked on a node's dial (single flight: one latch per dial).
    parked: HashMap<NodeId, Arc<Latch<DialOutcome>>>,
    /// Each node's last failed connect, with its progress, for errors.
    connect_errors: HashMap<NodeId, Arc<ConnectError>>,
    refresh: Refreshes,
    pub(crate) subscribers: Subscribers,
    pub(crate) timer: TimerSlot,
    /// Set when the configuration has an observer: what it was told.
    pub(crate) observing: Option<ClusterObserving>,
    /// Connection tasks alive (dialing or watching a connection).
    tasks: usize,
    closed: bool,
    finished: Arc<Latch<()>>,
    /// Work queued under the lock, done after it is released.
    pub(crate) work: Vec<Work>,
}

impl State {
    pub(crate) fn new(policy: ClusterPolicy) -> Self {
        Self {
            policy,
            conns: BTreeMap::new(),
            dials: HashMap::new(),
            parked: HashMap::new(),
            connect_errors: HashMap::new(),
            refresh: Refreshes::default(),
            subscribers: Subscribers::default(),
            timer: TimerSlot::default(),
            observing: None,
            tasks: 0,
            closed: false,
            finished: Latch::new(),
            work: Vec::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Drains the policy's actions and events into work. `timer`: check
    /// the policy's deadline even if nothing came out (after an input that
    /// may have moved it). The timer task is woken only when the deadline
    /// came earlier than the one it sleeps until.
    pub(crate) fn drain(&mut self, timer: bool) {
        let mut any = false;
        while let Some(action) = self.policy.poll_action() {
            any = true;
            self.act(action);
        }
        if let Some(first) = self.policy.poll_event() {
            any = true;
            let mut wakers = Vec::new();
            let mut next = Some(first);
            while let Some(event) = next {
                self.subscribers.publish(&event, &mut wakers);
                let context = (self.observing.as_ref()).map(|o| o.context(&self.policy, &event));
                self.work.push(Work::Event(event, context));
                next = self.policy.poll_event();
            }
            self.work.extend(wakers.into_iter().map(Work::Waker));
            self.observe_table();
        }
        if any || timer {
            let next = self.policy.poll_timeout();
            if next.is_some() && self.timer.armed.is_none_or(|armed| next < Some(armed)) {
                self.timer.armed = next;
                if let Some(w) = self.timer.waker.take() {
                    self.work.push(Work::Waker(w));
                }
            }
        }
    }

    /// Queues the table's gauges for the observer if they changed (after
    /// events; the table changes only with them, or at the close).
    fn observe_table(&mut self) {
        let closed = self.closed;
        if let Some(report) = (self.observing.as_mut()).and_then(|o| o.table(&self.policy, closed))
        {
            self.work.push(Work::Table(report));
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Dial {
                conn,
                address,
                setup_timeout,
            } => {
                let (tx, cancel) = oneshot::channel();
                self.dials.insert(conn, tx);
                self.tasks += 1;
                self.work.push(Work::Dial {
                    conn,
                    address,
                    setup_timeout,
                    cancel,
                });
            }
            Action::Close { conn, why } => {
                if let Some(c) = self.conns.remove(&conn) {
                    self.work.push(Work::Close {
                        conn,
                        client: c.client.clone(),
                        why,
                    });
                } else if let Some(cancel) = self.dials.remove(&conn) {
                    self.work.push(Work::Cancel(cancel, why));
                }
            }
            Action::RefreshMetadata { via } => {
                self.refresh.started += 1;
                self.work.push(Work::Refresh {
                    via,
                    seq: self.refresh.started,
                });
            }
            Action::Wake { node, outcome, .. } => {
                if let Some(latch) = self.parked.remove(&node) {
                    self.work.push(Work::Wake(latch, outcome));
                }
            }
            // A newer policy's action this driver does not know: nothing
            // it could do about it.
            other => tracing::warn!(action = ?other, "unknown cluster policy action ignored"),
        }
    }

    /// The latch to park on for `node`'s dial (one per dial).
    pub(crate) fn park(&mut self, node: NodeId) -> Arc<Latch<DialOutcome>> {
        self.parked.entry(node).or_insert_with(Latch::new).clone()
    }

    /// A caller wants a refresh that starts after now: the latch it waits on.
    pub(crate) fn want_refresh(&mut self, now: Instant) -> Arc<Latch<RefreshOutcome>> {
        let latch = Latch::new();
        if self.closed {
            latch.set(Err(ClusterError::Closed));
            return latch;
        }
        self.refresh
            .waiters
            .push((self.refresh.started + 1, latch.clone()));
        self.policy.refresh_metadata(now);
        latch
    }

    /// Refresh `seq` ended: its callers (and those of earlier ones) get the
    /// outcome; callers that asked while it was in flight get another one.
    pub(crate) fn refresh_done(&mut self, seq: u64, outcome: &RefreshOutcome, now: Instant) {
        let mut again = false;
        let mut done = Vec::new();
        self.refresh.waiters.retain(|(want, latch)| {
            if *want <= seq {
                done.push(latch.clone());
                false
            } else {
                again = true;
                true
            }
        });
        self.work.extend(
            done.into_iter()
                .map(|latch| Work::Refreshed(latch, outcome.clone())),
        );
        if again {
            self.policy.refresh_metadata(now);
        }
    }

    /// A dial ended: the policy no longer needs its cancel handle.
    pub(crate) fn dial_ended(&mut self, conn: ConnId) {
        self.dials.remove(&conn);
    }

    /// Remembers `node`'s failed connect for the errors that report it.
    pub(crate) fn connect_failed(&mut self, node: NodeId, error: ConnectError) {
        self.connect_errors.insert(node, Arc::new(error));
    }

    /// `conn` is ready and the policy wants it: hold it.
    pub(crate) fn hold(&mut self, conn: ConnId, client: Client, address: Address) {
        self.connect_errors.remove(&conn.node());
        let Some(in_flight) = self.policy.in_flight_counter(conn).cloned() else {
            // handle_connected just said it is ready.
            debug_assert!(false, "{conn} held but not ready");
            return;
        };
        self.conns.insert(
            conn,
            Arc::new(Conn {
                conn,
                client,
                address,
                in_flight,
            }),
        );
    }

    /// The ready table as it should be: every held connection the policy
    /// still counts as ready, by node (a draining one is held, not ready).
    pub(crate) fn ready_conns(&self) -> impl Iterator<Item = &Arc<Conn>> + '_ {
        self.conns
            .values()
            .filter(|c| self.policy.in_flight_counter(c.conn).is_some())
    }

    /// The error for a policy's refusal, with the node's last connect error.
    pub(crate) fn route_error(&self, error: RouteError) -> ClusterError {
        ClusterError::from_route(error, |node| self.connect_errors.get(&node).cloned())
    }

    /// A connection task ended.
    pub(crate) fn task_ended(&mut self) {
        self.tasks = self.tasks.saturating_sub(1);
        self.maybe_finished();
    }

    fn maybe_finished(&mut self) {
        if self.closed && self.tasks == 0 {
            self.work.push(Work::Finished(self.finished.clone()));
        }
    }

    /// Closes everything: the policy (a `Close` per connection, a `Wake`
    /// with `Closed` per parked caller), the refresh waiters, the event
    /// streams and the timer. Idempotent.
    pub(crate) fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.policy.close(now);
        self.drain(false);
        // Nothing known any more: gauges summed over clusters drop this one's.
        self.observe_table();
        for (_, latch) in self.refresh.waiters.drain(..) {
            self.work
                .push(Work::Refreshed(latch, Err(ClusterError::Closed)));
        }
        let mut wakers = Vec::new();
        self.subscribers.close(&mut wakers);
        self.work.extend(wakers.into_iter().map(Work::Waker));
        if let Some(w) = self.timer.waker.take() {
            self.work.push(Work::Waker(w));
        }
        self.maybe_finished();
    }

    /// The latch set once the cluster is closed and every connection task ended.
    pub(crate) fn finished(&self) -> Arc<Latch<()>> {
        self.finished.clone()
    }

    /// The node table, for [`super::Cluster::nodes`].
    pub(crate) fn nodes(&self) -> Vec<NodeInfo> {
        self.policy
            .nodes()
            .map(|n| NodeInfo {
                id: n.id,
                address: n.address.clone(),
                rack: n.rack.map(str::to_owned),
                state: n.state,
                in_flight: n.in_flight,
                waiters: n.waiters,
                failures: n.failures,
                last_failure: n.last_failure.cloned(),
                connect_error: self.connect_errors.get(&n.id).cloned(),
                connected_to: match n.state {
                    NodeState::Ready { conn } => {
                        self.conns.get(&conn).map(|c| c.client.info().address)
                    }
                    _ => None,
                },
            })
            .collect()
    }
}

/// One node of the cluster's table, from [`Cluster::nodes`](super::Cluster::nodes).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeInfo {
    /// The broker's node id (negative: a bootstrap address, before the
    /// first Metadata or after a rebootstrap).
    pub id: NodeId,
    /// Host and port, as the broker advertises them in Metadata (or as
    /// given in the bootstrap list).
    pub address: Address,
    /// The broker's rack, if it has one.
    pub rack: Option<String>,
    /// Its connection state: disconnected, dialing, ready, backing off,
    /// circuit open or half-open.
    pub state: NodeState,
    /// Requests in flight on its connection.
    pub in_flight: u32,
    /// Callers waiting for its dial.
    pub waiters: u32,
    /// Consecutive failures (reset by a successful connection).
    pub failures: u32,
    /// The last failure, if any since the node entered the table.
    pub last_failure: Option<Failure>,
    /// The last failed connect's error, with its progress (timings, every
    /// TCP attempt) and the certificates presented; cleared by a success.
    pub connect_error: Option<Arc<ConnectError>>,
    /// The socket address its ready connection is connected to (one of
    /// those the host resolved to).
    pub connected_to: Option<SocketAddr>,
}
