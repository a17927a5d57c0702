//! The latest report of every configured domain, and the exporter's own counters. Metrics
//! and the JSON API render from here at request time, so a removed domain vanishes at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::report::{DomainReport, Verdict};

/// What the configuration says about one domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DomainMeta {
    /// Routing labels (team, customer, ...), exported on `mta_sts_domain_info`.
    pub labels: BTreeMap<String, String>,
    pub interval: Duration,
}

/// One configured domain: its configuration and its latest report, if checked yet.
#[derive(Clone, Debug)]
pub struct DomainEntry {
    pub meta: Arc<DomainMeta>,
    pub report: Option<Arc<DomainReport>>,
}

/// Check results by outcome (the `result` label of `mta_sts_exporter_checks_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckResult {
    /// No critical finding.
    Ok,
    /// At least one critical finding.
    Critical,
    /// A lookup failed or the check timed out, so the outcome could not be determined.
    Undetermined,
}

impl CheckResult {
    pub const ALL: [CheckResult; 3] = [
        CheckResult::Ok,
        CheckResult::Critical,
        CheckResult::Undetermined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Ok => "ok",
            CheckResult::Critical => "critical",
            CheckResult::Undetermined => "undetermined",
        }
    }

    pub fn of(report: &DomainReport) -> CheckResult {
        if report.verdict == Verdict::Undetermined {
            CheckResult::Undetermined
        } else if report.has_critical() {
            CheckResult::Critical
        } else {
            CheckResult::Ok
        }
    }
}

/// Buckets of `mta_sts_exporter_check_duration_seconds`.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// A fixed-bucket histogram of check durations. Counts are kept per bucket (not cumulative),
/// as the encoder accumulates them; the last bucket is +Inf.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; DURATION_BUCKETS.len() + 1],
    count: AtomicU64,
    /// Sum in microseconds (atomics hold integers).
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = (seconds.max(0.0) * 1e6) as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// (sum, count, per-bucket counts with upper bounds, the last one +Inf)
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets = DURATION_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.counts)
            .map(|(b, c)| (b, c.load(Ordering::Relaxed)))
            .collect();
        (
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            self.count.load(Ordering::Relaxed),
            buckets,
        )
    }
}

/// Shared between the scheduler (writer) and the HTTP server (readers).
#[derive(Debug, Default)]
pub struct Store {
    domains: RwLock<BTreeMap<String, DomainEntry>>,
    checks: [AtomicU64; 3],
    pub check_duration: Histogram,
    ready: AtomicBool,
    reload_ok: AtomicBool,
    reload_success_timestamp: AtomicI64,
    state_loaded: AtomicBool,
    state_save_errors: AtomicU64,
    state_last_save: AtomicI64,
    /// Whether the exporter itself is blind (resolver, egress), from the finished checks.
    pub self_health: std::sync::Mutex<crate::selfhealth::SelfHealth>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Replaces the configured domain set. Reports of domains that stay are kept; removed
    /// domains disappear with their reports.
    pub fn set_domains(&self, domains: Vec<(String, DomainMeta)>) {
        // Most domains share one configuration (no labels, the default interval): share it.
        let mut shared: HashMap<DomainMeta, Arc<DomainMeta>> = HashMap::new();
        let mut map = write(&self.domains);
        let mut next = BTreeMap::new();
        for (name, meta) in domains {
            let report = map.remove(&name).and_then(|e| e.report);
            let meta = match shared.get(&meta) {
                Some(meta) => Arc::clone(meta),
                None => {
                    let meta = Arc::new(meta);
                    shared.insert(DomainMeta::clone(&meta), Arc::clone(&meta));
                    meta
                }
            };
            next.insert(name, DomainEntry { meta, report });
        }
        *map = next;
    }

    /// Stores a finished check (ignored if the domain is no longer configured) and counts it.
    pub fn record(&self, mut report: DomainReport) {
        report.shrink_to_fit();
        let result = CheckResult::of(&report);
        let index = CheckResult::ALL
            .iter()
            .position(|r| *r == result)
            .unwrap_or(0);
        self.checks[index].fetch_add(1, Ordering::Relaxed);
        self.check_duration.observe(report.duration_seconds);
        let mut map = write(&self.domains);
        if let Some(entry) = map.get_mut(report.domain.as_str()) {
            entry.report = Some(Arc::new(report));
        }
    }

    /// A consistent copy of every entry (cheap: reports are shared).
    pub fn snapshot(&self) -> Vec<(String, DomainEntry)> {
        read(&self.domains)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn get(&self, domain: &str) -> Option<DomainEntry> {
        read(&self.domains).get(domain).cloned()
    }

    pub fn len(&self) -> usize {
        read(&self.domains).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn checks(&self, result: CheckResult) -> u64 {
        let index = CheckResult::ALL
            .iter()
            .position(|r| *r == result)
            .unwrap_or(0);
        self.checks[index].load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Records the outcome of loading the configuration (at start or on reload).
    pub fn set_reload(&self, ok: bool, now_unix: i64) {
        self.reload_ok.store(ok, Ordering::Relaxed);
        if ok {
            self.reload_success_timestamp
                .store(now_unix, Ordering::Relaxed);
        }
    }

    pub fn reload_ok(&self) -> bool {
        self.reload_ok.load(Ordering::Relaxed)
    }

    pub fn reload_success_timestamp(&self) -> i64 {
        self.reload_success_timestamp.load(Ordering::Relaxed)
    }

    pub fn set_state_loaded(&self, loaded: bool) {
        self.state_loaded.store(loaded, Ordering::Relaxed);
    }

    pub fn state_loaded(&self) -> bool {
        self.state_loaded.load(Ordering::Relaxed)
    }

    /// Records one attempt to save the state file.
    pub fn record_state_save(&self, ok: bool, now_unix: i64) {
        if ok {
            self.state_last_save.store(now_unix, Ordering::Relaxed);
        } else {
            self.state_save_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn state_save_errors(&self) -> u64 {
        self.state_save_errors.load(Ordering::Relaxed)
    }

    /// Each way the exporter can be blind, and whether it is now.
    pub fn blindness(&self) -> [(crate::selfhealth::Blindness, bool); 4] {
        let health = self
            .self_health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        crate::selfhealth::Blindness::ALL.map(|cause| (cause, health.is_blind(cause)))
    }

    pub fn state_last_save(&self) -> i64 {
        self.state_last_save.load(Ordering::Relaxed)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_per_bucket_with_an_inf_overflow() {
        let h = Histogram::default();
        for seconds in [0.01, 0.07, 0.07, 3.0, 500.0] {
            h.observe(seconds);
        }
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 5);
        assert!((sum - 503.15).abs() < 1e-6);
        assert_eq!(buckets.iter().map(|(_, c)| c).sum::<u64>(), 5);
        assert_eq!(buckets[0], (0.05, 1));
        assert_eq!(buckets[1], (0.1, 2));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
    }
}
