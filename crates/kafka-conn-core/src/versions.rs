//! API version negotiation (KIP-511): what an ApiVersions reply leads to
//! ([`Negotiation`], a small state machine the connection owns), the
//! ApiVersions codec (v0-v4) and the table of what a broker supports.

use bytes::{BufMut, Bytes};

use crate::api::ApiKey;
use crate::codes;
use crate::error::{CloseReason, Incompatibility};
use crate::wire::{DecodeError, Reader, WriteExt};

/// The highest ApiVersions version this crate speaks.
pub const API_VERSIONS_MAX: i16 = 4;

/// The range of versions a broker supports for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest supported version.
    pub min: i16,
    /// Highest supported version.
    pub max: i16,
}

/// Where KIP-511 negotiation is: the connection sends ApiVersions at the
/// highest version it speaks and hands each reply to
/// [`Negotiation::on_response`], which says whether to ask again lower,
/// use the table, or give up.
#[derive(Debug, Default)]
pub(crate) struct Negotiation {
    /// Whether the one retry at v0 after an undecodable v3+ reply was used.
    v0_fallback_used: bool,
}

/// What an ApiVersions reply leads to.
#[derive(Debug)]
pub(crate) enum Negotiated {
    /// Ask again at this (strictly lower) version.
    Retry(i16),
    /// The broker's table, validated, and the reply's `throttle_time_ms`.
    Table {
        /// What the broker supports.
        table: ApiVersions,
        /// KIP-219: only ApiVersions v2+ asks the client to back off.
        throttle_time_ms: i32,
    },
    /// Negotiation failed: the connection closes with this reason.
    Failed(CloseReason),
}

impl Negotiation {
    /// The reply `body` to ApiVersions `version`; `configured_max` is the
    /// version negotiation started with.
    pub(crate) fn on_response(
        &mut self,
        body: &[u8],
        version: i16,
        configured_max: i16,
    ) -> Negotiated {
        let malformed =
            |error| Negotiated::Failed(CloseReason::malformed(ApiKey::API_VERSIONS, error));
        let error_code = match peek_error_code(body) {
            Ok(c) => c,
            Err(e) => return malformed(e),
        };
        if error_code == codes::UNSUPPORTED_VERSION {
            // KIP-511: the broker answers an unsupported ApiVersions version
            // with a v0 body listing (at least) its own ApiVersions range.
            let retry = match decode_response(body, 0) {
                Ok(r) => r
                    .versions
                    .get(ApiKey::API_VERSIONS)
                    .map_or(0, |(_, max)| max.min(version - 1)),
                // An undecodable v0 body (the librdkafka mock cluster sends a
                // non-standard one): fall back to v0, which every broker speaks.
                Err(_) => 0,
            };
            // Only a strictly lower version: a broker cannot hold us in a loop.
            if retry < version && retry >= 0 && version > 0 {
                return Negotiated::Retry(retry);
            }
            return Negotiated::Failed(
                Incompatibility::Negotiation(format!(
                    "the broker rejected ApiVersions v{version} as unsupported and offers nothing lower"
                ))
                .into(),
            );
        }
        let decoded = match decode_response(body, version) {
            Ok(r) => r,
            Err(_) if version >= 3 && !self.v0_fallback_used => {
                // KIP-511: a reply that cannot be read at v3+ gets one retry at v0.
                self.v0_fallback_used = true;
                return Negotiated::Retry(0);
            }
            Err(e) => return malformed(e),
        };
        if decoded.error_code != 0 {
            return Negotiated::Failed(
                Incompatibility::Negotiation(format!(
                    "ApiVersions v{version} failed with error {} {}",
                    decoded.error_code,
                    codes::error_code_name(decoded.error_code)
                ))
                .into(),
            );
        }
        let mut table = match validated(decoded.versions) {
            Ok(t) => t,
            Err(why) => {
                return Negotiated::Failed(
                    Incompatibility::Negotiation(format!(
                        "invalid ApiVersions v{version} response: {why}"
                    ))
                    .into(),
                )
            }
        };
        table.fell_back = version < configured_max;
        Negotiated::Table {
            table,
            throttle_time_ms: decoded.throttle_time_ms,
        }
    }
}

/// A feature level the cluster has finalized (KIP-584), from ApiVersions v3+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// Feature name, e.g. `metadata.version`.
    pub name: String,
    /// Lowest level.
    pub min: i16,
    /// Highest level.
    pub max: i16,
}

/// What a broker supports, from its ApiVersions response or a version hint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiVersions {
    ranges: Vec<VersionRange>,
    /// Where each small key sits in `ranges`, once they are validated.
    index: KeyIndex,
    /// The ApiVersions version whose response was used (`None` for a hint).
    pub negotiated_with: Option<i16>,
    /// Whether a KIP-511 fallback to a lower ApiVersions version happened.
    pub fell_back: bool,
    /// Features the broker supports (tag 0 of ApiVersions v3+).
    pub supported_features: Vec<Feature>,
    /// Features the cluster finalized (tag 2 of ApiVersions v3+).
    pub finalized_features: Vec<Feature>,
    /// The finalized features' epoch (tag 1), `None` if absent or -1.
    pub finalized_features_epoch: Option<i64>,
}

impl ApiVersions {
    /// A table from ranges; validated: non-empty, `min <= max`, no duplicates.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (i16, i16, i16)>) -> Result<Self, String> {
        let mut ranges: Vec<VersionRange> = ranges
            .into_iter()
            .map(|(k, min, max)| VersionRange {
                api_key: ApiKey(k),
                min,
                max,
            })
            .collect();
        let index = validate(&mut ranges)?;
        Ok(Self {
            index,
            ranges,
            ..Self::default()
        })
    }

    /// What Kafka 0.9.0 brokers support (they predate ApiVersions): use as
    /// a version hint ([`crate::Config::with_version_hint`]).
    pub fn kafka_0_9_0() -> Self {
        Self::from_ranges([
            (0, 0, 1),
            (1, 0, 1),
            (2, 0, 0),
            (3, 0, 0),
            (8, 0, 2),
            (9, 0, 1),
            (10, 0, 0),
            (11, 0, 0),
            (12, 0, 0),
            (13, 0, 0),
            (14, 0, 0),
            (15, 0, 0),
            (16, 0, 0),
        ])
        .expect("static table is valid")
    }

    /// What Kafka 0.8.2 brokers support: use as a version hint.
    pub fn kafka_0_8_2() -> Self {
        Self::from_ranges([
            (0, 0, 0),
            (1, 0, 0),
            (2, 0, 0),
            (3, 0, 0),
            (8, 0, 1),
            (9, 0, 1),
            (10, 0, 0),
        ])
        .expect("static table is valid")
    }

    /// The broker's range for `api_key`.
    pub fn get(&self, api_key: ApiKey) -> Option<(i16, i16)> {
        let at = match self.index.position(api_key) {
            Lookup::At(i) => i,
            Lookup::Absent => return None,
            Lookup::Search => self
                .ranges
                .binary_search_by_key(&api_key, |r| r.api_key)
                .ok()?,
        };
        let r = &self.ranges[at];
        Some((r.min, r.max))
    }

    /// The highest version in both the broker's range and `ours`, if any.
    pub fn negotiate(&self, api_key: ApiKey, ours: std::ops::RangeInclusive<i16>) -> Option<i16> {
        let (min, max) = self.get(api_key)?;
        let hi = max.min(*ours.end());
        let lo = min.max(*ours.start());
        (lo <= hi).then_some(hi)
    }

    /// Whether the broker supports `version` of `api_key`.
    pub fn supports(&self, api_key: ApiKey, version: i16) -> bool {
        self.get(api_key)
            .is_some_and(|(min, max)| (min..=max).contains(&version))
    }

    /// Every range, by API key.
    pub fn iter(&self) -> impl Iterator<Item = &VersionRange> {
        self.ranges.iter()
    }

    /// The number of APIs.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the table is empty (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// Where each API key below [`KeyIndex::KEYS`] sits in a validated table's
/// ranges: every request's version check (`Connection::send_request`) looks
/// its key up, and a binary search over 40-80 ranges cost about 45
/// instructions of a request's few thousand (issue 20, callgrind). A table
/// not validated (sorted, keys unique) has no index and is searched.
#[derive(Clone, PartialEq, Eq)]
struct KeyIndex([u8; KeyIndex::KEYS]);

/// What [`KeyIndex::position`] found.
enum Lookup {
    At(usize),
    Absent,
    Search,
}

impl KeyIndex {
    /// Every API key Kafka has defined so far is below this (the highest
    /// are in the 90s); larger and negative keys are searched.
    const KEYS: usize = 128;
    /// The key is not in the table.
    const ABSENT: u8 = u8::MAX;
    /// Not indexed: search the ranges.
    const UNKNOWN: u8 = u8::MAX - 1;

    /// The index of `ranges`, sorted by key with each key once. A key found
    /// too far in for a byte (behind hundreds of negative keys, which no
    /// broker sends) is left to the search.
    fn of(ranges: &[VersionRange]) -> Self {
        let mut index = [Self::ABSENT; Self::KEYS];
        for (at, r) in ranges.iter().enumerate() {
            if let Some(slot) = usize::try_from(r.api_key.0)
                .ok()
                .and_then(|k| index.get_mut(k))
            {
                *slot = u8::try_from(at)
                    .ok()
                    .filter(|&at| at < Self::UNKNOWN)
                    .unwrap_or(Self::UNKNOWN);
            }
        }
        Self(index)
    }

    fn position(&self, api_key: ApiKey) -> Lookup {
        match usize::try_from(api_key.0).ok().and_then(|k| self.0.get(k)) {
            Some(&Self::ABSENT) => Lookup::Absent,
            Some(&Self::UNKNOWN) | None => Lookup::Search,
            Some(&at) => Lookup::At(usize::from(at)),
        }
    }
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self([Self::UNKNOWN; Self::KEYS])
    }
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Derived from the ranges, which are printed next to it.
        let indexed = self.0.iter().any(|&at| at != Self::UNKNOWN);
        f.debug_struct("KeyIndex")
            .field("indexed", &indexed)
            .finish()
    }
}

/// Sorts `ranges` by key and checks them (non-empty, `0 <= min <= max`,
/// each key once); returns their index, which only a validated table has.
fn validate(ranges: &mut [VersionRange]) -> Result<KeyIndex, String> {
    if ranges.is_empty() {
        return Err("the broker listed no APIs".into());
    }
    ranges.sort_by_key(|r| r.api_key);
    for r in ranges.iter() {
        if r.min > r.max || r.min < 0 {
            return Err(format!(
                "{} has an invalid range v{} to v{}",
                r.api_key, r.min, r.max
            ));
        }
    }
    if let Some(w) = ranges.windows(2).find(|w| w[0].api_key == w[1].api_key) {
        return Err(format!("{} is listed twice", w[0].api_key));
    }
    Ok(KeyIndex::of(ranges))
}

/// The ApiVersions request body at `version`. v3+ carries the client
/// software name and version (KIP-511), validated by the config.
pub(crate) fn encode_request(version: i16, software_name: &str, software_version: &str) -> Bytes {
    crate::wire::build(|b| {
        if version >= 3 {
            b.put_compact_string(software_name);
            b.put_compact_string(software_version);
            b.put_empty_tagged_fields();
        }
    })
}

/// A decoded ApiVersions response.
#[derive(Debug)]
pub(crate) struct ApiVersionsResponse {
    pub(crate) error_code: i16,
    pub(crate) versions: ApiVersions,
    pub(crate) throttle_time_ms: i32,
}

/// The error code, which every version puts first.
pub(crate) fn peek_error_code(body: &[u8]) -> Result<i16, DecodeError> {
    Reader::new(body).i16("error_code")
}

/// Decodes an ApiVersions response body of `version`. The table is not
/// validated here (an error response may list nothing).
pub(crate) fn decode_response(
    body: &[u8],
    version: i16,
) -> Result<ApiVersionsResponse, DecodeError> {
    let mut r = Reader::new(body);
    let error_code = r.i16("error_code")?;
    let flexible = version >= 3;
    let count = if flexible {
        r.compact_array_len(6, "api_keys")?
    } else {
        r.array_len(6, "api_keys")?
    };
    let mut ranges = Vec::with_capacity(count);
    for _ in 0..count {
        let api_key = ApiKey(r.i16("api_key")?);
        let min = r.i16("min_version")?;
        let max = r.i16("max_version")?;
        if flexible {
            r.skip_tagged_fields()?;
        }
        ranges.push(VersionRange { api_key, min, max });
    }
    let throttle_time_ms = if version >= 1 {
        r.i32("throttle_time_ms")?
    } else {
        0
    };
    let mut versions = ApiVersions {
        ranges,
        negotiated_with: Some(version),
        ..ApiVersions::default()
    };
    if flexible {
        r.tagged_fields(|tag, data| {
            let mut f = Reader::new(data);
            match tag {
                0 => versions.supported_features = decode_features(&mut f)?,
                1 => {
                    versions.finalized_features_epoch =
                        Some(f.i64("features epoch")?).filter(|e| *e >= 0)
                }
                2 => versions.finalized_features = decode_features(&mut f)?,
                _ => {} // ZkMigrationReady (3) and future tags are of no use here.
            }
            Ok(())
        })?;
    }
    Ok(ApiVersionsResponse {
        error_code,
        versions,
        throttle_time_ms,
    })
}

fn decode_features(r: &mut Reader<'_>) -> Result<Vec<Feature>, DecodeError> {
    let n = r.compact_array_len(6, "features")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.compact_string("feature name")?.to_owned();
        // SupportedFeatures: min_version, max_version; FinalizedFeatures:
        // max_version_level, min_version_level. Normalised to (min, max).
        let a = r.i16("feature version")?;
        let b = r.i16("feature version")?;
        r.skip_tagged_fields()?;
        out.push(Feature {
            name,
            min: a.min(b),
            max: a.max(b),
        });
    }
    Ok(out)
}

/// Validates a decoded table.
pub(crate) fn validated(mut v: ApiVersions) -> Result<ApiVersions, String> {
    v.index = validate(&mut v.ranges)?;
    Ok(v)
}

/// Writes an ApiVersions response body (for the simulated broker and tests).
pub fn encode_response(
    out: &mut impl BufMut,
    version: i16,
    error_code: i16,
    ranges: &[(i16, i16, i16)],
) {
    out.put_i16(error_code);
    if version >= 3 {
        out.put_uvarint(u32::try_from(ranges.len() + 1).expect("small table"));
    } else {
        out.put_i32(i32::try_from(ranges.len()).expect("small table"));
    }
    for &(k, min, max) in ranges {
        out.put_i16(k);
        out.put_i16(min);
        out.put_i16(max);
        if version >= 3 {
            out.put_empty_tagged_fields();
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    if version >= 3 {
        out.put_empty_tagged_fields();
    }
}

/// KIP-511's pattern for client software name and version:
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
pub(crate) fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && edge(&b[0])
        && edge(&b[b.len() - 1])
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn responses_round_trip_at_every_version() {
        let ranges = [(0, 0, 9), (18, 0, 4), (3, 1, 12)];
        for v in 0..=API_VERSIONS_MAX {
            let mut b = BytesMut::new();
            encode_response(&mut b, v, 0, &ranges);
            let r = decode_response(&b, v).unwrap();
            let t = validated(r.versions).unwrap();
            assert_eq!(t.get(ApiKey(3)), Some((1, 12)));
            assert_eq!(t.negotiate(ApiKey(0), 3..=20), Some(9));
            assert_eq!(t.negotiate(ApiKey(3), 13..=20), None);
            assert_eq!(t.negotiate(ApiKey(99), 0..=20), None);
        }
    }

    #[test]
    fn software_fields_follow_kip_511() {
        for ok in ["kafka-conn", "a", "1.2.3", "x-y.z9"] {
            assert!(valid_software_field(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a_b", "é", "a."] {
            assert!(!valid_software_field(bad), "{bad}");
        }
    }

    #[test]
    fn lookups_by_index_and_by_search_agree() {
        // Unsorted on purpose, with negative keys before the small ones
        // (their positions shift), gaps, and keys past the index.
        let ranges = [
            (3, 0, 12),
            (-7, 1, 1),
            (1000, 2, 5),
            (0, 0, 9),
            (127, 4, 4),
            (128, 6, 7),
            (i16::MIN, 0, 0),
            (i16::MAX, 3, 8),
            (18, 0, 4),
        ];
        let t = ApiVersions::from_ranges(ranges).unwrap();
        assert!(t.index.0.iter().all(|&at| at != KeyIndex::UNKNOWN));
        for &(k, min, max) in &ranges {
            assert_eq!(t.get(ApiKey(k)), Some((min, max)), "key {k}");
        }
        for absent in [1, 2, 17, 19, 126, 129, 999, -1, -8] {
            assert_eq!(t.get(ApiKey(absent)), None, "key {absent}");
        }
        // A decoded table before validation is searched, as before.
        let mut b = BytesMut::new();
        encode_response(&mut b, 0, 0, &[(0, 0, 9), (18, 0, 4), (3, 1, 12)]);
        let raw = decode_response(&b, 0).unwrap().versions;
        assert!(raw.index.0.iter().all(|&p| p == KeyIndex::UNKNOWN));
        assert_eq!(raw.get(ApiKey(0)), Some((0, 9)));
        assert_eq!(raw.get(ApiKey(5)), None);
        let t = validated(raw).unwrap();
        assert_eq!(t.get(ApiKey(18)), Some((0, 4)));
        assert_eq!(t.get(ApiKey(5)), None);
    }

    #[test]
    fn small_keys_behind_hundreds_of_negative_ones_are_searched() {
        let negative = (1..=300).map(|k| (-k, 0, 1));
        let t = ApiVersions::from_ranges(negative.chain([(0, 0, 9), (3, 1, 12)])).unwrap();
        // Positions 300 and 301: past what the index holds.
        assert_eq!(t.index.0[0], KeyIndex::UNKNOWN);
        assert_eq!(t.index.0[1], KeyIndex::ABSENT);
        assert_eq!(t.get(ApiKey(0)), Some((0, 9)));
        assert_eq!(t.get(ApiKey(3)), Some((1, 12)));
        assert_eq!(t.get(ApiKey(-300)), Some((0, 1)));
        assert_eq!(t.get(ApiKey(1)), None);
    }

    #[test]
    fn validation_rejects_bad_tables() {
        assert!(ApiVersions::from_ranges([]).is_err());
        assert!(ApiVersions::from_ranges([(1, 3, 2)]).is_err());
        assert!(ApiVersions::from_ranges([(1, 0, 2), (1, 0, 3)]).is_err());
        assert!(ApiVersions::from_ranges([(1, -1, 2)]).is_err());
    }
}
