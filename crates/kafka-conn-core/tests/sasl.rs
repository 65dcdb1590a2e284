//! SASL through the whole connection, against the simulated broker: the
//! Kafka side (SaslHandshake v0/v1, SaslAuthenticate v0-v2, legacy raw
//! tokens, KIP-368 re-authentication) and every built-in mechanism's
//! success and failure paths.
//!
//! The broker side here is scripted: PLAIN is checked byte for byte
//! (RFC 4616), SCRAM replays the published RFC 7677 section 3 exchange, and
//! the mechanisms themselves are also tested against an independent SCRAM
//! server (rsasl) in `src/sasl/scram.rs` and against the real SASL broker
//! (tansu) in `tests/real_sasl.rs`. No broker here speaks GSSAPI, so its
//! token relay is shown only with this simulated broker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_conn_core::sasl::{
    Credential, CredentialRequest, GssapiStep, HandshakeMode, OAuthBearerToken, SaslConfig, Scram,
    ScramHash,
};
use kafka_conn_core::sim::{
    api_versions_reply, legacy_handshake_reply, Action, Pair, ReceivedRequest, SimBroker,
    DEFAULT_VERSIONS,
};
use kafka_conn_core::{
    server, ApiKey, ApiVersions, CloseReason, Config, Connection, Event, Incompatibility, Request,
    RequestError, State,
};

/// What the scripted broker's SaslAuthenticate step returns:
/// (error_code, error_message, auth_bytes, session_lifetime_ms).
type Reply = (i16, Option<&'static str>, Vec<u8>, i64);

/// The scripted server side of SaslAuthenticate.
type AuthScript = Box<dyn FnMut(usize, &[u8]) -> Reply + Send>;

/// A broker with SASL: `enabled` mechanisms, an authenticate script, and
/// tansu's rule that nothing but ApiVersions and SASL may come before
/// authentication (it closes the connection).
struct Script {
    enabled: Vec<&'static str>,
    /// Called with (step index within this authentication, client bytes).
    authenticate: AuthScript,
    /// Error code for a second SaslHandshake (re-authentication); 0 accepts.
    reauth_handshake_error: i16,
    authenticated: bool,
    handshakes: usize,
    step: usize,
    legacy: bool,
}

fn sasl_broker(script: Script) -> (SimBroker, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let script = Mutex::new(script);
    let broker = SimBroker::new(Box::new(move |r: &ReceivedRequest| {
        let mut s = script.lock().unwrap();
        if let Some(a) = api_versions_reply(r, DEFAULT_VERSIONS) {
            return vec![a];
        }
        if r.raw_token {
            // Legacy v0: a raw token in, a raw token out.
            log2.lock()
                .unwrap()
                .push(format!("raw:{}", String::from_utf8_lossy(&r.body)));
            let step = s.step;
            s.step += 1;
            let (code, _, bytes, _) = (s.authenticate)(step, &r.body);
            if code != 0 {
                return vec![Action::Close]; // legacy brokers just close
            }
            s.authenticated = true;
            // After the last token the connection is back to Kafka framing.
            return vec![
                Action::RespondRawFrame(Bytes::from(bytes)),
                Action::ExitRawTokenMode,
            ];
        }
        log2.lock()
            .unwrap()
            .push(format!("{}v{}", r.api_key, r.api_version));
        match r.api_key {
            ApiKey::SASL_HANDSHAKE => {
                let mech = kafka_conn_core::wire::Reader::new(&r.body)
                    .string("m")
                    .unwrap()
                    .to_owned();
                s.handshakes += 1;
                s.step = 0;
                let mut b = BytesMut::new();
                let code = if s.handshakes > 1 && s.reauth_handshake_error != 0 {
                    s.reauth_handshake_error
                } else if s.enabled.contains(&mech.as_str()) {
                    0
                } else {
                    33
                };
                server::handshake_response(&mut b, code, &s.enabled);
                let mut actions = vec![Action::Respond(b.freeze())];
                if code == 0 && r.api_version == 0 {
                    s.legacy = true;
                    actions.push(Action::EnterRawTokenMode);
                }
                actions
            }
            ApiKey::SASL_AUTHENTICATE => {
                let bytes = server::authenticate_request(&r.body, r.api_version).unwrap();
                let step = s.step;
                s.step += 1;
                let (code, msg, out, lifetime) = (s.authenticate)(step, &bytes);
                if code == 0 {
                    s.authenticated = true;
                }
                let mut b = BytesMut::new();
                server::authenticate_response(&mut b, r.api_version, code, msg, &out, lifetime);
                vec![Action::Respond(b.freeze())]
            }
            _ if !s.authenticated => vec![Action::Close],
            _ => vec![Action::Respond(r.body.clone())],
        }
    }));
    (broker, log)
}

fn script(
    enabled: &[&'static str],
    authenticate: impl FnMut(usize, &[u8]) -> Reply + Send + 'static,
) -> Script {
    Script {
        enabled: enabled.to_vec(),
        authenticate: Box::new(authenticate),
        reauth_handshake_error: 0,
        authenticated: false,
        handshakes: 0,
        step: 0,
        legacy: false,
    }
}

/// PLAIN checked as RFC 4616 says: `authzid NUL authcid NUL passwd`.
fn plain_server(lifetime_ms: i64) -> impl FnMut(usize, &[u8]) -> Reply + Send {
    move |_, msg| {
        if msg == b"\0alice\0secret" {
            (0, None, vec![], lifetime_ms)
        } else {
            (
                58,
                Some("Authentication failed: Invalid username or password"),
                vec![],
                0,
            )
        }
    }
}

fn closed_reason(events: &[Event]) -> CloseReason {
    match events.last() {
        Some(Event::Closed(r)) => r.clone(),
        other => panic!("expected Closed last: {other:?} in {events:?}"),
    }
}

fn plain_config() -> Config {
    Config::new().with_sasl(SaslConfig::plain("alice", "secret"))
}

#[test]
fn plain_authenticates_and_held_requests_go_after_authentication() {
    let (broker, log) = sasl_broker(script(&["PLAIN", "SCRAM-SHA-512"], plain_server(60_000)));
    let mut p = Pair::new(plain_config(), broker);
    // Sent before authentication: held, never sent before it (tansu would close).
    let early = p
        .conn
        .send_request(Request::new(ApiKey::METADATA, 1, vec![7]), p.now)
        .unwrap();
    p.drive();
    assert_eq!(p.conn.state(), State::Ready, "{:?}", p.events);
    match &p.events[0] {
        Event::Ready { sasl: Some(s), .. } => {
            assert_eq!(s.mechanism, "PLAIN");
            assert_eq!(s.session_lifetime, Some(Duration::from_secs(60)));
            let after = s.reauthenticate_after.unwrap();
            assert!(
                after >= Duration::from_secs(51) && after <= Duration::from_secs(57),
                "{after:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::Response(r) if r.correlation_id == early)));
    assert_eq!(
        *log.lock().unwrap(),
        vec!["SaslHandshakev1", "SaslAuthenticatev2", "Metadatav1"]
    );
}

#[test]
fn wrong_password_surfaces_the_brokers_message() {
    let (broker, _) = sasl_broker(script(&["PLAIN"], plain_server(0)));
    let mut p = Pair::new(
        Config::new().with_sasl(SaslConfig::plain("alice", "wrong")),
        broker,
    );
    let id = p
        .conn
        .send_request(Request::new(ApiKey::METADATA, 1, vec![]), p.now)
        .unwrap();
    p.drive();
    let r = closed_reason(&p.events);
    let CloseReason::AuthFailed(f) = &r else {
        panic!("{r}")
    };
    assert_eq!(f.error_code, Some(58));
    assert_eq!(
        f.message,
        "Authentication failed: Invalid username or password"
    );
    assert!(!r.is_retriable());
    assert!(r.to_string().contains("SASL_AUTHENTICATION_FAILED"), "{r}");
    assert!(
        !format!("{r:?}").contains("wrong"),
        "the password leaked: {r:?}"
    );
    // The held request is not lost silently.
    assert!(p.events.iter().any(|e| matches!(
        e,
        Event::RequestFailed { correlation_id, error: RequestError::ConnectionClosed(CloseReason::AuthFailed(_)), .. } if *correlation_id == id
    )));
}

#[test]
fn a_mechanism_the_broker_does_not_enable_names_what_it_offers() {
    let (broker, _) = sasl_broker(script(&["SCRAM-SHA-512", "OAUTHBEARER"], plain_server(0)));
    let mut p = Pair::new(plain_config(), broker);
    p.drive();
    let r = closed_reason(&p.events);
    assert_eq!(
        r,
        CloseReason::Incompatible(Incompatibility::MechanismNotEnabled {
            mechanism: "PLAIN".into(),
            offered: vec!["SCRAM-SHA-512".into(), "OAUTHBEARER".into()]
        })
    );
    assert_eq!(
        r.to_string(),
        "incompatible broker: SASL mechanism PLAIN is not enabled; the broker offers: SCRAM-SHA-512, OAUTHBEARER"
    );
}

const RFC7677_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_CLIENT_FINAL: &str =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc7677_config() -> Config {
    let scram = Scram::new(ScramHash::Sha256, "user", "pencil")
        .with_fixed_nonce_for_testing("rOprNGfwEbeRWgbNEkqO");
    Config::new().with_sasl(SaslConfig::new(Arc::new(scram)))
}

/// The RFC 7677 section 3 exchange, with a chosen server-final message.
fn rfc7677_server(
    server_final: &'static str,
    final_code: i16,
) -> impl FnMut(usize, &[u8]) -> Reply + Send {
    move |step, msg| match step {
        0 => {
            assert_eq!(msg, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
            (0, None, RFC7677_SERVER_FIRST.as_bytes().to_vec(), 0)
        }
        1 => {
            assert_eq!(std::str::from_utf8(msg).unwrap(), RFC7677_CLIENT_FINAL);
            let msg = (final_code != 0).then_some("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256");
            (final_code, msg, server_final.as_bytes().to_vec(), 60_000)
        }
        _ => panic!("no third step"),
    }
}

#[test]
fn scram_sha_256_reproduces_rfc_7677_through_the_connection() {
    let (broker, log) = sasl_broker(script(
        &["SCRAM-SHA-256"],
        rfc7677_server(RFC7677_SERVER_FINAL, 0),
    ));
    let mut p = Pair::new(rfc7677_config(), broker);
    p.drive();
    assert_eq!(p.conn.state(), State::Ready, "{:?}", p.events);
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[test]
fn scram_bad_server_signature_and_server_error() {
    let forged = "v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    let (broker, _) = sasl_broker(script(&["SCRAM-SHA-256"], rfc7677_server(forged, 0)));
    let mut p = Pair::new(rfc7677_config(), broker);
    p.drive();
    let r = closed_reason(&p.events);
    assert!(r.to_string().contains("signature does not verify"), "{r}");

    let (broker, _) = sasl_broker(script(
        &["SCRAM-SHA-256"],
        rfc7677_server("e=invalid-proof", 58),
    ));
    let mut p = Pair::new(rfc7677_config(), broker);
    p.drive();
    let CloseReason::AuthFailed(f) = closed_reason(&p.events) else {
        panic!()
    };
    assert_eq!(f.error_code, Some(58));
    assert!(f.message.contains("invalid credentials"), "{f}");
    assert!(
        f.detail
            .as_deref()
            .unwrap_or("")
            .contains("e=invalid-proof"),
        "{f}"
    );
}

#[test]
fn scram_nonce_tampering_and_low_iterations_are_refused() {
    for first in [
        "r=tampered%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1024",
    ] {
        let (broker, _) = sasl_broker(script(&["SCRAM-SHA-256"], move |_, _| {
            (0, None, first.as_bytes().to_vec(), 0)
        }));
        let mut p = Pair::new(rfc7677_config(), broker);
        p.drive();
        let r = closed_reason(&p.events);
        assert!(
            matches!(&r, CloseReason::AuthFailed(f) if f.error_code.is_none()),
            "{r}"
        );
        let text = r.to_string();
        assert!(
            text.contains("nonce") || text.contains("iterations"),
            "{text}"
        );
    }
}

fn answer_credentials(p: &mut Pair, mut answer: impl FnMut(&CredentialRequest) -> Credential) {
    for _ in 0..100 {
        p.drive();
        let req = p.events.iter().rev().find_map(|e| match e {
            Event::CredentialRequired(r) => Some(r.clone()),
            _ => None,
        });
        let pending = p
            .events
            .iter()
            .filter(|e| matches!(e, Event::CredentialRequired(_)))
            .count();
        let _ = pending;
        match req {
            Some(r) => {
                p.events
                    .retain(|e| !matches!(e, Event::CredentialRequired(_)));
                p.conn.provide_credential(answer(&r), p.now).unwrap();
            }
            None => return,
        }
    }
}

#[test]
fn oauthbearer_token_comes_from_the_application() {
    let (broker, _) = sasl_broker(script(&["OAUTHBEARER"], |_, msg| {
        let expected = b"n,,\x01auth=Bearer abc.def.ghi\x01traceId=42\x01\x01";
        if msg == expected {
            (0, None, vec![], 3_600_000)
        } else {
            (58, Some("bad"), vec![], 0)
        }
    }));
    let mut p = Pair::new(Config::new().with_sasl(SaslConfig::oauthbearer()), broker);
    p.drive();
    assert!(matches!(
        p.events.as_slice(),
        [Event::CredentialRequired(
            CredentialRequest::OAuthBearerToken
        )]
    ));
    // While the application fetches a token nothing is on the wire.
    assert_eq!(p.broker.received.len(), 1);
    let expiry = p.now + Duration::from_secs(600);
    answer_credentials(&mut p, |_| {
        Credential::OAuthBearer(
            OAuthBearerToken::new("abc.def.ghi")
                .with_extension("traceId", "42")
                .with_expiry(expiry),
        )
    });
    assert_eq!(p.conn.state(), State::Ready, "{:?}", p.events);
    // The token's own expiry (600 s) bounds re-authentication, not the 1 h session.
    let s = p.conn.sasl_session().unwrap();
    assert!(
        s.reauthenticate_after.unwrap() <= Duration::from_secs(570),
        "{s:?}"
    );
}

#[test]
fn oauthbearer_failure_answers_the_json_challenge_and_surfaces_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let (broker, _) = sasl_broker(script(&["OAUTHBEARER"], move |step, msg| {
        seen2.lock().unwrap().push(msg.to_vec());
        match step {
            0 => (0, None, br#"{"status":"invalid_token"}"#.to_vec(), 0),
            _ => (58, Some("Authentication failed: invalid_token"), vec![], 0),
        }
    }));
    let mut p = Pair::new(Config::new().with_sasl(SaslConfig::oauthbearer()), broker);
    answer_credentials(&mut p, |_| {
        Credential::OAuthBearer(OAuthBearerToken::new("expired"))
    });
    let CloseReason::AuthFailed(f) = closed_reason(&p.events) else {
        panic!("{:?}", p.events)
    };
    assert_eq!(
        seen.lock().unwrap()[1],
        vec![0x01],
        "RFC 7628 3.2.3: answer with a single %x01"
    );
    assert!(
        f.detail.as_deref().unwrap().contains("invalid_token"),
        "{f}"
    );
    assert!(
        !format!("{:?}", p.events).contains("expired\""),
        "token leaked"
    );
}

/// Answers the scripted GSSAPI exchanges below as a Kerberos library
/// would: the AP-REQ, an empty token after the AP-REP, `reply` with the
/// wrapped security-layer reply to the offer (`GssapiStep::Send` or
/// `SendLast`), `Done` after that; each server token is noted in `seen`.
fn kerberos_answers(
    reply: fn(Vec<u8>) -> GssapiStep,
    seen: &mut Vec<Option<Bytes>>,
) -> impl FnMut(&CredentialRequest) -> Credential + '_ {
    move |req| {
        let CredentialRequest::GssapiToken { server_token } = req else {
            panic!("{req:?}")
        };
        seen.push(server_token.clone());
        Credential::Gssapi(match server_token.as_deref() {
            None => GssapiStep::Send(b"krb-ap-req".to_vec()),
            Some(b"krb-ap-rep") => GssapiStep::Send(vec![]),
            Some(b"sec-layer") => reply(b"wrapped-reply".to_vec()),
            Some(_) => GssapiStep::Done,
        })
    }
}

#[test]
fn gssapi_tokens_are_relayed_through_credential_events() {
    let (broker, _) = sasl_broker(script(&["GSSAPI"], |step, msg| match step {
        0 => {
            assert_eq!(msg, b"krb-ap-req");
            (0, None, b"krb-ap-rep".to_vec(), 0)
        }
        1 => {
            assert_eq!(msg, b"");
            (0, None, b"sec-layer".to_vec(), 0)
        }
        2 => {
            assert_eq!(msg, b"wrapped-reply");
            (0, None, vec![], 0)
        }
        _ => panic!("too many steps"),
    }));
    let mut p = Pair::new(Config::new().with_sasl(SaslConfig::gssapi()), broker);
    let mut seen = Vec::new();
    answer_credentials(&mut p, kerberos_answers(GssapiStep::Send, &mut seen));
    assert_eq!(p.conn.state(), State::Ready, "{:?}", p.events);
    assert_eq!(seen.len(), 4);
}

/// GSSAPI through SaslAuthenticate with the last token marked
/// (`GssapiStep::SendLast`): the broker's answer to it ends the exchange
/// without another request to the application, and an error in that
/// answer still fails the authentication.
#[test]
fn gssapi_last_token_over_sasl_authenticate_ends_with_the_brokers_answer() {
    for (code, ready) in [(0, true), (58, false)] {
        let (broker, _) = sasl_broker(script(&["GSSAPI"], move |step, msg| match step {
            0 => (0, None, b"krb-ap-rep".to_vec(), 0),
            1 => (0, None, b"sec-layer".to_vec(), 0),
            2 => {
                assert_eq!(msg, b"wrapped-reply");
                // Kafka answers the last SaslAuthenticate with empty bytes.
                (code, (code != 0).then_some("not you"), vec![], 0)
            }
            _ => panic!("too many steps"),
        }));
        let mut p = Pair::new(Config::new().with_sasl(SaslConfig::gssapi()), broker);
        let mut seen = Vec::new();
        answer_credentials(&mut p, kerberos_answers(GssapiStep::SendLast, &mut seen));
        assert_eq!(seen.len(), 3, "not asked again after the last token");
        if ready {
            assert_eq!(p.conn.state(), State::Ready, "{:?}", p.events);
        } else {
            let r = closed_reason(&p.events);
            assert!(
                matches!(&r, CloseReason::AuthFailed(f) if f.error_code == Some(58)),
                "{r}"
            );
        }
    }
}

/// A Kafka 0.10.0-like broker for GSSAPI: ApiVersions without
/// SaslAuthenticate, SaslHandshake v0, then raw tokens answered as Apache
/// Kafka's `SaslServerAuthenticator` answers them (a token back only when
/// its SASL server has one): AP-REQ -> AP-REP, empty -> the wrapped offer,
/// the wrapped reply -> nothing at all (the JDK's GSSAPI server returns
/// none). `final_token` makes it send an empty token there instead, as a
/// server other than Kafka's might. Logs each raw token.
fn legacy_gssapi_broker(final_token: bool) -> (SimBroker, Arc<Mutex<Vec<Vec<u8>>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let broker = SimBroker::new(Box::new(move |r: &ReceivedRequest| {
        if let Some(a) = api_versions_reply(r, &[(18, 0, 2), (17, 0, 0), (3, 0, 4)]) {
            return vec![a];
        }
        if r.raw_token {
            let mut seen = seen.lock().unwrap();
            seen.push(r.body.to_vec());
            return match seen.len() {
                1 => vec![Action::RespondRawFrame(Bytes::from_static(b"krb-ap-rep"))],
                2 => vec![Action::RespondRawFrame(Bytes::from_static(b"sec-layer"))],
                _ if final_token => vec![
                    Action::RespondRawFrame(Bytes::new()),
                    Action::ExitRawTokenMode,
                ],
                _ => vec![Action::ExitRawTokenMode],
            };
        }
        match r.api_key {
            ApiKey::SASL_HANDSHAKE => {
                assert_eq!(r.api_version, 0);
                legacy_handshake_reply(&["GSSAPI"])
            }
            _ => vec![Action::Respond(r.body.clone())],
        }
    }));
    (broker, log)
}

/// Drives `p` until the connection asks for a credential (returned) or nothing moves.
fn next_credential_request(p: &mut Pair) -> Option<CredentialRequest> {
    p.drive();
    let at = p
        .events
        .iter()
        .position(|e| matches!(e, Event::CredentialRequired(_)))?;
    match p.events.remove(at) {
        Event::CredentialRequired(r) => Some(r),
        _ => unreachable!(),
    }
}

/// The legacy flow with GSSAPI as Apache Kafka's broker runs it: no token
/// comes back after the client's security-layer reply, so the exchange
/// ends once that reply is written (as Kafka's client does), not after a
/// wait for a token that never comes. Ready comes only when the last byte
/// of the token is written, and the held request goes out after it.
#[test]
fn gssapi_under_legacy_v0_ends_once_the_last_token_is_written() {
    let (broker, log) = legacy_gssapi_broker(false);
    let mut p = Pair::new(Config::new().with_sasl(SaslConfig::gssapi()), broker);
    let id = p
        .conn
        .send_request(Request::new(ApiKey::METADATA, 1, vec![7]), p.now)
        .unwrap();
    let answers = [
        (None, GssapiStep::Send(b"krb-ap-req".to_vec())),
        (Some(&b"krb-ap-rep"[..]), GssapiStep::Send(vec![])),
    ];
    for (expected, answer) in answers {
        let Some(CredentialRequest::GssapiToken { server_token }) = next_credential_request(&mut p)
        else {
            panic!("{:?}", p.events)
        };
        assert_eq!(server_token.as_deref(), expected);
        p.conn
            .provide_credential(Credential::Gssapi(answer), p.now)
            .unwrap();
    }
    let Some(CredentialRequest::GssapiToken { server_token }) = next_credential_request(&mut p)
    else {
        panic!("{:?}", p.events)
    };
    assert_eq!(server_token.as_deref(), Some(&b"sec-layer"[..]));
    p.conn
        .provide_credential(
            Credential::Gssapi(GssapiStep::SendLast(b"wrapped-reply".to_vec())),
            p.now,
        )
        .unwrap();
    // Queued, not yet written: still authenticating, nothing else queued.
    let queued = p.conn.transmit_len();
    assert_eq!(queued, 4 + b"wrapped-reply".len());
    assert_eq!(p.conn.state(), State::Authenticating);
    p.conn.transmit_complete(queued - 1, p.now);
    assert_eq!(p.conn.state(), State::Authenticating, "one byte left");
    p.conn.transmit_complete(1, p.now);
    assert_eq!(p.conn.state(), State::Ready);
    assert!(p
        .conn
        .poll_event()
        .is_some_and(|e| matches!(e, Event::Ready { .. })));
    // The held request is queued behind it; hand the broker the token by
    // hand (the Pair did not write it), then let everything flow.
    let mut token = (b"wrapped-reply".len() as i32).to_be_bytes().to_vec();
    token.extend_from_slice(b"wrapped-reply");
    p.broker.receive(&token);
    p.drive();
    assert!(
        p.events
            .iter()
            .any(|e| matches!(e, Event::Response(r) if r.correlation_id == id && r.body == Bytes::from_static(&[7]))),
        "{:?}",
        p.events
    );
    assert_eq!(
        *log.lock().unwrap(),
        vec![b"krb-ap-req".to_vec(), vec![], b"wrapped-reply".to_vec()]
    );
    assert!(!p.conn.is_closed());
}

/// The other way to end a relayed exchange, for a server that does send a
/// final token after the reply (not Apache Kafka under SaslHandshake v0;
/// a GSSAPI library wired the old way, answering `Send` then `Done`): the
/// connection waits for that token and completes on `Done`.
#[test]
fn gssapi_under_legacy_v0_with_a_server_that_sends_a_final_token() {
    let (broker, log) = legacy_gssapi_broker(true);
    let mut p = Pair::new(Config::new().with_sasl(SaslConfig::gssapi()), broker);
    let mut seen = Vec::new();
    answer_credentials(&mut p, kerberos_answers(GssapiStep::Send, &mut seen));
    assert_eq!(p.conn.state(), State::Ready, "{:?}", p.events);
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].as_deref(), Some(&b""[..]));
    assert_eq!(log.lock().unwrap().len(), 3);
}

/// Without the last token marked, Apache Kafka's legacy GSSAPI flow (no
/// final token) waits until the handshake deadline: the behaviour
/// `GssapiStep::SendLast` exists for, shown so that the docs stay true.
#[test]
fn gssapi_under_legacy_v0_unmarked_last_token_waits_for_the_deadline() {
    let (broker, _) = legacy_gssapi_broker(false);
    let config = Config::new()
        .with_sasl(SaslConfig::gssapi())
        .with_handshake_timeout(Duration::from_secs(5));
    let mut p = Pair::new(config, broker);
    let mut seen = Vec::new();
    answer_credentials(&mut p, kerberos_answers(GssapiStep::Send, &mut seen));
    assert_eq!(seen.len(), 3, "waiting for a fourth token");
    assert_eq!(p.conn.state(), State::Authenticating);
    // Nothing comes for a second: the empty receive buffer goes back (the
    // default release), the exchange still waits.
    assert!(p.advance_to_timeout());
    assert_eq!(p.conn.receive_buffer_capacity(), 0);
    assert_eq!(p.conn.state(), State::Authenticating);
    // Then the handshake deadline closes it.
    assert!(p.advance_to_timeout());
    let r = closed_reason(&p.events);
    assert!(matches!(r, CloseReason::Timeout(_)), "{r}");
}

#[test]
fn legacy_v0_handshake_uses_raw_tokens() {
    for config in [
        plain_config().with_sasl(
            SaslConfig::plain("alice", "secret").with_handshake(HandshakeMode::LegacyV0),
        ),
        // A version hint without SaslAuthenticate (a 0.10.0 broker) chooses legacy by itself.
        Config::new()
            .with_version_hint(
                ApiVersions::from_ranges([(3, 0, 1), (17, 0, 0), (18, 0, 0)]).unwrap(),
            )
            .with_sasl(SaslConfig::plain("alice", "secret")),
    ] {
        let (broker, log) = sasl_broker(script(&["PLAIN"], plain_server(0)));
        let mut p = Pair::new(config, broker);
        let id = p
            .conn
            .send_request(Request::new(ApiKey::METADATA, 1, vec![1]), p.now)
            .unwrap();
        p.drive();
        assert_eq!(p.conn.state(), State::Ready, "{:?}", p.events);
        let log = log.lock().unwrap().clone();
        assert!(log.contains(&"SaslHandshakev0".to_owned()), "{log:?}");
        assert!(log.contains(&"raw:\0alice\0secret".to_owned()), "{log:?}");
        assert!(p
            .events
            .iter()
            .any(|e| matches!(e, Event::Response(r) if r.correlation_id == id)));
    }
    // Wrong password in legacy mode: the broker just closes.
    let (broker, _) = sasl_broker(script(&["PLAIN"], plain_server(0)));
    let mut p = Pair::new(
        Config::new()
            .with_sasl(SaslConfig::plain("alice", "nope").with_handshake(HandshakeMode::LegacyV0)),
        broker,
    );
    p.drive();
    let r = closed_reason(&p.events);
    assert!(r.to_string().contains("while authenticating"), "{r}");
}

/// Re-authentication with requests in flight: none lost, none reordered,
/// new requests held only while the exchange is on the wire.
#[test]
fn reauthentication_keeps_requests_flowing_in_order() {
    let (broker, log) = sasl_broker(script(&["PLAIN"], plain_server(10_000)));
    let mut p = Pair::new(plain_config(), broker);
    p.drive();
    assert_eq!(p.conn.state(), State::Ready);
    let mut sent = Vec::new();
    // 30 s of traffic: a request every 100 ms, answered in the same drive.
    for i in 0..300u32 {
        let id = p
            .conn
            .send_request(
                Request::new(ApiKey::METADATA, 1, i.to_be_bytes().to_vec()),
                p.now,
            )
            .unwrap();
        sent.push((id, i));
        if i % 7 == 0 {
            // Sometimes leave requests in flight across the timer.
            p.now += Duration::from_millis(100);
            p.conn.handle_timeout(p.now);
        } else {
            p.advance(Duration::from_millis(100));
        }
    }
    p.drive();
    let got: Vec<_> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Response(r) => Some((
                r.correlation_id,
                u32::from_be_bytes(r.body[..4].try_into().unwrap()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(got, sent, "every response, in order");
    let reauths = p
        .events
        .iter()
        .filter(|e| matches!(e, Event::Reauthenticated(_)))
        .count();
    assert!(
        reauths >= 3,
        "re-authenticated {reauths} times in 30 s of a 10 s session"
    );
    assert_eq!(p.conn.stats().reauthentications as usize, reauths);
    let handshakes = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("SaslHandshake"))
        .count();
    assert_eq!(handshakes, reauths + 1);
    assert!(!p.conn.is_closed());
}

#[test]
fn a_refused_reauthentication_closes_with_a_retriable_reason_and_loses_nothing() {
    // tansu's behaviour: a second SaslHandshake gets UNSUPPORTED_SASL_MECHANISM.
    let mut s = script(&["PLAIN"], plain_server(60_000));
    s.reauth_handshake_error = 33;
    let (broker, _) = sasl_broker(s);
    let mut p = Pair::new(plain_config(), broker);
    p.drive();
    let t0 = p.now;
    let mut ids = Vec::new();
    while !p.conn.is_closed() && p.now < t0 + Duration::from_secs(120) {
        if let Ok(id) = p
            .conn
            .send_request(Request::new(ApiKey::METADATA, 1, vec![1]), p.now)
        {
            ids.push(id);
        }
        p.now += Duration::from_millis(500);
        p.conn.handle_timeout(p.now);
        p.drive();
    }
    let r = closed_reason(&p.events);
    assert!(
        matches!(&r, CloseReason::AuthFailed(f) if f.reauthentication && f.error_code == Some(33)),
        "{r}"
    );
    assert!(r.is_retriable(), "a new connection logs in afresh");
    assert!(p.now - t0 >= Duration::from_secs(51) && p.now - t0 <= Duration::from_secs(58));
    // Every request got exactly one outcome.
    for id in ids {
        let n = p
            .events
            .iter()
            .filter(|e| match e {
                Event::Response(r) => r.correlation_id == id,
                Event::RequestFailed { correlation_id, .. } => *correlation_id == id,
                _ => false,
            })
            .count();
        assert_eq!(n, 1, "request {id}");
    }
}

#[test]
fn a_session_that_expires_before_reauthentication_closes() {
    let (broker, _) = sasl_broker(script(&["OAUTHBEARER"], |_, _| (0, None, vec![], 20_000)));
    let mut p = Pair::new(Config::new().with_sasl(SaslConfig::oauthbearer()), broker);
    answer_credentials(&mut p, |_| {
        Credential::OAuthBearer(OAuthBearerToken::new("t1"))
    });
    assert_eq!(p.conn.state(), State::Ready);
    p.events.clear();
    // At 85-95% a new token is asked for; the application never answers.
    let start = Instant::now();
    let _ = start;
    while p.advance_to_timeout() && !p.conn.is_closed() {}
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::CredentialRequired(_))));
    assert!(matches!(
        closed_reason(&p.events),
        CloseReason::SessionExpired(_)
    ));
}

#[test]
fn a_credential_the_application_cannot_provide_fails_the_authentication() {
    let (broker, _) = sasl_broker(script(&["OAUTHBEARER"], |_, _| (0, None, vec![], 0)));
    let mut p = Pair::new(Config::new().with_sasl(SaslConfig::oauthbearer()), broker);
    p.drive();
    assert!(matches!(
        p.events.as_slice(),
        [Event::CredentialRequired(_)]
    ));
    p.conn
        .credential_failed("token endpoint returned 503", p.now)
        .unwrap();
    p.drive();
    let r = closed_reason(&p.events);
    assert!(
        matches!(&r, CloseReason::AuthFailed(f) if f.message.contains("503") && !f.reauthentication),
        "{r}"
    );
    // Nothing pending any more.
    assert!(p.conn.credential_failed("again", p.now).is_err());
    assert!(p
        .conn
        .provide_credential(Credential::OAuthBearer(OAuthBearerToken::new("t")), p.now)
        .is_err());
}

/// Found by the connection_ops fuzz target: with `max_in_flight` reached by
/// user requests, a due KIP-368 re-authentication still put its
/// SaslHandshake on the wire (2 in flight with a maximum of 1). Now it waits
/// for a free slot (holding new requests so that one frees), and the bound
/// holds throughout.
#[test]
fn reauthentication_respects_max_in_flight() {
    let (broker, _log) = sasl_broker(script(&["PLAIN"], plain_server(10_000)));
    let mut p = Pair::new(plain_config().with_max_in_flight(Some(1)), broker);
    p.drive();
    assert_eq!(p.conn.state(), State::Ready);
    let mut sent = Vec::new();
    for i in 0..300u32 {
        let id = p
            .conn
            .send_request(
                Request::new(ApiKey::METADATA, 1, i.to_be_bytes().to_vec()),
                p.now,
            )
            .unwrap();
        sent.push(id);
        // Always let the timer fire with the request still in flight.
        p.now += Duration::from_millis(100);
        p.conn.handle_timeout(p.now);
        assert!(p.conn.in_flight() <= 1, "{} in flight", p.conn.in_flight());
        if let Some(t) = p.conn.poll_timeout() {
            assert!(t > p.now);
        }
        p.drive();
        assert!(p.conn.in_flight() <= 1, "{} in flight", p.conn.in_flight());
    }
    p.drive();
    let got: Vec<_> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Response(r) => Some(r.correlation_id),
            _ => None,
        })
        .collect();
    assert_eq!(got, sent, "every response, in order");
    let reauths = p
        .events
        .iter()
        .filter(|e| matches!(e, Event::Reauthenticated(_)))
        .count();
    assert!(
        reauths >= 2,
        "re-authenticated {reauths} times in 30 s of a 10 s session"
    );
    assert!(!p.conn.is_closed());
}

/// A user-defined mechanism: the factory's name (what `Config` checks and
/// the application configured) and the instance's own name (what
/// SaslHandshake carries) are set apart to test both guards.
#[derive(Debug)]
struct Named {
    factory_name: String,
    instance_name: String,
}

#[derive(Debug)]
struct NamedMechanism(String);

impl kafka_conn_core::sasl::Mechanism for NamedMechanism {
    fn name(&self) -> &str {
        &self.0
    }

    fn step(
        &mut self,
        _server: Option<&[u8]>,
    ) -> Result<kafka_conn_core::sasl::Step, kafka_conn_core::sasl::SaslError> {
        Ok(kafka_conn_core::sasl::Step::Send(b"hello".to_vec()))
    }
}

impl kafka_conn_core::sasl::MechanismFactory for Named {
    fn name(&self) -> &str {
        &self.factory_name
    }

    fn start(
        &self,
    ) -> Result<Box<dyn kafka_conn_core::sasl::Mechanism>, kafka_conn_core::sasl::SaslError> {
        Ok(Box::new(NamedMechanism(self.instance_name.clone())))
    }
}

#[test]
fn names_longer_than_a_kafka_string_are_config_errors_not_encoder_panics() {
    // SaslHandshake carries the mechanism name and every request header the
    // client id as Kafka strings (i16 length); both used to reach the
    // encoder, which panicked on the mechanism name.
    let long = "M".repeat(40_000);
    let sasl = SaslConfig::new(Arc::new(Named {
        factory_name: long.clone(),
        instance_name: long.clone(),
    }));
    let config = Config::new().with_sasl(sasl);
    let expected = kafka_conn_core::ConfigError::SaslMechanismTooLong(40_000);
    assert_eq!(config.validate(), Err(expected.clone()));
    let err = Connection::new(config, Instant::now()).unwrap_err();
    assert_eq!(err, expected);
    assert!(err.to_string().contains("32767"), "{err}");
    // The longest allowed name is accepted.
    let sasl = SaslConfig::new(Arc::new(Named {
        factory_name: "M".repeat(32_767),
        instance_name: "M".repeat(32_767),
    }));
    assert_eq!(Config::new().with_sasl(sasl).validate(), Ok(()));

    let config = Config::new().with_client_id(Some("c".repeat(32_768)));
    assert_eq!(
        Connection::new(config, Instant::now()).unwrap_err(),
        kafka_conn_core::ConfigError::ClientIdTooLong(32_768)
    );
}

#[test]
fn a_mechanism_instance_naming_itself_too_long_fails_authentication_cleanly() {
    // The configured (factory) name passes the check; the instance the
    // factory makes names itself with more than a Kafka string holds. The
    // connection refuses it when authentication starts instead of panicking
    // while encoding SaslHandshake.
    let sasl = SaslConfig::new(Arc::new(Named {
        factory_name: "CUSTOM".into(),
        instance_name: "M".repeat(40_000),
    }));
    let config = Config::new()
        .with_sasl(sasl)
        .with_version_hint(ApiVersions::from_ranges(DEFAULT_VERSIONS.iter().copied()).unwrap());
    let mut p = Pair::new(config, SimBroker::echo());
    p.drive();
    match closed_reason(&p.events) {
        CloseReason::AuthFailed(f) => {
            assert_eq!(f.mechanism, "CUSTOM");
            assert!(f.message.contains("32767"), "{}", f.message);
        }
        other => panic!("{other}"),
    }
    assert_eq!(p.conn.stats().requests_sent, 0, "nothing was encoded");
}
