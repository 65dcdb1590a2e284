//! Async callbacks that answer the core's credential requests (OAUTHBEARER
//! tokens, GSSAPI tokens), for the first authentication and every KIP-368
//! re-authentication alike.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use kafka_conn_core::sasl::{Credential, CredentialRequest, GssapiStep, OAuthBearerToken};

use crate::runtime::BoxFuture;

/// What a credential callback may fail with; its text becomes part of the
/// connection's authentication failure (never print secrets into it).
pub type CallbackError = Box<dyn std::error::Error + Send + Sync>;

type TokenFn =
    dyn Fn() -> BoxFuture<'static, Result<OAuthBearerToken, CallbackError>> + Send + Sync;
type GssapiFn =
    dyn Fn(Option<Bytes>) -> BoxFuture<'static, Result<GssapiStep, CallbackError>> + Send + Sync;

/// The application's credential callbacks. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    oauth: Option<Arc<TokenFn>>,
    gssapi: Option<Arc<GssapiFn>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("oauth_token_provider", &self.oauth.is_some())
            .field("gssapi", &self.gssapi.is_some())
            .finish()
    }
}

impl Credentials {
    /// Sets the OAUTHBEARER token provider, called for every
    /// authentication: fetch or refresh the token there.
    pub(crate) fn set_oauth<F, Fut>(&mut self, provider: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<OAuthBearerToken, CallbackError>> + Send + 'static,
    {
        self.oauth = Some(Arc::new(move || Box::pin(provider())));
    }

    /// Sets the GSSAPI step callback: given the server's last token (`None`
    /// first), it returns the next client token from the Kerberos library.
    pub(crate) fn set_gssapi<F, Fut>(&mut self, step: F)
    where
        F: Fn(Option<Bytes>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<GssapiStep, CallbackError>> + Send + 'static,
    {
        self.gssapi = Some(Arc::new(move |t| Box::pin(step(t))));
    }

    /// Starts answering `request`, or says why it cannot be answered.
    pub(crate) fn answer(
        &self,
        request: &CredentialRequest,
    ) -> Result<BoxFuture<'static, Result<Credential, CallbackError>>, &'static str> {
        match request {
            CredentialRequest::OAuthBearerToken => {
                let f = self
                    .oauth
                    .as_ref()
                    .ok_or("OAUTHBEARER needs a token provider: set one with ConnectConfig::with_oauth_token_provider")?;
                let fut = f();
                Ok(Box::pin(
                    async move { fut.await.map(Credential::OAuthBearer) },
                ))
            }
            CredentialRequest::GssapiToken { server_token } => {
                let f = self.gssapi.as_ref().ok_or(
                    "GSSAPI needs a step callback: set one with ConnectConfig::with_gssapi",
                )?;
                let fut = f(server_token.clone());
                Ok(Box::pin(async move { fut.await.map(Credential::Gssapi) }))
            }
            _ => Err("this driver has no callback for a custom mechanism's credential request"),
        }
    }
}
