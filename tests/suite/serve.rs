//! The exporter service end to end: config file → scheduler → /metrics and the JSON API,
//! against the in-process lab; reload; SIGTERM.

use crate::support;

use std::time::Duration;

use mta_sts_exporter::scheduler::SchedulerSettings;
use mta_sts_exporter::service::Service;
use support::certs::Validity;
use support::documented_metrics;
use support::http::{get, request, sample, TempDir};
use support::https::Reply;
use support::lab::{enforce_policy, Lab};
use support::smtp::SmtpBehaviour;

/// The lab's configuration; `metrics` is the `metrics:` section, if any.
fn config_yaml(lab: &Lab, dir: &TempDir, domains: &[&str]) -> String {
    config_yaml_with(lab, dir, domains, "")
}

fn config_yaml_with(lab: &Lab, dir: &TempDir, domains: &[&str], metrics: &str) -> String {
    let ca = dir.path("ca.pem");
    std::fs::write(&ca, &lab.ca.cert_pem).unwrap();
    let mut yaml = format!(
        "global:\n  interval: 1h\n  concurrency: 8\n  mx_cache_ttl: 10m\n  dns:\n    server: \"{}\"\n    timeout: 500ms\n    attempts: 1\n  timeouts:\n    connect: 2s\n    policy_fetch: 3s\n    smtp: 2s\n  ports:\n    smtp: {}\n    https: {}\n  ip_families: [ipv4]\n  allow_private_targets: true\n  ca_file: {}\ndomains:\n",
        lab.dns.addr,
        lab.smtp_port,
        lab.https.addr.port(),
        ca.display()
    );
    yaml.insert_str(0, metrics);
    for d in domains {
        if *d == "good.test" {
            yaml.push_str(
                "  - name: good.test\n    labels: { team: mail }\n    expect: { mode: enforce }\n",
            );
        } else if *d == "uncovered.test" {
            yaml.push_str("  - name: uncovered.test\n    expect: { mode: testing }\n");
        } else {
            yaml.push_str(&format!("  - {d}\n"));
        }
    }
    yaml
}

async fn fleet() -> Lab {
    let builder = Lab::builder();
    let expired = builder
        .ca
        .leaf(&["mx.expired.test"], Validity::ExpiredDaysAgo(2));
    let shared = builder.ca.leaf(&["mx.shared.test"], Validity::Valid);
    builder
        // two healthy domains sharing one MX host
        .record("good.test", "v=STSv1; id=1;")
        .policy(
            "good.test",
            Reply::policy(&enforce_policy(&["mx.shared.test"])),
        )
        .mx(
            "good.test",
            10,
            "mx.shared.test",
            Some(SmtpBehaviour::serving(&shared)),
        )
        .tlsrpt("good.test", "v=TLSRPTv1; rua=mailto:t@good.test")
        .record("good2.test", "v=STSv1; id=1;")
        .policy(
            "good2.test",
            Reply::policy(&enforce_policy(&["mx.shared.test"])),
        )
        .dns(|d| d.mx("good2.test", 10, "mx.shared.test"))
        .tlsrpt("good2.test", "v=TLSRPTv1; rua=mailto:t@good2.test")
        // a second MX the policy does not cover
        .record("uncovered.test", "v=STSv1; id=1;")
        .policy(
            "uncovered.test",
            Reply::policy(&enforce_policy(&["mx1.uncovered.test"])),
        )
        .good_mx("uncovered.test", 10, "mx1.uncovered.test")
        .good_mx("uncovered.test", 20, "mx2.uncovered.test")
        // an expired MX certificate
        .record("expired.test", "v=STSv1; id=1;")
        .policy(
            "expired.test",
            Reply::policy(&enforce_policy(&["mx.expired.test"])),
        )
        .mx(
            "expired.test",
            10,
            "mx.expired.test",
            Some(SmtpBehaviour::serving(&expired)),
        )
        // no policy at all
        .good_mx("nopolicy.test", 10, "mx.nopolicy.test")
        // added later by a reload
        .healthy("added.test")
        .start()
        .await
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn quick() -> SchedulerSettings {
    SchedulerSettings {
        first_check_window: Duration::from_millis(300),
        ..SchedulerSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_metrics_api_and_reloads() {
    let lab = fleet().await;
    let dir = TempDir::new("serve");
    let config = dir.path("config.yml");
    let initial = [
        "good.test",
        "good2.test",
        "uncovered.test",
        "expired.test",
        "nopolicy.test",
    ];
    // Every family, so every documented one can be seen end to end; the reload below goes back
    // to the default set.
    let detailed = "metrics:\n  include: [detailed]\n";
    std::fs::write(&config, config_yaml_with(&lab, &dir, &initial, detailed)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Service::start_with(config.clone(), listener, quick())
        .await
        .unwrap();

    assert_eq!(get(addr, "/-/healthy").await.status, 200);
    wait_until("readiness", || async {
        get(addr, "/-/ready").await.status == 200
    })
    .await;

    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/plain; version=0.0.4"));
    let m = reply.body;
    // healthy domain, with its configured label
    assert_eq!(
        sample(
            &m,
            "mta_sts_domain_info{domain=\"good.test\",team=\"mail\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "mta_sts_record_valid{domain=\"good.test\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "mta_sts_policy_valid{domain=\"good.test\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "mta_sts_policy_mode{domain=\"good.test\",mode=\"enforce\"}"
        ),
        Some(1.0)
    );
    // one series for the mode in force, none for the others
    assert_eq!(
        sample(
            &m,
            "mta_sts_policy_mode{domain=\"good.test\",mode=\"testing\"}"
        ),
        None
    );
    assert_eq!(
        sample(&m, "mta_sts_policy_max_age_seconds{domain=\"good.test\"}"),
        Some(604800.0)
    );
    assert_eq!(
        sample(&m, "mta_sts_enforce_ready{domain=\"good.test\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "mta_sts_policy_cert_valid{domain=\"good.test\"}"),
        Some(1.0)
    );
    assert!(
        sample(
            &m,
            "mta_sts_policy_cert_not_after_timestamp_seconds{domain=\"good.test\"}"
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        sample(
            &m,
            "mta_sts_mx_covered{domain=\"good.test\",mx=\"mx.shared.test\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "mta_sts_mx_starttls{mx=\"mx.shared.test\",family=\"ipv4\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "mta_sts_mx_cert_valid{mx=\"mx.shared.test\",family=\"ipv4\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "mta_sts_mx_tls_version_info{mx=\"mx.shared.test\",version=\"TLSv1.3\",family=\"ipv4\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "mta_sts_domain_verdict{domain=\"good.test\",verdict=\"enforced_deliverable\"}"
        ),
        Some(1.0)
    );
    // the shared MX was probed once for both domains
    assert_eq!(lab.smtp[0].connections(), 1);
    assert!(
        sample(
            &m,
            "mta_sts_exporter_probe_cache_requests_total{result=\"hit\"}"
        )
        .unwrap()
            >= 1.0
    );
    // MX facts are exported once per MX
    assert_eq!(
        m.matches("mta_sts_mx_starttls{mx=\"mx.shared.test\",family=\"ipv4\"}")
            .count(),
        1
    );
    // uncovered MX
    assert_eq!(
        sample(
            &m,
            "mta_sts_mx_covered{domain=\"uncovered.test\",mx=\"mx2.uncovered.test\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "mta_sts_enforce_ready{domain=\"uncovered.test\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&m, "mta_sts_finding{domain=\"uncovered.test\",code=\"mx_not_covered\",severity=\"critical\"}"), Some(1.0));
    // an operator expectation that does not hold
    assert_eq!(sample(&m, "mta_sts_finding{domain=\"uncovered.test\",code=\"expectation_mode_mismatch\",severity=\"warning\"}"), Some(1.0));
    // expired MX certificate: its expiry is still exported
    let expired_at = sample(
        &m,
        "mta_sts_mx_cert_not_after_timestamp_seconds{mx=\"mx.expired.test\"}",
    )
    .unwrap();
    assert!(expired_at < mta_sts_exporter::clock::unix_now() as f64);
    assert_eq!(
        sample(
            &m,
            "mta_sts_mx_cert_valid{mx=\"mx.expired.test\",family=\"ipv4\"}"
        ),
        Some(0.0)
    );
    assert_eq!(sample(&m, "mta_sts_finding{domain=\"expired.test\",code=\"mx_cert_expired\",severity=\"critical\"}"), Some(1.0));
    // missing policy
    assert_eq!(
        sample(&m, "mta_sts_record_valid{domain=\"nopolicy.test\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "mta_sts_policy_valid{domain=\"nopolicy.test\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&m, "mta_sts_finding{domain=\"nopolicy.test\",code=\"sts_record_missing\",severity=\"warning\"}"), Some(1.0));
    // exporter health
    assert_eq!(sample(&m, "mta_sts_exporter_domains"), Some(5.0));
    assert_eq!(
        sample(&m, "mta_sts_exporter_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(m.contains("# HELP mta_sts_record_valid"));
    // the duration histogram counts each check once, up to +Inf
    let checks = sample(&m, "mta_sts_exporter_checks_total{result=\"ok\"}").unwrap()
        + sample(&m, "mta_sts_exporter_checks_total{result=\"critical\"}").unwrap()
        + sample(&m, "mta_sts_exporter_checks_total{result=\"undetermined\"}").unwrap();
    assert_eq!(
        sample(&m, "mta_sts_exporter_check_duration_seconds_count"),
        Some(checks)
    );
    assert_eq!(
        sample(
            &m,
            "mta_sts_exporter_check_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        Some(checks)
    );
    assert!(m.contains("(from the last scheduled check)"));

    // every documented family is produced, but those that need what this lab does not make:
    // TLS-RPT reports received (tests/suite/tlsrpt.rs checks those; the refusal counter is
    // always there), id-drift history (the golden files of tests/suite/exposition.rs) and
    // domain_sources (tests/suite/inventory.rs)
    const ELSEWHERE: &[&str] = &[
        "mta_sts_tlsrpt_sessions_total",
        "mta_sts_tlsrpt_reports_total",
        "mta_sts_tlsrpt_last_report_timestamp_seconds",
        "mta_sts_cached_policy_risk_until_timestamp_seconds",
        "mta_sts_exporter_domain_source_last_fetch_successful",
        "mta_sts_exporter_domain_source_last_success_timestamp_seconds",
        // only where sender profiles disagree: metrics::tests in src/metrics.rs
        "mta_sts_sender_action",
    ];
    for name in documented_metrics()
        .into_iter()
        .filter(|n| !ELSEWHERE.contains(&n.as_str()))
    {
        assert!(
            m.lines()
                .any(|l| l.starts_with(&name) && !l.starts_with('#')),
            "{name} is documented but not produced"
        );
    }

    // ... and every produced family is documented
    let documented = documented_metrics();
    for line in m.lines().filter(|l| l.starts_with("# HELP ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        let sample = if m.contains(&format!("# TYPE {name} counter")) {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        assert!(
            documented.contains(&sample) || documented.contains(&name.to_string()),
            "{name} is produced but not documented in docs/metrics.md"
        );
    }

    // OpenMetrics by negotiation
    let om = request(
        addr,
        "GET",
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0"),
    )
    .await;
    assert!(om.content_type.starts_with("application/openmetrics-text"));
    assert!(om.body.trim_end().ends_with("# EOF"));

    // JSON API
    let list = get(addr, "/api/v1/domains").await;
    let rows: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 5);
    let one = get(addr, "/api/v1/domains/expired.test").await;
    assert_eq!(one.status, 200);
    let report: serde_json::Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(report["verdict"], "enforced_refused");
    assert!(report["mx"]["hosts"][0]["probes"][0]["tls"]["leaf"]["not_after"].is_i64());
    assert_eq!(get(addr, "/api/v1/domains/unknown.test").await.status, 404);
    assert_eq!(request(addr, "DELETE", "/metrics", None).await.status, 405);

    // the per-MX findings and the probed-MX count of the default set
    assert_eq!(
        sample(
            &m,
            "mta_sts_mx_finding{mx=\"mx.expired.test\",code=\"mx_cert_expired\",family=\"ipv4\"}"
        ),
        Some(1.0)
    );
    assert!(!m.contains("mta_sts_mx_finding{mx=\"mx.shared.test\""));
    assert_eq!(sample(&m, "mta_sts_exporter_mx_hosts"), Some(5.0));

    // reload: good.test removed, added.test added, back to the default metric set
    let next = [
        "good2.test",
        "uncovered.test",
        "expired.test",
        "nopolicy.test",
        "added.test",
    ];
    std::fs::write(&config, config_yaml(&lab, &dir, &next)).unwrap();
    assert_eq!(request(addr, "POST", "/-/reload", None).await.status, 200);
    let m = get(addr, "/metrics").await.body;
    assert!(
        !m.contains("domain=\"good.test\""),
        "removed domain's series remain"
    );
    assert!(
        !m.contains("mta_sts_record_valid"),
        "the reload's default set still exports the detailed families"
    );
    assert!(m.contains("mta_sts_mx_finding{"), "{m}");
    let added = "mta_sts_domain_verdict{domain=\"added.test\",verdict=\"enforced_deliverable\"}";
    wait_until("the added domain's first check", || async {
        let m = get(addr, "/metrics").await.body;
        sample(&m, added) == Some(1.0)
    })
    .await;

    // an invalid file keeps the old configuration
    std::fs::write(&config, "global:\n  intervall: 1h\n").unwrap();
    let failed = request(addr, "POST", "/-/reload", None).await;
    assert_eq!(failed.status, 500);
    assert!(failed.body.contains("intervall"), "{}", failed.body);
    let m = get(addr, "/metrics").await.body;
    assert_eq!(
        sample(&m, "mta_sts_exporter_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(sample(&m, "mta_sts_exporter_domains"), Some(5.0));
    assert_eq!(sample(&m, added), Some(1.0));
    assert!(!m.contains("mta_sts_record_valid"));

    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_at_start_is_refused() {
    let dir = TempDir::new("serve-bad");
    let config = dir.path("config.yml");
    std::fs::write(&config, "domains: [\"exa mple.test\"]\n").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Service::start(config, listener)
        .await
        .err()
        .expect("refused");
    assert!(err.contains("exa mple.test"), "{err}");
}

#[test]
fn config_check_flag_and_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = env!("CARGO_BIN_EXE_mta-sts-exporter");
    let dir = TempDir::new("sigterm");
    let config = dir.path("config.yml");
    std::fs::write(
        &config,
        "global:\n  dns: { server: \"127.0.0.1:9\", timeout: 200ms, attempts: 1 }\ndomains: [example.test]\n",
    )
    .unwrap();
    // --config.check
    let out = Command::new(exe)
        .args(["--config.file", config.to_str().unwrap(), "--config.check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid, 1 domains"));
    let bad = dir.path("bad.yml");
    std::fs::write(&bad, "domains: [com]\n").unwrap();
    let out = Command::new(exe)
        .args(["--config.file", bad.to_str().unwrap(), "--config.check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // serve, then SIGTERM: exits cleanly
    let mut child = Command::new(exe)
        .args([
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("msg=listening"))
        .expect("a listening log line");
    assert!(listening.contains("level=info"), "{listening}");
    let status = support::terminate(&mut child, Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
}

/// `/metrics` is streamed in chunks: a fleet whose exposition spans many chunks arrives whole
/// (OpenMetrics' `# EOF` last, every domain present), and scrapers that hang up midway free
/// their encoding slot, so later scrapes are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stream_whole_and_abandoned_scrapes_free_their_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const DOMAINS: usize = 3000;
    let lab = Lab::builder().start().await;
    let dir = TempDir::new("serve-stream");
    let names: Vec<String> = (0..DOMAINS)
        .map(|i| format!("n{i:05}.absent.test"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let config = dir.path("config.yml");
    std::fs::write(&config, config_yaml(&lab, &dir, &refs)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Service::start_with(config, listener, quick())
        .await
        .expect("starts");
    wait_until("the first pass", || async {
        get(addr, "/-/ready").await.status == 200
    })
    .await;

    // Hang up after the first bytes, more times than scrapes may encode at once.
    for _ in 0..6 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut first))
            .await
            .expect("the scrape starts (a leaked encoding turn would hang here)")
            .unwrap();
        assert!(n > 0, "the scrape started");
    }

    let reply = openmetrics_scrape(addr, "a scrape after abandoned ones").await;
    assert!(
        reply.body.len() > 4 * 256 * 1024,
        "spans several chunks: {} bytes",
        reply.body.len()
    );
    assert!(reply.body.ends_with("# EOF\n"), "the exposition is whole");
    for name in &names {
        let series = format!("mta_sts_last_check_timestamp_seconds{{domain=\"{name}\"}}");
        assert!(
            sample(&reply.body, &series).is_some(),
            "{series} missing from the streamed exposition"
        );
    }
    service.shutdown().await;
}

/// Scrapers that send `GET /metrics` and never read hold an encoding turn only until a chunk
/// has waited the app's patience: then they are cut off (their body ends without the final
/// chunk, so it cannot pass for a complete exposition) and the next scrape is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_scrapers_are_cut_off_and_do_not_block_others() {
    use mta_sts_exporter::metrics::{Exposition, Selection, SelectionHandle};
    use mta_sts_exporter::report::DomainReport;
    use mta_sts_exporter::server::{serve, App, ReloadFn};
    use mta_sts_exporter::store::{DomainMeta, Store};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let store = Arc::new(Store::new());
    let names: Vec<String> = (0..30_000).map(|i| format!("d{i:05}.test")).collect();
    store.set_domains(
        names
            .iter()
            .map(|n| (n.clone(), DomainMeta::default()))
            .collect(),
    );
    for name in &names {
        store.record(DomainReport::skeleton(name));
    }
    // Every family, so the exposition is large enough to outlast the stalled scrapers' buffers.
    let every = SelectionHandle::new(Selection::all());
    let registry = Exposition::new(store.clone(), None)
        .with_selection(every)
        .registry();
    let reload: ReloadFn = Arc::new(|| Box::pin(async { Ok(()) }));
    let app = App::new(store, registry, reload).with_scrape_patience(Duration::from_secs(2));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, Arc::new(app), std::future::pending()));

    // As many stalled scrapers as there are encoding turns, on tiny receive buffers.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(
                b"GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: application/openmetrics-text\r\n\r\n",
            )
            .await
            .unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let reply = openmetrics_scrape(addr, "a scrape behind two stalled ones").await;
    assert!(reply.body.ends_with("# EOF\n"), "the exposition is whole");
    assert!(reply.body.len() > 8 << 20, "{} bytes", reply.body.len());

    for mut stream in stalled {
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let read_all = async {
            // Until the server closes (EOF) or resets the connection.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read_all)
            .await
            .expect("the server ended the stalled scrape");
        assert!(
            !raw.ends_with(b"0\r\n\r\n"),
            "a cut-off scrape must not end like a complete chunked body"
        );
        assert!(raw.len() < reply.body.len(), "{} bytes", raw.len());
    }
}

/// One OpenMetrics scrape that must be answered 200 within a minute.
async fn openmetrics_scrape(addr: std::net::SocketAddr, what: &str) -> support::http::HttpReply {
    let scrape = request(
        addr,
        "GET",
        "/metrics",
        Some("application/openmetrics-text"),
    );
    let reply = tokio::time::timeout(Duration::from_secs(60), scrape)
        .await
        .unwrap_or_else(|_| panic!("{what} is not served within a minute"));
    assert_eq!(reply.status, 200, "{what}");
    reply
}
