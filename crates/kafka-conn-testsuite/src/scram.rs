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

use kafka_conn_driver::core::sasl::{SaslConfig, Scram, ScramHash};
use kafka_conn_driver::core::Config;
use kafka_conn_driver::{connect, ConnectConfig, Runtime};
use rsasl::mechname::Mechname;
use rsasl::prelude::{SASLConfig, SASLServer, Session};
use sha2::Sha256;

use crate::auth::SaslSim;
use crate::kafka::metadata_all;
use crate::tests::LIMIT;
use crate::{connected, env};

/// The independent SCRAM server, shared with the core's SCRAM unit tests.
#[path = "../../kafka-conn-core/tests/support/rsasl_server.rs"]
mod rsasl_server;
use rsasl_server::{Authenticated, Store};

/// The iteration count of the slow user: about 60 times the SASL broker's
/// 4096, some seconds of PBKDF2-SHA-256 in a debug build.
pub const ITERATIONS: u32 = 250_000;
const USER: &str = "slow";
const PASSWORD: &str = "slow-secret";
const SALT: &[u8] = b"kafka-conn-slow-salt";

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

/// The simulated broker ([`SaslSim`]) with rsasl's SCRAM-SHA-256 server
/// behind it (one session: the test makes one connection); reads `pings`
/// at the two moments of [`Observed`].
fn scram_broker(
    rsasl: Arc<SASLConfig>,
    pings: Arc<AtomicU64>,
    observed: Arc<Mutex<Observed>>,
) -> SaslSim {
    let session: Mutex<Option<Session<Authenticated>>> = Mutex::new(None);
    SaslSim::start("SCRAM-SHA-256", 0, move |message| {
        let mut session = session.lock().unwrap();
        let mut seen = observed.lock().unwrap();
        let first = session.is_none();
        if !first {
            seen.at_client_final = Some(pings.load(Ordering::SeqCst));
        }
        let s = session.get_or_insert_with(|| {
            let name = Mechname::parse(b"SCRAM-SHA-256").expect("a mechanism name");
            SASLServer::<Authenticated>::new(rsasl.clone())
                .start_suggested(name)
                .expect("rsasl SCRAM-SHA-256")
        });
        let mut reply = Vec::new();
        let verdict = s.step(Some(message), &mut reply);
        if first {
            seen.at_server_first = Some(pings.load(Ordering::SeqCst));
        }
        verdict.map_err(|e| e.to_string())?;
        if let Some(user) = s.validation() {
            seen.authenticated = Some(user);
        }
        Ok(reply)
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
    let (stored_key, server_key) = rsasl_server::keys::<Sha256>(PASSWORD, SALT, ITERATIONS);
    let store = Store {
        user: USER,
        salt: SALT.to_vec(),
        iterations: ITERATIONS,
        stored_key,
        server_key,
    };
    let rsasl = SASLConfig::builder()
        .with_defaults()
        .with_callback(store)
        .expect("rsasl config");
    let pings = Arc::new(AtomicU64::new(0));
    let observed = Arc::new(Mutex::new(Observed::default()));
    let broker = scram_broker(rsasl, pings.clone(), observed.clone());
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
