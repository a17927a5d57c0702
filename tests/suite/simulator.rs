//! A small simulated fleet checked end to end by the service: every scenario yields its
//! finding, each shared provider MX address is connected to once per pass, and the domains
//! behind the shared tarpit and blackhole are answered from the addresses' state.

use crate::support;

use std::time::Duration;

use mta_sts_exporter::scheduler::SchedulerSettings;
use mta_sts_exporter::service::Service;
use support::fleet::{Fleet, FleetSpec, Scenario, NOT_SIMULATED};
use support::http::{get, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_yields_its_finding_and_shared_mx_is_probed_once() {
    let spec = FleetSpec {
        domains: 2 * Scenario::BROKEN.len() + 30 + 2 * 24,
        broken_every: 2,
        // With per_address_concurrency 4 and 3 timeouts to be unresponsive: at most seven
        // probed (see below), the rest inferred.
        tarpit_domains: 12,
        blackhole_domains: 12,
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
    let mut produced = std::collections::BTreeSet::new();
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
        produced.extend(codes.iter().map(|c| c.to_string()));
        match d.scenario.expected_code() {
            None => assert!(codes.is_empty(), "{} ({:?}): {codes:?}", d.name, d.scenario),
            Some(code) => {
                let observed = d.scenario.observed_code();
                assert!(
                    codes.contains(&code) || observed.is_some_and(|o| codes.contains(&o)),
                    "{} ({:?}): {codes:?}",
                    d.name,
                    d.scenario
                );
                seen.insert(d.scenario);
            }
        }
    }
    for scenario in Scenario::BROKEN
        .iter()
        .chain(&[Scenario::MxTarpit, Scenario::MxBlackhole])
    {
        assert!(seen.contains(scenario), "{scenario:?} never checked");
    }
    // Behind the tarpit: four probes at once; as each times out the next in line goes, until
    // the third timeout makes the address unresponsive (two more); then one canary: at most
    // seven connections for twelve domains, the rest answered from the address's state.
    let (_, tarpit) = fleet.tarpit.unwrap();
    let connections = fleet.smtp[tarpit].connections();
    assert!((4..=7).contains(&connections), "{connections}");
    // Every finding code the project knows is produced, but the few listed (with the reason
    // and the test that produces them instead) in NOT_SIMULATED and docs/performance.md.
    let missing: Vec<&str> = mta_sts_exporter::finding::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !produced.contains(*c))
        .collect();
    let excused: Vec<&str> = NOT_SIMULATED.iter().map(|(code, _)| *code).collect();
    let mut expected = excused.clone();
    expected.sort_unstable();
    let mut missing_sorted = missing.clone();
    missing_sorted.sort_unstable();
    assert_eq!(
        missing_sorted, expected,
        "codes the simulated fleet did not produce vs the documented exceptions"
    );
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/performance.md"))
        .unwrap();
    for code in excused {
        assert!(
            doc.contains(&format!("`{code}`")),
            "docs/performance.md does not list {code}"
        );
    }
    // dedup: every provider MX address was connected to once in the pass
    for (host, _, index) in &fleet.providers {
        assert_eq!(fleet.smtp[*index].connections(), 1, "{host}");
    }
    service.shutdown().await;
}
