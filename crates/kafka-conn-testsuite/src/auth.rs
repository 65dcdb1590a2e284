//! Tests of the driver's credential sources (features `gssapi`, `oidc`,
//! `aws-msk-iam`), generic over the runtime like the main suite. Each
//! feature has its own suite macro, invoked by a test file of its own in
//! every runtime crate (`tests/gssapi.rs`, ...), so that process-wide
//! settings one of them needs (`KRB5_CONFIG`) stay in its own process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use kafka_conn_driver::core::server;
use kafka_conn_driver::core::sim::{
    api_versions_reply, Action, ReceivedRequest, SimBroker, DEFAULT_VERSIONS,
};
use kafka_conn_driver::core::ApiKey;

use crate::fake::Fake;

#[cfg(feature = "aws-msk-iam")]
pub mod aws_msk_iam;
#[cfg(feature = "gssapi")]
pub mod gssapi;
#[cfg(feature = "oidc")]
pub mod oidc;

/// A listener whose every connection is served by a fresh simulated
/// broker (`kafka_conn_core::sim`, sans-IO) over a real socket: for what
/// no real broker here does (legacy SaslHandshake v0, a scripted answer).
pub fn sim_listener(make: impl Fn() -> SimBroker + Send + Sync + 'static) -> Fake {
    Fake::start(move |stream| serve_sim(stream, make()))
}

fn serve_sim(mut stream: TcpStream, mut broker: SimBroker) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let out = broker.take_output(usize::MAX);
        if !out.is_empty() && stream.write_all(&out).is_err() {
            return;
        }
        if broker.is_closed() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => broker.receive(&buf[..n]),
        }
    }
}

/// A simulated broker over a real socket that offers one SASL mechanism
/// (SaslHandshake v1, SaslAuthenticate v0-v2), records every client
/// message and answers it with `verdict`: `Ok(server message)` succeeds
/// with the given session lifetime, `Err(message)` fails with error 58 and
/// that message. Every other request is answered by echoing its body.
pub struct SaslSim {
    fake: Fake,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

type Verdict = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync;

impl SaslSim {
    /// Starts it for `mechanism`.
    pub fn start(
        mechanism: &'static str,
        session_lifetime_ms: i64,
        verdict: impl Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let verdict: Arc<Verdict> = Arc::new(verdict);
        let r = received.clone();
        let fake = sim_listener(move || {
            let (received, verdict) = (r.clone(), verdict.clone());
            SimBroker::new(Box::new(move |req: &ReceivedRequest| {
                if let Some(a) = api_versions_reply(req, DEFAULT_VERSIONS) {
                    return vec![a];
                }
                let mut out = BytesMut::new();
                match req.api_key {
                    ApiKey::SASL_HANDSHAKE => {
                        server::handshake_response(&mut out, 0, &[mechanism]);
                    }
                    ApiKey::SASL_AUTHENTICATE => {
                        let Some(auth) = server::authenticate_request(&req.body, req.api_version)
                        else {
                            return vec![Action::Close];
                        };
                        received.lock().unwrap().push(auth.clone());
                        match verdict(&auth) {
                            Ok(reply) => server::authenticate_response(
                                &mut out,
                                req.api_version,
                                0,
                                None,
                                &reply,
                                session_lifetime_ms,
                            ),
                            Err(message) => server::authenticate_response(
                                &mut out,
                                req.api_version,
                                58,
                                Some(&message),
                                b"",
                                0,
                            ),
                        }
                    }
                    _ => return vec![Action::Respond(req.body.clone())],
                }
                vec![Action::Respond(out.freeze())]
            }))
        });
        Self { fake, received }
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        self.fake.address()
    }

    /// Every SaslAuthenticate message received, in order.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }
}
