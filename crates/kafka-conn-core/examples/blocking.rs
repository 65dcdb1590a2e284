//! Drives kafka-conn-core from a plain blocking `std::net::TcpStream` loop,
//! with no async runtime at all, and prints what the broker supports: the
//! proof that the core does no I/O of its own. Everything it needs is in
//! this file (the crate docs walk through the same loop step by step).
//!
//! ```sh
//! cargo run -p kafka-conn-core --example blocking -- 127.0.0.1:9092
//! ```

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::TcpStream;
use std::process::exit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_conn_core::{ApiVersions, CloseReason, Config, Connection, Event};

/// Runs the drive loop until the connection is ready (versions negotiated),
/// closes, or `give_up` passes.
fn until_ready(
    socket: &mut TcpStream,
    conn: &mut Connection,
    give_up: Instant,
) -> io::Result<Result<Arc<ApiVersions>, CloseReason>> {
    loop {
        // Write everything the core has queued (vectored, partial writes fine).
        while conn.transmit_len() > 0 {
            let mut slices = [IoSlice::new(&[]); 16];
            let n = conn.poll_transmit(&mut slices);
            let written = socket.write_vectored(&slices[..n])?;
            conn.transmit_complete(written, Instant::now());
        }
        // Act on the events.
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Ready { api_versions, .. } => return Ok(Ok(api_versions)),
                Event::Closed(reason) => return Ok(Err(reason)),
                _ => {}
            }
        }
        // Wait for bytes until the core's next deadline (or our own limit).
        let now = Instant::now();
        if now >= give_up {
            return Err(io::Error::new(ErrorKind::TimedOut, "not ready in time"));
        }
        let wake = conn.poll_timeout().map_or(give_up, |t| t.min(give_up));
        if wake <= now {
            conn.handle_timeout(now);
            continue;
        }
        socket.set_read_timeout(Some(wake - now))?;
        // Read into the core's buffer; end of stream and the timer are inputs too.
        match socket.read(conn.recv_buf()) {
            Ok(0) => conn.handle_eof(Instant::now()),
            Ok(n) => conn.recv_commit(n, Instant::now()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                conn.handle_timeout(Instant::now())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => conn.handle_io_error(e.kind(), e.to_string(), Instant::now()),
        }
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let fail = |what: &dyn std::fmt::Display| -> ! {
        eprintln!("{addr}: {what}");
        exit(1)
    };
    let mut socket = TcpStream::connect(&addr).unwrap_or_else(|e| fail(&e));
    socket.set_nodelay(true).unwrap_or_else(|e| fail(&e));
    let mut conn = Connection::new(Config::new(), Instant::now()).unwrap_or_else(|e| fail(&e));
    let give_up = Instant::now() + Duration::from_secs(10);
    let versions = match until_ready(&mut socket, &mut conn, give_up) {
        Ok(Ok(versions)) => versions,
        Ok(Err(reason)) => fail(&reason),
        Err(e) => fail(&e),
    };
    println!(
        "{addr}: ready, ApiVersions v{:?}, {} APIs",
        versions.negotiated_with,
        versions.len()
    );
    for r in versions.iter() {
        println!(
            "  {:<28} {:>3}  v{}-v{}",
            r.api_key.to_string(),
            r.api_key.0,
            r.min,
            r.max
        );
    }
    conn.close(Instant::now());
}
