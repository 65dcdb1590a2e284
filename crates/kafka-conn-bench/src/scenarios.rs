//! Scenarios of the async `Cluster` that are not requests per second:
//!
//! - `e2e --scenario reconnect [--cycles N] [--hold-ms MS]`: on a private
//!   librdkafka mock cluster (3 brokers), broker 2 is taken down for
//!   `--hold-ms` (3,000) while a caller keeps asking for it (sleeping the
//!   `retry_in` each refusal names), then brought back: the time from
//!   `broker_up` to the caller's first successful request, split into the
//!   backoff (or circuit cool-down) still to run at `broker_up` and what
//!   came after it (the dial and the request's round trip). Run with the
//!   policy's defaults (circuit breaker on) and with the breaker off
//!   (backoff only, as the Java client).
//! - `e2e --scenario idle-memory [--connections N]`: the resident memory of
//!   N (1,000) idle ready connections, `(RSS after - RSS before) / N` after
//!   one warm-up connection, each kind in its own child process: `Client`s
//!   to tansu and to a mock broker, and a `Cluster` with one connection to
//!   each broker of a private mock cluster of N + 1 brokers, on each
//!   runtime.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_conn_core::{ApiKey, Request};
use kafka_conn_driver::{
    Cluster, ClusterConfig, ClusterError, ConnectConfig, CurrentRuntime, NodeId, PolicyConfig,
    Runtime,
};
use kafka_conn_testsuite::MockCluster;

const TAG: &str = "SCENARIO-RESULT";

/// `e2e --scenario NAME ARGS`.
pub(crate) fn main(args: &[String]) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("reconnect") => reconnect(&args[1..]),
        Some("idle-memory") => idle_memory(&args[1..]),
        _ => Err("usage: e2e --scenario reconnect|idle-memory [options]".to_owned()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("e2e scenario: {e}");
            1
        }
    }
}

/// The value after `--name` in `args`, parsed, or `default`.
fn option<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a value")),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// ApiVersions v0: every broker answers it.
fn api_versions() -> Request {
    Request::new(ApiKey::API_VERSIONS, 0, Vec::new())
}

// ----- reconnect ----------------------------------------------------------

/// One cycle's times.
struct Cycle {
    /// `broker_up` returned to the first success.
    total: Duration,
    /// `broker_up` to the start of the attempt that succeeded: the backoff
    /// or cool-down that was still to run.
    waited: Duration,
    /// The attempt that succeeded: dial and request.
    attempt: Duration,
}

fn reconnect(args: &[String]) -> Result<(), String> {
    let cycles: usize = option(args, "--cycles", 10)?;
    let hold = Duration::from_millis(option(args, "--hold-ms", 3000)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    println!(
        "# Cluster: broker_up to the first successful request ({cycles} cycles, broker down {} ms, tokio current-thread, private mock cluster)",
        hold.as_millis()
    );
    println!();
    println!("| policy | broker_up → first success, median (max) ms | backoff or cool-down left at broker_up, median ms | after it: dial + request, median (max) ms | one round trip on a warm connection, median ms | every cycle, sorted, ms |");
    println!("|---|---|---|---|---|---|");
    let defaults = PolicyConfig::new();
    let no_breaker = PolicyConfig::new().with_circuit_breaker(None, Duration::from_secs(10));
    for (name, policy) in [
        (
            "defaults (backoff 50 ms → 1 s ± 20 %, breaker: 5 failures, 1 s cool-down)",
            defaults,
        ),
        (
            "breaker off (backoff 50 ms → 1 s ± 20 %, as the Java client)",
            no_breaker,
        ),
    ] {
        let (runs, rtt) = rt.block_on(reconnect_cycles(policy, cycles, hold))?;
        let total = median(runs.iter().map(|c| c.total).collect());
        let total_max = runs.iter().map(|c| c.total).max().unwrap_or_default();
        let waited = median(runs.iter().map(|c| c.waited).collect());
        let attempt = median(runs.iter().map(|c| c.attempt).collect());
        let attempt_max = runs.iter().map(|c| c.attempt).max().unwrap_or_default();
        let mut all: Vec<Duration> = runs.iter().map(|c| c.total).collect();
        all.sort();
        let all: Vec<String> = all.iter().map(|d| format!("{:.0}", ms(*d))).collect();
        println!(
            "| {name} | {:.1} ({:.1}) | {:.1} | {:.2} ({:.2}) | {:.3} | {} |",
            ms(total),
            ms(total_max),
            ms(waited),
            ms(attempt),
            ms(attempt_max),
            ms(rtt),
            all.join(", ")
        );
    }
    Ok(())
}

async fn reconnect_cycles(
    policy: PolicyConfig,
    cycles: usize,
    hold: Duration,
) -> Result<(Vec<Cycle>, Duration), String> {
    let mock = Arc::new(MockCluster::start(3).ok_or("no mock cluster: source the broker env")?);
    let rt = kafka_conn_tokio::TokioRuntime::current();
    let cluster = kafka_conn_tokio::Cluster::connect(
        [mock.bootstrap()],
        ClusterConfig::default().with_policy(policy),
    )
    .await
    .map_err(|e| e.to_string())?;
    let node = NodeId(2);
    let mut runs = Vec::new();
    for _ in 0..cycles {
        cluster
            .send_to(node, api_versions())
            .await
            .map_err(|e| e.to_string())?;
        mock.broker_down(2);
        // The broker comes back after `hold`, from another thread, while
        // this task keeps asking.
        let control = mock.clone();
        let up = std::thread::spawn(move || {
            std::thread::sleep(hold);
            control.broker_up(2);
            Instant::now()
        });
        let (success, attempt_start) = loop {
            let start = Instant::now();
            match cluster.send_to(node, api_versions()).await {
                Ok(_) => break (Instant::now(), start),
                Err(
                    ClusterError::BackingOff { retry_in, .. }
                    | ClusterError::CircuitOpen {
                        retry_in: Some(retry_in),
                        ..
                    },
                ) => sleep(&rt, retry_in).await,
                // Refused, broken, a probe under way: ask again shortly
                // (the policy answers with the backoff next).
                Err(e) if e.is_retriable() => sleep(&rt, Duration::from_millis(1)).await,
                Err(e) => return Err(e.to_string()),
            }
        };
        let up = up.join().map_err(|_| "the control thread panicked")?;
        runs.push(Cycle {
            total: success.saturating_duration_since(up),
            waited: attempt_start.saturating_duration_since(up),
            attempt: success - attempt_start,
        });
    }
    let mut rtts = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        cluster
            .send_to(node, api_versions())
            .await
            .map_err(|e| e.to_string())?;
        rtts.push(t.elapsed());
    }
    cluster.close();
    cluster.closed().await;
    Ok((runs, median(rtts)))
}

async fn sleep<R: Runtime>(rt: &R, d: Duration) {
    rt.sleep_until(rt.now() + d).await;
}

// ----- idle memory --------------------------------------------------------

/// The kinds measured, each in its own child process.
const KINDS: [&str; 8] = [
    "client-tokio-tansu",
    "client-tokio-mock",
    "client-smol-mock",
    "client-async-std-mock",
    "cluster-tokio-mock",
    "cluster-smol-mock",
    "cluster-async-std-mock",
    "cluster-tokio-tansu-1",
];

fn idle_memory(args: &[String]) -> Result<(), String> {
    let n: usize = option(args, "--connections", 1000)?;
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let kind = args.get(i + 1).ok_or("--child needs a kind")?;
        return idle_child(kind, n);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    println!("# Memory per idle connection: {n} ready connections after one warm-up connection, one child process per kind");
    println!();
    println!("| kind | RssAnon per connection, KiB | RSS per connection, KiB |");
    println!("|---|---|---|");
    for kind in KINDS {
        let mut cmd = Command::new(&exe);
        if kind.contains("async-std") {
            cmd.env("ASYNC_STD_THREAD_COUNT", "1");
        }
        let out = cmd
            .args([
                "--scenario",
                "idle-memory",
                "--connections",
                &n.to_string(),
                "--child",
                kind,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(TAG)) else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            println!(
                "| {kind} | failed: {} | |",
                stderr.lines().last().unwrap_or("no output")
            );
            continue;
        };
        let v: Vec<f64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [conns, anon0, anon1, rss0, rss1] = v[..] else {
            return Err(format!("unparsable child output: {line}"));
        };
        println!(
            "| {kind} | **{:.2}** | {:.2} |",
            (anon1 - anon0) / conns,
            (rss1 - rss0) / conns
        );
    }
    Ok(())
}

/// `(RssAnon, VmRSS)` of this process, KiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("VmRSS:"))
}

fn idle_child(kind: &str, n: usize) -> Result<(), String> {
    let tansu = || {
        std::env::var("KAFKA_PLAINTEXT_BOOTSTRAP")
            .map_err(|_| "KAFKA_PLAINTEXT_BOOTSTRAP is not set: source the broker env".to_owned())
    };
    let (mock, addr) = match kind {
        "client-tokio-tansu" | "cluster-tokio-tansu-1" => (None, tansu()?),
        k if k.starts_with("client") => {
            let mock = MockCluster::start(1).ok_or("no mock cluster: source the broker env")?;
            let addr = mock.address(1);
            (Some(mock), addr)
        }
        _ => {
            let mock =
                MockCluster::start(n as u32 + 1).ok_or("no mock cluster: source the broker env")?;
            let addr = mock.address(1);
            (Some(mock), addr)
        }
    };
    let measured = match kind {
        "client-tokio-tansu" | "client-tokio-mock" => {
            tokio_rt()?.block_on(clients(kafka_conn_tokio::TokioRuntime::current, &addr, n))
        }
        "client-smol-mock" => smol::block_on(clients(|| kafka_conn_smol::SmolRuntime, &addr, n)),
        "client-async-std-mock" => {
            async_std::task::block_on(clients(|| kafka_conn_async_std::AsyncStdRuntime, &addr, n))
        }
        "cluster-tokio-mock" => {
            tokio_rt()?.block_on(cluster::<kafka_conn_tokio::TokioRuntime>(&addr, n))
        }
        "cluster-smol-mock" => smol::block_on(cluster::<kafka_conn_smol::SmolRuntime>(&addr, n)),
        "cluster-async-std-mock" => {
            async_std::task::block_on(cluster::<kafka_conn_async_std::AsyncStdRuntime>(&addr, n))
        }
        // A Cluster of one node (tansu) per connection: the cluster's own
        // fixed cost (policy, timer task, lock) counted per connection.
        "cluster-tokio-tansu-1" => {
            tokio_rt()?.block_on(clusters_of_one::<kafka_conn_tokio::TokioRuntime>(&addr, n))
        }
        other => return Err(format!("unknown kind {other}")),
    }?;
    drop(mock);
    let (conns, (anon0, rss0), (anon1, rss1)) = measured;
    println!("{TAG} {conns} {anon0} {anon1} {rss0} {rss1}");
    Ok(())
}

fn tokio_rt() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

type Measured = (usize, (u64, u64), (u64, u64));

/// Lets the connections idle past the core's receive-buffer release (1 s
/// by default: an idle connection gives its buffers back) and the runtime
/// settle before reading the RSS.
async fn settle<R: Runtime>(rt: &R) {
    sleep(rt, Duration::from_millis(1500)).await;
}

/// `n` `Client`s to `addr`, after one warm-up client.
async fn clients<R: Runtime>(
    make: impl Fn() -> R,
    addr: &str,
    n: usize,
) -> Result<Measured, String> {
    let rt = make();
    let connect = || kafka_conn_driver::connect(make(), addr, ConnectConfig::default());
    let warm = connect().await.map_err(|e| e.to_string())?;
    let mut all = Vec::with_capacity(n);
    settle(&rt).await;
    let before = rss();
    for _ in 0..n {
        all.push(connect().await.map_err(|e| e.to_string())?);
    }
    settle(&rt).await;
    let after = rss();
    drop(warm);
    Ok((all.len(), before, after))
}

/// A `Cluster` through `addr` (broker 1 of a mock of `n + 1` brokers),
/// with one ready connection to every broker, after a warm-up connection
/// to broker 1.
async fn cluster<R: CurrentRuntime>(addr: &str, n: usize) -> Result<Measured, String> {
    let rt = R::current();
    let cluster = Cluster::<R>::connect([addr], ClusterConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let ids: Vec<NodeId> = cluster.nodes().iter().map(|n| n.id).collect();
    if ids.len() != n + 1 {
        return Err(format!("{} brokers, {} expected", ids.len(), n + 1));
    }
    cluster.client(ids[0]).await.map_err(|e| e.to_string())?;
    settle(&rt).await;
    let before = rss();
    for id in &ids[1..] {
        cluster.client(*id).await.map_err(|e| e.to_string())?;
    }
    settle(&rt).await;
    let after = rss();
    let open = cluster.open_connections();
    if open != n + 1 {
        return Err(format!("{open} connections open, {} expected", n + 1));
    }
    Ok((n, before, after))
}

/// `n` `Cluster`s of one node each (tansu), each with its connection, after
/// a warm-up cluster.
async fn clusters_of_one<R: CurrentRuntime>(addr: &str, n: usize) -> Result<Measured, String> {
    let rt = R::current();
    let one = || async {
        let cluster = Cluster::<R>::connect([addr], ClusterConfig::default())
            .await
            .map_err(|e| e.to_string())?;
        let node = cluster.nodes()[0].id;
        cluster.client(node).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(cluster)
    };
    let warm = one().await?;
    let mut all = Vec::with_capacity(n);
    settle(&rt).await;
    let before = rss();
    for _ in 0..n {
        all.push(one().await?);
    }
    settle(&rt).await;
    let after = rss();
    drop(warm);
    Ok((all.len(), before, after))
}
