//! `kconn`: tells, step by step, whether and how a Kafka client can talk to
//! a broker, and why not.
//!
//! - `kconn check`: DNS, TCP, TLS (version, cipher, certificate subject and
//!   expiry), ApiVersions (version, fallback), SASL (mechanism, session
//!   lifetime), ready, then a Metadata request that checks what the cluster
//!   advertises; on failure, one line with what is wrong and what to try.
//! - `kconn api-versions`: each broker's APIs and versions, and the version
//!   kafka-conn would use.
//! - `kconn ping`: ApiVersions round-trip latency (`--brokers`: of every
//!   broker of the cluster, through the driver's `Cluster`).
//! - `kconn bench`: pipelined throughput and latency on one connection
//!   (`--brokers`: spread over the cluster's brokers).
//! - `kconn errcode`, `kconn completions`, `kconn man`: lookups.
//!
//! Every connecting command reads Java client and librdkafka configuration
//! files (`-F`), and prints a versioned JSON envelope with `--json`.
//!
//! Built on `kafka-conn-tokio`. Exit codes: 0 success, 1 a check or request
//! failed, 2 a usage or configuration error, 141 stdout was closed. See
//! `docs/kconn.md` in the repository.

mod api_versions;
mod bench;
mod certs;
mod check;
mod cli;
mod config;
mod diagnose;
mod envelope;
mod errcode;
mod kafka;
mod latency;
mod observe;
mod output;
mod ping;
mod release;
mod roundtrip;
mod settings;
mod spread;
mod tls;
mod watch;
mod x509;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kafka_conn_tokio::Client;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::cli::{Cli, Command};
use crate::diagnose::Diagnosis;
use crate::envelope::{Envelope, NoExtra};
use crate::output::{errln, outln};
use crate::settings::{Settings, UsageError};

/// Exit code of a failed check or command.
const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error (the same as clap's).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let json = cli.common.json;
    // The lookups need no broker.
    match &cli.command {
        Command::Errcode(args) => return exit(errcode::run(args, json)),
        Command::Completions(args) => {
            let mut text = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "kconn", &mut text);
            return generated("completions", &text, json);
        }
        Command::Man => {
            let mut text = Vec::new();
            if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut text) {
                errln!("kconn: cannot render the man page: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
            return generated("man", &text, json);
        }
        _ => {}
    }
    let settings = match Settings::from_opts(&cli.common) {
        Ok(s) => s,
        Err(e) => return usage_error(cli.command.name(), &e, json),
    };
    if let (Some(config), false, false) = (
        &settings.config,
        settings.json,
        matches!(cli.command, Command::Check(_)),
    ) {
        // check shows the configuration in its report; the table commands
        // keep stdout for their tables.
        for line in config.lines() {
            errln!("{line}");
        }
    }
    let runtime = match &cli.command {
        // Throughput wants the workers and the connection task on all cores.
        Command::Bench(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        // One connection at a time: one thread, no cross-thread wake-ups in the timings.
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            errln!("kconn: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let ok = runtime.block_on(async {
        match &cli.command {
            Command::Check(args) => check::run(&settings, args).await,
            Command::ApiVersions(args) => api_versions::run(&settings, args).await,
            Command::Ping(args) => ping::run(&settings, args).await,
            Command::Bench(args) => bench::run(&settings, args).await,
            Command::Errcode(_) | Command::Completions(_) | Command::Man => true,
        }
    });
    exit(ok)
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// Prints a generated file (completions, man page), or with `--json` the
/// envelope holding it.
fn generated(command: &'static str, text: &[u8], json: bool) -> ExitCode {
    #[derive(serde::Serialize)]
    struct Extra {
        output: String,
    }
    if json {
        Envelope::<(), _>::new(
            command,
            None,
            true,
            Vec::new(),
            Extra {
                output: String::from_utf8_lossy(text).into_owned(),
            },
        )
        .print();
    } else {
        output::raw(text);
    }
    ExitCode::SUCCESS
}

/// Reports options or files that do not fit together (exit 2): like a
/// clap error on stderr, and with `--json` also as an envelope on stdout.
fn usage_error(command: &'static str, e: &UsageError, json: bool) -> ExitCode {
    if json {
        let mut envelope = Envelope::<(), _>::new(command, None, false, Vec::new(), NoExtra {});
        envelope.error = Some(Diagnosis::custom(
            diagnose::Step::Config,
            e.kind(),
            e.to_string(),
        ));
        envelope.print();
    }
    let mut cmd = Cli::command();
    let text = cmd
        .error(clap::error::ErrorKind::ArgumentConflict, e)
        .render();
    // Colours only for a person at a terminal.
    let text = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        text.ansi().to_string()
    } else {
        text.to_string()
    };
    errln!("{}", text.trim_end());
    ExitCode::from(EXIT_USAGE)
}

/// Logs to stderr: `-v` info, `-vv` debug, `-vvv` trace for kafka-conn and
/// kconn (warnings otherwise); `KCONN_LOG` (`target=level,...`) overrides.
fn init_tracing(verbose: u8) {
    // Without -v kconn reports failures itself: the libraries' own warnings
    // (e.g. "connection closed") would only repeat them.
    let level = match verbose {
        0 => LevelFilter::ERROR,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let from_env = std::env::var("KCONN_LOG")
        .ok()
        .and_then(|spec| match spec.parse::<Targets>() {
            Ok(t) => Some(t),
            Err(e) => {
                errln!("kconn: ignoring KCONN_LOG: {e}");
                None
            }
        });
    let filter = from_env.unwrap_or_else(|| {
        Targets::new()
            .with_default(LevelFilter::WARN)
            .with_target("kafka_conn_core", level)
            .with_target("kafka_conn_driver", level)
            .with_target("kafka_conn_tokio", level)
            .with_target("kconn", level)
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(true),
        )
        .with(filter)
        .init();
}

/// Connects to `broker` for `api-versions`, `ping` and `bench`,
/// explaining a failure.
pub(crate) async fn connect(settings: &Settings, broker: &str) -> Result<Client, Diagnosis> {
    settings.connect(broker).await.map_err(|e| {
        let certificate = settings
            .presented(&e)
            .first()
            .and_then(|der| x509::parse(der).ok());
        diagnose::connect_error(&e, &settings.diagnosis_context(certificate))
    })
}

/// `broker`, with the address it resolved to when that is not the same text.
pub(crate) fn describe(broker: &str, address: std::net::SocketAddr) -> String {
    if broker == address.to_string() {
        broker.to_owned()
    } else {
        format!("{broker} ({address})")
    }
}

/// Prints one JSON document on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => outln!("{text}"),
        // Our reports are plain data: serialisation cannot fail, but say so if it does.
        Err(e) => errln!("kconn: cannot write JSON: {e}"),
    }
}

/// Prints one JSON document on one line (watch mode's events).
pub(crate) fn print_json_line<T: serde::Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => errln!("kconn: cannot write JSON: {e}"),
    }
}
