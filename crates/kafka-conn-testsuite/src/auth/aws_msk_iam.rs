//! Amazon MSK's IAM mechanism (`AWS_MSK_IAM`). There is no MSK here, so:
//!
//! - the signed payload is compared field by field with an independent
//!   SigV4 implementation, botocore (PyPI), run by `scripts/msk_iam_sign.py`
//!   in a venv this suite creates under the cache directory, on the same
//!   fixed credentials, time and host; the signature must match exactly;
//! - the exchange runs against the simulated broker ([`SaslSim`]), which
//!   checks the payload's shape and freshness and answers with a JSON
//!   object as MSK does (`version`, `request-id`).
//!
//! Without Python or PyPI the comparison is skipped with a message (a
//! failure under `KAFKA_CONN_REQUIRE_BROKERS=1`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_conn_driver::core::{CloseReason, Config};
use kafka_conn_driver::{connect, AwsCredentials, AwsMskIam, Client, ConnectConfig, Runtime};

use crate::auth::SaslSim;
use crate::kafka::metadata_all;
use crate::tests::{FixedDns, LIMIT};
use crate::{connected, refused, sleep};

/// The botocore release the comparison runs against (pinned: the test
/// must not change with PyPI).
const BOTOCORE: &str = "botocore==1.35.99";
const REGION: &str = "eu-west-1";
const HOST: &str = "b-1.kafka-conn-test.abc123.c2.kafka.eu-west-1.amazonaws.com";

static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The venv's python with botocore, made on first use.
fn python() -> Result<&'static PathBuf, &'static String> {
    VENV.get_or_init(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .ok_or("no HOME or XDG_CACHE_HOME for the venv")?;
        let venv = cache.join("kafka-conn").join("msk-iam-venv");
        let python = venv.join("bin").join("python");
        let ok = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| format!("{cmd:?}: {e}"))
                .and_then(|o| {
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{cmd:?}: {}",
                            String::from_utf8_lossy(&o.stderr).trim()
                        ))
                    }
                })
        };
        let has = |python: &PathBuf| {
            ok(Command::new(python).args([
                "-c",
                "import botocore, sys; sys.exit(botocore.__version__ != '1.35.99')",
            ]))
            .is_ok()
        };
        if !has(&python) {
            ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            ok(Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                BOTOCORE,
            ]))?;
        }
        Ok(python)
    })
    .as_ref()
}

/// botocore's presigned parameters for these inputs.
fn botocore_sign(
    creds: (&str, &str, Option<&str>),
    unix: u64,
) -> Result<serde_json::Value, String> {
    let python = python().map_err(Clone::clone)?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/msk_iam_sign.py");
    let input = serde_json::json!({
        "access_key": creds.0, "secret_key": creds.1, "token": creds.2,
        "region": REGION, "host": HOST, "timestamp": unix,
    });
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Our payload equals botocore's signature, field by field, for long-term
/// and temporary credentials (with a session token carrying characters
/// that need URL-encoding), at several times.
pub async fn msk_iam_payload_matches_botocore<R: Runtime>(_rt: R) {
    let cases = [
        (
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        ),
        (
            "ASIAEXAMPLE",
            "secret/with+special=chars",
            Some("FwoGZXIvYXdzE+token/with=chars"),
        ),
    ];
    for unix in [1_700_000_000u64, 1_717_000_123] {
        for (id, secret, token) in cases {
            let expected = match botocore_sign((id, secret, token), unix) {
                Ok(v) => v,
                Err(e) => {
                    let why = format!("the botocore venv cannot be built or run: {e}");
                    if std::env::var("KAFKA_CONN_REQUIRE_BROKERS").as_deref() == Ok("1") {
                        panic!("{why} (KAFKA_CONN_REQUIRE_BROKERS=1)");
                    }
                    eprintln!("SKIPPED: {why}");
                    return;
                }
            };
            let mut creds = AwsCredentials::new(id, secret);
            if let Some(t) = token {
                creds = creds.with_session_token(t);
            }
            let msk = AwsMskIam::new(REGION);
            let ours: serde_json::Value = serde_json::from_str(
                &msk.payload(HOST, &creds, UNIX_EPOCH + Duration::from_secs(unix))
                    .unwrap(),
            )
            .unwrap();
            let fields = [
                "x-amz-algorithm",
                "x-amz-credential",
                "x-amz-date",
                "x-amz-expires",
                "x-amz-signedheaders",
                "x-amz-security-token",
                "x-amz-signature",
            ];
            for f in fields {
                assert_eq!(ours.get(f), expected.get(f), "{f} ({id} at {unix})");
            }
            assert!(ours["x-amz-signature"].as_str().unwrap().len() == 64);
            assert_eq!(ours["version"], "2020_10_22");
            assert_eq!(ours["host"], HOST);
            assert_eq!(ours["action"], "kafka-cluster:Connect");
            assert!(ours["user-agent"]
                .as_str()
                .unwrap()
                .starts_with("kafka-conn/"));
            let known = ["version", "host", "user-agent", "action"];
            for k in ours.as_object().unwrap().keys() {
                assert!(
                    known.contains(&k.as_str()) || fields.contains(&k.as_str()),
                    "{k}"
                );
            }
            eprintln!("matches {} for {id} at {unix}", expected["botocore"]);
        }
    }
}

/// A simulated MSK broker: checks the payload's shape, that it was signed
/// just now for `host` and the region, and answers as MSK does.
fn msk_broker(host: &'static str, session_lifetime_ms: i64) -> SaslSim {
    let n = Arc::new(AtomicUsize::new(0));
    SaslSim::start("AWS_MSK_IAM", session_lifetime_ms, move |message| {
        let p: serde_json::Value =
            serde_json::from_slice(message).map_err(|e| format!("not JSON: {e}"))?;
        if p["version"] != "2020_10_22" || p["action"] != "kafka-cluster:Connect" {
            return Err(format!("bad payload {p}"));
        }
        if p["host"] != host
            || !p["x-amz-credential"]
                .as_str()
                .unwrap_or("")
                .contains("/eu-west-1/kafka-cluster/aws4_request")
        {
            return Err(format!("signed for the wrong host or region: {p}"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let date = p["x-amz-date"].as_str().unwrap_or("");
        let this_minute = unix_to_amz_date(now);
        let last_minute = unix_to_amz_date(now.saturating_sub(60));
        if date < last_minute.as_str() || date > this_minute.as_str() {
            return Err(format!("stale signature date {date} (now {this_minute})"));
        }
        let id = n.fetch_add(1, Ordering::SeqCst);
        Ok(format!(r#"{{"version":"2020_10_22","request-id":"req-{id}"}}"#).into_bytes())
    })
}

/// SigV4's `YYYYMMDDTHHMMSSZ` for a Unix time.
fn unix_to_amz_date(unix: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix as i64).expect("a time in range");
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Connects to `broker` under the name `host` (as `host:port`), through a
/// runtime whose DNS maps every name to the broker: the payload is signed
/// for the name connected to.
async fn connect_by_name<R: Runtime>(
    rt: &R,
    host: &str,
    broker: &SaslSim,
    config: ConnectConfig,
) -> Client {
    let addr: std::net::SocketAddr = broker.address().parse().unwrap();
    let dns = FixedDns {
        inner: rt.clone(),
        addresses: vec![addr],
    };
    let name = format!("{host}:{}", addr.port());
    connected(&dns, &name, LIMIT, connect(dns.clone(), &name, config)).await
}

fn msk_config(msk: AwsMskIam) -> ConnectConfig {
    ConnectConfig::new(Config::new().with_sasl(AwsMskIam::sasl_config()))
        .with_credential_provider(msk)
}

fn payloads(broker: &SaslSim) -> Vec<serde_json::Value> {
    broker
        .received()
        .iter()
        .map(|m| serde_json::from_slice(m).unwrap())
        .collect()
}

/// The exchange with the simulated broker; every re-authentication signs
/// anew, with the current time and the credentials the provider has then
/// (rotated here on every call); a refusal is error 58 with the broker's
/// text.
pub async fn msk_iam_signs_every_authentication<R: Runtime>(rt: R) {
    let broker = msk_broker(HOST, 2000);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let msk = AwsMskIam::new(REGION).with_credentials_provider(move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        Ok(AwsCredentials::new(format!("AKIDROTATED{n}"), "secret")
            .with_session_token(format!("token-{n}")))
    });
    let client = connect_by_name(&rt, HOST, &broker, msk_config(msk)).await;
    assert_eq!(client.sasl_session().unwrap().mechanism, "AWS_MSK_IAM");
    let until = Instant::now() + LIMIT;
    while client.stats().reauthentications < 2 {
        assert!(Instant::now() < until, "no re-authentication");
        client.send(metadata_all()).await.expect("requests flow");
        sleep(&rt, Duration::from_millis(100)).await;
    }
    let p = payloads(&broker);
    assert!(p.len() >= 3, "{p:?}");
    for (n, pair) in p.windows(2).enumerate() {
        assert_ne!(pair[0]["x-amz-signature"], pair[1]["x-amz-signature"]);
        // Sessions of 2 s: each signature is at least a second younger.
        assert!(
            pair[0]["x-amz-date"].as_str() < pair[1]["x-amz-date"].as_str(),
            "{pair:?}"
        );
        assert!(pair[1]["x-amz-credential"]
            .as_str()
            .unwrap()
            .starts_with(&format!("AKIDROTATED{}/", n + 1)));
        assert_eq!(pair[1]["x-amz-security-token"], format!("token-{}", n + 1));
    }
    client.close();

    // Refused: the broker's message, error 58, not retriable.
    let refusing = SaslSim::start("AWS_MSK_IAM", 0, |_| {
        Err("[kafka-conn sim] Access denied".to_owned())
    });
    let addr = refusing.address();
    let msk = AwsMskIam::new(REGION).with_credentials(AwsCredentials::new("AKID", "secret-value"));
    let e = refused(
        &rt,
        &addr,
        LIMIT,
        connect(rt.clone(), &addr, msk_config(msk)),
    )
    .await;
    let Some(CloseReason::AuthFailed(a)) = e.close_reason() else {
        panic!("{e}")
    };
    assert_eq!(a.error_code, Some(58), "{a}");
    assert!(a.message.contains("Access denied"), "{a}");
    assert!(!format!("{e:?}").contains("secret-value"));
}

/// One config (one provider) for the brokers of a cluster: each
/// connection's payload is signed for the host it was made to, and each
/// broker accepts only its own.
pub async fn msk_iam_one_config_serves_every_broker<R: Runtime>(rt: R) {
    const HOST_2: &str = "b-2.kafka-conn-test.abc123.c2.kafka.eu-west-1.amazonaws.com";
    let config =
        msk_config(AwsMskIam::new(REGION).with_credentials(AwsCredentials::new("AKID", "secret")));
    let brokers = [(HOST, msk_broker(HOST, 0)), (HOST_2, msk_broker(HOST_2, 0))];
    for (host, broker) in &brokers {
        let client = connect_by_name(&rt, host, broker, config.clone()).await;
        client.send(metadata_all()).await.expect("authenticated");
        client.close();
        let p = payloads(broker);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["host"], *host);
    }
}

/// Temporary credentials that expire before the broker's session does:
/// the connection re-authenticates (re-signs) before they expire.
pub async fn msk_iam_reauthenticates_before_the_credentials_expire<R: Runtime>(rt: R) {
    let broker = msk_broker(HOST, 3_600_000);
    let msk = AwsMskIam::new(REGION).with_credentials_provider(|| {
        Ok(AwsCredentials::new("ASIATEMP", "secret")
            .with_session_token("t")
            .with_expiry(SystemTime::now() + Duration::from_secs(3)))
    });
    let client = connect_by_name(&rt, HOST, &broker, msk_config(msk)).await;
    let started = Instant::now();
    while client.stats().reauthentications < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "credentials expired first"
        );
        sleep(&rt, Duration::from_millis(50)).await;
    }
    assert_eq!(payloads(&broker).len(), 2);
    client
        .send(metadata_all())
        .await
        .expect("still authenticated");
}

/// Defines the AWS_MSK_IAM tests on one runtime: `aws_msk_iam_suite!(block_on_path, runtime_expression)`.
#[macro_export]
macro_rules! aws_msk_iam_suite {
    ($block_on:path, $runtime:expr) => {
        $crate::aws_msk_iam_suite!(@each $block_on, $runtime;
            msk_iam_payload_matches_botocore,
            msk_iam_signs_every_authentication,
            msk_iam_one_config_serves_every_broker,
            msk_iam_reauthenticates_before_the_credentials_expire,
        );
    };
    (@each $block_on:path, $runtime:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $block_on(async { $crate::auth::aws_msk_iam::$name($runtime).await });
            }
        )*
    };
}
