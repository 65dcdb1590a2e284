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
    let reason = std::env::var("KAFKA_SASL_SKIP_REASON").unwrap_or_default();
    if !reason.trim().is_empty() {
        eprintln!("SKIPPED: {name}: {reason}");
        return None;
    }
    var(name)
}
