//! One full pass of the exporter over the fleet simulator, with figures: wall time, domains/s,
//! CPU per domain (the exporter process only: the simulator runs as a child process), SMTP and
//! HTTPS connections made, peak RSS, and `/metrics` encode time and size.
//!
//! ```sh
//! cargo build --release --examples
//! target/release/examples/bench --domains 10000                       # 10k domains checked
//! target/release/examples/bench --domains 10000 --configured 100000   # 100k configured
//! target/release/examples/bench --realistic 10000   # dead addresses vs the politeness floor
//! ```
//!
//! `--realistic N` runs three passes over the realistic mix (`FleetSpec::realistic`: tenants'
//! own MX names on five provider addresses, 1% of domains on one tarpit, 1% on one blackhole,
//! 2% slow policy hosts): with the dead addresses, without them, and with them but the health
//! memory off; each prints its wall time next to the politeness floor computed from its own
//! probes.

// Test and tool code: fakes' items are `pub` for the tests that share them, and a failed
// unwrap is a failed test or a tool's setup error, never a crashed exporter.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/http.rs"]
#[allow(dead_code)]
mod http;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mta_sts_exporter::scheduler::SchedulerSettings;
use mta_sts_exporter::service::{Service, ServiceOptions};

fn cpu_seconds() -> f64 {
    // utime + stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second here)
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() {
    if let Some(position) = std::env::args().position(|a| a == "--realistic") {
        let n = std::env::args()
            .nth(position + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("usage: bench --realistic N");
                std::process::exit(2)
            });
        let repeat = std::env::args()
            .position(|a| a == "--repeat")
            .and_then(|p| std::env::args().nth(p + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1usize);
        realistic(n, repeat.max(1)).await;
        return;
    }
    let mut domains = 10_000usize;
    let mut configured = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: bench [--domains N] [--configured M]");
            std::process::exit(2)
        });
        match arg.as_str() {
            "--domains" => domains = value,
            "--configured" => configured = value,
            _ => {
                eprintln!("usage: bench [--domains N] [--configured M]");
                std::process::exit(2)
            }
        }
    }
    let configured = configured.max(domains);
    let exe = std::env::current_exe().unwrap_or_default();
    let simulator = exe.with_file_name("simulator");
    if !simulator.exists() {
        eprintln!(
            "error: {} not found: cargo build --release --examples",
            simulator.display()
        );
        std::process::exit(2);
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("mta-sts-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sim_started = Instant::now();
    let mut child = Command::new(&simulator)
        .args([
            "--domains",
            &domains.to_string(),
            "--extra-domains",
            &(configured - domains).to_string(),
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("error: cannot start the simulator: {e}");
            std::process::exit(1)
        });
    while !dir.join("ready").exists() {
        if sim_started.elapsed() > Duration::from_secs(600) {
            eprintln!("error: the simulator did not start");
            let _ = child.kill();
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats_before: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("stats.json")).unwrap_or_else(|_| "{}".into()),
    )
    .unwrap_or_default();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let options = ServiceOptions {
        scheduler: SchedulerSettings {
            first_check_window: Duration::from_millis(1),
            ..SchedulerSettings::default()
        },
        ..ServiceOptions::default()
    };
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let service = Service::start_with_options(dir.join("config.yml"), listener, options)
        .await
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1)
        });
    let mut max_fds = 0usize;
    while !service.store.is_ready() {
        let fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count())
            .unwrap_or(0);
        max_fds = max_fds.max(fds);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let rss_after_pass = status_kib("VmRSS:") / 1024;
    let hwm_after_pass = status_kib("VmHWM:") / 1024;

    // /metrics: a few scrapes, timed end to end (encode + loopback transfer). The client reads
    // and discards, so the memory figures below are the exporter's, not the client's copy.
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let bytes = scrape_discarding(addr).await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(bytes);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let hwm_after_scrapes = status_kib("VmHWM:") / 1024;
    let rss_after_scrapes = status_kib("VmRSS:") / 1024;
    // One scrape kept whole, for the completeness figures.
    let body = http::get(addr, "/metrics").await.body;
    // The encode alone (what the scrape spends building the text), in-process.
    let registry =
        mta_sts_exporter::metrics::Exposition::new(service.store.clone(), None).registry();
    let mut encode_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let text = mta_sts_exporter::metrics::encode(&registry, false).unwrap_or_default();
        encode_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(text);
    }
    encode_ms.sort_by(|a, b| a.total_cmp(b));
    let series = series_figures(&service.store);
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the simulator write its stats
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("stats.json")).unwrap_or_else(|_| "{}".into()),
    )
    .unwrap_or_default();
    let delta =
        |key: &str| stats[key].as_u64().unwrap_or(0) - stats_before[key].as_u64().unwrap_or(0);
    let provider_connections: Vec<u64> = stats["providers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["connections"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();

    let checks = sample(&body, "mta_sts_exporter_checks_total");
    let info_lines = body
        .lines()
        .filter(|l| l.starts_with("mta_sts_domain_info{"))
        .count();
    let checked_lines = body
        .lines()
        .filter(|l| l.starts_with("mta_sts_last_check_timestamp_seconds{"))
        .count();
    println!(
        "machine:              {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("domains configured:   {configured}");
    println!("domains simulated:    {domains}");
    println!("checks in the pass:   {checks}");
    println!("wall time of pass:    {wall:.2} s");
    println!("domains/s:            {:.0}", configured as f64 / wall);
    println!(
        "CPU (exporter only):  {cpu:.2} s = {:.3} ms per domain",
        cpu * 1000.0 / configured as f64
    );
    println!(
        "SMTP connections:     {} (probe cache: {} misses, {} hits)",
        delta("smtp_connections"),
        sample(
            &body,
            "mta_sts_exporter_probe_cache_requests_total{result=\"miss\"}"
        ),
        sample(
            &body,
            "mta_sts_exporter_probe_cache_requests_total{result=\"hit\"}"
        )
    );
    println!("shared MX connections: {provider_connections:?} (one per provider address = dedup)");
    println!(
        "HTTPS connections:    {} ({} requests)",
        delta("https_connections"),
        delta("https_requests")
    );
    println!("DNS queries:          {}", delta("dns_queries"));
    println!("open fds (max seen):  {max_fds} (concurrency 256, per-address 4)");
    println!("/metrics complete:    {info_lines} domain_info series, {checked_lines} last_check series, for {configured} configured{}",
        if info_lines == configured && checked_lines == configured { " (complete)" } else { " (INCOMPLETE)" });
    println!("RSS after the pass:   {rss_after_pass} MiB (peak so far {hwm_after_pass} MiB)");
    println!(
        "peak RSS (VmHWM):     {hwm_after_scrapes} MiB incl. 5 scrapes; RSS after them {rss_after_scrapes} MiB"
    );
    println!("/metrics:             {:.1} KiB, {} lines; scrape over HTTP min {:.1} ms, median {:.1} ms, max {:.1} ms",
        body.len() as f64 / 1024.0, body.lines().count(), times[0], times[2], times[4]);
    println!(
        "/metrics encode only: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        encode_ms[0], encode_ms[2], encode_ms[4]
    );

    println!(
        "series (default set): {} in all = {:.2} per configured domain; healthy enforce domains: {:.2} each ({} of them, MX shares included)",
        series.total, series.total_per_domain, series.healthy_per_domain, series.healthy
    );
    println!(
        "series (detailed set): {} in all = {:.2} per configured domain; healthy: {:.2} each; size {:.1} MiB",
        series.detailed_total,
        series.detailed_per_domain,
        series.detailed_healthy_per_domain,
        series.detailed_bytes as f64 / (1024.0 * 1024.0)
    );

    service.shutdown().await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// GET /metrics, reading the reply as it streams in and keeping none of it: bytes received.
async fn scrape_discarding(addr: std::net::SocketAddr) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let request = b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return 0;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}

/// Series counts of the exposition: all domains, and healthy enforce domains alone (verdict
/// enforced_deliverable, no finding), for the default and the detailed set. Per-domain figures
/// leave out the exporter's own series.
struct Series {
    total: usize,
    total_per_domain: f64,
    healthy: usize,
    healthy_per_domain: f64,
    detailed_total: usize,
    detailed_per_domain: f64,
    detailed_healthy_per_domain: f64,
    detailed_bytes: usize,
}

fn series_figures(store: &std::sync::Arc<mta_sts_exporter::store::Store>) -> Series {
    use mta_sts_exporter::metrics::{encode, Exposition, Selection, SelectionHandle};
    use mta_sts_exporter::report::Verdict;
    use mta_sts_exporter::store::Store;
    use std::sync::Arc;

    let render = |store: &Arc<Store>, selection: Selection| {
        let registry = Exposition::new(store.clone(), None)
            .with_selection(SelectionHandle::new(selection))
            .registry();
        encode(&registry, false).unwrap_or_default()
    };
    let count = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("mta_sts_exporter_"))
            .count()
    };
    let entries = store.snapshot();
    let configured = entries.len().max(1) as f64;
    let healthy = Arc::new(Store::new());
    let mut names = Vec::new();
    let mut reports = Vec::new();
    for (name, entry) in &entries {
        if let Some(report) = &entry.report {
            if report.verdict == Verdict::EnforcedDeliverable && report.findings.is_empty() {
                names.push((name.clone(), (*entry.meta).clone()));
                reports.push((**report).clone());
            }
        }
    }
    let healthy_count = names.len();
    healthy.set_domains(names);
    for report in reports {
        healthy.record(report);
    }
    let per_healthy = |n: usize| n as f64 / healthy_count.max(1) as f64;
    let default = Selection::default();
    let all = Selection::all();
    let detailed = render(store, all);
    let total = count(&render(store, default));
    let detailed_total = count(&detailed);
    Series {
        total,
        total_per_domain: total as f64 / configured,
        healthy: healthy_count,
        healthy_per_domain: per_healthy(count(&render(&healthy, default))),
        detailed_total,
        detailed_per_domain: detailed_total as f64 / configured,
        detailed_healthy_per_domain: per_healthy(count(&render(&healthy, all))),
        detailed_bytes: detailed.len(),
    }
}

/// What one pass of the realistic mix showed.
struct PassFigures {
    wall: f64,
    domains: usize,
    undetermined: usize,
    timed_out: usize,
    inferred: usize,
    /// Σ over addresses of probes × median probe time ÷ per-address concurrency.
    floor_sum: f64,
    /// The same for the busiest address alone: no schedule can beat it.
    floor_max: f64,
    busiest: String,
    stats: serde_json::Value,
}

const PER_ADDRESS: f64 = 4.0; // the simulator's per_address_concurrency

/// `repeat` rounds of the three passes, interleaved, so a change in the machine's load (it is
/// shared) spreads over all three.
async fn realistic(domains: usize, repeat: usize) {
    let exe = std::env::current_exe().unwrap_or_default();
    let simulator = exe.with_file_name("simulator");
    if !simulator.exists() {
        eprintln!(
            "error: {} not found: cargo build --release --examples",
            simulator.display()
        );
        std::process::exit(2);
    }
    println!("machine: {} cores; realistic mix, {domains} domains; per-address concurrency 4, concurrency 256, timeouts connect 2s smtp 3s",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    let runs = [
        (
            "with the dead addresses",
            &["--mix", "realistic"][..],
            false,
        ),
        (
            "without them",
            &["--mix", "realistic", "--no-dead"][..],
            false,
        ),
        (
            "dead addresses, health memory off",
            &["--mix", "realistic"][..],
            true,
        ),
    ];
    let mut walls = vec![Vec::new(); runs.len()];
    for round in 0..repeat {
        for (run, (name, args, health_off)) in runs.iter().enumerate() {
            let f = realistic_pass(&simulator, domains, args, *health_off).await;
            walls[run].push(f.wall);
            println!("\n== {name} (round {})", round + 1);
            println!(
                "wall time of pass:     {:.2} s = {:.2} x the busiest address's floor",
                f.wall,
                f.wall / f.floor_max.max(0.001)
            );
            println!(
            "politeness floor:      {:.2} s (sum over addresses of probes x median probe time / 4); busiest address alone {:.2} s ({})",
            f.floor_sum, f.floor_max, f.busiest
        );
            println!(
            "domains: {} checked, {} undetermined ({} with check_timed_out); {} probes inferred",
            f.domains, f.undetermined, f.timed_out, f.inferred
        );
            println!(
                "tarpit connections:    {}  provider max concurrent: {}",
                f.stats["tarpit"], f.stats["providers_max_concurrent"]
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (with, without, off) = (
        median(&mut walls[0]),
        median(&mut walls[1]),
        median(&mut walls[2]),
    );
    println!(
        "\nmedian wall: with {with:.2} s, without {without:.2} s, health memory off {off:.2} s\n\
         ratio with / without dead addresses: {:.2} (target <= 1.3); health memory off / without: {:.2}",
        with / without,
        off / without
    );
}

async fn realistic_pass(
    simulator: &std::path::Path,
    domains: usize,
    args: &[&str],
    health_off: bool,
) -> PassFigures {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "mta-sts-bench-realistic-{}-{}",
        std::process::id(),
        args.len() + usize::from(health_off)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(simulator)
        .args(["--domains", &domains.to_string()])
        .args(args)
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("error: cannot start the simulator: {e}");
            std::process::exit(1)
        });
    let started = Instant::now();
    while !dir.join("ready").exists() {
        if started.elapsed() > Duration::from_secs(600) {
            eprintln!("error: the simulator did not start");
            let _ = child.kill();
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if health_off {
        let config = dir.join("config.yml");
        let text = std::fs::read_to_string(&config).unwrap_or_default();
        let text = text.replacen(
            "global:\n",
            "global:\n  unresponsive_address: { after_timeouts: 0 }\n",
            1,
        );
        let _ = std::fs::write(&config, text);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let options = ServiceOptions {
        scheduler: SchedulerSettings {
            first_check_window: Duration::from_millis(1),
            ..SchedulerSettings::default()
        },
        ..ServiceOptions::default()
    };
    let started = Instant::now();
    let service = Service::start_with_options(dir.join("config.yml"), listener, options)
        .await
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1)
        });
    while !service.store.is_ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    // Real probes per address, each (MX name, address) once (the cache shares them).
    let mut probes: std::collections::HashMap<
        std::net::IpAddr,
        std::collections::HashMap<String, f64>,
    > = std::collections::HashMap::new();
    let (mut undetermined, mut timed_out, mut inferred, mut checked) = (0, 0, 0, 0);
    for (_, entry) in service.store.snapshot() {
        let Some(report) = entry.report else { continue };
        checked += 1;
        if report.verdict == mta_sts_exporter::report::Verdict::Undetermined {
            undetermined += 1;
            if report
                .findings
                .iter()
                .any(|f| f.code == mta_sts_exporter::finding::Code::CheckTimedOut)
            {
                timed_out += 1;
            }
        }
        for host in &report.mx.hosts {
            for probe in &host.probes {
                if probe.inferred.is_some() {
                    inferred += 1;
                    continue;
                }
                probes
                    .entry(probe.address)
                    .or_default()
                    .insert(probe.host.clone(), probe.duration_seconds);
            }
        }
    }
    let mut floor_sum = 0.0;
    let (mut floor_max, mut busiest) = (0.0, String::new());
    for (address, by_name) in &probes {
        let mut times: Vec<f64> = by_name.values().copied().collect();
        times.sort_by(|a, b| a.total_cmp(b));
        let median = times[times.len() / 2];
        let floor = times.len() as f64 * median / PER_ADDRESS;
        floor_sum += floor;
        if floor > floor_max {
            floor_max = floor;
            busiest = format!(
                "{address}: {} probes, median {:.1} ms",
                times.len(),
                median * 1000.0
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the simulator write its stats
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("stats.json")).unwrap_or_else(|_| "{}".into()),
    )
    .unwrap_or_default();
    service.shutdown().await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    PassFigures {
        wall,
        domains: checked,
        undetermined,
        timed_out,
        inferred,
        floor_sum,
        floor_max,
        busiest,
        stats,
    }
}
