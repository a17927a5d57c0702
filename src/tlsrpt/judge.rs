//! Closing the loop: what senders reported against what our latest probe of the domain saw,
//! and reporters that went silent. Pure: a function of the stored reports, the domain's latest
//! report and the time.

use std::collections::{BTreeMap, BTreeSet};

use super::report::{format_time, PolicyType, SessionResult};
use super::store::{TlsRptStore, OTHER_REPORTER};
use crate::finding::{Code, Finding};
use crate::report::{DomainReport, PolicyStatus, Verdict};

/// How the comparison is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JudgeSettings {
    /// Reports whose date range ended this recently (seconds) are compared with the probe.
    pub compare_window: i64,
    /// A reporter that reported about daily and has sent nothing for this long is silent.
    pub silent_after: i64,
}

impl Default for JudgeSettings {
    fn default() -> JudgeSettings {
        JudgeSettings {
            compare_window: 2 * 86_400,
            silent_after: 3 * 86_400,
        }
    }
}

/// Reports a reporter must have sent before its silence is a finding.
const SILENT_MIN_REPORTS: u64 = 3;
/// "About daily": the mean gap between a reporter's reports is at most this.
const DAILY_GAP: i64 = 2 * 86_400;

/// The TLS-RPT findings of `report.domain`.
pub fn judge(
    store: &TlsRptStore,
    report: &DomainReport,
    settings: JudgeSettings,
    now: i64,
) -> Vec<Finding> {
    let mut out = silent_reporters(store, &report.domain, settings, now);
    out.extend(compare(store, report, settings, now));
    out
}

fn silent_reporters(
    store: &TlsRptStore,
    domain: &str,
    settings: JudgeSettings,
    now: i64,
) -> Vec<Finding> {
    let Some(reporters) = store.reporters(domain) else {
        return vec![];
    };
    let mut out = Vec::new();
    for (reporter, stats) in reporters {
        if reporter == OTHER_REPORTER || stats.reports < SILENT_MIN_REPORTS {
            continue;
        }
        let gaps = i64::try_from(stats.reports - 1).unwrap_or(i64::MAX);
        let mean_gap = (stats.last_end - stats.first_end) / gaps.max(1);
        let silence = now - stats.last_end;
        if mean_gap <= DAILY_GAP && silence > settings.silent_after {
            out.push(Finding::new(
                Code::TlsrptReporterSilent,
                format!(
                    "{reporter} sent {} TLS-RPT reports about every {} but none since the one ending {} ({} days ago): check that the rua= destination still accepts reports (mailbox, HTTPS endpoint) and that the _smtp._tls record is unchanged",
                    stats.reports,
                    describe_gap(mean_gap),
                    format_time(stats.last_end),
                    silence / 86_400
                ),
            ));
        }
    }
    out
}

fn describe_gap(seconds: i64) -> String {
    if seconds < 36 * 3_600 {
        "day".into()
    } else {
        format!("{:.1} days", seconds as f64 / 86_400.0)
    }
}

/// The probe fault codes that mean what a result type says, and whether the result is about
/// one MX (else the policy host).
fn probe_codes(result: SessionResult) -> Option<(bool, &'static [Code])> {
    use Code::*;
    const CERT: &[Code] = &[
        MxCertExpired,
        MxCertNotYetValid,
        MxCertNameMismatch,
        MxCertUntrusted,
        TlsHandshakeFailed,
        TlsNoCommonVersion,
        TlsVersionTooOld,
    ];
    Some(match result {
        SessionResult::StarttlsNotSupported => (true, &[StarttlsNotOffered, StarttlsRefused]),
        SessionResult::CertificateExpired => (true, &[MxCertExpired, MxCertNotYetValid]),
        SessionResult::CertificateHostMismatch => (true, &[MxCertNameMismatch]),
        SessionResult::CertificateNotTrusted => (true, &[MxCertUntrusted]),
        SessionResult::ValidationFailure => (true, CERT),
        SessionResult::StsPolicyFetchError => (
            false,
            &[
                PolicyHostUnresolvable,
                PolicyHostLookupFailed,
                PolicyConnectRefused,
                PolicyConnectTimeout,
                PolicyConnectFailed,
                PolicyTlsFailed,
                PolicyHttpStatus,
                PolicyRedirect,
                PolicyHttpError,
                PolicyContentType,
                PolicyTooLarge,
                PolicyTimeout,
            ],
        ),
        SessionResult::StsWebpkiInvalid => (
            false,
            &[
                PolicyCertExpired,
                PolicyCertNotYetValid,
                PolicyCertNameMismatch,
                PolicyCertUntrusted,
            ],
        ),
        _ => return None,
    })
}

/// The result types senders would report for an MX fault our probe found.
fn reported_as(code: Code) -> Option<&'static [SessionResult]> {
    use SessionResult::*;
    Some(match code {
        Code::StarttlsNotOffered | Code::StarttlsRefused => &[StarttlsNotSupported],
        Code::MxCertExpired | Code::MxCertNotYetValid => &[CertificateExpired, ValidationFailure],
        Code::MxCertNameMismatch => &[CertificateHostMismatch, ValidationFailure],
        Code::MxCertUntrusted => &[CertificateNotTrusted, ValidationFailure],
        _ => return None,
    })
}

#[derive(Default)]
struct Reported {
    sessions: u64,
    reporters: BTreeSet<String>,
}

fn compare(
    store: &TlsRptStore,
    report: &DomainReport,
    settings: JudgeSettings,
    now: i64,
) -> Vec<Finding> {
    if report.verdict == Verdict::Undetermined {
        return vec![];
    }
    let horizon = now - settings.compare_window;
    // Failures of sts sessions by (result, MX) and all sts sessions, over recent reports.
    let mut failures: BTreeMap<(SessionResult, Option<String>), Reported> = BTreeMap::new();
    let mut successes = 0u64;
    let mut reports = 0usize;
    let mut reporters = BTreeSet::new();
    for digest in store.recent(&report.domain).filter(|d| d.end >= horizon) {
        let mut counted = false;
        for policy in digest
            .policies
            .iter()
            .filter(|p| p.policy_type == PolicyType::Sts)
        {
            counted = true;
            successes = successes.saturating_add(
                policy
                    .sessions
                    .get(&SessionResult::Success)
                    .copied()
                    .unwrap_or(0),
            );
            for line in &policy.failures {
                let r = failures.entry((line.result, line.mx.clone())).or_default();
                r.sessions = r.sessions.saturating_add(line.sessions);
                r.reporters.insert(digest.organization.clone());
            }
        }
        if counted {
            reports += 1;
            reporters.insert(digest.organization.clone());
        }
    }
    if reports == 0 {
        return vec![];
    }
    let probed: BTreeMap<&str, Vec<Code>> = report
        .mx
        .hosts
        .iter()
        .filter(|h| h.starttls().is_some())
        .map(|h| {
            let codes = report
                .findings
                .iter()
                .filter(|f| f.host.as_deref() == Some(h.name.as_str()))
                .map(|f| f.code)
                .collect();
            (h.name.as_str(), codes)
        })
        .collect();
    let domain_codes: Vec<Code> = report.findings.iter().map(|f| f.code).collect();
    let policy_checked = report.policy.status != PolicyStatus::NotFetched;
    let mut out = Vec::new();
    let window_days = settings.compare_window / 86_400;

    // Senders report a fault our probe does not see.
    for ((result, mx), reported) in &failures {
        let Some((per_mx, codes)) = probe_codes(*result) else {
            continue;
        };
        let who = join(&reported.reporters);
        if per_mx {
            let Some(host) = mx.as_deref() else { continue };
            let Some(ours) = probed.get(host) else {
                continue;
            };
            if ours.iter().any(|c| codes.contains(c)) {
                continue;
            }
            out.push(
                Finding::new(
                    Code::TlsrptReportedFailureUnconfirmed,
                    format!(
                        "{who} reported {} {result} sessions on {host} in reports ending in the last {window_days} days, but our latest probe of {host} sees no such fault: senders may reach an address or load-balancer member we do not (IPv6, another region), or present another SNI",
                        reported.sessions
                    ),
                )
                .with_host(host),
            );
        } else if policy_checked
            && !domain_codes.iter().any(|c| codes.contains(c))
            && !(*result == SessionResult::StsPolicyInvalid
                && report.policy.status == PolicyStatus::Invalid)
        {
            out.push(Finding::new(
                Code::TlsrptReportedFailureUnconfirmed,
                format!(
                    "{who} reported {} {result} sessions in reports ending in the last {window_days} days, but our latest fetch of the policy from {} sees no such fault: senders may resolve or reach another policy host address",
                    reported.sessions,
                    report.policy_host()
                ),
            )
            .with_host(report.policy_host()),
        );
        }
    }

    // Our probe sees a fault that senders, delivering successfully, do not report.
    if successes > 0 {
        for (host, codes) in &probed {
            let mut seen = BTreeSet::new();
            for code in codes {
                let Some(results) = reported_as(*code) else {
                    continue;
                };
                if !seen.insert(*code) {
                    continue;
                }
                let reported = failures.keys().any(|(r, mx)| {
                    results.contains(r) && (mx.is_none() || mx.as_deref() == Some(*host))
                });
                if reported {
                    continue;
                }
                out.push(
                    Finding::new(
                        Code::TlsrptProbeFaultUnreported,
                        format!(
                            "our probe finds {code} on {host}, but {reports} TLS-RPT reports from {} ending in the last {window_days} days show {successes} successful sessions and no such failure there: senders may reach other addresses of {host} than we do, or deliver to another MX first",
                            join(&reporters)
                        ),
                    )
                    .with_host(*host),
                );
            }
        }
    }
    out
}

fn join(names: &BTreeSet<String>) -> String {
    let v: Vec<&str> = names.iter().map(String::as_str).collect();
    match v.as_slice() {
        [] => "senders".into(),
        [one] => (*one).to_string(),
        many => many.join(", "),
    }
}

/// The codes the scenarios of this module's tests emit (for the check that every documented
/// code is emitted by some stage).
#[cfg(test)]
pub(crate) fn scenario_codes() -> Vec<&'static str> {
    tests::scenarios()
        .iter()
        .flat_map(|f| f.iter().map(|f| f.code.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{HostTransport, MxHostReport, MxStatus};
    use crate::tlsrpt::report::parse_report;
    use crate::tlsrpt::store::StoreSettings;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_767_225_600;

    fn accept(
        store: &mut TlsRptStore,
        org: &str,
        id: &str,
        end: i64,
        failures: &[(&str, &str, u64)],
    ) {
        let details: Vec<String> = failures
            .iter()
            .map(|(r, mx, n)| format!(r#"{{"result-type":"{r}","receiving-mx-hostname":"{mx}","failed-session-count":{n}}}"#))
            .collect();
        let json = format!(
            r#"{{"organization-name":"{org}","report-id":"{id}","date-range":{{"start-datetime":"{}","end-datetime":"{}"}},"policies":[{{"policy":{{"policy-type":"sts","policy-domain":"example.com"}},"summary":{{"total-successful-session-count":50}},"failure-details":[{}]}}]}}"#,
            format_time(end - DAY + 1),
            format_time(end),
            details.join(",")
        );
        let r = parse_report(json.as_bytes(), end + DAY).expect("valid");
        store.accept(&r, end + 60, &|_| true).expect("accepted");
    }

    fn probed(faults: &[(&str, Code)]) -> DomainReport {
        let mut r = DomainReport::skeleton("example.com");
        r.verdict = Verdict::EnforcedDeliverable;
        r.policy.status = PolicyStatus::Valid;
        r.mx.status = MxStatus::Found;
        for name in ["mx1.example.com", "mx2.example.com"] {
            let mut host = MxHostReport::new(name.into(), 10);
            host.covered = true;
            host.transport = HostTransport::Valid;
            r.mx.hosts.push(host);
        }
        for (host, code) in faults {
            r.findings.push(Finding::new(*code, "x").with_host(*host));
        }
        r
    }

    /// One scenario per finding code of this module.
    pub(super) fn scenarios() -> Vec<Vec<Finding>> {
        let mut s = TlsRptStore::new(StoreSettings::default());
        accept(
            &mut s,
            "Google Inc.",
            "1",
            NOW - DAY,
            &[("certificate-expired", "mx2.example.com", 12)],
        );
        let unconfirmed = judge(&s, &probed(&[]), JudgeSettings::default(), NOW);
        let unreported = judge(
            &s,
            &probed(&[("mx1.example.com", Code::MxCertUntrusted)]),
            JudgeSettings::default(),
            NOW,
        );
        let mut s = TlsRptStore::new(StoreSettings::default());
        for i in 0..3 {
            accept(
                &mut s,
                "Google Inc.",
                &i.to_string(),
                NOW - (10 - i) * DAY,
                &[],
            );
        }
        let silent = judge(&s, &probed(&[]), JudgeSettings::default(), NOW);
        vec![unconfirmed, unreported, silent]
    }

    fn codes(f: &[Finding]) -> Vec<(Code, Option<&str>)> {
        f.iter().map(|f| (f.code, f.host.as_deref())).collect()
    }

    #[test]
    fn reported_expired_certificate_our_probe_sees_valid() {
        let mut s = TlsRptStore::new(StoreSettings::default());
        accept(
            &mut s,
            "Google Inc.",
            "1",
            NOW - DAY,
            &[("certificate-expired", "mx2.example.com", 12)],
        );
        let f = judge(&s, &probed(&[]), JudgeSettings::default(), NOW);
        assert_eq!(
            codes(&f),
            vec![(
                Code::TlsrptReportedFailureUnconfirmed,
                Some("mx2.example.com")
            )]
        );
        assert!(
            f[0].message.starts_with(
                "Google Inc. reported 12 certificate-expired sessions on mx2.example.com"
            ),
            "{}",
            f[0].message
        );
        // Our probe sees it too: agreement, no finding.
        let f = judge(
            &s,
            &probed(&[("mx2.example.com", Code::MxCertExpired)]),
            JudgeSettings::default(),
            NOW,
        );
        assert!(f.is_empty(), "{f:?}");
        // An MX we do not have, or reports older than the window: nothing to compare.
        let f = judge(&s, &probed(&[]), JudgeSettings::default(), NOW + 3 * DAY);
        assert!(codes(&f)
            .iter()
            .all(|(c, _)| *c != Code::TlsrptReportedFailureUnconfirmed));
    }

    #[test]
    fn our_probe_sees_a_fault_senders_do_not_report() {
        let mut s = TlsRptStore::new(StoreSettings::default());
        accept(&mut s, "Google Inc.", "1", NOW - DAY, &[]);
        accept(&mut s, "Microsoft", "2", NOW - DAY, &[]);
        let report = probed(&[("mx1.example.com", Code::MxCertExpired)]);
        let f = judge(&s, &report, JudgeSettings::default(), NOW);
        assert_eq!(
            codes(&f),
            vec![(Code::TlsrptProbeFaultUnreported, Some("mx1.example.com"))]
        );
        assert!(
            f[0].message
                .contains("2 TLS-RPT reports from Google Inc., Microsoft"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("show 100 successful sessions"),
            "{}",
            f[0].message
        );
        // Reported as validation-failure on that MX: agreement.
        accept(
            &mut s,
            "Yahoo",
            "3",
            NOW - DAY,
            &[("validation-failure", "mx1.example.com", 1)],
        );
        assert!(judge(&s, &report, JudgeSettings::default(), NOW).is_empty());
    }

    #[test]
    fn no_reports_or_undetermined_probe_compare_nothing() {
        let s = TlsRptStore::new(StoreSettings::default());
        assert!(judge(
            &s,
            &probed(&[("mx1.example.com", Code::MxCertExpired)]),
            JudgeSettings::default(),
            NOW
        )
        .is_empty());
        let mut s = TlsRptStore::new(StoreSettings::default());
        accept(
            &mut s,
            "Google Inc.",
            "1",
            NOW - DAY,
            &[("certificate-expired", "mx2.example.com", 12)],
        );
        let mut r = probed(&[]);
        r.verdict = Verdict::Undetermined;
        assert!(judge(&s, &r, JudgeSettings::default(), NOW).is_empty());
    }

    #[test]
    fn policy_fetch_errors_compare_with_the_fetch() {
        let mut s = TlsRptStore::new(StoreSettings::default());
        accept(
            &mut s,
            "Google Inc.",
            "1",
            NOW - DAY,
            &[("sts-policy-fetch-error", "", 4)],
        );
        let f = judge(&s, &probed(&[]), JudgeSettings::default(), NOW);
        assert_eq!(
            codes(&f),
            vec![(
                Code::TlsrptReportedFailureUnconfirmed,
                Some("mta-sts.example.com")
            )]
        );
        let mut r = probed(&[]);
        r.findings.push(Finding::new(Code::PolicyTimeout, "x"));
        assert!(judge(&s, &r, JudgeSettings::default(), NOW).is_empty());
    }

    #[test]
    fn a_daily_reporter_gone_silent() {
        let mut s = TlsRptStore::new(StoreSettings::default());
        for i in 0..5 {
            accept(
                &mut s,
                "Google Inc.",
                &i.to_string(),
                NOW - (10 - i) * DAY,
                &[],
            );
        }
        // Two reports only: too few to call silence.
        accept(&mut s, "Mail.Ru", "a", NOW - 9 * DAY, &[]);
        accept(&mut s, "Mail.Ru", "b", NOW - 8 * DAY, &[]);
        let f = judge(&s, &probed(&[]), JudgeSettings::default(), NOW);
        assert_eq!(codes(&f), vec![(Code::TlsrptReporterSilent, None)]);
        assert_eq!(
            f[0].message,
            "Google Inc. sent 5 TLS-RPT reports about every day but none since the one ending 2025-12-26T00:00:00Z (6 days ago): check that the rua= destination still accepts reports (mailbox, HTTPS endpoint) and that the _smtp._tls record is unchanged"
        );
        assert!(judge(&s, &probed(&[]), JudgeSettings::default(), NOW - 5 * DAY).is_empty());
    }
}
