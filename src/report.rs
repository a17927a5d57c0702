//! `DomainReport`: everything one check of one domain found, as plain serializable data.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::domain::DomainName;
use crate::finding::{Finding, Severity};
use crate::probe::https::PolicyFetch;
use crate::probe::smtp::SmtpProbe;
use crate::stage::policy::{LineEnding, Mode, Policy};
use crate::stage::tlsrpt::TlsRptRecord;

pub use crate::stage::record::RecordStatus;
pub use crate::stage::tlsrpt::TlsRptStatus;

/// The result of checking one domain. Serialized (JSON API, `check --format json`) with the
/// stage names derived from the domain, see `Serialize` below.
#[derive(Clone, Debug)]
pub struct DomainReport {
    pub domain: DomainName,
    /// Unix seconds at the end of the check.
    pub checked_at: i64,
    pub duration_seconds: f64,
    /// What a sender that implements RFC 8461 does with this domain's mail today.
    pub verdict: Verdict,
    /// MX hosts a sender enforcing the policy would refuse (empty unless the verdict says so).
    pub refused_mx: Vec<String>,
    pub record: RecordReport,
    pub policy: PolicyReport,
    pub mx: MxReport,
    pub tlsrpt: TlsRptReport,
    pub findings: Vec<Finding>,
    /// id-drift memory (filled by the exporter service, which remembers past checks).
    pub drift: Option<DriftStatus>,
}

/// The id-drift facts carried in a report (and exported as metrics); see [`crate::drift`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftStatus {
    pub stale: bool,
    pub changes: u64,
    pub id_first_seen: i64,
    pub policy_first_seen: i64,
    /// Unix seconds until which senders may still apply an earlier policy that refuses an MX
    /// of the domain, or a removed one (see [`crate::stage::cache`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_policy_risk_until: Option<i64>,
}

impl DomainReport {
    /// Adds a finding found after the check (id drift, expectations) in its sorted place.
    pub fn add_finding(&mut self, finding: Finding) {
        let at = self
            .findings
            .partition_point(|f| crate::finding::order(f, &finding).is_le());
        self.findings.insert(at, finding);
    }

    /// [`DomainReport::add_finding`] for each of `findings`.
    pub fn add_findings(&mut self, findings: impl IntoIterator<Item = Finding>) {
        for finding in findings {
            self.add_finding(finding);
        }
    }

    /// The most severe finding, if any.
    pub fn worst_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn has_critical(&self) -> bool {
        self.worst_severity() == Some(Severity::Critical)
    }

    /// Releases the spare capacity the check's vectors grew with. The store keeps one report
    /// per domain for the whole interval, so at fleet size spare capacity is real memory.
    pub fn shrink_to_fit(&mut self) {
        self.refused_mx.shrink_to_fit();
        self.record.records.shrink_to_fit();
        self.record.cname_chain.shrink_to_fit();
        self.mx.hosts.shrink_to_fit();
        for host in &mut self.mx.hosts {
            host.addresses.shrink_to_fit();
            host.probes.shrink_to_fit();
            host.not_probed.shrink_to_fit();
        }
        self.findings.shrink_to_fit();
    }

    /// `_mta-sts.<domain>`, where the policy record is looked up.
    pub fn record_name(&self) -> String {
        self.domain.record_name()
    }

    /// `mta-sts.<domain>`, the host serving the policy.
    pub fn policy_host(&self) -> String {
        self.domain.policy_host()
    }

    /// `_smtp._tls.<domain>`, where the TLS-RPT record is looked up.
    pub fn tlsrpt_name(&self) -> String {
        self.domain.tlsrpt_name()
    }

    /// The mode of the usable policy, if any.
    pub fn mode(&self) -> Option<Mode> {
        self.policy.policy.as_ref().map(|p| p.mode)
    }
}

/// What a compliant sender does with the domain's mail today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A lookup failed or the check timed out, so what senders see cannot be told.
    Undetermined,
    /// No usable policy (no record, invalid record, or the policy cannot be fetched or parsed):
    /// senders without a cached policy deliver with opportunistic TLS.
    NoPolicy,
    /// `mode: none`: senders do not apply the policy.
    ModeNone,
    /// `mode: testing`, and every MX would pass if the policy were enforced.
    TestingReady,
    /// `mode: testing`, and some MX would fail if the policy were enforced.
    TestingNotReady,
    /// `mode: enforce`, and every MX is covered and offers valid TLS.
    EnforcedDeliverable,
    /// `mode: enforce`, and some MX would be refused: mail to it is deferred or bounced.
    EnforcedRefused,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Undetermined => "undetermined",
            Verdict::NoPolicy => "no_policy",
            Verdict::ModeNone => "mode_none",
            Verdict::TestingReady => "testing_ready",
            Verdict::TestingNotReady => "testing_not_ready",
            Verdict::EnforcedDeliverable => "enforced_deliverable",
            Verdict::EnforcedRefused => "enforced_refused",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Undetermined => "undetermined: a DNS lookup failed or the check timed out",
            Verdict::NoPolicy => "no usable MTA-STS policy: senders fall back to opportunistic TLS",
            Verdict::ModeNone => "policy in mode none: senders do not apply it",
            Verdict::TestingReady => "policy in testing mode, ready for enforce",
            Verdict::TestingNotReady => {
                "policy in testing mode, NOT ready for enforce: some MX would be refused"
            }
            Verdict::EnforcedDeliverable => "policy enforced, every MX deliverable",
            Verdict::EnforcedRefused => "policy enforced, but some MX would be refused",
        }
    }
}

/// The `_mta-sts` TXT record stage (at `DomainReport::record_name`).
#[derive(Clone, Debug, Serialize)]
pub struct RecordReport {
    pub status: RecordStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The TXT records that began with `v=STSv1;`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<String>,
    /// CNAME targets followed to reach the record (delegation, RFC 8461 §8.2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cname_chain: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyStatus {
    /// Fetched and valid.
    Valid,
    /// Fetched, but the body does not parse as a valid policy.
    Invalid,
    /// Could not be fetched (DNS, connection, TLS, HTTP status, size, time).
    Unavailable,
    /// Not fetched: no `_mta-sts` record advertises a policy.
    NotFetched,
}

/// The policy fetch and parse stages (of `DomainReport::policy_host`).
#[derive(Clone, Debug, Serialize)]
pub struct PolicyReport {
    /// Serialized by `DomainReport`, before the host.
    #[serde(skip)]
    pub status: PolicyStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch: Option<Box<PolicyFetch>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_ending: Option<LineEnding>,
    /// The parsed policy, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Box<Policy>>,
    /// When the policy host has addresses of both families: the same fetch from the family
    /// `fetch` did not use (IPv6, or IPv4 when only the IPv6 fetch worked). Its `address` says
    /// which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_other_family: Option<Box<PolicyFetch>>,
    /// Lower-case hex SHA-256 of the body as served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// SHA-256 of the policy in canonical form (LF, mx sorted): changes only when the policy's
    /// meaning does. Set whenever the body parses as a valid policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalized_sha256: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MxStatus {
    Found,
    /// RFC 7505 null MX: the domain accepts no mail.
    NullMx,
    /// No MX record (senders fall back to the domain's address records).
    Missing,
    LookupFailed,
}

/// The MX stage: every MX, its coverage by the policy and its transport.
#[derive(Clone, Debug, Serialize)]
pub struct MxReport {
    pub status: MxStatus,
    pub hosts: Vec<MxHostReport>,
}

#[derive(Clone, Debug)]
pub struct MxHostReport {
    /// Lower-case, without the trailing dot.
    pub name: String,
    pub preference: u16,
    /// The policy `mx` pattern that covers this host (None: not covered, or no policy).
    pub covered_by: Option<String>,
    pub covered: bool,
    /// Every address the host resolved to, probed or not.
    pub addresses: Vec<IpAddr>,
    /// One SMTP STARTTLS probe per probed address (shared with other domains using the MX).
    pub probes: Vec<std::sync::Arc<SmtpProbe>>,
    /// The resolved addresses that were not probed, each with the reason.
    pub not_probed: Vec<NotProbedAddress>,
    /// What the probes of this host showed as a whole.
    pub transport: HostTransport,
    /// What a sender enforcing this domain's policy does with this MX (None: no policy).
    pub delivery: Option<Delivery>,
}

impl MxHostReport {
    /// A host as the MX lookup named it, before anything about it is known.
    pub fn new(name: String, preference: u16) -> MxHostReport {
        MxHostReport {
            name,
            preference,
            covered_by: None,
            covered: false,
            addresses: vec![],
            probes: vec![],
            not_probed: vec![],
            transport: HostTransport::NotProbed,
            delivery: None,
        }
    }

    /// STARTTLS and the handshake succeed on every probed address (None: unknown).
    pub fn starttls(&self) -> Option<bool> {
        self.transport.starttls()
    }

    /// The certificate is valid on every probed address (None: unknown).
    pub fn cert_valid(&self) -> Option<bool> {
        self.transport.cert_valid()
    }

    /// A sender enforcing the policy delivers to this MX (None: no policy, or unknown).
    pub fn deliverable(&self) -> Option<bool> {
        match self.delivery? {
            Delivery::Deliverable => Some(true),
            Delivery::Refused => Some(false),
            Delivery::Unknown => None,
        }
    }
}

/// What probing one MX host showed as a whole. "Not probed" and "unknown" are their own states,
/// so they can never be read as "ok".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostTransport {
    /// SMTP probing is off (`--no-smtp`, `probe_smtp: false`): coverage only.
    NotProbed,
    /// The host has no address record: nobody can deliver to it.
    NoAddress,
    /// Every address is non-public and was not probed: nobody on the internet can deliver.
    NoPublicAddress,
    /// The address lookup failed: unknown.
    LookupFailed,
    /// No probe finished by the check's deadline: unknown.
    TimedOut,
    /// This machine has no route to any address of the host (an IPv6-only MX seen from an
    /// exporter without IPv6): unknown.
    Unreachable,
    /// STARTTLS with a valid certificate on every probed address.
    Valid,
    /// STARTTLS works on every probed address, but a certificate is not valid on one at least.
    CertInvalid,
    /// STARTTLS or the TLS handshake fails on one probed address at least.
    StarttlsFailed,
}

impl HostTransport {
    pub const ALL: &'static [HostTransport] = &[
        HostTransport::NotProbed,
        HostTransport::NoAddress,
        HostTransport::NoPublicAddress,
        HostTransport::LookupFailed,
        HostTransport::TimedOut,
        HostTransport::Unreachable,
        HostTransport::Valid,
        HostTransport::CertInvalid,
        HostTransport::StarttlsFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostTransport::NotProbed => "not_probed",
            HostTransport::NoAddress => "no_address",
            HostTransport::NoPublicAddress => "no_public_address",
            HostTransport::LookupFailed => "lookup_failed",
            HostTransport::TimedOut => "timed_out",
            HostTransport::Unreachable => "unreachable",
            HostTransport::Valid => "valid",
            HostTransport::CertInvalid => "cert_invalid",
            HostTransport::StarttlsFailed => "starttls_failed",
        }
    }

    /// Whether STARTTLS worked on every probed address; None when that is unknown.
    pub fn starttls(self) -> Option<bool> {
        match self {
            HostTransport::Valid | HostTransport::CertInvalid => Some(true),
            HostTransport::StarttlsFailed | HostTransport::NoAddress => Some(false),
            _ => None,
        }
    }

    /// Whether every probed address presented a valid certificate; None when unknown.
    pub fn cert_valid(self) -> Option<bool> {
        match self {
            HostTransport::Valid => Some(true),
            HostTransport::CertInvalid
            | HostTransport::StarttlsFailed
            | HostTransport::NoAddress => Some(false),
            _ => None,
        }
    }

    /// What an enforcing sender meets here: delivers, refuses, or we cannot tell.
    pub fn delivery(self) -> Delivery {
        match self {
            HostTransport::Valid => Delivery::Deliverable,
            HostTransport::CertInvalid
            | HostTransport::StarttlsFailed
            | HostTransport::NoAddress
            | HostTransport::NoPublicAddress => Delivery::Refused,
            HostTransport::NotProbed
            | HostTransport::LookupFailed
            | HostTransport::TimedOut
            | HostTransport::Unreachable => Delivery::Unknown,
        }
    }
}

/// What a sender enforcing the domain's policy does with one MX.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Deliverable,
    Refused,
    /// Not probed, or what the probes would show is unknown (lookup failed, deadline).
    Unknown,
}

/// A resolved MX address that was not probed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotProbedAddress {
    pub address: IpAddr,
    #[serde(flatten)]
    pub reason: NotProbedReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotProbedReason {
    /// A non-public address the exporter does not connect to (`detail` says which kind).
    Forbidden { detail: &'static str },
    /// Beyond `max_addresses_per_mx`.
    OverLimit,
    /// The probe had its politeness slot and was still running at the check's deadline
    /// (moved back by any time spent waiting for the slot).
    Abandoned,
    /// Still waiting for a politeness slot at the address when the wait limit (an hour) ran
    /// out, behind `behind` probes of the address. Waiting for a slot does not count against
    /// the check's deadline.
    Queued { behind: usize },
    /// This machine has no route to the address (no IPv6 egress, say): the exporter cannot
    /// tell what senders meet there.
    NoRoute,
}

/// The JSON of a host keeps the booleans of earlier releases next to `transport`.
impl Serialize for MxHostReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            name: &'a str,
            preference: u16,
            #[serde(skip_serializing_if = "Option::is_none")]
            covered_by: Option<&'a str>,
            covered: bool,
            addresses: &'a [IpAddr],
            probes: &'a [std::sync::Arc<SmtpProbe>],
            #[serde(skip_serializing_if = "<[NotProbedAddress]>::is_empty")]
            not_probed: &'a [NotProbedAddress],
            transport: HostTransport,
            #[serde(skip_serializing_if = "Option::is_none")]
            starttls: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            cert_valid: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            deliverable: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            delivery: Option<Delivery>,
        }
        View {
            name: &self.name,
            preference: self.preference,
            covered_by: self.covered_by.as_deref(),
            covered: self.covered,
            addresses: &self.addresses,
            probes: &self.probes,
            not_probed: &self.not_probed,
            transport: self.transport,
            starttls: self.starttls(),
            cert_valid: self.cert_valid(),
            deliverable: self.deliverable(),
            delivery: self.delivery,
        }
        .serialize(serializer)
    }
}

/// The `_smtp._tls` TXT record stage (RFC 8460), at `DomainReport::tlsrpt_name`.
#[derive(Clone, Debug, Serialize)]
pub struct TlsRptReport {
    pub status: TlsRptStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Box<TlsRptRecord>>,
}

impl DomainReport {
    /// A report for `domain` in which nothing was found: every stage absent or missing. A
    /// starting point for tests and for fakes of the checker.
    pub fn skeleton(domain: &str) -> DomainReport {
        DomainReport {
            domain: DomainName::from_normalized(domain),
            checked_at: 0,
            duration_seconds: 0.0,
            verdict: Verdict::NoPolicy,
            refused_mx: vec![],
            record: RecordReport {
                status: RecordStatus::Missing,
                id: None,
                records: vec![],
                cname_chain: vec![],
            },
            policy: PolicyReport {
                status: PolicyStatus::NotFetched,
                fetch: None,
                fetch_other_family: None,
                line_ending: None,
                policy: None,
                body_sha256: None,
                normalized_sha256: None,
            },
            mx: MxReport {
                status: MxStatus::Missing,
                hosts: vec![],
            },
            tlsrpt: TlsRptReport {
                status: TlsRptStatus::Missing,
                record: None,
            },
            findings: vec![],
            drift: None,
        }
    }
}

/// The stage names are not stored (at fleet size three names per domain are megabytes): they
/// are derived from the domain when serializing, in the same place and order as fields.
impl Serialize for DomainReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Named<'a, T> {
            name: String,
            #[serde(flatten)]
            stage: &'a T,
        }
        #[derive(Serialize)]
        struct Policy<'a> {
            status: PolicyStatus,
            host: String,
            #[serde(flatten)]
            stage: &'a PolicyReport,
        }
        #[derive(Serialize)]
        struct View<'a> {
            domain: &'a str,
            checked_at: i64,
            duration_seconds: f64,
            verdict: Verdict,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            refused_mx: &'a [String],
            record: Named<'a, RecordReport>,
            policy: Policy<'a>,
            mx: &'a MxReport,
            tlsrpt: Named<'a, TlsRptReport>,
            findings: &'a [Finding],
            /// Derived when serializing (never stored): what each sender profile does.
            senders: Vec<crate::stage::senders::SenderVerdict>,
            #[serde(skip_serializing_if = "Option::is_none")]
            drift: Option<&'a DriftStatus>,
        }
        View {
            domain: &self.domain,
            checked_at: self.checked_at,
            duration_seconds: self.duration_seconds,
            verdict: self.verdict,
            refused_mx: &self.refused_mx,
            record: Named {
                name: self.record_name(),
                stage: &self.record,
            },
            policy: Policy {
                status: self.policy.status,
                host: self.policy_host(),
                stage: &self.policy,
            },
            mx: &self.mx,
            tlsrpt: Named {
                name: self.tlsrpt_name(),
                stage: &self.tlsrpt,
            },
            findings: &self.findings,
            senders: crate::stage::senders::sender_verdicts(self),
            drift: self.drift.as_ref(),
        }
        .serialize(serializer)
    }
}

/// The address family of an address, as senders meet it: an IPv4-mapped IPv6 address is IPv4
/// (a socket connects to it over IPv4), as the address guard (`probe::target`) judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(address: IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_ipv4_mapped_address_is_ipv4() {
        let of = |s: &str| Family::of(s.parse().unwrap());
        assert_eq!(of("192.0.2.1"), Family::Ipv4);
        assert_eq!(of("::ffff:192.0.2.1"), Family::Ipv4);
        assert_eq!(of("2001:db8::1"), Family::Ipv6);
        assert_eq!(Family::Ipv6.as_str(), "ipv6");
    }

    use super::*;

    #[test]
    fn json_carries_the_derived_stage_names_in_field_order() {
        let mut report = DomainReport::skeleton("example.com");
        report.refused_mx.push("mx1.example.com".into());
        let json = serde_json::to_string(&report).expect("serializes");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["record"]["name"], "_mta-sts.example.com");
        assert_eq!(value["record"]["status"], "missing");
        assert_eq!(value["policy"]["host"], "mta-sts.example.com");
        assert_eq!(value["policy"]["status"], "not_fetched");
        assert_eq!(value["tlsrpt"]["name"], "_smtp._tls.example.com");
        assert_eq!(value["refused_mx"][0], "mx1.example.com");
        assert!(
            value.get("drift").is_none(),
            "absent drift is omitted: {json}"
        );
        // Exactly the JSON of the reports that stored the names, field order included.
        assert_eq!(
            json,
            concat!(
                r#"{"domain":"example.com","checked_at":0,"duration_seconds":0.0,"#,
                r#""verdict":"no_policy","refused_mx":["mx1.example.com"],"#,
                r#""record":{"name":"_mta-sts.example.com","status":"missing"},"#,
                r#""policy":{"status":"not_fetched","host":"mta-sts.example.com"},"#,
                r#""mx":{"status":"missing","hosts":[]},"#,
                r#""tlsrpt":{"name":"_smtp._tls.example.com","status":"missing"},"#,
                r#""findings":[],"senders":["#,
                r#"{"profile":"rfc8461","action":"deliver","note":"no usable policy: opportunistic TLS (a copy cached earlier still applies)"},"#,
                r#"{"profile":"gmail","action":"deliver","note":"no usable policy: opportunistic TLS (a copy cached earlier still applies)"},"#,
                r#"{"profile":"exchange_online","action":"deliver","note":"no usable policy: opportunistic TLS (a copy cached earlier still applies)"},"#,
                r#"{"profile":"postfix_resolver","action":"deliver","note":"no usable policy: opportunistic TLS (a copy cached earlier still applies)"},"#,
                r#"{"profile":"postfix_tlspol","action":"deliver","note":"no usable policy: opportunistic TLS (a copy cached earlier still applies)"}]}"#
            )
        );
    }
}
