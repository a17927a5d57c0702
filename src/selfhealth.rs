//! Whether the exporter itself is blind: its resolver failing or answering NXDOMAIN for
//! everything, or outbound SMTP (port 25) or HTTPS (443) blocked, told from the finished checks
//! of a sliding window. Pure: the service feeds it reports and the time.
//!
//! One broken domain is that domain's problem; most domains failing the same way within a few
//! minutes is ours. Each [`Blindness`] is judged on its own share of the window's checks:
//! it starts when at least [`SelfHealthSettings::enter_ratio`] of at least
//! [`SelfHealthSettings::min_checks`] checks show it, and ends when the share falls below
//! [`SelfHealthSettings::leave_ratio`] (hysteresis, so a share near the threshold does not
//! flap). With fewer checks in the window than the minimum the state stays as it was: no
//! evidence either way. Memory is a fixed ring of per-bucket counters, whatever the fleet size.

use std::fmt;
use std::time::Duration;

use crate::probe::https::FetchOutcome;
use crate::probe::smtp::SmtpOutcome;
use crate::report::{DomainReport, MxStatus, RecordStatus, TlsRptStatus};

/// Ways the exporter can be blind. The `reason` label of `mta_sts_exporter_blind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Blindness {
    /// Most DNS lookups get no answer (timeouts) or SERVFAIL/REFUSED.
    ResolverFailing,
    /// Most domains do not exist at all: no MX, no `_mta-sts`, no `_smtp._tls` — a resolver that
    /// answers NXDOMAIN for everything (captive portal, broken forwarder, split-horizon DNS).
    ResolverNxdomain,
    /// For most domains no MX address accepts a TCP connection on the SMTP port.
    SmtpBlocked,
    /// For most domains the policy host accepts no TCP connection on the HTTPS port.
    HttpsBlocked,
}

impl Blindness {
    pub const ALL: [Blindness; 4] = [
        Blindness::ResolverFailing,
        Blindness::ResolverNxdomain,
        Blindness::SmtpBlocked,
        Blindness::HttpsBlocked,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Blindness::ResolverFailing => "resolver_failing",
            Blindness::ResolverNxdomain => "resolver_nxdomain",
            Blindness::SmtpBlocked => "smtp_blocked",
            Blindness::HttpsBlocked => "https_blocked",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether a report shows this, or `None` when the report says nothing about it (no MX
    /// probed, no policy host to connect to).
    fn shown_by(self, o: &Observation) -> Option<bool> {
        match self {
            Blindness::ResolverFailing => Some(o.dns_failed * 2 > o.dns_lookups),
            Blindness::ResolverNxdomain => (o.dns_failed == 0).then_some(o.nothing_exists),
            Blindness::SmtpBlocked => o.smtp_blocked,
            Blindness::HttpsBlocked => o.https_blocked,
        }
    }
}

impl fmt::Display for Blindness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one finished check says about the exporter's own view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// The domain's own lookups: `_mta-sts` TXT, MX, `_smtp._tls` TXT.
    pub dns_lookups: u32,
    /// Of those, the ones that got no usable answer (timeout, SERVFAIL, REFUSED, ...).
    pub dns_failed: u32,
    /// Every lookup answered, and nothing exists: no record, no MX, no TLS-RPT record.
    pub nothing_exists: bool,
    /// `Some(true)`: every MX address probed failed to connect; `Some(false)`: at least one
    /// connected; `None`: none was probed.
    pub smtp_blocked: Option<bool>,
    /// The policy fetch failed to connect to every address (`Some(true)`), connected
    /// (`Some(false)`), or was not attempted (`None`).
    pub https_blocked: Option<bool>,
}

impl Observation {
    pub fn of(report: &DomainReport) -> Observation {
        let failed = [
            report.record.status == RecordStatus::LookupFailed,
            report.mx.status == MxStatus::LookupFailed,
            report.tlsrpt.status == TlsRptStatus::LookupFailed,
        ];
        let nothing_exists = report.record.status == RecordStatus::Missing
            && report.mx.status == MxStatus::Missing
            && report.tlsrpt.status == TlsRptStatus::Missing
            && report.policy.fetch.is_none();
        let mut probed = 0usize;
        let mut unreachable = 0usize;
        for probe in report.mx.hosts.iter().flat_map(|h| h.probes.iter()) {
            probed += 1;
            if matches!(
                probe.outcome,
                SmtpOutcome::ConnectRefused
                    | SmtpOutcome::ConnectTimeout
                    | SmtpOutcome::ConnectFailed { .. }
            ) {
                unreachable += 1;
            }
        }
        let https_blocked = report
            .policy
            .fetch
            .as_ref()
            .and_then(|fetch| match fetch.outcome {
                FetchOutcome::NoAddress | FetchOutcome::AddressForbidden { .. } => None,
                FetchOutcome::ConnectRefused
                | FetchOutcome::ConnectTimeout
                | FetchOutcome::ConnectFailed { .. } => Some(true),
                _ => Some(false),
            });
        Observation {
            dns_lookups: failed.len() as u32,
            dns_failed: failed.iter().filter(|f| **f).count() as u32,
            nothing_exists,
            smtp_blocked: (probed > 0).then_some(unreachable == probed),
            https_blocked,
        }
    }
}

/// How self-health judges.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfHealthSettings {
    /// The sliding window: checks finished longer ago do not count.
    pub window: Duration,
    /// Fewer checks that say something about a cause than this: no change.
    pub min_checks: u64,
    /// Blind from this share of the window's checks on.
    pub enter_ratio: f64,
    /// Seeing again below this share.
    pub leave_ratio: f64,
}

impl Default for SelfHealthSettings {
    fn default() -> SelfHealthSettings {
        SelfHealthSettings {
            window: Duration::from_secs(600),
            min_checks: 5,
            enter_ratio: 0.8,
            leave_ratio: 0.5,
        }
    }
}

/// Buckets the window is cut into: it slides by a tenth of itself.
const BUCKETS: usize = 10;

/// Counters of one slice of the window.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which slice (`unix time / slice length`) these counts belong to.
    slice: i64,
    /// Per cause: checks that said something about it, and those that showed it.
    seen: [u64; 4],
    shown: [u64; 4],
}

/// A cause starting or ending, for the service to log.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub cause: Blindness,
    /// True: now blind; false: seeing again.
    pub blind: bool,
    /// Of `checks` in the window that said something about the cause, `showing` showed it.
    pub showing: u64,
    pub checks: u64,
}

/// The self-health state and its window.
#[derive(Clone, Debug)]
pub struct SelfHealth {
    settings: SelfHealthSettings,
    slice_seconds: i64,
    buckets: [Bucket; BUCKETS],
    blind: [bool; 4],
    /// Unix time of the last observation, if any.
    last_check: Option<i64>,
}

impl SelfHealth {
    pub fn new(settings: SelfHealthSettings) -> SelfHealth {
        let slice_seconds = i64::try_from(settings.window.as_secs() / BUCKETS as u64)
            .unwrap_or(i64::MAX)
            .max(1);
        SelfHealth {
            settings,
            slice_seconds,
            buckets: [Bucket::default(); BUCKETS],
            blind: [false; 4],
            last_check: None,
        }
    }

    /// Counts one finished check at unix time `now` and returns the causes that started or
    /// ended with it.
    pub fn observe(&mut self, observation: &Observation, now: i64) -> Vec<Change> {
        self.last_check = Some(now);
        let slice = now.div_euclid(self.slice_seconds);
        let bucket = &mut self.buckets[slice.rem_euclid(BUCKETS as i64) as usize];
        if bucket.slice != slice {
            *bucket = Bucket {
                slice,
                ..Bucket::default()
            };
        }
        for cause in Blindness::ALL {
            if let Some(shown) = cause.shown_by(observation) {
                bucket.seen[cause.index()] += 1;
                bucket.shown[cause.index()] += u64::from(shown);
            }
        }
        let mut changes = Vec::new();
        for cause in Blindness::ALL {
            let (showing, checks) = self.share(cause, now);
            if checks < self.settings.min_checks {
                continue;
            }
            let ratio = showing as f64 / checks as f64;
            let was = self.blind[cause.index()];
            let is = if was {
                ratio >= self.settings.leave_ratio
            } else {
                ratio >= self.settings.enter_ratio
            };
            if is != was {
                self.blind[cause.index()] = is;
                changes.push(Change {
                    cause,
                    blind: is,
                    showing,
                    checks,
                });
            }
        }
        changes
    }

    /// Of the checks in the window ending at `now` that said something about `cause`: how many
    /// showed it, and how many there were.
    pub fn share(&self, cause: Blindness, now: i64) -> (u64, u64) {
        let current = now.div_euclid(self.slice_seconds);
        self.buckets
            .iter()
            .filter(|b| b.slice > current.saturating_sub(BUCKETS as i64) && b.slice <= current)
            .fold((0, 0), |(shown, seen), b| {
                (shown + b.shown[cause.index()], seen + b.seen[cause.index()])
            })
    }

    pub fn is_blind(&self, cause: Blindness) -> bool {
        self.blind[cause.index()]
    }

    /// The causes in effect now, in [`Blindness::ALL`] order.
    pub fn causes(&self) -> Vec<Blindness> {
        Blindness::ALL
            .into_iter()
            .filter(|c| self.is_blind(*c))
            .collect()
    }

    /// Unix time of the last finished check counted.
    pub fn last_check(&self) -> Option<i64> {
        self.last_check
    }

    pub fn settings(&self) -> &SelfHealthSettings {
        &self.settings
    }
}

impl Default for SelfHealth {
    fn default() -> SelfHealth {
        SelfHealth::new(SelfHealthSettings::default())
    }
}

/// The warning logged when a cause starts: what is wrong, which resolver or path, and what to
/// do. `resolver` is [`crate::probe::dns::ResolverSettings::describe`]; `smtp_port` and
/// `https_port` the ports probed.
pub fn explain(cause: Blindness, resolver: &str, smtp_port: u16, https_port: u16) -> String {
    match cause {
        Blindness::ResolverFailing => format!(
            "DNS lookups are failing (timeouts, SERVFAIL or REFUSED) for most domains: the exporter's resolver, {resolver}, is not answering; fix or replace it (global.dns.server) — until then every domain looks undetermined"
        ),
        Blindness::ResolverNxdomain => format!(
            "most domains do not exist according to the exporter's resolver, {resolver}: it probably answers NXDOMAIN for everything (captive portal, broken forwarder, internal-only DNS); use a resolver that resolves public names (global.dns.server) — until then every domain looks unconfigured"
        ),
        Blindness::SmtpBlocked => format!(
            "outbound SMTP is blocked: for most domains no MX host accepts a TCP connection on port {smtp_port}; allow egress to port {smtp_port} (many networks and clouds block it) — until then every MX looks unreachable"
        ),
        Blindness::HttpsBlocked => format!(
            "outbound HTTPS is blocked: for most domains the policy host accepts no TCP connection on port {https_port}; allow egress to port {https_port} (or its proxy-free path) — until then every policy looks unavailable"
        ),
    }
}

/// Makes a report's findings say where a failure may be the exporter's own: every failed
/// lookup names the resolver that was asked, and while a cause of blindness is in effect the
/// findings it explains say so (so a page for one domain points at the exporter first).
/// `smtp_port` and `https_port` are the ports probed.
pub fn annotate(
    report: &mut DomainReport,
    resolver: &str,
    blind: &[Blindness],
    smtp_port: u16,
    https_port: u16,
) {
    use crate::finding::Code;
    for finding in &mut report.findings {
        let note = match finding.code {
            Code::StsRecordLookupFailed
            | Code::MxLookupFailed
            | Code::TlsrptLookupFailed
            | Code::PolicyHostLookupFailed
            | Code::MxAddressLookupFailed => {
                if blind.contains(&Blindness::ResolverFailing) {
                    format!(" (asked {resolver}, which is failing for most domains: probably the exporter's resolver, not this domain)")
                } else {
                    format!(" (asked {resolver})")
                }
            }
            Code::StsRecordMissing
            | Code::MxMissing
            | Code::DomainNotFound
            | Code::TlsrptMissing
                if blind.contains(&Blindness::ResolverNxdomain) =>
            {
                format!(" (according to {resolver}, which finds nothing for most domains: probably the exporter's resolver, not this domain)")
            }
            // A well-known domain "not found" is more often a resolver that finds nothing.
            Code::DomainNotFound => format!(" (according to {resolver})"),
            Code::MxConnectRefused | Code::MxConnectTimeout | Code::MxConnectFailed
                if blind.contains(&Blindness::SmtpBlocked) =>
            {
                format!(" (no MX of most domains accepts connections on port {smtp_port}: probably the exporter's egress is blocked, not this host)")
            }
            Code::PolicyConnectRefused | Code::PolicyConnectTimeout | Code::PolicyConnectFailed
                if blind.contains(&Blindness::HttpsBlocked) =>
            {
                format!(" (no policy host of most domains accepts connections on port {https_port}: probably the exporter's egress is blocked, not this host)")
            }
            _ => continue,
        };
        finding.message.to_mut().push_str(&note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns_failing() -> Observation {
        Observation {
            dns_lookups: 3,
            dns_failed: 3,
            ..Observation::default()
        }
    }

    fn healthy() -> Observation {
        Observation {
            dns_lookups: 3,
            dns_failed: 0,
            nothing_exists: false,
            smtp_blocked: Some(false),
            https_blocked: Some(false),
        }
    }

    fn settings() -> SelfHealthSettings {
        SelfHealthSettings {
            window: Duration::from_secs(100),
            min_checks: 5,
            enter_ratio: 0.8,
            leave_ratio: 0.5,
        }
    }

    #[test]
    fn most_lookups_failing_is_blind_once_and_recovers_with_hysteresis() {
        let mut h = SelfHealth::new(settings());
        // below the minimum: no change
        for t in 0..4 {
            assert!(h.observe(&dns_failing(), t).is_empty());
        }
        let changes = h.observe(&dns_failing(), 4);
        assert_eq!(
            changes,
            vec![Change {
                cause: Blindness::ResolverFailing,
                blind: true,
                showing: 5,
                checks: 5
            }]
        );
        // said once: more failing checks change nothing
        for t in 5..20 {
            assert!(h.observe(&dns_failing(), t).is_empty());
        }
        assert_eq!(h.causes(), vec![Blindness::ResolverFailing]);
        // 20 failing in the window; healthy checks bring the share below 50% after 21
        let mut recovered_at = None;
        for t in 20..60 {
            let changes = h.observe(&healthy(), t);
            if !changes.is_empty() {
                assert_eq!(changes.len(), 1);
                assert!(!changes[0].blind);
                recovered_at = Some(t);
                break;
            }
        }
        assert_eq!(recovered_at, Some(40), "20 failing of 41 is below a half");
        assert!(h.causes().is_empty());
    }

    #[test]
    fn a_few_broken_domains_are_not_the_exporter() {
        let mut h = SelfHealth::new(settings());
        for t in 0..100 {
            let o = if t % 4 == 0 { dns_failing() } else { healthy() };
            assert!(h.observe(&o, t).is_empty(), "at {t}");
        }
    }

    #[test]
    fn the_window_slides_old_checks_out() {
        let mut h = SelfHealth::new(settings());
        for t in 0..10 {
            h.observe(&dns_failing(), t);
        }
        assert!(h.is_blind(Blindness::ResolverFailing));
        assert_eq!(h.share(Blindness::ResolverFailing, 9), (10, 10));
        // 200 s later the failures are out of the 100 s window
        assert_eq!(h.share(Blindness::ResolverFailing, 209), (0, 0));
        // and healthy checks alone decide
        let mut changes = Vec::new();
        for t in 210..215 {
            changes.extend(h.observe(&healthy(), t));
        }
        assert_eq!(changes.len(), 1);
        assert!(!h.is_blind(Blindness::ResolverFailing));
    }

    #[test]
    fn each_cause_is_told_apart() {
        let nxdomain = Observation {
            dns_lookups: 3,
            nothing_exists: true,
            ..Observation::default()
        };
        let smtp = Observation {
            smtp_blocked: Some(true),
            ..healthy()
        };
        let https = Observation {
            https_blocked: Some(true),
            ..healthy()
        };
        for (observation, cause) in [
            (nxdomain, Blindness::ResolverNxdomain),
            (smtp, Blindness::SmtpBlocked),
            (https, Blindness::HttpsBlocked),
            (dns_failing(), Blindness::ResolverFailing),
        ] {
            let mut h = SelfHealth::new(settings());
            for t in 0..10 {
                h.observe(&observation, t);
            }
            assert_eq!(h.causes(), vec![cause], "{observation:?}");
        }
    }

    #[test]
    fn checks_that_say_nothing_about_a_cause_do_not_dilute_it() {
        // domains without MX probes say nothing about port 25
        let mut h = SelfHealth::new(settings());
        for t in 0..50 {
            let o = if t % 5 == 0 {
                Observation {
                    smtp_blocked: Some(true),
                    ..healthy()
                }
            } else {
                Observation {
                    smtp_blocked: None,
                    ..healthy()
                }
            };
            h.observe(&o, t);
        }
        assert_eq!(h.share(Blindness::SmtpBlocked, 49), (10, 10));
        assert!(h.is_blind(Blindness::SmtpBlocked));
    }

    #[test]
    fn observation_of_reports() {
        use crate::report::DomainReport;
        let mut r = DomainReport::skeleton("gone.example");
        // the skeleton: nothing exists
        let o = Observation::of(&r);
        assert!(o.nothing_exists);
        assert_eq!((o.dns_lookups, o.dns_failed), (3, 0));
        assert_eq!((o.smtp_blocked, o.https_blocked), (None, None));
        r.mx.status = MxStatus::LookupFailed;
        r.record.status = RecordStatus::LookupFailed;
        let o = Observation::of(&r);
        assert!(!o.nothing_exists);
        assert_eq!(o.dns_failed, 2);
        assert_eq!(Blindness::ResolverFailing.shown_by(&o), Some(true));
        assert_eq!(Blindness::ResolverNxdomain.shown_by(&o), None);
    }

    #[test]
    fn time_going_backwards_or_far_forwards_does_not_panic() {
        let mut h = SelfHealth::default();
        h.observe(&dns_failing(), i64::MAX);
        h.observe(&dns_failing(), i64::MIN);
        h.observe(&dns_failing(), 0);
        let _ = h.share(Blindness::ResolverFailing, i64::MIN);
        let _ = h.share(Blindness::ResolverFailing, i64::MAX);
    }

    #[test]
    fn findings_name_the_resolver_and_blame_the_exporter_while_blind() {
        use crate::finding::{Code, Finding};
        let report = || {
            let mut r = DomainReport::skeleton("example.com");
            r.findings = vec![
                Finding::new(Code::MxLookupFailed, "the MX lookup failed: timed out"),
                Finding::new(Code::MxMissing, "no MX"),
                Finding::new(Code::DomainNotFound, "not found"),
                Finding::new(Code::MxConnectTimeout, "connecting timed out"),
                Finding::new(Code::PolicyModeInvalid, "mode: x"),
            ];
            r
        };
        let messages = |r: &DomainReport| -> Vec<String> {
            r.findings.iter().map(|f| f.message.to_string()).collect()
        };
        let mut r = report();
        annotate(&mut r, "DNS server 192.0.2.1:53", &[], 25, 443);
        assert_eq!(
            messages(&r),
            [
                "the MX lookup failed: timed out (asked DNS server 192.0.2.1:53)",
                "no MX",
                "not found (according to DNS server 192.0.2.1:53)",
                "connecting timed out",
                "mode: x"
            ]
        );
        let mut r = report();
        annotate(
            &mut r,
            "DNS server 192.0.2.1:53",
            &Blindness::ALL,
            2525,
            443,
        );
        assert_eq!(
            messages(&r),
            [
                "the MX lookup failed: timed out (asked DNS server 192.0.2.1:53, which is failing for most domains: probably the exporter's resolver, not this domain)",
                "no MX (according to DNS server 192.0.2.1:53, which finds nothing for most domains: probably the exporter's resolver, not this domain)",
                "not found (according to DNS server 192.0.2.1:53, which finds nothing for most domains: probably the exporter's resolver, not this domain)",
                "connecting timed out (no MX of most domains accepts connections on port 2525: probably the exporter's egress is blocked, not this host)",
                "mode: x"
            ]
        );
    }

    #[test]
    fn explanations_name_the_resolver_and_the_port() {
        let text = explain(
            Blindness::ResolverFailing,
            "DNS server 192.0.2.1:53",
            25,
            443,
        );
        assert!(text.contains("DNS server 192.0.2.1:53"), "{text}");
        let text = explain(Blindness::SmtpBlocked, "x", 2525, 443);
        assert!(text.contains("port 2525"), "{text}");
    }
}
