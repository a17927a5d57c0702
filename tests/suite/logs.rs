//! What the exporter logs: one line per finished check (and `--log.checks` to sample or turn
//! it off).

use crate::support;

use crate::exporter::Exporter;
use support::http::TempDir;
use support::lab::Lab;

async fn lab_config(dir: &TempDir) -> (Lab, std::path::PathBuf) {
    let lab = Lab::builder()
        .healthy("ok.test")
        // no MX, no record, no TLS-RPT: a warning and an info finding
        .dns(|d| d.a("bare.test", std::net::Ipv4Addr::new(127, 0, 0, 1)))
        .start()
        .await;
    std::fs::write(dir.path("ca.pem"), &lab.ca.cert_pem).unwrap();
    let path = dir.path("config.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  dns: {{ server: \"{}\", timeout: 500ms, attempts: 1 }}\n  \
             ports: {{ smtp: {}, https: {} }}\n  ip_families: [ipv4]\n  \
             allow_private_targets: true\n  ca_file: ca.pem\ndomains: [ok.test, bare.test]\n",
            lab.dns.addr,
            lab.smtp_port,
            lab.https.addr.port()
        ),
    )
    .unwrap();
    (lab, path)
}

fn check_lines(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains("msg=\"check finished\""))
        .collect()
}

/// `ts=... level=info caller=... msg="check finished" domain=... verdict=...
/// duration_seconds=... critical=N warning=N info=N codes=a,b`, the time parts masked.
fn masked(line: &str) -> String {
    line.split(' ')
        .map(|field| match field.split_once('=') {
            Some(("ts", _)) => "ts=T".to_string(),
            Some(("duration_seconds", v)) => {
                let seconds: f64 = v.parse().expect("a number of seconds");
                assert!((0.0..60.0).contains(&seconds), "{line}");
                assert_eq!(v.split('.').nth(1).map(str::len), Some(3), "{line}");
                "duration_seconds=D".to_string()
            }
            _ => field.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_finished_check() {
    let dir = TempDir::new("logs-checks");
    let (_lab, config) = lab_config(&dir).await;
    let exporter = Exporter::start(&config, &[]);
    exporter.wait_ready().await;
    let lines = exporter.stop();
    let mut checks: Vec<String> = check_lines(&lines).into_iter().map(|l| masked(l)).collect();
    checks.sort();
    assert_eq!(
        checks,
        [
            "ts=T level=info caller=mta_sts_exporter::checklog msg=\"check finished\" domain=bare.test verdict=no_policy duration_seconds=D critical=0 warning=2 info=1 codes=mx_missing,sts_record_missing,tlsrpt_missing",
            "ts=T level=info caller=mta_sts_exporter::checklog msg=\"check finished\" domain=ok.test verdict=enforced_deliverable duration_seconds=D critical=0 warning=0 info=0 codes=\"\"",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_the_same_fields() {
    let dir = TempDir::new("logs-json");
    let (_lab, config) = lab_config(&dir).await;
    let exporter = Exporter::start(&config, &["--log.format", "json"]);
    exporter.wait_ready().await;
    let lines = exporter.stop();
    let checks: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == "check finished")
        .collect();
    assert_eq!(checks.len(), 2, "{lines:#?}");
    let ok = checks.iter().find(|v| v["domain"] == "ok.test").unwrap();
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["verdict"], "enforced_deliverable");
    assert_eq!(ok["critical"], 0);
    assert_eq!(ok["codes"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_off_switch_and_sampling() {
    let dir = TempDir::new("logs-off");
    let (_lab, config) = lab_config(&dir).await;
    let exporter = Exporter::start(&config, &["--log.checks", "off"]);
    exporter.wait_ready().await;
    let lines = exporter.stop();
    assert!(check_lines(&lines).is_empty(), "{lines:#?}");
    // still logging otherwise
    assert!(
        lines.iter().any(|l| l.contains("first pass complete")),
        "{lines:#?}"
    );

    // one in two: the first of the two checks
    let exporter = Exporter::start(&config, &["--log.checks", "1/2"]);
    exporter.wait_ready().await;
    let lines = exporter.stop();
    assert_eq!(check_lines(&lines).len(), 1, "{lines:#?}");
}

#[test]
fn a_bad_log_checks_value_is_refused_with_its_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
        .args(["--config.file", "x.yml", "--log.checks", "some"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid --log.checks \"some\": use all, off, or 1/N (one finished check in N, e.g. 1/100)"),
        "{stderr}"
    );
}
