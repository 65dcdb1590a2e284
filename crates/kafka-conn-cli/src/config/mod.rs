//! The configuration files operators already have: a Java client's
//! `client.properties` and librdkafka's configuration (as `kcat -F` reads
//! it), both `key=value` files in the Java `.properties` syntax.
//!
//! [`read_files`] reads them (later files override earlier ones) with the
//! `java-properties` crate, which implements the format's escapes,
//! `key value` / `key:value` separators, `!` and `#` comments and
//! backslash continuation lines. [`interpret`] turns the keys that matter
//! for connecting into [`FileSettings`], and lists every other key (never
//! its value) in the [`ConfigReport`], so nothing is silently ignored.

pub(crate) mod jaas;
pub(crate) mod keystore;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{Secret, SecurityProtocol};

/// One `key=value` as read, with where it came from.
#[derive(Clone)]
pub(crate) struct Entry {
    /// The value (may be a secret: never printed unless the key is known
    /// to be harmless).
    value: String,
    /// The file.
    file: PathBuf,
    /// The line where the entry starts (1-based).
    line: usize,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Every key of every file; a later file's key replaces an earlier one.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawConfig {
    files: Vec<PathBuf>,
    entries: BTreeMap<String, Entry>,
}

/// A configuration file that cannot be used; a usage error (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConfigError(pub(crate) String);

/// Reads the files in order.
pub(crate) fn read_files(paths: &[PathBuf]) -> Result<RawConfig, ConfigError> {
    let mut raw = RawConfig::default();
    for path in paths {
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        // UTF-8, as librdkafka reads its files and as most files are
        // written today (Java's Properties.load(InputStream) would read
        // ISO-8859-1; the two agree on ASCII).
        let mut iter =
            java_properties::PropertiesIter::new_with_encoding(&bytes[..], encoding_rs::UTF_8);
        for line in iter.by_ref() {
            // The crate's messages name the problem and the line, never the text.
            let line = line.map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            let number = line.line_number();
            if let java_properties::LineContent::KVPair(key, value) = line.consume_content() {
                raw.entries.insert(
                    key,
                    Entry {
                        value,
                        file: path.clone(),
                        line: number,
                    },
                );
            }
        }
        raw.files.push(path.clone());
    }
    Ok(raw)
}

impl RawConfig {
    /// Whether no file was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }
}

/// A key kconn used, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UsedKey {
    key: String,
    file: String,
    line: usize,
    /// The value, or `null` for a secret.
    value: Option<String>,
    /// The command-line option that overrides it, if one was given.
    overridden_by: Option<&'static str>,
}

impl UsedKey {
    /// The key.
    #[cfg(test)]
    pub(crate) fn key_name(&self) -> &str {
        &self.key
    }

    /// The option that overrides it.
    #[cfg(test)]
    pub(crate) fn overridden(&self) -> Option<&'static str> {
        self.overridden_by
    }
}

/// Why a key was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UnusedReason {
    /// It affects TLS or SASL, and kconn does not support it (yet).
    NotSupported,
    /// It is not about connecting (producer, consumer, serialisation...),
    /// or kconn does not know it.
    NotForConnecting,
}

/// A key kconn did not use.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UnusedKey {
    key: String,
    file: String,
    line: usize,
    reason: UnusedReason,
    /// A known key with a similar name (a typo?).
    did_you_mean: Option<&'static str>,
}

/// The login module of `sasl.jaas.config`, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct JaasReport {
    module: String,
    flag: jaas::Flag,
    /// Option values; secrets (passwords, secrets, tokens) are `null`.
    options: BTreeMap<String, Option<String>>,
}

/// What the configuration files said, for the text and JSON output.
/// Holds no secret.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ConfigReport {
    /// The files, in the order read.
    pub(crate) files: Vec<String>,
    /// The keys kconn used.
    pub(crate) used: Vec<UsedKey>,
    /// The keys it did not use.
    pub(crate) unused: Vec<UnusedKey>,
    /// The `sasl.jaas.config` login module, when there is one.
    pub(crate) jaas: Option<JaasReport>,
    /// What was read from certificate stores (e.g. "ssl.truststore.location: PKCS12, 1 CA certificate(s)").
    pub(crate) loaded: Vec<String>,
    /// Notes on what the files mean for the connection.
    pub(crate) warnings: Vec<String>,
}

impl ConfigReport {
    /// Marks `key` (if used) as overridden by a command-line `option`.
    pub(crate) fn overridden(&mut self, keys: &[&str], option: &'static str) {
        for u in self
            .used
            .iter_mut()
            .filter(|u| keys.contains(&u.key.as_str()))
        {
            u.overridden_by = Some(option);
        }
    }

    /// The lines shown before a text report (and on stderr by the
    /// commands that print tables).
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let used: Vec<String> = self
            .used
            .iter()
            .map(|u| {
                let mut s = match &u.value {
                    Some(v) if v.len() <= 80 => format!("{}={v}", u.key),
                    Some(_) => format!("{}=(long value)", u.key),
                    None => format!("{}=(secret)", u.key),
                };
                if let Some(by) = u.overridden_by {
                    s.push_str(&format!(" (overridden by {by})"));
                }
                s
            })
            .collect();
        lines.push(format!(
            "config {}: {}",
            self.files.join(", "),
            if used.is_empty() {
                "no key kconn uses".to_owned()
            } else {
                used.join(", ")
            }
        ));
        if let Some(j) = &self.jaas {
            let options: Vec<String> = j
                .options
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => format!("{k}=(secret)"),
                })
                .collect();
            lines.push(format!(
                "  sasl.jaas.config: {} {} {}",
                j.module,
                serde_json::to_value(j.flag)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                options.join(" ")
            ));
        }
        let mut not_supported = Vec::new();
        let mut not_used = Vec::new();
        for u in &self.unused {
            let mut s = format!("{} ({}:{})", u.key, u.file, u.line);
            if let Some(m) = u.did_you_mean {
                s.push_str(&format!(" — did you mean {m}?"));
            }
            match u.reason {
                UnusedReason::NotSupported => not_supported.push(s),
                UnusedReason::NotForConnecting => not_used.push(s),
            }
        }
        if !not_supported.is_empty() {
            lines.push(format!(
                "  ⚠ not supported by kconn (yet), ignored: {}",
                not_supported.join(", ")
            ));
        }
        if !not_used.is_empty() {
            lines.push(format!(
                "  ⚠ not used by kconn (not about connecting, or unknown): {}",
                not_used.join(", ")
            ));
        }
        for l in &self.loaded {
            lines.push(format!("  · loaded {l}"));
        }
        for w in &self.warnings {
            lines.push(format!("  ⚠ {w}"));
        }
        lines
    }

    /// The warnings for the JSON envelope: unused keys and notes.
    pub(crate) fn warning_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unused
            .iter()
            .map(|u| {
                let why = match u.reason {
                    UnusedReason::NotSupported => "not supported by kconn (yet), ignored",
                    UnusedReason::NotForConnecting => "not used by kconn",
                };
                match u.did_you_mean {
                    Some(m) => format!(
                        "{} ({}:{}): {why}; did you mean {m}?",
                        u.key, u.file, u.line
                    ),
                    None => format!("{} ({}:{}): {why}", u.key, u.file, u.line),
                }
            })
            .collect();
        out.extend(self.warnings.iter().cloned());
        out
    }
}

/// A SASL mechanism as a file names it (any, also those kconn lacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MechanismName(pub(crate) String);

/// Where an OAUTHBEARER token comes from, per the files.
#[derive(Debug, Clone)]
pub(crate) enum OAuthSource {
    /// An unsecured JWT built locally, as the Java client's default
    /// `OAuthBearerUnsecuredLoginCallbackHandler` and librdkafka's
    /// `enable.sasl.oauthbearer.unsecure.jwt` do.
    Unsecured(UnsecuredJwt),
    /// OAuth 2 client credentials from a token endpoint (KIP-768): the
    /// Java client's `OAuthBearerLoginCallbackHandler`, librdkafka's
    /// `sasl.oauthbearer.method=oidc`.
    Oidc(OidcSpec),
    /// A custom callback handler: not supported.
    Unsupported(String),
}

/// Where an OIDC token comes from, as the files say.
#[derive(Debug, Clone, Default)]
pub(crate) struct OidcSpec {
    /// `sasl.oauthbearer.token.endpoint.url`.
    pub(crate) endpoint: Option<String>,
    /// JAAS `clientId` / `sasl.oauthbearer.client.id`.
    pub(crate) client_id: Option<String>,
    /// JAAS `clientSecret` / `sasl.oauthbearer.client.secret` (never printed).
    pub(crate) client_secret: Option<Secret>,
    /// JAAS `scope` / `sasl.oauthbearer.scope`.
    pub(crate) scope: Option<String>,
}

/// The claims of an unsecured JWT (`alg: none`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UnsecuredJwt {
    /// The name of the principal claim (`sub` by default).
    pub(crate) principal_claim: String,
    /// String claims, principal included.
    pub(crate) string_claims: BTreeMap<String, String>,
    /// Number claims.
    pub(crate) number_claims: BTreeMap<String, f64>,
    /// List claims (e.g. `scope`).
    pub(crate) list_claims: BTreeMap<String, Vec<String>>,
    /// Lifetime in seconds (3600 by default).
    pub(crate) lifetime_s: u64,
    /// SASL extensions (KIP-342).
    pub(crate) extensions: BTreeMap<String, String>,
}

impl UnsecuredJwt {
    /// The token: base64url header and payload, and an empty signature.
    pub(crate) fn token(&self, now_unix: f64) -> String {
        use base64::Engine as _;
        let mut claims = serde_json::Map::new();
        for (k, v) in &self.string_claims {
            claims.insert(k.clone(), v.clone().into());
        }
        for (k, v) in &self.number_claims {
            claims.insert(k.clone(), (*v).into());
        }
        for (k, v) in &self.list_claims {
            claims.insert(k.clone(), v.clone().into());
        }
        claims.insert("iat".into(), now_unix.floor().into());
        claims.insert(
            "exp".into(),
            (now_unix.floor() + self.lifetime_s as f64).into(),
        );
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none"}"#),
            b64.encode(serde_json::Value::Object(claims).to_string())
        )
    }
}

/// What the Kerberos login module says (reported; GSSAPI is not yet
/// something kconn can do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct KerberosReport {
    /// `principal`.
    pub(crate) principal: Option<String>,
    /// `keyTab`.
    pub(crate) keytab: Option<String>,
    /// `useKeyTab`.
    pub(crate) use_keytab: bool,
    /// `useTicketCache`.
    pub(crate) use_ticket_cache: bool,
    /// `serviceName` or `sasl.kerberos.service.name`.
    pub(crate) service_name: Option<String>,
}

/// A truststore as configured.
#[derive(Debug, Clone)]
pub(crate) enum TrustSpec {
    /// A store file: PEM or PKCS#12 (JKS is refused when loaded).
    File {
        /// The file.
        path: PathBuf,
        /// Its password.
        password: Option<Secret>,
        /// The declared `ssl.truststore.type`, if any.
        declared: Option<String>,
        /// The key that named it.
        key: &'static str,
    },
    /// A directory of PEM files (librdkafka's `ssl.ca.location`).
    Dir(PathBuf),
    /// PEM text in the configuration itself.
    Inline(String),
}

/// A client certificate and key as configured.
#[derive(Debug, Clone)]
pub(crate) enum IdentitySpec {
    /// A keystore: PKCS#12, or PEM with key and chain in one file.
    Store {
        /// The file.
        path: PathBuf,
        /// Its password.
        password: Option<Secret>,
        /// The declared `ssl.keystore.type`.
        declared: Option<String>,
    },
    /// Separate PEM certificate and key files (librdkafka).
    Files {
        /// `ssl.certificate.location`.
        cert: PathBuf,
        /// `ssl.key.location`.
        key: PathBuf,
    },
    /// PEM text in the configuration (`ssl.keystore.certificate.chain` +
    /// `ssl.keystore.key`, or librdkafka's `ssl.certificate.pem` +
    /// `ssl.key.pem`).
    Inline {
        /// The certificate chain.
        chain: String,
        /// The key.
        key: Secret,
    },
}

/// What the files say about connecting.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileSettings {
    /// `bootstrap.servers` / `metadata.broker.list`.
    pub(crate) bootstrap: Option<Vec<String>>,
    /// `security.protocol`.
    pub(crate) protocol: Option<SecurityProtocol>,
    /// `sasl.mechanism` / `sasl.mechanisms`.
    pub(crate) mechanism: Option<MechanismName>,
    /// From the JAAS line or `sasl.username`.
    pub(crate) username: Option<String>,
    /// From the JAAS line or `sasl.password`.
    pub(crate) password: Option<Secret>,
    /// How to get an OAUTHBEARER token.
    pub(crate) oauth: Option<OAuthSource>,
    /// The Kerberos settings, when there are some.
    pub(crate) kerberos: Option<KerberosReport>,
    /// The JAAS login module's short name, when there is one.
    pub(crate) jaas_module: Option<String>,
    /// Whether the JAAS line asks for delegation-token SCRAM (`tokenauth`).
    pub(crate) scram_tokenauth: bool,
    /// The truststore.
    pub(crate) trust: Option<TrustSpec>,
    /// The client identity.
    pub(crate) identity: Option<IdentitySpec>,
    /// `ssl.key.password`.
    pub(crate) key_password: Option<Secret>,
    /// `ssl.endpoint.identification.algorithm` (false when empty or `none`).
    pub(crate) verify_hostname: Option<bool>,
    /// librdkafka's `enable.ssl.certificate.verification`.
    pub(crate) verify_certificate: Option<bool>,
    /// Whether any `ssl.*` key is set (for the "SSL keys but PLAINTEXT" note).
    pub(crate) has_ssl_keys: bool,
    /// Whether any `sasl.*` key is set.
    pub(crate) has_sasl_keys: bool,
    /// `client.id`.
    pub(crate) client_id: Option<String>,
    /// `request.timeout.ms` / `socket.timeout.ms`.
    pub(crate) request_timeout: Option<Duration>,
    /// `socket.connection.setup.timeout.ms`.
    pub(crate) setup_timeout: Option<Duration>,
    /// `connections.max.idle.ms`.
    pub(crate) idle_timeout: Option<Duration>,
    /// librdkafka's `broker.address.family`.
    pub(crate) address_family: Option<crate::cli::FamilyArg>,
    /// librdkafka's `socket.keepalive.enable`.
    pub(crate) keepalive: Option<bool>,
    /// `awsProfileName` of MSK's `IAMLoginModule`.
    pub(crate) aws_profile: Option<String>,
    /// What the report shows.
    pub(crate) report: ConfigReport,
}

/// Keys kconn reads, and whether their value may be shown.
const USED_KEYS: &[(&str, Show)] = &[
    ("bootstrap.servers", Show::Value),
    ("metadata.broker.list", Show::Value),
    ("security.protocol", Show::Value),
    ("sasl.mechanism", Show::Value),
    ("sasl.mechanisms", Show::Value),
    ("sasl.jaas.config", Show::Jaas),
    ("sasl.username", Show::Value),
    ("sasl.password", Show::Secret),
    ("sasl.kerberos.service.name", Show::Value),
    ("sasl.kerberos.principal", Show::Value),
    ("sasl.kerberos.keytab", Show::Value),
    ("sasl.login.callback.handler.class", Show::Value),
    ("sasl.oauthbearer.token.endpoint.url", Show::Value),
    ("sasl.oauthbearer.method", Show::Value),
    ("sasl.oauthbearer.config", Show::Secret),
    ("sasl.oauthbearer.client.id", Show::Value),
    ("sasl.oauthbearer.client.secret", Show::Secret),
    ("sasl.oauthbearer.scope", Show::Value),
    ("sasl.client.callback.handler.class", Show::Value),
    ("enable.sasl.oauthbearer.unsecure.jwt", Show::Value),
    ("ssl.truststore.location", Show::Value),
    ("ssl.truststore.type", Show::Value),
    ("ssl.truststore.password", Show::Secret),
    ("ssl.truststore.certificates", Show::Pem),
    ("ssl.keystore.location", Show::Value),
    ("ssl.keystore.type", Show::Value),
    ("ssl.keystore.password", Show::Secret),
    ("ssl.keystore.certificate.chain", Show::Pem),
    ("ssl.keystore.key", Show::Secret),
    ("ssl.key.password", Show::Secret),
    ("ssl.ca.location", Show::Value),
    ("ssl.ca.pem", Show::Pem),
    ("ssl.certificate.location", Show::Value),
    ("ssl.certificate.pem", Show::Pem),
    ("ssl.key.location", Show::Value),
    ("ssl.key.pem", Show::Secret),
    ("ssl.endpoint.identification.algorithm", Show::Value),
    ("enable.ssl.certificate.verification", Show::Value),
    ("client.id", Show::Value),
    ("request.timeout.ms", Show::Value),
    ("socket.timeout.ms", Show::Value),
    ("socket.connection.setup.timeout.ms", Show::Value),
    ("connections.max.idle.ms", Show::Value),
    ("broker.address.family", Show::Value),
    ("socket.keepalive.enable", Show::Value),
];

/// How a used key's value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    Value,
    Secret,
    /// PEM text: shown as a count of certificates.
    Pem,
    /// The JAAS line: shown parsed, secrets left out.
    Jaas,
}

/// Prefixes of keys that change how a client connects: not using one is
/// "not supported", not "not about connecting".
const CONNECTION_PREFIXES: &[&str] = &["ssl.", "sasl.", "security.", "enable.ssl.", "enable.sasl."];

fn parse_protocol(text: &str) -> Option<SecurityProtocol> {
    match text.trim().to_ascii_uppercase().as_str() {
        "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
        "SSL" => Some(SecurityProtocol::Ssl),
        "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
        "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
        _ => None,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Whether a JAAS option's value is a secret.
fn secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("token") && !k.contains("tokenauth")
}

/// The Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn similar_key(key: &str) -> Option<&'static str> {
    USED_KEYS
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| *k != key)
        .map(|k| (distance(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

struct Reader<'a> {
    raw: &'a RawConfig,
    out: FileSettings,
}

impl Reader<'_> {
    fn where_(&self, key: &str) -> String {
        self.raw
            .get(key)
            .map_or_else(String::new, |e| format!("{}:{}", e.file.display(), e.line))
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.raw.get(key).map(|e| e.value.as_str())
    }

    /// A non-empty value.
    fn text(&self, key: &str) -> Option<String> {
        self.value(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    fn secret(&self, key: &str) -> Option<Secret> {
        self.value(key)
            .filter(|v| !v.is_empty())
            .map(|v| Secret::from(v.to_owned()))
    }

    fn error(&self, key: &str, what: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("{key} ({}): {what}", self.where_(key)))
    }

    fn millis(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(v) = self.text(key) else {
            return Ok(None);
        };
        v.parse::<u64>()
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|_| self.error(key, format!("{v:?} is not a number of milliseconds")))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some(v) = self.text(key) else {
            return Ok(None);
        };
        parse_bool(&v)
            .map(Some)
            .ok_or_else(|| self.error(key, format!("{v:?} is not true or false")))
    }
}

/// Turns the files' keys into settings and a report.
pub(crate) fn interpret(raw: &RawConfig) -> Result<FileSettings, ConfigError> {
    let mut r = Reader {
        raw,
        out: FileSettings::default(),
    };
    let bootstrap = r
        .text("bootstrap.servers")
        .or_else(|| r.text("metadata.broker.list"));
    r.out.bootstrap = bootstrap.map(|b| {
        b.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            // librdkafka accepts a scheme prefix (`PLAINTEXT://host:9092`).
            .map(|s| s.split_once("://").map_or(s, |(_, rest)| rest).to_owned())
            .collect()
    });
    if let Some(p) = r.text("security.protocol") {
        r.out.protocol = Some(parse_protocol(&p).ok_or_else(|| {
            r.error(
                "security.protocol",
                format!("{p:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
            )
        })?);
    }
    r.out.mechanism = r
        .text("sasl.mechanism")
        .or_else(|| r.text("sasl.mechanisms"))
        .map(|m| MechanismName(m.to_ascii_uppercase()));
    r.out.client_id = r.text("client.id");
    r.out.request_timeout = match r.millis("request.timeout.ms")? {
        Some(d) => Some(d),
        None => r.millis("socket.timeout.ms")?,
    };
    r.out.setup_timeout = r.millis("socket.connection.setup.timeout.ms")?;
    r.out.idle_timeout = r.millis("connections.max.idle.ms")?;
    if let Some(f) = r.text("broker.address.family") {
        r.out.address_family = Some(match f.trim().to_ascii_lowercase().as_str() {
            "any" => crate::cli::FamilyArg::Any,
            "v4" => crate::cli::FamilyArg::V4,
            "v6" => crate::cli::FamilyArg::V6,
            _ => {
                return Err(r.error(
                    "broker.address.family",
                    format!("{f:?} is not any, v4 or v6"),
                ))
            }
        });
    }
    r.out.keepalive = r.bool("socket.keepalive.enable")?;
    read_sasl(&mut r)?;
    read_tls(&mut r)?;
    r.out.has_ssl_keys = raw.entries.keys().any(|k| k.starts_with("ssl."));
    r.out.has_sasl_keys = raw.entries.keys().any(|k| k.starts_with("sasl."));
    report(&mut r);
    Ok(r.out)
}

fn read_sasl(r: &mut Reader<'_>) -> Result<(), ConfigError> {
    r.out.username = r.text("sasl.username");
    r.out.password = r.secret("sasl.password");
    let service = r.text("sasl.kerberos.service.name");
    if let Some(line) = r.value("sasl.jaas.config").map(str::to_owned) {
        let entry = jaas::parse(&line).map_err(|e| r.error("sasl.jaas.config", e))?;
        r.out.jaas_module = Some(entry.short_name().to_owned());
        match entry.short_name() {
            "PlainLoginModule" | "ScramLoginModule" => {
                r.out.username = entry
                    .option("username")
                    .map(str::to_owned)
                    .or(r.out.username.take());
                r.out.password = entry
                    .option("password")
                    .map(|p| Secret::from(p.to_owned()))
                    .or(r.out.password.take());
                r.out.scram_tokenauth =
                    entry.option("tokenauth").and_then(parse_bool) == Some(true);
            }
            "OAuthBearerLoginModule" => {
                r.out.oauth = Some(oauth_from_jaas(r, &entry)?);
            }
            // Amazon's aws-msk-iam-auth library.
            "IAMLoginModule" => {
                r.out.aws_profile = entry.option("awsProfileName").map(str::to_owned);
            }
            "Krb5LoginModule" => {
                r.out.kerberos = Some(KerberosReport {
                    principal: entry.option("principal").map(str::to_owned),
                    keytab: entry.option("keyTab").map(str::to_owned),
                    use_keytab: entry.option("useKeyTab").and_then(parse_bool) == Some(true),
                    use_ticket_cache: entry.option("useTicketCache").and_then(parse_bool)
                        == Some(true),
                    service_name: service
                        .clone()
                        .or_else(|| entry.option("serviceName").map(str::to_owned)),
                });
            }
            _ => {}
        }
        r.out.report.jaas = Some(JaasReport {
            module: entry.module.clone(),
            flag: entry.flag,
            options: entry
                .options
                .iter()
                .map(|(k, v)| (k.clone(), (!secret_option(k)).then(|| v.clone())))
                .collect(),
        });
    }
    // librdkafka's Kerberos keys.
    if r.out.kerberos.is_none()
        && (r.value("sasl.kerberos.principal").is_some()
            || r.value("sasl.kerberos.keytab").is_some())
    {
        r.out.kerberos = Some(KerberosReport {
            principal: r.text("sasl.kerberos.principal"),
            keytab: r.text("sasl.kerberos.keytab"),
            use_keytab: r.value("sasl.kerberos.keytab").is_some(),
            use_ticket_cache: false,
            service_name: service.clone(),
        });
    }
    // librdkafka's unsecured JWT.
    if r.out.oauth.is_none() {
        if r.text("sasl.oauthbearer.method")
            .is_some_and(|m| m.eq_ignore_ascii_case("oidc"))
        {
            r.out.oauth = Some(OAuthSource::Oidc(OidcSpec {
                endpoint: r.text("sasl.oauthbearer.token.endpoint.url"),
                client_id: r.text("sasl.oauthbearer.client.id"),
                client_secret: r.secret("sasl.oauthbearer.client.secret"),
                scope: r.text("sasl.oauthbearer.scope"),
            }));
        } else if let Some(config) = r.value("sasl.oauthbearer.config").map(str::to_owned) {
            r.out.oauth = Some(OAuthSource::Unsecured(oauth_from_librdkafka(r, &config)?));
        }
    }
    Ok(())
}

fn oauth_from_jaas(r: &Reader<'_>, entry: &jaas::JaasEntry) -> Result<OAuthSource, ConfigError> {
    if let Some(handler) = r.text("sasl.login.callback.handler.class") {
        // The Java client's OIDC handler (Kafka 3.1+, KIP-768; moved from
        // the .secured package in 3.4).
        if handler.ends_with(".OAuthBearerLoginCallbackHandler") {
            return Ok(OAuthSource::Oidc(OidcSpec {
                endpoint: r.text("sasl.oauthbearer.token.endpoint.url"),
                client_id: entry.option("clientId").map(str::to_owned),
                client_secret: entry
                    .option("clientSecret")
                    .map(|s| Secret::from(s.to_owned())),
                scope: entry.option("scope").map(str::to_owned),
            }));
        }
        if !handler.ends_with("OAuthBearerUnsecuredLoginCallbackHandler") {
            return Ok(OAuthSource::Unsupported(format!(
                "sasl.login.callback.handler.class={handler} gets tokens from a custom callback handler"
            )));
        }
    }
    let mut jwt = UnsecuredJwt {
        principal_claim: "sub".into(),
        lifetime_s: 3600,
        ..UnsecuredJwt::default()
    };
    let bad = |key: &str, why: &str| {
        r.error(
            "sasl.jaas.config",
            format!("OAuthBearerLoginModule option {key}: {why}"),
        )
    };
    for (key, value) in &entry.options {
        if let Some(name) = key.strip_prefix("unsecuredLoginStringClaim_") {
            jwt.string_claims.insert(name.to_owned(), value.clone());
        } else if let Some(name) = key.strip_prefix("unsecuredLoginNumberClaim_") {
            let n = value.parse().map_err(|_| bad(key, "not a number"))?;
            jwt.number_claims.insert(name.to_owned(), n);
        } else if let Some(name) = key.strip_prefix("unsecuredLoginListClaim_") {
            // The first character is the separator (Kafka's convention).
            let mut chars = value.chars();
            let list = match chars.next() {
                Some(sep) => chars.as_str().split(sep).map(str::to_owned).collect(),
                None => Vec::new(),
            };
            jwt.list_claims.insert(name.to_owned(), list);
        } else if let Some(name) = key.strip_prefix("unsecuredLoginExtension_") {
            jwt.extensions.insert(name.to_owned(), value.clone());
        } else if key == "unsecuredLoginLifetimeSeconds" {
            jwt.lifetime_s = value
                .parse()
                .map_err(|_| bad(key, "not a whole number of seconds"))?;
        } else if key == "unsecuredLoginPrincipalClaimName" {
            jwt.principal_claim.clone_from(value);
        }
    }
    if !jwt.string_claims.contains_key(&jwt.principal_claim) {
        return Err(r.error(
            "sasl.jaas.config",
            format!(
                "OAuthBearerLoginModule without a principal: set unsecuredLoginStringClaim_{}=\"...\"",
                jwt.principal_claim
            ),
        ));
    }
    Ok(OAuthSource::Unsecured(jwt))
}

/// librdkafka's `sasl.oauthbearer.config`: `principal=... [scope=a,b]
/// [lifeSeconds=N] [extension_NAME=value ...]`, separated by blanks.
fn oauth_from_librdkafka(r: &Reader<'_>, config: &str) -> Result<UnsecuredJwt, ConfigError> {
    let mut jwt = UnsecuredJwt {
        principal_claim: "sub".into(),
        lifetime_s: 3600,
        ..UnsecuredJwt::default()
    };
    for part in config.split_whitespace() {
        let Some((k, v)) = part.split_once('=') else {
            return Err(r.error("sasl.oauthbearer.config", "expected name=value pairs"));
        };
        match k {
            "principal" => {
                jwt.string_claims.insert("sub".into(), v.to_owned());
            }
            "principalClaimName" => jwt.principal_claim = v.to_owned(),
            "scope" => {
                jwt.list_claims
                    .insert("scope".into(), v.split(',').map(str::to_owned).collect());
            }
            "scopeClaimName" => {}
            "lifeSeconds" => {
                jwt.lifetime_s = v.parse().map_err(|_| {
                    r.error("sasl.oauthbearer.config", "lifeSeconds is not a number")
                })?;
            }
            _ => {
                if let Some(name) = k.strip_prefix("extension_") {
                    jwt.extensions.insert(name.to_owned(), v.to_owned());
                } else {
                    return Err(r.error(
                        "sasl.oauthbearer.config",
                        format!("unknown attribute {k:?}"),
                    ));
                }
            }
        }
    }
    if jwt.principal_claim != "sub" {
        if let Some(p) = jwt.string_claims.remove("sub") {
            jwt.string_claims.insert(jwt.principal_claim.clone(), p);
        }
    }
    if !jwt.string_claims.contains_key(&jwt.principal_claim) {
        return Err(r.error("sasl.oauthbearer.config", "no principal=..."));
    }
    Ok(jwt)
}

fn read_tls(r: &mut Reader<'_>) -> Result<(), ConfigError> {
    r.out.key_password = r.secret("ssl.key.password");
    // Java's ssl.truststore.*; librdkafka's ssl.ca.location (file or
    // directory) and ssl.ca.pem; Java's inline ssl.truststore.certificates.
    r.out.trust = if let Some(path) = r.text("ssl.truststore.location") {
        Some(TrustSpec::File {
            path: PathBuf::from(path),
            password: r.secret("ssl.truststore.password"),
            declared: r.text("ssl.truststore.type"),
            key: "ssl.truststore.location",
        })
    } else if let Some(pem) = r
        .text("ssl.truststore.certificates")
        .or_else(|| r.text("ssl.ca.pem"))
    {
        Some(TrustSpec::Inline(pem))
    } else if let Some(path) = r.text("ssl.ca.location") {
        let path = PathBuf::from(path);
        if path.is_dir() {
            Some(TrustSpec::Dir(path))
        } else if path.as_os_str() == "probe" {
            // librdkafka's "probe": look in the usual places; the system
            // trust store is kconn's equivalent.
            None
        } else {
            Some(TrustSpec::File {
                path,
                password: None,
                declared: None,
                key: "ssl.ca.location",
            })
        }
    } else {
        None
    };
    r.out.identity = if let Some(path) = r.text("ssl.keystore.location") {
        Some(IdentitySpec::Store {
            path: PathBuf::from(path),
            password: r.secret("ssl.keystore.password"),
            declared: r.text("ssl.keystore.type"),
        })
    } else if let (Some(chain), Some(key)) = (
        r.text("ssl.keystore.certificate.chain"),
        r.secret("ssl.keystore.key"),
    ) {
        Some(IdentitySpec::Inline { chain, key })
    } else if let (Some(chain), Some(key)) =
        (r.text("ssl.certificate.pem"), r.secret("ssl.key.pem"))
    {
        Some(IdentitySpec::Inline { chain, key })
    } else {
        match (
            r.text("ssl.certificate.location"),
            r.text("ssl.key.location"),
        ) {
            (Some(cert), Some(key)) => Some(IdentitySpec::Files {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(r.error("ssl.certificate.location", "needs ssl.key.location too"))
            }
            (None, Some(_)) => {
                return Err(r.error("ssl.key.location", "needs ssl.certificate.location too"))
            }
        }
    };
    if let Some(v) = r
        .value("ssl.endpoint.identification.algorithm")
        .map(str::to_owned)
    {
        // Java: "https" (default) or empty to switch the check off;
        // librdkafka: "https" (default since 2.0) or "none".
        let v = v.trim();
        r.out.verify_hostname = Some(!(v.is_empty() || v.eq_ignore_ascii_case("none")));
        if !(v.is_empty() || v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("https")) {
            return Err(r.error(
                "ssl.endpoint.identification.algorithm",
                format!("{v:?} is not https, none or empty"),
            ));
        }
    }
    r.out.verify_certificate = r.bool("enable.ssl.certificate.verification")?;
    Ok(())
}

/// Fills the report: used keys (values only where harmless) and unused ones.
fn report(r: &mut Reader<'_>) {
    let raw = r.raw;
    r.out.report.files = raw.files.iter().map(|f| f.display().to_string()).collect();
    for (key, entry) in &raw.entries {
        let file = entry.file.display().to_string();
        match USED_KEYS.iter().find(|(k, _)| k == key) {
            Some((_, show)) => {
                let value = match show {
                    Show::Value => Some(entry.value.clone()),
                    Show::Secret => None,
                    Show::Pem => Some(format!(
                        "(PEM, {} certificate(s))",
                        entry.value.matches("-----BEGIN CERTIFICATE-----").count()
                    )),
                    Show::Jaas => Some(format!(
                        "({} login module)",
                        r.out.jaas_module.as_deref().unwrap_or("a")
                    )),
                };
                r.out.report.used.push(UsedKey {
                    key: key.clone(),
                    file,
                    line: entry.line,
                    value,
                    overridden_by: None,
                });
            }
            None => r.out.report.unused.push(UnusedKey {
                key: key.clone(),
                file,
                line: entry.line,
                reason: if CONNECTION_PREFIXES.iter().any(|p| key.starts_with(p)) {
                    UnusedReason::NotSupported
                } else {
                    UnusedReason::NotForConnecting
                },
                did_you_mean: similar_key(key),
            }),
        }
    }
    if r.out.verify_hostname == Some(false) {
        r.out.report.warnings.push(
            "ssl.endpoint.identification.algorithm switches the host name check off: kconn does the same, as the client would (anyone with a certificate from the CA can pose as the broker)".into(),
        );
    }
    if r.out.verify_certificate == Some(false) {
        r.out.report.warnings.push(
            "enable.ssl.certificate.verification=false: kconn accepts any broker certificate, as the client would (no protection against an impostor); the chain is still shown".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::path::Path;

    /// Writes `text` to a fresh file and reads it back as a configuration.
    fn config(text: &str) -> Result<FileSettings, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "kconn-config-{}-{}",
            std::process::id(),
            text.len() ^ text.bytes().map(usize::from).sum::<usize>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("client.properties");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = read_files(&[path]).and_then(|raw| interpret(&raw));
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    #[test]
    fn a_java_sasl_ssl_client_properties() {
        let s = config(
            r#"# Confluent-style client.properties
bootstrap.servers=b1.example:9093, b2.example:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
    username="alice" \
    password="alice-secret";
ssl.truststore.location=/etc/kafka/truststore.p12
ssl.truststore.password=changeit
ssl.truststore.type=PKCS12
ssl.endpoint.identification.algorithm=
client.id=billing
request.timeout.ms=20000
socket.connection.setup.timeout.ms=5000
connections.max.idle.ms=60000
acks=all
key.serializer=org.apache.kafka.common.serialization.StringSerializer
bootstrap.server=typo:9092
ssl.protocol=TLSv1.3
"#,
        )
        .unwrap();
        assert_eq!(
            s.bootstrap.as_deref(),
            Some(&["b1.example:9093".to_owned(), "b2.example:9093".to_owned()][..])
        );
        assert_eq!(s.protocol, Some(SecurityProtocol::SaslSsl));
        assert_eq!(s.mechanism, Some(MechanismName("SCRAM-SHA-512".into())));
        assert_eq!(s.username.as_deref(), Some("alice"));
        assert_eq!(
            s.password.as_ref().map(Secret::expose),
            Some("alice-secret")
        );
        assert!(
            matches!(&s.trust, Some(TrustSpec::File { path, password: Some(_), .. }) if path == Path::new("/etc/kafka/truststore.p12"))
        );
        assert_eq!(s.verify_hostname, Some(false));
        assert_eq!(s.client_id.as_deref(), Some("billing"));
        assert_eq!(s.request_timeout, Some(Duration::from_secs(20)));
        assert_eq!(s.setup_timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(60)));
        let unused: Vec<(&str, UnusedReason, Option<&str>)> = s
            .report
            .unused
            .iter()
            .map(|u| (u.key.as_str(), u.reason, u.did_you_mean))
            .collect();
        assert_eq!(
            unused,
            [
                ("acks", UnusedReason::NotForConnecting, None),
                (
                    "bootstrap.server",
                    UnusedReason::NotForConnecting,
                    Some("bootstrap.servers")
                ),
                ("key.serializer", UnusedReason::NotForConnecting, None),
                ("ssl.protocol", UnusedReason::NotSupported, None),
            ]
        );
        // The report never holds a secret.
        let all = format!(
            "{}\n{}",
            serde_json::to_string(&s.report).unwrap(),
            s.report.lines().join("\n")
        );
        for secret in ["alice-secret", "changeit"] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
        assert!(all.contains("ScramLoginModule"), "{all}");
        assert!(all.contains("username=alice"), "{all}");
        let jaas_line = s
            .report
            .used
            .iter()
            .find(|u| u.key == "sasl.jaas.config")
            .unwrap();
        assert_eq!(jaas_line.line, 5);
    }

    #[test]
    fn a_librdkafka_config_as_kcat_reads_it() {
        let s = config(
            "metadata.broker.list=SSL://k1:9093,k2:9093\nsecurity.protocol=sasl_ssl\nsasl.mechanisms=PLAIN\nsasl.username=bob\nsasl.password=bob-pw\nssl.ca.location=/etc/ssl/ca.pem\nssl.certificate.location=/c.pem\nssl.key.location=/k.pem\nssl.key.password=kp\nenable.ssl.certificate.verification=false\nssl.endpoint.identification.algorithm=none\n",
        )
        .unwrap();
        assert_eq!(
            s.bootstrap.as_deref(),
            Some(&["k1:9093".to_owned(), "k2:9093".to_owned()][..])
        );
        assert_eq!(s.protocol, Some(SecurityProtocol::SaslSsl));
        assert_eq!(s.mechanism, Some(MechanismName("PLAIN".into())));
        assert_eq!(s.username.as_deref(), Some("bob"));
        assert!(matches!(
            &s.trust,
            Some(TrustSpec::File {
                key: "ssl.ca.location",
                ..
            })
        ));
        assert!(matches!(&s.identity, Some(IdentitySpec::Files { .. })));
        assert_eq!(s.verify_certificate, Some(false));
        assert_eq!(s.verify_hostname, Some(false));
        assert!(s.report.unused.is_empty(), "{:?}", s.report.unused);
        assert_eq!(s.report.warnings.len(), 2, "{:?}", s.report.warnings);
        let json = serde_json::to_string(&s.report).unwrap();
        assert!(
            !json.contains("bob-pw") && !json.contains("\"kp\""),
            "{json}"
        );
    }

    #[test]
    fn properties_escapes_and_separators() {
        let s = config(
            "bootstrap.servers : h\\u0031:9092\nclient.id  kconn\\ test\n! a comment\nsasl.jaas.config=x.PlainLoginModule required username=\"u\" \\\n  password=\"p\\\\\\\"q\";\n",
        )
        .unwrap();
        assert_eq!(s.bootstrap.as_deref(), Some(&["h1:9092".to_owned()][..]));
        assert_eq!(s.client_id.as_deref(), Some("kconn test"));
        // .properties turns `\\\"` into `\"`, which JAAS reads as `"`.
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("p\"q"));
    }

    #[test]
    fn oauthbearer_unsecured_tokens_from_both_dialects() {
        let s = config(
            "sasl.mechanism=OAUTHBEARER\nsasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"svc\" unsecuredLoginListClaim_scope=\",read,write\" unsecuredLoginLifetimeSeconds=\"60\" unsecuredLoginExtension_traceId=\"t1\";\n",
        )
        .unwrap();
        let Some(OAuthSource::Unsecured(jwt)) = &s.oauth else {
            panic!("{:?}", s.oauth)
        };
        assert_eq!(
            jwt.string_claims.get("sub").map(String::as_str),
            Some("svc")
        );
        assert_eq!(jwt.list_claims["scope"], ["read", "write"]);
        assert_eq!(jwt.lifetime_s, 60);
        assert_eq!(jwt.extensions["traceId"], "t1");
        let token = jwt.token(1_000.0);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "", "unsecured: empty signature");
        use base64::Engine as _;
        let payload: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["sub"], "svc");
        assert_eq!(payload["exp"], 1060.0);

        let s = config(
            "sasl.mechanisms=OAUTHBEARER\nenable.sasl.oauthbearer.unsecure.jwt=true\nsasl.oauthbearer.config=principal=admin scope=a,b extension_x=y lifeSeconds=10\n",
        )
        .unwrap();
        let Some(OAuthSource::Unsecured(jwt)) = &s.oauth else {
            panic!("{:?}", s.oauth)
        };
        assert_eq!(jwt.string_claims["sub"], "admin");
        assert_eq!(jwt.extensions["x"], "y");
        assert_eq!(jwt.lifetime_s, 10);

        let s = config(
            "sasl.mechanism=OAUTHBEARER\nsasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\nsasl.oauthbearer.token.endpoint.url=https://idp.example/token\nsasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\"c\" clientSecret=\"cs\";\n",
        )
        .unwrap();
        let Some(OAuthSource::Oidc(oidc)) = &s.oauth else {
            panic!("{:?}", s.oauth)
        };
        assert_eq!(oidc.endpoint.as_deref(), Some("https://idp.example/token"));
        assert_eq!(oidc.client_id.as_deref(), Some("c"));
        assert_eq!(oidc.client_secret.as_ref().map(Secret::expose), Some("cs"));
        let rd = config(
            "sasl.mechanisms=OAUTHBEARER\nsasl.oauthbearer.method=oidc\nsasl.oauthbearer.token.endpoint.url=https://idp/t\nsasl.oauthbearer.client.id=c2\nsasl.oauthbearer.client.secret=sekrit-two\nsasl.oauthbearer.scope=kafka\n",
        )
        .unwrap();
        let Some(OAuthSource::Oidc(oidc)) = &rd.oauth else {
            panic!("{:?}", rd.oauth)
        };
        assert_eq!(
            (oidc.client_id.as_deref(), oidc.scope.as_deref()),
            (Some("c2"), Some("kafka"))
        );
        assert!(!serde_json::to_string(&rd.report)
            .unwrap()
            .contains("sekrit-two"));
        let json = serde_json::to_string(&s.report).unwrap();
        assert!(!json.contains("\"cs\""), "{json}");
        assert!(json.contains("\"clientSecret\":null"), "{json}");
    }

    #[test]
    fn kerberos_is_read_and_reported() {
        let s = config(
            "sasl.mechanism=GSSAPI\nsasl.kerberos.service.name=kafka\nsasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab=\"/etc/k/client.keytab\" principal=\"client@EXAMPLE.COM\";\n",
        )
        .unwrap();
        assert_eq!(
            s.kerberos,
            Some(KerberosReport {
                principal: Some("client@EXAMPLE.COM".into()),
                keytab: Some("/etc/k/client.keytab".into()),
                use_keytab: true,
                use_ticket_cache: false,
                service_name: Some("kafka".into()),
            })
        );
    }

    #[test]
    fn bad_values_name_the_key_and_line_but_not_secrets() {
        let e = config("security.protocol=TLS\n").unwrap_err();
        assert!(e.0.starts_with("security.protocol ("), "{e}");
        assert!(e.0.contains("client.properties:1"), "{e}");
        let e = config("x=1\nsasl.jaas.config=x.PlainLoginModule required password=\"sekrit\"\n")
            .unwrap_err();
        assert!(e.0.contains("client.properties:2"), "{e}");
        assert!(e.0.contains("semi-colon"), "{e}");
        assert!(!e.0.contains("sekrit"), "{e}");
        let e = config("request.timeout.ms=soon\n").unwrap_err();
        assert!(e.0.contains("not a number of milliseconds"), "{e}");
        let e = config("ssl.certificate.location=/c.pem\n").unwrap_err();
        assert!(e.0.contains("needs ssl.key.location"), "{e}");
    }

    #[test]
    fn later_files_override_earlier_ones() {
        let dir = std::env::temp_dir().join(format!("kconn-two-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.properties"), dir.join("b.properties"));
        std::fs::write(&a, "bootstrap.servers=a:1\nclient.id=first\n").unwrap();
        std::fs::write(&b, "bootstrap.servers=b:2\n").unwrap();
        let s = interpret(&read_files(&[a, b.clone()]).unwrap()).unwrap();
        assert_eq!(s.bootstrap.as_deref(), Some(&["b:2".to_owned()][..]));
        assert_eq!(s.client_id.as_deref(), Some("first"));
        let used = s
            .report
            .used
            .iter()
            .find(|u| u.key == "bootstrap.servers")
            .unwrap();
        assert_eq!(used.file, b.display().to_string());
        let e = read_files(&[dir.join("missing.properties")]).unwrap_err();
        assert!(e.0.starts_with("cannot read "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(similar_key("sasl.mechanisim"), Some("sasl.mechanism"));
        assert_eq!(similar_key("security.protocl"), Some("security.protocol"));
        assert_eq!(similar_key("group.id"), None);
    }
}
