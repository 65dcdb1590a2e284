//! The Kafka side of SASL: one authentication exchange (initial or KIP-368
//! re-authentication) as a small state machine the connection owns, the
//! KIP-368 session schedule, and the SaslHandshake and SaslAuthenticate
//! codecs.
//!
//! An [`Exchange`] never touches the connection: each input (a response,
//! a mechanism step, the application's credential) returns an
//! [`AuthOutput`] saying what the connection must do next (put a request
//! on the wire, ask the application, finish, or close), and the connection
//! carries it out. That keeps this module free of the connection's
//! internals and the connection free of SASL's.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};

use crate::api::ApiKey;
use crate::codes;
use crate::error::{AuthFailure, CloseReason, Incompatibility};
use crate::event::SaslSession;
use crate::sasl::{
    Credential, CredentialRequest, HandshakeMode, Mechanism, SaslConfig, SaslError, Step,
};
use crate::versions::ApiVersions;
use crate::wire::{DecodeError, Reader, WriteExt, MAX_STRING_LEN};

/// How tokens travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// SaslHandshake v1 + SaslAuthenticate at this version (KIP-152).
    Authenticate { version: i16 },
    /// SaslHandshake v0 + raw length-prefixed tokens with no Kafka header.
    Legacy,
}

/// Where the exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the application's credential before the first message.
    FirstCredential,
    /// SaslHandshake sent.
    Handshake,
    /// A token sent, waiting for the server's answer.
    Exchange,
    /// Waiting for the application's credential mid-exchange.
    Credential,
    /// The mechanism's last message ([`Step::SendLast`]) went out: with
    /// SaslAuthenticate its response ends the exchange; a raw token has
    /// no answer, and the exchange ends once it is written.
    Last,
}

/// What an [`Exchange`] needs the connection to do next.
#[derive(Debug)]
pub(crate) enum AuthOutput {
    /// Put a SaslHandshake of this version (0 or 1) on the wire.
    Handshake {
        /// 1, or 0 for the legacy raw-token exchange.
        version: i16,
        /// The request body (the mechanism name).
        body: Bytes,
    },
    /// Put a SaslAuthenticate of this version on the wire.
    Authenticate {
        /// The negotiated SaslAuthenticate version.
        version: i16,
        /// The request body.
        body: Bytes,
    },
    /// Write a raw token (after SaslHandshake v0): a size prefix and the
    /// bytes, no Kafka header; the answer is a bare frame.
    RawToken(Bytes),
    /// Write the mechanism's last raw token, which has no answer: the
    /// exchange is done once it is written ([`Exchange::written`]).
    LastRawToken(Bytes),
    /// The mechanism needs the application ([`crate::Event::CredentialRequired`]).
    Credential(CredentialRequest),
    /// The mechanism is done: [`Exchange::finish`] gives the session.
    Done,
    /// The exchange failed: the connection closes with this reason.
    Failed(CloseReason),
}

/// One authentication in progress.
#[derive(Debug)]
pub(crate) struct Exchange {
    mechanism: Box<dyn Mechanism>,
    transport: Transport,
    stage: Stage,
    reauth: bool,
    /// The first client message, computed before the handshake is sent so
    /// that a credential wait never holds requests (KIP-368), and whether
    /// it is also the last ([`Step::SendLast`]).
    first_message: Option<(Vec<u8>, bool)>,
    /// `session_lifetime_ms` of the last successful SaslAuthenticate.
    session_lifetime_ms: i64,
    /// When the last SaslAuthenticate (or raw token) was handed to the transport.
    last_sent: Option<Instant>,
}

/// The KIP-368 schedule of an authenticated session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// When to re-authenticate (taken once it starts).
    pub(crate) reauth_at: Option<Instant>,
    /// When the broker stops honouring the session.
    pub(crate) expires_at: Option<Instant>,
}

/// What a finished exchange leaves behind.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The schedule the connection's deadlines follow.
    pub(crate) schedule: Session,
    /// What the application is told.
    pub(crate) session: SaslSession,
    /// Whether this was a re-authentication.
    pub(crate) reauth: bool,
}

impl Exchange {
    /// Chooses how tokens travel from what the broker offers and makes a
    /// fresh mechanism. A re-authentication (KIP-368) needs SaslHandshake v1
    /// and SaslAuthenticate; a first authentication falls back to the
    /// legacy v0 exchange in [`HandshakeMode::Auto`].
    pub(crate) fn start(
        sasl: &SaslConfig,
        versions: &ApiVersions,
        reauth: bool,
    ) -> Result<Self, CloseReason> {
        let authenticate = versions.negotiate(ApiKey::SASL_AUTHENTICATE, 0..=2);
        let handshake_v1 = versions.supports(ApiKey::SASL_HANDSHAKE, 1);
        let transport = match (sasl.handshake(), authenticate) {
            (HandshakeMode::LegacyV0, _) if !reauth => Transport::Legacy,
            (_, Some(v)) if handshake_v1 => Transport::Authenticate { version: v },
            (HandshakeMode::Auto, _) if !reauth => Transport::Legacy,
            (_, _) => {
                return Err(Incompatibility::MissingApi {
                    api_key: ApiKey::SASL_AUTHENTICATE,
                    why: "SASL handshake v1 needs (KIP-152)",
                }
                .into())
            }
        };
        let handshake = if transport == Transport::Legacy { 0 } else { 1 };
        if !versions.supports(ApiKey::SASL_HANDSHAKE, handshake) {
            return Err(Incompatibility::MissingApi {
                api_key: ApiKey::SASL_HANDSHAKE,
                why: "SASL needs",
            }
            .into());
        }
        let local_failure = |message: String| AuthFailure {
            mechanism: sasl.mechanism().to_owned(),
            error_code: None,
            message,
            detail: None,
            reauthentication: reauth,
        };
        let mechanism = sasl
            .factory
            .start()
            .map_err(|e| local_failure(e.to_string()))?;
        // The configured name was checked (`Config::validate`); a mechanism
        // instance may name itself differently, and SaslHandshake carries
        // its name as a Kafka string (i16 length).
        if mechanism.name().len() > MAX_STRING_LEN {
            return Err(local_failure(format!(
                "the mechanism names itself with {} bytes; a Kafka string holds at most {MAX_STRING_LEN}",
                mechanism.name().len()
            ))
            .into());
        }
        Ok(Self {
            mechanism,
            transport,
            stage: Stage::FirstCredential,
            reauth,
            first_message: None,
            session_lifetime_ms: 0,
            last_sent: None,
        })
    }

    /// The mechanism's first step.
    pub(crate) fn begin(&mut self, now: Instant) -> AuthOutput {
        let step = self.mechanism.step(None);
        self.on_step(step, now)
    }

    /// Whether the mechanism waits for the application's credential.
    pub(crate) fn awaits_credential(&self) -> bool {
        matches!(self.stage, Stage::FirstCredential | Stage::Credential)
    }

    /// Whether the exchange is on the wire, so that new requests are held
    /// (KIP-368: a credential wait before the handshake holds nothing).
    pub(crate) fn holds_requests(&self) -> bool {
        self.stage != Stage::FirstCredential
    }

    /// Whether the SaslHandshake is in flight.
    pub(crate) fn in_handshake(&self) -> bool {
        self.stage == Stage::Handshake
    }

    /// The last raw token was written (the connection's transmit queue,
    /// which held nothing else, ran empty): a legacy exchange whose last
    /// token has no answer is done ([`AuthOutput::Done`]); otherwise
    /// nothing happens.
    pub(crate) fn written(&self) -> Option<AuthOutput> {
        (self.stage == Stage::Last && self.transport == Transport::Legacy)
            .then_some(AuthOutput::Done)
    }

    /// Acts on what the mechanism wants next.
    fn on_step(&mut self, step: Result<Step, SaslError>, now: Instant) -> AuthOutput {
        let step = match step {
            Ok(step) => step,
            Err(e) => return AuthOutput::Failed(self.failure(&e)),
        };
        let (msg, last) = match step {
            Step::NeedCredential(req) => {
                if self.stage != Stage::FirstCredential {
                    self.stage = Stage::Credential;
                }
                return AuthOutput::Credential(req);
            }
            Step::Done if self.stage == Stage::FirstCredential => {
                return AuthOutput::Failed(
                    self.failure(&SaslError::UnexpectedMessage("done before any message")),
                )
            }
            Step::Done => return AuthOutput::Done,
            Step::Send(msg) => (msg, false),
            Step::SendLast(msg) => (msg, true),
        };
        if self.stage != Stage::FirstCredential {
            return self.token(msg, last, now);
        }
        // The first message is ready: now the handshake goes on the wire
        // (and, when re-authenticating, new requests are held).
        self.first_message = Some((msg, last));
        self.stage = Stage::Handshake;
        let version = match self.transport {
            Transport::Authenticate { .. } => 1,
            Transport::Legacy => 0,
        };
        AuthOutput::Handshake {
            version,
            body: encode_handshake(self.mechanism.name()),
        }
    }

    /// Sends a client message the way the transport carries tokens; `last`
    /// when the mechanism said it is its last ([`Step::SendLast`]).
    fn token(&mut self, msg: Vec<u8>, last: bool, now: Instant) -> AuthOutput {
        if msg.len() > MAX_TOKEN_LEN {
            let message = format!(
                "the mechanism's message of {} bytes does not fit in a Kafka frame",
                msg.len()
            );
            return AuthOutput::Failed(self.local_failure(message));
        }
        self.stage = if last { Stage::Last } else { Stage::Exchange };
        self.last_sent = Some(now);
        match self.transport {
            Transport::Authenticate { version } => AuthOutput::Authenticate {
                version,
                body: encode_authenticate(version, &msg),
            },
            // Kafka's legacy flow answers a token only when the broker's
            // SASL server has one (SaslServerAuthenticator sends nothing for
            // a null response), and after a mechanism's last message it may
            // have none (GSSAPI: RFC 4752's last client message): Kafka's
            // client is done once it has sent it, and so are we.
            Transport::Legacy if last => AuthOutput::LastRawToken(Bytes::from(msg)),
            Transport::Legacy => AuthOutput::RawToken(Bytes::from(msg)),
        }
    }

    /// The SaslHandshake response.
    pub(crate) fn on_handshake(&mut self, body: &[u8], now: Instant) -> AuthOutput {
        let resp = match decode_handshake(body) {
            Ok(r) => r,
            Err(error) => {
                return AuthOutput::Failed(CloseReason::malformed(ApiKey::SASL_HANDSHAKE, error))
            }
        };
        if resp.error_code != 0 {
            let mechanism = self.mechanism.name().to_owned();
            if self.reauth {
                // A broker that cannot re-authenticate (tansu answers 33 to
                // a second handshake): a new connection logs in afresh.
                let message = format!(
                    "the broker refused the re-authentication handshake (KIP-368); it lists: {}",
                    if resp.mechanisms.is_empty() {
                        "nothing".to_owned()
                    } else {
                        resp.mechanisms.join(", ")
                    }
                );
                return AuthOutput::Failed(
                    AuthFailure {
                        mechanism,
                        error_code: Some(resp.error_code),
                        message,
                        detail: None,
                        reauthentication: true,
                    }
                    .into(),
                );
            }
            let reason = if resp.error_code == codes::UNSUPPORTED_SASL_MECHANISM {
                Incompatibility::MechanismNotEnabled {
                    mechanism,
                    offered: resp.mechanisms,
                }
            } else {
                Incompatibility::SaslHandshake {
                    code: resp.error_code,
                }
            };
            return AuthOutput::Failed(reason.into());
        }
        let (first, last) = self.first_message.take().unwrap_or_default();
        self.token(first, last, now)
    }

    /// A SaslAuthenticate response (`version`, sent at `sent_at`).
    pub(crate) fn on_authenticate(
        &mut self,
        body: &[u8],
        version: i16,
        sent_at: Instant,
        now: Instant,
    ) -> AuthOutput {
        let resp = match decode_authenticate(body, version) {
            Ok(r) => r,
            Err(error) => {
                return AuthOutput::Failed(CloseReason::malformed(ApiKey::SASL_AUTHENTICATE, error))
            }
        };
        if resp.error_code != 0 {
            let detail = self.mechanism.failure_detail().or_else(|| {
                // SCRAM puts `e=...` in the auth bytes of the failed step.
                std::str::from_utf8(resp.auth_bytes)
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("server said: {s}"))
            });
            let failure = AuthFailure {
                mechanism: self.mechanism.name().to_owned(),
                error_code: Some(resp.error_code),
                message: resp
                    .error_message
                    .filter(|m| !m.is_empty())
                    .unwrap_or("the broker gave no message")
                    .to_owned(),
                detail,
                reauthentication: self.reauth,
            };
            return AuthOutput::Failed(failure.into());
        }
        self.session_lifetime_ms = resp.session_lifetime_ms;
        self.last_sent = Some(sent_at);
        if self.stage == Stage::Last {
            // The answer to the mechanism's last message: the broker
            // accepted it (Kafka's client completes here too, without
            // looking at the bytes: its CLIENT_COMPLETE state).
            return AuthOutput::Done;
        }
        let step = self.mechanism.step(Some(resp.auth_bytes));
        self.on_step(step, now)
    }

    /// A legacy raw token from the server.
    pub(crate) fn on_server_token(&mut self, token: &[u8], now: Instant) -> AuthOutput {
        let step = self.mechanism.step(Some(token));
        self.on_step(step, now)
    }

    /// The application's credential. A credential the mechanism refuses
    /// comes back as the mechanism's error; the connection closes with
    /// [`Exchange::failure`].
    pub(crate) fn provide_credential(
        &mut self,
        credential: Credential,
        now: Instant,
    ) -> Result<AuthOutput, SaslError> {
        let step = self.mechanism.provide_credential(credential)?;
        Ok(self.on_step(Ok(step), now))
    }

    /// The close reason for a local verdict of the mechanism.
    pub(crate) fn failure(&self, e: &SaslError) -> CloseReason {
        self.local_failure(e.to_string())
    }

    fn local_failure(&self, message: String) -> CloseReason {
        AuthFailure {
            mechanism: self.mechanism.name().to_owned(),
            error_code: None,
            message,
            detail: self.mechanism.failure_detail(),
            reauthentication: self.reauth,
        }
        .into()
    }

    /// The close reason when the application could not provide a credential.
    pub(crate) fn application_failure(&self, message: &str) -> CloseReason {
        AuthFailure {
            mechanism: self.mechanism.name().to_owned(),
            error_code: None,
            message: format!("the application could not provide a credential: {message}"),
            detail: None,
            reauthentication: self.reauth,
        }
        .into()
    }

    /// The session a completed exchange leaves: re-authenticate at
    /// `fraction` (85-95%, jittered, KIP-368) of the broker's session
    /// lifetime, and before the credential itself expires.
    pub(crate) fn finish(self, now: Instant, fraction: f64) -> Authenticated {
        let authenticated_at = self.last_sent.unwrap_or(now);
        let lifetime = (self.session_lifetime_ms > 0).then(|| {
            // KIP-368: clamp absurd values; under a second would make the
            // connection do nothing but re-authenticate.
            Duration::from_millis(self.session_lifetime_ms as u64)
                .clamp(Duration::from_secs(1), Duration::from_secs(365 * 24 * 3600))
        });
        let mut reauth_after = lifetime.map(|l| l.mul_f64(fraction));
        if let Some(exp) = self.mechanism.credential_expiry() {
            let left = exp
                .saturating_duration_since(authenticated_at)
                .mul_f64(fraction);
            reauth_after = Some(reauth_after.map_or(left, |r| r.min(left)));
        }
        Authenticated {
            schedule: Session {
                reauth_at: reauth_after.map(|d| authenticated_at + d),
                expires_at: lifetime.map(|l| authenticated_at + l),
            },
            session: SaslSession {
                mechanism: self.mechanism.name().to_owned(),
                session_lifetime: lifetime,
                reauthenticate_after: reauth_after,
            },
            reauth: self.reauth,
        }
    }
}

/// Spreads re-authentication times (KIP-368 asks for 85-95% of the
/// session lifetime, jittered so that connections do not all
/// re-authenticate at once).
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// Seeded once from the operating system. Jitter only spreads
    /// re-authentication; a failed random source falls back to a
    /// clock-free constant, which is still correct.
    pub(crate) fn from_os() -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        Self(u64::from_le_bytes(seed) | 1)
    }

    /// A fraction of the session lifetime, uniform in [0.85, 0.95), from a
    /// xorshift generator.
    pub(crate) fn reauth_fraction(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        0.85 + 0.10 * ((x >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The largest client message sent: a SaslAuthenticate (or raw token)
/// frame must fit Kafka's i32 size prefix with its header (a client id of
/// up to 32 KiB) and the bytes' own length prefix. Brokers refuse far
/// smaller ones (`sasl.server.max.receive.size`, 512 KiB by default); this
/// only keeps a runaway mechanism from breaking the encoding.
const MAX_TOKEN_LEN: usize = i32::MAX as usize - 65_536;

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
