//! Opening one node's connection: the single place where the cluster dials.

use std::time::Duration;

use crate::client::Client;
use crate::config::ConnectConfig;
use crate::connect::connect_to;
use crate::error::ConnectError;
use crate::runtime::{timeout, Runtime};
use crate::transport::DialRequest;

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
/// nowhere else.
pub(crate) async fn open_connection<R: Runtime>(
    rt: &R,
    host: &str,
    port: u16,
    setup_timeout: Duration,
    config: &ConnectConfig,
) -> Option<Result<Client, ConnectError>> {
    let request = DialRequest::new(host, port, setup_timeout);
    let span = tracing::info_span!("kafka_conn_connect", address = %request);
    timeout(
        rt,
        setup_timeout,
        tracing::Instrument::instrument(connect_to(rt.clone(), &request, config.clone()), span),
    )
    .await
}
