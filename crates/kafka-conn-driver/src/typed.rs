//! Typed requests on a [`Client`] and a [`DirectClient`] (feature
//! `kafka-protocol`): any request
//! type of the `kafka-protocol` crate in, its typed response out, at the
//! highest version both sides support or a pinned one, with the response's
//! KIP-219 throttle applied to the connection.

use kafka_conn_core::typed::{self, kafka_protocol, ThrottleTime, TypedError};
use kafka_conn_core::{ApiVersions, Request, RequestError, Response, SendError};

use crate::client::Client;
use crate::direct::DirectClient;
use crate::error::RequestFailure;
use crate::runtime::Runtime;

/// Why [`Client::send_typed`] returned no typed response.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TypedFailure {
    /// Refused or failed like a [`Client::send`] request. Refusals
    /// ([`RequestFailure::Refused`]) happen before anything is sent; a
    /// pinned version the broker does not offer is
    /// `Refused(SendError::UnsupportedVersion { .. })`.
    #[error(transparent)]
    Request(#[from] RequestFailure),
    /// No usable version, or `kafka-protocol` could not encode the request
    /// (nothing was sent) or decode the response (it was).
    #[error(transparent)]
    Typed(TypedError),
    /// Produce with `acks = 0`: Kafka sends no response, so there is none
    /// to wait for or decode. Nothing was sent.
    #[error("Produce with acks=0 gets no response from Kafka: send_typed needs acks=1 or acks=-1")]
    NoResponse,
}

impl From<TypedError> for TypedFailure {
    fn from(e: TypedError) -> Self {
        match e {
            // One place for the core's refusals, whichever layer raised them.
            TypedError::Send(e) => TypedFailure::Request(RequestFailure::Refused(e)),
            e => TypedFailure::Typed(e),
        }
    }
}

impl TypedFailure {
    /// The refusal, if the request was refused before anything was sent by
    /// the core's rules (closed connection, unsupported version, ...).
    pub fn send_error(&self) -> Option<&SendError> {
        match self {
            TypedFailure::Request(RequestFailure::Refused(e)) => Some(e),
            _ => None,
        }
    }

    /// The failure after sending (timeout, connection closed), if this is one.
    pub fn request_error(&self) -> Option<&RequestError> {
        match self {
            TypedFailure::Request(RequestFailure::Failed(e)) => Some(e),
            _ => None,
        }
    }
}

impl Client {
    /// Sends a `kafka-protocol` request at the highest version both the
    /// broker and `kafka-protocol` support, and decodes its response.
    ///
    /// When the response carries `throttle_time_ms` at a version where the
    /// client must back off (KIP-219, [`kafka_conn_core::ApiKey::client_throttles`]),
    /// the connection holds requests sent after this returns until the
    /// throttle ends (queued, not refused; see [`Client::stats`]'s
    /// `throttled`). Cancellation safe like [`Client::send`].
    ///
    /// Produce with `acks = 0` gets no response from Kafka: it is refused
    /// with [`TypedFailure::NoResponse`] before anything is sent.
    ///
    /// ```no_run
    /// # async fn run(client: kafka_conn_driver::Client) -> Result<(), kafka_conn_driver::TypedFailure> {
    /// use kafka_conn_driver::core::typed::kafka_protocol::messages::MetadataRequest;
    ///
    /// let metadata = client.send_typed(MetadataRequest::default().with_topics(None)).await?;
    /// for (name, topic) in metadata.topics.iter().filter_map(|t| Some((t.name.as_ref()?, t))) {
    ///     println!("{} ({} partitions)", name.as_str(), topic.partitions.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send_typed<R>(&self, request: R) -> Result<R::Response, TypedFailure>
    where
        R: kafka_protocol::protocol::Request + 'static,
        R::Response: ThrottleTime,
    {
        self.typed(request, None).await
    }

    /// [`Client::send_typed`] at a pinned `version`. A version the broker
    /// does not offer fails with `SendError::UnsupportedVersion` (see
    /// [`TypedFailure::send_error`]) before anything is sent.
    pub async fn send_typed_at<R>(
        &self,
        request: R,
        version: i16,
    ) -> Result<R::Response, TypedFailure>
    where
        R: kafka_protocol::protocol::Request + 'static,
        R::Response: ThrottleTime,
    {
        self.typed(request, Some(version)).await
    }

    async fn typed<R>(&self, request: R, pinned: Option<i16>) -> Result<R::Response, TypedFailure>
    where
        R: kafka_protocol::protocol::Request + 'static,
        R::Response: ThrottleTime,
    {
        let encoded = encode_typed(self.api_versions(), request, pinned)?;
        let response = self.send(encoded).await?;
        let (decoded, throttle_time_ms) = decode_typed::<R>(&response)?;
        // KIP-219: the task asks the core, which holds later sends if the
        // version expects the client to back off.
        self.handle_throttle_time(response.api_key, response.api_version, throttle_time_ms);
        Ok(decoded)
    }
}

impl<RT: Runtime> DirectClient<RT> {
    /// [`Client::send_typed`] on a [`DirectClient`]: a `kafka-protocol`
    /// request at the highest version both sides support, its response
    /// decoded, and its KIP-219 throttle applied to the connection. The
    /// connection moves only while this is polled, as with
    /// [`DirectClient::request`]; cancellation safe like it.
    pub async fn request_typed<R>(&mut self, request: R) -> Result<R::Response, TypedFailure>
    where
        R: kafka_protocol::protocol::Request + 'static,
        R::Response: ThrottleTime,
    {
        self.typed(request, None).await
    }

    /// [`DirectClient::request_typed`] at a pinned `version`, refused
    /// before anything is sent if the broker does not offer it (see
    /// [`Client::send_typed_at`]).
    pub async fn request_typed_at<R>(
        &mut self,
        request: R,
        version: i16,
    ) -> Result<R::Response, TypedFailure>
    where
        R: kafka_protocol::protocol::Request + 'static,
        R::Response: ThrottleTime,
    {
        self.typed(request, Some(version)).await
    }

    async fn typed<R>(
        &mut self,
        request: R,
        pinned: Option<i16>,
    ) -> Result<R::Response, TypedFailure>
    where
        R: kafka_protocol::protocol::Request + 'static,
        R::Response: ThrottleTime,
    {
        let encoded = encode_typed(self.api_versions(), request, pinned)?;
        let response = self.request(encoded).await?;
        let (decoded, throttle_time_ms) = decode_typed::<R>(&response)?;
        self.handle_throttle_time(response.api_key, response.api_version, throttle_time_ms);
        Ok(decoded)
    }
}

/// Picks the version (`pinned`, or the highest both sides support) and
/// encodes `request`; refuses Produce with `acks = 0`, which gets no
/// response to decode.
fn encode_typed<R>(
    versions: &ApiVersions,
    request: R,
    pinned: Option<i16>,
) -> Result<Request, TypedFailure>
where
    R: kafka_protocol::protocol::Request + 'static,
{
    let version = typed::pick_version::<R>(versions, pinned)?;
    if expects_no_response(&request) {
        return Err(TypedFailure::NoResponse);
    }
    Ok(typed::encode(&request, version)?)
}

/// Decodes the response to an [`encode_typed`] request, with its
/// `throttle_time_ms` (KIP-219) for the connection.
fn decode_typed<R>(response: &Response) -> Result<(R::Response, i32), TypedFailure>
where
    R: kafka_protocol::protocol::Request + 'static,
    R::Response: ThrottleTime,
{
    let decoded = typed::decode::<R>(response)?;
    let throttle_time_ms = decoded.throttle_time_ms();
    Ok((decoded, throttle_time_ms))
}

/// Produce with `acks = 0`: Kafka sends no response.
fn expects_no_response<R: 'static>(request: &R) -> bool {
    (request as &dyn std::any::Any)
        .downcast_ref::<kafka_protocol::messages::ProduceRequest>()
        .is_some_and(|p| p.acks == 0)
}
