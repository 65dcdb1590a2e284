//! Kerberos V5 for SASL GSSAPI (RFC 4752) through the system's GSS-API
//! (MIT krb5 on Linux, via the `libgssapi` crate): see [`Kerberos`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kafka_conn_core::sasl::{Credential, CredentialRequest, GssapiStep};
use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::Cred;
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE};

use crate::credentials::{CallbackError, CredentialContext, CredentialProvider};
use crate::runtime::BoxFuture;

/// RFC 4752 section 3.1: bit 0 of the security-layer octet is "no security layer".
const NO_SECURITY_LAYER: u8 = 0x01;

/// Tells the in-memory credential caches of different [`Kerberos`] values apart.
static NEXT_CACHE: AtomicU64 = AtomicU64::new(1);

/// How to authenticate with Kerberos (SASL GSSAPI): the service name, and
/// where the client's credentials come from.
///
/// The client principal's ticket comes from, in order:
///
/// - **a keytab** ([`Kerberos::with_keytab`]): MIT krb5 gets a ticket from
///   the KDC with the keytab's key when it needs one, and keeps it in the
///   credential cache given with [`Kerberos::with_credential_cache`], or
///   else in an in-memory cache private to this value and its clones
///   (`MEMORY:`), so no file is written and the user's default cache is
///   not touched. Tickets are renewed from the keytab when they expire.
/// - **a credential cache** ([`Kerberos::with_credential_cache`], e.g.
///   `FILE:/var/run/app/krb5cc`) filled by `kinit` or a ticket manager.
/// - **the default credential cache** otherwise (`KRB5CCNAME`, or
///   `default_ccache_name` in krb5.conf), as `kinit` left it.
///
/// The keytab and cache are passed to GSS-API for each acquisition
/// (`gss_acquire_cred_from`, a per-call credential store): this crate never
/// sets `KRB5CCNAME`, `KRB5_CLIENT_KTNAME` or any other environment
/// variable. The Kerberos configuration itself is process-wide in MIT
/// krb5: it reads `KRB5_CONFIG` (default `/etc/krb5.conf`) from the
/// environment; set it before the first Kerberos call if needed.
///
/// `Kerberos` is the [`CredentialProvider`] of the GSSAPI mechanism
/// ([`SaslConfig::gssapi`](kafka_conn_core::sasl::SaslConfig::gssapi)):
/// set it with [`ConnectConfig::with_credential_provider`](crate::ConnectConfig::with_credential_provider),
/// and it serves every connection the config makes. Each authentication
/// (and each KIP-368 re-authentication) of a connection is a fresh
/// [`KerberosExchange`] for the service principal `<service>@<host>`,
/// with the host the connection was made to
/// ([`CredentialContext::host`]; `GSS_C_NT_HOSTBASED_SERVICE`: with the
/// default service name and broker `b1.example.com:9092` that is
/// `kafka/b1.example.com@REALM`). The host must be the name the broker's
/// principal is made for, which is why brokers are reached by their DNS
/// names, not by address. The exchange lives in the connection's
/// [`CredentialContext`] between two tokens, so connections authenticating
/// at the same time never see each other's; every GSS-API call runs on the
/// runtime's blocking pool ([`CredentialContext::spawn_blocking`]).
///
/// ```no_run
/// # use kafka_conn_driver::{ConnectConfig, Kerberos};
/// # use kafka_conn_driver::core::{Config, sasl::SaslConfig};
/// let kerberos = Kerberos::new()
///     .with_principal("app@EXAMPLE.COM")
///     .with_keytab("/etc/app/app.keytab");
/// let config = ConnectConfig::new(Config::new().with_sasl(SaslConfig::gssapi()))
///     .with_credential_provider(kerberos);
/// ```
#[derive(Clone)]
pub struct Kerberos {
    service_name: String,
    principal: Option<String>,
    keytab: Option<PathBuf>,
    ccache: Option<String>,
    authzid: String,
    memory_ccache: Arc<str>,
}

impl fmt::Debug for Kerberos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nothing here is secret: paths and names only.
        f.debug_struct("Kerberos")
            .field("service_name", &self.service_name)
            .field("principal", &self.principal)
            .field("keytab", &self.keytab)
            .field("credential_cache", &self.credential_cache())
            .field("authorization_id", &self.authzid)
            .finish()
    }
}

impl Default for Kerberos {
    fn default() -> Self {
        Self::new()
    }
}

impl Kerberos {
    /// Service name `kafka`, the default credentials (no keytab, the
    /// default credential cache), no authorization id.
    pub fn new() -> Self {
        let n = NEXT_CACHE.fetch_add(1, Ordering::Relaxed);
        Self {
            service_name: "kafka".into(),
            principal: None,
            keytab: None,
            ccache: None,
            authzid: String::new(),
            memory_ccache: format!("MEMORY:kafka-conn-{}-{n}", std::process::id()).into(),
        }
    }

    /// The broker's service name, the first part of its principal
    /// (`sasl.kerberos.service.name`; default `kafka`).
    #[must_use]
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// The client principal (e.g. `app@EXAMPLE.COM`). Without it, the
    /// credential cache's principal is used, or the keytab's first entry.
    #[must_use]
    pub fn with_principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// Get tickets with the key in this keytab file
    /// (`sasl.kerberos.keytab`), when the credential cache has none.
    #[must_use]
    pub fn with_keytab(mut self, path: impl Into<PathBuf>) -> Self {
        self.keytab = Some(path.into());
        self
    }

    /// Use this credential cache (e.g. `FILE:/tmp/krb5cc_app`, `DIR:...`,
    /// `KEYRING:...`) instead of the default one.
    #[must_use]
    pub fn with_credential_cache(mut self, name: impl Into<String>) -> Self {
        self.ccache = Some(name.into());
        self
    }

    /// The authorization identity sent in the last message (RFC 4752
    /// section 3.1); empty by default, which means "the authenticated
    /// principal". Kafka brokers ignore it.
    #[must_use]
    pub fn with_authorization_id(mut self, authzid: impl Into<String>) -> Self {
        self.authzid = authzid.into();
        self
    }

    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The configured client principal, if any.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// The configured keytab, if any.
    pub fn keytab(&self) -> Option<&Path> {
        self.keytab.as_deref()
    }

    /// The credential cache used: the configured one, the private
    /// in-memory one when only a keytab is configured, or `None` for the
    /// default cache.
    pub fn credential_cache(&self) -> Option<&str> {
        match (&self.ccache, &self.keytab) {
            (Some(c), _) => Some(c),
            (None, Some(_)) => Some(&self.memory_ccache),
            (None, None) => None,
        }
    }

    /// The GSS-API host-based service name for `host`: `<service>@<host>`.
    pub fn service_principal(&self, host: &str) -> String {
        format!("{}@{host}", self.service_name)
    }

    /// A new exchange with the broker `host` (one authentication). Its
    /// [`KerberosExchange::step`] blocks on the KDC: run it off the
    /// async executor.
    pub fn exchange(&self, host: &str) -> KerberosExchange {
        KerberosExchange {
            config: self.clone(),
            target: self.service_principal(host),
            phase: Phase::Start,
        }
    }

    /// The initiator credential, or `None` for GSS-API's default.
    fn credential(&self, target: &str) -> Result<Option<Cred>, KerberosError> {
        let mut store: Vec<(&'static str, String)> = Vec::new();
        if let Some(keytab) = &self.keytab {
            store.push(("client_keytab", keytab.display().to_string()));
        }
        if let Some(ccache) = self.credential_cache() {
            store.push(("ccache", ccache.to_owned()));
        }
        if store.is_empty() && self.principal.is_none() {
            return Ok(None);
        }
        ffi::acquire_initiator_cred(self.principal.as_deref(), &store)
            .map(Some)
            .map_err(|e| match e {
                ffi::AcquireError::Gss(e) => {
                    KerberosError::gss(self.acquire_step(), target.to_owned(), e)
                }
                ffi::AcquireError::Nul(what) => {
                    KerberosError::Config(format!("the {what} contains a NUL byte"))
                }
            })
    }

    fn acquire_step(&self) -> &'static str {
        match (&self.keytab, &self.ccache) {
            (Some(_), _) => "acquiring credentials (keytab)",
            (None, Some(_)) => "acquiring credentials (credential cache)",
            (None, None) => "acquiring credentials",
        }
    }
}

impl CredentialProvider for Kerberos {
    /// Answers [`CredentialRequest::GssapiToken`]: without a server token
    /// a new exchange starts for `<service>@<context.host>`; with one, the
    /// connection's exchange in progress takes its next step. Each step
    /// runs on the blocking pool; the exchange is kept in the context until
    /// the next token.
    fn provide(
        &self,
        request: CredentialRequest,
        context: CredentialContext,
    ) -> BoxFuture<'static, Result<Credential, CallbackError>> {
        let CredentialRequest::GssapiToken { server_token } = request else {
            return super::not_provided("Kerberos", "GSSAPI", &request);
        };
        let exchange =
            match &server_token {
                // The first token of an authentication or re-authentication:
                // whatever an earlier exchange left is replaced.
                None => {
                    drop(context.take_state::<KerberosExchange>());
                    Ok(self.exchange(&context.host))
                }
                Some(_) => context.take_state::<KerberosExchange>().ok_or_else(|| {
                    KerberosError::OutOfOrder {
                        target: self.service_principal(&context.host),
                        why: "a server token arrived before the exchange started",
                    }
                }),
            };
        Box::pin(async move {
            let mut exchange = exchange?;
            let (exchange, step) = context
                .spawn_blocking(move || {
                    let step = exchange.step(server_token.as_deref());
                    (exchange, step)
                })
                .await;
            let step = step?;
            if !exchange.is_done() {
                context.keep_state(exchange);
            }
            Ok(Credential::Gssapi(step))
        })
    }
}

/// Where an exchange is (RFC 4752 section 3.1).
enum Phase {
    /// Nothing sent yet.
    Start,
    /// `gss_init_sec_context` needs more tokens.
    Establishing(ClientCtx),
    /// The context is established; the wrapped security-layer offer is next.
    Negotiating(ClientCtx),
    /// Complete.
    Done,
    /// A step failed; the exchange cannot go on.
    Failed,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Establishing(_) => "establishing the context",
            Phase::Negotiating(_) => "negotiating the security layer",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }
}

/// One SASL GSSAPI exchange with one broker (RFC 4752 section 3.1), made
/// by [`Kerberos::exchange`]. Feed it the server's tokens in order.
///
/// Its steps call GSS-API, which may contact the KDC (blocking network
/// I/O, with krb5's own timeouts): run them off the async executor, as
/// [`Kerberos`]'s [`CredentialProvider`] does. (The provider is all a
/// connection needs; an exchange of your own is for driving the core
/// without this crate's driver.)
pub struct KerberosExchange {
    config: Kerberos,
    target: String,
    phase: Phase,
}

impl fmt::Debug for KerberosExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KerberosExchange")
            .field("target", &self.target)
            .field("phase", &self.phase.name())
            .finish()
    }
}

impl KerberosExchange {
    /// The service principal this exchange authenticates to (`kafka@host`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether the exchange completed.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The next client message, given the server's last one (`None` at
    /// the start), as the core's GSSAPI mechanism asks for it
    /// ([`kafka_conn_core::sasl::CredentialRequest::GssapiToken`]):
    ///
    /// 1. context establishment: `gss_init_sec_context` with mutual
    ///    authentication, answering each output token (an empty one when
    ///    the context completes without output, RFC 4752 section 3.1);
    /// 2. the server's wrapped 4-octet security-layer offer is unwrapped;
    ///    the reply is "no security layer" (`0x01`), a maximum message
    ///    size of 0 (RFC 4752 requires 0 without a layer) and the
    ///    authorization id, wrapped without confidentiality, and it is the
    ///    client's last message ([`GssapiStep::SendLast`]): with
    ///    SaslAuthenticate the broker's answer to it ends the exchange, and
    ///    under the legacy SaslHandshake v0 flow it ends once written, as
    ///    Apache Kafka's broker sends nothing more there.
    pub fn step(&mut self, server_token: Option<&[u8]>) -> Result<GssapiStep, KerberosError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Failed);
        let (step, next) = match (phase, server_token) {
            (Phase::Start, None) => {
                let cred = self.config.credential(&self.target)?;
                let name = Name::new(self.target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
                    .map_err(|e| self.gss("importing the service name", e))?;
                // Mutual authentication: the broker proves it holds the
                // service key (the AP-REP), as Kafka's Java client asks.
                let ctx =
                    ClientCtx::new(cred, name, CtxFlags::GSS_C_MUTUAL_FLAG, Some(GSS_MECH_KRB5));
                self.init(ctx, None)?
            }
            (Phase::Establishing(ctx), Some(token)) => self.init(ctx, Some(token))?,
            (Phase::Negotiating(mut ctx), Some(token)) => {
                let offer = ctx
                    .unwrap(token)
                    .map_err(|e| self.gss("unwrapping the security-layer offer", e))?;
                if offer.len() != 4 {
                    return Err(self.layer(format!(
                        "the broker's offer is {} bytes, RFC 4752 section 3.1 says 4",
                        offer.len()
                    )));
                }
                if offer[0] & NO_SECURITY_LAYER == 0 {
                    return Err(self.layer(format!(
                        "the broker does not offer \"no security layer\" (offered layers {:#04x}); \
                         Kafka protects connections with TLS, so this client supports no other",
                        offer[0]
                    )));
                }
                // RFC 4752 section 3.1: layer bitmask, 3-octet maximum size
                // (0 without a layer), then the UTF-8 authorization id.
                let mut reply = vec![NO_SECURITY_LAYER, 0, 0, 0];
                reply.extend_from_slice(self.config.authzid.as_bytes());
                let wrapped = ctx
                    .wrap(false, &reply)
                    .map_err(|e| self.gss("wrapping the security-layer reply", e))?;
                (GssapiStep::SendLast(wrapped.to_vec()), Phase::Done)
            }
            (phase, token) => {
                let why = match (&phase, token) {
                    (Phase::Start, Some(_)) => {
                        "a server token arrived before the first client token"
                    }
                    (Phase::Done, _) => "the exchange is complete",
                    (Phase::Failed, _) => "an earlier step failed",
                    _ => "the next step needs the server's token",
                };
                return Err(KerberosError::OutOfOrder {
                    target: self.target.clone(),
                    why,
                });
            }
        };
        self.phase = next;
        Ok(step)
    }

    /// One `gss_init_sec_context` call.
    fn init(
        &self,
        mut ctx: ClientCtx,
        token: Option<&[u8]>,
    ) -> Result<(GssapiStep, Phase), KerberosError> {
        let out = ctx
            .step(token, None)
            .map_err(|e| self.gss("gss_init_sec_context", e))?;
        // RFC 4752 section 3.1: when the context completes without an
        // output token, the client still answers, with an empty one.
        let out = out.map(|b| b.to_vec()).unwrap_or_default();
        let next = if ctx.is_complete() {
            Phase::Negotiating(ctx)
        } else {
            Phase::Establishing(ctx)
        };
        Ok((GssapiStep::Send(out), next))
    }

    fn gss(&self, step: &'static str, e: libgssapi::error::Error) -> KerberosError {
        KerberosError::gss(step, self.target.clone(), e)
    }

    fn layer(&self, why: String) -> KerberosError {
        KerberosError::SecurityLayer {
            target: self.target.clone(),
            why,
        }
    }
}

/// Why a Kerberos exchange failed locally (the broker's own refusals come
/// as the connection's authentication failure with its error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KerberosError {
    /// A GSS-API call failed; `status` is GSS-API's text for the major
    /// and minor (Kerberos) status codes, e.g. "No credentials were
    /// supplied, or the credentials were unavailable or inaccessible (No
    /// Kerberos credentials available ...)".
    #[error("GSSAPI {step} for {target} failed: {status}")]
    Gss {
        /// What was being done (e.g. `gss_init_sec_context`).
        step: &'static str,
        /// The service principal (`kafka@host`).
        target: String,
        /// The GSS-API major status code.
        major: u32,
        /// The mechanism's (Kerberos) minor status code.
        minor: u32,
        /// Both codes as text, from `gss_display_status`.
        status: String,
    },
    /// The broker's security-layer offer is malformed or has no "no
    /// security layer" option.
    #[error("GSSAPI security-layer negotiation with {target}: {why}")]
    SecurityLayer {
        /// The service principal.
        target: String,
        /// What is wrong.
        why: String,
    },
    /// A step was called out of order.
    #[error("GSSAPI exchange with {target}: {why}")]
    OutOfOrder {
        /// The service principal.
        target: String,
        /// What happened.
        why: &'static str,
    },
    /// A setting GSS-API cannot take (e.g. a NUL byte in a path).
    #[error("invalid Kerberos setting: {0}")]
    Config(String),
}

impl KerberosError {
    fn gss(step: &'static str, target: String, e: libgssapi::error::Error) -> Self {
        let status = e.to_string().trim().to_owned();
        KerberosError::Gss {
            step,
            target,
            major: e.major.bits(),
            minor: e.minor,
            status,
        }
    }
}

/// The one GSS-API call the safe binding does not wrap.
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{c_void, CString};
    use std::ptr;

    use libgssapi::credential::Cred;
    use libgssapi::error::{Error, MajorFlags};
    use libgssapi_sys::{
        gss_OID_desc, gss_acquire_cred_from, gss_buffer_desc, gss_cred_id_t, gss_import_name,
        gss_key_value_element_desc, gss_key_value_set_desc, gss_name_t, gss_release_name,
        OM_uint32, _GSS_C_INDEFINITE, GSS_C_INITIATE, GSS_S_COMPLETE,
    };

    /// GSS_KRB5_NT_PRINCIPAL_NAME, 1.2.840.113554.1.2.2.1 (RFC 1964
    /// section 2.1.1), DER-encoded: a principal name such as `app@REALM`.
    const KRB5_PRINCIPAL_NAME: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";

    pub(super) enum AcquireError {
        Gss(Error),
        Nul(&'static str),
    }

    /// `gss_acquire_cred_from` (MIT krb5 1.11+, also Heimdal) for an
    /// initiator: `store` is the per-call credential store (`ccache`,
    /// `client_keytab`), so no environment variable is needed.
    pub(super) fn acquire_initiator_cred(
        principal: Option<&str>,
        store: &[(&'static str, String)],
    ) -> Result<Cred, AcquireError> {
        let strings = store
            .iter()
            .map(|(k, v)| {
                Ok((
                    CString::new(*k).map_err(|_| AcquireError::Nul("store key"))?,
                    CString::new(v.as_str()).map_err(|_| AcquireError::Nul(k))?,
                ))
            })
            .collect::<Result<Vec<_>, AcquireError>>()?;
        let mut elements: Vec<gss_key_value_element_desc> = strings
            .iter()
            .map(|(k, v)| gss_key_value_element_desc {
                key: k.as_ptr(),
                value: v.as_ptr(),
            })
            .collect();
        let set = gss_key_value_set_desc {
            count: elements.len() as OM_uint32,
            elements: elements.as_mut_ptr(),
        };
        let mut minor: OM_uint32 = GSS_S_COMPLETE;
        let mut name: gss_name_t = ptr::null_mut();
        if let Some(principal) = principal {
            let mut buffer = gss_buffer_desc {
                length: principal.len(),
                value: principal.as_ptr() as *mut c_void,
            };
            let mut oid = gss_OID_desc {
                length: KRB5_PRINCIPAL_NAME.len() as OM_uint32,
                elements: KRB5_PRINCIPAL_NAME.as_ptr() as *mut c_void,
            };
            // SAFETY: `buffer` and `oid` point to live, correctly sized
            // memory that gss_import_name only reads; `name` receives a new
            // name that is released below.
            let major = unsafe { gss_import_name(&mut minor, &mut buffer, &mut oid, &mut name) };
            if major != GSS_S_COMPLETE {
                return Err(AcquireError::Gss(Error {
                    major: MajorFlags::from_bits_retain(major),
                    minor,
                }));
            }
        }
        let mut cred: gss_cred_id_t = ptr::null_mut();
        // SAFETY: `name` is null or the name imported above; `set` and the
        // C strings its elements point to outlive the call (gss only reads
        // them); `cred` receives a new credential handle that we own.
        let major = unsafe {
            gss_acquire_cred_from(
                &mut minor,
                name,
                _GSS_C_INDEFINITE,
                ptr::null_mut(),
                GSS_C_INITIATE as _,
                &set,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let acquire_minor = minor;
        if !name.is_null() {
            let mut release_minor: OM_uint32 = GSS_S_COMPLETE;
            // SAFETY: `name` was made by gss_import_name and is released once.
            unsafe { gss_release_name(&mut release_minor, &mut name) };
        }
        if major != GSS_S_COMPLETE {
            return Err(AcquireError::Gss(Error {
                major: MajorFlags::from_bits_retain(major),
                minor: acquire_minor,
            }));
        }
        // SAFETY: `cred` is a fresh handle from gss_acquire_cred_from; the
        // returned Cred takes sole ownership and releases it on drop.
        Ok(unsafe { Cred::from_c(cred) })
    }
}
