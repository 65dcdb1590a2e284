//! SCRAM's PBKDF2 off the executor: while one connection authenticates
//! with a high iteration count, the other connections of a single-threaded
//! executor keep answering.
//!
//! The real SASL broker's SCRAM users have 4096 iterations (Kafka refuses
//! to store more than 16384), too few to see anything; so the slow
//! connection authenticates with the simulated broker (the core's sans-IO
//! broker over a real socket), whose SCRAM side is an independent server,
//! the `rsasl` crate's, holding credentials with [`ITERATIONS`] PBKDF2
//! iterations that rsasl itself derived. The other connection pings the
//! real plaintext broker the whole time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use kafka_conn_driver::core::sasl::{SaslConfig, Scram, ScramHash};
use kafka_conn_driver::core::server;
use kafka_conn_driver::core::sim::{
    api_versions_reply, Action, ReceivedRequest, SimBroker, DEFAULT_VERSIONS,
};
use kafka_conn_driver::core::{ApiKey, Config};
use kafka_conn_driver::{connect, ConnectConfig, Runtime};
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use rsasl::mechname::Mechname;
use rsasl::prelude::{SASLConfig, SASLServer, Session, SessionError};
use rsasl::property::AuthId;
use rsasl::validate::{Validate, Validation, ValidationError};
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

use crate::auth::sim_listener;
use crate::kafka::metadata_all;
use crate::tests::LIMIT;
use crate::{connected, env};

/// The iteration count of the slow user: about 60 times the SASL broker's
/// 4096, some seconds of PBKDF2-SHA-256 in a debug build.
pub const ITERATIONS: u32 = 250_000;
const USER: &str = "slow";
const PASSWORD: &str = "slow-secret";
const SALT: &[u8] = b"kafka-conn-slow-salt";

/// What rsasl's validation reports: the authenticated user.
struct Authenticated;
impl Validation for Authenticated {
    type Value = String;
}

/// rsasl's credential store: one user, keys derived by rsasl.
struct Store {
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Store {
    fn derive() -> Self {
        let mut salted = GenericArray::default();
        hash_password::<Sha256>(PASSWORD.as_bytes(), ITERATIONS, SALT, &mut salted);
        let (client_key, server_key) = derive_keys::<Sha256>(salted.as_slice());
        Self {
            stored_key: Sha256::digest(client_key).to_vec(),
            server_key: server_key.to_vec(),
        }
    }
}

impl SessionCallback for Store {
    fn callback(
        &self,
        _session: &SessionData,
        context: &Context<'_>,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if context.get_ref::<AuthId>() == Some(USER) {
            request.satisfy::<ScramStoredPassword<'static>>(&ScramStoredPassword::new(
                ITERATIONS,
                SALT,
                &self.stored_key,
                &self.server_key,
            ))?;
        }
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        context: &Context<'_>,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let user = context.get_ref::<AuthId>().unwrap_or_default().to_owned();
        validate.with::<Authenticated, _>(|| Ok(user))?;
        Ok(())
    }
}

/// What the SCRAM server saw: the ping count when it sent server-first
/// (the client's PBKDF2 starts after it) and when client-final arrived
/// (PBKDF2 is over), and whom it authenticated.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Pings completed when server-first went out.
    pub at_server_first: Option<u64>,
    /// Pings completed when client-final came in.
    pub at_client_final: Option<u64>,
    /// The user rsasl authenticated.
    pub authenticated: Option<String>,
}

/// The simulated broker with rsasl's SCRAM-SHA-256 server, one session per
/// connection; reads `pings` at the two moments of [`Observed`].
fn scram_broker(
    store: Arc<SASLConfig>,
    pings: Arc<AtomicU64>,
    observed: Arc<Mutex<Observed>>,
) -> crate::fake::Fake {
    sim_listener(move || {
        let (store, pings, observed) = (store.clone(), pings.clone(), observed.clone());
        let mut session: Option<Session<Authenticated>> = None;
        SimBroker::new(Box::new(move |req: &ReceivedRequest| {
            if let Some(a) = api_versions_reply(req, DEFAULT_VERSIONS) {
                return vec![a];
            }
            let mut out = BytesMut::new();
            match req.api_key {
                ApiKey::SASL_HANDSHAKE => {
                    let server = SASLServer::<Authenticated>::new(store.clone());
                    let name = Mechname::parse(b"SCRAM-SHA-256").expect("a mechanism name");
                    session = Some(server.start_suggested(name).expect("rsasl SCRAM-SHA-256"));
                    server::handshake_response(&mut out, 0, &["SCRAM-SHA-256"]);
                }
                ApiKey::SASL_AUTHENTICATE => {
                    let (Some(s), Some(auth)) = (
                        session.as_mut(),
                        server::authenticate_request(&req.body, req.api_version),
                    ) else {
                        return vec![Action::Close];
                    };
                    let mut reply = Vec::new();
                    let first = observed.lock().unwrap().at_server_first.is_none();
                    if !first {
                        observed.lock().unwrap().at_client_final =
                            Some(pings.load(Ordering::SeqCst));
                    }
                    let verdict = s.step(Some(&auth), &mut reply);
                    if first {
                        observed.lock().unwrap().at_server_first =
                            Some(pings.load(Ordering::SeqCst));
                    }
                    match verdict {
                        Ok(_) => {
                            if let Some(user) = s.validation() {
                                observed.lock().unwrap().authenticated = Some(user);
                            }
                            server::authenticate_response(
                                &mut out,
                                req.api_version,
                                0,
                                None,
                                &reply,
                                0,
                            );
                        }
                        Err(e) => server::authenticate_response(
                            &mut out,
                            req.api_version,
                            58,
                            Some(&e.to_string()),
                            &reply,
                            0,
                        ),
                    }
                }
                _ => return vec![Action::Respond(req.body.clone())],
            }
            vec![Action::Respond(out.freeze())]
        }))
    })
}

/// On a single-threaded executor, one connection authenticates with
/// SCRAM-SHA-256 at [`ITERATIONS`] iterations while another pings the real
/// plaintext broker in a loop: the pings keep completing while the first
/// connection's PBKDF2 runs (it runs on the runtime's blocking pool), and
/// the slow connection authenticates. Counts, not timings: with PBKDF2 on
/// the executor's one thread no ping could complete in between.
///
/// `rt` must be a runtime whose tasks all run on the calling thread (a
/// tokio current-thread runtime).
pub async fn scram_pbkdf2_leaves_a_single_threaded_executor_free<R: Runtime>(rt: R) {
    let Some(real) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    // rsasl derives the server's keys itself (no code of ours), before
    // anything runs.
    let store = SASLConfig::builder()
        .with_defaults()
        .with_callback(Store::derive())
        .expect("rsasl config");
    let pings = Arc::new(AtomicU64::new(0));
    let observed = Arc::new(Mutex::new(Observed::default()));
    let broker = scram_broker(store, pings.clone(), observed.clone());
    let addr = broker.address();

    let pinger = connected(
        &rt,
        &real,
        LIMIT,
        connect(rt.clone(), &real, ConnectConfig::default()),
    )
    .await;
    let done = AtomicBool::new(false);
    let ping_loop = async {
        while !done.load(Ordering::SeqCst) {
            pinger.send(metadata_all()).await.expect("ping");
            pings.fetch_add(1, Ordering::SeqCst);
        }
    };
    let scram = Scram::new(ScramHash::Sha256, USER, PASSWORD).with_max_iterations(ITERATIONS);
    let config = ConnectConfig::new(
        Config::new()
            .with_sasl(SaslConfig::new(Arc::new(scram.clone())))
            .with_handshake_timeout(Duration::from_secs(120)),
    );
    let slow = async {
        let client = connected(
            &rt,
            &addr,
            Duration::from_secs(120),
            connect(rt.clone(), &addr, config),
        )
        .await;
        done.store(true, Ordering::SeqCst);
        client
    };
    let (client, ()) = futures_util::future::join(slow, ping_loop).await;

    assert_eq!(
        client.sasl_session().expect("authenticated").mechanism,
        "SCRAM-SHA-256"
    );
    let seen = observed.lock().unwrap().clone();
    assert_eq!(seen.authenticated.as_deref(), Some(USER), "{seen:?}");
    assert_eq!(scram.cache_misses(), 1, "PBKDF2 ran once");
    let (Some(before), Some(after)) = (seen.at_server_first, seen.at_client_final) else {
        panic!("{seen:?}")
    };
    eprintln!(
        "{} pings completed during PBKDF2 with {ITERATIONS} iterations ({before} -> {after})",
        after - before
    );
    assert!(
        after - before >= 10,
        "only {} pings completed while PBKDF2 ran: it blocked the executor",
        after - before
    );
}
