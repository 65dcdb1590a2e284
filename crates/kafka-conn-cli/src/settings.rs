//! The checked form of the command-line options, and the connection
//! configuration built from it.

use std::path::PathBuf;
use std::time::Duration;

use kafka_conn_tokio::core::sasl::{OAuthBearerToken, SaslConfig, ScramHash};
use kafka_conn_tokio::core::Config;
use kafka_conn_tokio::{ConnectConfig, TlsConfig};

use crate::cli::{CommonOpts, SaslMechanism, Secret, SecurityProtocol};
use crate::diagnose::Context;
use crate::x509::CertSummary;

/// The client software name sent in ApiVersions v3+ (KIP-511).
pub(crate) const SOFTWARE_NAME: &str = "kconn";
/// The client software version sent in ApiVersions v3+ (KIP-511).
pub(crate) const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Options that do not fit together; reported like a command-line error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UsageError {
    /// No `--bootstrap`.
    #[error("no broker given: use --bootstrap HOST:PORT (or set KCONN_BOOTSTRAP)")]
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
    #[error("{0} needs --username (or KCONN_SASL_USERNAME)")]
    MissingUsername(SaslMechanism),
    /// PLAIN or SCRAM without a password.
    #[error("{0} needs a password: set KCONN_SASL_PASSWORD (or --password)")]
    MissingPassword(SaslMechanism),
    /// OAUTHBEARER without a token.
    #[error("OAUTHBEARER needs a token: set KCONN_OAUTH_TOKEN (or --oauth-token)")]
    MissingToken,
}

/// TLS settings.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    /// CA file; `None` = the system trust store.
    pub(crate) ca: Option<PathBuf>,
    /// Client certificate chain and key.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    /// Name to verify instead of the bootstrap host.
    pub(crate) server_name: Option<String>,
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
    /// OAUTHBEARER with a fixed token.
    OAuthBearer {
        /// The token (never printed).
        token: Secret,
    },
}

impl SaslSettings {
    /// The mechanism.
    pub(crate) fn mechanism(&self) -> SaslMechanism {
        match self {
            Self::Password { mechanism, .. } => *mechanism,
            Self::OAuthBearer { .. } => SaslMechanism::OauthBearer,
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
    /// Timeout of each step.
    pub(crate) timeout: Duration,
    /// JSON output.
    pub(crate) json: bool,
}

impl Settings {
    /// Checks the options and settles the security protocol.
    pub(crate) fn from_opts(o: &CommonOpts) -> Result<Self, UsageError> {
        if o.bootstrap.is_empty() {
            return Err(UsageError::NoBootstrap);
        }
        let brokers: Vec<String> = o.bootstrap.iter().map(|b| b.trim().to_owned()).collect();
        if brokers.iter().any(String::is_empty) {
            return Err(UsageError::EmptyBootstrapEntry);
        }
        let tls_options = [
            ("--tls-ca", o.tls_ca.is_some()),
            ("--tls-cert", o.tls_cert.is_some()),
            ("--tls-key", o.tls_key.is_some()),
            ("--tls-server-name", o.tls_server_name.is_some()),
        ];
        let sasl_options = [
            ("--sasl-mechanism", o.sasl_mechanism.is_some()),
            ("--username", o.username.is_some()),
            ("--password", o.password.is_some()),
            ("--oauth-token", o.oauth_token.is_some()),
        ];
        let (protocol, inferred) = match o.security_protocol {
            Some(p) => (p, false),
            None => (
                SecurityProtocol::from_parts(
                    tls_options.iter().any(|(_, given)| *given),
                    o.sasl_mechanism.is_some(),
                ),
                true,
            ),
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
                option: sasl_options[0].0,
                protocol,
            });
        }
        let tls = protocol.tls().then(|| TlsSettings {
            ca: o.tls_ca.clone(),
            client_cert: o.tls_cert.clone().zip(o.tls_key.clone()),
            server_name: o.tls_server_name.clone(),
        });
        let sasl = if protocol.sasl() {
            let mechanism = o
                .sasl_mechanism
                .ok_or(UsageError::MissingMechanism(protocol))?;
            Some(match mechanism {
                SaslMechanism::OauthBearer => SaslSettings::OAuthBearer {
                    token: o.oauth_token.clone().ok_or(UsageError::MissingToken)?,
                },
                m => SaslSettings::Password {
                    mechanism: m,
                    username: o.username.clone().ok_or(UsageError::MissingUsername(m))?,
                    password: o.password.clone().ok_or(UsageError::MissingPassword(m))?,
                },
            })
        } else {
            None
        };
        Ok(Self {
            brokers,
            protocol,
            protocol_inferred: inferred,
            tls,
            sasl,
            client_id: o.client_id.clone(),
            timeout: o.timeout,
            json: o.json,
        })
    }

    /// What a diagnosis needs to know about these settings.
    pub(crate) fn diagnosis_context(&self, certificate: Option<CertSummary>) -> Context {
        Context {
            protocol: self.protocol,
            ca: self.tls.as_ref().and_then(|t| t.ca.clone()),
            client_cert: self.tls.as_ref().is_some_and(|t| t.client_cert.is_some()),
            mechanism: self.sasl.as_ref().map(SaslSettings::mechanism),
            certificate,
        }
    }

    /// The configuration of a connection. TLS files are read when a
    /// connection is made: a missing or malformed one is a
    /// `ConnectError::TlsConfig`, reported before anything is sent.
    pub(crate) fn connect_config(&self) -> ConnectConfig {
        let mut core = Config::new()
            .with_client_id(Some(self.client_id.clone()))
            .with_client_software(SOFTWARE_NAME, SOFTWARE_VERSION)
            .with_request_timeout(self.timeout)
            .with_handshake_timeout(self.timeout);
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
            });
        }
        let mut config = ConnectConfig::new(core).with_connect_timeout(self.timeout);
        if let Some(SaslSettings::OAuthBearer { token }) = &self.sasl {
            let token = token.clone();
            config = config.with_oauth_token_provider(move || {
                let token = OAuthBearerToken::new(token.expose());
                async move { Ok(token) }
            });
        }
        if let Some(t) = &self.tls {
            let mut tls = match &t.ca {
                Some(ca) => TlsConfig::ca_file(ca),
                None => TlsConfig::system_roots(),
            };
            if let Some((cert, key)) = &t.client_cert {
                tls = tls.with_client_cert(cert, key);
            }
            if let Some(name) = &t.server_name {
                tls = tls.with_server_name(name.clone());
            }
            config = config.with_tls(tls);
        }
        config
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
}
