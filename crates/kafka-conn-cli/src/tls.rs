//! kconn's own rustls configuration: the same trust decisions as
//! kafka-conn-driver's `TlsConfig` (CA file or system store, optional client
//! certificate, `ring`), plus a verifier wrapper that keeps the certificates
//! the broker presented, so that `check` can show the subject and expiry
//! even when the chain is not trusted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::settings::TlsSettings;

/// Why the TLS configuration could not be built (before any connection).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    /// The CA file cannot be read or holds no certificate.
    #[error("cannot use the CA file {}: {detail}: check --tls-ca", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The system trust store has no usable certificate.
    #[error("the system trust store has no usable CA certificate ({errors} errors loading it): give one with --tls-ca")]
    SystemRoots {
        /// How many errors loading it gave.
        errors: usize,
    },
    /// The client certificate cannot be read.
    #[error("cannot use the client certificate {}: {detail}: check --tls-cert", path.display())]
    ClientCert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The client key cannot be read.
    #[error("cannot use the client key {}: {detail}: check --tls-key", path.display())]
    ClientKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the configuration (e.g. a key that does not match the certificate).
    #[error("invalid TLS configuration: {0}")]
    Rustls(String),
}

/// The certificates a broker presented during one TLS handshake
/// (end entity first). Shared between the verifier and the caller.
#[derive(Clone, Default)]
pub(crate) struct CertCapture(Arc<Mutex<Vec<CertificateDer<'static>>>>);

impl fmt::Debug for CertCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CertCapture")
            .field(&self.certificates().len())
            .finish()
    }
}

impl CertCapture {
    /// The chain the broker presented (empty before the handshake, or without TLS).
    pub(crate) fn certificates(&self) -> Vec<CertificateDer<'static>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn store(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = chain;
    }
}

/// rustls' WebPKI verifier, keeping a copy of what it was shown.
#[derive(Debug)]
struct CapturingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    capture: CertCapture,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.capture.store(end_entity, intermediates);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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

/// Builds the rustls client configuration for `settings`; the handshake
/// leaves the broker's certificates in `capture`.
pub(crate) fn client_config(
    settings: &TlsSettings,
    capture: &CertCapture,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match &settings.ca {
        Some(path) => {
            let certs = read_certs(path).map_err(|detail| TlsSetupError::CaFile {
                path: path.clone(),
                detail,
            })?;
            for cert in certs {
                roots.add(cert).map_err(|e| TlsSetupError::CaFile {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsSetupError::SystemRoots {
                    errors: found.errors.len(),
                });
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let verifier = Arc::new(CapturingVerifier {
        inner,
        capture: capture.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs(cert).map_err(|detail| TlsSetupError::ClientCert {
                path: cert.clone(),
                detail,
            })?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::ClientKey {
                    path: key.clone(),
                    detail: e.to_string(),
                })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsSetupError::Rustls(format!("client certificate and key: {e}")))?
        }
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".to_owned());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_reported_with_the_option_to_fix() {
        let settings = TlsSettings {
            ca: Some("/nonexistent/kconn-ca.pem".into()),
            client_cert: None,
            server_name: None,
        };
        let e = client_config(&settings, &CertCapture::default()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, TlsSetupError::CaFile { .. }));
        assert!(text.contains("/nonexistent/kconn-ca.pem"), "{text}");
        assert!(text.ends_with("check --tls-ca"), "{text}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("kconn-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let settings = TlsSettings {
            ca: Some(path.clone()),
            client_cert: None,
            server_name: None,
        };
        let e = client_config(&settings, &CertCapture::default()).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
