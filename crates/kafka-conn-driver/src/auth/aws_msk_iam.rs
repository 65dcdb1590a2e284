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
use kafka_conn_core::sasl::{Mechanism, MechanismFactory, SaslError, Secret, Step};

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
/// A [`MechanismFactory`] for the core's SASL config: every
/// authentication and every KIP-368 re-authentication starts a new
/// exchange, which asks the credential source again and signs with the
/// current time, so rotated or refreshed credentials are picked up and an
/// expiring session is renewed (MSK ends a connection's session when its
/// credentials expire; with [`AwsCredentials::with_expiry`] the connection
/// re-authenticates before).
///
/// ```no_run
/// # use std::sync::Arc;
/// # use kafka_conn_driver::{AwsMskIam, ConnectConfig};
/// # use kafka_conn_driver::core::{Config, sasl::SaslConfig};
/// let host = "b-1.mycluster.abc123.c2.kafka.eu-west-1.amazonaws.com";
/// let msk = AwsMskIam::new("eu-west-1", host); // credentials: environment, then profile
/// let config = ConnectConfig::new(Config::new().with_sasl(SaslConfig::new(Arc::new(msk))));
/// ```
///
/// The broker answers with a JSON object of its own (`version`,
/// `request-id`), kept for diagnostics ([`AwsMskIam`] reports it in the
/// debug log).
#[derive(Clone)]
pub struct AwsMskIam {
    region: String,
    host: String,
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
            .field("host", &self.host)
            .field("credentials", &source)
            .finish()
    }
}

impl AwsMskIam {
    /// Signs for the broker `host` (its DNS name, as in the broker list)
    /// in `region`, with credentials from the environment or else the
    /// shared credentials file.
    pub fn new(region: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            host: host.into(),
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
    /// fresh), asked at every authentication; it must not block for long.
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

    /// The signed payload (JSON) for `credentials` at `time`: what the
    /// first client message carries.
    pub fn payload(
        &self,
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
        let url = format!("https://{}/?Action=kafka-cluster%3AConnect", self.host);
        let request = SignableRequest::new(
            "GET",
            url,
            std::iter::once(("host", self.host.as_str())),
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
        put("host", &self.host);
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

impl MechanismFactory for AwsMskIam {
    fn name(&self) -> &str {
        "AWS_MSK_IAM"
    }

    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError> {
        Ok(Box::new(Exchange {
            factory: self.clone(),
            sent: false,
            done: false,
            expires_at: None,
        }))
    }
}

/// One AWS_MSK_IAM exchange: the signed payload out, the broker's JSON in.
struct Exchange {
    factory: AwsMskIam,
    sent: bool,
    done: bool,
    expires_at: Option<Instant>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsMskIamExchange")
            .field("host", &self.factory.host)
            .field("sent", &self.sent)
            .field("done", &self.done)
            .finish()
    }
}

impl Mechanism for Exchange {
    fn name(&self) -> &str {
        "AWS_MSK_IAM"
    }

    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError> {
        match (self.sent, self.done, server_message) {
            (false, _, None) => {
                let credentials = self
                    .factory
                    .credentials()
                    .map_err(|e| SaslError::InvalidCredential(e.to_string()))?;
                // Signed now, for this authentication: MSK checks the date.
                let now = SystemTime::now();
                let payload = self
                    .factory
                    .payload(&credentials, now)
                    .map_err(|e| SaslError::InvalidCredential(e.to_string()))?;
                self.expires_at = credentials
                    .expires_at
                    .map(|exp| Instant::now() + exp.duration_since(now).unwrap_or(Duration::ZERO));
                self.sent = true;
                Ok(Step::Send(payload.into_bytes()))
            }
            // The broker's answer on success: a JSON object (version, request-id).
            (true, false, Some(answer)) => {
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
                self.done = true;
                Ok(Step::Done)
            }
            (false, _, Some(_)) => Err(SaslError::UnexpectedMessage(
                "AWS_MSK_IAM: server message before the client's",
            )),
            (true, false, None) => Err(SaslError::UnexpectedMessage(
                "AWS_MSK_IAM: payload sent, waiting for the broker",
            )),
            (true, true, _) => Err(SaslError::UnexpectedMessage(
                "AWS_MSK_IAM: exchange complete",
            )),
        }
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
    use super::*;

    fn payload_json(msk: &AwsMskIam, creds: &AwsCredentials) -> serde_json::Value {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        serde_json::from_str(&msk.payload(creds, t).unwrap()).unwrap()
    }

    #[test]
    fn payload_has_the_fields_msk_expects() {
        let msk = AwsMskIam::new("eu-west-1", "b-1.example.com");
        let creds = AwsCredentials::new("AKIDEXAMPLE", "secret");
        let p = payload_json(&msk, &creds);
        assert_eq!(p["version"], "2020_10_22");
        assert_eq!(p["host"], "b-1.example.com");
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
    fn mechanism_signs_then_reads_the_brokers_json() {
        let msk = AwsMskIam::new("eu-west-1", "b-1.example.com")
            .with_credentials(AwsCredentials::new("AKID", "secret"));
        assert_eq!(MechanismFactory::name(&msk), "AWS_MSK_IAM");
        let mut m = msk.start().unwrap();
        assert!(matches!(
            m.step(Some(b"{}")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        let Ok(Step::Send(first)) = m.step(None) else {
            panic!()
        };
        assert!(serde_json::from_slice::<serde_json::Value>(&first).is_ok());
        assert!(matches!(m.step(None), Err(SaslError::UnexpectedMessage(_))));
        assert!(matches!(
            m.step(Some(b"not json")),
            Err(SaslError::Malformed(_))
        ));
        let mut m = msk.start().unwrap();
        m.step(None).unwrap();
        assert_eq!(
            m.step(Some(br#"{"version":"2020_10_22","request-id":"x"}"#)),
            Ok(Step::Done)
        );
        assert!(!format!("{m:?}{msk:?}").contains("secret"));
    }

    #[test]
    fn missing_credentials_fail_the_exchange_clearly() {
        let msk = AwsMskIam::new("eu-west-1", "b-1.example.com")
            .with_credentials_provider(|| Err(AwsMskIamError::NoCredentials("none here".into())));
        let mut m = msk.start().unwrap();
        assert_eq!(
            m.step(None),
            Err(SaslError::InvalidCredential(
                "no AWS credentials: none here".into()
            ))
        );
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
