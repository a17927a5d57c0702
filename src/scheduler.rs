//! Runs each domain's check once per interval, spread evenly across the interval, with a
//! global concurrency bound, back-off retries for failed fetches, reload and draining shutdown.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use crate::report::{DomainReport, PolicyStatus, RecordStatus};

/// One domain to check and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub domain: String,
    pub interval: Duration,
}

/// Runs one check. Boxed so tests can inject a fake.
pub type CheckFn =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = DomainReport> + Send>> + Send + Sync>;

/// Receives every finished check.
pub type ReportSink = Arc<dyn Fn(DomainReport) + Send + Sync>;

/// How the scheduler spaces checks.
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    /// Checks running at once.
    pub concurrency: usize,
    /// A domain's first check happens within this window after start or after it is added
    /// (never later than its interval), so a new fleet is checked quickly without a herd.
    pub first_check_window: Duration,
    /// After a failed policy fetch, retry after this delay, doubling per failure, never more
    /// often than every 5 minutes (RFC 8461 §3.3) and never later than the regular interval.
    pub retry_base: Duration,
    /// In-flight checks get this long to finish at shutdown.
    pub drain_grace: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> SchedulerSettings {
        SchedulerSettings {
            concurrency: 64,
            first_check_window: Duration::from_secs(60),
            retry_base: Duration::from_secs(300),
            drain_grace: Duration::from_secs(10),
        }
    }
}

/// Controls a running scheduler.
#[derive(Clone)]
pub struct SchedulerHandle {
    targets: mpsc::UnboundedSender<Vec<Target>>,
    shutdown: watch::Sender<bool>,
    ready: watch::Receiver<bool>,
}

impl SchedulerHandle {
    /// Replaces the set of targets: added domains are scheduled, removed ones dropped (the
    /// caller drops their reports), existing ones keep their place in the interval.
    pub fn reload(&self, targets: Vec<Target>) {
        let _ = self.targets.send(targets);
    }

    /// Stops scheduling and drains in-flight checks within the grace period.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// True once every domain of the first configuration has been checked once.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }
}

/// Starts the scheduler. The returned future completes after shutdown and draining.
pub fn spawn(
    targets: Vec<Target>,
    check: CheckFn,
    sink: ReportSink,
    settings: SchedulerSettings,
) -> (SchedulerHandle, tokio::task::JoinHandle<()>) {
    let (targets_tx, targets_rx) = mpsc::unbounded_channel();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = watch::channel(targets.is_empty());
    let handle = SchedulerHandle {
        targets: targets_tx,
        shutdown: shutdown_tx,
        ready: ready_rx,
    };
    let task = tokio::spawn(run(
        targets,
        check,
        sink,
        settings,
        targets_rx,
        shutdown_rx,
        ready_tx,
    ));
    (handle, task)
}

struct Entry {
    interval: Duration,
    /// Offset of this domain's slot within its interval (stable: from a hash of the name).
    phase: f64,
    /// Bumped whenever the entry is rescheduled, so stale queue items are ignored.
    generation: u64,
    running: bool,
    failures: u32,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    targets: Vec<Target>,
    check: CheckFn,
    sink: ReportSink,
    settings: SchedulerSettings,
    mut reloads: mpsc::UnboundedReceiver<Vec<Target>>,
    mut shutdown: watch::Receiver<bool>,
    ready: watch::Sender<bool>,
) {
    let start = Instant::now();
    let semaphore = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    // One shared copy of each name for the entry, its queue items and the first-pass set.
    let mut entries: HashMap<Arc<str>, Entry> = HashMap::new();
    let mut queue: Queue = BinaryHeap::new();
    let mut pending_first: HashSet<Arc<str>> = HashSet::new();
    let mut running: JoinSet<(Arc<str>, DomainReport)> = JoinSet::new();
    let mut generation = 0u64;

    for target in targets {
        let name = add(
            &mut entries,
            &mut queue,
            &mut generation,
            &settings,
            target,
            start,
        );
        pending_first.insert(name);
    }

    loop {
        let next_due = queue.peek().map(|Reverse((due, _, _))| *due);
        tokio::select! {
            _ = async { match next_due { Some(due) => sleep_until(due).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                while let Some(Reverse((due, gen, domain))) = queue.peek().cloned() {
                    if due > now {
                        break;
                    }
                    queue.pop();
                    let Some(entry) = entries.get_mut(&domain) else { continue };
                    if entry.generation != gen || entry.running {
                        continue;
                    }
                    entry.running = true;
                    let check = check.clone();
                    let semaphore = semaphore.clone();
                    running.spawn(async move {
                        // The semaphore is never closed; without a permit we still check.
                        let _permit = semaphore.acquire_owned().await.ok();
                        let report = check(domain.to_string()).await;
                        (domain, report)
                    });
                }
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((domain, report)) = done else { continue };
                let now = Instant::now();
                let failed = fetch_failed(&report);
                if let Some(entry) = entries.get_mut(&domain) {
                    entry.running = false;
                    entry.failures = if failed { entry.failures.saturating_add(1) } else { 0 };
                    generation += 1;
                    entry.generation = generation;
                    let due = next_due_after(start, now, entry, settings.retry_base);
                    queue.push(Reverse((due, generation, domain.clone())));
                    sink(report);
                }
                // A domain removed while its check ran is not reported.
                if pending_first.remove(&domain) && pending_first.is_empty() {
                    pending_first.shrink_to_fit();
                    let _ = ready.send(true);
                }
            }
            Some(new_targets) = reloads.recv() => {
                let now = Instant::now();
                let wanted: HashSet<&str> = new_targets.iter().map(|t| t.domain.as_str()).collect();
                entries.retain(|domain, _| wanted.contains(&**domain));
                pending_first.retain(|domain| wanted.contains(&**domain));
                drop(wanted);
                for target in new_targets {
                    match entries.get_mut(target.domain.as_str()) {
                        Some(entry) => entry.interval = target.interval,
                        None => {
                            add(&mut entries, &mut queue, &mut generation, &settings, target, now);
                        }
                    }
                }
                if pending_first.is_empty() {
                    let _ = ready.send(true);
                }
            }
            _ = shutdown.changed() => break,
        }
    }

    // Drain: let in-flight checks finish within the grace period, then abort the rest.
    let deadline = Instant::now() + settings.drain_grace;
    loop {
        tokio::select! {
            done = running.join_next() => match done {
                Some(Ok((domain, report))) => {
                    if entries.contains_key(&*domain) {
                        sink(report);
                    }
                }
                Some(Err(_)) => {}
                None => break,
            },
            _ = sleep_until(deadline) => {
                running.abort_all();
                break;
            }
        }
    }
}

/// Due time, generation and domain of each scheduled check, earliest first.
type Queue = BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>;

/// Schedules a new domain's first check within the first-check window; returns its name.
fn add(
    entries: &mut HashMap<Arc<str>, Entry>,
    queue: &mut Queue,
    generation: &mut u64,
    settings: &SchedulerSettings,
    target: Target,
    now: Instant,
) -> Arc<str> {
    *generation += 1;
    let phase = phase_of(&target.domain);
    let window = settings.first_check_window.min(target.interval);
    let due = now + window.mul_f64(phase);
    let name: Arc<str> = Arc::from(target.domain);
    queue.push(Reverse((due, *generation, Arc::clone(&name))));
    entries.insert(
        Arc::clone(&name),
        Entry {
            interval: target.interval,
            phase,
            generation: *generation,
            running: false,
            failures: 0,
        },
    );
    name
}

/// The next slot for a domain: its fixed phase within the interval, so the fleet stays spread
/// evenly; sooner after a failed fetch, with exponential back-off.
fn next_due_after(start: Instant, now: Instant, entry: &Entry, retry_base: Duration) -> Instant {
    let interval = entry.interval.max(Duration::from_secs(1));
    let phase = interval.mul_f64(entry.phase);
    let elapsed = now.saturating_duration_since(start);
    // the first slot start + phase + k * interval (k >= 0) after now
    let mut due = if elapsed < phase {
        start + phase
    } else {
        let periods = (elapsed - phase)
            .as_secs_f64()
            .div_euclid(interval.as_secs_f64());
        start + phase + interval.mul_f64(periods + 1.0)
    };
    if due <= now {
        due = now + interval;
    }
    // Right after a first check in the start-up window, skip a slot that comes too soon.
    if due.saturating_duration_since(now) < interval / 2 {
        due += interval;
    }
    if entry.failures > 0 {
        let base = retry_base.max(Duration::from_secs(300));
        let backoff = base.saturating_mul(1u32 << entry.failures.saturating_sub(1).min(16));
        due = due.min(now + backoff.min(interval));
    }
    due
}

/// A fetch failure worth retrying sooner: the record advertises a policy we could not get.
fn fetch_failed(report: &DomainReport) -> bool {
    report.record.status == RecordStatus::LookupFailed
        || (report.record.status == RecordStatus::Valid
            && report.policy.status == PolicyStatus::Unavailable)
}

/// A stable fraction in [0, 1) from the domain name (the FNV-1a hash of its bytes: stable across
/// processes and releases, unlike std's randomly seeded hasher or `str`'s `Hash` impl).
pub fn phase_of(domain: &str) -> f64 {
    (crate::shard::stable_hash(domain.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64
}
