//! Runs every stage for one domain and assembles the `DomainReport`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use ring::digest;

use crate::duration::format_duration;
use crate::finding::{Code, Finding, Severity};
use crate::probe::cache::ProbeCache;
use crate::probe::dns::{Dns, Families, Lookup, MxAnswer, ResolverSettings};
use crate::probe::https::{fetch_policy_at, FetchSettings};
use crate::probe::smtp::{probe_mx, SmtpProbe, SmtpSettings};
use crate::probe::target::AddressPolicy;
use crate::probe::tls::{TlsClient, TlsObservation};
use crate::report::{
    DomainReport, MxHostReport, MxReport, MxStatus, PolicyReport, PolicyStatus, RecordReport,
    RecordStatus, TlsRptReport, TlsRptStatus, Verdict,
};
use crate::stage::cert::{hex, CertFault, TrustStore};
use crate::stage::policy::{parse_policy, Mode};
use crate::stage::{mx, record, tlsrpt};

/// Default deadline of a whole check: well above the phases' own worst case (docs/operations.md).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything a check needs to know besides the domain.
#[derive(Clone, Debug)]
pub struct CheckSettings {
    pub resolver: ResolverSettings,
    pub fetch: FetchSettings,
    pub smtp: SmtpSettings,
    /// Address families to probe MX hosts and the policy host over.
    pub families: Families,
    /// Refuse private, loopback and other non-public targets unless allowed.
    pub address_policy: AddressPolicy,
    /// Probe every MX over SMTP STARTTLS (off: coverage only).
    pub probe_smtp: bool,
    /// A certificate expiring within this many days is a warning.
    pub cert_warning_days: i64,
    /// At most this many MX hosts are checked (a domain can publish thousands).
    pub max_mx: usize,
    /// At most this many addresses of one MX host are probed.
    pub max_addresses_per_mx: usize,
    /// Deadline of a whole check: policy fetch and MX probes still running then are abandoned
    /// and reported as `check_timed_out` (each phase has its own, shorter timeout as well).
    pub check_timeout: Duration,
}

impl Default for CheckSettings {
    fn default() -> CheckSettings {
        CheckSettings {
            resolver: ResolverSettings::default(),
            fetch: FetchSettings::default(),
            smtp: SmtpSettings::default(),
            families: Families::default(),
            address_policy: AddressPolicy::default(),
            probe_smtp: true,
            cert_warning_days: 14,
            max_mx: 20,
            max_addresses_per_mx: 8,
            check_timeout: DEFAULT_CHECK_TIMEOUT,
        }
    }
}

/// Checks domains. Cheap to clone; one per process is enough.
#[derive(Clone)]
pub struct Checker {
    inner: Arc<Inner>,
}

struct Inner {
    dns: Dns,
    tls: TlsClient,
    settings: CheckSettings,
    /// Shared SMTP probe results and per-address connection limits (the exporter's fleet
    /// deduplication); None probes every address every time.
    cache: Option<Arc<ProbeCache>>,
}

/// Why a `Checker` could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("DNS resolver: {0}")]
    Dns(String),
    #[error("TLS: {0}")]
    Tls(String),
}

impl Checker {
    pub fn new(settings: CheckSettings, trust: TrustStore) -> Result<Checker, SetupError> {
        Checker::build(settings, trust, None)
    }

    /// A checker whose SMTP probes go through `cache`.
    pub fn with_cache(
        settings: CheckSettings,
        trust: TrustStore,
        cache: Arc<ProbeCache>,
    ) -> Result<Checker, SetupError> {
        Checker::build(settings, trust, Some(cache))
    }

    fn build(
        settings: CheckSettings,
        trust: TrustStore,
        cache: Option<Arc<ProbeCache>>,
    ) -> Result<Checker, SetupError> {
        let dns = Dns::new(&settings.resolver).map_err(|e| SetupError::Dns(e.to_string()))?;
        let tls = TlsClient::new(trust).map_err(SetupError::Tls)?;
        Ok(Checker {
            inner: Arc::new(Inner {
                dns,
                tls,
                settings,
                cache,
            }),
        })
    }

    pub fn settings(&self) -> &CheckSettings {
        &self.inner.settings
    }

    /// Checks one domain (already normalised: see [`crate::config::normalize_domain`]).
    pub async fn check(&self, domain: &str) -> DomainReport {
        let started = Instant::now();
        let deadline = deadline_after(self.inner.settings.check_timeout);
        let inner = &self.inner;
        let record_name = format!("_mta-sts.{domain}");
        let tlsrpt_name = format!("_smtp._tls.{domain}");
        let (txt, mx_answer, tlsrpt_txt) = tokio::join!(
            inner.dns.txt(&record_name),
            inner.dns.mx(domain),
            inner.dns.txt(&tlsrpt_name),
        );

        let mut findings = Vec::new();
        let record = record_stage(record_name, txt, &mut findings);
        let tlsrpt = tlsrpt_stage(tlsrpt_name, tlsrpt_txt, &mut findings);

        // The policy fetch and the MX probes are independent: run them together.
        // Both are cut off at the check's deadline, keeping whatever finished by then.
        let policy_stage = async {
            match tokio::time::timeout_at(deadline, self.policy_stage(domain, &record)).await {
                Ok(stage) => (stage, false),
                Err(_) => (self.policy_timed_out(domain, &record), true),
            }
        };
        let (policy_stage, mx_stage) =
            tokio::join!(policy_stage, self.mx_stage(mx_answer, deadline));
        let ((policy, policy_findings), policy_timed_out) = policy_stage;
        findings.extend(policy_findings);
        let (mut mx, mx_findings) = mx_stage;

        let mode = policy.policy.as_ref().map(|p| p.mode);
        findings.extend(coverage_stage(&policy, &mut mx));
        settle_deliverable(&mut mx, policy.policy.is_some());
        // MX faults are what an enforcing sender refuses for: critical only when enforced.
        let mx_severity = if mode == Some(Mode::Enforce) && record.status == RecordStatus::Valid {
            Severity::Critical
        } else {
            Severity::Warning
        };
        for finding in mx_findings {
            findings.push(adjust_mx_severity(finding, mx_severity));
        }
        for finding in findings.iter_mut() {
            if finding.code == Code::MxNotCovered {
                finding.severity = mx_severity;
            }
        }

        let (mut verdict, mut refused_mx) =
            verdict(&record, &policy, &mx, inner.settings.probe_smtp);
        let mx_timed_out = mx.hosts.iter().any(|h| {
            findings
                .iter()
                .any(|f| f.code == Code::CheckTimedOut && f.host.as_deref() == Some(&h.name))
        });
        // An advertised policy not fetched by the deadline: what senders apply cannot be told.
        // A host abandoned at the deadline might refuse mail: "ready" cannot be told either.
        if (policy_timed_out && record.status == RecordStatus::Valid)
            || (mx_timed_out
                && matches!(
                    verdict,
                    Verdict::EnforcedDeliverable | Verdict::TestingReady
                ))
        {
            verdict = Verdict::Undetermined;
            refused_mx.clear();
        }
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.code.cmp(&b.code))
                .then_with(|| a.host.cmp(&b.host))
                .then_with(|| a.address.cmp(&b.address))
        });
        DomainReport {
            domain: domain.to_string(),
            checked_at: unix_now(),
            duration_seconds: started.elapsed().as_secs_f64(),
            verdict,
            refused_mx,
            record,
            policy,
            mx,
            tlsrpt,
            findings,
            drift: None,
        }
    }

    async fn policy_stage(
        &self,
        domain: &str,
        record: &RecordReport,
    ) -> (PolicyReport, Vec<Finding>) {
        let inner = &self.inner;
        let host = format!("mta-sts.{domain}");
        let mut report = PolicyReport {
            status: PolicyStatus::NotFetched,
            fetch: None,
            line_ending: None,
            policy: None,
            body_sha256: None,
            normalized_sha256: None,
        };
        let mut findings = Vec::new();
        // Without a record, senders never fetch; we look anyway, quietly, to catch a policy
        // whose record was forgotten.
        let advertised = record.status != RecordStatus::Missing;

        let addresses = match inner.dns.addresses(&host, inner.settings.families).await {
            Lookup::Found(addresses) => addresses,
            Lookup::NxDomain | Lookup::NoData => {
                if advertised {
                    report.status = PolicyStatus::Unavailable;
                    findings.push(
                        Finding::new(
                            Code::PolicyHostUnresolvable,
                            format!("the policy host {host} has no A or AAAA record, so no sender can fetch the policy"),
                        )
                        .with_host(&host),
                    );
                }
                return (report, findings);
            }
            Lookup::Failed(failure) => {
                if advertised {
                    report.status = PolicyStatus::Unavailable;
                    findings.push(
                        Finding::new(
                            Code::PolicyHostLookupFailed,
                            format!("looking up the addresses of {host} failed: {failure}"),
                        )
                        .with_host(&host),
                    );
                }
                return (report, findings);
            }
        };

        let fetch = fetch_policy_at(&inner.tls, domain, &addresses, &inner.settings.fetch).await;
        let mut fetch_findings = fetch.findings();
        if let Some(tls) = &fetch.tls {
            fetch_findings.extend(cert_findings(
                tls,
                &host,
                None,
                CertTarget::Policy,
                inner.settings.cert_warning_days,
            ));
        }
        let body = fetch.usable_body().map(<[u8]>::to_vec);
        let cert_ok = fetch
            .tls
            .as_ref()
            .and_then(|t| t.verdict.as_ref())
            .is_some_and(|v| v.is_valid());
        report.status = PolicyStatus::Unavailable;
        if let Some(body) = body {
            let parsed = parse_policy(&body);
            report.line_ending = Some(parsed.line_ending);
            report.body_sha256 = Some(hex(digest::digest(&digest::SHA256, &body).as_ref()));
            let parse_ok = parsed.policy.is_some();
            report.normalized_sha256 = parsed.policy.as_ref().map(|p| {
                let mut canonical = p.clone();
                canonical.mx.sort();
                canonical.mx.dedup();
                let text = canonical.to_text(crate::stage::policy::LineEnding::Lf);
                hex(digest::digest(&digest::SHA256, text.as_bytes()).as_ref())
            });
            fetch_findings.extend(parsed.findings);
            // A sender uses the policy only if it was served correctly over a valid certificate.
            let served_ok = cert_ok && fetch.content_type_ok();
            report.status = match (parse_ok, served_ok) {
                (true, true) => PolicyStatus::Valid,
                (true, false) => PolicyStatus::Unavailable,
                (false, _) => PolicyStatus::Invalid,
            };
            if report.status == PolicyStatus::Valid {
                report.policy = parsed.policy.map(Box::new);
            }
        }
        report.fetch = Some(Box::new(fetch));

        if advertised {
            findings.extend(fetch_findings);
        } else if report.status == PolicyStatus::Valid {
            findings.push(
                Finding::new(
                    Code::PolicyWithoutRecord,
                    format!("{host} serves a valid policy, but there is no _mta-sts.{domain} TXT record, so senders never fetch it"),
                )
                .with_host(&host),
            );
        } else {
            // Nothing advertised and nothing usable served: not worth reporting.
            report.status = PolicyStatus::NotFetched;
        }
        (report, findings)
    }

    /// The policy stage when it did not finish by the check's deadline: unavailable if the
    /// record advertises a policy; otherwise nothing was expected and nothing is reported (as
    /// when the probe of a host that nothing advertises fails).
    fn policy_timed_out(
        &self,
        domain: &str,
        record: &RecordReport,
    ) -> (PolicyReport, Vec<Finding>) {
        let advertised = record.status != RecordStatus::Missing;
        let report = PolicyReport {
            status: if advertised {
                PolicyStatus::Unavailable
            } else {
                PolicyStatus::NotFetched
            },
            fetch: None,
            line_ending: None,
            policy: None,
            body_sha256: None,
            normalized_sha256: None,
        };
        let host = format!("mta-sts.{domain}");
        let finding = Finding::new(
            Code::CheckTimedOut,
            format!(
                "the policy fetch from {host} did not finish within the check's deadline of {} (timeouts.check)",
                format_duration(self.inner.settings.check_timeout)
            ),
        )
        .with_host(host);
        let findings = if advertised { vec![finding] } else { vec![] };
        (report, findings)
    }

    /// One MX host whose probes did not finish by the check's deadline: its name and
    /// coverage stay, its transport is unknown.
    fn mx_host_timed_out(&self, name: String, preference: u16) -> (MxHostReport, Vec<Finding>) {
        let finding = Finding::new(
            Code::CheckTimedOut,
            format!(
                "the probes of {name} did not finish within the check's deadline of {} (timeouts.check); its transport is unknown",
                format_duration(self.inner.settings.check_timeout)
            ),
        )
        .with_host(name.clone());
        let host = MxHostReport {
            name,
            preference,
            covered_by: None,
            covered: false,
            addresses: vec![],
            probes: vec![],
            starttls: None,
            cert_valid: None,
            deliverable: None,
        };
        (host, vec![finding])
    }

    async fn mx_stage(
        &self,
        answer: Lookup<MxAnswer>,
        deadline: tokio::time::Instant,
    ) -> (MxReport, Vec<Finding>) {
        let inner = &self.inner;
        let mut findings = Vec::new();
        let records = match answer {
            Lookup::Found(MxAnswer::Hosts(records)) => records,
            Lookup::Found(MxAnswer::NullMx) => {
                findings.push(Finding::new(
                    Code::MxNull,
                    "the domain publishes a null MX (RFC 7505): it accepts no mail",
                ));
                let report = MxReport {
                    status: MxStatus::NullMx,
                    hosts: vec![],
                };
                return (report, findings);
            }
            Lookup::NxDomain | Lookup::NoData => {
                findings.push(Finding::new(
                    Code::MxMissing,
                    "the domain has no MX record; senders fall back to its A/AAAA records, which no policy can cover by MX name reliably",
                ));
                let report = MxReport {
                    status: MxStatus::Missing,
                    hosts: vec![],
                };
                return (report, findings);
            }
            Lookup::Failed(failure) => {
                findings.push(Finding::new(
                    Code::MxLookupFailed,
                    format!("the MX lookup failed: {failure}"),
                ));
                let report = MxReport {
                    status: MxStatus::LookupFailed,
                    hosts: vec![],
                };
                return (report, findings);
            }
        };
        let max_mx = inner.settings.max_mx;
        if records.len() > max_mx {
            findings.push(Finding::new(
                Code::MxTooMany,
                format!(
                    "the domain publishes {} MX records; only the {max_mx} most preferred are checked",
                    records.len()
                ),
            ));
        }
        let hosts = join_all(records.into_iter().take(max_mx).map(|r| async move {
            let probed =
                tokio::time::timeout_at(deadline, self.mx_host(r.exchange.clone(), r.preference));
            match probed.await {
                Ok(host) => host,
                Err(_) => self.mx_host_timed_out(r.exchange, r.preference),
            }
        }))
        .await;
        let mut report_hosts = Vec::with_capacity(hosts.len());
        for (host, host_findings) in hosts {
            report_hosts.push(host);
            findings.extend(host_findings);
        }
        let report = MxReport {
            status: MxStatus::Found,
            hosts: report_hosts,
        };
        (report, findings)
    }

    async fn mx_host(&self, name: String, preference: u16) -> (MxHostReport, Vec<Finding>) {
        let inner = &self.inner;
        let settings = &inner.settings;
        let mut findings = Vec::new();
        let mut host = MxHostReport {
            name: name.clone(),
            preference,
            covered_by: None,
            covered: false,
            addresses: vec![],
            probes: vec![],
            starttls: None,
            cert_valid: None,
            deliverable: None,
        };
        if !settings.probe_smtp {
            return (host, findings);
        }
        let addresses = match inner.dns.addresses(&name, settings.families).await {
            Lookup::Found(addresses) => addresses,
            Lookup::NxDomain | Lookup::NoData => {
                findings.push(
                    Finding::new(
                        Code::MxNoAddress,
                        format!("the MX host {name} has no address record, so no mail can be delivered to it"),
                    )
                    .with_host(&name),
                );
                host.starttls = Some(false);
                host.cert_valid = Some(false);
                return (host, findings);
            }
            Lookup::Failed(failure) => {
                findings.push(
                    Finding::new(
                        Code::MxAddressLookupFailed,
                        format!("looking up the addresses of {name} failed: {failure}"),
                    )
                    .with_host(&name),
                );
                return (host, findings);
            }
        };
        let mut permitted = Vec::new();
        let mut refused = Vec::new();
        for ip in addresses.iter().copied() {
            match settings.address_policy.refusal(ip) {
                Some(reason) => refused.push(format!("{ip} ({reason})")),
                None => permitted.push(ip),
            }
        }
        host.addresses = addresses;
        if !refused.is_empty() {
            findings.push(
                Finding::new(
                    Code::TargetAddressForbidden,
                    format!(
                        "not probing {name} at {}: non-public addresses are not probed unless allowed (--allow-private-targets)",
                        refused.join(", ")
                    ),
                )
                .with_host(&name),
            );
        }
        if permitted.len() > settings.max_addresses_per_mx {
            findings.push(
                Finding::new(
                    Code::MxTooMany,
                    format!(
                        "the MX host {name} has {} addresses; only the first {} are probed",
                        permitted.len(),
                        settings.max_addresses_per_mx
                    ),
                )
                .with_host(&name),
            );
        }
        permitted.truncate(settings.max_addresses_per_mx);
        if permitted.is_empty() {
            return (host, findings);
        }
        let probes = join_all(permitted.iter().map(|ip| self.probe_address(&name, *ip))).await;
        findings.extend(probe_findings(&name, &probes, settings.cert_warning_days));
        let starttls = probes.iter().all(|p| p.starttls_ok());
        let cert_valid = probes.iter().all(|p| {
            p.tls
                .as_ref()
                .and_then(|t| t.verdict.as_ref())
                .is_some_and(|v| v.is_valid())
        });
        host.starttls = Some(starttls);
        host.cert_valid = Some(cert_valid);
        host.probes = probes;
        (host, findings)
    }
}

impl Checker {
    async fn probe_address(&self, host: &str, address: IpAddr) -> Arc<SmtpProbe> {
        let inner = &self.inner;
        let probe = || probe_mx(&inner.tls, host, address, &inner.settings.smtp);
        let target = std::net::SocketAddr::new(address, inner.settings.smtp.port);
        match &inner.cache {
            Some(cache) => cache.probe(host, target, probe).await,
            None => Arc::new(probe().await),
        }
    }
}

fn record_stage(
    name: String,
    answer: Lookup<crate::probe::dns::TxtAnswer>,
    findings: &mut Vec<Finding>,
) -> RecordReport {
    let mut report = RecordReport {
        status: RecordStatus::Missing,
        id: None,
        records: vec![],
        cname_chain: vec![],
    };
    let txts = match answer {
        Lookup::Found(answer) => {
            if let Some(target) = answer.cname_chain.last() {
                findings.push(Finding::new(
                    Code::StsRecordCname,
                    format!(
                        "{name} is delegated by CNAME to {target} (chain: {})",
                        answer.cname_chain.join(" -> ")
                    ),
                ));
            }
            report.cname_chain = answer.cname_chain;
            answer.records
        }
        Lookup::NxDomain | Lookup::NoData => Vec::new(),
        Lookup::Failed(failure) => {
            report.status = RecordStatus::LookupFailed;
            findings.push(Finding::new(
                Code::StsRecordLookupFailed,
                format!("the TXT lookup of {name} failed: {failure} (this is not the same as no record)"),
            ));
            return report;
        }
    };
    let outcome = record::evaluate_sts_txt(&txts);
    report.records = outcome.sts_records;
    report.status = match (&outcome.record, report.records.len()) {
        (Some(_), _) => RecordStatus::Valid,
        (None, 0) => RecordStatus::Missing,
        (None, 1) => RecordStatus::Invalid,
        (None, _) => RecordStatus::Multiple,
    };
    report.id = outcome.record.map(|r| r.id);
    findings.extend(outcome.findings);
    report
}

fn tlsrpt_stage(
    name: String,
    answer: Lookup<crate::probe::dns::TxtAnswer>,
    findings: &mut Vec<Finding>,
) -> TlsRptReport {
    let txts = match answer {
        Lookup::Found(answer) => answer.records,
        Lookup::NxDomain | Lookup::NoData => Vec::new(),
        Lookup::Failed(failure) => {
            findings.push(Finding::new(
                Code::TlsrptLookupFailed,
                format!("the TXT lookup of {name} failed: {failure}"),
            ));
            return TlsRptReport {
                status: TlsRptStatus::LookupFailed,
                record: None,
            };
        }
    };
    let outcome = tlsrpt::evaluate_tlsrpt_txt(&txts);
    let status = if outcome.record.is_some() {
        TlsRptStatus::Valid
    } else if outcome
        .findings
        .iter()
        .any(|f| f.code == Code::TlsrptMultiple)
    {
        TlsRptStatus::Multiple
    } else if outcome
        .findings
        .iter()
        .any(|f| f.code == Code::TlsrptMissing)
    {
        TlsRptStatus::Missing
    } else {
        TlsRptStatus::Invalid
    };
    findings.extend(outcome.findings);
    TlsRptReport {
        status,
        record: outcome.record.map(Box::new),
    }
}

/// Marks each MX covered or not by the policy's patterns.
fn coverage_stage(policy: &PolicyReport, mx_report: &mut MxReport) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(policy) = &policy.policy else {
        return findings;
    };
    if mx_report.status != MxStatus::Found {
        return findings;
    }
    let names: Vec<String> = mx_report.hosts.iter().map(|h| h.name.clone()).collect();
    let coverage = mx::coverage(&policy.mx, &names);
    for (host, covered) in mx_report.hosts.iter_mut().zip(coverage.hosts) {
        host.covered = covered.covered_by.is_some();
        host.covered_by = covered.covered_by;
    }
    if policy.mode == Mode::None {
        return findings;
    }
    for host in &mx_report.hosts {
        if !host.covered {
            findings.push(
                Finding::new(
                    Code::MxNotCovered,
                    format!(
                        "MX {} matches no mx pattern of the policy ({}): a sender enforcing the policy refuses it",
                        host.name,
                        policy.mx.join(", ")
                    ),
                )
                .with_host(&host.name),
            );
        }
    }
    for pattern in coverage.unused_patterns {
        findings.push(Finding::new(
            Code::MxPatternUnused,
            format!("the policy pattern mx: {pattern} matches none of the domain's MX hosts"),
        ));
    }
    findings
}

fn adjust_mx_severity(finding: Finding, severity: Severity) -> Finding {
    match finding.code {
        // Always a warning: it will be critical, it is not yet; or unknown, not refused.
        Code::MxCertExpiring
        | Code::TargetAddressForbidden
        | Code::MxTooMany
        | Code::CheckTimedOut => finding,
        // Facts about DNS, not about what an enforcing sender refuses.
        Code::MxNull | Code::MxMissing | Code::MxLookupFailed | Code::MxAddressLookupFailed => {
            finding
        }
        _ => finding.with_severity(severity),
    }
}

fn verdict(
    record: &RecordReport,
    policy: &PolicyReport,
    mx_report: &MxReport,
    probed: bool,
) -> (Verdict, Vec<String>) {
    match record.status {
        RecordStatus::LookupFailed => return (Verdict::Undetermined, vec![]),
        RecordStatus::Valid => {}
        _ => return (Verdict::NoPolicy, vec![]),
    }
    let Some(parsed) = &policy.policy else {
        return (Verdict::NoPolicy, vec![]);
    };
    if parsed.mode == Mode::None {
        return (Verdict::ModeNone, vec![]);
    }
    if mx_report.status == MxStatus::LookupFailed {
        return (Verdict::Undetermined, vec![]);
    }
    let refused: Vec<String> = mx_report
        .hosts
        .iter()
        .filter(|h| !h.covered || (probed && h.deliverable == Some(false)))
        .map(|h| h.name.clone())
        .collect();
    let ok = refused.is_empty();
    let verdict = match (parsed.mode, ok) {
        (Mode::Enforce, true) => Verdict::EnforcedDeliverable,
        (Mode::Enforce, false) => Verdict::EnforcedRefused,
        (_, true) => Verdict::TestingReady,
        (_, false) => Verdict::TestingNotReady,
    };
    (verdict, refused)
}

/// Sets `deliverable` once coverage is known: only meaningful when there is a policy.
fn settle_deliverable(mx_report: &mut MxReport, has_policy: bool) {
    for host in &mut mx_report.hosts {
        host.deliverable = match (has_policy, host.starttls, host.cert_valid) {
            (true, Some(starttls), Some(cert)) => Some(host.covered && starttls && cert),
            _ => None,
        };
    }
}

/// Which codes a certificate finding uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertTarget {
    Policy,
    Mx,
}

/// Findings for one observed certificate: every fault that holds, and expiry within the
/// warning window. Messages do not name the address, so equal findings across addresses merge.
pub fn cert_findings(
    tls: &TlsObservation,
    host: &str,
    address: Option<IpAddr>,
    target: CertTarget,
    warning_days: i64,
) -> Vec<Finding> {
    let (expired, expiring, not_yet, mismatch, untrusted) = match target {
        CertTarget::Policy => (
            Code::PolicyCertExpired,
            Code::PolicyCertExpiring,
            Code::PolicyCertNotYetValid,
            Code::PolicyCertNameMismatch,
            Code::PolicyCertUntrusted,
        ),
        CertTarget::Mx => (
            Code::MxCertExpired,
            Code::MxCertExpiring,
            Code::MxCertNotYetValid,
            Code::MxCertNameMismatch,
            Code::MxCertUntrusted,
        ),
    };
    let mut findings = Vec::new();
    let Some(verdict) = &tls.verdict else {
        return findings;
    };
    let now = unix_now();
    let leaf = tls.leaf.as_ref();
    for fault in verdict.faults() {
        let (code, message) = match fault {
            CertFault::Expired => match leaf {
                Some(leaf) if now > leaf.not_after => (
                    expired,
                    format!(
                        "the certificate of {host} expired on {} ({} days ago)",
                        format_date(leaf.not_after),
                        (now - leaf.not_after).div_euclid(86_400)
                    ),
                ),
                _ => (
                    untrusted,
                    format!("a certificate in the chain of {host} has expired"),
                ),
            },
            CertFault::NotYetValid => (
                not_yet,
                match leaf {
                    Some(leaf) => format!(
                        "the certificate of {host} is not valid before {}",
                        format_date(leaf.not_before)
                    ),
                    None => format!("the certificate of {host} is not valid yet"),
                },
            ),
            CertFault::NameMismatch => (
                mismatch,
                format!(
                    "the certificate of {host} is not valid for {host}: its DNS names are [{}]",
                    leaf.map(|l| l.dns_names.join(", ")).unwrap_or_default()
                ),
            ),
            other => (
                untrusted,
                format!(
                    "the certificate of {host} is not trusted: {}{}",
                    other.describe(),
                    leaf.map(|l| format!(" (issuer {})", l.issuer))
                        .unwrap_or_default()
                ),
            ),
        };
        let mut finding = Finding::new(code, message).with_host(host);
        if let Some(address) = address {
            finding = finding.with_address(address);
        }
        findings.push(finding);
    }
    if verdict.time_valid {
        if let Some(leaf) = leaf {
            let days = leaf.days_left(now);
            if days < warning_days {
                let mut finding = Finding::new(
                    expiring,
                    format!(
                        "the certificate of {host} expires on {}, in {days} days",
                        format_date(leaf.not_after)
                    ),
                )
                .with_host(host);
                if let Some(address) = address {
                    finding = finding.with_address(address);
                }
                findings.push(finding);
            }
        }
    }
    findings
}

/// Transport and certificate findings for every probed address of one MX host. A finding that
/// holds on every address is reported once for the host; one that differs names the address.
fn probe_findings(host: &str, probes: &[Arc<SmtpProbe>], warning_days: i64) -> Vec<Finding> {
    let mut per_address: Vec<Vec<Finding>> = Vec::with_capacity(probes.len());
    for probe in probes {
        let mut list = probe.findings();
        if let Some(tls) = &probe.tls {
            list.extend(cert_findings(
                tls,
                host,
                Some(probe.address),
                CertTarget::Mx,
                warning_days,
            ));
        }
        per_address.push(list);
    }
    let mut merged: Vec<Finding> = Vec::new();
    for list in &per_address {
        for finding in list {
            let everywhere = per_address.len() > 1
                && per_address.iter().all(|other| {
                    other
                        .iter()
                        .any(|f| f.code == finding.code && f.message == finding.message)
                });
            if everywhere {
                let mut general = finding.clone();
                general.address = None;
                if !merged.contains(&general) {
                    merged.push(general);
                }
            } else {
                merged.push(finding.clone());
            }
        }
    }
    merged
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// `YYYY-MM-DD` (UTC) for unix seconds.
pub fn format_date(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("@{unix}"),
    }
}

/// `timeout` from now; a timeout too long to represent means no deadline (in practice).
pub(crate) fn deadline_after(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_date_is_utc_calendar_date() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(1_798_761_600), "2027-01-01");
    }
}
