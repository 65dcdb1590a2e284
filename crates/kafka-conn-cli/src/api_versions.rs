//! `kconn api-versions`: what each broker supports (the bootstrap brokers,
//! then every broker the cluster advertises), and the version kafka-conn
//! would use (like `kafka-broker-api-versions.sh`); with
//! `--probe-version`, a guess of each broker's Kafka release.

use crate::output::outln;
use std::net::SocketAddr;

use kafka_conn_tokio::core::{ApiKey, ApiVersions, API_VERSIONS_MAX};
use serde::Serialize;

use crate::cli::ApiVersionsArgs;
use crate::diagnose::Diagnosis;
use crate::kafka::{MetadataSummary, Probe};
use crate::release::ReleaseGuess;
use crate::settings::Settings;

/// One API of one broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ApiRow {
    /// The API key.
    pub(crate) key: i16,
    /// Its name, when kafka-conn's table knows the key.
    pub(crate) name: Option<&'static str>,
    /// The broker's lowest version.
    pub(crate) min: i16,
    /// The broker's highest version.
    pub(crate) max: i16,
    /// The version kafka-conn would use: the highest both sides support.
    /// `None` for keys kafka-conn does not know (it cannot tell their header
    /// versions without an override).
    pub(crate) kafka_conn: Option<i16>,
}

/// The versions kafka-conn itself speaks of the APIs it sends on its own;
/// any version of every other known API can be framed (the caller brings
/// the body).
fn our_range(key: ApiKey, broker_max: i16) -> std::ops::RangeInclusive<i16> {
    match key {
        ApiKey::API_VERSIONS => 0..=API_VERSIONS_MAX,
        ApiKey::SASL_HANDSHAKE => 0..=1,
        ApiKey::SASL_AUTHENTICATE => 0..=2,
        _ => 0..=broker_max,
    }
}

/// The table rows of a broker's ApiVersions.
pub(crate) fn rows(versions: &ApiVersions) -> Vec<ApiRow> {
    versions
        .iter()
        .map(|r| ApiRow {
            key: r.api_key.0,
            name: r.api_key.name(),
            min: r.min,
            max: r.max,
            kafka_conn: r
                .api_key
                .is_known()
                .then(|| versions.negotiate(r.api_key, our_range(r.api_key, r.max)))
                .flatten(),
        })
        .collect()
}

/// A feature (KIP-584).
#[derive(Debug, Clone, Serialize)]
struct FeatureRow {
    name: String,
    min: i16,
    max: i16,
}

/// One broker's answer.
#[derive(Debug, Serialize)]
struct BrokerVersions {
    broker: String,
    ok: bool,
    address: Option<SocketAddr>,
    api_versions_version: Option<i16>,
    fell_back: bool,
    apis: Vec<ApiRow>,
    supported_features: Vec<FeatureRow>,
    finalized_features: Vec<FeatureRow>,
    warnings: Vec<String>,
    error: Option<Diagnosis>,
    /// In the bootstrap list.
    bootstrap: bool,
    /// Advertised by the cluster at exactly this `host:port`.
    advertised: bool,
    /// Its node id, when advertised.
    node_id: Option<i32>,
    /// `--probe-version`'s guess (`null` without it, or without APIs).
    release_guess: Option<ReleaseGuess>,
}

impl BrokerVersions {
    fn new(broker: &str) -> Self {
        Self {
            broker: broker.to_owned(),
            ok: false,
            address: None,
            api_versions_version: None,
            fell_back: false,
            apis: Vec::new(),
            supported_features: Vec::new(),
            finalized_features: Vec::new(),
            warnings: Vec::new(),
            error: None,
            bootstrap: false,
            advertised: false,
            node_id: None,
            release_guess: None,
        }
    }
}

/// Runs `kconn api-versions`; true when every broker answered.
pub(crate) async fn run(settings: &Settings, args: &ApiVersionsArgs) -> bool {
    let mut brokers: Vec<BrokerVersions> = Vec::new();
    let mut advertised: Option<MetadataSummary> = None;
    for broker in &settings.brokers {
        // The first bootstrap broker that answers tells the cluster's brokers.
        let learn = !args.bootstrap_only && advertised.is_none();
        let (mut b, summary) = query(settings, broker, learn).await;
        b.bootstrap = true;
        advertised = advertised.or(summary);
        finish(settings, args, &b, brokers.is_empty());
        brokers.push(b);
    }
    if let Some(summary) = &advertised {
        let mut list = summary.brokers.clone();
        list.sort_by_key(|b| b.node_id);
        for a in &list {
            let address = crate::check::advertised_address(a);
            if let Some(known) = brokers
                .iter_mut()
                .find(|b| b.broker.eq_ignore_ascii_case(&address))
            {
                known.advertised = true;
                known.node_id = Some(a.node_id);
                continue;
            }
            let (mut b, _) = if u16::try_from(a.port).is_ok() {
                query(settings, &address, false).await
            } else {
                let mut b = BrokerVersions::new(&address);
                b.error = Some(Diagnosis::custom(
                    crate::diagnose::Step::Dns,
                    "invalid_advertised_address",
                    format!(
                        "broker {} advertises port {}, which is not a TCP port",
                        a.node_id, a.port
                    ),
                ));
                (b, None)
            };
            b.advertised = true;
            b.node_id = Some(a.node_id);
            finish(settings, args, &b, false);
            brokers.push(b);
        }
    }
    if args.probe_version {
        for b in &mut brokers {
            let ranges: Vec<(i16, i16, i16)> =
                b.apis.iter().map(|r| (r.key, r.min, r.max)).collect();
            b.release_guess = crate::release::guess(&ranges);
        }
    }
    let ok = brokers.iter().all(|b| b.ok);
    if settings.json {
        crate::envelope::Envelope::new(
            "api-versions",
            Some(settings),
            ok,
            brokers,
            crate::envelope::NoExtra {},
        )
        .print();
    }
    ok
}

/// Prints one broker's table as soon as it is known (text output).
fn finish(settings: &Settings, args: &ApiVersionsArgs, b: &BrokerVersions, first: bool) {
    if settings.json {
        return;
    }
    if !first {
        outln!();
    }
    let guess = if args.probe_version {
        let ranges: Vec<(i16, i16, i16)> = b.apis.iter().map(|r| (r.key, r.min, r.max)).collect();
        crate::release::guess(&ranges)
    } else {
        None
    };
    print_text(b, guess.as_ref());
}

/// Connects to `broker` and reads its versions; with `learn`, also asks
/// Metadata for the brokers the cluster advertises.
async fn query(
    settings: &Settings,
    broker: &str,
    learn: bool,
) -> (BrokerVersions, Option<MetadataSummary>) {
    let mut out = BrokerVersions::new(broker);
    let client = match crate::connect(settings, broker).await {
        Ok(c) => c,
        Err(d) => {
            out.error = Some(d);
            return (out, None);
        }
    };
    let versions = client.api_versions().clone();
    out.ok = true;
    out.address = Some(client.info().address);
    out.api_versions_version = versions.negotiated_with;
    out.fell_back = versions.fell_back;
    out.apis = rows(&versions);
    let features = |list: &[kafka_conn_tokio::core::Feature]| {
        list.iter()
            .map(|f| FeatureRow {
                name: f.name.clone(),
                min: f.min,
                max: f.max,
            })
            .collect()
    };
    out.supported_features = features(&versions.supported_features);
    out.finalized_features = features(&versions.finalized_features);
    let mut summary = None;
    if learn {
        match metadata(&client).await {
            Ok(s) => summary = Some(s),
            Err(why) => out.warnings.push(format!(
                "cannot learn the cluster's other brokers from this broker: {why}"
            )),
        }
    }
    client.close();
    let _ = tokio::time::timeout(settings.timeout, client.closed()).await;
    (out, summary)
}

/// The brokers the cluster advertises, from a Metadata request.
async fn metadata(client: &kafka_conn_tokio::Client) -> Result<MetadataSummary, String> {
    let request = Probe::Metadata.request(client).map_err(|e| e.to_string())?;
    let version = request.api_version();
    let response = client.send(request).await.map_err(|e| e.to_string())?;
    crate::kafka::decode_metadata(&response.body, version).map_err(|e| e.to_string())
}

/// The table, aligned.
pub(crate) fn table(rows: &[ApiRow]) -> Vec<String> {
    let name_of = |r: &ApiRow| {
        r.name
            .map_or_else(|| format!("(unknown key {})", r.key), str::to_owned)
    };
    let width = rows
        .iter()
        .map(|r| name_of(r).len())
        .chain(["API".len()])
        .max()
        .unwrap_or(3);
    let mut lines = vec![format!(
        "{:<width$}  {:>4}  {:<7}  {}",
        "API", "KEY", "BROKER", "KAFKA-CONN"
    )];
    for r in rows {
        // kafka-broker-api-versions.sh's wording.
        let used = match r.kafka_conn {
            Some(v) => format!("[usable: {v}]"),
            None if r.name.is_none() => "UNSUPPORTED (not in kafka-conn's table)".to_owned(),
            None => "UNSUPPORTED (no common version)".to_owned(),
        };
        lines.push(format!(
            "{:<width$}  {:>4}  {:<7}  {used}",
            name_of(r),
            r.key,
            format!("v{}-{}", r.min, r.max),
        ));
    }
    lines
}

fn print_text(b: &BrokerVersions, guess: Option<&ReleaseGuess>) {
    let role = match (b.bootstrap, b.node_id) {
        (false, Some(id)) => format!(" (broker {id}, advertised)"),
        _ => String::new(),
    };
    if let Some(d) = &b.error {
        outln!("{}{role}", b.broker);
        outln!("✗ {}", d.line());
        return;
    }
    outln!(
        "{}{role} · ApiVersions v{}{} · {} APIs",
        b.address
            .map_or(b.broker.clone(), |a| crate::describe(&b.broker, a)),
        b.api_versions_version
            .map_or("?".to_owned(), |v| v.to_string()),
        if b.fell_back {
            " (after a fallback)"
        } else {
            ""
        },
        b.apis.len()
    );
    for line in table(&b.apis) {
        outln!("  {line}");
    }
    let show = |title: &str, list: &[FeatureRow]| {
        if !list.is_empty() {
            let items: Vec<String> = list
                .iter()
                .map(|f| format!("{} {}-{}", f.name, f.min, f.max))
                .collect();
            outln!("  {title}: {}", items.join(", "));
        }
    };
    show("supported features", &b.supported_features);
    show("finalized features", &b.finalized_features);
    for w in &b.warnings {
        outln!("  ⚠ {w}");
    }
    if let Some(g) = guess {
        outln!("  release: {}", g.line());
        for d in &g.differences {
            outln!("    differs: {d}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_conn_uses_the_highest_common_version() {
        let v = ApiVersions::from_ranges([
            (0, 0, 11),
            (18, 0, 9),
            (17, 0, 1),
            (36, 0, 5),
            (3, 4, 12),
            (1000, 0, 2),
        ])
        .unwrap();
        let rows = rows(&v);
        let by_key = |k: i16| rows.iter().find(|r| r.key == k).unwrap().clone();
        assert_eq!(by_key(0).kafka_conn, Some(11));
        assert_eq!(by_key(0).name, Some("Produce"));
        assert_eq!(by_key(18).kafka_conn, Some(API_VERSIONS_MAX));
        assert_eq!(by_key(17).kafka_conn, Some(1));
        assert_eq!(by_key(36).kafka_conn, Some(2));
        assert_eq!(by_key(3).kafka_conn, Some(12));
        assert_eq!(by_key(1000).kafka_conn, None);
        assert_eq!(by_key(1000).name, None);
    }

    #[test]
    fn the_table_is_aligned() {
        let v = ApiVersions::from_ranges([(0, 0, 11), (18, 0, 4), (1000, 0, 2)]).unwrap();
        let lines = table(&rows(&v));
        assert_eq!(lines[0], "API                  KEY  BROKER   KAFKA-CONN");
        assert_eq!(lines[1], "Produce                0  v0-11    [usable: 11]");
        assert_eq!(lines[2], "ApiVersions           18  v0-4     [usable: 4]");
        assert_eq!(
            lines[3],
            "(unknown key 1000)  1000  v0-2     UNSUPPORTED (not in kafka-conn's table)"
        );
        let broker_column = |l: &str| l.find("  v").unwrap();
        assert!(lines[1..]
            .iter()
            .all(|l| broker_column(l) == broker_column(&lines[1])));
    }
}
