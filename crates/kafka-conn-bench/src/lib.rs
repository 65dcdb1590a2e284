//! # kafka-conn-bench
//!
//! The end-to-end, side-by-side benchmark of issue 9: on ONE connection to
//! the same real broker, the same request, measured for
//!
//! - `raw`: a hand-written blocking `std::net::TcpStream` loop that writes
//!   pre-encoded frames and reads responses by their size prefix (the limit
//!   of the workload: no correlation, no decoding, one `write` per batch of
//!   completed responses);
//! - `raw-tokio`, `raw-smol`, `raw-async-std`: the same loop in one task
//!   on each runtime (the limit for a client on that runtime);
//! - `raw-tokio-shared`, `raw-smol-shared`, `raw-async-std-shared`: that
//!   loop in a task of its own, shared by spawned worker tasks through the
//!   least a hand-over can be (one mutex, a flag and a waker per worker;
//!   `src/clients/raw_shared.rs`): the limit for a handle that many tasks
//!   share, as `Client` is;
//! - `raw-tokio-owned`, `raw-smol-owned` (opt-in: `--clients`): the raw
//!   loop plus what any client that hands out owned responses and times
//!   its requests out must do (zero-filled receive buffer, `Bytes` per
//!   response, clock readings, deadlines, in-order correlation;
//!   `src/clients/raw_owned.rs`): the floor for those promises;
//! - `kc-core-blocking`: `kafka_conn_core::Connection` driven by the same
//!   kind of blocking socket loop, no runtime (what an embedder writes; the
//!   core's own cost over the raw loop);
//! - `kc-tokio`, `kc-smol`, `kc-async-std`: kafka-conn's `Client::send` on
//!   each runtime;
//! - `kc-tokio-direct`, `kc-smol-direct`, `kc-async-std-direct`:
//!   kafka-conn's `DirectClient` on each runtime, driven by the caller's one
//!   task (no background task, no channel): `request` in a loop at
//!   concurrency 1, otherwise `send` N requests then one `recv` loop that
//!   sends one more per completion (the raw loop's pipelining);
//! - `rskafka`: rskafka 0.6's single-broker `Messenger::request` (the layer
//!   comparable to ours; it also decodes each response into typed structs,
//!   which is part of its API and cannot be skipped);
//! - `rskafka-client`: rskafka's `Client::list_topics` (Metadata only);
//! - `kc-tokio-metrics`: `kc-tokio` with a `MetricsObserver` and the
//!   Prometheus exporter's recorder installed (the cost of observing);
//!   `kc-tokio-metrics-buckets` (opt-in: `--clients`) the same with the
//!   histograms configured as buckets, as `examples/prometheus.rs` does.
//!   Both drain the recorder once at the end, as one scrape would
//!   (`scripts/bench-observe-cost` counts that deferred cost apart).
//! - `kc-tokio-cluster`, `kc-smol-cluster`, `kc-async-std-cluster`:
//!   kafka-conn's `Cluster::send_to` to the node at the broker's address
//!   (the cluster's cost per request over `kc-<runtime>`).
//!
//! `e2e --scenario reconnect` and `e2e --scenario idle-memory` measure the
//! cluster's time from a broker coming back to the first successful
//! request and the memory of an idle connection (see `src/scenarios.rs`).
//!
//! Each client runs in its own child process (this binary re-executed with
//! `--child`), so that CPU time (`getrusage(RUSAGE_SELF)` user+sys, read
//! around the measured phase) and peak RSS (`ru_maxrss`) belong to that
//! client alone. A child prints one line, `E2E-RESULT` then requests,
//! elapsed ns, CPU ns, peak RSS KiB, response bytes, voluntary context
//! switches, anonymous RSS KiB, user-space CPU ns, involuntary context
//! switches, CPU migrations, and the peer's CPU ns and sleeps: with
//! `E2E_PEER_PID=pid` (the broker), the CPU time that process's threads ran
//! during the measured phase (`/proc/PID/task/*/schedstat`) and how often
//! they went to sleep (voluntary context switches: each is a wake-up that
//! some sender paid for); 0 and 0 without it. See `docs/benchmarks.md` for
//! the method and results.
//!
//! Run: `. .broker-state/env && cargo run --release -p kafka-conn-bench --bin e2e`
//! (or `just bench`). Options: `--runs N` (3), `--seconds S` (2),
//! `--warmup S` (0.5), `--clients a,b`, `--workloads metadata,api-versions`
//! (and the opt-in `produce-1mib` and `fetch-1mib`),
//! `--concurrency 1,64`, `--targets mock,tansu`; for a child, `--requests N`
//! ends each phase after N requests instead of a time (deterministic
//! instruction counts: `BENCH_REQUESTS=N scripts/bench-instructions`).

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod clients;
mod fetch;
mod produce;
mod scenarios;

/// Which client a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    Raw,
    RawTokio,
    RawSmol,
    RawAsyncStd,
    RawTokioShared,
    RawSmolShared,
    RawAsyncStdShared,
    RawTokioOwned,
    RawSmolOwned,
    RawTokioSharedOwned,
    RawSmolSharedOwned,
    CoreBlocking,
    Tokio,
    Smol,
    AsyncStd,
    TokioDirect,
    SmolDirect,
    AsyncStdDirect,
    RsKafka,
    RsKafkaClient,
    TokioCluster,
    SmolCluster,
    AsyncStdCluster,
    TokioMetrics,
    TokioMetricsBuckets,
}

impl ClientKind {
    const ALL: [ClientKind; 20] = [
        ClientKind::Raw,
        ClientKind::RawTokio,
        ClientKind::RawSmol,
        ClientKind::RawAsyncStd,
        ClientKind::RawTokioShared,
        ClientKind::RawSmolShared,
        ClientKind::RawAsyncStdShared,
        ClientKind::CoreBlocking,
        ClientKind::Tokio,
        ClientKind::Smol,
        ClientKind::AsyncStd,
        ClientKind::TokioDirect,
        ClientKind::SmolDirect,
        ClientKind::AsyncStdDirect,
        ClientKind::RsKafka,
        ClientKind::RsKafkaClient,
        ClientKind::TokioCluster,
        ClientKind::SmolCluster,
        ClientKind::AsyncStdCluster,
        ClientKind::TokioMetrics,
    ];

    /// Clients run only when `--clients` names them.
    const OPT_IN: [ClientKind; 5] = [
        ClientKind::TokioMetricsBuckets,
        ClientKind::RawTokioOwned,
        ClientKind::RawSmolOwned,
        ClientKind::RawTokioSharedOwned,
        ClientKind::RawSmolSharedOwned,
    ];

    fn name(self) -> &'static str {
        match self {
            ClientKind::Raw => "raw",
            ClientKind::RawTokio => "raw-tokio",
            ClientKind::RawSmol => "raw-smol",
            ClientKind::RawAsyncStd => "raw-async-std",
            ClientKind::RawTokioShared => "raw-tokio-shared",
            ClientKind::RawSmolShared => "raw-smol-shared",
            ClientKind::RawAsyncStdShared => "raw-async-std-shared",
            ClientKind::RawTokioOwned => "raw-tokio-owned",
            ClientKind::RawSmolOwned => "raw-smol-owned",
            ClientKind::RawTokioSharedOwned => "raw-tokio-shared-owned",
            ClientKind::RawSmolSharedOwned => "raw-smol-shared-owned",
            ClientKind::CoreBlocking => "kc-core-blocking",
            ClientKind::Tokio => "kc-tokio",
            ClientKind::Smol => "kc-smol",
            ClientKind::AsyncStd => "kc-async-std",
            ClientKind::TokioDirect => "kc-tokio-direct",
            ClientKind::SmolDirect => "kc-smol-direct",
            ClientKind::AsyncStdDirect => "kc-async-std-direct",
            ClientKind::RsKafka => "rskafka",
            ClientKind::RsKafkaClient => "rskafka-client",
            ClientKind::TokioCluster => "kc-tokio-cluster",
            ClientKind::SmolCluster => "kc-smol-cluster",
            ClientKind::AsyncStdCluster => "kc-async-std-cluster",
            ClientKind::TokioMetrics => "kc-tokio-metrics",
            ClientKind::TokioMetricsBuckets => "kc-tokio-metrics-buckets",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ClientKind::Raw => "raw socket loop (limit)",
            ClientKind::RawTokio => "raw loop on tokio (limit for a tokio client)",
            ClientKind::RawSmol => "raw loop on smol (limit for a smol client)",
            ClientKind::RawAsyncStd => "raw loop on async-std (limit for an async-std client)",
            ClientKind::RawTokioShared => {
                "raw loop on tokio shared by the worker tasks (limit for a shared handle)"
            }
            ClientKind::RawSmolShared => {
                "raw loop on smol shared by the worker tasks (limit for a shared handle)"
            }
            ClientKind::RawAsyncStdShared => {
                "raw loop on async-std shared by the worker tasks (limit for a shared handle)"
            }
            ClientKind::RawTokioOwned => {
                "raw loop on tokio with owned responses, deadlines and round-trip times"
            }
            ClientKind::RawSmolOwned => {
                "raw loop on smol with owned responses, deadlines and round-trip times"
            }
            ClientKind::RawTokioSharedOwned => {
                "raw loop on tokio shared by the worker tasks, with owned responses, deadlines and round-trip times"
            }
            ClientKind::RawSmolSharedOwned => {
                "raw loop on smol shared by the worker tasks, with owned responses, deadlines and round-trip times"
            }
            ClientKind::CoreBlocking => "kafka-conn core, blocking loop (no runtime)",
            ClientKind::Tokio => "kafka-conn, tokio",
            ClientKind::Smol => "kafka-conn, smol",
            ClientKind::AsyncStd => "kafka-conn, async-std",
            ClientKind::TokioDirect => {
                "kafka-conn `DirectClient`, tokio (caller-driven, no background task)"
            }
            ClientKind::SmolDirect => {
                "kafka-conn `DirectClient`, smol (caller-driven, no background task)"
            }
            ClientKind::AsyncStdDirect => {
                "kafka-conn `DirectClient`, async-std (caller-driven, no background task)"
            }
            ClientKind::RsKafka => "rskafka `Messenger`",
            ClientKind::RsKafkaClient => "rskafka `Client::list_topics`",
            ClientKind::TokioCluster => "kafka-conn `Cluster::send_to`, tokio",
            ClientKind::SmolCluster => "kafka-conn `Cluster::send_to`, smol",
            ClientKind::AsyncStdCluster => "kafka-conn `Cluster::send_to`, async-std",
            ClientKind::TokioMetrics => {
                "kafka-conn, tokio, with a MetricsObserver and the Prometheus recorder installed"
            }
            ClientKind::TokioMetricsBuckets => {
                "kafka-conn, tokio, with a MetricsObserver and the Prometheus recorder with histogram buckets"
            }
        }
    }

    fn parse(s: &str) -> Option<Self> {
        (Self::ALL.into_iter().chain(Self::OPT_IN)).find(|c| c.name() == s)
    }

    /// [`ClientKind::parse`], or an error that names every client there is
    /// (the opt-in ones too: nothing else lists them).
    fn parse_or_list(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| {
            let known: Vec<&str> = (Self::ALL.into_iter().chain(Self::OPT_IN))
                .map(Self::name)
                .collect();
            format!("unknown client {s} (known: {})", known.join(", "))
        })
    }

    fn supports(self, workload: Workload) -> bool {
        self != ClientKind::RsKafkaClient || workload == Workload::Metadata
    }

    /// The raw loop on the same runtime (the blocking one for the blocking
    /// clients): the least CPU a client there could spend per request.
    fn runtime_limit(self) -> ClientKind {
        match self {
            ClientKind::Raw | ClientKind::CoreBlocking => ClientKind::Raw,
            ClientKind::RawTokio
            | ClientKind::RawTokioShared
            | ClientKind::RawTokioOwned
            | ClientKind::RawTokioSharedOwned
            | ClientKind::Tokio
            | ClientKind::TokioMetrics
            | ClientKind::TokioMetricsBuckets
            | ClientKind::TokioDirect
            | ClientKind::RsKafka
            | ClientKind::RsKafkaClient
            | ClientKind::TokioCluster => ClientKind::RawTokio,
            ClientKind::RawSmol
            | ClientKind::RawSmolShared
            | ClientKind::RawSmolOwned
            | ClientKind::RawSmolSharedOwned
            | ClientKind::Smol
            | ClientKind::SmolDirect
            | ClientKind::SmolCluster => ClientKind::RawSmol,
            ClientKind::RawAsyncStd
            | ClientKind::RawAsyncStdShared
            | ClientKind::AsyncStd
            | ClientKind::AsyncStdDirect
            | ClientKind::AsyncStdCluster => ClientKind::RawAsyncStd,
        }
    }
}

/// What is sent: the same API and version from every client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Metadata v4 for all topics (null topic array), no auto-creation.
    Metadata,
    /// ApiVersions v2 (the librdkafka mock cluster's highest).
    ApiVersions,
    /// Produce v3, acks=1: one record batch with one record of just under
    /// 1 MiB, to partition 0's leader (opt-in: `--workloads produce-1mib`).
    Produce,
    /// Fetch v4, read_uncommitted, up to 2 MiB, from the newest record of
    /// the Produce topic's partition 0 (at its leader): a response of one
    /// ~1 MiB record batch (opt-in: `--workloads fetch-1mib`).
    Fetch,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::Metadata,
        Workload::ApiVersions,
        Workload::Produce,
        Workload::Fetch,
    ];

    /// What runs when `--workloads` is not given.
    const DEFAULT: [Workload; 2] = [Workload::Metadata, Workload::ApiVersions];

    fn name(self) -> &'static str {
        match self {
            Workload::Metadata => "metadata",
            Workload::ApiVersions => "api-versions",
            Workload::Produce => "produce-1mib",
            Workload::Fetch => "fetch-1mib",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Workload::Metadata => "Metadata v4, all topics",
            Workload::ApiVersions => "ApiVersions v2",
            Workload::Produce => "Produce v3, acks=1, 1 MiB request (one record)",
            Workload::Fetch => "Fetch v4, read_uncommitted, 1 MiB response (one record batch)",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == s)
    }

    pub(crate) fn api_key(self) -> i16 {
        match self {
            Workload::Metadata => 3,
            Workload::ApiVersions => 18,
            Workload::Produce => 0,
            Workload::Fetch => 1,
        }
    }

    pub(crate) fn version(self) -> i16 {
        match self {
            Workload::Metadata => 4,
            Workload::ApiVersions => 2,
            Workload::Produce => produce::VERSION,
            Workload::Fetch => fetch::VERSION,
        }
    }

    /// The encoded request body.
    pub(crate) fn body(self) -> bytes::Bytes {
        match self {
            // topics: null array (all topics); allow_auto_topic_creation: false
            Workload::Metadata => bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x00]),
            Workload::ApiVersions => bytes::Bytes::new(),
            Workload::Produce => produce::body(),
            Workload::Fetch => fetch::body(),
        }
    }

    /// Checks one response body (after the response header).
    pub(crate) fn check(self, body: &[u8]) -> Result<(), String> {
        match self {
            Workload::ApiVersions => match body.get(..2) {
                Some([0, 0]) => Ok(()),
                Some(code) => Err(format!("ApiVersions error code {code:?}")),
                None => Err("empty ApiVersions response".to_owned()),
            },
            // throttle_time_ms, then the broker array: at least one broker.
            Workload::Metadata if body.len() > 8 => Ok(()),
            Workload::Metadata => Err(format!("a {}-byte Metadata response", body.len())),
            Workload::Produce => produce::check(body),
            Workload::Fetch => fetch::check(body),
        }
    }
}

/// One child's job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) client: ClientKind,
    pub(crate) workload: Workload,
    pub(crate) concurrency: usize,
    pub(crate) broker: String,
    pub(crate) seconds: f64,
    pub(crate) warmup: f64,
}

/// What a child measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    requests: u64,
    elapsed: Duration,
    cpu: Duration,
    /// The user-space part of `cpu`: the client's own code, without the
    /// kernel's socket work and wake-ups. Linux splits a process's CPU time
    /// into user and system by sampling at the scheduler tick, so one run's
    /// split is rough; the medians of many runs are what to read.
    user: Duration,
    max_rss_kib: u64,
    /// Resident anonymous memory (heap, stacks, buffers: `RssAnon`) at the
    /// end of the measured phase: what the client holds, without the code
    /// and library pages that make up most of the peak RSS.
    anon_kib: u64,
    response_bytes: usize,
    /// Voluntary context switches (a thread blocked: a wake-up to come).
    switches: u64,
    /// Involuntary context switches: the scheduler took the CPU away from
    /// a thread that could run (preempted, e.g. by the broker's threads).
    preemptions: u64,
    /// Moves of a thread to another CPU (`se.nr_migrations` in
    /// `/proc/self/task/*/sched`; 0 where the kernel does not report it).
    migrations: u64,
    /// What the peer process (`E2E_PEER_PID`, the broker) did meanwhile.
    peer: PeerUse,
}

/// The CPU time and the sleeps of another process's threads, summed, from
/// `/proc/PID/task/*` (`schedstat`'s time on a CPU, `status`'s voluntary
/// context switches). A broker that sleeps between requests is woken by
/// the client's send, and on loopback that wake-up is work done in the
/// client's system call (`docs/benchmarks.md`): its sleeps per request say
/// how often the client paid for one.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PeerUse {
    cpu: Duration,
    sleeps: u64,
}

impl PeerUse {
    /// The peer named by `E2E_PEER_PID`, now; zero without one (or where
    /// its `/proc` entries cannot be read). A thread that ended between two
    /// readings is no longer counted: brokers keep theirs.
    fn read() -> Self {
        let Some(pid) = std::env::var("E2E_PEER_PID")
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            return Self::default();
        };
        let mut total = Self::default();
        for dir in threads(&format!("/proc/{pid}")) {
            // schedstat: time on a CPU (ns), time waiting to run, slices.
            let cpu = std::fs::read_to_string(dir.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
            let sleeps = proc_field(&dir.join("status"), "voluntary_ctxt_switches:").unwrap_or(0);
            total.cpu += Duration::from_nanos(cpu);
            total.sleeps += sleeps;
        }
        total
    }

    /// What happened between `earlier` and `self`.
    fn since(self, earlier: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            sleeps: self.sleeps.saturating_sub(earlier.sleeps),
        }
    }
}

impl Sample {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    /// `count` (switches, preemptions, ...) per request of this sample.
    fn per_request(&self, count: u64) -> f64 {
        count as f64 / self.requests.max(1) as f64
    }

    fn switches_per_request(&self) -> f64 {
        self.per_request(self.switches)
    }

    fn rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }

    fn anon_kib(&self) -> f64 {
        self.anon_kib as f64
    }
}

/// This process's resident anonymous memory in KiB (`RssAnon` in
/// `/proc/self/status`; 0 where there is no such file).
fn rss_anon_kib() -> u64 {
    proc_field(std::path::Path::new("/proc/self/status"), "RssAnon:").unwrap_or(0)
}

/// The number on the line of `file` (a `/proc` file of "key: value"
/// lines) that starts with `key`, without the separator and a "kB" unit.
fn proc_field(file: &std::path::Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let value = text.lines().find_map(|l| l.strip_prefix(key))?;
    let value = value.trim().trim_start_matches(':').trim();
    value.trim_end_matches("kB").trim().parse().ok()
}

/// The directories of the threads of a process (`/proc/self`,
/// `/proc/PID`), as they are now; none where it cannot be read.
fn threads(process: &str) -> impl Iterator<Item = std::path::PathBuf> {
    std::fs::read_dir(format!("{process}/task"))
        .into_iter()
        .flatten()
        .filter_map(|t| Some(t.ok()?.path()))
}

/// This process's resource use so far (every thread).
struct Usage {
    /// CPU time in user space.
    user: Duration,
    /// CPU time in the kernel on the process's behalf.
    system: Duration,
    max_rss_kib: u64,
    /// Voluntary context switches.
    switches: u64,
    /// Involuntary context switches.
    preemptions: u64,
}

impl Usage {
    /// CPU time, user + system.
    fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

fn rusage() -> Usage {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage(RUSAGE_SELF)");
    let user = u.user_time().num_microseconds().max(0) as u64;
    let system = u.system_time().num_microseconds().max(0) as u64;
    Usage {
        user: Duration::from_micros(user),
        system: Duration::from_micros(system),
        max_rss_kib: u.max_rss().max(0) as u64,
        switches: u.voluntary_context_switches().max(0) as u64,
        preemptions: u.involuntary_context_switches().max(0) as u64,
    }
}

/// CPU migrations of this process's threads so far, from the scheduler's
/// per-thread statistics (`/proc/self/task/*/sched`, present with
/// `CONFIG_SCHED_DEBUG`); 0 where the kernel does not report them. A
/// thread that ended is no longer counted: the children's clients keep
/// their threads for the whole run.
fn migrations() -> u64 {
    threads("/proc/self")
        .filter_map(|t| proc_field(&t.join("sched"), "se.nr_migrations"))
        .sum()
}

/// Brackets the measured phase of a child.
pub(crate) struct Meter {
    /// Read before `usage` at the start and after it at the end, so that
    /// reading `/proc` is outside the CPU time measured.
    migrations: u64,
    peer: PeerUse,
    usage: Usage,
    start: Instant,
}

impl Meter {
    pub(crate) fn start() -> Self {
        Self {
            peer: PeerUse::read(),
            migrations: migrations(),
            usage: rusage(),
            start: Instant::now(),
        }
    }

    pub(crate) fn finish(self, requests: u64, response_bytes: usize) -> Sample {
        let elapsed = self.start.elapsed();
        let now = rusage();
        let migrations = migrations();
        let peer = PeerUse::read().since(self.peer);
        Sample {
            requests,
            elapsed,
            cpu: now.cpu().saturating_sub(self.usage.cpu()),
            user: now.user.saturating_sub(self.usage.user),
            max_rss_kib: now.max_rss_kib,
            anon_kib: rss_anon_kib(),
            response_bytes,
            switches: now.switches.saturating_sub(self.usage.switches),
            preemptions: now.preemptions.saturating_sub(self.usage.preemptions),
            migrations: migrations.saturating_sub(self.migrations),
            peer,
        }
    }
}

/// `--requests N` (children only): the measured phase ends after N
/// requests instead of after a time, and the warm-up after
/// [`WARMUP_REQUESTS`], so that two runs under callgrind with different N
/// give instructions per request by difference, independent of how fast
/// the loaded machine ran (`scripts/bench-instructions` with
/// `BENCH_REQUESTS`). 0: phases are timed.
static BUDGET: AtomicU64 = AtomicU64::new(0);
/// The warm-up of budget mode: the same in every run, so that it cancels.
const WARMUP_REQUESTS: u64 = 5_000;
/// Requests completed in the current phase, and phases started, in budget
/// mode (every client calls [`stop_after`] once per phase: the first is
/// the warm-up).
static PHASE_DONE: AtomicU64 = AtomicU64::new(0);
static PHASES: AtomicU64 = AtomicU64::new(0);
static PHASE_BUDGET: AtomicU64 = AtomicU64::new(0);

/// Counts `n` completed requests of the current phase; in budget mode, sets
/// `stop` once the phase's budget is reached. The client loops call it per
/// batch of completions.
pub(crate) fn note_done(n: u64, stop: &AtomicBool) {
    let budget = PHASE_BUDGET.load(Ordering::Relaxed);
    if budget > 0 && PHASE_DONE.fetch_add(n, Ordering::Relaxed) + n >= budget {
        stop.store(true, Ordering::Relaxed);
    }
}

/// A flag that a helper thread sets after `seconds` (or, with
/// `--requests`, [`note_done`] once the phase's requests are done):
/// workers stop issuing new requests when they see it.
pub(crate) fn stop_after(seconds: f64) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let budget = BUDGET.load(Ordering::Relaxed);
    if budget > 0 {
        let warmup = PHASES.fetch_add(1, Ordering::Relaxed) == 0;
        PHASE_DONE.store(0, Ordering::Relaxed);
        PHASE_BUDGET.store(
            if warmup { WARMUP_REQUESTS } else { budget },
            Ordering::Relaxed,
        );
        return stop;
    }
    let flag = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(seconds));
        flag.store(true, Ordering::Relaxed);
    });
    stop
}

const RESULT_TAG: &str = "E2E-RESULT";

/// Entry point of the `e2e` binary and bench: `args` without the program name.
pub fn main(args: Vec<String>) -> i32 {
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        return scenarios::main(&args[i + 1..]);
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("e2e: {e}");
            return 2;
        }
    };
    if let Some(bootstrap) = &opts.produce_leader {
        return match produce::leader_address(bootstrap) {
            Ok(leader) => {
                println!("{leader}");
                0
            }
            Err(e) => {
                eprintln!("e2e: {e}");
                1
            }
        };
    }
    if let Some(job) = opts.child {
        // The scripts start children directly (bench-placement,
        // bench-instructions): without this a fresh mock cluster answers
        // Metadata with no topics (104 bytes instead of 12,712), and the
        // workload measured depends on whether the tests ran first.
        let setup = match job.workload {
            Workload::Metadata => produce::ensure_metadata_topics(&job.broker),
            // The topic, a record in it, and the offset to fetch from (set
            // before the request body is encoded).
            Workload::Fetch => fetch::prepare_child(&job.broker),
            Workload::ApiVersions | Workload::Produce => Ok(()),
        };
        if let Err(e) = setup {
            eprintln!("e2e child {}: {e}", job.client.name());
            return 1;
        }
        return match clients::run(&job) {
            Ok(s) => {
                println!(
                    "{RESULT_TAG} {} {} {} {} {} {} {} {} {} {} {} {}",
                    s.requests,
                    s.elapsed.as_nanos(),
                    s.cpu.as_nanos(),
                    s.max_rss_kib,
                    s.response_bytes,
                    s.switches,
                    s.anon_kib,
                    s.user.as_nanos(),
                    s.preemptions,
                    s.migrations,
                    s.peer.cpu.as_nanos(),
                    s.peer.sleeps
                );
                0
            }
            Err(e) => {
                eprintln!("e2e child {}: {e}", job.client.name());
                1
            }
        };
    }
    parent(&opts)
}

#[derive(Debug)]
struct Options {
    child: Option<Job>,
    /// `--produce-leader BOOTSTRAP`: print the Produce topic's leader, exit.
    produce_leader: Option<String>,
    runs: usize,
    seconds: f64,
    warmup: f64,
    clients: Vec<ClientKind>,
    workloads: Vec<Workload>,
    concurrency: Vec<usize>,
    targets: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Options {
            child: None,
            produce_leader: None,
            runs: 3,
            seconds: 2.0,
            warmup: 0.5,
            clients: ClientKind::ALL.to_vec(),
            workloads: Workload::DEFAULT.to_vec(),
            concurrency: vec![1, 64],
            targets: vec!["mock".to_owned(), "tansu".to_owned()],
        };
        let mut child_client = None;
        let mut broker = None;
        let mut it = args.iter();
        let num = |v: Option<&String>, what: &str| -> Result<f64, String> {
            v.and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or_else(|| format!("{what} needs a positive number"))
        };
        let list = |v: Option<&String>| -> Vec<String> {
            v.map(|v| v.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "--child" => {
                    let name = it.next().ok_or("--child needs a client")?;
                    child_client = Some(ClientKind::parse_or_list(name)?);
                }
                "--broker" => broker = it.next().cloned(),
                "--produce-leader" => o.produce_leader = it.next().cloned(),
                "--runs" => o.runs = num(it.next(), "--runs")? as usize,
                "--seconds" => o.seconds = num(it.next(), "--seconds")?,
                "--warmup" => o.warmup = num(it.next(), "--warmup")?,
                "--clients" => {
                    o.clients = list(it.next())
                        .iter()
                        .map(|c| ClientKind::parse_or_list(c))
                        .collect::<Result<_, _>>()?
                }
                "--workloads" | "--workload" => {
                    o.workloads = list(it.next())
                        .iter()
                        .map(|w| Workload::parse(w).ok_or_else(|| format!("unknown workload {w}")))
                        .collect::<Result<_, _>>()?
                }
                "--concurrency" => {
                    o.concurrency = list(it.next())
                        .iter()
                        .map(|c| c.parse::<usize>().ok().filter(|c| *c > 0))
                        .collect::<Option<_>>()
                        .ok_or("--concurrency needs positive integers")?
                }
                "--targets" => o.targets = list(it.next()),
                "--requests" => {
                    BUDGET.store(num(it.next(), "--requests")? as u64, Ordering::Relaxed);
                }
                // `cargo bench` passes --bench, `just bench ARGS` may pass
                // criterion options: not ours, ignored.
                _ => {}
            }
        }
        if let Some(client) = child_client {
            o.child = Some(Job {
                client,
                workload: *o.workloads.first().ok_or("--child needs --workload")?,
                concurrency: *o.concurrency.first().ok_or("--child needs --concurrency")?,
                broker: broker.ok_or("--child needs --broker")?,
                seconds: o.seconds,
                warmup: o.warmup,
            });
        }
        Ok(o)
    }
}

struct Target {
    name: &'static str,
    label: &'static str,
    address: String,
}

fn targets(opts: &Options) -> Vec<Target> {
    let first = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.split(',').next().map(str::trim).map(str::to_owned))
            .filter(|v| !v.is_empty())
    };
    let mut out = Vec::new();
    for t in &opts.targets {
        let (name, label, var) = match t.as_str() {
            "mock" => (
                "mock",
                "librdkafka mock cluster (main target)",
                "KAFKA_MOCK_BOOTSTRAP",
            ),
            "tansu" => (
                "tansu",
                "tansu 0.6.0 (broker-bound: measures the broker more than the client)",
                "KAFKA_PLAINTEXT_BOOTSTRAP",
            ),
            other => {
                eprintln!("e2e: unknown target {other} (mock, tansu)");
                continue;
            }
        };
        match first(var) {
            Some(address) => out.push(Target {
                name,
                label,
                address,
            }),
            None => eprintln!("e2e: {var} is not set: skipping {name} (. .broker-state/env)"),
        }
    }
    out
}

fn run_child(exe: &std::path::Path, job: &Job) -> Result<Sample, String> {
    let mut cmd = Command::new(exe);
    // One executor thread, like tokio's current-thread runtime and smol's
    // global executor here: async-std's default (one per CPU) moves tasks
    // between threads, ~2 sleeps per request at concurrency 1 instead of 1.
    // A value set by the caller wins.
    if matches!(
        job.client,
        ClientKind::AsyncStd | ClientKind::AsyncStdDirect | ClientKind::AsyncStdCluster
    ) && std::env::var_os("ASYNC_STD_THREAD_COUNT").is_none()
    {
        cmd.env("ASYNC_STD_THREAD_COUNT", "1");
    }
    let out = cmd
        .args([
            "--child",
            job.client.name(),
            "--broker",
            &job.broker,
            "--workload",
            job.workload.name(),
            "--concurrency",
            &job.concurrency.to_string(),
            "--seconds",
            &job.seconds.to_string(),
            "--warmup",
            &job.warmup.to_string(),
        ])
        .output()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix(RESULT_TAG));
    let Some(line) = line.filter(|_| out.status.success()) else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().last().unwrap_or("no output").to_owned();
        return Err(format!("{} ({})", why, out.status));
    };
    let f: Vec<u128> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [requests, elapsed, cpu, rss, bytes, switches, anon, user, preemptions, migrations, peer_cpu, peer_sleeps] =
        f[..]
    else {
        return Err(format!("unparsable child output: {line}"));
    };
    Ok(Sample {
        requests: requests as u64,
        elapsed: Duration::from_nanos(elapsed as u64),
        cpu: Duration::from_nanos(cpu as u64),
        user: Duration::from_nanos(user as u64),
        max_rss_kib: rss as u64,
        anon_kib: anon as u64,
        response_bytes: bytes as usize,
        switches: switches as u64,
        preemptions: preemptions as u64,
        migrations: migrations as u64,
        peer: PeerUse {
            cpu: Duration::from_nanos(peer_cpu as u64),
            sleeps: peer_sleeps as u64,
        },
    })
}

/// Median, min and max.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn fmt_rate(x: f64) -> String {
    let x = x.round() as u64;
    let s = x.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn parent(opts: &Options) -> i32 {
    let targets = targets(opts);
    if targets.is_empty() {
        println!(
            "e2e: no broker configured: skipped (run `just bench`, or `. .broker-state/env` first)"
        );
        return 0;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("e2e: cannot find my own executable: {e}");
            return 1;
        }
    };
    println!(
        "# kafka-conn end-to-end benchmark: {} runs x {} s (after {} s warm-up), one connection, one child process per client run",
        opts.runs, opts.seconds, opts.warmup
    );
    let mut failures = 0;
    for target in &targets {
        for &workload in &opts.workloads {
            // Produce and Fetch must go to the partition's leader (Fetch
            // needs a record there too); Metadata needs topics to describe.
            let broker = match workload {
                Workload::Produce => match produce::leader_address(&target.address) {
                    Ok(leader) => leader,
                    Err(e) => {
                        eprintln!("e2e: {} {}: FAILED: {e}", target.name, workload.name());
                        failures += 1;
                        continue;
                    }
                },
                Workload::Fetch => match fetch::prepare(&target.address) {
                    Ok((leader, offset)) => {
                        eprintln!(
                            "e2e: {} {}: fetching {}/0 from offset {offset} at {leader}",
                            target.name,
                            workload.name(),
                            produce::TOPIC
                        );
                        leader
                    }
                    Err(e) => {
                        eprintln!("e2e: {} {}: FAILED: {e}", target.name, workload.name());
                        failures += 1;
                        continue;
                    }
                },
                Workload::Metadata => match produce::ensure_metadata_topics(&target.address) {
                    Ok(()) => target.address.clone(),
                    Err(e) => {
                        eprintln!("e2e: {} {}: FAILED: {e}", target.name, workload.name());
                        failures += 1;
                        continue;
                    }
                },
                Workload::ApiVersions => target.address.clone(),
            };
            println!();
            println!("## {} at {broker}: {}", target.label, workload.label());
            println!();
            println!("| concurrency | client | requests/s | CPU µs/request | CPU vs raw | CPU vs raw on its runtime | sleeps/request | peak RSS MiB | anon RSS KiB |");
            println!("|---|---|---|---|---|---|---|---|---|");
            // The mock cluster is shared with the test suites, whose topics
            // make Metadata responses grow: note the size each group saw.
            let mut response_bytes = Vec::new();
            for &concurrency in &opts.concurrency {
                let clients: Vec<ClientKind> = opts
                    .clients
                    .iter()
                    .copied()
                    .filter(|c| c.supports(workload))
                    .collect();
                let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); clients.len()];
                let mut errors: Vec<Option<String>> = vec![None; clients.len()];
                for run in 0..opts.runs {
                    // Rotate the order so no client always runs first (or last).
                    for k in 0..clients.len() {
                        let i = (k + run) % clients.len();
                        let job = Job {
                            client: clients[i],
                            workload,
                            concurrency,
                            broker: broker.clone(),
                            seconds: opts.seconds,
                            warmup: opts.warmup,
                        };
                        match run_child(&exe, &job) {
                            Ok(s) => {
                                eprintln!(
                                    "e2e: {} {} c={} {} run {}: {:.0} req/s, {:.2} µs CPU/req, {:.2} switches/req, {:.3} preempted/req, {:.3} migrated/req, {:.1} MiB",
                                    target.name,
                                    workload.name(),
                                    concurrency,
                                    clients[i].name(),
                                    run + 1,
                                    s.per_second(),
                                    s.cpu_us_per_request(),
                                    s.switches_per_request(),
                                    s.per_request(s.preemptions),
                                    s.per_request(s.migrations),
                                    s.rss_mib()
                                );
                                if s.response_bytes > 0 {
                                    response_bytes.push(s.response_bytes);
                                }
                                samples[i].push(s);
                            }
                            Err(e) => {
                                eprintln!(
                                    "e2e: {} {} c={} {} run {}: FAILED: {e}",
                                    target.name,
                                    workload.name(),
                                    concurrency,
                                    clients[i].name(),
                                    run + 1
                                );
                                failures += 1;
                                errors[i] = Some(e);
                            }
                        }
                    }
                }
                let median_cpu = |kind: ClientKind| {
                    clients
                        .iter()
                        .position(|c| *c == kind)
                        .filter(|&i| !samples[i].is_empty())
                        .map(|i| {
                            stats(samples[i].iter().map(Sample::cpu_us_per_request).collect()).0
                        })
                };
                let raw_cpu = median_cpu(ClientKind::Raw);
                for (i, client) in clients.iter().enumerate() {
                    let s = &samples[i];
                    if s.is_empty() {
                        println!(
                            "| {concurrency} | {} | failed: {} | | | | | | |",
                            client.label(),
                            errors[i].as_deref().unwrap_or("no runs")
                        );
                        continue;
                    }
                    let rate = stats(s.iter().map(Sample::per_second).collect());
                    let cpu = stats(s.iter().map(Sample::cpu_us_per_request).collect());
                    let rss = stats(s.iter().map(Sample::rss_mib).collect());
                    let sleeps = stats(s.iter().map(Sample::switches_per_request).collect());
                    let anon = stats(s.iter().map(Sample::anon_kib).collect());
                    let ratio = |limit: Option<f64>| {
                        limit
                            .map(|r| format!("{:.2}x", cpu.0 / r))
                            .unwrap_or_default()
                    };
                    let vs_raw = ratio(raw_cpu);
                    let vs_runtime = ratio(median_cpu(client.runtime_limit()));
                    println!(
                        "| {concurrency} | {} | **{}** ({}..{}) | **{:.2}** ({:.2}..{:.2}) | {} | {} | {:.2} | **{:.1}** ({:.1}..{:.1}) | **{:.0}** ({:.0}..{:.0}) |",
                        client.label(),
                        fmt_rate(rate.0),
                        fmt_rate(rate.1),
                        fmt_rate(rate.2),
                        cpu.0,
                        cpu.1,
                        cpu.2,
                        vs_raw,
                        vs_runtime,
                        sleeps.0,
                        rss.0,
                        rss.1,
                        rss.2,
                        anon.0,
                        anon.1,
                        anon.2
                    );
                }
            }
            if let (Some(min), Some(max)) =
                (response_bytes.iter().min(), response_bytes.iter().max())
            {
                println!();
                if min == max {
                    println!("Response body: {min} bytes.");
                } else {
                    println!("Response body: {min} to {max} bytes (topics created meanwhile).");
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("e2e: {failures} client runs failed");
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::{ClientKind, Workload};

    #[test]
    fn every_workload_name_is_unique_and_parses_back() {
        for (i, w) in Workload::ALL.iter().enumerate() {
            assert_eq!(Workload::parse(w.name()), Some(*w), "{}", w.name());
            assert!(
                Workload::ALL[i + 1..].iter().all(|v| v.name() != w.name()),
                "{} twice",
                w.name()
            );
        }
        assert_eq!(Workload::parse("fetch-1mib"), Some(Workload::Fetch));
        assert_eq!(
            (Workload::Fetch.api_key(), Workload::Fetch.version()),
            (1, 4)
        );
    }

    #[test]
    fn every_client_name_is_unique_and_parses_back() {
        let all: Vec<ClientKind> = ClientKind::ALL
            .into_iter()
            .chain(ClientKind::OPT_IN)
            .collect();
        for (i, c) in all.iter().enumerate() {
            assert_eq!(ClientKind::parse(c.name()), Some(*c), "{}", c.name());
            assert!(
                all[i + 1..].iter().all(|d| d.name() != c.name()),
                "{} twice",
                c.name()
            );
        }
    }

    #[test]
    fn an_unknown_client_is_refused_with_every_name_there_is() {
        let e = ClientKind::parse_or_list("kc-tokyo").unwrap_err();
        assert!(
            e.starts_with("unknown client kc-tokyo (known: raw, "),
            "{e}"
        );
        for name in [
            "kc-tokio",
            "raw-tokio-owned",
            "raw-smol-owned",
            "kc-tokio-metrics-buckets",
        ] {
            assert!(e.contains(name), "{name} missing from: {e}");
        }
    }
}
