//! The checked form of the command-line options merged with the
//! configuration files, and the connection configuration built from it.
//!
//! Precedence: command-line options (and the `KCONN_*` variables that
//! stand for them) over the files, later files over earlier ones, and the
//! clients' defaults last. Where the Java client and librdkafka would do
//! something surprising with a file (PLAINTEXT when `security.protocol` is
//! missing; GSSAPI when `sasl.mechanism` is), kconn does the same and says so.

use std::time::Duration;

use kafka_conn_tokio::core::sasl::{OAuthBearerToken, SaslConfig, ScramHash};
use kafka_conn_tokio::core::Config;
use kafka_conn_tokio::{
    AddressFamily, CertificateDer, Client, ConnectConfig, ConnectError, Keepalive, Proxy,
};

use crate::cli::{
    CommonOpts, FamilyArg, PreferArg, ResolveOverride, SaslMechanism, Secret, SecurityProtocol,
};
use crate::config::{
    self, ConfigError, ConfigReport, FileSettings, KerberosReport, OAuthSource, UnsecuredJwt,
};
use crate::diagnose::Context;
use crate::tls::{BuiltTls, ClientIdentity, TlsPlan, Trust};
use crate::x509::CertSummary;

/// The client software name sent in ApiVersions v3+ (KIP-511).
pub(crate) const SOFTWARE_NAME: &str = "kconn";
/// The client software version sent in ApiVersions v3+ (KIP-511).
pub(crate) const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The timeout of each step when neither an option nor a file sets one.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options that do not fit together, or a configuration kconn cannot
/// use; reported like a command-line error (exit 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UsageError {
    /// No `--bootstrap`.
    #[error("no broker given: use --bootstrap HOST:PORT (or set KCONN_BOOTSTRAP, or bootstrap.servers in a -F file)")]
    NoBootstrap,
    /// An empty entry in the bootstrap list.
    #[error("empty broker address in --bootstrap: use HOST:PORT[,HOST:PORT...]")]
    EmptyBootstrapEntry,
    /// A TLS option with a protocol without TLS.
    #[error("{option} is a TLS option, but --security-protocol {protocol} does not use TLS: use {}", protocol.with_tls(true))]
    TlsOptionWithoutTls {
        /// The option given.
        option: &'static str,
        /// The protocol given.
        protocol: SecurityProtocol,
    },
    /// A SASL option with a protocol without SASL.
    #[error("{option} is a SASL option, but --security-protocol {protocol} does not use SASL: use {}", protocol.with_sasl())]
    SaslOptionWithoutSasl {
        /// The option given.
        option: &'static str,
        /// The protocol given.
        protocol: SecurityProtocol,
    },
    /// A SASL protocol without a mechanism.
    #[error("--security-protocol {0} needs --sasl-mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")]
    MissingMechanism(SecurityProtocol),
    /// PLAIN or SCRAM without a user name.
    #[error("{0} needs --username (or KCONN_SASL_USERNAME, or a username in sasl.jaas.config)")]
    MissingUsername(SaslMechanism),
    /// PLAIN or SCRAM without a password.
    #[error("{0} needs a password: set KCONN_SASL_PASSWORD (or --password, or a password in sasl.jaas.config)")]
    MissingPassword(SaslMechanism),
    /// OAUTHBEARER without a token.
    #[error("OAUTHBEARER needs a token: set KCONN_OAUTH_TOKEN (or --oauth-token, or an OAuthBearerLoginModule with unsecuredLoginStringClaim_sub in sasl.jaas.config)")]
    MissingToken,
    /// A configuration file that cannot be read or makes no sense.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A mechanism or feature the files ask for that kconn cannot do yet.
    #[error("{0}")]
    Unsupported(String),
}

impl UsageError {
    /// A stable name for scripts (the JSON error's `kind`).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "invalid_configuration",
            Self::Unsupported(_) => "not_supported",
            _ => "usage",
        }
    }
}

/// TLS settings.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    /// The CA file (for messages); `None` = the system trust store or
    /// something that is not one file.
    pub(crate) ca: Option<std::path::PathBuf>,
    /// Whether a client certificate is configured.
    pub(crate) client_cert: bool,
    /// The configuration, or why it cannot be built.
    built: Result<BuiltTls, String>,
}

/// Where an OAUTHBEARER token comes from.
#[derive(Debug, Clone)]
pub(crate) enum TokenSource {
    /// A token given as is.
    Fixed(Secret),
    /// An unsecured JWT built for each authentication.
    Unsecured(UnsecuredJwt),
    /// Fetched from a token endpoint (OAuth 2 client credentials, KIP-768).
    // Read only with the `oidc` feature (refused without it).
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    Oidc(OidcSettings),
}

/// A token endpoint and the client's credentials there.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "oidc"), allow(dead_code))]
pub(crate) struct OidcSettings {
    /// The https:// URL.
    pub(crate) endpoint: String,
    /// The client id.
    pub(crate) client_id: String,
    /// The client secret (never printed).
    pub(crate) client_secret: Secret,
    /// The scope asked for.
    pub(crate) scope: Option<String>,
    /// CA certificates for the endpoint's HTTPS.
    pub(crate) ca: Option<std::path::PathBuf>,
}

/// Kerberos settings (nothing secret: names and paths).
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
pub(crate) struct KerberosSettings {
    /// The client principal.
    pub(crate) principal: Option<String>,
    /// The client keytab.
    pub(crate) keytab: Option<std::path::PathBuf>,
    /// The brokers' service name.
    pub(crate) service_name: String,
    /// A credential cache instead of the default.
    pub(crate) ccache: Option<String>,
}

/// SASL settings.
#[derive(Debug, Clone)]
pub(crate) enum SaslSettings {
    /// PLAIN or SCRAM.
    Password {
        /// Which mechanism.
        mechanism: SaslMechanism,
        /// User name.
        username: String,
        /// Password (never printed).
        password: Secret,
    },
    /// OAUTHBEARER.
    OAuthBearer {
        /// The token's source (never printed).
        token: TokenSource,
    },
    /// GSSAPI (Kerberos).
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    Gssapi(KerberosSettings),
    /// AWS_MSK_IAM.
    #[cfg_attr(not(feature = "aws-msk-iam"), allow(dead_code))]
    AwsMskIam {
        /// The region signed for.
        region: String,
        /// A shared-credentials profile, else the environment then the default profile.
        profile: Option<String>,
    },
}

impl SaslSettings {
    /// The mechanism.
    pub(crate) fn mechanism(&self) -> SaslMechanism {
        match self {
            Self::Password { mechanism, .. } => *mechanism,
            Self::OAuthBearer { .. } => SaslMechanism::OauthBearer,
            Self::Gssapi(_) => SaslMechanism::Gssapi,
            Self::AwsMskIam { .. } => SaslMechanism::AwsMskIam,
        }
    }
}

/// Everything a command needs to connect.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The bootstrap brokers, `host:port` each.
    pub(crate) brokers: Vec<String>,
    /// The security protocol (given or inferred).
    pub(crate) protocol: SecurityProtocol,
    /// Whether the protocol was inferred from the other options.
    pub(crate) protocol_inferred: bool,
    /// TLS, when the protocol uses it.
    pub(crate) tls: Option<TlsSettings>,
    /// SASL, when the protocol uses it.
    pub(crate) sasl: Option<SaslSettings>,
    /// Client id.
    pub(crate) client_id: String,
    /// Timeout of TCP connect, TLS and the Kafka handshake.
    pub(crate) timeout: Duration,
    /// Timeout of each request.
    pub(crate) request_timeout: Duration,
    /// Idle timeout (`connections.max.idle.ms`), when a file sets one.
    pub(crate) idle_timeout: Option<Duration>,
    /// JSON output.
    pub(crate) json: bool,
    /// What the configuration files said, when there were some.
    pub(crate) config: Option<ConfigReport>,
    /// How connections are dialed.
    pub(crate) dial: DialSettings,
}

/// How connections are dialed: the proxy, address family, Happy Eyeballs
/// delay, keepalive and fixed name resolutions (`None`: the driver's default).
#[derive(Debug, Clone, Default)]
pub(crate) struct DialSettings {
    /// `--proxy`.
    pub(crate) proxy: Option<Proxy>,
    /// `--address-family`, `--prefer-family`, `broker.address.family`.
    pub(crate) family: Option<AddressFamily>,
    /// `--attempt-delay`.
    pub(crate) attempt_delay: Option<Duration>,
    /// `Some(None)`: keepalive off; `Some(Some(k))`: this timing.
    pub(crate) keepalive: Option<Option<Keepalive>>,
    /// `Some(None)`: the OS default.
    pub(crate) tcp_user_timeout: Option<Option<Duration>>,
    /// `--resolve`.
    pub(crate) resolve: Vec<ResolveOverride>,
}

fn family_of(f: FamilyArg) -> AddressFamily {
    match f {
        FamilyArg::Any => AddressFamily::Any,
        FamilyArg::V4 => AddressFamily::V4Only,
        FamilyArg::V6 => AddressFamily::V6Only,
    }
}

impl DialSettings {
    fn from_opts(o: &CommonOpts, files: &FileSettings, report: &mut ConfigReport) -> Self {
        let family = match (o.address_family, o.prefer_family, files.address_family) {
            (Some(f), _, file) => {
                if file.is_some() {
                    report.overridden(&["broker.address.family"], "--address-family");
                }
                Some(family_of(f))
            }
            (None, None, Some(f)) => Some(family_of(f)),
            (None, Some(p), file) => {
                if file.is_some() {
                    report.overridden(&["broker.address.family"], "--prefer-family");
                }
                Some(match p {
                    PreferArg::V4 => AddressFamily::PreferV4,
                    PreferArg::V6 => AddressFamily::PreferV6,
                })
            }
            (None, None, None) => None,
        };
        let timing = o.keepalive_idle.is_some()
            || o.keepalive_interval.is_some()
            || o.keepalive_count.is_some();
        let keepalive = if o.no_keepalive {
            report.overridden(&["socket.keepalive.enable"], "--no-keepalive");
            Some(None)
        } else if timing {
            report.overridden(&["socket.keepalive.enable"], "--keepalive-idle");
            let d = Keepalive::default();
            Some(Some(Keepalive::new(
                o.keepalive_idle.unwrap_or(d.idle()),
                o.keepalive_interval.unwrap_or(d.interval()),
                o.keepalive_count.unwrap_or(d.count()),
            )))
        } else {
            match files.keepalive {
                Some(false) => Some(None),
                Some(true) => Some(Some(Keepalive::default())),
                None => None,
            }
        };
        Self {
            proxy: o.proxy.clone(),
            family,
            attempt_delay: o.attempt_delay,
            keepalive,
            tcp_user_timeout: o.tcp_user_timeout.map(|t| (!t.is_zero()).then_some(t)),
            resolve: o.resolve.clone(),
        }
    }

    /// Applies them to a connection's configuration.
    fn apply(&self, mut config: ConnectConfig) -> ConnectConfig {
        if let Some(p) = &self.proxy {
            config = config.with_proxy(p.clone());
        }
        if let Some(f) = self.family {
            config = config.with_address_family(f);
        }
        if let Some(d) = self.attempt_delay {
            config = config.with_attempt_delay(d);
        }
        if let Some(k) = self.keepalive {
            config = config.with_keepalive(k);
        }
        if let Some(t) = self.tcp_user_timeout {
            config = config.with_tcp_user_timeout(t);
        }
        if !self.resolve.is_empty() {
            let fixed = std::sync::Arc::new(self.resolve.clone());
            config = config.with_resolver(move |host: String, port: u16| {
                let found = fixed
                    .iter()
                    .find(|r| r.port == port && r.host.eq_ignore_ascii_case(&host))
                    .map(|r| {
                        r.addresses
                            .iter()
                            .map(|(ip, own)| std::net::SocketAddr::new(*ip, own.unwrap_or(port)))
                            .collect::<Vec<_>>()
                    });
                async move {
                    match found {
                        Some(addrs) => Ok(addrs),
                        // Every other name: the system resolver, as without --resolve.
                        None => Ok(tokio::net::lookup_host((host.as_str(), port))
                            .await?
                            .collect()),
                    }
                }
            });
        }
        config
    }
}

/// The mechanism a file names, as kconn can use it.
fn mechanism_of(name: &str, files: &FileSettings) -> Result<SaslMechanism, UsageError> {
    match name {
        "PLAIN" => Ok(SaslMechanism::Plain),
        "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
        "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
        "OAUTHBEARER" => Ok(SaslMechanism::OauthBearer),
        "GSSAPI" if GSSAPI => Ok(SaslMechanism::Gssapi),
        "GSSAPI" => Err(UsageError::Unsupported(gssapi_message(files.kerberos.as_ref()))),
        "AWS_MSK_IAM" => Ok(SaslMechanism::AwsMskIam),
        other => Err(UsageError::Unsupported(format!(
            "sasl.mechanism {other}: kconn cannot authenticate with {other}; it can use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI and AWS_MSK_IAM"
        ))),
    }
}

fn gssapi_message(k: Option<&KerberosReport>) -> String {
    let mut text = format!(
        "sasl.mechanism GSSAPI (Kerberos): {}",
        not_built("GSSAPI", "gssapi")
    );
    if let Some(k) = k {
        let mut parts = Vec::new();
        if let Some(p) = &k.principal {
            parts.push(format!("principal {p}"));
        }
        if let Some(t) = &k.keytab {
            parts.push(format!(
                "keytab {t}{}",
                if k.use_keytab {
                    ""
                } else {
                    " (useKeyTab is not true)"
                }
            ));
        }
        if k.use_ticket_cache {
            parts.push("the ticket cache".to_owned());
        }
        if let Some(s) = &k.service_name {
            parts.push(format!("service name {s}"));
        }
        if !parts.is_empty() {
            text.push_str(&format!(
                " (the configuration asks for {})",
                parts.join(", ")
            ));
        }
    }
    text.push_str(": build it with the feature, or check the rest with --sasl-mechanism and another mechanism the listener enables, or without SASL on another listener");
    text
}

/// Whether the optional mechanisms were built in.
const GSSAPI: bool = cfg!(feature = "gssapi");
const OIDC: bool = cfg!(feature = "oidc");
const AWS_MSK_IAM: bool = cfg!(feature = "aws-msk-iam");

/// A mechanism of an optional feature this kconn was built without.
fn not_built(what: &str, feature: &str) -> String {
    format!(
        "this kconn was built without {what} (cargo install kafka-conn-cli --features {feature})"
    )
}

/// The region in an MSK broker's name (`b-1.c.abc.c2.kafka.eu-west-1.amazonaws.com`).
fn msk_region(broker: &str) -> Option<String> {
    let host = broker.rsplit_once(':').map_or(broker, |(h, _)| h);
    let rest = host.strip_suffix(".amazonaws.com")?;
    let (before, region) = rest.rsplit_once('.')?;
    before.ends_with(".kafka").then(|| region.to_owned())
}

impl Settings {
    /// Checks the options, reads the configuration files, and settles the
    /// security protocol.
    pub(crate) fn from_opts(o: &CommonOpts) -> Result<Self, UsageError> {
        let raw = config::read_files(&o.config)?;
        let files = if raw.is_empty() {
            FileSettings::default()
        } else {
            config::interpret(&raw)?
        };
        let from_files = !raw.is_empty();
        let mut report = files.report.clone();

        let brokers: Vec<String> = if o.bootstrap.is_empty() {
            files.bootstrap.clone().unwrap_or_default()
        } else {
            report.overridden(
                &["bootstrap.servers", "metadata.broker.list"],
                "--bootstrap",
            );
            o.bootstrap.iter().map(|b| b.trim().to_owned()).collect()
        };
        if brokers.is_empty() {
            return Err(UsageError::NoBootstrap);
        }
        if brokers.iter().any(String::is_empty) {
            return Err(UsageError::EmptyBootstrapEntry);
        }
        let tls_options = [
            ("--tls-ca", o.tls_ca.is_some()),
            ("--tls-cert", o.tls_cert.is_some()),
            ("--tls-key", o.tls_key.is_some()),
            ("--tls-server-name", o.tls_server_name.is_some()),
        ];
        let (protocol, inferred) = match (o.security_protocol, files.protocol) {
            (Some(p), _) => {
                report.overridden(&["security.protocol"], "--security-protocol");
                (p, false)
            }
            (None, Some(p)) => (p, false),
            (None, None) => {
                let tls = tls_options.iter().any(|(_, given)| *given);
                let sasl = o.sasl_mechanism.is_some();
                if from_files && !tls && !sasl {
                    // The clients' default, whatever else the file sets.
                    if files.has_ssl_keys || files.has_sasl_keys {
                        report.warnings.push(
                            "security.protocol is not set, so clients use PLAINTEXT and ignore the ssl.* and sasl.* keys: set security.protocol (SSL, SASL_PLAINTEXT or SASL_SSL)".into(),
                        );
                    }
                    (SecurityProtocol::Plaintext, false)
                } else {
                    (SecurityProtocol::from_parts(tls, sasl), true)
                }
            }
        };
        if !protocol.tls() {
            if let Some((option, _)) = tls_options.iter().find(|(_, given)| *given) {
                return Err(UsageError::TlsOptionWithoutTls { option, protocol });
            }
        }
        // Credentials from the environment may be set for other uses; only a
        // mechanism given with a non-SASL protocol is a contradiction.
        if !protocol.sasl() && !inferred && o.sasl_mechanism.is_some() {
            return Err(UsageError::SaslOptionWithoutSasl {
                option: "--sasl-mechanism",
                protocol,
            });
        }
        let tls = protocol.tls().then(|| Self::tls(o, &files, &mut report));
        let sasl = if protocol.sasl() {
            Some(Self::sasl(
                o,
                &files,
                &brokers,
                protocol,
                from_files,
                &mut report,
            )?)
        } else {
            None
        };
        let timeout = match o.timeout {
            Some(t) => {
                report.overridden(
                    &[
                        "socket.connection.setup.timeout.ms",
                        "request.timeout.ms",
                        "socket.timeout.ms",
                    ],
                    "--timeout",
                );
                t
            }
            None => files.setup_timeout.unwrap_or(DEFAULT_TIMEOUT),
        };
        let request_timeout = o
            .timeout
            .or(files.request_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let client_id = match &o.client_id {
            Some(id) => {
                report.overridden(&["client.id"], "--client-id");
                id.clone()
            }
            None => files
                .client_id
                .clone()
                .unwrap_or_else(|| "kconn".to_owned()),
        };
        Ok(Self {
            brokers,
            protocol,
            protocol_inferred: inferred,
            tls,
            sasl,
            client_id,
            timeout,
            request_timeout,
            idle_timeout: files.idle_timeout,
            json: o.json,
            dial: DialSettings::from_opts(o, &files, &mut report),
            config: from_files.then_some(report),
        })
    }

    fn tls(o: &CommonOpts, files: &FileSettings, report: &mut ConfigReport) -> TlsSettings {
        let trust = match (&o.tls_ca, &files.trust) {
            (Some(ca), file) => {
                if file.is_some() {
                    report.overridden(
                        &[
                            "ssl.truststore.location",
                            "ssl.ca.location",
                            "ssl.truststore.certificates",
                            "ssl.ca.pem",
                        ],
                        "--tls-ca",
                    );
                }
                Trust::PemFile(ca.clone())
            }
            (None, Some(spec)) => Trust::Spec(spec.clone()),
            (None, None) => Trust::System,
        };
        let identity = match (o.tls_cert.clone().zip(o.tls_key.clone()), &files.identity) {
            (Some((c, k)), file) => {
                if file.is_some() {
                    report.overridden(
                        &[
                            "ssl.keystore.location",
                            "ssl.certificate.location",
                            "ssl.key.location",
                            "ssl.keystore.key",
                            "ssl.key.pem",
                        ],
                        "--tls-cert",
                    );
                }
                Some(ClientIdentity::PemFiles(c, k))
            }
            (None, Some(spec)) => Some(ClientIdentity::Spec(spec.clone())),
            (None, None) => None,
        };
        let ca = match &trust {
            Trust::PemFile(p) => Some(p.clone()),
            Trust::Spec(config::TrustSpec::File { path, .. } | config::TrustSpec::Dir(path)) => {
                Some(path.clone())
            }
            _ => None,
        };
        let plan = TlsPlan {
            trust,
            identity,
            key_password: files.key_password.clone(),
            server_name: o.tls_server_name.clone(),
            verify_hostname: files.verify_hostname.unwrap_or(true),
            verify_certificate: files.verify_certificate.unwrap_or(true),
        };
        let built = plan.build();
        if let Ok(b) = &built {
            report.loaded.extend(b.loaded.iter().cloned());
        }
        TlsSettings {
            ca,
            client_cert: plan.identity.is_some(),
            built,
        }
    }

    fn sasl(
        o: &CommonOpts,
        files: &FileSettings,
        brokers: &[String],
        protocol: SecurityProtocol,
        from_files: bool,
        report: &mut ConfigReport,
    ) -> Result<SaslSettings, UsageError> {
        let mechanism = match (o.sasl_mechanism, &files.mechanism) {
            (Some(m), file) => {
                if file.is_some() {
                    report.overridden(&["sasl.mechanism", "sasl.mechanisms"], "--sasl-mechanism");
                }
                m
            }
            (None, Some(name)) => mechanism_of(&name.0, files)?,
            // The Java client and librdkafka default to GSSAPI.
            // The clients' default, GSSAPI, when the files set up Kerberos.
            (None, None)
                if from_files
                    && GSSAPI
                    && (files.kerberos.is_some()
                        || files.jaas_module.as_deref() == Some("Krb5LoginModule")) =>
            {
                report
                    .warnings
                    .push("sasl.mechanism is not set: GSSAPI, the clients' default".into());
                SaslMechanism::Gssapi
            }
            (None, None) if from_files => {
                let mut text = gssapi_message(files.kerberos.as_ref());
                text = text.replacen(
                    "sasl.mechanism GSSAPI (Kerberos)",
                    "sasl.mechanism is not set, so clients use GSSAPI (Kerberos), their default",
                    1,
                );
                let hint = match files.jaas_module.as_deref() {
                    Some("PlainLoginModule") => Some("PLAIN"),
                    Some("ScramLoginModule") => Some("SCRAM-SHA-512 or SCRAM-SHA-256"),
                    Some("OAuthBearerLoginModule") => Some("OAUTHBEARER"),
                    _ => None,
                };
                if let (Some(h), Some(m)) = (hint, &files.jaas_module) {
                    text.push_str(&format!(
                        " (sasl.jaas.config names {m}: did you mean sasl.mechanism={h}?)"
                    ));
                }
                return Err(UsageError::Unsupported(text));
            }
            (None, None) => return Err(UsageError::MissingMechanism(protocol)),
        };
        if o.username.is_some() {
            report.overridden(&["sasl.username"], "--username");
        }
        match mechanism {
            SaslMechanism::OauthBearer => {
                let from_file = match &files.oauth {
                    Some(OAuthSource::Oidc(spec)) => Some(spec.clone()),
                    _ => None,
                };
                let token = match (&o.oauth_token, &files.oauth) {
                    (Some(t), _) => TokenSource::Fixed(t.clone()),
                    _ if o.oauth_token_endpoint.is_some() || from_file.is_some() => {
                        TokenSource::Oidc(Self::oidc(o, from_file.unwrap_or_default())?)
                    }
                    (None, Some(OAuthSource::Unsecured(jwt))) => TokenSource::Unsecured(jwt.clone()),
                    (None, Some(OAuthSource::Unsupported(why))) => {
                        return Err(UsageError::Unsupported(format!(
                            "{why}, which kconn cannot call: give a token with KCONN_OAUTH_TOKEN (or --oauth-token)"
                        )))
                    }
                    (None, _) => return Err(UsageError::MissingToken),
                };
                Ok(SaslSettings::OAuthBearer { token })
            }
            SaslMechanism::Gssapi => {
                if !GSSAPI {
                    return Err(UsageError::Unsupported(gssapi_message(
                        files.kerberos.as_ref(),
                    )));
                }
                let k = files.kerberos.clone().unwrap_or_default();
                if k.keytab.is_some() && !k.use_keytab && o.kerberos_keytab.is_none() {
                    report.warnings.push(
                        "sasl.jaas.config names a keyTab but useKeyTab is not true: the Java client ignores it, and so does kconn (the credential cache is used)".into(),
                    );
                }
                Ok(SaslSettings::Gssapi(KerberosSettings {
                    principal: o.kerberos_principal.clone().or(k.principal),
                    keytab: o.kerberos_keytab.clone().or_else(|| {
                        k.keytab
                            .filter(|_| k.use_keytab)
                            .map(std::path::PathBuf::from)
                    }),
                    service_name: o
                        .kerberos_service_name
                        .clone()
                        .or(k.service_name)
                        .unwrap_or_else(|| "kafka".to_owned()),
                    ccache: o.kerberos_ccache.clone(),
                }))
            }
            SaslMechanism::AwsMskIam => {
                if !AWS_MSK_IAM {
                    return Err(UsageError::Unsupported(format!(
                        "sasl.mechanism AWS_MSK_IAM: {}",
                        not_built("AWS_MSK_IAM", "aws-msk-iam")
                    )));
                }
                let region = o
                    .aws_region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
                    .or_else(|| {
                        std::env::var("AWS_DEFAULT_REGION")
                            .ok()
                            .filter(|r| !r.is_empty())
                    })
                    .or_else(|| brokers.iter().find_map(|b| msk_region(b)))
                    .ok_or_else(|| {
                        UsageError::Unsupported(
                            "AWS_MSK_IAM needs the region: --aws-region (or AWS_REGION)".into(),
                        )
                    })?;
                Ok(SaslSettings::AwsMskIam {
                    region,
                    profile: o.aws_profile.clone().or_else(|| files.aws_profile.clone()),
                })
            }
            m => {
                if files.scram_tokenauth && o.password.is_none() {
                    return Err(UsageError::Unsupported(
                        "sasl.jaas.config sets tokenauth=true (a delegation token), which kconn cannot use yet".into(),
                    ));
                }
                if let Some(module) = files.jaas_module.as_deref() {
                    let expected = if m == SaslMechanism::Plain {
                        "PlainLoginModule"
                    } else {
                        "ScramLoginModule"
                    };
                    if module != expected
                        && matches!(module, "PlainLoginModule" | "ScramLoginModule")
                    {
                        report.warnings.push(format!(
                            "sasl.jaas.config uses {module} with {m}: the Java client accepts it (both carry a username and password), but {expected} is the usual one"
                        ));
                    }
                }
                Ok(SaslSettings::Password {
                    mechanism: m,
                    username: o
                        .username
                        .clone()
                        .or_else(|| files.username.clone())
                        .ok_or(UsageError::MissingUsername(m))?,
                    password: o
                        .password
                        .clone()
                        .or_else(|| files.password.clone())
                        .ok_or(UsageError::MissingPassword(m))?,
                })
            }
        }
    }

    /// The token endpoint settings: flags over the files.
    fn oidc(o: &CommonOpts, file: config::OidcSpec) -> Result<OidcSettings, UsageError> {
        if !OIDC {
            return Err(UsageError::Unsupported(format!(
                "OAUTHBEARER from a token endpoint: {}; or give a token with KCONN_OAUTH_TOKEN",
                not_built("OIDC", "oidc")
            )));
        }
        let missing = |what: &str| {
            UsageError::Unsupported(format!("OAUTHBEARER from a token endpoint needs {what}"))
        };
        Ok(OidcSettings {
            endpoint: o
                .oauth_token_endpoint
                .clone()
                .or(file.endpoint)
                .ok_or_else(|| missing("--oauth-token-endpoint (sasl.oauthbearer.token.endpoint.url)"))?,
            client_id: o
                .oauth_client_id
                .clone()
                .or(file.client_id)
                .ok_or_else(|| missing("--oauth-client-id (clientId in sasl.jaas.config)"))?,
            client_secret: o
                .oauth_client_secret
                .clone()
                .or(file.client_secret)
                .ok_or_else(|| missing("a client secret: KCONN_OAUTH_CLIENT_SECRET (clientSecret in sasl.jaas.config)"))?,
            scope: o.oauth_scope.clone().or(file.scope),
            ca: o.oauth_ca.clone(),
        })
    }

    /// What a diagnosis needs to know about these settings.
    pub(crate) fn diagnosis_context(&self, certificate: Option<CertSummary>) -> Context {
        Context {
            protocol: self.protocol,
            ca: self.tls.as_ref().and_then(|t| t.ca.clone()),
            client_cert: self.tls.as_ref().is_some_and(|t| t.client_cert),
            mechanism: self.sasl.as_ref().map(SaslSettings::mechanism),
            token_endpoint: matches!(
                self.sasl,
                Some(SaslSettings::OAuthBearer {
                    token: TokenSource::Oidc(_)
                })
            ),
            certificate,
        }
    }

    /// Connects to `broker`. A TLS setting that cannot be used is a
    /// `ConnectError::TlsConfig`, as the driver reports unreadable files.
    pub(crate) async fn connect(&self, broker: &str) -> Result<Client, ConnectError> {
        if let Some(slot) = self.presented_slot() {
            slot.clear();
        }
        let config = self.connect_config().map_err(ConnectError::TlsConfig)?;
        kafka_conn_tokio::connect(broker, config).await
    }

    fn presented_slot(&self) -> Option<&crate::tls::PresentedSlot> {
        self.tls
            .as_ref()
            .and_then(|t| t.built.as_ref().ok())
            .and_then(|b| b.presented.as_ref())
    }

    /// The chain the broker presented before `e`: from the driver, or from
    /// kconn's own verifier when the configuration was built here.
    pub(crate) fn presented(&self, e: &ConnectError) -> Vec<CertificateDer<'static>> {
        let from_driver = e.presented_certificates();
        if !from_driver.is_empty() {
            return from_driver.to_vec();
        }
        match (e, self.presented_slot()) {
            (
                ConnectError::CertificateNotTrusted { .. }
                | ConnectError::NameMismatch { .. }
                | ConnectError::InvalidCertificate { .. },
                Some(slot),
            ) => slot.get(),
            _ => Vec::new(),
        }
    }

    /// The configuration of a connection, or why TLS cannot be set up.
    pub(crate) fn connect_config(&self) -> Result<ConnectConfig, String> {
        let mut core = Config::new()
            .with_client_id(Some(self.client_id.clone()))
            .with_client_software(SOFTWARE_NAME, SOFTWARE_VERSION)
            .with_request_timeout(self.request_timeout)
            .with_handshake_timeout(self.timeout);
        if let Some(idle) = self.idle_timeout {
            core = core.with_idle_timeout(Some(idle));
        }
        if let Some(sasl) = &self.sasl {
            core = core.with_sasl(match sasl {
                SaslSettings::Password {
                    mechanism,
                    username,
                    password,
                } => match mechanism {
                    SaslMechanism::ScramSha256 => {
                        SaslConfig::scram(ScramHash::Sha256, username, password.expose())
                    }
                    SaslMechanism::ScramSha512 => {
                        SaslConfig::scram(ScramHash::Sha512, username, password.expose())
                    }
                    _ => SaslConfig::plain(username, password.expose()),
                },
                SaslSettings::OAuthBearer { .. } => SaslConfig::oauthbearer(),
                #[cfg(feature = "gssapi")]
                SaslSettings::Gssapi(_) => SaslConfig::gssapi(),
                #[cfg(feature = "aws-msk-iam")]
                SaslSettings::AwsMskIam { .. } => kafka_conn_tokio::AwsMskIam::sasl_config(),
                // Settings::from_opts refuses these without their feature.
                #[allow(unreachable_patterns)]
                other => return Err(not_built(other.mechanism().name(), "the mechanism's")),
            });
        }
        let mut config = self
            .dial
            .apply(ConnectConfig::new(core).with_connect_timeout(self.timeout));
        config = self.credential_provider(config)?;
        if let Some(SaslSettings::OAuthBearer { token }) = &self.sasl {
            if matches!(token, TokenSource::Oidc(_)) {
                return self.finish_tls(config);
            }
            let token = token.clone();
            config = config.with_oauth_token_provider(move || {
                let token = match &token {
                    TokenSource::Fixed(t) => OAuthBearerToken::new(t.expose()),
                    // Set up by credential_provider.
                    TokenSource::Oidc(_) => OAuthBearerToken::new(""),
                    TokenSource::Unsecured(jwt) => {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0.0, |d| d.as_secs_f64());
                        jwt.extensions
                            .iter()
                            .fold(OAuthBearerToken::new(jwt.token(now)), |t, (k, v)| {
                                t.with_extension(k.clone(), v.clone())
                            })
                    }
                };
                async move { Ok(token) }
            });
        }
        self.finish_tls(config)
    }

    fn finish_tls(&self, mut config: ConnectConfig) -> Result<ConnectConfig, String> {
        if let Some(t) = &self.tls {
            let built = t.built.as_ref().map_err(Clone::clone)?;
            config = config.with_tls(built.config.clone());
        }
        Ok(config)
    }

    /// The credential provider of the optional mechanisms: Kerberos, a
    /// token endpoint, MSK IAM (each behind its feature).
    #[allow(clippy::unnecessary_wraps, unused_mut)]
    fn credential_provider(&self, mut config: ConnectConfig) -> Result<ConnectConfig, String> {
        match &self.sasl {
            #[cfg(feature = "gssapi")]
            Some(SaslSettings::Gssapi(k)) => {
                let mut kerberos =
                    kafka_conn_tokio::Kerberos::new().with_service_name(k.service_name.clone());
                if let Some(p) = &k.principal {
                    kerberos = kerberos.with_principal(p.clone());
                }
                if let Some(kt) = &k.keytab {
                    kerberos = kerberos.with_keytab(kt.clone());
                }
                if let Some(c) = &k.ccache {
                    kerberos = kerberos.with_credential_cache(c.clone());
                }
                config = config.with_credential_provider(kerberos);
            }
            #[cfg(feature = "oidc")]
            Some(SaslSettings::OAuthBearer {
                token: TokenSource::Oidc(o),
            }) => {
                let mut provider = kafka_conn_tokio::OidcTokenProvider::new(
                    o.endpoint.clone(),
                    o.client_id.clone(),
                    o.client_secret.expose(),
                )
                .with_timeout(self.timeout);
                if let Some(scope) = &o.scope {
                    provider = provider.with_scope(scope.clone());
                }
                if let Some(ca) = &o.ca {
                    provider = provider.with_ca_file(ca.clone());
                }
                config = config.with_credential_provider(provider);
            }
            #[cfg(feature = "aws-msk-iam")]
            Some(SaslSettings::AwsMskIam { region, profile }) => {
                let mut msk = kafka_conn_tokio::AwsMskIam::new(region.clone());
                if let Some(p) = profile {
                    msk = msk.with_profile(Some(p));
                }
                config = config.with_credential_provider(msk);
            }
            _ => {}
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn settings(args: &[&str]) -> Result<Settings, UsageError> {
        let mut all = vec!["kconn", "check"];
        all.extend_from_slice(args);
        Settings::from_opts(&Cli::try_parse_from(all).unwrap().common)
    }

    #[test]
    fn the_protocol_is_inferred_from_the_options() {
        let s = settings(&["-b", "h:1"]).unwrap();
        assert_eq!(s.protocol, SecurityProtocol::Plaintext);
        assert!(s.protocol_inferred);
        let s = settings(&["-b", "h:1", "--tls-ca", "ca.pem"]).unwrap();
        assert_eq!(s.protocol, SecurityProtocol::Ssl);
        let s = settings(&[
            "-b",
            "h:1",
            "--sasl-mechanism",
            "PLAIN",
            "--username",
            "u",
            "--password",
            "p",
        ])
        .unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslPlaintext);
        let s = settings(&[
            "-b",
            "h:1",
            "--tls-server-name",
            "x",
            "--sasl-mechanism",
            "OAUTHBEARER",
            "--oauth-token",
            "t",
        ])
        .unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslSsl);
        assert!(matches!(s.sasl, Some(SaslSettings::OAuthBearer { .. })));
    }

    #[test]
    fn dialing_options_and_the_files_keys() {
        let s = settings(&["-b", "h:1"]).unwrap();
        assert!(s.dial.proxy.is_none() && s.dial.family.is_none());
        assert!(s.dial.keepalive.is_none() && s.dial.tcp_user_timeout.is_none());
        let s = settings(&[
            "-b",
            "h:1",
            "--keepalive-idle",
            "5s",
            "--keepalive-count",
            "4",
            "--tcp-user-timeout",
            "0",
            "--prefer-family",
            "v6",
            "--attempt-delay",
            "50ms",
        ])
        .unwrap();
        assert_eq!(
            s.dial.keepalive,
            Some(Some(Keepalive::new(
                Duration::from_secs(5),
                Keepalive::default().interval(),
                4
            )))
        );
        assert_eq!(s.dial.tcp_user_timeout, Some(None), "0 = the OS default");
        assert_eq!(s.dial.family, Some(AddressFamily::PreferV6));
        assert_eq!(s.dial.attempt_delay, Some(Duration::from_millis(50)));
        let s = settings(&["-b", "h:1", "--no-keepalive", "--address-family", "v4"]).unwrap();
        assert_eq!(s.dial.keepalive, Some(None));
        assert_eq!(s.dial.family, Some(AddressFamily::V4Only));

        let f = file(
            "dial",
            "bootstrap.servers=h:1\nbroker.address.family=v6\nsocket.keepalive.enable=false\n",
        );
        let s = settings(&["-F", &f]).unwrap();
        assert_eq!(s.dial.family, Some(AddressFamily::V6Only));
        assert_eq!(s.dial.keepalive, Some(None));
        let s = settings(&["-F", &f, "--prefer-family", "v4", "--keepalive-idle", "9s"]).unwrap();
        assert_eq!(s.dial.family, Some(AddressFamily::PreferV4));
        assert_eq!(
            s.dial.keepalive.unwrap().unwrap().idle(),
            Duration::from_secs(9)
        );
        let f = file(
            "badfamily",
            "bootstrap.servers=h:1\nbroker.address.family=v5\n",
        );
        assert!(settings(&["-F", &f]).is_err());
    }

    #[test]
    fn contradictions_are_usage_errors() {
        let e = settings(&[
            "-b",
            "h:1",
            "--security-protocol",
            "PLAINTEXT",
            "--tls-ca",
            "x",
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--tls-ca is a TLS option, but --security-protocol PLAINTEXT does not use TLS: use SSL"
        );
        let e = settings(&[
            "-b",
            "h:1",
            "--security-protocol",
            "SSL",
            "--sasl-mechanism",
            "PLAIN",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("use SASL_SSL"), "{e}");
        let e = settings(&["-b", "h:1", "--security-protocol", "SASL_PLAINTEXT"]).unwrap_err();
        assert!(matches!(e, UsageError::MissingMechanism(_)));
        let e = settings(&[
            "-b",
            "h:1",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--username",
            "u",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("KCONN_SASL_PASSWORD"), "{e}");
        let e = settings(&["-b", "h:1", "--sasl-mechanism", "OAUTHBEARER"]).unwrap_err();
        assert!(matches!(e, UsageError::MissingToken));
        assert!(matches!(
            settings(&["-b", "h:1,,h:2"]).unwrap_err(),
            UsageError::EmptyBootstrapEntry
        ));
    }

    /// A configuration file in a fresh directory; returns its path.
    fn file(name: &str, text: &str) -> String {
        let dir =
            std::env::temp_dir().join(format!("kconn-settings-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("client.properties");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    #[test]
    fn flags_override_the_file() {
        let f = file(
            "override",
            "bootstrap.servers=file:9092\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"fu\" password=\"fp\";\nclient.id=from-file\nrequest.timeout.ms=2500\nsocket.connection.setup.timeout.ms=1500\n",
        );
        let s = settings(&["-F", &f]).unwrap();
        assert_eq!(s.brokers, ["file:9092"]);
        assert_eq!(s.protocol, SecurityProtocol::SaslPlaintext);
        assert!(!s.protocol_inferred);
        assert_eq!(s.client_id, "from-file");
        assert_eq!(s.timeout, Duration::from_millis(1500));
        assert_eq!(s.request_timeout, Duration::from_millis(2500));
        let Some(SaslSettings::Password {
            mechanism,
            username,
            password,
        }) = &s.sasl
        else {
            panic!("{:?}", s.sasl)
        };
        assert_eq!(
            (*mechanism, username.as_str(), password.expose()),
            (SaslMechanism::Plain, "fu", "fp")
        );

        let s = settings(&[
            "-F",
            &f,
            "-b",
            "flag:1",
            "--username",
            "cu",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--timeout",
            "3s",
            "--client-id",
            "cli",
        ])
        .unwrap();
        assert_eq!(s.brokers, ["flag:1"]);
        assert_eq!(s.client_id, "cli");
        assert_eq!(
            (s.timeout, s.request_timeout),
            (Duration::from_secs(3), Duration::from_secs(3))
        );
        let Some(SaslSettings::Password {
            mechanism,
            username,
            password,
        }) = &s.sasl
        else {
            panic!("{:?}", s.sasl)
        };
        assert_eq!(
            (*mechanism, username.as_str(), password.expose()),
            (SaslMechanism::ScramSha256, "cu", "fp")
        );
        let report = s.config.unwrap();
        let overridden: Vec<(&str, Option<&str>)> = report
            .used
            .iter()
            .map(|u| (u.key_name(), u.overridden()))
            .filter(|(_, by)| by.is_some())
            .collect();
        assert!(
            overridden.contains(&("bootstrap.servers", Some("--bootstrap"))),
            "{overridden:?}"
        );
        assert!(
            overridden.contains(&("client.id", Some("--client-id"))),
            "{overridden:?}"
        );
    }

    #[test]
    fn a_file_without_security_protocol_means_plaintext_as_in_the_clients() {
        let f = file(
            "noproto",
            "bootstrap.servers=h:1\nssl.truststore.location=/x.pem\n",
        );
        let s = settings(&["-F", &f]).unwrap();
        assert_eq!(s.protocol, SecurityProtocol::Plaintext);
        assert!(s.tls.is_none());
        let w = &s.config.unwrap().warnings;
        assert!(
            w.iter().any(|w| w.contains("security.protocol is not set")),
            "{w:?}"
        );
    }

    #[test]
    fn gssapi_and_the_default_mechanism_are_explained() {
        let f = file(
            "gssapi",
            "bootstrap.servers=h:1\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.kerberos.service.name=kafka\nsasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab=\"/k.keytab\" principal=\"c@EX.COM\";\n",
        );
        // Built with the feature, kconn authenticates instead (tests/features.rs).
        if !GSSAPI {
            let e = settings(&["-F", &f]).unwrap_err();
            assert_eq!(e.kind(), "not_supported");
            let text = e.to_string();
            for part in [
                "built without GSSAPI",
                "principal c@EX.COM",
                "keytab /k.keytab",
                "service name kafka",
            ] {
                assert!(text.contains(part), "{part}: {text}");
            }
        } else {
            let s = settings(&["-F", &f]).unwrap();
            let Some(SaslSettings::Gssapi(k)) = &s.sasl else {
                panic!("{:?}", s.sasl)
            };
            assert_eq!(k.principal.as_deref(), Some("c@EX.COM"));
            assert_eq!(k.keytab.as_deref(), Some(std::path::Path::new("/k.keytab")));
            assert_eq!(k.service_name, "kafka");
            let s = settings(&["-F", &f, "--kerberos-service-name", "kfk"]).unwrap();
            let Some(SaslSettings::Gssapi(k)) = &s.sasl else {
                panic!("{:?}", s.sasl)
            };
            assert_eq!(k.service_name, "kfk");
        }
        let f = file(
            "nomech",
            "bootstrap.servers=h:1\nsecurity.protocol=SASL_SSL\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"p\";\n",
        );
        let text = settings(&["-F", &f]).unwrap_err().to_string();
        assert!(text.contains("sasl.mechanism is not set"), "{text}");
        assert!(
            text.contains("did you mean sasl.mechanism=PLAIN?"),
            "{text}"
        );
        assert!(!text.contains("\"p\""), "{text}");
    }

    #[test]
    fn msk_regions_come_from_msk_host_names() {
        assert_eq!(
            msk_region("b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com:9098").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(msk_region("broker.example.com:9092"), None);
        assert_eq!(msk_region("s3.eu-west-1.amazonaws.com:443"), None);
        let e = settings(&["-b", "h:1", "--sasl-mechanism", "AWS_MSK_IAM"]);
        if AWS_MSK_IAM {
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                assert!(e.unwrap_err().to_string().contains("--aws-region"));
            }
            let s = settings(&[
                "-b",
                "h:1",
                "--sasl-mechanism",
                "AWS_MSK_IAM",
                "--aws-region",
                "us-east-2",
                "--aws-profile",
                "p",
            ])
            .unwrap();
            assert!(matches!(
                &s.sasl,
                Some(SaslSettings::AwsMskIam { region, profile }) if region == "us-east-2" && profile.as_deref() == Some("p")
            ));
        } else {
            assert!(e
                .unwrap_err()
                .to_string()
                .contains("--features aws-msk-iam"));
        }
    }

    #[test]
    fn a_token_endpoint_comes_from_flags_or_the_file() {
        let f = file(
            "oidc-flags",
            "bootstrap.servers=h:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=OAUTHBEARER\nsasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\nsasl.oauthbearer.token.endpoint.url=https://idp/token\nsasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\"c\" clientSecret=\"s\" scope=\"kafka\";\n",
        );
        let r = settings(&["-F", &f, "--oauth-client-id", "flag-client"]);
        if OIDC {
            let s = r.unwrap();
            let Some(SaslSettings::OAuthBearer {
                token: TokenSource::Oidc(o),
            }) = &s.sasl
            else {
                panic!("{:?}", s.sasl)
            };
            assert_eq!(o.endpoint, "https://idp/token");
            assert_eq!(o.client_id, "flag-client");
            assert_eq!(o.client_secret.expose(), "s");
            assert_eq!(o.scope.as_deref(), Some("kafka"));
            let e = settings(&[
                "-b",
                "h:1",
                "--sasl-mechanism",
                "OAUTHBEARER",
                "--oauth-token-endpoint",
                "https://idp/t",
                "--oauth-client-id",
                "c",
            ])
            .unwrap_err();
            assert!(e.to_string().contains("KCONN_OAUTH_CLIENT_SECRET"), "{e}");
        } else {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("--features oidc"), "{e}");
        }
    }

    #[test]
    fn an_oidc_login_needs_a_token_from_the_environment() {
        let f = file(
            "oidc",
            "bootstrap.servers=h:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=OAUTHBEARER\nsasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\nsasl.oauthbearer.token.endpoint.url=https://idp/token\nsasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\"c\" clientSecret=\"s\";\n",
        );
        if !OIDC {
            let text = settings(&["-F", &f]).unwrap_err().to_string();
            assert!(text.contains("KCONN_OAUTH_TOKEN"), "{text}");
        }
        // A token given overrides the endpoint.
        let s = settings(&["-F", &f, "--oauth-token", "tok"]).unwrap();
        assert!(matches!(
            s.sasl,
            Some(SaslSettings::OAuthBearer {
                token: TokenSource::Fixed(_)
            })
        ));
    }
}
