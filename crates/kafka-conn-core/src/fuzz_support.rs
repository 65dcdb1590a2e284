//! Internal decoders exposed for the cargo-fuzz targets in `fuzz/` (feature
//! `fuzzing`). Not part of the stable API.

use bytes::Bytes;

use crate::error::ProtocolViolation;
use crate::frame::FrameReader;
use crate::wire::DecodeError;

/// Decodes a response header at `header_version`; returns (correlation id, header length).
pub fn decode_response_header(
    frame: &[u8],
    header_version: u8,
) -> Result<(i32, usize), DecodeError> {
    crate::header::decode_response_header(frame, header_version)
}

/// Decodes an ApiVersions response body at `version` and validates the table.
pub fn decode_api_versions(
    body: &[u8],
    version: i16,
) -> Result<Result<crate::ApiVersions, String>, DecodeError> {
    crate::versions::decode_response(body, version).map(|r| crate::versions::validated(r.versions))
}

/// Decodes a SaslHandshake response body; returns the error code and mechanisms.
pub fn decode_sasl_handshake(body: &[u8]) -> Result<(i16, Vec<String>), DecodeError> {
    crate::auth::decode_handshake(body).map(|r| (r.error_code, r.mechanisms))
}

/// Decodes a SaslAuthenticate response body at `version`; returns the error
/// code, message, auth bytes and session lifetime.
pub fn decode_sasl_authenticate(
    body: &[u8],
    version: i16,
) -> Result<(i16, Option<String>, Vec<u8>, i64), DecodeError> {
    crate::auth::decode_authenticate(body, version).map(|r| {
        (
            r.error_code,
            r.error_message.map(str::to_owned),
            r.auth_bytes.to_vec(),
            r.session_lifetime_ms,
        )
    })
}

/// The frame decoder on its own.
#[derive(Debug)]
pub struct FrameDecoder(FrameReader);

impl FrameDecoder {
    /// A decoder with a frame limit.
    pub fn new(max_frame_size: usize) -> Self {
        Self(FrameReader::new(max_frame_size))
    }
    /// Appends bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.0.extend(data);
    }
    /// A zero-copy read window.
    pub fn recv_buf(&mut self) -> &mut [u8] {
        self.0.recv_buf()
    }
    /// Commits `n` bytes of the window.
    pub fn commit(&mut self, n: usize) -> bool {
        self.0.commit(n)
    }
    /// The next frame.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, ProtocolViolation> {
        self.0.next_frame()
    }
    /// Capacity held.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }
}
