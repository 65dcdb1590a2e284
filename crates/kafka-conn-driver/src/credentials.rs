//! The application's answers to the core's credential requests: one
//! [`CredentialProvider`] for every SASL mechanism (OAUTHBEARER tokens,
//! GSSAPI tokens, a user-defined mechanism's `Custom` requests), asked for
//! the first authentication and for every KIP-368 re-authentication alike,
//! with a [`CredentialContext`] saying which broker asks and why. SCRAM's
//! PBKDF2 request is the one the driver answers itself, on the blocking pool.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use kafka_conn_core::sasl::{Credential, CredentialRequest, GssapiStep, OAuthBearerToken};

use crate::runtime::{run_caught, spawn_thread, BoxFuture, Job, Runtime};

/// What a credential provider may fail with; its text becomes part of the
/// connection's authentication failure (never print secrets into it).
pub type CallbackError = Box<dyn std::error::Error + Send + Sync>;

/// Answers the credential requests of a connection's SASL mechanism:
/// set one with [`ConnectConfig::with_credential_provider`].
///
/// The core asks through [`CredentialRequest`]: an OAUTHBEARER token, the
/// next GSSAPI token, or a user-defined mechanism's
/// [`CredentialRequest::Custom`] request; the answer is the matching
/// [`Credential`] (a `Custom` request is answered with
/// [`Credential::Custom`]). The provider is asked again for every
/// re-authentication (KIP-368), so a provider that fetches, refreshes or
/// signs does it there; [`CredentialContext`] says which broker asks and
/// whether it is a re-authentication. (SCRAM's
/// [`CredentialRequest::ScramSaltedPassword`] never reaches it: the driver
/// runs that PBKDF2 job itself, on the runtime's blocking pool.)
///
/// Implemented for every `Fn(CredentialRequest, CredentialContext) -> impl
/// Future<Output = Result<Credential, CallbackError>>` (a closure passed
/// directly needs its two argument types written out), and by any type
/// of yours.
///
/// The future runs in the connection's task, polled with the socket and
/// the timers; blocking work (a Kerberos library, a key derivation)
/// belongs in [`CredentialContext::spawn_blocking`]. An error fails the
/// authentication: the connection closes with an authentication failure
/// carrying the error's text.
///
/// [`ConnectConfig::with_credential_provider`]: crate::ConnectConfig::with_credential_provider
pub trait CredentialProvider: Send + Sync + 'static {
    /// Starts answering `request` for the connection described by `context`.
    fn provide(
        &self,
        request: CredentialRequest,
        context: CredentialContext,
    ) -> BoxFuture<'static, Result<Credential, CallbackError>>;
}

impl<F, Fut> CredentialProvider for F
where
    F: Fn(CredentialRequest, CredentialContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Credential, CallbackError>> + Send + 'static,
{
    fn provide(
        &self,
        request: CredentialRequest,
        context: CredentialContext,
    ) -> BoxFuture<'static, Result<Credential, CallbackError>> {
        Box::pin(self(request, context))
    }
}

/// A provider's answer in the making.
type Answer = BoxFuture<'static, Result<Credential, CallbackError>>;

/// Runs a boxed job on a blocking pool; the future ends when the job has.
type BlockingPool = Arc<dyn Fn(Job) -> BoxFuture<'static, ()> + Send + Sync>;

/// A provider's state for one connection (see [`CredentialContext::keep_state`]).
type StateSlot = Arc<Mutex<Option<Box<dyn Any + Send>>>>;

/// Which connection a [`CredentialProvider`] is asked for, and why.
///
/// What the providers of the next mechanisms need: a Kerberos provider
/// builds the service principal `kafka/<host>` from [`host`](Self::host);
/// an AWS MSK IAM signer signs for the host and must sign afresh on every
/// re-authentication; an OIDC provider refreshes its token when
/// [`reauthentication`](Self::reauthentication) is set.
///
/// Every connection has its own context (clones share it), with a slot
/// where a provider keeps what one exchange needs from one request to the
/// next ([`keep_state`](Self::keep_state) and
/// [`take_state`](Self::take_state)): one provider serves every connection
/// a [`ConnectConfig`](crate::ConnectConfig) makes, several of them
/// authenticating at once.
#[derive(Clone)]
#[non_exhaustive]
pub struct CredentialContext {
    /// The broker's host as given in the address to `connect` (a name, or
    /// an IP literal), before resolution.
    pub host: String,
    /// The address the connection is made to (the proxy's through a
    /// proxy; `0.0.0.0:0` over a transport without an IP address).
    pub address: SocketAddr,
    /// Whether this is a KIP-368 re-authentication of a connection that is
    /// already authenticated (`false` for its first authentication).
    pub reauthentication: bool,
    blocking: BlockingPool,
    state: StateSlot,
}

impl fmt::Debug for CredentialContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialContext")
            .field("host", &self.host)
            .field("address", &self.address)
            .field("reauthentication", &self.reauthentication)
            .finish_non_exhaustive()
    }
}

impl CredentialContext {
    /// A first authentication of `host` at `address`, whose
    /// [`spawn_blocking`](Self::spawn_blocking) starts a thread per call:
    /// for testing a provider, or for a driver of your own. The connections
    /// of this crate make theirs with the runtime's blocking pool.
    pub fn new(host: impl Into<String>, address: SocketAddr) -> Self {
        Self {
            host: host.into(),
            address,
            reauthentication: false,
            blocking: Arc::new(spawn_thread),
            state: StateSlot::default(),
        }
    }

    /// The same connection, for a re-authentication (`true`) or the first
    /// authentication (`false`).
    #[must_use]
    pub fn with_reauthentication(mut self, reauthentication: bool) -> Self {
        self.reauthentication = reauthentication;
        self
    }

    /// Keeps `state` for this connection until [`take_state`](Self::take_state)
    /// takes it (replacing what was kept before): the state of a
    /// multi-step exchange between two requests of the same connection,
    /// such as a GSSAPI security context between two tokens.
    ///
    /// The slot belongs to the connection: it is dropped with it, so state
    /// left behind by an exchange that never finished (the broker closed
    /// the connection midway) goes away with the connection instead of
    /// piling up in a table keyed by connection.
    pub fn keep_state<T: Send + 'static>(&self, state: T) {
        *self.slot() = Some(Box::new(state));
    }

    /// Takes the state kept for this connection by
    /// [`keep_state`](Self::keep_state), if it is a `T` (anything else
    /// stays kept).
    pub fn take_state<T: Send + 'static>(&self) -> Option<T> {
        let mut slot = self.slot();
        match slot.take()?.downcast::<T>() {
            Ok(state) => Some(*state),
            Err(other) => {
                *slot = Some(other);
                None
            }
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Box<dyn Any + Send>>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The context of a connection on runtime `rt`.
    pub(crate) fn for_runtime<R: Runtime>(rt: &R, host: &str, address: SocketAddr) -> Self {
        let rt = rt.clone();
        Self {
            blocking: Arc::new(move |job| rt.spawn_blocking(job)),
            ..Self::new(host, address)
        }
    }

    /// Runs the blocking closure `f` on the connection's runtime's blocking
    /// pool ([`Runtime::spawn_blocking`]) and resolves to its result, so
    /// that a provider can call a blocking library (Kerberos'
    /// `init_sec_context`, a key derivation) without stalling the
    /// connection's task or the other tasks of its executor. A panic in `f`
    /// resumes in the awaiting task.
    pub fn spawn_blocking<F, T>(&self, f: F) -> BoxFuture<'static, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (job, result) = run_caught(f);
        let ran = (self.blocking)(job);
        Box::pin(async move {
            ran.await;
            result.await
        })
    }
}

/// The connection's credential provider, if any. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    provider: Option<Arc<dyn CredentialProvider>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("provider", &self.provider.is_some())
            .finish()
    }
}

impl Credentials {
    /// Makes `provider` answer every request, in place of any before it.
    pub(crate) fn set(&mut self, provider: impl CredentialProvider) {
        self.provider = Some(Arc::new(provider));
    }

    /// Makes `token` answer OAUTHBEARER token requests; the provider set
    /// before (if any) keeps answering the others.
    pub(crate) fn set_oauth<F, Fut>(&mut self, token: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<OAuthBearerToken, CallbackError>> + Send + 'static,
    {
        let rest = self.provider.take();
        self.set(
            move |request: CredentialRequest, context: CredentialContext| -> Answer {
                match request {
                    CredentialRequest::OAuthBearerToken => {
                        let token = token();
                        Box::pin(async move { token.await.map(Credential::OAuthBearer) })
                    }
                    other => pass_on(rest.as_deref(), other, context),
                }
            },
        );
    }

    /// Makes `step` answer GSSAPI token requests; the provider set before
    /// (if any) keeps answering the others.
    pub(crate) fn set_gssapi<F, Fut>(&mut self, step: F)
    where
        F: Fn(Option<Bytes>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<GssapiStep, CallbackError>> + Send + 'static,
    {
        let rest = self.provider.take();
        self.set(
            move |request: CredentialRequest, context: CredentialContext| -> Answer {
                match request {
                    CredentialRequest::GssapiToken { server_token } => {
                        let step = step(server_token);
                        Box::pin(async move { step.await.map(Credential::Gssapi) })
                    }
                    other => pass_on(rest.as_deref(), other, context),
                }
            },
        );
    }

    /// Starts answering `request`, or says why nobody can.
    pub(crate) fn answer(
        &self,
        request: CredentialRequest,
        context: CredentialContext,
    ) -> Result<Answer, String> {
        match (request, &self.provider) {
            // SCRAM's PBKDF2 is the driver's to run, not the application's:
            // on the blocking pool, so the executor's thread keeps serving
            // other connections meanwhile (its result is also cached for
            // the next authentication).
            (CredentialRequest::ScramSaltedPassword(job), _) => Ok(Box::pin(async move {
                Ok(context.spawn_blocking(move || job.run()).await)
            })),
            (request, Some(p)) => Ok(p.provide(request, context)),
            (request, None) => Err(unanswered(&request)),
        }
    }
}

/// Hands `request` to `rest`, the provider set before a sugar method's.
fn pass_on(
    rest: Option<&dyn CredentialProvider>,
    request: CredentialRequest,
    context: CredentialContext,
) -> Answer {
    match rest {
        Some(p) => p.provide(request, context),
        None => {
            let e = Unanswered(unanswered(&request));
            Box::pin(async move { Err(e.into()) })
        }
    }
}

/// No provider answers this kind of request: a configuration mistake, not
/// a failing provider (the engine words it so).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unanswered(pub(crate) String);

/// What to set for `request`.
fn unanswered(request: &CredentialRequest) -> String {
    match request {
        CredentialRequest::OAuthBearerToken => "OAUTHBEARER needs a token provider: set one with ConnectConfig::with_oauth_token_provider (or with_credential_provider)".to_owned(),
        CredentialRequest::GssapiToken { .. } => {
            "GSSAPI needs a step callback: set one with ConnectConfig::with_gssapi (or with_credential_provider)".to_owned()
        }
        CredentialRequest::Custom { mechanism, .. } => format!(
            "the mechanism {mechanism} asks the application for a credential: set a provider with ConnectConfig::with_credential_provider"
        ),
        _ => "this credential request needs a provider: set one with ConnectConfig::with_credential_provider".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use kafka_conn_core::sasl::GssapiStep;

    use super::*;
    use crate::runtime::tests::block_on;

    fn context() -> CredentialContext {
        CredentialContext::new("broker-1.example", SocketAddr::from(([10, 0, 0, 1], 9092)))
    }

    fn custom(data: &'static [u8]) -> CredentialRequest {
        CredentialRequest::Custom {
            mechanism: "X-TEST".to_owned(),
            data: Bytes::from_static(data),
        }
    }

    /// The answer to `request`: the credential, or the error's text.
    fn answer(credentials: &Credentials, request: CredentialRequest) -> Result<Credential, String> {
        let fut = credentials.answer(request, context())?;
        block_on(fut).expect("no panic").map_err(|e| e.to_string())
    }

    fn token(t: &str) -> Credential {
        Credential::OAuthBearer(OAuthBearerToken::new(t))
    }

    #[test]
    fn one_provider_answers_every_kind_and_the_sugar_layers_over_it() {
        let none = Credentials::default();
        let e = answer(&none, CredentialRequest::OAuthBearerToken).unwrap_err();
        assert!(e.contains("with_oauth_token_provider"), "{e}");
        let e = answer(&none, custom(b"x")).unwrap_err();
        assert!(
            e.contains("X-TEST") && e.contains("with_credential_provider"),
            "{e}"
        );

        // OAuth sugar alone: other kinds are told what to set.
        let mut c = Credentials::default();
        c.set_oauth(|| async { Ok(OAuthBearerToken::new("t1")) });
        assert_eq!(
            answer(&c, CredentialRequest::OAuthBearerToken),
            Ok(token("t1"))
        );
        let gssapi = CredentialRequest::GssapiToken { server_token: None };
        let e = answer(&c, gssapi.clone()).unwrap_err();
        assert!(e.contains("with_gssapi"), "{e}");

        // A provider for everything, then sugar on top: the sugar answers
        // its kind, the provider the rest (Custom included).
        let mut c = Credentials::default();
        c.set(
            |request: CredentialRequest, context: CredentialContext| async move {
                match request {
                    CredentialRequest::Custom { data, .. } => {
                        let mut answer = data.to_vec();
                        answer.extend_from_slice(context.host.as_bytes());
                        Ok(Credential::Custom(answer.into()))
                    }
                    other => Err(format!("the provider got {other:?}").into()),
                }
            },
        );
        c.set_gssapi(|server_token| async move {
            assert_eq!(server_token, None);
            Ok(GssapiStep::Send(b"krb".to_vec()))
        });
        assert_eq!(
            answer(&c, custom(b"hi@")),
            Ok(Credential::Custom(Bytes::from_static(
                b"hi@broker-1.example"
            )))
        );
        assert_eq!(
            answer(&c, gssapi),
            Ok(Credential::Gssapi(GssapiStep::Send(b"krb".to_vec())))
        );
        let e = answer(&c, CredentialRequest::OAuthBearerToken).unwrap_err();
        assert!(e.contains("the provider got OAuthBearerToken"), "{e}");

        // A provider set last replaces everything before it.
        c.set(|_: CredentialRequest, _: CredentialContext| async { Ok(token("t2")) });
        assert_eq!(answer(&c, custom(b"x")), Ok(token("t2")));
    }

    #[test]
    fn the_context_runs_blocking_work_on_its_pool() {
        let jobs = Arc::new(AtomicUsize::new(0));
        let counted = jobs.clone();
        let context = CredentialContext {
            blocking: Arc::new(move |job| {
                counted.fetch_add(1, Ordering::SeqCst);
                spawn_thread(job)
            }),
            ..context()
        };
        let caller = std::thread::current().id();
        let (value, on) = block_on(context.spawn_blocking(|| (7, std::thread::current().id())))
            .expect("no panic");
        assert_eq!((value, jobs.load(Ordering::SeqCst)), (7, 1));
        assert_ne!(on, caller);
        let reauth = context.clone().with_reauthentication(true);
        assert!(reauth.reauthentication && !context.reauthentication);
        let shown = format!("{reauth:?}");
        assert!(
            shown.contains("broker-1.example") && shown.contains("reauthentication: true"),
            "{shown}"
        );
    }

    #[test]
    fn each_connection_has_one_state_slot_shared_by_its_clones() {
        let a = context();
        let b = context();
        a.keep_state(String::from("exchange of a"));
        // Another connection sees nothing; a clone (a later request of the
        // same connection, a re-authentication) sees the same slot.
        assert_eq!(b.take_state::<String>(), None);
        let later = a.clone().with_reauthentication(true);
        // The wrong type leaves the state where it is.
        assert_eq!(later.take_state::<u32>(), None);
        assert_eq!(
            later.take_state::<String>().as_deref(),
            Some("exchange of a")
        );
        assert_eq!(a.take_state::<String>(), None, "taken once");
        // The slot goes with the connection's last context.
        let dropped = Arc::new(());
        a.keep_state(dropped.clone());
        assert_eq!(Arc::strong_count(&dropped), 2);
        drop((a, later));
        assert_eq!(Arc::strong_count(&dropped), 1);
    }
}
