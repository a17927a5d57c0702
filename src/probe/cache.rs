//! Fleet deduplication of SMTP probes: one probe per (MX name, address) per TTL however many
//! domains share the MX, and at most N connections at once to any one address.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use crate::probe::smtp::SmtpProbe;

/// Shared by every check of one process.
#[derive(Debug)]
pub struct ProbeCache {
    ttl: Duration,
    per_address: usize,
    slots: Mutex<HashMap<(String, IpAddr), Slot>>,
    limits: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Clone)]
struct Slot {
    created: Instant,
    cell: Arc<OnceCell<Arc<SmtpProbe>>>,
}

/// Hit and miss counts since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

/// An empty (in-flight) slot older than this is taken for abandoned: far longer than a probe
/// can last (connect + four SMTP phases, each bounded by its timeout).
const ABANDONED_AFTER: Duration = Duration::from_secs(3_600);

impl ProbeCache {
    /// `ttl` zero: every request probes (but the per-address bound still holds).
    pub fn new(ttl: Duration, per_address: usize) -> ProbeCache {
        ProbeCache {
            ttl,
            per_address: per_address.max(1),
            slots: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The probe result for (`host`, `address`): a fresh cached one, the one in flight, or a
    /// new one made by `probe` once a per-address permit is free. Shared, not copied: every
    /// domain's report points at the same result.
    pub async fn probe<F, Fut>(&self, host: &str, address: IpAddr, probe: F) -> Arc<SmtpProbe>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SmtpProbe>,
    {
        let cell = self.slot(host, address);
        let limit = self.limit(address);
        let result = cell
            .get_or_init(|| async move {
                // A closed semaphore cannot happen (we never close it); probe anyway if it did.
                let _permit = limit.acquire_owned().await.ok();
                Arc::new(probe().await)
            })
            .await;
        result.clone()
    }

    fn slot(&self, host: &str, address: IpAddr) -> Arc<OnceCell<Arc<SmtpProbe>>> {
        let now = Instant::now();
        let mut slots = lock(&self.slots);
        let key = (host.to_string(), address);
        if let Some(slot) = slots.get(&key) {
            let in_flight = !slot.cell.initialized();
            if in_flight || now.duration_since(slot.created) < self.ttl {
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
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: lock(&self.slots).len(),
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
