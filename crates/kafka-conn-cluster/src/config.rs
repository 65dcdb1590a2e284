//! The policy's configuration, with the Java client's defaults.

use std::time::Duration;

use crate::error::ConfigError;

/// How the policy behaves. Every default is the Java client's where it has
/// one (see `docs/cluster.md` for the table next to librdkafka's).
///
/// ```
/// use std::time::Duration;
/// use kafka_conn_cluster::ClusterConfig;
/// let config = ClusterConfig::new()
///     .with_reconnect_backoff(Duration::from_millis(100), Duration::from_secs(10))
///     .with_max_connections(Some(64))
///     .with_seed(42);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// First reconnect backoff after a failure (`reconnect.backoff.ms`, 50 ms);
    /// doubles with each consecutive failure.
    pub reconnect_backoff: Duration,
    /// Largest reconnect backoff (`reconnect.backoff.max.ms`, 1 s).
    pub reconnect_backoff_max: Duration,
    /// Setup timeout of the first attempt: TCP, TLS and the Kafka handshake
    /// must be done within it (`socket.connection.setup.timeout.ms`, 10 s);
    /// doubles with each consecutive failure.
    pub setup_timeout: Duration,
    /// Largest setup timeout (`socket.connection.setup.timeout.max.ms`, 30 s).
    pub setup_timeout_max: Duration,
    /// Random spread applied to both, in per mille either way (200 = ±20 %,
    /// Java's factor 0.2), so that clients do not retry in lockstep.
    pub jitter_permille: u16,
    /// Consecutive failures after which a node's circuit opens (5); `None`
    /// disables the breaker. A failure that no retry can fix (refused
    /// authentication, TLS or protocol mismatch, incompatible broker) opens
    /// it at once.
    pub circuit_failures: Option<u32>,
    /// How long an open circuit stays open before one probe is let through (10 s).
    pub circuit_cool_down: Duration,
    /// Go back to the bootstrap addresses when no node could be reached for
    /// this long (`metadata.recovery.rebootstrap.trigger.ms`, 300 s); `None`
    /// never rebootstraps (`metadata.recovery.strategy=none`), not even on
    /// REBOOTSTRAP_REQUIRED.
    pub rebootstrap_after: Option<Duration>,
    /// Refresh Metadata when the last one is older than this
    /// (`metadata.max.age.ms`, 5 min).
    pub metadata_max_age: Duration,
    /// First wait before retrying a failed Metadata refresh (`retry.backoff.ms`,
    /// 100 ms); doubles with each consecutive failure.
    pub metadata_retry_backoff: Duration,
    /// Largest wait before retrying a failed refresh (`retry.backoff.max.ms`, 1 s).
    pub metadata_retry_backoff_max: Duration,
    /// Most connections open at once (dialing or open); `None` = no limit
    /// (the default, as in the Java client). At the limit the least recently
    /// used idle connection is closed to make room.
    pub max_connections: Option<usize>,
    /// Seed of the policy's jitter generator. The driver seeds it from the
    /// OS (`getrandom`); tests and fuzzing fix it to replay exactly.
    pub seed: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            setup_timeout: Duration::from_secs(10),
            setup_timeout_max: Duration::from_secs(30),
            jitter_permille: 200,
            circuit_failures: Some(5),
            circuit_cool_down: Duration::from_secs(10),
            rebootstrap_after: Some(Duration::from_secs(300)),
            metadata_max_age: Duration::from_secs(300),
            metadata_retry_backoff: Duration::from_millis(100),
            metadata_retry_backoff_max: Duration::from_secs(1),
            max_connections: None,
            seed: 0,
        }
    }
}

impl ClusterConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the reconnect backoff (initial, maximum).
    pub fn with_reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect_backoff = initial;
        self.reconnect_backoff_max = max;
        self
    }

    /// Sets the connection setup timeout (initial, maximum).
    pub fn with_setup_timeout(mut self, initial: Duration, max: Duration) -> Self {
        self.setup_timeout = initial;
        self.setup_timeout_max = max;
        self
    }

    /// Sets the jitter in per mille (200 = ±20 %; 0 = none).
    pub fn with_jitter_permille(mut self, permille: u16) -> Self {
        self.jitter_permille = permille;
        self
    }

    /// Sets the circuit breaker: open after `failures` consecutive failures
    /// (`None` disables it), probe after `cool_down`.
    pub fn with_circuit_breaker(mut self, failures: Option<u32>, cool_down: Duration) -> Self {
        self.circuit_failures = failures;
        self.circuit_cool_down = cool_down;
        self
    }

    /// Sets the rebootstrap trigger (`None` = never rebootstrap).
    pub fn with_rebootstrap_after(mut self, after: Option<Duration>) -> Self {
        self.rebootstrap_after = after;
        self
    }

    /// Sets the Metadata max age.
    pub fn with_metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// Sets the Metadata retry backoff (initial, maximum).
    pub fn with_metadata_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.metadata_retry_backoff = initial;
        self.metadata_retry_backoff_max = max;
        self
    }

    /// Sets the connection cap (`None` = no limit).
    pub fn with_max_connections(mut self, max: Option<usize>) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets the jitter seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the values: maxima not below their initial values, no zero
    /// setup timeout, cool-down, max age, circuit threshold or cap, jitter
    /// at most 100 %. (A zero reconnect backoff is allowed: reconnect at once,
    /// as librdkafka allows.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pairs = [
            (
                "reconnect_backoff",
                self.reconnect_backoff,
                "reconnect_backoff_max",
                self.reconnect_backoff_max,
            ),
            (
                "setup_timeout",
                self.setup_timeout,
                "setup_timeout_max",
                self.setup_timeout_max,
            ),
            (
                "metadata_retry_backoff",
                self.metadata_retry_backoff,
                "metadata_retry_backoff_max",
                self.metadata_retry_backoff_max,
            ),
        ];
        for (name, initial, max_name, max) in pairs {
            if max < initial {
                return Err(ConfigError::MaxBelowInitial {
                    name,
                    initial,
                    max_name,
                    max,
                });
            }
        }
        let zeros = [
            ("setup_timeout", self.setup_timeout.is_zero()),
            ("circuit_cool_down", self.circuit_cool_down.is_zero()),
            ("metadata_max_age", self.metadata_max_age.is_zero()),
            ("circuit_failures", self.circuit_failures == Some(0)),
            ("max_connections", self.max_connections == Some(0)),
            (
                "rebootstrap_after",
                self.rebootstrap_after == Some(Duration::ZERO),
            ),
        ];
        if let Some((name, _)) = zeros.iter().find(|(_, zero)| *zero) {
            return Err(ConfigError::Zero(name));
        }
        if self.jitter_permille > 1000 {
            return Err(ConfigError::Jitter(self.jitter_permille));
        }
        Ok(())
    }
}
