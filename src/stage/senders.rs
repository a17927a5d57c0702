//! Sender profiles: what real senders do with the domain's mail, where they differ from the RFC
//! 8461 reference. Pure: a function of the report. Every behaviour is one documented in
//! `docs/senders.md` with its source; what no available source documents is said so, not
//! guessed.

use serde::Serialize;

use crate::report::{Delivery, DomainReport, Verdict};
use crate::stage::mx;
use crate::stage::policy::Mode;

/// postfix-mta-sts-resolver gives up a policy fetch after this long (its `defaults.py`:
/// `TIMEOUT = 4`).
pub const POSTFIX_RESOLVER_FETCH_TIMEOUT_SECONDS: f64 = 4.0;

/// A sender whose behaviour is modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// A sender that does exactly what RFC 8461 says.
    Rfc8461,
    /// Gmail's outbound MTA.
    Gmail,
    /// Exchange Online (Microsoft 365) outbound.
    ExchangeOnline,
    /// Postfix with postfix-mta-sts-resolver (`secure match=` policies).
    PostfixResolver,
}

impl Profile {
    pub const ALL: &'static [Profile] = &[
        Profile::Rfc8461,
        Profile::Gmail,
        Profile::ExchangeOnline,
        Profile::PostfixResolver,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Rfc8461 => "rfc8461",
            Profile::Gmail => "gmail",
            Profile::ExchangeOnline => "exchange_online",
            Profile::PostfixResolver => "postfix_resolver",
        }
    }
}

/// What a sender does with a message to the domain now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Delivers (with MTA-STS validation, or opportunistic TLS without a policy).
    Deliver,
    /// Refuses the MX hosts the policy rejects: the message waits in the queue (temporary
    /// failure) and bounces when the sender's retry period ends, unless a usable MX remains.
    Defer,
    /// What it does cannot be told (the check could not tell what senders see).
    Unknown,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deliver => "deliver",
            Action::Defer => "defer",
            Action::Unknown => "unknown",
        }
    }
}

/// One profile's verdict for one domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SenderVerdict {
    pub profile: Profile,
    pub action: Action,
    /// Why, and for how long where a source says so.
    pub note: String,
}

/// Every profile's verdict for `report`.
pub fn sender_verdicts(report: &DomainReport) -> Vec<SenderVerdict> {
    Profile::ALL
        .iter()
        .map(|&profile| verdict_for(profile, report))
        .collect()
}

fn verdict_for(profile: Profile, report: &DomainReport) -> SenderVerdict {
    let (action, note) = reference(report);
    let (action, note) = match profile {
        Profile::Rfc8461 => (action, note),
        Profile::Gmail => (
            action,
            match action {
                Action::Defer => "as rfc8461 (it applies the single-label wildcard rule too); how long it queues before bouncing is not documented in a source we have".to_string(),
                _ => note,
            },
        ),
        Profile::ExchangeOnline => (
            action,
            match action {
                Action::Defer => "as rfc8461: defers with 4.4.8 (MX failed MTA-STS validation) or 4.7.5 (certificate failed), bounces with 5.4.8 / 5.7.5; its retry period is not documented in a source we have".to_string(),
                _ => note,
            },
        ),
        Profile::PostfixResolver => postfix_resolver(report, action, note),
    };
    SenderVerdict {
        profile,
        action,
        note,
    }
}

/// The RFC 8461 reference sender, from the verdict.
fn reference(report: &DomainReport) -> (Action, String) {
    match report.verdict {
        Verdict::EnforcedRefused => (
            Action::Defer,
            format!(
                "enforce: refuses {} (RFC 8461 §5: no delivery to an MX that fails validation, and no permanent failure before checking for a new policy)",
                report.refused_mx.join(", ")
            ),
        ),
        Verdict::Undetermined => (
            Action::Unknown,
            "what senders see could not be told (a lookup failed or the check timed out)".into(),
        ),
        Verdict::NoPolicy => (
            Action::Deliver,
            "no usable policy: opportunistic TLS (a copy cached earlier still applies)".into(),
        ),
        Verdict::ModeNone => (Action::Deliver, "mode none: the policy is not applied".into()),
        Verdict::TestingReady | Verdict::TestingNotReady => (
            Action::Deliver,
            "testing: delivers whatever validation shows, and reports failures (TLS-RPT)".into(),
        ),
        Verdict::EnforcedDeliverable => (
            Action::Deliver,
            "enforce: every MX validates".into(),
        ),
    }
}

/// postfix-mta-sts-resolver hands Postfix `secure match=` with a wildcard `*.example.com` turned
/// into `.example.com`, which Postfix matches as a suffix (any depth), and gives up a fetch after
/// 4 seconds.
fn postfix_resolver(report: &DomainReport, action: Action, note: String) -> (Action, String) {
    let slow = report
        .policy
        .fetch
        .as_ref()
        .is_some_and(|f| f.duration_seconds > POSTFIX_RESOLVER_FETCH_TIMEOUT_SECONDS);
    if slow && report.policy.policy.is_some() {
        return (
            Action::Deliver,
            format!(
                "the policy host took longer than the resolver's {POSTFIX_RESOLVER_FETCH_TIMEOUT_SECONDS} s fetch timeout: without a cached copy it sees no policy and delivers with opportunistic TLS"
            ),
        );
    }
    let Some(policy) = report.policy.policy.as_deref() else {
        return (action, note);
    };
    if policy.mode != Mode::Enforce || action != Action::Defer {
        return (action, note);
    }
    // Refused only for coverage, and covered under Postfix's suffix matching: it delivers.
    let by_suffix = report.mx.hosts.iter().all(|h| {
        h.transport.delivery() == Delivery::Deliverable
            && (h.covered || policy.mx.iter().any(|p| suffix_covers(p, &h.name)))
    });
    if by_suffix && report.mx.hosts.iter().any(|h| !h.covered) {
        return (
            Action::Deliver,
            "delivers: the resolver passes *.example.com to Postfix as .example.com, which matches at any depth, so it accepts MX hosts RFC 8461 senders refuse (Postfix ≥ 3.10.5 can enforce the RFC rule: smtp_tls_enforce_sts_mx_patterns)".into(),
        );
    }
    (action, note)
}

/// Postfix's `.example.com` suffix match of a `*.example.com` pattern: any name below it.
fn suffix_covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(base) => {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let base = base.to_ascii_lowercase();
            host.ends_with(&format!(".{base}")) && !mx::pattern_matches(pattern, &host)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{HostTransport, MxHostReport};
    use crate::stage::policy::Policy;

    fn report(verdict: Verdict, patterns: &[&str], hosts: &[(&str, bool)]) -> DomainReport {
        let mut r = DomainReport::skeleton("example.com");
        r.verdict = verdict;
        r.policy.policy = Some(Box::new(Policy {
            version: "STSv1".into(),
            mode: Mode::Enforce,
            max_age: 604_800,
            mx: patterns.iter().map(|p| p.to_string()).collect(),
            extensions: vec![],
        }));
        for (name, covered) in hosts {
            let mut host = MxHostReport::new(name.to_string(), 10);
            host.covered = *covered;
            host.transport = HostTransport::Valid;
            r.mx.hosts.push(host);
            if !covered {
                r.refused_mx.push(name.to_string());
            }
        }
        r
    }

    fn actions(r: &DomainReport) -> Vec<(&'static str, &'static str)> {
        sender_verdicts(r)
            .iter()
            .map(|v| (v.profile.as_str(), v.action.as_str()))
            .collect()
    }

    #[test]
    fn every_profile_for_every_verdict() {
        for (verdict, action) in [
            (Verdict::EnforcedDeliverable, Action::Deliver),
            (Verdict::EnforcedRefused, Action::Defer),
            (Verdict::TestingReady, Action::Deliver),
            (Verdict::TestingNotReady, Action::Deliver),
            (Verdict::ModeNone, Action::Deliver),
            (Verdict::NoPolicy, Action::Deliver),
            (Verdict::Undetermined, Action::Unknown),
        ] {
            let r = report(verdict, &["mx.example.com"], &[("mx.example.com", true)]);
            for v in sender_verdicts(&r) {
                assert_eq!(v.action, action, "{verdict:?} {:?}", v.profile);
                assert!(!v.note.is_empty());
            }
        }
    }

    #[test]
    fn multi_label_wildcard_is_refused_by_rfc_senders_but_not_by_postfix() {
        let r = report(
            Verdict::EnforcedRefused,
            &["*.mx.microsoft"],
            &[("tenant.h-v1.mx.microsoft", false)],
        );
        assert_eq!(
            actions(&r),
            [
                ("rfc8461", "defer"),
                ("gmail", "defer"),
                ("exchange_online", "defer"),
                ("postfix_resolver", "deliver"),
            ]
        );
        let exchange = &sender_verdicts(&r)[2].note;
        assert!(exchange.contains("4.4.8"), "{exchange}");
        // Not covered at any depth: Postfix refuses too.
        let r = report(
            Verdict::EnforcedRefused,
            &["*.example.net"],
            &[("mx.example.org", false)],
        );
        assert_eq!(actions(&r)[3], ("postfix_resolver", "defer"));
    }

    #[test]
    fn a_slow_policy_host_is_no_policy_for_the_postfix_resolver() {
        let mut r = report(
            Verdict::EnforcedRefused,
            &["mx.example.com"],
            &[("mx.other.net", false)],
        );
        r.policy.fetch = Some(Box::new(crate::probe::https::PolicyFetch {
            url: "https://mta-sts.example.com/.well-known/mta-sts.txt".into(),
            host: "mta-sts.example.com".into(),
            address: None,
            status: Some(200),
            location: None,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            body: None,
            body_bytes: 60,
            tls: None,
            outcome: crate::probe::https::FetchOutcome::Fetched,
            duration_seconds: 6.5,
        }));
        let verdicts = sender_verdicts(&r);
        assert_eq!(verdicts[0].action, Action::Defer);
        assert_eq!(verdicts[3].action, Action::Deliver);
        assert!(verdicts[3].note.contains("4 s fetch timeout"));
    }
}
