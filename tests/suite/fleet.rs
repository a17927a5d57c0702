//! A fleet pass in the lab: a tarpit address (accepts, never greets) shared by 50 MX names and a
//! blackhole address (connections never complete) shared by 50 more, beside healthy domains on
//! a shared provider address. Every domain gets a determined verdict with the right finding, the
//! reports keep their addresses, and no server sees more than the per-address bound at once.

use crate::support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mta_sts_exporter::check::Checker;
use mta_sts_exporter::probe::cache::ProbeCache;
use mta_sts_exporter::report::Verdict;
use support::certs::Validity;
use support::https::Reply;
use support::lab::{codes, enforce_policy, Lab};
use support::smtp::{Blackhole, SmtpBehaviour};

const TARPIT: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
const PROVIDER: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 2);
const BLACKHOLE: Ipv4Addr = Ipv4Addr::new(127, 0, 9, 9);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_shared_addresses_do_not_stall_or_blank_the_fleet() {
    let group = |kind: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{kind}{i:02}.fleet.test")).collect()
    };
    let (tarpit, blackhole, healthy) = (group("tarpit", 50), group("hole", 50), group("ok", 20));
    let mx = |domain: &str| format!("tenant.{domain}.mail.test");
    let mut builder = Lab::builder();
    let healthy_mx: Vec<String> = healthy.iter().map(|d| mx(d)).collect();
    let names: Vec<&str> = healthy_mx.iter().map(String::as_str).collect();
    let leaf = builder.ca.leaf(&names, Validity::Valid);
    // A settle time longer than the lag of a client's close, so the counts are exact.
    let settle = Duration::from_millis(5);
    builder = builder
        .mx(
            &tarpit[0],
            10,
            &mx(&tarpit[0]),
            Some(SmtpBehaviour {
                settle,
                ..SmtpBehaviour::silent()
            }),
        )
        .mx(
            &healthy[0],
            10,
            &mx(&healthy[0]),
            Some(SmtpBehaviour {
                settle,
                ..SmtpBehaviour::serving(&leaf)
            }),
        );
    for domain in tarpit.iter().chain(&blackhole).chain(&healthy) {
        let name = mx(domain);
        builder = builder
            .record(domain, "v=STSv1; id=1;")
            .policy(domain, Reply::policy(&enforce_policy(&[&name])))
            .tlsrpt(domain, "v=TLSRPTv1; rua=mailto:tls@fleet.test");
        let ip = if domain.starts_with("tarpit") {
            TARPIT
        } else if domain.starts_with("hole") {
            BLACKHOLE
        } else {
            PROVIDER
        };
        if domain != &tarpit[0] && domain != &healthy[0] {
            let domain = domain.clone();
            builder = builder.dns(move |d| d.mx(&domain, 10, &name).a(&name, ip));
        }
    }
    let lab = builder.start().await;
    let hole = Blackhole::start_on(SocketAddr::new(IpAddr::V4(BLACKHOLE), lab.smtp_port)).await;
    let mut settings = lab.settings();
    // 600 lookups at once from the fake DNS in this test's process, beside the rest of the
    // suite: more than the lab's 500 ms for one try.
    settings.resolver.timeout = Duration::from_secs(5);
    settings.resolver.attempts = 2;
    settings.smtp.connect_timeout = Duration::from_secs(1);
    settings.smtp.greeting_timeout = Duration::from_secs(1);
    // Without the health memory the 50 names of one dead address, two at a time, would queue
    // for 25 s: far past this deadline (if waiting counted against it).
    settings.check_timeout = Duration::from_secs(10);
    let cache = Arc::new(ProbeCache::new(Duration::from_secs(600), 2));
    let checker = Checker::with_cache(settings, lab.trust(), cache.clone()).unwrap();
    let all: Vec<&String> = tarpit.iter().chain(&blackhole).chain(&healthy).collect();
    let reports = futures_util::future::join_all(all.iter().map(|d| checker.check(d))).await;

    let mut inferred = [0usize; 2];
    for r in &reports {
        let c = codes(r);
        assert_eq!(r.mx.hosts.len(), 1, "{}: {:#?}", r.domain, r.findings);
        let host = &r.mx.hosts[0];
        let (expected_ip, verdict, observed) = if r.domain.starts_with("tarpit") {
            (TARPIT, Verdict::EnforcedRefused, "smtp_timeout")
        } else if r.domain.starts_with("hole") {
            (BLACKHOLE, Verdict::EnforcedRefused, "mx_connect_timeout")
        } else {
            (PROVIDER, Verdict::EnforcedDeliverable, "")
        };
        assert_eq!(r.verdict, verdict, "{}: {:#?}", r.domain, r.findings);
        assert_eq!(host.addresses, [IpAddr::V4(expected_ip)], "{}", r.domain);
        assert_eq!(host.probes.len(), 1, "{}: {:#?}", r.domain, host);
        assert!(host.not_probed.is_empty(), "{}", r.domain);
        let probe = &host.probes[0];
        assert_eq!(probe.host, mx(&r.domain), "each name keeps its own report");
        if verdict == Verdict::EnforcedDeliverable {
            assert!(c.is_empty(), "{}: {c:?}", r.domain);
            continue;
        }
        // The right finding, and which kind it is: observed now, or inferred.
        match &probe.inferred {
            Some(_) => {
                assert_eq!(c, ["mx_unresponsive_inferred"], "{}", r.domain);
                inferred[usize::from(expected_ip == BLACKHOLE)] += 1;
            }
            None => assert_eq!(c, [observed], "{}", r.domain),
        }
    }
    // K = 3: two rounds of two probes, then canaries; the rest answered from the state.
    assert!(inferred[0] >= 40, "tarpit: {} inferred", inferred[0]);
    assert!(inferred[1] >= 40, "blackhole: {} inferred", inferred[1]);
    assert_eq!(cache.stats().unresponsive, 2);
    let (tarpit_server, provider_server) = (&lab.smtp[0], &lab.smtp[1]);
    assert!(
        tarpit_server.connections() <= 10,
        "{}",
        tarpit_server.connections()
    );
    assert!(tarpit_server.max_concurrent() <= 2);
    assert_eq!(
        provider_server.connections(),
        20,
        "one probe per healthy MX name"
    );
    assert!(provider_server.max_concurrent() <= 2);
    drop(hole);
}
