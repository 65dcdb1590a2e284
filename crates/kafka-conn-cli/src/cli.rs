//! The command line: options shared by every command, and the commands.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Step-by-step Kafka broker connection diagnostics.
#[derive(Debug, Parser)]
#[command(
    name = "kconn",
    version,
    about = "Step-by-step Kafka broker connection diagnostics",
    long_about = "Step-by-step Kafka broker connection diagnostics.\n\n\
        kconn connects to each broker of the bootstrap list the way a Kafka client \
        does (DNS, TCP, TLS, ApiVersions, SASL) and says which step failed, why, and \
        what to try. It reads the Java client's and librdkafka's configuration files \
        (-F client.properties); options given on the command line override them. \
        Secrets come from the files or the environment (KCONN_SASL_PASSWORD, \
        KCONN_OAUTH_TOKEN); they are never printed.\n\n\
        Exit codes: 0 success, 1 a check or request failed, 2 a usage or configuration \
        error, 141 stdout was closed (as `ls | head` reports it).",
    after_help = "Examples:\n  \
        kconn check -b localhost:9092\n  \
        kconn check -F client.properties\n  \
        kconn check -F client.properties --watch 5s\n  \
        kconn check -b localhost:9092 --roundtrip kconn-test --json\n  \
        kconn check -b broker:9093 --security-protocol SSL --tls-ca ca.pem\n  \
        KCONN_SASL_PASSWORD=... kconn check -b broker:9094 --sasl-mechanism SCRAM-SHA-512 --username alice\n  \
        kconn api-versions -b b1:9092,b2:9092\n  \
        kconn ping -b localhost:9092 -n 100\n  \
        kconn bench -b localhost:9092 --concurrency 32 --duration 10s\n  \
        kconn errcode 58\n  \
        kconn completions bash > /etc/bash_completion.d/kconn"
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
    /// How to reach and authenticate to the brokers.
    #[command(flatten)]
    pub(crate) common: CommonOpts,
    /// Log what happens on stderr: -v info, -vv debug, -vvv trace.
    /// KCONN_LOG (e.g. `kafka_conn_driver=trace,info`) overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Connect to each bootstrap broker step by step (DNS, TCP, TLS,
    /// ApiVersions, SASL, Metadata), then to every broker the cluster
    /// advertises, and explain the first failure of each.
    Check(CheckArgs),
    /// List, for each broker (the bootstrap brokers, then every broker the
    /// cluster advertises), the APIs and versions it supports and the
    /// version kafka-conn would use.
    ApiVersions(ApiVersionsArgs),
    /// Measure ApiVersions round trips on one connection.
    Ping(PingArgs),
    /// Pipeline many requests on one connection and measure throughput and latency.
    Bench(BenchArgs),
    /// Explain a Kafka error code: its name, meaning and whether a retry can help.
    Errcode(ErrcodeArgs),
    /// Print a shell completion script (e.g. `kconn completions bash`).
    Completions(CompletionsArgs),
    /// Print kconn's man page (roff; `kconn man | man -l -`).
    Man,
}

impl Command {
    /// The command's name, as in the JSON envelope's `command`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Check(_) => "check",
            Command::ApiVersions(_) => "api-versions",
            Command::Ping(_) => "ping",
            Command::Bench(_) => "bench",
            Command::Errcode(_) => "errcode",
            Command::Completions(_) => "completions",
            Command::Man => "man",
        }
    }
}

/// Options of `kconn errcode`.
#[derive(Debug, Args)]
pub(crate) struct ErrcodeArgs {
    /// An error code (`58`, `-1`), a name (`SASL_AUTHENTICATION_FAILED`, any
    /// case, `-` or `_`), or part of names (`sasl`); none lists every code.
    #[arg(allow_hyphen_values = true)]
    pub(crate) code: Option<String>,
}

/// Options of `kconn completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Options of `kconn check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Stop after the connection is ready: skip the Metadata request that
    /// checks what the broker advertises.
    #[arg(long, conflicts_with = "roundtrip")]
    pub(crate) no_metadata: bool,
    /// Check the bootstrap brokers only, not every broker the cluster
    /// advertises in its Metadata (what clients connect to after
    /// bootstrapping).
    #[arg(long)]
    pub(crate) bootstrap_only: bool,
    /// Check again every INTERVAL (e.g. `5s`, `1m`) and print only what
    /// changed, with timestamps, until interrupted (Ctrl-C, SIGTERM). Exit
    /// status: that of the last check.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_watch_interval)]
    pub(crate) watch: Option<Duration>,
    /// Warn when a certificate the broker presents expires within N days
    /// (an expired one is an error).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub(crate) cert_warn_days: u32,
    /// Produce one record to TOPIC (partition 0) and fetch it back from
    /// the partition's leader. The topic must exist (see --create-topic).
    #[arg(long, value_name = "TOPIC")]
    pub(crate) roundtrip: Option<String>,
    /// With --roundtrip: create the topic (1 partition) if it does not exist.
    #[arg(long, requires = "roundtrip")]
    pub(crate) create_topic: bool,
}

/// Options of `kconn api-versions`.
#[derive(Debug, Args)]
pub(crate) struct ApiVersionsArgs {
    /// Guess each broker's Apache Kafka release from its API version
    /// ranges (exact, close, newer than kconn knows, or no good match).
    #[arg(long)]
    pub(crate) probe_version: bool,
    /// Only the bootstrap brokers, not every broker the cluster advertises.
    #[arg(long)]
    pub(crate) bootstrap_only: bool,
}

/// Options of `kconn ping`.
#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// How many round trips.
    #[arg(short = 'n', long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: u64,
    /// Pause between round trips (e.g. `100ms`, `1s`).
    #[arg(short, long, default_value = "0s", value_parser = parse_duration)]
    pub(crate) interval: Duration,
    /// Ping the cluster's brokers instead of the first bootstrap broker:
    /// `all` (every broker the cluster advertises in Metadata) or node ids
    /// (`1,3`). Each round pings every one of them at once; a summary per
    /// broker at the end.
    #[arg(long, value_name = "all|ID[,ID...]", value_parser = parse_brokers)]
    pub(crate) brokers: Option<BrokerSelection>,
    #[command(flatten)]
    pub(crate) observe: ObserveArgs,
}

/// Which of the cluster's brokers `ping --brokers` and `bench --brokers`
/// talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BrokerSelection {
    /// Every broker the cluster advertises.
    All,
    /// These node ids, ascending, each once.
    Nodes(Vec<i32>),
}

impl fmt::Display for BrokerSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerSelection::All => f.write_str("all"),
            BrokerSelection::Nodes(ids) => {
                let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
                f.write_str(&ids.join(","))
            }
        }
    }
}

/// `all` (any case) or comma-separated node ids (`1,3`).
pub(crate) fn parse_brokers(text: &str) -> Result<BrokerSelection, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(BrokerSelection::All);
    }
    let mut ids = Vec::new();
    for part in t.split(',') {
        let part = part.trim();
        match part.parse::<i32>() {
            Ok(id) if id >= 0 => ids.push(id),
            _ => {
                // A host:port here is the likeliest mistake: say where it goes.
                return Err(format!(
                    "{part:?} is not a node id: --brokers takes `all` or the brokers' node ids (e.g. 1,3); their addresses go to -b"
                ));
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(BrokerSelection::Nodes(ids))
}

/// Watching a long `ping` or `bench` (docs/kconn.md).
#[derive(Debug, Args)]
pub(crate) struct ObserveArgs {
    /// Show a progress line on stderr even when it is not a terminal (then
    /// one line a second). On a terminal it is shown for long runs anyway.
    #[arg(long)]
    pub(crate) progress: bool,
    /// Serve the connection's metrics in Prometheus' text format at
    /// http://HOST:PORT/metrics while the command runs (the names of
    /// docs/metrics.md). Needs kconn built with the `metrics` feature.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<String>,
}

/// Options of `kconn bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Requests in flight at once on the connection (with --brokers: in
    /// total, over every broker).
    #[arg(short, long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) concurrency: u64,
    /// Stop after this many requests (default 10000 unless --duration is given).
    #[arg(short = 'n', long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) requests: Option<u64>,
    /// Run for this long instead (e.g. `10s`, `1m`).
    #[arg(short, long, value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// The request to send.
    #[arg(long, value_enum, default_value_t = BenchRequest::ApiVersions)]
    pub(crate) request: BenchRequest,
    /// Spread the requests over the cluster's brokers, round-robin, instead
    /// of one connection to the first bootstrap broker: `all` (every broker
    /// the cluster advertises in Metadata) or node ids (`1,3`). The
    /// --concurrency workers are shared by the brokers; rates per broker
    /// and in total at the end.
    #[arg(long, value_name = "all|ID[,ID...]", value_parser = parse_brokers)]
    pub(crate) brokers: Option<BrokerSelection>,
    #[command(flatten)]
    pub(crate) observe: ObserveArgs,
}

/// What `kconn bench` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchRequest {
    /// ApiVersions: answered by every broker without touching any topic.
    ApiVersions,
    /// Metadata for no topics: brokers and controller only.
    Metadata,
}

/// How to reach and authenticate to the brokers (global: accepted before or
/// after the command name).
#[derive(Debug, Args)]
pub(crate) struct CommonOpts {
    /// Brokers to contact: host:port[,host:port...].
    #[arg(
        short,
        long,
        value_delimiter = ',',
        env = "KCONN_BOOTSTRAP",
        global = true,
        value_name = "HOST:PORT",
        help_heading = "Connection"
    )]
    pub(crate) bootstrap: Vec<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. Default: inferred from the
    /// TLS and SASL options given (PLAINTEXT when there are none).
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        global = true,
        help_heading = "Connection"
    )]
    pub(crate) security_protocol: Option<SecurityProtocol>,
    /// Timeout of each step: TCP connect, TLS handshake, Kafka handshake,
    /// each request (e.g. `500ms`, `10s`) [default: 10s, or the files'
    /// socket.connection.setup.timeout.ms and request.timeout.ms].
    #[arg(long, value_parser = parse_duration, global = true, help_heading = "Connection")]
    pub(crate) timeout: Option<Duration>,
    /// The client id sent in request headers [default: kconn, or the files' client.id].
    #[arg(long, global = true, help_heading = "Connection")]
    pub(crate) client_id: Option<String>,
    /// Read a Java client .properties or librdkafka configuration file
    /// (bootstrap.servers, security.protocol, sasl.*, ssl.*, ...). Repeat
    /// for several files: later files override earlier ones, and
    /// command-line options (and KCONN_* variables) override the files.
    #[arg(
        short = 'F',
        long = "config",
        value_name = "FILE",
        global = true,
        help_heading = "Connection"
    )]
    pub(crate) config: Vec<PathBuf>,
    /// Print JSON instead of text: one object (schema in docs/kconn.md), or
    /// one line per event with --watch.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Connect through a proxy: socks5://HOST:PORT (the broker's name
    /// resolved here), socks5h://HOST:PORT (resolved by the proxy) or
    /// http://HOST:PORT (HTTP CONNECT), with optional USER:PASSWORD@
    /// (percent-encoded). Prefer KCONN_PROXY for credentials: arguments are
    /// visible in `ps`. Every broker connection goes through it.
    #[arg(
        long,
        env = "KCONN_PROXY",
        hide_env_values = true,
        global = true,
        value_name = "URL",
        help_heading = "Dialing"
    )]
    pub(crate) proxy: Option<kafka_conn_tokio::Proxy>,
    /// Which IP versions to use: any (both, raced), v4 or v6 only
    /// [default: any, or the files' broker.address.family].
    #[arg(long, value_enum, global = true, help_heading = "Dialing")]
    pub(crate) address_family: Option<FamilyArg>,
    /// Use both IP versions but try this one first (RFC 8305).
    #[arg(
        long,
        value_enum,
        global = true,
        conflicts_with = "address_family",
        help_heading = "Dialing"
    )]
    pub(crate) prefer_family: Option<PreferArg>,
    /// Happy Eyeballs: start the next address this long after the last
    /// while it is still pending (RFC 8305; at least 10ms) [default: 250ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, global = true, help_heading = "Dialing")]
    pub(crate) attempt_delay: Option<Duration>,
    /// Resolve HOST:PORT to these addresses instead of asking DNS (like
    /// curl --resolve); repeat for several names. The addresses are raced
    /// in the order given; ADDR:PORT gives one its own port.
    #[arg(
        long,
        value_name = "HOST:PORT=ADDR[,ADDR...]",
        value_parser = parse_resolve,
        global = true,
        help_heading = "Dialing"
    )]
    pub(crate) resolve: Vec<ResolveOverride>,
    /// No TCP keepalive [default: on, 60s idle, 10s interval, 3 probes].
    #[arg(long, global = true, help_heading = "Dialing")]
    pub(crate) no_keepalive: bool,
    /// TCP keepalive: idle time before the first probe.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, global = true, conflicts_with = "no_keepalive", help_heading = "Dialing")]
    pub(crate) keepalive_idle: Option<Duration>,
    /// TCP keepalive: time between probes.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, global = true, conflicts_with = "no_keepalive", help_heading = "Dialing")]
    pub(crate) keepalive_interval: Option<Duration>,
    /// TCP keepalive: unanswered probes before the connection is given up.
    #[arg(long, value_name = "N", global = true, conflicts_with = "no_keepalive", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Dialing")]
    pub(crate) keepalive_count: Option<u32>,
    /// TCP_USER_TIMEOUT (Linux): how long sent data may go unacknowledged
    /// before the OS gives the connection up; 0 leaves the OS default
    /// [default: 90s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, global = true, help_heading = "Dialing")]
    pub(crate) tcp_user_timeout: Option<Duration>,

    /// PEM file with the CA certificates to trust (default: the system's).
    #[arg(long, value_name = "FILE", global = true, help_heading = "TLS")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// PEM client certificate chain, for brokers that require one (mTLS).
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        requires = "tls_key",
        help_heading = "TLS"
    )]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        requires = "tls_cert",
        help_heading = "TLS"
    )]
    pub(crate) tls_key: Option<PathBuf>,
    /// Check the broker certificate against this name instead of the
    /// bootstrap host.
    #[arg(long, value_name = "NAME", global = true, help_heading = "TLS")]
    pub(crate) tls_server_name: Option<String>,

    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI (feature
    /// `gssapi`) or AWS_MSK_IAM (feature `aws-msk-iam`).
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        global = true,
        help_heading = "SASL"
    )]
    pub(crate) sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name (PLAIN, SCRAM).
    #[arg(
        long,
        env = "KCONN_SASL_USERNAME",
        global = true,
        help_heading = "SASL"
    )]
    pub(crate) username: Option<String>,
    /// SASL password (PLAIN, SCRAM). Prefer the environment variable: a
    /// command-line argument is visible to other users of the machine.
    #[arg(
        long,
        env = "KCONN_SASL_PASSWORD",
        hide_env_values = true,
        global = true,
        value_name = "PASSWORD",
        help_heading = "SASL"
    )]
    pub(crate) password: Option<Secret>,
    /// OAUTHBEARER from a token endpoint (OAuth 2 client credentials,
    /// KIP-768; feature `oidc`): its https:// URL.
    #[arg(long, value_name = "URL", global = true, help_heading = "SASL")]
    pub(crate) oauth_token_endpoint: Option<String>,
    /// The client id at the token endpoint.
    #[arg(long, value_name = "ID", global = true, help_heading = "SASL")]
    pub(crate) oauth_client_id: Option<String>,
    /// The client secret at the token endpoint. Prefer the environment variable.
    #[arg(
        long,
        env = "KCONN_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        global = true,
        value_name = "SECRET",
        help_heading = "SASL"
    )]
    pub(crate) oauth_client_secret: Option<Secret>,
    /// The scope to ask the token endpoint for.
    #[arg(long, value_name = "SCOPE", global = true, help_heading = "SASL")]
    pub(crate) oauth_scope: Option<String>,
    /// PEM CA certificates for the token endpoint's HTTPS (default: the system's).
    #[arg(long, value_name = "FILE", global = true, help_heading = "SASL")]
    pub(crate) oauth_ca: Option<PathBuf>,
    /// GSSAPI: the client principal (e.g. app@EXAMPLE.COM).
    #[arg(long, value_name = "PRINCIPAL", global = true, help_heading = "SASL")]
    pub(crate) kerberos_principal: Option<String>,
    /// GSSAPI: the client's keytab [default: the credential cache].
    #[arg(long, value_name = "FILE", global = true, help_heading = "SASL")]
    pub(crate) kerberos_keytab: Option<PathBuf>,
    /// GSSAPI: the brokers' service name (sasl.kerberos.service.name) [default: kafka].
    #[arg(long, value_name = "NAME", global = true, help_heading = "SASL")]
    pub(crate) kerberos_service_name: Option<String>,
    /// GSSAPI: a credential cache (e.g. FILE:/tmp/krb5cc_app) instead of the default.
    #[arg(long, value_name = "CCACHE", global = true, help_heading = "SASL")]
    pub(crate) kerberos_ccache: Option<String>,
    /// AWS_MSK_IAM: the region signed for [default: AWS_REGION, or the
    /// region in the broker's MSK host name].
    #[arg(long, value_name = "REGION", global = true, help_heading = "SASL")]
    pub(crate) aws_region: Option<String>,
    /// AWS_MSK_IAM: take credentials from this profile of the shared
    /// credentials file [default: the AWS_* variables, then AWS_PROFILE or default].
    #[arg(long, value_name = "PROFILE", global = true, help_heading = "SASL")]
    pub(crate) aws_profile: Option<String>,
    /// OAUTHBEARER token (e.g. a JWT). Prefer the environment variable.
    #[arg(
        long,
        env = "KCONN_OAUTH_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN",
        help_heading = "SASL"
    )]
    pub(crate) oauth_token: Option<Secret>,
}

/// `--address-family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FamilyArg {
    /// IPv4 and IPv6, raced.
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// `--prefer-family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PreferArg {
    /// IPv4 first.
    V4,
    /// IPv6 first.
    V6,
}

/// `--resolve HOST:PORT=ADDR[,ADDR...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolveOverride {
    /// The host name, as in the broker address (any case).
    pub(crate) host: String,
    /// The port.
    pub(crate) port: u16,
    /// The addresses, in order, each with its own port when given
    /// (`ADDR:PORT`), else the name's.
    pub(crate) addresses: Vec<(std::net::IpAddr, Option<u16>)>,
}

/// Parses `HOST:PORT=ADDR[,ADDR...]` (IPv6 addresses bare or in brackets).
fn parse_resolve(text: &str) -> Result<ResolveOverride, String> {
    let usage = || format!("{text:?}: use HOST:PORT=ADDR[,ADDR...], e.g. broker-1:9092=10.0.0.5");
    let (name, list) = text.split_once('=').ok_or_else(usage)?;
    let (host, port) = name.rsplit_once(':').ok_or_else(usage)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| usage())?;
    if host.is_empty() {
        return Err(usage());
    }
    let addresses = list
        .split(',')
        .map(|a| {
            let a = a.trim();
            if let Ok(sa) = a.parse::<std::net::SocketAddr>() {
                return Ok((sa.ip(), Some(sa.port())));
            }
            a.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .map(|ip| (ip, None))
                .map_err(|_| format!("{a:?} in {text:?} is not an IP address (or ADDR:PORT)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ResolveOverride {
        host: host.to_owned(),
        port,
        addresses,
    })
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub(crate) enum SecurityProtocol {
    /// TCP, no TLS, no SASL.
    #[value(name = "PLAINTEXT")]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    /// TLS, no SASL.
    #[value(name = "SSL")]
    #[serde(rename = "SSL")]
    Ssl,
    /// SASL over TCP.
    #[value(name = "SASL_PLAINTEXT")]
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL over TLS.
    #[value(name = "SASL_SSL")]
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// The protocol from whether TLS and SASL are wanted.
    pub(crate) fn from_parts(tls: bool, sasl: bool) -> Self {
        match (tls, sasl) {
            (false, false) => Self::Plaintext,
            (true, false) => Self::Ssl,
            (false, true) => Self::SaslPlaintext,
            (true, true) => Self::SaslSsl,
        }
    }

    /// Whether it runs over TLS.
    pub(crate) fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether it authenticates with SASL.
    pub(crate) fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// The same protocol with TLS switched on or off (for advice).
    pub(crate) fn with_tls(self, tls: bool) -> Self {
        Self::from_parts(tls, self.sasl())
    }

    /// The same protocol with SASL switched off (for advice).
    pub(crate) fn without_sasl(self) -> Self {
        Self::from_parts(self.tls(), false)
    }

    /// The same protocol with SASL switched on (for advice).
    pub(crate) fn with_sasl(self) -> Self {
        Self::from_parts(self.tls(), true)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        })
    }
}

/// Kafka's `sasl.mechanism`, the ones kconn can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SaslMechanism {
    /// Username and password in clear (use with TLS).
    #[value(name = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
    /// An OAuth 2 bearer token.
    #[value(name = "OAUTHBEARER")]
    OauthBearer,
    /// Kerberos (needs kconn built with the `gssapi` feature).
    #[value(name = "GSSAPI")]
    Gssapi,
    /// Amazon MSK's IAM access control (needs the `aws-msk-iam` feature).
    #[value(name = "AWS_MSK_IAM")]
    AwsMskIam,
}

impl SaslMechanism {
    /// The name Kafka uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OauthBearer => "OAUTHBEARER",
            Self::Gssapi => "GSSAPI",
            Self::AwsMskIam => "AWS_MSK_IAM",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A password or token: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret itself, for the SASL mechanism only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A `--watch` interval: a duration of at least 100 ms.
fn parse_watch_interval(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_millis(100) {
        return Err(format!(
            "{text:?} is too short for --watch: use at least 100ms"
        ));
    }
    Ok(d)
}

/// A duration such as `250ms`, `10s`, `1.5s`, `2m` or `1h`; a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 500ms, 10s, 2m"))?;
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "" | "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn broker_selections_parse() {
        assert_eq!(parse_brokers("all"), Ok(BrokerSelection::All));
        assert_eq!(parse_brokers(" ALL "), Ok(BrokerSelection::All));
        assert_eq!(
            parse_brokers("3, 1,3,0"),
            Ok(BrokerSelection::Nodes(vec![0, 1, 3]))
        );
        assert_eq!(parse_brokers("3,1").unwrap().to_string(), "1,3");
        for bad in ["", "1,", "-1", "x", "127.0.0.1:9092", "1;2"] {
            let e = parse_brokers(bad).unwrap_err();
            assert!(e.contains("is not a node id"), "{bad}: {e}");
        }
        assert!(parse_brokers("localhost:9092")
            .unwrap_err()
            .contains("their addresses go to -b"));
    }

    #[test]
    fn resolve_overrides_parse() {
        let r = parse_resolve("broker.test:9092=10.0.0.5,::1,127.0.0.1:7,[::1]:8").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("broker.test", 9092));
        let ip = |t: &str| t.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            r.addresses,
            [
                (ip("10.0.0.5"), None),
                (ip("::1"), None),
                (ip("127.0.0.1"), Some(7)),
                (ip("::1"), Some(8))
            ]
        );
        let r = parse_resolve("[::1]:1=[::2]").unwrap();
        assert_eq!((r.host.as_str(), r.addresses.len()), ("::1", 1));
        for bad in ["b", "b:9092", "b:x=1.2.3.4", "b:9092=nope", ":1=1.2.3.4"] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_passwords_never_show_in_debug_output() {
        let cli = Cli::try_parse_from([
            "kconn",
            "check",
            "-b",
            "h:1",
            "--proxy",
            "socks5h://u:proxy-very-secret@p:1080",
        ])
        .unwrap();
        let debug = format!("{cli:?}");
        assert!(!debug.contains("proxy-very-secret"), "{debug}");
        assert_eq!(
            cli.common.proxy.unwrap().to_string(),
            "socks5h://u:***@p:1080"
        );
        assert!(Cli::try_parse_from(["kconn", "check", "--proxy", "ftp://p:1"]).is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let cli = Cli::try_parse_from([
            "kconn",
            "check",
            "-b",
            "localhost:9092",
            "--sasl-mechanism",
            "PLAIN",
            "--username",
            "alice",
            "--password",
            "hunter2-very-secret",
            "--oauth-token",
            "token-very-secret",
        ])
        .unwrap();
        let debug = format!("{cli:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("token-very"), "{debug}");
        assert_eq!(
            cli.common.password.as_ref().map(Secret::expose),
            Some("hunter2-very-secret")
        );
    }

    #[test]
    fn options_go_before_or_after_the_command_and_protocols_ignore_case() {
        let cli = Cli::try_parse_from([
            "kconn",
            "-b",
            "a:1,b:2",
            "check",
            "--security-protocol",
            "sasl_ssl",
            "--sasl-mechanism",
            "scram-sha-512",
        ])
        .unwrap();
        assert_eq!(cli.common.bootstrap, ["a:1", "b:2"]);
        assert_eq!(
            cli.common.security_protocol,
            Some(SecurityProtocol::SaslSsl)
        );
        assert_eq!(cli.common.sasl_mechanism, Some(SaslMechanism::ScramSha512));
    }

    #[test]
    fn protocols_combine_and_switch() {
        assert_eq!(
            SecurityProtocol::from_parts(true, true),
            SecurityProtocol::SaslSsl
        );
        assert_eq!(
            SecurityProtocol::SaslPlaintext.with_tls(true),
            SecurityProtocol::SaslSsl
        );
        assert_eq!(
            SecurityProtocol::Ssl.with_tls(false),
            SecurityProtocol::Plaintext
        );
        assert_eq!(SecurityProtocol::Ssl.with_sasl(), SecurityProtocol::SaslSsl);
    }
}
