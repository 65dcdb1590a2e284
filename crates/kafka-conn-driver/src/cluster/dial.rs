//! Opening one node's connection: the single place where the cluster dials.

use std::time::Duration;

use crate::client::Client;
use crate::config::ConnectConfig;
use crate::connect::{connect_span, connect_to};
use crate::error::ConnectError;
use crate::runtime::{timeout, Runtime};
use crate::transport::DialRequest;
use crate::NodeId;

/// Opens a connection to `host:port` for the cluster with `config`'s dial
/// (its dialer hook if it has one; otherwise the name resolved on every
/// call, so DNS changes are seen at the next dial, every address raced
/// (Happy Eyeballs), through its proxy if it has one), then TLS and the
/// Kafka handshake (ApiVersions, SASL), all within `setup_timeout` (the
/// node's growing setup timeout, which also bounds the dial itself). The
/// [`Client`] carries its [`ConnectInfo`](crate::ConnectInfo); `None` means
/// the setup timeout ran out.
///
/// Every connection the cluster opens goes through this function and
/// nowhere else. `node` is the policy's node id: the connection's observer
/// events and `tracing` span carry it.
pub(crate) async fn open_connection<R: Runtime>(
    rt: &R,
    node: NodeId,
    host: &str,
    port: u16,
    setup_timeout: Duration,
    config: &ConnectConfig,
) -> Option<Result<Client, ConnectError>> {
    let request = DialRequest::new(host, port, setup_timeout);
    let config = config.clone().with_node_id(node);
    let span = connect_span(&request.to_string(), &config);
    let outcome = timeout(
        rt,
        setup_timeout,
        tracing::Instrument::instrument(connect_to(rt.clone(), &request, config.clone()), span),
    )
    .await;
    if outcome.is_none() {
        // The setup timeout ran out, which connect_to never sees: the
        // observer is told so as a dial that did not finish in time.
        let target = request.to_string();
        let error = ConnectError::Dial {
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the node's setup timeout of {setup_timeout:?} ran out"),
            ),
            target: target.clone(),
            progress: Box::default(),
        };
        config.observe.connect_failed(&target, &error);
    }
    outcome
}
