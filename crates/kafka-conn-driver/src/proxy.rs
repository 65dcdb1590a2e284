//! Proxies: the setting ([`Proxy`], from a builder or a URL), what a
//! proxy handshake can fail with ([`ProxyStep`], [`ProxyFailure`]), and
//! the shape of the handshake codecs (`socks5.rs`, `http_connect.rs`),
//! which `tunnel.rs` drives over the TCP stream to the proxy.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use percent_encoding::percent_decode_str;

/// Which protocol a proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// SOCKS5 (RFC 1928), with no authentication or username/password
    /// (RFC 1929).
    Socks5,
    /// An HTTP proxy's `CONNECT` method (RFC 9110 section 9.3.6), with
    /// Basic authentication (RFC 7617) when credentials are set.
    Http,
}

impl fmt::Display for ProxyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyKind::Socks5 => "SOCKS5",
            ProxyKind::Http => "HTTP",
        })
    }
}

/// A proxy that every connection made with a
/// [`ConnectConfig`](crate::ConnectConfig) goes through
/// ([`ConnectConfig::with_proxy`](crate::ConnectConfig::with_proxy)):
/// the driver dials the proxy (resolution, Happy Eyeballs, keepalive as
/// for a broker), asks it for a tunnel to the broker, then runs TLS (if
/// configured, verified against the broker's name, not the proxy's) and
/// Kafka through the tunnel.
///
/// ```
/// use kafka_conn_driver::Proxy;
///
/// let socks = Proxy::socks5("127.0.0.1:1080").with_credentials("user", "secret");
/// let same: Proxy = "socks5://user:secret@127.0.0.1:1080".parse().unwrap();
/// assert_eq!(socks, same);
/// // socks5h: the proxy resolves the broker's name (remote DNS).
/// let remote: Proxy = "socks5h://proxy.internal:1080".parse().unwrap();
/// assert!(remote.remote_dns());
/// let http: Proxy = "http://user:p%40ss@proxy.internal:3128".parse().unwrap();
/// assert_eq!(http.to_string(), "http://user:***@proxy.internal:3128");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    address: String,
    credentials: Option<(String, String)>,
    remote_dns: bool,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("remote_dns", &self.remote_dns)
            .finish()
    }
}

/// The URL form, with the password masked: `socks5h://user:***@host:port`.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.kind, self.remote_dns) {
            (ProxyKind::Socks5, false) => "socks5",
            (ProxyKind::Socks5, true) => "socks5h",
            (ProxyKind::Http, _) => "http",
        };
        write!(f, "{scheme}://")?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        f.write_str(&self.address)
    }
}

impl Proxy {
    /// A SOCKS5 proxy at `address` (`host:port`), without authentication;
    /// the broker's name is resolved here and its address sent to the
    /// proxy (see [`with_remote_dns`](Self::with_remote_dns)).
    pub fn socks5(address: impl Into<String>) -> Self {
        Self {
            kind: ProxyKind::Socks5,
            address: address.into(),
            credentials: None,
            remote_dns: false,
        }
    }

    /// An HTTP proxy at `address` (`host:port`) that tunnels with
    /// `CONNECT`. The broker's name is always sent to the proxy.
    pub fn http(address: impl Into<String>) -> Self {
        Self {
            kind: ProxyKind::Http,
            address: address.into(),
            credentials: None,
            remote_dns: true,
        }
    }

    /// Authenticate to the proxy: SOCKS5 username/password (RFC 1929:
    /// each 1 to 255 bytes), or HTTP Basic (`Proxy-Authorization`).
    #[must_use]
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// SOCKS5 only: send the broker's host name to the proxy (address type
    /// 3, "remote DNS", what `socks5h://` means) instead of resolving it
    /// here. Use it when broker names resolve only on the proxy's side.
    /// An IP literal is always sent as an address.
    #[must_use]
    pub fn with_remote_dns(mut self, remote: bool) -> Self {
        if self.kind == ProxyKind::Socks5 {
            self.remote_dns = remote;
        }
        self
    }

    /// The protocol.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// `host:port` of the proxy.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The username, if credentials are set.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }

    /// Whether the proxy resolves the broker's name (always for HTTP).
    pub fn remote_dns(&self) -> bool {
        self.remote_dns
    }

    pub(crate) fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Parses `socks5://`, `socks5h://` or `http://` URLs, with optional
    /// percent-encoded `user:password@`. The port defaults to 1080 for
    /// SOCKS5 (its IANA port) and 80 for HTTP.
    pub fn parse(url: &str) -> Result<Self, InvalidProxyUrl> {
        let invalid = |why: String| InvalidProxyUrl {
            url: mask(url),
            why,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://host:port".to_owned()))?;
        let (mut proxy, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "socks5" => (Proxy::socks5(""), 1080),
            "socks5h" => (Proxy::socks5("").with_remote_dns(true), 1080),
            "http" => (Proxy::http(""), 80),
            other => {
                return Err(invalid(format!(
                    "unsupported scheme {other:?}: use socks5, socks5h or http"
                )))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(invalid(
                "a proxy URL has no path, query or fragment".to_owned(),
            ));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str, what: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| invalid(format!("the {what} is not UTF-8 once percent-decoded")))
            };
            proxy =
                proxy.with_credentials(decode(user, "username")?, decode(password, "password")?);
        }
        let (host, port) = split_host_port(hostport).map_err(|why| invalid(why.to_owned()))?;
        let port = port.unwrap_or(default_port);
        proxy.address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(proxy)
    }
}

impl FromStr for Proxy {
    type Err = InvalidProxyUrl;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

/// A proxy URL that [`Proxy::parse`] cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proxy URL {url:?}: {why}")]
pub struct InvalidProxyUrl {
    /// The URL, password masked.
    pub url: String,
    /// What is wrong with it.
    pub why: String,
}

/// `url` with any password replaced by `***`, for error messages.
fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, the port parsed.
pub(crate) fn split_host_port(s: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [ in the host")?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("empty host");
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| "the port is not a number from 0 to 65535")
        })
        .transpose()?;
    Ok((host, port))
}

/// Where the tunnel goes: the broker's host (a name or an IP) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: TargetHost,
    pub(crate) port: u16,
}

/// The broker's host as the proxy is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetHost {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            TargetHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            TargetHost::Ip(ip) => write!(f, "{ip}:{}", self.port),
            TargetHost::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Which step of talking to a proxy failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyStep {
    /// Reaching the proxy itself (DNS, TCP).
    Connect,
    /// SOCKS5 method negotiation (RFC 1928 section 3).
    Greeting,
    /// SOCKS5 username/password authentication (RFC 1929).
    Authentication,
    /// Asking for the tunnel: SOCKS5 `CONNECT` or HTTP `CONNECT`, to this
    /// target (`host:port` as sent).
    Tunnel(String),
}

impl fmt::Display for ProxyStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyStep::Connect => f.write_str("connecting to the proxy"),
            ProxyStep::Greeting => f.write_str("method negotiation"),
            ProxyStep::Authentication => f.write_str("username/password authentication"),
            ProxyStep::Tunnel(target) => write!(f, "CONNECT {target}"),
        }
    }
}

/// What went wrong with a proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyFailure {
    /// The proxy cannot be reached, or the connection to it failed
    /// (the text says how).
    #[error("{0}")]
    Io(String),
    /// The handshake did not finish within the connect timeout.
    #[error("no answer within {0:?}")]
    TimedOut(std::time::Duration),
    /// The proxy closed the connection before finishing the handshake.
    #[error("the proxy closed the connection")]
    Closed,
    /// SOCKS5: the proxy accepts none of the offered methods (reply
    /// 0xFF): it wants authentication that was not offered.
    #[error("no acceptable authentication method (reply 0xFF; offered: {offered}): {}", if *offered == "no authentication" { "the proxy requires a username and password" } else { "the proxy accepts neither" })]
    NoAcceptableMethod {
        /// What was offered.
        offered: &'static str,
    },
    /// SOCKS5: the username or password was refused (RFC 1929 status).
    #[error("the proxy rejected the username or password (status {status})")]
    AuthRejected {
        /// The status byte (0 is success).
        status: u8,
    },
    /// SOCKS5: the proxy refused the `CONNECT` (RFC 1928 section 6 reply).
    #[error("refused with reply {code} ({})", socks5_reply_meaning(*code))]
    Socks5Refused {
        /// The reply code.
        code: u8,
    },
    /// HTTP: the proxy answered `CONNECT` with a status other than 2xx.
    #[error("refused with HTTP {status} {reason}{}", http_hint(*status))]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The proxy's answer is not valid for its protocol.
    #[error("not a valid reply: {0}")]
    Malformed(String),
    /// The proxy setting cannot be used (a credential too long for SOCKS5,
    /// a host name over 255 bytes, ...).
    #[error("{0}")]
    Config(String),
}

impl ProxyFailure {
    /// Whether a later attempt may succeed: the proxy or the broker behind
    /// it being down or unreachable may pass; refusals by rule, wrong
    /// credentials and protocol mismatches do not.
    pub fn is_retriable(&self) -> bool {
        match self {
            ProxyFailure::Io(_) | ProxyFailure::TimedOut(_) | ProxyFailure::Closed => true,
            // General failure, network/host unreachable, refused by the
            // broker, TTL expired.
            ProxyFailure::Socks5Refused { code } => matches!(code, 1 | 3 | 4 | 5 | 6),
            // Timeouts and the proxy's upstream trouble.
            ProxyFailure::HttpStatus { status, .. } => {
                matches!(status, 408 | 429 | 502 | 503 | 504)
            }
            ProxyFailure::NoAcceptableMethod { .. }
            | ProxyFailure::AuthRejected { .. }
            | ProxyFailure::Malformed(_)
            | ProxyFailure::Config(_) => false,
        }
    }
}

/// The meaning of a SOCKS5 reply code (RFC 1928 section 6).
pub fn socks5_reply_meaning(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused by the destination",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned code",
    }
}

/// What to do about an HTTP status from a proxy.
fn http_hint(status: u16) -> &'static str {
    match status {
        407 => ": the proxy requires authentication (set credentials)",
        401 => ": the proxy rejected the credentials",
        403 => ": the proxy's rules forbid this destination",
        502 | 504 => ": the proxy could not reach the broker",
        _ => "",
    }
}

/// A proxy handshake as a sans-IO codec: bytes out, bytes in, no socket.
/// The driver writes all of [`take_output`](Self::take_output), then reads
/// at most [`wants`](Self::wants) bytes and hands them to
/// [`handle_input`](Self::handle_input), until [`is_done`](Self::is_done).
/// `wants` never reaches past the proxy's reply, so the bytes after it
/// (the broker's, through the tunnel) stay in the socket.
pub(crate) trait Handshake {
    /// Bytes to write next, if any.
    fn take_output(&mut self) -> Option<Vec<u8>>;
    /// How many bytes may be read next (0 when done or failed).
    fn wants(&self) -> usize;
    /// Bytes read (at most [`wants`](Self::wants)).
    fn handle_input(&mut self, input: &[u8]) -> Result<(), ProxyFailure>;
    /// The tunnel is up.
    fn is_done(&self) -> bool;
    /// The step in progress (for an I/O error on the way).
    fn step(&self) -> ProxyStep;
    /// What the proxy reported as the tunnel's bound address, if anything.
    fn bound(&self) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_decoding() {
        let p = Proxy::parse("socks5://127.0.0.1:1080").unwrap();
        assert_eq!(p, Proxy::socks5("127.0.0.1:1080"));
        assert!(!p.remote_dns());
        let p = Proxy::parse("SOCKS5H://u%3Aser:pa%40ss@[::1]:9050/").unwrap();
        assert_eq!(
            p,
            Proxy::socks5("[::1]:9050")
                .with_credentials("u:ser", "pa@ss")
                .with_remote_dns(true)
        );
        assert_eq!(p.to_string(), "socks5h://u:ser:***@[::1]:9050");
        let p = Proxy::parse("http://proxy").unwrap();
        assert_eq!(p, Proxy::http("proxy:80"));
        assert!(p.remote_dns());
        assert_eq!(
            Proxy::parse("socks5://user@h").unwrap(),
            Proxy::socks5("h:1080").with_credentials("user", "")
        );
        for (bad, why) in [
            ("127.0.0.1:1080", "expected scheme://host:port"),
            (
                "https://h:1",
                "unsupported scheme \"https\": use socks5, socks5h or http",
            ),
            (
                "http://h:1/path",
                "a proxy URL has no path, query or fragment",
            ),
            ("socks5://:1080", "empty host"),
            (
                "socks5://h:99999",
                "the port is not a number from 0 to 65535",
            ),
            ("socks5://[::1:1080", "unclosed [ in the host"),
        ] {
            assert_eq!(Proxy::parse(bad).unwrap_err().why, why, "{bad}");
        }
        // The password never shows.
        let e = Proxy::parse("ftp://u:secret@h").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(
            !format!("{:?}", Proxy::http("h:1").with_credentials("u", "secret")).contains("secret")
        );
    }
}
