//! Where the real brokers are: the env file written by `scripts/broker-up`.

/// The value of `var`, or `None` (with a printed reason) when it is not
/// set. With `KAFKA_CONN_REQUIRE_BROKERS=1` (CI) a missing variable fails
/// the test instead of skipping it.
pub fn var(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => {
            if std::env::var("KAFKA_CONN_REQUIRE_BROKERS").as_deref() == Ok("1") {
                panic!(
                    "{var} is not set but KAFKA_CONN_REQUIRE_BROKERS=1: run scripts/broker-up and source .broker-state/env"
                );
            }
            eprintln!(
                "SKIPPED: {var} is not set (run scripts/broker-up, then `. .broker-state/env`)"
            );
            None
        }
    }
}

/// All of `vars`, or `None` if any is missing (each reported).
pub fn vars<const N: usize>(names: [&str; N]) -> Option<[String; N]> {
    let found: Vec<Option<String>> = names.iter().map(|n| var(n)).collect();
    let found: Option<Vec<String>> = found.into_iter().collect();
    found.map(|v| v.try_into().expect("same length"))
}

/// A variable of the SASL broker, which may be absent for a stated reason
/// (`KAFKA_SASL_SKIP_REASON`, e.g. no `../shared/broker` beside the
/// checkout): then the test is skipped even in CI, saying why.
pub fn sasl_var(name: &str) -> Option<String> {
    excusable_var(name, "KAFKA_SASL_SKIP_REASON")
}

/// [`var`], for a service the env file may say is off: when `reason_var`
/// holds a reason, the test is skipped (even in CI) with that reason.
fn excusable_var(name: &str, reason_var: &str) -> Option<String> {
    let reason = std::env::var(reason_var).unwrap_or_default();
    if !reason.trim().is_empty() {
        eprintln!("SKIPPED: {name}: {reason}");
        return None;
    }
    var(name)
}

/// A one-node PLAINTEXT broker that the broker-generic tests run against,
/// and what differs between them. See [`crate::suite!`]: each such test
/// runs once on tansu (under its own name) and once on noida-db (in the
/// module `noida_db`).
#[derive(Clone, Debug)]
pub struct Plaintext {
    /// The implementation, for messages.
    pub name: &'static str,
    /// `host:port`, which is also the address it advertises.
    pub addr: String,
    /// The ApiVersions version our handshake (which asks v4 first) ends on.
    pub api_versions: i16,
    /// Whether it got there by a KIP-511 fallback.
    pub fell_back: bool,
    /// The node id it gives itself in Metadata.
    pub node_id: i32,
}

impl Plaintext {
    /// tansu 0.6.0 (`KAFKA_PLAINTEXT_BOOTSTRAP`): ApiVersions v4, node 111.
    pub fn tansu() -> Option<Self> {
        Some(Self {
            name: "tansu",
            addr: var("KAFKA_PLAINTEXT_BOOTSTRAP")?,
            api_versions: 4,
            fell_back: false,
            node_id: 111,
        })
    }

    /// noida-db 0.2.3 (`KAFKA_NOIDA_BOOTSTRAP`), node 1. Like Apache Kafka
    /// 3.8, which it follows, it has ApiVersions v0-v3: it answers our v4
    /// with UNSUPPORTED_VERSION and its ApiVersions range (KIP-511), and
    /// the handshake ends on v3. Skipped, even in CI, when
    /// `KAFKA_NOIDA_SKIP_REASON` says why it is not running
    /// (`KAFKA_CONN_NOIDA=0`).
    pub fn noida() -> Option<Self> {
        Some(Self {
            name: "noida-db",
            addr: excusable_var("KAFKA_NOIDA_BOOTSTRAP", "KAFKA_NOIDA_SKIP_REASON")?,
            api_versions: 3,
            fell_back: true,
            node_id: 1,
        })
    }
}
