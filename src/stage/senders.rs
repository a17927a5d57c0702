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

/// Exchange Online returns a message it could not deliver after this long: the service-wide
/// default message expiration timeout (Microsoft 365 message center MC441064; tenants may set
/// 12 to 24 hours).
pub const EXCHANGE_ONLINE_MESSAGE_EXPIRATION_SECONDS: u64 = 24 * 3_600;

/// Postfix returns a deferred message to its sender after this long: the default
/// `maximal_queue_lifetime` (5d) of qmgr(8) and postconf(5).
pub const POSTFIX_MAXIMAL_QUEUE_LIFETIME_SECONDS: u64 = 5 * 86_400;

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
    /// failure) and bounces when the sender's queue lifetime ends
    /// ([`SenderVerdict::bounce_after_seconds`]), unless a usable MX remains. No sourced sender
    /// bounces at once: RFC 8461 §5.1 forbids a permanent failure before checking for a new
    /// policy.
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderVerdict {
    pub profile: Profile,
    pub action: Action,
    /// Why, and for how long where a source says so.
    pub note: String,
    /// For [`Action::Defer`]: how long the sender keeps the message queued before returning it
    /// to its sender, by default. None where no source gives one value (and for the other
    /// actions), so a reader can tell "unknown" from a number.
    pub bounce_after_seconds: Option<u64>,
}

/// In JSON, `bounce_after_seconds` appears on `defer` verdicts only: a number, or `null` where
/// no source gives one (docs/senders.md).
impl Serialize for SenderVerdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            profile: Profile,
            action: Action,
            note: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            bounce_after_seconds: Option<Option<u64>>,
        }
        View {
            profile: self.profile,
            action: self.action,
            note: &self.note,
            bounce_after_seconds: (self.action == Action::Defer)
                .then_some(self.bounce_after_seconds),
        }
        .serialize(serializer)
    }
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
    let (action, note, bounce_after_seconds) = match (profile, action) {
        (Profile::Rfc8461, Action::Defer) => (
            action,
            format!(
                "{note}; mail it cannot deliver bounces when the sender's queue lifetime ends (RFC 5321 §4.5.4.1: at least 4-5 days)"
            ),
            None,
        ),
        (Profile::Gmail, Action::Defer) => (
            action,
            "as rfc8461 (it applies the single-label wildcard rule too); how long it queues before bouncing is not documented in a source we have".to_string(),
            None,
        ),
        (Profile::ExchangeOnline, Action::Defer) => (
            action,
            format!(
                "as rfc8461: defers with 4.4.8 (MX failed MTA-STS validation) or 4.7.5 (certificate failed), retrying after 30 min and then hourly; bounces with 5.4.8 / 5.7.5 after {} h (Exchange Online's default message expiration; tenants may set 12-24 h)",
                EXCHANGE_ONLINE_MESSAGE_EXPIRATION_SECONDS / 3_600
            ),
            Some(EXCHANGE_ONLINE_MESSAGE_EXPIRATION_SECONDS),
        ),
        (Profile::PostfixResolver, _) => postfix_resolver(report, action, note),
        (_, _) => (action, note, None),
    };
    SenderVerdict {
        profile,
        action,
        note,
        bounce_after_seconds,
    }
}

/// A Postfix `secure` policy that fails: the message is deferred and returned when
/// `maximal_queue_lifetime` ends.
fn postfix_deferral() -> (Action, String, Option<u64>) {
    (
        Action::Defer,
        format!(
            "as rfc8461: Postfix defers the message (e.g. dsn=4.7.5 \"Server certificate not verified\"), retrying with backoff from 300 s up to 4000 s; bounces after {} d (Postfix's default maximal_queue_lifetime)",
            POSTFIX_MAXIMAL_QUEUE_LIFETIME_SECONDS / 86_400
        ),
        Some(POSTFIX_MAXIMAL_QUEUE_LIFETIME_SECONDS),
    )
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
fn postfix_resolver(
    report: &DomainReport,
    action: Action,
    note: String,
) -> (Action, String, Option<u64>) {
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
            None,
        );
    }
    let Some(policy) = report.policy.policy.as_deref() else {
        return (action, note, None);
    };
    if policy.mode != Mode::Enforce || action != Action::Defer {
        return (action, note, None);
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
            None,
        );
    }
    postfix_deferral()
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
        assert!(exchange.contains("after 24 h"), "{exchange}");
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

    #[test]
    fn deferring_senders_say_how_long_they_queue() {
        let r = report(
            Verdict::EnforcedRefused,
            &["mx.example.com"],
            &[("mx.other.net", false)],
        );
        let bounce_after: Vec<(&str, Option<u64>)> = sender_verdicts(&r)
            .iter()
            .map(|v| (v.profile.as_str(), v.bounce_after_seconds))
            .collect();
        assert_eq!(
            bounce_after,
            [
                ("rfc8461", None),
                ("gmail", None),
                ("exchange_online", Some(86_400)),
                ("postfix_resolver", Some(432_000)),
            ]
        );
        let verdicts = sender_verdicts(&r);
        assert!(
            verdicts[0].note.contains("RFC 5321 §4.5.4.1"),
            "{}",
            verdicts[0].note
        );
        assert!(
            verdicts[1].note.contains("not documented"),
            "{}",
            verdicts[1].note
        );
        assert!(verdicts[2].note.contains("12-24 h"), "{}", verdicts[2].note);
        assert!(
            verdicts[3].note.contains("after 5 d"),
            "{}",
            verdicts[3].note
        );
        // Only a deferral has a bounce time.
        let r = report(
            Verdict::EnforcedDeliverable,
            &["mx.example.com"],
            &[("mx.example.com", true)],
        );
        assert!(sender_verdicts(&r)
            .iter()
            .all(|v| v.bounce_after_seconds.is_none()));
    }

    #[test]
    fn json_has_bounce_after_on_deferrals_only() {
        let r = report(
            Verdict::EnforcedRefused,
            &["mx.example.com"],
            &[("mx.other.net", false)],
        );
        let json = serde_json::to_value(sender_verdicts(&r)).expect("serializes");
        assert_eq!(json[0]["action"], "defer");
        assert!(json[0]["bounce_after_seconds"].is_null());
        assert!(json[0]
            .as_object()
            .is_some_and(|o| o.contains_key("bounce_after_seconds")));
        assert_eq!(json[2]["bounce_after_seconds"], 86_400);
        let r = report(
            Verdict::EnforcedDeliverable,
            &["mx.example.com"],
            &[("mx.example.com", true)],
        );
        let json = serde_json::to_value(sender_verdicts(&r)).expect("serializes");
        assert!(json[0]
            .as_object()
            .is_some_and(|o| !o.contains_key("bounce_after_seconds")));
    }
}
