//! The policy-cache model: which policies senders may still hold, and until when, from the
//! policies the domain was seen serving (RFC 8461 §3.3, §5.1, §8.3). Pure: time is passed in.
//!
//! A sender fetched a policy at the latest when it was last seen served, keeps it up to its
//! `max_age`, and replaces it early only when it sees a new `id` in the `_mta-sts` record and
//! fetches the new policy successfully. So a policy seen earlier is still applied by some
//! senders until `last_seen + max_age` when
//!
//! - it was served under the id the record carries now (the body changed without a new id, or
//!   the id was bumped before the new file was served): senders holding it see no new id; or
//! - the domain serves no usable policy now (record removed, policy host broken): senders keep
//!   what they have.
//!
//! Then every MX of the domain that such a policy, in `enforce` mode, does not cover is refused
//! by those senders until it expires (`mx_refused_by_cached_policy`), and a removed record whose
//! last policy was not `mode: none` leaves senders enforcing it
//! (`policy_removed_without_mode_none`, RFC 8461 §8.3).

use serde::{Deserialize, Serialize};

use crate::clock::format_date;
use crate::finding::{Code, Finding};
use crate::report::{DomainReport, RecordStatus};
use crate::stage::mx;
use crate::stage::policy::Mode;

/// At most this many earlier policies are remembered per domain (oldest dropped first).
pub const MAX_EARLIER: usize = 4;

/// A policy as served under one id, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub id: String,
    pub mode: Mode,
    pub max_age: u32,
    /// The `mx` patterns (empty for `mode: none`, which covers nothing anyway).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx: Vec<String>,
    pub first_seen: i64,
    pub last_seen: i64,
}

impl Served {
    /// Unix seconds when a copy fetched at the last sighting expires.
    pub fn cached_until(&self) -> i64 {
        self.last_seen.saturating_add(i64::from(self.max_age))
    }
}

/// What the model found for one check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheRisks {
    pub findings: Vec<Finding>,
    /// The latest instant any risk found lasts to (for the timestamp metric).
    pub until: Option<i64>,
}

/// The risks from cached policies for `report` at `now`, given the policy served now
/// (`current`, already updated for this check) and the ones seen before (`earlier`).
pub fn cached_policy_risks(
    report: &DomainReport,
    current: Option<&Served>,
    earlier: &[Served],
    now: i64,
) -> CacheRisks {
    let mut risks = CacheRisks::default();
    let record_id = report
        .record
        .id
        .as_deref()
        .filter(|_| report.record.status == RecordStatus::Valid);
    let usable_now = report.policy.policy.is_some() && record_id.is_some();
    // The policy served now is what fresh senders get; older ones linger under the rules above.
    let mut lingering: Vec<&Served> = earlier
        .iter()
        .filter(|s| !usable_now || Some(s.id.as_str()) == record_id)
        .collect();
    if !usable_now {
        lingering.extend(current);
    }
    for served in lingering {
        let until = served.cached_until();
        if until <= now || served.mode != Mode::Enforce {
            continue;
        }
        let hosts: Vec<String> = report.mx.hosts.iter().map(|h| h.name.clone()).collect();
        let coverage = mx::coverage(&served.mx, &hosts);
        for host in coverage
            .hosts
            .into_iter()
            .filter(|c| c.covered_by.is_none())
        {
            risks.findings.push(
                Finding::new(
                    Code::MxRefusedByCachedPolicy,
                    format!(
                        "senders that cached the policy served under id {} until {} (mode enforce, max_age {}, mx {}) refuse MX {} until {} ({}){}",
                        served.id,
                        format_date(served.last_seen),
                        served.max_age,
                        served.mx.join(", "),
                        host.host,
                        format_date(until),
                        describe_days(until - now),
                        if Some(served.id.as_str()) == record_id {
                            ": the record still carries that id, so they do not fetch again; publish a new id"
                        } else {
                            ": the domain serves no usable policy now, so they keep the one they have"
                        }
                    ),
                )
                .with_host(host.host),
            );
            risks.until = risks.until.max(Some(until));
        }
    }
    if report.record.status == RecordStatus::Missing {
        if let Some(last) = current.filter(|s| s.mode != Mode::None) {
            let until = last.cached_until();
            if until > now {
                risks.findings.push(Finding::new(
                    Code::PolicyRemovedWithoutModeNone,
                    format!(
                        "the _mta-sts record is gone, but the last policy seen (id {}, mode {}, max_age {}, until {}) was not mode none: senders that cached it keep applying it until {} ({}); RFC 8461 §8.3 asks to serve mode: none for a max_age before removing the record",
                        last.id,
                        last.mode.as_str(),
                        last.max_age,
                        format_date(last.last_seen),
                        format_date(until),
                        describe_days(until - now)
                    ),
                ));
                risks.until = risks.until.max(Some(until));
            }
        }
    }
    risks
}

/// "41 days", "1 day", "less than a day".
fn describe_days(seconds: i64) -> String {
    match seconds.div_euclid(86_400) {
        i64::MIN..=0 => "less than a day".to_string(),
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::MxHostReport;
    use crate::stage::policy::Policy;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;
    const WEEK: u32 = 604_800;

    fn served(id: &str, mode: Mode, max_age: u32, mx: &[&str], first: i64, last: i64) -> Served {
        Served {
            id: id.into(),
            mode,
            max_age,
            mx: mx.iter().map(|m| m.to_string()).collect(),
            first_seen: first,
            last_seen: last,
        }
    }

    /// A report for example.com at NOW: record id `id` (None: no record), a valid policy of
    /// `mx` when `policy` (None: none usable), MX hosts `hosts`.
    fn report(id: Option<&str>, policy: Option<&[&str]>, hosts: &[&str]) -> DomainReport {
        let mut r = DomainReport::skeleton("example.com");
        if let Some(id) = id {
            r.record.status = RecordStatus::Valid;
            r.record.id = Some(id.into());
        }
        r.policy.policy = policy.map(|mx| {
            Box::new(Policy {
                version: "STSv1".into(),
                mode: Mode::Enforce,
                max_age: WEEK,
                mx: mx.iter().map(|m| m.to_string()).collect(),
                extensions: vec![],
            })
        });
        r.mx.hosts = hosts
            .iter()
            .map(|h| MxHostReport::new(h.to_string(), 10))
            .collect();
        r
    }

    fn codes(risks: &CacheRisks) -> Vec<(&'static str, Option<&str>)> {
        risks
            .findings
            .iter()
            .map(|f| (f.code.as_str(), f.host.as_deref()))
            .collect()
    }

    #[test]
    fn new_mx_under_a_policy_cached_with_the_same_id_is_refused_until_it_expires() {
        // The body gained mx2 without a new id: senders holding the old body refuse mx2.
        let old = served(
            "1",
            Mode::Enforce,
            WEEK,
            &["mx1.example.com"],
            NOW - 30 * DAY,
            NOW - DAY,
        );
        let now_served = served(
            "1",
            Mode::Enforce,
            WEEK,
            &["mx1.example.com", "mx2.example.com"],
            NOW - DAY,
            NOW,
        );
        let r = report(
            Some("1"),
            Some(&["mx1.example.com", "mx2.example.com"]),
            &["mx1.example.com", "mx2.example.com"],
        );
        let risks = cached_policy_risks(&r, Some(&now_served), std::slice::from_ref(&old), NOW);
        assert_eq!(
            codes(&risks),
            [("mx_refused_by_cached_policy", Some("mx2.example.com"))]
        );
        assert_eq!(risks.until, Some(NOW - DAY + i64::from(WEEK)));
        let message = &risks.findings[0].message;
        assert!(message.contains("until 2027-01-21 (6 days)"), "{message}");
        assert!(message.contains("publish a new id"), "{message}");
        // With a new id, senders fetch the new body: no risk.
        let r = report(
            Some("2"),
            Some(&["mx1.example.com", "mx2.example.com"]),
            &["mx1.example.com", "mx2.example.com"],
        );
        let now_served = Served {
            id: "2".into(),
            ..now_served
        };
        assert_eq!(
            cached_policy_risks(&r, Some(&now_served), &[old], NOW),
            CacheRisks::default()
        );
    }

    #[test]
    fn id_bumped_before_the_file_caches_the_old_body_under_the_new_id() {
        // id 2 was published while the old body was still served; then the body changed.
        let early = served(
            "1",
            Mode::Enforce,
            WEEK,
            &["mx1.example.com"],
            NOW - 60 * DAY,
            NOW - 3 * DAY,
        );
        let old_body_new_id = served(
            "2",
            Mode::Enforce,
            WEEK,
            &["mx1.example.com"],
            NOW - 3 * DAY,
            NOW - 2 * DAY,
        );
        let current = served(
            "2",
            Mode::Enforce,
            WEEK,
            &["mx2.example.com"],
            NOW - 2 * DAY,
            NOW,
        );
        let r = report(Some("2"), Some(&["mx2.example.com"]), &["mx2.example.com"]);
        let risks = cached_policy_risks(&r, Some(&current), &[early, old_body_new_id], NOW);
        assert_eq!(
            codes(&risks),
            [("mx_refused_by_cached_policy", Some("mx2.example.com"))]
        );
        assert!(risks.findings[0].message.contains("served under id 2"));
        assert_eq!(risks.until, Some(NOW - 2 * DAY + i64::from(WEEK)));
    }

    #[test]
    fn removal_without_mode_none_leaves_senders_enforcing() {
        let last = served(
            "3",
            Mode::Enforce,
            WEEK,
            &["mx1.example.com"],
            NOW - 90 * DAY,
            NOW - DAY,
        );
        // The record is gone and a new MX appeared: cached copies refuse it and keep enforcing.
        let r = report(None, None, &["mx1.example.com", "mx9.example.net"]);
        let risks = cached_policy_risks(&r, Some(&last), &[], NOW);
        assert_eq!(
            codes(&risks),
            [
                ("mx_refused_by_cached_policy", Some("mx9.example.net")),
                ("policy_removed_without_mode_none", None),
            ]
        );
        assert!(risks.findings[1].message.contains("RFC 8461 §8.3"));
        // Withdrawn properly: the last policy served was mode none.
        let none = served("4", Mode::None, WEEK, &[], NOW - 10 * DAY, NOW - 9 * DAY);
        assert_eq!(
            cached_policy_risks(&r, Some(&none), &[last], NOW)
                .findings
                .len(),
            1
        );
    }

    #[test]
    fn max_age_edges() {
        let r = report(None, None, &["mx1.example.com"]);
        // Expired exactly now: gone. One second left: still a risk.
        let edge = served(
            "1",
            Mode::Enforce,
            WEEK,
            &["other.example.com"],
            NOW - 30 * DAY,
            NOW - i64::from(WEEK),
        );
        assert_eq!(
            cached_policy_risks(&r, Some(&edge), &[], NOW),
            CacheRisks::default()
        );
        let left = Served {
            last_seen: NOW - i64::from(WEEK) + 1,
            ..edge.clone()
        };
        let risks = cached_policy_risks(&r, Some(&left), &[], NOW);
        assert_eq!(risks.until, Some(NOW + 1));
        assert!(risks.findings[0].message.contains("(less than a day)"));
        // max_age 0: nothing is ever cached.
        let zero = Served {
            max_age: 0,
            last_seen: NOW,
            ..edge.clone()
        };
        assert_eq!(
            cached_policy_risks(&r, Some(&zero), &[], NOW),
            CacheRisks::default()
        );
        // The longest max_age the RFC allows.
        let year = Served {
            max_age: 31_557_600,
            last_seen: NOW,
            ..edge
        };
        assert_eq!(
            cached_policy_risks(&r, Some(&year), &[], NOW).until,
            Some(NOW + 31_557_600)
        );
    }

    #[test]
    fn testing_policies_refuse_nothing() {
        let old = served(
            "1",
            Mode::Testing,
            WEEK,
            &["mx1.example.com"],
            NOW - 9 * DAY,
            NOW - DAY,
        );
        let r = report(None, None, &["mx2.example.com"]);
        let risks = cached_policy_risks(&r, Some(&old), &[], NOW);
        assert_eq!(codes(&risks), [("policy_removed_without_mode_none", None)]);
    }
}
