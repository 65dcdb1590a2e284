//! Opening one node's connection: the single place where the cluster dials.

use std::time::Duration;

use crate::client::Client;
use crate::config::ConnectConfig;
use crate::connect::connect;
use crate::error::ConnectError;
use crate::runtime::{timeout, Runtime};

/// Opens a connection to `host:port` for the cluster: resolves the name
/// (on every call: DNS changes are seen at the next dial), tries every
/// address it resolves to, TLS and the Kafka handshake (ApiVersions, SASL)
/// with `config`, all within `setup_timeout`. The [`Client`] carries its
/// [`ConnectInfo`](crate::ConnectInfo); `None` means the setup timeout ran
/// out.
///
/// Every connection the cluster opens goes through this function and
/// nowhere else, so that how a node is dialed (today: `connect`'s
/// machinery; later: the dialer hook of `ConnectConfig`, for Happy
/// Eyeballs, proxies and user dialers) changes in one place.
pub(crate) async fn open_connection<R: Runtime>(
    rt: &R,
    host: &str,
    port: u16,
    setup_timeout: Duration,
    config: &ConnectConfig,
) -> Option<Result<Client, ConnectError>> {
    // `connect` takes `host:port`, with an IPv6 literal in brackets.
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    timeout(
        rt,
        setup_timeout,
        connect(rt.clone(), &address, config.clone()),
    )
    .await
}
