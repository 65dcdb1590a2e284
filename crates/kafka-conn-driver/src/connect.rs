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
use kafka_conn_core::{
    ApiVersions, CloseReason, Connection, Phase, ProtocolViolation, SaslSession,
};
use tracing::Instrument;

use crate::client::{Client, Command, Shared};
use crate::config::ConnectConfig;
use crate::credentials::Credentials;
use crate::driver::{Driver, ReadyResult};
use crate::error::ConnectError;
use crate::runtime::Runtime;
use crate::stream::Stream;
use crate::tls::{classify_handshake_error, peer_speaks_tls, TlsInfo};

/// How a connection was made: what a diagnostics tool shows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectInfo {
    /// The address connected to.
    pub address: SocketAddr,
    /// Every address the host resolved to, in the order tried.
    pub resolved: Vec<SocketAddr>,
    /// Addresses tried before `address`, with why each failed.
    pub failed_attempts: Vec<(SocketAddr, String)>,
    /// How long each step took.
    pub timings: Timings,
    /// The TLS session, when TLS is on. (Certificate subject and expiry
    /// are not decoded: that needs an X.509 parser this crate does not carry.)
    pub tls: Option<TlsInfo>,
    /// What the broker supports (see [`ApiVersions::fell_back`] for
    /// whether a KIP-511 fallback happened).
    pub api_versions: Arc<ApiVersions>,
    /// The SASL session, when the connection authenticated.
    pub sasl: Option<SaslSession>,
}

/// How long each step of [`connect`] took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// DNS resolution (zero for an IP literal).
    pub resolve: Duration,
    /// The TCP connect that succeeded (failed attempts not included).
    pub tcp: Duration,
    /// The TLS handshake.
    pub tls: Option<Duration>,
    /// From the transport being up to ready: ApiVersions and SASL.
    pub handshake: Duration,
    /// Everything.
    pub total: Duration,
}

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
    connect_in_span(rt, address, config).instrument(span).await
}

async fn connect_in_span<R: Runtime>(
    rt: R,
    address: &str,
    config: ConnectConfig,
) -> Result<Client, ConnectError> {
    let start = Instant::now();
    config.core.validate()?;
    let tls_config = config.tls.as_ref().map(|t| t.rustls()).transpose()?;
    let (host, port) = split_host_port(address)?;
    let mut timings = Timings::default();

    let resolved = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let t = Instant::now();
            let found = timeout(
                &rt,
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
            })?;
            timings.resolve = t.elapsed();
            tracing::debug!(addresses = ?found, took = ?timings.resolve, "resolved");
            found
        }
    };
    if resolved.is_empty() {
        return Err(ConnectError::NoAddresses {
            host: host.to_owned(),
        });
    }

    let mut failed_attempts = Vec::new();
    let mut last_error = None;
    let mut tcp = None;
    for &addr in &resolved {
        let t = Instant::now();
        let error = match timeout(&rt, config.connect_timeout, rt.connect_tcp(addr)).await {
            Some(Ok(s)) => {
                timings.tcp = t.elapsed();
                tcp = Some((addr, s));
                break;
            }
            Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                ConnectError::Refused { addr }
            }
            Some(Err(source)) => ConnectError::Tcp { addr, source },
            None => ConnectError::ConnectTimeout {
                addr,
                after: config.connect_timeout,
            },
        };
        tracing::debug!(%addr, %error, "TCP connect failed");
        failed_attempts.push((addr, error.to_string()));
        last_error = Some(error);
    }
    let Some((addr, tcp)) = tcp else {
        return Err(last_error.expect("at least one address was tried"));
    };
    rt.set_nodelay(&tcp)
        .map_err(|source| ConnectError::Tcp { addr, source })?;
    tracing::debug!(%addr, took = ?timings.tcp, "TCP connected");

    let (stream, tls) = match (&config.tls, tls_config) {
        (Some(tls), Some(rustls_config)) => {
            let name = tls.server_name_for(host)?;
            let name_text = name.to_str().into_owned();
            let t = Instant::now();
            let handshake = futures_rustls::TlsConnector::from(rustls_config).connect(name, tcp);
            let s = match timeout(&rt, config.connect_timeout, handshake).await {
                Some(Ok(s)) => s,
                Some(Err(e)) => return Err(classify_handshake_error(e, addr, &name_text)),
                None => {
                    // A Kafka listener reads a ClientHello as a huge frame
                    // size and waits for the rest: ask it in Kafka instead.
                    let within = config.connect_timeout.min(Duration::from_secs(3));
                    if peer_speaks_kafka(&rt, addr, within).await {
                        return Err(ConnectError::NotTls {
                            addr,
                            detail: format!(
                                "no TLS answer within {:?}, but the port answers Kafka ApiVersions in plaintext",
                                config.connect_timeout
                            ),
                        });
                    }
                    return Err(ConnectError::TlsTimeout {
                        addr,
                        after: config.connect_timeout,
                    });
                }
            };
            timings.tls = Some(t.elapsed());
            let info = TlsInfo::from_connection(s.get_ref().1, name_text);
            tracing::debug!(
                version = %info.protocol_version,
                cipher_suite = %info.cipher_suite,
                took = ?timings.tls,
                "TLS established"
            );
            (Stream::Tls(Box::new(s)), Some(info))
        }
        _ => (Stream::Plain(tcp), None),
    };

    let handshake_start = Instant::now();
    let conn = Connection::new(config.core.clone(), handshake_start)?;
    let (commands, shared, ready_rx) =
        spawn_driver(&rt, addr, conn, stream, config.credentials.clone());
    // An error: the task vanished without a word (its runtime is shutting down).
    let ready = ready_rx.await.unwrap_or(Err(CloseReason::Shutdown));
    let (api_versions, sasl) = match ready {
        Ok(r) => r,
        Err(_) if shared.lock().tls_alert.is_some() => {
            let alert = shared.lock().tls_alert.clone().unwrap_or_default();
            return Err(ConnectError::Tls {
                addr,
                detail: format!(
                    "the broker ended the TLS session with the alert {alert}: with mTLS, the broker requires a client certificate or rejected ours"
                ),
            });
        }
        Err(CloseReason::Protocol(ProtocolViolation::LooksLikeTls)) => {
            return Err(ConnectError::BrokerSpeaksTls { addr })
        }
        Err(
            reason @ CloseReason::Broken {
                during: Phase::Negotiating,
                ..
            },
        ) if config.tls.is_none() && shared.lock().stats.bytes_received == 0 => {
            // The peer hung up without a word: a TLS listener that resets
            // plaintext clients does exactly that. Ask it in TLS.
            let within = config.connect_timeout.min(Duration::from_secs(3));
            if peer_speaks_tls(&rt, addr, within).await {
                return Err(ConnectError::BrokerSpeaksTls { addr });
            }
            return Err(ConnectError::Handshake { addr, reason });
        }
        Err(reason) => return Err(ConnectError::Handshake { addr, reason }),
    };
    timings.handshake = handshake_start.elapsed();
    timings.total = start.elapsed();
    let info = ConnectInfo {
        address: addr,
        resolved,
        failed_attempts,
        timings,
        tls,
        api_versions,
        sasl,
    };
    Ok(Client::new(commands, shared, info))
}

/// Starts the task that owns `conn` and `stream`.
fn spawn_driver<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    rt: &R,
    addr: SocketAddr,
    conn: Connection,
    stream: S,
    credentials: Credentials,
) -> (
    mpsc::UnboundedSender<Command>,
    Arc<Shared>,
    oneshot::Receiver<ReadyResult>,
) {
    let (commands, commands_rx) = mpsc::unbounded();
    let (ready_tx, ready_rx) = oneshot::channel();
    let shared = Arc::new(Shared::default());
    let driver = Driver::new(
        rt.clone(),
        conn,
        stream,
        commands_rx,
        credentials,
        shared.clone(),
        ready_tx,
    );
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
    let Ok(conn) = Connection::new(core, Instant::now()) else {
        return false;
    };
    let (commands, _shared, ready) = spawn_driver(rt, addr, conn, tcp, Credentials::default());
    let spoke = matches!(ready.await, Ok(Ok(_)));
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

/// Runs `fut` for at most `after`; `None` when the time ran out.
pub(crate) async fn timeout<R: Runtime, F: Future>(
    rt: &R,
    after: Duration,
    fut: F,
) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut sleep = rt.sleep_until(Instant::now() + after);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
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
