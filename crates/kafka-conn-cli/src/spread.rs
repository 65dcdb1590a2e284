//! What `ping --brokers` and `bench --brokers` share: the cluster, learnt
//! through the driver's [`Cluster`] (bootstrap, Metadata, one connection
//! per node opened when a request needs it, backoff and circuit breaker),
//! the brokers picked from its node table, and each broker's request at
//! the version that broker supports.

use std::net::SocketAddr;

use kafka_conn_tokio::core::Request;
use kafka_conn_tokio::{Cluster, ClusterConfig, ClusterError, NodeId, PolicyConfig};
use serde::Serialize;

use crate::cli::BrokerSelection;
use crate::diagnose::{self, Diagnosis};
use crate::kafka::Probe;
use crate::settings::Settings;

/// The connected cluster and the brokers to talk to.
pub(crate) struct Spread {
    /// The cluster (its per-node connections are opened on first use).
    pub(crate) cluster: Cluster,
    /// The chosen brokers, by node id.
    pub(crate) nodes: Vec<Node>,
    /// The cluster id from Metadata.
    pub(crate) cluster_id: Option<String>,
}

/// One chosen broker.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Its node id.
    pub(crate) id: NodeId,
    /// The address it advertises (`host:port`).
    pub(crate) broker: String,
}

/// The `spread` object of `ping --json` and `bench --json` with
/// `--brokers`.
#[derive(Debug, Serialize)]
pub(crate) struct Extra<T: Serialize> {
    /// The cluster and the totals.
    pub(crate) spread: T,
}

/// Connects to the cluster through the bootstrap brokers and picks the
/// brokers `selection` names. With `metrics_addr` (`--metrics-addr`), a
/// metrics observer watches every connection the cluster opens, labelled
/// with its node id, and its endpoint serves them.
pub(crate) async fn connect(
    settings: &Settings,
    selection: &BrokerSelection,
    metrics_addr: Option<&str>,
) -> Result<Spread, Diagnosis> {
    let observer = crate::observe::metrics_observer(metrics_addr).await?;
    let ctx = settings.diagnosis_context(None);
    let connect = match settings.connect_config() {
        Ok(c) => match observer {
            Some(o) => c.with_observer(o),
            None => c,
        },
        Err(e) => {
            return Err(diagnose::connect_error(
                &kafka_conn_tokio::ConnectError::TlsConfig(e),
                &ctx,
            ))
        }
    };
    // --timeout is each step's limit: a node's whole connection setup gets
    // it (growing to three times it after failed dials, as the Java client's
    // socket.connection.setup.timeout grows); the bootstrap (a dial and
    // a Metadata request) twice it.
    let policy = PolicyConfig::new().with_setup_timeout(settings.timeout, settings.timeout * 3);
    let config = ClusterConfig::new(connect)
        .with_policy(policy)
        .with_bootstrap_timeout(settings.timeout * 2);
    let cluster = Cluster::connect(&settings.brokers, config)
        .await
        .map_err(|e| bootstrap_failed(settings, &e))?;
    let advertised: Vec<Node> = cluster
        .nodes()
        .into_iter()
        .filter(|n| !n.id.is_bootstrap())
        .map(|n| Node {
            id: n.id,
            broker: n.address.to_string(),
        })
        .collect();
    let nodes = match selection {
        BrokerSelection::All => advertised.clone(),
        BrokerSelection::Nodes(ids) => {
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !advertised.iter().any(|n| n.id.0 == **id))
                .map(i32::to_string)
                .collect();
            if !missing.is_empty() {
                let known: Vec<String> = advertised.iter().map(|n| n.id.0.to_string()).collect();
                cluster.close();
                return Err(Diagnosis::custom(
                    diagnose::Step::Metadata,
                    "broker_not_advertised",
                    format!(
                        "the cluster does not advertise broker {} (its Metadata lists {}): is it down, or not a member of this cluster?",
                        missing.join(", "),
                        if known.is_empty() { "no broker".to_owned() } else { known.join(", ") }
                    ),
                ));
            }
            advertised
                .iter()
                .filter(|n| ids.contains(&n.id.0))
                .cloned()
                .collect()
        }
    };
    if nodes.is_empty() {
        cluster.close();
        return Err(Diagnosis::custom(
            diagnose::Step::Metadata,
            "no_brokers",
            "the cluster's Metadata lists no broker",
        ));
    }
    let cluster_id = cluster.cluster_id();
    Ok(Spread {
        cluster,
        nodes,
        cluster_id,
    })
}

/// Why the cluster could not bootstrap: the first bootstrap address's
/// failure explained as `check` explains it (its `ConnectError` when the
/// dial failed), the whole error as the detail.
fn bootstrap_failed(settings: &Settings, e: &ClusterError) -> Diagnosis {
    let ctx = settings.diagnosis_context(None);
    let first = match e {
        ClusterError::BootstrapFailed { failures }
        | ClusterError::BootstrapTimeout { failures, .. } => failures.first(),
        _ => None,
    };
    let mut d = match first {
        Some(f) => diagnose::cluster_error(f, kafka_conn_tokio::core::ApiKey::METADATA, &ctx),
        None => diagnose::cluster_error(e, kafka_conn_tokio::core::ApiKey::METADATA, &ctx),
    };
    d.detail = e.to_string();
    d
}

/// Dials `node` if needed (the cluster's single dial per node) and builds
/// `probe`'s request at the highest version that broker and kconn share;
/// with the address the connection reached.
pub(crate) async fn prepare(
    cluster: &Cluster,
    node: NodeId,
    probe: Probe,
) -> Result<(Request, SocketAddr), Prepared> {
    let client = cluster.client(node).await.map_err(Prepared::Cluster)?;
    let request = probe
        .request(&client)
        .map_err(|e| Prepared::Version(e.to_string()))?;
    Ok((request, client.info().address))
}

/// Why [`prepare`] failed.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// The cluster could not give a connection to the node.
    Cluster(ClusterError),
    /// The broker supports no version kconn can send.
    Version(String),
}

impl Prepared {
    /// Explained.
    pub(crate) fn diagnosis(&self, settings: &Settings, probe: Probe) -> Diagnosis {
        self.diagnosis_with(&settings.diagnosis_context(None), probe)
    }

    /// Explained with `ctx`.
    pub(crate) fn diagnosis_with(&self, ctx: &diagnose::Context, probe: Probe) -> Diagnosis {
        match self {
            Prepared::Cluster(e) => diagnose::cluster_error(e, probe.api_key(), ctx),
            Prepared::Version(text) => {
                Diagnosis::custom(diagnose::Step::ApiVersions, "no_common_version", text)
            }
        }
    }
}

/// "1, 2, 3".
pub(crate) fn ids(nodes: &[Node]) -> String {
    let ids: Vec<String> = nodes.iter().map(|n| n.id.0.to_string()).collect();
    ids.join(", ")
}
