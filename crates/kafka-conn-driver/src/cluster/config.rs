//! How a [`Cluster`](super::Cluster) connects: the policy's settings, the
//! settings of every connection, and what its Metadata refreshes ask for.

use std::time::Duration;

use kafka_conn_cluster::ClusterConfig as PolicyConfig;

use crate::config::ConnectConfig;

/// Which topics the cluster's Metadata refreshes ask about.
///
/// The cluster needs the brokers (its node table), the controller and the
/// cluster id: every Metadata response carries those whatever topics are
/// asked for. Topics only add partition leaders
/// ([`Cluster::leader`](super::Cluster::leader)), and a response listing
/// every topic of a large cluster is megabytes, fetched again every
/// `metadata_max_age` (5 min): so the default asks for none, as Java's
/// admin client does for its own refreshes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataTopics {
    /// No topic: brokers, controller and cluster id only (the default).
    #[default]
    None,
    /// Every topic (the response grows with the number of partitions).
    All,
    /// These topics: their partitions' leaders are tracked. Topics are not
    /// created by the request (`allow_auto_topic_creation` is false).
    Only(Vec<String>),
}

/// How a [`Cluster`](super::Cluster) behaves: the policy's settings
/// ([`PolicyConfig`]: backoff, setup timeout, circuit breaker, rebootstrap,
/// Metadata age, connection cap), the settings of every connection it opens
/// ([`ConnectConfig`]: TLS, SASL and the credential provider apply to every
/// node alike), and the topics its Metadata refreshes ask about.
///
/// ```
/// use std::time::Duration;
/// use kafka_conn_driver::{ClusterConfig, ConnectConfig, MetadataTopics, PolicyConfig};
///
/// let config = ClusterConfig::new(ConnectConfig::default())
///     .with_policy(PolicyConfig::new().with_max_connections(Some(64)))
///     .with_metadata_topics(MetadataTopics::Only(vec!["orders".into()]))
///     .with_bootstrap_timeout(Duration::from_secs(30));
/// assert_eq!(config.policy().max_connections, Some(64));
/// ```
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub(crate) policy: PolicyConfig,
    pub(crate) connect: ConnectConfig,
    pub(crate) metadata_topics: MetadataTopics,
    pub(crate) bootstrap_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self::new(ConnectConfig::default())
    }
}

impl From<ConnectConfig> for ClusterConfig {
    fn from(connect: ConnectConfig) -> Self {
        Self::new(connect)
    }
}

impl From<kafka_conn_core::Config> for ClusterConfig {
    fn from(core: kafka_conn_core::Config) -> Self {
        Self::new(core.into())
    }
}

impl ClusterConfig {
    /// Every connection made with `connect`; the policy's defaults (those of
    /// the Java client, see `docs/cluster.md`); no topics in Metadata; 60 s
    /// to bootstrap.
    pub fn new(connect: ConnectConfig) -> Self {
        Self {
            policy: PolicyConfig::default(),
            connect,
            metadata_topics: MetadataTopics::None,
            bootstrap_timeout: Duration::from_secs(60),
        }
    }

    /// The policy's settings. A `seed` of 0 (the default) is replaced by
    /// one from the OS, so that clients started together spread their
    /// retries; any other seed is kept (tests replay with it).
    #[must_use]
    pub fn with_policy(mut self, policy: PolicyConfig) -> Self {
        self.policy = policy;
        self
    }

    /// The settings of every connection (TLS, SASL, credential provider,
    /// timeouts). The connect timeout bounds each TCP attempt and the TLS
    /// handshake; the policy's setup timeout bounds the whole dial.
    #[must_use]
    pub fn with_connect(mut self, connect: ConnectConfig) -> Self {
        self.connect = connect;
        self
    }

    /// The topics Metadata refreshes ask about (see [`MetadataTopics`]).
    #[must_use]
    pub fn with_metadata_topics(mut self, topics: MetadataTopics) -> Self {
        self.metadata_topics = topics;
        self
    }

    /// How long [`Cluster::connect`](super::Cluster::connect) waits for the
    /// first Metadata (60 s). It gives up earlier, with every address's
    /// failure, once each bootstrap address has failed.
    #[must_use]
    pub fn with_bootstrap_timeout(mut self, timeout: Duration) -> Self {
        self.bootstrap_timeout = timeout;
        self
    }

    /// The policy's settings.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The settings of every connection.
    pub fn connect(&self) -> &ConnectConfig {
        &self.connect
    }

    /// The topics Metadata refreshes ask about.
    pub fn metadata_topics(&self) -> &MetadataTopics {
        &self.metadata_topics
    }

    /// How long `connect` waits for the first Metadata.
    pub fn bootstrap_timeout(&self) -> Duration {
        self.bootstrap_timeout
    }
}
