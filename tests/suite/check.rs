//! End-to-end checks of one domain against the in-process lab (fake DNS, HTTPS and SMTP).

use crate::support;

use mta_sts_exporter::finding::{Code, Severity};
use mta_sts_exporter::report::{DomainReport, PolicyStatus, RecordStatus, TlsRptStatus, Verdict};
use mta_sts_exporter::stage::policy::{LineEnding, Mode};
use support::certs::Validity;
use support::https::Reply;
use support::lab::{codes, enforce_policy, Lab, LabBuilder};
use support::smtp::SmtpBehaviour;

const D: &str = "example.test";

fn finding(report: &DomainReport, code: Code) -> &mta_sts_exporter::finding::Finding {
    report
        .findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code} in {:#?}", report.findings))
}

/// A lab with the healthy example domain, changed by `f`.
async fn lab_with(f: impl FnOnce(LabBuilder) -> LabBuilder) -> Lab {
    f(Lab::builder()).start().await
}

/// Record, one good MX and TLS-RPT, with the policy body given.
fn with_policy(b: LabBuilder, body: &str) -> LabBuilder {
    b.record(D, "v=STSv1; id=1;")
        .policy(D, Reply::policy(body))
        .good_mx(D, 10, "mx1.example.test")
        .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_enforced_domain_has_no_findings() {
    let lab = lab_with(|b| b.healthy(D)).await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), Vec::<&str>::new(), "{:#?}", r.findings);
    assert_eq!(r.verdict, Verdict::EnforcedDeliverable);
    assert_eq!(r.record.status, RecordStatus::Valid);
    assert_eq!(r.record.id.as_deref(), Some("20260101T000000"));
    assert_eq!(r.policy.status, PolicyStatus::Valid);
    assert_eq!(r.mode(), Some(Mode::Enforce));
    assert_eq!(r.tlsrpt.status, TlsRptStatus::Valid);
    let mx = &r.mx.hosts[0];
    assert_eq!(mx.name, "mx1.example.test");
    assert_eq!(mx.covered_by.as_deref(), Some("mx1.example.test"));
    assert_eq!(mx.deliverable(), Some(true));
    assert_eq!(mx.probes.len(), 1);
    let tls = mx.probes[0].tls.as_ref().unwrap();
    assert_eq!(tls.version.as_deref(), Some("TLSv1.3"));
    assert!(tls.verdict.as_ref().unwrap().is_valid());
    assert!(!r.has_critical());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_and_none_modes() {
    let testing = "version: STSv1\nmode: testing\nmax_age: 86400\nmx: mx1.example.test\n";
    let lab = lab_with(|b| with_policy(b, testing)).await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["policy_mode_testing"]);
    assert_eq!(r.verdict, Verdict::TestingReady);

    let none = "version: STSv1\nmode: none\nmax_age: 86400\n";
    let lab = lab_with(|b| with_policy(b, none)).await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["policy_mode_none"]);
    assert_eq!(r.verdict, Verdict::ModeNone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_record_means_no_policy_and_nothing_fetched() {
    let lab = lab_with(|b| {
        b.good_mx(D, 10, "mx1.example.test")
            .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["sts_record_missing"]);
    assert_eq!(r.record.status, RecordStatus::Missing);
    assert_eq!(r.policy.status, PolicyStatus::NotFetched);
    assert_eq!(r.verdict, Verdict::NoPolicy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_served_without_record_is_reported() {
    let lab = lab_with(|b| {
        b.policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
            .good_mx(D, 10, "mx1.example.test")
            .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(
        codes(&r),
        vec!["policy_without_record", "sts_record_missing"]
    );
    assert_eq!(r.verdict, Verdict::NoPolicy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_faults() {
    // two STS records
    let lab = lab_with(|b| {
        with_policy(b, &enforce_policy(&["mx1.example.test"])).record(D, "v=STSv1; id=2;")
    })
    .await;
    let r = lab.check(D).await;
    assert!(
        codes(&r).contains(&"sts_record_multiple"),
        "{:?}",
        codes(&r)
    );
    assert_eq!(r.record.status, RecordStatus::Multiple);
    assert_eq!(r.verdict, Verdict::NoPolicy);

    // bad id
    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=2024-01-01;")
            .policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
            .good_mx(D, 10, "mx1.example.test")
            .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["sts_record_invalid"]);
    assert!(finding(&r, Code::StsRecordInvalid)
        .message
        .contains("2024-01-01"));
    assert_eq!(r.record.status, RecordStatus::Invalid);
    assert_eq!(r.verdict, Verdict::NoPolicy);
    assert!(r.has_critical());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_via_cname_is_followed_and_recorded() {
    let lab = lab_with(|b| {
        b.dns(|d| {
            d.cname("_mta-sts.example.test", "_mta-sts.provider.test")
                .txt("_mta-sts.provider.test", "v=STSv1; id=77;")
        })
        .policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
        .good_mx(D, 10, "mx1.example.test")
        .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["sts_record_cname"]);
    assert_eq!(
        r.record.cname_chain,
        vec!["_mta-sts.provider.test".to_string()]
    );
    assert_eq!(r.record.id.as_deref(), Some("77"));
    assert_eq!(r.verdict, Verdict::EnforcedDeliverable);
}

/// A domain that does not exist (NXDOMAIN) beside one that exists without MX (NODATA): only the
/// second falls back to its address records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_that_does_not_exist_beside_a_domain_without_mx() {
    let lab =
        lab_with(|b| b.dns(|d| d.a("bare.test", std::net::Ipv4Addr::new(127, 0, 0, 1)))).await;
    let gone = lab.check("gone.test").await;
    let c = codes(&gone);
    assert!(c.contains(&"domain_not_found"), "{c:?}");
    assert!(!c.contains(&"mx_missing"), "{c:?}");
    let f = finding(&gone, Code::DomainNotFound);
    assert_eq!(
        f.message,
        "the domain does not exist (its MX lookup answered NXDOMAIN): no MX and no address records, so mail to it bounces"
    );
    assert!(gone.has_critical());

    let bare = lab.check("bare.test").await;
    let c = codes(&bare);
    assert!(c.contains(&"mx_missing"), "{c:?}");
    assert!(!c.contains(&"domain_not_found"), "{c:?}");
    assert!(finding(&bare, Code::MxMissing).message.contains("A/AAAA"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_timeout_is_lookup_failed_not_missing() {
    let lab = lab_with(|b| {
        b.dns(|d| {
            d.silent("_mta-sts.example.test")
                .servfail("_smtp._tls.example.test")
        })
        .policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
        .good_mx(D, 10, "mx1.example.test")
    })
    .await;
    let started = std::time::Instant::now();
    let r = lab.check(D).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let c = codes(&r);
    assert!(c.contains(&"sts_record_lookup_failed"), "{c:?}");
    assert!(c.contains(&"tlsrpt_lookup_failed"), "{c:?}");
    assert!(!c.contains(&"sts_record_missing") && !c.contains(&"tlsrpt_missing"));
    assert_eq!(r.record.status, RecordStatus::LookupFailed);
    assert_eq!(r.tlsrpt.status, TlsRptStatus::LookupFailed);
    assert_eq!(r.verdict, Verdict::Undetermined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_fetch_faults() {
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::Status(404), "policy_http_status"),
        (
            Reply::Redirect("https://example.test/mta-sts.txt".into()),
            "policy_redirect",
        ),
        (
            Reply::with_content_type(&enforce_policy(&["mx1.example.test"]), "text/html"),
            "policy_content_type",
        ),
        (
            Reply::Body {
                status: 200,
                content_type: "text/plain".into(),
                bytes: vec![b'#'; 100 * 1024],
            },
            "policy_too_large",
        ),
    ];
    for (reply, expected) in cases {
        let lab = lab_with(|b| {
            b.record(D, "v=STSv1; id=1;")
                .policy(D, reply)
                .good_mx(D, 10, "mx1.example.test")
                .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
        })
        .await;
        let r = lab.check(D).await;
        assert_eq!(codes(&r), vec![expected], "{:#?}", r.findings);
        assert_eq!(
            finding(&r, Code::from_name(expected).unwrap()).severity,
            Severity::Critical
        );
        assert_eq!(r.verdict, Verdict::NoPolicy, "{expected}");
        assert_ne!(r.policy.status, PolicyStatus::Valid, "{expected}");
    }
    // the redirect names its target
    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=1;")
            .policy(D, Reply::Redirect("https://www.example.test/x".into()))
    })
    .await;
    let r = lab.check(D).await;
    assert!(finding(&r, Code::PolicyRedirect)
        .message
        .contains("https://www.example.test/x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_body_faults() {
    let cases = [
        (
            "version: STSv1\nmode: enforce\nmax_age: 86400\n",
            "policy_mx_missing",
            0,
        ),
        (
            "version: STSv1\nmode: enforce\nmax_age: 1d\nmx: mx1.example.test\n",
            "policy_max_age_invalid",
            3,
        ),
    ];
    for (body, expected, line) in cases {
        let lab = lab_with(|b| with_policy(b, body)).await;
        let r = lab.check(D).await;
        assert_eq!(codes(&r), vec![expected], "{:#?}", r.findings);
        assert_eq!(r.policy.status, PolicyStatus::Invalid);
        assert_eq!(r.verdict, Verdict::NoPolicy);
        if line > 0 {
            assert_eq!(r.findings[0].line, Some(line));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_and_unknown_keys_are_fine() {
    let body = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmax_age: 604800\r\nfoo: bar\r\n";
    let lab = lab_with(|b| with_policy(b, body)).await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["policy_unknown_field"]);
    assert_eq!(finding(&r, Code::PolicyUnknownField).line, Some(5));
    assert_eq!(r.policy.line_ending, Some(LineEnding::Crlf));
    assert_eq!(r.verdict, Verdict::EnforcedDeliverable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_host_certificate_faults_keep_the_expiry() {
    for (validity, names, expected) in [
        (
            Validity::ExpiredDaysAgo(3),
            "mta-sts.example.test",
            "policy_cert_expired",
        ),
        (
            Validity::Valid,
            "www.example.test",
            "policy_cert_name_mismatch",
        ),
        (
            Validity::ExpiresInDays(5),
            "mta-sts.example.test",
            "policy_cert_expiring",
        ),
    ] {
        let builder = Lab::builder();
        let leaf = builder.ca.leaf(&[names], validity);
        let lab = with_policy_leaf(builder, &leaf).start().await;
        let r = lab.check(D).await;
        assert_eq!(codes(&r), vec![expected], "{:#?}", r.findings);
        let fetch = r.policy.fetch.as_ref().unwrap();
        assert_eq!(
            fetch.tls.as_ref().unwrap().leaf.as_ref().unwrap().not_after,
            leaf.not_after
        );
        if expected == "policy_cert_expiring" {
            assert_eq!(r.policy.status, PolicyStatus::Valid);
            assert_eq!(
                finding(&r, Code::PolicyCertExpiring).severity,
                Severity::Warning
            );
        } else {
            // a sender cannot use a policy served over an invalid certificate
            assert_eq!(r.policy.status, PolicyStatus::Unavailable);
            assert_eq!(r.verdict, Verdict::NoPolicy);
        }
    }
}

fn with_policy_leaf(b: LabBuilder, leaf: &support::certs::Leaf) -> LabBuilder {
    b.record(D, "v=STSv1; id=1;")
        .policy_with_leaf(
            D,
            leaf,
            Reply::policy(&enforce_policy(&["mx1.example.test"])),
        )
        .good_mx(D, 10, "mx1.example.test")
        .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_coverage() {
    // mx2 is not covered: enforce refuses it
    let lab = lab_with(|b| {
        with_policy(b, &enforce_policy(&["mx1.example.test"])).good_mx(D, 20, "mx2.example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["mx_not_covered"]);
    let f = finding(&r, Code::MxNotCovered);
    assert_eq!(f.host.as_deref(), Some("mx2.example.test"));
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(r.verdict, Verdict::EnforcedRefused);
    assert_eq!(r.refused_mx, vec!["mx2.example.test".to_string()]);

    // a wildcard covers one label
    let lab = lab_with(|b| with_policy(b, &enforce_policy(&["*.example.test"]))).await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), Vec::<&str>::new());
    assert_eq!(r.mx.hosts[0].covered_by.as_deref(), Some("*.example.test"));

    // ... and only one
    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=1;")
            .policy(D, Reply::policy(&enforce_policy(&["*.example.test"])))
            .good_mx(D, 10, "a.mx.example.test")
            .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["mx_not_covered", "mx_pattern_unused"]);
    assert_eq!(r.verdict, Verdict::EnforcedRefused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsrpt_missing_and_invalid() {
    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=1;")
            .policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
            .good_mx(D, 10, "mx1.example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["tlsrpt_missing"]);
    assert_eq!(finding(&r, Code::TlsrptMissing).severity, Severity::Info);

    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=1;")
            .policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
            .good_mx(D, 10, "mx1.example.test")
            .tlsrpt(D, "v=TLSRPTv1; rua=ftp://reports.example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["tlsrpt_invalid"]);
    assert_eq!(r.tlsrpt.status, TlsRptStatus::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_mx_certificate_is_critical_and_keeps_its_expiry() {
    let builder = Lab::builder();
    let leaf = builder
        .ca
        .leaf(&["mx1.example.test"], Validity::ExpiredDaysAgo(3));
    let lab = builder
        .record(D, "v=STSv1; id=1;")
        .policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
        .mx(
            D,
            10,
            "mx1.example.test",
            Some(SmtpBehaviour::serving(&leaf)),
        )
        .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
        .start()
        .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["mx_cert_expired"]);
    let f = finding(&r, Code::MxCertExpired);
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.host.as_deref(), Some("mx1.example.test"));
    assert!(f.message.contains("3 days ago"), "{}", f.message);
    let mx = &r.mx.hosts[0];
    assert_eq!(mx.deliverable(), Some(false));
    assert_eq!(mx.starttls(), Some(true));
    assert_eq!(mx.cert_valid(), Some(false));
    let info = mx.probes[0].tls.as_ref().unwrap().leaf.as_ref().unwrap();
    assert_eq!(info.not_after, leaf.not_after);
    assert_eq!(r.verdict, Verdict::EnforcedRefused);

    let text = mta_sts_exporter::render::render_text(&r, mta_sts_exporter::clock::unix_now());
    let date = mta_sts_exporter::clock::format_date(leaf.not_after);
    assert!(
        text.contains(&format!("EXPIRED {date} (3 days ago)")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_faults_are_warnings_in_testing_mode() {
    let testing = "version: STSv1\nmode: testing\nmax_age: 604800\nmx: mx1.example.test\n";
    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=1;")
            .policy(D, Reply::policy(testing))
            .mx(
                D,
                10,
                "mx1.example.test",
                Some(SmtpBehaviour::no_starttls()),
            )
            .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let r = lab.check(D).await;
    assert_eq!(
        codes(&r),
        vec!["policy_mode_testing", "starttls_not_offered"]
    );
    assert_eq!(
        finding(&r, Code::StarttlsNotOffered).severity,
        Severity::Warning
    );
    assert_eq!(r.verdict, Verdict::TestingNotReady);
    assert!(!r.has_critical());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_mx_certificate_is_a_warning_and_still_deliverable() {
    let builder = Lab::builder();
    let leaf = builder
        .ca
        .leaf(&["mx1.example.test"], Validity::ExpiresInDays(5));
    let lab = builder
        .record(D, "v=STSv1; id=1;")
        .policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
        .mx(
            D,
            10,
            "mx1.example.test",
            Some(SmtpBehaviour::serving(&leaf)),
        )
        .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
        .start()
        .await;
    let r = lab.check(D).await;
    assert_eq!(codes(&r), vec!["mx_cert_expiring"]);
    assert_eq!(
        finding(&r, Code::MxCertExpiring).severity,
        Severity::Warning
    );
    assert_eq!(r.verdict, Verdict::EnforcedDeliverable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_allowed() {
    let lab = lab_with(|b| b.healthy(D)).await;
    let mut settings = lab.settings();
    settings.address_policy.allow_private = false;
    settings.fetch.address_policy.allow_private = false;
    let checker = mta_sts_exporter::check::Checker::new(settings, lab.trust()).unwrap();
    let r = checker.check(D).await;
    let c = codes(&r);
    assert!(c.contains(&"target_address_forbidden"), "{c:?}");
    assert_eq!(
        lab.smtp[0].connections(),
        0,
        "no connection to a forbidden address"
    );
    assert_eq!(lab.https.requests(), 0);
}

/// A checker of `lab` whose whole check is cut off after one second, while each SMTP phase
/// and the policy fetch would wait much longer.
fn one_second_checker(lab: &Lab) -> mta_sts_exporter::check::Checker {
    let mut settings = lab.settings();
    settings.check_timeout = std::time::Duration::from_secs(1);
    settings.smtp.greeting_timeout = std::time::Duration::from_secs(60);
    settings.fetch.total_timeout = std::time::Duration::from_secs(60);
    mta_sts_exporter::check::Checker::new(settings, lab.trust()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mx_still_probing_at_the_deadline_is_abandoned_and_the_rest_kept() {
    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=1;")
            .policy(
                D,
                Reply::policy(&enforce_policy(&["mx1.example.test", "mx2.example.test"])),
            )
            .good_mx(D, 10, "mx1.example.test")
            .mx(D, 20, "mx2.example.test", Some(SmtpBehaviour::silent()))
            .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let started = std::time::Instant::now();
    let r = one_second_checker(&lab).check(D).await;
    let elapsed = started.elapsed();
    // Cut off at the deadline, not after the 60 s greeting timeout.
    assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
    assert_eq!(codes(&r), ["check_timed_out"], "{:#?}", r.findings);
    let f = finding(&r, Code::CheckTimedOut);
    assert_eq!(f.host.as_deref(), Some("mx2.example.test"));
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("1s"), "{}", f.message);
    // What finished is kept: the policy, coverage of both, the probe of mx1.
    assert_eq!(r.policy.status, PolicyStatus::Valid);
    let mx1 = &r.mx.hosts[0];
    let mx2 = &r.mx.hosts[1];
    assert_eq!(
        (mx1.name.as_str(), mx1.deliverable()),
        ("mx1.example.test", Some(true))
    );
    assert_eq!((mx2.name.as_str(), mx2.covered), ("mx2.example.test", true));
    assert_eq!((mx2.starttls(), mx2.deliverable()), (None, None));
    // mx2 might refuse mail: whether senders deliver cannot be told.
    assert_eq!(r.verdict, Verdict::Undetermined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncovered_mx_still_decides_the_verdict_when_another_times_out() {
    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=1;")
            .policy(D, Reply::policy(&enforce_policy(&["mx1.example.test"])))
            .good_mx(D, 10, "mx1.example.test")
            .mx(D, 20, "mx2.example.test", Some(SmtpBehaviour::silent()))
    })
    .await;
    let r = one_second_checker(&lab).check(D).await;
    let c = codes(&r);
    assert!(
        c.contains(&"check_timed_out") && c.contains(&"mx_not_covered"),
        "{c:?}"
    );
    assert_eq!(r.verdict, Verdict::EnforcedRefused);
    assert_eq!(r.refused_mx, ["mx2.example.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_fetch_still_running_at_the_deadline_is_abandoned() {
    let lab = lab_with(|b| {
        b.record(D, "v=STSv1; id=1;")
            .policy(D, Reply::Silent)
            .good_mx(D, 10, "mx1.example.test")
            .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let started = std::time::Instant::now();
    let r = one_second_checker(&lab).check(D).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(codes(&r), ["check_timed_out"], "{:#?}", r.findings);
    let f = finding(&r, Code::CheckTimedOut);
    assert_eq!(f.host.as_deref(), Some("mta-sts.example.test"));
    assert_eq!(r.policy.status, PolicyStatus::Unavailable);
    // The record advertises a policy that could not be fetched in time: unknown, not "none".
    assert_eq!(r.verdict, Verdict::Undetermined);
    assert!(r.refused_mx.is_empty());
    assert_eq!(
        r.mx.hosts[0].deliverable(),
        None,
        "no policy: nothing to deliver under"
    );
    assert_eq!(
        r.mx.hosts[0].starttls(),
        Some(true),
        "the MX probe finished and is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unadvertised_policy_fetch_cut_off_at_the_deadline_reports_nothing() {
    let lab = lab_with(|b| {
        b.policy(D, Reply::Silent)
            .good_mx(D, 10, "mx1.example.test")
            .tlsrpt(D, "v=TLSRPTv1; rua=mailto:tls@example.test")
    })
    .await;
    let r = one_second_checker(&lab).check(D).await;
    assert_eq!(codes(&r), ["sts_record_missing"], "{:#?}", r.findings);
    assert_eq!(r.policy.status, PolicyStatus::NotFetched);
    assert_eq!(r.verdict, Verdict::NoPolicy);
}

/// Six domains, each with its own MX name, all on one slow address probed one at a time: the
/// last waits about five probes for its slot, well past its 2 s deadline. Waiting for a
/// politeness slot does not count, so none is undetermined because the others share its
/// address; every report keeps its address and its probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_a_slow_mx_address_does_not_make_a_domain_undetermined() {
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::time::Duration;
    let domains: Vec<String> = (0..6).map(|i| format!("d{i}.queue.test")).collect();
    let mx_names: Vec<String> = domains.iter().map(|d| format!("mx.{d}")).collect();
    let mut builder = Lab::builder();
    let names: Vec<&str> = mx_names.iter().map(String::as_str).collect();
    let leaf = builder.ca.leaf(&names, Validity::Valid);
    // About 0.7 s per probe: the greeting trickles in.
    let slow = SmtpBehaviour {
        greeting: support::smtp::Greeting::Trickle {
            text: "220 mx.queue.test ESMTP".into(),
            interval: Duration::from_millis(30),
        },
        ..SmtpBehaviour::serving(&leaf)
    };
    builder = builder.mx(&domains[0], 10, &mx_names[0], Some(slow));
    for (domain, mx) in domains.iter().zip(&mx_names) {
        builder = builder
            .record(domain, "v=STSv1; id=1;")
            .policy(domain, Reply::policy(&enforce_policy(&[mx])))
            .tlsrpt(domain, "v=TLSRPTv1; rua=mailto:tls@queue.test");
        if domain != &domains[0] {
            let (domain, mx) = (domain.clone(), mx.clone());
            builder =
                builder.dns(move |d| d.mx(&domain, 10, &mx).a(&mx, Ipv4Addr::new(127, 0, 1, 1)));
        }
    }
    let lab = builder.start().await;
    let mut settings = lab.settings();
    settings.check_timeout = Duration::from_secs(2);
    let cache = Arc::new(mta_sts_exporter::probe::cache::ProbeCache::new(
        Duration::from_secs(600),
        1,
    ));
    let checker =
        mta_sts_exporter::check::Checker::with_cache(settings, lab.trust(), cache).unwrap();
    let started = std::time::Instant::now();
    let reports = futures_util::future::join_all(domains.iter().map(|d| checker.check(d))).await;
    // The queue really was longer than the deadline.
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for r in &reports {
        assert_eq!(
            r.verdict,
            Verdict::EnforcedDeliverable,
            "{}: {:#?}",
            r.domain,
            r.findings
        );
        assert!(codes(r).is_empty(), "{}: {:?}", r.domain, codes(r));
        let host = &r.mx.hosts[0];
        assert_eq!(host.addresses, [std::net::IpAddr::from([127, 0, 1, 1])]);
        assert_eq!(host.probes.len(), 1);
        assert!(host.not_probed.is_empty());
    }
    assert_eq!(lab.smtp[0].connections(), 6);
}
