//! The public API of a runtime adapter crate, written once: see
//! [`adapter_api!`](crate::adapter_api).

/// Writes the public API of a runtime adapter crate (`kafka-conn-tokio`,
/// `-smol`, `-async-std`, or one of yours) around its [`Runtime`]: every
/// public item of this crate, re-exported, and `connect`, `connect_direct`,
/// `connect_over`, `connect_direct_over` and the `DirectClient` and
/// `Cluster` aliases bound to that runtime (`Cluster::connect(bootstrap,
/// config)` makes the runtime with the same expression, through
/// [`CurrentRuntime`]). The adapter keeps only
/// its `Runtime` implementation; a type added to this crate's API appears
/// in every adapter without touching them. That includes the items of the
/// driver's optional features (`Kerberos` with `gssapi`,
/// `OidcTokenProvider` with `oidc`, `AwsMskIam` with `aws-msk-iam`): an
/// adapter forwards each feature to the driver
/// (`gssapi = ["kafka-conn-driver/gssapi"]`), and the glob re-export below
/// carries whatever the driver exports, so nothing is cfg-gated here.
///
/// ```text
/// kafka_conn_driver::adapter_api!(SmolRuntime = SmolRuntime);
/// // With more documentation for `connect` and `connect_direct`:
/// kafka_conn_driver::adapter_api!(
///     /// # Panics
///     ///
///     /// Outside a tokio runtime.
///     TokioRuntime = TokioRuntime::current()
/// );
/// ```
///
/// The runtime's type, then after `=` the expression that makes one,
/// evaluated on every connect; doc comments before them are added to the
/// documentation of `connect` and `connect_direct`.
///
/// [`Runtime`]: crate::Runtime
/// [`CurrentRuntime`]: crate::CurrentRuntime
#[macro_export]
macro_rules! adapter_api {
    ($(#[$extra:meta])* $runtime:ty = $make:expr $(,)?) => {
        // The whole API; `connect`, `connect_direct` and `DirectClient`
        // below shadow the driver's runtime-generic ones. (The docs name
        // the driver's items without links: a link in a macro's docs
        // resolves to the driver's private module paths.)
        pub use $crate::*;

        /// Connects to the broker at `address` (`host:port`) on this
        /// crate's runtime. See `kafka_conn_driver::connect`.
        ///
        $(#[$extra])*
        pub async fn connect(
            address: &str,
            config: impl ::std::convert::Into<$crate::ConnectConfig>,
        ) -> ::std::result::Result<$crate::Client, $crate::ConnectError> {
            $crate::connect($make, address, config.into()).await
        }

        /// A whole Kafka cluster on this crate's runtime: bootstrap,
        /// Metadata, one connection per node, backoff, circuit breaker,
        /// rebootstrap (see `kafka_conn_driver::Cluster`). Connect with
        /// `Cluster::connect(bootstrap, config)`.
        pub type Cluster = $crate::Cluster<$runtime>;

        impl $crate::CurrentRuntime for $runtime {
            fn current() -> Self {
                $make
            }
        }

        /// A connection driven by the task that holds it, with no
        /// background task (see `kafka_conn_driver::DirectClient`).
        pub type DirectClient = $crate::DirectClient<$runtime>;

        /// Connects to the broker at `address` (`host:port`) and returns a
        /// [`DirectClient`], which runs the connection in the caller's
        /// task. See `kafka_conn_driver::connect_direct`.
        ///
        $(#[$extra])*
        pub async fn connect_direct(
            address: &str,
            config: impl ::std::convert::Into<$crate::ConnectConfig>,
        ) -> ::std::result::Result<DirectClient, $crate::ConnectError> {
            $crate::connect_direct($make, address, config.into()).await
        }

        /// Runs a connection over `stream`, a byte stream the caller
        /// already has (a Unix socket, a pipe, a tunnel), on this crate's
        /// runtime; `host` is the broker's name for TLS and the credential
        /// provider. See `kafka_conn_driver::connect_over`.
        ///
        $(#[$extra])*
        pub async fn connect_over(
            stream: impl $crate::Transport,
            host: &str,
            config: impl ::std::convert::Into<$crate::ConnectConfig>,
        ) -> ::std::result::Result<$crate::Client, $crate::ConnectError> {
            $crate::connect_over($make, stream, host, config.into()).await
        }

        /// As `connect_over`, returning a [`DirectClient`]. See
        /// `kafka_conn_driver::connect_direct_over`.
        ///
        $(#[$extra])*
        pub async fn connect_direct_over(
            stream: impl $crate::Transport,
            host: &str,
            config: impl ::std::convert::Into<$crate::ConnectConfig>,
        ) -> ::std::result::Result<DirectClient, $crate::ConnectError> {
            $crate::connect_direct_over($make, stream, host, config.into()).await
        }
    };
}

/// Defines `$name`, a [`Timer`] around async-io's `Timer` (the timer under
/// both smol and async-std), for an adapter's [`Runtime::timer`]: async-io's
/// `Timer` is `Unpin` and `set_at` re-arms it in place, so a reset never
/// allocates. Written once here so that the two adapters on async-io do not
/// each keep a copy; the adapter names the type through its own dependency.
///
/// ```text
/// kafka_conn_driver::async_io_timer!(SmolTimer = smol::Timer);
/// // in `Runtime::timer`: Box::pin(SmolTimer(smol::Timer::at(deadline)))
/// ```
///
/// [`Timer`]: crate::Timer
/// [`Runtime`]: crate::Runtime
/// [`Runtime::timer`]: crate::Runtime::timer
#[macro_export]
macro_rules! async_io_timer {
    ($(#[$meta:meta])* $name:ident = $timer:ty $(,)?) => {
        $(#[$meta])*
        struct $name($timer);

        impl ::std::future::Future for $name {
            type Output = ();

            fn poll(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<()> {
                // async-io's `Timer` yields the instant it fired at; the
                // driver reads the clock itself.
                ::std::pin::Pin::new(&mut self.get_mut().0).poll(cx).map(drop)
            }
        }

        impl $crate::Timer for $name {
            fn reset(self: ::std::pin::Pin<&mut Self>, deadline: ::std::time::Instant) {
                self.get_mut().0.set_at(deadline);
            }
        }
    };
}
