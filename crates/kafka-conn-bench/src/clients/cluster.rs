//! The `Cluster` clients (`kc-tokio-cluster`, `kc-smol-cluster`,
//! `kc-async-std-cluster`): the same workers as `kc-<runtime>`, each
//! request through `Cluster::send_to(node, request)` to the node at the
//! benchmark's broker address, so the difference to `kc-<runtime>` is what
//! the cluster adds per request (routing under its lock, the in-flight
//! count, the lease).

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use kafka_conn_core::{ApiKey, Request};
use kafka_conn_driver::{Cluster, ClusterConfig, CurrentRuntime, NodeId};

use super::{count_until, current_thread_tokio, main_thread_wait, measure, spawn_tokio};
use crate::{Job, Sample};

pub(super) fn tokio(job: &Job) -> Result<Sample, String> {
    current_thread_tokio()?.block_on(cluster::<kafka_conn_tokio::TokioRuntime, _, _>(
        job,
        |c, n, r, s| spawn_tokio(send_loop(c, n, r, s)),
    ))
}

pub(super) fn smol(job: &Job) -> Result<Sample, String> {
    main_thread_wait(cluster::<kafka_conn_smol::SmolRuntime, _, _>(
        job,
        |c, n, r, s| smol::spawn(send_loop(c, n, r, s)),
    ))
}

pub(super) fn async_std(job: &Job) -> Result<Sample, String> {
    main_thread_wait(cluster::<kafka_conn_async_std::AsyncStdRuntime, _, _>(
        job,
        |c, n, r, s| async_std::task::spawn(send_loop(c, n, r, s)),
    ))
}

/// Connects through the benchmark's broker, finds its node, checks one
/// response, then measures `job.concurrency` workers started by `spawn`.
async fn cluster<R, F, Fut>(job: &Job, spawn: F) -> Result<Sample, String>
where
    R: CurrentRuntime,
    F: Fn(Cluster<R>, NodeId, Request, Arc<AtomicBool>) -> Fut,
    Fut: Future<Output = Result<u64, String>>,
{
    let cluster = Cluster::<R>::connect([job.broker.as_str()], ClusterConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let node = cluster
        .nodes()
        .into_iter()
        .find(|n| n.address.to_string() == job.broker)
        .ok_or_else(|| format!("no node advertised at {}", job.broker))?
        .id;
    let w = job.workload;
    let request = Request::new(ApiKey(w.api_key()), w.version(), w.body());
    let first = cluster
        .send_to(node, request.clone())
        .await
        .map_err(|e| e.to_string())?;
    w.check(&first.body)?;
    let response_bytes = first.body.len();
    drop(first);
    let sample = measure(job, response_bytes, |stop| {
        spawn(cluster.clone(), node, request.clone(), stop)
    })
    .await;
    cluster.close();
    cluster.closed().await;
    sample
}

async fn send_loop<R: CurrentRuntime>(
    cluster: Cluster<R>,
    node: NodeId,
    request: Request,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    count_until(&stop, || async {
        cluster
            .send_to(node, request.clone())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
}
