//! The client side of a SOCKS5 `CONNECT` (RFC 1928) with optional
//! username/password authentication (RFC 1929), as a sans-IO codec.
//!
//! Hand-written rather than taken from a crate: the SOCKS5 client crates
//! on crates.io (tokio-socks, fast-socks5, async-socks5) each do their I/O
//! on tokio's traits, and the handshake is four small messages; written
//! here it is one codec for every runtime and a fuzz target's input.

use std::net::IpAddr;

use crate::proxy::{Handshake, ProxyFailure, ProxyStep, Target, TargetHost};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xFF;
const CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_NAME: u8 = 3;
const ATYP_V6: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the method selection (2 bytes).
    Method,
    /// Waiting for the username/password status (2 bytes).
    Auth,
    /// Waiting for the CONNECT reply (4 bytes, then the bound address).
    Reply,
    Done,
    Failed,
}

/// A SOCKS5 handshake for one tunnel.
#[derive(Debug)]
pub(crate) struct Socks5 {
    state: State,
    out: Option<Vec<u8>>,
    /// The reply read so far (of the current message).
    buf: Vec<u8>,
    /// The CONNECT request, sent once a method is agreed.
    request: Vec<u8>,
    /// The RFC 1929 request, when credentials are set.
    auth: Option<Vec<u8>>,
    target: String,
    bound: Option<String>,
}

impl Socks5 {
    /// The handshake for `target`, offering no authentication and, with
    /// `credentials`, username/password.
    pub(crate) fn new(
        target: &Target,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self, ProxyFailure> {
        let mut request = vec![VERSION, CONNECT, 0];
        match &target.host {
            TargetHost::Ip(IpAddr::V4(ip)) => {
                request.push(ATYP_V4);
                request.extend_from_slice(&ip.octets());
            }
            TargetHost::Ip(IpAddr::V6(ip)) => {
                request.push(ATYP_V6);
                request.extend_from_slice(&ip.octets());
            }
            TargetHost::Name(name) => {
                let len = u8::try_from(name.len())
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        ProxyFailure::Config(format!(
                            "SOCKS5 carries host names of 1 to 255 bytes; {name:?} has {}",
                            name.len()
                        ))
                    })?;
                request.push(ATYP_NAME);
                request.push(len);
                request.extend_from_slice(name.as_bytes());
            }
        }
        request.extend_from_slice(&target.port.to_be_bytes());
        let auth = credentials
            .map(|(user, password)| {
                let field = |v: &str, what: &str| {
                    u8::try_from(v.len())
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            ProxyFailure::Config(format!(
                                "a SOCKS5 {what} must be 1 to 255 bytes (RFC 1929), not {}",
                                v.len()
                            ))
                        })
                };
                let (ulen, plen) = (field(user, "username")?, field(password, "password")?);
                // RFC 1929: version 1 of the sub-negotiation.
                let mut m = vec![1, ulen];
                m.extend_from_slice(user.as_bytes());
                m.push(plen);
                m.extend_from_slice(password.as_bytes());
                Ok(m)
            })
            .transpose()?;
        let greeting = if auth.is_some() {
            vec![VERSION, 2, NO_AUTH, USER_PASS]
        } else {
            vec![VERSION, 1, NO_AUTH]
        };
        Ok(Self {
            state: State::Method,
            out: Some(greeting),
            buf: Vec::with_capacity(22),
            request,
            auth,
            target: target.to_string(),
            bound: None,
        })
    }

    fn fail(&mut self, failure: ProxyFailure) -> Result<(), ProxyFailure> {
        self.state = State::Failed;
        Err(failure)
    }

    /// The length of the CONNECT reply, once enough of it is known.
    fn reply_len(&self) -> Option<usize> {
        match *self.buf.get(3)? {
            ATYP_V4 => Some(4 + 4 + 2),
            ATYP_V6 => Some(4 + 16 + 2),
            ATYP_NAME => self.buf.get(4).map(|n| 5 + usize::from(*n) + 2),
            _ => None,
        }
    }

    fn on_method(&mut self) -> Result<(), ProxyFailure> {
        let (version, method) = (self.buf[0], self.buf[1]);
        if version != VERSION {
            return self.fail(not_socks5(&self.buf));
        }
        self.buf.clear();
        match method {
            NO_AUTH => {
                self.out = Some(self.request.clone());
                self.state = State::Reply;
                Ok(())
            }
            USER_PASS if self.auth.is_some() => {
                self.out = self.auth.take();
                self.state = State::Auth;
                Ok(())
            }
            NO_ACCEPTABLE => {
                let offered = if self.auth.is_some() {
                    "no authentication, username/password"
                } else {
                    "no authentication"
                };
                self.fail(ProxyFailure::NoAcceptableMethod { offered })
            }
            other => self.fail(ProxyFailure::Malformed(format!(
                "the proxy chose method {other:#04x}, which was not offered"
            ))),
        }
    }

    fn on_auth(&mut self) -> Result<(), ProxyFailure> {
        // RFC 1929's reply version is 1; some servers answer 5. Only the
        // status matters.
        let status = self.buf[1];
        self.buf.clear();
        if status != 0 {
            return self.fail(ProxyFailure::AuthRejected { status });
        }
        self.out = Some(self.request.clone());
        self.state = State::Reply;
        Ok(())
    }

    /// The first four bytes of the reply are in: refuse early on an error
    /// code (the bound address of a failure means nothing).
    fn on_reply_head(&mut self) -> Result<(), ProxyFailure> {
        let (version, code, atyp) = (self.buf[0], self.buf[1], self.buf[3]);
        if version != VERSION {
            return self.fail(not_socks5(&self.buf));
        }
        if code != 0 {
            return self.fail(ProxyFailure::Socks5Refused { code });
        }
        if ![ATYP_V4, ATYP_V6, ATYP_NAME].contains(&atyp) {
            return self.fail(ProxyFailure::Malformed(format!(
                "unknown address type {atyp} in the CONNECT reply"
            )));
        }
        Ok(())
    }

    fn on_reply(&mut self) {
        let b = &self.buf;
        let port = u16::from_be_bytes([b[b.len() - 2], b[b.len() - 1]]);
        let host = match b[3] {
            ATYP_V4 => {
                IpAddr::from(<[u8; 4]>::try_from(&b[4..8]).expect("length checked")).to_string()
            }
            ATYP_V6 => format!(
                "[{}]",
                IpAddr::from(<[u8; 16]>::try_from(&b[4..20]).expect("length checked"))
            ),
            _ => String::from_utf8_lossy(&b[5..b.len() - 2]).into_owned(),
        };
        self.bound = Some(format!("{host}:{port}"));
        self.buf.clear();
        self.state = State::Done;
    }
}

/// Names what answered instead of a SOCKS5 proxy.
fn not_socks5(head: &[u8]) -> ProxyFailure {
    let what = if head.starts_with(b"HT") {
        " (it looks like HTTP: is this an HTTP proxy?)"
    } else {
        ""
    };
    ProxyFailure::Malformed(format!(
        "version byte {:#04x}, expected 5: not a SOCKS5 proxy{what}",
        head[0]
    ))
}

impl Handshake for Socks5 {
    fn take_output(&mut self) -> Option<Vec<u8>> {
        self.out.take()
    }

    fn wants(&self) -> usize {
        if self.out.is_some() {
            return 0;
        }
        let total = match self.state {
            State::Method | State::Auth => 2,
            State::Reply => match self.buf.len() {
                0..4 => 4,
                // The name's length byte, then the rest.
                4 if self.buf[3] == ATYP_NAME => 5,
                _ => self.reply_len().unwrap_or(0),
            },
            State::Done | State::Failed => 0,
        };
        total.saturating_sub(self.buf.len())
    }

    fn handle_input(&mut self, input: &[u8]) -> Result<(), ProxyFailure> {
        if matches!(self.state, State::Done | State::Failed) || input.len() > self.wants() {
            return self.fail(ProxyFailure::Malformed(
                "bytes beyond the reply (a driver error)".to_owned(),
            ));
        }
        self.buf.extend_from_slice(input);
        match self.state {
            State::Method if self.buf.len() == 2 => self.on_method(),
            State::Auth if self.buf.len() == 2 => self.on_auth(),
            State::Reply => {
                if self.buf.len() == 4 {
                    self.on_reply_head()?;
                }
                if self.reply_len() == Some(self.buf.len()) {
                    self.on_reply();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn step(&self) -> ProxyStep {
        match self.state {
            State::Method => ProxyStep::Greeting,
            State::Auth => ProxyStep::Authentication,
            State::Reply | State::Done | State::Failed => ProxyStep::Tunnel(self.target.clone()),
        }
    }

    fn bound(&self) -> Option<String> {
        self.bound.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16) -> Target {
        Target {
            host: host
                .parse()
                .map_or_else(|_| TargetHost::Name(host.to_owned()), TargetHost::Ip),
            port,
        }
    }

    /// Feeds `reply` as the driver would: at most `wants` at a time.
    fn feed(s: &mut Socks5, mut reply: &[u8]) -> Result<(), ProxyFailure> {
        while !reply.is_empty() && s.wants() > 0 {
            let n = s.wants().min(reply.len());
            s.handle_input(&reply[..n])?;
            reply = &reply[n..];
        }
        Ok(())
    }

    #[test]
    fn no_auth_connect_by_name() {
        let mut s = Socks5::new(&target("broker-1.internal", 9092), None).unwrap();
        assert_eq!(s.take_output().unwrap(), [5, 1, 0]);
        assert_eq!(s.step(), ProxyStep::Greeting);
        assert_eq!(s.wants(), 2);
        feed(&mut s, &[5, 0]).unwrap();
        let mut request = vec![5, 1, 0, 3, 17];
        request.extend_from_slice(b"broker-1.internal");
        request.extend_from_slice(&[0x23, 0x84]);
        assert_eq!(s.take_output().unwrap(), request);
        assert_eq!(s.wants(), 4);
        // Bound address as a name: the length byte is read on its own.
        feed(&mut s, &[5, 0, 0, 3]).unwrap();
        assert_eq!(s.wants(), 1);
        feed(&mut s, &[2, b'h', b'x', 0, 80]).unwrap();
        assert!(s.is_done());
        assert_eq!(s.wants(), 0);
        assert_eq!(s.bound().as_deref(), Some("hx:80"));
    }

    #[test]
    fn username_password_then_connect_by_address() {
        let mut s = Socks5::new(&target("::1", 1), Some(("u", "pw"))).unwrap();
        assert_eq!(s.take_output().unwrap(), [5, 2, 0, 2]);
        feed(&mut s, &[5, 2]).unwrap();
        assert_eq!(s.step(), ProxyStep::Authentication);
        assert_eq!(s.take_output().unwrap(), [1, 1, b'u', 2, b'p', b'w']);
        feed(&mut s, &[1, 0]).unwrap();
        let request = s.take_output().unwrap();
        assert_eq!(request[..4], [5, 1, 0, 4]);
        assert_eq!(request.len(), 4 + 16 + 2);
        let mut reply = vec![5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38];
        // Nothing past the reply is read.
        reply.extend_from_slice(b"kafka bytes");
        feed(&mut s, &reply).unwrap();
        assert!(s.is_done());
        assert_eq!(s.bound().as_deref(), Some("127.0.0.1:1080"));
    }

    #[test]
    fn refusals_and_garbage_are_named() {
        let mut s = Socks5::new(&target("10.0.0.1", 9092), None).unwrap();
        s.take_output();
        assert_eq!(
            feed(&mut s, &[5, 0xFF]),
            Err(ProxyFailure::NoAcceptableMethod {
                offered: "no authentication"
            })
        );
        assert_eq!(s.wants(), 0);

        let mut s = Socks5::new(&target("10.0.0.1", 9092), Some(("u", "p"))).unwrap();
        s.take_output();
        feed(&mut s, &[5, 2]).unwrap();
        s.take_output();
        assert_eq!(
            feed(&mut s, &[1, 1]),
            Err(ProxyFailure::AuthRejected { status: 1 })
        );

        let mut s = Socks5::new(&target("10.0.0.1", 9092), None).unwrap();
        s.take_output();
        feed(&mut s, &[5, 0]).unwrap();
        s.take_output();
        let e = feed(&mut s, &[5, 2, 0, 1]).unwrap_err();
        assert_eq!(e, ProxyFailure::Socks5Refused { code: 2 });
        assert_eq!(
            e.to_string(),
            "refused with reply 2 (connection not allowed by ruleset)"
        );
        assert!(!e.is_retriable());
        assert!(ProxyFailure::Socks5Refused { code: 5 }.is_retriable());

        let mut s = Socks5::new(&target("10.0.0.1", 9092), None).unwrap();
        s.take_output();
        let e = feed(&mut s, b"HTTP/1.1 400").unwrap_err();
        assert!(e.to_string().contains("is this an HTTP proxy?"), "{e}");

        let mut s = Socks5::new(&target("10.0.0.1", 9092), None).unwrap();
        s.take_output();
        assert!(matches!(
            feed(&mut s, &[5, 2]),
            Err(ProxyFailure::Malformed(_))
        ));
    }

    #[test]
    fn settings_out_of_range_are_refused_before_any_byte() {
        let long = "a".repeat(256);
        assert!(matches!(
            Socks5::new(&target(&long, 1), None),
            Err(ProxyFailure::Config(_))
        ));
        assert!(matches!(
            Socks5::new(&target("h", 1), Some(("", "p"))),
            Err(ProxyFailure::Config(_))
        ));
        assert!(matches!(
            Socks5::new(&target("h", 1), Some(("u", &long))),
            Err(ProxyFailure::Config(_))
        ));
    }
}
