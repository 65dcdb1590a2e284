//! Parsing and validating the bootstrap list (`bootstrap.servers`).

use crate::error::BootstrapError;
use crate::ids::Address;

/// Parses bootstrap addresses: each item is `host:port`, `[ipv6]:port`, or
/// several of those separated by commas (as `bootstrap.servers` is written).
/// Surrounding spaces are ignored, exact duplicates are kept once (in first
/// position), and the result is never empty.
///
/// The port is required (a client that guesses 9092 hides a typo), must be
/// a number from 1 to 65535, and the host must be non-empty and free of
/// spaces and control characters. Names are not resolved here: the driver
/// resolves them on every dial, so a DNS change is picked up at the next
/// (re)connection and at a rebootstrap.
///
/// ```
/// use kafka_conn_cluster::parse_bootstrap;
/// let a = parse_bootstrap(["kafka-1:9092,kafka-2:9092", "[::1]:9093"]).unwrap();
/// assert_eq!(a.len(), 3);
/// assert_eq!(a[2].host, "::1");
/// let e = parse_bootstrap(["kafka-1"]).unwrap_err();
/// assert_eq!(e.to_string(), "bootstrap address \"kafka-1\": no port (write host:port)");
/// ```
pub fn parse_bootstrap<I, S>(items: I) -> Result<Vec<Address>, BootstrapError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<Address> = Vec::new();
    for item in items {
        for part in item.as_ref().split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let addr = parse_one(part)?;
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    if out.is_empty() {
        return Err(BootstrapError::Empty);
    }
    Ok(out)
}

/// One `host:port` or `[v6]:port`.
pub(crate) fn parse_one(s: &str) -> Result<Address, BootstrapError> {
    let bad = |why: &'static str| BootstrapError::Invalid {
        address: s.to_owned(),
        why,
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or(bad("']' missing after an IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or(bad("no port after the IPv6 address (write [addr]:port)"))?;
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or(bad("no port (write host:port)"))?;
        if host.contains(':') {
            return Err(bad("an IPv6 address needs brackets: [addr]:port"));
        }
        (host, port)
    };
    validate_host(host).map_err(bad)?;
    if port.is_empty() {
        return Err(bad("empty port"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the port is not a number"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is larger than 65535"))?;
    if port == 0 {
        return Err(bad("port 0 is not a port a broker can listen on"));
    }
    Ok(Address {
        host: host.to_owned(),
        port,
    })
}

/// What is wrong with a host name, if anything (shared with Metadata validation).
pub(crate) fn validate_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("empty host");
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the host contains spaces or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse_bootstrap([s]).unwrap_err().to_string()
    }

    #[test]
    fn good_addresses() {
        let a = parse_bootstrap([
            " a:1 , b.example:65535",
            "a:1",
            "10.0.0.1:9092",
            "[fe80::1]:9",
        ])
        .unwrap();
        let shown: Vec<String> = a.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["a:1", "b.example:65535", "10.0.0.1:9092", "[fe80::1]:9"]
        );
    }

    #[test]
    fn bad_addresses_name_the_address() {
        assert_eq!(
            parse_bootstrap(Vec::<String>::new()).unwrap_err(),
            BootstrapError::Empty
        );
        assert_eq!(parse_bootstrap([" , "]).unwrap_err(), BootstrapError::Empty);
        for (input, why) in [
            ("kafka", "no port (write host:port)"),
            ("kafka:", "empty port"),
            ("kafka:x1", "the port is not a number"),
            ("kafka:-1", "the port is not a number"),
            ("kafka:65536", "the port is larger than 65535"),
            ("kafka:0", "port 0 is not a port a broker can listen on"),
            (":9092", "empty host"),
            (
                "ka fka:9092",
                "the host contains spaces or control characters",
            ),
            ("::1:9092", "an IPv6 address needs brackets: [addr]:port"),
            (
                "[::1]9092",
                "no port after the IPv6 address (write [addr]:port)",
            ),
            ("[::1:9092", "']' missing after an IPv6 address"),
            ("[]:9092", "empty host"),
        ] {
            assert_eq!(
                err(input),
                format!("bootstrap address {input:?}: {why}"),
                "{input}"
            );
        }
    }
}
