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
    std::fs::write(&bomb, support::tlsrpt::gzip(&vec![b' '; 17 << 20])).unwrap();
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
