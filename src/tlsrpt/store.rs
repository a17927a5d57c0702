//! The accepted reports of configured domains, bounded: deduplication by (organization,
//! report-id), session counts per (domain, policy type, result), report counts per (domain,
//! reporter) with reporters beyond the top N folded into `other`, refusals by reason, and the
//! last few reports of each domain. Pure data: time and the configured domains are passed in.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::report::{PolicyType, Report, SessionResult};
use super::{RejectReason, Rejection};

/// The reporter label of reporters without a named slot.
pub const OTHER_REPORTER: &str = "other";
/// Failure lines kept per stored report digest (largest first).
const DIGEST_FAILURES: usize = 20;

/// How the store is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// Reporters with a name of their own in the `reporter` label; the rest are `other`.
    pub top_reporters: usize,
    /// (organization, report-id) pairs are remembered for reports ending this recently
    /// (seconds); older reports are refused as `too_old`, since a re-send could not be told.
    pub dedup_window: i64,
    /// Most (organization, report-id) pairs remembered; beyond, the oldest are forgotten.
    pub max_remembered: usize,
    /// Reports kept per domain for the JSON API and the findings.
    pub recent_per_domain: usize,
}

impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings {
            top_reporters: 20,
            dedup_window: 30 * 86_400,
            max_remembered: 500_000,
            recent_per_domain: 10,
        }
    }
}

/// One accepted report as kept for a domain: its numbers, not its details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDigest {
    pub organization: String,
    /// The `reporter` label it was counted under (the organization, or `other`).
    pub reporter: String,
    pub report_id: String,
    pub start: i64,
    pub end: i64,
    pub received: i64,
    pub policies: Vec<PolicyDigest>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDigest {
    pub policy_type: PolicyType,
    /// Sessions by result (`success` included).
    pub sessions: BTreeMap<SessionResult, u64>,
    /// Failed sessions by result and receiving MX (None: the sender did not name it), the
    /// largest [`DIGEST_FAILURES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureLine {
    pub result: SessionResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx: Option<String>,
    pub sessions: u64,
}

/// What a reporter sent for one domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReporterStats {
    pub reports: u64,
    /// End of the date range of the first and the newest report.
    pub first_end: i64,
    pub last_end: i64,
}

/// Everything the store keeps, as saved in the state file (`tlsrpt` key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    /// (organization, report-id) -> end of the report's date range.
    #[serde(default)]
    pub seen: Vec<(String, String, i64)>,
    /// domain -> [(policy type, result, sessions)].
    #[serde(default)]
    pub sessions: BTreeMap<String, Vec<(PolicyType, SessionResult, u64)>>,
    /// domain -> reporter label -> stats.
    #[serde(default)]
    pub reporters: BTreeMap<String, BTreeMap<String, ReporterStats>>,
    /// Reporters holding a named slot -> when they last sent a report (received time).
    #[serde(default)]
    pub named: BTreeMap<String, i64>,
    #[serde(default)]
    pub rejected: BTreeMap<RejectReason, u64>,
    #[serde(default)]
    pub recent: BTreeMap<String, Vec<ReportDigest>>,
}

/// What accepting a report did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The configured domains it was counted for.
    pub domains: Vec<String>,
    pub reporter: String,
}

/// The store. Not synchronized: the service keeps it behind a lock.
#[derive(Debug, Default)]
pub struct TlsRptStore {
    settings: StoreSettings,
    seen: HashMap<(String, String), i64>,
    sessions: BTreeMap<String, BTreeMap<(PolicyType, SessionResult), u64>>,
    reporters: BTreeMap<String, BTreeMap<String, ReporterStats>>,
    named: BTreeMap<String, i64>,
    rejected: BTreeMap<RejectReason, u64>,
    recent: BTreeMap<String, VecDeque<ReportDigest>>,
    dirty: bool,
}

impl TlsRptStore {
    pub fn new(settings: StoreSettings) -> TlsRptStore {
        TlsRptStore {
            settings,
            ..TlsRptStore::default()
        }
    }

    pub fn set_settings(&mut self, settings: StoreSettings) {
        self.settings = settings;
    }

    pub fn settings(&self) -> StoreSettings {
        self.settings
    }

    /// Counts `report` for the configured domains among its policies (`configured` says which
    /// are), or refuses it. Policies for other domains in the same report are ignored.
    pub fn accept(
        &mut self,
        report: &Report,
        received: i64,
        configured: &dyn Fn(&str) -> bool,
    ) -> Result<Accepted, Rejection> {
        let mut domains: Vec<String> = report
            .policies
            .iter()
            .map(|p| p.domain.clone())
            .filter(|d| configured(d))
            .collect();
        domains.sort();
        domains.dedup();
        if domains.is_empty() {
            let named: Vec<&str> = report.policies.iter().map(|p| p.domain.as_str()).collect();
            return Err(self.reject(Rejection::new(
                RejectReason::UnknownDomain,
                format!(
                    "report {} of {} is for {}, not a configured domain",
                    report.report_id,
                    report.organization,
                    named.join(", ")
                ),
            )));
        }
        if report.end < received - self.settings.dedup_window {
            return Err(self.reject(Rejection::new(
                RejectReason::TooOld,
                format!(
                    "report {} of {} ended {}, before the {}-day deduplication window",
                    report.report_id,
                    report.organization,
                    super::report::format_time(report.end),
                    self.settings.dedup_window / 86_400
                ),
            )));
        }
        let key = (report.organization.clone(), report.report_id.clone());
        if self.seen.contains_key(&key) {
            return Err(self.reject(Rejection::new(
                RejectReason::Duplicate,
                format!(
                    "report {} of {} was already accepted",
                    report.report_id, report.organization
                ),
            )));
        }
        self.remember(key, report.end);
        let reporter = self.reporter_label(&report.organization, received);
        for domain in &domains {
            let counts = self.sessions.entry(domain.clone()).or_default();
            let mut digest_policies = Vec::new();
            for policy in report.policies.iter().filter(|p| &p.domain == domain) {
                let sessions = policy.sessions();
                for (result, n) in &sessions {
                    let c = counts.entry((policy.policy_type, *result)).or_insert(0);
                    *c = c.saturating_add(*n);
                }
                digest_policies.push(PolicyDigest {
                    policy_type: policy.policy_type,
                    failures: failure_lines(policy),
                    sessions,
                });
            }
            let stats = self
                .reporters
                .entry(domain.clone())
                .or_default()
                .entry(reporter.clone())
                .or_default();
            if stats.reports == 0 {
                stats.first_end = report.end;
            }
            stats.reports = stats.reports.saturating_add(1);
            stats.last_end = stats.last_end.max(report.end);
            stats.first_end = stats.first_end.min(report.end);
            let recent = self.recent.entry(domain.clone()).or_default();
            recent.push_back(ReportDigest {
                organization: report.organization.clone(),
                reporter: reporter.clone(),
                report_id: report.report_id.clone(),
                start: report.start,
                end: report.end,
                received,
                policies: digest_policies,
            });
            // Newest (by date range) last; the oldest go first when full.
            recent
                .make_contiguous()
                .sort_by_key(|d| (d.end, d.received));
            while recent.len() > self.settings.recent_per_domain {
                recent.pop_front();
            }
        }
        self.dirty = true;
        Ok(Accepted { domains, reporter })
    }

    /// Counts a refusal that happened before a report could be parsed (body too large, rate
    /// limited, ...). Returns it for convenience.
    pub fn reject(&mut self, rejection: Rejection) -> Rejection {
        let n = self.rejected.entry(rejection.reason).or_insert(0);
        *n = n.saturating_add(1);
        self.dirty = true;
        rejection
    }

    /// Refusals by reason.
    pub fn rejected(&self) -> &BTreeMap<RejectReason, u64> {
        &self.rejected
    }

    /// Sessions of `domain` by (policy type, result).
    pub fn sessions(&self, domain: &str) -> Option<&BTreeMap<(PolicyType, SessionResult), u64>> {
        self.sessions.get(domain)
    }

    /// What each reporter sent for `domain`, by reporter label.
    pub fn reporters(&self, domain: &str) -> Option<&BTreeMap<String, ReporterStats>> {
        self.reporters.get(domain)
    }

    /// The last reports of `domain`, oldest first.
    pub fn recent(&self, domain: &str) -> impl Iterator<Item = &ReportDigest> {
        self.recent.get(domain).into_iter().flatten()
    }

    /// Domains with anything stored.
    pub fn domains(&self) -> impl Iterator<Item = &String> {
        self.sessions.keys()
    }

    /// Forgets domains no longer configured, (organization, report-id) pairs beyond the
    /// window, and named slots of reporters silent for the whole window (their series go, and
    /// the slot is free for another).
    pub fn prune(&mut self, configured: &dyn Fn(&str) -> bool, now: i64) {
        let before = (self.sessions.len(), self.seen.len(), self.named.len());
        self.sessions.retain(|d, _| configured(d));
        self.reporters.retain(|d, _| configured(d));
        self.recent.retain(|d, _| configured(d));
        let horizon = now - self.settings.dedup_window;
        self.seen.retain(|_, end| *end >= horizon);
        let gone: Vec<String> = self
            .named
            .iter()
            .filter(|(_, last)| **last < horizon)
            .map(|(r, _)| r.clone())
            .collect();
        for reporter in gone {
            self.named.remove(&reporter);
            for stats in self.reporters.values_mut() {
                stats.remove(&reporter);
            }
        }
        if before != (self.sessions.len(), self.seen.len(), self.named.len()) {
            self.dirty = true;
        }
    }

    /// Whether anything changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn persisted(&self) -> Persisted {
        let mut seen: Vec<(String, String, i64)> = self
            .seen
            .iter()
            .map(|((o, id), end)| (o.clone(), id.clone(), *end))
            .collect();
        seen.sort();
        Persisted {
            seen,
            sessions: self
                .sessions
                .iter()
                .map(|(d, m)| {
                    (
                        d.clone(),
                        m.iter().map(|((p, r), n)| (*p, *r, *n)).collect(),
                    )
                })
                .collect(),
            reporters: self.reporters.clone(),
            named: self.named.clone(),
            rejected: self.rejected.clone(),
            recent: self
                .recent
                .iter()
                .map(|(d, q)| (d.clone(), q.iter().cloned().collect()))
                .collect(),
        }
    }

    /// The store as saved, under `settings` (whose bounds are applied again).
    pub fn restore(p: Persisted, settings: StoreSettings) -> TlsRptStore {
        let mut store = TlsRptStore::new(settings);
        for (o, id, end) in p.seen {
            store.remember((o, id), end);
        }
        store.sessions = p
            .sessions
            .into_iter()
            .map(|(d, v)| (d, v.into_iter().map(|(p, r, n)| ((p, r), n)).collect()))
            .collect();
        store.reporters = p.reporters;
        store.named = p.named;
        while store.named.len() > settings.top_reporters {
            // Fewer slots than before: the least recent reporters lose theirs.
            let Some(oldest) = store
                .named
                .iter()
                .min_by_key(|(_, last)| **last)
                .map(|(r, _)| r.clone())
            else {
                break;
            };
            store.named.remove(&oldest);
        }
        store.rejected = p.rejected;
        store.recent = p
            .recent
            .into_iter()
            .map(|(d, v)| {
                let mut q: VecDeque<ReportDigest> = v.into();
                while q.len() > settings.recent_per_domain {
                    q.pop_front();
                }
                (d, q)
            })
            .collect();
        store
    }

    fn remember(&mut self, key: (String, String), end: i64) {
        if self.seen.len() >= self.settings.max_remembered {
            // Forget the oldest tenth at once, so this is rare.
            let mut ends: Vec<i64> = self.seen.values().copied().collect();
            ends.sort_unstable();
            let cut = ends.get(ends.len() / 10).copied().unwrap_or(i64::MIN);
            self.seen.retain(|_, e| *e > cut);
        }
        self.seen.insert(key, end);
    }

    /// The `reporter` label for `organization`: its own name while it holds one of the
    /// `top_reporters` slots, which go to reporters in the order they first report (a
    /// reporter silent for the whole deduplication window gives its slot up); else `other`.
    fn reporter_label(&mut self, organization: &str, received: i64) -> String {
        if organization == OTHER_REPORTER {
            return OTHER_REPORTER.to_string();
        }
        if let Some(last) = self.named.get_mut(organization) {
            *last = (*last).max(received);
            return organization.to_string();
        }
        if self.named.len() >= self.settings.top_reporters {
            let horizon = received - self.settings.dedup_window;
            let stale = self
                .named
                .iter()
                .filter(|(_, last)| **last < horizon)
                .min_by_key(|(_, last)| **last)
                .map(|(r, _)| r.clone());
            match stale {
                Some(reporter) => {
                    self.named.remove(&reporter);
                    for stats in self.reporters.values_mut() {
                        stats.remove(&reporter);
                    }
                }
                None => return OTHER_REPORTER.to_string(),
            }
        }
        self.named.insert(organization.to_string(), received);
        organization.to_string()
    }
}

fn failure_lines(policy: &super::report::PolicyResult) -> Vec<FailureLine> {
    let mut lines: BTreeMap<(SessionResult, Option<String>), u64> = BTreeMap::new();
    for d in &policy.failure_details {
        let n = lines
            .entry((d.result, d.receiving_mx_hostname.clone()))
            .or_insert(0);
        *n = n.saturating_add(d.sessions);
    }
    let mut out: Vec<FailureLine> = lines
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|((result, mx), sessions)| FailureLine {
            result,
            mx,
            sessions,
        })
        .collect();
    out.sort_by_key(|l| std::cmp::Reverse(l.sessions));
    out.truncate(DIGEST_FAILURES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::report::parse_report;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_767_225_600; // 2026-01-01

    fn report(
        org: &str,
        id: &str,
        domains: &[&str],
        end: i64,
        failures: &[(&str, &str, u64)],
    ) -> Report {
        let details: Vec<String> = failures
            .iter()
            .map(|(r, mx, n)| format!(r#"{{"result-type":"{r}","receiving-mx-hostname":"{mx}","failed-session-count":{n}}}"#))
            .collect();
        let total: u64 = failures.iter().map(|f| f.2).sum();
        let policies: Vec<String> = domains
            .iter()
            .map(|d| format!(r#"{{"policy":{{"policy-type":"sts","policy-domain":"{d}"}},"summary":{{"total-successful-session-count":100,"total-failure-session-count":{total}}},"failure-details":[{}]}}"#, details.join(",")))
            .collect();
        let json = format!(
            r#"{{"organization-name":"{org}","report-id":"{id}","date-range":{{"start-datetime":"{}","end-datetime":"{}"}},"policies":[{}]}}"#,
            crate::tlsrpt::report::format_time(end - DAY + 1),
            crate::tlsrpt::report::format_time(end),
            policies.join(",")
        );
        parse_report(json.as_bytes(), end + DAY).expect("valid")
    }

    fn ours(d: &str) -> bool {
        d.ends_with("example.com")
    }

    #[test]
    fn counts_sessions_and_reports_and_refuses_duplicates() {
        let mut s = TlsRptStore::new(StoreSettings::default());
        let r = report(
            "Google Inc.",
            "1",
            &["example.com", "stranger.org"],
            NOW - DAY,
            &[("certificate-expired", "mx2.example.com", 5)],
        );
        let a = s.accept(&r, NOW, &ours).unwrap();
        assert_eq!(a.domains, vec!["example.com"]);
        assert_eq!(a.reporter, "Google Inc.");
        let counts = s.sessions("example.com").unwrap();
        assert_eq!(counts[&(PolicyType::Sts, SessionResult::Success)], 100);
        assert_eq!(
            counts[&(PolicyType::Sts, SessionResult::CertificateExpired)],
            5
        );
        assert!(s.sessions("stranger.org").is_none());
        let dup = s.accept(&r, NOW, &ours).unwrap_err();
        assert_eq!(dup.reason, RejectReason::Duplicate);
        // Same id from another organization is another report.
        s.accept(
            &report("Microsoft", "1", &["example.com"], NOW - DAY, &[]),
            NOW,
            &ours,
        )
        .unwrap();
        assert_eq!(
            s.sessions("example.com").unwrap()[&(PolicyType::Sts, SessionResult::Success)],
            200
        );
        assert_eq!(
            s.reporters("example.com").unwrap()["Google Inc."].reports,
            1
        );
        assert_eq!(s.rejected()[&RejectReason::Duplicate], 1);
        let stranger = s
            .accept(
                &report("X", "2", &["stranger.org"], NOW - DAY, &[]),
                NOW,
                &ours,
            )
            .unwrap_err();
        assert_eq!(stranger.reason, RejectReason::UnknownDomain);
        assert_eq!(
            stranger.message,
            "report 2 of X is for stranger.org, not a configured domain"
        );
        let old = s
            .accept(
                &report("X", "3", &["example.com"], NOW - 40 * DAY, &[]),
                NOW,
                &ours,
            )
            .unwrap_err();
        assert_eq!(old.reason, RejectReason::TooOld);
        let digest = s.recent("example.com").next().unwrap();
        assert_eq!(
            digest.policies[0].failures,
            vec![FailureLine {
                result: SessionResult::CertificateExpired,
                mx: Some("mx2.example.com".into()),
                sessions: 5
            }]
        );
    }

    #[test]
    fn reporters_beyond_the_top_n_are_other_until_a_slot_frees() {
        let settings = StoreSettings {
            top_reporters: 2,
            ..StoreSettings::default()
        };
        let mut s = TlsRptStore::new(settings);
        for (i, org) in ["A", "B", "C", "other"].iter().enumerate() {
            s.accept(
                &report(org, &i.to_string(), &["example.com"], NOW - DAY, &[]),
                NOW,
                &ours,
            )
            .unwrap();
        }
        let r = s.reporters("example.com").unwrap();
        assert_eq!(r.keys().collect::<Vec<_>>(), vec!["A", "B", "other"]);
        assert_eq!(r["other"].reports, 2);
        // A stays silent for the window: its slot goes to the next new reporter.
        let later = NOW + 31 * DAY;
        s.accept(
            &report("B", "b2", &["example.com"], later - DAY, &[]),
            later,
            &ours,
        )
        .unwrap();
        let a = s
            .accept(
                &report("D", "d1", &["example.com"], later - DAY, &[]),
                later,
                &ours,
            )
            .unwrap();
        assert_eq!(a.reporter, "D");
        let r = s.reporters("example.com").unwrap();
        assert_eq!(r.keys().collect::<Vec<_>>(), vec!["B", "D", "other"]);
    }

    #[test]
    fn bounded_memory_of_ids_and_recent_reports() {
        let settings = StoreSettings {
            max_remembered: 100,
            recent_per_domain: 3,
            ..StoreSettings::default()
        };
        let mut s = TlsRptStore::new(settings);
        for i in 0..250 {
            s.accept(
                &report("A", &i.to_string(), &["example.com"], NOW - DAY + i, &[]),
                NOW,
                &ours,
            )
            .unwrap();
        }
        assert!(s.seen.len() <= 100, "{}", s.seen.len());
        let ids: Vec<&str> = s
            .recent("example.com")
            .map(|d| d.report_id.as_str())
            .collect();
        assert_eq!(ids, vec!["247", "248", "249"]);
    }

    #[test]
    fn persists_and_restores_exactly() {
        let mut s = TlsRptStore::new(StoreSettings::default());
        s.accept(
            &report(
                "A",
                "1",
                &["example.com"],
                NOW - DAY,
                &[("starttls-not-supported", "mx1.example.com", 3)],
            ),
            NOW,
            &ours,
        )
        .unwrap();
        let _ = s.accept(
            &report("A", "1", &["example.com"], NOW - DAY, &[]),
            NOW,
            &ours,
        );
        let json = serde_json::to_string(&s.persisted()).unwrap();
        let back: Persisted = serde_json::from_str(&json).unwrap();
        let r = TlsRptStore::restore(back, StoreSettings::default());
        assert_eq!(r.persisted(), s.persisted());
        let mut r = r;
        assert_eq!(
            r.accept(
                &report("A", "1", &["example.com"], NOW - DAY, &[]),
                NOW,
                &ours
            )
            .unwrap_err()
            .reason,
            RejectReason::Duplicate
        );
    }

    #[test]
    fn prune_drops_unconfigured_domains_and_old_ids() {
        let mut s = TlsRptStore::new(StoreSettings::default());
        s.accept(
            &report(
                "A",
                "1",
                &["a.example.com", "b.example.com"],
                NOW - DAY,
                &[],
            ),
            NOW,
            &ours,
        )
        .unwrap();
        s.take_dirty();
        s.prune(&|d| d == "a.example.com", NOW);
        assert!(s.take_dirty());
        assert!(s.sessions("b.example.com").is_none());
        assert!(s.sessions("a.example.com").is_some());
        s.prune(&|_| true, NOW + 40 * DAY);
        assert!(s.seen.is_empty());
        assert!(s.reporters("a.example.com").unwrap().is_empty());
    }
}
