//! One source of the connection's deadlines, in the spirit of quinn-proto's
//! `TimerTable`.
//!
//! Every kind of deadline is derived from the connection's state in one
//! place, [`Connection::deadline`]. [`Connection::poll_timeout`] reports the
//! earliest of them and [`Connection::handle_timeout`] acts, through
//! [`Connection::expire`], on exactly the kinds that `deadline` says are
//! due: a deadline that `poll_timeout` reports is by construction one that
//! `handle_timeout` acts on, and after `handle_timeout(now)` none is due at
//! `now`. (Before this module the two were derived by hand in two places;
//! fuzz findings 2 and 5 in `docs/fuzzing.md` were both the two drifting
//! apart.)
//!
//! Nothing is stored per timer: the deadlines are functions of the in-flight
//! slots, the held requests, the session and so on, so nothing can be
//! forgotten when they change. The cost is a handful of comparisons per
//! `poll_timeout`, which runs after every input; the in-flight scan stops
//! at the first waiting slot while deadlines are in send order.
//!
//! When several kinds are due at once they are handled in
//! [`Deadline::ALL`]'s order, which fixes which close reason wins, e.g. an
//! idle connection is reaped as `Idle` before its session could expire.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Connection, Owner, State};
use crate::error::{CloseReason, TimeoutKind};

/// `t + d`, saturating instead of panicking: a duration past what the
/// platform's clock can represent (`Duration::MAX` as "no timeout", from a
/// caller's request timeout, throttle or config) is a deadline that never
/// comes, not an overflow panic (fuzz finding 1). The last fallback (`t`
/// itself) is unreachable on real platforms, whose `Instant` spans
/// centuries.
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    /// Far beyond any connection's life.
    const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d)
        .or_else(|| t.checked_add(NEVER))
        .unwrap_or(t)
}

/// A kind of deadline, and what happens when it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Deadline {
    /// The connection is not ready (versions, SASL) within the handshake
    /// timeout: close with [`TimeoutKind::Handshake`].
    Handshake,
    /// A held request (never written) reached its timeout: it fails with
    /// `RequestError::TimedOut`.
    Held,
    /// A request on the wire reached its timeout. A caller's request fails
    /// with `RequestError::TimedOut` and keeps its slot (its late response
    /// is read and dropped); one of the connection's own (ApiVersions,
    /// SASL) closes it with [`TimeoutKind::InternalRequest`].
    Request,
    /// The oldest slot, timed out or cancelled, stayed unanswered through
    /// the grace period: close with [`TimeoutKind::Unanswered`]. Only the
    /// oldest counts: Kafka answers in order, so nothing behind it can be
    /// answered first (fuzz finding 2).
    Unanswered,
    /// Ready with nothing pending for the idle timeout: close as `Idle`.
    Idle,
    /// The SASL session ran out before re-authentication completed
    /// (KIP-368): close as `SessionExpired`.
    SessionExpiry,
    /// Time to re-authenticate (KIP-368). Only reported while no exchange
    /// runs and a slot is free under `max_in_flight`: a due
    /// re-authentication waiting for a slot waits for a response, not a
    /// time (fuzz finding 3), and starts when one arrives.
    Reauthenticate,
    /// A broker throttle (KIP-219) ends: held requests may go out.
    ThrottleEnd,
    /// The receive buffer has held no bytes, and nothing was sent or
    /// received, for `receive_buffer_release`: give it back to the
    /// allocator, with the empty transmit queue's header arena and the
    /// empty request queues (an idle connection then owns no I/O buffers).
    /// Last in the order: it never closes the connection nor changes what
    /// the others derive from.
    ReleaseBuffer,
}

impl Deadline {
    /// Every kind, in the order [`Connection::handle_timeout`] handles the
    /// ones due at the same call.
    pub(crate) const ALL: [Deadline; 9] = [
        Deadline::Handshake,
        Deadline::Held,
        Deadline::Request,
        Deadline::Unanswered,
        Deadline::Idle,
        Deadline::SessionExpiry,
        Deadline::Reauthenticate,
        Deadline::ThrottleEnd,
        Deadline::ReleaseBuffer,
    ];
}

impl Connection {
    /// When the earliest deadline of `kind` passes, if one is armed: the one
    /// derivation that [`Connection::poll_timeout`] and
    /// [`Connection::handle_timeout`] share. A closed connection has none:
    /// closing clears what every kind derives from.
    // Inlined so that `next_deadline`'s loop over the kinds folds into
    // straight-line code: it runs after every input.
    #[inline(always)]
    pub(crate) fn deadline(&self, kind: Deadline) -> Option<Instant> {
        match kind {
            Deadline::Handshake => self.handshake_deadline,
            Deadline::Held => self.earliest_held(),
            Deadline::Request => self.earliest_waiting_slot(),
            Deadline::Unanswered => self.in_flight.front().and_then(|s| s.abandon_at),
            Deadline::Idle => self.idle_deadline(),
            Deadline::SessionExpiry => self.session.and_then(|s| s.expires_at),
            Deadline::Reauthenticate => self
                .session
                .and_then(|s| s.reauth_at)
                .filter(|_| self.auth.is_none() && self.slot_free()),
            Deadline::ThrottleEnd => self.throttle_until,
            Deadline::ReleaseBuffer => self.release_deadline(),
        }
    }

    /// Calls `f` with every armed deadline, kind by kind in
    /// [`Deadline::ALL`]'s order.
    // Written out rather than looped over `Deadline::ALL` so that each call
    // folds into its kind's derivation (a loop costs 4x the instructions,
    // and poll_timeout runs after every input). The fuzz harness's deadline
    // check (`fuzz_support::DeadlineWatch`, also run by tests/deadlines.rs)
    // compares poll_timeout with the earliest over `Deadline::ALL`.
    #[inline(always)]
    fn each_deadline(&self, mut f: impl FnMut(Deadline, Instant)) {
        if self.is_closed() {
            return;
        }
        let mut visit = |kind: Deadline| {
            if let Some(t) = self.deadline(kind) {
                f(kind, t);
            }
        };
        visit(Deadline::Handshake);
        visit(Deadline::Held);
        visit(Deadline::Request);
        visit(Deadline::Unanswered);
        visit(Deadline::Idle);
        visit(Deadline::SessionExpiry);
        visit(Deadline::Reauthenticate);
        visit(Deadline::ThrottleEnd);
        visit(Deadline::ReleaseBuffer);
    }

    /// The earliest deadline: what [`Connection::poll_timeout`] reports.
    #[inline(always)]
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        self.each_deadline(|_, t| {
            if next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        });
        next
    }

    /// The earliest deadline and its kind (the first in [`Deadline::ALL`]'s
    /// order among equals).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn next_deadline(&self) -> Option<(Instant, Deadline)> {
        let mut next: Option<(Instant, Deadline)> = None;
        self.each_deadline(|kind, t| {
            if next.is_none_or(|(n, _)| t < n) {
                next = Some((t, kind));
            }
        });
        next
    }

    /// The first kind, in [`Deadline::ALL`]'s order, that is due at `now`.
    fn due(&self, now: Instant) -> Option<Deadline> {
        Deadline::ALL
            .into_iter()
            .find(|&kind| self.deadline(kind).is_some_and(|t| t <= now))
    }

    /// Acts on every deadline due at `now`, until none is. Each kind is
    /// acted on at most once per call: its action clears it (or closes the
    /// connection), and no action arms a deadline at or before `now`.
    pub(crate) fn expire_due(&mut self, now: Instant) {
        let mut done = [false; Deadline::ALL.len()];
        while let Some(kind) = self.due(now) {
            let i = kind as usize;
            debug_assert!(!done[i], "{kind:?} is still due after its action");
            if done[i] {
                // Never spin inside the core; the caller's timer will.
                return;
            }
            done[i] = true;
            self.expire(kind, now);
        }
    }

    /// Acts on `kind` if it is due at `now` (a re-authentication that a
    /// response just freed a slot for).
    #[inline(always)]
    pub(crate) fn expire_if_due(&mut self, kind: Deadline, now: Instant) {
        if self.deadline(kind).is_some_and(|t| t <= now) {
            self.expire(kind, now);
        }
    }

    /// What happens when `kind` is due at `now`: the action clears every
    /// deadline of that kind that is due, or closes the connection.
    fn expire(&mut self, kind: Deadline, now: Instant) {
        match kind {
            Deadline::Handshake => {
                let phase = self.phase();
                self.close_with(
                    TimeoutKind::Handshake {
                        after: self.config.handshake_timeout,
                        phase,
                    }
                    .into(),
                );
            }
            Deadline::Held => {
                // Held requests past their deadline never reached the wire.
                let mut i = 0;
                while i < self.held.len() {
                    if self.held[i].deadline <= now {
                        let h = self.held.remove(i).expect("index checked");
                        let after = h.request.timeout.unwrap_or(self.config.request_timeout);
                        self.fail_timed_out(h.id, h.request.api_key, after);
                    } else {
                        i += 1;
                    }
                }
            }
            Deadline::Request => {
                for idx in 0..self.in_flight.len() {
                    let slot = &self.in_flight[idx];
                    if slot.deadline > now || slot.abandon_at.is_some() {
                        continue;
                    }
                    let after = slot.deadline - slot.sent_at;
                    if slot.owner.is_internal() {
                        let api_key = slot.api_key;
                        let reason = TimeoutKind::InternalRequest { api_key, after };
                        return self.close_with(reason.into());
                    }
                    let slot = &mut self.in_flight[idx];
                    slot.abandon_at = Some(later(slot.deadline, self.config.unanswered_grace));
                    if slot.owner == Owner::User {
                        slot.owner = Owner::TimedOut;
                        let (id, api_key) = (slot.id, slot.api_key);
                        self.fail_timed_out(id, api_key, after);
                    }
                }
            }
            Deadline::Unanswered => {
                let head = self.in_flight.front().expect("a slot is abandoned");
                let reason = TimeoutKind::Unanswered {
                    api_key: head.api_key,
                    correlation_id: head.id,
                    waited: now - head.sent_at,
                };
                self.close_with(reason.into());
            }
            Deadline::Idle => {
                let idle_for = now - self.last_activity;
                self.close_with(CloseReason::Idle { idle_for });
            }
            Deadline::SessionExpiry => self.close_with(CloseReason::SessionExpired(
                "before re-authentication completed (KIP-368)".into(),
            )),
            Deadline::Reauthenticate => {
                if let Some(s) = self.session.as_mut() {
                    s.reauth_at = None;
                }
                self.start_auth(true, now);
            }
            Deadline::ThrottleEnd => {
                self.throttle_until = None;
                if let Some(start) = self.throttle_started.take() {
                    self.stats.throttled += now.saturating_duration_since(start);
                }
            }
            Deadline::ReleaseBuffer => {
                self.reader.release();
                self.transmit.release();
                // The queues' allocations too, where empty (a few hundred
                // bytes each, taken again by the next request).
                if self.in_flight.is_empty() {
                    self.in_flight = VecDeque::new();
                }
                if self.held.is_empty() {
                    self.held = VecDeque::new();
                }
                if self.events.is_empty() {
                    self.events = VecDeque::new();
                }
                // Counted from here if a read takes a buffer again without
                // traffic (a read that would block): the next release is a
                // period later, never this instant again.
                self.buffer_released_at = Some(now);
            }
        }
    }

    /// The earliest deadline among the requests on the wire still waited
    /// for (not timed out or cancelled).
    #[inline(always)]
    fn earliest_waiting_slot(&self) -> Option<Instant> {
        let waiting = || {
            (self.in_flight.iter())
                .filter(|s| s.abandon_at.is_none())
                .map(|s| s.deadline)
        };
        let earliest = if self.in_flight_ordered {
            // Deadlines never decrease towards the back: the first slot not
            // given up on has the earliest (one step, not one per slot, in
            // the common case of 64 pipelined requests). The oldest slot,
            // still waited for, is that slot without setting up an iterator
            // over the ring buffer's two halves.
            match self.in_flight.front() {
                None => None,
                Some(s) if s.abandon_at.is_none() => Some(s.deadline),
                Some(_) => waiting().next(),
            }
        } else {
            waiting().min()
        };
        debug_assert_eq!(earliest, waiting().min(), "in_flight_ordered is stale");
        earliest
    }

    /// The earliest deadline among the held requests. Nothing is held
    /// but while a throttle, a handshake or a re-authentication lasts: the
    /// empty case is checked before an iterator is set up.
    #[inline(always)]
    fn earliest_held(&self) -> Option<Instant> {
        if self.held.is_empty() {
            return None;
        }
        self.held.iter().map(|h| h.deadline).min()
    }

    /// When the empty buffers are given back: `receive_buffer_release`
    /// after the last traffic (or the last release, if a read took a buffer
    /// since without receiving anything), while the connection is open and
    /// the receive buffer (no bytes, no open read window) or the transmit
    /// queue (nothing queued) holds memory it does not need.
    #[inline(always)]
    fn release_deadline(&self) -> Option<Instant> {
        let after = self.config.receive_buffer_release?;
        // A closed connection keeps its buffer until it is dropped: closing
        // disarms every kind.
        if self.is_closed() || !(self.reader.releasable() || self.transmit.releasable()) {
            return None;
        }
        let since = match self.buffer_released_at {
            Some(t) if t > self.last_activity => t,
            _ => self.last_activity,
        };
        Some(later(since, after))
    }

    /// When an idle connection is reaped: Ready with nothing in flight,
    /// held or being authenticated, `idle_timeout` after the last activity.
    #[inline(always)]
    fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout?;
        (self.state == State::Ready
            && self.in_flight.is_empty()
            && self.held.is_empty()
            && self.auth.is_none())
        .then(|| later(self.last_activity, idle))
    }
}
