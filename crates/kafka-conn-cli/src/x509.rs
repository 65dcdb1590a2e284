//! Just enough X.509 to describe a broker's certificate: subject, issuer,
//! validity and subject alternative names. A small DER walker over the
//! fields `check` shows; anything it does not understand is an error, and
//! `check` then shows the certificate as "not decoded" (rustls has already
//! verified or rejected it: nothing here makes a trust decision).

use std::fmt;
use std::net::IpAddr;

/// What `check` shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertSummary {
    /// The subject, most specific first, e.g. `CN=localhost, O=Example`.
    pub(crate) subject: String,
    /// The issuer, in the same form.
    pub(crate) issuer: String,
    /// The serial number, in hex (a rotated certificate gets a new one).
    pub(crate) serial: String,
    /// Start of validity, Unix seconds.
    pub(crate) not_before: i64,
    /// End of validity, Unix seconds.
    pub(crate) not_after: i64,
    /// DNS names from the subject alternative name extension.
    pub(crate) dns_names: Vec<String>,
    /// IP addresses from the subject alternative name extension.
    pub(crate) ip_addresses: Vec<IpAddr>,
}

impl CertSummary {
    /// Every name the certificate is valid for (SAN DNS names and IPs).
    pub(crate) fn names(&self) -> Vec<String> {
        self.dns_names
            .iter()
            .cloned()
            .chain(self.ip_addresses.iter().map(IpAddr::to_string))
            .collect()
    }
}

/// A certificate that this walker cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode the certificate: {0}")]
pub(crate) struct DerError(&'static str);

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION_TAG: u8 = 0xa0;
const EXTENSIONS_TAG: u8 = 0xa3;
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

struct Der<'a> {
    buf: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// Reads one TLV; returns its tag and contents.
    fn any(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, rest) = self.buf.split_first().ok_or(DerError("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tag"));
        }
        let (&first, mut rest) = rest.split_first().ok_or(DerError("truncated length"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(DerError("bad length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(DerError("truncated value"));
        }
        let (value, after) = rest.split_at(len);
        self.buf = after;
        Ok((tag, value))
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], DerError> {
        match self.any()? {
            (t, v) if t == tag => Ok(v),
            _ => Err(DerError(what)),
        }
    }
}

/// Decodes the fields `check` shows from a DER certificate.
pub(crate) fn parse(der: &[u8]) -> Result<CertSummary, DerError> {
    let cert = Der::new(der).expect(SEQUENCE, "not a certificate")?;
    let mut tbs = Der::new(Der::new(cert).expect(SEQUENCE, "no tbsCertificate")?);
    if tbs.peek_tag() == Some(VERSION_TAG) {
        tbs.any()?;
    }
    let serial: String = tbs
        .expect(INTEGER, "no serial number")?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    tbs.expect(SEQUENCE, "no signature algorithm")?;
    let issuer = name(tbs.expect(SEQUENCE, "no issuer")?)?;
    let mut validity = Der::new(tbs.expect(SEQUENCE, "no validity")?);
    let not_before = time(&mut validity)?;
    let not_after = time(&mut validity)?;
    let subject = name(tbs.expect(SEQUENCE, "no subject")?)?;
    tbs.expect(SEQUENCE, "no public key")?;
    let mut summary = CertSummary {
        subject,
        issuer,
        serial,
        not_before,
        not_after,
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
    };
    while !tbs.is_empty() {
        let (tag, value) = tbs.any()?;
        if tag == EXTENSIONS_TAG {
            extensions(value, &mut summary)?;
        }
    }
    Ok(summary)
}

fn extensions(explicit: &[u8], out: &mut CertSummary) -> Result<(), DerError> {
    let mut list = Der::new(Der::new(explicit).expect(SEQUENCE, "bad extensions")?);
    while !list.is_empty() {
        let mut ext = Der::new(list.expect(SEQUENCE, "bad extension")?);
        let oid = ext.expect(OID, "bad extension id")?;
        if ext.peek_tag() == Some(BOOLEAN) {
            ext.any()?;
        }
        let value = ext.expect(OCTET_STRING, "bad extension value")?;
        if oid == SAN_OID {
            let mut names = Der::new(Der::new(value).expect(SEQUENCE, "bad subjectAltName")?);
            while !names.is_empty() {
                match names.any()? {
                    // dNSName [2] IA5String
                    (0x82, v) => out.dns_names.push(String::from_utf8_lossy(v).into_owned()),
                    // iPAddress [7] OCTET STRING
                    (0x87, v) => {
                        if let Ok(b) = <[u8; 4]>::try_from(v) {
                            out.ip_addresses.push(IpAddr::from(b));
                        } else if let Ok(b) = <[u8; 16]>::try_from(v) {
                            out.ip_addresses.push(IpAddr::from(b));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// A Name as `CN=..., O=...`, most specific (last encoded) first, like
/// Kafka and Java print principals.
fn name(rdns: &[u8]) -> Result<String, DerError> {
    let mut parts = Vec::new();
    let mut seq = Der::new(rdns);
    while !seq.is_empty() {
        let mut set = Der::new(seq.expect(SET, "bad name")?);
        let mut attrs = Vec::new();
        while !set.is_empty() {
            let mut atv = Der::new(set.expect(SEQUENCE, "bad name attribute")?);
            let oid = atv.expect(OID, "bad attribute type")?;
            let (tag, value) = atv.any()?;
            attrs.push(format!(
                "{}={}",
                attribute_name(oid),
                string_value(tag, value)
            ));
        }
        parts.push(attrs.join("+"));
    }
    parts.reverse();
    Ok(parts.join(", "))
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".to_owned(),
        [0x55, 0x04, 0x06] => "C".to_owned(),
        [0x55, 0x04, 0x07] => "L".to_owned(),
        [0x55, 0x04, 0x08] => "ST".to_owned(),
        [0x55, 0x04, 0x0a] => "O".to_owned(),
        [0x55, 0x04, 0x0b] => "OU".to_owned(),
        [0x55, 0x04, 0x05] => "SERIALNUMBER".to_owned(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "EMAILADDRESS".to_owned(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".to_owned(),
        other => dotted_oid(other),
    }
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn string_value(tag: u8, value: &[u8]) -> String {
    match tag {
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // T61String: treat as Latin-1, as OpenSSL does.
        0x14 => value.iter().map(|&b| char::from(b)).collect(),
        _ => String::from_utf8_lossy(value).into_owned(),
    }
}

fn time(der: &mut Der<'_>) -> Result<i64, DerError> {
    let (tag, value) = der.any()?;
    let text = std::str::from_utf8(value).map_err(|_| DerError("bad time"))?;
    let digits = text.strip_suffix('Z').ok_or(DerError("time not in UTC"))?;
    let (year, rest) = match tag {
        UTC_TIME if digits.len() == 12 => {
            let yy = number(&digits[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        GENERALIZED_TIME if digits.len() == 14 => (number(&digits[..4])?, &digits[4..]),
        _ => return Err(DerError("bad time")),
    };
    let field = |i: usize| number(&rest[i..i + 2]);
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(DerError("bad time"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn number(digits: &str) -> Result<i64, DerError> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DerError("bad time"));
    }
    digits.parse().map_err(|_| DerError("bad time"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A Unix time in RFC 3339, e.g. `2027-11-25T09:48:40Z`.
pub(crate) fn rfc3339(unix: i64) -> String {
    let (y, mo, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// A Unix time shown as `2027-11-25 09:48:40 UTC`.
pub(crate) struct UtcTime(pub(crate) i64);

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d) = civil_from_days(self.0.div_euclid(86_400));
        let s = self.0.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
            s / 3600,
            s % 3600 / 60,
            s % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    // `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650
    //   -subj "/C=DE/O=kafka-conn tests/CN=broker.example" -addext
    //   "subjectAltName=DNS:broker.example,DNS:localhost,IP:127.0.0.1"`;
    // `openssl x509 -noout -subject -dates` says:
    //   subject=C=DE, O=kafka-conn tests, CN=broker.example
    //   notBefore=Nov 25 09:54:04 2026 GMT, notAfter=Nov 22 09:54:04 2036 GMT
    const CERT: &str = include_str!("../tests/data/test-cert.pem");

    /// The DER inside the PEM armour.
    fn der() -> Vec<u8> {
        let body: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    #[test]
    fn subject_issuer_validity_and_names_are_read() {
        let c = parse(&der()).unwrap();
        assert_eq!(c.subject, "CN=broker.example, O=kafka-conn tests, C=DE");
        assert_eq!(c.issuer, c.subject, "self-signed");
        assert_eq!(UtcTime(c.not_before).to_string(), "2026-11-25 09:54:04 UTC");
        assert_eq!(UtcTime(c.not_after).to_string(), "2036-11-22 09:54:04 UTC");
        assert_eq!(c.dns_names, ["broker.example", "localhost"]);
        assert_eq!(c.ip_addresses, [IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(c.names(), ["broker.example", "localhost", "127.0.0.1"]);
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let d = der();
        for n in 0..d.len() {
            let _ = parse(&d[..n]);
        }
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut flipped = d.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = parse(&flipped);
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn dates_convert_both_ways() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [-1000, 0, 11_016, 11_017, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(UtcTime(0).to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(UtcTime(951_782_400).to_string(), "2000-02-29 00:00:00 UTC");
        assert_eq!(rfc3339(951_782_401), "2000-02-29T00:00:01Z");
    }

    #[test]
    fn unknown_attribute_types_print_as_dotted_oids() {
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
        assert_eq!(attribute_name(&[0x55, 0x04, 0x2a]), "2.5.4.42");
    }
}
