//! User-defined SASL mechanisms, written here with the public API only
//! (`kafka_conn_core::sasl::{Mechanism, MechanismFactory}` and
//! `ConnectConfig::with_credential_provider`), as an application would:
//! PLAIN against the real SASL broker, and a challenge-response mechanism
//! that asks the application for each answer through
//! `CredentialRequest::Custom`, against the core's simulated broker (no
//! real broker speaks a mechanism of ours).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_conn_driver::core::sasl::{
    Credential, CredentialRequest, Mechanism, MechanismFactory, Plain, SaslConfig, SaslError, Step,
};
use kafka_conn_driver::core::server;
use kafka_conn_driver::core::sim::{api_versions_reply, Action, SimBroker, DEFAULT_VERSIONS};
use kafka_conn_driver::core::{ApiKey, CloseReason, Config};
use kafka_conn_driver::{
    connect, connect_direct, CallbackError, ConnectConfig, ConnectError, CredentialContext, Runtime,
};

use crate::fake::Fake;
use crate::kafka::metadata_all;
use crate::tests::LIMIT;
use crate::{connected, env, refused, sleep};

/// PLAIN (RFC 4616) as an application would write it.
struct MyPlain {
    username: String,
    password: String,
}

impl fmt::Debug for MyPlain {
    // Never print the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MyPlain")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl MechanismFactory for MyPlain {
    fn name(&self) -> &str {
        "PLAIN"
    }

    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError> {
        // authzid (empty) NUL authcid NUL passwd
        let message = format!("\0{}\0{}", self.username, self.password).into_bytes();
        Ok(Box::new(MyPlainExchange {
            message: Some(message),
        }))
    }
}

/// One exchange: the message, then the server's (empty) success.
struct MyPlainExchange {
    message: Option<Vec<u8>>,
}

impl fmt::Debug for MyPlainExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MyPlainExchange")
            .field("sent", &self.message.is_none())
            .finish()
    }
}

impl Mechanism for MyPlainExchange {
    fn name(&self) -> &str {
        "PLAIN"
    }

    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError> {
        match (server_message, self.message.take()) {
            (None, Some(message)) => Ok(Step::Send(message)),
            (Some(_), None) => Ok(Step::Done),
            _ => Err(SaslError::UnexpectedMessage("PLAIN, out of order")),
        }
    }
}

fn my_plain(username: &str, password: &str) -> ConnectConfig {
    let plain = MyPlain {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    ConnectConfig::new(Config::new().with_sasl(SaslConfig::new(Arc::new(plain))))
}

/// A user-defined PLAIN authenticates against the real SASL broker (tansu
/// with authentication, `KAFKA_SASL_PLAIN_BOOTSTRAP`), by `connect` and by
/// `connect_direct`; a wrong password is refused with the broker's error.
/// First, without a broker: its message is the built-in PLAIN's, byte for
/// byte.
pub async fn user_defined_plain_authenticates_against_the_sasl_broker<R: Runtime>(rt: R) {
    let mut ours = MyPlain {
        username: "alice".into(),
        password: "alice-secret".into(),
    }
    .start()
    .unwrap();
    let mut builtin = Plain::new("alice", "alice-secret").start().unwrap();
    assert_eq!(ours.step(None).unwrap(), builtin.step(None).unwrap());
    assert!(!format!("{ours:?}").contains("alice-secret"));

    let (Some(addr), Some(user), Some(password)) = (
        env::sasl_var("KAFKA_SASL_PLAIN_BOOTSTRAP"),
        env::sasl_var("KAFKA_SASL_USERNAME"),
        env::sasl_var("KAFKA_SASL_PASSWORD"),
    ) else {
        return;
    };
    let client = connected(
        &rt,
        &addr,
        LIMIT,
        connect(rt.clone(), &addr, my_plain(&user, &password)),
    )
    .await;
    assert_eq!(
        client.sasl_session().expect("authenticated").mechanism,
        "PLAIN"
    );
    client
        .send(metadata_all())
        .await
        .unwrap_or_else(|e| panic!("a request after our PLAIN: {e}"));
    client.close();

    let connecting = connect_direct(rt.clone(), &addr, my_plain(&user, &password));
    let mut direct = connected(&rt, &addr, LIMIT, connecting).await;
    direct.request(metadata_all()).await.unwrap();

    let e = refused(
        &rt,
        &addr,
        LIMIT,
        connect(rt.clone(), &addr, my_plain(&user, "wrong-password")),
    )
    .await;
    let Some(CloseReason::AuthFailed(f)) = e.close_reason() else {
        panic!("{e}")
    };
    assert_eq!(
        (f.mechanism.as_str(), f.error_code),
        ("PLAIN", Some(58)),
        "{e}"
    );
    assert!(
        !format!("{e:?}").contains("wrong-password"),
        "password leaked: {e:?}"
    );
}

/// The name of the challenge-response mechanism below.
const CHALLENGE: &str = "X-KAFKA-CONN-CHALLENGE";

/// A mechanism that cannot answer by itself: the client says hello, the
/// server sends a challenge, and the application answers it (through
/// [`CredentialRequest::Custom`]); then the server says yes or no.
#[derive(Debug)]
struct ChallengeResponse;

impl MechanismFactory for ChallengeResponse {
    fn name(&self) -> &str {
        CHALLENGE
    }

    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError> {
        Ok(Box::new(ChallengeExchange::Start))
    }
}

#[derive(Debug)]
enum ChallengeExchange {
    Start,
    SaidHello,
    Asked,
    Answered,
    Done,
}

impl Mechanism for ChallengeExchange {
    fn name(&self) -> &str {
        CHALLENGE
    }

    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError> {
        match (&*self, server_message) {
            (ChallengeExchange::Start, None) => {
                *self = ChallengeExchange::SaidHello;
                Ok(Step::Send(b"hello".to_vec()))
            }
            (ChallengeExchange::SaidHello, Some(challenge)) => {
                *self = ChallengeExchange::Asked;
                Ok(Step::NeedCredential(CredentialRequest::Custom {
                    mechanism: CHALLENGE.to_owned(),
                    data: Bytes::copy_from_slice(challenge),
                }))
            }
            (ChallengeExchange::Answered, Some(_)) => {
                *self = ChallengeExchange::Done;
                Ok(Step::Done)
            }
            _ => Err(SaslError::UnexpectedMessage(
                "challenge-response, out of order",
            )),
        }
    }

    fn provide_credential(&mut self, credential: Credential) -> Result<Step, SaslError> {
        match (&*self, credential) {
            (ChallengeExchange::Asked, Credential::Custom(answer)) => {
                *self = ChallengeExchange::Answered;
                Ok(Step::Send(answer.to_vec()))
            }
            _ => Err(SaslError::UnexpectedCredential),
        }
    }
}

/// The application's answer to a challenge, which the server checks.
fn answer_to(challenge: &[u8]) -> Vec<u8> {
    let mut answer = challenge.to_vec();
    answer.reverse();
    answer
}

/// What the simulated broker saw: the challenges it sent and how many
/// answers were right.
#[derive(Debug, Default)]
struct Verdicts {
    challenges: u32,
    accepted: u32,
}

/// The core's simulated broker behind a real socket, speaking
/// [`CHALLENGE`] with 2 s sessions (KIP-368), so a re-authentication comes
/// within a test.
fn challenge_broker(verdicts: Arc<Mutex<Verdicts>>) -> Fake {
    Fake::simulated(move || {
        let verdicts = verdicts.clone();
        // The challenge sent on this connection, awaiting its answer.
        let mut pending: Option<Vec<u8>> = None;
        SimBroker::new(Box::new(move |r| {
            if let Some(a) = api_versions_reply(r, DEFAULT_VERSIONS) {
                return vec![a];
            }
            let mut body = Vec::new();
            match r.api_key {
                ApiKey::SASL_HANDSHAKE => server::handshake_response(&mut body, 0, &[CHALLENGE]),
                ApiKey::SASL_AUTHENTICATE => {
                    let auth = server::authenticate_request(&r.body, r.api_version).unwrap();
                    let mut v = verdicts.lock().unwrap();
                    match pending.take() {
                        None => {
                            assert_eq!(auth, b"hello");
                            v.challenges += 1;
                            let challenge = format!("challenge-{}", v.challenges).into_bytes();
                            server::authenticate_response(
                                &mut body,
                                r.api_version,
                                0,
                                None,
                                &challenge,
                                2000,
                            );
                            pending = Some(challenge);
                        }
                        Some(challenge) if auth == answer_to(&challenge) => {
                            v.accepted += 1;
                            server::authenticate_response(
                                &mut body,
                                r.api_version,
                                0,
                                None,
                                b"",
                                2000,
                            );
                        }
                        Some(_) => server::authenticate_response(
                            &mut body,
                            r.api_version,
                            58,
                            Some("wrong answer to the challenge"),
                            b"",
                            0,
                        ),
                    }
                }
                _ => return vec![Action::Respond(r.body.clone())],
            }
            vec![Action::Respond(body.into())]
        }))
    })
}

/// What the provider was asked: the challenge and the context.
#[derive(Debug, Clone)]
struct Asked {
    challenge: Bytes,
    context: CredentialContext,
    /// Whether the answer was computed off the provider's own thread.
    off_thread: bool,
}

/// A user-defined mechanism asks the application for each answer through
/// `CredentialRequest::Custom`, and the one credential provider answers
/// (on the runtime's blocking pool, through the context), for the first
/// authentication and for the KIP-368 re-authentication, with the broker's
/// host and address and the re-authentication flag in its context; by
/// `connect` and `connect_direct`. A sugar method set later leaves it in
/// charge of the requests it does not answer. Without a provider, or with
/// a failing one, the connection fails with a message saying so.
pub async fn user_defined_mechanism_asks_the_provider_through_custom<R: Runtime>(rt: R) {
    let verdicts = Arc::new(Mutex::new(Verdicts::default()));
    let broker = challenge_broker(verdicts.clone());
    let addr = broker.address();
    let asked = Arc::new(Mutex::new(Vec::<Asked>::new()));
    let log = asked.clone();
    let provider = move |request: CredentialRequest, context: CredentialContext| {
        let log = log.clone();
        async move {
            let CredentialRequest::Custom { mechanism, data } = request else {
                return Err(format!("unexpected request {request:?}").into());
            };
            assert_eq!(mechanism, CHALLENGE);
            let here = std::thread::current().id();
            let challenge = data.clone();
            let (answer, there) = context
                .spawn_blocking(move || (answer_to(&challenge), std::thread::current().id()))
                .await;
            log.lock().unwrap().push(Asked {
                challenge: data,
                context,
                off_thread: here != there,
            });
            Ok::<_, CallbackError>(Credential::Custom(answer.into()))
        }
    };
    let config =
        ConnectConfig::new(Config::new().with_sasl(SaslConfig::new(Arc::new(ChallengeResponse))))
            .with_credential_provider(provider.clone());

    let client = connected(
        &rt,
        &addr,
        LIMIT,
        connect(rt.clone(), &addr, config.clone()),
    )
    .await;
    assert_eq!(client.sasl_session().unwrap().mechanism, CHALLENGE);
    // Requests flow until the 2 s session is renewed (at 85-95 % of it).
    let started = rt.now();
    while client.stats().reauthentications == 0 {
        assert!(rt.now() - started < LIMIT, "no re-authentication");
        client.send(metadata_all()).await.unwrap();
        sleep(&rt, Duration::from_millis(50)).await;
    }
    client.send(metadata_all()).await.unwrap();
    let calls = asked.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (n, call) in calls.iter().enumerate() {
        assert_eq!(call.challenge, format!("challenge-{}", n + 1).as_bytes());
        assert_eq!(call.context.host, "127.0.0.1");
        assert_eq!(call.context.address.to_string(), addr);
        assert_eq!(call.context.reauthentication, n == 1, "{call:?}");
        assert!(
            call.off_thread,
            "spawn_blocking ran on the provider's thread"
        );
    }
    assert_eq!(verdicts.lock().unwrap().accepted, 2);
    client.close();

    // The same on a DirectClient, with a sugar method set after the
    // provider: the Custom requests still reach the provider.
    let config = config.with_oauth_token_provider(|| async { Err("not asked".into()) });
    let connecting = connect_direct(rt.clone(), &addr, config);
    let mut direct = connected(&rt, &addr, LIMIT, connecting).await;
    direct.request(metadata_all()).await.unwrap();
    assert_eq!(asked.lock().unwrap().len(), 3);
    assert_eq!(verdicts.lock().unwrap().accepted, 3);

    // No provider: the message says what to set.
    let bare =
        ConnectConfig::new(Config::new().with_sasl(SaslConfig::new(Arc::new(ChallengeResponse))));
    let e = must_fail_auth(&rt, &addr, bare.clone()).await;
    assert!(
        e.contains("set a provider with ConnectConfig::with_credential_provider"),
        "{e}"
    );
    // A failing provider: its message.
    let failing =
        bare.with_credential_provider(|_: CredentialRequest, _: CredentialContext| async {
            Err::<Credential, CallbackError>("the answering service is down".into())
        });
    let e = must_fail_auth(&rt, &addr, failing).await;
    assert!(e.contains("the answering service is down"), "{e}");
}

/// Connects with `config`, which must fail authenticating with
/// [`CHALLENGE`]; returns the failure's message.
async fn must_fail_auth<R: Runtime>(rt: &R, addr: &str, config: ConnectConfig) -> String {
    let e: ConnectError = refused(rt, addr, LIMIT, connect(rt.clone(), addr, config)).await;
    match e.close_reason() {
        Some(CloseReason::AuthFailed(f)) => {
            assert_eq!(f.mechanism, CHALLENGE);
            f.message.clone()
        }
        _ => panic!("{e}"),
    }
}
