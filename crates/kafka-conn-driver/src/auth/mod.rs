//! Authentication as deployed: the credential providers behind the SASL
//! mechanisms that talk to the outside world, each behind its own feature
//! so that the default build links none of them.
//!
//! - `gssapi`: [`Kerberos`] runs the RFC 4752 exchange with MIT krb5's
//!   GSS-API (ticket from a credential cache or a keytab).
//! - `oidc`: [`OidcTokenProvider`] fetches OAUTHBEARER tokens with the
//!   OAuth 2 client credentials grant (KIP-768).
//! - `aws-msk-iam`: [`AwsMskIam`], Amazon MSK's IAM mechanism, signed with
//!   AWS SigV4.
//!
//! Each is one [`CredentialProvider`](crate::CredentialProvider), set with
//! [`ConnectConfig::with_credential_provider`](crate::ConnectConfig::with_credential_provider),
//! that serves every connection the config makes: what differs per
//! connection (the broker's host, an exchange in progress) comes from the
//! [`CredentialContext`](crate::CredentialContext). Blocking work (a KDC
//! round trip, an HTTP fetch, reading a credentials file) runs on the
//! runtime's blocking pool through
//! [`CredentialContext::spawn_blocking`](crate::CredentialContext::spawn_blocking),
//! so the connection's task keeps serving other connections meanwhile.

#[cfg(feature = "aws-msk-iam")]
mod aws_msk_iam;
#[cfg(feature = "gssapi")]
mod gssapi;
#[cfg(feature = "oidc")]
mod oidc;

#[cfg(feature = "aws-msk-iam")]
pub use aws_msk_iam::{AwsCredentials, AwsMskIam, AwsMskIamError};
#[cfg(feature = "gssapi")]
pub use gssapi::{Kerberos, KerberosError, KerberosExchange};
#[cfg(feature = "oidc")]
pub use oidc::{ClientAuth, OidcError, OidcTokenProvider};

use kafka_conn_core::sasl::{Credential, CredentialRequest};

use crate::credentials::CallbackError;
use crate::runtime::BoxFuture;

/// The answer of a provider asked for what it does not provide: the SASL
/// mechanism configured in the core does not match the provider.
fn not_provided(
    provider: &'static str,
    mechanism: &'static str,
    request: &CredentialRequest,
) -> BoxFuture<'static, Result<Credential, CallbackError>> {
    let asked = match request {
        CredentialRequest::OAuthBearerToken => "an OAUTHBEARER token".to_owned(),
        CredentialRequest::GssapiToken { .. } => "a GSSAPI token".to_owned(),
        CredentialRequest::Custom { mechanism, .. } => format!("a credential for {mechanism}"),
        other => format!("{other:?}"),
    };
    let message = format!(
        "the {provider} credential provider answers {mechanism} only, and was asked for {asked}: \
         configure the SASL mechanism {mechanism} in the core config"
    );
    Box::pin(async move { Err(message.into()) })
}
