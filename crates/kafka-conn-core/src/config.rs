//! Connection settings.

use std::time::Duration;

use crate::error::ConfigError;
use crate::sasl::SaslConfig;
use crate::versions::{valid_software_field, ApiVersions, API_VERSIONS_MAX};
use crate::wire::MAX_STRING_LEN;

/// Default `max_frame_size`: 100 MiB, Kafka's own `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// How one connection behaves. Build with [`Config::new`] and the `with_*`
/// methods; [`crate::Connection::new`] validates it.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) client_id: Option<String>,
    pub(crate) software_name: String,
    pub(crate) software_version: String,
    pub(crate) max_frame_size: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) receive_buffer_release: Option<Duration>,
    pub(crate) unanswered_grace: Duration,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) version_hint: Option<ApiVersions>,
    pub(crate) api_versions_max: i16,
    pub(crate) sasl: Option<SaslConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// The defaults: client id `kafka-conn`, 100 MiB frames, 40 s request
    /// timeout (the Java client's `request.timeout.ms` default is 30 s;
    /// aiokafka's 40 s), 30 s handshake timeout, 540 s idle reaping (Kafka's
    /// `connections.max.idle.ms` is 600 s on the broker; closing first
    /// avoids a broker-side close racing a request), 10 s grace for an
    /// unanswered timed-out request, no in-flight limit, no SASL, and the
    /// receive buffer given back after 1 s without traffic.
    pub fn new() -> Self {
        Self {
            client_id: Some("kafka-conn".to_owned()),
            software_name: "kafka-conn".to_owned(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            request_timeout: Duration::from_secs(40),
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(540)),
            receive_buffer_release: Some(Duration::from_secs(1)),
            unanswered_grace: Duration::from_secs(10),
            max_in_flight: None,
            version_hint: None,
            api_versions_max: API_VERSIONS_MAX,
            sasl: None,
        }
    }

    /// The client id sent in every request header (`None` sends a null id).
    #[must_use]
    pub fn with_client_id(mut self, id: Option<impl Into<String>>) -> Self {
        self.client_id = id.map(Into::into);
        self
    }

    /// The client software name and version sent in ApiVersions v3+ (KIP-511).
    #[must_use]
    pub fn with_client_software(
        mut self,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        self.software_name = name.into();
        self.software_version = version.into();
        self
    }

    /// The largest response frame accepted; larger size prefixes close the
    /// connection as a protocol violation.
    #[must_use]
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// The default per-request timeout.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long the connection may take to become ready (versions, SASL).
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Close after this long without activity while no request is pending
    /// (`None`: never).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Give the receive buffer back to the allocator once it has held no
    /// bytes for this long without traffic (default 1 s; `None`: keep it
    /// for the connection's life), with the transmit queue's header arena
    /// and the request queues when they are empty. An idle connection then
    /// owns no I/O buffers (the receive buffer was most of an idle
    /// connection's memory: see `docs/benchmarks.md`, "Memory per idle
    /// connection"); the next read takes a small buffer (1 KiB) that grows
    /// with what arrives, the next request a new 1 KiB header arena. A busy
    /// connection never reaches the deadline, so the request path is
    /// unchanged.
    #[must_use]
    pub fn with_receive_buffer_release(mut self, after: impl Into<Option<Duration>>) -> Self {
        self.receive_buffer_release = after.into();
        self
    }

    /// How long a timed-out request's slot may stay unanswered before the
    /// connection gives up on the broker. Kafka answers in order, so an
    /// unanswered slot blocks every later response: without this bound the
    /// connection could hang forever.
    #[must_use]
    pub fn with_unanswered_grace(mut self, grace: Duration) -> Self {
        self.unanswered_grace = grace;
        self
    }

    /// At most this many requests awaiting responses; more are held (queued
    /// in order), not refused.
    #[must_use]
    pub fn with_max_in_flight(mut self, max: Option<usize>) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Skip ApiVersions and assume this table: for brokers older than
    /// 0.10.0, which close the connection on an ApiVersions request
    /// (aiokafka's `api_version` setting). See [`ApiVersions::kafka_0_9_0`].
    /// A table without SaslAuthenticate makes SASL use the legacy v0 handshake.
    #[must_use]
    pub fn with_version_hint(mut self, table: ApiVersions) -> Self {
        self.version_hint = Some(table);
        self
    }

    /// The ApiVersions version to start negotiating with (default and
    /// maximum: 4). Lower it to avoid a known-broken broker version.
    #[must_use]
    pub fn with_api_versions_version(mut self, version: i16) -> Self {
        self.api_versions_max = version.clamp(0, API_VERSIONS_MAX);
        self
    }

    /// Authenticate with SASL after negotiating versions.
    #[must_use]
    pub fn with_sasl(mut self, sasl: SaslConfig) -> Self {
        self.sasl = Some(sasl);
        self
    }

    /// The SASL settings, if any.
    pub fn sasl(&self) -> Option<&SaslConfig> {
        self.sasl.as_ref()
    }

    /// The client id sent in every request header (`None`: a null id).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The default request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Checks everything that can be checked before connecting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("client_software_name", &self.software_name),
            ("client_software_version", &self.software_version),
        ] {
            if !valid_software_field(value) {
                return Err(ConfigError::InvalidSoftwareField {
                    field,
                    value: value.clone(),
                });
            }
        }
        // What the request header and SaslHandshake carry as Kafka strings
        // (i16 length): refused here, not found out by the encoder. Usernames,
        // passwords and OAuth extensions travel inside SASL messages (i32
        // length); a message too large for a frame fails the authentication.
        if let Some(id) = &self.client_id {
            if id.len() > MAX_STRING_LEN {
                return Err(ConfigError::ClientIdTooLong(id.len()));
            }
        }
        if let Some(sasl) = &self.sasl {
            if sasl.mechanism().len() > MAX_STRING_LEN {
                return Err(ConfigError::SaslMechanismTooLong(sasl.mechanism().len()));
            }
        }
        if self.max_frame_size < 8 || self.max_frame_size > i32::MAX as usize {
            return Err(ConfigError::InvalidMaxFrameSize(self.max_frame_size));
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("handshake_timeout", self.handshake_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.receive_buffer_release == Some(Duration::ZERO) {
            // Zero would give the buffer back between every two reads.
            return Err(ConfigError::Zero("receive_buffer_release"));
        }
        if self.max_in_flight == Some(0) {
            return Err(ConfigError::Zero("max_in_flight"));
        }
        if let Some(h) = &self.version_hint {
            if h.is_empty() {
                return Err(ConfigError::InvalidVersionHint("empty table".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_software_name_is_a_clear_config_error() {
        let err = Config::new()
            .with_client_software("my client", "1.0")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("KIP-511"), "{err}");
        assert!(Config::new().validate().is_ok());
        assert!(Config::new()
            .with_max_in_flight(Some(0))
            .validate()
            .is_err());
        assert!(Config::new().with_max_frame_size(4).validate().is_err());
        assert!(Config::new()
            .with_receive_buffer_release(Duration::ZERO)
            .validate()
            .is_err());
        assert!(Config::new()
            .with_receive_buffer_release(None)
            .validate()
            .is_ok());
    }
}
