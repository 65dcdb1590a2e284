//! Dialing: from a host and port to a byte stream to the broker, before
//! TLS. Resolves on every dial (or from the cache when one is
//! configured), orders the addresses (`addresses.rs`) and runs the Happy
//! Eyeballs race (`race.rs`, pure) over the runtime's sockets, sets the
//! socket options (`socket.rs`), and through a proxy asks for a tunnel
//! (`tunnel.rs`): this file is the I/O half of them all.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::addresses::{order, AddressFamily, DnsCache};
use crate::error::{ConnectError, SetupMark, SetupStep};
use crate::info::{AttemptOutcome, Progress, ProxyInfo, TcpAttempt};
use crate::proxy::{
    split_host_port, Proxy, ProxyFailure, ProxyKind, ProxyStep, Target, TargetHost,
};
use crate::race::{Action, Attempt, AttemptState, Race};
use crate::runtime::{timeout, BoxFuture, Runtime};
use crate::socket::{apply, SocketOptions};
use crate::stream::{Conduit, Silence};
use crate::transport::{DialFn, DialRequest, Dialed};
use crate::tunnel::open_tunnel;

/// RFC 8305's recommended connection attempt delay (section 5).
pub(crate) const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// A resolver the application supplies: host and port to addresses.
pub(crate) type ResolveFn =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// How to dial: everything before TLS and the Kafka handshake.
#[derive(Clone)]
pub(crate) struct DialConfig {
    pub(crate) resolver: Option<ResolveFn>,
    pub(crate) dns_cache: Option<DnsCache>,
    pub(crate) family: AddressFamily,
    pub(crate) attempt_delay: Duration,
    pub(crate) socket: SocketOptions,
    pub(crate) proxy: Option<Proxy>,
    pub(crate) dialer: Option<DialFn>,
    /// Where a cluster's attempt is, for its setup timeout's error (set
    /// per attempt by the cluster; see `SetupMark`).
    pub(crate) setup_mark: Option<Arc<SetupMark>>,
}

impl DialConfig {
    /// Notes that the attempt is at `step` (when someone asked to know).
    pub(crate) fn mark(&self, step: SetupStep) {
        if let Some(mark) = &self.setup_mark {
            mark.set(step);
        }
    }
}

impl Default for DialConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            dns_cache: None,
            family: AddressFamily::Any,
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
            socket: SocketOptions::default(),
            proxy: None,
            dialer: None,
            setup_mark: None,
        }
    }
}

impl fmt::Debug for DialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialConfig")
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"))
            .field("dns_cache", &self.dns_cache)
            .field("family", &self.family)
            .field("attempt_delay", &self.attempt_delay)
            .field("socket", &self.socket)
            .field("proxy", &self.proxy)
            .field("dialer", &self.dialer.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// The address reported for a transport without one.
pub(crate) const UNSPECIFIED: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// A byte stream to the broker (before TLS), and how it was made.
pub(crate) struct Opened<T> {
    pub(crate) conduit: Conduit<T>,
    /// The TCP peer: the broker's address, or the proxy's.
    pub(crate) addr: SocketAddr,
    /// Whether `addr` is the broker itself over plain TCP, so that a
    /// diagnosis may open a second connection to it.
    pub(crate) direct: bool,
}

/// Opens a byte stream to the broker of `request` as `config` says: with
/// the application's dialer, straight over TCP, or through the proxy.
/// Each step is bounded by the request's setup timeout and recorded in
/// `progress` (lookups, every TCP attempt, the tunnel). The one entry
/// point for every connection, single or of a cluster.
pub(crate) async fn open<R: Runtime>(
    rt: &R,
    request: &DialRequest,
    config: &DialConfig,
    progress: &mut Progress,
    start: Instant,
) -> Result<Opened<R::Tcp>, ConnectError> {
    let (host, port, setup_timeout) = (request.host.as_str(), request.port, request.setup_timeout);
    // The steps as `SetupStep::of_error` names their failures: a dialer's
    // is `tcp`, everything through a proxy is `proxy`.
    config.mark(if config.dialer.is_some() {
        SetupStep::Tcp
    } else if config.proxy.is_some() {
        SetupStep::Proxy
    } else {
        SetupStep::Resolve
    });
    if let Some(dialer) = &config.dialer {
        let failed = |source, progress: &Progress| ConnectError::Dial {
            target: request.to_string(),
            source,
            progress: progress.at_failure(start, rt.now()),
        };
        let dialed = timeout(rt, setup_timeout, dialer(request.clone()))
            .await
            .unwrap_or_else(|| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the dialer did not finish within {setup_timeout:?}"),
                ))
            });
        let Dialed { transport, peer } = dialed.map_err(|e| failed(e, progress))?;
        progress.address = peer;
        progress.timings.tcp = Some(rt.now().saturating_duration_since(start));
        return Ok(Opened {
            conduit: Conduit::Other(transport),
            addr: peer.unwrap_or(UNSPECIFIED),
            direct: false,
        });
    }
    let Some(proxy) = &config.proxy else {
        let Reached { tcp, addr, silence } =
            dial_tcp(rt, host, port, setup_timeout, config, progress, start).await?;
        return Ok(Opened {
            conduit: Conduit::tcp(tcp, silence),
            addr,
            direct: true,
        });
    };
    let fail = |step, failure, progress: &Progress| ConnectError::Proxy {
        kind: proxy.kind(),
        proxy: proxy.to_string(),
        step,
        failure,
        progress: progress.at_failure(start, rt.now()),
    };
    let (proxy_host, proxy_port) = split_host_port(proxy.address()).map_err(|why| {
        let failure = ProxyFailure::Config(format!(
            "invalid proxy address {:?}: {why}",
            proxy.address()
        ));
        fail(ProxyStep::Connect, failure, progress)
    })?;
    let proxy_port = proxy_port.unwrap_or(match proxy.kind() {
        ProxyKind::Socks5 => 1080,
        _ => 80,
    });
    let Reached { tcp, addr, silence } = match dial_tcp(
        rt,
        proxy_host,
        proxy_port,
        setup_timeout,
        config,
        progress,
        start,
    )
    .await
    {
        Ok(reached) => reached,
        Err(e) => return Err(fail(ProxyStep::Connect, unreachable(&e), progress)),
    };
    let target = Target {
        host: match host.parse::<IpAddr>() {
            Ok(ip) => TargetHost::Ip(ip),
            Err(_) if proxy.remote_dns() => TargetHost::Name(host.to_owned()),
            Err(_) => {
                // socks5://: the broker's name is resolved here; the first
                // address in the family order goes to the proxy.
                let found = resolve(rt, host, port, setup_timeout, config, progress, start).await?;
                let first = order(&found, config.family)
                    .into_iter()
                    .next()
                    .ok_or_else(|| ConnectError::NoAddressOfFamily {
                        host: host.to_owned(),
                        family: config.family,
                        progress: progress.at_failure(start, rt.now()),
                    })?;
                TargetHost::Ip(first.ip())
            }
        },
        port,
    };
    let mut conduit = Conduit::tcp(tcp, silence);
    let t = rt.now();
    let tunneled = open_tunnel(rt, &mut conduit, proxy, &target, setup_timeout)
        .await
        .map_err(|(step, failure)| fail(step, failure, progress))?;
    progress.timings.proxy = Some(rt.now().saturating_duration_since(t));
    tracing::debug!(%proxy, %target, bound = ?tunneled.bound, took = ?progress.timings.proxy, "tunnel open");
    progress.proxy = Some(ProxyInfo {
        proxy: proxy.to_string(),
        target: target.to_string(),
        bound: tunneled.bound,
    });
    Ok(Opened {
        conduit,
        addr,
        direct: false,
    })
}

/// What a failure to reach the proxy itself says.
fn unreachable(e: &ConnectError) -> ProxyFailure {
    ProxyFailure::Io(match e {
        ConnectError::Refused { addr, .. } => {
            format!("connection refused by {addr}: nothing listens there (is the proxy up?)")
        }
        ConnectError::ConnectTimeout { addr, after, .. } => {
            format!("TCP connect to {addr} timed out after {after:?}")
        }
        other => other.to_string(),
    })
}

/// A TCP connection that won the race, its socket options set.
pub(crate) struct Reached<T> {
    pub(crate) tcp: T,
    pub(crate) addr: SocketAddr,
    /// What a time-out on it means (keepalive or user timeout on).
    pub(crate) silence: Option<Silence>,
}

/// Resolves `host` (unless it is an IP literal) and races TCP connects to
/// its addresses, each attempt bounded by `setup_timeout`. Records the
/// lookup, every attempt and the winner in `progress`; `start` is when
/// the connect began (for the errors' timings).
pub(crate) async fn dial_tcp<R: Runtime>(
    rt: &R,
    host: &str,
    port: u16,
    setup_timeout: Duration,
    config: &DialConfig,
    progress: &mut Progress,
    start: Instant,
) -> Result<Reached<R::Tcp>, ConnectError> {
    let resolved = resolve(rt, host, port, setup_timeout, config, progress, start).await?;
    if config.proxy.is_none() {
        config.mark(SetupStep::Tcp);
    }
    progress.resolved.clone_from(&resolved);
    let candidates = order(&resolved, config.family);
    if candidates.is_empty() {
        let progress = progress.at_failure(start, rt.now());
        return Err(if resolved.is_empty() {
            ConnectError::NoAddresses {
                host: host.to_owned(),
                progress,
            }
        } else {
            ConnectError::NoAddressOfFamily {
                host: host.to_owned(),
                family: config.family,
                progress,
            }
        });
    }
    tracing::debug!(addresses = ?candidates, "racing");
    let Raced {
        winner,
        attempts,
        mut errors,
    } = race(rt, &candidates, config.attempt_delay, setup_timeout).await;
    let won_at = winner.as_ref().map(|(i, _)| candidates[*i]);
    let last = attempts.len().checked_sub(1);
    let last_state = attempts.last().map(|a| a.state);
    let attempts = records(&candidates, &attempts, &errors, setup_timeout, won_at);
    progress.failed_attempts = attempts
        .iter()
        .filter(|a| a.outcome != AttemptOutcome::Connected)
        .cloned()
        .collect();
    progress.attempts = attempts;
    match winner {
        Some((i, tcp)) => {
            let addr = candidates[i];
            progress.timings.tcp = progress
                .attempts
                .iter()
                .find(|a| a.outcome == AttemptOutcome::Connected)
                .map(|a| a.started + a.took);
            progress.address = Some(addr);
            tracing::debug!(%addr, took = ?progress.timings.tcp, "TCP connected");
            let fail = |source, progress: &Progress| ConnectError::Tcp {
                addr,
                source,
                progress: progress.at_failure(start, rt.now()),
            };
            rt.set_nodelay(&tcp).map_err(|e| fail(e, progress))?;
            let silence = match rt.os_socket(&tcp) {
                Some(socket) => apply(socket, &config.socket).map_err(|e| fail(e, progress))?,
                None => {
                    if config.socket != SocketOptions::NONE {
                        tracing::warn!("the runtime gives no OS socket: keepalive and TCP_USER_TIMEOUT are not set");
                    }
                    None
                }
            };
            Ok(Reached { tcp, addr, silence })
        }
        None => {
            if let Some(cache) = &config.dns_cache {
                // None of the addresses answers: ask again next time.
                cache.forget(host, port);
            }
            // The error names the last address started; the others are in
            // the message's list and in the progress.
            let i = last.expect("a lost race tried every address");
            let addr = candidates[i];
            let progress = progress.at_failure(start, rt.now());
            Err(match (last_state, errors[i].take()) {
                (Some(AttemptState::TimedOut), _) | (_, None) => ConnectError::ConnectTimeout {
                    addr,
                    after: setup_timeout,
                    progress,
                },
                (_, Some(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    ConnectError::Refused { addr, progress }
                }
                (_, Some(source)) => ConnectError::Tcp {
                    addr,
                    source,
                    progress,
                },
            })
        }
    }
}

/// The addresses of `host`: the literal, from the cache, or looked up.
async fn resolve<R: Runtime>(
    rt: &R,
    host: &str,
    port: u16,
    setup_timeout: Duration,
    config: &DialConfig,
    progress: &mut Progress,
    start: Instant,
) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let t = rt.now();
    if let Some(found) = config.dns_cache.as_ref().and_then(|c| c.get(host, port, t)) {
        progress.timings.resolve = Some(Duration::ZERO);
        tracing::debug!(addresses = ?found, "resolved from the cache");
        return Ok(found);
    }
    let lookup = match &config.resolver {
        Some(resolver) => resolver(host.to_owned(), port),
        None => rt.resolve(host.to_owned(), port),
    };
    let found = timeout(rt, setup_timeout, lookup)
        .await
        .unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {setup_timeout:?}"),
            ))
        })
        .map_err(|source| ConnectError::Resolve {
            host: host.to_owned(),
            source,
            progress: progress.at_failure(start, rt.now()),
        })?;
    let now = rt.now();
    progress.timings.resolve = Some(now.saturating_duration_since(t));
    tracing::debug!(addresses = ?found, took = ?progress.timings.resolve, "resolved");
    if let Some(cache) = &config.dns_cache {
        if !found.is_empty() {
            cache.put(host, port, &found, now);
        }
    }
    Ok(found)
}

/// The race's result: the winner (its index and stream), every started
/// attempt as the race recorded it, and the error of each failed one.
struct Raced<T> {
    winner: Option<(usize, T)>,
    attempts: Vec<Attempt>,
    errors: Vec<Option<io::Error>>,
}

/// Runs the race of `race.rs` over real connects: starts and drops the
/// runtime's connect futures as it says, and feeds it their outcomes and
/// the runtime's clock.
async fn race<R: Runtime>(
    rt: &R,
    candidates: &[SocketAddr],
    delay: Duration,
    attempt_timeout: Duration,
) -> Raced<R::Tcp> {
    let n = candidates.len();
    let mut race = Race::new(n, delay, attempt_timeout, rt.now());
    let mut running: Vec<Option<BoxFuture<'static, io::Result<R::Tcp>>>> =
        (0..n).map(|_| None).collect();
    let mut connected: Vec<Option<R::Tcp>> = (0..n).map(|_| None).collect();
    let mut errors: Vec<Option<io::Error>> = (0..n).map(|_| None).collect();
    let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
    let winner = std::future::poll_fn(|cx| loop {
        while let Some(action) = race.poll_action() {
            match action {
                Action::Start(i) => {
                    tracing::debug!(addr = %candidates[i], "TCP attempt");
                    running[i] = Some(rt.connect_tcp(candidates[i]));
                }
                // Dropping a connect future closes its socket.
                Action::Abandon(i) | Action::Cancel(i) => running[i] = None,
                Action::Finished(w) => return Poll::Ready(w),
            }
        }
        let mut moved = false;
        for i in 0..n {
            let Some(attempt) = running[i].as_mut() else {
                continue;
            };
            let Poll::Ready(outcome) = attempt.as_mut().poll(cx) else {
                continue;
            };
            running[i] = None;
            moved = true;
            let now = rt.now();
            match outcome {
                Ok(tcp) => {
                    // A second stream connecting in the same sweep is
                    // ignored by the race and dropped with `connected`.
                    connected[i] = Some(tcp);
                    race.handle_connected(i, now);
                }
                Err(e) => {
                    tracing::debug!(addr = %candidates[i], error = %e, "TCP attempt failed");
                    errors[i] = Some(e);
                    race.handle_failed(i, now);
                }
            }
        }
        if moved {
            continue;
        }
        let Some(at) = race.poll_timeout() else {
            // Not reached: until it finishes, the race waits for a start or a timeout.
            return Poll::Pending;
        };
        let now = rt.now();
        if now >= at {
            race.handle_timeout(now);
            continue;
        }
        if timer.as_ref().is_none_or(|(t, _)| *t != at) {
            timer = Some((at, rt.sleep_until(at)));
        }
        let (_, sleep) = timer.as_mut().expect("armed above");
        if sleep.as_mut().poll(cx).is_ready() {
            // The clock decides; an early wake-up only re-arms.
            timer = None;
            race.handle_timeout(rt.now());
            continue;
        }
        return Poll::Pending;
    })
    .await;
    Raced {
        winner: winner.map(|i| (i, connected[i].take().expect("the winner's stream"))),
        attempts: race.attempts().to_vec(),
        errors,
    }
}

/// The attempts as [`TcpAttempt`]s: what each address did, when it
/// started (after the first start) and how long it took.
fn records(
    candidates: &[SocketAddr],
    raced: &[Attempt],
    errors: &[Option<io::Error>],
    attempt_timeout: Duration,
    winner: Option<SocketAddr>,
) -> Vec<TcpAttempt> {
    let Some(t0) = raced.first().map(|a| a.started) else {
        return Vec::new();
    };
    raced
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (outcome, reason) = match (a.state, &errors[i]) {
                (AttemptState::Connected, _) => (AttemptOutcome::Connected, "connected".to_owned()),
                (AttemptState::TimedOut, _) => (
                    AttemptOutcome::TimedOut,
                    format!("timed out after {attempt_timeout:?}"),
                ),
                (AttemptState::Cancelled, _) => (
                    AttemptOutcome::Cancelled,
                    match winner {
                        Some(w) => format!("cancelled: {w} connected first"),
                        None => "cancelled".to_owned(),
                    },
                ),
                (_, Some(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    (AttemptOutcome::Refused, "connection refused".to_owned())
                }
                (_, Some(e)) => (AttemptOutcome::Failed(e.kind()), e.to_string()),
                // A failure is always reported with its error.
                (_, None) => (
                    AttemptOutcome::Failed(io::ErrorKind::Other),
                    "failed".to_owned(),
                ),
            };
            TcpAttempt {
                addr: candidates[i],
                reason,
                took: a
                    .ended
                    .unwrap_or(a.started)
                    .saturating_duration_since(a.started),
                started: a.started.saturating_duration_since(t0),
                outcome,
            }
        })
        .collect()
}
