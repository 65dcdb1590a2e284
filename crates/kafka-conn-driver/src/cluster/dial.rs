//! Opening one node's connection: the single place where the cluster dials.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_channel::oneshot;
use kafka_conn_cluster::CloseWhy;

use crate::client::Client;
use crate::config::ConnectConfig;
use crate::connect::{connect_span, connect_to};
use crate::error::{ConnectError, SetupMark};
use crate::info::Progress;
use crate::runtime::Runtime;
use crate::transport::DialRequest;
use crate::NodeId;

/// Opens a connection to `host:port` for the cluster with `config`'s dial
/// (its dialer hook if it has one; otherwise the name resolved on every
/// call, so DNS changes are seen at the next dial, every address raced
/// (Happy Eyeballs), through its proxy if it has one), then TLS and the
/// Kafka handshake (ApiVersions, SASL). The [`Client`] carries its
/// [`ConnectInfo`](crate::ConnectInfo). `None`: the policy abandoned the
/// dial (`cancel`: its setup timeout ran out, the node was removed, the
/// cluster shut down).
///
/// The deadline is the policy's alone: its timer table holds the node's
/// growing setup timeout (`setup_timeout`, passed here for the error's
/// text and for the application's dialer) and ends the attempt through
/// `cancel`, so that there is one source of deadlines, not a second timer
/// racing it to the same instant.
///
/// Every connection the cluster opens goes through this function and
/// nowhere else. `node` is the policy's node id: the connection's observer
/// events and `tracing` span carry it. A setup timeout is told to the
/// observer as [`ConnectError::SetupTimeout`] with the step the attempt was
/// at, which the attempt itself never sees.
pub(crate) async fn open_connection<R: Runtime>(
    rt: &R,
    node: NodeId,
    host: &str,
    port: u16,
    setup_timeout: Duration,
    config: &ConnectConfig,
    cancel: oneshot::Receiver<CloseWhy>,
) -> Option<Result<Client, ConnectError>> {
    let request = DialRequest::new(host, port, setup_timeout);
    let mut config = config.clone().with_node_id(node);
    // Where the attempt is when the timeout drops it.
    let mark = Arc::new(SetupMark::default());
    config.dial.setup_mark = Some(mark.clone());
    let start = rt.now();
    let span = connect_span(&request.to_string(), &config);
    let outcome = until_cancelled(
        tracing::Instrument::instrument(connect_to(rt.clone(), &request, config.clone()), span),
        cancel,
    )
    .await;
    let timed_out = match outcome {
        Ok(result) => return Some(result),
        Err(why) => why == Some(CloseWhy::SetupTimeout),
    };
    if timed_out {
        let target = request.to_string();
        let mut progress = Box::<Progress>::default();
        progress.timings.total = rt.now().saturating_duration_since(start);
        let error = ConnectError::SetupTimeout {
            target: target.clone(),
            after: setup_timeout,
            step: mark.get(),
            progress,
        };
        config.observe.connect_failed(&target, &error);
    }
    None
}

/// Runs `fut` unless `cancel` fires first: `Err` with why (`None`: its
/// sender was dropped).
async fn until_cancelled<F: Future>(
    fut: F,
    mut cancel: oneshot::Receiver<CloseWhy>,
) -> Result<F::Output, Option<CloseWhy>> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(why) = std::pin::Pin::new(&mut cancel).poll(cx) {
            return Poll::Ready(Err(why.ok()));
        }
        fut.as_mut().poll(cx).map(Ok)
    })
    .await
}
