//! TLS-RPT reports: the offline `tlsrpt FILE...` command.

use crate::support;

use std::process::Command;

use support::http::TempDir;
use support::tlsrpt::{mail, ReportBuilder};

/// 2026-11-30T23:59:59Z: the end of the reports' day; the command runs later (now).
const END: i64 = 1_796_083_199;

fn tlsrpt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
        .arg("tlsrpt")
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn summarizes_json_gzip_and_mail_files() {
    let dir = TempDir::new("tlsrpt-cli");
    let google = ReportBuilder::new("Google Inc.", "g-1", "example.com", END, 1000).failure(
        "certificate-expired",
        "mx2.example.com",
        12,
    );
    let microsoft = ReportBuilder::new("Microsoft Corporation", "m-1", "example.com", END, 500);
    let mailru = ReportBuilder::new("Mail.Ru", "r-1", "example.com", END, 40).failure(
        "starttls-not-supported",
        "mx2.example.com",
        3,
    );
    let files = [
        ("google.json.gz", google.gzip()),
        ("microsoft.json", microsoft.json()),
        ("mailru.eml", mailru.mail()),
    ];
    let mut paths = Vec::new();
    for (name, bytes) in &files {
        let p = dir.path(name);
        std::fs::write(&p, bytes).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = tlsrpt(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "google.json.gz: report \"g-1\" from Google Inc., 2026-11-30T00:00:00Z to 2026-11-30T23:59:59Z\n",
        "  example.com (sts): 1012 sessions, 12 failed (1.2%)\n",
        "    certificate-expired                12  mx2.example.com\n",
        "mailru.eml: report \"r-1\" from Mail.Ru,",
        "  example.com                    sts              success                          1540\n",
        "  example.com                    sts              starttls-not-supported              3\n",
        "\n3 reports read, 0 refused\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let mut json_args = vec!["--format", "json"];
    json_args.extend(args.iter().copied());
    let out = tlsrpt(&json_args);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["reports"], 3);
    assert_eq!(v["rejected"], 0);
    assert_eq!(v["files"][0]["reports"][0]["organization"], "Google Inc.");
    assert_eq!(
        v["files"][0]["reports"][0]["policies"][0]["failure_details"][0]["result"],
        "certificate-expired"
    );
    let totals = v["totals"].as_array().unwrap();
    assert!(totals.contains(&serde_json::json!({
        "domain": "example.com", "policy_type": "sts", "result": "success", "sessions": 1540
    })));
}

#[test]
fn refusals_and_unreadable_files_exit_1() {
    let dir = TempDir::new("tlsrpt-cli-bad");
    let report = ReportBuilder::new("Google Inc.", "dup", "example.com", END, 1);
    let a = dir.path("a.json");
    let b = dir.path("b.json.gz");
    let c = dir.path("c.eml");
    let bomb = dir.path("bomb.gz");
    std::fs::write(&a, report.json()).unwrap();
    std::fs::write(&b, report.gzip()).unwrap();
    std::fs::write(&c, mail(b"PK\x03\x04", "application/zip", "r.zip")).unwrap();
    std::fs::write(&bomb, support::tlsrpt::bomb(17)).unwrap();
    let missing = dir.path("missing.json");
    let out = tlsrpt(&[
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
        bomb.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(
        text.contains(
            "b.json.gz: refused: report dup of Google Inc. was already read (duplicate)\n"
        ),
        "{text}"
    );
    assert!(text.contains("c.eml: refused: no TLS-RPT report in the e-mail: no gzip or JSON attachment (the message is multipart/report) (no_report_in_mail)\n"), "{text}");
    assert!(
        text.contains(
            "bomb.gz: refused: the decompressed report is larger than 16777216 bytes (too_large)\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("1 report read, 3 refused\n"), "{text}");
    assert!(err.contains("missing.json"), "{err}");
}

// --- the running exporter: HTTPS listener, maildir, store, findings ------------------------

mod service {
    use super::*;

    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use mta_sts_exporter::scheduler::SchedulerSettings;
    use mta_sts_exporter::service::{Service, ServiceOptions};
    use support::certs::Validity;
    use support::http::{get, sample};
    use support::lab::{enforce_policy, Lab};
    use support::smtp::SmtpBehaviour;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends one POST with `content_type` (None: no header) and returns status and body.
    pub async fn post(
        addr: SocketAddr,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: reports.example\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let _ = stream.write_all(body).await;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    }

    async fn lab() -> Lab {
        let builder = Lab::builder();
        let expired = builder
            .ca
            .leaf(&["mx1.broken.test"], Validity::ExpiredDaysAgo(3));
        builder
            .healthy("good.test")
            .record("broken.test", "v=STSv1; id=42;")
            .policy(
                "broken.test",
                support::https::Reply::policy(&enforce_policy(&[
                    "mx1.broken.test",
                    "mx2.broken.test",
                ])),
            )
            .mx(
                "broken.test",
                10,
                "mx1.broken.test",
                Some(SmtpBehaviour::serving(&expired)),
            )
            .good_mx("broken.test", 20, "mx2.broken.test")
            .start()
            .await
    }

    fn config(lab: &Lab, dir: &TempDir) -> PathBuf {
        let ca = dir.path("ca.pem");
        std::fs::write(&ca, &lab.ca.cert_pem).unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.path("maildir").join(sub)).unwrap();
        }
        let path = dir.path("config.yml");
        std::fs::write(
            &path,
            format!(
                "global:\n  dns: {{ server: \"{}\", timeout: 500ms, attempts: 1 }}\n  ports: {{ smtp: {}, https: {} }}\n  ip_families: [ipv4]\n  allow_private_targets: true\n  ca_file: {}\n  state_file: {}\ntlsrpt:\n  maildir: {}\n  maildir_interval: 1s\n  top_reporters: 2\n  rate_limit_per_minute: 10\ndomains: [good.test, broken.test]\n",
                lab.dns.addr,
                lab.smtp_port,
                lab.https.addr.port(),
                ca.display(),
                dir.path("state.json").display(),
                dir.path("maildir").display(),
            ),
        )
        .unwrap();
        path
    }

    struct Running {
        service: Service,
        web: SocketAddr,
        reports: SocketAddr,
    }

    async fn start(config: &Path) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let web = listener.local_addr().unwrap();
        let tlsrpt = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let reports = tlsrpt.local_addr().unwrap();
        let options = ServiceOptions {
            scheduler: SchedulerSettings {
                first_check_window: Duration::from_millis(50),
                ..SchedulerSettings::default()
            },
            tlsrpt_listener: Some(Arc::new(tlsrpt)),
            ..ServiceOptions::default()
        };
        let service = Service::start_with_options(config.to_path_buf(), listener, options)
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while get(web, "/-/ready").await.status != 200 {
            assert!(std::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Running {
            service,
            web,
            reports,
        }
    }

    fn codes(report: &serde_json::Value) -> Vec<(String, Option<String>)> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    f["host"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    /// Every counter the first run leaves, checked again after the restart.
    fn assert_counts(m: &str) {
        let expect = [
            ("mta_sts_tlsrpt_sessions_total{domain=\"good.test\",policy_type=\"sts\",result=\"success\"}", 1040.0),
            ("mta_sts_tlsrpt_sessions_total{domain=\"good.test\",policy_type=\"sts\",result=\"certificate-expired\"}", 12.0),
            ("mta_sts_tlsrpt_sessions_total{domain=\"good.test\",policy_type=\"sts\",result=\"starttls-not-supported\"}", 3.0),
            ("mta_sts_tlsrpt_sessions_total{domain=\"broken.test\",policy_type=\"sts\",result=\"success\"}", 500.0),
            ("mta_sts_tlsrpt_sessions_total{domain=\"broken.test\",policy_type=\"tlsa\",result=\"success\"}", 20.0),
            ("mta_sts_tlsrpt_reports_total{domain=\"good.test\",reporter=\"Google Inc.\"}", 1.0),
            ("mta_sts_tlsrpt_reports_total{domain=\"broken.test\",reporter=\"Microsoft Corporation\"}", 1.0),
            ("mta_sts_tlsrpt_reports_total{domain=\"good.test\",reporter=\"other\"}", 1.0),
            ("mta_sts_tlsrpt_rejected_reports_total{reason=\"duplicate\"}", 1.0),
            ("mta_sts_tlsrpt_rejected_reports_total{reason=\"unknown_domain\"}", 1.0),
            ("mta_sts_tlsrpt_rejected_reports_total{reason=\"too_large\"}", 2.0),
            ("mta_sts_tlsrpt_rejected_reports_total{reason=\"unsupported_media_type\"}", 1.0),
            ("mta_sts_tlsrpt_rejected_reports_total{reason=\"invalid_json\"}", 3.0),
            ("mta_sts_tlsrpt_rejected_reports_total{reason=\"rate_limited\"}", 1.0),
            ("mta_sts_tlsrpt_rejected_reports_total{reason=\"no_report_in_mail\"}", 1.0),
            ("mta_sts_tlsrpt_rejected_reports_total{reason=\"invalid_report\"}", 0.0),
        ];
        for (series, value) in expect {
            assert_eq!(sample(m, series), Some(value), "{series}\n{m}");
        }
        assert!(!m.contains("stranger.example"), "a stranger made series");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_posted_and_mailed_are_counted_refused_and_kept_across_restarts() {
        let lab = lab().await;
        let dir = TempDir::new("tlsrpt-service");
        let config = config(&lab, &dir);
        let end = mta_sts_exporter::clock::unix_now() - 3_600;
        let run = start(&config).await;
        let r = run.reports;

        // Google: failures on mx1.good.test, which our probe sees valid.
        let google = ReportBuilder::new("Google Inc.", "g-1", "good.test", end, 1000).failure(
            "certificate-expired",
            "mx1.good.test",
            12,
        );
        let (status, body) = post(
            r,
            "/tlsrpt",
            Some("application/tlsrpt+gzip"),
            &google.gzip(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body, r#"{"accepted":1,"domains":["good.test"]}"#);
        // The same report re-sent: success, so the sender stops, counted as a duplicate.
        let (status, _) = post(
            r,
            "/tlsrpt/v1",
            Some("application/tlsrpt+gzip"),
            &google.gzip(),
        )
        .await;
        assert_eq!(status, 200);
        // Microsoft: only successes for broken.test, whose mx1 our probe sees expired; a
        // tlsa policy for the same domain in the same report, and one for a stranger.
        let microsoft = ReportBuilder::new("Microsoft Corporation", "m-1", "broken.test", end, 500)
            .policy("tlsa", "broken.test", 20)
            .policy("sts", "stranger.example", 99);
        let (status, _) = post(
            r,
            "/tlsrpt",
            Some("application/tlsrpt+json; charset=utf-8"),
            &microsoft.json(),
        )
        .await;
        assert_eq!(status, 201);
        // Refused: a stranger's report, a bomb, a wrong media type, not JSON, too large as sent.
        let stranger = ReportBuilder::new("Spammer", "s-1", "stranger.example", end, 1);
        let (status, body) = post(
            r,
            "/tlsrpt",
            Some("application/tlsrpt+json"),
            &stranger.json(),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("unknown_domain"), "{body}");
        let (status, body) = post(
            r,
            "/tlsrpt",
            Some("application/tlsrpt+gzip"),
            &support::tlsrpt::bomb(17),
        )
        .await;
        assert_eq!(status, 413, "{body}");
        let (status, _) = post(r, "/tlsrpt", Some("text/plain"), b"{}").await;
        assert_eq!(status, 415);
        let (status, body) = post(
            r,
            "/tlsrpt",
            Some("application/tlsrpt+json"),
            b"{\"organization-name\": ",
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let (status, _) = post(
            r,
            "/tlsrpt",
            Some("application/tlsrpt+json"),
            &vec![b'{'; (4 << 20) + 1],
        )
        .await;
        assert_eq!(status, 413);
        // Not the report path or not a post: never counted.
        assert_eq!(
            post(r, "/metrics", Some("application/tlsrpt+json"), b"{}")
                .await
                .0,
            404
        );
        assert_eq!(get(r, "/tlsrpt").await.status, 405);
        // A flood: the limit is 10 a minute from one address (8 posted so far).
        assert_eq!(
            post(r, "/tlsrpt", Some("application/tlsrpt+json"), b"x")
                .await
                .0,
            400
        );
        assert_eq!(
            post(r, "/tlsrpt", Some("application/tlsrpt+json"), b"x")
                .await
                .0,
            400
        );
        assert_eq!(
            post(r, "/tlsrpt", Some("application/tlsrpt+json"), b"x")
                .await
                .0,
            429
        );

        // Mail: a Mail.Ru report (third reporter: beyond top_reporters 2, so `other`) and a
        // mail without one.
        let mailru = ReportBuilder::new("Mail.Ru", "r-1", "good.test", end, 40).failure(
            "starttls-not-supported",
            "mx1.good.test",
            3,
        );
        std::fs::write(dir.path("maildir/new/1764000000.M1P1.host"), mailru.mail()).unwrap();
        std::fs::write(
            dir.path("maildir/new/1764000001.M2P1.host"),
            b"From: a@b\r\nSubject: hi\r\n\r\nhello\r\n",
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::fs::read_dir(dir.path("maildir/new")).unwrap().count() > 0 {
            assert!(std::time::Instant::now() < deadline, "maildir not read");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(dir.path("maildir/cur/1764000000.M1P1.host:2,S").exists());
        assert!(dir.path("maildir/quarantine/1764000001.M2P1.host").exists());

        let m = get(run.web, "/metrics").await.body;
        assert_counts(&m);
        for name in support::documented_metrics()
            .iter()
            .filter(|n| n.starts_with("mta_sts_tlsrpt_") && n.as_str() != "mta_sts_tlsrpt_valid")
        {
            assert!(
                m.lines().any(|l| l.starts_with(name.as_str())),
                "{name} not produced"
            );
        }
        let api = get(run.web, "/api/v1/tlsrpt/good.test").await;
        assert_eq!(api.status, 200);
        let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
        assert_eq!(v["reports"].as_array().unwrap().len(), 2);
        assert_eq!(v["reports"][0]["organization"], "Mail.Ru");
        assert_eq!(
            get(run.web, "/api/v1/tlsrpt/stranger.example").await.status,
            404
        );
        run.service.shutdown().await;

        // Restart: the counts come back from the state file, and the first checks compare
        // the stored reports with what the probes see.
        let run = start(&config).await;
        let m = get(run.web, "/metrics").await.body;
        assert_counts(&m);
        let good: serde_json::Value =
            serde_json::from_str(&get(run.web, "/api/v1/domains/good.test").await.body).unwrap();
        assert!(
            codes(&good).contains(&(
                "tlsrpt_reported_failure_unconfirmed".into(),
                Some("mx1.good.test".into())
            )),
            "{:?}",
            codes(&good)
        );
        let broken: serde_json::Value =
            serde_json::from_str(&get(run.web, "/api/v1/domains/broken.test").await.body).unwrap();
        assert!(
            codes(&broken).contains(&(
                "tlsrpt_probe_fault_unreported".into(),
                Some("mx1.broken.test".into())
            )),
            "{:?}",
            codes(&broken)
        );
        assert!(m.contains("mta_sts_finding{domain=\"good.test\",code=\"tlsrpt_reported_failure_unconfirmed\",severity=\"warning\"} 1"), "{m}");
        // A duplicate after the restart is still a duplicate.
        assert_eq!(
            post(
                run.reports,
                "/tlsrpt",
                Some("application/tlsrpt+gzip"),
                &google.gzip()
            )
            .await
            .0,
            200
        );
        run.service.shutdown().await;
    }
}
