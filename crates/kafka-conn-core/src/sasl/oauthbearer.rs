//! SASL OAUTHBEARER (RFC 7628; KIP-255, KIP-342): see [`OAuthBearer`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use super::{Credential, CredentialRequest, Mechanism, MechanismFactory, SaslError, Secret, Step};

/// RFC 7628 section 3.1: key/value pairs are separated by the byte 0x01 (kvsep).
const KVSEP: u8 = 0x01;

/// An OAuth 2 bearer token for OAUTHBEARER, with its KIP-342 SASL extensions
/// and, optionally, when it expires.
///
/// `Debug` shows the extension keys and the expiry, never the token or the
/// extension values.
///
/// ```
/// use std::time::{Duration, Instant};
/// use kafka_conn_core::sasl::OAuthBearerToken;
/// let token = OAuthBearerToken::new("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")
///    .with_extension("traceId", "abc-123")
///    .with_expiry(Instant::now() + Duration::from_secs(3600));
/// assert!(!format!("{token:?}").contains("eyJ"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthBearerToken {
    token: Secret,
    extensions: BTreeMap<String, String>,
    expires_at: Option<Instant>,
}

impl OAuthBearerToken {
    /// A token (the compact JWT or other RFC 6750 `b64token`), no extensions,
    /// no known expiry.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: Secret::new(token),
            extensions: BTreeMap::new(),
            expires_at: None,
        }
    }

    /// Adds a SASL extension (KIP-342), e.g. `logicalCluster` or `traceId`.
    /// Keys must be letters only and not `auth`; values printable ASCII,
    /// space, tab, CR or LF. Checked when the token is used.
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(key.into(), value.into());
        self
    }

    /// When the token stops being valid: the connection re-authenticates
    /// before then (KIP-368).
    pub fn with_expiry(mut self, expires_at: Instant) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// The token.
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// The SASL extensions, sorted by key.
    pub fn extensions(&self) -> &BTreeMap<String, String> {
        &self.extensions
    }

    /// When the token expires, if known.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// Checks the token and extensions against RFC 6750 / RFC 7628 and
    /// builds the client initial response.
    fn initial_response(&self) -> Result<Vec<u8>, SaslError> {
        let token = self.token.expose();
        if !is_b64token(token) {
            // Never echo the token itself in the error.
            return Err(SaslError::InvalidCredential(if token.is_empty() {
                "the OAuth bearer token is empty".into()
            } else {
                "the OAuth bearer token has characters outside RFC 6750's b64token \
                 ([A-Za-z0-9-._~+/]+ followed by '=' padding)"
                    .into()
            }));
        }
        for (key, value) in &self.extensions {
            // RFC 7628 section 3.1: key = 1*(ALPHA).
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(SaslError::InvalidCredential(format!(
                    "OAUTHBEARER extension key {key:?} must be letters only (RFC 7628 section 3.1)"
                )));
            }
            // RFC 7628 section 3.1: "auth" is the key of the token itself.
            // Refused in any case, so no server can confuse the two.
            if key.eq_ignore_ascii_case("auth") {
                return Err(SaslError::InvalidCredential(
                    "OAUTHBEARER extension key \"auth\" is reserved (RFC 7628 section 3.1)".into(),
                ));
            }
            // RFC 7628 section 3.1: value = *(VCHAR / SP / HTAB / CR / LF).
            // Kafka's parser (OAuthBearerClientInitialResponse) also needs
            // at least one character, so an empty value is refused here
            // rather than by the broker.
            if value.is_empty() || !value.bytes().all(is_value_char) {
                return Err(SaslError::InvalidCredential(format!(
                    "OAUTHBEARER extension {key:?} has an empty value or one with characters \
                     outside VCHAR / SP / HTAB / CR / LF (RFC 7628 section 3.1)"
                )));
            }
        }
        // RFC 7628 section 3.1:
        //   client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
        //   gs2-header  = "n,," (no channel binding, no authzid)
        //   kvpair      = key "=" value kvsep, the first being auth=Bearer <token>
        // Extensions follow in key order (the BTreeMap), as Kafka's client
        // writes them (KIP-342).
        let mut msg = Vec::with_capacity(
            token.len()
                + 32
                + self
                    .extensions
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 2)
                    .sum::<usize>(),
        );
        msg.extend_from_slice(b"n,,");
        msg.push(KVSEP);
        msg.extend_from_slice(b"auth=Bearer ");
        msg.extend_from_slice(token.as_bytes());
        msg.push(KVSEP);
        for (key, value) in &self.extensions {
            msg.extend_from_slice(key.as_bytes());
            msg.push(b'=');
            msg.extend_from_slice(value.as_bytes());
            msg.push(KVSEP);
        }
        msg.push(KVSEP);
        Ok(msg)
    }
}

/// RFC 6750 section 2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// RFC 7628 section 3.1: VCHAR (0x21-0x7E), SP, HTAB, CR, LF.
fn is_value_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e | b' ' | b'\t' | b'\r' | b'\n')
}

impl fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("token", &self.token)
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The OAUTHBEARER factory. It holds no token: each exchange asks the
/// application for a fresh one through a credential request, so a token
/// refreshed by the application is picked up at re-authentication.
///
/// The core cannot await a token provider, so the exchange asks the
/// application for the token: the first step returns
/// [`Step::NeedCredential`]`(`[`CredentialRequest::OAuthBearerToken`]`)`, and
/// the application answers with [`Credential::OAuthBearer`]. The token is
/// validated, then sent in the RFC 7628 client initial response:
///
/// ```text
/// n,,\x01auth=Bearer <token>\x01<key>=<value>\x01...\x01\x01
/// ```
///
/// On success the server answers with an empty message. On failure it sends
/// a JSON error challenge (RFC 7628 section 3.2.2), which the client must
/// answer with a single `0x01` byte; the broker then fails the exchange, and
/// the JSON is available from [`Mechanism::failure_detail`] for the error.
#[derive(Debug, Clone, Default)]
pub struct OAuthBearer {
    _private: (),
}

impl OAuthBearer {
    /// A factory for OAUTHBEARER exchanges.
    pub fn new() -> Self {
        Self::default()
    }
}

impl MechanismFactory for OAuthBearer {
    fn name(&self) -> &str {
        "OAUTHBEARER"
    }

    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError> {
        Ok(Box::new(OAuthBearerMechanism {
            state: State::Initial,
            expires_at: None,
            error_challenge: None,
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Initial,
    AwaitingToken,
    SentToken,
    AnsweredErrorChallenge,
    Done,
    Failed,
}

/// One OAUTHBEARER exchange. Keeps no token after sending it.
#[derive(Debug)]
struct OAuthBearerMechanism {
    state: State,
    expires_at: Option<Instant>,
    /// The server's RFC 7628 section 3.2.2 error challenge, if one came.
    error_challenge: Option<String>,
}

impl Mechanism for OAuthBearerMechanism {
    fn name(&self) -> &str {
        "OAUTHBEARER"
    }

    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError> {
        match (self.state, server_message) {
            (State::Initial, None) => {
                self.state = State::AwaitingToken;
                Ok(Step::NeedCredential(CredentialRequest::OAuthBearerToken))
            }
            // RFC 7628 section 3.2.3 / Kafka: success is an empty server message.
            (State::SentToken, Some([])) => {
                self.state = State::Done;
                Ok(Step::Done)
            }
            // RFC 7628 section 3.2.2: a failure comes as a JSON error
            // challenge, to which the client MUST answer with a single kvsep
            // (0x01); the server then fails the exchange. Keep the JSON for
            // the error the connection reports.
            (State::SentToken, Some(challenge)) => {
                self.error_challenge = Some(String::from_utf8_lossy(challenge).into_owned());
                self.state = State::AnsweredErrorChallenge;
                Ok(Step::Send(vec![KVSEP]))
            }
            (State::Initial, Some(_)) => Err(SaslError::UnexpectedMessage(
                "OAUTHBEARER: server message before the client's",
            )),
            (State::AwaitingToken, _) => Err(SaslError::UnexpectedMessage(
                "OAUTHBEARER: waiting for the application's token",
            )),
            (State::SentToken, None) => Err(SaslError::UnexpectedMessage(
                "OAUTHBEARER: token sent, waiting for the server",
            )),
            (State::AnsweredErrorChallenge, _) => Err(SaslError::UnexpectedMessage(
                "OAUTHBEARER: error challenge answered, the server must fail the exchange",
            )),
            (State::Done, _) => Err(SaslError::UnexpectedMessage(
                "OAUTHBEARER: exchange complete",
            )),
            (State::Failed, _) => Err(SaslError::UnexpectedMessage("OAUTHBEARER: exchange failed")),
        }
    }

    fn provide_credential(&mut self, credential: Credential) -> Result<Step, SaslError> {
        if self.state != State::AwaitingToken {
            return Err(SaslError::UnexpectedCredential);
        }
        let Credential::OAuthBearer(token) = credential else {
            return Err(SaslError::UnexpectedCredential);
        };
        match token.initial_response() {
            Ok(msg) => {
                self.expires_at = token.expires_at;
                self.state = State::SentToken;
                Ok(Step::Send(msg))
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    fn failure_detail(&self) -> Option<String> {
        self.error_challenge
            .as_ref()
            .map(|json| format!("server error challenge: {json}"))
    }

    fn credential_expiry(&self) -> Option<Instant> {
        self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::GssapiStep;
    use super::*;

    /// A compact unsecured JWT (RFC 7519 section 6), as Kafka's test brokers accept.
    const JWT: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";

    fn start() -> Box<dyn Mechanism> {
        let mut m = OAuthBearer::new().start().unwrap();
        assert_eq!(m.name(), "OAUTHBEARER");
        assert_eq!(
            m.step(None),
            Ok(Step::NeedCredential(CredentialRequest::OAuthBearerToken))
        );
        m
    }

    fn send(m: &mut dyn Mechanism, token: OAuthBearerToken) -> Result<Vec<u8>, SaslError> {
        match m.provide_credential(Credential::OAuthBearer(token))? {
            Step::Send(b) => Ok(b),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oauthbearer_message_format() {
        assert_eq!(OAuthBearer::new().name(), "OAUTHBEARER");
        let mut m = start();
        let msg = send(m.as_mut(), OAuthBearerToken::new(JWT)).unwrap();
        assert_eq!(
            msg,
            format!("n,,\x01auth=Bearer {JWT}\x01\x01").into_bytes()
        );
        assert_eq!(m.step(Some(b"")), Ok(Step::Done));
        assert_eq!(m.failure_detail(), None);
        assert!(matches!(
            m.step(Some(b"")),
            Err(SaslError::UnexpectedMessage(_))
        ));
    }

    #[test]
    fn oauthbearer_extensions_sorted_by_key() {
        let token = OAuthBearerToken::new("abc-._~+/xyz==")
            .with_extension("traceId", "t 1\tx")
            .with_extension("logicalCluster", "lkc-123")
            .with_extension("Zeta", "z\r\n");
        let msg = send(start().as_mut(), token).unwrap();
        assert_eq!(
            msg,
            b"n,,\x01auth=Bearer abc-._~+/xyz==\x01Zeta=z\r\n\x01logicalCluster=lkc-123\x01traceId=t 1\tx\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_bad_tokens_rejected() {
        for bad in [
            "",
            "has space",
            "=abc",
            "a,b",
            "abc=def",
            "tok\x01en",
            "tök",
        ] {
            let mut m = start();
            let err = send(m.as_mut(), OAuthBearerToken::new(bad)).unwrap_err();
            assert!(
                matches!(err, SaslError::InvalidCredential(_)),
                "{bad:?}: {err:?}"
            );
            if !bad.is_empty() {
                assert!(
                    !err.to_string().contains(bad),
                    "error echoes the token: {err}"
                );
            }
            // The exchange is over.
            assert!(m.step(Some(b"")).is_err());
        }
        for good in ["a", "a=", "a==", "A-Z.a_z~0+9/"] {
            assert!(
                send(start().as_mut(), OAuthBearerToken::new(good)).is_ok(),
                "{good:?}"
            );
        }
    }

    #[test]
    fn oauthbearer_bad_extensions_rejected() {
        let cases = [
            ("auth", "x"),         // reserved
            ("AUTH", "x"),         // reserved, any case
            ("trace_id", "x"),     // not ALPHA
            ("trace1", "x"),       // not ALPHA
            ("", "x"),             // empty key
            ("traceId", ""),       // empty value (Kafka's parser needs 1+)
            ("traceId", "a\x01b"), // the separator itself
            ("traceId", "a\x00b"),
            ("traceId", "caf\u{e9}"), // not ASCII
            ("traceId", "a\x7fb"),
        ];
        for (key, value) in cases {
            let token = OAuthBearerToken::new(JWT).with_extension(key, value);
            let err = send(start().as_mut(), token).unwrap_err();
            assert!(
                matches!(err, SaslError::InvalidCredential(_)),
                "{key:?}={value:?}: {err:?}"
            );
        }
    }

    #[test]
    fn oauthbearer_error_challenge_answered_with_kvsep() {
        let json = r#"{"status":"invalid_token","scope":"","openid-configuration":""}"#;
        let mut m = start();
        send(m.as_mut(), OAuthBearerToken::new(JWT)).unwrap();
        assert_eq!(m.step(Some(json.as_bytes())), Ok(Step::Send(vec![0x01])));
        assert_eq!(
            m.failure_detail(),
            Some(format!("server error challenge: {json}"))
        );
        // The broker must now fail the exchange; anything else is a violation.
        assert!(matches!(
            m.step(Some(b"")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        assert!(matches!(
            m.step(Some(b"{}")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        assert!(m.failure_detail().unwrap().contains("invalid_token"));
    }

    #[test]
    fn oauthbearer_credential_expiry_and_order() {
        let expiry = Instant::now() + Duration::from_secs(60);
        let mut m = OAuthBearer::new().start().unwrap();
        // A token before it was asked for.
        assert_eq!(
            m.provide_credential(Credential::OAuthBearer(OAuthBearerToken::new(JWT))),
            Err(SaslError::UnexpectedCredential)
        );
        assert!(matches!(
            m.step(Some(b"x")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        assert!(matches!(m.step(None), Ok(Step::NeedCredential(_))));
        assert!(matches!(m.step(None), Err(SaslError::UnexpectedMessage(_))));
        // The wrong kind of credential.
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Done)),
            Err(SaslError::UnexpectedCredential)
        );
        assert_eq!(m.credential_expiry(), None);
        send(m.as_mut(), OAuthBearerToken::new(JWT).with_expiry(expiry)).unwrap();
        assert_eq!(m.credential_expiry(), Some(expiry));
        // Only one token per exchange.
        assert_eq!(
            m.provide_credential(Credential::OAuthBearer(OAuthBearerToken::new(JWT))),
            Err(SaslError::UnexpectedCredential)
        );
        assert!(matches!(m.step(None), Err(SaslError::UnexpectedMessage(_))));
        assert_eq!(m.step(Some(b"")), Ok(Step::Done));
        assert_eq!(m.credential_expiry(), Some(expiry));
    }

    #[test]
    fn oauthbearer_token_accessors_and_debug() {
        let expiry = Instant::now();
        let t = OAuthBearerToken::new(JWT)
            .with_extension("traceId", "secret-trace-value")
            .with_expiry(expiry);
        assert_eq!(t.token().expose(), JWT);
        assert_eq!(
            t.extensions().get("traceId").map(String::as_str),
            Some("secret-trace-value")
        );
        assert_eq!(t.expires_at(), Some(expiry));
        assert_eq!(t.clone(), t);
        assert_ne!(t, OAuthBearerToken::new(JWT));
        let mut m = start();
        send(m.as_mut(), t.clone()).unwrap();
        let credential = Credential::OAuthBearer(t.clone());
        for dump in [
            format!("{t:?}"),
            format!("{t:#?}"),
            format!("{credential:?}"),
            format!("{m:?}"),
            format!("{:?}", OAuthBearer::new()),
        ] {
            assert!(!dump.contains("eyJ"), "{dump}");
            assert!(!dump.contains("secret-trace-value"), "{dump}");
        }
        assert!(format!("{t:?}").contains("traceId"));
    }
}
