//! Amazon MSK's IAM SASL mechanism (`AWS_MSK_IAM`): see [`AwsMskIam`].

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use kafka_conn_core::sasl::{
    Credential, CredentialRequest, Mechanism, MechanismFactory, SaslConfig, SaslError, Secret, Step,
};

use crate::credentials::{CallbackError, CredentialContext, CredentialProvider};
use crate::runtime::BoxFuture;

/// The SASL mechanism name.
const MECHANISM: &str = "AWS_MSK_IAM";
/// The payload format version MSK brokers expect.
const VERSION: &str = "2020_10_22";
/// The IAM action a connection needs (`kafka-cluster:Connect`).
const ACTION: &str = "kafka-cluster:Connect";
/// The SigV4 service name of MSK's data plane.
const SERVICE: &str = "kafka-cluster";
/// How long the signature is valid (what AWS's own clients use).
const EXPIRES: Duration = Duration::from_secs(900);

/// AWS credentials: an access key, its secret, and for temporary
/// credentials a session token and expiry.
#[derive(Clone)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    expires_at: Option<SystemTime>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AwsCredentials {
    /// Long-term or temporary credentials.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: None,
            expires_at: None,
        }
    }

    /// The session token of temporary credentials (STS).
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(Secret::new(token));
        self
    }

    /// When temporary credentials expire: the connection re-authenticates
    /// (re-signs) before then, as MSK ends sessions whose credentials expired.
    #[must_use]
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (optional)
    /// `AWS_SESSION_TOKEN` from the environment.
    pub fn from_env() -> Result<Self, AwsMskIamError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(AwsMskIamError::NoCredentials(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set".into(),
            ));
        };
        let creds = Self::new(id, secret);
        Ok(match var("AWS_SESSION_TOKEN") {
            Some(t) => creds.with_session_token(t),
            None => creds,
        })
    }

    /// The static keys of a profile of the shared credentials file: the
    /// profile `profile`, else `AWS_PROFILE`, else `default`; the file
    /// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    pub fn from_profile(profile: Option<&str>) -> Result<Self, AwsMskIamError> {
        let profile = profile
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "default".into());
        let path = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")))
            .ok_or_else(|| {
                AwsMskIamError::NoCredentials("no HOME for ~/.aws/credentials".into())
            })?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            AwsMskIamError::NoCredentials(format!("cannot read {}: {e}", path.display()))
        })?;
        let section = parse_ini(&text).remove(&profile).ok_or_else(|| {
            AwsMskIamError::NoCredentials(format!("no profile [{profile}] in {}", path.display()))
        })?;
        let get = |k: &str| section.get(k).filter(|v| !v.is_empty()).cloned();
        let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key"))
        else {
            return Err(AwsMskIamError::NoCredentials(format!(
                "profile [{profile}] in {} has no aws_access_key_id and aws_secret_access_key \
                 (roles, SSO and processes need a credentials provider: AwsMskIam::with_credentials_provider)",
                path.display()
            )));
        };
        let creds = Self::new(id, secret);
        Ok(match get("aws_session_token") {
            Some(t) => creds.with_session_token(t),
            None => creds,
        })
    }
}

/// The shared credentials file's INI dialect: `[section]`, `key = value`,
/// `#` and `;` comment lines. Keys are lower-cased, as the AWS CLI reads them.
fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            sections.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    sections
}

type ProviderFn = dyn Fn() -> Result<AwsCredentials, AwsMskIamError> + Send + Sync;

/// Where the credentials come from, asked again for every authentication.
#[derive(Clone)]
enum Source {
    /// The environment, then the shared credentials file.
    Default,
    Environment,
    Profile(Option<String>),
    Static(AwsCredentials),
    Provider(Arc<ProviderFn>),
}

/// The `AWS_MSK_IAM` SASL mechanism of Amazon MSK: a JSON payload for the
/// action `kafka-cluster:Connect`, signed with AWS Signature Version 4 as a
/// presigned request (service `kafka-cluster`, the configured region, the
/// broker's host name), which the broker verifies with IAM.
///
/// Two halves, because the payload is signed for the host of each
/// connection while one config serves every broker of a cluster:
///
/// - the mechanism, [`AwsMskIam::sasl_config`], pure and runtime-free: it
///   asks the application for the signed payload
///   ([`CredentialRequest::Custom`] for `AWS_MSK_IAM`, with no data), sends
///   it and reads the broker's JSON answer (`version`, `request-id`, logged
///   at debug level);
/// - the signer, `AwsMskIam` itself, a [`CredentialProvider`]: it answers
///   with the payload signed now for the connection's
///   [`CredentialContext::host`], with the credentials its source has
///   now, on the runtime's blocking pool (a credentials file or a
///   provider of yours may block).
///
/// Every authentication and every KIP-368 re-authentication asks again,
/// so each is signed afresh and rotated or refreshed credentials are
/// picked up. MSK ends a connection's session when its credentials expire;
/// temporary credentials with an expiry ([`AwsCredentials::with_expiry`])
/// make the answer a [`Credential::CustomExpiring`], and the connection
/// re-authenticates before they expire.
///
/// ```no_run
/// # use kafka_conn_driver::{AwsMskIam, ConnectConfig};
/// # use kafka_conn_driver::core::Config;
/// // Credentials: the environment, then the shared credentials file.
/// let msk = AwsMskIam::new("eu-west-1");
/// let config = ConnectConfig::new(Config::new().with_sasl(AwsMskIam::sasl_config()))
///     .with_credential_provider(msk);
/// // connect("b-1.mycluster.abc123.c2.kafka.eu-west-1.amazonaws.com:9098", config) ...
/// ```
///
/// (MSK's IAM listeners speak TLS: add [`ConnectConfig::with_tls`](crate::ConnectConfig::with_tls).)
#[derive(Clone)]
pub struct AwsMskIam {
    region: String,
    user_agent: String,
    source: Source,
}

impl fmt::Debug for AwsMskIam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Default => "environment, then profile",
            Source::Environment => "environment",
            Source::Profile(_) => "profile",
            Source::Static(_) => "static",
            Source::Provider(_) => "provider",
        };
        f.debug_struct("AwsMskIam")
            .field("region", &self.region)
            .field("credentials", &source)
            .finish()
    }
}

impl AwsMskIam {
    /// Signs for the brokers of `region` (each connection for its own
    /// host, the name it was connected to), with credentials from the
    /// environment or else the shared credentials file.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            user_agent: concat!("kafka-conn/", env!("CARGO_PKG_VERSION")).into(),
            source: Source::Default,
        }
    }

    /// Only `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    #[must_use]
    pub fn with_environment_credentials(mut self) -> Self {
        self.source = Source::Environment;
        self
    }

    /// Only the shared credentials file, this profile (`None`: `AWS_PROFILE`
    /// or `default`).
    #[must_use]
    pub fn with_profile(mut self, profile: Option<&str>) -> Self {
        self.source = Source::Profile(profile.map(str::to_owned));
        self
    }

    /// Fixed credentials.
    #[must_use]
    pub fn with_credentials(mut self, credentials: AwsCredentials) -> Self {
        self.source = Source::Static(credentials);
        self
    }

    /// Credentials from the application (e.g. a cache the AWS SDK keeps
    /// fresh, or a call to STS), asked at every authentication; it runs on
    /// the runtime's blocking pool, so it may block.
    #[must_use]
    pub fn with_credentials_provider(
        mut self,
        provider: impl Fn() -> Result<AwsCredentials, AwsMskIamError> + Send + Sync + 'static,
    ) -> Self {
        self.source = Source::Provider(Arc::new(provider));
        self
    }

    /// The `user-agent` field of the payload.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The credentials for the next authentication.
    pub fn credentials(&self) -> Result<AwsCredentials, AwsMskIamError> {
        match &self.source {
            Source::Default => AwsCredentials::from_env().or_else(|env| {
                AwsCredentials::from_profile(None).map_err(|profile| {
                    let why = |e: AwsMskIamError| match e {
                        AwsMskIamError::NoCredentials(why) => why,
                        other => other.to_string(),
                    };
                    AwsMskIamError::NoCredentials(format!("{}; {}", why(env), why(profile)))
                })
            }),
            Source::Environment => AwsCredentials::from_env(),
            Source::Profile(p) => AwsCredentials::from_profile(p.as_deref()),
            Source::Static(c) => Ok(c.clone()),
            Source::Provider(f) => f(),
        }
    }

    /// The SASL settings of the mechanism (`AWS_MSK_IAM`), for
    /// [`kafka_conn_core::Config::with_sasl`]: it asks this provider for
    /// each payload.
    pub fn sasl_config() -> SaslConfig {
        SaslConfig::new(Arc::new(MskIamMechanism))
    }

    /// The region signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The signed payload (JSON) for the broker `host` with `credentials`
    /// at `time`: what the first client message carries.
    pub fn payload(
        &self,
        host: &str,
        credentials: &AwsCredentials,
        time: SystemTime,
    ) -> Result<String, AwsMskIamError> {
        let identity = Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.expose(),
            credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            credentials.expires_at,
            "kafka-conn",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(EXPIRES);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| AwsMskIamError::Signing(e.to_string()))?
            .into();
        // The presigned request: GET https://<host>/?Action=kafka-cluster%3AConnect,
        // host the only signed header, the hash of an empty body.
        let url = format!("https://{host}/?Action=kafka-cluster%3AConnect");
        let request = SignableRequest::new(
            "GET",
            url,
            std::iter::once(("host", host)),
            SignableBody::Bytes(&[]),
        )
        .map_err(|e| AwsMskIamError::Signing(e.to_string()))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| AwsMskIamError::Signing(e.to_string()))?
            .into_parts();
        let mut payload = serde_json::Map::new();
        let mut put = |k: &str, v: &str| {
            payload.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
        };
        put("version", VERSION);
        put("host", host);
        put("user-agent", &self.user_agent);
        put("action", ACTION);
        for (name, value) in instructions.params() {
            // X-Amz-Algorithm -> x-amz-algorithm, and so on: the payload's
            // fields are the presigned query's, lower-cased.
            put(&name.to_ascii_lowercase(), value);
        }
        Ok(serde_json::Value::Object(payload).to_string())
    }
}

impl CredentialProvider for AwsMskIam {
    /// Answers the mechanism's [`CredentialRequest::Custom`] with the
    /// payload signed now for `context.host`, on the blocking pool.
    fn provide(
        &self,
        request: CredentialRequest,
        context: CredentialContext,
    ) -> BoxFuture<'static, Result<Credential, CallbackError>> {
        if !matches!(&request, CredentialRequest::Custom { mechanism, .. } if mechanism == MECHANISM)
        {
            return super::not_provided("AWS MSK IAM", MECHANISM, &request);
        }
        let signer = self.clone();
        Box::pin(async move {
            let host = context.host.clone();
            let signed = context
                .spawn_blocking(move || signer.sign_now(&host))
                .await?;
            Ok(signed)
        })
    }
}

impl AwsMskIam {
    /// The credentials of this moment, and the payload signed with them
    /// for `host` now: MSK checks the signature's date.
    fn sign_now(&self, host: &str) -> Result<Credential, AwsMskIamError> {
        let credentials = self.credentials()?;
        let now = SystemTime::now();
        let data = Bytes::from(self.payload(host, &credentials, now)?);
        Ok(match credentials.expires_at {
            Some(at) => Credential::CustomExpiring {
                data,
                expires_at: Instant::now() + at.duration_since(now).unwrap_or(Duration::ZERO),
            },
            None => Credential::Custom(data),
        })
    }
}

/// The mechanism half of [`AwsMskIam`]: asks for the signed payload,
/// sends it, reads the broker's answer.
#[derive(Debug)]
struct MskIamMechanism;

impl MechanismFactory for MskIamMechanism {
    fn name(&self) -> &str {
        MECHANISM
    }

    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError> {
        Ok(Box::new(Exchange {
            stage: Stage::Start,
            expires_at: None,
        }))
    }
}

/// Where an exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    /// The signed payload was asked for.
    Asked,
    /// The payload was sent.
    Sent,
    Done,
}

/// One AWS_MSK_IAM exchange: the signed payload out, the broker's JSON in.
/// Holds no secret (the payload goes straight to the wire).
#[derive(Debug)]
struct Exchange {
    stage: Stage,
    expires_at: Option<Instant>,
}

impl Mechanism for Exchange {
    fn name(&self) -> &str {
        MECHANISM
    }

    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError> {
        match (self.stage, server_message) {
            (Stage::Start, None) => {
                self.stage = Stage::Asked;
                Ok(Step::NeedCredential(CredentialRequest::Custom {
                    mechanism: MECHANISM.to_owned(),
                    data: Bytes::new(),
                }))
            }
            // The broker's answer on success: a JSON object (version, request-id).
            (Stage::Sent, Some(answer)) => {
                let json: serde_json::Value = serde_json::from_slice(answer).map_err(|e| {
                    SaslError::Malformed(format!(
                        "AWS_MSK_IAM: the broker's answer is not JSON: {e}"
                    ))
                })?;
                if !json.is_object() {
                    return Err(SaslError::Malformed(
                        "AWS_MSK_IAM: the broker's answer is not a JSON object".into(),
                    ));
                }
                tracing::debug!(answer = %json, "AWS_MSK_IAM authenticated");
                self.stage = Stage::Done;
                Ok(Step::Done)
            }
            (Stage::Start, Some(_)) => Err(SaslError::UnexpectedMessage(
                "AWS_MSK_IAM: server message before the client's",
            )),
            (Stage::Asked, _) => Err(SaslError::UnexpectedMessage(
                "AWS_MSK_IAM: waiting for the signed payload",
            )),
            (Stage::Sent, None) => Err(SaslError::UnexpectedMessage(
                "AWS_MSK_IAM: payload sent, waiting for the broker",
            )),
            (Stage::Done, _) => Err(SaslError::UnexpectedMessage(
                "AWS_MSK_IAM: exchange complete",
            )),
        }
    }

    fn provide_credential(&mut self, credential: Credential) -> Result<Step, SaslError> {
        let (data, expires_at) = match (self.stage, credential) {
            (Stage::Asked, Credential::Custom(data)) => (data, None),
            (Stage::Asked, Credential::CustomExpiring { data, expires_at }) => {
                (data, Some(expires_at))
            }
            _ => return Err(SaslError::UnexpectedCredential),
        };
        if data.is_empty() {
            return Err(SaslError::InvalidCredential(
                "AWS_MSK_IAM: the signed payload is empty".into(),
            ));
        }
        self.stage = Stage::Sent;
        self.expires_at = expires_at;
        Ok(Step::Send(data.to_vec()))
    }

    fn credential_expiry(&self) -> Option<Instant> {
        self.expires_at
    }
}

/// Why no AWS_MSK_IAM payload could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AwsMskIamError {
    /// No credentials where they were looked for.
    #[error("no AWS credentials: {0}")]
    NoCredentials(String),
    /// The signer refused its input.
    #[error("cannot sign the AWS_MSK_IAM payload: {0}")]
    Signing(String),
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::runtime::tests::block_on;

    const HOST: &str = "b-1.example.com";

    fn payload_json(msk: &AwsMskIam, creds: &AwsCredentials) -> serde_json::Value {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        serde_json::from_str(&msk.payload(HOST, creds, t).unwrap()).unwrap()
    }

    /// What the provider answers a connection to `host`.
    fn answer(msk: &AwsMskIam, host: &str) -> Result<Credential, String> {
        let context = CredentialContext::new(host, SocketAddr::from(([10, 0, 0, 1], 9098)));
        let request = CredentialRequest::Custom {
            mechanism: MECHANISM.to_owned(),
            data: Bytes::new(),
        };
        block_on(msk.provide(request, context))
            .expect("no panic")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn payload_has_the_fields_msk_expects() {
        let msk = AwsMskIam::new("eu-west-1");
        let creds = AwsCredentials::new("AKIDEXAMPLE", "secret");
        let p = payload_json(&msk, &creds);
        assert_eq!(p["version"], "2020_10_22");
        assert_eq!(p["host"], HOST);
        assert_eq!(p["action"], "kafka-cluster:Connect");
        assert_eq!(p["x-amz-algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            p["x-amz-credential"],
            "AKIDEXAMPLE/20231114/eu-west-1/kafka-cluster/aws4_request"
        );
        assert_eq!(p["x-amz-date"], "20231114T221320Z");
        assert_eq!(p["x-amz-expires"], "900");
        assert_eq!(p["x-amz-signedheaders"], "host");
        assert_eq!(p["x-amz-signature"].as_str().unwrap().len(), 64);
        assert!(p.get("x-amz-security-token").is_none());
        let p = payload_json(&msk, &creds.with_session_token("tok"));
        assert_eq!(p["x-amz-security-token"], "tok");
    }

    #[test]
    fn one_provider_signs_for_the_host_of_each_connection() {
        let msk = AwsMskIam::new("eu-west-1")
            .with_credentials(AwsCredentials::new("AKID", "secret-value"));
        for host in ["b-1.example.com", "b-2.example.com"] {
            let Ok(Credential::Custom(payload)) = answer(&msk, host) else {
                panic!("{host}")
            };
            let p: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(p["host"], host);
        }
        // Temporary credentials: the answer carries their expiry.
        let expiring = msk.with_credentials(
            AwsCredentials::new("ASIA", "secret")
                .with_expiry(SystemTime::now() + Duration::from_secs(600)),
        );
        let Ok(Credential::CustomExpiring { expires_at, .. }) = answer(&expiring, HOST) else {
            panic!()
        };
        let left = expires_at - Instant::now();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        // Asked for something else: says what to configure.
        let context = CredentialContext::new(HOST, SocketAddr::from(([10, 0, 0, 1], 9098)));
        let e = block_on(expiring.provide(CredentialRequest::OAuthBearerToken, context))
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AWS_MSK_IAM") && e.contains("OAUTHBEARER"),
            "{e}"
        );
    }

    #[test]
    fn mechanism_asks_sends_then_reads_the_brokers_json() {
        let sasl = AwsMskIam::sasl_config();
        assert_eq!(sasl.mechanism(), "AWS_MSK_IAM");
        let factory = MskIamMechanism;
        let mut m = factory.start().unwrap();
        assert!(matches!(
            m.step(Some(b"{}")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        let mut m = factory.start().unwrap();
        assert_eq!(
            m.step(None),
            Ok(Step::NeedCredential(CredentialRequest::Custom {
                mechanism: "AWS_MSK_IAM".into(),
                data: Bytes::new(),
            }))
        );
        assert!(matches!(m.step(None), Err(SaslError::UnexpectedMessage(_))));
        assert_eq!(
            m.provide_credential(Credential::OAuthBearer(
                kafka_conn_core::sasl::OAuthBearerToken::new("t")
            )),
            Err(SaslError::UnexpectedCredential)
        );
        let at = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            m.provide_credential(Credential::CustomExpiring {
                data: Bytes::from_static(b"{\"signed\":1}"),
                expires_at: at,
            }),
            Ok(Step::Send(b"{\"signed\":1}".to_vec()))
        );
        assert_eq!(m.credential_expiry(), Some(at));
        assert!(matches!(
            m.step(Some(b"not json")),
            Err(SaslError::Malformed(_))
        ));
        let mut m = factory.start().unwrap();
        m.step(None).unwrap();
        assert!(matches!(
            m.provide_credential(Credential::Custom(Bytes::new())),
            Err(SaslError::InvalidCredential(_))
        ));
        let mut m = factory.start().unwrap();
        m.step(None).unwrap();
        m.provide_credential(Credential::Custom(Bytes::from_static(b"{}")))
            .unwrap();
        assert_eq!(m.credential_expiry(), None);
        assert_eq!(
            m.step(Some(br#"{"version":"2020_10_22","request-id":"x"}"#)),
            Ok(Step::Done)
        );
    }

    #[test]
    fn missing_credentials_fail_the_exchange_clearly() {
        let msk = AwsMskIam::new("eu-west-1")
            .with_credentials_provider(|| Err(AwsMskIamError::NoCredentials("none here".into())));
        assert_eq!(
            answer(&msk, HOST),
            Err("no AWS credentials: none here".into())
        );
        assert!(!format!("{msk:?}").contains("none here"));
    }

    #[test]
    fn ini_profiles() {
        let s = parse_ini(
            "# c\n[default]\naws_access_key_id = A\nAWS_SECRET_ACCESS_KEY=B\n; c\n[other]\naws_access_key_id=C\n",
        );
        assert_eq!(s["default"]["aws_access_key_id"], "A");
        assert_eq!(s["default"]["aws_secret_access_key"], "B");
        assert_eq!(s["other"]["aws_access_key_id"], "C");
    }
}
