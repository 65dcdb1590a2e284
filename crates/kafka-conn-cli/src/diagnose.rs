//! From a failure to one line that says what is wrong and what to try.
//!
//! The driver's [`ConnectError`] already separates the causes a user fixes
//! differently; this module picks the step that failed and words the advice
//! in terms of kconn's own options.

use std::path::PathBuf;

use kafka_conn_tokio::cluster_policy::Failure;
use kafka_conn_tokio::core::{
    ApiKey, BrokenCause, CloseReason, Incompatibility, Phase, ProtocolViolation, TimeoutKind,
};
use kafka_conn_tokio::{
    ClusterError, ConnectError, DialStep, ProxyFailure, ProxyKind, ProxyStep, RequestFailure,
};

use crate::cli::{SaslMechanism, SecurityProtocol};
use crate::latency::human;
use crate::x509::{CertSummary, UtcTime};

/// The steps of a connection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Step {
    /// Resolving the host name.
    Dns,
    /// The TCP connection.
    Tcp,
    /// The proxy's handshake (SOCKS5 or HTTP CONNECT), when there is one.
    Proxy,
    /// The TLS handshake.
    Tls,
    /// API version negotiation.
    ApiVersions,
    /// SASL authentication.
    Sasl,
    /// The connection is ready for requests.
    Ready,
    /// A Metadata request on the ready connection.
    Metadata,
    /// `--roundtrip`: producing one record.
    Produce,
    /// `--roundtrip`: fetching it back.
    Fetch,
    /// The options and configuration files, before any connection.
    Config,
}

impl Step {
    /// Every step, in order.
    pub(crate) const ALL: [Step; 8] = [
        Step::Dns,
        Step::Tcp,
        Step::Proxy,
        Step::Tls,
        Step::ApiVersions,
        Step::Sasl,
        Step::Ready,
        Step::Metadata,
    ];

    /// The name shown in `check`'s output.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Step::Dns => "DNS",
            Step::Tcp => "TCP connect",
            Step::Proxy => "proxy",
            Step::Tls => "TLS handshake",
            Step::ApiVersions => "ApiVersions",
            Step::Sasl => "SASL",
            Step::Ready => "ready",
            Step::Metadata => "Metadata",
            Step::Produce => "Produce",
            Step::Fetch => "Fetch",
            Step::Config => "configuration",
        }
    }
}

/// What the diagnosis knows about the attempt.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The security protocol used.
    pub(crate) protocol: SecurityProtocol,
    /// The CA file, if one was given.
    pub(crate) ca: Option<PathBuf>,
    /// Whether a client certificate was given.
    pub(crate) client_cert: bool,
    /// The SASL mechanism, if any.
    pub(crate) mechanism: Option<SaslMechanism>,
    /// Whether OAUTHBEARER tokens come from a token endpoint.
    pub(crate) token_endpoint: bool,
    /// The broker's certificate, if the TLS handshake got that far.
    pub(crate) certificate: Option<CertSummary>,
}

/// A failure, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnosis {
    /// The step that failed.
    pub(crate) step: Step,
    /// A stable name for the cause, for scripts (`connection_refused`, ...).
    pub(crate) kind: &'static str,
    /// What is wrong.
    pub(crate) problem: String,
    /// What to try.
    pub(crate) advice: Option<String>,
    /// The library's own description of the failure.
    pub(crate) detail: String,
    /// Whether trying again unchanged may help.
    pub(crate) retriable: bool,
}

impl serde::Serialize for Diagnosis {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The JSON form: the fields plus the one-line message.
        #[derive(serde::Serialize)]
        struct Json<'a> {
            step: Step,
            kind: &'a str,
            message: String,
            problem: &'a str,
            advice: Option<&'a str>,
            detail: &'a str,
            retriable: bool,
        }
        Json {
            step: self.step,
            kind: self.kind,
            message: self.line(),
            problem: &self.problem,
            advice: self.advice.as_deref(),
            detail: &self.detail,
            retriable: self.retriable,
        }
        .serialize(serializer)
    }
}

impl Diagnosis {
    fn new(step: Step, kind: &'static str, problem: impl Into<String>) -> Self {
        Self {
            step,
            kind,
            problem: problem.into(),
            advice: None,
            detail: String::new(),
            retriable: false,
        }
    }

    /// A diagnosis from kconn itself (not from a library error).
    pub(crate) fn custom(step: Step, kind: &'static str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::new(step, kind, problem.clone()).detail(problem)
    }

    fn advice(mut self, advice: impl Into<String>) -> Self {
        self.advice = Some(advice.into());
        self
    }

    fn detail(mut self, detail: impl ToString) -> Self {
        self.detail = detail.to_string();
        self
    }

    fn retriable(mut self, retriable: bool) -> Self {
        self.retriable = retriable;
        self
    }

    /// The one line: what is wrong, and what to try.
    pub(crate) fn line(&self) -> String {
        match &self.advice {
            Some(advice) => format!("{}: {advice}", self.problem),
            None => self.problem.clone(),
        }
    }
}

/// Explains a failed `connect`.
pub(crate) fn connect_error(e: &ConnectError, ctx: &Context) -> Diagnosis {
    let d = match e {
        ConnectError::InvalidAddress { address, why } => Diagnosis::new(
            Step::Dns,
            "invalid_address",
            format!("invalid broker address {address:?} ({why})"),
        )
        .advice("use HOST:PORT, e.g. localhost:9092"),
        ConnectError::Config(c) => Diagnosis::new(
            Step::ApiVersions,
            "invalid_configuration",
            format!("invalid configuration: {c}"),
        ),
        ConnectError::Resolve { host, source, .. } => Diagnosis::new(
            Step::Dns,
            "dns_failed",
            format!("cannot resolve {host} ({source})"),
        )
        .advice("check the host name, DNS and /etc/hosts"),
        ConnectError::NoAddresses { host, .. } => Diagnosis::new(
            Step::Dns,
            "dns_empty",
            format!("{host} resolved to no addresses"),
        )
        .advice("check DNS and /etc/hosts"),
        ConnectError::NoAddressOfFamily { host, family, .. } => Diagnosis::new(
            Step::Dns,
            "no_address_of_family",
            format!("{host} has no address of the family asked for ({family})"),
        )
        .advice("use --address-family any (or the other family)"),
        ConnectError::Refused { addr, .. } => Diagnosis::new(
            Step::Tcp,
            "connection_refused",
            format!("connection refused by {addr}"),
        )
        .advice("nothing is listening on that port: is the broker up, and is the port right?"),
        ConnectError::ConnectTimeout { addr, after, .. } => Diagnosis::new(
            Step::Tcp,
            "tcp_timeout",
            format!("no TCP answer from {addr} within {}", human(*after)),
        )
        .advice(
            "a firewall dropping packets, or the wrong host? (raise --timeout for a slow network)",
        ),
        ConnectError::Tcp { addr, source, .. } => Diagnosis::new(
            Step::Tcp,
            "tcp_failed",
            format!("cannot connect to {addr}: {source}"),
        )
        .advice("check the route to the broker (network unreachable, firewall)"),
        ConnectError::TlsConfig(text) => Diagnosis::new(
            Step::Tls,
            "tls_configuration",
            format!("invalid TLS settings: {text}"),
        )
        .advice(tls_settings_advice(text)),
        ConnectError::CertificateNotTrusted { .. } => {
            let trusted = match &ctx.ca {
                Some(ca) => format!("no CA in {}", ca.display()),
                None => "no CA in the system trust store".to_owned(),
            };
            let presented = match &ctx.certificate {
                Some(c) => format!(
                    "the broker presents {} issued by {}, and {trusted} vouches for it",
                    quote_name(&c.subject),
                    quote_name(&c.issuer)
                ),
                None => format!("the broker's certificate chain leads to {trusted}"),
            };
            Diagnosis::new(
                Step::Tls,
                "certificate_not_trusted",
                "certificate not trusted",
            )
            .advice(format!("check --tls-ca ({presented})"))
        }
        ConnectError::NameMismatch { server_name, .. } => {
            let d = Diagnosis::new(
                Step::Tls,
                "certificate_name_mismatch",
                format!("the broker's certificate is not valid for {server_name:?}"),
            );
            match ctx.certificate.as_ref().map(CertSummary::names) {
                Some(names) if !names.is_empty() => d.advice(format!(
                    "it is valid for {}: connect by one of those names or use --tls-server-name {}",
                    names.join(", "),
                    names[0]
                )),
                _ => d.advice("connect by the name in the certificate or use --tls-server-name"),
            }
        }
        ConnectError::NotTls { .. } => Diagnosis::new(
            Step::Tls,
            "not_tls",
            "the broker does not speak TLS on this port",
        )
        .advice(format!(
            "use --security-protocol {}",
            ctx.protocol.with_tls(false)
        )),
        ConnectError::TlsTimeout { after, .. } => Diagnosis::new(
            Step::Tls,
            "tls_timeout",
            format!("no TLS answer within {}", human(*after)),
        )
        .advice(format!(
            "the port may not speak TLS: try --security-protocol {}",
            ctx.protocol.with_tls(false)
        )),
        ConnectError::Tls { detail, .. } => tls_failure(detail, ctx),
        ConnectError::InvalidCertificate { detail, .. } => tls_failure(
            &format!("the broker's certificate is not acceptable: {detail}"),
            ctx,
        ),
        ConnectError::BrokerSpeaksTls { .. } => Diagnosis::new(
            Step::ApiVersions,
            "broker_speaks_tls",
            "the broker answered with a TLS record",
        )
        .advice(format!(
            "use --security-protocol {}",
            ctx.protocol.with_tls(true)
        )),
        ConnectError::Handshake { reason, .. } => close_reason(reason, None, ctx),
        ConnectError::Proxy {
            kind,
            proxy,
            step,
            failure,
            ..
        } => proxy_failure(*kind, proxy, step, failure),
        other => Diagnosis::new(Step::ApiVersions, "connect_failed", other.to_string()),
    };
    let retriable = e.is_retriable();
    d.detail(e).retriable(retriable)
}

/// Explains a proxy that could not be reached, refused, or rejected the
/// credentials: the proxy step fails (a broker unreachable behind the
/// proxy too: the proxy reports it).
fn proxy_failure(
    kind: ProxyKind,
    proxy: &str,
    step: &ProxyStep,
    failure: &ProxyFailure,
) -> Diagnosis {
    let problem = format!("{kind} proxy {proxy}, {step}: {failure}");
    let (name, advice): (&'static str, String) = match failure {
        ProxyFailure::Io(_) | ProxyFailure::Closed if *step == ProxyStep::Connect => (
            "proxy_unreachable",
            "is the proxy up, and is --proxy's host and port right?".into(),
        ),
        ProxyFailure::TimedOut(_) => (
            "proxy_timeout",
            "the proxy did not answer: check --proxy (raise --timeout for a slow network)".into(),
        ),
        ProxyFailure::NoAcceptableMethod { .. } => (
            "proxy_authentication_required",
            "give the proxy's username and password in the URL: KCONN_PROXY=socks5://USER:PASSWORD@HOST:PORT".into(),
        ),
        ProxyFailure::HttpStatus { status: 407, .. } => (
            "proxy_authentication_required",
            "give the proxy's username and password in the URL: KCONN_PROXY=http://USER:PASSWORD@HOST:PORT".into(),
        ),
        ProxyFailure::AuthRejected { .. } | ProxyFailure::HttpStatus { status: 401, .. } => (
            "proxy_authentication_failed",
            "check the username and password in --proxy (or KCONN_PROXY)".into(),
        ),
        ProxyFailure::Socks5Refused { code: 2 } | ProxyFailure::HttpStatus { status: 403, .. } => (
            "proxy_refused",
            "the proxy's rules forbid this broker: ask its administrator, or connect without --proxy".into(),
        ),
        ProxyFailure::Socks5Refused { .. } | ProxyFailure::HttpStatus { .. } => (
            "proxy_refused",
            "the proxy could not reach the broker: is the broker up, and reachable from the proxy?".into(),
        ),
        ProxyFailure::Malformed(_) => (
            "proxy_protocol",
            "is --proxy's scheme right (socks5:// for a SOCKS5 proxy, http:// for an HTTP proxy)?".into(),
        ),
        _ => ("proxy_failed", "check --proxy".into()),
    };
    // Reaching the proxy is the TCP step (to the proxy); the rest is the
    // proxy's own step.
    let at = if *step == ProxyStep::Connect {
        Step::Tcp
    } else {
        Step::Proxy
    };
    Diagnosis::new(at, name, problem).advice(advice)
}

/// Explains a request that failed on a ready connection (the Metadata step).
pub(crate) fn request_failure(e: &RequestFailure, api: ApiKey, ctx: &Context) -> Diagnosis {
    let d = match e.close_reason() {
        Some(reason) => close_reason(reason, Some(api), ctx),
        None => Diagnosis::new(
            Step::Metadata,
            "request_failed",
            format!("{api} failed: {e}"),
        ),
    };
    d.detail(e).retriable(e.is_retriable())
}

/// Explains a failed call of the driver's `Cluster` for one broker (`ping`
/// and `bench` with `--brokers`): a request whose connection closed (the
/// core's typed close reason, as for a single connection), a dial that
/// failed (its `ConnectError`, step by step), or a request the cluster did
/// not send because the broker is backing off or its circuit is open (the
/// step and kind of the failure that started it, the text saying why it
/// was not sent).
pub(crate) fn cluster_error(e: &ClusterError, api: ApiKey, ctx: &Context) -> Diagnosis {
    let d = match e {
        ClusterError::Request { failure, .. } => match failure.close_reason() {
            Some(reason) if broke_while_ready(reason) => closed_while_ready(reason),
            _ => return request_failure(failure, api, ctx),
        },
        ClusterError::Unreachable {
            connect_error: Some(error),
            ..
        } => return connect_error(error, ctx),
        ClusterError::Unreachable { failure, .. } => {
            let d = policy_failure(failure, api, ctx);
            Diagnosis::new(d.step, d.kind, e.to_string())
        }
        // Not sent: the kind is that of the failure that started the
        // backoff or opened the circuit (the typed close reason, the dial's
        // step), and the text says the cluster held the request back.
        ClusterError::BackingOff {
            node,
            address,
            retry_in,
            last,
        } => held_back(
            policy_failure(last, api, ctx),
            format!(
                "not sent: {node} ({address}) is backing off for {} after: {last}",
                human(*retry_in)
            ),
        ),
        ClusterError::CircuitOpen {
            node,
            address,
            failures,
            retry_in,
            last,
        } => held_back(
            policy_failure(last, api, ctx),
            format!(
                "not sent: {node} ({address}): circuit open after {failures} consecutive failures{}; last: {last}",
                retry_in.map_or(" (a probe is under way)".to_owned(), |d| format!(
                    ", next probe in {}",
                    human(d)
                ))
            ),
        ),
        ClusterError::UnknownNode(_) | ClusterError::NodeRemoved(_) => {
            // Kafka's Metadata lists the live brokers only.
            Diagnosis::new(Step::Metadata, "broker_not_advertised", e.to_string())
                .advice("is the broker down, or not a member of this cluster?")
        }
        ClusterError::Closed => Diagnosis::new(Step::Ready, "closed", e.to_string()),
        other => Diagnosis::new(Step::Ready, "cluster_error", other.to_string()),
    };
    d.detail(e).retriable(e.is_retriable())
}

/// A request the cluster held back: `problem` says so, the step, kind and
/// advice are those of the failure behind it.
fn held_back(cause: Diagnosis, problem: String) -> Diagnosis {
    let mut d = Diagnosis::new(cause.step, cause.kind, problem);
    d.advice = cause.advice;
    d
}

/// Whether a ready connection broke (the broker closed or reset it, as a
/// broker that stops or restarts does), rather than a handshake failing.
fn broke_while_ready(reason: &CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::Broken {
            during: Phase::Ready,
            ..
        }
    )
}

/// A connection that had been in use broke: `kind` `connection_closed`, as
/// `ping` on one connection says it. (`check`'s reading of a close right
/// after ApiVersions, a listener wanting SASL, does not apply to a
/// connection that has answered requests.)
fn closed_while_ready(reason: &CloseReason) -> Diagnosis {
    Diagnosis::new(
        Step::Ready,
        "connection_closed",
        format!("the connection closed: {reason}"),
    )
    .advice("is the broker down or restarting? its log says why")
}

/// The step and kind of a failure the cluster policy recorded for a node.
fn policy_failure(failure: &Failure, api: ApiKey, ctx: &Context) -> Diagnosis {
    match failure {
        Failure::Closed { reason, .. } if broke_while_ready(reason) => closed_while_ready(reason),
        Failure::Closed { was_ready, reason } => {
            close_reason(reason, was_ready.then_some(api), ctx)
        }
        Failure::Dial(d) => {
            let step = match d.step {
                DialStep::Resolve => Step::Dns,
                DialStep::Connect => Step::Tcp,
                DialStep::Proxy => Step::Proxy,
                DialStep::Tls => Step::Tls,
                _ => Step::ApiVersions,
            };
            let kind = match (d.step, d.kind) {
                (DialStep::Connect, Some(std::io::ErrorKind::ConnectionRefused)) => {
                    "connection_refused"
                }
                (DialStep::Resolve, _) => "dns_failed",
                _ => "dial_failed",
            };
            Diagnosis::new(step, kind, d.message.clone())
        }
        Failure::SetupTimeout { after } => Diagnosis::new(
            Step::Tcp,
            "timeout",
            format!("the connection was not ready within {}", human(*after)),
        ),
        other => Diagnosis::new(Step::Ready, "cluster_error", other.to_string()),
    }
}

/// Which option to fix, from the driver's description of a TLS setting it
/// could not use (it names the file's role first).
fn tls_settings_advice(text: &str) -> &'static str {
    if text.starts_with("ssl.") || text.starts_with("the inline") {
        "fix that setting in the configuration file, or override it with --tls-ca, --tls-cert and --tls-key"
    } else if text.starts_with("CA file") {
        "check --tls-ca"
    } else if text.contains("system trust store") {
        "give the CA that signed the broker's certificate with --tls-ca"
    } else if text.starts_with("client certificate and key") {
        "check that --tls-key is the key of --tls-cert"
    } else if text.starts_with("client certificate") {
        "check --tls-cert"
    } else if text.starts_with("client key") {
        "check --tls-key"
    } else if text.starts_with("invalid server name") {
        "check --tls-server-name"
    } else {
        "check --tls-ca, --tls-cert, --tls-key and --tls-server-name"
    }
}

fn quote_name(name: &str) -> String {
    if name.is_empty() {
        "an empty name".to_owned()
    } else {
        format!("\"{name}\"")
    }
}

fn tls_failure(detail: &str, ctx: &Context) -> Diagnosis {
    let d = Diagnosis::new(
        Step::Tls,
        "tls_failed",
        format!("TLS handshake failed: {detail}"),
    );
    if let Some(c) = &ctx.certificate {
        let now = now_unix();
        if c.not_after < now {
            return Diagnosis::new(
                Step::Tls,
                "certificate_expired",
                format!(
                    "the broker's certificate expired on {}",
                    UtcTime(c.not_after)
                ),
            )
            .advice(
                "the broker needs a new certificate (check the clocks if that date looks wrong)",
            );
        }
        if c.not_before > now {
            return Diagnosis::new(
                Step::Tls,
                "certificate_not_yet_valid",
                format!(
                    "the broker's certificate is valid only from {}",
                    UtcTime(c.not_before)
                ),
            )
            .advice("check this machine's clock");
        }
    }
    if let Some(alert) = alert_name(detail) {
        return client_cert_refused(Step::Tls, alert, ctx);
    }
    d
}

/// The TLS alert named in an error text (`... alert CertificateRequired ...`).
fn alert_name(text: &str) -> Option<&str> {
    let (_, after) = text.split_once("alert")?;
    let after = after.strip_prefix(':').unwrap_or(after).trim_start();
    let end = after
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(after.len());
    (end > 0).then(|| &after[..end])
}

/// The broker ended the TLS session with an alert: almost always mTLS.
fn client_cert_refused(step: Step, alert: &str, ctx: &Context) -> Diagnosis {
    if alert == "CertificateRequired" || !ctx.client_cert {
        Diagnosis::new(
            step,
            "client_certificate_required",
            format!("the broker requires a client certificate (TLS alert {alert})"),
        )
        .advice("give --tls-cert and --tls-key")
    } else {
        Diagnosis::new(
            step,
            "client_certificate_refused",
            format!("the broker refused the TLS session (TLS alert {alert})"),
        )
        .advice("does the broker trust the CA that signed --tls-cert?")
    }
}

/// Why the Kafka handshake or a request's connection closed. `api` is the
/// request that was waiting, when a caller's request was.
fn close_reason(reason: &CloseReason, api: Option<ApiKey>, ctx: &Context) -> Diagnosis {
    let after_ready = api.is_some();
    let step_of = |phase: Phase| match phase {
        Phase::Negotiating => Step::ApiVersions,
        Phase::SaslHandshake | Phase::Authenticating | Phase::Reauthenticating => Step::Sasl,
        Phase::Ready => Step::Metadata,
        _ => Step::ApiVersions,
    };
    match reason {
        CloseReason::Broken { cause, during } => broken(cause, *during, after_ready, step_of(*during), ctx),
        CloseReason::Timeout(kind) => {
            let (step, what) = match kind {
                TimeoutKind::Handshake { after, phase } => {
                    (step_of(*phase), format!("the broker did not finish the Kafka handshake within {}", human(*after)))
                }
                TimeoutKind::InternalRequest { api_key, after } => (
                    if *api_key == ApiKey::API_VERSIONS { Step::ApiVersions } else { Step::Sasl },
                    format!("no {api_key} response within {}", human(*after)),
                ),
                other => (Step::Metadata, format!("the broker stopped answering: {other}")),
            };
            let d = Diagnosis::new(step, "timeout", what);
            if step == Step::ApiVersions && !ctx.protocol.tls() {
                d.advice("is this a Kafka port? A TLS listener waits silently for a TLS client: try --security-protocol SSL")
            } else {
                d.advice("the broker may be overloaded or hung (raise --timeout for a slow network)")
            }
        }
        CloseReason::AuthFailed(a) => {
            let mut problem = format!("authentication failed: {}", a.message);
            if let Some(detail) = &a.detail {
                problem.push_str(&format!(" ({detail})"));
            }
            if let Some(code) = a.error_code {
                problem.push_str(&format!(" [error {code} {}]", kafka_conn_tokio::core::error_code_name(code)));
            }
            let advice = match ctx.mechanism {
                Some(SaslMechanism::OauthBearer) if ctx.token_endpoint => "check --oauth-token-endpoint, --oauth-client-id and the client secret (KCONN_OAUTH_CLIENT_SECRET), and that the broker accepts this provider's tokens".to_owned(),
                Some(SaslMechanism::OauthBearer) => "check the token (KCONN_OAUTH_TOKEN)".to_owned(),
                Some(SaslMechanism::Gssapi) => "check --kerberos-principal, --kerberos-keytab (or the credential cache) and --kerberos-service-name: kconn asks the KDC for a ticket to SERVICE/BROKER-HOST@REALM".to_owned(),
                Some(SaslMechanism::AwsMskIam) => "check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or --aws-profile), --aws-region, and that the IAM policy allows kafka-cluster:Connect".to_owned(),
                Some(m) => format!(
                    "check --username and the password (KCONN_SASL_PASSWORD), and that the user has {m} credentials"
                ),
                None => "check the credentials".to_owned(),
            };
            // The client's own credential source failed (a KDC, a token
            // endpoint, AWS credentials), before the broker judged anything.
            let kind = if a.message.contains("could not provide a credential") {
                "credential_unavailable"
            } else {
                "authentication_failed"
            };
            Diagnosis::new(Step::Sasl, kind, problem).advice(advice)
        }
        CloseReason::Incompatible(Incompatibility::MechanismNotEnabled { mechanism, offered }) => {
            mechanism_not_enabled(mechanism, offered, ctx)
        }
        CloseReason::Incompatible(Incompatibility::MissingApi { api_key, .. })
            if *api_key == ApiKey::SASL_HANDSHAKE || *api_key == ApiKey::SASL_AUTHENTICATE =>
        {
            Diagnosis::new(
                Step::Sasl,
                "sasl_not_offered",
                format!("the broker does not offer SASL on this listener (no {api_key} in its ApiVersions)"),
            )
            .advice(format!("use --security-protocol {}", ctx.protocol.without_sasl()))
        }
        CloseReason::Incompatible(Incompatibility::SaslHandshake { code }) => Diagnosis::new(
            Step::Sasl,
            "sasl_handshake_failed",
            format!(
                "the broker refused the SASL handshake with error {code} {}",
                kafka_conn_tokio::core::error_code_name(*code)
            ),
        ),
        CloseReason::Incompatible(other) => Diagnosis::new(
            Step::ApiVersions,
            "incompatible",
            format!("the broker and kafka-conn cannot work together: {other}"),
        ),
        CloseReason::Protocol(ProtocolViolation::LooksLikeTls) => Diagnosis::new(
            Step::ApiVersions,
            "broker_speaks_tls",
            "the broker answered with a TLS record",
        )
        .advice(format!("use --security-protocol {}", ctx.protocol.with_tls(true))),
        CloseReason::Protocol(ProtocolViolation::LooksLikeHttp) => Diagnosis::new(
            Step::ApiVersions,
            "http",
            "the peer answered with HTTP",
        )
        .advice("this is not a Kafka listener (a REST proxy or a web port?): check the port"),
        CloseReason::Protocol(p) => Diagnosis::new(
            if after_ready { Step::Metadata } else { Step::ApiVersions },
            "protocol_violation",
            format!("the peer sent something that is not a Kafka response ({p})"),
        )
        .advice("is this a Kafka listener? check the port and the security protocol"),
        CloseReason::SessionExpired(text) => Diagnosis::new(
            Step::Sasl,
            "session_expired",
            format!("the SASL session expired {text}"),
        ),
        other => Diagnosis::new(
            if after_ready { Step::Metadata } else { Step::ApiVersions },
            "closed",
            format!("the connection closed: {other}"),
        ),
    }
}

fn mechanism_not_enabled(mechanism: &str, offered: &[String], ctx: &Context) -> Diagnosis {
    let others: Vec<&String> = offered.iter().filter(|m| *m != mechanism).collect();
    if !offered.is_empty() && others.is_empty() {
        // The broker lists only what was asked for (tansu echoes the request
        // instead of listing its mechanisms, also on a listener without SASL).
        return Diagnosis::new(
            Step::Sasl,
            "mechanism_not_enabled",
            format!(
                "mechanism {mechanism} is not enabled (the broker refused it but lists only {mechanism} itself, so its real list is unknown)"
            ),
        )
        .advice(format!(
            "this listener may not use SASL at all: try --security-protocol {}, or another --sasl-mechanism",
            ctx.protocol.without_sasl()
        ));
    }
    let offered_text = if offered.is_empty() {
        "nothing".to_owned()
    } else {
        offered.join(", ")
    };
    let d = Diagnosis::new(
        Step::Sasl,
        "mechanism_not_enabled",
        format!("mechanism {mechanism} is not enabled; the broker offers: {offered_text}"),
    );
    let usable = others
        .iter()
        .find(|m| ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"].contains(&m.as_str()));
    match usable {
        Some(m) => d.advice(format!("use --sasl-mechanism {m}")),
        None => d.advice("kconn cannot use any of those mechanisms"),
    }
}

fn broken(
    cause: &BrokenCause,
    during: Phase,
    after_ready: bool,
    step: Step,
    ctx: &Context,
) -> Diagnosis {
    let io_text = match cause {
        BrokenCause::Io { message, .. } => message.as_str(),
        _ => "",
    };
    let how = match cause {
        BrokenCause::Eof => "closed the connection".to_owned(),
        _ => format!("broke the connection ({io_text})"),
    };
    // TLS 1.3 finishes the client's handshake before the server has checked
    // the client certificate: a refusal shows up as an alert on the first read.
    if ctx.protocol.tls() {
        if let Some(alert) = alert_name(io_text) {
            return client_cert_refused(Step::Tls, alert, ctx);
        }
    }
    match (step, during) {
        (_, Phase::Negotiating) if !ctx.protocol.tls() => Diagnosis::new(
            Step::ApiVersions,
            "closed_before_api_versions",
            format!("the broker {how} before answering ApiVersions"),
        )
        .advice(format!(
            "a TLS listener does this to a plaintext client: try --security-protocol {}",
            ctx.protocol.with_tls(true)
        )),
        (_, Phase::Negotiating) => Diagnosis::new(
            Step::ApiVersions,
            "closed_before_api_versions",
            format!("the broker {how} before answering ApiVersions"),
        )
        .advice("is this a Kafka listener? check the port"),
        (_, Phase::SaslHandshake) => Diagnosis::new(
            Step::Sasl,
            "closed_during_sasl_handshake",
            format!("the broker {how} during the SASL handshake"),
        )
        .advice(format!(
            "it may not enable {} (some brokers close instead of listing their mechanisms): try another --sasl-mechanism",
            ctx.mechanism.map_or("the mechanism", SaslMechanism::name)
        )),
        (_, Phase::Authenticating) => Diagnosis::new(
            Step::Sasl,
            "closed_during_authentication",
            format!("the broker {how} while authenticating"),
        )
        .advice("wrong credentials (a legacy broker closes instead of answering)? check --username and the password"),
        _ if after_ready && ctx.mechanism.is_none() => Diagnosis::new(
            Step::Metadata,
            "closed_after_api_versions",
            format!("the broker {how} on the first request after ApiVersions"),
        )
        .advice(format!(
            "this listener probably requires authentication: use --security-protocol {} with --sasl-mechanism",
            ctx.protocol.with_sasl()
        )),
        _ => Diagnosis::new(step, "connection_broken", format!("the broker {how}"))
            .advice("look at the broker's log for why"),
    }
}

/// The current Unix time in seconds.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Seconds until a Unix time (negative when it is past).
pub(crate) fn seconds_until(unix: i64) -> i64 {
    unix - now_unix()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_conn_tokio::core::AuthFailure;
    use std::net::SocketAddr;

    fn ctx(protocol: SecurityProtocol) -> Context {
        Context {
            protocol,
            ca: None,
            client_cert: false,
            mechanism: None,
            token_endpoint: false,
            certificate: None,
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:9092".parse().unwrap()
    }

    #[test]
    fn tls_on_a_plaintext_client_says_use_ssl() {
        let d = connect_error(
            &ConnectError::BrokerSpeaksTls {
                addr: addr(),
                progress: Box::default(),
            },
            &ctx(SecurityProtocol::Plaintext),
        );
        assert_eq!(
            d.line(),
            "the broker answered with a TLS record: use --security-protocol SSL"
        );
        assert_eq!(d.step, Step::ApiVersions);
        let d = connect_error(
            &ConnectError::BrokerSpeaksTls {
                addr: addr(),
                progress: Box::default(),
            },
            &ctx(SecurityProtocol::SaslPlaintext),
        );
        assert!(
            d.line().ends_with("use --security-protocol SASL_SSL"),
            "{}",
            d.line()
        );
    }

    #[test]
    fn a_close_before_any_answer_suggests_ssl() {
        let e = ConnectError::Handshake {
            addr: addr(),
            reason: CloseReason::Broken {
                cause: BrokenCause::Eof,
                during: Phase::Negotiating,
            },
            progress: Box::default(),
        };
        let d = connect_error(&e, &ctx(SecurityProtocol::Plaintext));
        assert_eq!(d.kind, "closed_before_api_versions");
        assert!(
            d.line().contains("try --security-protocol SSL"),
            "{}",
            d.line()
        );
    }

    #[test]
    fn authentication_failures_quote_the_broker() {
        let e = ConnectError::Handshake {
            addr: addr(),
            reason: CloseReason::AuthFailed(AuthFailure {
                mechanism: "SCRAM-SHA-256".into(),
                error_code: Some(58),
                message: "Authentication failed during authentication due to invalid credentials"
                    .into(),
                detail: Some("invalid-proof".into()),
                reauthentication: false,
            }),
            progress: Box::default(),
        };
        let mut c = ctx(SecurityProtocol::SaslPlaintext);
        c.mechanism = Some(SaslMechanism::ScramSha256);
        let d = connect_error(&e, &c);
        assert_eq!(d.step, Step::Sasl);
        assert!(
            d.line().starts_with("authentication failed: Authentication failed during authentication due to invalid credentials (invalid-proof)"),
            "{}",
            d.line()
        );
        assert!(d.line().contains("KCONN_SASL_PASSWORD"), "{}", d.line());
    }

    #[test]
    fn a_mechanism_not_enabled_lists_the_offer() {
        let e = ConnectError::Handshake {
            addr: addr(),
            reason: CloseReason::Incompatible(Incompatibility::MechanismNotEnabled {
                mechanism: "PLAIN".into(),
                offered: vec!["GSSAPI".into(), "SCRAM-SHA-512".into()],
            }),
            progress: Box::default(),
        };
        let d = connect_error(&e, &ctx(SecurityProtocol::SaslPlaintext));
        assert_eq!(
            d.line(),
            "mechanism PLAIN is not enabled; the broker offers: GSSAPI, SCRAM-SHA-512: use --sasl-mechanism SCRAM-SHA-512"
        );
    }

    #[test]
    fn a_broker_that_echoes_the_mechanism_is_not_quoted_as_offering_it() {
        let e = ConnectError::Handshake {
            addr: addr(),
            reason: CloseReason::Incompatible(Incompatibility::MechanismNotEnabled {
                mechanism: "SCRAM-SHA-512".into(),
                offered: vec!["SCRAM-SHA-512".into()],
            }),
            progress: Box::default(),
        };
        let d = connect_error(&e, &ctx(SecurityProtocol::SaslPlaintext));
        assert!(
            !d.line().contains("use --sasl-mechanism SCRAM-SHA-512"),
            "{}",
            d.line()
        );
        assert!(
            d.line().contains("try --security-protocol PLAINTEXT"),
            "{}",
            d.line()
        );
    }

    #[test]
    fn refused_and_untrusted_and_not_tls() {
        let d = connect_error(
            &ConnectError::Refused {
                addr: addr(),
                progress: Box::default(),
            },
            &ctx(SecurityProtocol::Plaintext),
        );
        assert_eq!(d.step, Step::Tcp);
        assert!(d
            .line()
            .starts_with("connection refused by 127.0.0.1:9092: nothing is listening"));
        assert!(d.retriable);

        let e = ConnectError::CertificateNotTrusted {
            addr: addr(),
            detail: "invalid peer certificate: UnknownIssuer".into(),
            presented: Vec::new(),
            progress: Box::default(),
        };
        let mut c = ctx(SecurityProtocol::Ssl);
        c.ca = Some("/tmp/ca.pem".into());
        let d = connect_error(&e, &c);
        assert!(
            d.line()
                .starts_with("certificate not trusted: check --tls-ca"),
            "{}",
            d.line()
        );
        assert!(d.line().contains("/tmp/ca.pem"), "{}", d.line());

        let e = ConnectError::NotTls {
            addr: addr(),
            detail: "the peer closed the connection during the TLS handshake".into(),
            progress: Box::default(),
        };
        let d = connect_error(&e, &ctx(SecurityProtocol::SaslSsl));
        assert_eq!(
            d.line(),
            "the broker does not speak TLS on this port: use --security-protocol SASL_PLAINTEXT"
        );
    }

    #[test]
    fn a_missing_client_certificate_is_named() {
        let e = ConnectError::Handshake {
            addr: addr(),
            reason: CloseReason::Broken {
                cause: BrokenCause::Io {
                    kind: std::io::ErrorKind::InvalidData,
                    message: "received fatal alert: CertificateRequired".into(),
                },
                during: Phase::Negotiating,
            },
            progress: Box::default(),
        };
        let d = connect_error(&e, &ctx(SecurityProtocol::Ssl));
        assert_eq!(
            d.line(),
            "the broker requires a client certificate (TLS alert CertificateRequired): give --tls-cert and --tls-key"
        );
        assert_eq!(d.step, Step::Tls);
        let e = ConnectError::Tls {
            addr: addr(),
            detail: "the broker sent the alert BadCertificate".into(),
            progress: Box::default(),
        };
        let mut c = ctx(SecurityProtocol::Ssl);
        c.client_cert = true;
        let d = connect_error(&e, &c);
        assert_eq!(d.kind, "client_certificate_refused");
        assert!(
            d.line().contains("TLS alert BadCertificate"),
            "{}",
            d.line()
        );
    }

    /// The advice for an unusable TLS file, from the driver's real error.
    #[tokio::test(flavor = "current_thread")]
    async fn unusable_tls_files_name_the_option_to_fix() {
        let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-cert.pem");
        let cases = [
            (
                kafka_conn_tokio::TlsConfig::ca_file("/nonexistent/ca.pem"),
                "check --tls-ca",
            ),
            (
                kafka_conn_tokio::TlsConfig::ca_file(cert)
                    .with_client_cert("/nonexistent/client.pem", "/nonexistent/client.key"),
                "check --tls-cert",
            ),
            (
                kafka_conn_tokio::TlsConfig::ca_file(cert)
                    .with_client_cert(cert, "/nonexistent/client.key"),
                "check --tls-key",
            ),
        ];
        for (tls, advice) in cases {
            let config = kafka_conn_tokio::ConnectConfig::default().with_tls(tls);
            // Refused before anything is sent: no broker needed.
            let e = kafka_conn_tokio::connect("127.0.0.1:9", config)
                .await
                .unwrap_err();
            assert!(matches!(e, ConnectError::TlsConfig(_)), "{e}");
            let d = connect_error(&e, &ctx(SecurityProtocol::Ssl));
            assert_eq!(d.kind, "tls_configuration");
            assert_eq!(d.advice.as_deref(), Some(advice), "{}", d.line());
        }
    }

    #[test]
    fn a_close_after_api_versions_without_sasl_suggests_sasl() {
        let e = RequestFailure::Failed(kafka_conn_tokio::core::RequestError::ConnectionClosed(
            CloseReason::Broken {
                cause: BrokenCause::Eof,
                during: Phase::Ready,
            },
        ));
        let d = request_failure(&e, ApiKey::METADATA, &ctx(SecurityProtocol::Plaintext));
        assert_eq!(d.step, Step::Metadata);
        assert!(
            d.line().contains("use --security-protocol SASL_PLAINTEXT"),
            "{}",
            d.line()
        );
    }

    /// `ping` and `bench --brokers`: a broker that closes a connection in
    /// use is a close, not check's "wants SASL"; a request the cluster held
    /// back keeps the kind and advice of the failure behind it.
    #[test]
    fn cluster_failures_keep_the_typed_reason() {
        use kafka_conn_tokio::cluster_policy::{Address, DialFailure};
        use kafka_conn_tokio::NodeId;
        let closed = CloseReason::Broken {
            cause: BrokenCause::Eof,
            during: Phase::Ready,
        };
        let address = Address {
            host: "127.0.0.1".into(),
            port: 9092,
        };
        let ctx = ctx(SecurityProtocol::Plaintext);
        let request = ClusterError::Request {
            node: NodeId(2),
            address: address.clone(),
            failure: RequestFailure::Failed(
                kafka_conn_tokio::core::RequestError::ConnectionClosed(closed.clone()),
            ),
        };
        let d = cluster_error(&request, ApiKey::API_VERSIONS, &ctx);
        assert_eq!((d.step, d.kind), (Step::Ready, "connection_closed"));
        assert!(d.retriable);
        assert!(
            d.line().contains("is the broker down or restarting?"),
            "{}",
            d.line()
        );

        let backing_off = ClusterError::BackingOff {
            node: NodeId(2),
            address: address.clone(),
            retry_in: std::time::Duration::from_micros(32_602),
            last: Failure::Closed {
                was_ready: true,
                reason: Box::new(closed),
            },
        };
        let d = cluster_error(&backing_off, ApiKey::API_VERSIONS, &ctx);
        assert_eq!(d.kind, "connection_closed");
        assert_eq!(
            d.problem,
            "not sent: node 2 (127.0.0.1:9092) is backing off for 32.6 ms after: the connection closed: connection broken while ready: the broker closed the connection"
        );
        assert!(d.advice.is_some());

        let mut refused =
            DialFailure::new(DialStep::Connect, "connection refused by 127.0.0.1:9092");
        refused.kind = Some(std::io::ErrorKind::ConnectionRefused);
        let circuit = ClusterError::CircuitOpen {
            node: NodeId(2),
            address,
            failures: 5,
            retry_in: Some(std::time::Duration::from_millis(900)),
            last: Failure::Dial(refused),
        };
        let d = cluster_error(&circuit, ApiKey::API_VERSIONS, &ctx);
        assert_eq!((d.step, d.kind), (Step::Tcp, "connection_refused"));
        assert!(
            d.problem.starts_with("not sent: node 2 (127.0.0.1:9092): circuit open after 5 consecutive failures, next probe in 900.0 ms; last: "),
            "{}",
            d.problem
        );

        let gone = cluster_error(
            &ClusterError::UnknownNode(NodeId(7)),
            ApiKey::API_VERSIONS,
            &ctx,
        );
        assert_eq!(
            (gone.step, gone.kind),
            (Step::Metadata, "broker_not_advertised")
        );
    }
}
