//! The core's hot loops for counting instructions: `N` iterations of a
//! request / response round trip (send, `poll_timeout`, drain the transmit
//! queue, feed the response, take the event, `poll_timeout`), the response
//! fed at once (`input`), through `recv_buf` (`recv`), in 7-byte chunks
//! (`chunk7`), or 1 MiB through `recv_buf` (`mib`). Criterion's times are
//! too noisy on a shared machine to see a few percent; callgrind's counts
//! are not. Per iteration, with two counts:
//!
//! ```sh
//! cargo build --release -p kafka-conn-core --features sim --example hot_loop
//! ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   target/release/examples/hot_loop "$1" "$2" 2>&1 | awk '/Collected/ {print $4}'; }
//! echo $(( ($(ir input 2200) - $(ir input 200)) / 2000 ))
//! ```

use std::hint::black_box;
use std::io::IoSlice;
use std::time::Instant;

use bytes::Bytes;
use kafka_conn_core::sim::{feed_zero_copy, ready_metadata_connection, response_frame};
use kafka_conn_core::{ApiKey, Event, Request};

const BODY: Bytes = Bytes::from_static(b"\xff\xff\xff\xff");

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hot_loop input|recv|chunk7|mib N";
    let mode = args.next().expect(usage);
    let n: usize = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let now = Instant::now();
    let mut conn = ready_metadata_connection(8 << 20, now);
    let body = if mode == "mib" {
        vec![7u8; 1 << 20]
    } else {
        vec![0u8; 64]
    };
    let mut f = response_frame(0, 0, &body);
    for _ in 0..n {
        let id = conn
            .send_request(Request::new(ApiKey::METADATA, 1, BODY), now)
            .unwrap();
        let _ = black_box(conn.poll_timeout());
        let mut slices = [IoSlice::new(&[]); 4];
        let k = conn.poll_transmit(&mut slices);
        let written: usize = slices[..k].iter().map(|s| s.len()).sum();
        conn.transmit_complete(written, now);
        f[4..8].copy_from_slice(&id.0.to_be_bytes());
        match mode.as_str() {
            "input" => conn.handle_input(&f, now),
            "chunk7" => {
                for part in f.chunks(7) {
                    conn.handle_input(part, now);
                }
            }
            _ => feed_zero_copy(&mut conn, &f, now),
        }
        match conn.poll_event() {
            Some(Event::Response(r)) => {
                black_box(r.body.len());
            }
            other => panic!("{other:?}"),
        }
        let _ = black_box(conn.poll_timeout());
    }
}
