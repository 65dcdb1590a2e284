//! The race in virtual time: scripted cases, then property checks over
//! random networks (each address connects, fails or stays silent after a
//! random time), simulated by a driver loop written like `dial.rs`'s.

use proptest::prelude::*;

use super::*;

const DELAY: Duration = Duration::from_millis(250);
const TIMEOUT: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn drain(race: &mut Race) -> Vec<Action> {
    std::iter::from_fn(|| race.poll_action()).collect()
}

#[test]
fn the_first_address_starts_at_once_and_the_next_after_the_delay() {
    let t0 = Instant::now();
    let mut race = Race::new(3, DELAY, TIMEOUT, t0);
    assert_eq!(drain(&mut race), [Action::Start(0)]);
    assert_eq!(race.poll_timeout(), Some(t0 + DELAY));
    // Early: nothing yet.
    race.handle_timeout(t0 + ms(100));
    assert_eq!(drain(&mut race), []);
    race.handle_timeout(t0 + DELAY);
    assert_eq!(drain(&mut race), [Action::Start(1)]);
    assert_eq!(race.poll_timeout(), Some(t0 + DELAY * 2));
    // The second connects: the first (silent) is cancelled, the third never starts.
    race.handle_connected(1, t0 + ms(300));
    assert_eq!(
        drain(&mut race),
        [Action::Cancel(0), Action::Finished(Some(1))]
    );
    assert_eq!(race.poll_timeout(), None);
    let states: Vec<_> = race.attempts().iter().map(|a| a.state).collect();
    assert_eq!(states, [AttemptState::Cancelled, AttemptState::Connected]);
    assert_eq!(race.attempts()[1].started, t0 + DELAY);
    assert_eq!(race.attempts()[0].ended, Some(t0 + ms(300)));
}

#[test]
fn a_failure_starts_the_next_address_at_once() {
    let t0 = Instant::now();
    let mut race = Race::new(2, DELAY, TIMEOUT, t0);
    drain(&mut race);
    race.handle_failed(0, t0 + ms(1));
    assert_eq!(drain(&mut race), [Action::Start(1)]);
    assert_eq!(race.attempts()[1].started, t0 + ms(1));
    race.handle_connected(1, t0 + ms(2));
    assert_eq!(drain(&mut race), [Action::Finished(Some(1))]);
}

#[test]
fn a_failure_while_another_is_pending_waits_for_the_delay() {
    let t0 = Instant::now();
    let mut race = Race::new(3, DELAY, TIMEOUT, t0);
    race.handle_timeout(t0 + DELAY);
    assert_eq!(drain(&mut race), [Action::Start(0), Action::Start(1)]);
    // 1 fails, 0 is still pending: the third waits for its turn.
    race.handle_failed(1, t0 + ms(260));
    assert_eq!(drain(&mut race), []);
    race.handle_timeout(t0 + DELAY * 2);
    assert_eq!(drain(&mut race), [Action::Start(2)]);
}

#[test]
fn every_attempt_failing_loses_the_race() {
    let t0 = Instant::now();
    let mut race = Race::new(2, DELAY, TIMEOUT, t0);
    race.handle_failed(0, t0 + ms(1));
    race.handle_failed(1, t0 + ms(2));
    assert_eq!(
        drain(&mut race),
        [Action::Start(0), Action::Start(1), Action::Finished(None)]
    );
    assert!(race.is_finished());
    // Late outcomes change nothing.
    race.handle_connected(1, t0 + ms(3));
    race.handle_timeout(t0 + TIMEOUT * 2);
    assert_eq!(drain(&mut race), []);
}

#[test]
fn silent_addresses_time_out_one_after_another() {
    let t0 = Instant::now();
    let timeout = ms(500);
    let mut race = Race::new(2, DELAY, timeout, t0);
    race.handle_timeout(t0 + DELAY);
    assert_eq!(drain(&mut race), [Action::Start(0), Action::Start(1)]);
    assert_eq!(race.poll_timeout(), Some(t0 + timeout));
    race.handle_timeout(t0 + timeout);
    assert_eq!(drain(&mut race), [Action::Abandon(0)]);
    assert_eq!(race.poll_timeout(), Some(t0 + DELAY + timeout));
    race.handle_timeout(t0 + DELAY + timeout);
    assert_eq!(
        drain(&mut race),
        [Action::Abandon(1), Action::Finished(None)]
    );
    let states: Vec<_> = race.attempts().iter().map(|a| a.state).collect();
    assert_eq!(states, [AttemptState::TimedOut, AttemptState::TimedOut]);
}

#[test]
fn no_address_loses_at_once_and_the_delay_has_a_floor() {
    let t0 = Instant::now();
    let mut race = Race::new(0, DELAY, TIMEOUT, t0);
    assert_eq!(drain(&mut race), [Action::Finished(None)]);
    let mut race = Race::new(2, Duration::ZERO, TIMEOUT, t0);
    drain(&mut race);
    assert_eq!(race.poll_timeout(), Some(t0 + MIN_ATTEMPT_DELAY));
}

/// What an address does when tried: connects or fails after a time, or
/// never answers.
#[derive(Debug, Clone, Copy)]
enum Peer {
    Connects(u64),
    Fails(u64),
    Silent,
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        (0..3_000u64).prop_map(Peer::Connects),
        (0..3_000u64).prop_map(Peer::Fails),
        Just(Peer::Silent),
    ]
}

/// Runs a race over `peers` in virtual time as the driver does, checking
/// the invariants at every step; returns the actions with their times.
fn simulate(peers: &[Peer], delay: Duration, timeout: Duration) -> (Race, Vec<(Instant, Action)>) {
    let t0 = Instant::now();
    let mut now = t0;
    let mut race = Race::new(peers.len(), delay, timeout, now);
    let mut log = Vec::new();
    // Outcome due per running attempt: (when, connected?).
    let mut running: Vec<Option<(Instant, bool)>> = vec![None; peers.len()];
    loop {
        while let Some(action) = race.poll_action() {
            log.push((now, action));
            match action {
                Action::Start(i) => {
                    running[i] = match peers[i] {
                        Peer::Connects(d) => Some((now + ms(d), true)),
                        Peer::Fails(d) => Some((now + ms(d), false)),
                        Peer::Silent => None,
                    };
                }
                Action::Abandon(i) | Action::Cancel(i) => running[i] = None,
                Action::Finished(_) => return (race, log),
            }
        }
        let timer = race.poll_timeout();
        assert!(timer.is_none_or(|t| t >= now), "a timer in the past");
        let next_outcome = running
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|(at, ok)| (at, i, ok)))
            .min();
        match (next_outcome, timer) {
            (Some((at, i, ok)), t) if t.is_none_or(|t| at < t) => {
                now = now.max(at);
                running[i] = None;
                if ok {
                    race.handle_connected(i, now);
                } else {
                    race.handle_failed(i, now);
                }
            }
            (_, Some(t)) => {
                now = t;
                race.handle_timeout(now);
            }
            (_, None) => panic!("the race stalled without a timer: {race:?}"),
        }
    }
}

proptest! {
    #[test]
    fn races_keep_their_invariants(
        peers in prop::collection::vec(peer(), 0..7),
        delay_ms in 0..1_000u64,
        timeout_ms in 1..5_000u64,
    ) {
        let (delay, timeout) = (ms(delay_ms).max(MIN_ATTEMPT_DELAY), ms(timeout_ms));
        let (race, log) = simulate(&peers, ms(delay_ms), timeout);
        let t0 = log.first().map(|(t, _)| *t).unwrap();
        let attempts = race.attempts();

        // Exactly one Finished, last.
        let finished: Vec<_> = log.iter().filter(|(_, a)| matches!(a, Action::Finished(_))).collect();
        prop_assert_eq!(finished.len(), 1);
        let (end, Action::Finished(winner)) = *log.last().unwrap() else { unreachable!() };

        // Addresses start in order, one at a time, never more than the
        // delay apart, and sooner only when nothing else was pending.
        let starts: Vec<_> = log.iter().filter_map(|(t, a)| match a { Action::Start(i) => Some((*t, *i)), _ => None }).collect();
        for (k, (t, i)) in starts.iter().enumerate() {
            prop_assert_eq!(*i, k);
            if k == 0 {
                prop_assert_eq!(*t, t0);
                continue;
            }
            let previous = starts[k - 1].0;
            prop_assert!(*t <= previous + delay, "waited longer than the delay");
            if *t < previous + delay {
                let pending_then = attempts[..k].iter().any(|a| a.ended.is_none_or(|e| e > *t));
                prop_assert!(!pending_then, "started early while another was pending");
            }
        }

        // No attempt outlives its timeout; no pending attempt at the end.
        for a in attempts {
            let ended = a.ended.expect("every attempt ended");
            prop_assert!(ended <= a.started + timeout);
            prop_assert!(a.state != AttemptState::Pending);
            if a.state == AttemptState::TimedOut {
                prop_assert_eq!(ended, a.started + timeout);
            }
        }

        match winner {
            Some(w) => {
                // The winner connected, and is the earliest to have done so.
                prop_assert_eq!(attempts[w].state, AttemptState::Connected);
                prop_assert!(matches!(peers[w], Peer::Connects(_)));
                for (i, a) in attempts.iter().enumerate() {
                    if i != w {
                        prop_assert!(a.state != AttemptState::Connected);
                        if a.state == AttemptState::Cancelled {
                            prop_assert_eq!(a.ended, Some(end));
                        }
                    }
                }
                // Every attempt pending at the win was cancelled, and said so.
                let cancelled = attempts.iter().filter(|a| a.state == AttemptState::Cancelled).count();
                let told = log.iter().filter(|(_, a)| matches!(a, Action::Cancel(_))).count();
                prop_assert_eq!(cancelled, told);
            }
            None => {
                // Lost only after every address was tried and failed.
                prop_assert_eq!(attempts.len(), peers.len());
                prop_assert!(attempts.iter().all(|a| matches!(a.state, AttemptState::Failed | AttemptState::TimedOut)));
            }
        }

        // Liveness: over by the last possible start plus a timeout.
        let n = u32::try_from(peers.len().max(1)).unwrap();
        prop_assert!(end <= t0 + delay * (n - 1) + timeout);
    }

    /// A network with a working address always connects.
    #[test]
    fn a_reachable_address_always_wins(
        peers in prop::collection::vec(peer(), 0..6),
        live in 0..6usize,
        connect_ms in 0..1_000u64,
    ) {
        let mut peers = peers;
        let live = live.min(peers.len());
        peers.insert(live, Peer::Connects(connect_ms));
        // Long timeout: the live address is certainly reached in time.
        let (_, log) = simulate(&peers, DELAY, TIMEOUT * 10);
        prop_assert!(matches!(log.last(), Some((_, Action::Finished(Some(_))))));
    }
}
