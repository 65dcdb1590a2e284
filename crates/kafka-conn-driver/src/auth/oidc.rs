//! OAuth 2 client credentials (RFC 6749 section 4.4) for OAUTHBEARER, as
//! KIP-768 has Kafka's own clients do it: see [`OidcTokenProvider`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kafka_conn_core::sasl::{Credential, CredentialRequest, OAuthBearerToken, Secret};

use crate::credentials::{CallbackError, CredentialContext, CredentialProvider};
use crate::runtime::{spawn_thread, BoxFuture};

/// How the client authenticates to the token endpoint (RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret (what
    /// RFC 6749 says every server must support, and what Kafka's client
    /// sends).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the request body
    /// (`client_secret_post`).
    RequestBody,
}

/// A token provider for OAUTHBEARER that fetches access tokens with the
/// OAuth 2 client credentials grant from an OpenID provider's token
/// endpoint over HTTPS (KIP-768's `sasl.oauthbearer.token.endpoint.url`),
/// keeps the last good token and refreshes it ahead of its expiry.
///
/// It is the [`CredentialProvider`] of the OAUTHBEARER mechanism
/// ([`SaslConfig::oauthbearer`](kafka_conn_core::sasl::SaslConfig::oauthbearer)):
/// set it with [`ConnectConfig::with_credential_provider`](crate::ConnectConfig::with_credential_provider).
/// Every connection the config makes, and each of their KIP-368
/// re-authentications, asks it for a token; it answers with the cached one
/// while that is fresh and fetches a new one (on the runtime's blocking
/// pool, [`CredentialContext::spawn_blocking`]) once it is due.
///
/// Cheap to clone; clones share the cached token, so every connection of
/// an application can use one provider and the endpoint sees one fetch
/// per refresh, not one per connection.
///
/// - **The request** (RFC 6749 section 4.4.2): `POST` of
///   `grant_type=client_credentials`, the scope and any extra parameters
///   (e.g. `audience` or `resource`), the client authenticated with HTTP
///   Basic ([`ClientAuth::Basic`], the default) or in the body.
/// - **The answer**: the `access_token`; its expiry from the JWT's `exp`
///   claim when the token is a JWT (read, not verified: the broker verifies
///   the signature), else from `expires_in`. The token goes to OAUTHBEARER
///   with its expiry, so the connection re-authenticates before it
///   expires (KIP-368), and with the configured SASL extensions (KIP-342).
/// - **Refresh**: a cached token is reused until 80% of its lifetime has
///   passed (KIP-368's own re-authentication comes at 85-95%, so it always
///   finds a fresh token); after that a new one is fetched. If that fetch
///   fails while the cached token is still valid, the cached one is used.
/// - **Retries**: transport errors, timeouts, HTTP 5xx and 429 are retried
///   with exponential backoff (100 ms doubling up to 2 s, 3 attempts by
///   default); the provider's refusals (4xx, e.g. `invalid_client`) are
///   not. Each attempt is bounded by the timeout (10 s by default).
/// - **TLS**: rustls with the `ring` provider, the system's roots or a CA
///   file; redirects are not followed (the secret stays with the endpoint
///   it was configured for).
///
/// HTTP runs through the blocking `ureq` client on the runtime's blocking
/// pool, never on the async executor.
///
/// ```no_run
/// # use kafka_conn_driver::{ConnectConfig, OidcTokenProvider};
/// # use kafka_conn_driver::core::{Config, sasl::SaslConfig};
/// let secret = std::env::var("OIDC_CLIENT_SECRET").unwrap();
/// let oidc = OidcTokenProvider::new("https://idp.example.com/oauth2/token", "my-app", secret)
///     .with_scope("kafka")
///     .with_extension("logicalCluster", "lkc-123");
/// let config = ConnectConfig::new(Config::new().with_sasl(SaslConfig::oauthbearer()))
///     .with_credential_provider(oidc);
/// ```
#[derive(Clone)]
pub struct OidcTokenProvider {
    settings: Arc<Settings>,
    state: Arc<Mutex<State>>,
    agent: Arc<OnceLock<Result<ureq::Agent, OidcError>>>,
}

#[derive(Clone)]
struct Settings {
    endpoint: String,
    client_id: String,
    client_secret: Secret,
    client_auth: ClientAuth,
    scope: Option<String>,
    parameters: Vec<(String, String)>,
    extensions: BTreeMap<String, String>,
    ca_file: Option<PathBuf>,
    timeout: Duration,
    attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    refresh_window: f64,
}

#[derive(Default)]
struct State {
    cached: Option<Fetched>,
    fetches: u64,
}

/// A token as fetched.
#[derive(Clone)]
struct Fetched {
    token: String,
    fetched_at: Instant,
    expires_at: Option<Instant>,
}

impl fmt::Debug for OidcTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("OidcTokenProvider")
            .field("endpoint", &s.endpoint)
            .field("client_id", &s.client_id)
            .field("client_secret", &s.client_secret)
            .field("client_auth", &s.client_auth)
            .field("scope", &s.scope)
            .field(
                "parameters",
                &s.parameters.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("extensions", &s.extensions.keys().collect::<Vec<_>>())
            .field("ca_file", &s.ca_file)
            .field("timeout", &s.timeout)
            .field("attempts", &s.attempts)
            .finish()
    }
}

impl OidcTokenProvider {
    /// Fetches tokens from `token_endpoint` (an `https://` URL) as the
    /// client `client_id` with `client_secret`.
    pub fn new(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            settings: Arc::new(Settings {
                endpoint: token_endpoint.into(),
                client_id: client_id.into(),
                client_secret: Secret::new(client_secret),
                client_auth: ClientAuth::Basic,
                scope: None,
                parameters: Vec::new(),
                extensions: BTreeMap::new(),
                ca_file: None,
                timeout: Duration::from_secs(10),
                attempts: 3,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                refresh_window: 0.8,
            }),
            state: Arc::default(),
            agent: Arc::default(),
        }
    }

    /// Changes a setting; clones made before share nothing with the result.
    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::clone(&self.settings);
        change(&mut settings);
        self.settings = Arc::new(settings);
        self.state = Arc::default();
        self.agent = Arc::default();
        self
    }

    /// How the client id and secret are sent (default [`ClientAuth::Basic`]).
    #[must_use]
    pub fn with_client_auth(self, auth: ClientAuth) -> Self {
        self.with(|s| s.client_auth = auth)
    }

    /// The `scope` parameter (space-separated scopes; KIP-768's `scope`).
    #[must_use]
    pub fn with_scope(self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        self.with(|s| s.scope = Some(scope))
    }

    /// An extra form parameter of the token request, e.g. `audience` or
    /// `resource` (RFC 8707).
    #[must_use]
    pub fn with_parameter(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        self.with(|s| s.parameters.push((name, value)))
    }

    /// A SASL extension sent with every token (KIP-342), e.g.
    /// `logicalCluster`; checked by OAUTHBEARER when the token is used.
    #[must_use]
    pub fn with_extension(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.with(|s| {
            s.extensions.insert(key, value);
        })
    }

    /// Trust the CA certificates in this PEM file instead of the system's
    /// roots (read at the first fetch).
    #[must_use]
    pub fn with_ca_file(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.with(|s| s.ca_file = Some(path))
    }

    /// The bound on each HTTP attempt, connect to last byte (default 10 s;
    /// KIP-768's `sasl.login.connect.timeout.ms` + `read.timeout.ms`).
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.timeout = timeout)
    }

    /// At most `attempts` requests per fetch (at least 1), waiting
    /// `initial_backoff`, doubled each time up to `max_backoff`, between
    /// them (KIP-768's `sasl.login.retry.backoff.ms` / `.max.ms`).
    #[must_use]
    pub fn with_retries(
        self,
        attempts: u32,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        self.with(|s| {
            s.attempts = attempts.max(1);
            s.initial_backoff = initial_backoff;
            s.max_backoff = max_backoff.max(initial_backoff);
        })
    }

    /// The fraction of a token's lifetime after which it is refreshed
    /// (default 0.8, as Kafka's `sasl.login.refresh.window.factor`),
    /// clamped to [0.1, 1.0].
    #[must_use]
    pub fn with_refresh_window(self, factor: f64) -> Self {
        self.with(|s| s.refresh_window = factor.clamp(0.1, 1.0))
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    /// How many tokens were fetched from the endpoint so far.
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    /// The token for the next authentication, fetched on a thread of its
    /// own if the cached one is due for refresh: for using the provider
    /// outside a connection (a connection asks through its
    /// [`CredentialProvider`] implementation, on the runtime's pool).
    pub async fn token(&self) -> Result<OAuthBearerToken, OidcError> {
        let provider = self.clone();
        spawn_thread(move || provider.token_blocking()).await
    }

    /// [`OidcTokenProvider::token`], blocking the calling thread while it fetches.
    pub fn token_blocking(&self) -> Result<OAuthBearerToken, OidcError> {
        // One fetch at a time: concurrent callers wait and share its token.
        let mut state = self.lock();
        let now = Instant::now();
        let cached = state.cached.clone();
        if let Some(c) = &cached {
            if !self.refresh_due(c, now) {
                return Ok(self.bearer(c));
            }
        }
        match self.fetch() {
            Ok(fresh) => {
                state.fetches += 1;
                state.cached = Some(fresh.clone());
                Ok(self.bearer(&fresh))
            }
            // Keep the last good token while it is still valid.
            Err(e) => match cached {
                Some(c) if c.expires_at.is_some_and(|exp| exp > Instant::now()) => {
                    tracing::warn!(error = %e, "token refresh failed; using the cached token");
                    Ok(self.bearer(&c))
                }
                _ => Err(e),
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `cached` must be replaced before it is used at `now`.
    fn refresh_due(&self, cached: &Fetched, now: Instant) -> bool {
        match cached.expires_at {
            // Without a known expiry, every authentication fetches anew.
            None => true,
            Some(exp) => {
                let lifetime = exp.saturating_duration_since(cached.fetched_at);
                now >= cached.fetched_at + lifetime.mul_f64(self.settings.refresh_window)
            }
        }
    }

    fn bearer(&self, f: &Fetched) -> OAuthBearerToken {
        let mut token = OAuthBearerToken::new(f.token.clone());
        for (k, v) in &self.settings.extensions {
            token = token.with_extension(k, v);
        }
        match f.expires_at {
            Some(exp) => token.with_expiry(exp),
            None => token,
        }
    }

    /// One fetch with retries.
    fn fetch(&self) -> Result<Fetched, OidcError> {
        let s = &self.settings;
        let agent = self
            .agent
            .get_or_init(|| build_agent(s))
            .as_ref()
            .map_err(Clone::clone)?;
        let mut backoff = s.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.attempt(agent) {
                Ok(f) => return Ok(f),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry(message)) if attempt >= s.attempts => {
                    return Err(OidcError::Transport {
                        endpoint: s.endpoint.clone(),
                        attempts: attempt,
                        message,
                    })
                }
                Err(Attempt::Retry(message)) => {
                    tracing::debug!(attempt, %message, "token request failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(s.max_backoff);
                    attempt += 1;
                }
            }
        }
    }

    /// One HTTP request.
    fn attempt(&self, agent: &ureq::Agent) -> Result<Fetched, Attempt> {
        let s = &self.settings;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &s.scope {
            form.push(("scope", scope));
        }
        if s.client_auth == ClientAuth::RequestBody {
            form.push(("client_id", &s.client_id));
            form.push(("client_secret", s.client_secret.expose()));
        }
        form.extend(s.parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut request = agent.post(&s.endpoint).header("Accept", "application/json");
        if s.client_auth == ClientAuth::Basic {
            request = request.header("Authorization", basic_auth(&s.client_id, &s.client_secret));
        }
        let sent_at = Instant::now();
        let response = match request.send_form(form) {
            Ok(r) => r,
            Err(ureq::Error::Timeout(t)) => {
                return Err(Attempt::Retry(format!(
                    "no answer within {:?} ({t})",
                    s.timeout
                )))
            }
            Err(e @ (ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_))) => {
                return Err(Attempt::Final(OidcError::Config(format!(
                    "token endpoint {:?}: {e}",
                    s.endpoint
                ))))
            }
            Err(e) => return Err(Attempt::Retry(e.to_string())),
        };
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| Attempt::Retry(format!("reading the answer: {e}")))?;
        if status == 429 || status >= 500 {
            return Err(Attempt::Retry(format!("HTTP {status}: {}", snippet(&body))));
        }
        if status != 200 {
            return Err(Attempt::Final(refusal(status, &body)));
        }
        parse_token_response(&body, sent_at).map_err(Attempt::Final)
    }
}

impl CredentialProvider for OidcTokenProvider {
    /// Answers [`CredentialRequest::OAuthBearerToken`] with
    /// [`OidcTokenProvider::token_blocking`], run on the blocking pool.
    fn provide(
        &self,
        request: CredentialRequest,
        context: CredentialContext,
    ) -> BoxFuture<'static, Result<Credential, CallbackError>> {
        if request != CredentialRequest::OAuthBearerToken {
            return super::not_provided("OIDC", "OAUTHBEARER", &request);
        }
        let provider = self.clone();
        Box::pin(async move {
            tracing::debug!(
                reauthentication = context.reauthentication,
                host = %context.host,
                "OAUTHBEARER token asked for"
            );
            let token = context
                .spawn_blocking(move || provider.token_blocking())
                .await?;
            Ok(Credential::OAuthBearer(token))
        })
    }
}

enum Attempt {
    Retry(String),
    Final(OidcError),
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// A setting that cannot work (bad URL, unreadable CA file).
    #[error("OIDC token provider: {0}")]
    Config(String),
    /// The endpoint could not be reached or did not answer, after every attempt.
    #[error("OIDC token endpoint {endpoint} failed after {attempts} attempt(s): {message}")]
    Transport {
        /// The token endpoint.
        endpoint: String,
        /// Requests made.
        attempts: u32,
        /// The last failure.
        message: String,
    },
    /// The provider refused (HTTP 4xx), with its RFC 6749 section 5.2
    /// `error` and `error_description`.
    #[error("the OpenID provider refused the token request: HTTP {status}{}{}",
        error.as_deref().map(|e| format!(", error {e}")).unwrap_or_default(),
        description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `error` code, e.g. `invalid_client`.
        error: Option<String>,
        /// The `error_description`.
        description: Option<String>,
    },
    /// A 200 answer without a usable bearer token.
    #[error("the OpenID provider's answer has no usable token: {0}")]
    BadResponse(String),
}

fn build_agent(s: &Settings) -> Result<ureq::Agent, OidcError> {
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
    let roots: Vec<Certificate<'static>> = match &s.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                OidcError::Config(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(OidcError::Config(format!(
                    "no PEM certificate in the CA file {}",
                    path.display()
                )));
            }
            certs
        }
        None => rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    };
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&roots))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(s.timeout))
        .http_status_as_error(false)
        // A redirect would carry the client secret elsewhere.
        .max_redirects(0)
        .user_agent(concat!("kafka-conn/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

/// RFC 6749 section 2.3.1: id and secret are form-encoded, then joined by
/// ':' and base64-encoded.
fn basic_auth(id: &str, secret: &Secret) -> String {
    let pair = format!("{}:{}", form_encode(id), form_encode(secret.expose()));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `application/x-www-form-urlencoded` (RFC 6749 appendix B).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The start of a body, for an error message.
fn snippet(body: &str) -> String {
    let s: String = body.chars().take(200).collect();
    s.trim().to_owned()
}

/// RFC 6749 section 5.2: `{"error": "...", "error_description": "..."}`.
fn refusal(status: u16, body: &str) -> OidcError {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let error = field("error");
    let description = field("error_description")
        .or_else(|| (error.is_none() && !body.trim().is_empty()).then(|| snippet(body)));
    OidcError::Refused {
        status,
        error,
        description,
    }
}

/// RFC 6749 section 5.1.
fn parse_token_response(body: &str, sent_at: Instant) -> Result<Fetched, OidcError> {
    let json: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| OidcError::BadResponse(format!("not JSON ({e})")))?;
    let token = json
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OidcError::BadResponse("no access_token".into()))?;
    if let Some(kind) = json.get("token_type").and_then(|v| v.as_str()) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(OidcError::BadResponse(format!(
                "token_type is {kind:?}, OAUTHBEARER needs a Bearer token"
            )));
        }
    }
    // The JWT's own `exp` is what the broker checks; `expires_in` is the
    // fallback for opaque tokens. Both count from when the request was sent.
    let expires_in = jwt_claims(token)
        .and_then(|c| c.get("exp").and_then(serde_json::Value::as_f64))
        .map(|exp| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            Duration::from_secs_f64((exp - now).max(0.0))
        })
        .or_else(|| {
            json.get("expires_in")
                .and_then(serde_json::Value::as_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
        });
    Ok(Fetched {
        token: token.to_owned(),
        fetched_at: sent_at,
        expires_at: expires_in.map(|d| sent_at + d),
    })
}

/// The claims of a compact JWS (RFC 7515 section 7.1), unverified; `None`
/// for a token that is not one.
pub(crate) fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (_header, claims) = (parts.next()?, parts.next()?);
    parts.next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        // RFC 6749 section 2.3.1 / appendix B: ':' and ' ' in the secret are encoded.
        let header = basic_auth("my app", &Secret::new("s3:cr t/"));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"my+app:s3%3Acr+t%2F");
    }

    #[test]
    fn refusals_carry_the_providers_error() {
        let e = refusal(
            401,
            r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
        );
        assert_eq!(
            e.to_string(),
            "the OpenID provider refused the token request: HTTP 401, error invalid_client: \
             client authentication failed"
        );
        let e = refusal(404, "Not Found");
        assert_eq!(
            e.to_string(),
            "the OpenID provider refused the token request: HTTP 404: Not Found"
        );
    }

    #[test]
    fn token_responses_are_checked() {
        let t0 = Instant::now();
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = format!(
            "{}.{}.sig",
            b64.encode(r#"{"alg":"RS256"}"#),
            b64.encode(format!(r#"{{"sub":"app","exp":{exp}}}"#))
        );
        // The JWT's exp wins over expires_in.
        let f = parse_token_response(
            &format!(r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":30}}"#),
            t0,
        )
        .unwrap();
        let left = f.expires_at.unwrap() - t0;
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        // An opaque token: expires_in.
        let f = parse_token_response(r#"{"access_token":"opaque","expires_in":30}"#, t0).unwrap();
        assert_eq!(f.expires_at, Some(t0 + Duration::from_secs(30)));
        let f = parse_token_response(r#"{"access_token":"opaque"}"#, t0).unwrap();
        assert_eq!(f.expires_at, None);
        for bad in [
            "<html>",
            "{}",
            r#"{"access_token":""}"#,
            r#"{"access_token":"x","token_type":"DPoP"}"#,
        ] {
            assert!(
                matches!(
                    parse_token_response(bad, t0),
                    Err(OidcError::BadResponse(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn refresh_is_due_after_the_window() {
        let p = OidcTokenProvider::new("https://idp.invalid/token", "id", "secret");
        let t0 = Instant::now();
        let f = Fetched {
            token: "t".into(),
            fetched_at: t0,
            expires_at: Some(t0 + Duration::from_secs(100)),
        };
        assert!(!p.refresh_due(&f, t0 + Duration::from_secs(79)));
        assert!(p.refresh_due(&f, t0 + Duration::from_secs(80)));
        let p = p.with_refresh_window(0.5);
        assert!(p.refresh_due(&f, t0 + Duration::from_secs(50)));
        let unknown = Fetched {
            expires_at: None,
            ..f
        };
        assert!(p.refresh_due(&unknown, t0));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let p = OidcTokenProvider::new("https://idp.invalid/token", "id", "hunter2-secret")
            .with_parameter("audience", "aud-value")
            .with_extension("traceId", "trace-value");
        let dump = format!("{p:?}");
        assert!(!dump.contains("hunter2"), "{dump}");
        assert!(!dump.contains("aud-value"), "{dump}");
        assert!(!dump.contains("trace-value"), "{dump}");
        assert!(
            dump.contains("audience") && dump.contains("traceId"),
            "{dump}"
        );
    }
}
