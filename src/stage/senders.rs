//! Sender profiles: what real senders do with the domain's mail, where they differ from the RFC
//! 8461 reference. Pure: a function of the report. Every behaviour is one documented in
//! `docs/senders.md` with its source; what no available source documents is said so, not
//! guessed.

use serde::Serialize;

use crate::report::{Delivery, DomainReport, Verdict};
use crate::stage::mx;
use crate::stage::policy::{Mode, Policy};

/// postfix-mta-sts-resolver gives up a policy fetch after this long (its `defaults.py`:
/// `TIMEOUT = 4`).
pub const POSTFIX_RESOLVER_FETCH_TIMEOUT_SECONDS: f64 = 4.0;

/// postfix-tlspol gives up each policy fetch attempt after this long (`REQUEST_TIMEOUT = 2 *
/// time.Second`, its HTTP client's `Timeout`).
pub const POSTFIX_TLSPOL_FETCH_TIMEOUT_SECONDS: f64 = 2.0;

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
    /// Postfix with postfix-tlspol, an MTA-STS and DANE socketmap resolver (`secure match=`).
    PostfixTlspol,
}

impl Profile {
    pub const ALL: &'static [Profile] = &[
        Profile::Rfc8461,
        Profile::Gmail,
        Profile::ExchangeOnline,
        Profile::PostfixResolver,
        Profile::PostfixTlspol,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Rfc8461 => "rfc8461",
            Profile::Gmail => "gmail",
            Profile::ExchangeOnline => "exchange_online",
            Profile::PostfixResolver => "postfix_resolver",
            Profile::PostfixTlspol => "postfix_tlspol",
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
        (Profile::PostfixTlspol, _) => postfix_tlspol(report, action, note),
        (_, _) => (action, note, None),
    };
    let note = match profile {
        Profile::ExchangeOnline => exchange_ipv6_first(report, note),
        _ => note,
    };
    SenderVerdict {
        profile,
        action,
        note,
        bounce_after_seconds,
    }
}

/// Exchange Online tries an MX's IPv6 addresses before its IPv4 ones ("IPv6 updates for Exchange
/// Online", Exchange Team Blog, 2024-10-30): of an MX that fails over IPv6 only, it meets the
/// failure first.
fn exchange_ipv6_first(report: &DomainReport, note: String) -> String {
    let hosts: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.code == crate::finding::Code::MxIpv6Broken)
        .filter_map(|f| f.host.as_deref())
        .collect();
    if hosts.is_empty() {
        return note;
    }
    format!(
        "{note}; it tries IPv6 addresses first, so it meets the IPv6 failure of {} before trying IPv4",
        hosts.join(", ")
    )
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
    if policy.mode == Mode::Testing && report.verdict != Verdict::Undetermined {
        return (
            Action::Deliver,
            "testing: the resolver answers Postfix NOTFOUND for a testing policy (unless its strict_testing option is on, default off), so Postfix delivers with its default TLS level and nothing is validated or reported".into(),
            None,
        );
    }
    if policy.mode != Mode::Enforce || action != Action::Defer {
        return (action, note, None);
    }
    if covered_by_suffix(report, policy) {
        return (
            Action::Deliver,
            "delivers: the resolver passes *.example.com to Postfix as .example.com, which matches at any depth, so it accepts MX hosts RFC 8461 senders refuse (Postfix ≥ 3.10.5 can enforce the RFC rule: smtp_tls_enforce_sts_mx_patterns)".into(),
            None,
        );
    }
    postfix_deferral()
}

/// postfix-tlspol applies only `enforce` policies with `mx` lines, as `secure match=` with
/// `*.example.com` turned into `.example.com` (a suffix, any depth, as for postfix-mta-sts-resolver);
/// a fetch attempt gives up after 2 seconds, and a policy with any line it rejects is no policy
/// as a whole. Without a policy Postfix delivers with opportunistic TLS. Its DANE side is not
/// modelled: the check does not look at TLSA records.
fn postfix_tlspol(
    report: &DomainReport,
    action: Action,
    note: String,
) -> (Action, String, Option<u64>) {
    // A failed lookup: every MTA defers on a failed MX lookup, postfix-tlspol included (it
    // answers TEMP), so this is no difference from the reference.
    if report.verdict == Verdict::Undetermined {
        return (action, note, None);
    }
    let Some(policy) = report.policy.policy.as_deref() else {
        return (action, note, None);
    };
    let fetch = report.policy.fetch.as_deref();
    if fetch.is_some_and(|f| f.duration_seconds > POSTFIX_TLSPOL_FETCH_TIMEOUT_SECONDS) {
        return (
            Action::Deliver,
            format!(
                "the policy host took longer than postfix-tlspol's {POSTFIX_TLSPOL_FETCH_TIMEOUT_SECONDS} s request timeout: unless it holds an unexpired copy it sees no policy, and Postfix delivers with opportunistic TLS"
            ),
            None,
        );
    }
    if let Some(line) = fetch.and_then(|f| f.usable_body()).and_then(blank_line) {
        return (
            Action::Deliver,
            format!(
                "line {line} of the policy is blank, and postfix-tlspol rejects a policy with a blank line as a whole: unless it holds an unexpired copy it sees no policy, and Postfix delivers with opportunistic TLS"
            ),
            None,
        );
    }
    match policy.mode {
        Mode::Testing => {
            return (
                Action::Deliver,
                "testing: postfix-tlspol hands Postfix no policy (it applies enforce only), so Postfix delivers with opportunistic TLS, as without a policy: the policy is neither validated nor reported against".into(),
                None,
            )
        }
        Mode::None => return (action, note, None),
        Mode::Enforce => {}
    }
    if action != Action::Defer {
        return (action, note, None);
    }
    if covered_by_suffix(report, policy) {
        return (
            Action::Deliver,
            "delivers: postfix-tlspol passes *.example.com to Postfix as .example.com, which matches at any depth, so it accepts MX hosts RFC 8461 senders refuse (Postfix ≥ 3.10.5 can enforce the RFC rule: smtp_tls_enforce_sts_mx_patterns)".into(),
            None,
        );
    }
    postfix_deferral()
}

/// Every MX is deliverable and covered, some only under Postfix's suffix matching of
/// `.example.com`: refused by RFC 8461 senders for coverage alone, accepted by Postfix.
fn covered_by_suffix(report: &DomainReport, policy: &Policy) -> bool {
    let all = report.mx.hosts.iter().all(|h| {
        h.transport.delivery() == Delivery::Deliverable
            && (h.covered || policy.mx.iter().any(|p| suffix_covers(p, &h.name)))
    });
    all && report.mx.hosts.iter().any(|h| !h.covered)
}

/// The first line (1-based) postfix-tlspol reads as blank: empty, or only spaces and tabs. Its
/// line scanner (Go's `bufio.ScanLines`) splits at LF, drops one CR before it, and yields no
/// line after a final LF; our parser skips blank lines.
fn blank_line(body: &[u8]) -> Option<usize> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|&b| b == b'\n')
        .position(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.iter().all(|&b| b == b' ' || b == b'\t')
        })
        .map(|index| index + 1)
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
    use crate::probe::https::{FetchOutcome, PolicyFetch};
    use crate::report::{HostTransport, MxHostReport};

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

    /// A fetch of the policy that took `duration_seconds` and served `body`.
    fn fetched(r: &mut DomainReport, duration_seconds: f64, body: &str) {
        r.policy.fetch = Some(Box::new(PolicyFetch {
            url: "https://mta-sts.example.com/.well-known/mta-sts.txt".into(),
            host: "mta-sts.example.com".into(),
            address: None,
            status: Some(200),
            location: None,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            body: Some(body.as_bytes().to_vec()),
            body_bytes: body.len(),
            tls: None,
            outcome: FetchOutcome::Fetched,
            duration_seconds,
        }));
    }

    const BODY: &str = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n";

    fn verdict_of(r: &DomainReport, profile: Profile) -> SenderVerdict {
        sender_verdicts(r)
            .into_iter()
            .find(|v| v.profile == profile)
            .expect("every profile has a verdict")
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
    fn every_profile_for_every_transport_outcome() {
        for &transport in HostTransport::ALL {
            let mut r = report(
                Verdict::EnforcedDeliverable,
                &["mx.example.com"],
                &[("mx.example.com", true)],
            );
            let delivery = transport.delivery();
            r.mx.hosts[0].transport = transport;
            r.mx.hosts[0].delivery = Some(delivery);
            // The verdict the judge gives an enforce domain whose one MX is covered.
            let (verdict, action) = match delivery {
                Delivery::Deliverable => (Verdict::EnforcedDeliverable, Action::Deliver),
                Delivery::Refused => (Verdict::EnforcedRefused, Action::Defer),
                Delivery::Unknown if transport == HostTransport::NotProbed => {
                    (Verdict::EnforcedDeliverable, Action::Deliver)
                }
                Delivery::Unknown => (Verdict::Undetermined, Action::Unknown),
            };
            r.verdict = verdict;
            if delivery == Delivery::Refused {
                r.refused_mx.push("mx.example.com".into());
            }
            for v in sender_verdicts(&r) {
                // Refused for its transport, not its coverage: no profile's matching rescues it.
                assert_eq!(
                    v.action, action,
                    "{transport:?} {:?}: {}",
                    v.profile, v.note
                );
                assert_eq!(
                    v.bounce_after_seconds.is_some(),
                    action == Action::Defer
                        && matches!(
                            v.profile,
                            Profile::ExchangeOnline
                                | Profile::PostfixResolver
                                | Profile::PostfixTlspol
                        ),
                    "{transport:?} {:?}",
                    v.profile
                );
            }
        }
    }

    #[test]
    fn testing_is_no_policy_to_either_postfix_resolver() {
        let mut r = report(
            Verdict::TestingNotReady,
            &["mx.example.com"],
            &[("mx.other.net", false)],
        );
        if let Some(p) = r.policy.policy.as_mut() {
            p.mode = Mode::Testing;
        }
        for profile in [Profile::PostfixResolver, Profile::PostfixTlspol] {
            let v = verdict_of(&r, profile);
            assert_eq!(v.action, Action::Deliver);
            assert!(
                v.note.contains("nothing is validated") || v.note.contains("neither validated"),
                "{}",
                v.note
            );
        }
        assert!(verdict_of(&r, Profile::Rfc8461)
            .note
            .contains("reports failures"));
    }

    #[test]
    fn exchange_online_meets_an_ipv6_failure_first() {
        let mut r = report(
            Verdict::EnforcedRefused,
            &["mx.example.com"],
            &[("mx.example.com", true)],
        );
        r.mx.hosts[0].transport = HostTransport::StarttlsFailed;
        r.refused_mx.push("mx.example.com".into());
        r.findings.push(
            crate::finding::Finding::new(
                crate::finding::Code::MxIpv6Broken,
                "works over IPv4 only",
            )
            .with_host("mx.example.com"),
        );
        let exchange = verdict_of(&r, Profile::ExchangeOnline).note;
        assert!(
            exchange.contains(
                "it tries IPv6 addresses first, so it meets the IPv6 failure of mx.example.com"
            ),
            "{exchange}"
        );
        let reference = verdict_of(&r, Profile::Rfc8461).note;
        assert!(!reference.contains("IPv6"), "{reference}");
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
                ("postfix_tlspol", "deliver"),
            ]
        );
        let tlspol = verdict_of(&r, Profile::PostfixTlspol).note;
        assert!(tlspol.contains("postfix-tlspol passes"), "{tlspol}");
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
        assert_eq!(actions(&r)[4], ("postfix_tlspol", "defer"));
    }

    #[test]
    fn a_slow_policy_host_is_no_policy_for_the_postfix_resolvers() {
        let mut r = report(
            Verdict::EnforcedRefused,
            &["mx.example.com"],
            &[("mx.other.net", false)],
        );
        fetched(&mut r, 6.5, BODY);
        let verdicts = sender_verdicts(&r);
        assert_eq!(verdicts[0].action, Action::Defer);
        assert_eq!(verdicts[3].action, Action::Deliver);
        assert!(verdicts[3].note.contains("4 s fetch timeout"));
        assert_eq!(verdicts[4].action, Action::Deliver);
        // postfix-tlspol gives up after 2 s, postfix-mta-sts-resolver after 4 s.
        fetched(&mut r, 2.5, BODY);
        let verdicts = sender_verdicts(&r);
        assert_eq!(verdicts[3].action, Action::Defer);
        let tlspol = &verdicts[4];
        assert_eq!(tlspol.action, Action::Deliver);
        assert!(
            tlspol.note.contains("2 s request timeout"),
            "{}",
            tlspol.note
        );
        assert_eq!(tlspol.bounce_after_seconds, None);
        fetched(&mut r, 1.5, BODY);
        assert_eq!(verdict_of(&r, Profile::PostfixTlspol).action, Action::Defer);
    }

    #[test]
    fn testing_is_no_policy_for_postfix_tlspol() {
        let mut r = report(
            Verdict::TestingNotReady,
            &["mx.example.com"],
            &[("mx.other.net", false)],
        );
        if let Some(policy) = r.policy.policy.as_mut() {
            policy.mode = Mode::Testing;
        }
        let rfc = verdict_of(&r, Profile::Rfc8461);
        let tlspol = verdict_of(&r, Profile::PostfixTlspol);
        assert_eq!(rfc.action, Action::Deliver);
        assert!(rfc.note.contains("reports failures"), "{}", rfc.note);
        assert_eq!(tlspol.action, Action::Deliver);
        assert!(tlspol.note.contains("no policy"), "{}", tlspol.note);
        assert!(tlspol.note.contains("neither validated nor reported"));
    }

    #[test]
    fn a_blank_line_makes_the_policy_invalid_as_a_whole_for_postfix_tlspol() {
        let mut r = report(
            Verdict::EnforcedRefused,
            &["mx.example.com"],
            &[("mx.other.net", false)],
        );
        // Our parser skips the blank line; postfix-tlspol sees no policy.
        fetched(
            &mut r,
            0.2,
            "version: STSv1\nmode: enforce\n\nmx: mx.example.com\nmax_age: 604800\n",
        );
        assert_eq!(verdict_of(&r, Profile::Rfc8461).action, Action::Defer);
        let tlspol = verdict_of(&r, Profile::PostfixTlspol);
        assert_eq!(tlspol.action, Action::Deliver);
        assert!(
            tlspol.note.contains("line 3 of the policy is blank"),
            "{}",
            tlspol.note
        );
        // Every other profile is unaffected.
        assert_eq!(
            verdict_of(&r, Profile::PostfixResolver).action,
            Action::Defer
        );
        // A policy without blank lines is applied.
        fetched(&mut r, 0.2, &BODY.replace('\n', "\r\n"));
        assert_eq!(verdict_of(&r, Profile::PostfixTlspol).action, Action::Defer);
    }

    #[test]
    fn blank_lines_as_go_scans_them() {
        assert_eq!(blank_line(b"a: 1\nb: 2\n"), None);
        assert_eq!(blank_line(b"a: 1\nb: 2"), None);
        assert_eq!(blank_line(b"a: 1\r\nb: 2\r\n"), None);
        assert_eq!(blank_line(b"a: 1\r"), None);
        assert_eq!(blank_line(b"a: 1\n\n"), Some(2));
        assert_eq!(blank_line(b"a: 1\r\n\r\n"), Some(2));
        assert_eq!(blank_line(b"a: 1\n \t\nb: 2\n"), Some(2));
        assert_eq!(blank_line(b"\na: 1\n"), Some(1));
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
                ("postfix_tlspol", Some(432_000)),
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
