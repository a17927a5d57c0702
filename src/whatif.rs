//! What-if: a draft policy and/or MX set judged against the live domain before publishing.
//!
//! The live domain is gathered once; the draft replaces what it changes (the policy body, as if
//! served correctly by the policy host; the MX set, each new host looked up and probed like a
//! live one) and both are judged by the same pure [`judge`]. The switch from the current policy
//! to the draft is then assessed: which MX hosts senders still holding the current policy
//! (cached for up to its `max_age`) refuse, and in which order to publish (RFC 8461 §3.3, §8.1:
//! the policy file first, then the id; an MX added only once caches cover it).

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::check::gather::{HostObservation, Observations, PolicyObservation};
use crate::check::{judge, Checker};
use crate::clock::{format_date, unix_now};
use crate::domain::DomainName;
use crate::probe::dns::{Lookup, MxAnswer, MxRecord, TxtAnswer};
use crate::probe::https::{FetchOutcome, PolicyFetch, POLICY_PATH};
use crate::probe::tls::TlsObservation;
use crate::report::{Delivery, DomainReport, RecordStatus};
use crate::stage::cert::CertVerdict;
use crate::stage::mx;
use crate::stage::policy::{Mode, Policy};

/// The record id a draft is judged under when the domain has no valid record yet.
const DRAFT_ID: &str = "proposed";

/// What is proposed: a policy file, an MX set, or both.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    /// The draft policy file as it would be served.
    pub policy: Option<Vec<u8>>,
    /// The draft MX host names, most preferred first.
    pub mx: Option<Vec<String>>,
}

/// The what-if answer.
#[derive(Clone, Debug, Serialize)]
pub struct WhatIf {
    pub domain: DomainName,
    /// Under the draft, a sender enforcing the policy delivers to every MX.
    pub ready: bool,
    /// Why not, when not ready (one line per reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ready: Vec<String>,
    /// What senders still holding the current policy do during the switch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub switch: Vec<SwitchRisk>,
    /// The order to publish in.
    pub steps: Vec<String>,
    /// The domain judged as it is now.
    pub current: DomainReport,
    /// The domain judged under the draft.
    pub proposed: DomainReport,
}

/// An MX that senders holding the current policy refuse until their cached copy expires.
#[derive(Clone, Debug, Serialize)]
pub struct SwitchRisk {
    pub mx: String,
    /// Unix seconds: the latest a copy of the current policy cached now expires.
    pub until: i64,
    pub message: String,
}

/// Gathers `domain`, applies `draft` and judges both (the what-if of `check --proposed-*`).
pub async fn what_if(checker: &Checker, domain: &str, draft: &Draft) -> WhatIf {
    let live = checker.observe(domain).await;
    let missing: Vec<(String, u16)> = match &draft.mx {
        Some(names) => names
            .iter()
            .enumerate()
            .filter(|(_, name)| !live.hosts.iter().any(|h| &h.name == *name))
            .map(|(i, name)| (name.clone(), preference(i)))
            .collect(),
        None => vec![],
    };
    let extra = if missing.is_empty() {
        vec![]
    } else {
        checker.observe_hosts(&missing).await
    };
    let proposed = apply(&live, draft, extra);
    let settings = checker.settings().judge_settings();
    let now = unix_now();
    assess(
        judge(live, &settings, now),
        judge(proposed, &settings, now),
        draft,
        now,
    )
}

/// MX preferences of a draft MX set: in the order given, 10 apart.
fn preference(index: usize) -> u16 {
    u16::try_from(index.saturating_add(1).saturating_mul(10)).unwrap_or(u16::MAX)
}

/// The live observations with the draft applied: the policy body as if served correctly by the
/// policy host (so the draft's own content and coverage are judged; today's serving faults are
/// reported as steps), the record valid (the current one, or one with id `proposed`), and the
/// MX set replaced, reusing live hosts by name and `extra` for the new ones.
pub fn apply(live: &Observations, draft: &Draft, extra: Vec<HostObservation>) -> Observations {
    let mut proposed = live.clone();
    if let Some(body) = &draft.policy {
        let host = live.domain.policy_host();
        let fetch = PolicyFetch {
            url: format!("https://{host}{POLICY_PATH}"),
            host,
            address: None,
            status: Some(200),
            location: None,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            body: Some(body.clone()),
            body_bytes: body.len(),
            tls: Some(TlsObservation {
                version: Some("TLSv1.3".into()),
                cipher_suite: None,
                chain_length: 1,
                leaf: None,
                verdict: Some(CertVerdict {
                    trusted: true,
                    name_matches: true,
                    time_valid: true,
                    first_error: None,
                    trust_error: None,
                    detail: None,
                }),
            }),
            outcome: FetchOutcome::Fetched,
            duration_seconds: 0.0,
        };
        proposed.policy = PolicyObservation::Fetched(Box::new(fetch));
        proposed.policy_other_family = None;
        let record_valid = live.record.found().is_some_and(|answer| {
            crate::stage::record::evaluate_sts_txt(&answer.records).status == RecordStatus::Valid
        });
        if !record_valid {
            proposed.record = Lookup::Found(TxtAnswer {
                records: vec![format!("v=STSv1; id={DRAFT_ID};")],
                cname_chain: vec![],
            });
        }
    }
    if let Some(names) = &draft.mx {
        let mut extra = extra;
        proposed.mx = Lookup::Found(MxAnswer::Hosts(
            names
                .iter()
                .enumerate()
                .map(|(i, name)| MxRecord {
                    preference: preference(i),
                    exchange: name.clone(),
                })
                .collect(),
        ));
        proposed.hosts = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let found = live
                    .hosts
                    .iter()
                    .find(|h| &h.name == name)
                    .cloned()
                    .or_else(|| {
                        let at = extra.iter().position(|h| &h.name == name)?;
                        Some(extra.swap_remove(at))
                    });
                let mut host = found.unwrap_or(HostObservation {
                    name: name.clone(),
                    preference: 0,
                    addresses: None,
                    probes: vec![],
                });
                host.preference = preference(i);
                host
            })
            .collect();
    }
    proposed
}

/// Compares the domain now with the domain under the draft, at `now`.
pub fn assess(current: DomainReport, proposed: DomainReport, draft: &Draft, now: i64) -> WhatIf {
    let mut not_ready = Vec::new();
    let draft_policy = proposed.policy.policy.as_deref();
    if draft_policy.is_none() {
        not_ready.push(match &draft.policy {
            Some(_) => "the draft policy is not a valid policy (see the findings)".to_string(),
            None => {
                "the domain has no valid policy to judge the MX set against: give --proposed-policy"
                    .to_string()
            }
        });
    }
    let withdrawn = draft_policy.is_some_and(|p| p.mode == Mode::None);
    if proposed.mx.hosts.is_empty() {
        not_ready.push("the draft MX set is empty or the MX lookup found no host".to_string());
    }
    for host in proposed.mx.hosts.iter().filter(|_| !withdrawn) {
        match host.delivery {
            Some(Delivery::Deliverable) => {}
            Some(Delivery::Refused) if !host.covered => not_ready.push(format!(
                "MX {} matches no mx pattern of the draft: an enforcing sender refuses it",
                host.name
            )),
            Some(Delivery::Refused) => not_ready.push(format!(
                "MX {} is covered, but its transport fails ({}): an enforcing sender refuses it",
                host.name,
                host.transport.as_str()
            )),
            Some(Delivery::Unknown) | None => not_ready.push(format!(
                "MX {}: what a sender meets there could not be told ({})",
                host.name,
                host.transport.as_str()
            )),
        }
    }
    let ready = not_ready.is_empty();
    let old = current.policy.policy.as_deref();
    let switch = switch_risks(old, &proposed, now);
    let steps = steps(&current, &proposed, draft, &switch, now);
    WhatIf {
        domain: current.domain.clone(),
        ready,
        not_ready,
        switch,
        steps,
        current,
        proposed,
    }
}

/// The draft MX hosts the current policy does not cover: senders that cached it refuse them
/// (enforce) or only report them (testing) until their copy expires.
fn switch_risks(old: Option<&Policy>, proposed: &DomainReport, now: i64) -> Vec<SwitchRisk> {
    let Some(old) = old else {
        return vec![];
    };
    if old.mode == Mode::None {
        return vec![];
    }
    let names: Vec<String> = proposed.mx.hosts.iter().map(|h| h.name.clone()).collect();
    let coverage = mx::coverage(&old.mx, &names);
    let until = now.saturating_add(i64::from(old.max_age));
    coverage
        .hosts
        .into_iter()
        .filter(|c| c.covered_by.is_none())
        .map(|c| {
            let what = match old.mode {
                Mode::Enforce => "refuse it",
                _ => "report it as a failure (testing mode) but deliver",
            };
            SwitchRisk {
                message: format!(
                    "senders that keep the current policy (mode {}, max_age {}) {what} until their copy expires, at the latest {} ({}): those that have not yet seen the new id, or cannot fetch the new policy",
                    old.mode.as_str(),
                    old.max_age,
                    format_date(until),
                    describe_span(Duration::from_secs(u64::from(old.max_age)))
                ),
                mx: c.host,
                until,
            }
        })
        .collect()
}

/// The order to publish in.
fn steps(
    current: &DomainReport,
    proposed: &DomainReport,
    draft: &Draft,
    switch: &[SwitchRisk],
    now: i64,
) -> Vec<String> {
    let mut steps = Vec::new();
    let policy_host = current.domain.policy_host();
    for finding in current.findings.iter().filter(|f| {
        f.host.as_deref() == Some(policy_host.as_str())
            && (f.code.as_str().starts_with("policy_")
                && f.code.as_str() != "policy_without_record")
    }) {
        steps.push(format!(
            "fix the policy host first ({}): {}",
            finding.code, finding.message
        ));
    }
    let policy_changes = draft.policy.is_some()
        && proposed.policy.normalized_sha256 != current.policy.normalized_sha256;
    let current_mx: Vec<&str> = current.mx.hosts.iter().map(|h| h.name.as_str()).collect();
    let draft_mx: Vec<&str> = proposed.mx.hosts.iter().map(|h| h.name.as_str()).collect();
    let added: Vec<&str> = draft_mx
        .iter()
        .copied()
        .filter(|n| !current_mx.contains(n))
        .collect();
    let removed: Vec<&str> = current_mx
        .iter()
        .copied()
        .filter(|n| !draft_mx.contains(n))
        .collect();
    if policy_changes {
        if let Some(policy) = proposed.policy.policy.as_deref() {
            if draft.mx.is_some() {
                // While the MX records still name the current hosts, the draft must cover them.
                let uncovered: Vec<&str> = removed
                    .iter()
                    .copied()
                    .filter(|n| {
                        mx::coverage(&policy.mx, &[n.to_string()]).hosts[0]
                            .covered_by
                            .is_none()
                    })
                    .collect();
                if !uncovered.is_empty() && policy.mode == Mode::Enforce {
                    steps.push(format!(
                        "the draft does not cover {}, which the MX records name until the switch: senders that fetch the draft before then refuse them; keep their mx lines until the MX records no longer name them",
                        uncovered.join(", ")
                    ));
                }
            }
        }
        steps.push(format!(
            "publish the draft at https://{policy_host}{POLICY_PATH} (text/plain, no redirect, no compression)"
        ));
        let id = match current.record.id.as_deref() {
            Some(id) if current.record.status == RecordStatus::Valid => {
                format!(
                    "change the id of {} (now {id})",
                    current.domain.record_name()
                )
            }
            _ => format!(
                "publish {} TXT \"v=STSv1; id=<new id>;\"",
                current.domain.record_name()
            ),
        };
        steps.push(format!(
            "then {id}, once the new file is served everywhere: senders fetch again only when the id changes (RFC 8461 §3.1); bumping it first caches the old file under the new id"
        ));
    }
    if !added.is_empty() {
        match switch.iter().map(|r| r.until).max() {
            Some(until) if until > now => steps.push(format!(
                "after the new id is published, wait the current policy's max_age ({}; until {} if published today) before the MX records name {}: senders holding the current policy refuse {}",
                describe_span(Duration::from_secs(u64::try_from(until - now).unwrap_or(0))),
                format_date(until),
                added.join(", "),
                switch.iter().map(|r| r.mx.as_str()).collect::<Vec<_>>().join(", ")
            )),
            _ => {}
        }
        steps.push(format!("then add the MX records for {}", added.join(", ")));
    }
    if !removed.is_empty() && draft.mx.is_some() {
        steps.push(format!(
            "remove the MX records for {}; drop their mx lines from the policy only after that (publish the file, then a new id)",
            removed.join(", ")
        ));
    }
    if let Some(policy) = proposed.policy.policy.as_deref() {
        if policy.mode == Mode::None && draft.policy.is_some() {
            steps.push(format!(
                "mode none withdraws the policy: keep serving it (and the record) for at least max_age ({}) before removing them, so cached enforce copies expire first (RFC 8461 §8.3)",
                describe_span(Duration::from_secs(u64::from(policy.max_age)))
            ));
        }
    }
    if steps.is_empty() {
        steps.push("nothing to publish: the draft equals what is live".to_string());
    }
    steps
}

/// "41 days", "1 day", "5 hours".
fn describe_span(span: Duration) -> String {
    let secs = span.as_secs();
    match secs / 86_400 {
        0 => format!("{} hours", secs / 3_600),
        1 => "1 day".to_string(),
        days => format!("{days} days"),
    }
}

/// The human form of a what-if.
pub fn render(what: &WhatIf) -> String {
    let mut out = String::new();
    out.push_str(&format!("What-if for {}\n\n", what.domain));
    out.push_str(&format!(
        "now:         {}\nunder draft: {}\n",
        what.current.verdict.describe(),
        what.proposed.verdict.describe()
    ));
    if let Some(policy) = what.proposed.policy.policy.as_deref() {
        out.push_str(&format!(
            "draft:       mode {}, max_age {}, mx {}\n",
            policy.mode.as_str(),
            policy.max_age,
            policy.mx.join(", ")
        ));
    }
    out.push('\n');
    if what.ready {
        out.push_str("READY: under the draft an enforcing sender delivers to every MX:\n");
    } else {
        out.push_str("NOT READY:\n");
        for reason in &what.not_ready {
            out.push_str(&format!("  - {reason}\n"));
        }
    }
    for host in &what.proposed.mx.hosts {
        let addresses: Vec<String> = host.addresses.iter().map(IpAddr::to_string).collect();
        out.push_str(&format!(
            "  {} [{}] covered by {}, transport {}\n",
            host.name,
            addresses.join(", "),
            host.covered_by.as_deref().unwrap_or("nothing"),
            host.transport.as_str()
        ));
    }
    if !what.switch.is_empty() {
        out.push_str("\nDuring the switch:\n");
        for risk in &what.switch {
            out.push_str(&format!("  - MX {}: {}\n", risk.mx, risk.message));
        }
    }
    out.push_str("\nPublish in this order:\n");
    for (i, step) in what.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {step}\n", i + 1));
    }
    let findings: Vec<String> = what
        .proposed
        .findings
        .iter()
        .map(|f| format!("  [{}] {}: {}\n", f.severity, f.code, f.message))
        .collect();
    if !findings.is_empty() {
        out.push_str("\nFindings under the draft:\n");
        for line in findings {
            out.push_str(&line);
        }
    }
    out
}
