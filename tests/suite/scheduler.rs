//! The scheduler and the probe cache under paused time: once per interval, spread across it,
//! bounded concurrency, shared MX probed once per TTL, politeness per address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mta_sts_exporter::finding::Code;
use mta_sts_exporter::probe::cache::{ProbeCache, Unfinished, QUEUE_CEILING};
use mta_sts_exporter::probe::health::HealthSettings;
use mta_sts_exporter::probe::smtp::{SmtpOutcome, SmtpProbe};
use mta_sts_exporter::report::{DomainReport, PolicyStatus, RecordStatus};
use mta_sts_exporter::scheduler::{self, CheckFn, ReportSink, SchedulerSettings, Target};
use tokio::time::Instant;

#[derive(Default)]
struct Recorder {
    starts: Mutex<HashMap<String, Vec<Duration>>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

fn fake_check(
    rec: Arc<Recorder>,
    origin: Instant,
    work: Duration,
    failing: &'static [&'static str],
) -> CheckFn {
    Arc::new(move |domain: String| {
        let rec = rec.clone();
        Box::pin(async move {
            rec.starts
                .lock()
                .unwrap()
                .entry(domain.clone())
                .or_default()
                .push(origin.elapsed());
            let now = rec.running.fetch_add(1, Ordering::SeqCst) + 1;
            rec.max_running.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(work).await;
            rec.running.fetch_sub(1, Ordering::SeqCst);
            let mut report = DomainReport::skeleton(&domain);
            if failing.contains(&domain.as_str()) {
                report.record.status = RecordStatus::Valid;
                report.policy.status = PolicyStatus::Unavailable;
            }
            report
        })
    })
}

fn targets(n: usize, interval: Duration) -> Vec<Target> {
    (0..n)
        .map(|i| Target {
            domain: format!("d{i}.example.test"),
            interval,
        })
        .collect()
}

fn null_sink() -> ReportSink {
    Arc::new(|_| {})
}

#[tokio::test(start_paused = true)]
async fn each_domain_once_per_interval_spread_across_it() {
    let origin = Instant::now();
    let rec = Arc::new(Recorder::default());
    let interval = Duration::from_secs(3600);
    let n = 200;
    let settings = SchedulerSettings {
        concurrency: 1000,
        first_check_window: Duration::from_secs(60),
        ..SchedulerSettings::default()
    };
    let (handle, task) = scheduler::spawn(
        targets(n, interval),
        fake_check(rec.clone(), origin, Duration::from_millis(10), &[]),
        null_sink(),
        settings,
    );
    // first pass within the first-check window, then ready
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(handle.is_ready());
    assert_eq!(rec.starts.lock().unwrap().len(), n);
    // run three more intervals
    tokio::time::sleep(interval * 3).await;
    handle.shutdown();
    task.await.unwrap();

    let starts = rec.starts.lock().unwrap();
    let mut steady_slots = Vec::new();
    for (domain, times) in starts.iter() {
        // first check in the window, then exactly once per interval
        assert!(times[0] <= Duration::from_secs(60), "{domain}: {times:?}");
        assert!((2..=4).contains(&(times.len() - 1)), "{domain}: {times:?}");
        for pair in times[1..].windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= interval - Duration::from_secs(1)
                    && gap <= interval + Duration::from_secs(1),
                "{domain}: gap {gap:?}"
            );
        }
        steady_slots.push(times[1].as_secs_f64() % interval.as_secs_f64());
    }
    // steady-state checks are spread over the interval: every tenth of it has some
    let mut buckets = [0usize; 10];
    for slot in steady_slots {
        buckets[((slot / interval.as_secs_f64()) * 10.0) as usize % 10] += 1;
    }
    assert!(buckets.iter().all(|b| *b > 0), "uneven spread: {buckets:?}");
    assert!(buckets.iter().all(|b| *b < n / 4), "herd: {buckets:?}");
}

#[tokio::test(start_paused = true)]
async fn concurrency_bound_is_respected() {
    let origin = Instant::now();
    let rec = Arc::new(Recorder::default());
    let settings = SchedulerSettings {
        concurrency: 5,
        first_check_window: Duration::from_millis(1),
        ..SchedulerSettings::default()
    };
    let (handle, task) = scheduler::spawn(
        targets(100, Duration::from_secs(3600)),
        fake_check(rec.clone(), origin, Duration::from_secs(2), &[]),
        null_sink(),
        settings,
    );
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert!(handle.is_ready());
    handle.shutdown();
    task.await.unwrap();
    assert_eq!(rec.max_running.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn failed_fetch_is_retried_with_backoff_not_before_five_minutes() {
    let origin = Instant::now();
    let rec = Arc::new(Recorder::default());
    let settings = SchedulerSettings {
        concurrency: 10,
        first_check_window: Duration::from_millis(1),
        retry_base: Duration::from_secs(1), // raised to the RFC's five minutes
        ..SchedulerSettings::default()
    };
    let failing: &'static [&'static str] = &["d0.example.test"];
    let (handle, task) = scheduler::spawn(
        targets(2, Duration::from_secs(3600)),
        fake_check(rec.clone(), origin, Duration::from_millis(1), failing),
        null_sink(),
        settings,
    );
    tokio::time::sleep(Duration::from_secs(3000)).await;
    handle.shutdown();
    task.await.unwrap();
    let starts = rec.starts.lock().unwrap();
    let retries = &starts["d0.example.test"];
    let gaps: Vec<u64> = retries
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs())
        .collect();
    // retried well before the hour, never more often than every five minutes, backing off
    assert!(retries.len() >= 4, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g >= 300), "{gaps:?}");
    assert!(
        gaps.windows(2).all(|w| w[1] >= w[0] || w[1] < 300 * 2),
        "{gaps:?}"
    );
    assert!(
        starts["d1.example.test"].len() <= 2,
        "healthy domain retried"
    );
}

#[tokio::test(start_paused = true)]
async fn reload_adds_and_drops_domains_and_keeps_schedules() {
    let origin = Instant::now();
    let rec = Arc::new(Recorder::default());
    let reported = Arc::new(Mutex::new(Vec::new()));
    let sink: ReportSink = {
        let reported = reported.clone();
        Arc::new(move |r: DomainReport| reported.lock().unwrap().push(r.domain))
    };
    let settings = SchedulerSettings {
        first_check_window: Duration::from_secs(10),
        ..SchedulerSettings::default()
    };
    let interval = Duration::from_secs(600);
    let (handle, task) = scheduler::spawn(
        targets(3, interval),
        fake_check(rec.clone(), origin, Duration::from_millis(1), &[]),
        sink,
        settings,
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut next = targets(3, interval);
    next.remove(0);
    next.push(Target {
        domain: "new.example.test".into(),
        interval,
    });
    handle.reload(next);
    tokio::time::sleep(interval * 2).await;
    handle.shutdown();
    task.await.unwrap();
    let starts = rec.starts.lock().unwrap();
    assert_eq!(
        starts["d0.example.test"].len(),
        1,
        "removed domain checked again"
    );
    assert!(starts["new.example.test"][0] <= Duration::from_secs(31));
    assert!((2..=3).contains(&starts["d1.example.test"].len()));
}

fn fake_probe(host: &str, address: IpAddr) -> SmtpProbe {
    SmtpProbe {
        host: host.to_string(),
        address,
        greeting: None,
        starttls_offered: Some(true),
        tls: None,
        outcome: SmtpOutcome::Ok,
        duration_seconds: 0.0,
        inferred: None,
    }
}

#[tokio::test(start_paused = true)]
async fn shared_mx_probed_once_per_ttl() {
    let cache = Arc::new(ProbeCache::new(Duration::from_secs(600), 2));
    let probes = Arc::new(AtomicUsize::new(0));
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let run = |cache: Arc<ProbeCache>, probes: Arc<AtomicUsize>| async move {
        cache
            .probe("mx.shared.test", SocketAddr::new(address, 25), || async {
                probes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                fake_probe("mx.shared.test", address)
            })
            .await
    };
    // 100 domains at once: one probe, the rest wait for it
    let all: Vec<_> = (0..100)
        .map(|_| tokio::spawn(run(cache.clone(), probes.clone())))
        .collect();
    for t in all {
        t.await.unwrap();
    }
    assert_eq!(probes.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (99, 1));
    // within the TTL: still cached
    tokio::time::sleep(Duration::from_secs(300)).await;
    run(cache.clone(), probes.clone()).await;
    assert_eq!(probes.load(Ordering::SeqCst), 1);
    // after it: probed again
    tokio::time::sleep(Duration::from_secs(301)).await;
    run(cache.clone(), probes.clone()).await;
    assert_eq!(probes.load(Ordering::SeqCst), 2);
    cache.prune();
    assert_eq!(cache.stats().entries, 1);
}

#[tokio::test(start_paused = true)]
async fn per_address_politeness_bound() {
    // TTL zero: no sharing, but never more than 2 connections at once to one address.
    let cache = Arc::new(ProbeCache::new(Duration::ZERO, 2));
    let running = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (cache, running, max) = (cache.clone(), running.clone(), max.clone());
            tokio::spawn(async move {
                let host = format!("mx{i}.provider.test");
                cache
                    .probe(&host, SocketAddr::new(address, 25), || async {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        fake_probe(&host, address)
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(max.load(Ordering::SeqCst), 2);
}

fn silent_probe(host: &str, address: IpAddr) -> SmtpProbe {
    SmtpProbe {
        starttls_offered: None,
        outcome: SmtpOutcome::Timeout {
            phase: mta_sts_exporter::probe::smtp::SmtpPhase::Greeting,
        },
        duration_seconds: 10.0,
        ..fake_probe(host, address)
    }
}

/// 50 MX names on one tarpit address, probed through the cache: a few real probes, never more
/// than the per-address bound at once, the rest answered from the address's state.
#[tokio::test(start_paused = true)]
async fn a_tarpit_shared_by_many_names_is_answered_from_its_state() {
    let health = HealthSettings {
        after_timeouts: 3,
        hold: Duration::from_secs(300),
    };
    let cache = Arc::new(ProbeCache::with_health(Duration::from_secs(600), 2, health));
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    let target = SocketAddr::new(address, 25);
    let running = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (cache, running, max, probes) =
                (cache.clone(), running.clone(), max.clone(), probes.clone());
            tokio::spawn(async move {
                let host = format!("tenant{i}.mail.provider.test");
                let result = cache
                    .probe(&host, target, || async {
                        probes.fetch_add(1, Ordering::SeqCst);
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        silent_probe(&host, address)
                    })
                    .await;
                (host, result, started.elapsed())
            })
        })
        .collect();
    let mut inferred_names = Vec::new();
    let mut latest = Duration::ZERO;
    for t in tasks {
        let (host, probe, took) = t.await.unwrap();
        latest = latest.max(took);
        assert_eq!(probe.host, host, "each MX name keeps its own report");
        assert_eq!(probe.address, address);
        match &probe.inferred {
            Some(inference) => {
                inferred_names.push(host);
                assert!(inference.from_probes >= 3, "{inference:?}");
                assert_eq!(
                    mta_sts_exporter::stage::transport::smtp_findings(&probe)[0].code,
                    Code::MxUnresponsiveInferred
                );
            }
            None => assert_eq!(
                mta_sts_exporter::stage::transport::smtp_findings(&probe)[0].code,
                Code::SmtpTimeout
            ),
        }
    }
    let inferred = inferred_names.len();
    let probed = probes.load(Ordering::SeqCst);
    assert_eq!(probed + inferred, 50);
    // Two rounds of two reach K = 3 (4 probes), then one canary: at most 5 real probes.
    assert!((4..=5).contains(&probed), "{probed} real probes");
    assert!(max.load(Ordering::SeqCst) <= 2);
    // Without the memory: 50 probes, 2 at a time, 10 s each = 250 s. With it: two rounds and
    // the canary's, 30 s (virtual time).
    assert!(latest <= Duration::from_secs(30), "{latest:?}");
    let stats = cache.stats();
    assert_eq!(stats.unresponsive, 1);
    assert_eq!(stats.inferred, inferred as u64);

    // A new name is the next canary, and gets an answer (the tarpit was fixed): the state
    // clears, and a name whose answer was inferred is probed for real again at once.
    let fixed = cache
        .probe("new.mail.provider.test", target, || async {
            fake_probe("new.mail.provider.test", address)
        })
        .await;
    assert!(fixed.inferred.is_none() && fixed.starttls_ok());
    assert_eq!(cache.stats().unresponsive, 0);
    let again = cache
        .probe(&inferred_names[0], target, || async {
            fake_probe(&inferred_names[0], address)
        })
        .await;
    assert!(again.inferred.is_none() && again.starttls_ok());
}

/// A canary abandoned mid-probe (its check hit the deadline) lets the next request re-test.
#[tokio::test(start_paused = true)]
async fn an_abandoned_canary_is_replaced() {
    let health = HealthSettings {
        after_timeouts: 1,
        hold: Duration::from_secs(300),
    };
    let cache = Arc::new(ProbeCache::with_health(Duration::ZERO, 2, health));
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    let target = SocketAddr::new(address, 25);
    let first = cache
        .probe("a.test", target, || async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            silent_probe("a.test", address)
        })
        .await;
    assert!(first.inferred.is_none());
    // The canary: cut off after a second.
    let cut = tokio::time::timeout(
        Duration::from_secs(1),
        cache.probe("b.test", target, || async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            silent_probe("b.test", address)
        }),
    )
    .await;
    assert!(cut.is_err());
    // Not inferred: it is the new canary, and probes.
    let probed = Arc::new(AtomicUsize::new(0));
    let counter = probed.clone();
    let next = cache
        .probe("c.test", target, || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            silent_probe("c.test", address)
        })
        .await;
    assert_eq!(probed.load(Ordering::SeqCst), 1);
    assert!(next.inferred.is_none());
}

fn slow_probe(
    host: &'static str,
    address: IpAddr,
    secs: u64,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = SmtpProbe> + Send>> {
    move || {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            fake_probe(host, address)
        })
    }
}

/// Waiting for a politeness slot does not count against a check's deadline; probing does.
#[tokio::test(start_paused = true)]
async fn waiting_for_a_politeness_slot_does_not_count_against_the_deadline() {
    let cache = Arc::new(ProbeCache::new(Duration::from_secs(600), 1));
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20));
    let target = SocketAddr::new(address, 25);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(10);
    // A holds the only slot for 100 s, with no deadline.
    let a = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .probe("a.test", target, slow_probe("a.test", address, 100))
                .await
        })
    };
    tokio::task::yield_now().await;
    let run = |host: &'static str, secs: u64, deadline: Instant| {
        let cache = cache.clone();
        tokio::spawn(async move {
            let result = cache
                .probe_before(host, target, deadline, slow_probe(host, address, secs))
                .await;
            (result.map(|p| p.host.clone()), t0.elapsed())
        })
    };
    // B waits 100 s for the slot, then probes 5 s: done at 105 s, long after its 10 s deadline.
    let b = run("b.test", 5, deadline);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // C joins B's probe (same MX name) at 1 s: it waited 99 s of it, so it gets the result.
    let c = run("b.test", 5, t0 + Duration::from_secs(11));
    // D waits behind B too, then its probe would take 50 s: abandoned at 10 s + its wait.
    let d = run("d.test", 50, deadline);
    assert_eq!(a.await.unwrap().host, "a.test");
    let (b, b_at) = b.await.unwrap();
    assert_eq!((b.unwrap(), b_at.as_secs()), ("b.test".to_string(), 105));
    let (c, c_at) = c.await.unwrap();
    assert_eq!((c.unwrap(), c_at.as_secs()), ("b.test".to_string(), 105));
    let (d, d_at) = d.await.unwrap();
    assert_eq!(d, Err(Unfinished::Abandoned));
    // It got its slot at 105 s, having waited 104 s: abandoned at 10 + 104 = 114 s.
    assert_eq!(d_at.as_secs(), 114);
    // A request that joins a probe already running gets no extension.
    let late = cache
        .probe_before(
            "e.test",
            target,
            Instant::now() + Duration::from_secs(1),
            slow_probe("e.test", address, 30),
        )
        .await;
    assert_eq!(late.unwrap_err(), Unfinished::Abandoned);
}

/// The wait itself is bounded: after an hour in line the request gives up, saying how many
/// probes of the address were ahead of it.
#[tokio::test(start_paused = true)]
async fn a_wait_for_a_slot_ends_at_the_queue_ceiling() {
    let cache = Arc::new(ProbeCache::new(Duration::from_secs(600), 1));
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 21));
    let target = SocketAddr::new(address, 25);
    let holder = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .probe("a.test", target, slow_probe("a.test", address, 7_200))
                .await
        })
    };
    tokio::task::yield_now().await;
    let queued = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .probe("b.test", target, slow_probe("b.test", address, 1))
                .await
        })
    };
    tokio::task::yield_now().await;
    let started = Instant::now();
    let result = cache
        .probe_before(
            "c.test",
            target,
            started + Duration::from_secs(10),
            slow_probe("c.test", address, 1),
        )
        .await;
    assert_eq!(result.unwrap_err(), Unfinished::Queued { behind: 2 });
    assert_eq!(started.elapsed(), QUEUE_CEILING);
    holder.abort();
    queued.abort();
}
