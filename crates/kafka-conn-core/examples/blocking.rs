//! Drives kafka-conn-core from a plain blocking `std::net::TcpStream` loop,
//! with no async runtime at all, and prints what the broker supports.
//!
//! ```sh
//! cargo run -p kafka-conn-core --example blocking -- 127.0.0.1:9092
//! ```

#[path = "../tests/support/blocking.rs"]
mod blocking;

use std::time::Duration;

use kafka_conn_core::Config;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let mut conn = match blocking::Blocking::connect(&addr, Config::new()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot connect to {addr}: {e}");
            std::process::exit(1);
        }
    };
    match conn.wait_ready(Duration::from_secs(10)) {
        Ok(versions) => {
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
        }
        Err(reason) => {
            eprintln!("{addr}: {reason}");
            std::process::exit(1);
        }
    }
    conn.conn.close(std::time::Instant::now());
}
