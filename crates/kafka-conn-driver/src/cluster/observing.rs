//! The cluster's side of the [`Observer`] hooks: what the policy reported,
//! with the node's state after it ([`Observer::on_cluster_event`]), and the
//! table's gauges ([`Observer::on_cluster_table`]). Taken under the state
//! lock (a few reads of the node table, only when the policy reported
//! something and an observer is set), handed to the observer after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use kafka_conn_cluster::{ClusterPolicy, Event, NodeId, NodeState};

use crate::observe::{event_node, ClusterPolicyEvent, ClusterTableEvent, Observer};

/// What an event's report needs from under the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventContext {
    cluster: u64,
    node_state: Option<NodeState>,
}

/// The table's gauges as they are now and as last reported.
#[derive(Debug)]
pub(crate) struct TableReport {
    cluster: u64,
    now: Table,
    previous: Table,
}

/// What the table's gauges count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    known_nodes: usize,
    open_circuits: Vec<NodeId>,
}

/// One cluster's observation state, behind its lock: the observer's
/// number for it and the table as last reported.
pub(crate) struct ClusterObserving {
    cluster: u64,
    reported: Table,
}

impl ClusterObserving {
    /// A new cluster's (a number of its own, nothing reported yet).
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            cluster: NEXT.fetch_add(1, Ordering::Relaxed),
            reported: Table::default(),
        }
    }

    /// The context of `event`, read from `policy` right after the input
    /// that caused it.
    pub(crate) fn context(&self, policy: &ClusterPolicy, event: &Event) -> EventContext {
        EventContext {
            cluster: self.cluster,
            node_state: event_node(event).and_then(|id| policy.node(id).map(|n| n.state)),
        }
    }

    /// The table's report if it changed since the last one (`closed`: the
    /// cluster closed, it knows nothing any more).
    pub(crate) fn table(&mut self, policy: &ClusterPolicy, closed: bool) -> Option<TableReport> {
        let now = if closed {
            Table::default()
        } else {
            Table {
                known_nodes: policy.nodes().count(),
                open_circuits: policy
                    .nodes()
                    .filter(|n| circuit_not_closed(n.state))
                    .map(|n| n.id)
                    .collect(),
            }
        };
        if now == self.reported {
            return None;
        }
        let previous = std::mem::replace(&mut self.reported, now.clone());
        Some(TableReport {
            cluster: self.cluster,
            now,
            previous,
        })
    }
}

/// Open, half-open, or its probe under way: requests fail at once.
fn circuit_not_closed(state: NodeState) -> bool {
    matches!(
        state,
        NodeState::CircuitOpen { .. }
            | NodeState::HalfOpen
            | NodeState::Dialing { probe: true, .. }
    )
}

/// Tells `observer` about `event` (lock released; `now` is the runtime's).
pub(crate) fn report_event(
    observer: &Arc<dyn Observer>,
    event: &Event,
    context: EventContext,
    now: Instant,
) {
    let retry_in = match context.node_state {
        Some(
            NodeState::BackingOff { until: Some(t) } | NodeState::CircuitOpen { until: Some(t) },
        ) => Some(t.saturating_duration_since(now)),
        _ => None,
    };
    observer.on_cluster_event(&ClusterPolicyEvent {
        cluster: context.cluster,
        event,
        node_state: context.node_state,
        retry_in,
    });
}

/// Tells `observer` the table's gauges changed (lock released).
pub(crate) fn report_table(observer: &Arc<dyn Observer>, report: &TableReport) {
    observer.on_cluster_table(&ClusterTableEvent {
        cluster: report.cluster,
        known_nodes: report.now.known_nodes,
        previous_known_nodes: report.previous.known_nodes,
        open_circuits: &report.now.open_circuits,
        previous_open_circuits: &report.previous.open_circuits,
    });
}
