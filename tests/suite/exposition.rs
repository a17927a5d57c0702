//! The `/metrics` exposition as a contract: golden files for a fixed set of reports (every
//! change to the exposition shows in review), the series budget of a healthy domain, and
//! switching families on and off.

use crate::support;

use std::net::IpAddr;
use std::sync::Arc;

use mta_sts_exporter::finding::{Code, Finding, Severity};
use mta_sts_exporter::metrics::{encode, Exposition, Selection, SelectionHandle};
use mta_sts_exporter::probe::https::{FetchOutcome, PolicyFetch};
use mta_sts_exporter::probe::smtp::{SmtpOutcome, SmtpProbe};
use mta_sts_exporter::probe::tls::TlsObservation;
use mta_sts_exporter::report::{
    Delivery, DomainReport, HostTransport, MxHostReport, MxStatus, PolicyStatus, RecordStatus,
    TlsRptStatus, Verdict,
};
use mta_sts_exporter::stage::cert::{CertFault, CertInfo, CertVerdict};
use mta_sts_exporter::stage::policy::{Mode, Policy};
use mta_sts_exporter::store::{DomainMeta, Store};
use support::lab::Lab;

/// 2026-01-01T00:00:00Z: the fixed "now" of the golden reports.
const CHECKED_AT: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

// ------------------------------------------------------------------------------------------
// Tests

#[test]
fn default_exposition_matches_golden_file() {
    golden(
        "metrics-default.prom",
        &render(&golden_store(), Selection::default()),
    );
}

#[test]
fn detailed_exposition_matches_golden_file() {
    let detailed = Selection::parse(["detailed"], []).unwrap();
    golden("metrics-detailed.prom", &render(&golden_store(), detailed));
}

/// A healthy enforce domain with one MX of its own, checked for real against the lab, costs at
/// most 8 series by default (docs/metrics.md, "Series budget"); one with an expired MX
/// certificate only a few more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_single_mx_domain_fits_the_series_budget() {
    let lab = Lab::builder().healthy("healthy.test").start().await;
    let report = lab.check("healthy.test").await;
    assert_eq!(report.verdict, Verdict::EnforcedDeliverable, "{report:#?}");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let (series, lines) = domain_series(report, Selection::default());
    assert!(
        series <= 8,
        "a healthy single-MX domain costs {series} series, over the budget of 8:\n{}",
        lines.join("\n")
    );
    // The budget is met by the families docs/metrics.md lists for a healthy domain, all of them.
    assert_eq!(series, 8, "{}", lines.join("\n"));

    let store = golden_store();
    let expired = store.get("expired.test").unwrap().report.unwrap();
    let (series, lines) = domain_series((*expired).clone(), Selection::default());
    assert!(series <= 12, "{series}:\n{}", lines.join("\n"));

    // The detailed set, nearly what used to be the default: over twice as many.
    let report = lab.check("healthy.test").await;
    let (series, _) = domain_series(report, Selection::all());
    assert!(series > 16, "{series}");
}

#[test]
fn families_are_included_and_excluded_by_name() {
    let store = golden_store();
    let default = render(&store, Selection::default());
    assert!(!default.contains("mta_sts_mx_starttls"));
    assert!(!default.contains("mta_sts_record_valid"));

    let with_starttls = render(
        &store,
        Selection::parse(["mta_sts_mx_starttls"], []).unwrap(),
    );
    assert!(with_starttls.contains("mta_sts_mx_starttls{mx=\"mx.healthy.test\",family=\"ipv4\"} 1"));
    assert!(!with_starttls.contains("mta_sts_mx_cert_valid"));

    let without = render(
        &store,
        Selection::parse(
            ["detailed"],
            ["mta_sts_finding", "mta_sts_policy_changes_total"],
        )
        .unwrap(),
    );
    assert!(!without.contains("mta_sts_finding{"), "{without}");
    assert!(!without.contains("mta_sts_policy_changes"), "{without}");
    assert!(without.contains("mta_sts_record_valid{domain=\"healthy.test\"} 1"));
    assert!(
        without.contains("mta_sts_mx_finding{"),
        "a family is excluded by its exact name"
    );
}

#[test]
fn unknown_family_in_the_configuration_is_refused_at_load() {
    let dir = support::http::TempDir::new("metrics-config");
    let path = dir.path("config.yml");
    let text = "metrics:\n  include: [detailed, mta_sts_mx_startls]\ndomains: [example.com]\n";
    std::fs::write(&path, text).unwrap();
    let err = mta_sts_exporter::config::load(&path)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:2:23: metrics.include[1]: unknown metric family \"mta_sts_mx_startls\" (did you \
             mean \"mta_sts_mx_starttls\"?); use a family name from docs/metrics.md or a set \
             (default, detailed, all)",
            path.display()
        )
    );
    std::fs::write(
        &path,
        "metrics:\n  exclude: mta_sts_finding\ndomains: [example.com]\n",
    )
    .unwrap();
    let err = mta_sts_exporter::config::load(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("metrics.exclude: expected a list"), "{err}");
    std::fs::write(
        &path,
        "metrics:\n  includes: [detailed]\ndomains: [example.com]\n",
    )
    .unwrap();
    let err = mta_sts_exporter::config::load(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key \"includes\""), "{err}");

    let good = "metrics:\n  include: [detailed]\n  exclude: [mta_sts_mx_tls_version_info]\ndomains: [example.com]\n";
    std::fs::write(&path, good).unwrap();
    let config = mta_sts_exporter::config::load(&path).unwrap();
    assert_eq!(
        config.metrics,
        Selection::parse(["detailed"], ["mta_sts_mx_tls_version_info"]).unwrap()
    );
    std::fs::write(&path, "domains: [example.com]\n").unwrap();
    let config = mta_sts_exporter::config::load(&path).unwrap();
    assert_eq!(config.metrics, Selection::default());
}

// ------------------------------------------------------------------------------------------
// Rendering and counting

fn render(store: &Arc<Store>, selection: Selection) -> String {
    let registry = Exposition::new(store.clone(), None)
        .with_selection(SelectionHandle::new(selection))
        .registry();
    let text = encode(&registry, false).expect("encodes");
    // The build labels change with every release and commit; nothing else varies.
    text.lines()
        .map(|line| {
            if line.starts_with("mta_sts_exporter_build_info{") {
                "mta_sts_exporter_build_info{version=\"…\",revision=\"…\"} 1".to_string()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The series one report adds to the exposition of an empty store (the exporter's own).
fn domain_series(report: DomainReport, selection: Selection) -> (usize, Vec<String>) {
    let empty = Arc::new(Store::new());
    let base: Vec<String> = series_lines(&render(&empty, selection));
    let store = Arc::new(Store::new());
    store.set_domains(vec![(report.domain.to_string(), DomainMeta::default())]);
    store.record(report);
    let lines: Vec<String> = series_lines(&render(&store, selection))
        .into_iter()
        .filter(|l| !base.contains(l))
        .filter(|l| !l.starts_with("mta_sts_exporter_"))
        .collect();
    (lines.len(), lines)
}

fn series_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let expected_lines: Vec<&str> = expected.lines().collect();
        let actual_lines: Vec<&str> = actual.lines().collect();
        let gone: Vec<&&str> = expected_lines
            .iter()
            .filter(|l| !actual_lines.contains(l))
            .take(10)
            .collect();
        let new: Vec<&&str> = actual_lines
            .iter()
            .filter(|l| !expected_lines.contains(l))
            .take(10)
            .collect();
        panic!(
            "{name} differs (UPDATE_GOLDEN=1 cargo test --test suite exposition:: to accept)\n\
             only in the golden file:\n  {}\nonly in the output:\n  {}",
            gone.iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n  "),
            new.iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

// ------------------------------------------------------------------------------------------
// The fixed reports: healthy enforce, testing not ready, expired MX certificate, no policy,
// undetermined.

fn golden_store() -> Arc<Store> {
    let reports = vec![
        healthy(),
        testing_not_ready(),
        expired_mx_cert(),
        no_policy(),
        undetermined(),
    ];
    let store = Arc::new(Store::new());
    let mut metas: Vec<(String, DomainMeta)> = reports
        .iter()
        .map(|r| (r.domain.to_string(), DomainMeta::default()))
        .collect();
    metas[0].1.labels.insert("team".into(), "mail".into());
    // Configured but not checked yet: only its info series.
    metas.push(("pending.test".into(), DomainMeta::default()));
    store.set_domains(metas);
    for report in reports {
        store.record(report);
    }
    store
}

fn healthy() -> DomainReport {
    let mut r = enforced("healthy.test", Mode::Enforce);
    r.verdict = Verdict::EnforcedDeliverable;
    r.mx.hosts.push(mx_host(
        "mx.healthy.test",
        true,
        probe_ok("mx.healthy.test", 90),
    ));
    r.drift = Some(mta_sts_exporter::report::DriftStatus {
        stale: false,
        changes: 2,
        id_first_seen: CHECKED_AT - 30 * DAY,
        policy_first_seen: CHECKED_AT - 30 * DAY,
        cached_policy_risk_until: None,
    });
    r
}

fn testing_not_ready() -> DomainReport {
    let mut r = enforced("testing.test", Mode::Testing);
    r.verdict = Verdict::TestingNotReady;
    // An earlier enforce policy, cached under the same id, does not cover mx2.
    r.drift = Some(mta_sts_exporter::report::DriftStatus {
        stale: true,
        changes: 1,
        id_first_seen: CHECKED_AT - 30 * DAY,
        policy_first_seen: CHECKED_AT - DAY,
        cached_policy_risk_until: Some(CHECKED_AT + 6 * DAY),
    });
    r.refused_mx.push("mx2.testing.test".into());
    r.mx.hosts.push(mx_host(
        "mx1.testing.test",
        true,
        probe_ok("mx1.testing.test", 60),
    ));
    r.mx.hosts.push(mx_host(
        "mx2.testing.test",
        false,
        probe_ok("mx2.testing.test", 60),
    ));
    r.findings.push(
        Finding::new(Code::MxNotCovered, "mx2.testing.test is not covered")
            .with_severity(Severity::Warning)
            .with_host("mx2.testing.test"),
    );
    r.findings
        .push(Finding::new(Code::PolicyModeTesting, "testing mode"));
    r
}

fn expired_mx_cert() -> DomainReport {
    let mut r = enforced("expired.test", Mode::Enforce);
    r.verdict = Verdict::EnforcedRefused;
    r.refused_mx.push("mx.expired.test".into());
    let mut probe = probe_ok("mx.expired.test", -2);
    if let Some(tls) = &mut probe.tls {
        tls.verdict = Some(CertVerdict {
            trusted: true,
            name_matches: true,
            time_valid: false,
            first_error: Some(CertFault::Expired),
            trust_error: None,
            detail: None,
        });
    }
    let mut host = mx_host("mx.expired.test", true, probe);
    host.transport = HostTransport::CertInvalid;
    host.delivery = Some(Delivery::Refused);
    r.mx.hosts.push(host);
    r.findings.push(
        Finding::new(
            Code::MxCertExpired,
            "the certificate of mx.expired.test expired",
        )
        .with_host("mx.expired.test"),
    );
    r.tlsrpt.status = TlsRptStatus::Missing;
    r.findings
        .push(Finding::new(Code::TlsrptMissing, "no TLS-RPT record"));
    r
}

fn no_policy() -> DomainReport {
    let mut r = DomainReport::skeleton("nopolicy.test");
    r.checked_at = CHECKED_AT;
    r.duration_seconds = 0.2;
    r.verdict = Verdict::NoPolicy;
    r.mx.status = MxStatus::Found;
    let mut host = mx_host("mx.nopolicy.test", false, probe_ok("mx.nopolicy.test", 45));
    host.delivery = None;
    r.mx.hosts.push(host);
    r.findings
        .push(Finding::new(Code::StsRecordMissing, "no _mta-sts record"));
    r.findings
        .push(Finding::new(Code::TlsrptMissing, "no TLS-RPT record"));
    r
}

fn undetermined() -> DomainReport {
    let mut r = DomainReport::skeleton("undetermined.test");
    r.checked_at = CHECKED_AT;
    r.duration_seconds = 5.0;
    r.verdict = Verdict::Undetermined;
    r.record.status = RecordStatus::LookupFailed;
    r.mx.status = MxStatus::LookupFailed;
    r.tlsrpt.status = TlsRptStatus::LookupFailed;
    r.findings
        .push(Finding::new(Code::StsRecordLookupFailed, "SERVFAIL"));
    r.findings
        .push(Finding::new(Code::MxLookupFailed, "SERVFAIL"));
    r.findings
        .push(Finding::new(Code::TlsrptLookupFailed, "SERVFAIL"));
    r
}

/// A domain with a valid record, a valid policy of `mode` fetched over a good certificate,
/// TLS-RPT, and no MX yet.
fn enforced(domain: &str, mode: Mode) -> DomainReport {
    let mut r = DomainReport::skeleton(domain);
    r.checked_at = CHECKED_AT;
    r.duration_seconds = 0.4;
    r.record.status = RecordStatus::Valid;
    r.record.id = Some("20260101".into());
    r.policy.status = PolicyStatus::Valid;
    r.policy.policy = Some(Box::new(Policy {
        version: "STSv1".into(),
        mode,
        max_age: 604_800,
        mx: vec![format!("mx1.{domain}"), format!("mx.{domain}")],
        extensions: vec![],
    }));
    let host = format!("mta-sts.{domain}");
    r.policy.fetch = Some(Box::new(PolicyFetch {
        url: format!("https://{host}/.well-known/mta-sts.txt"),
        host: host.clone(),
        address: Some(IpAddr::from([192, 0, 2, 1])),
        status: Some(200),
        location: None,
        content_type: Some("text/plain".into()),
        content_encoding: None,
        body: None,
        body_bytes: 80,
        tls: Some(tls(&host, 60)),
        outcome: FetchOutcome::Fetched,
        duration_seconds: 0.1,
    }));
    r.mx.status = MxStatus::Found;
    r.tlsrpt.status = TlsRptStatus::Valid;
    r
}

fn mx_host(name: &str, covered: bool, probe: SmtpProbe) -> MxHostReport {
    let valid = probe
        .tls
        .as_ref()
        .and_then(|t| t.verdict.as_ref())
        .is_some_and(|v| v.is_valid());
    let mut host = MxHostReport::new(name.to_string(), 10);
    host.covered_by = covered.then(|| name.to_string());
    host.covered = covered;
    host.addresses = vec![probe.address];
    host.probes = vec![Arc::new(probe)];
    host.transport = if valid {
        HostTransport::Valid
    } else {
        HostTransport::CertInvalid
    };
    host.delivery = Some(if covered && valid {
        Delivery::Deliverable
    } else {
        Delivery::Refused
    });
    host
}

/// A probe whose STARTTLS worked, with a leaf expiring `days_left` days after CHECKED_AT.
fn probe_ok(host: &str, days_left: i64) -> SmtpProbe {
    SmtpProbe {
        host: host.to_string(),
        address: IpAddr::from([192, 0, 2, 25]),
        greeting: Some(format!("220 {host} ESMTP")),
        starttls_offered: Some(true),
        tls: Some(tls(host, days_left)),
        outcome: SmtpOutcome::Ok,
        duration_seconds: 0.05,
        inferred: None,
    }
}

fn tls(host: &str, days_left: i64) -> TlsObservation {
    TlsObservation {
        version: Some("TLSv1.3".into()),
        cipher_suite: Some("TLS13_AES_128_GCM_SHA256".into()),
        chain_length: 2,
        leaf: Some(CertInfo {
            subject: format!("CN={host}"),
            issuer: "CN=Test CA".into(),
            dns_names: vec![host.to_string()],
            serial: "01".into(),
            key_type: "ECDSA P-256".into(),
            not_before: CHECKED_AT - 30 * DAY,
            not_after: CHECKED_AT + days_left * DAY,
            sha256_fingerprint: "00".repeat(32),
        }),
        verdict: Some(CertVerdict {
            trusted: true,
            name_matches: true,
            time_valid: true,
            first_error: None,
            trust_error: None,
            detail: None,
        }),
    }
}
