//! Fleet deduplication of SMTP probes: one probe per (MX name, address) per TTL however many
//! domains share the MX, at most N connections at once to any one address, and no waiting in
//! line for an address the health memory takes for unresponsive ([`crate::probe::health`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

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
    limits: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    health: Mutex<HealthMemory>,
    hits: AtomicU64,
    misses: AtomicU64,
    inferred: AtomicU64,
}

#[derive(Debug, Clone)]
struct Slot {
    created: Instant,
    cell: Arc<OnceCell<Arc<SmtpProbe>>>,
}

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
        let cell = self.slot(host, target);
        let result = cell.get_or_init(|| self.run(host, target, probe)).await;
        result.clone()
    }

    async fn run<F, Fut>(&self, host: &str, target: SocketAddr, probe: F) -> Arc<SmtpProbe>
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
        // A closed semaphore cannot happen (we never close it); probe anyway if it did.
        let _permit = limit.acquire_owned().await.ok();
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

    fn slot(&self, host: &str, target: SocketAddr) -> Arc<OnceCell<Arc<SmtpProbe>>> {
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
                return slot.cell.clone();
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            created: now,
            cell: Arc::new(OnceCell::new()),
        };
        let cell = slot.cell.clone();
        slots.insert(key, slot);
        cell
    }

    fn limit(&self, address: IpAddr) -> Arc<Semaphore> {
        let mut limits = lock(&self.limits);
        limits
            .entry(address)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_address)))
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
