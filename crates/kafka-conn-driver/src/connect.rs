//! Opening a connection: resolve, TCP, TLS, then the core's handshake
//! (ApiVersions, SASL) in the connection's own task.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_io::{AsyncRead, AsyncWrite};
use kafka_conn_core::{CloseReason, Connection, Phase, ProtocolViolation};
use tracing::Instrument;

use crate::client::{Client, Command, Shared};
use crate::config::ConnectConfig;
use crate::credentials::{CredentialContext, Credentials};
use crate::direct::{Completions, DirectClient};
use crate::driver::Driver;
use crate::engine::{Engine, ReadyReport};
use crate::error::ConnectError;
use crate::info::{ConnectInfo, Progress, TcpAttempt, TlsInfo};
use crate::runtime::{timeout, Runtime};
use crate::stream::Stream;
use crate::tls::{capture_presented, classify_handshake_error, peer_speaks_tls};
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
/// resolves the host, tries each address in turn with the connect timeout
/// and `TCP_NODELAY`, runs the TLS handshake if configured, spawns the task
/// that owns the connection and waits for the core to be ready (versions
/// negotiated, SASL done).
pub async fn connect<R: Runtime>(
    rt: R,
    address: &str,
    config: ConnectConfig,
) -> Result<Client, ConnectError> {
    let span = tracing::info_span!("kafka_conn_connect", %address);
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
    resolved: Vec<SocketAddr>,
    tls: Option<TlsInfo>,
    progress: Progress,
    start: Instant,
}

/// Resolves, connects TCP and runs the TLS handshake: everything before
/// the Kafka handshake, the same for [`Client`] and [`DirectClient`].
async fn open_transport<R: Runtime>(
    rt: &R,
    address: &str,
    config: &ConnectConfig,
) -> Result<Transport<R::Tcp>, ConnectError> {
    let start = rt.now();
    config.core.validate()?;
    let tls_config = config.tls.as_ref().map(|t| t.rustls()).transpose()?;
    let (host, port) = split_host_port(address)?;
    let mut progress = Progress::default();

    let resolved = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let t = rt.now();
            let found = timeout(
                rt,
                config.connect_timeout,
                rt.resolve(host.to_owned(), port),
            )
            .await
            .unwrap_or_else(|| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", config.connect_timeout),
                ))
            })
            .map_err(|source| ConnectError::Resolve {
                host: host.to_owned(),
                source,
                progress: progress.at_failure(start, rt.now()),
            })?;
            progress.timings.resolve = Some(rt.now().saturating_duration_since(t));
            tracing::debug!(addresses = ?found, took = ?progress.timings.resolve, "resolved");
            found
        }
    };
    progress.resolved.clone_from(&resolved);
    if resolved.is_empty() {
        return Err(ConnectError::NoAddresses {
            host: host.to_owned(),
            progress: progress.at_failure(start, rt.now()),
        });
    }

    // Why the last attempt failed: the variant of the error when all do.
    let mut last_failure = None;
    let mut tcp = None;
    for &addr in &resolved {
        let t = rt.now();
        let outcome = timeout(rt, config.connect_timeout, rt.connect_tcp(addr)).await;
        let took = rt.now().saturating_duration_since(t);
        let timed_out = outcome.is_none();
        let failure = match outcome {
            Some(Ok(s)) => {
                progress.timings.tcp = Some(took);
                tcp = Some((addr, s));
                break;
            }
            Some(Err(e)) => e,
            None => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("timed out after {:?}", config.connect_timeout),
            ),
        };
        let reason = match failure.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            _ => failure.to_string(),
        };
        tracing::debug!(%addr, %reason, "TCP connect failed");
        progress
            .failed_attempts
            .push(TcpAttempt { addr, reason, took });
        last_failure = Some((addr, failure, timed_out));
    }
    let Some((addr, tcp)) = tcp else {
        let (addr, source, timed_out) = last_failure.expect("at least one address was tried");
        let progress = progress.at_failure(start, rt.now());
        return Err(if timed_out {
            ConnectError::ConnectTimeout {
                addr,
                after: config.connect_timeout,
                progress,
            }
        } else if source.kind() == std::io::ErrorKind::ConnectionRefused {
            ConnectError::Refused { addr, progress }
        } else {
            ConnectError::Tcp {
                addr,
                source,
                progress,
            }
        });
    };
    progress.address = Some(addr);
    rt.set_nodelay(&tcp).map_err(|source| ConnectError::Tcp {
        addr,
        source,
        progress: progress.at_failure(start, rt.now()),
    })?;
    tracing::debug!(%addr, took = ?progress.timings.tcp, "TCP connected");

    let (stream, tls) = match (&config.tls, tls_config) {
        (Some(tls), Some(rustls_config)) => {
            let name = tls.server_name_for(host)?;
            let name_text = name.to_str().into_owned();
            let t = rt.now();
            let handshake = futures_rustls::TlsConnector::from(rustls_config).connect(name, tcp);
            let s = match tls_handshake(rt, addr, handshake, config.connect_timeout).await {
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
            resolved,
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
    let Transport { stream, so_far } = open_transport(&rt, address, &config).await?;
    let handshake_start = rt.now();
    let conn = Connection::new(config.core.clone(), handshake_start)?;
    let peer = CredentialContext::for_runtime(&rt, &so_far.host, so_far.addr);
    let (commands, shared, ready_rx) = spawn_driver(
        &rt,
        so_far.addr,
        conn,
        stream,
        config.credentials.clone(),
        peer,
    );
    // An error: the task vanished without a word (its runtime is shutting down).
    let report = ready_rx.await.unwrap_or_else(|_| ReadyReport {
        result: Err(CloseReason::Shutdown),
        versions_known_at: None,
        at: rt.now(),
    });
    let (tls_alert, bytes_received) = {
        let p = shared.lock();
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
    Ok(Client::new(commands, shared, info))
}

/// Connects to a broker at `address` (`host:port`) on runtime `rt`, as
/// [`connect`] does, but runs the Kafka handshake and then the whole
/// connection in the caller's task: see [`DirectClient`].
pub async fn connect_direct<R: Runtime>(
    rt: R,
    address: &str,
    config: ConnectConfig,
) -> Result<DirectClient<R>, ConnectError> {
    let span = tracing::info_span!("kafka_conn_connect", %address);
    // Boxed as in `connect`.
    Box::pin(connect_direct_in_span(rt, address, config).instrument(span)).await
}

async fn connect_direct_in_span<R: Runtime>(
    rt: R,
    address: &str,
    config: ConnectConfig,
) -> Result<DirectClient<R>, ConnectError> {
    let Transport { stream, so_far } = open_transport(&rt, address, &config).await?;
    let span = tracing::info_span!("kafka_conn", addr = %so_far.addr);
    let handshake_start = rt.now();
    let conn = Connection::new(config.core.clone(), handshake_start)?;
    let peer = CredentialContext::for_runtime(&rt, &so_far.host, so_far.addr);
    let mut engine = Engine::new(rt.clone(), conn, stream, config.credentials.clone(), peer);
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
    Ok(DirectClient::new(engine, out, info, span))
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
        resolved,
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
        ) if config.tls.is_none() && bytes_received == 0 => {
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
        resolved,
        failed_attempts: progress.failed_attempts,
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
/// a second connection (see there for why). The handshake's own result
/// wins whenever it has one.
async fn tls_handshake<R: Runtime, T>(
    rt: &R,
    addr: SocketAddr,
    handshake: impl Future<Output = std::io::Result<T>>,
    connect_timeout: Duration,
) -> TlsOutcome<T> {
    let mut handshake = pin!(timeout(rt, connect_timeout, capture_presented(handshake)));
    let probe_delay = NOT_TLS_PROBE_DELAY.min(connect_timeout);
    let mut probe = pin!(async {
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

/// Starts the task that owns `conn` and `stream`.
fn spawn_driver<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    rt: &R,
    addr: SocketAddr,
    conn: Connection,
    stream: S,
    credentials: Credentials,
    peer: CredentialContext,
) -> (
    mpsc::UnboundedSender<Command>,
    Arc<Shared>,
    oneshot::Receiver<ReadyReport>,
) {
    let (commands, commands_rx) = mpsc::unbounded();
    let (ready_tx, ready_rx) = oneshot::channel();
    let shared = Arc::new(Shared::default());
    let engine = Engine::new(rt.clone(), conn, stream, credentials, peer);
    let driver = Driver::new(engine, commands_rx, shared.clone(), ready_tx);
    rt.spawn(Box::pin(
        driver.instrument(tracing::info_span!("kafka_conn", %addr)),
    ));
    (commands, shared, ready_rx)
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
    let (commands, _shared, ready) =
        spawn_driver(rt, addr, conn, tcp, Credentials::default(), peer);
    let spoke = matches!(ready.await, Ok(ReadyReport { result: Ok(_), .. }));
    // Dropping the only handle closes the probe connection.
    drop(commands);
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
