//! Everything `connect` needs: the core's settings plus the transport's.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use kafka_conn_core::sasl::{GssapiStep, OAuthBearerToken};
use kafka_conn_core::Config;

use crate::credentials::{CallbackError, CredentialProvider, Credentials};
use crate::tls::TlsConfig;

/// How to connect: the core [`Config`] (timeouts, SASL, versions), TLS,
/// the connect timeout and the credential provider.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub(crate) core: Config,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) credentials: Credentials,
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
        }
    }

    /// Speak TLS: SSL, or SASL_SSL when the core config has SASL.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The timeout of the TCP connect (per address tried), and separately
    /// of the TLS handshake. The Kafka handshake (versions, SASL) has the
    /// core's own handshake timeout. A TLS handshake without an answer
    /// after 1 s is raced with a plaintext ApiVersions on a second
    /// connection, so a plaintext Kafka port is reported as
    /// [`crate::ConnectError::NotTls`] long before this timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
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
}
