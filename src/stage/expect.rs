//! Operator expectations per domain (from the configuration): a deviation is a finding.

use std::collections::BTreeSet;

use crate::finding::{Code, Finding};
use crate::report::DomainReport;
use crate::stage::mx::normalize_host;
use crate::stage::policy::Mode;

/// What the operator expects a domain's policy to say. Absent fields are not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    pub mode: Option<Mode>,
    /// The exact set of `mx` patterns (order and case do not matter).
    pub mx: Option<Vec<String>>,
    /// The least acceptable `max_age`, in seconds.
    pub min_max_age: Option<u32>,
}

impl Expectations {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.mx.is_none() && self.min_max_age.is_none()
    }
}

/// Findings for every expectation the report's valid policy breaks. Without a valid policy
/// there is nothing to compare (the missing policy is reported already).
pub fn check_expectations(report: &DomainReport, expect: &Expectations) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(policy) = &report.policy.policy else {
        return findings;
    };
    if let Some(mode) = expect.mode {
        if policy.mode != mode {
            findings.push(Finding::new(
                Code::ExpectationModeMismatch,
                format!(
                    "the policy is in mode {} but mode {} is expected",
                    policy.mode.as_str(),
                    mode.as_str()
                ),
            ));
        }
    }
    if let Some(expected) = &expect.mx {
        let want: BTreeSet<String> = expected.iter().map(|p| normalize_host(p)).collect();
        let have: BTreeSet<String> = policy.mx.iter().map(|p| normalize_host(p)).collect();
        if want != have {
            let missing: Vec<&String> = want.difference(&have).collect();
            let extra: Vec<&String> = have.difference(&want).collect();
            findings.push(Finding::new(
                Code::ExpectationMxMismatch,
                format!(
                    "the policy's mx patterns differ from the expected set: missing [{}], unexpected [{}]",
                    join(&missing),
                    join(&extra)
                ),
            ));
        }
    }
    if let Some(min) = expect.min_max_age {
        if policy.max_age < min {
            findings.push(Finding::new(
                Code::ExpectationMaxAgeLow,
                format!(
                    "the policy's max_age is {} seconds, below the expected minimum of {min}",
                    policy.max_age
                ),
            ));
        }
    }
    findings
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::PolicyStatus;
    use crate::stage::policy::Policy;

    fn report(mode: Mode, mx: &[&str], max_age: u32) -> DomainReport {
        let mut r = DomainReport::skeleton("example.test");
        r.policy.status = PolicyStatus::Valid;
        r.policy.policy = Some(Box::new(Policy {
            version: "STSv1".into(),
            mode,
            max_age,
            mx: mx.iter().map(|s| s.to_string()).collect(),
            extensions: vec![],
        }));
        r
    }

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn matching_expectations_are_silent() {
        let expect = Expectations {
            mode: Some(Mode::Enforce),
            mx: Some(vec!["*.Example.test.".into(), "mx1.example.test".into()]),
            min_max_age: Some(86_400),
        };
        let r = report(
            Mode::Enforce,
            &["mx1.example.test", "*.example.test"],
            604_800,
        );
        assert!(check_expectations(&r, &expect).is_empty());
    }

    #[test]
    fn each_deviation_is_a_finding_naming_the_values() {
        let expect = Expectations {
            mode: Some(Mode::Enforce),
            mx: Some(vec!["*.example.test".into()]),
            min_max_age: Some(604_800),
        };
        let r = report(Mode::Testing, &["mx1.example.test"], 86_400);
        let findings = check_expectations(&r, &expect);
        assert_eq!(
            codes(&findings),
            vec![
                "expectation_mode_mismatch",
                "expectation_mx_mismatch",
                "expectation_max_age_low"
            ]
        );
        assert!(findings[0].message.contains("testing") && findings[0].message.contains("enforce"));
        assert!(findings[1].message.contains("missing [*.example.test]"));
        assert!(findings[1]
            .message
            .contains("unexpected [mx1.example.test]"));
        assert!(findings[2].message.contains("86400") && findings[2].message.contains("604800"));
    }

    #[test]
    fn nothing_to_compare_without_a_valid_policy() {
        let expect = Expectations {
            mode: Some(Mode::Enforce),
            ..Expectations::default()
        };
        let r = DomainReport::skeleton("example.test");
        assert!(check_expectations(&r, &expect).is_empty());
        assert!(Expectations::default().is_empty());
    }
}
