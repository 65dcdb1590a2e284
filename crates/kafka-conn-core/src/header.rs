//! Request header encoding (v0, v1, v2) and response header decoding (v0, v1).

use bytes::BytesMut;

use crate::wire::{DecodeError, Reader, WriteExt};

/// Writes the size prefix and request header for a body of `body_len` bytes.
///
/// Request header v1 is `api_key, api_version, correlation_id, client_id`
/// (a nullable non-compact string); v2 appends an empty tagged-field
/// section. The client id stays non-compact in v2 so that any broker can
/// read it before it knows the version (KIP-482). v0 has no client id.
pub(crate) fn encode_request_header(
    out: &mut BytesMut,
    header_version: u8,
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body_len: usize,
) -> Result<(), usize> {
    let header_len = request_header_len(header_version, client_id);
    let size = header_len + body_len;
    let size_i32 = i32::try_from(size).map_err(|_| size)?;
    // The fixed part in one copy: each `BufMut::put_*` checks and moves
    // the buffer's cursor on its own, for every request sent.
    let mut fixed = [0u8; 12];
    fixed[..4].copy_from_slice(&size_i32.to_be_bytes());
    fixed[4..6].copy_from_slice(&api_key.to_be_bytes());
    fixed[6..8].copy_from_slice(&api_version.to_be_bytes());
    fixed[8..].copy_from_slice(&correlation_id.to_be_bytes());
    out.reserve(4 + header_len);
    out.extend_from_slice(&fixed);
    if header_version >= 1 {
        out.put_nullable_string(client_id);
    }
    if header_version >= 2 {
        out.put_empty_tagged_fields();
    }
    Ok(())
}

/// The encoded size of a request header (without the size prefix).
pub(crate) fn request_header_len(header_version: u8, client_id: Option<&str>) -> usize {
    let mut n = 8;
    if header_version >= 1 {
        n += 2 + client_id.map_or(0, str::len);
    }
    if header_version >= 2 {
        n += 1;
    }
    n
}

/// Reads a response header; returns the correlation id and the header length.
pub(crate) fn decode_response_header(
    frame: &[u8],
    header_version: u8,
) -> Result<(i32, usize), DecodeError> {
    let mut r = Reader::new(frame);
    let id = r.i32("correlation id")?;
    if header_version >= 1 {
        // KIP-482: response header v1 carries tagged fields, none of which we use.
        r.skip_tagged_fields()?;
    }
    Ok((id, frame.len() - r.remaining()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_v2_keeps_client_id_non_compact() {
        let mut b = BytesMut::new();
        encode_request_header(&mut b, 2, 18, 3, 7, Some("ab"), 5).unwrap();
        assert_eq!(
            &b[..],
            &[0, 0, 0, 18, 0, 18, 0, 3, 0, 0, 0, 7, 0, 2, b'a', b'b', 0]
        );
        assert_eq!(request_header_len(2, Some("ab")) + 4, b.len());
    }

    #[test]
    fn request_header_v1_null_client_id() {
        let mut b = BytesMut::new();
        encode_request_header(&mut b, 1, 3, 1, -5, None, 0).unwrap();
        assert_eq!(
            &b[..],
            &[0, 0, 0, 10, 0, 3, 0, 1, 0xff, 0xff, 0xff, 0xfb, 0xff, 0xff]
        );
    }

    #[test]
    fn response_header_v1_skips_tagged_fields() {
        let frame = [0, 0, 0, 9, 1, 3, 2, 0xaa, 0xbb, 42];
        assert_eq!(decode_response_header(&frame, 1).unwrap(), (9, 9));
        assert_eq!(decode_response_header(&frame, 0).unwrap(), (9, 4));
        assert!(decode_response_header(&frame[..3], 0).is_err());
    }
}
