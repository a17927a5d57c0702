//! The `check` command as a person and a script use it: the human report (golden files), JSON,
//! and exit codes.

use crate::support;

use std::process::Command;

use support::certs::Validity;
use support::http::TempDir;
use support::https::Reply;
use support::lab::{enforce_policy, Lab};
use support::smtp::SmtpBehaviour;

async fn lab() -> Lab {
    let builder = Lab::builder();
    let expired = builder
        .ca
        .leaf(&["mx1.broken.test"], Validity::ExpiredDaysAgo(3));
    builder
        .healthy("example.test")
        .record("broken.test", "v=STSv1; id=42;")
        .policy(
            "broken.test",
            Reply::policy(&enforce_policy(&["mx1.broken.test"])),
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

fn check(lab: &Lab, dir: &TempDir, args: &[&str]) -> std::process::Output {
    let ca = dir.path("ca.pem");
    std::fs::write(&ca, &lab.ca.cert_pem).unwrap();
    let dns = lab.dns.addr.to_string();
    let policy_port = lab.https.addr.port().to_string();
    let smtp_port = lab.smtp_port.to_string();
    Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
        .arg("check")
        .args([
            "--dns-server",
            &dns,
            "--dns-timeout",
            "500ms",
            "--dns-attempts",
            "1",
            "--ca-file",
            ca.to_str().unwrap(),
            "--policy-port",
            &policy_port,
            "--smtp-port",
            &smtp_port,
            "--smtp-timeout",
            "2s",
            "--fetch-timeout",
            "3s",
            "--ip-families",
            "ipv4",
            "--allow-private-targets",
        ])
        .args(args)
        .output()
        .unwrap()
}

/// Dates depend on the day the test runs: mask them.
fn mask_dates(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let is_date = bytes.len() - i >= 10
            && bytes[i..i + 4].iter().all(u8::is_ascii_digit)
            && bytes[i + 4] == b'-'
            && bytes[i + 5..i + 7].iter().all(u8::is_ascii_digit)
            && bytes[i + 7] == b'-'
            && bytes[i + 8..i + 10].iter().all(u8::is_ascii_digit);
        if is_date {
            out.push_str("YYYY-MM-DD");
            i += 10;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(5)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!(
            "{name} differs (UPDATE_GOLDEN=1 cargo test --test suite cli:: to accept):\n{}\n--- actual ---\n{actual}",
            diff.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_report_matches_golden_files() {
    let lab = lab().await;
    let dir = TempDir::new("cli-golden");
    let out = check(&lab, &dir, &["example.test"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    golden(
        "check-healthy.txt",
        &mask_dates(&String::from_utf8_lossy(&out.stdout)),
    );

    let out = check(&lab, &dir, &["broken.test"]);
    assert_eq!(out.status.code(), Some(1), "a critical finding exits 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("EXPIRED"), "{text}");
    assert!(text.contains("(3 days ago)"), "{text}");
    golden("check-broken.txt", &mask_dates(&text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_carries_the_documented_codes() {
    let lab = lab().await;
    let dir = TempDir::new("cli-json");
    let out = check(
        &lab,
        &dir,
        &["--format", "json", "example.test", "broken.test"],
    );
    assert_eq!(out.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["domain"], "example.test");
    assert_eq!(reports[0]["verdict"], "enforced_deliverable");
    assert_eq!(reports[0]["findings"].as_array().unwrap().len(), 0);
    let broken = &reports[1];
    assert_eq!(broken["verdict"], "enforced_refused");
    let mut codes: Vec<&str> = broken["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        vec!["mx_cert_expired", "mx_not_covered", "tlsrpt_missing"]
    );
    // the per-address detail is in the JSON, expired certificate included
    let probe = &broken["mx"]["hosts"][0]["probes"][0];
    assert_eq!(probe["outcome"]["kind"], "ok");
    assert_eq!(probe["tls"]["verdict"]["time_valid"], false);
    assert!(
        probe["tls"]["leaf"]["not_after"].as_i64().unwrap() < mta_sts_exporter::check::unix_now()
    );
    let documented =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/findings.md")).unwrap();
    for code in codes {
        assert!(
            documented.contains(&format!("## `{code}`")),
            "{code} not documented"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let exe = env!("CARGO_BIN_EXE_mta-sts-exporter");
    for args in [
        vec!["check"],
        vec!["check", "not a domain"],
        vec!["check", "--dns-server", "nowhere", "example.com"],
        vec!["check", "--ip-families", "ipx", "example.com"],
        vec!["check", "--ca-file", "/nonexistent/ca.pem", "example.com"],
    ] {
        let out = Command::new(exe).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
}
