//! SASL: the step-wise [`Mechanism`] trait, the built-in mechanisms and the
//! secrets they hold.
//!
//! The connection ([`crate::Connection`]) runs the Kafka side of
//! authentication (SaslHandshake, SaslAuthenticate, legacy v0 raw tokens,
//! KIP-368 re-authentication); a mechanism only turns server messages into
//! client messages. A mechanism never performs I/O and never blocks: when it
//! needs something from the application (an OAuth token, a Kerberos token)
//! it returns [`Step::NeedCredential`], the connection emits
//! [`crate::Event::CredentialRequired`], and the application answers with
//! [`crate::Connection::provide_credential`].
//!
//! A fresh mechanism instance is made by a [`MechanismFactory`] for every
//! authentication, including each re-authentication. Factories are shared
//! (`Arc`) across connections, which is where caches such as SCRAM's salted
//! password live.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

mod gssapi;
mod oauthbearer;
mod plain;
mod scram;
mod secret;

pub use gssapi::{Gssapi, GssapiStep};
pub use oauthbearer::{OAuthBearer, OAuthBearerToken};
pub use plain::Plain;
#[cfg(feature = "fuzzing")]
pub(crate) use scram::with_digest;
pub use scram::{Scram, ScramHash, ScramPbkdf2, ScramSaltedPassword};
pub use secret::Secret;

/// What a mechanism wants to happen next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Send these bytes to the server as the next client message.
    Send(Vec<u8>),
    /// Send these bytes as the last client message: the client side is
    /// complete once they are out, and the mechanism is not stepped again.
    ///
    /// How the exchange then ends follows Kafka's own client
    /// (`SaslClientAuthenticator`): with SaslAuthenticate the broker
    /// answers every request, so its response to this one ends the exchange
    /// (an error code in it still fails the authentication; its bytes are
    /// not looked at); with legacy raw tokens (SaslHandshake v0) a broker
    /// sends a token back only when its SASL server has one, and after the
    /// client's last message it may have none, so the exchange ends as soon
    /// as the token is written. GSSAPI's security-layer reply (RFC 4752
    /// section 3.1) is such a message: Apache Kafka's broker sends nothing
    /// after it under SaslHandshake v0.
    SendLast(Vec<u8>),
    /// The exchange is complete and, where the mechanism can, the server was
    /// verified (e.g. SCRAM's server signature).
    Done,
    /// The application must supply a credential before the exchange can go
    /// on; answer with [`crate::Connection::provide_credential`].
    NeedCredential(CredentialRequest),
}

/// What the application is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialRequest {
    /// An OAuth 2 bearer token ([`Credential::OAuthBearer`]).
    OAuthBearerToken,
    /// The next GSSAPI token ([`Credential::Gssapi`]): `server_token` is the
    /// server's last message (`None` for the first client token), to be fed
    /// to the Kerberos library's `init_sec_context` / unwrap step.
    GssapiToken {
        /// The server's last token, if any.
        server_token: Option<Bytes>,
    },
    /// SCRAM's salted password (PBKDF2, the expensive step): run the job
    /// where blocking is fine ([`ScramPbkdf2::run`]) and answer with its
    /// result ([`Credential::ScramSaltedPassword`]). Asked only when the
    /// salted-password cache has none for the server's salt and iteration
    /// count; the async drivers answer it themselves on their blocking pool
    /// (see [`Scram`], "PBKDF2 off the caller's thread").
    ScramSaltedPassword(ScramPbkdf2),
    /// A user-defined mechanism's own request, with its own payload.
    Custom {
        /// The mechanism's name.
        mechanism: String,
        /// Whatever the mechanism wants to tell the application.
        data: Bytes,
    },
}

/// The application's answer to a [`CredentialRequest`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// An OAuth bearer token and its KIP-342 extensions.
    OAuthBearer(OAuthBearerToken),
    /// The next step of a GSSAPI exchange.
    Gssapi(GssapiStep),
    /// An answer for a user-defined mechanism.
    Custom(Bytes),
    /// SCRAM's salted password, made by [`ScramPbkdf2::run`].
    ScramSaltedPassword(ScramSaltedPassword),
    /// An answer for a user-defined mechanism that stops being valid at
    /// `expires_at` (a payload signed with temporary credentials, such as
    /// AWS_MSK_IAM's): a mechanism that takes it reports the time from
    /// [`Mechanism::credential_expiry`], so the connection re-authenticates
    /// before then (KIP-368), as with an expiring OAuth token.
    CustomExpiring {
        /// The answer.
        data: Bytes,
        /// When it stops being valid.
        expires_at: Instant,
    },
}

impl fmt::Debug for Credential {
    // Never print tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::OAuthBearer(t) => f.debug_tuple("OAuthBearer").field(t).finish(),
            Credential::Gssapi(s) => f.debug_tuple("Gssapi").field(s).finish(),
            Credential::Custom(b) => write!(f, "Custom(<{} bytes redacted>)", b.len()),
            Credential::ScramSaltedPassword(s) => {
                f.debug_tuple("ScramSaltedPassword").field(s).finish()
            }
            Credential::CustomExpiring { data, expires_at } => f
                .debug_struct("CustomExpiring")
                .field("data", &format_args!("<{} bytes redacted>", data.len()))
                .field("expires_at", expires_at)
                .finish(),
        }
    }
}

/// Why a mechanism cannot go on. These are local verdicts on what the
/// server sent or on the credentials given; the broker's own refusals come
/// as [`crate::AuthFailure`] with its error code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The server sent an error attribute (SCRAM `e=`, RFC 5802 section 7).
    #[error("the server refused the authentication: {0}")]
    ServerError(String),
    /// A server message that does not parse.
    #[error("malformed server message: {0}")]
    Malformed(String),
    /// SCRAM: the server nonce does not start with the client nonce (RFC 5802 section 5.1).
    #[error("the server nonce does not extend the client nonce (possible tampering)")]
    NonceMismatch,
    /// SCRAM: an iteration count under the floor (RFC 7677 section 4 asks for at least 4096).
    #[error("the server asked for {got} PBKDF2 iterations, fewer than the minimum {min}")]
    IterationsTooLow {
        /// Iterations the server asked for.
        got: u32,
        /// The configured floor.
        min: u32,
    },
    /// SCRAM: an iteration count above the cap (a denial-of-service guard).
    #[error("the server asked for {got} PBKDF2 iterations, more than the cap {max}")]
    IterationsTooHigh {
        /// Iterations the server asked for.
        got: u32,
        /// The configured cap.
        max: u32,
    },
    /// SCRAM: the server signature does not verify: the server does not know
    /// the password (or someone is in the middle).
    #[error(
        "the server signature does not verify: the server does not hold this user's credential"
    )]
    BadServerSignature,
    /// A credential the mechanism cannot use (bad OAuth extension, empty
    /// token, a field with a forbidden character, ...).
    #[error("invalid credential: {0}")]
    InvalidCredential(String),
    /// A credential arrived that the mechanism did not ask for.
    #[error("the mechanism did not ask for a credential (or not this kind)")]
    UnexpectedCredential,
    /// The server sent a message after the exchange was complete, or the
    /// mechanism was stepped in the wrong order.
    #[error("unexpected message in state {0}")]
    UnexpectedMessage(&'static str),
    /// The operating system's random source failed (SCRAM nonce).
    #[error("random source failed: {0}")]
    Random(String),
}

/// One authentication exchange, client side, as a pure state machine.
///
/// The connection calls [`Mechanism::step`] with `None` first, then with each
/// server message (the `auth_bytes` of a successful SaslAuthenticate
/// response, or a raw token in legacy mode) until the mechanism returns
/// [`Step::Done`] or an error. When it returns [`Step::NeedCredential`], the
/// next call is [`Mechanism::provide_credential`].
pub trait Mechanism: Send + fmt::Debug {
    /// The IANA / Kafka mechanism name, e.g. `SCRAM-SHA-512`.
    fn name(&self) -> &str;

    /// Advances with the server's last message (`None` before the first client message).
    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError>;

    /// Takes the application's answer to a [`Step::NeedCredential`].
    fn provide_credential(&mut self, credential: Credential) -> Result<Step, SaslError> {
        let _ = credential;
        Err(SaslError::UnexpectedCredential)
    }

    /// Details worth adding to the error when the broker refuses the
    /// exchange (e.g. the OAUTHBEARER JSON error challenge, RFC 7628 section 3.2.2).
    fn failure_detail(&self) -> Option<String> {
        None
    }

    /// When the credential itself stops being valid (an OAuth token's expiry),
    /// so that re-authentication happens before it (KIP-368).
    fn credential_expiry(&self) -> Option<Instant> {
        None
    }
}

/// Makes a fresh [`Mechanism`] for each authentication.
pub trait MechanismFactory: Send + Sync + fmt::Debug {
    /// The mechanism name sent in SaslHandshake.
    fn name(&self) -> &str;
    /// A new exchange.
    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError>;
}

/// How the SaslHandshake is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HandshakeMode {
    /// SaslHandshake v1 + SaslAuthenticate when the broker offers them,
    /// legacy v0 raw tokens otherwise (Kafka 0.10.0 - 0.10.1 brokers).
    #[default]
    Auto,
    /// Always SaslHandshake v1 + SaslAuthenticate (KIP-152).
    V1,
    /// Always SaslHandshake v0 followed by raw length-prefixed tokens.
    LegacyV0,
}

/// SASL settings of a connection.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    pub(crate) factory: Arc<dyn MechanismFactory>,
    pub(crate) handshake: HandshakeMode,
}

impl SaslConfig {
    /// Authenticates with the mechanisms that `factory` makes.
    pub fn new(factory: Arc<dyn MechanismFactory>) -> Self {
        Self {
            factory,
            handshake: HandshakeMode::Auto,
        }
    }

    /// PLAIN with a username and password.
    pub fn plain(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new(Arc::new(Plain::new(username, password)))
    }

    /// SCRAM with the given hash, username and password.
    pub fn scram(
        hash: ScramHash,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self::new(Arc::new(Scram::new(hash, username, password)))
    }

    /// OAUTHBEARER; tokens are asked for through [`crate::Event::CredentialRequired`].
    pub fn oauthbearer() -> Self {
        Self::new(Arc::new(OAuthBearer::new()))
    }

    /// GSSAPI; tokens are exchanged through [`crate::Event::CredentialRequired`].
    pub fn gssapi() -> Self {
        Self::new(Arc::new(Gssapi::new()))
    }

    /// Chooses how the handshake is done.
    pub fn with_handshake(mut self, mode: HandshakeMode) -> Self {
        self.handshake = mode;
        self
    }

    /// The mechanism name.
    pub fn mechanism(&self) -> &str {
        self.factory.name()
    }

    /// The handshake mode.
    pub fn handshake(&self) -> HandshakeMode {
        self.handshake
    }
}
