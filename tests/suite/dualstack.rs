//! IPv4 and IPv6 alike, in the lab: the fakes listen on ::1 as well as 127.0.0.1, so a domain can
//! work over both families, over IPv6 alone, or break on one side only (a broken AAAA, an IPv6
//! virtual host without the site's certificate, an A record pointing nowhere), and the metrics
//! say which family a per-address fact is about.

use crate::support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use mta_sts_exporter::check::{CheckSettings, Checker};
use mta_sts_exporter::finding::Code;
use mta_sts_exporter::metrics::{encode, Exposition, Selection, SelectionHandle};
use mta_sts_exporter::probe::dns::Families;
use mta_sts_exporter::report::{DomainReport, HostTransport, Verdict};
use mta_sts_exporter::store::{DomainMeta, Store};
use support::certs::Validity;
use support::https::{Ipv6Side, Reply};
use support::lab::{enforce_policy, Lab, LabBuilder};
use support::smtp::SmtpBehaviour;

const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn both_families(lab: &Lab) -> CheckSettings {
    let mut settings = lab.settings();
    settings.families = Families {
        ipv4: true,
        ipv6: true,
    };
    settings
}

async fn check_both(lab: &Lab, domain: &str) -> DomainReport {
    Checker::new(both_families(lab), lab.trust())
        .unwrap()
        .check(domain)
        .await
}

fn codes(report: &DomainReport) -> Vec<Code> {
    report.findings.iter().map(|f| f.code).collect()
}

/// The exposition lines of `family` for one checked report, every metric family selected.
fn lines(report: DomainReport, family: &str) -> Vec<String> {
    let store = Arc::new(Store::new());
    store.set_domains(vec![(report.domain.to_string(), DomainMeta::default())]);
    store.record(report);
    let registry = Exposition::new(store, None)
        .with_selection(SelectionHandle::new(
            Selection::parse(["all"], [""; 0]).unwrap(),
        ))
        .registry();
    encode(&registry, false)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .map(str::to_string)
        .collect()
}

/// A domain with record, TLS-RPT and an enforce policy covering `mx1.<domain>`, whose policy
/// host and MX are set up by the caller.
fn domain(lab: LabBuilder, domain: &str) -> LabBuilder {
    lab.record(domain, "v=STSv1; id=20260101T000000;")
        .tlsrpt(domain, &format!("v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_domain_is_fetched_and_probed_over_both_families() {
    let builder = Lab::builder();
    let leaf = builder.ca.leaf(&["mx1.dual.test"], Validity::Valid);
    let body = enforce_policy(&["mx1.dual.test"]);
    let lab = domain(builder, "dual.test")
        .policy("dual.test", Reply::policy(&body))
        .policy_dual_stack("dual.test")
        .dual_stack_mx(
            "dual.test",
            10,
            "mx1.dual.test",
            Some(SmtpBehaviour::serving(&leaf)),
            Some(SmtpBehaviour::serving(&leaf)),
        )
        .start()
        .await;
    let report = check_both(&lab, "dual.test").await;
    assert_eq!(
        report.verdict,
        Verdict::EnforcedDeliverable,
        "{:#?}",
        report.findings
    );
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    // The policy over IPv4, and the same fetch over IPv6, both served.
    let fetch = report.policy.fetch.as_ref().unwrap();
    assert_eq!(fetch.address, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let other = report.policy.fetch_other_family.as_ref().unwrap();
    assert_eq!(other.address, Some(V6));
    assert_eq!(other.status, Some(200));
    assert!(other.body.is_none(), "the other family's body is not kept");
    let families: Vec<bool> = lab
        .https
        .seen_requests()
        .iter()
        .map(|r| r.local.is_ipv6())
        .collect();
    assert!(
        families.contains(&true) && families.contains(&false),
        "{families:?}"
    );
    // Both addresses of the MX probed, each at its own server.
    let mx = &report.mx.hosts[0];
    assert_eq!(mx.probes.len(), 2);
    assert!(mx.probes.iter().all(|p| p.starttls_ok() && p.cert_valid()));
    assert!(lab.smtp.iter().all(|s| s.connections() == 1));
    // Per-family facts carry the family.
    let starttls = lines(report, "mta_sts_mx_starttls");
    assert_eq!(
        starttls,
        [
            r#"mta_sts_mx_starttls{mx="mx1.dual.test",family="ipv4"} 1.0"#,
            r#"mta_sts_mx_starttls{mx="mx1.dual.test",family="ipv6"} 1.0"#,
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_only_domain_works_over_ipv6_and_an_ipv4_only_exporter_says_why_not() {
    let builder = Lab::builder();
    let leaf = builder.ca.leaf(&["mx1.six.test"], Validity::Valid);
    let body = enforce_policy(&["mx1.six.test"]);
    let lab = domain(builder, "six.test")
        .policy_ipv6_only("six.test", Reply::policy(&body))
        .ipv6_only_mx(
            "six.test",
            10,
            "mx1.six.test",
            Some(SmtpBehaviour::serving(&leaf)),
        )
        .start()
        .await;
    let report = check_both(&lab, "six.test").await;
    assert_eq!(
        report.verdict,
        Verdict::EnforcedDeliverable,
        "{:#?}",
        report.findings
    );
    assert_eq!(report.policy.fetch.as_ref().unwrap().address, Some(V6));
    assert!(report.policy.fetch_other_family.is_none());
    assert_eq!(report.mx.hosts[0].probes[0].address, V6);
    assert_eq!(
        lines(report, "mta_sts_mx_probe_outcome"),
        [r#"mta_sts_mx_probe_outcome{mx="mx1.six.test",outcome="ok",family="ipv6"} 1.0"#]
    );

    // An exporter asking for A records only finds no address anywhere: it says so, it does not
    // call the domain healthy.
    let ipv4_only = lab.check("six.test").await;
    assert_ne!(ipv4_only.verdict, Verdict::EnforcedDeliverable);
    let found = codes(&ipv4_only);
    assert!(found.contains(&Code::MxNoAddress), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_the_ipv6_side_only_is_named_and_labelled_ipv6() {
    let builder = Lab::builder();
    let good = builder.ca.leaf(&["mx1.half.test"], Validity::Valid);
    let stale = builder
        .ca
        .leaf(&["mx1.half.test"], Validity::ExpiredDaysAgo(3));
    let body = enforce_policy(&["mx1.half.test"]);
    // The IPv6 listeners were set up apart from the IPv4 ones: the web server's presents its
    // default certificate, the mail server's an old one.
    let lab = domain(builder, "half.test")
        .policy("half.test", Reply::policy(&body))
        .policy_dual_stack("half.test")
        .policy_ipv6(Ipv6Side::DefaultCert)
        .dual_stack_mx(
            "half.test",
            10,
            "mx1.half.test",
            Some(SmtpBehaviour::serving(&good)),
            Some(SmtpBehaviour::serving(&stale)),
        )
        .start()
        .await;
    let report = check_both(&lab, "half.test").await;
    let found = codes(&report);
    for code in [
        Code::PolicyHostIpv6Broken,
        Code::MxIpv6Broken,
        Code::MxCertExpired,
    ] {
        assert!(found.contains(&code), "{code:?} in {:#?}", report.findings);
    }
    let expired = report
        .findings
        .iter()
        .find(|f| f.code == Code::MxCertExpired)
        .unwrap();
    assert_eq!(expired.address, Some(V6));
    let broken = report
        .findings
        .iter()
        .find(|f| f.code == Code::PolicyHostIpv6Broken)
        .unwrap();
    assert!(
        broken
            .message
            .starts_with("mta-sts.half.test serves the policy over IPv4, but not over IPv6"),
        "{}",
        broken.message
    );
    let text = mta_sts_exporter::render::render_text(&report, report.checked_at);
    assert!(text.contains("also from ::1: "), "{text}");
    assert!(text.contains("             ::1  STARTTLS ok"), "{text}");
    // The policy itself is served (over IPv4); senders that use the IPv6 address of the MX are
    // refused there.
    assert!(report.policy.policy.is_some());
    assert_eq!(report.mx.hosts[0].transport, HostTransport::CertInvalid);
    assert_eq!(report.verdict, Verdict::EnforcedRefused);
    assert_eq!(
        lines(report.clone(), "mta_sts_mx_finding"),
        [
            r#"mta_sts_mx_finding{mx="mx1.half.test",code="mx_ipv6_broken",family="ipv6"} 1.0"#,
            r#"mta_sts_mx_finding{mx="mx1.half.test",code="mx_cert_expired",family="ipv6"} 1.0"#,
        ]
    );
    assert_eq!(
        lines(report, "mta_sts_mx_cert_valid"),
        [
            r#"mta_sts_mx_cert_valid{mx="mx1.half.test",family="ipv4"} 1.0"#,
            r#"mta_sts_mx_cert_valid{mx="mx1.half.test",family="ipv6"} 0.0"#,
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_policy_over_ipv6_is_named() {
    let body = enforce_policy(&["mx1.two.test"]);
    // The IPv6 web server was not updated: it still serves the testing policy of before.
    let old = "version: STSv1\nmode: testing\nmax_age: 86400\nmx: mx1.two.test\n";
    let lab = domain(Lab::builder(), "two.test")
        .policy("two.test", Reply::policy(&body))
        .policy_dual_stack("two.test")
        .policy_ipv6_reply("two.test", Reply::policy(old))
        .good_mx("two.test", 10, "mx1.two.test")
        .start()
        .await;
    let report = check_both(&lab, "two.test").await;
    let differs = report
        .findings
        .iter()
        .find(|f| f.code == Code::PolicyDiffersByFamily)
        .unwrap_or_else(|| panic!("{:#?}", report.findings));
    assert!(
        differs.message.starts_with(&format!(
            "mta-sts.two.test serves another policy file over IPv6 ({} bytes",
            old.len()
        )),
        "{}",
        differs.message
    );
    // The policy judged is the IPv4 one.
    assert_eq!(
        report.policy.policy.as_ref().unwrap().mode,
        mta_sts_exporter::stage::policy::Mode::Enforce
    );
    // The same file on both: nothing to say.
    let same = domain(Lab::builder(), "one.test")
        .policy(
            "one.test",
            Reply::policy(&enforce_policy(&["mx1.one.test"])),
        )
        .policy_dual_stack("one.test")
        .good_mx("one.test", 10, "mx1.one.test")
        .start()
        .await;
    let report = check_both(&same, "one.test").await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_aaaa_where_nothing_listens_is_its_own_finding() {
    let lab = Lab::builder()
        .healthy("aaaa.test")
        .policy_dual_stack("aaaa.test")
        .policy_ipv6(Ipv6Side::Off)
        .dual_stack_mx("aaaa.test", 20, "mx2.aaaa.test", None, None)
        .start()
        .await;
    let report = check_both(&lab, "aaaa.test").await;
    let found = codes(&report);
    assert!(
        found.contains(&Code::PolicyHostIpv6Broken),
        "{:#?}",
        report.findings
    );
    // mx2 has neither side listening: its failure is not an IPv6 one.
    assert!(!found.contains(&Code::MxIpv6Broken), "{found:?}");
    let mx2 = &report.mx.hosts[1];
    assert_eq!(mx2.addresses.len(), 2, "{:?}", mx2.addresses);
    assert_eq!(mx2.transport, HostTransport::StarttlsFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a_record_pointing_nowhere_falls_back_to_ipv6_and_is_named() {
    let body = enforce_policy(&["mx1.four.test"]);
    let lab = domain(Lab::builder(), "four.test")
        .policy_ipv6_only("four.test", Reply::policy(&body))
        // Nothing of the lab listens at 127.0.0.9.
        .dns(|d| d.a("mta-sts.four.test", Ipv4Addr::new(127, 0, 0, 9)))
        .good_mx("four.test", 10, "mx1.four.test")
        .start()
        .await;
    let report = check_both(&lab, "four.test").await;
    assert_eq!(
        report.verdict,
        Verdict::EnforcedDeliverable,
        "{:#?}",
        report.findings
    );
    assert_eq!(report.policy.fetch.as_ref().unwrap().address, Some(V6));
    let broken = report
        .findings
        .iter()
        .find(|f| f.code == Code::PolicyHostIpv4Broken)
        .unwrap_or_else(|| panic!("{:#?}", report.findings));
    assert!(
        broken
            .message
            .starts_with("mta-sts.four.test serves the policy over IPv6, but not over IPv4"),
        "{}",
        broken.message
    );
    let other = report.policy.fetch_other_family.as_ref().unwrap();
    assert_eq!(other.address, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_only_hosts_get_no_family_finding_and_no_family_label_change() {
    let lab = Lab::builder().healthy("v4.test").start().await;
    let report = check_both(&lab, "v4.test").await;
    assert_eq!(
        report.verdict,
        Verdict::EnforcedDeliverable,
        "{:#?}",
        report.findings
    );
    assert!(report.policy.fetch_other_family.is_none());
    assert_eq!(
        lines(report, "mta_sts_mx_starttls"),
        [r#"mta_sts_mx_starttls{mx="mx1.v4.test",family="ipv4"} 1.0"#]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resolver_can_be_reached_over_ipv6() {
    let lab = Lab::builder().healthy("dns6.test").start().await;
    let mut settings = lab.settings();
    settings.resolver.server = Some(std::net::SocketAddr::new(
        V6,
        lab.dns.addr_v6.expect("the fake DNS listens on ::1").port(),
    ));
    let report = Checker::new(settings, lab.trust())
        .unwrap()
        .check("dns6.test")
        .await;
    assert_eq!(
        report.verdict,
        Verdict::EnforcedDeliverable,
        "{:#?}",
        report.findings
    );
}

/// Runs `test` (an ignored test of this binary) in a network namespace of its own with only a
/// loopback interface: an exporter whose network has no IPv6 (or IPv4) route beyond loopback,
/// as in many Kubernetes clusters. Needs root, `unshare` and `ip`; without them the test says
/// so, and fails under CI (where scripts/test.sh installs them).
fn in_namespace_without_routes(test: &str) {
    let have = |tool: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !(root && have("unshare") && have("ip")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run {test} in a network namespace: needs root, unshare and ip"
        );
        eprintln!("skipped {test}: needs root, unshare (util-linux) and ip (iproute2)");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"])
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            test,
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} in a namespace without routes:\n{stdout}\n{stderr}"
    );
}

#[test]
fn an_exporter_without_ipv6_does_not_blame_dual_stack_domains() {
    in_namespace_without_routes("dualstack::without_routes_dual_stack_domains_are_judged_on_ipv4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by an_exporter_without_ipv6_does_not_blame_dual_stack_domains, in a network namespace"]
async fn without_routes_dual_stack_domains_are_judged_on_ipv4() {
    let v6 = |last: u16| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last);
    assert!(
        mta_sts_exporter::probe::route::no_route(v6(1).into()).is_some(),
        "this test needs a network without an IPv6 route beyond loopback"
    );
    let leaf_builder = Lab::builder();
    let lab = leaf_builder
        .healthy("dual.test")
        .dns(|d| {
            d.aaaa("mx1.dual.test", v6(25))
                .aaaa("mta-sts.dual.test", v6(1))
                .mx("six.test", 10, "mx1.six.test")
                .aaaa("mx1.six.test", v6(26))
        })
        .record("six.test", "v=STSv1; id=1;")
        .policy(
            "six.test",
            Reply::policy(&enforce_policy(&["mx1.six.test"])),
        )
        .start()
        .await;
    let report = check_both(&lab, "dual.test").await;
    assert_eq!(
        report.verdict,
        Verdict::EnforcedDeliverable,
        "{:#?}",
        report.findings
    );
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert!(report.policy.fetch_other_family.is_none());
    let mx = &report.mx.hosts[0];
    assert_eq!(mx.transport, HostTransport::Valid);
    assert_eq!(mx.probes.len(), 1);
    assert_eq!(mx.not_probed[0].address, IpAddr::V6(v6(25)));
    let text = mta_sts_exporter::render::render_text(&report, report.checked_at);
    assert!(
        text.contains("2001:db8::19  not probed: this machine has no route to it"),
        "{text}"
    );

    // A policy host at a private address with no route from here either: the address guard's
    // refusal (the domain's fault) comes first, not "unreachable from the exporter".
    let private = domain(Lab::builder(), "ten.test")
        .dns(|d| d.a("mta-sts.ten.test", Ipv4Addr::new(10, 9, 9, 9)))
        .good_mx("ten.test", 10, "mx1.ten.test")
        .start()
        .await;
    assert!(mta_sts_exporter::probe::route::no_route(Ipv4Addr::new(10, 9, 9, 9).into()).is_some());
    let mut settings = both_families(&private);
    settings.fetch.address_policy.allow_private = false;
    let report = Checker::new(settings, private.trust())
        .unwrap()
        .check("ten.test")
        .await;
    let found = codes(&report);
    assert!(found.contains(&Code::TargetAddressForbidden), "{found:?}");
    assert!(!found.contains(&Code::UnreachableFromExporter), "{found:?}");

    // An IPv6-only MX: unknown from here, not refused.
    let report = check_both(&lab, "six.test").await;
    assert_eq!(
        report.verdict,
        Verdict::Undetermined,
        "{:#?}",
        report.findings
    );
    assert!(
        codes(&report).contains(&Code::UnreachableFromExporter),
        "{:#?}",
        report.findings
    );
    assert!(!report.has_critical(), "{:#?}", report.findings);
}
