//! `kconn`: tells, step by step, whether and how a Kafka client can talk to
//! a broker, and why not.
//!
//! - `kconn check`: DNS, TCP, TLS (version, cipher, certificate subject and
//!   expiry), ApiVersions (version, fallback), SASL (mechanism, session
//!   lifetime), ready, then a Metadata request that checks what the cluster
//!   advertises; on failure, one line with what is wrong and what to try.
//! - `kconn api-versions`: each broker's APIs and versions, and the version
//!   kafka-conn would use.
//! - `kconn ping`: ApiVersions round-trip latency.
//! - `kconn bench`: pipelined throughput and latency on one connection.
//!
//! Built on `kafka-conn-tokio`. Exit codes: 0 success, 1 a check or request
//! failed, 2 a usage error. See `docs/kconn.md` in the repository.

mod api_versions;
mod bench;
mod check;
mod cli;
mod diagnose;
mod kafka;
mod latency;
mod ping;
mod settings;
mod x509;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kafka_conn_tokio::Client;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::cli::{Cli, Command};
use crate::diagnose::Diagnosis;
use crate::settings::Settings;

/// Exit code of a failed check or command.
const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error (the same as clap's).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let settings = match Settings::from_opts(&cli.common) {
        Ok(s) => s,
        Err(e) => {
            let mut cmd = Cli::command();
            let text = cmd
                .error(clap::error::ErrorKind::ArgumentConflict, e)
                .render();
            eprint!("{}", text.ansi());
            return ExitCode::from(EXIT_USAGE);
        }
    };
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
            eprintln!("kconn: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let ok = runtime.block_on(async {
        match &cli.command {
            Command::Check(args) => check::run(&settings, args).await,
            Command::ApiVersions => api_versions::run(&settings).await,
            Command::Ping(args) => ping::run(&settings, args).await,
            Command::Bench(args) => bench::run(&settings, args).await,
        }
    });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
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
                eprintln!("kconn: ignoring KCONN_LOG: {e}");
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

/// Connects to `broker` for `ping` and `bench`, explaining a failure.
pub(crate) async fn connect(settings: &Settings, broker: &str) -> Result<Client, Diagnosis> {
    kafka_conn_tokio::connect(broker, settings.connect_config())
        .await
        .map_err(|e| {
            let certificate = e
                .presented_certificates()
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

/// Prints one JSON object on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // Our reports are plain data: serialisation cannot fail, but say so if it does.
        Err(e) => eprintln!("kconn: cannot write JSON: {e}"),
    }
}
