//! A request as the caller hands it to the core: an opaque, already encoded body.

use std::time::Duration;

use bytes::Bytes;

use crate::api::{ApiKey, HeaderVersions};

/// One request: API key, version and the encoded body (everything after
/// the request header). The body is sent as given, without a copy.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) api_key: ApiKey,
    pub(crate) api_version: i16,
    pub(crate) body: Bytes,
    pub(crate) expect_response: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) header_versions: Option<HeaderVersions>,
}

impl Request {
    /// A request for `api_key` at `api_version` with an encoded body.
    pub fn new(api_key: impl Into<ApiKey>, api_version: i16, body: impl Into<Bytes>) -> Self {
        Self {
            api_key: api_key.into(),
            api_version,
            body: body.into(),
            expect_response: true,
            timeout: None,
            header_versions: None,
        }
    }

    /// The broker sends no response (Produce with `acks=0`): the request
    /// never occupies an in-flight slot and produces no event.
    #[must_use]
    pub fn without_response(mut self) -> Self {
        self.expect_response = false;
        self
    }

    /// This request's own timeout instead of the connection's default.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Override the header versions the built-in table would choose (for
    /// APIs newer than this crate, or brokers with their own ideas).
    #[must_use]
    pub fn with_header_versions(mut self, versions: HeaderVersions) -> Self {
        self.header_versions = Some(versions);
        self
    }

    /// The API key.
    pub fn api_key(&self) -> ApiKey {
        self.api_key
    }

    /// The API version.
    pub fn api_version(&self) -> i16 {
        self.api_version
    }

    /// The encoded body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Whether a response is expected.
    pub fn expects_response(&self) -> bool {
        self.expect_response
    }

    pub(crate) fn header_versions(&self) -> HeaderVersions {
        self.header_versions
            .unwrap_or_else(|| self.api_key.header_versions(self.api_version))
    }
}
