//! Counters of one connection.

use std::time::Duration;

/// What one connection has done so far. Cheap to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests written (including the connection's own ApiVersions and SASL).
    pub requests_sent: u64,
    /// Responses read, including late ones that were dropped.
    pub responses_received: u64,
    /// Responses to cancelled or timed-out requests, read and dropped.
    pub late_responses: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Bytes handed to the transport.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Round-trip time of the last response.
    pub rtt_last: Option<Duration>,
    /// Smallest round-trip time seen.
    pub rtt_min: Option<Duration>,
    /// Largest round-trip time seen.
    pub rtt_max: Option<Duration>,
    /// Total time spent holding requests for broker throttling (KIP-219).
    pub throttled: Duration,
    /// Successful re-authentications (KIP-368).
    pub reauthentications: u64,
}

impl Stats {
    pub(crate) fn record_rtt(&mut self, rtt: Duration) {
        self.rtt_last = Some(rtt);
        self.rtt_min = Some(self.rtt_min.map_or(rtt, |m| m.min(rtt)));
        self.rtt_max = Some(self.rtt_max.map_or(rtt, |m| m.max(rtt)));
    }
}
