//! Fleet deduplication of SMTP probes: one probe per (MX name, address) per TTL however many
//! domains share the MX, at most N connections at once to any one address, and no waiting in
//! line for an address the health memory takes for unresponsive ([`crate::probe::health`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell, Semaphore};
use tokio::time::{sleep_until, Instant};

use crate::probe::health::{
    Admission, HealthMemory, HealthSettings, Observed, Silence, Unresponsive,
};
use crate::probe::smtp::{Inference, SmtpOutcome, SmtpProbe};

/// Shared by every check of one process.
#[derive(Debug)]
pub struct ProbeCache {
    ttl: Duration,
    per_address: usize,
    slots: Mutex<HashMap<(String, SocketAddr), Slot>>,
    limits: Mutex<HashMap<IpAddr, Arc<Limit>>>,
    health: Mutex<HealthMemory>,
    hits: AtomicU64,
    misses: AtomicU64,
    inferred: AtomicU64,
}

#[derive(Debug, Clone)]
struct Slot {
    created: Instant,
    cell: Arc<OnceCell<Arc<SmtpProbe>>>,
    progress: Arc<Progress>,
}

/// The politeness bound of one address.
#[derive(Debug)]
struct Limit {
    permits: Arc<Semaphore>,
    /// Requests waiting for a permit now.
    queued: std::sync::atomic::AtomicUsize,
}

/// Where a slot's probe is: waiting for its address's permit, or probing since when.
#[derive(Debug, Default)]
struct Progress {
    phase: Mutex<Phase>,
    started: Notify,
}

#[derive(Clone, Copy, Debug, Default)]
enum Phase {
    #[default]
    NotStarted,
    /// Waiting for a permit, behind this many probes of the address (queued or running when
    /// it joined the line).
    Queued {
        behind: usize,
    },
    Probing {
        since: Instant,
    },
}

/// Why [`ProbeCache::probe_before`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfinished {
    /// Still waiting for a politeness slot at the address after [`QUEUE_CEILING`], behind this
    /// many probes of it.
    Queued { behind: usize },
    /// The probe had its slot and was still running at the (extended) deadline.
    Abandoned,
}

/// Longest a request waits in line for a politeness slot before it is given up as
/// [`Unfinished::Queued`]. Waiting does not count against a check's deadline (a domain must
/// not become undetermined because others share its MX address), but it is bounded.
pub const QUEUE_CEILING: Duration = Duration::from_secs(3_600);

/// Hit and miss counts since start, and the health memory now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Misses answered from an unresponsive address's state instead of probed.
    pub inferred: u64,
    pub entries: usize,
    /// Addresses (with port) taken for unresponsive now.
    pub unresponsive: usize,
}

/// An empty (in-flight) slot older than this is taken for abandoned: far longer than a probe
/// can last (connect + four SMTP phases, each bounded by its timeout).
const ABANDONED_AFTER: Duration = Duration::from_secs(3_600);

impl ProbeCache {
    /// `ttl` zero: every request probes (but the per-address bound still holds). The health
    /// memory has its defaults.
    pub fn new(ttl: Duration, per_address: usize) -> ProbeCache {
        ProbeCache::with_health(ttl, per_address, HealthSettings::default())
    }

    pub fn with_health(ttl: Duration, per_address: usize, health: HealthSettings) -> ProbeCache {
        ProbeCache {
            ttl,
            per_address: per_address.max(1),
            slots: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            health: Mutex::new(HealthMemory::new(health)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inferred: AtomicU64::new(0),
        }
    }

    /// The probe result for (`host`, `target`): a fresh cached one, the one in flight, or a
    /// new one made by `probe` once a per-address permit is free; or, while the address is
    /// taken for unresponsive and another probe re-tests it, one inferred from its state
    /// (`SmtpProbe::inferred`). Shared, not copied: every domain's report points at the same
    /// result.
    pub async fn probe<F, Fut>(&self, host: &str, target: SocketAddr, probe: F) -> Arc<SmtpProbe>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SmtpProbe>,
    {
        let (cell, progress) = self.slot(host, target);
        let result = cell
            .get_or_init(|| self.run(host, target, probe, progress))
            .await;
        result.clone()
    }

    /// As [`ProbeCache::probe`], giving up at `deadline`, except that time spent waiting for
    /// the address's politeness slot does not count: the deadline moves back by the time this
    /// request waited for the probe to get its slot (at most [`QUEUE_CEILING`]). A request that
    /// joins a probe already running gets no extension.
    pub async fn probe_before<F, Fut>(
        &self,
        host: &str,
        target: SocketAddr,
        deadline: Instant,
        probe: F,
    ) -> Result<Arc<SmtpProbe>, Unfinished>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SmtpProbe>,
    {
        let joined = Instant::now();
        let ceiling = joined + QUEUE_CEILING;
        let (cell, progress) = self.slot(host, target);
        let work = cell.get_or_init(|| self.run(host, target, probe, progress.clone()));
        tokio::pin!(work);
        let mut until = deadline;
        loop {
            tokio::select! {
                result = &mut work => return Ok(result.clone()),
                _ = sleep_until(until) => {}
            }
            // Registered before the phase is read, so a start in between is not missed.
            let started = progress.started.notified();
            tokio::pin!(started);
            started.as_mut().enable();
            let now = Instant::now();
            match progress.get() {
                Phase::Probing { since } => {
                    let waited = since.saturating_duration_since(joined);
                    let extended = deadline.checked_add(waited).unwrap_or(ceiling);
                    if now >= extended {
                        return Err(Unfinished::Abandoned);
                    }
                    until = extended;
                }
                Phase::Queued { behind } if now >= ceiling => {
                    return Err(Unfinished::Queued { behind })
                }
                Phase::Queued { .. } | Phase::NotStarted => {
                    tokio::select! {
                        result = &mut work => return Ok(result.clone()),
                        _ = &mut started => {}
                        _ = sleep_until(ceiling) => {}
                    }
                    until = Instant::now();
                }
            }
        }
    }

    async fn run<F, Fut>(
        &self,
        host: &str,
        target: SocketAddr,
        probe: F,
        progress: Arc<Progress>,
    ) -> Arc<SmtpProbe>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SmtpProbe>,
    {
        // While a canary is out, answer at once: queueing behind it would only wait for it.
        let known = lock(&self.health).peek(target, Instant::now());
        if let Some(state) = known {
            return Arc::new(self.inferred(host, target, &state));
        }
        let limit = self.limit(target.ip());
        let running = self
            .per_address
            .saturating_sub(limit.permits.available_permits());
        let behind = limit.queued.fetch_add(1, Ordering::SeqCst) + running;
        progress.set(Phase::Queued { behind });
        let in_line = InLine(&limit);
        // A closed semaphore cannot happen (we never close it); probe anyway if it did.
        let _permit = limit.permits.clone().acquire_owned().await.ok();
        drop(in_line);
        progress.set(Phase::Probing {
            since: Instant::now(),
        });
        progress.started.notify_waiters();
        // The address may have been taken for unresponsive while this request waited.
        let admission = lock(&self.health).admit(target, Instant::now());
        let mut canary = match admission {
            Admission::Inferred(state) => return Arc::new(self.inferred(host, target, &state)),
            Admission::Probe => None,
            Admission::Canary => Some(CanaryOut {
                cache: self,
                target,
                reported: false,
            }),
        };
        let started = Instant::now();
        let result = probe().await;
        let observed = Observed::of(&result.outcome);
        lock(&self.health).record(target, started, Instant::now(), observed, canary.is_some());
        if let Some(out) = canary.as_mut() {
            out.reported = true;
        }
        Arc::new(result)
    }

    /// The answer for `host` at `target` from the address's state.
    fn inferred(&self, host: &str, target: SocketAddr, state: &Unresponsive) -> SmtpProbe {
        self.inferred.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let ago = now.saturating_duration_since(state.since).as_secs();
        let since = crate::clock::unix_now().saturating_sub(i64::try_from(ago).unwrap_or(0));
        SmtpProbe {
            host: host.to_string(),
            address: target.ip(),
            greeting: None,
            starttls_offered: None,
            tls: None,
            outcome: match state.silence {
                Silence::Connect => SmtpOutcome::ConnectTimeout,
                Silence::Greeting => SmtpOutcome::Timeout {
                    phase: crate::probe::smtp::SmtpPhase::Greeting,
                },
            },
            duration_seconds: 0.0,
            inferred: Some(Inference {
                from_probes: state.timeouts,
                within_seconds: state
                    .last_ended
                    .saturating_duration_since(state.first_started)
                    .as_secs_f64(),
                since,
            }),
        }
    }

    fn slot(
        &self,
        host: &str,
        target: SocketAddr,
    ) -> (Arc<OnceCell<Arc<SmtpProbe>>>, Arc<Progress>) {
        let now = Instant::now();
        let mut slots = lock(&self.slots);
        let key = (host.to_string(), target);
        if let Some(slot) = slots.get(&key) {
            let fresh = match slot.cell.get() {
                None => true, // in flight
                // An inferred answer lasts only as long as the state it came from.
                Some(probe) if probe.inferred.is_some() => {
                    now.duration_since(slot.created) < self.ttl
                        && lock(&self.health).state(target, now).is_some()
                }
                Some(_) => now.duration_since(slot.created) < self.ttl,
            };
            if fresh {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return (slot.cell.clone(), slot.progress.clone());
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            created: now,
            cell: Arc::new(OnceCell::new()),
            progress: Arc::default(),
        };
        let handles = (slot.cell.clone(), slot.progress.clone());
        slots.insert(key, slot);
        handles
    }

    fn limit(&self, address: IpAddr) -> Arc<Limit> {
        let mut limits = lock(&self.limits);
        limits
            .entry(address)
            .or_insert_with(|| {
                Arc::new(Limit {
                    permits: Arc::new(Semaphore::new(self.per_address)),
                    queued: Default::default(),
                })
            })
            .clone()
    }

    /// Drops expired results and idle per-address limits. Call now and then (the scheduler
    /// does, once per minute) so memory follows the fleet, not its history.
    pub fn prune(&self) {
        let now = Instant::now();
        // A slot still empty long after any probe could have ended belongs to a probe that was
        // abandoned (its check hit its deadline): drop it like an expired one.
        let abandoned = self.ttl.max(ABANDONED_AFTER);
        lock(&self.slots).retain(|_, slot| {
            let age = now.duration_since(slot.created);
            if slot.cell.initialized() {
                age < self.ttl
            } else {
                age < abandoned
            }
        });
        lock(&self.limits).retain(|_, sem| Arc::strong_count(sem) > 1);
        lock(&self.health).prune(now);
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            inferred: self.inferred.load(Ordering::Relaxed),
            entries: lock(&self.slots).len(),
            unresponsive: lock(&self.health).unresponsive_count(Instant::now()),
        }
    }
}

impl Progress {
    fn get(&self) -> Phase {
        *lock(&self.phase)
    }

    fn set(&self, phase: Phase) {
        *lock(&self.phase) = phase;
    }
}

/// A request waiting for its address's permit; counted out when it gets it or gives up.
struct InLine<'a>(&'a Limit);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A canary probe under way; dropped before it reports (its check was abandoned at the
/// deadline), it lets the next request re-test the address.
struct CanaryOut<'a> {
    cache: &'a ProbeCache,
    target: SocketAddr,
    reported: bool,
}

impl Drop for CanaryOut<'_> {
    fn drop(&mut self) {
        if !self.reported {
            lock(&self.cache.health).canary_abandoned(self.target);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        // A panic while holding the lock leaves plain data behind; keep using it.
        Err(poisoned) => poisoned.into_inner(),
    }
}
