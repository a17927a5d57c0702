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
