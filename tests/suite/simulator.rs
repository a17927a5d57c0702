//! A small simulated fleet checked end to end by the service: every scenario yields its
//! finding, and each shared provider MX address is connected to once per pass.

use crate::support;

use std::time::Duration;

use mta_sts_exporter::scheduler::SchedulerSettings;
use mta_sts_exporter::service::Service;
use support::fleet::{Fleet, FleetSpec, Scenario};
use support::http::{get, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_yields_its_finding_and_shared_mx_is_probed_once() {
    let spec = FleetSpec {
        domains: 2 * Scenario::BROKEN.len() + 30,
        broken_every: 2,
        ..FleetSpec::default()
    };
    let fleet = Fleet::start(&spec).await;
    let dir = TempDir::new("simulator");
    fleet.write_config(&dir.0, &[]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = SchedulerSettings {
        first_check_window: Duration::from_millis(100),
        ..SchedulerSettings::default()
    };
    let service = Service::start_with(dir.path("config.yml"), listener, settings)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while get(addr, "/-/ready").await.status != 200 {
        assert!(std::time::Instant::now() < deadline, "first pass not done");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut seen = std::collections::BTreeSet::new();
    for d in &fleet.domains {
        let reply = get(addr, &format!("/api/v1/domains/{}", d.name)).await;
        assert_eq!(reply.status, 200, "{}", d.name);
        let report: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let codes: Vec<&str> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        match d.scenario.expected_code() {
            None => assert!(codes.is_empty(), "{} ({:?}): {codes:?}", d.name, d.scenario),
            Some(code) => {
                assert!(
                    codes.contains(&code),
                    "{} ({:?}): {codes:?}",
                    d.name,
                    d.scenario
                );
                seen.insert(d.scenario);
            }
        }
    }
    for scenario in Scenario::BROKEN {
        assert!(seen.contains(scenario), "{scenario:?} never checked");
    }
    // which finding codes the simulator cannot produce, and why, is stated in docs/performance.md
    let covered: std::collections::BTreeSet<&str> = Scenario::BROKEN
        .iter()
        .filter_map(|s| s.expected_code())
        .collect();
    assert!(covered.len() >= 60, "{} codes covered", covered.len());
    // dedup: every provider MX address was connected to once in the pass
    for (host, _, index) in &fleet.providers {
        assert_eq!(fleet.smtp[*index].connections(), 1, "{host}");
    }
    service.shutdown().await;
}
