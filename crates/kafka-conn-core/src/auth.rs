//! The Kafka side of SASL: SaslHandshake and SaslAuthenticate codecs and the
//! state of one authentication exchange (initial or KIP-368 re-authentication).

use bytes::{BufMut, Bytes};

use crate::sasl::Mechanism;
use crate::wire::{DecodeError, Reader, WriteExt};

/// How tokens travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// SaslHandshake v1 + SaslAuthenticate at this version (KIP-152).
    Authenticate { version: i16 },
    /// SaslHandshake v0 + raw length-prefixed tokens with no Kafka header.
    Legacy,
}

/// Where the exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Waiting for the application's credential before the first message.
    FirstCredential,
    /// SaslHandshake sent.
    Handshake,
    /// A token sent, waiting for the server's answer.
    Exchange,
    /// Waiting for the application's credential mid-exchange.
    Credential,
}

/// One authentication in progress.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) mechanism: Box<dyn Mechanism>,
    pub(crate) transport: Transport,
    pub(crate) stage: Stage,
    pub(crate) reauth: bool,
    /// The first client message, computed before the handshake is sent so
    /// that a credential wait never holds requests (KIP-368).
    pub(crate) first_message: Option<Vec<u8>>,
    /// `session_lifetime_ms` of the last successful SaslAuthenticate.
    pub(crate) session_lifetime_ms: i64,
    /// When the last SaslAuthenticate (or raw token) was handed to the transport.
    pub(crate) last_sent: Option<std::time::Instant>,
}

/// SaslHandshake request body (v0 and v1 are the same): the mechanism name.
pub(crate) fn encode_handshake(mechanism: &str) -> Bytes {
    crate::wire::build(|b| b.put_nullable_string(Some(mechanism)))
}

/// A decoded SaslHandshake response.
pub(crate) struct HandshakeResponse {
    pub(crate) error_code: i16,
    pub(crate) mechanisms: Vec<String>,
}

pub(crate) fn decode_handshake(body: &[u8]) -> Result<HandshakeResponse, DecodeError> {
    let mut r = Reader::new(body);
    let error_code = r.i16("error_code")?;
    let n = r.array_len(2, "mechanisms")?;
    let mut mechanisms = Vec::with_capacity(n);
    for _ in 0..n {
        mechanisms.push(r.string("mechanism")?.to_owned());
    }
    Ok(HandshakeResponse {
        error_code,
        mechanisms,
    })
}

/// SaslAuthenticate request body at `version` (v2 is flexible).
pub(crate) fn encode_authenticate(version: i16, auth_bytes: &[u8]) -> Bytes {
    crate::wire::build(|b| {
        if version >= 2 {
            b.put_compact_bytes(auth_bytes);
            b.put_empty_tagged_fields();
        } else {
            b.put_bytes_i32(auth_bytes);
        }
    })
}

/// A decoded SaslAuthenticate response.
#[derive(Debug)]
pub(crate) struct AuthenticateResponse<'a> {
    pub(crate) error_code: i16,
    pub(crate) error_message: Option<&'a str>,
    pub(crate) auth_bytes: &'a [u8],
    /// 0 when absent (v0) or when the broker sets none.
    pub(crate) session_lifetime_ms: i64,
}

pub(crate) fn decode_authenticate(
    body: &[u8],
    version: i16,
) -> Result<AuthenticateResponse<'_>, DecodeError> {
    let mut r = Reader::new(body);
    let error_code = r.i16("error_code")?;
    let (error_message, auth_bytes) = if version >= 2 {
        (
            r.compact_nullable_string("error_message")?,
            r.compact_bytes("auth_bytes")?,
        )
    } else {
        (r.nullable_string("error_message")?, r.bytes("auth_bytes")?)
    };
    let session_lifetime_ms = if version >= 1 {
        r.i64("session_lifetime_ms")?
    } else {
        0
    };
    if version >= 2 {
        r.skip_tagged_fields()?;
    }
    Ok(AuthenticateResponse {
        error_code,
        error_message,
        auth_bytes,
        session_lifetime_ms,
    })
}

/// Encoders for the simulated broker and tests.
pub(crate) mod server {
    use super::*;

    /// A SaslHandshake response body.
    pub fn handshake_response(out: &mut impl BufMut, error_code: i16, mechanisms: &[&str]) {
        out.put_i16(error_code);
        out.put_i32(i32::try_from(mechanisms.len()).expect("small list"));
        for m in mechanisms {
            out.put_nullable_string(Some(m));
        }
    }

    /// A SaslAuthenticate response body at `version`.
    pub fn authenticate_response(
        out: &mut impl BufMut,
        version: i16,
        error_code: i16,
        error_message: Option<&str>,
        auth_bytes: &[u8],
        session_lifetime_ms: i64,
    ) {
        out.put_i16(error_code);
        if version >= 2 {
            match error_message {
                None => out.put_uvarint(0),
                Some(m) => out.put_compact_string(m),
            }
            out.put_compact_bytes(auth_bytes);
        } else {
            out.put_nullable_string(error_message);
            out.put_bytes_i32(auth_bytes);
        }
        if version >= 1 {
            out.put_i64(session_lifetime_ms);
        }
        if version >= 2 {
            out.put_empty_tagged_fields();
        }
    }

    /// Reads a SaslAuthenticate request body: the client's auth bytes.
    pub fn authenticate_request(body: &[u8], version: i16) -> Option<Vec<u8>> {
        let mut r = Reader::new(body);
        let b = if version >= 2 {
            r.compact_bytes("auth_bytes").ok()?
        } else {
            r.bytes("auth_bytes").ok()?
        };
        Some(b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn authenticate_round_trips_at_every_version() {
        for v in 0..=2 {
            let mut b = BytesMut::new();
            server::authenticate_response(&mut b, v, 58, Some("bad"), b"e=x", 60_000);
            let r = decode_authenticate(&b, v).unwrap();
            assert_eq!(r.error_code, 58);
            assert_eq!(r.error_message, Some("bad"));
            assert_eq!(r.auth_bytes, b"e=x");
            assert_eq!(r.session_lifetime_ms, if v >= 1 { 60_000 } else { 0 });
            let req = encode_authenticate(v, b"hello");
            assert_eq!(server::authenticate_request(&req, v).unwrap(), b"hello");
        }
    }

    #[test]
    fn handshake_round_trip() {
        let mut b = BytesMut::new();
        server::handshake_response(&mut b, 33, &["PLAIN", "SCRAM-SHA-512"]);
        let r = decode_handshake(&b).unwrap();
        assert_eq!(r.error_code, 33);
        assert_eq!(r.mechanisms, vec!["PLAIN", "SCRAM-SHA-512"]);
    }
}
