//! The client side of an HTTP `CONNECT` tunnel (RFC 9110 section 9.3.6)
//! with Basic proxy authentication (RFC 7617), as a sans-IO codec. The
//! response head is parsed by `httparse` (hyper's parser: well kept,
//! fuzzed upstream, no allocation); this file only frames it.

use base64::Engine as _;

use crate::proxy::{Handshake, ProxyFailure, ProxyStep, Target};

/// The most response head we read: a proxy's answer to CONNECT is a status
/// line and a few headers.
const MAX_HEAD: usize = 16 * 1024;
/// The most headers we parse.
const MAX_HEADERS: usize = 64;

/// An HTTP CONNECT handshake for one tunnel.
#[derive(Debug)]
pub(crate) struct HttpConnect {
    out: Option<Vec<u8>>,
    head: Vec<u8>,
    target: String,
    done: bool,
    failed: bool,
}

impl HttpConnect {
    /// The handshake for `target`, with Basic credentials if given.
    pub(crate) fn new(target: &Target, credentials: Option<(&str, &str)>) -> Self {
        let authority = target.to_string();
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some((user, password)) = credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        Self {
            out: Some(request.into_bytes()),
            head: Vec::with_capacity(256),
            target: authority,
            done: false,
            failed: false,
        }
    }

    /// Whether the head ends here: a blank line, CRLF or (tolerated, as
    /// httparse does) bare LF.
    fn head_complete(&self) -> bool {
        self.head.ends_with(b"\r\n\r\n") || self.head.ends_with(b"\n\n")
    }

    fn fail(&mut self, failure: ProxyFailure) -> Result<(), ProxyFailure> {
        self.failed = true;
        Err(failure)
    }

    fn parse(&mut self) -> Result<(), ProxyFailure> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let status = match response.parse(&self.head) {
            Ok(httparse::Status::Complete(_)) => response.code.unwrap_or(0),
            Ok(httparse::Status::Partial) => {
                return self.fail(ProxyFailure::Malformed(format!(
                    "an incomplete HTTP response head: {}",
                    first_line(&self.head)
                )))
            }
            Err(e) => {
                return self.fail(ProxyFailure::Malformed(format!(
                    "{e} in the HTTP response: {}",
                    first_line(&self.head)
                )))
            }
        };
        if (200..300).contains(&status) {
            self.done = true;
            return Ok(());
        }
        let reason = response.reason.unwrap_or_default().to_owned();
        self.fail(ProxyFailure::HttpStatus { status, reason })
    }
}

/// The first line of `head`, for an error message (at most 100 bytes).
fn first_line(head: &[u8]) -> String {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(&line[..line.len().min(100)]);
    format!("{:?}", text.trim_end())
}

impl Handshake for HttpConnect {
    fn take_output(&mut self) -> Option<Vec<u8>> {
        self.out.take()
    }

    fn wants(&self) -> usize {
        if self.out.is_some() || self.done || self.failed {
            return 0;
        }
        // Never past the blank line: as many bytes as the shortest way to
        // finish it from here ("\r\n\r\n" or "\n\n").
        let h = &self.head;
        let crlf = if h.ends_with(b"\r\n\r") {
            1
        } else if h.ends_with(b"\r\n") {
            2
        } else if h.ends_with(b"\r") {
            3
        } else {
            4
        };
        let lf = if h.ends_with(b"\n") { 1 } else { 2 };
        crlf.min(lf)
    }

    fn handle_input(&mut self, input: &[u8]) -> Result<(), ProxyFailure> {
        if input.len() > self.wants() {
            return self.fail(ProxyFailure::Malformed(
                "bytes beyond the response head (a driver error)".to_owned(),
            ));
        }
        self.head.extend_from_slice(input);
        if self.head_complete() {
            return self.parse();
        }
        if self.head.len() >= MAX_HEAD {
            return self.fail(ProxyFailure::Malformed(format!(
                "no end of the response head within {MAX_HEAD} bytes: {}",
                first_line(&self.head)
            )));
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn step(&self) -> ProxyStep {
        ProxyStep::Tunnel(self.target.clone())
    }

    fn bound(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::TargetHost;

    fn feed(h: &mut HttpConnect, mut reply: &[u8]) -> Result<(), ProxyFailure> {
        while !reply.is_empty() && h.wants() > 0 {
            let n = h.wants().min(reply.len());
            h.handle_input(&reply[..n])?;
            reply = &reply[n..];
        }
        Ok(())
    }

    fn target() -> Target {
        Target {
            host: TargetHost::Name("broker.internal".to_owned()),
            port: 9093,
        }
    }

    #[test]
    fn connect_with_basic_auth_and_nothing_read_past_the_head() {
        let mut h = HttpConnect::new(&target(), Some(("Aladdin", "open sesame")));
        assert_eq!(
            String::from_utf8(h.take_output().unwrap()).unwrap(),
            "CONNECT broker.internal:9093 HTTP/1.1\r\nHost: broker.internal:9093\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        let reply =
            b"HTTP/1.1 200 Connection established\r\nProxy-agent: x\r\n\r\n\x00\x00\x01\x00kafka";
        feed(&mut h, reply).unwrap();
        assert!(h.is_done());
        assert_eq!(h.head.len(), reply.len() - b"\x00\x00\x01\x00kafka".len());
    }

    #[test]
    fn refusals_carry_status_and_reason() {
        let mut h = HttpConnect::new(&target(), None);
        h.take_output();
        let e = feed(
            &mut h,
            b"HTTP/1.0 403 Access denied\r\nContent-Type: text/html\r\n\r\n<html>",
        )
        .unwrap_err();
        assert_eq!(
            e,
            ProxyFailure::HttpStatus {
                status: 403,
                reason: "Access denied".to_owned()
            }
        );
        assert_eq!(
            e.to_string(),
            "refused with HTTP 403 Access denied: the proxy's rules forbid this destination"
        );
        assert!(!e.is_retriable());
        let mut h = HttpConnect::new(&target(), None);
        h.take_output();
        let e = feed(&mut h, b"HTTP/1.1 407 Proxy Authentication Required\n\n").unwrap_err();
        assert!(e.to_string().ends_with("(set credentials)"), "{e}");
    }

    #[test]
    fn garbage_and_endless_heads_are_malformed() {
        let mut h = HttpConnect::new(&target(), None);
        h.take_output();
        let e = feed(&mut h, b"\x05\xff\r\n\r\n").unwrap_err();
        assert!(matches!(e, ProxyFailure::Malformed(_)), "{e}");
        let mut h = HttpConnect::new(&target(), None);
        h.take_output();
        let e = feed(&mut h, &vec![b'a'; MAX_HEAD + 10]).unwrap_err();
        assert!(e.to_string().contains("no end of the response head"), "{e}");
    }
}
