//! Why a connection closed, why a request failed, and what the caller did wrong.
//!
//! The peer's faults ([`CloseReason`], [`ProtocolViolation`]) are kept apart
//! from the caller's ([`SendError`], [`ConfigError`]). Once a connection has
//! closed, its reason is sticky: every later [`crate::Connection::send_request`]
//! returns [`SendError::Closed`] with the same reason.

use std::fmt;
use std::time::Duration;

use crate::api::ApiKey;
use crate::sasl::SaslError;
use crate::wire::DecodeError;

/// Why a connection closed. Emitted exactly once, as the last event.
///
/// The taxonomy follows aiokafka's `CloseReason` (broken, timeout, out of
/// sync, idle drop, shutdown, auth failure) and adds protocol violations,
/// incompatibilities and session expiry. [`CloseReason::is_retriable`]
/// says whether a new connection can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the connection or the transport failed.
    #[error("connection broken {during}: {cause}")]
    Broken {
        /// End of stream or an I/O error.
        cause: BrokenCause,
        /// What the connection was doing.
        during: Phase,
    },
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(TimeoutKind),
    /// A response's correlation id was not the one expected: the byte stream
    /// can no longer be trusted.
    #[error("out of sync: expected a response to correlation id {expected}, got {received}")]
    OutOfSync {
        /// The oldest request's id.
        expected: i32,
        /// The id the broker sent.
        received: i32,
    },
    /// Nothing happened for the configured idle time and no request was pending.
    #[error("idle for {idle_for:?} with no request pending")]
    Idle {
        /// How long the connection was idle.
        idle_for: Duration,
    },
    /// The application closed the connection.
    #[error("closed by the application")]
    Shutdown,
    /// The broker refused the authentication.
    #[error("authentication failed: {0}")]
    AuthFailed(AuthFailure),
    /// The SASL session ran out before re-authentication completed (KIP-368).
    #[error("the SASL session expired {0}")]
    SessionExpired(String),
    /// The peer sent something that is not Kafka.
    #[error("protocol violation: {0}")]
    Protocol(ProtocolViolation),
    /// The broker and this client cannot work together.
    #[error("incompatible broker: {0}")]
    Incompatible(Incompatibility),
}

impl CloseReason {
    /// Whether opening a new connection may help: true for transient causes
    /// (broken, timeouts, out of sync, idle, session expiry), false where the
    /// same configuration will fail the same way (shutdown, authentication,
    /// protocol mismatch such as TLS on a plaintext client, incompatibility).
    pub fn is_retriable(&self) -> bool {
        match self {
            CloseReason::Broken { .. }
            | CloseReason::Timeout(_)
            | CloseReason::OutOfSync { .. }
            | CloseReason::Idle { .. }
            | CloseReason::SessionExpired(_) => true,
            CloseReason::AuthFailed(a) => a.reauthentication,
            CloseReason::Protocol(p) => matches!(p, ProtocolViolation::MalformedResponse { .. }),
            CloseReason::Shutdown | CloseReason::Incompatible(_) => false,
        }
    }
}

impl CloseReason {
    /// A response that cannot be decoded.
    pub(crate) fn malformed(api_key: ApiKey, error: DecodeError) -> Self {
        ProtocolViolation::MalformedResponse { api_key, error }.into()
    }
}

// The sub-errors convert into the reason they close a connection with, so
// that a close site names what happened, not the wrapping (as rustls does
// for its error kinds).
impl From<TimeoutKind> for CloseReason {
    fn from(kind: TimeoutKind) -> Self {
        CloseReason::Timeout(kind)
    }
}

impl From<AuthFailure> for CloseReason {
    fn from(failure: AuthFailure) -> Self {
        CloseReason::AuthFailed(failure)
    }
}

impl From<ProtocolViolation> for CloseReason {
    fn from(violation: ProtocolViolation) -> Self {
        CloseReason::Protocol(violation)
    }
}

impl From<Incompatibility> for CloseReason {
    fn from(why: Incompatibility) -> Self {
        CloseReason::Incompatible(why)
    }
}

/// What the connection was doing when something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Negotiating API versions.
    Negotiating,
    /// The SASL handshake for a mechanism.
    SaslHandshake,
    /// The SASL token exchange.
    Authenticating,
    /// Ready for requests.
    Ready,
    /// Re-authenticating (KIP-368).
    Reauthenticating,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Negotiating => {
                "while negotiating API versions (if the broker closed before answering, check the port and the security protocol: a TLS listener drops plaintext clients this way)"
            }
            Phase::SaslHandshake => {
                "during the SASL handshake (a broker that does not enable the mechanism may just close)"
            }
            Phase::Authenticating => {
                "while authenticating (a legacy v0 SASL broker closes on wrong credentials)"
            }
            Phase::Ready => "while ready",
            Phase::Reauthenticating => "while re-authenticating",
        })
    }
}

/// How the transport broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokenCause {
    /// The peer closed its side.
    Eof,
    /// The driver reported an I/O error.
    Io {
        /// The error's kind.
        kind: std::io::ErrorKind,
        /// The error's text.
        message: String,
    },
}

impl fmt::Display for BrokenCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokenCause::Eof => f.write_str("the broker closed the connection"),
            BrokenCause::Io { message, .. } => write!(f, "I/O error: {message}"),
        }
    }
}

/// Which deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The connection was not ready (versions, SASL) within the handshake timeout.
    Handshake {
        /// The configured timeout.
        after: Duration,
        /// What was still going on.
        phase: Phase,
    },
    /// A request the connection itself sent (ApiVersions, SASL) got no answer.
    InternalRequest {
        /// The API.
        api_key: ApiKey,
        /// The timeout.
        after: Duration,
    },
    /// A request timed out and the broker then stayed silent for the grace
    /// period as well: the connection is given up (its slot would block every
    /// later response forever).
    Unanswered {
        /// The API of the oldest unanswered request.
        api_key: ApiKey,
        /// Its correlation id.
        correlation_id: i32,
        /// How long it has been waiting.
        waited: Duration,
    },
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutKind::Handshake { after, phase } => {
                write!(f, "connection not ready after {after:?} ({phase})")
            }
            TimeoutKind::InternalRequest { api_key, after } => {
                write!(f, "no {api_key} response after {after:?}")
            }
            TimeoutKind::Unanswered {
                api_key,
                correlation_id,
                waited,
            } => write!(
                f,
                "{api_key} request {correlation_id} unanswered after {waited:?}: the broker stopped answering"
            ),
        }
    }
}

/// The broker refused to authenticate us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// The mechanism that was used.
    pub mechanism: String,
    /// The broker's Kafka error code (58 = SASL_AUTHENTICATION_FAILED), if it sent one.
    pub error_code: Option<i16>,
    /// The broker's error message (KIP-152), or our own verdict.
    pub message: String,
    /// Extra detail: the server's SCRAM `e=` text, the OAUTHBEARER JSON error challenge.
    pub detail: Option<String>,
    /// Whether this happened while re-authenticating an established connection.
    pub reauthentication: bool,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reauthentication {
            f.write_str("re-authentication: ")?;
        }
        write!(f, "{}", self.mechanism)?;
        if let Some(code) = self.error_code {
            write!(f, " (error {code} {})", crate::error_code_name(code))?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// The peer sent bytes that are not a Kafka response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// A negative size prefix.
    #[error("negative frame size {0}")]
    NegativeFrameSize(i32),
    /// A size prefix over `max_frame_size`.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The claimed size.
        size: i32,
        /// The configured limit.
        max: usize,
    },
    /// A frame shorter than its response header.
    #[error("frame of {size} bytes is shorter than the {header} byte response header")]
    FrameTooSmall {
        /// The frame's size.
        size: usize,
        /// The header size needed.
        header: usize,
    },
    /// The bytes look like a TLS record: the broker expects TLS.
    #[error("the broker speaks TLS: use SSL (or SASL_SSL) as the security protocol")]
    LooksLikeTls,
    /// The bytes look like an HTTP response: this is not a Kafka port.
    #[error("the peer answered with HTTP: this is not a Kafka listener (a proxy or a REST port?)")]
    LooksLikeHttp,
    /// A response arrived with no request pending.
    #[error("unsolicited response with correlation id {0}")]
    Unsolicited(i32),
    /// A response body or header that cannot be decoded.
    #[error("cannot decode the {api_key} response: {error}")]
    MalformedResponse {
        /// The API whose response it was.
        api_key: ApiKey,
        /// What was wrong.
        error: DecodeError,
    },
    /// Bytes left over at end of stream: a frame was cut off.
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    TruncatedFrame {
        /// Bytes of the unfinished frame.
        buffered: usize,
    },
}

/// Why the broker and this client cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Incompatibility {
    /// ApiVersions failed at every version we can speak.
    #[error("API version negotiation failed: {0}")]
    Negotiation(String),
    /// The broker does not offer an API the connection needs.
    #[error("the broker does not support {api_key}, which {why}")]
    MissingApi {
        /// The API.
        api_key: ApiKey,
        /// Why it is needed.
        why: &'static str,
    },
    /// The broker does not enable the configured SASL mechanism.
    #[error("SASL mechanism {mechanism} is not enabled; the broker offers: {}", offered_list(.offered))]
    MechanismNotEnabled {
        /// What we asked for.
        mechanism: String,
        /// What the broker listed.
        offered: Vec<String>,
    },
    /// A SASL handshake error other than an unsupported mechanism.
    #[error("SaslHandshake failed with error {code} {}", crate::error_code_name(*.code))]
    SaslHandshake {
        /// The broker's error code.
        code: i16,
    },
}

fn offered_list(offered: &[String]) -> String {
    if offered.is_empty() {
        "(none listed)".to_owned()
    } else {
        offered.join(", ")
    }
}

/// Why `send_request` refused a request. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection has closed (sticky).
    #[error("the connection is closed: {0}")]
    Closed(CloseReason),
    /// The broker does not support this version of the API.
    #[error("the broker does not support {api_key} v{version}: {}", match .broker_range {
        Some((min, max)) => format!("it supports v{min} to v{max}"),
        None => "it does not offer this API at all".to_owned(),
    })]
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The version asked for.
        version: i16,
        /// The broker's range, or `None` if it does not offer the API.
        broker_range: Option<(i16, i16)>,
    },
    /// The request would make a frame larger than Kafka allows (i32 size prefix).
    #[error("request of {size} bytes is too large for a Kafka frame")]
    TooLarge {
        /// The encoded size.
        size: usize,
    },
    /// The per-request header version override is not one Kafka has.
    #[error("invalid header version override: request v{request}, response v{response}")]
    InvalidHeaderVersion {
        /// Request header version asked for.
        request: u8,
        /// Response header version asked for.
        response: u8,
    },
}

/// A closed connection refuses every command with its (sticky) reason.
impl From<CloseReason> for SendError {
    fn from(reason: CloseReason) -> Self {
        SendError::Closed(reason)
    }
}

/// Why a request that was accepted did not get a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Its deadline passed. Its slot is kept, so a late response is read and dropped.
    #[error("no response within {0:?}")]
    TimedOut(Duration),
    /// The connection closed before the response arrived.
    #[error("{0}")]
    ConnectionClosed(CloseReason),
    /// The request was held until versions were known, and the broker does
    /// not support its version. Nothing was sent.
    #[error("{0}")]
    Unsupported(SendError),
}

impl RequestError {
    /// Whether sending again (on a new connection if this one closed) may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            RequestError::TimedOut(_) => true,
            RequestError::ConnectionClosed(r) => r.is_retriable(),
            RequestError::Unsupported(_) => false,
        }
    }
}

/// A request pending when the connection closed fails with its reason.
impl From<CloseReason> for RequestError {
    fn from(reason: CloseReason) -> Self {
        RequestError::ConnectionClosed(reason)
    }
}

/// A configuration the connection refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// KIP-511 restricts client software names and versions to
    /// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
    #[error("{field} {value:?} is not allowed: Kafka accepts only letters, digits, '-' and '.', starting and ending with a letter or digit (KIP-511)")]
    InvalidSoftwareField {
        /// Which field.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// The client id is longer than a Kafka string can be.
    #[error("client id is {0} bytes; at most 32767 are allowed")]
    ClientIdTooLong(usize),
    /// The SASL mechanism's name is longer than a Kafka string can be
    /// (SaslHandshake carries it with an i16 length).
    #[error("SASL mechanism name is {0} bytes; SaslHandshake carries at most 32767")]
    SaslMechanismTooLong(usize),
    /// A frame limit under the smallest useful frame, or over i32::MAX.
    #[error("max_frame_size {0} must be between 8 and 2147483647")]
    InvalidMaxFrameSize(usize),
    /// A zero timeout or a zero max in-flight.
    #[error("{0} must not be zero")]
    Zero(&'static str),
    /// A version hint table that is empty or has min > max.
    #[error("invalid version hint: {0}")]
    InvalidVersionHint(String),
}

/// Why [`crate::Connection::provide_credential`] refused an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// No credential was asked for (or the connection is closed).
    #[error("no credential is pending")]
    NotPending,
    /// The mechanism refused the credential; the connection closes.
    #[error(transparent)]
    Rejected(#[from] SaslError),
}
