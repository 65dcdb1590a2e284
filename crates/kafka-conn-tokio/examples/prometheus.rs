//! Exports kafka-conn's metrics to Prometheus: installs the
//! `metrics-exporter-prometheus` recorder (latency and setup-time
//! histograms with buckets from 100 µs to 10 s, drained every 5 s even
//! when nobody scrapes), registers a `MetricsObserver` on a `Cluster`,
//! sends Metadata to every broker once a second, and serves the text format at `http://ADDR/metrics` (a few lines
//! of tokio here; the exporter's own `http-listener` feature does the same
//! with hyper). See `docs/metrics.md` for every metric.
//!
//! ```sh
//! cargo run -p kafka-conn-tokio --features metrics --example prometheus -- 127.0.0.1:9092 127.0.0.1:9464
//! curl -s 127.0.0.1:9464/metrics | grep org_apache_kafka_client_request
//! ```

use std::sync::Arc;
use std::time::Duration;

use kafka_conn_tokio::core::{ApiKey, Request};
use kafka_conn_tokio::{Cluster, ClusterConfig, ConnectConfig, MetricsObserver};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Histogram buckets in seconds: request latencies on a LAN are in the
/// sub-millisecond to tens of milliseconds range; connection setup and
/// throttles reach seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9464".to_owned());
    let seconds: u64 = args.next().map_or(Ok(u64::MAX), |s| s.parse())?;

    // The recorder first: the observer registers its handles on first use.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("latency".into()), BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("time".into()), BUCKETS)?
        .install_recorder()?;
    // The exporter keeps every histogram sample until it is drained
    // (a scrape's `render`, or `run_upkeep`): `install_recorder` runs no
    // upkeep of its own, so without scrapes memory would grow with every
    // response. Drain every 5 s, as the exporter's own `install` does.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let listener = TcpListener::bind(&listen).await?;
    println!("serving http://{}/metrics", listener.local_addr()?);
    tokio::spawn(serve(listener, handle));

    let config = ConnectConfig::default().with_observer(Arc::new(MetricsObserver::new()));
    let cluster = Cluster::connect([bootstrap.as_str()], ClusterConfig::new(config)).await?;
    for _ in 0..seconds {
        for node in cluster.nodes().iter().filter(|n| !n.id.is_bootstrap()) {
            // Metadata v1 for every topic.
            let request = Request::new(ApiKey::METADATA, 1, bytes::Bytes::from_static(&[0xff; 4]));
            if let Err(e) = cluster.send_to(node.id, request).await {
                eprintln!("node {}: {e}", node.id);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// Answers every HTTP request with the metrics in Prometheus' text format.
async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            // The request itself does not matter: read its head and answer.
            let mut head = [0u8; 1024];
            let _ = socket.read(&mut head).await;
            let body = handle.render();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
