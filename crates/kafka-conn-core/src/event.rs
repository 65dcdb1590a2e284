//! What the connection tells its driver, drained with [`crate::Connection::poll_event`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::api::ApiKey;
use crate::error::{CloseReason, RequestError};
use crate::sasl::CredentialRequest;
use crate::versions::ApiVersions;
use crate::CorrelationId;

/// Something the driver must act on or pass to the application.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Versions are negotiated and, with SASL, the connection is authenticated:
    /// requests held until now are being sent.
    Ready {
        /// What the broker supports.
        api_versions: Arc<ApiVersions>,
        /// The SASL session, if the connection authenticated.
        sasl: Option<SaslSession>,
    },
    /// A response to a request.
    Response(Response),
    /// A request will get no response.
    RequestFailed {
        /// Its id.
        correlation_id: CorrelationId,
        /// Its API, so that failures can be counted per API as responses are.
        api_key: ApiKey,
        /// Why.
        error: RequestError,
    },
    /// A SASL mechanism needs the application: answer with
    /// [`crate::Connection::provide_credential`].
    CredentialRequired(CredentialRequest),
    /// KIP-368 re-authentication succeeded; nothing was lost.
    Reauthenticated(SaslSession),
    /// A response carried a positive `throttle_time_ms` (KIP-219): the
    /// broker's quota throttled this client. Reported for every such
    /// response given to [`crate::Connection::handle_throttle_time`],
    /// whether or not the client must hold its requests for it (`applied`;
    /// before the KIP-219 version bump the broker already delayed the
    /// response itself). Only for observation: the connection has already
    /// acted on it.
    Throttled {
        /// The API whose response carried it.
        api_key: ApiKey,
        /// The response's version.
        api_version: i16,
        /// The broker's `throttle_time_ms`, as a duration.
        throttle_time: Duration,
        /// Whether the connection holds new requests for it (KIP-219:
        /// the response version says the client must back off).
        applied: bool,
    },
    /// The connection is closed. Always the last event, exactly once.
    Closed(CloseReason),
}

/// A response, with its body sliced out of the receive buffer (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub correlation_id: CorrelationId,
    /// The request's API.
    pub api_key: ApiKey,
    /// The request's version (the body is encoded in it).
    pub api_version: i16,
    /// The body after the response header.
    pub body: Bytes,
    /// Time from the request's last byte being handed to the transport to
    /// the response being read.
    pub rtt: Duration,
    /// The request's size on the wire: its size prefix, header and body.
    pub request_bytes: u32,
    /// The response's size on the wire: its size prefix, header and body.
    pub response_bytes: u32,
}

/// An authenticated SASL session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSession {
    /// The mechanism used.
    pub mechanism: String,
    /// The broker's `session_lifetime_ms` (KIP-368), if it sent one.
    pub session_lifetime: Option<Duration>,
    /// When re-authentication is scheduled, measured from authentication.
    pub reauthenticate_after: Option<Duration>,
}
