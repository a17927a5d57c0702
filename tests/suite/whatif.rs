//! `check DOMAIN --proposed-policy FILE --proposed-mx HOST,...`: a draft judged against the live
//! domain in the in-process lab, with the exit codes a CI job relies on.

use crate::support;

use std::process::{Command, Output};

use support::http::TempDir;
use support::lab::{enforce_policy, Lab};

/// example.test: healthy, its enforce policy covering mx1.example.test only. mx2.example.test
/// is a working MX host that no domain's policy names yet (the MX of spare.test).
async fn lab() -> Lab {
    Lab::builder()
        .healthy("example.test")
        .good_mx("spare.test", 10, "mx2.example.test")
        .start()
        .await
}

fn what_if(lab: &Lab, dir: &TempDir, args: &[&str]) -> Output {
    let ca = dir.path("ca.pem");
    std::fs::write(&ca, &lab.ca.cert_pem).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
        .arg("check")
        .args([
            "--dns-server",
            &lab.dns.addr.to_string(),
            "--dns-timeout",
            "500ms",
            "--dns-attempts",
            "1",
            "--ca-file",
            ca.to_str().unwrap(),
            "--policy-port",
            &lab.https.addr.port().to_string(),
            "--smtp-port",
            &lab.smtp_port.to_string(),
            "--smtp-timeout",
            "2s",
            "--ip-families",
            "ipv4",
            "--allow-private-targets",
        ])
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn draft(dir: &TempDir, name: &str, body: &str) -> String {
    let path = dir.path(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_covering_draft_is_ready_and_says_to_publish_the_file_before_the_id() {
    let lab = lab().await;
    let dir = TempDir::new("whatif-covering");
    let body = enforce_policy(&["mx1.example.test"]).replace("604800", "1209600");
    let file = draft(&dir, "draft.txt", &body);
    let out = what_if(&lab, &dir, &["example.test", "--proposed-policy", &file]);
    let stdout = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("READY: under the draft an enforcing sender delivers to every MX"),
        "{stdout}"
    );
    let publish = stdout
        .find("1. publish the draft at https://mta-sts.example.test")
        .expect(&stdout);
    let id = stdout
        .find("2. then change the id of _mta-sts.example.test (now 20260101T000000)")
        .expect(&stdout);
    assert!(publish < id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_that_misses_an_mx_is_not_ready() {
    let lab = lab().await;
    let dir = TempDir::new("whatif-missing");
    let file = draft(&dir, "draft.txt", &enforce_policy(&["mx9.example.test"]));
    let out = what_if(&lab, &dir, &["example.test", "--proposed-policy", &file]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("NOT READY"), "{stdout}");
    assert!(
        stdout.contains("MX mx1.example.test matches no mx pattern of the draft: an enforcing sender refuses it"),
        "{stdout}"
    );
    // The JSON form says the same, for scripts.
    let out = what_if(
        &lab,
        &dir,
        &[
            "example.test",
            "--proposed-policy",
            &file,
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ready"], false);
    assert_eq!(json["proposed"]["verdict"], "enforced_refused");
    assert_eq!(json["current"]["verdict"], "enforced_deliverable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_mx_waits_for_cached_policies_to_expire() {
    let lab = lab().await;
    let dir = TempDir::new("whatif-mx");
    // The live policy does not cover the new MX: not ready.
    let out = what_if(
        &lab,
        &dir,
        &[
            "example.test",
            "--proposed-mx",
            "mx1.example.test,mx2.example.test",
        ],
    );
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("MX mx2.example.test matches no mx pattern"),
        "{stdout}"
    );
    // With a draft covering both, ready; but senders holding the live policy (max_age one
    // week) refuse the new MX until their copy expires, so the MX waits for it.
    let file = draft(
        &dir,
        "both.txt",
        &enforce_policy(&["mx1.example.test", "mx2.example.test"]),
    );
    let out = what_if(
        &lab,
        &dir,
        &[
            "example.test",
            "--proposed-policy",
            &file,
            "--proposed-mx",
            "mx1.example.test,mx2.example.test",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ready"], true);
    let switch = json["switch"].as_array().unwrap();
    assert_eq!(switch.len(), 1, "{switch:?}");
    assert_eq!(switch[0]["mx"], "mx2.example.test");
    assert!(switch[0]["message"].as_str().unwrap().contains("refuse it"));
    let now = mta_sts_exporter::clock::unix_now();
    let until = switch[0]["until"].as_i64().unwrap();
    assert!((until - now - 604_800).abs() < 120, "{until}");
    let steps: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(steps[0].starts_with("publish the draft"), "{steps:?}");
    assert!(steps[1].starts_with("then change the id"), "{steps:?}");
    assert!(
        steps[2].starts_with(
            "after the new id is published, wait the current policy's max_age (7 days; until "
        ),
        "{steps:?}"
    );
    assert!(
        steps[3].starts_with("then add the MX records for mx2.example.test"),
        "{steps:?}"
    );
    // The new host was probed like a live one.
    let hosts = json["proposed"]["mx"]["hosts"].as_array().unwrap();
    assert_eq!(hosts[1]["name"], "mx2.example.test");
    assert_eq!(hosts[1]["transport"], "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_and_unreadable_drafts_exit_2() {
    let lab = lab().await;
    let dir = TempDir::new("whatif-errors");
    let missing = dir.path("missing.txt");
    let out = what_if(
        &lab,
        &dir,
        &[
            "example.test",
            "--proposed-policy",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: --proposed-policy {}: ", missing.display())),
        "{stderr}"
    );
    let big = draft(&dir, "big.txt", &"#".repeat(70_000));
    let out = what_if(&lab, &dir, &["example.test", "--proposed-policy", &big]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than 65536 bytes"));
    let out = what_if(
        &lab,
        &dir,
        &[
            "example.test",
            "other.test",
            "--proposed-mx",
            "mx1.example.test",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --proposed-policy and --proposed-mx judge one domain; 2 were given\n"
    );
    let out = what_if(
        &lab,
        &dir,
        &["example.test", "--proposed-mx", "mx1.example.test,bad host"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("error: --proposed-mx: invalid host name \"bad host\""));
}
