//! IPv4 and IPv6 alike: a domain whose MX and policy host have AAAA records that point where
//! nothing answers (a common fault, met first by senders that prefer IPv6), in the lab.

use crate::support;

use std::net::Ipv6Addr;

use mta_sts_exporter::check::Checker;
use mta_sts_exporter::finding::Code;
use mta_sts_exporter::probe::dns::Families;
use mta_sts_exporter::report::{HostTransport, Verdict};
use support::lab::Lab;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_aaaa_is_its_own_finding_at_the_mx_and_the_policy_host() {
    // Nothing of the lab listens on ::1: its servers are on 127.0.x.y.
    let lab = Lab::builder()
        .healthy("dual.test")
        .dns(|d| {
            d.aaaa("mx1.dual.test", Ipv6Addr::LOCALHOST)
                .aaaa("mta-sts.dual.test", Ipv6Addr::LOCALHOST)
        })
        .start()
        .await;
    let mut settings = lab.settings();
    settings.families = Families {
        ipv4: true,
        ipv6: true,
    };
    let checker = Checker::new(settings, lab.trust()).unwrap();
    let report = checker.check("dual.test").await;
    let codes: Vec<Code> = report.findings.iter().map(|f| f.code).collect();
    assert!(
        codes.contains(&Code::MxIpv6Broken),
        "{:#?}",
        report.findings
    );
    assert!(
        codes.contains(&Code::PolicyHostIpv6Broken),
        "{:#?}",
        report.findings
    );
    let mx = &report.mx.hosts[0];
    assert_eq!(mx.addresses.len(), 2, "{:?}", mx.addresses);
    assert_eq!(mx.probes.len(), 2);
    assert_eq!(mx.transport, HostTransport::StarttlsFailed);
    let v6 = report.policy.fetch_ipv6.as_ref().expect("an IPv6 fetch");
    assert_eq!(v6.address, Some(Ipv6Addr::LOCALHOST.into()));
    // The policy itself came over IPv4 and is valid; the IPv6 address of the MX refuses, so an
    // enforcing sender that tries it is refused there.
    assert!(report.policy.policy.is_some());
    assert_eq!(report.verdict, Verdict::EnforcedRefused);
    let message = &report
        .findings
        .iter()
        .find(|f| f.code == Code::PolicyHostIpv6Broken)
        .unwrap()
        .message;
    assert!(
        message.starts_with("mta-sts.dual.test serves the policy over IPv4, but not over IPv6"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_only_hosts_get_no_family_finding() {
    let lab = Lab::builder().healthy("v4.test").start().await;
    let mut settings = lab.settings();
    settings.families = Families {
        ipv4: true,
        ipv6: true,
    };
    let report = Checker::new(settings, lab.trust())
        .unwrap()
        .check("v4.test")
        .await;
    assert_eq!(
        report.verdict,
        Verdict::EnforcedDeliverable,
        "{:#?}",
        report.findings
    );
    assert!(report.policy.fetch_ipv6.is_none());
}
