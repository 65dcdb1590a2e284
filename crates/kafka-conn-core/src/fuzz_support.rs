//! Internal decoders and the bodies of the cargo-fuzz targets in `fuzz/`
//! (feature `fuzzing`). Not part of the stable API.
//!
//! Every target of `fuzz/fuzz_targets/` is a one-line call of a `run_*`
//! function below, which takes the raw fuzzer input, turns it into a
//! structured input with [`arbitrary`] where that helps, drives the code
//! under test and **panics on any violated invariant**. The corpus replay
//! test (`tests/fuzz_corpus.rs`) calls the same functions through
//! [`TARGETS`] on every committed seed and past crash input, so a fuzz
//! finding stays fixed on stable Rust.
//!
//! The invariants checked (the crate-level contract of [`crate::Connection`]):
//!
//! - nothing panics, whatever the peer sends or the caller does;
//! - decoders agree with the encoders (what decodes re-encodes to the same
//!   value) and with a reference model of the framing;
//! - the number of requests in flight never exceeds `max_in_flight`;
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than `now`;
//! - after `handle_timeout(now)`, a deadline it acted on (the same kind at
//!   the same instant) is never reported again unless something re-armed
//!   it (see `DeadlineWatch` below);
//! - [`Event::Closed`] is emitted exactly once and is the last event;
//! - receive memory stays within `2 * bytes received + 2 MiB`;
//! - every accepted request gets exactly one outcome (a response, a
//!   failure, or a `true` from `cancel`), except a written
//!   [`Request::without_response`] request, which gets none.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::api::ApiKey;
use crate::connection::Deadline;
use crate::error::{CloseReason, CredentialError, ProtocolViolation, SendError};
use crate::event::Event;
use crate::frame::FrameReader;
use crate::request::Request;
use crate::sasl::{
    Credential, CredentialRequest, GssapiStep, HandshakeMode, MechanismFactory, OAuthBearer,
    OAuthBearerToken, Plain, SaslConfig, SaslError, Scram, ScramHash, Step,
};
use crate::sim::{api_versions_reply, Action, ReceivedRequest, SimBroker, DEFAULT_VERSIONS};
use crate::wire::DecodeError;
use crate::{ApiVersions, Config, Connection, CorrelationId};

// ----- the raw decoders ------------------------------------------------------

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
    /// The same window as spare capacity (no zero-fill).
    pub fn recv_spare(&mut self) -> bytes::buf::Limit<&mut bytes::BytesMut> {
        self.0.recv_spare()
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

// ----- the targets -------------------------------------------------------------

/// The structured input a target makes of `data` (its `Debug`), for
/// triaging a crash: `None` for targets that read raw bytes or when the
/// bytes do not make an input.
pub fn describe(target: &str, data: &[u8]) -> Option<String> {
    fn show<T: for<'a> Arbitrary<'a> + std::fmt::Debug>(data: &[u8]) -> Option<String> {
        T::arbitrary_take_rest(Unstructured::new(data))
            .ok()
            .map(|t| format!("{t:#?}"))
    }
    match target {
        "frame_decoder" => {
            head_and_stream::<FrameInput>(data).map(|(h, s)| format!("{h:#?}\nstream: {s:02x?}"))
        }
        "scram_client" => show::<ScramInput>(data),
        "oauth_plain_flows" => show::<FlowInput>(data),
        "connection_bytes" => {
            head_and_stream::<BytesInput>(data).map(|(h, s)| format!("{h:#?}\nstream: {s:02x?}"))
        }
        "connection_ops" => show::<OpsInput>(data),
        _ => None,
    }
}

/// A fuzz target body: panics on a broken invariant.
pub type TargetFn = fn(&[u8]);

/// Every fuzz target body by name (the names of `fuzz/fuzz_targets/*.rs`).
pub const TARGETS: &[(&str, TargetFn)] = &[
    ("frame_decoder", run_frame_decoder),
    ("response_header", run_response_header),
    ("api_versions_response", run_api_versions_response),
    ("sasl_decoders", run_sasl_decoders),
    ("scram_client", run_scram_client),
    ("oauth_plain_flows", run_oauth_plain_flows),
    ("connection_bytes", run_connection_bytes),
    ("connection_ops", run_connection_ops),
];

/// Receive memory allowed beyond twice the bytes received: one read window
/// ([`FrameReader::recv_buf`] hands out at most 1 MiB) plus slack.
const MEMORY_SLACK: usize = 2 << 20;

/// Panics unless `capacity` bytes of receive buffer are within the contract's
/// bound for `received` bytes received: `2 * received + 2 MiB`.
pub fn assert_memory_bounded(capacity: usize, received: usize) {
    assert!(
        capacity <= 2 * received + MEMORY_SLACK,
        "receive buffer holds {capacity} bytes after only {received} bytes arrived"
    );
}

/// RFC 8446 section 5.1 record header (as `frame.rs` sniffs it).
fn looks_like_tls(b: &[u8]) -> bool {
    b.len() >= 3 && (0x14..=0x18).contains(&b[0]) && b[1] == 0x03 && b[2] <= 0x04
}

/// The reference model of framing: what the next frame of `buf` is (its
/// size), or which violation it is, given whether a frame was already seen
/// (TLS and HTTP are only sniffed before the first frame, or on a size
/// prefix that is invalid anyway).
fn model_next_frame(
    buf: &[u8],
    seen: bool,
    max: usize,
) -> Result<Option<usize>, ProtocolViolation> {
    if buf.len() < 4 {
        if !seen && looks_like_tls(buf) {
            return Err(ProtocolViolation::LooksLikeTls);
        }
        return Ok(None);
    }
    let prefix = [buf[0], buf[1], buf[2], buf[3]];
    let size = i32::from_be_bytes(prefix);
    let invalid = size < 0 || size as usize > max;
    if !seen || invalid {
        if looks_like_tls(&prefix) {
            return Err(ProtocolViolation::LooksLikeTls);
        }
        if &prefix == b"HTTP" {
            return Err(ProtocolViolation::LooksLikeHttp);
        }
    }
    if size < 0 {
        return Err(ProtocolViolation::NegativeFrameSize(size));
    }
    if size as usize > max {
        return Err(ProtocolViolation::FrameTooLarge { size, max });
    }
    Ok((buf.len() >= 4 + size as usize).then_some(size as usize))
}

const FRAME_LIMITS: [usize; 7] = [8, 16, 255, 4096, 1 << 20, 100 << 20, i32::MAX as usize];

/// How the bytes of a stream reach a decoder or a connection.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Chunk {
    /// Copy in up to this many bytes (`extend` / `handle_input`).
    Copy(u16),
    /// Read up to this many bytes into the zero-copy window and commit them.
    ZeroCopy(u16),
    /// Open a window and commit more than it holds (must be ignored).
    OverCommit,
    /// Open a window and never commit it.
    Abandon,
    /// Drain complete frames (decoder target; a no-op for connections,
    /// which drain on every input).
    Drain,
    /// Append up to this many bytes to the spare window (`recv_spare`, as
    /// a reader into memory not yet initialised does) and commit them.
    Spare(u16),
    /// Append up to this many bytes to a spare window and commit one more
    /// than appended (must be refused: nothing kept).
    SpareOverCommit(u16),
}

#[derive(Arbitrary, Debug)]
struct FrameInput {
    limit: u8,
    chunks: Vec<Chunk>,
}

/// A structured head followed by a raw byte stream: the rest of the input
/// as is (not arbitrary's element-by-element `Vec<u8>`), so that seeds are
/// real frames and mutations hit them directly.
fn head_and_stream<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<(T, &'a [u8])> {
    let mut u = Unstructured::new(data);
    let head = T::arbitrary(&mut u).ok()?;
    Some((head, u.take_rest()))
}

/// `frame_decoder`: the receive buffer against the reference model, fed in
/// arbitrary chunks by copy and through the zero-copy window.
pub fn run_frame_decoder(data: &[u8]) {
    let Some((input, stream)) = head_and_stream::<FrameInput>(data) else {
        return;
    };
    let max = FRAME_LIMITS[usize::from(input.limit) % FRAME_LIMITS.len()];
    let mut dec = FrameDecoder::new(max);
    let (mut pos, mut fed) = (0, 0);
    let mut model: Vec<u8> = Vec::new();
    let mut seen = false;
    // Pulls every complete frame out of both and compares; false once the
    // stream is invalid (the connection would close).
    let mut drain = |dec: &mut FrameDecoder, model: &mut Vec<u8>| -> bool {
        loop {
            let want = model_next_frame(model, seen, max);
            let got = dec.next_frame();
            match (want, got) {
                (Ok(Some(size)), Ok(Some(frame))) => {
                    assert_eq!(&frame[..], &model[4..4 + size], "frame contents");
                    model.drain(..4 + size);
                    seen = true;
                }
                (Ok(None), Ok(None)) => return true,
                (Err(w), Err(g)) => {
                    assert_eq!(w, g, "violation");
                    return false;
                }
                (w, g) => panic!("model {w:?} but decoder {g:?}"),
            }
        }
    };
    let chunks = input
        .chunks
        .iter()
        .copied()
        .chain(std::iter::repeat(Chunk::Copy(u16::MAX)));
    for chunk in chunks.take(4096) {
        match chunk {
            Chunk::Copy(n) => {
                let n = usize::from(n).min(stream.len() - pos);
                dec.extend(&stream[pos..pos + n]);
                model.extend_from_slice(&stream[pos..pos + n]);
                pos += n;
                fed += n;
            }
            Chunk::ZeroCopy(n) => {
                let win = dec.recv_buf();
                assert!(
                    !win.is_empty() && win.len() <= 1 << 20,
                    "window {}",
                    win.len()
                );
                // What a window holds before the read (zeros, or bytes an
                // earlier read wrote and did not commit: the reader keeps
                // them as scratch instead of zero-filling again) is never
                // data: scribble over all of it, and the frames, compared
                // with the model, must not contain a byte of it.
                win.fill(0xa5);
                let n = usize::from(n).min(stream.len() - pos).min(win.len());
                win[..n].copy_from_slice(&stream[pos..pos + n]);
                assert!(dec.commit(n));
                model.extend_from_slice(&stream[pos..pos + n]);
                pos += n;
                fed += n;
            }
            Chunk::OverCommit => {
                let len = dec.recv_buf().len();
                assert!(!dec.commit(len + 1), "a commit past the window is refused");
                assert!(!dec.commit(0), "the window is gone after a refused commit");
            }
            Chunk::Abandon => {
                dec.recv_buf()[0] = 0xff;
            }
            Chunk::Spare(n) => {
                let mut spare = dec.recv_spare();
                let room = spare.remaining_mut();
                assert!(room > 0 && room <= 1 << 20, "spare window {room}");
                let n = usize::from(n).min(stream.len() - pos).min(room);
                spare.put_slice(&stream[pos..pos + n]);
                assert!(dec.commit(n));
                model.extend_from_slice(&stream[pos..pos + n]);
                pos += n;
                fed += n;
            }
            Chunk::SpareOverCommit(n) => {
                let mut spare = dec.recv_spare();
                let n = usize::from(n).min(spare.remaining_mut() - 1);
                spare.put_bytes(0x5a, n);
                assert!(
                    !dec.commit(n + 1),
                    "a commit of more than was appended is refused"
                );
            }
            Chunk::Drain => {
                if !drain(&mut dec, &mut model) {
                    return;
                }
            }
        }
        assert_memory_bounded(dec.capacity(), fed);
        if pos == stream.len() && matches!(chunk, Chunk::Copy(_)) {
            break;
        }
    }
    drain(&mut dec, &mut model);
    assert_memory_bounded(dec.capacity(), fed);
}

/// `response_header`: both response header versions (and what callers might
/// pass above them), against the fixed layout and the encoder.
pub fn run_response_header(data: &[u8]) {
    let v0 = decode_response_header(data, 0);
    match &v0 {
        Ok((id, len)) => {
            assert_eq!(*len, 4);
            assert_eq!(
                *id,
                i32::from_be_bytes([data[0], data[1], data[2], data[3]])
            );
        }
        Err(_) => assert!(data.len() < 4, "v0 is any 4 bytes"),
    }
    let v1 = decode_response_header(data, 1);
    for hv in 2..=u8::MAX {
        // Every version above 1 reads as 1 (tagged fields).
        if hv < 4 || hv == u8::MAX {
            assert_eq!(decode_response_header(data, hv), v1, "header v{hv}");
        }
    }
    if let Ok((id, len)) = v1 {
        assert!(
            data.len() >= len && len >= 5,
            "v1 header length {len} of {}",
            data.len()
        );
        assert_eq!(Ok((id, 4)), v0);
        // The tagged fields are the only thing after the id: skipping them
        // again from the same bytes gives the same length.
        assert_eq!(decode_response_header(&data[..len], 1), Ok((id, len)));
    }
    // The encoder's headers decode to what was encoded, at both versions,
    // whatever body follows.
    let id = if data.len() >= 4 {
        i32::from_be_bytes([data[0], data[1], data[2], data[3]])
    } else {
        -1
    };
    for hv in 0..=1 {
        let frame = crate::sim::response_frame(id, hv, data);
        let expect_len = if hv == 0 { 4 } else { 5 };
        assert_eq!(
            decode_response_header(&frame[4..], hv),
            Ok((id, expect_len))
        );
    }
}

#[derive(Arbitrary, Debug)]
struct BuiltApiVersions {
    version: u8,
    error_code: i16,
    ranges: Vec<(i16, i16, i16)>,
}

/// `api_versions_response`: the ApiVersions decoder at every version (0-4)
/// on raw bytes, and encode/decode round trips of arbitrary tables. The
/// first byte chooses: even = raw body, odd = a built table.
pub fn run_api_versions_response(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        for v in 0..=crate::API_VERSIONS_MAX {
            let Ok(decoded) = decode_api_versions(rest, v) else {
                continue;
            };
            let Ok(table) = decoded else {
                continue;
            };
            check_table(&table);
            // What decodes re-encodes (as a clean response) to the same table.
            let ranges: Vec<_> = table.iter().map(|r| (r.api_key.0, r.min, r.max)).collect();
            let mut b = BytesMut::new();
            crate::server::api_versions_response(&mut b, v, 0, &ranges);
            let again = decode_api_versions(&b, v)
                .expect("re-encoded decodes")
                .expect("valid");
            assert_eq!(
                again.iter().collect::<Vec<_>>(),
                table.iter().collect::<Vec<_>>()
            );
        }
        return;
    }
    let Ok(built) = BuiltApiVersions::arbitrary_take_rest(Unstructured::new(rest)) else {
        return;
    };
    let v = i16::from(built.version % 5);
    let ranges: Vec<_> = built.ranges.into_iter().take(300).collect();
    let mut b = BytesMut::new();
    crate::server::api_versions_response(&mut b, v, built.error_code, &ranges);
    let r = crate::versions::decode_response(&b, v).expect("an encoded response decodes");
    assert_eq!(r.error_code, built.error_code);
    assert_eq!(r.versions.len(), ranges.len());
    assert_eq!(crate::versions::peek_error_code(&b), Ok(built.error_code));
    let expect_valid = ApiVersions::from_ranges(ranges.iter().copied());
    match (crate::versions::validated(r.versions), expect_valid) {
        (Ok(t), Ok(e)) => {
            check_table(&t);
            assert_eq!(t.iter().collect::<Vec<_>>(), e.iter().collect::<Vec<_>>());
        }
        (Err(_), Err(_)) => {}
        (got, want) => panic!("decoded {got:?}, from_ranges {want:?}"),
    }
}

fn check_table(table: &ApiVersions) {
    assert!(!table.is_empty());
    let mut last = None;
    for r in table.iter() {
        assert!(0 <= r.min && r.min <= r.max, "{r:?}");
        assert!(last < Some(r.api_key), "sorted and unique");
        last = Some(r.api_key);
        assert_eq!(table.get(r.api_key), Some((r.min, r.max)));
        assert_eq!(table.negotiate(r.api_key, 0..=i16::MAX), Some(r.max));
        assert!(table.supports(r.api_key, r.min) && table.supports(r.api_key, r.max));
    }
    // Every key, listed or not, indexed or searched: what a scan finds.
    for k in (-3..=260).chain([i16::MIN, i16::MAX]) {
        let scanned = table.iter().find(|r| r.api_key.0 == k);
        assert_eq!(
            table.get(ApiKey(k)),
            scanned.map(|r| (r.min, r.max)),
            "key {k}"
        );
    }
}

/// `sasl_decoders`: SaslHandshake and SaslAuthenticate (v0-v2) response
/// decoders on raw bytes; whatever decodes re-encodes to the same value.
pub fn run_sasl_decoders(data: &[u8]) {
    if let Ok((code, mechanisms)) = decode_sasl_handshake(data) {
        let names: Vec<&str> = mechanisms.iter().map(String::as_str).collect();
        let mut b = BytesMut::new();
        crate::server::handshake_response(&mut b, code, &names);
        assert_eq!(decode_sasl_handshake(&b), Ok((code, mechanisms.clone())));
        assert!(data.starts_with(&b), "the handshake encoding is canonical");
    }
    for v in 0..=2 {
        let Ok((code, message, auth, lifetime)) = decode_sasl_authenticate(data, v) else {
            continue;
        };
        if v == 0 {
            assert_eq!(lifetime, 0);
        }
        let mut b = BytesMut::new();
        crate::server::authenticate_response(&mut b, v, code, message.as_deref(), &auth, lifetime);
        assert_eq!(
            decode_sasl_authenticate(&b, v),
            Ok((code, message, auth, lifetime))
        );
    }
}

// ----- SCRAM -----------------------------------------------------------------

// The same hash dispatch as the client's (a type switch, nothing to get wrong twice).
use crate::sasl::with_digest as with_hash;

fn scram_hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    with_hash!(hash, D => {
        let mut mac = <Hmac<D> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    })
}

fn scram_h(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    with_hash!(hash, D => D::digest(data).to_vec())
}

/// The server side of SCRAM (RFC 5802 section 3), written from the RFC
/// independently of the client: (StoredKey, ServerKey).
fn scram_server_keys(
    hash: ScramHash,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> (Vec<u8>, Vec<u8>) {
    let salted = with_hash!(hash, D => {
        let mut out = vec![0u8; <D as Digest>::output_size()];
        pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut out);
        out
    });
    let client_key = scram_hmac(hash, &salted, b"Client Key");
    (
        scram_h(hash, &client_key),
        scram_hmac(hash, &salted, b"Server Key"),
    )
}

/// Checks a client-final-message's proof the way a server does; returns the
/// server-final-message (`v=...`) if it verifies.
fn scram_server_final(
    hash: ScramHash,
    keys: &(Vec<u8>, Vec<u8>),
    client_first_bare: &str,
    server_first: &str,
    client_final: &[u8],
) -> Option<String> {
    let text = std::str::from_utf8(client_final).ok()?;
    let (without_proof, proof) = text.rsplit_once(",p=")?;
    let proof = BASE64.decode(proof).ok()?;
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = scram_hmac(hash, &keys.0, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return None;
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    if scram_h(hash, &client_key) != keys.0 {
        return None;
    }
    Some(format!(
        "v={}",
        BASE64.encode(scram_hmac(hash, &keys.1, auth_message.as_bytes()))
    ))
}

/// A scripted SCRAM server for one exchange at a time.
#[derive(Debug)]
struct ScramServer {
    hash: ScramHash,
    password: String,
    salt: Vec<u8>,
    iterations: u32,
    /// (client-first-message-bare, server-first-message) of the exchange under way.
    exchange: Option<(String, String)>,
}

impl ScramServer {
    fn reply(&mut self, client: &[u8]) -> Vec<u8> {
        if let Some(bare) = client.strip_prefix(b"n,,") {
            let bare = String::from_utf8_lossy(bare).into_owned();
            let nonce = bare
                .split(',')
                .find_map(|a| a.strip_prefix("r="))
                .unwrap_or("");
            let server_first = format!(
                "r={nonce}srv,s={},i={}",
                BASE64.encode(&self.salt),
                self.iterations
            );
            self.exchange = Some((bare, server_first.clone()));
            return server_first.into_bytes();
        }
        let keys = scram_server_keys(
            self.hash,
            self.password.as_bytes(),
            &self.salt,
            self.iterations,
        );
        match self.exchange.take() {
            Some((bare, first)) => scram_server_final(self.hash, &keys, &bare, &first, client)
                .unwrap_or_else(|| "e=invalid-proof".into())
                .into_bytes(),
            None => b"e=other-error".to_vec(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum ServerFirst {
    /// Whatever bytes.
    Raw(Vec<u8>),
    /// A well-formed message built from parts (which may still be invalid:
    /// a nonce that does not extend the client's, a bad salt, ...).
    Built {
        keep_client_nonce: bool,
        server_nonce: String,
        salt: Vec<u8>,
        salt_garbage: bool,
        iterations: u8,
        mandatory_extension: bool,
        extension: Option<String>,
    },
}

#[derive(Arbitrary, Debug)]
enum ServerFinal {
    Raw(Vec<u8>),
    /// The right signature, perhaps followed by an extension.
    Correct(Option<String>),
    /// The right signature with one bit flipped.
    Flipped(u16),
    /// A server error attribute.
    Error(String),
}

#[derive(Arbitrary, Debug)]
struct ScramInput {
    sha512: bool,
    username: String,
    password: String,
    token_auth: bool,
    min_iterations: u8,
    first: ServerFirst,
    last: ServerFinal,
    trailing: Option<Vec<u8>>,
}

const CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";

/// `scram_client`: the SCRAM-SHA-256/512 client fed arbitrary server-first
/// and server-final messages, checked against an independent server-side
/// computation: a well-formed exchange must succeed with a proof the server
/// accepts, and nothing but the right server signature may complete it.
pub fn run_scram_client(data: &[u8]) {
    let Ok(input) = ScramInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let hash = if input.sha512 {
        ScramHash::Sha512
    } else {
        ScramHash::Sha256
    };
    let min = u32::from(input.min_iterations % 4) + 1;
    let max = 16;
    // Bit 2 of the same byte: PBKDF2 in `step`, or asked for (the default).
    let inline = input.min_iterations & 4 != 0;
    let factory = Scram::new(hash, input.username.clone(), input.password.clone())
        .with_token_auth(input.token_auth)
        .with_min_iterations(min)
        .with_max_iterations(max)
        .with_fixed_nonce_for_testing(CLIENT_NONCE)
        .with_inline_pbkdf2(inline);
    assert_eq!(factory.name(), hash.mechanism_name());
    let mut m = factory.start().expect("start");
    assert!(m
        .provide_credential(Credential::Custom(Bytes::new()))
        .is_err());
    let first = m.step(None);
    let valid_user = !input.username.is_empty() && !input.username.contains('\0');
    let client_first = match first {
        Ok(Step::Send(msg)) => {
            assert!(valid_user, "accepted username {:?}", input.username);
            msg
        }
        Err(SaslError::InvalidCredential(_)) => {
            assert!(!valid_user);
            assert!(m.step(Some(b"r=x")).is_err());
            return;
        }
        other => panic!("client-first: {other:?}"),
    };
    let escaped = input.username.replace('=', "=3D").replace(',', "=2C");
    let mut bare = format!("n={escaped},r={CLIENT_NONCE}");
    if input.token_auth {
        bare.push_str(",tokenauth=true");
    }
    assert_eq!(client_first, format!("n,,{bare}").into_bytes());

    // The server-first message and whether a correct client must accept it.
    let (server_first, accept) = match &input.first {
        ServerFirst::Raw(b) => (b.clone(), None),
        ServerFirst::Built {
            keep_client_nonce,
            server_nonce,
            salt,
            salt_garbage,
            iterations,
            mandatory_extension,
            extension,
        } => {
            let nonce = if *keep_client_nonce {
                format!("{CLIENT_NONCE}{server_nonce}")
            } else {
                server_nonce.clone()
            };
            let salt_text = if *salt_garbage {
                "*not base64*".to_owned()
            } else {
                BASE64.encode(salt)
            };
            let mut msg = String::new();
            if *mandatory_extension {
                msg.push_str("m=ext,");
            }
            msg.push_str(&format!("r={nonce},s={salt_text},i={iterations}"));
            if let Some(ext) = extension {
                msg.push(',');
                msg.push_str(ext);
            }
            let nonce_ok = *keep_client_nonce
                && !server_nonce.is_empty()
                && server_nonce
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b',');
            let ok = nonce_ok
                && !salt_garbage
                && !salt.is_empty()
                && !mandatory_extension
                && (min..=max).contains(&u32::from(*iterations));
            let parsed = ok.then(|| (nonce, salt.clone(), u32::from(*iterations)));
            (msg.into_bytes(), Some(parsed))
        }
    };
    let step = match m.step(Some(&server_first)) {
        // The PBKDF2 job: for exactly what was accepted, run where a driver
        // would run it.
        Ok(Step::NeedCredential(CredentialRequest::ScramSaltedPassword(job))) => {
            assert!(!inline, "an inline exchange asked for PBKDF2");
            if let Some(Some((_, salt, iterations))) = &accept {
                assert_eq!((job.salt(), job.iterations()), (&salt[..], *iterations));
            }
            assert_eq!(job.hash(), hash);
            assert!(m.step(Some(b"v=AAAA")).is_err(), "waits for the job");
            m.provide_credential(job.run())
        }
        other => other,
    };
    let client_final = match (step, &accept) {
        (Ok(Step::Send(msg)), Some(None)) => panic!(
            "accepted an invalid server-first {:?}: {:?}",
            String::from_utf8_lossy(&server_first),
            String::from_utf8_lossy(&msg)
        ),
        (Ok(Step::Send(msg)), _) => msg,
        (Err(_), Some(Some(_))) => panic!(
            "refused a valid server-first {:?}",
            String::from_utf8_lossy(&server_first)
        ),
        (Err(_), _) => {
            assert!(
                m.step(Some(b"v=AAAA")).is_err(),
                "a failed exchange stays failed"
            );
            return;
        }
        (Ok(other), _) => panic!("after server-first: {other:?}"),
    };
    // Whatever server-first was accepted: parse it the way a server would
    // and check the client's proof with the server's keys.
    let text = String::from_utf8(server_first.clone()).expect("accepted server-first is UTF-8");
    let mut parts = text.split(',');
    let nonce = parts
        .next()
        .and_then(|p| p.strip_prefix("r="))
        .expect("nonce first");
    let salt = BASE64
        .decode(
            parts
                .next()
                .and_then(|p| p.strip_prefix("s="))
                .expect("salt"),
        )
        .expect("salt is base64");
    let iterations: u32 = parts
        .next()
        .and_then(|p| p.strip_prefix("i="))
        .expect("iterations")
        .parse()
        .expect("iterations parse");
    assert!(nonce.starts_with(CLIENT_NONCE) && nonce.len() > CLIENT_NONCE.len());
    assert!(
        (min..=max).contains(&iterations),
        "iterations {iterations} outside {min}..={max}"
    );
    if let Some(Some((n, s, i))) = &accept {
        assert_eq!((n.as_str(), s, *i), (nonce, &salt, iterations));
    }
    let keys = scram_server_keys(hash, input.password.as_bytes(), &salt, iterations);
    let correct = scram_server_final(hash, &keys, &bare, &text, &client_final)
        .expect("the client's proof verifies with the server's keys");
    let final_text = std::str::from_utf8(&client_final).expect("client-final is UTF-8");
    assert!(
        final_text.starts_with(&format!("c=biws,r={nonce},p=")),
        "{final_text}"
    );

    let server_final = match &input.last {
        ServerFinal::Raw(b) => b.clone(),
        ServerFinal::Correct(ext) => match ext {
            Some(e) => format!("{correct},{e}").into_bytes(),
            None => correct.clone().into_bytes(),
        },
        ServerFinal::Flipped(bit) => {
            let mut sig = BASE64.decode(&correct[2..]).expect("base64");
            let bit = usize::from(*bit) % (sig.len() * 8);
            sig[bit / 8] ^= 1 << (bit % 8);
            format!("v={}", BASE64.encode(sig)).into_bytes()
        }
        ServerFinal::Error(e) => format!("e={e}").into_bytes(),
    };
    let done = m.step(Some(&server_final));
    let right_signature = std::str::from_utf8(&server_final)
        .ok()
        .and_then(|t| t.split(',').next())
        .is_some_and(|v| v == correct);
    match done {
        Ok(Step::Done) => assert!(
            right_signature,
            "completed on a wrong server-final {:?}",
            String::from_utf8_lossy(&server_final)
        ),
        Ok(other) => panic!("after server-final: {other:?}"),
        Err(e) => {
            assert!(!right_signature, "refused the right server signature: {e}");
            if matches!(input.last, ServerFinal::Flipped(_)) {
                assert_eq!(e, SaslError::BadServerSignature);
            }
        }
    }
    if let Some(t) = &input.trailing {
        assert!(m.step(Some(t)).is_err(), "no message after the end");
    }
    assert!(m.step(None).is_err());
}

// ----- OAUTHBEARER, PLAIN, GSSAPI --------------------------------------------------

#[derive(Arbitrary, Debug)]
enum FlowInput {
    Plain {
        authzid: Option<String>,
        username: String,
        password: String,
        replies: Vec<Vec<u8>>,
    },
    OAuth {
        early_reply: Option<Vec<u8>>,
        token: String,
        extensions: Vec<(String, String)>,
        expiry_secs: Option<u16>,
        second_credential: bool,
        replies: Vec<Vec<u8>>,
    },
    Gssapi {
        steps: Vec<GssStep>,
    },
}

#[derive(Arbitrary, Debug)]
enum GssStep {
    Reply(Vec<u8>),
    Send(Vec<u8>),
    Done,
    Step,
    SendLast(Vec<u8>),
}

/// RFC 6750 section 2.1 b64token.
fn spec_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// RFC 7628 section 3.1 key and value (and not the reserved key `auth`).
fn spec_extension(k: &str, v: &str) -> bool {
    !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_alphabetic())
        && !k.eq_ignore_ascii_case("auth")
        && !v.is_empty()
        && v.bytes()
            .all(|b| matches!(b, 0x21..=0x7e | b' ' | b'\t' | b'\r' | b'\n'))
}

/// `oauth_plain_flows`: PLAIN and OAUTHBEARER (and the relayed GSSAPI)
/// exchanges fed arbitrary credentials and server replies, against RFC 4616,
/// RFC 7628 and RFC 4752's message rules.
pub fn run_oauth_plain_flows(data: &[u8]) {
    let Ok(input) = FlowInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    match input {
        FlowInput::Plain {
            authzid,
            username,
            password,
            replies,
        } => {
            let mut f = Plain::new(username.clone(), password.clone());
            if let Some(a) = &authzid {
                f = f.with_authzid(a.clone());
            }
            let mut m = f.start().expect("start");
            let valid = !username.is_empty()
                && !password.is_empty()
                && ![&username, &password].iter().any(|s| s.contains('\0'))
                && !authzid.as_deref().unwrap_or("").contains('\0');
            match m.step(None) {
                Ok(Step::Send(msg)) => {
                    assert!(valid);
                    let want = format!(
                        "{}\0{username}\0{password}",
                        authzid.as_deref().unwrap_or("")
                    );
                    assert_eq!(msg, want.into_bytes());
                }
                Err(SaslError::InvalidCredential(e)) => {
                    assert!(!valid);
                    // PLAIN's errors are fixed texts: the password may only
                    // appear in one by chance, i.e. if a stand-in password of
                    // the same kind gets the same text.
                    let stand_in = if password.is_empty() {
                        ""
                    } else if password.contains('\0') {
                        "\0"
                    } else {
                        "p"
                    };
                    let mut other = Plain::new(username.clone(), stand_in);
                    if let Some(a) = &authzid {
                        other = other.with_authzid(a.clone());
                    }
                    let other_err = match other.start().expect("start").step(None) {
                        Err(e) => e.to_string(),
                        Ok(_) => String::new(),
                    };
                    if password.len() >= 8 && !other_err.contains(&password) {
                        assert!(!e.contains(&password), "the error leaks the password");
                    }
                    return;
                }
                other => panic!("{other:?}"),
            }
            let mut finished = false;
            for r in replies.iter().take(8) {
                let step = m.step(Some(r));
                match step {
                    Ok(Step::Done) => assert!(!finished && r.is_empty()),
                    Err(_) => assert!(finished || !r.is_empty()),
                    other => panic!("{other:?}"),
                }
                finished = true;
            }
        }
        FlowInput::OAuth {
            early_reply,
            token,
            extensions,
            expiry_secs,
            second_credential,
            replies,
        } => {
            let mut m = OAuthBearer::new().start().expect("start");
            if let Some(r) = &early_reply {
                assert!(
                    m.step(Some(r)).is_err(),
                    "a server message before the client's"
                );
                m = OAuthBearer::new().start().expect("start");
            }
            assert_eq!(
                m.step(None),
                Ok(Step::NeedCredential(CredentialRequest::OAuthBearerToken))
            );
            assert!(m.step(None).is_err());
            let mut cred = OAuthBearerToken::new(token.clone());
            let expiry = expiry_secs.map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
            if let Some(e) = expiry {
                cred = cred.with_expiry(e);
            }
            for (k, v) in extensions.iter().take(4) {
                cred = cred.with_extension(k.clone(), v.clone());
            }
            // Debug shows extension keys and the expiry, never the token:
            // the token may only appear if it appears with any other token too.
            let debug = format!("{cred:?}");
            let mut placeholder = OAuthBearerToken::new("\u{1}");
            for (k, v) in cred.extensions() {
                placeholder = placeholder.with_extension(k.clone(), v.clone());
            }
            if let Some(e) = expiry {
                placeholder = placeholder.with_expiry(e);
            }
            if token.len() >= 8 && !format!("{placeholder:?}").contains(&token) {
                assert!(!debug.contains(&token), "Debug shows the token");
            }
            let exts = cred.extensions().clone();
            let valid = spec_b64token(&token) && exts.iter().all(|(k, v)| spec_extension(k, v));
            let sent = m.provide_credential(Credential::OAuthBearer(cred.clone()));
            match sent {
                Ok(Step::Send(msg)) => {
                    assert!(valid, "accepted token {token:?} extensions {exts:?}");
                    let mut want = format!("n,,\x01auth=Bearer {token}\x01");
                    for (k, v) in &exts {
                        want.push_str(&format!("{k}={v}\x01"));
                    }
                    want.push('\x01');
                    assert_eq!(msg, want.into_bytes());
                    assert_eq!(m.credential_expiry(), expiry);
                }
                Err(SaslError::InvalidCredential(e)) => {
                    assert!(!valid, "refused a valid token: {e}");
                    // The error names extension keys but never the token: the
                    // same error for a stand-in token of the same validity must
                    // contain the token too if this one does.
                    let stand_in = if spec_b64token(&token) {
                        "AAAAAAAA"
                    } else {
                        "\u{1}"
                    };
                    let mut other = OAuthBearerToken::new(stand_in);
                    for (k, v) in &exts {
                        other = other.with_extension(k.clone(), v.clone());
                    }
                    let mut m2 = OAuthBearer::new().start().expect("start");
                    let _ = m2.step(None);
                    let other_err = match m2.provide_credential(Credential::OAuthBearer(other)) {
                        Err(e) => e.to_string(),
                        Ok(_) => String::new(),
                    };
                    if token.len() >= 8 && !other_err.contains(&token) {
                        assert!(!e.contains(&token), "the error leaks the token");
                    }
                    return;
                }
                other => panic!("{other:?}"),
            }
            if second_credential {
                assert!(m.provide_credential(Credential::OAuthBearer(cred)).is_err());
            }
            let mut state = 0; // 0 sent token, 1 answered challenge / done
            for r in replies.iter().take(8) {
                let step = m.step(Some(r));
                match (state, step) {
                    (0, Ok(Step::Done)) => assert!(r.is_empty()),
                    (0, Ok(Step::Send(b))) => {
                        assert!(!r.is_empty());
                        assert_eq!(
                            b,
                            [0x01],
                            "RFC 7628 section 3.2.2: a kvsep answers an error challenge"
                        );
                        let detail = m.failure_detail().expect("the challenge is kept");
                        assert!(detail.contains(&*String::from_utf8_lossy(r)));
                    }
                    (_, Err(_)) if state > 0 => {}
                    (s, other) => panic!("state {s}: {other:?}"),
                }
                state = 1;
            }
        }
        FlowInput::Gssapi { steps } => {
            let mut m = crate::sasl::Gssapi::new().start().expect("start");
            assert_eq!(
                m.step(None),
                Ok(Step::NeedCredential(CredentialRequest::GssapiToken {
                    server_token: None
                }))
            );
            #[derive(PartialEq)]
            enum S {
                Awaiting,
                Sent,
                Done,
            }
            let mut s = S::Awaiting;
            for step in steps.iter().take(16) {
                match step {
                    GssStep::Reply(r) => {
                        let got = m.step(Some(r));
                        if s == S::Sent {
                            assert_eq!(
                                got,
                                Ok(Step::NeedCredential(CredentialRequest::GssapiToken {
                                    server_token: Some(Bytes::copy_from_slice(r))
                                }))
                            );
                            s = S::Awaiting;
                        } else {
                            assert!(got.is_err());
                        }
                    }
                    GssStep::Send(t) => {
                        let got =
                            m.provide_credential(Credential::Gssapi(GssapiStep::Send(t.clone())));
                        if s == S::Awaiting {
                            assert_eq!(got, Ok(Step::Send(t.clone())));
                            s = S::Sent;
                        } else {
                            assert!(got.is_err());
                        }
                    }
                    GssStep::Done => {
                        let got = m.provide_credential(Credential::Gssapi(GssapiStep::Done));
                        if s == S::Awaiting {
                            assert_eq!(got, Ok(Step::Done));
                            s = S::Done;
                        } else {
                            assert!(got.is_err());
                        }
                    }
                    GssStep::Step => assert!(m.step(None).is_err()),
                    GssStep::SendLast(t) => {
                        let got = m.provide_credential(Credential::Gssapi(GssapiStep::SendLast(
                            t.clone(),
                        )));
                        if s == S::Awaiting {
                            assert_eq!(got, Ok(Step::SendLast(t.clone())));
                            s = S::Done;
                        } else {
                            assert!(got.is_err());
                        }
                    }
                }
            }
        }
    }
}

// ----- whole connections ----------------------------------------------------------

/// What the checker knows of one accepted request.
#[derive(Debug)]
struct Tracked {
    api_key: ApiKey,
    api_version: i16,
    expect_response: bool,
    /// The body a response must carry, while the byte stream is trusted.
    expected_body: Option<Bytes>,
    /// Sent with header versions other than its API's: the simulated broker
    /// writes the response header by its own table, so the body the core
    /// reads cannot be predicted (it is never checked).
    header_overridden: bool,
    outcomes: u32,
}

/// Checks the event stream and the outcome of every request.
#[derive(Debug, Default)]
struct Tracker {
    requests: HashMap<i32, Tracked>,
    /// Accepted ids in order (for picking one to cancel).
    order: Vec<i32>,
    closed: Option<CloseReason>,
    ready: bool,
    /// `Ready` and `Reauthenticated` events seen: each may arm a new
    /// KIP-368 schedule.
    sessions: u64,
    /// Responses in order: (id, body).
    responses: Vec<(i32, Bytes)>,
    /// Credential requests not yet answered.
    credential_requests: Vec<CredentialRequest>,
    /// Whether response bodies can be predicted (no injected bytes yet).
    trusted: bool,
}

impl Tracker {
    fn new() -> Self {
        Self {
            trusted: true,
            ..Self::default()
        }
    }

    /// Sends `request` and records the result.
    fn send(&mut self, conn: &mut Connection, request: Request, now: Instant) -> Option<i32> {
        let (api_key, api_version, expect_response) = (
            request.api_key(),
            request.api_version(),
            request.expects_response(),
        );
        // The simulated broker reads request headers by its own table, so with
        // overridden header versions it cannot find the body: no body check.
        let body = request.body().clone();
        let overridden =
            request.header_versions() != request.api_key().header_versions(request.api_version());
        match conn.send_request(request, now) {
            Ok(CorrelationId(id)) => {
                assert!(
                    self.closed.is_none(),
                    "a closed connection accepted a request"
                );
                let old = self.requests.insert(
                    id,
                    Tracked {
                        api_key,
                        api_version,
                        expect_response,
                        expected_body: (!overridden).then_some(body),
                        header_overridden: overridden,
                        outcomes: 0,
                    },
                );
                if let Some(old) = old {
                    assert!(
                        old.outcomes > 0 || !old.expect_response,
                        "correlation id {id} reused while pending"
                    );
                }
                self.order.push(id);
                Some(id)
            }
            Err(SendError::Closed(reason)) => {
                assert_eq!(Some(&reason), conn.close_reason(), "sticky close reason");
                assert!(conn.is_closed());
                None
            }
            Err(_) => {
                assert!(!conn.is_closed(), "a closed connection must say Closed");
                None
            }
        }
    }

    fn cancel(&mut self, conn: &mut Connection, id: i32, now: Instant) {
        let pending = conn.cancel(CorrelationId(id), now);
        if pending {
            let t = self
                .requests
                .get_mut(&id)
                .expect("cancel true for an unknown id");
            assert_eq!(
                t.outcomes, 0,
                "cancel true for request {id} that already had its outcome"
            );
            t.outcomes += 1;
            assert!(!conn.cancel(CorrelationId(id), now), "cancelled twice");
        }
    }

    /// Drains and checks every event.
    fn drain(&mut self, conn: &mut Connection) {
        loop {
            // The getter a driver skips empty drains by must agree with
            // poll_event, or an event would wait for the next input.
            let pending = conn.has_events();
            let Some(event) = conn.poll_event() else {
                assert!(!pending, "has_events true with no event");
                break;
            };
            assert!(pending, "has_events false with {event:?} queued");
            assert!(self.closed.is_none(), "event after Closed: {event:?}");
            match event {
                Event::Response(r) => {
                    let id = r.correlation_id.0;
                    let t = self
                        .requests
                        .get_mut(&id)
                        .unwrap_or_else(|| panic!("response to unknown id {id}"));
                    assert!(
                        t.expect_response,
                        "a response to a request without one ({id})"
                    );
                    assert_eq!(t.outcomes, 0, "second outcome for {id}");
                    assert_eq!((r.api_key, r.api_version), (t.api_key, t.api_version));
                    // Sizes on the wire: a size prefix and a correlation id at least.
                    assert!(
                        r.response_bytes as usize >= r.body.len() + 8,
                        "response size"
                    );
                    assert!(r.request_bytes as usize >= 4 + 8, "request size");
                    if self.trusted {
                        if let Some(b) = &t.expected_body {
                            assert_eq!(&r.body, b, "response body for {id}");
                        }
                    }
                    t.outcomes += 1;
                    self.responses.push((id, r.body));
                }
                Event::RequestFailed {
                    correlation_id,
                    api_key,
                    error,
                } => {
                    let id = correlation_id.0;
                    let t = self
                        .requests
                        .get_mut(&id)
                        .unwrap_or_else(|| panic!("failure of unknown id {id}: {error}"));
                    assert_eq!(t.outcomes, 0, "second outcome for {id}: {error}");
                    assert_eq!(api_key, t.api_key, "failure of {id} names its API");
                    t.outcomes += 1;
                }
                Event::Ready { .. } => {
                    assert!(!self.ready, "Ready twice");
                    self.ready = true;
                    self.sessions += 1;
                }
                Event::Reauthenticated(_) => {
                    assert!(self.ready, "re-authenticated before ready");
                    self.sessions += 1;
                }
                Event::CredentialRequired(req) => self.credential_requests.push(req),
                Event::Throttled { throttle_time, .. } => {
                    assert!(
                        !throttle_time.is_zero(),
                        "a throttle event without a throttle"
                    );
                }
                Event::Closed(reason) => {
                    assert_eq!(Some(&reason), conn.close_reason());
                    self.closed = Some(reason);
                }
            }
        }
        assert_eq!(
            conn.is_closed(),
            self.closed.is_some(),
            "closed without a Closed event"
        );
        if conn.is_closed() {
            assert_eq!(conn.poll_timeout(), None);
            assert_eq!(conn.transmit_len(), 0);
            assert_eq!(conn.in_flight(), 0);
            assert_eq!(conn.held(), 0);
        }
    }

    /// Closes and checks that every request got its one outcome.
    fn finish(&mut self, conn: &mut Connection, now: Instant) {
        conn.close(now);
        self.drain(conn);
        assert!(self.closed.is_some());
        assert!(conn.poll_event().is_none());
        for (id, t) in &self.requests {
            if t.expect_response {
                assert_eq!(
                    t.outcomes, 1,
                    "request {id} ({:?} v{}) got {} outcomes",
                    t.api_key, t.api_version, t.outcomes
                );
            } else {
                assert!(t.outcomes <= 1, "request {id} got {} outcomes", t.outcomes);
            }
        }
        // Everything after close fails with the same reason.
        let r = conn.send_request(Request::new(ApiKey::METADATA, 1, Bytes::new()), now);
        assert!(matches!(r, Err(SendError::Closed(ref c)) if Some(c) == self.closed.as_ref()));
        assert!(matches!(
            conn.provide_credential(Credential::Custom(Bytes::new()), now),
            Err(CredentialError::NotPending)
        ));
    }
}

/// APIs a fuzzed request may use (with the broker's default table: some
/// versions supported, some not, flexible and not).
const APIS: [i16; 7] = [0, 1, 3, 18, 19, 36, 999];

#[derive(Arbitrary, Debug, Clone)]
struct RequestSpec {
    api: u8,
    version: u8,
    body: Vec<u8>,
    no_response: bool,
    header_override: Option<(u8, u8)>,
}

impl RequestSpec {
    fn build(&self) -> Request {
        let api = APIS[usize::from(self.api) % APIS.len()];
        let mut body = self.body.clone();
        body.truncate(64);
        let mut r = Request::new(api, i16::from(self.version % 14), body);
        if self.no_response {
            r = r.without_response();
        }
        if let Some((req, resp)) = self.header_override {
            r = r.with_header_versions(crate::HeaderVersions {
                request: req % 4,
                response: resp % 3,
            });
        }
        r
    }
}

#[derive(Arbitrary, Debug)]
struct BytesInput {
    limit: u8,
    requests: Vec<RequestSpec>,
    chunks: Vec<Chunk>,
    end: u8,
}

/// A connection made ready against the default simulated broker.
fn ready_connection(config: Config) -> (Connection, Instant) {
    let mut pair = crate::sim::Pair::new(config, SimBroker::echo());
    pair.drive();
    assert_eq!(pair.conn.state(), crate::State::Ready, "{:?}", pair.events);
    (pair.conn, pair.now)
}

/// `connection_bytes`: a ready connection with requests in flight fed
/// arbitrary bytes in arbitrary chunks (copying and zero-copy input). The
/// responses must be exactly those a reference model of framing and
/// correlation reads from the same bytes, the connection closes exactly
/// when the model finds the stream invalid, and every request gets one outcome.
pub fn run_connection_bytes(data: &[u8]) {
    let Some((input, stream)) = head_and_stream::<BytesInput>(data) else {
        return;
    };
    // Large enough for the ApiVersions response of the handshake.
    let max = FRAME_LIMITS[usize::from(input.limit) % FRAME_LIMITS.len()].max(256);
    let (mut conn, now) = ready_connection(Config::new().with_max_frame_size(max));
    let mut t = Tracker::new();
    // Bodies come from the stream: the model checks them, not the echo.
    t.trusted = false;
    // User requests in flight, in order: (id, response header version).
    let mut model_pending: VecDeque<(i32, u8)> = VecDeque::new();
    for spec in input.requests.iter().take(16) {
        let r = spec.build();
        let hv = r.header_versions().response;
        let expects = r.expects_response();
        if let Some(id) = t.send(&mut conn, r, now) {
            if expects {
                model_pending.push_back((id, hv));
            }
        }
    }
    t.drain(&mut conn);
    let n = conn.transmit_len();
    conn.transmit_complete(n, now);
    assert_eq!(conn.in_flight(), model_pending.len());

    let (mut pos, mut fed) = (0usize, 0usize);
    let mut model: Vec<u8> = Vec::new();
    let mut model_closed = false;
    let mut model_responses: Vec<(i32, Vec<u8>)> = Vec::new();
    let chunks = input
        .chunks
        .iter()
        .copied()
        .chain(std::iter::repeat(Chunk::Copy(u16::MAX)));
    for chunk in chunks.take(4096) {
        let before = pos;
        match chunk {
            Chunk::Copy(n) => {
                let n = usize::from(n).min(stream.len() - pos);
                conn.handle_input(&stream[pos..pos + n], now);
                pos += n;
            }
            Chunk::ZeroCopy(n) => {
                let win = conn.recv_buf();
                let n = usize::from(n).min(stream.len() - pos).min(win.len());
                win[..n].copy_from_slice(&stream[pos..pos + n]);
                conn.recv_commit(n, now);
                pos += n;
            }
            Chunk::OverCommit => {
                let len = conn.recv_buf().len();
                conn.recv_commit(len + 1, now);
            }
            Chunk::Abandon => {
                conn.recv_buf()[0] = 0xee;
            }
            Chunk::Spare(n) => {
                let mut spare = conn.recv_spare();
                let n = usize::from(n)
                    .min(stream.len() - pos)
                    .min(spare.remaining_mut());
                spare.put_slice(&stream[pos..pos + n]);
                conn.recv_commit(n, now);
                pos += n;
            }
            Chunk::SpareOverCommit(n) => {
                let mut spare = conn.recv_spare();
                let n = usize::from(n).min(spare.remaining_mut() - 1);
                spare.put_bytes(0xee, n);
                conn.recv_commit(n + 1, now);
            }
            Chunk::Drain => {}
        }
        if !model_closed {
            // Bytes after the close are ignored by the connection.
            model.extend_from_slice(&stream[before..pos]);
            fed += pos - before;
            loop {
                match model_next_frame(&model, true, max) {
                    Err(_) => model_closed = true,
                    Ok(None) => break,
                    Ok(Some(size)) => {
                        let frame: Vec<u8> = model.drain(..4 + size).skip(4).collect();
                        match model_pending.pop_front() {
                            None => model_closed = true,
                            Some((id, hv)) => match decode_response_header(&frame, hv) {
                                Ok((got, len)) if got == id => {
                                    model_responses.push((id, frame[len..].to_vec()))
                                }
                                _ => model_closed = true,
                            },
                        }
                    }
                }
                if model_closed {
                    break;
                }
            }
        }
        t.drain(&mut conn);
        assert_eq!(
            conn.is_closed(),
            model_closed,
            "closed vs model after {pos} bytes"
        );
        assert_memory_bounded(conn.receive_buffer_capacity(), fed);
        let got: Vec<(i32, Vec<u8>)> = t.responses.iter().map(|(i, b)| (*i, b.to_vec())).collect();
        assert_eq!(got, model_responses, "responses vs model");
        if pos == stream.len() && matches!(chunk, Chunk::Copy(_)) {
            break;
        }
    }
    match input.end % 3 {
        0 => conn.handle_eof(now),
        1 => conn.handle_timeout(now + Duration::from_secs(3600)),
        _ => {}
    }
    t.drain(&mut conn);
    t.finish(&mut conn, now);
}

// ----- connection_ops ------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SaslChoice {
    None,
    Plain,
    Scram256,
    Scram512,
    OAuth,
    Gssapi,
}

#[derive(Arbitrary, Debug)]
struct Setup {
    max_in_flight: Option<u8>,
    request_timeout_ms: u16,
    handshake_timeout_ms: u16,
    idle_timeout_ms: Option<u16>,
    /// The receive buffer's release period (`None`: never released).
    release_ms: Option<u16>,
    grace_ms: u16,
    api_versions_version: u8,
    version_hint: bool,
    /// 0: the default table; 1: ApiVersions only up to v2; 2: no
    /// SaslAuthenticate (legacy SASL); 3: Kafka 0.9 (no ApiVersions).
    table: u8,
    sasl: SaslChoice,
    handshake: u8,
    session_lifetime_ms: Option<u32>,
    ids_near_wrap: bool,
    no_client_id: bool,
}

#[derive(Arbitrary, Debug)]
enum OddAnswer {
    /// An error code in the API's own response shape.
    Error(i16),
    /// A body of the fuzzer's choosing (right header and id).
    Body(Vec<u8>),
    /// The right body under another correlation id.
    WrongId(i32),
    /// Answer the second pending request before the first.
    OutOfOrder,
    /// A raw frame (size prefix added), no header.
    RawFrame(Vec<u8>),
    /// Never answer it.
    Drop,
    /// The broker closes the connection.
    CloseBroker,
}

#[derive(Arbitrary, Debug)]
enum CredentialChoice {
    OAuth {
        valid: bool,
        extension: Option<(String, String)>,
        expiry_ms: Option<u32>,
    },
    GssapiSend(Vec<u8>),
    GssapiDone,
    Custom(Vec<u8>),
    GssapiSendLast(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Send {
        spec: RequestSpec,
        timeout_ms: Option<u32>,
        huge_timeout: bool,
    },
    /// Client -> broker, at most this many bytes (partial write).
    Write(Option<u16>),
    /// Client -> broker through `poll_transmit_chunk`.
    WriteChunk,
    /// The broker answers up to this many pending requests correctly.
    Answer(u8),
    /// The broker answers the oldest pending request oddly.
    Odd(OddAnswer),
    /// Broker -> client, at most this many bytes; zero-copy or not.
    Deliver {
        max: Option<u16>,
        zero_copy: bool,
    },
    /// Arbitrary bytes straight into the connection.
    Raw {
        bytes: Vec<u8>,
        zero_copy: bool,
    },
    /// Time passes; `fire`: the driver's timer calls `handle_timeout`.
    Advance {
        amount: u16,
        seconds: bool,
        fire: bool,
    },
    /// The driver sleeps until `poll_timeout` and fires.
    JumpToTimeout,
    /// A spurious `handle_timeout` now.
    FireNow,
    Cancel(u16),
    Credential(CredentialChoice),
    Throttle {
        ms: u32,
        huge: bool,
    },
    Close,
    Eof,
    IoError,
    /// Everything flows until quiet: writes, answers, deliveries.
    Pump,
    /// A read that found nothing: `recv_buf`, then `recv_commit(0)` (the
    /// window closed, as the async engine does), or, `abandon`, the window
    /// left open (the next `recv_buf` closes it).
    WouldBlock {
        abandon: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct OpsInput {
    setup: Setup,
    ops: Vec<Op>,
}

const TABLE_V2: &[(i16, i16, i16)] = &[
    (0, 0, 8),
    (1, 0, 11),
    (3, 0, 8),
    (17, 0, 1),
    (18, 0, 2),
    (36, 0, 1),
];
const TABLE_LEGACY_SASL: &[(i16, i16, i16)] =
    &[(0, 0, 2), (1, 0, 3), (3, 0, 1), (17, 0, 0), (18, 0, 0)];

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

/// The deadline property: after `handle_timeout(now)`, a deadline it acted
/// on (one of [`Deadline::ALL`]'s kinds due at `now`, at its instant) is
/// never reported again unless something re-armed it. Every action clears
/// its kind or closes the connection, and every arming adds a positive
/// duration to a time at or after the firing, except one: a new SASL
/// session (`Ready`, `Reauthenticated`) schedules re-authentication from
/// when the last token was sent, which may be that very instant (a
/// credential that has already expired). So the re-authentication deadline
/// counts as re-armed by a new session; nothing else re-arms an instant.
#[derive(Debug, Default)]
struct DeadlineWatch {
    /// Deadlines acted on: (kind, instant).
    retired: Vec<(Deadline, Instant)>,
    /// Sessions seen when the re-authentication deadlines were retired.
    sessions: u64,
    /// How often each kind was acted on (for the seeded test's coverage).
    fired: [u64; Deadline::ALL.len()],
}

impl DeadlineWatch {
    /// The deadlines due at `now`, just before `handle_timeout(now)`.
    fn due(conn: &Connection, now: Instant) -> Vec<(Deadline, Instant)> {
        Deadline::ALL
            .into_iter()
            .filter_map(|k| conn.deadline(k).filter(|t| *t <= now).map(|t| (k, t)))
            .collect()
    }

    /// `handle_timeout` ran with `due` due.
    fn retire(&mut self, due: Vec<(Deadline, Instant)>, sessions: u64) {
        for &(kind, _) in &due {
            self.fired[kind as usize] += 1;
        }
        if due.iter().any(|(k, _)| *k == Deadline::Reauthenticate) {
            self.sessions = sessions;
        }
        for d in due {
            if !self.retired.contains(&d) {
                self.retired.push(d);
            }
        }
    }

    /// No retired deadline is armed again.
    fn check(&mut self, conn: &Connection, sessions: u64) {
        if sessions > self.sessions {
            // A new session re-armed re-authentication.
            self.retired.retain(|(k, _)| *k != Deadline::Reauthenticate);
        }
        for kind in Deadline::ALL {
            if let Some(t) = conn.deadline(kind) {
                assert!(
                    !self.retired.contains(&(kind, t)),
                    "{kind:?} deadline reported again after handle_timeout acted on it"
                );
            }
        }
        // poll_timeout reports the earliest deadline of the same table, every
        // kind included.
        let earliest = Deadline::ALL
            .into_iter()
            .filter_map(|k| conn.deadline(k))
            .min();
        assert_eq!(conn.poll_timeout(), earliest, "poll_timeout misses a kind");
        assert_eq!(conn.next_deadline().map(|(t, _)| t), earliest);
    }
}

struct OpsHarness {
    conn: Connection,
    broker: SimBroker,
    received_seen: usize,
    pending: VecDeque<ReceivedRequest>,
    now: Instant,
    t: Tracker,
    received_bytes: usize,
    max_in_flight: Option<usize>,
    table: &'static [(i16, i16, i16)],
    mechanism: &'static str,
    scram: Option<ScramServer>,
    session_lifetime_ms: i64,
    eof_delivered: bool,
    /// The broker reads raw SASL tokens (after SaslHandshake v0).
    raw_mode: bool,
    /// The mechanism's last token is on its way: a legacy broker does not
    /// answer it.
    last_token_coming: bool,
    deadlines: DeadlineWatch,
}

impl OpsHarness {
    fn new(setup: &Setup) -> Option<Self> {
        let mut config = Config::new()
            .with_request_timeout(Duration::from_millis(
                u64::from(setup.request_timeout_ms) * 4 + 1,
            ))
            .with_handshake_timeout(Duration::from_millis(
                u64::from(setup.handshake_timeout_ms) * 8 + 1,
            ))
            .with_idle_timeout(
                setup
                    .idle_timeout_ms
                    .map(|ms| Duration::from_millis(u64::from(ms) * 8)),
            )
            .with_receive_buffer_release(
                setup
                    .release_ms
                    .map(|ms| Duration::from_millis(u64::from(ms) * 4 + 1)),
            )
            .with_unanswered_grace(Duration::from_millis(u64::from(setup.grace_ms)))
            .with_api_versions_version(i16::from(setup.api_versions_version % 5));
        let max_in_flight = setup.max_in_flight.map(|m| usize::from(m % 4) + 1);
        config = config.with_max_in_flight(max_in_flight);
        if setup.no_client_id {
            config = config.with_client_id(None::<String>);
        }
        let table: &'static [(i16, i16, i16)] = match setup.table % 4 {
            0 => DEFAULT_VERSIONS,
            1 => TABLE_V2,
            _ => TABLE_LEGACY_SASL,
        };
        if setup.version_hint || setup.table % 4 == 3 {
            let hint = if setup.table % 4 == 3 {
                ApiVersions::kafka_0_9_0()
            } else {
                ApiVersions::from_ranges(table.iter().copied()).expect("static table")
            };
            config = config.with_version_hint(hint);
        }
        // Bit 2 of `handshake` (bits 0-1 choose the mode): PBKDF2 inside
        // `step`; otherwise it is asked for and answered by
        // `answer_pbkdf2`, when the ops say so.
        let inline = setup.handshake & 4 != 0;
        let hash = |h| {
            Scram::new(h, USER, PASSWORD)
                .with_min_iterations(1)
                .with_max_iterations(8)
                .with_fixed_nonce_for_testing(CLIENT_NONCE)
                .with_inline_pbkdf2(inline)
        };
        let (sasl, mechanism, scram) = match setup.sasl {
            SaslChoice::None => (None, "", None),
            SaslChoice::Plain => (Some(SaslConfig::plain(USER, PASSWORD)), "PLAIN", None),
            SaslChoice::Scram256 | SaslChoice::Scram512 => {
                let h = if matches!(setup.sasl, SaslChoice::Scram256) {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha512
                };
                let server = ScramServer {
                    hash: h,
                    password: PASSWORD.into(),
                    salt: b"salt".to_vec(),
                    iterations: 2,
                    exchange: None,
                };
                (
                    Some(SaslConfig::new(Arc::new(hash(h)))),
                    h.mechanism_name(),
                    Some(server),
                )
            }
            SaslChoice::OAuth => (Some(SaslConfig::oauthbearer()), "OAUTHBEARER", None),
            SaslChoice::Gssapi => (Some(SaslConfig::gssapi()), "GSSAPI", None),
        };
        if let Some(s) = sasl {
            let mode = match setup.handshake % 3 {
                0 => HandshakeMode::Auto,
                1 => HandshakeMode::V1,
                _ => HandshakeMode::LegacyV0,
            };
            config = config.with_sasl(s.with_handshake(mode));
        }
        let now = Instant::now();
        let mut conn = Connection::new(config, now).ok()?;
        if setup.ids_near_wrap {
            // The first request (id 0) is long answered before ids wrap back to it.
            conn.set_next_correlation_id_for_testing(i32::MAX - 2);
        }
        let mut h = Self {
            conn,
            broker: SimBroker::new(Box::new(|_| vec![Action::Ignore])),
            received_seen: 0,
            pending: VecDeque::new(),
            now,
            t: Tracker::new(),
            received_bytes: 0,
            max_in_flight,
            table,
            mechanism,
            scram,
            session_lifetime_ms: setup.session_lifetime_ms.map_or(0, i64::from),
            eof_delivered: false,
            raw_mode: false,
            last_token_coming: false,
            deadlines: DeadlineWatch::default(),
        };
        h.check();
        Some(h)
    }

    fn check(&mut self) {
        let was_ready = self.t.ready;
        self.t.drain(&mut self.conn);
        if self.t.ready && !was_ready && self.raw_mode && self.broker.pending_output() == 0 {
            // Legacy SASL is over: Kafka requests again. The simulated broker
            // cannot leave raw-token mode, so a fresh one takes over (nothing
            // is in its inbox: the client sent nothing since the last token).
            self.broker = SimBroker::new(Box::new(|_| vec![Action::Ignore]));
            self.received_seen = 0;
            self.raw_mode = false;
        }
        if let Some(max) = self.max_in_flight {
            assert!(
                self.conn.in_flight() <= max,
                "{} in flight, max {max}",
                self.conn.in_flight()
            );
        }
        assert_memory_bounded(self.conn.receive_buffer_capacity(), self.received_bytes);
        self.deadlines.check(&self.conn, self.t.sessions);
    }

    fn fire(&mut self) {
        let due = DeadlineWatch::due(&self.conn, self.now);
        self.conn.handle_timeout(self.now);
        // Events first: a session re-armed by this very call counts as
        // re-armed before the retired ones are compared.
        self.t.drain(&mut self.conn);
        self.deadlines.retire(due, self.t.sessions);
        self.check();
        if let Some(t) = self.conn.poll_timeout() {
            assert!(
                t > self.now,
                "poll_timeout {:?} not after handle_timeout's now",
                self.now - t
            );
        }
    }

    fn write(&mut self, limit: usize) -> bool {
        let mut slices = [std::io::IoSlice::new(&[]); 8];
        let n = self.conn.poll_transmit(&mut slices);
        let mut data = Vec::new();
        for s in &slices[..n] {
            let room = limit - data.len().min(limit);
            data.extend_from_slice(&s[..s.len().min(room)]);
        }
        let total: usize = slices[..n].iter().map(|s| s.len()).sum();
        assert!(total <= self.conn.transmit_len());
        // transmit_slices says how many slices poll_transmit can fill: a
        // driver sizes its array by it and must not leave bytes behind.
        assert_eq!(n, self.conn.transmit_slices().min(slices.len()));
        if self.conn.transmit_slices() <= slices.len() {
            assert_eq!(total, self.conn.transmit_len());
        }
        self.conn.transmit_complete(data.len(), self.now);
        self.broker.receive(&data);
        self.pull_received();
        !data.is_empty()
    }

    fn pull_received(&mut self) {
        while self.received_seen < self.broker.received.len() {
            self.pending
                .push_back(self.broker.received[self.received_seen].clone());
            self.received_seen += 1;
        }
    }

    fn mechanism_reply(&mut self, client: &[u8]) -> Vec<u8> {
        match (&mut self.scram, self.mechanism) {
            (Some(s), _) => s.reply(client),
            (None, "GSSAPI") => b"gssapi-server-token".to_vec(),
            _ => Vec::new(),
        }
    }

    fn correct_actions(&mut self, req: &ReceivedRequest) -> Vec<Action> {
        if req.raw_token && std::mem::take(&mut self.last_token_coming) {
            return vec![Action::ExitRawTokenMode];
        }
        if req.raw_token {
            return vec![Action::RespondRawFrame(
                self.mechanism_reply(&req.body).into(),
            )];
        }
        if self.t.requests.contains_key(&req.correlation_id) {
            // A caller's request (whatever its API): the echo broker.
            return vec![Action::Respond(req.body.clone())];
        }
        if let Some(a) = api_versions_reply(req, self.table) {
            return vec![a];
        }
        match req.api_key {
            ApiKey::SASL_HANDSHAKE => {
                let mut b = BytesMut::new();
                crate::server::handshake_response(&mut b, 0, &[self.mechanism, "PLAIN"]);
                let mut actions = vec![Action::Respond(b.freeze())];
                if req.api_version == 0 {
                    actions.push(Action::EnterRawTokenMode);
                    self.raw_mode = true;
                }
                actions
            }
            ApiKey::SASL_AUTHENTICATE => {
                let client = crate::server::authenticate_request(&req.body, req.api_version)
                    .unwrap_or_default();
                let reply = self.mechanism_reply(&client);
                let mut b = BytesMut::new();
                crate::server::authenticate_response(
                    &mut b,
                    req.api_version,
                    0,
                    None,
                    &reply,
                    self.session_lifetime_ms,
                );
                vec![Action::Respond(b.freeze())]
            }
            _ => vec![Action::Respond(req.body.clone())],
        }
    }

    fn answer(&mut self, req: &ReceivedRequest, actions: Vec<Action>) {
        self.broker.apply(req, actions);
    }

    fn odd(&mut self, odd: OddAnswer) {
        let Some(req) = self.pending.pop_front() else {
            return;
        };
        let user = !req.raw_token && self.t.requests.contains_key(&req.correlation_id);
        let actions = match odd {
            OddAnswer::Error(code) => {
                let mut b = BytesMut::new();
                match req.api_key {
                    _ if req.raw_token => return self.answer(&req, vec![Action::Close]),
                    ApiKey::API_VERSIONS if !user => {
                        let v = if code == 35 { 0 } else { req.api_version };
                        crate::versions::encode_response(&mut b, v, code, &[(18, 0, 2)]);
                    }
                    ApiKey::SASL_HANDSHAKE if !user => {
                        crate::server::handshake_response(
                            &mut b,
                            code,
                            &["PLAIN", "SCRAM-SHA-512"],
                        );
                    }
                    ApiKey::SASL_AUTHENTICATE if !user => crate::server::authenticate_response(
                        &mut b,
                        req.api_version,
                        code,
                        Some("denied"),
                        b"e=denied",
                        0,
                    ),
                    _ => b.extend_from_slice(&code.to_be_bytes()),
                }
                if user {
                    self.set_expected(req.correlation_id, b.clone().freeze());
                }
                vec![Action::Respond(b.freeze())]
            }
            OddAnswer::Body(body) => {
                let body = Bytes::from(body);
                if user {
                    self.set_expected(req.correlation_id, body.clone());
                }
                if req.raw_token {
                    vec![Action::RespondRawFrame(body)]
                } else {
                    vec![Action::Respond(body)]
                }
            }
            OddAnswer::WrongId(id) => {
                self.t.trusted = false;
                vec![Action::RespondWithId(id, req.body.clone())]
            }
            OddAnswer::OutOfOrder => {
                self.t.trusted = false;
                if let Some(second) = self.pending.pop_front() {
                    let a = self.correct_actions(&second);
                    self.answer(&second, a);
                }
                self.correct_actions(&req)
            }
            OddAnswer::RawFrame(b) => {
                self.t.trusted = false;
                vec![Action::RespondRawFrame(b.into())]
            }
            OddAnswer::Drop => vec![],
            OddAnswer::CloseBroker => vec![Action::Close],
        };
        self.answer(&req, actions);
    }

    fn set_expected(&mut self, id: i32, body: Bytes) {
        if let Some(t) = self.t.requests.get_mut(&id) {
            if !t.header_overridden {
                t.expected_body = Some(body);
            }
        }
    }

    fn deliver(&mut self, max: usize, zero_copy: bool) -> bool {
        if self.broker.pending_output() == 0 {
            if self.broker.is_closed() && !self.eof_delivered {
                self.eof_delivered = true;
                self.conn.handle_eof(self.now);
                return true;
            }
            return false;
        }
        if zero_copy {
            let buf = self.conn.recv_buf();
            let out = self.broker.take_output(max.min(buf.len()).max(1));
            buf[..out.len()].copy_from_slice(&out);
            self.received_bytes += out.len();
            self.conn.recv_commit(out.len(), self.now);
        } else {
            let out = self.broker.take_output(max.max(1));
            self.received_bytes += out.len();
            self.conn.handle_input(&out, self.now);
        }
        true
    }

    /// Runs SCRAM's pending PBKDF2 jobs, as a driver's blocking pool would,
    /// and hands their results to the connection.
    fn answer_pbkdf2(&mut self) {
        let requests = std::mem::take(&mut self.t.credential_requests);
        for request in requests {
            let CredentialRequest::ScramSaltedPassword(job) = request else {
                self.t.credential_requests.push(request);
                continue;
            };
            let result = self.conn.provide_credential(job.run(), self.now);
            assert!(
                !matches!(result, Err(CredentialError::Rejected(_))),
                "the job's own result was refused: {result:?}"
            );
            self.check();
        }
    }

    fn credential(&mut self, c: CredentialChoice) {
        self.answer_pbkdf2();
        let credential = match c {
            CredentialChoice::OAuth {
                valid,
                extension,
                expiry_ms,
            } => {
                let mut tok = OAuthBearerToken::new(if valid {
                    "eyJhbGciOiJub25lIn0.e30."
                } else {
                    "bad token"
                });
                if let Some((k, v)) = extension {
                    tok = tok.with_extension(k, v);
                }
                if let Some(ms) = expiry_ms {
                    tok = tok.with_expiry(self.now + Duration::from_millis(u64::from(ms)));
                }
                Credential::OAuthBearer(tok)
            }
            CredentialChoice::GssapiSend(t) => Credential::Gssapi(GssapiStep::Send(t)),
            CredentialChoice::GssapiDone => Credential::Gssapi(GssapiStep::Done),
            CredentialChoice::Custom(b) => Credential::Custom(b.into()),
            CredentialChoice::GssapiSendLast(t) => Credential::Gssapi(GssapiStep::SendLast(t)),
        };
        let last = matches!(credential, Credential::Gssapi(GssapiStep::SendLast(_)));
        let was_closed = self.conn.is_closed();
        match self.conn.provide_credential(credential, self.now) {
            Ok(()) => {
                assert!(!was_closed);
                // Under SaslHandshake v0 the broker sends nothing back for
                // the client's last token (as Apache Kafka's does for GSSAPI).
                self.last_token_coming |= last;
            }
            Err(CredentialError::NotPending) => {}
            Err(CredentialError::Rejected(e)) => {
                assert!(
                    self.conn.is_closed(),
                    "a rejected credential ({e}) closes the connection"
                );
            }
        }
    }

    fn op(&mut self, op: Op) {
        match op {
            Op::Send {
                spec,
                timeout_ms,
                huge_timeout,
            } => {
                let mut r = spec.build();
                if huge_timeout {
                    r = r.with_timeout(Duration::MAX);
                } else if let Some(ms) = timeout_ms {
                    r = r.with_timeout(Duration::from_millis(u64::from(ms) + 1));
                }
                self.t.send(&mut self.conn, r, self.now);
            }
            Op::Write(limit) => {
                self.write(limit.map_or(usize::MAX, usize::from));
            }
            Op::WriteChunk => {
                if let Some(c) = self.conn.poll_transmit_chunk(self.now) {
                    self.broker.receive(&c);
                    self.pull_received();
                }
            }
            Op::Answer(n) => {
                for _ in 0..n.max(1) {
                    let Some(req) = self.pending.pop_front() else {
                        break;
                    };
                    let a = self.correct_actions(&req);
                    self.answer(&req, a);
                }
            }
            Op::Odd(odd) => self.odd(odd),
            Op::Deliver { max, zero_copy } => {
                self.deliver(max.map_or(usize::MAX, usize::from), zero_copy);
            }
            Op::WouldBlock { abandon } => {
                let _ = self.conn.recv_buf();
                if !abandon {
                    self.conn.recv_commit(0, self.now);
                }
            }
            Op::Raw { bytes, zero_copy } => {
                self.t.trusted = false;
                self.received_bytes += bytes.len();
                if zero_copy {
                    let buf = self.conn.recv_buf();
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    self.conn.recv_commit(n, self.now);
                } else {
                    self.conn.handle_input(&bytes, self.now);
                }
            }
            Op::Advance {
                amount,
                seconds,
                fire,
            } => {
                let unit = if seconds { 1000 } else { 1 };
                self.now += Duration::from_millis(u64::from(amount) * unit);
                if fire {
                    self.fire();
                }
            }
            Op::JumpToTimeout => {
                if let Some(t) = self.conn.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.fire();
            }
            Op::FireNow => self.fire(),
            Op::Cancel(pick) => {
                let id = match self.t.order.len() {
                    0 => i32::from(pick),
                    n if pick & 0x8000 == 0 => self.t.order[usize::from(pick) % n],
                    _ => i32::from(pick as i16),
                };
                self.t.cancel(&mut self.conn, id, self.now);
            }
            Op::Credential(c) => self.credential(c),
            Op::Throttle { ms, huge } => {
                let d = if huge {
                    Duration::MAX
                } else {
                    Duration::from_millis(u64::from(ms))
                };
                self.conn.handle_throttle(d, self.now);
            }
            Op::Close => self.conn.close(self.now),
            Op::Eof => self.conn.handle_eof(self.now),
            Op::IoError => self.conn.handle_io_error(
                std::io::ErrorKind::ConnectionReset,
                "reset".into(),
                self.now,
            ),
            Op::Pump => {
                for _ in 0..64 {
                    let jobs = self.t.credential_requests.len();
                    self.answer_pbkdf2();
                    let mut moved = self.t.credential_requests.len() < jobs;
                    moved |= self.write(usize::MAX);
                    while let Some(req) = self.pending.pop_front() {
                        let a = self.correct_actions(&req);
                        self.answer(&req, a);
                        moved = true;
                    }
                    moved |= self.deliver(usize::MAX, false);
                    self.check();
                    if !moved {
                        break;
                    }
                }
            }
        }
        self.check();
    }
}

/// `connection_ops`: a connection (with or without SASL, negotiating or
/// with a version hint) driven by an arbitrary sequence of caller
/// operations and broker behaviours, checking the crate's contract after
/// every step.
pub fn run_connection_ops(data: &[u8]) {
    connection_ops_deadlines(data);
}

/// The kinds of deadline, in the order `handle_timeout` acts on them.
pub fn deadline_kinds() -> [String; Deadline::ALL.len()] {
    Deadline::ALL.map(|k| format!("{k:?}"))
}

/// [`run_connection_ops`], returning how often `handle_timeout` acted on
/// each kind of deadline ([`deadline_kinds`]' order).
pub fn connection_ops_deadlines(data: &[u8]) -> [u64; Deadline::ALL.len()] {
    let Ok(input) = OpsInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return [0; Deadline::ALL.len()];
    };
    run_ops(input)
}

fn run_ops(input: OpsInput) -> [u64; Deadline::ALL.len()] {
    let Some(mut h) = OpsHarness::new(&input.setup) else {
        return [0; Deadline::ALL.len()];
    };
    for op in input.ops.into_iter().take(512) {
        h.op(op);
    }
    let now = h.now;
    h.t.finish(&mut h.conn, now);
    h.deadlines.fired
}

/// The `connection_ops` harness, invariants and all, on a run drawn from
/// a fixed pseudo-random sequence (`seed`) instead of fuzzer bytes, with
/// operations weighted towards what arms and fires deadlines: requests
/// left unanswered, time jumps to `poll_timeout`, throttles, cancels, SASL
/// sessions that need re-authenticating. Deterministic on every machine;
/// returns how often `handle_timeout` acted on each kind of deadline
/// ([`deadline_kinds`]' order). Used by `tests/deadlines.rs`.
pub fn connection_ops_seeded(seed: u64) -> [u64; Deadline::ALL.len()] {
    let mut r = SeededOps(seed | 1);
    let setup = Setup {
        max_in_flight: r.maybe(|r| r.below(4) as u8),
        request_timeout_ms: r.below(20_000) as u16,
        handshake_timeout_ms: r.below(30_000) as u16,
        idle_timeout_ms: r.maybe(|r| r.below(20_000) as u16),
        release_ms: r.maybe(|r| r.below(5_000) as u16),
        grace_ms: r.below(5_000) as u16,
        api_versions_version: r.below(5) as u8,
        version_hint: r.below(3) == 0,
        table: r.below(4) as u8,
        sasl: [
            SaslChoice::None,
            SaslChoice::Plain,
            SaslChoice::Scram256,
            SaslChoice::Scram512,
            SaslChoice::OAuth,
            SaslChoice::Gssapi,
        ][r.below(6) as usize],
        handshake: r.below(3) as u8,
        session_lifetime_ms: r.maybe(|r| 500 + r.below(120_000) as u32),
        ids_near_wrap: r.below(8) == 0,
        no_client_id: r.below(8) == 0,
    };
    let n = 20 + r.below(200) as usize;
    let ops = (0..n).map(|_| r.op()).collect();
    run_ops(OpsInput { setup, ops })
}

/// xorshift64*, drawing [`Op`]s for [`connection_ops_seeded`].
struct SeededOps(u64);

impl SeededOps {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn maybe<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.below(4) != 0).then(|| f(self))
    }

    fn op(&mut self) -> Op {
        match self.below(100) {
            0..=17 => Op::Send {
                spec: RequestSpec {
                    api: self.below(APIS.len() as u64) as u8,
                    // Mostly versions the default table supports.
                    version: if self.below(8) == 0 {
                        13
                    } else {
                        self.below(4) as u8
                    },
                    body: vec![0; self.below(8) as usize],
                    no_response: self.below(16) == 0,
                    header_override: None,
                },
                timeout_ms: self.maybe(|r| r.below(30_000) as u32),
                huge_timeout: self.below(32) == 0,
            },
            18..=35 => Op::Pump,
            36..=41 => Op::Write(None),
            42..=47 => Op::Answer(self.below(3) as u8),
            48..=53 => Op::Odd(OddAnswer::Drop),
            54 => Op::Odd(OddAnswer::Error(self.below(80) as i16)),
            55..=59 => Op::Deliver {
                max: None,
                zero_copy: self.below(2) == 0,
            },
            60..=69 => Op::Advance {
                amount: self.below(5_000) as u16,
                seconds: self.below(3) == 0,
                fire: self.below(4) != 0,
            },
            70..=81 => Op::JumpToTimeout,
            82 => Op::FireNow,
            83 => Op::WouldBlock {
                abandon: self.below(2) == 0,
            },
            84..=87 => Op::Cancel(self.below(64) as u16),
            88..=92 => Op::Credential(match self.below(4) {
                0 => CredentialChoice::OAuth {
                    valid: self.below(8) != 0,
                    extension: None,
                    expiry_ms: self.maybe(|r| r.below(200_000) as u32),
                },
                1 => CredentialChoice::GssapiSend(b"gssapi-client-token".to_vec()),
                2 => CredentialChoice::GssapiSendLast(b"gssapi-last-token".to_vec()),
                _ => CredentialChoice::GssapiDone,
            }),
            93..=97 => Op::Throttle {
                ms: self.below(20_000) as u32,
                huge: self.below(32) == 0,
            },
            98 => Op::Close,
            _ => Op::Eof,
        }
    }
}
