//! Everything `connect` needs: the core's settings plus the transport's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_conn_core::sasl::{GssapiStep, OAuthBearerToken};
use kafka_conn_core::Config;

use crate::addresses::{AddressFamily, DnsCache};
use crate::credentials::{CallbackError, CredentialProvider, Credentials};
use crate::dial::DialConfig;
use crate::observe::{ObserveConfig, Observer};
use crate::proxy::Proxy;
use crate::socket::Keepalive;
use crate::tls::TlsConfig;
use crate::transport::{dial_fn, DialRequest, Dialed};

/// How to connect: the core [`Config`] (timeouts, SASL, versions), TLS,
/// how to dial (DNS, address family, the Happy Eyeballs race), the connect
/// timeout and the credential provider. See `docs/dialing.md` for every
/// dialing option with its default next to the Java client's and
/// librdkafka's.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub(crate) core: Config,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) credentials: Credentials,
    pub(crate) dial: DialConfig,
    pub(crate) max_queued: usize,
    pub(crate) observe: ObserveConfig,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self::new(Config::new())
    }
}

impl From<Config> for ConnectConfig {
    fn from(core: Config) -> Self {
        Self::new(core)
    }
}

impl ConnectConfig {
    /// PLAINTEXT (or SASL_PLAINTEXT when `core` has SASL) with a 10 s
    /// connect timeout, applied to TCP and to the TLS handshake each.
    pub fn new(core: Config) -> Self {
        Self {
            core,
            tls: None,
            connect_timeout: Duration::from_secs(10),
            credentials: Credentials::default(),
            dial: DialConfig::default(),
            max_queued: crate::queue::DEFAULT_MAX_QUEUED,
            observe: ObserveConfig::default(),
        }
    }

    /// The most requests one connection holds for its callers at a time
    /// (default 1,024; at least 1): counted from the `Client::send` that
    /// queues one until its caller has the outcome, whether it waits for
    /// the connection's task, is held back by the core (`max_in_flight`, a
    /// KIP-219 throttle), is on the wire or is answered and not yet taken.
    /// When the bound is reached `Client::send` waits for room (async
    /// backpressure, first come first served) and `Client::try_send` fails
    /// at once with [`crate::RequestFailure::Overloaded`]. The connection's
    /// task also hands the core no more than this many requests at a time,
    /// counting those whose callers gave up but whose responses are still
    /// due, so memory stays bounded when a broker stops reading. It applies
    /// to every connection of a `Cluster` made with this configuration.
    /// `DirectClient` queues what its caller submits (its caller is the
    /// only one who can overload it).
    ///
    /// The Java producer bounds memory rather than requests
    /// (`buffer.memory`, blocking `send` up to `max.block.ms`); librdkafka
    /// bounds its queue (`queue.buffering.max.messages`, failing with
    /// `QUEUE_FULL`). This bound is per connection and counts requests, the
    /// unit this layer sees.
    #[must_use]
    pub fn with_max_queued_requests(mut self, max: usize) -> Self {
        // Slot indices are u32 (see queue.rs).
        self.max_queued = max.clamp(1, u32::MAX as usize);
        self
    }

    /// Tells `observer` what every connection made with this configuration
    /// (and its clones, including a [`Cluster`](crate::Cluster)'s) does:
    /// connects with the time of each step, connect failures, disconnects
    /// with the typed close reason, each response's API, version, sizes and
    /// latency, failed requests, throttles, re-authentications. Replaces an
    /// observer set before; two observe together as `Arc::new((a, b))`.
    /// Without one (the default) the cost is one branch per event. See
    /// [`Observer`] and `docs/metrics.md`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observe.observer = Some(observer);
        self
    }

    /// The broker's node id, for an observer's events (metrics label
    /// their series with it) and the connection's `tracing` span. A
    /// [`Cluster`](crate::Cluster) sets it for each node it dials.
    #[must_use]
    pub fn with_node_id(mut self, node_id: crate::NodeId) -> Self {
        self.observe.node_id = Some(node_id);
        self
    }

    /// Speak TLS: SSL, or SASL_SSL when the core config has SASL.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The timeout of DNS resolution, of each TCP connect attempt (per
    /// address tried), and separately of the TLS handshake. The Kafka handshake (versions, SASL) has the
    /// core's own handshake timeout. A TLS handshake without an answer
    /// after 1 s is raced with a plaintext ApiVersions on a second
    /// connection, so a plaintext Kafka port is reported as
    /// [`crate::ConnectError::NotTls`] long before this timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The resolver for host names: `resolver(host, port)` returns the
    /// addresses to try (in the resolver's order of preference), instead
    /// of the runtime's (the system resolver). IP literals are never
    /// looked up. For a service-discovery system, fixed addresses in a
    /// test, or a DNS library of your own.
    #[must_use]
    pub fn with_resolver<F, Fut>(mut self, resolver: F) -> Self
    where
        F: Fn(String, u16) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static,
    {
        self.dial.resolver = Some(Arc::new(move |host, port| Box::pin(resolver(host, port))));
        self
    }

    /// Keeps resolved addresses for `lifetime` and reuses them for the
    /// connections made with this configuration (and its clones) to the
    /// same host and port. Without it (the default) every connect resolves
    /// again, so a broker that moved is found at its new address on the
    /// next reconnect. A cached answer none of whose addresses connects is
    /// dropped at once.
    #[must_use]
    pub fn with_dns_cache(mut self, lifetime: Duration) -> Self {
        self.dial.dns_cache = Some(DnsCache::new(lifetime));
        self
    }

    /// Which IP versions to use, and which first: see [`AddressFamily`].
    /// Default [`AddressFamily::Any`]: both, alternating, in the order
    /// of the resolver's first answer (RFC 8305 section 4).
    #[must_use]
    pub fn with_address_family(mut self, family: AddressFamily) -> Self {
        self.dial.family = family;
        self
    }

    /// The Happy Eyeballs connection attempt delay (RFC 8305 section 5):
    /// while an attempt is pending, the next address is tried this long
    /// after the last start; a failed attempt starts the next at once. The
    /// first attempt to connect wins and the others are dropped. Default
    /// 250 ms (the RFC's recommendation); at least 10 ms (its floor).
    #[must_use]
    pub fn with_attempt_delay(mut self, delay: Duration) -> Self {
        self.dial.attempt_delay = delay;
        self
    }

    /// TCP keepalive on every connection (`SO_KEEPALIVE` with the given
    /// idle time, probe interval and count), or `None` for none. Default
    /// [`Keepalive::default`]: on, 60 s idle, 10 s interval, 3 probes. The
    /// Java client turns `SO_KEEPALIVE` on with the OS's timing (two hours
    /// idle on Linux); librdkafka leaves it off unless
    /// `socket.keepalive.enable=true`. A dead peer then fails the
    /// connection with a close reason that says it went silent
    /// (`CloseReason::Broken` with an I/O error of kind `TimedOut`), which
    /// is retriable.
    #[must_use]
    pub fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.dial.socket.keepalive = keepalive;
        self
    }

    /// `TCP_USER_TIMEOUT` (RFC 5482; Linux, Android and Fuchsia only,
    /// ignored elsewhere): how long written data may stay unacknowledged
    /// (and, with keepalive, how long probes may go unanswered) before the
    /// OS gives the connection up, instead of retransmitting for about 15
    /// minutes. `None` leaves the OS default. Default 90 s, matching the
    /// default keepalive (60 s + 3 x 10 s).
    #[must_use]
    pub fn with_tcp_user_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.dial.socket.user_timeout = timeout;
        self
    }

    /// Connect through `proxy` (SOCKS5 or HTTP CONNECT): every connection
    /// made with this configuration dials the proxy and asks it for a
    /// tunnel to the broker; TLS, if configured, runs through the tunnel
    /// and verifies the broker's name. See [`Proxy`] (also parsed from
    /// `socks5://`, `socks5h://` and `http://` URLs).
    #[must_use]
    pub fn with_proxy(mut self, proxy: Proxy) -> Self {
        self.dial.proxy = Some(proxy);
        self
    }

    /// The dialer hook: `dialer(request)` opens the byte stream to the
    /// broker at `request.host:request.port` (within
    /// `request.setup_timeout`) in place of the driver's resolution, Happy
    /// Eyeballs, socket options and proxy. TLS (if configured, verified
    /// against `request.host` or the TLS server name) and the Kafka
    /// handshake run on top. Every connection made with this configuration
    /// calls it, and so will a cluster for every node. For a Unix socket,
    /// an SSH or cloud tunnel, a proxy protocol of your own, a test
    /// harness. A dialer's error is [`ConnectError::Dial`](crate::ConnectError::Dial).
    /// `docs/dialing.md` has an example over Unix sockets.
    #[must_use]
    pub fn with_dialer<F, Fut>(mut self, dialer: F) -> Self
    where
        F: Fn(DialRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Dialed>> + Send + 'static,
    {
        self.dial.dialer = Some(dial_fn(dialer));
        self
    }

    /// The credential provider: answers every credential request of the
    /// SASL mechanism (an OAUTHBEARER token, the next GSSAPI token, a
    /// user-defined mechanism's [`CredentialRequest::Custom`]), for the
    /// first authentication and for every KIP-368 re-authentication, with
    /// a [`CredentialContext`] naming the broker. See
    /// [`CredentialProvider`].
    ///
    /// It replaces any provider set before, including those of
    /// [`with_oauth_token_provider`](Self::with_oauth_token_provider) and
    /// [`with_gssapi`](Self::with_gssapi).
    ///
    /// [`CredentialRequest::Custom`]: kafka_conn_core::sasl::CredentialRequest::Custom
    /// [`CredentialContext`]: crate::CredentialContext
    #[must_use]
    pub fn with_credential_provider(mut self, provider: impl CredentialProvider) -> Self {
        self.credentials.set(provider);
        self
    }

    /// The OAUTHBEARER token provider, called for the first authentication
    /// and for every KIP-368 re-authentication (return a fresh token).
    ///
    /// Shorthand for a [`with_credential_provider`](Self::with_credential_provider)
    /// that answers OAUTHBEARER token requests; other requests still go to
    /// the provider set before, if any.
    #[must_use]
    pub fn with_oauth_token_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<OAuthBearerToken, CallbackError>> + Send + 'static,
    {
        self.credentials.set_oauth(provider);
        self
    }

    /// The GSSAPI step callback: given the server's last token (`None` for
    /// the first step), return the next step of the Kerberos exchange (see
    /// [`kafka_conn_core::sasl::Gssapi`] for the wiring).
    ///
    /// Shorthand for a [`with_credential_provider`](Self::with_credential_provider)
    /// that answers GSSAPI token requests; other requests still go to the
    /// provider set before, if any. A provider of your own also gets the
    /// broker's host (for the service principal `kafka/<host>`) and can run
    /// the Kerberos calls on the blocking pool
    /// ([`CredentialContext::spawn_blocking`](crate::CredentialContext::spawn_blocking)).
    #[must_use]
    pub fn with_gssapi<F, Fut>(mut self, step: F) -> Self
    where
        F: Fn(Option<Bytes>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<GssapiStep, CallbackError>> + Send + 'static,
    {
        self.credentials.set_gssapi(step);
        self
    }

    /// The core settings.
    pub fn core(&self) -> &Config {
        &self.core
    }

    /// The TLS settings, if TLS is on.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The connect timeout (see [`with_connect_timeout`](Self::with_connect_timeout)).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The address family setting (see [`with_address_family`](Self::with_address_family)).
    pub fn address_family(&self) -> AddressFamily {
        self.dial.family
    }

    /// The Happy Eyeballs attempt delay (see [`with_attempt_delay`](Self::with_attempt_delay)).
    pub fn attempt_delay(&self) -> Duration {
        self.dial.attempt_delay
    }

    /// The proxy, if any (see [`with_proxy`](Self::with_proxy)).
    pub fn proxy(&self) -> Option<&Proxy> {
        self.dial.proxy.as_ref()
    }

    /// The keepalive setting (see [`with_keepalive`](Self::with_keepalive)).
    pub fn keepalive(&self) -> Option<Keepalive> {
        self.dial.socket.keepalive
    }

    /// The `TCP_USER_TIMEOUT` setting (see [`with_tcp_user_timeout`](Self::with_tcp_user_timeout)).
    pub fn tcp_user_timeout(&self) -> Option<Duration> {
        self.dial.socket.user_timeout
    }
}
