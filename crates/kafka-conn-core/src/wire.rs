//! Kafka's primitive wire types: big-endian integers, unsigned varints,
//! (compact) strings and arrays, and tagged fields.
//!
//! The [`Reader`] never allocates on a length the peer claims: every length
//! is checked against the bytes actually present before anything is sliced.

use bytes::{BufMut, Bytes, BytesMut};

/// The longest STRING / NULLABLE_STRING (an INT16 length): what a request
/// header's client id and SaslHandshake's mechanism name can carry. The
/// config refuses longer ones (`ConfigError`) before anything is encoded.
pub(crate) const MAX_STRING_LEN: usize = i16::MAX as usize;

/// A decode failure: the bytes do not form the value that was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("truncated: needed {needed} more bytes for {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// How many bytes were missing.
        needed: usize,
    },
    /// A length or count that cannot be right (negative where not allowed,
    /// or larger than the input).
    #[error("invalid length {len} for {what}")]
    InvalidLength {
        /// What was being read.
        what: &'static str,
        /// The length as read.
        len: i64,
    },
    /// An unsigned varint longer than five bytes.
    #[error("varint longer than 5 bytes")]
    VarintTooLong,
    /// A string that is not UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// What was being read.
        what: &'static str,
    },
}

/// A cursor over a response body, with Kafka's primitive readers.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                what,
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// An INT8.
    pub fn i8(&mut self, what: &'static str) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }

    /// An INT16.
    pub fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    /// An INT32.
    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    /// An INT64.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// An UNSIGNED_VARINT (at most five bytes, as Kafka's 32-bit varints).
    pub fn uvarint(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.array::<1>(what)?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong)
    }

    /// A length that must fit in what is left: guards every slice.
    fn checked_len(&self, len: i64, what: &'static str) -> Result<usize, DecodeError> {
        if len < 0 || len as u64 > self.buf.len() as u64 {
            return Err(DecodeError::InvalidLength { what, len });
        }
        Ok(len as usize)
    }

    /// A count of array elements, each at least `min_elem` bytes, checked
    /// against what is left so a caller can pre-size a vector safely.
    fn checked_count(
        &self,
        count: i64,
        min_elem: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        if count < 0
            || (count as u64).saturating_mul(min_elem.max(1) as u64) > self.buf.len() as u64
        {
            return Err(DecodeError::InvalidLength { what, len: count });
        }
        Ok(count as usize)
    }

    /// A STRING (INT16 length). A negative length is an error.
    pub fn string(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        self.nullable_string(what)?
            .ok_or(DecodeError::InvalidLength { what, len: -1 })
    }

    /// A NULLABLE_STRING (INT16 length, -1 is null).
    pub fn nullable_string(&mut self, what: &'static str) -> Result<Option<&'a str>, DecodeError> {
        let len = self.i16(what)?;
        if len == -1 {
            return Ok(None);
        }
        let n = self.checked_len(i64::from(len), what)?;
        utf8(self.take(n, what)?, what).map(Some)
    }

    /// A COMPACT_STRING (UNSIGNED_VARINT length + 1).
    pub fn compact_string(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        self.compact_nullable_string(what)?
            .ok_or(DecodeError::InvalidLength { what, len: -1 })
    }

    /// A COMPACT_NULLABLE_STRING (0 is null).
    pub fn compact_nullable_string(
        &mut self,
        what: &'static str,
    ) -> Result<Option<&'a str>, DecodeError> {
        match self.compact_nullable_bytes(what)? {
            None => Ok(None),
            Some(b) => utf8(b, what).map(Some),
        }
    }

    /// BYTES (INT32 length). A negative length is an error.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.i32(what)?;
        let n = self.checked_len(i64::from(len), what)?;
        self.take(n, what)
    }

    /// COMPACT_NULLABLE_BYTES (UNSIGNED_VARINT length + 1, 0 is null).
    pub fn compact_nullable_bytes(
        &mut self,
        what: &'static str,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        let len = self.uvarint(what)?;
        if len == 0 {
            return Ok(None);
        }
        let n = self.checked_len(i64::from(len) - 1, what)?;
        self.take(n, what).map(Some)
    }

    /// COMPACT_BYTES: like [`Reader::compact_nullable_bytes`] but null is an error.
    pub fn compact_bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.compact_nullable_bytes(what)?
            .ok_or(DecodeError::InvalidLength { what, len: -1 })
    }

    /// An ARRAY's INT32 count, checked against the bytes left assuming
    /// each element takes at least `min_elem` bytes.
    pub fn array_len(&mut self, min_elem: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.i32(what)?;
        self.checked_count(i64::from(n), min_elem, what)
    }

    /// A COMPACT_ARRAY's count (UNSIGNED_VARINT count + 1; null is read as empty).
    pub fn compact_array_len(
        &mut self,
        min_elem: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let n = self.uvarint(what)?;
        if n == 0 {
            return Ok(0);
        }
        self.checked_count(i64::from(n) - 1, min_elem, what)
    }

    /// Reads a tagged-field section, calling `on_field(tag, data)` for each
    /// field (KIP-482). Unknown tags are for the caller to ignore.
    pub fn tagged_fields(
        &mut self,
        mut on_field: impl FnMut(u32, &'a [u8]) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let count = self.uvarint("tagged field count")?;
        // Each field takes at least two bytes (tag and size).
        self.checked_count(i64::from(count), 2, "tagged field count")?;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            let n = self.checked_len(i64::from(size), "tagged field")?;
            on_field(tag, self.take(n, "tagged field")?)?;
        }
        Ok(())
    }

    /// Reads and discards a tagged-field section.
    pub fn skip_tagged_fields(&mut self) -> Result<(), DecodeError> {
        self.tagged_fields(|_, _| Ok(()))
    }
}

fn utf8<'a>(b: &'a [u8], what: &'static str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 { what })
}

/// Writers for Kafka's primitive types on top of [`BufMut`].
pub trait WriteExt: BufMut {
    /// An UNSIGNED_VARINT.
    fn put_uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.put_u8(v as u8);
    }

    /// A STRING or NULLABLE_STRING. Panics if longer than `i16::MAX` bytes:
    /// callers validate lengths first.
    fn put_nullable_string(&mut self, s: Option<&str>) {
        match s {
            None => self.put_i16(-1),
            Some(s) => {
                let len = i16::try_from(s.len()).expect("string length checked by caller");
                self.put_i16(len);
                self.put_slice(s.as_bytes());
            }
        }
    }

    /// A COMPACT_STRING.
    fn put_compact_string(&mut self, s: &str) {
        self.put_compact_bytes(s.as_bytes());
    }

    /// COMPACT_BYTES.
    fn put_compact_bytes(&mut self, b: &[u8]) {
        let len = u32::try_from(b.len() + 1).expect("length fits u32");
        self.put_uvarint(len);
        self.put_slice(b);
    }

    /// BYTES (INT32 length).
    fn put_bytes_i32(&mut self, b: &[u8]) {
        let len = i32::try_from(b.len()).expect("length fits i32");
        self.put_i32(len);
        self.put_slice(b);
    }

    /// An empty tagged-field section.
    fn put_empty_tagged_fields(&mut self) {
        self.put_u8(0);
    }
}

impl<B: BufMut + ?Sized> WriteExt for B {}

/// Builds a small body into a fresh [`Bytes`]; used for the requests the core
/// sends itself (ApiVersions, SASL), which are rare.
pub(crate) fn build(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    f(&mut b);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trip() {
        for v in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut b = BytesMut::new();
            b.put_uvarint(v);
            assert_eq!(Reader::new(&b).uvarint("v").unwrap(), v);
        }
    }

    #[test]
    fn varint_too_long_is_rejected() {
        let b = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            Reader::new(&b).uvarint("v"),
            Err(DecodeError::VarintTooLong)
        );
    }

    #[test]
    fn lengths_are_checked_before_slicing() {
        // A string claiming 30000 bytes with two present.
        let b = [0x75, 0x30, b'h', b'i'];
        assert!(matches!(
            Reader::new(&b).string("s"),
            Err(DecodeError::InvalidLength { len: 30000, .. })
        ));
        // An array claiming i32::MAX elements.
        let b = [0x7f, 0xff, 0xff, 0xff, 0, 0];
        assert!(Reader::new(&b).array_len(6, "a").is_err());
    }

    #[test]
    fn compact_and_nullable_strings() {
        let mut b = BytesMut::new();
        b.put_compact_string("abc");
        b.put_nullable_string(None);
        b.put_nullable_string(Some("xy"));
        b.put_uvarint(0);
        let mut r = Reader::new(&b);
        assert_eq!(r.compact_string("a").unwrap(), "abc");
        assert_eq!(r.nullable_string("b").unwrap(), None);
        assert_eq!(r.nullable_string("c").unwrap(), Some("xy"));
        assert_eq!(r.compact_nullable_string("d").unwrap(), None);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn tagged_fields_are_visited() {
        let mut b = BytesMut::new();
        b.put_uvarint(2);
        b.put_uvarint(0);
        b.put_uvarint(1);
        b.put_u8(9);
        b.put_uvarint(5);
        b.put_uvarint(0);
        let mut seen = vec![];
        Reader::new(&b)
            .tagged_fields(|t, d| {
                seen.push((t, d.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, vec![(0, vec![9]), (5, vec![])]);
    }
}
