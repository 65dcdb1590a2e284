//! Socket options with no portable std API: TCP keepalive timing and
//! `TCP_USER_TIMEOUT`, set through the `socket2` crate on the OS socket
//! under the runtime's TCP stream ([`Runtime::os_socket`]), once here for
//! every runtime.
//!
//! socket2 rather than libc calls: it is the crate tokio, async-io and
//! mio build on, it wraps each option with the right types and platform
//! conditions (keepalive interval and count exist on Linux, the BSDs,
//! macOS and Windows, `TCP_USER_TIMEOUT` only on Linux), and it needs no
//! `unsafe` here (the workspace denies it).
//!
//! [`Runtime::os_socket`]: crate::Runtime::os_socket

use std::io;
use std::time::Duration;

use crate::runtime::BorrowedSocket;
use crate::stream::Silence;

/// TCP keepalive: after `idle` without traffic the OS sends a probe every
/// `interval`; after `count` unanswered probes it gives the connection up
/// and the next read fails with `ETIMEDOUT`. Dead-peer detection for an
/// idle connection, and traffic that keeps NAT and load-balancer entries
/// from expiring under a connection that is quiet but alive.
///
/// The default ([`Keepalive::default`]): idle 60 s, interval 10 s, 3
/// probes, so a dead idle peer is noticed within 90 s, well inside the
/// idle timeouts that silently drop connections (AWS NLB 350 s, Azure
/// Load Balancer 4 min by default). See `docs/dialing.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    idle: Duration,
    interval: Duration,
    count: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self::new(Duration::from_secs(60), Duration::from_secs(10), 3)
    }
}

impl Keepalive {
    /// Probes after `idle` of silence, then every `interval`, giving up
    /// after `count` unanswered ones. Where the OS has no per-socket
    /// interval or count (OpenBSD, Solaris), its system-wide values apply.
    /// Times are whole seconds to the OS (rounded down, at least 1 s).
    pub fn new(idle: Duration, interval: Duration, count: u32) -> Self {
        Self {
            idle,
            interval,
            count,
        }
    }

    /// Idle time before the first probe.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Time between probes.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Unanswered probes before the connection is given up.
    pub fn count(&self) -> u32 {
        self.count
    }
}

/// The socket options a dial sets on each TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketOptions {
    pub(crate) keepalive: Option<Keepalive>,
    pub(crate) user_timeout: Option<Duration>,
}

/// The default `TCP_USER_TIMEOUT`: as long as the default keepalive takes
/// to give up (idle + interval x count), so the two agree (with both set,
/// Linux gives a connection up by the user timeout, keepalive probes
/// included).
pub(crate) const DEFAULT_USER_TIMEOUT: Duration = Duration::from_secs(90);

impl SocketOptions {
    /// Nothing set: the OS defaults.
    pub(crate) const NONE: Self = Self {
        keepalive: None,
        user_timeout: None,
    };
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            keepalive: Some(Keepalive::default()),
            user_timeout: Some(DEFAULT_USER_TIMEOUT),
        }
    }
}

/// Sets `options` on `socket`. Returns what a time-out on it will mean,
/// `None` when no option that detects silence is on.
pub(crate) fn apply(
    socket: BorrowedSocket<'_>,
    options: &SocketOptions,
) -> io::Result<Option<Silence>> {
    let sock = socket2::SockRef::from(&socket);
    let mut what = Vec::new();
    if let Some(user_timeout) = options.user_timeout {
        if set_user_timeout(&sock, user_timeout)? {
            what.push(format!(
                "unacknowledged for the TCP_USER_TIMEOUT of {user_timeout:?}"
            ));
        }
    }
    match options.keepalive {
        Some(k) => {
            sock.set_tcp_keepalive(&keepalive_params(k))?;
            what.push(format!(
                "keepalive probes unanswered (after {:?} idle, every {:?}, {} probes)",
                k.idle, k.interval, k.count
            ));
        }
        None => sock.set_keepalive(false)?,
    }
    Ok((!what.is_empty())
        .then(|| Silence::new(format!("the peer went silent: {}", what.join(", or ")))))
}

/// `TCP_USER_TIMEOUT` where the OS has it (Linux, Android, Fuchsia);
/// `false` elsewhere.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
fn set_user_timeout(sock: &socket2::SockRef<'_>, timeout: Duration) -> io::Result<bool> {
    // Zero would mean "the system default" to the OS: at least 1 ms.
    sock.set_tcp_user_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    Ok(true)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
fn set_user_timeout(_sock: &socket2::SockRef<'_>, _timeout: Duration) -> io::Result<bool> {
    Ok(false)
}

/// socket2's keepalive parameters; interval and count only where the OS
/// has them per socket.
fn keepalive_params(k: Keepalive) -> socket2::TcpKeepalive {
    // The OS counts whole seconds; zero is refused.
    let secs = |d: Duration| Duration::from_secs(d.as_secs().max(1));
    let params = socket2::TcpKeepalive::new().with_time(secs(k.idle));
    #[cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "illumos",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "windows",
    ))]
    let params = params
        .with_interval(secs(k.interval))
        .with_retries(k.count.max(1));
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::AsOsSocket;

    #[test]
    fn options_are_set_on_a_real_socket_and_read_back() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let options = SocketOptions {
            keepalive: Some(Keepalive::new(
                Duration::from_secs(7),
                Duration::from_secs(3),
                4,
            )),
            user_timeout: Some(Duration::from_millis(2500)),
        };
        let silence = apply(tcp.as_os_socket(), &options)
            .unwrap()
            .expect("silence is detected");
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(3)
            );
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);
            assert_eq!(
                sock.tcp_user_timeout().unwrap(),
                Some(Duration::from_millis(2500))
            );
        }
        let e = silence.explain(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().starts_with("the peer went silent: "), "{e}");
        let refused = silence.explain(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        // Off: no keepalive, nothing to explain.
        let off = SocketOptions {
            keepalive: None,
            user_timeout: None,
        };
        assert!(apply(tcp.as_os_socket(), &off).unwrap().is_none());
        assert!(!sock.keepalive().unwrap());
    }
}
