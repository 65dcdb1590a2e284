//! Opening a connection: resolve, TCP, TLS, then the core's handshake
//! (ApiVersions, SASL) in the connection's own task.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_io::AsyncWrite;
use kafka_conn_core::{CloseReason, Connection, Phase, ProtocolViolation};
use tracing::Instrument;

use crate::client::{Client, Handle};
use crate::config::ConnectConfig;
use crate::credentials::{CredentialContext, Credentials};
use crate::dial::{open, Opened, UNSPECIFIED};
use crate::direct::{Completions, DirectClient};
use crate::driver::Driver;
use crate::engine::{Engine, ReadyReport};
use crate::error::{ConnectError, SetupStep};
use crate::info::{ConnectInfo, Progress, TlsInfo};
use crate::observe::Observing;
use crate::queue::Shared;
use crate::runtime::{timeout, Runtime};
use crate::spare_read::SpareRead;
use crate::stream::{Conduit, Stream, Transport as AnyTransport};
use crate::tls::{capture_presented, classify_handshake_error, peer_speaks_tls};
use crate::transport::DialRequest;
use rustls_pki_types::CertificateDer;

/// When a TLS handshake has not finished after this long, `connect` asks
/// the port in plaintext Kafka on a second connection, in parallel: a
/// Kafka broker reads a ClientHello as a huge frame size and waits, so
/// without the probe the diagnosis would take the whole connect timeout.
/// A real TLS broker answers a ClientHello within milliseconds, and a slow
/// one is not misjudged: the probe only wins when the port answers Kafka
/// in plaintext.
const NOT_TLS_PROBE_DELAY: Duration = Duration::from_secs(1);

/// The longest a diagnosis probe (a second connection) may take.
const PROBE_LIMIT: Duration = Duration::from_secs(3);

/// Connects to a broker at `address` (`host:port`) on runtime `rt`:
/// resolves the host (on every call, unless a DNS cache is configured),
/// races TCP connects to its addresses (RFC 8305 Happy Eyeballs: the next
/// address a delay after the last, the first to connect wins; see
/// `docs/dialing.md`) with the connect timeout and `TCP_NODELAY`, runs the TLS handshake if configured, spawns the task
/// that owns the connection and waits for the core to be ready (versions
/// negotiated, SASL done).
pub async fn connect<R: Runtime>(
    rt: R,
    address: &str,
    config: ConnectConfig,
) -> Result<Client, ConnectError> {
    let span = connect_span(address, &config);
    // Boxed: the handshake's state (about 10 KB) lives on the heap for the
    // connect and is freed after, instead of sitting in the caller's future
    // (often on a `block_on` stack, whose pages stay resident).
    Box::pin(connect_in_span(rt, address, config).instrument(span)).await
}

/// A transport that is up (TCP, and TLS when configured), ready for the
/// Kafka handshake.
struct Transport<T> {
    stream: Stream<T>,
    so_far: SoFar,
}

/// What `connect` learnt before the Kafka handshake.
struct SoFar {
    /// The host as given (for the credential provider).
    host: String,
    addr: SocketAddr,
    /// Whether `addr` is the broker over plain TCP (see `dial::Opened`).
    direct: bool,
    tls: Option<TlsInfo>,
    progress: Progress,
    start: Instant,
}

/// Checks the settings before any I/O: the core's, and TLS (built once).
fn checked(config: &ConnectConfig) -> Result<Option<Arc<rustls::ClientConfig>>, ConnectError> {
    config.core.validate()?;
    config.tls.as_ref().map(|t| t.rustls()).transpose()
}

/// Dials (`dial::open`: the dialer, TCP with Happy Eyeballs, or a proxy
/// tunnel) and runs the TLS handshake: everything before the Kafka
/// handshake, the same for [`Client`] and [`DirectClient`], for a single
/// connection and (with its per-node setup timeout) a cluster's.
async fn open_transport<R: Runtime>(
    rt: &R,
    request: &DialRequest,
    config: &ConnectConfig,
) -> Result<Transport<R::Tcp>, ConnectError> {
    let start = rt.now();
    let tls_config = checked(config)?;
    let mut progress = Progress::default();
    let opened = open(rt, request, &config.dial, &mut progress, start).await?;
    secure(
        rt,
        &request.host,
        opened,
        tls_config,
        config,
        progress,
        start,
    )
    .await
}

/// The caller's `stream` as the transport, TLS on top if configured.
async fn transport_over<R: Runtime>(
    rt: &R,
    host: &str,
    stream: Box<dyn AnyTransport>,
    config: &ConnectConfig,
) -> Result<Transport<R::Tcp>, ConnectError> {
    let start = rt.now();
    let tls_config = checked(config)?;
    let opened = Opened {
        conduit: Conduit::Other(stream),
        addr: UNSPECIFIED,
        direct: false,
    };
    secure(
        rt,
        host,
        opened,
        tls_config,
        config,
        Progress::default(),
        start,
    )
    .await
}

/// Runs the TLS handshake over `opened` when TLS is configured, verifying
/// `host` (or the configured server name).
async fn secure<R: Runtime>(
    rt: &R,
    host: &str,
    opened: Opened<R::Tcp>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    config: &ConnectConfig,
    mut progress: Progress,
    start: Instant,
) -> Result<Transport<R::Tcp>, ConnectError> {
    let Opened {
        conduit: tcp,
        addr,
        direct,
    } = opened;
    let (stream, tls) = match (&config.tls, tls_config) {
        (Some(tls), Some(rustls_config)) => {
            let name = tls.server_name_for(host)?;
            let name_text = name.to_str().into_owned();
            config.dial.mark(SetupStep::Tls);
            let t = rt.now();
            let handshake = futures_rustls::TlsConnector::from(rustls_config).connect(name, tcp);
            let probe = direct.then_some(addr);
            let s = match tls_handshake(rt, probe, handshake, config.connect_timeout).await {
                TlsOutcome::Done(Ok(s)) => s,
                TlsOutcome::Done(Err((e, presented))) => {
                    return Err(classify_handshake_error(
                        e,
                        addr,
                        &name_text,
                        presented,
                        progress.at_failure(start, rt.now()),
                    ))
                }
                TlsOutcome::PlaintextKafka => {
                    return Err(ConnectError::NotTls {
                        addr,
                        detail: format!(
                            "no TLS answer after {:?}, but the port answers Kafka ApiVersions in plaintext",
                            rt.now().saturating_duration_since(t)
                        ),
                        progress: progress.at_failure(start, rt.now()),
                    })
                }
                TlsOutcome::TimedOut => {
                    return Err(ConnectError::TlsTimeout {
                        addr,
                        after: config.connect_timeout,
                        progress: progress.at_failure(start, rt.now()),
                    })
                }
            };
            progress.timings.tls = Some(rt.now().saturating_duration_since(t));
            let info = TlsInfo::from_connection(s.get_ref().1, name_text);
            tracing::debug!(
                version = %info.protocol_version,
                cipher_suite = %info.cipher_suite,
                certificates = info.peer_certificates.len(),
                took = ?progress.timings.tls,
                "TLS established"
            );
            (Stream::Tls(Box::new(s)), Some(info))
        }
        _ => (Stream::Plain(tcp), None),
    };

    Ok(Transport {
        stream,
        so_far: SoFar {
            host: host.to_owned(),
            addr,
            direct,
            tls,
            progress,
            start,
        },
    })
}

async fn connect_in_span<R: Runtime>(
    rt: R,
    address: &str,
    config: ConnectConfig,
) -> Result<Client, ConnectError> {
    let request = match dial_request(address, &config) {
        Ok(r) => r,
        Err(e) => {
            config.observe.connect_failed(address, &e);
            return Err(e);
        }
    };
    connect_to(rt, &request, config).await
}

/// The Kafka handshake over `transport` in a spawned task: a [`Client`].
async fn client_over<R: Runtime>(
    rt: R,
    transport: Transport<R::Tcp>,
    config: ConnectConfig,
) -> Result<Client, ConnectError> {
    let Transport { stream, so_far } = transport;
    let handshake_start = rt.now();
    let conn = Connection::new(config.core.clone(), handshake_start)?;
    let peer = CredentialContext::for_runtime(&rt, &so_far.host, so_far.addr);
    config.dial.mark(SetupStep::ApiVersions);
    let (observed, observing) = config.observe.start(&so_far.host, so_far.addr);
    // The connection's task marks SASL when it gets there.
    let observing = observing.map(|o| o.with_setup(config.dial.setup_mark.clone()));
    let (handle, ready_rx) = spawn_driver(
        &rt,
        so_far.addr,
        conn,
        stream,
        config.credentials.clone(),
        peer,
        (config.max_queued, config.observe.node_id, observing),
    );
    // An error: the task vanished without a word (its runtime is shutting down).
    let report = ready_rx.await.unwrap_or_else(|_| ReadyReport {
        result: Err(CloseReason::Shutdown),
        versions_known_at: None,
        at: rt.now(),
    });
    let (tls_alert, bytes_received) = {
        let p = handle.0.lock();
        (p.tls_alert.clone(), p.stats.bytes_received)
    };
    let info = finish_handshake(
        &rt,
        &config,
        so_far,
        handshake_start,
        report,
        tls_alert,
        bytes_received,
    )
    .await?;
    config.observe.connected(observed.as_deref(), &info);
    Ok(Client::new(handle, info))
}

/// Connects to a broker at `address` (`host:port`) on runtime `rt`, as
/// [`connect`] does, but runs the Kafka handshake and then the whole
/// connection in the caller's task: see [`DirectClient`].
pub async fn connect_direct<R: Runtime>(
    rt: R,
    address: &str,
    config: ConnectConfig,
) -> Result<DirectClient<R>, ConnectError> {
    let span = connect_span(address, &config);
    // Boxed as in `connect`.
    Box::pin(connect_direct_in_span(rt, address, config).instrument(span)).await
}

async fn connect_direct_in_span<R: Runtime>(
    rt: R,
    address: &str,
    config: ConnectConfig,
) -> Result<DirectClient<R>, ConnectError> {
    let observe = config.observe.clone();
    let result = async {
        let request = dial_request(address, &config)?;
        let transport = open_transport(&rt, &request, &config).await?;
        direct_over(rt, transport, config).await
    }
    .await;
    observe.report_failure(address, &result);
    result
}

/// The Kafka handshake over `transport` in the caller's task: a
/// [`DirectClient`].
async fn direct_over<R: Runtime>(
    rt: R,
    transport: Transport<R::Tcp>,
    config: ConnectConfig,
) -> Result<DirectClient<R>, ConnectError> {
    let Transport { stream, so_far } = transport;
    let span = connection_span(so_far.addr, config.observe.node_id);
    let handshake_start = rt.now();
    let conn = Connection::new(config.core.clone(), handshake_start)?;
    let peer = CredentialContext::for_runtime(&rt, &so_far.host, so_far.addr);
    let (observed, observing) = config.observe.start(&so_far.host, so_far.addr);
    let mut engine = Engine::new(rt.clone(), conn, stream, config.credentials.clone(), peer)
        .with_observing(observing);
    let mut out = Completions::default();
    let report = std::future::poll_fn(|cx| {
        let _entered = span.enter();
        // The engine reports ready (or not) before it reports closed.
        let _ = engine.poll(cx, &mut out, false);
        match out.ready.take() {
            Some(report) => Poll::Ready(report),
            None => Poll::Pending,
        }
    })
    .await;
    let tls_alert = out.tls_alert.take();
    let bytes_received = engine.conn.stats().bytes_received;
    let info = finish_handshake(
        &rt,
        &config,
        so_far,
        handshake_start,
        report,
        tls_alert,
        bytes_received,
    )
    .await?;
    config.observe.connected(observed.as_deref(), &info);
    Ok(DirectClient::new(engine, out, info, span))
}

/// Runs a connection over `stream`, a byte stream the caller already has
/// (a Unix socket, an in-memory pipe, a tunnel of your own: any
/// [`Transport`](crate::Transport)), on runtime `rt`: TLS if configured,
/// then the Kafka handshake in the connection's own task, as [`connect`]
/// does after dialing. `host` is the broker's name: what TLS verifies
/// (unless the TLS configuration names a server) and what the credential
/// provider is told. [`ConnectInfo::address`] is the unspecified
/// `0.0.0.0:0`: the stream has no address the driver knows.
pub async fn connect_over<R: Runtime>(
    rt: R,
    stream: impl AnyTransport,
    host: &str,
    config: ConnectConfig,
) -> Result<Client, ConnectError> {
    let span = connect_span(host, &config);
    let stream: Box<dyn AnyTransport> = Box::new(stream);
    let observe = config.observe.clone();
    let result = Box::pin(
        async move {
            let transport = transport_over(&rt, host, stream, &config).await?;
            client_over(rt, transport, config).await
        }
        .instrument(span),
    )
    .await;
    observe.report_failure(host, &result);
    result
}

/// As [`connect_over`], but the connection runs in the caller's task: a
/// [`DirectClient`].
pub async fn connect_direct_over<R: Runtime>(
    rt: R,
    stream: impl AnyTransport,
    host: &str,
    config: ConnectConfig,
) -> Result<DirectClient<R>, ConnectError> {
    let span = connect_span(host, &config);
    let stream: Box<dyn AnyTransport> = Box::new(stream);
    let observe = config.observe.clone();
    let result = Box::pin(
        async move {
            let transport = transport_over(&rt, host, stream, &config).await?;
            direct_over(rt, transport, config).await
        }
        .instrument(span),
    )
    .await;
    observe.report_failure(host, &result);
    result
}

/// Connects to the broker of `request` (host, port and setup timeout: a
/// cluster's node with its growing timeout) on runtime `rt`: the dial of
/// `config` (its dialer, or TCP with Happy Eyeballs, or its proxy), TLS
/// and the Kafka handshake. [`connect`] is this with the address parsed
/// and the connect timeout.
pub(crate) async fn connect_to<R: Runtime>(
    rt: R,
    request: &DialRequest,
    config: ConnectConfig,
) -> Result<Client, ConnectError> {
    let observe = config.observe.clone();
    let result = async {
        let transport = open_transport(&rt, request, &config).await?;
        client_over(rt, transport, config).await
    }
    .await;
    if result.is_err() {
        observe.report_failure(&request.to_string(), &result);
    }
    result
}

/// The span of a connect (stable name and fields: `docs/metrics.md`).
pub(crate) fn connect_span(address: &str, config: &ConnectConfig) -> tracing::Span {
    let span = tracing::info_span!(
        "kafka_conn.connect",
        address,
        node_id = tracing::field::Empty
    );
    if let Some(node) = config.observe.node_id {
        span.record("node_id", node.0);
    }
    span
}

/// The dial request of `address` (`host:port`) with the connect timeout.
fn dial_request(address: &str, config: &ConnectConfig) -> Result<DialRequest, ConnectError> {
    let (host, port) = split_host_port(address)?;
    Ok(DialRequest::new(host, port, config.connect_timeout))
}

/// Turns the handshake's outcome into the connection's [`ConnectInfo`], or
/// into the [`ConnectError`] that says best what went wrong. `tls_alert`
/// and `bytes_received` are what the connection saw until then.
async fn finish_handshake<R: Runtime>(
    rt: &R,
    config: &ConnectConfig,
    so_far: SoFar,
    handshake_start: Instant,
    report: ReadyReport,
    tls_alert: Option<String>,
    bytes_received: u64,
) -> Result<ConnectInfo, ConnectError> {
    let SoFar {
        host: _,
        addr,
        direct,
        tls,
        mut progress,
        start,
    } = so_far;
    progress.timings.api_versions = report
        .versions_known_at
        .map(|at| at.saturating_duration_since(handshake_start));
    let (api_versions, sasl) = match report.result {
        Ok(r) => r,
        Err(_) if tls_alert.is_some() => {
            let alert = tls_alert.unwrap_or_default();
            return Err(ConnectError::Tls {
                addr,
                detail: format!(
                    "the broker ended the TLS session with the alert {alert}: with mTLS, the broker requires a client certificate or rejected ours"
                ),
                progress: progress.at_failure(start, rt.now()),
            });
        }
        Err(CloseReason::Protocol(ProtocolViolation::LooksLikeTls)) => {
            return Err(ConnectError::BrokerSpeaksTls {
                addr,
                progress: progress.at_failure(start, rt.now()),
            })
        }
        Err(
            reason @ CloseReason::Broken {
                during: Phase::Negotiating,
                ..
            },
        ) if config.tls.is_none() && bytes_received == 0 && direct => {
            // The peer hung up without a word: a TLS listener that resets
            // plaintext clients does exactly that. Ask it in TLS.
            let within = config.connect_timeout.min(PROBE_LIMIT);
            let failed = progress.at_failure(start, rt.now());
            if peer_speaks_tls(rt, addr, within).await {
                return Err(ConnectError::BrokerSpeaksTls {
                    addr,
                    progress: failed,
                });
            }
            return Err(ConnectError::Handshake {
                addr,
                reason,
                progress: failed,
            });
        }
        Err(reason) => {
            return Err(ConnectError::Handshake {
                addr,
                reason,
                progress: progress.at_failure(start, rt.now()),
            })
        }
    };
    if sasl.is_some() {
        let authenticating_from = report.versions_known_at.unwrap_or(handshake_start);
        progress.timings.sasl = Some(report.at.saturating_duration_since(authenticating_from));
    }
    progress.timings.total = rt.now().saturating_duration_since(start);
    let info = ConnectInfo {
        address: addr,
        resolved: progress.resolved,
        attempts: progress.attempts,
        failed_attempts: progress.failed_attempts,
        proxy: progress.proxy,
        timings: progress.timings,
        tls,
        api_versions,
        sasl,
    };
    Ok(info)
}

/// How a TLS handshake raced against the plaintext probe ended.
enum TlsOutcome<T> {
    /// The handshake ended: the stream, or the error with the chain the
    /// broker presented (empty if it presented none, or we could not see it).
    Done(Result<T, (std::io::Error, Vec<CertificateDer<'static>>)>),
    /// No TLS answer yet, but the port answers Kafka in plaintext.
    PlaintextKafka,
    /// No TLS answer within the connect timeout, and no Kafka answer either.
    TimedOut,
}

/// Runs the TLS handshake `handshake` for at most `connect_timeout`, and
/// from [`NOT_TLS_PROBE_DELAY`] on races it with a plaintext ApiVersions on
/// a second connection to `probe` (see there for why; `None`: no second
/// connection, as through a proxy). The handshake's own result wins
/// whenever it has one.
async fn tls_handshake<R: Runtime, T>(
    rt: &R,
    probe: Option<SocketAddr>,
    handshake: impl Future<Output = std::io::Result<T>>,
    connect_timeout: Duration,
) -> TlsOutcome<T> {
    let mut handshake = pin!(timeout(rt, connect_timeout, capture_presented(handshake)));
    let probe_delay = NOT_TLS_PROBE_DELAY.min(connect_timeout);
    let mut probe = pin!(async {
        let Some(addr) = probe else {
            // No second connection: the handshake alone decides.
            return false;
        };
        rt.sleep_until(rt.now() + probe_delay).await;
        tracing::debug!(%addr, after = ?probe_delay, "no TLS answer yet: asking the port in plaintext Kafka");
        peer_speaks_kafka(rt, addr, connect_timeout.min(PROBE_LIMIT)).await
    });
    // `Some(None)`: the handshake timed out.
    let mut handshake_done = None;
    let mut probe_done = None;
    std::future::poll_fn(|cx| {
        if handshake_done.is_none() {
            if let Poll::Ready(r) = handshake.as_mut().poll(cx) {
                handshake_done = Some(r);
            }
        }
        if probe_done.is_none() {
            if let Poll::Ready(r) = probe.as_mut().poll(cx) {
                probe_done = Some(r);
            }
        }
        match (handshake_done.take(), probe_done) {
            (Some(Some((result, presented))), _) => {
                Poll::Ready(TlsOutcome::Done(result.map_err(|e| (e, presented))))
            }
            (_, Some(true)) => Poll::Ready(TlsOutcome::PlaintextKafka),
            (Some(None), Some(false)) => Poll::Ready(TlsOutcome::TimedOut),
            // Still waiting: for the handshake, or for the probe after the
            // handshake timed out (the probe has its own bound).
            (pending, _) => {
                handshake_done = pending;
                Poll::Pending
            }
        }
    })
    .await
}

/// Starts the task that owns `conn` and `stream`; dropping the returned
/// handle (or the `Client` made of it) closes the connection.
fn spawn_driver<R: Runtime, S: SpareRead<R> + AsyncWrite + Send + 'static>(
    rt: &R,
    addr: SocketAddr,
    conn: Connection,
    stream: S,
    credentials: Credentials,
    peer: CredentialContext,
    (max_queued, node_id, observing): (usize, Option<crate::NodeId>, Option<Observing>),
) -> (Handle, oneshot::Receiver<ReadyReport>) {
    let (ready_tx, ready_rx) = oneshot::channel();
    let shared = Arc::new(Shared::new(max_queued));
    let engine = Engine::new(rt.clone(), conn, stream, credentials, peer).with_observing(observing);
    let driver = Driver::new(engine, shared.clone(), ready_tx);
    rt.spawn(Box::pin(driver.instrument(connection_span(addr, node_id))));
    (Handle(shared), ready_rx)
}

/// The span of a connection's life, its task's or a `DirectClient`'s
/// (stable name and fields: `docs/metrics.md`).
fn connection_span(addr: SocketAddr, node_id: Option<crate::NodeId>) -> tracing::Span {
    let span = tracing::info_span!(
        "kafka_conn.connection",
        address = %addr,
        node_id = tracing::field::Empty
    );
    if let Some(node) = node_id {
        span.record("node_id", node.0);
    }
    span
}

/// Whether the peer at `addr` completes a plaintext Kafka handshake
/// (ApiVersions) within `within`: the diagnosis of a TLS client on a
/// plaintext port whose broker just waits.
async fn peer_speaks_kafka<R: Runtime>(rt: &R, addr: SocketAddr, within: Duration) -> bool {
    let Some(Ok(tcp)) = timeout(rt, within, rt.connect_tcp(addr)).await else {
        return false;
    };
    let core = kafka_conn_core::Config::new().with_handshake_timeout(within);
    let Ok(conn) = Connection::new(core, rt.now()) else {
        return false;
    };
    let peer = CredentialContext::for_runtime(rt, &addr.ip().to_string(), addr);
    let (handle, ready) = spawn_driver(
        rt,
        addr,
        conn,
        Stream::Plain(Conduit::tcp(tcp, None)),
        Credentials::default(),
        peer,
        (crate::queue::DEFAULT_MAX_QUEUED, None, None),
    );
    let spoke = matches!(ready.await, Ok(ReadyReport { result: Ok(_), .. }));
    // Dropping the only handle closes the probe connection.
    drop(handle);
    spoke
}

/// Splits `host:port`, `[v6]:port` or `v6-literal:port`.
fn split_host_port(address: &str) -> Result<(&str, u16), ConnectError> {
    let invalid = |why| ConnectError::InvalidAddress {
        address: address.to_owned(),
        why,
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid("the port is not a number from 0 to 65535"))?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            split_host_port("localhost:9092").unwrap(),
            ("localhost", 9092)
        );
        assert_eq!(split_host_port("[::1]:9093").unwrap(), ("::1", 9093));
        assert_eq!(split_host_port("127.0.0.1:1").unwrap(), ("127.0.0.1", 1));
        assert!(split_host_port("localhost").is_err());
        assert!(split_host_port(":9092").is_err());
        assert!(split_host_port("host:99999").is_err());
    }
}
