//! id drift end to end: the policy changes without a new id, the exporter restarts from its
//! state file, the state file is corrupt.

use crate::support;

use std::path::Path;
use std::time::Duration;

use mta_sts_exporter::scheduler::SchedulerSettings;
use mta_sts_exporter::service::Service;
use support::http::{get, sample, TempDir};
use support::https::Reply;
use support::lab::{enforce_policy, Lab};

const D: &str = "drift.test";

fn config(lab: &Lab, dir: &TempDir) -> std::path::PathBuf {
    let ca = dir.path("ca.pem");
    std::fs::write(&ca, &lab.ca.cert_pem).unwrap();
    let path = dir.path("config.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  dns: {{ server: \"{}\", timeout: 500ms, attempts: 1 }}\n  ports: {{ smtp: {}, https: {} }}\n  ip_families: [ipv4]\n  allow_private_targets: true\n  ca_file: {}\n  state_file: {}\nmetrics: {{ include: [mta_sts_policy_id_stale, mta_sts_policy_changes] }}\ndomains: [{D}]\n",
            lab.dns.addr,
            lab.smtp_port,
            lab.https.addr.port(),
            ca.display(),
            dir.path("state.json").display()
        ),
    )
    .unwrap();
    path
}

/// Starts the service, waits for its first pass, returns /metrics, and stops it (saving state).
async fn one_pass(config: &Path) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = SchedulerSettings {
        first_check_window: Duration::from_millis(50),
        ..SchedulerSettings::default()
    };
    let service = Service::start_with(config.to_path_buf(), listener, settings)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while get(addr, "/-/ready").await.status != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = get(addr, "/metrics").await.body;
    service.shutdown().await;
    metrics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changed_without_new_id_is_remembered_across_restarts() {
    let lab = Lab::builder()
        .record(D, "v=STSv1; id=20260101;")
        .policy(D, Reply::policy(&enforce_policy(&["mx1.drift.test"])))
        .good_mx(D, 10, "mx1.drift.test")
        .start()
        .await;
    let dir = TempDir::new("drift");
    let config = config(&lab, &dir);
    let stale = format!("mta_sts_policy_id_stale{{domain=\"{D}\"}}");
    let changes = format!("mta_sts_policy_changes_total{{domain=\"{D}\"}}");

    // first start: no state file yet, history begins
    let m = one_pass(&config).await;
    assert_eq!(sample(&m, "mta_sts_exporter_state_loaded"), Some(0.0));
    assert_eq!(sample(&m, &stale), Some(0.0));
    assert!(dir.path("state.json").exists(), "state saved at shutdown");

    // the operator adds an MX to the policy but forgets the id
    lab.https.set_reply(
        "mta-sts.drift.test",
        Reply::policy(&enforce_policy(&["mx1.drift.test", "mx2.drift.test"])),
    );
    let m = one_pass(&config).await;
    assert_eq!(sample(&m, "mta_sts_exporter_state_loaded"), Some(1.0));
    assert_eq!(sample(&m, &stale), Some(1.0));
    assert_eq!(sample(&m, &changes), Some(1.0));
    assert_eq!(
        sample(
            &m,
            &format!(
                "mta_sts_finding{{domain=\"{D}\",code=\"policy_id_stale\",severity=\"critical\"}}"
            )
        ),
        Some(1.0)
    );

    // restart with nothing changed: the stale id is still reported
    let m = one_pass(&config).await;
    assert_eq!(sample(&m, &stale), Some(1.0));
    assert_eq!(sample(&m, &changes), Some(1.0));

    // a state file filled with garbage: the exporter starts fresh and says so
    std::fs::write(
        dir.path("state.json"),
        b"{\"version\": 1, \"domains\": {\"x\"",
    )
    .unwrap();
    let m = one_pass(&config).await;
    assert_eq!(sample(&m, "mta_sts_exporter_state_loaded"), Some(0.0));
    assert_eq!(sample(&m, &stale), Some(0.0));
    assert!(dir.path("state.json.corrupt").exists());
    assert_eq!(
        sample(&m, "mta_sts_exporter_state_save_errors_total"),
        Some(0.0)
    );
}
