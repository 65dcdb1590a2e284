//! Tests of the driver's credential sources (features `gssapi`, `oidc`,
//! `aws-msk-iam`), generic over the runtime like the main suite. Each
//! feature has its own suite macro, invoked by a test file of its own in
//! every runtime crate (`tests/gssapi.rs`, ...), so that process-wide
//! settings one of them needs (`KRB5_CONFIG`) stay in its own process.

use std::io::{Read, Write};
use std::net::TcpStream;

use kafka_conn_driver::core::sim::SimBroker;

use crate::fake::Fake;

#[cfg(feature = "gssapi")]
pub mod gssapi;

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
