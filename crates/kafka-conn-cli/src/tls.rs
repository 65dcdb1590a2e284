//! The TLS configuration of a connection.
//!
//! Certificates and keys in PEM files, with the usual checks, go to the
//! driver as paths (`TlsConfig::ca_file`, `with_client_cert`), so its
//! messages about unreadable files and the chain it captures on a refused
//! handshake stay as they are. Everything else (PKCS#12 stores, PEM text
//! inside a configuration file, a CA directory, or a relaxed check that a
//! configuration file asks for) is loaded here and handed to the driver as
//! a ready rustls configuration (`TlsConfig::from_rustls`). Its verifier
//! is rustls' WebPKI verifier, wrapped to record the chain the broker
//! presented (the driver cannot see it with a custom configuration) and,
//! only when the configuration says so, to accept a certificate for
//! another name or any certificate at all.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kafka_conn_tokio::{CertificateDer, TlsConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{ServerName, UnixTime};

use crate::cli::Secret;
use crate::config::keystore::{self, Identity, StoreFormat};
use crate::config::{IdentitySpec, TrustSpec};

/// Where the trusted CAs come from.
#[derive(Debug, Clone)]
pub(crate) enum Trust {
    /// The system trust store.
    System,
    /// `--tls-ca`: a PEM file.
    PemFile(PathBuf),
    /// From a configuration file.
    Spec(TrustSpec),
}

/// The client certificate, if any.
#[derive(Debug, Clone)]
pub(crate) enum ClientIdentity {
    /// `--tls-cert` and `--tls-key`: PEM files.
    PemFiles(PathBuf, PathBuf),
    /// From a configuration file.
    Spec(IdentitySpec),
}

/// What a TLS connection needs, before it is built.
#[derive(Debug, Clone)]
pub(crate) struct TlsPlan {
    /// The CAs.
    pub(crate) trust: Trust,
    /// The client certificate.
    pub(crate) identity: Option<ClientIdentity>,
    /// `ssl.key.password`.
    pub(crate) key_password: Option<Secret>,
    /// `--tls-server-name`.
    pub(crate) server_name: Option<String>,
    /// Check that the certificate is for the broker's name.
    pub(crate) verify_hostname: bool,
    /// Check the certificate at all.
    pub(crate) verify_certificate: bool,
}

/// The chain the broker presented, recorded by [`Recorder`] for
/// configurations built here.
#[derive(Debug, Clone, Default)]
pub(crate) struct PresentedSlot(Arc<Mutex<Vec<CertificateDer<'static>>>>);

impl PresentedSlot {
    /// Forgets the last chain (before a new connection).
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The last chain recorded.
    pub(crate) fn get(&self) -> Vec<CertificateDer<'static>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, chain: Vec<CertificateDer<'static>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = chain;
    }
}

/// The built configuration.
#[derive(Debug, Clone)]
pub(crate) struct BuiltTls {
    /// For the driver.
    pub(crate) config: TlsConfig,
    /// Where the presented chain lands, when the driver cannot capture it.
    pub(crate) presented: Option<PresentedSlot>,
    /// What was loaded, for the report (e.g. "ssl.truststore.location: PKCS12, 2 certificates").
    pub(crate) loaded: Vec<String>,
}

impl TlsPlan {
    /// Whether the driver's own file handling covers this plan.
    fn driver_can(&self) -> bool {
        let trust = match &self.trust {
            Trust::System | Trust::PemFile(_) => true,
            Trust::Spec(TrustSpec::File { path, declared, .. }) => {
                declared
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case("PEM"))
                    && sniff(path) == Some(StoreFormat::Pem)
            }
            Trust::Spec(_) => false,
        };
        let identity = match &self.identity {
            None | Some(ClientIdentity::PemFiles(..)) => true,
            Some(ClientIdentity::Spec(IdentitySpec::Files { key, .. })) => {
                self.key_password.is_none() && !pem_encrypted(key)
            }
            Some(ClientIdentity::Spec(IdentitySpec::Store { path, password, .. })) => {
                password.is_none()
                    && self.key_password.is_none()
                    && sniff(path) == Some(StoreFormat::Pem)
                    && !pem_encrypted(path)
            }
            Some(ClientIdentity::Spec(IdentitySpec::Inline { .. })) => false,
        };
        trust && identity && self.verify_hostname && self.verify_certificate
    }

    /// Builds the configuration; an error names the setting to fix.
    pub(crate) fn build(&self) -> Result<BuiltTls, String> {
        if self.driver_can() {
            return Ok(self.for_driver());
        }
        let mut loaded = Vec::new();
        let roots = self.roots(&mut loaded)?;
        let identity = self.identity(&mut loaded)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("the trusted certificates cannot be used: {e}"))?;
        let slot = PresentedSlot::default();
        let verifier = Recorder {
            inner: webpki,
            slot: slot.clone(),
            verify_hostname: self.verify_hostname,
            verify_certificate: self.verify_certificate,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let rustls_config = match identity {
            None => builder.with_no_client_auth(),
            Some(Identity { chain, key }) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate and key: {e}"))?,
        };
        let mut config = TlsConfig::from_rustls(Arc::new(rustls_config));
        if let Some(name) = &self.server_name {
            config = config.with_server_name(name.clone());
        }
        Ok(BuiltTls {
            config,
            presented: Some(slot),
            loaded,
        })
    }

    fn for_driver(&self) -> BuiltTls {
        let mut config = match &self.trust {
            Trust::System => TlsConfig::system_roots(),
            Trust::PemFile(p) | Trust::Spec(TrustSpec::File { path: p, .. }) => {
                TlsConfig::ca_file(p)
            }
            // Not reached: driver_can() said no.
            Trust::Spec(_) => TlsConfig::system_roots(),
        };
        match &self.identity {
            Some(ClientIdentity::PemFiles(cert, key))
            | Some(ClientIdentity::Spec(IdentitySpec::Files { cert, key })) => {
                config = config.with_client_cert(cert, key);
            }
            // One PEM file with the chain and the key (ssl.keystore.type=PEM):
            // the driver takes the certificates and the key from the same file.
            Some(ClientIdentity::Spec(IdentitySpec::Store { path, .. })) => {
                config = config.with_client_cert(path, path);
            }
            _ => {}
        }
        if let Some(name) = &self.server_name {
            config = config.with_server_name(name.clone());
        }
        BuiltTls {
            config,
            presented: None,
            loaded: Vec::new(),
        }
    }

    fn roots(&self, loaded: &mut Vec<String>) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        let (certs, what) = match &self.trust {
            Trust::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err("no usable CA certificates in the system trust store: give a truststore (ssl.truststore.location or --tls-ca)".into());
                }
                return Ok(roots);
            }
            Trust::PemFile(path) => (
                keystore::pem_certs(
                    &std::fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?,
                    &format!("CA file {}", path.display()),
                )?,
                format!("--tls-ca {}", path.display()),
            ),
            Trust::Spec(TrustSpec::File {
                path,
                password,
                key,
                declared,
            }) => {
                let role = keystore::Role {
                    location_key: key,
                    ..keystore::TRUSTSTORE
                };
                let (certs, format) = keystore::load_trust(path, password.as_ref(), role)?;
                note_declared(
                    loaded,
                    keystore::TRUSTSTORE.type_key,
                    declared.as_deref(),
                    format,
                );
                (certs, format!("{key}: {}", format.name()))
            }
            Trust::Spec(TrustSpec::Dir(path)) => (
                keystore::load_trust_dir(path)?,
                format!("ssl.ca.location: directory {}", path.display()),
            ),
            Trust::Spec(TrustSpec::Inline(pem)) => (
                keystore::pem_certs(pem.as_bytes(), "the inline CA certificates")?,
                "inline CA certificates".to_owned(),
            ),
        };
        let n = certs.len();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{what}: a CA certificate cannot be used: {e}"))?;
        }
        loaded.push(format!("{what}, {n} CA certificate(s)"));
        Ok(roots)
    }

    fn identity(&self, loaded: &mut Vec<String>) -> Result<Option<Identity>, String> {
        let identity = match &self.identity {
            None => return Ok(None),
            Some(ClientIdentity::PemFiles(cert, key))
            | Some(ClientIdentity::Spec(IdentitySpec::Files { cert, key })) => {
                let read = |p: &PathBuf, what: &str| {
                    std::fs::read(p).map_err(|e| format!("{what} {}: {e}", p.display()))
                };
                let chain = keystore::pem_certs(
                    &read(cert, "client certificate")?,
                    &format!("client certificate {}", cert.display()),
                )?;
                let key = keystore::pem_key(
                    &read(key, "client key")?,
                    &format!("client key {}", key.display()),
                )?;
                loaded.push(format!(
                    "client certificate: PEM, {} certificate(s)",
                    chain.len()
                ));
                Identity { chain, key }
            }
            Some(ClientIdentity::Spec(IdentitySpec::Store {
                path,
                password,
                declared,
            })) => {
                let (identity, format) = keystore::load_identity(
                    path,
                    password.as_ref(),
                    self.key_password.as_ref(),
                    keystore::KEYSTORE,
                )?;
                note_declared(
                    loaded,
                    keystore::KEYSTORE.type_key,
                    declared.as_deref(),
                    format,
                );
                loaded.push(format!(
                    "ssl.keystore.location: {}, a key and {} certificate(s)",
                    format.name(),
                    identity.chain.len()
                ));
                identity
            }
            Some(ClientIdentity::Spec(IdentitySpec::Inline { chain, key })) => {
                let chain = keystore::pem_certs(chain.as_bytes(), "the inline client certificate")?;
                let key = keystore::pem_key(key.expose().as_bytes(), "the inline client key")?;
                loaded.push(format!(
                    "inline client certificate: {} certificate(s)",
                    chain.len()
                ));
                Identity { chain, key }
            }
        };
        Ok(Some(identity))
    }
}

/// A note when the declared store type is not what the file holds.
fn note_declared(loaded: &mut Vec<String>, key: &str, declared: Option<&str>, found: StoreFormat) {
    if let Some(d) = declared {
        let same = d.eq_ignore_ascii_case(found.name())
            || (d.eq_ignore_ascii_case("PKCS#12") && found == StoreFormat::Pkcs12);
        if !same {
            loaded.push(format!(
                "{key}={d}, but the file holds {}: read as {}",
                found.name(),
                found.name()
            ));
        }
    }
}

fn sniff(path: &std::path::Path) -> Option<StoreFormat> {
    std::fs::read(path).ok().map(|b| StoreFormat::sniff(&b))
}

fn pem_encrypted(path: &std::path::Path) -> bool {
    std::fs::read(path)
        .map(|b| {
            let t = String::from_utf8_lossy(&b);
            t.contains("ENCRYPTED PRIVATE KEY") || t.contains("Proc-Type: 4,ENCRYPTED")
        })
        .unwrap_or(false)
}

/// rustls' WebPKI verifier that records the chain it is shown and, when
/// the configuration asks, skips the name check or the whole check.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    slot: PresentedSlot,
    verify_hostname: bool,
    verify_certificate: bool,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.slot.set(
            std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect(),
        );
        if !self.verify_certificate {
            // enable.ssl.certificate.verification=false: what the client does.
            return Ok(ServerCertVerified::assertion());
        }
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // ssl.endpoint.identification.algorithm empty or none: the
            // chain must still lead to a trusted CA; only the name is not checked.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.verify_hostname => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
