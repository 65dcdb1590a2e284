//! The schedule of a dial's TCP attempts (RFC 8305, Happy Eyeballs v2,
//! section 5), as a pure state machine: no clock, no socket, no future.
//!
//! The driver (`dial.rs`) feeds it what happens to the attempts it runs,
//! each input with `now`, and carries out what it asks:
//!
//! ```text
//! Race::new(addresses, delay, timeout, now)
//! loop {
//!     while let Some(action) = race.poll_action() { start / drop attempts; stop on Finished }
//!     wait for an attempt's outcome or race.poll_timeout()
//!     race.handle_connected(i, now) | race.handle_failed(i, now) | race.handle_timeout(now)
//! }
//! ```
//!
//! The rules: the first address is tried at once; each next one when the
//! connection attempt delay has passed since the last start while the
//! attempts before it are still pending (RFC 8305 section 5: "one
//! connection attempt to a single address is started first, followed by
//! the others in the list, one at a time"), or at once when every started
//! attempt has failed (waiting out the delay then would only add latency).
//! An attempt is given up at its own timeout. The first to connect wins and
//! every other pending attempt is cancelled (section 5: they "SHOULD be
//! canceled"); addresses not yet tried are ignored. When every address has
//! been tried and every attempt failed, the race is lost.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The shortest connection attempt delay: RFC 8305 section 5 says it
/// "MUST NOT be less than 10 milliseconds".
pub(crate) const MIN_ATTEMPT_DELAY: Duration = Duration::from_millis(10);

/// What the driver must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start a connection attempt to address `i` (indices follow the
    /// address list given to [`Race::new`]).
    Start(usize),
    /// Attempt `i` reached its timeout: drop it.
    Abandon(usize),
    /// Another attempt connected first: drop attempt `i`.
    Cancel(usize),
    /// The race is over: attempt `i` connected, or (`None`) every attempt
    /// failed. Always the last action.
    Finished(Option<usize>),
}

/// Where one attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptState {
    /// Started, no outcome yet.
    Pending,
    /// Connected first: the winner.
    Connected,
    /// Failed (refused, unreachable, ...), as the driver reported.
    Failed,
    /// No outcome within the attempt timeout.
    TimedOut,
    /// Still pending when another attempt won.
    Cancelled,
}

/// One started attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// When it started.
    pub(crate) started: Instant,
    /// When it ended (`None` while pending).
    pub(crate) ended: Option<Instant>,
    /// Its state.
    pub(crate) state: AttemptState,
}

/// The race of one dial's connection attempts.
#[derive(Debug)]
pub(crate) struct Race {
    addresses: usize,
    delay: Duration,
    timeout: Duration,
    /// The started attempts, in address order (attempt `i` is address `i`).
    attempts: Vec<Attempt>,
    actions: VecDeque<Action>,
    finished: bool,
}

impl Race {
    /// A race over `addresses` addresses (already in the order to try),
    /// starting the next attempt `delay` after the last (at least
    /// [`MIN_ATTEMPT_DELAY`]) and giving each attempt `timeout`. The first
    /// attempt starts at `now`; with no address, the race is lost at once.
    pub(crate) fn new(addresses: usize, delay: Duration, timeout: Duration, now: Instant) -> Self {
        let mut race = Self {
            addresses,
            delay: delay.max(MIN_ATTEMPT_DELAY),
            timeout,
            attempts: Vec::with_capacity(addresses),
            actions: VecDeque::new(),
            finished: false,
        };
        race.advance(now);
        race
    }

    /// Attempt `i` connected. The first to connect wins; an outcome for an
    /// attempt that is not pending (cancelled, given up, or never started)
    /// is ignored.
    pub(crate) fn handle_connected(&mut self, i: usize, now: Instant) {
        if !self.is_pending(i) {
            return;
        }
        self.end(i, AttemptState::Connected, now);
        for j in 0..self.attempts.len() {
            if self.is_pending(j) {
                self.end(j, AttemptState::Cancelled, now);
                self.actions.push_back(Action::Cancel(j));
            }
        }
        self.finish(Some(i));
    }

    /// Attempt `i` failed. Ignored unless it is pending.
    pub(crate) fn handle_failed(&mut self, i: usize, now: Instant) {
        if !self.is_pending(i) {
            return;
        }
        self.end(i, AttemptState::Failed, now);
        self.advance(now);
    }

    /// Processes everything due at `now`: attempt timeouts, then the next
    /// start. Calling it early or twice is harmless.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        for i in 0..self.attempts.len() {
            if self.is_pending(i) && now >= self.attempts[i].started + self.timeout {
                self.end(i, AttemptState::TimedOut, now);
                self.actions.push_back(Action::Abandon(i));
            }
        }
        self.advance(now);
    }

    /// The next thing to do.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do:
    /// the next start or the earliest attempt timeout. `None` once finished.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let timeouts = self
            .attempts
            .iter()
            .filter(|a| a.state == AttemptState::Pending)
            .map(|a| a.started + self.timeout);
        let next_start = self.next_start();
        timeouts.chain(next_start).min()
    }

    /// The started attempts, in address order.
    pub(crate) fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Whether the race is over.
    #[cfg(test)]
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    fn is_pending(&self, i: usize) -> bool {
        !self.finished
            && self
                .attempts
                .get(i)
                .is_some_and(|a| a.state == AttemptState::Pending)
    }

    fn end(&mut self, i: usize, state: AttemptState, now: Instant) {
        let a = &mut self.attempts[i];
        a.state = state;
        a.ended = Some(now);
    }

    /// When the next address is due while attempts are pending: the delay
    /// after the last start. `None` when every address has been tried or
    /// nothing is pending (then it starts at once, see `advance`).
    fn next_start(&self) -> Option<Instant> {
        let last = self.attempts.last()?;
        (self.attempts.len() < self.addresses).then_some(last.started + self.delay)
    }

    /// Starts what is due at `now`, and ends the race when nothing is left.
    fn advance(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        let pending = || {
            self.attempts
                .iter()
                .any(|a| a.state == AttemptState::Pending)
        };
        let due = match self.next_start() {
            _ if self.attempts.len() >= self.addresses => false,
            // Nothing in flight (the first attempt, or all failed): no reason to wait.
            _ if !pending() => true,
            Some(at) => now >= at,
            None => false,
        };
        if due {
            let i = self.attempts.len();
            self.attempts.push(Attempt {
                started: now,
                ended: None,
                state: AttemptState::Pending,
            });
            self.actions.push_back(Action::Start(i));
        } else if !pending() {
            self.finish(None);
        }
    }

    fn finish(&mut self, winner: Option<usize>) {
        self.finished = true;
        self.actions.push_back(Action::Finished(winner));
    }
}

#[cfg(test)]
mod tests;
