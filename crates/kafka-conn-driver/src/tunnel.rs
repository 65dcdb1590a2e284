//! Drives a proxy handshake codec (`socks5.rs`, `http_connect.rs`) over
//! the stream to the proxy: writes what it says, reads no more than it
//! wants, all within the connect timeout.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};

use crate::http_connect::HttpConnect;
use crate::proxy::{Handshake, Proxy, ProxyFailure, ProxyKind, ProxyStep, Target};
use crate::runtime::{timeout, Runtime};
use crate::socks5::Socks5;

/// A tunnel the proxy opened.
pub(crate) struct Tunneled {
    /// The bound address the proxy reported (SOCKS5), if any.
    pub(crate) bound: Option<String>,
}

/// Asks `proxy`, over `stream`, for a tunnel to `target`, in at most
/// `within`. On failure, the step that failed and why.
pub(crate) async fn open_tunnel<R: Runtime, S: AsyncRead + AsyncWrite + Unpin>(
    rt: &R,
    stream: &mut S,
    proxy: &Proxy,
    target: &Target,
    within: Duration,
) -> Result<Tunneled, (ProxyStep, ProxyFailure)> {
    let mut codec: Box<dyn Handshake + Send> = match proxy.kind() {
        ProxyKind::Socks5 => Box::new(
            Socks5::new(target, proxy.credentials()).map_err(|f| (ProxyStep::Greeting, f))?,
        ),
        ProxyKind::Http => Box::new(HttpConnect::new(target, proxy.credentials())),
    };
    // The step under way when something fails (the codec moves on to a
    // failed state).
    let mut step = codec.step();
    let run = async {
        let mut buf = [0u8; 512];
        while !codec.is_done() {
            step = codec.step();
            if let Some(out) = codec.take_output() {
                write_all(stream, &out).await.map_err(io_failure)?;
                continue;
            }
            let want = codec.wants().min(buf.len());
            let n = poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf[..want]))
                .await
                .map_err(io_failure)?;
            if n == 0 {
                return Err(ProxyFailure::Closed);
            }
            codec.handle_input(&buf[..n])?;
        }
        Ok(codec.bound())
    };
    let outcome = timeout(rt, within, run).await;
    match outcome {
        Some(Ok(bound)) => Ok(Tunneled { bound }),
        Some(Err(failure)) => Err((step, failure)),
        None => Err((step, ProxyFailure::TimedOut(within))),
    }
}

fn io_failure(e: io::Error) -> ProxyFailure {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => ProxyFailure::Closed,
        _ => ProxyFailure::Io(e.to_string()),
    }
}

async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    poll_fn(|cx| Pin::new(&mut *stream).poll_flush(cx)).await
}
