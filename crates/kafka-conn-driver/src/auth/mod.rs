//! Authentication as deployed: the credential sources behind the SASL
//! mechanisms that talk to the outside world, each behind its own feature
//! so that the default build links none of them.
//!
//! - `gssapi`: [`Kerberos`] runs the RFC 4752 exchange with MIT krb5's
//!   GSS-API (ticket from a credential cache or a keytab).
//! - `oidc`: [`OidcTokenProvider`] fetches OAUTHBEARER tokens with the
//!   OAuth 2 client credentials grant (KIP-768).
//! - `aws-msk-iam`: [`AwsMskIam`], Amazon MSK's IAM mechanism, signed with
//!   AWS SigV4 (a pure computation: nothing to run off the executor).
//!
//! Each source has a narrow, runtime-free core (one exchange, one fetch)
//! and an adapter to today's [`crate::ConnectConfig`] callbacks. Blocking
//! calls (a KDC round trip) run off the async executor through
//! [`off_executor`], so the connection's task keeps serving other
//! connections while a ticket is fetched.

#[cfg(any(feature = "gssapi", feature = "oidc"))]
use std::io;

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

/// Runs blocking `work` off the async executor and resolves to its result.
///
/// Today this is a short-lived thread per call answered through a oneshot
/// channel: the calls are rare (a few per authentication) and a thread
/// needs no runtime. When the driver's `Runtime` gains a blocking pool,
/// this is the one place to change.
///
/// Dropping the future does not stop `work` (a blocking C call cannot be
/// interrupted); its result is then discarded.
#[cfg(any(feature = "gssapi", feature = "oidc"))]
pub(crate) async fn off_executor<T, F>(what: &'static str, work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = futures_channel::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("kafka-conn-{what}"))
        .spawn(move || {
            let _ = tx.send(work());
        })?;
    rx.await
        .map_err(|_| io::Error::other(format!("the {what} thread panicked")))
}
