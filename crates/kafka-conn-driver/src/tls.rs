//! TLS settings, the rustls client configuration built from them, and the
//! classification of handshake failures into errors a user can act on.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::error::ConnectError;
use crate::info::Progress;
use crate::runtime::{timeout, Runtime};

/// Where trusted CA certificates come from.
#[derive(Debug, Clone)]
enum Roots {
    /// The operating system's trust store (rustls-native-certs).
    System,
    /// A PEM file with one or more CA certificates.
    CaFile(PathBuf),
    /// A complete rustls configuration given by the application.
    Custom(Arc<rustls::ClientConfig>),
}

/// TLS settings for SSL and SASL_SSL listeners (rustls, `ring` provider).
///
/// System roots come from the operating system's trust store
/// (rustls-native-certs) rather than a compiled-in Mozilla list
/// (webpki-roots): Kafka clusters usually sit behind a private CA that
/// operators install into the system store, and a compiled-in list would
/// silently ignore it.
#[derive(Clone)]
pub struct TlsConfig {
    roots: Roots,
    server_name: Option<String>,
    client_auth: Option<(PathBuf, PathBuf)>,
    // Built once per TlsConfig (and shared by its clones): loading the
    // system store or PEM files on every connect would be wasted work.
    built: Arc<OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("roots", &self.roots)
            .field("server_name", &self.server_name)
            .field("client_cert", &self.client_auth.as_ref().map(|(c, _)| c))
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Trust the operating system's CA certificates.
    pub fn system_roots() -> Self {
        Self::with_roots(Roots::System)
    }

    /// Trust the CA certificates in a PEM file (`ssl.ca.location`).
    pub fn ca_file(path: impl Into<PathBuf>) -> Self {
        Self::with_roots(Roots::CaFile(path.into()))
    }

    /// Use a ready rustls configuration as is (custom verifiers, pinning,
    /// another crypto provider).
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> Self {
        Self::with_roots(Roots::Custom(config))
    }

    fn with_roots(roots: Roots) -> Self {
        Self {
            roots,
            server_name: None,
            client_auth: None,
            built: Arc::new(OnceLock::new()),
        }
    }

    /// Verify the broker's certificate against this name instead of the
    /// host in the address (connecting by IP, or through a tunnel).
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Present a client certificate (mTLS): PEM certificate chain and PEM
    /// private key (PKCS#8, PKCS#1 or SEC1). Ignored with
    /// [`TlsConfig::from_rustls`], whose configuration has its own.
    #[must_use]
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_auth = Some((cert.into(), key.into()));
        self.built = Arc::new(OnceLock::new());
        self
    }

    /// The name the certificate is checked against, given the host connected to.
    pub(crate) fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, ConnectError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned())
            .map_err(|e| ConnectError::TlsConfig(format!("invalid server name {name:?}: {e}")))
    }

    /// The rustls configuration (built on first use).
    pub(crate) fn rustls(&self) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
        self.built
            .get_or_init(|| self.build().map(Arc::new))
            .clone()
            .map_err(ConnectError::TlsConfig)
    }

    fn build(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        match &self.roots {
            Roots::Custom(config) => return Ok(config.as_ref().clone()),
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(format!(
                        "no usable CA certificates in the system trust store ({} errors); give a CA file",
                        found.errors.len()
                    ));
                }
            }
            Roots::CaFile(path) => {
                for cert in read_certs(path, "CA")? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // rustls' own WebPKI verifier (what `with_root_certificates` would
        // build), wrapped to show the chain of a refused handshake. One
        // verifier per configuration: rustls resumes a TLS session only
        // with the verifier that made it.
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| e.to_string())?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PresentedChain(webpki)));
        match &self.client_auth {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let chain = read_certs(cert, "client certificate")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("client key {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate and key: {e}"))
            }
        }
    }
}

fn read_certs(path: &PathBuf, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{what} file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} file {}: no PEM certificates",
            path.display()
        ));
    }
    Ok(certs)
}

thread_local! {
    /// Where [`PresentedChain`] leaves the chain it is shown, while a
    /// handshake is polled inside [`capture_presented`] on this thread.
    static PRESENTED: RefCell<Option<Vec<CertificateDer<'static>>>> = const { RefCell::new(None) };
}

/// rustls' WebPKI verifier, noting the chain it verifies for
/// [`capture_presented`], so a refused certificate can still be shown.
///
/// rustls keeps no peer certificates after a failed verification, and the
/// verifier is shared by every connection of a configuration (and must
/// be: session resumption requires the same verifier), so it cannot hold
/// a per-connection slot. Verification runs synchronously inside the poll
/// of the handshake future, which [`capture_presented`] wraps with a
/// thread-local slot: the chain lands with the handshake that saw it.
#[derive(Debug)]
struct PresentedChain(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for PresentedChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // `try_with`: nothing to do while the thread is being torn down.
        let _ = PRESENTED.try_with(|slot| {
            if let Some(chain) = slot.borrow_mut().as_mut() {
                *chain = std::iter::once(end_entity)
                    .chain(intermediates)
                    .map(|c| c.clone().into_owned())
                    .collect();
            }
        });
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Restores the previous thread-local slot when a poll ends, also by panic.
struct SlotGuard(Option<Option<Vec<CertificateDer<'static>>>>);

impl SlotGuard {
    fn install() -> Self {
        Self(Some(PRESENTED.with(|s| s.replace(Some(Vec::new())))))
    }

    /// Ends the scope: the chain captured during it.
    fn finish(mut self) -> Vec<CertificateDer<'static>> {
        let previous = self.0.take().flatten();
        PRESENTED.with(|s| s.replace(previous)).unwrap_or_default()
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(previous) = self.0.take() {
            let _ = PRESENTED.try_with(|s| s.replace(previous));
        }
    }
}

/// Runs a TLS handshake and returns, with its outcome, the certificate
/// chain the broker presented as far as a [`PresentedChain`] verifier saw
/// it (empty with a configuration from [`TlsConfig::from_rustls`], or when
/// the handshake did not get that far).
pub(crate) async fn capture_presented<F: Future>(
    handshake: F,
) -> (F::Output, Vec<CertificateDer<'static>>) {
    let mut handshake = pin!(handshake);
    let mut presented = Vec::new();
    std::future::poll_fn(|cx| {
        let guard = SlotGuard::install();
        let poll = handshake.as_mut().poll(cx);
        let seen = guard.finish();
        if !seen.is_empty() {
            presented = seen;
        }
        poll.map(|out| (out, std::mem::take(&mut presented)))
    })
    .await
}

/// Turns a failed TLS handshake into the error that says what to fix;
/// `presented` is the chain the broker presented, `progress` what was done.
pub(crate) fn classify_handshake_error(
    err: io::Error,
    addr: SocketAddr,
    server_name: &str,
    presented: Vec<CertificateDer<'static>>,
    progress: Box<Progress>,
) -> ConnectError {
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                ConnectError::NameMismatch {
                    addr,
                    server_name: server_name.to_owned(),
                    detail: c.to_string(),
                    presented,
                    progress,
                }
            }
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnhandledCriticalExtension => ConnectError::CertificateNotTrusted {
                addr,
                detail: c.to_string(),
                presented,
                progress,
            },
            other => ConnectError::InvalidCertificate {
                addr,
                detail: other.to_string(),
                presented,
                progress,
            },
        },
        // Bytes that are not TLS records: a Kafka (or other) server answering
        // our ClientHello in its own protocol.
        Some(
            e @ (rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }),
        ) => ConnectError::NotTls {
            addr,
            detail: format!("the peer answered with non-TLS bytes ({e})"),
            progress,
        },
        Some(rustls::Error::AlertReceived(alert)) => ConnectError::Tls {
            addr,
            detail: format!(
                "the broker sent the alert {alert:?} (a rejected or missing client certificate for mTLS?)"
            ),
            progress,
        },
        Some(e) => ConnectError::Tls {
            addr,
            detail: e.to_string(),
            progress,
        },
        // A Kafka broker reads our ClientHello as a huge frame size and
        // closes: the peer hung up before saying anything TLS.
        None if matches!(
            err.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ) =>
        {
            ConnectError::NotTls {
                addr,
                detail: format!("the peer closed the connection during the TLS handshake ({err})"),
                progress,
            }
        }
        None => ConnectError::Tls {
            addr,
            detail: err.to_string(),
            progress,
        },
    }
}

/// Whether the peer at `addr` answers a TLS ClientHello like a TLS server.
///
/// Some TLS listeners (stunnel, OpenSSL-based proxies) reset a plaintext
/// client without sending a TLS alert, so the core cannot see that it met
/// TLS. When a plaintext connection breaks before the peer said anything,
/// `connect` asks this question on a second connection to tell "the broker
/// speaks TLS" apart from a broker that just hung up.
pub(crate) async fn peer_speaks_tls<R: Runtime>(
    rt: &R,
    addr: SocketAddr,
    within: Duration,
) -> bool {
    let Some(Ok(tcp)) = timeout(rt, within, rt.connect_tcp(addr)).await else {
        return false;
    };
    // No roots: the certificate check fails, and that failure is the proof
    // that a TLS server answered.
    let Ok(builder) = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions() else {
        return false;
    };
    let config = builder
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from("kafka-conn-tls-probe.invalid").expect("a valid DNS name");
    let handshake = futures_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp);
    match timeout(rt, within, handshake).await {
        Some(Ok(_)) => true,
        Some(Err(e)) => matches!(
            e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
            Some(
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::AlertReceived(_)
                    | rustls::Error::PeerIncompatible(_)
            )
        ),
        None => false,
    }
}
