//! What report files say, for people and scripts: the offline `tlsrpt FILE...` command.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use super::report::{format_time, PolicyType, Report, SessionResult};
use super::{RejectReason, Rejection};

/// Failure lines shown per policy in the text output.
const TEXT_FAILURE_LINES: usize = 10;

/// One input file and what came of it.
#[derive(Clone, Debug, Serialize)]
pub struct FileSummary {
    pub file: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<Report>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejection>,
}

/// Sessions of one (domain, policy type, result) over all files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionTotal {
    pub domain: String,
    pub policy_type: PolicyType,
    pub result: SessionResult,
    pub sessions: u64,
}

/// All files.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub files: Vec<FileSummary>,
    pub totals: Vec<SessionTotal>,
    pub reports: usize,
    pub rejected: usize,
}

impl Summary {
    /// Builds the summary; a report whose (organization, report-id) came before is refused as
    /// a duplicate, as the exporter would.
    pub fn new(files: Vec<(String, Vec<Result<Report, Rejection>>)>) -> Summary {
        let mut seen = BTreeSet::new();
        let mut totals: BTreeMap<(String, PolicyType, SessionResult), u64> = BTreeMap::new();
        let mut out = Vec::new();
        let (mut reports, mut rejected) = (0, 0);
        for (file, results) in files {
            let mut summary = FileSummary {
                file,
                reports: vec![],
                rejected: vec![],
            };
            for result in results {
                match result {
                    Ok(report) => {
                        if !seen.insert((report.organization.clone(), report.report_id.clone())) {
                            summary.rejected.push(Rejection::new(
                                RejectReason::Duplicate,
                                format!(
                                    "report {} of {} was already read",
                                    report.report_id, report.organization
                                ),
                            ));
                            continue;
                        }
                        for policy in &report.policies {
                            for (result, n) in policy.sessions() {
                                let total = totals
                                    .entry((policy.domain.clone(), policy.policy_type, result))
                                    .or_insert(0);
                                *total = total.saturating_add(n);
                            }
                        }
                        summary.reports.push(report);
                    }
                    Err(rejection) => summary.rejected.push(rejection),
                }
            }
            reports += summary.reports.len();
            rejected += summary.rejected.len();
            out.push(summary);
        }
        Summary {
            files: out,
            totals: totals
                .into_iter()
                .map(|((domain, policy_type, result), sessions)| SessionTotal {
                    domain,
                    policy_type,
                    result,
                    sessions,
                })
                .collect(),
            reports,
            rejected,
        }
    }

    /// The text for people.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for file in &self.files {
            for report in &file.reports {
                let _ = writeln!(
                    out,
                    "{}: report {:?} from {}, {} to {}",
                    file.file,
                    report.report_id,
                    report.organization,
                    format_time(report.start),
                    format_time(report.end)
                );
                for policy in &report.policies {
                    let failed = policy.failures();
                    let all = policy.successful_sessions.saturating_add(failed);
                    let _ = writeln!(
                        out,
                        "  {} ({}): {} sessions, {} failed{}",
                        policy.domain,
                        policy.policy_type.as_str(),
                        all,
                        failed,
                        percent(failed, all)
                    );
                    let mut lines: BTreeMap<(SessionResult, String), u64> = BTreeMap::new();
                    for d in &policy.failure_details {
                        let mx = d
                            .receiving_mx_hostname
                            .clone()
                            .or_else(|| d.receiving_ip.map(|ip| ip.to_string()))
                            .unwrap_or_else(|| "(MX not named)".into());
                        let n = lines.entry((d.result, mx)).or_insert(0);
                        *n = n.saturating_add(d.sessions);
                    }
                    let mut lines: Vec<_> = lines.into_iter().collect();
                    lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    for ((result, mx), n) in lines.iter().take(TEXT_FAILURE_LINES) {
                        let _ = writeln!(out, "    {:<26} {:>10}  {mx}", result.as_str(), n);
                    }
                    if lines.len() > TEXT_FAILURE_LINES {
                        let _ = writeln!(
                            out,
                            "    ... {} more failure lines",
                            lines.len() - TEXT_FAILURE_LINES
                        );
                    }
                    if let Some(unspecified) = policy.sessions().get(&SessionResult::Unspecified) {
                        let _ = writeln!(
                            out,
                            "    {:<26} {:>10}  (counted in the summary, not in the details)",
                            SessionResult::Unspecified.as_str(),
                            unspecified
                        );
                    }
                }
                for note in &report.notes {
                    let _ = writeln!(out, "  note: {note}");
                }
            }
            for rejection in &file.rejected {
                let _ = writeln!(out, "{}: refused: {rejection}", file.file);
            }
        }
        if !self.totals.is_empty() {
            let _ = writeln!(out, "\nSessions by domain, policy type and result:");
            for t in &self.totals {
                let _ = writeln!(
                    out,
                    "  {:<30} {:<16} {:<26} {:>10}",
                    t.domain,
                    t.policy_type.as_str(),
                    t.result.as_str(),
                    t.sessions
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{} report{} read, {} refused",
            self.reports,
            if self.reports == 1 { "" } else { "s" },
            self.rejected
        );
        out
    }
}

fn percent(part: u64, all: u64) -> String {
    if all == 0 || part == 0 {
        return String::new();
    }
    // Precision is irrelevant for a percentage shown with one decimal.
    format!(" ({:.1}%)", part as f64 * 100.0 / all as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::report::parse_report;

    #[test]
    fn summarizes_and_refuses_duplicates() {
        let json = include_str!("../../tests/golden/tlsrpt/rfc8460-example.json");
        let now = 1_767_225_600;
        let one = parse_report(json.as_bytes(), now).map_err(Rejection::from);
        let again = parse_report(json.as_bytes(), now).map_err(Rejection::from);
        let bad = parse_report(b"nope", now).map_err(Rejection::from);
        let s = Summary::new(vec![
            ("a.json".into(), vec![one]),
            ("b.json".into(), vec![again, bad]),
        ]);
        assert_eq!(s.reports, 1);
        assert_eq!(s.rejected, 2);
        assert_eq!(s.files[1].rejected[0].reason, RejectReason::Duplicate);
        assert_eq!(s.files[1].rejected[1].reason, RejectReason::InvalidJson);
        let text = s.render_text();
        assert!(
            text.contains("  company-y.example (sts): 5629 sessions, 303 failed (5.4%)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "    starttls-not-supported            200  mx2.mail.company-y.example\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("1 report read, 2 refused\n"), "{text}");
    }
}
