//! Micro-benchmarks of the sans-IO core, no I/O anywhere: a small request /
//! response round trip; a 1 MiB response delivered zero-copy next to a
//! plain memcpy of the same size; frames fed in 1- and 7-byte chunks; SCRAM
//! authentication with and without the salted-password cache.
//!
//! Run: `cargo bench -p kafka-conn-core --bench core`. Results and the
//! machine: docs/benchmarks.md.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_conn_core::sasl::{MechanismFactory, Scram, ScramHash, Step};
use kafka_conn_core::sim::{feed_zero_copy, ready_metadata_connection, response_frame};
use kafka_conn_core::{ApiKey, Connection, Event, Request};

fn ready_connection() -> Connection {
    ready_metadata_connection(8 << 20, Instant::now())
}

const BODY: Bytes = Bytes::from_static(b"\xff\xff\xff\xff");

/// send -> drain transmit -> feed response -> take event.
fn round_trip(conn: &mut Connection, now: Instant, frame: &mut [u8], zero_copy: bool) -> usize {
    let id = conn
        .send_request(Request::new(ApiKey::METADATA, 1, BODY), now)
        .unwrap();
    let mut slices = [IoSlice::new(&[]); 4];
    let n = conn.poll_transmit(&mut slices);
    let written: usize = slices[..n].iter().map(|s| s.len()).sum();
    conn.transmit_complete(written, now);
    frame[4..8].copy_from_slice(&id.0.to_be_bytes());
    if zero_copy {
        let buf = conn.recv_buf();
        buf[..frame.len()].copy_from_slice(frame);
        conn.recv_commit(frame.len(), now);
    } else {
        conn.handle_input(frame, now);
    }
    match conn.poll_event() {
        Some(Event::Response(r)) => r.body.len(),
        other => panic!("{other:?}"),
    }
}

fn small_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip_64B");
    for zero_copy in [false, true] {
        let mut conn = ready_connection();
        let now = Instant::now();
        let mut frame = response_frame(0, 0, &[0u8; 64]);
        let name = if zero_copy {
            "recv_buf"
        } else {
            "handle_input"
        };
        g.bench_function(name, |b| {
            b.iter(|| black_box(round_trip(&mut conn, now, &mut frame, zero_copy)))
        });
    }
    g.finish();
}

fn large_response(c: &mut Criterion) {
    const SIZE: usize = 1 << 20;
    let mut g = c.benchmark_group("response_1MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    let src = vec![7u8; SIZE];
    let mut dst = vec![0u8; SIZE];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    // The 1 MiB body arrives through recv_buf in socket-sized reads (the one
    // copy, standing in for the kernel's) and leaves as a `Bytes` slice.
    let mut conn = ready_connection();
    let now = Instant::now();
    let mut frame = response_frame(0, 0, &src);
    g.bench_function("core_zero_copy", |b| {
        b.iter(|| {
            let id = conn
                .send_request(Request::new(ApiKey::METADATA, 1, BODY), now)
                .unwrap();
            let len = conn.transmit_len();
            conn.transmit_complete(len, now);
            frame[4..8].copy_from_slice(&id.0.to_be_bytes());
            feed_zero_copy(&mut conn, &frame, now);
            match conn.poll_event() {
                Some(Event::Response(r)) => black_box(r.body.len()),
                other => panic!("{other:?}"),
            }
        })
    });
    g.finish();
}

fn chunked(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunked_64B_response");
    for chunk in [1usize, 7] {
        let mut conn = ready_connection();
        let now = Instant::now();
        let mut frame = response_frame(0, 0, &[0u8; 64]);
        g.bench_with_input(BenchmarkId::from_parameter(chunk), &chunk, |b, &chunk| {
            b.iter(|| {
                let id = conn
                    .send_request(Request::new(ApiKey::METADATA, 1, BODY), now)
                    .unwrap();
                let len = conn.transmit_len();
                conn.transmit_complete(len, now);
                frame[4..8].copy_from_slice(&id.0.to_be_bytes());
                for part in frame.chunks(chunk) {
                    conn.handle_input(part, now);
                }
                black_box(conn.poll_event())
            })
        });
    }
    g.finish();
}

/// A SCRAM-SHA-512 exchange against a server computed from RFC 5802's
/// formulas by our own client (the server side is only needed for speed,
/// its correctness is tested elsewhere against rsasl and tansu).
fn scram(c: &mut Criterion) {
    let mut g = c.benchmark_group("scram_sha512_4096");
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);
    // A fixed server-first whose nonce extends the fixed client nonce.
    let server_first = b"r=fixednonce-server,s=c2FsdHNhbHRzYWx0,i=4096";
    let run = |factory: &Scram| {
        let mut m = factory.start().unwrap();
        let Step::Send(_) = m.step(None).unwrap() else {
            panic!()
        };
        let Step::Send(fin) = m.step(Some(server_first)).unwrap() else {
            panic!()
        };
        black_box(fin)
    };
    g.bench_function("without_cache", |b| {
        b.iter(|| {
            // Inline: the benchmark measures PBKDF2 itself, not a pool.
            let f = Scram::new(ScramHash::Sha512, "user", "pencil")
                .with_fixed_nonce_for_testing("fixednonce")
                .with_inline_pbkdf2(true);
            run(&f)
        })
    });
    let shared = Arc::new(
        Scram::new(ScramHash::Sha512, "user", "pencil")
            .with_fixed_nonce_for_testing("fixednonce")
            .with_inline_pbkdf2(true),
    );
    run(&shared);
    g.bench_function("with_cache", |b| b.iter(|| run(&shared)));
    g.finish();
}

criterion_group!(benches, small_round_trip, large_response, chunked, scram);
criterion_main!(benches);
