//! Request header encoding (v0, v1, v2) and response header decoding (v0, v1).

use bytes::BytesMut;

use crate::wire::{DecodeError, Reader, WriteExt};

/// A request header's api key, api version and correlation id: the part
/// every header version has.
const IDS_LEN: usize = 8;

/// The request header encoder of one connection.
///
/// Request header v1 is `api_key, api_version, correlation_id, client_id`
/// (a nullable non-compact string); v2 appends an empty tagged-field
/// section. The client id stays non-compact in v2 so that any broker can
/// read it before it knows the version (KIP-482). v0 has no client id.
///
/// The client id is the same in every header of a connection, so it is
/// encoded once, here, with v2's empty tagged-field section after it: a
/// header is then two copies (the 12 bytes of size prefix and ids, then
/// that tail or the part of it the version has), rather than a string
/// encoded again per request (issue 20: about 90 instructions per request).
#[derive(Debug)]
pub(crate) struct RequestHeaders {
    /// The client id as a nullable string, then one 0 byte (v2's tagged
    /// fields).
    tail: Box<[u8]>,
}

impl RequestHeaders {
    /// The encoder for `client_id` (its length already checked to fit an
    /// i16, by `Config::validate`).
    pub(crate) fn new(client_id: Option<&str>) -> Self {
        let mut tail = Vec::new();
        tail.put_nullable_string(client_id);
        tail.put_empty_tagged_fields();
        Self {
            tail: tail.into_boxed_slice(),
        }
    }

    /// What follows the correlation id in a header of `header_version`.
    #[inline]
    fn tail(&self, header_version: u8) -> &[u8] {
        match header_version {
            0 => &[],
            1 => &self.tail[..self.tail.len() - 1],
            _ => &self.tail,
        }
    }

    /// The encoded size of a header (without the size prefix).
    #[inline]
    pub(crate) fn len(&self, header_version: u8) -> usize {
        IDS_LEN + self.tail(header_version).len()
    }

    /// Writes the size prefix and the header for a body of `body_len`
    /// bytes and returns how many bytes it wrote; fails with the frame's
    /// size when it does not fit an i32.
    #[inline]
    pub(crate) fn encode(
        &self,
        out: &mut BytesMut,
        header_version: u8,
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        body_len: usize,
    ) -> Result<usize, usize> {
        let tail = self.tail(header_version);
        let size = IDS_LEN + tail.len() + body_len;
        let size_i32 = i32::try_from(size).map_err(|_| size)?;
        // The fixed part in one copy: each `BufMut::put_*` checks and moves
        // the buffer's cursor on its own, for every request sent.
        let mut fixed = [0u8; 4 + IDS_LEN];
        fixed[..4].copy_from_slice(&size_i32.to_be_bytes());
        fixed[4..6].copy_from_slice(&api_key.to_be_bytes());
        fixed[6..8].copy_from_slice(&api_version.to_be_bytes());
        fixed[8..].copy_from_slice(&correlation_id.to_be_bytes());
        out.reserve(fixed.len() + tail.len());
        out.extend_from_slice(&fixed);
        out.extend_from_slice(tail);
        Ok(fixed.len() + tail.len())
    }
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
        let headers = RequestHeaders::new(Some("ab"));
        headers.encode(&mut b, 2, 18, 3, 7, 5).unwrap();
        assert_eq!(
            &b[..],
            &[0, 0, 0, 18, 0, 18, 0, 3, 0, 0, 0, 7, 0, 2, b'a', b'b', 0]
        );
        assert_eq!(headers.len(2) + 4, b.len());
    }

    #[test]
    fn request_header_v1_null_client_id() {
        let mut b = BytesMut::new();
        let headers = RequestHeaders::new(None);
        headers.encode(&mut b, 1, 3, 1, -5, 0).unwrap();
        assert_eq!(
            &b[..],
            &[0, 0, 0, 10, 0, 3, 0, 1, 0xff, 0xff, 0xff, 0xfb, 0xff, 0xff]
        );
    }

    /// The encoder against the header written out field by field from the
    /// protocol's definition (request header v0-v2, KIP-482), for client ids
    /// of every kind, including the longest a `Config` accepts.
    #[test]
    fn request_headers_match_the_fields_written_out() {
        let longest = "x".repeat(i16::MAX as usize);
        for client_id in [
            None,
            Some(""),
            Some("kafka-conn"),
            Some("ünï"),
            Some(&*longest),
        ] {
            let headers = RequestHeaders::new(client_id);
            for version in 0..=2u8 {
                for body_len in [0usize, 1, 1 << 20] {
                    let mut want = Vec::new();
                    let mut fields = Vec::new();
                    fields.extend_from_slice(&0x1234i16.to_be_bytes());
                    fields.extend_from_slice(&9i16.to_be_bytes());
                    fields.extend_from_slice(&(-7i32).to_be_bytes());
                    if version >= 1 {
                        match client_id {
                            None => fields.extend_from_slice(&[0xff, 0xff]),
                            Some(id) => {
                                fields.extend_from_slice(&(id.len() as u16).to_be_bytes());
                                fields.extend_from_slice(id.as_bytes());
                            }
                        }
                    }
                    if version >= 2 {
                        fields.push(0);
                    }
                    let size = (fields.len() + body_len) as u32;
                    want.extend_from_slice(&size.to_be_bytes());
                    want.extend_from_slice(&fields);

                    let mut got = BytesMut::from(&b"left alone"[..]);
                    headers
                        .encode(&mut got, version, 0x1234, 9, -7, body_len)
                        .unwrap();
                    assert_eq!(&got[..10], b"left alone");
                    assert!(got[10..] == want[..], "v{version}, client id {client_id:?}");
                    assert_eq!(headers.len(version), fields.len());
                }
            }
        }
        // A frame that does not fit an i32 is refused with its size.
        let headers = RequestHeaders::new(Some("ab"));
        let mut out = BytesMut::new();
        let body = i32::MAX as usize;
        assert_eq!(headers.encode(&mut out, 1, 0, 0, 0, body), Err(body + 12));
        assert!(out.is_empty());
    }

    #[test]
    fn response_header_v1_skips_tagged_fields() {
        let frame = [0, 0, 0, 9, 1, 3, 2, 0xaa, 0xbb, 42];
        assert_eq!(decode_response_header(&frame, 1).unwrap(), (9, 9));
        assert_eq!(decode_response_header(&frame, 0).unwrap(), (9, 4));
        assert!(decode_response_header(&frame[..3], 0).is_err());
    }
}
