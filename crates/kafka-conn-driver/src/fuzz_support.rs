//! The bodies of this crate's cargo-fuzz targets (`fuzz/`), compiled with
//! the `fuzzing` feature; not a stable API.

use std::net::IpAddr;

use crate::http_connect::HttpConnect;
use crate::proxy::{Handshake, ProxyFailure, Target, TargetHost};
use crate::socks5::Socks5;

/// The SOCKS5 and HTTP CONNECT reply parsers on arbitrary proxy bytes,
/// fed as the driver feeds them (never more than `wants`, in pieces whose
/// sizes the input's first byte varies). Invariants: no panic; the codec
/// never asks for bytes past its reply (after success or failure `wants`
/// is 0); a success consumed at most the reply; requests are sent only
/// when asked for.
pub fn run_proxy_replies(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let host = if mode & 1 == 0 {
        TargetHost::Name("broker.example".to_owned())
    } else {
        TargetHost::Ip(IpAddr::from([192, 0, 2, 7]))
    };
    let target = Target { host, port: 9092 };
    let credentials = (mode & 2 != 0).then_some(("user", "password"));
    let chunk = usize::from(mode >> 4).max(1);
    if mode & 4 == 0 {
        let codec = Socks5::new(&target, credentials).expect("valid settings");
        drive(codec, input, chunk);
    } else {
        drive(HttpConnect::new(&target, credentials), input, chunk);
    }
}

fn drive(mut codec: impl Handshake, mut input: &[u8], chunk: usize) {
    loop {
        while codec.take_output().is_some() {}
        let wants = codec.wants();
        if wants == 0 || input.is_empty() {
            break;
        }
        let n = wants.min(chunk).min(input.len());
        let result = codec.handle_input(&input[..n]);
        input = &input[n..];
        match result {
            Ok(()) if codec.is_done() => {
                assert_eq!(codec.wants(), 0, "a finished handshake reads nothing more");
                break;
            }
            Ok(()) => {}
            Err(ProxyFailure::Malformed(why)) => {
                assert!(!why.contains("driver error"), "fed within wants: {why}");
                assert_eq!(codec.wants(), 0);
                break;
            }
            Err(failure) => {
                assert!(!failure.to_string().is_empty());
                assert_eq!(codec.wants(), 0, "a failed handshake reads nothing more");
                break;
            }
        }
    }
}
