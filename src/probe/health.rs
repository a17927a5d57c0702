//! Address health memory: which SMTP addresses (address and port) have stopped answering, so
//! that probes of them are answered from what their last probes showed instead of each waiting
//! out the full timeout. Pure: no sockets, no clock; time is passed in.
//!
//! The rule, modelled on Postfix's dead-destination list (docs/design.md, "Unresponsive
//! addresses"): after `after_timeouts` consecutive connect or greeting timeouts at one address,
//! from any MX name, the address is taken for unresponsive. While it is, one probe at a time
//! (the canary) still connects; every other probe is answered from the address's state and
//! marked as inferred. A probe that gets any answer (even a refusal or a 4xx greeting) clears
//! the state. A failed canary renews it; with no probe for `hold`, it is forgotten.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::probe::smtp::SmtpOutcome;

/// When an address is taken for unresponsive, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthSettings {
    /// Consecutive connect or greeting timeouts (from any MX name) after which an address is
    /// taken for unresponsive; 0 turns the memory off (every probe waits its turn and its
    /// timeouts).
    pub after_timeouts: u32,
    /// How long an unresponsive address stays so after its last timed-out probe (each failed
    /// canary renews it); also how long a run of timeouts counts as consecutive.
    pub hold: Duration,
}

/// Postfix's `minimal_backoff_time` (300 s) is how long it stays away from a dead destination.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(300);
/// Three: with the default `per_address_concurrency` of 2, more than one round of probes.
pub const DEFAULT_AFTER_TIMEOUTS: u32 = 3;

impl Default for HealthSettings {
    fn default() -> HealthSettings {
        HealthSettings {
            after_timeouts: DEFAULT_AFTER_TIMEOUTS,
            hold: DEFAULT_HOLD,
        }
    }
}

/// Which kind of silence a probe met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Silence {
    /// The TCP connection never completed (a blackhole, a dropping firewall).
    Connect,
    /// The connection was accepted but no greeting came (a tarpit, an overloaded server).
    Greeting,
}

/// What one probe says about its address's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// Timed out connecting or waiting for the greeting.
    Silent(Silence),
    /// The server answered somehow (refused, greeted, rejected, broke the protocol...).
    Answered,
}

impl Observed {
    pub fn of(outcome: &SmtpOutcome) -> Observed {
        match outcome {
            SmtpOutcome::ConnectTimeout => Observed::Silent(Silence::Connect),
            SmtpOutcome::Timeout {
                phase: crate::probe::smtp::SmtpPhase::Greeting,
            } => Observed::Silent(Silence::Greeting),
            _ => Observed::Answered,
        }
    }
}

/// What to do with a probe request.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Probe: the address is not known to be unresponsive.
    Probe,
    /// Probe: the address is unresponsive and this probe re-tests it. Report its end with
    /// `canary: true`, or [`HealthMemory::canary_abandoned`] if it never ends.
    Canary,
    /// Do not probe: answer from the address's state (a canary is already out).
    Inferred(Unresponsive),
}

/// The state an inferred answer is built from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unresponsive {
    /// Consecutive timed-out probes of the address.
    pub timeouts: u32,
    /// When the first of them started.
    pub first_started: Instant,
    /// When the last of them ended.
    pub last_ended: Instant,
    /// How the last of them timed out.
    pub silence: Silence,
    /// When the address was taken for unresponsive.
    pub since: Instant,
}

/// The memory of one process, keyed by (address, port).
#[derive(Debug, Default)]
pub struct HealthMemory {
    settings: HealthSettings,
    addresses: HashMap<SocketAddr, Entry>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    timeouts: u32,
    first_started: Instant,
    last_ended: Instant,
    silence: Silence,
    since: Option<Instant>,
    /// When the canary now out was admitted.
    canary: Option<Instant>,
}

/// A canary out for longer than this was lost without a word (its task vanished): let another go.
/// Far longer than any probe can last (connect and four SMTP phases, each at most an hour).
const CANARY_LOST_AFTER: Duration = Duration::from_secs(6 * 3_600);

impl HealthMemory {
    pub fn new(settings: HealthSettings) -> HealthMemory {
        HealthMemory {
            settings,
            addresses: HashMap::new(),
        }
    }

    pub fn settings(&self) -> HealthSettings {
        self.settings
    }

    /// Whether a probe of `target` may go ahead now; a `Canary` is counted as out.
    pub fn admit(&mut self, target: SocketAddr, now: Instant) -> Admission {
        let hold = self.settings.hold;
        let Some(entry) = self.addresses.get_mut(&target) else {
            return Admission::Probe;
        };
        let Some(state) = unresponsive(entry, hold, now) else {
            if entry.since.is_some() {
                // Its hold ran out with nobody probing it: forget it, start afresh.
                self.addresses.remove(&target);
            }
            return Admission::Probe;
        };
        match entry.canary {
            Some(out) if now.saturating_duration_since(out) < CANARY_LOST_AFTER => {
                Admission::Inferred(state)
            }
            _ => {
                entry.canary = Some(now);
                Admission::Canary
            }
        }
    }

    /// The answer `admit` would give to a request that could not be the canary: `Some` while
    /// the address is unresponsive and its canary is out. Changes nothing.
    pub fn peek(&self, target: SocketAddr, now: Instant) -> Option<Unresponsive> {
        let entry = self.addresses.get(&target)?;
        let state = unresponsive(entry, self.settings.hold, now)?;
        match entry.canary {
            Some(out) if now.saturating_duration_since(out) < CANARY_LOST_AFTER => Some(state),
            _ => None,
        }
    }

    /// Records how a probe of `target` that ran from `started` to `ended` went.
    pub fn record(
        &mut self,
        target: SocketAddr,
        started: Instant,
        ended: Instant,
        observed: Observed,
        canary: bool,
    ) {
        if self.settings.after_timeouts == 0 {
            return;
        }
        let hold = self.settings.hold;
        let silence = match observed {
            Observed::Answered => {
                self.addresses.remove(&target);
                return;
            }
            Observed::Silent(silence) => silence,
        };
        let entry = self.addresses.entry(target).or_insert(Entry {
            timeouts: 0,
            first_started: started,
            last_ended: ended,
            silence,
            since: None,
            canary: None,
        });
        if canary {
            entry.canary = None;
        }
        // A run of timeouts is consecutive only while each follows the last within `hold`.
        if entry.timeouts > 0 && started.saturating_duration_since(entry.last_ended) >= hold {
            *entry = Entry {
                timeouts: 0,
                first_started: started,
                last_ended: ended,
                silence,
                since: None,
                canary: entry.canary,
            };
        }
        entry.timeouts = entry.timeouts.saturating_add(1);
        entry.first_started = entry.first_started.min(started);
        if ended >= entry.last_ended {
            entry.last_ended = ended;
            entry.silence = silence;
        }
        if entry.since.is_none() && entry.timeouts >= self.settings.after_timeouts {
            entry.since = Some(ended);
        }
    }

    /// The canary of `target` ended without an outcome (its check was abandoned): let the next
    /// request re-test the address.
    pub fn canary_abandoned(&mut self, target: SocketAddr) {
        if let Some(entry) = self.addresses.get_mut(&target) {
            entry.canary = None;
        }
    }

    /// `target`'s state, if it is unresponsive now.
    pub fn state(&self, target: SocketAddr, now: Instant) -> Option<Unresponsive> {
        unresponsive(self.addresses.get(&target)?, self.settings.hold, now)
    }

    /// Addresses unresponsive now.
    pub fn unresponsive_count(&self, now: Instant) -> usize {
        let hold = self.settings.hold;
        self.addresses
            .values()
            .filter(|e| unresponsive(e, hold, now).is_some())
            .count()
    }

    /// Forgets what no longer counts: runs of timeouts older than `hold` with no canary out.
    pub fn prune(&mut self, now: Instant) {
        let hold = self.settings.hold;
        self.addresses.retain(|_, e| {
            e.canary.is_some() || now.saturating_duration_since(e.last_ended) < hold
        });
    }

    /// Addresses remembered (unresponsive or with a run of timeouts under way).
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}

fn unresponsive(entry: &Entry, hold: Duration, now: Instant) -> Option<Unresponsive> {
    let since = entry.since?;
    // A canary out keeps the state alive: it has not been shown to answer yet.
    let live = entry.canary.is_some() || now.saturating_duration_since(entry.last_ended) < hold;
    live.then_some(Unresponsive {
        timeouts: entry.timeouts,
        first_started: entry.first_started,
        last_ended: entry.last_ended,
        silence: entry.silence,
        since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn target(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 25))
    }

    fn memory(after: u32, hold_secs: u64) -> HealthMemory {
        HealthMemory::new(HealthSettings {
            after_timeouts: after,
            hold: Duration::from_secs(hold_secs),
        })
    }

    /// A probe admitted at `at` that timed out after `secs`.
    fn silent(m: &mut HealthMemory, t: SocketAddr, at: Instant, secs: u64, canary: bool) {
        let observed = Observed::Silent(Silence::Greeting);
        m.record(t, at, at + SECOND * secs as u32, observed, canary);
    }

    #[test]
    fn outcomes_are_classified() {
        assert_eq!(
            Observed::of(&SmtpOutcome::ConnectTimeout),
            Observed::Silent(Silence::Connect)
        );
        let greeting = SmtpOutcome::Timeout {
            phase: crate::probe::smtp::SmtpPhase::Greeting,
        };
        assert_eq!(Observed::of(&greeting), Observed::Silent(Silence::Greeting));
        // It greeted, so it answers: a slow EHLO is not a dead address.
        let ehlo = SmtpOutcome::Timeout {
            phase: crate::probe::smtp::SmtpPhase::Ehlo,
        };
        assert_eq!(Observed::of(&ehlo), Observed::Answered);
        assert_eq!(
            Observed::of(&SmtpOutcome::ConnectRefused),
            Observed::Answered
        );
        assert_eq!(Observed::of(&SmtpOutcome::Ok), Observed::Answered);
    }

    #[test]
    fn k_consecutive_timeouts_make_an_address_unresponsive() {
        let t0 = Instant::now();
        let mut m = memory(3, 300);
        let a = target(1);
        for i in 0..2 {
            assert_eq!(m.admit(a, t0 + SECOND * i), Admission::Probe);
            silent(&mut m, a, t0 + SECOND * i, 10, false);
        }
        assert_eq!(m.unresponsive_count(t0 + SECOND * 12), 0);
        assert_eq!(m.admit(a, t0 + SECOND * 12), Admission::Probe);
        silent(&mut m, a, t0 + SECOND * 12, 10, false);
        let now = t0 + SECOND * 22;
        assert_eq!(m.unresponsive_count(now), 1);
        let state = m.state(a, now).unwrap();
        assert_eq!(state.timeouts, 3);
        assert_eq!(state.first_started, t0);
        assert_eq!(state.last_ended, t0 + SECOND * 22);
        assert_eq!(state.since, t0 + SECOND * 22);
        assert_eq!(state.silence, Silence::Greeting);
        // Another address is not affected.
        assert_eq!(m.admit(target(2), now), Admission::Probe);
    }

    #[test]
    fn one_canary_at_a_time_and_the_rest_inferred() {
        let t0 = Instant::now();
        let mut m = memory(2, 300);
        let a = target(1);
        silent(&mut m, a, t0, 10, false);
        silent(&mut m, a, t0, 10, false);
        let now = t0 + SECOND * 11;
        assert_eq!(
            m.peek(a, now),
            None,
            "no canary out yet: someone must re-test"
        );
        assert_eq!(m.admit(a, now), Admission::Canary);
        for i in 0..50 {
            let at = now + SECOND * i;
            let Admission::Inferred(state) = m.admit(a, at) else {
                panic!("probe {i} was not inferred");
            };
            assert_eq!(state.timeouts, 2);
            assert_eq!(m.peek(a, at), Some(state));
        }
        // The canary fails: the state is renewed and the next request is the next canary.
        silent(&mut m, a, now, 10, true);
        let later = now + SECOND * 10;
        assert_eq!(m.state(a, later).unwrap().timeouts, 3);
        assert_eq!(m.admit(a, later), Admission::Canary);
        assert!(matches!(m.admit(a, later), Admission::Inferred(_)));
    }

    #[test]
    fn any_answer_clears_the_state() {
        let t0 = Instant::now();
        let mut m = memory(2, 300);
        let a = target(1);
        silent(&mut m, a, t0, 10, false);
        silent(&mut m, a, t0, 10, false);
        assert_eq!(m.admit(a, t0 + SECOND * 20), Admission::Canary);
        // The canary was refused quickly: the address answers again (a restart).
        m.record(
            a,
            t0 + SECOND * 20,
            t0 + SECOND * 21,
            Observed::Answered,
            true,
        );
        assert_eq!(m.unresponsive_count(t0 + SECOND * 21), 0);
        assert_eq!(m.admit(a, t0 + SECOND * 21), Admission::Probe);
        assert_eq!(m.admit(a, t0 + SECOND * 21), Admission::Probe);
        assert!(m.is_empty());
    }

    #[test]
    fn an_answer_between_timeouts_breaks_the_run() {
        let t0 = Instant::now();
        let mut m = memory(2, 300);
        let a = target(1);
        silent(&mut m, a, t0, 10, false);
        m.record(a, t0, t0 + SECOND, Observed::Answered, false);
        silent(&mut m, a, t0 + SECOND * 20, 10, false);
        assert_eq!(m.unresponsive_count(t0 + SECOND * 30), 0);
        assert_eq!(m.admit(a, t0 + SECOND * 30), Admission::Probe);
    }

    #[test]
    fn the_state_expires_after_hold_without_probes() {
        let t0 = Instant::now();
        let mut m = memory(2, 300);
        let a = target(1);
        silent(&mut m, a, t0, 10, false);
        silent(&mut m, a, t0, 10, false);
        assert!(m.state(a, t0 + SECOND * 309).is_some());
        assert_eq!(m.unresponsive_count(t0 + SECOND * 310), 0);
        // Forgotten: a fresh run is needed to take it for unresponsive again.
        assert_eq!(m.admit(a, t0 + SECOND * 310), Admission::Probe);
        silent(&mut m, a, t0 + SECOND * 310, 10, false);
        assert_eq!(m.unresponsive_count(t0 + SECOND * 320), 0);
    }

    #[test]
    fn timeouts_far_apart_are_not_consecutive() {
        let t0 = Instant::now();
        let mut m = memory(2, 300);
        let a = target(1);
        silent(&mut m, a, t0, 10, false);
        silent(&mut m, a, t0 + SECOND * 400, 10, false);
        assert_eq!(m.unresponsive_count(t0 + SECOND * 410), 0);
        silent(&mut m, a, t0 + SECOND * 410, 10, false);
        let state = m.state(a, t0 + SECOND * 420).unwrap();
        assert_eq!(state.timeouts, 2);
        assert_eq!(state.first_started, t0 + SECOND * 400);
    }

    #[test]
    fn an_abandoned_canary_lets_the_next_request_re_test() {
        let t0 = Instant::now();
        let mut m = memory(1, 300);
        let a = target(1);
        silent(&mut m, a, t0, 10, false);
        assert_eq!(m.admit(a, t0 + SECOND * 10), Admission::Canary);
        m.canary_abandoned(a);
        assert_eq!(m.admit(a, t0 + SECOND * 11), Admission::Canary);
        // A canary that never reports is taken for lost after hours, not kept out forever.
        let much_later = t0 + SECOND * 11 + CANARY_LOST_AFTER;
        assert_eq!(m.admit(a, much_later), Admission::Canary);
    }

    #[test]
    fn a_canary_out_keeps_the_state_past_hold() {
        let t0 = Instant::now();
        let mut m = memory(1, 60);
        let a = target(1);
        silent(&mut m, a, t0, 10, false);
        assert_eq!(m.admit(a, t0 + SECOND * 10), Admission::Canary);
        // The canary takes longer than hold (long timeouts): others are still inferred.
        let now = t0 + SECOND * 100;
        assert!(matches!(m.admit(a, now), Admission::Inferred(_)));
        m.prune(now);
        assert_eq!(m.len(), 1);
        silent(&mut m, a, t0 + SECOND * 10, 100, true);
        m.prune(t0 + SECOND * 200);
        assert!(m.is_empty());
    }

    #[test]
    fn zero_turns_the_memory_off() {
        let t0 = Instant::now();
        let mut m = memory(0, 300);
        let a = target(1);
        for i in 0..10 {
            silent(&mut m, a, t0 + SECOND * i, 1, false);
            assert_eq!(m.admit(a, t0 + SECOND * (i + 1)), Admission::Probe);
        }
        assert!(m.is_empty());
    }

    #[test]
    fn ports_are_separate_addresses() {
        let t0 = Instant::now();
        let mut m = memory(1, 300);
        let a = target(1);
        silent(&mut m, a, t0, 10, false);
        let other_port = SocketAddr::new(a.ip(), 587);
        assert_eq!(m.admit(other_port, t0 + SECOND * 10), Admission::Probe);
        assert_eq!(m.admit(a, t0 + SECOND * 10), Admission::Canary);
    }
}
