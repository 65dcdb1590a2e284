//! The integration suite of kafka-conn, written once and run by each
//! runtime crate (`kafka-conn-tokio`, `-smol`, `-async-std`) with its own
//! executor:
//!
//! ```ignore
//! // crates/kafka-conn-smol/tests/suite.rs
//! kafka_conn_testsuite::suite!(smol::block_on, kafka_conn_smol::SmolRuntime);
//! ```
//!
//! Real brokers come from `scripts/broker-up` (tansu over PLAINTEXT, TLS
//! and mTLS, noida-db, the librdkafka mock cluster; see `docs/testing.md`);
//! faults come from real sockets (see [`fake`]). A missing broker skips its
//! test, or fails it when `KAFKA_CONN_REQUIRE_BROKERS=1` (unless the env
//! file says why that broker is off).

pub mod auth;
pub mod backpressure;
pub mod cluster;
pub mod cluster_observe;
pub mod custom;
pub mod dialing;
pub mod direct;
pub mod env;
pub mod fake;
pub mod kafka;
pub mod keepalive;
pub mod mock;
pub mod netns;
pub mod observe;
pub mod proxies;
pub mod scram;
pub mod tests;
pub mod transport;
pub mod typed;

use std::future::Future;
use std::time::Duration;

use futures_channel::oneshot;
use kafka_conn_driver::{ConnectError, Runtime};
pub use mock::MockCluster;

/// Runs `fut` as its own task on `rt`; await the receiver for its output
/// (an error means the task panicked).
pub fn spawn<R: Runtime, T: Send + 'static>(
    rt: &R,
    fut: impl Future<Output = T> + Send + 'static,
) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    rt.spawn(Box::pin(async move {
        let _ = tx.send(fut.await);
    }));
    rx
}

pub use kafka_conn_driver::timeout;

/// Panics unless `e` is the close of the handshake deadline.
pub fn assert_handshake_timeout(e: &ConnectError) {
    use kafka_conn_driver::core::{CloseReason, TimeoutKind};
    assert!(
        matches!(
            e.close_reason(),
            Some(CloseReason::Timeout(TimeoutKind::Handshake { .. }))
        ),
        "{e}"
    );
}

/// Pretend versions, so a peer that never answers ApiVersions is "ready".
pub fn hint() -> kafka_conn_driver::core::ApiVersions {
    kafka_conn_driver::core::ApiVersions::from_ranges([(18, 0, 3), (3, 0, 12)]).unwrap()
}

/// Awaits `connecting` (a `connect` or `connect_direct` to `addr`) for at
/// most `within`, and panics unless it connected.
pub async fn connected<R: Runtime, C>(
    rt: &R,
    addr: &str,
    within: Duration,
    connecting: impl Future<Output = Result<C, ConnectError>>,
) -> C {
    match timeout(rt, within, connecting).await {
        Some(Ok(c)) => c,
        Some(Err(e)) => panic!("connect to {addr}: {e}"),
        None => panic!("connect to {addr}: no outcome within {within:?}"),
    }
}

/// Awaits `connecting` for at most `within`, and panics unless it failed;
/// prints and returns the error.
pub async fn refused<R: Runtime, C: std::fmt::Debug>(
    rt: &R,
    addr: &str,
    within: Duration,
    connecting: impl Future<Output = Result<C, ConnectError>>,
) -> ConnectError {
    match timeout(rt, within, connecting).await {
        Some(Ok(c)) => panic!("connect to {addr} should fail, got {c:?}"),
        Some(Err(e)) => {
            eprintln!("{addr}: {e}");
            e
        }
        None => panic!("connect to {addr}: no outcome within {within:?}"),
    }
}

/// Sleeps on `rt`.
pub async fn sleep<R: Runtime>(rt: &R, d: Duration) {
    rt.sleep_until(rt.now() + d).await;
}

/// One step of xorshift64 on `seed`, returning the new value: the
/// storms' repeatable choices of what to drop and when.
pub(crate) fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Defines one `#[test]` per suite test, each running on the given
/// executor: `suite!(block_on_path, runtime_expression)`. The runtime
/// expression is evaluated inside `block_on`.
#[macro_export]
macro_rules! suite {
    ($block_on:path, $runtime:expr) => {
        $crate::suite!(@in tests, $block_on, $runtime;
            tls_connects_with_ca_file_and_server_name,
            mtls_connects_with_client_certificate,
            mock_cluster_connects_after_version_fallback,
            close_while_pending_fails_all_with_shutdown,
            dropping_the_last_handle_closes_the_socket,
            silent_listener_times_out_the_handshake,
            silent_listener_times_out_requests_at_their_deadline,
            garbage_and_http_listeners_are_protocol_violations,
            plaintext_client_on_tls_port_is_told_broker_speaks_tls,
            tls_client_on_plaintext_port_is_told_to_use_plaintext,
            tls_client_on_plaintext_port_is_told_quickly,
            tls_client_on_silent_port_times_out,
            tls_info_and_certificate_errors_carry_the_presented_chain,
            connect_errors_carry_the_timings_of_completed_steps,
            every_failed_tcp_attempt_is_reported,
            wrong_ca_is_certificate_not_trusted,
            wrong_server_name_is_name_mismatch,
            closed_port_is_refused,
            tcp_connect_without_answer_times_out_at_the_tcp_step,
            unknown_host_is_a_resolve_error,
            oauth_callback_answers_every_reauthentication,
            failing_oauth_callback_is_an_auth_failure,
            sasl_mechanisms_over_plaintext_and_ssl,
            spawn_blocking_runs_off_the_executor,
        );
        $crate::suite!(@in direct, $block_on, $runtime;
            direct_connects_over_tls_and_to_the_mock_cluster,
            direct_deadlines_and_close,
            direct_connect_errors_and_sasl,
            direct_reauthenticates_between_requests,
        );
        $crate::suite!(@in backpressure, $block_on, $runtime;
            flood_of_a_stopped_broker_holds_at_the_bound_then_completes,
            flood_of_a_killed_broker_fails_every_request_cleanly,
            dropped_sends_give_back_their_places,
            cluster_node_connections_are_bounded_too,
        );
        $crate::suite!(@in custom, $block_on, $runtime;
            user_defined_plain_authenticates_against_the_sasl_broker,
            user_defined_mechanism_asks_the_provider_through_custom,
        );
        $crate::suite!(@in dialing, $block_on, $runtime;
            happy_eyeballs_live_address_wins_over_a_silent_one,
            attempt_delay_is_configurable,
            dns_is_resolved_on_every_connect_unless_cached,
            address_family_restricts_and_orders,
        );
        $crate::suite!(@in keepalive, $block_on, $runtime;
            silent_peer_is_detected_by_keepalive_and_user_timeout,
            without_keepalive_a_silent_peer_waits_for_the_request_deadline,
        );
        $crate::suite!(@in proxies, $block_on, $runtime;
            socks5_proxy_carries_plaintext_and_tls,
            socks5_credentials_are_required_and_checked,
            socks5_refusal_names_the_reply,
            http_connect_proxy_with_and_without_basic_auth,
            proxy_that_is_down_is_named,
        );
        $crate::suite!(@in transport, $block_on, $runtime;
            key_cases_run_through_a_dialer,
            dialer_errors_and_time_outs_are_dial_errors,
        );
        $crate::suite!(@in cluster, $block_on, $runtime;
            cluster_discovers_every_broker_from_one_address,
            cluster_over_tansu_plaintext_tls_and_sasl,
            cluster_bad_bootstrap_input_names_the_address,
            cluster_unreachable_advertised_address_names_node_address_and_step,
            cluster_broker_down_mid_flight_and_back,
            cluster_all_brokers_down_circuits_rebootstrap_and_recovery,
            cluster_follows_a_moved_leader,
            cluster_rebootstraps_on_rebootstrap_required,
            cluster_single_flight_one_connection_for_a_thousand_callers,
            cluster_connection_cap_closes_the_least_recently_used,
            cluster_reports_a_cluster_id_change_and_does_not_merge,
            cluster_idle_reaping_is_not_a_failure_and_close_fails_pending,
            cluster_dropped_send_to_futures_leave_nothing_in_flight,
        );
        $crate::suite!(@in observe, $block_on, $runtime;
            observer_sees_connect_responses_failures_and_close,
            observer_times_reauthentications,
            metrics_after_a_known_workload_on_the_mock_cluster,
            traces_carry_stable_span_names_and_fields,
        );
        $crate::suite!(@in cluster_observe, $block_on, $runtime;
            cluster_events_reach_the_observer_and_metrics,
            setup_timeout_is_typed_with_its_step,
            cluster_id_change_reaches_the_observer_and_metrics,
        );
        $crate::suite!(@in typed, $block_on, $runtime;
            typed_produce_fetch_round_trip_tansu,
            typed_produce_fetch_round_trip_noida,
            typed_produce_fetch_round_trip_mock,
            typed_acks_zero_answered_by_the_test_brokers_is_unsolicited,
        );
        $crate::suite!(@brokers $block_on, $runtime;
            tests::plaintext_connects_and_negotiates,
            tests::pipelined_10k_requests_from_64_tasks,
            tests::concurrent_senders_of_different_apis,
            tests::cancellation_storm_keeps_the_connection_in_sync,
            tests::broker_killed_mid_flight_fails_pending_requests,
            direct::direct_pipelines_10k_requests_in_one_task,
            direct::direct_dropped_requests_keep_the_connection_in_sync,
            direct::direct_broker_killed_mid_flight_fails_each_request,
            cluster::cluster_bootstraps_a_one_node_table,
            typed::typed_metadata_and_create_topics,
            typed::typed_pinned_unsupported_version_is_refused_before_sending,
            typed::direct_typed_requests,
        );
    };
    // The tests that take an `env::Plaintext`: each runs on tansu under its
    // own name and on noida-db as `noida_db::<name>`. Once per suite (one
    // `noida_db` module).
    (@brokers $block_on:path, $runtime:expr; $($module:ident::$name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $block_on(async {
                    if let Some(broker) = $crate::env::Plaintext::tansu() {
                        $crate::$module::$name($runtime, broker).await
                    }
                });
            }
        )*
        /// The same tests against noida-db (`KAFKA_NOIDA_BOOTSTRAP`).
        mod noida_db {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    $block_on(async {
                        if let Some(broker) = $crate::env::Plaintext::noida() {
                            $crate::$module::$name($runtime, broker).await
                        }
                    });
                }
            )*
        }
    };
    (@in $module:ident, $block_on:path, $runtime:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $block_on(async { $crate::$module::$name($runtime).await });
            }
        )*
    };
}

/// The tests that need the runtime's Unix socket type:
/// `transport_suite!(block_on_path, runtime_expression, unix_connect)`,
/// with a [`transport::UnixConnect`] opening the runtime's Unix stream.
#[macro_export]
macro_rules! transport_suite {
    ($block_on:path, $runtime:expr, $unix:expr) => {
        #[test]
        fn connections_run_over_a_unix_socket() {
            $block_on(async {
                $crate::transport::connections_run_over_a_unix_socket($runtime, $unix).await
            });
        }
    };
}
