//! Judging: what a check's observations mean for a sender. A pure function of the
//! observations, the settings and `now`; no I/O, no clock.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ring::digest;

use crate::domain::DomainName;
use crate::duration::format_duration;
use crate::finding::{Code, Finding, Findings};
use crate::probe::dns::{Lookup, MxAnswer, TxtAnswer};
use crate::probe::smtp::SmtpProbe;
use crate::report::{
    Delivery, DomainReport, Family, HostTransport, MxHostReport, MxReport, MxStatus,
    NotProbedAddress, NotProbedReason, PolicyReport, PolicyStatus, RecordReport, RecordStatus,
    TlsRptReport, TlsRptStatus, Verdict,
};
use crate::stage::cert::{cert_findings, hex, CertTarget};
use crate::stage::policy::{parse_policy, LineEnding, Mode};
use crate::stage::transport::{fetch_findings, smtp_findings};
use crate::stage::{mx, record, tlsrpt};

use super::gather::{AddressObservation, HostObservation, Observations, PolicyObservation};

/// Unused `mx` patterns named in the one finding that lists them; the rest are counted.
const MAX_UNUSED_PATTERNS_LISTED: usize = 10;

/// What judging needs of the check's settings.
#[derive(Clone, Debug)]
pub struct JudgeSettings {
    /// MX hosts were probed over SMTP (off: the verdict rests on coverage alone).
    pub probe_smtp: bool,
    /// A certificate expiring within this long is a warning.
    pub cert_warning: Duration,
    /// At most this many MX hosts were checked.
    pub max_mx: usize,
    /// The check's deadline, named in `check_timed_out` findings.
    pub check_timeout: Duration,
    /// The address families looked up (a host "without an address" has none of these).
    pub families: crate::probe::dns::Families,
}

/// The report for `observations` at `now` (unix seconds).
pub fn judge(observations: Observations, settings: &JudgeSettings, now: i64) -> DomainReport {
    let Observations {
        domain,
        record,
        tlsrpt,
        mx,
        policy,
        policy_other_family,
        hosts,
        duration,
    } = observations;
    let mut findings = Findings::new();
    let record = record_stage(&domain, record, &mut findings);
    let tlsrpt = tlsrpt_stage(&domain, tlsrpt, &mut findings);
    let policy_timed_out = matches!(
        policy,
        PolicyObservation::TimedOut | PolicyObservation::Unreachable(_)
    );
    let (policy, other_family) = choose_family(policy, policy_other_family);
    let mut policy = policy_stage(&domain, &record, policy, settings, now, &mut findings);
    family_stage(&mut policy, other_family, &record, &mut findings);
    let mut mx = mx_stage(mx, hosts, settings, now, &mut findings);
    coverage_stage(&policy, &mut mx, &mut findings);
    let has_policy = policy.policy.is_some();
    for host in &mut mx.hosts {
        host.delivery = has_policy.then(|| delivery(host));
    }
    let mode = policy.policy.as_ref().map(|p| p.mode);
    let enforced = mode == Some(Mode::Enforce) && record.status == RecordStatus::Valid;
    let advertised_but_unknown = policy_timed_out && record.status == RecordStatus::Valid;
    let (verdict, refused_mx) = verdict(&record, &policy, &mx, advertised_but_unknown);
    DomainReport {
        domain,
        checked_at: now,
        duration_seconds: duration.as_secs_f64(),
        verdict,
        refused_mx,
        record,
        policy,
        mx,
        tlsrpt,
        findings: findings.finish(enforced),
        drift: None,
    }
}

fn record_stage(
    domain: &DomainName,
    answer: Lookup<TxtAnswer>,
    findings: &mut Findings,
) -> RecordReport {
    let name = domain.record_name();
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
    report.status = outcome.status;
    report.records = outcome.sts_records;
    report.id = outcome.record.map(|r| r.id);
    findings.extend(outcome.findings);
    report
}

fn tlsrpt_stage(
    domain: &DomainName,
    answer: Lookup<TxtAnswer>,
    findings: &mut Findings,
) -> TlsRptReport {
    let txts = match answer {
        Lookup::Found(answer) => answer.records,
        Lookup::NxDomain | Lookup::NoData => Vec::new(),
        Lookup::Failed(failure) => {
            findings.push(Finding::new(
                Code::TlsrptLookupFailed,
                format!(
                    "the TXT lookup of {} failed: {failure}",
                    domain.tlsrpt_name()
                ),
            ));
            return TlsRptReport {
                status: TlsRptStatus::LookupFailed,
                record: None,
            };
        }
    };
    let outcome = tlsrpt::evaluate_tlsrpt_txt(&txts);
    findings.extend(outcome.findings);
    TlsRptReport {
        status: outcome.status,
        record: outcome.record.map(Box::new),
    }
}

fn policy_stage(
    domain: &DomainName,
    record: &RecordReport,
    observation: PolicyObservation,
    settings: &JudgeSettings,
    now: i64,
    findings: &mut Findings,
) -> PolicyReport {
    let host = domain.policy_host();
    let mut report = PolicyReport {
        status: PolicyStatus::NotFetched,
        fetch: None,
        fetch_other_family: None,
        line_ending: None,
        policy: None,
        body_sha256: None,
        normalized_sha256: None,
    };
    // Without a record, senders never fetch; we looked anyway, and report only a usable policy
    // whose record was forgotten.
    let advertised = record.status != RecordStatus::Missing;
    let fetch = match observation {
        PolicyObservation::TimedOut => {
            if advertised {
                report.status = PolicyStatus::Unavailable;
                findings.push(
                    Finding::new(
                        Code::CheckTimedOut,
                        format!(
                            "the policy fetch from {host} did not finish within the check's deadline of {} (timeouts.check)",
                            format_duration(settings.check_timeout)
                        ),
                    )
                    .with_host(host),
                );
            }
            return report;
        }
        PolicyObservation::Unreachable(addresses) => {
            if advertised {
                report.status = PolicyStatus::Unavailable;
                findings.push(
                    Finding::new(
                        Code::UnreachableFromExporter,
                        format!(
                            "this machine has no route to any address of {host} ({}): the exporter cannot fetch the policy, so what senders get is unknown",
                            list_addresses(&addresses)
                        ),
                    )
                    .with_host(host),
                );
            }
            return report;
        }
        PolicyObservation::Unresolved(lookup) => {
            if advertised {
                report.status = PolicyStatus::Unavailable;
                let finding = match lookup.failure() {
                    Some(failure) => Finding::new(
                        Code::PolicyHostLookupFailed,
                        format!("looking up the addresses of {host} failed: {failure}"),
                    ),
                    None => Finding::new(
                        Code::PolicyHostUnresolvable,
                        format!("the policy host {host} has no A or AAAA record, so no sender can fetch the policy"),
                    ),
                };
                findings.push(finding.with_host(host));
            }
            return report;
        }
        PolicyObservation::Fetched(fetch) => fetch,
    };

    let mut fetch_findings = fetch_findings(&fetch);
    if let Some(tls) = &fetch.tls {
        if let Some(verdict) = &tls.verdict {
            fetch_findings.extend(cert_findings(
                tls.leaf.as_ref(),
                verdict,
                &host,
                None,
                CertTarget::Policy,
                settings.cert_warning,
                now,
            ));
        }
    }
    let cert_ok = fetch
        .tls
        .as_ref()
        .and_then(|t| t.verdict.as_ref())
        .is_some_and(|v| v.is_valid());
    report.status = PolicyStatus::Unavailable;
    if let Some(body) = fetch.usable_body() {
        let parsed = parse_policy(body);
        report.line_ending = Some(parsed.line_ending);
        report.body_sha256 = Some(hex(digest::digest(&digest::SHA256, body).as_ref()));
        let parse_ok = parsed.policy.is_some();
        report.normalized_sha256 = parsed.policy.as_ref().map(|p| {
            let mut canonical = p.clone();
            canonical.mx.sort();
            canonical.mx.dedup();
            let text = canonical.to_text(LineEnding::Lf);
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
    report.fetch = Some(fetch);

    if advertised {
        findings.extend(fetch_findings);
    } else if report.status == PolicyStatus::Valid {
        findings.push(
            Finding::new(
                Code::PolicyWithoutRecord,
                format!(
                    "{host} serves a valid policy, but there is no {} TXT record, so senders never fetch it",
                    domain.record_name()
                ),
            )
            .with_host(&host),
        );
    } else {
        // Nothing advertised and nothing usable served: not worth reporting.
        report.status = PolicyStatus::NotFetched;
    }
    report
}

/// Addresses for a message: the first few, and how many more.
fn list_addresses(addresses: &[IpAddr]) -> String {
    let mut shown: Vec<String> = addresses.iter().take(4).map(IpAddr::to_string).collect();
    if addresses.len() > 4 {
        shown.push(format!("and {} more", addresses.len() - 4));
    }
    shown.join(", ")
}

/// What "no address" means when the exporter looks up one family only (ip_families).
fn families_asked(families: crate::probe::dns::Families) -> &'static str {
    match (families.ipv4, families.ipv6) {
        (true, false) => " (A only: this exporter does not look up AAAA, ip_families)",
        (false, true) => " (AAAA only: this exporter does not look up A, ip_families)",
        _ => "",
    }
}

/// The policy host's second family, when it has both: which family the fetch judged as the
/// policy came from, and the other family's fetch.
struct OtherFamily {
    /// The fetch judged as the policy came from IPv6 (the IPv4 one failed where it worked).
    main_is_ipv6: bool,
    fetch: Box<crate::probe::https::PolicyFetch>,
}

/// A fetch that gave a policy a sender can use: a body served correctly, certificate valid.
fn fetch_usable(fetch: &crate::probe::https::PolicyFetch) -> bool {
    fetch.usable_body().is_some()
        && fetch
            .tls
            .as_ref()
            .and_then(|t| t.verdict.as_ref())
            .is_some_and(|v| v.is_valid())
}

/// With both families fetched (IPv4 in `policy`, IPv6 in `other`), the policy is what a sender
/// able to use either gets: the IPv4 fetch when it worked, else the IPv6 one when that worked,
/// else the IPv4 one's failure.
fn choose_family(
    policy: PolicyObservation,
    other: Option<Box<crate::probe::https::PolicyFetch>>,
) -> (PolicyObservation, Option<OtherFamily>) {
    let Some(v6) = other else {
        return (policy, None);
    };
    match policy {
        PolicyObservation::Fetched(v4) if !fetch_usable(&v4) && fetch_usable(&v6) => (
            PolicyObservation::Fetched(v6),
            Some(OtherFamily {
                main_is_ipv6: true,
                fetch: v4,
            }),
        ),
        policy => (
            policy,
            Some(OtherFamily {
                main_is_ipv6: false,
                fetch: v6,
            }),
        ),
    }
}

/// The fetch over the policy host's other family, when it has both: a fault there that the
/// fetch judged as the policy did not meet is a broken AAAA (met first by senders that prefer
/// IPv6) or a broken A (met by every sender without IPv6).
fn family_stage(
    policy: &mut PolicyReport,
    other: Option<OtherFamily>,
    record: &RecordReport,
    findings: &mut Findings,
) {
    let Some(OtherFamily {
        main_is_ipv6,
        fetch: mut other,
    }) = other
    else {
        return;
    };
    let main_ok = policy.fetch.as_deref().is_some_and(fetch_usable);
    if record.status != RecordStatus::Missing && main_ok && !fetch_usable(&other) {
        let why = fetch_findings(&other)
            .into_iter()
            .next()
            .map(|f| f.message.into_owned())
            .unwrap_or_else(|| "its certificate is not valid".to_string());
        let (code, works, fails, who) = match main_is_ipv6 {
            false => (
                Code::PolicyHostIpv6Broken,
                "IPv4",
                "IPv6",
                "senders that prefer IPv6 cannot fetch it",
            ),
            true => (
                Code::PolicyHostIpv4Broken,
                "IPv6",
                "IPv4",
                "senders without IPv6 cannot fetch it",
            ),
        };
        findings.push(
            Finding::new(
                code,
                format!(
                    "{} serves the policy over {works}, but not over {fails} ({why}): {who}",
                    other.host
                ),
            )
            .with_host(other.host.clone()),
        );
    }
    if let (Some(main), Some(theirs)) = (
        policy.fetch.as_ref().and_then(|f| f.usable_body()),
        other.usable_body(),
    ) {
        if main != theirs {
            let sha = |body: &[u8]| hex(digest::digest(&digest::SHA256, body).as_ref());
            let (ipv4, ipv6) = match main_is_ipv6 {
                false => (main, theirs),
                true => (theirs, main),
            };
            findings.push(
                Finding::new(
                    Code::PolicyDiffersByFamily,
                    format!(
                        "{} serves another policy file over IPv6 ({} bytes, SHA-256 {:.12}) than over IPv4 ({} bytes, SHA-256 {:.12}): senders cache whichever copy they fetched",
                        other.host,
                        ipv6.len(),
                        sha(ipv6),
                        ipv4.len(),
                        sha(ipv4)
                    ),
                )
                .with_host(other.host.clone()),
            );
        }
    }
    // Its body is not needed once compared: a stored report keeps one copy.
    other.body = None;
    policy.fetch_other_family = Some(other);
}

fn mx_stage(
    answer: Lookup<MxAnswer>,
    hosts: Vec<HostObservation>,
    settings: &JudgeSettings,
    now: i64,
    findings: &mut Findings,
) -> MxReport {
    let (status, total) = match &answer {
        Lookup::Found(MxAnswer::Hosts(records)) => (MxStatus::Found, records.len()),
        Lookup::Found(MxAnswer::NullMx) => {
            findings.push(Finding::new(
                Code::MxNull,
                "the domain publishes a null MX (RFC 7505): it accepts no mail",
            ));
            (MxStatus::NullMx, 0)
        }
        // NXDOMAIN: the domain itself does not exist, so there is no A/AAAA to fall back to.
        Lookup::NxDomain => {
            findings.push(Finding::new(
                Code::DomainNotFound,
                "the domain does not exist (its MX lookup answered NXDOMAIN): no MX and no address records, so mail to it bounces",
            ));
            (MxStatus::Missing, 0)
        }
        Lookup::NoData => {
            findings.push(Finding::new(
                Code::MxMissing,
                "the domain has no MX record; senders fall back to its A/AAAA records, which no policy can cover by MX name reliably",
            ));
            (MxStatus::Missing, 0)
        }
        Lookup::Failed(failure) => {
            findings.push(Finding::new(
                Code::MxLookupFailed,
                format!("the MX lookup failed: {failure}"),
            ));
            (MxStatus::LookupFailed, 0)
        }
    };
    if total > settings.max_mx {
        findings.push(Finding::new(
            Code::MxTooMany,
            format!(
                "the domain publishes {total} MX records; only the {} most preferred are checked",
                settings.max_mx
            ),
        ));
    }
    let hosts = hosts
        .into_iter()
        .map(|host| mx_host(host, settings, now, findings))
        .collect();
    MxReport { status, hosts }
}

fn mx_host(
    observation: HostObservation,
    settings: &JudgeSettings,
    now: i64,
    findings: &mut Findings,
) -> MxHostReport {
    let HostObservation {
        name,
        preference,
        addresses,
        probes,
    } = observation;
    let mut host = MxHostReport::new(name, preference);
    let timed_out = |name: &str| {
        Finding::new(
            Code::CheckTimedOut,
            format!(
                "the probes of {name} did not finish within the check's deadline of {} (timeouts.check); its transport is unknown",
                format_duration(settings.check_timeout)
            ),
        )
        .with_host(name)
    };
    let addresses = match addresses {
        None if !settings.probe_smtp => return host,
        None => {
            findings.push(timed_out(&host.name));
            host.transport = HostTransport::TimedOut;
            return host;
        }
        Some(Lookup::Found(addresses)) => addresses,
        Some(Lookup::NxDomain | Lookup::NoData) => {
            findings.push(
                Finding::new(
                    Code::MxNoAddress,
                    format!(
                        "the MX host {} has no address record{}, so no mail can be delivered to it",
                        host.name,
                        families_asked(settings.families)
                    ),
                )
                .with_host(&host.name),
            );
            host.transport = HostTransport::NoAddress;
            return host;
        }
        Some(Lookup::Failed(failure)) => {
            findings.push(
                Finding::new(
                    Code::MxAddressLookupFailed,
                    format!(
                        "looking up the addresses of {} failed: {failure}",
                        host.name
                    ),
                )
                .with_host(&host.name),
            );
            host.transport = HostTransport::LookupFailed;
            return host;
        }
    };
    host.addresses = addresses;
    let mut probed: Vec<Arc<SmtpProbe>> = Vec::new();
    for observation in probes {
        match observation {
            AddressObservation::Probed(probe) => probed.push(probe),
            AddressObservation::NotProbed(address, reason) => {
                host.not_probed.push(NotProbedAddress { address, reason })
            }
        }
    }
    let forbidden: Vec<String> = host
        .not_probed
        .iter()
        .filter_map(|n| match n.reason {
            NotProbedReason::Forbidden { detail } => Some(format!("{} ({detail})", n.address)),
            _ => None,
        })
        .collect();
    let over_limit = host
        .not_probed
        .iter()
        .filter(|n| n.reason == NotProbedReason::OverLimit)
        .count();
    let unfinished: Vec<String> = host
        .not_probed
        .iter()
        .filter_map(|n| match n.reason {
            NotProbedReason::Abandoned => Some(format!("{} probe abandoned", n.address)),
            NotProbedReason::Queued { behind } => Some(format!(
                "{} still waiting for a politeness slot, behind {behind} probes of that address",
                n.address
            )),
            _ => None,
        })
        .collect();
    let abandoned = !unfinished.is_empty();
    let no_route: Vec<IpAddr> = host
        .not_probed
        .iter()
        .filter(|n| n.reason == NotProbedReason::NoRoute)
        .map(|n| n.address)
        .collect();
    if !no_route.is_empty() && forbidden.len() + no_route.len() == host.addresses.len() {
        findings.push(
            Finding::new(
                Code::UnreachableFromExporter,
                format!(
                    "this machine has no route to any address of {} ({}) it may probe: what senders meet there is unknown",
                    host.name,
                    list_addresses(&no_route)
                ),
            )
            .with_host(&host.name),
        );
        host.transport = HostTransport::Unreachable;
        return host;
    }
    if !forbidden.is_empty() && forbidden.len() == host.addresses.len() {
        findings.push(
            Finding::new(
                Code::MxNoPublicAddress,
                format!(
                    "every address of {} is non-public: {}; no sender on the internet can deliver there, and the exporter does not probe such addresses unless allowed (allow_private_targets)",
                    host.name,
                    forbidden.join(", ")
                ),
            )
            .with_host(&host.name),
        );
        host.transport = HostTransport::NoPublicAddress;
        return host;
    }
    if !forbidden.is_empty() {
        findings.push(
            Finding::new(
                Code::TargetAddressForbidden,
                format!(
                    "not probing {} at {}: non-public addresses are not probed unless allowed (--allow-private-targets)",
                    host.name,
                    forbidden.join(", ")
                ),
            )
            .with_host(&host.name),
        );
    }
    if over_limit > 0 {
        findings.push(
            Finding::new(
                Code::MxTooMany,
                format!(
                    "the MX host {} has {} addresses; only the first {} are probed",
                    host.name,
                    host.addresses.len() - forbidden.len(),
                    host.addresses.len() - forbidden.len() - over_limit
                ),
            )
            .with_host(&host.name),
        );
    }
    if abandoned {
        findings.push(
            Finding::new(
                Code::CheckTimedOut,
                format!(
                    "the probes of {} did not finish within the check's deadline of {} (timeouts.check; time waiting for a politeness slot does not count): {}; its transport is unknown",
                    host.name,
                    format_duration(settings.check_timeout),
                    unfinished.join(", ")
                ),
            )
            .with_host(&host.name),
        );
    }
    findings.extend(probe_findings(&host.name, &probed, settings, now));
    let (v6, v4): (Vec<&Arc<SmtpProbe>>, Vec<&Arc<SmtpProbe>>) = probed
        .iter()
        .partition(|p| Family::of(p.address) == Family::Ipv6);
    let ok = |p: &&Arc<SmtpProbe>| p.starttls_ok() && p.cert_valid();
    if !v4.is_empty() && !v6.is_empty() && v4.iter().all(ok) && !v6.iter().any(ok) {
        let failing: Vec<String> = v6.iter().map(|p| p.address.to_string()).collect();
        findings.push(
            Finding::new(
                Code::MxIpv6Broken,
                format!(
                    "{} works over IPv4 but fails at every IPv6 address ({}): senders that prefer IPv6 meet the failure first",
                    host.name,
                    failing.join(", ")
                ),
            )
            .with_host(&host.name),
        );
    }
    host.transport = if probed.iter().any(|p| !p.starttls_ok()) {
        HostTransport::StarttlsFailed
    } else if probed.iter().any(|p| !p.cert_valid()) {
        HostTransport::CertInvalid
    } else if abandoned || probed.is_empty() {
        HostTransport::TimedOut
    } else {
        HostTransport::Valid
    };
    host.probes = probed;
    host
}

/// Transport and certificate findings for every probed address of one MX host. A finding that
/// holds on every address is reported once for the host; one that differs names the address.
fn probe_findings(
    host: &str,
    probes: &[Arc<SmtpProbe>],
    settings: &JudgeSettings,
    now: i64,
) -> Vec<Finding> {
    let per_address: Vec<Vec<Finding>> = probes
        .iter()
        .map(|probe| {
            let mut list = smtp_findings(probe);
            if let Some(tls) = &probe.tls {
                if let Some(verdict) = &tls.verdict {
                    list.extend(cert_findings(
                        tls.leaf.as_ref(),
                        verdict,
                        host,
                        Some(probe.address),
                        CertTarget::Mx,
                        settings.cert_warning,
                        now,
                    ));
                }
            }
            list
        })
        .collect();
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

/// Marks each MX covered or not by the policy's patterns.
fn coverage_stage(policy: &PolicyReport, mx_report: &mut MxReport, findings: &mut Findings) {
    let Some(policy) = &policy.policy else {
        return;
    };
    if mx_report.status != MxStatus::Found {
        return;
    }
    let names: Vec<String> = mx_report.hosts.iter().map(|h| h.name.clone()).collect();
    let coverage = mx::coverage(&policy.mx, &names);
    for (host, covered) in mx_report.hosts.iter_mut().zip(coverage.hosts) {
        host.covered = covered.covered_by.is_some();
        host.covered_by = covered.covered_by;
    }
    if policy.mode == Mode::None {
        return;
    }
    for host in &mx_report.hosts {
        if !host.covered {
            findings.push(
                Finding::new(
                    Code::MxNotCovered,
                    format!(
                        "MX {} matches no mx pattern of the policy ({}): a sender enforcing the policy refuses it",
                        host.name,
                        list_patterns(&policy.mx)
                    ),
                )
                .with_host(&host.name),
            );
        }
    }
    if let Some(finding) = unused_patterns(&coverage.unused_patterns) {
        findings.push(finding);
    }
}

/// One finding for every unused pattern: a policy can hold thousands.
fn unused_patterns(unused: &[String]) -> Option<Finding> {
    let message = match unused {
        [] => return None,
        [one] => {
            format!("the policy pattern mx: {one} matches none of the domain's MX hosts")
        }
        many => format!(
            "{} policy patterns match none of the domain's MX hosts: {}",
            many.len(),
            list_patterns(many)
        ),
    };
    Some(Finding::new(Code::MxPatternUnused, message))
}

/// "a, b, c" for at most [`MAX_UNUSED_PATTERNS_LISTED`] patterns, then "and N more".
fn list_patterns(patterns: &[String]) -> String {
    let shown: Vec<&str> = patterns
        .iter()
        .take(MAX_UNUSED_PATTERNS_LISTED)
        .map(String::as_str)
        .collect();
    let mut text = shown.join(", ");
    if patterns.len() > shown.len() {
        text.push_str(&format!(" and {} more", patterns.len() - shown.len()));
    }
    text
}

/// What an enforcing sender does with one MX: refuses it when it is not covered or its
/// transport fails; otherwise whatever the transport says (unknown when not probed).
fn delivery(host: &MxHostReport) -> Delivery {
    if !host.covered {
        return Delivery::Refused;
    }
    host.transport.delivery()
}

fn verdict(
    record: &RecordReport,
    policy: &PolicyReport,
    mx_report: &MxReport,
    policy_timed_out: bool,
) -> (Verdict, Vec<String>) {
    match record.status {
        RecordStatus::LookupFailed => return (Verdict::Undetermined, vec![]),
        RecordStatus::Valid => {}
        _ => return (Verdict::NoPolicy, vec![]),
    }
    // An advertised policy not fetched by the deadline: what senders apply cannot be told.
    if policy_timed_out {
        return (Verdict::Undetermined, vec![]);
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
        .filter(|h| h.delivery == Some(Delivery::Refused))
        .map(|h| h.name.clone())
        .collect();
    // A host we could not probe (lookup failed, deadline) might refuse mail: "ready" cannot be
    // told. With probing off, coverage alone decides, as documented.
    let unknown = mx_report
        .hosts
        .iter()
        .any(|h| h.delivery == Some(Delivery::Unknown) && h.transport != HostTransport::NotProbed);
    let verdict = match (parsed.mode, refused.is_empty(), unknown) {
        (_, true, true) => Verdict::Undetermined,
        (Mode::Enforce, true, false) => Verdict::EnforcedDeliverable,
        (Mode::Enforce, false, _) => Verdict::EnforcedRefused,
        (_, true, false) => Verdict::TestingReady,
        (_, false, _) => Verdict::TestingNotReady,
    };
    (verdict, refused)
}

#[cfg(test)]
mod tests {
    //! Judging at a chosen `now`, from observations built by hand: every verdict, the severity
    //! rules, and each defect the split made testable.

    use std::collections::BTreeSet;
    use std::net::IpAddr;

    use super::*;
    use crate::finding::Severity;
    use crate::probe::dns::{LookupFailure, MxRecord};
    use crate::probe::https::{FetchOutcome, PolicyFetch};
    use crate::probe::smtp::SmtpOutcome;
    use crate::probe::tls::TlsObservation;
    use crate::stage::cert::{CertFault, CertInfo, CertVerdict};

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;
    const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n";

    fn settings() -> JudgeSettings {
        JudgeSettings {
            probe_smtp: true,
            cert_warning: Duration::from_secs(14 * 86_400),
            max_mx: 20,
            check_timeout: Duration::from_secs(300),
            families: crate::probe::dns::Families::default(),
        }
    }

    fn txt(records: &[&str]) -> Lookup<TxtAnswer> {
        Lookup::Found(TxtAnswer {
            records: records.iter().map(|r| r.to_string()).collect(),
            cname_chain: vec![],
        })
    }

    fn leaf(host: &str, not_before: i64, not_after: i64) -> CertInfo {
        CertInfo {
            subject: format!("CN={host}"),
            issuer: "CN=Test CA".into(),
            dns_names: vec![host.into()],
            serial: "01".into(),
            key_type: "ECDSA P-256".into(),
            not_before,
            not_after,
            sha256_fingerprint: "00".into(),
        }
    }

    fn valid_verdict() -> CertVerdict {
        CertVerdict {
            trusted: true,
            name_matches: true,
            time_valid: true,
            first_error: None,
            trust_error: None,
            detail: None,
        }
    }

    fn tls(host: &str, not_after: i64, verdict: CertVerdict) -> TlsObservation {
        TlsObservation {
            version: Some("TLSv1.3".into()),
            cipher_suite: None,
            chain_length: 2,
            leaf: Some(leaf(host, NOW - 30 * DAY, not_after)),
            verdict: Some(verdict),
        }
    }

    fn fetch(body: &str) -> PolicyFetch {
        let host = "mta-sts.example.com";
        PolicyFetch {
            url: format!("https://{host}/.well-known/mta-sts.txt"),
            host: host.into(),
            address: Some("192.0.2.1".parse().unwrap()),
            status: Some(200),
            location: None,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            body: Some(body.as_bytes().to_vec()),
            body_bytes: body.len(),
            tls: Some(tls(host, NOW + 60 * DAY, valid_verdict())),
            outcome: FetchOutcome::Fetched,
            duration_seconds: 0.1,
        }
    }

    fn probe(host: &str, address: &str, outcome: SmtpOutcome) -> AddressObservation {
        let ok = outcome == SmtpOutcome::Ok;
        AddressObservation::Probed(Arc::new(SmtpProbe {
            host: host.into(),
            address: address.parse().unwrap(),
            greeting: Some("220 ready".into()),
            starttls_offered: Some(ok),
            tls: ok.then(|| tls(host, NOW + 60 * DAY, valid_verdict())),
            outcome,
            duration_seconds: 0.1,
            inferred: None,
        }))
    }

    fn with_cert(
        observation: AddressObservation,
        not_after: i64,
        verdict: CertVerdict,
    ) -> AddressObservation {
        let AddressObservation::Probed(probe) = observation else {
            return observation;
        };
        let mut probe = (*probe).clone();
        probe.tls = Some(tls(&probe.host, not_after, verdict));
        AddressObservation::Probed(Arc::new(probe))
    }

    fn host(
        name: &str,
        addresses: Lookup<Vec<IpAddr>>,
        probes: Vec<AddressObservation>,
    ) -> HostObservation {
        HostObservation {
            name: name.into(),
            preference: 10,
            addresses: Some(addresses),
            probes,
        }
    }

    fn ips(list: &[&str]) -> Lookup<Vec<IpAddr>> {
        Lookup::Found(list.iter().map(|a| a.parse().unwrap()).collect())
    }

    fn healthy_mx() -> HostObservation {
        host(
            "mx.example.com",
            ips(&["192.0.2.25"]),
            vec![probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok)],
        )
    }

    /// A domain with a valid record, `policy` served correctly and `hosts` as its MX.
    fn observations(policy: &str, hosts: Vec<HostObservation>) -> Observations {
        let records = hosts
            .iter()
            .map(|h| MxRecord {
                preference: h.preference,
                exchange: h.name.clone(),
            })
            .collect();
        Observations {
            domain: DomainName::from_normalized("example.com"),
            record: txt(&["v=STSv1; id=20261202"]),
            tlsrpt: txt(&["v=TLSRPTv1; rua=mailto:tlsrpt@example.com"]),
            mx: Lookup::Found(MxAnswer::Hosts(records)),
            policy: PolicyObservation::Fetched(Box::new(fetch(policy))),
            policy_other_family: None,
            hosts,
            duration: Duration::from_millis(120),
        }
    }

    fn testing(policy: &str) -> String {
        policy.replace("mode: enforce", "mode: testing")
    }

    fn codes(report: &DomainReport) -> Vec<&'static str> {
        report.findings.iter().map(|f| f.code.as_str()).collect()
    }

    fn severity_of(report: &DomainReport, code: Code) -> Option<Severity> {
        report
            .findings
            .iter()
            .find(|f| f.code == code)
            .map(|f| f.severity)
    }

    fn run(observations: Observations) -> DomainReport {
        judge(observations, &settings(), NOW)
    }

    #[test]
    fn a_domain_that_does_not_exist_is_not_a_domain_without_mx() {
        // NXDOMAIN at the domain: its own finding, no claim of an A/AAAA fallback
        let mut gone = observations(POLICY, vec![]);
        gone.mx = Lookup::NxDomain;
        let report = run(gone);
        assert!(
            codes(&report).contains(&"domain_not_found"),
            "{:?}",
            codes(&report)
        );
        assert!(!codes(&report).contains(&"mx_missing"));
        let finding = report
            .findings
            .iter()
            .find(|f| f.code == Code::DomainNotFound)
            .unwrap();
        assert_eq!(finding.severity, Severity::Critical);
        assert!(!finding.message.contains("A/AAAA"), "{}", finding.message);
        // NODATA: the domain exists without MX, senders fall back to its addresses
        let mut bare = observations(POLICY, vec![]);
        bare.mx = Lookup::NoData;
        let report = run(bare);
        assert!(codes(&report).contains(&"mx_missing"));
        assert!(!codes(&report).contains(&"domain_not_found"));
    }

    #[test]
    fn healthy_enforce_is_deliverable_with_no_findings() {
        let report = run(observations(POLICY, vec![healthy_mx()]));
        assert_eq!(report.verdict, Verdict::EnforcedDeliverable);
        assert_eq!(codes(&report), Vec::<&str>::new());
        assert_eq!(report.checked_at, NOW);
        assert!((report.duration_seconds - 0.12).abs() < 1e-9);
        let mx = &report.mx.hosts[0];
        assert_eq!(mx.transport, HostTransport::Valid);
        assert_eq!(mx.delivery, Some(Delivery::Deliverable));
        assert_eq!(mx.covered_by.as_deref(), Some("mx.example.com"));
        assert_eq!(report.record.status, RecordStatus::Valid);
        assert_eq!(report.tlsrpt.status, TlsRptStatus::Valid);
        assert_eq!(report.policy.status, PolicyStatus::Valid);
    }

    #[test]
    fn every_verdict() {
        let uncovered = || {
            host(
                "other.example.net",
                ips(&["192.0.2.26"]),
                vec![probe("other.example.net", "192.0.2.26", SmtpOutcome::Ok)],
            )
        };
        let mut lookup_failed = observations(POLICY, vec![healthy_mx()]);
        lookup_failed.record = Lookup::Failed(LookupFailure::ServFail);
        let mut no_record = observations(POLICY, vec![healthy_mx()]);
        no_record.record = Lookup::NxDomain;
        let mode_none = observations(
            &POLICY.replace("mode: enforce", "mode: none"),
            vec![healthy_mx()],
        );
        let cases = [
            (
                run(observations(POLICY, vec![healthy_mx()])),
                Verdict::EnforcedDeliverable,
            ),
            (
                run(observations(POLICY, vec![healthy_mx(), uncovered()])),
                Verdict::EnforcedRefused,
            ),
            (
                run(observations(&testing(POLICY), vec![healthy_mx()])),
                Verdict::TestingReady,
            ),
            (
                run(observations(&testing(POLICY), vec![uncovered()])),
                Verdict::TestingNotReady,
            ),
            (run(mode_none), Verdict::ModeNone),
            (run(no_record), Verdict::NoPolicy),
            (run(lookup_failed), Verdict::Undetermined),
        ];
        for (report, verdict) in cases {
            assert_eq!(report.verdict, verdict, "{:?}", codes(&report));
        }
    }

    #[test]
    fn mx_faults_are_critical_only_when_enforced() {
        let refused = || {
            vec![host(
                "mx.example.com",
                ips(&["192.0.2.25"]),
                vec![probe(
                    "mx.example.com",
                    "192.0.2.25",
                    SmtpOutcome::StarttlsNotOffered,
                )],
            )]
        };
        let enforced = run(observations(POLICY, refused()));
        assert_eq!(enforced.verdict, Verdict::EnforcedRefused);
        assert_eq!(enforced.refused_mx, ["mx.example.com"]);
        assert_eq!(
            severity_of(&enforced, Code::StarttlsNotOffered),
            Some(Severity::Critical)
        );
        let in_testing = run(observations(&testing(POLICY), refused()));
        assert_eq!(in_testing.verdict, Verdict::TestingNotReady);
        assert_eq!(
            severity_of(&in_testing, Code::StarttlsNotOffered),
            Some(Severity::Warning)
        );
        // A policy present but its record missing: senders never apply it, nothing is critical.
        let mut no_record = observations(POLICY, refused());
        no_record.record = Lookup::NxDomain;
        let no_record = run(no_record);
        assert_eq!(no_record.verdict, Verdict::NoPolicy);
        assert!(!no_record
            .findings
            .iter()
            .any(|f| f.severity == Severity::Critical));
        // Fixed codes keep their severity whatever the mode.
        let mut failed = observations(&testing(POLICY), vec![healthy_mx()]);
        failed.hosts[0].addresses = Some(Lookup::Failed(LookupFailure::Timeout));
        failed.hosts[0].probes.clear();
        let failed = run(failed);
        assert_eq!(
            severity_of(&failed, Code::MxAddressLookupFailed),
            Some(Severity::Critical)
        );
    }

    /// Regression: an MX that was never probed counted as deliverable.
    #[test]
    fn addresses_without_a_route_from_here_are_not_blamed_on_the_domain() {
        let no_route =
            |ip: &str| AddressObservation::NotProbed(ip.parse().unwrap(), NotProbedReason::NoRoute);
        // Dual stack seen from an exporter without IPv6: judged on IPv4 alone, no IPv6 fault.
        let dual = host(
            "mx.example.com",
            ips(&["192.0.2.25", "2001:db8::25"]),
            vec![
                probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                no_route("2001:db8::25"),
            ],
        );
        let report = run(observations(POLICY, vec![dual]));
        assert_eq!(
            report.verdict,
            Verdict::EnforcedDeliverable,
            "{:#?}",
            report.findings
        );
        assert!(codes(&report).is_empty(), "{:?}", codes(&report));
        let mx = &report.mx.hosts[0];
        assert_eq!(mx.transport, HostTransport::Valid);
        assert_eq!(mx.not_probed[0].reason, NotProbedReason::NoRoute);

        // An IPv6-only MX from there: unknown, never refused.
        let v6_only = host(
            "mx.example.com",
            ips(&["2001:db8::25"]),
            vec![no_route("2001:db8::25")],
        );
        let report = run(observations(POLICY, vec![v6_only]));
        assert_eq!(report.verdict, Verdict::Undetermined);
        assert_eq!(codes(&report), ["unreachable_from_exporter"]);
        assert_eq!(report.mx.hosts[0].transport, HostTransport::Unreachable);
        assert_eq!(report.mx.hosts[0].delivery, Some(Delivery::Unknown));
        assert!(!report.has_critical());

        // An IPv6-only policy host from there: the policy is unknown, so is the verdict.
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.policy = PolicyObservation::Unreachable(vec!["2001:db8::1".parse().unwrap()]);
        let report = run(obs);
        assert_eq!(report.verdict, Verdict::Undetermined);
        assert_eq!(codes(&report), ["unreachable_from_exporter"]);
        let finding = &report.findings[0];
        assert_eq!(finding.host.as_deref(), Some("mta-sts.example.com"));
        assert!(
            finding.message.contains("2001:db8::1"),
            "{}",
            finding.message
        );
    }

    #[test]
    fn never_probed_mx_is_not_deliverable() {
        for policy in [POLICY.to_string(), testing(POLICY)] {
            // Only a non-public address: refused by the address guard, never probed.
            let forbidden = host(
                "mx.example.com",
                ips(&["224.0.0.1"]),
                vec![AddressObservation::NotProbed(
                    "224.0.0.1".parse().unwrap(),
                    NotProbedReason::Forbidden {
                        detail: "multicast address",
                    },
                )],
            );
            let report = run(observations(&policy, vec![forbidden]));
            let mx = &report.mx.hosts[0];
            assert_eq!(mx.transport, HostTransport::NoPublicAddress);
            assert_eq!(mx.delivery, Some(Delivery::Refused));
            assert_eq!(mx.addresses, ["224.0.0.1".parse::<IpAddr>().unwrap()]);
            let mut found = codes(&report);
            found.retain(|c| *c != "policy_mode_testing");
            assert_eq!(found, ["mx_no_public_address"]);
            let enforced = policy.contains("enforce");
            assert_eq!(
                report.verdict,
                if enforced {
                    Verdict::EnforcedRefused
                } else {
                    Verdict::TestingNotReady
                }
            );
            assert_eq!(report.has_critical(), enforced);

            // The address lookup failed: nobody can tell, so neither can we.
            let failed = host(
                "mx.example.com",
                Lookup::Failed(LookupFailure::ServFail),
                vec![],
            );
            let report = run(observations(&policy, vec![failed]));
            assert_eq!(report.verdict, Verdict::Undetermined, "{policy}");
            assert_eq!(report.mx.hosts[0].transport, HostTransport::LookupFailed);
            assert_eq!(report.mx.hosts[0].delivery, Some(Delivery::Unknown));
            assert_eq!(report.mx.hosts[0].deliverable(), None);
            assert!(report.refused_mx.is_empty());
        }
    }

    #[test]
    fn a_refused_mx_decides_even_beside_an_unknown_one() {
        let failed = host(
            "mx.example.com",
            Lookup::Failed(LookupFailure::ServFail),
            vec![],
        );
        let uncovered = host(
            "other.example.net",
            ips(&["192.0.2.26"]),
            vec![probe("other.example.net", "192.0.2.26", SmtpOutcome::Ok)],
        );
        let report = run(observations(POLICY, vec![failed, uncovered]));
        assert_eq!(report.verdict, Verdict::EnforcedRefused);
        assert_eq!(report.refused_mx, ["other.example.net"]);
    }

    #[test]
    fn some_forbidden_addresses_are_a_warning_and_the_rest_decide() {
        let mixed = host(
            "mx.example.com",
            ips(&["10.0.0.25", "192.0.2.25"]),
            vec![
                AddressObservation::NotProbed(
                    "10.0.0.25".parse().unwrap(),
                    NotProbedReason::Forbidden {
                        detail: "private address",
                    },
                ),
                probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
            ],
        );
        let report = run(observations(POLICY, vec![mixed]));
        assert_eq!(report.verdict, Verdict::EnforcedDeliverable);
        assert_eq!(codes(&report), ["target_address_forbidden"]);
        assert_eq!(
            severity_of(&report, Code::TargetAddressForbidden),
            Some(Severity::Warning)
        );
        assert_eq!(report.mx.hosts[0].not_probed.len(), 1);
    }

    #[test]
    fn probing_off_judges_coverage_only() {
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.hosts[0].addresses = None;
        obs.hosts[0].probes.clear();
        let settings = JudgeSettings {
            probe_smtp: false,
            ..settings()
        };
        let report = judge(obs, &settings, NOW);
        assert_eq!(report.verdict, Verdict::EnforcedDeliverable);
        assert_eq!(report.mx.hosts[0].transport, HostTransport::NotProbed);
        assert_eq!(report.mx.hosts[0].starttls(), None);
        assert_eq!(codes(&report), Vec::<&str>::new());
    }

    #[test]
    fn deadline_keeps_addresses_and_says_which_were_abandoned() {
        let abandoned = host(
            "mx.example.com",
            ips(&["192.0.2.25", "192.0.2.26"]),
            vec![
                probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                AddressObservation::NotProbed(
                    "192.0.2.26".parse().unwrap(),
                    NotProbedReason::Abandoned,
                ),
            ],
        );
        let report = run(observations(POLICY, vec![abandoned]));
        assert_eq!(report.verdict, Verdict::Undetermined);
        let mx = &report.mx.hosts[0];
        assert_eq!(mx.addresses.len(), 2);
        assert_eq!(mx.probes.len(), 1);
        assert_eq!(mx.not_probed[0].reason, NotProbedReason::Abandoned);
        assert_eq!(mx.transport, HostTransport::TimedOut);
        assert_eq!(codes(&report), ["check_timed_out"]);
        assert_eq!(
            severity_of(&report, Code::CheckTimedOut),
            Some(Severity::Warning)
        );

        let message = &report.findings[0].message;
        assert!(message.contains("192.0.2.26 probe abandoned"), "{message}");

        // Still in line for a politeness slot at the wait limit: said so, with the queue.
        let queued = host(
            "mx.example.com",
            ips(&["192.0.2.25"]),
            vec![AddressObservation::NotProbed(
                "192.0.2.25".parse().unwrap(),
                NotProbedReason::Queued { behind: 40 },
            )],
        );
        let report = run(observations(POLICY, vec![queued]));
        assert_eq!(report.verdict, Verdict::Undetermined);
        let mx = &report.mx.hosts[0];
        assert_eq!(mx.addresses.len(), 1, "the address stays known");
        assert_eq!(mx.transport, HostTransport::TimedOut);
        let message = &report.findings[0].message;
        assert!(
            message.contains("192.0.2.25 still waiting for a politeness slot, behind 40 probes"),
            "{message}"
        );
        let json = serde_json::to_value(mx).unwrap();
        assert_eq!(json["not_probed"][0]["reason"], "queued");
        assert_eq!(json["not_probed"][0]["behind"], 40);

        let mut timed_out = observations(POLICY, vec![healthy_mx()]);
        timed_out.policy = PolicyObservation::TimedOut;
        let report = run(timed_out);
        assert_eq!(report.verdict, Verdict::Undetermined);
        assert_eq!(report.policy.status, PolicyStatus::Unavailable);
        assert_eq!(codes(&report), ["check_timed_out"]);
    }

    #[test]
    fn expired_leaf_is_one_fault_at_the_policy_and_at_the_mx() {
        // As the chain judgement reports an expired leaf whose intermediate begins later (see
        // stage::cert): the leaf's time fault, and the chain's time fault folded into it.
        let expired = CertVerdict {
            trusted: false,
            name_matches: true,
            time_valid: false,
            first_error: Some(CertFault::Expired),
            trust_error: Some(CertFault::NotYetValid),
            detail: None,
        };
        let mx = host(
            "mx.example.com",
            ips(&["192.0.2.25"]),
            vec![with_cert(
                probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                NOW - 3 * DAY,
                expired,
            )],
        );
        let report = run(observations(POLICY, vec![mx]));
        assert_eq!(codes(&report), ["mx_cert_expired"]);
        assert_eq!(
            report.findings[0].message,
            "the certificate of mx.example.com expired on 2027-01-12 (3 days ago)"
        );
        assert_eq!(report.verdict, Verdict::EnforcedRefused);
        assert_eq!(report.mx.hosts[0].transport, HostTransport::CertInvalid);
    }

    #[test]
    fn expiry_warning_window_is_exact_not_whole_days() {
        let expiring = |not_after: i64, window: Duration| {
            let mx = host(
                "mx.example.com",
                ips(&["192.0.2.25"]),
                vec![with_cert(
                    probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                    not_after,
                    valid_verdict(),
                )],
            );
            let settings = JudgeSettings {
                cert_warning: window,
                ..settings()
            };
            judge(observations(POLICY, vec![mx]), &settings, NOW)
        };
        let hours = |h: u64| Duration::from_secs(h * 3_600);
        // 30 hours left: inside a 36 h window, outside a 1 d window.
        assert_eq!(
            codes(&expiring(NOW + 30 * 3_600, hours(36))),
            ["mx_cert_expiring"]
        );
        assert_eq!(
            codes(&expiring(NOW + 30 * 3_600, hours(24))),
            Vec::<&str>::new()
        );
        let report = expiring(NOW + 5 * 3_600, hours(36));
        assert!(
            report.findings[0].message.ends_with("in 5 hours"),
            "{}",
            report.findings[0].message
        );
    }

    #[test]
    fn gzip_encoded_valid_policy_is_used_with_a_warning() {
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        if let PolicyObservation::Fetched(fetch) = &mut obs.policy {
            fetch.content_encoding = Some("gzip".into());
        }
        let report = run(obs);
        assert_eq!(report.verdict, Verdict::EnforcedDeliverable);
        assert_eq!(codes(&report), ["policy_content_encoding"]);
        assert_eq!(
            severity_of(&report, Code::PolicyContentEncoding),
            Some(Severity::Warning)
        );
    }

    #[test]
    fn gzip_bomb_is_too_large_not_garbage() {
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        if let PolicyObservation::Fetched(fetch) = &mut obs.policy {
            fetch.content_encoding = Some("gzip".into());
            fetch.outcome = FetchOutcome::TooLarge;
            fetch.body = None;
        }
        let report = run(obs);
        assert_eq!(report.verdict, Verdict::NoPolicy);
        assert_eq!(codes(&report), ["policy_too_large"]);
    }

    #[test]
    fn cname_loop_on_the_record_is_a_lookup_failure() {
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.record = Lookup::Failed(LookupFailure::CnameLoop);
        let report = run(obs);
        assert_eq!(report.verdict, Verdict::Undetermined);
        assert_eq!(report.record.status, RecordStatus::LookupFailed);
        assert_eq!(codes(&report), ["sts_record_lookup_failed"]);
        assert!(
            report.findings[0].message.contains("loops"),
            "{}",
            report.findings[0].message
        );
    }

    #[test]
    fn many_unused_patterns_are_one_finding() {
        let mut policy = POLICY.to_string();
        for i in 0..5_900 {
            policy.push_str(&format!("mx: unused{i}.example.org\n"));
        }
        let report = run(observations(&policy, vec![healthy_mx()]));
        assert_eq!(report.verdict, Verdict::EnforcedDeliverable);
        assert_eq!(codes(&report), ["mx_pattern_unused"]);
        let message = &report.findings[0].message;
        assert!(
            message.starts_with("5900 policy patterns match none"),
            "{message}"
        );
        assert!(message.ends_with(" and 5890 more"), "{message}");
        assert!(message.len() < 600, "{} bytes", message.len());
        // One unused pattern keeps its own wording.
        let one = format!("{POLICY}mx: old.example.org\n");
        let report = run(observations(&one, vec![healthy_mx()]));
        assert_eq!(
            report.findings[0].message,
            "the policy pattern mx: old.example.org matches none of the domain's MX hosts"
        );
    }

    #[test]
    fn findings_are_sorted_most_severe_first_also_after_drift() {
        let uncovered = host(
            "other.example.net",
            ips(&["192.0.2.26"]),
            vec![probe("other.example.net", "192.0.2.26", SmtpOutcome::Ok)],
        );
        let mut obs = observations(&testing(POLICY), vec![healthy_mx(), uncovered]);
        obs.tlsrpt = Lookup::NxDomain;
        let mut report = run(obs);
        // A critical finding found later (id drift) goes to the front, not the end.
        report.add_finding(Finding::new(Code::PolicyIdStale, "stale"));
        let severities: Vec<Severity> = report.findings.iter().map(|f| f.severity).collect();
        let mut sorted = severities.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(severities, sorted);
        assert_eq!(report.findings[0].code, Code::PolicyIdStale);
        assert_eq!(
            codes(&report),
            [
                "policy_id_stale",
                "mx_not_covered",
                "policy_mode_testing",
                "tlsrpt_missing"
            ]
        );
    }

    #[test]
    fn no_mx_null_mx_and_failed_mx_lookup() {
        let mut obs = observations(POLICY, vec![]);
        obs.mx = Lookup::NoData;
        let report = run(obs);
        assert_eq!(report.mx.status, MxStatus::Missing);
        assert_eq!(codes(&report), ["mx_missing"]);
        let mut obs = observations(POLICY, vec![]);
        obs.mx = Lookup::Found(MxAnswer::NullMx);
        assert_eq!(codes(&run(obs)), ["mx_null"]);
        let mut obs = observations(POLICY, vec![]);
        obs.mx = Lookup::Failed(LookupFailure::Timeout);
        let report = run(obs);
        assert_eq!(report.verdict, Verdict::Undetermined);
        assert_eq!(codes(&report), ["mx_lookup_failed"]);
    }

    #[test]
    fn unresolvable_and_unadvertised_policy_hosts() {
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.policy = PolicyObservation::Unresolved(Lookup::NxDomain);
        let report = run(obs);
        assert_eq!(report.verdict, Verdict::NoPolicy);
        assert_eq!(codes(&report), ["policy_host_unresolvable"]);
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.policy = PolicyObservation::Unresolved(Lookup::Failed(LookupFailure::Refused));
        assert_eq!(codes(&run(obs)), ["policy_host_lookup_failed"]);
        // No record: a usable policy is worth a warning; an unusable one nothing.
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.record = Lookup::NxDomain;
        let report = run(obs);
        assert_eq!(
            codes(&report),
            ["sts_record_missing", "policy_without_record"]
        );
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.record = Lookup::NxDomain;
        obs.policy = PolicyObservation::Unresolved(Lookup::NxDomain);
        let report = run(obs);
        assert_eq!(report.policy.status, PolicyStatus::NotFetched);
        assert_eq!(codes(&report), ["sts_record_missing"]);
    }

    #[test]
    fn equal_findings_on_every_address_merge_per_host() {
        let both = host(
            "mx.example.com",
            ips(&["192.0.2.25", "192.0.2.26"]),
            vec![
                with_cert(
                    probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                    NOW + 3 * DAY,
                    valid_verdict(),
                ),
                with_cert(
                    probe("mx.example.com", "192.0.2.26", SmtpOutcome::Ok),
                    NOW + 3 * DAY,
                    valid_verdict(),
                ),
            ],
        );
        let report = run(observations(POLICY, vec![both]));
        assert_eq!(codes(&report), ["mx_cert_expiring"]);
        assert_eq!(report.findings[0].address, None);
        let one = host(
            "mx.example.com",
            ips(&["192.0.2.25", "192.0.2.26"]),
            vec![
                probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                probe("mx.example.com", "192.0.2.26", SmtpOutcome::ConnectRefused),
            ],
        );
        let report = run(observations(POLICY, vec![one]));
        assert_eq!(codes(&report), ["mx_connect_refused"]);
        assert_eq!(
            report.findings[0].address,
            Some("192.0.2.26".parse().unwrap())
        );
        assert_eq!(report.mx.hosts[0].transport, HostTransport::StarttlsFailed);
    }

    #[test]
    fn too_many_mx_and_addresses_are_reported() {
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.mx = Lookup::Found(MxAnswer::Hosts(
            (0..25)
                .map(|i| MxRecord {
                    preference: i,
                    exchange: format!("mx{i}.example.com"),
                })
                .collect(),
        ));
        let limited = host(
            "mx.example.com",
            ips(&["192.0.2.25", "192.0.2.26"]),
            vec![
                probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                AddressObservation::NotProbed(
                    "192.0.2.26".parse().unwrap(),
                    NotProbedReason::OverLimit,
                ),
            ],
        );
        obs.hosts = vec![limited];
        let report = run(obs);
        let too_many: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| f.code == Code::MxTooMany)
            .map(|f| f.message.as_ref())
            .collect();
        assert_eq!(
            too_many,
            [
                "the domain publishes 25 MX records; only the 20 most preferred are checked",
                "the MX host mx.example.com has 2 addresses; only the first 1 are probed",
            ]
        );
        assert_eq!(report.mx.hosts[0].transport, HostTransport::Valid);
    }

    /// Every finding code the judge can emit is emitted by one of the tests above, for real:
    /// this runs a scenario per code and collects what the judge said. Codes made elsewhere
    /// (id drift, expectations) are produced by those stages here as well.
    #[test]
    fn every_code_is_emitted_by_some_stage() {
        let mut seen: BTreeSet<&'static str> = BTreeSet::new();
        let mut add = |report: &DomainReport| {
            seen.extend(report.findings.iter().map(|f| f.code.as_str()));
        };
        let mx_with = |outcome: SmtpOutcome| {
            host(
                "mx.example.com",
                ips(&["192.0.2.25"]),
                vec![probe("mx.example.com", "192.0.2.25", outcome)],
            )
        };
        use crate::probe::smtp::SmtpPhase;
        use crate::probe::tls::TlsFailureKind;
        for outcome in [
            SmtpOutcome::ConnectRefused,
            SmtpOutcome::ConnectTimeout,
            SmtpOutcome::ConnectFailed {
                detail: "unreachable".into(),
            },
            SmtpOutcome::Timeout {
                phase: SmtpPhase::Greeting,
            },
            SmtpOutcome::GreetingRejected {
                code: 554,
                text: "no".into(),
            },
            SmtpOutcome::ProtocolError {
                detail: "garbage".into(),
            },
            SmtpOutcome::StarttlsNotOffered,
            SmtpOutcome::StarttlsRefused {
                code: 454,
                text: "no".into(),
            },
            SmtpOutcome::StarttlsInjection,
            SmtpOutcome::Tls {
                failure: TlsFailureKind::VersionTooOld,
                detail: "old".into(),
            },
            SmtpOutcome::Tls {
                failure: TlsFailureKind::NoCommonVersion,
                detail: "none".into(),
            },
            SmtpOutcome::Tls {
                failure: TlsFailureKind::HandshakeFailed,
                detail: "reset".into(),
            },
        ] {
            add(&run(observations(POLICY, vec![mx_with(outcome)])));
        }
        let mut silent = mx_with(SmtpOutcome::ConnectTimeout);
        if let Some(AddressObservation::Probed(probe)) = silent.probes.first_mut() {
            let mut inferred = (**probe).clone();
            inferred.inferred = Some(crate::probe::smtp::Inference {
                from_probes: 3,
                within_seconds: 30.0,
                since: NOW - 60,
            });
            *probe = Arc::new(inferred);
        }
        add(&run(observations(POLICY, vec![silent])));
        let cert = |first: CertFault, trusted: bool, name: bool, time: bool| CertVerdict {
            trusted,
            name_matches: name,
            time_valid: time,
            first_error: Some(first),
            trust_error: (!trusted).then_some(first),
            detail: None,
        };
        let faults = [
            (cert(CertFault::Expired, true, true, false), NOW - DAY),
            (
                cert(CertFault::NotYetValid, true, true, false),
                NOW + 60 * DAY,
            ),
            (
                cert(CertFault::NameMismatch, true, false, true),
                NOW + 60 * DAY,
            ),
            (
                cert(CertFault::UnknownIssuer, false, true, true),
                NOW + 60 * DAY,
            ),
            (valid_verdict(), NOW + DAY),
        ];
        for (verdict, not_after) in faults {
            let mut mx = mx_with(SmtpOutcome::Ok);
            mx.probes = mx
                .probes
                .into_iter()
                .map(|p| with_cert(p, not_after, verdict.clone()))
                .collect();
            let mut obs = observations(POLICY, vec![mx]);
            if let PolicyObservation::Fetched(fetch) = &mut obs.policy {
                fetch.tls = Some(tls(&fetch.host, not_after, verdict.clone()));
                if !verdict.time_valid && not_after > NOW {
                    if let Some(leaf) = fetch.tls.as_mut().and_then(|t| t.leaf.as_mut()) {
                        leaf.not_before = NOW + DAY;
                    }
                }
            }
            if !verdict.time_valid && not_after > NOW {
                for p in &mut obs.hosts[0].probes {
                    if let AddressObservation::Probed(probe) = p {
                        let mut probe = (**probe).clone();
                        if let Some(leaf) = probe.tls.as_mut().and_then(|t| t.leaf.as_mut()) {
                            leaf.not_before = NOW + DAY;
                        }
                        *p = AddressObservation::Probed(Arc::new(probe));
                    }
                }
            }
            add(&run(obs));
        }
        for outcome in [
            FetchOutcome::AddressForbidden {
                reason: "127.0.0.1 (loopback)".into(),
            },
            FetchOutcome::ConnectRefused,
            FetchOutcome::ConnectTimeout,
            FetchOutcome::ConnectFailed {
                detail: "unreachable".into(),
            },
            FetchOutcome::Tls {
                failure: TlsFailureKind::HandshakeFailed,
                detail: "x".into(),
            },
            FetchOutcome::Redirect,
            FetchOutcome::HttpStatus,
            FetchOutcome::TooLarge,
            FetchOutcome::Timeout {
                phase: crate::probe::https::FetchPhase::Body,
            },
            FetchOutcome::HttpError {
                detail: "bad".into(),
            },
        ] {
            let mut obs = observations(POLICY, vec![healthy_mx()]);
            if let PolicyObservation::Fetched(fetch) = &mut obs.policy {
                fetch.outcome = outcome;
            }
            add(&run(obs));
        }
        // Dual stack: IPv4 works, IPv6 does not, at an MX and at the policy host.
        let dual = host(
            "mx.example.com",
            ips(&["192.0.2.25", "2001:db8::25"]),
            vec![
                probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                probe(
                    "mx.example.com",
                    "2001:db8::25",
                    SmtpOutcome::ConnectRefused,
                ),
            ],
        );
        let mut obs = observations(POLICY, vec![dual]);
        let mut v6 = fetch(POLICY);
        v6.address = Some("2001:db8::1".parse().unwrap());
        v6.outcome = FetchOutcome::ConnectRefused;
        v6.body = None;
        obs.policy_other_family = Some(Box::new(v6));
        let report = run(obs);
        assert!(report.policy.fetch_other_family.is_some());
        add(&report);
        // An IPv6-only MX seen from an exporter without IPv6.
        let unreachable = host(
            "mx.example.com",
            ips(&["2001:db8::25"]),
            vec![AddressObservation::NotProbed(
                "2001:db8::25".parse().unwrap(),
                NotProbedReason::NoRoute,
            )],
        );
        add(&run(observations(POLICY, vec![unreachable])));
        // Another file over IPv6.
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        let mut v6 = fetch(&POLICY.replace("604800", "86400"));
        v6.address = Some("2001:db8::1".parse().unwrap());
        obs.policy_other_family = Some(Box::new(v6));
        let report = run(obs);
        assert!(
            report
                .policy
                .fetch_other_family
                .as_ref()
                .is_some_and(|f| f.body.is_none()),
            "the other body is dropped once compared"
        );
        add(&report);
        // The other way round: IPv4 fails at the policy host, IPv6 serves the policy.
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        if let PolicyObservation::Fetched(fetch) = &mut obs.policy {
            fetch.outcome = FetchOutcome::ConnectRefused;
            fetch.body = None;
        }
        let mut v6 = fetch(POLICY);
        v6.address = Some("2001:db8::1".parse().unwrap());
        obs.policy_other_family = Some(Box::new(v6));
        let report = run(obs);
        assert!(report.policy.policy.is_some(), "{:#?}", report.findings);
        add(&report);
        for lookup in [Lookup::NxDomain, Lookup::Failed(LookupFailure::Refused)] {
            let mut obs = observations(POLICY, vec![healthy_mx()]);
            obs.policy = PolicyObservation::Unresolved(lookup);
            add(&run(obs));
        }
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        if let PolicyObservation::Fetched(fetch) = &mut obs.policy {
            fetch.content_type = Some("text/html".into());
            fetch.content_encoding = Some("gzip".into());
        }
        add(&run(obs));
        // Policy bodies: every parse finding, each policy in its own check.
        for body in [
            "\u{feff}version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n",
            " version: STSv1\n",
            "version: STSv1\nmode enforce\n",
            "version: STSv1\r\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n",
            "mode: enforce\nmx: mx.example.com\nmax_age: 604800\n",
            "version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n",
            "version: STSv1\nmx: mx.example.com\nmax_age: 604800\n",
            "version: STSv1\nmode: enfurce\nmx: mx.example.com\nmax_age: 604800\n",
            "version: STSv1\nmode: enforce\nmx: mx.example.com\n",
            "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: soon\n",
            "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 60\n",
            "version: STSv1\nmode: enforce\nmax_age: 604800\n",
            "version: STSv1\nmode: enforce\nmx: mx.*.example.com\nmax_age: 604800\n",
            "version: STSv1\nmode: enforce\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n",
            "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\ncolour: blue\n",
            "version: STSv1\nmode: testing\nmx: mx.example.com\nmx: old.example.com\nmax_age: 604800\n",
            "version: STSv1\nmode: none\nmax_age: 604800\n",
        ] {
            add(&run(observations(body, vec![healthy_mx()])));
        }
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        if let PolicyObservation::Fetched(fetch) = &mut obs.policy {
            fetch.body = Some(vec![0xff, 0xfe, 0x00]);
        }
        add(&run(obs));
        // Records.
        for records in [
            vec!["v=STSv1; id=1", "v=STSv1; id=2"],
            vec!["v=STSv1; id=not valid!"],
            vec!["v=STSv1 ; id=1"],
            vec!["v=STSv1; id=1; id=2"],
            vec!["v=STSv1; id=1; ext=yes"],
        ] {
            let mut obs = observations(POLICY, vec![healthy_mx()]);
            obs.record = txt(&records);
            add(&run(obs));
        }
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.record = Lookup::Found(TxtAnswer {
            records: vec!["v=STSv1; id=1".into()],
            cname_chain: vec!["_mta-sts.provider.example".into()],
        });
        add(&run(obs));
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.record = Lookup::NxDomain;
        add(&run(obs));
        let mut obs = observations(POLICY, vec![healthy_mx()]);
        obs.record = Lookup::Failed(LookupFailure::ServFail);
        add(&run(obs));
        // TLS-RPT.
        for tlsrpt in [
            Lookup::NxDomain,
            Lookup::Failed(LookupFailure::Timeout),
            txt(&[
                "v=TLSRPTv1; rua=mailto:a@example.com",
                "v=TLSRPTv1; rua=mailto:b@example.com",
            ]),
            txt(&["v=TLSRPTv1; rua=ftp://example.com"]),
        ] {
            let mut obs = observations(POLICY, vec![healthy_mx()]);
            obs.tlsrpt = tlsrpt;
            add(&run(obs));
        }
        // MX records, addresses and the deadline (scenarios of the tests above).
        for (mx, hosts) in [
            (Lookup::NoData, vec![]),
            (Lookup::NxDomain, vec![]),
            (Lookup::Found(MxAnswer::NullMx), vec![]),
            (Lookup::Failed(LookupFailure::Timeout), vec![]),
        ] {
            let mut obs = observations(POLICY, hosts);
            obs.mx = mx;
            add(&run(obs));
        }
        for hosts in [
            vec![host("mx.example.com", Lookup::NxDomain, vec![])],
            vec![host(
                "mx.example.com",
                Lookup::Failed(LookupFailure::ServFail),
                vec![],
            )],
            vec![host(
                "mx.example.com",
                ips(&["10.0.0.1", "192.0.2.25", "192.0.2.26"]),
                vec![
                    AddressObservation::NotProbed(
                        "10.0.0.1".parse().unwrap(),
                        NotProbedReason::Forbidden {
                            detail: "private address",
                        },
                    ),
                    probe("mx.example.com", "192.0.2.25", SmtpOutcome::Ok),
                    AddressObservation::NotProbed(
                        "192.0.2.26".parse().unwrap(),
                        NotProbedReason::OverLimit,
                    ),
                ],
            )],
            vec![host(
                "mx.example.com",
                ips(&["10.0.0.1"]),
                vec![AddressObservation::NotProbed(
                    "10.0.0.1".parse().unwrap(),
                    NotProbedReason::Forbidden {
                        detail: "private address",
                    },
                )],
            )],
            vec![host(
                "other.example.net",
                ips(&["192.0.2.25"]),
                vec![AddressObservation::NotProbed(
                    "192.0.2.25".parse().unwrap(),
                    NotProbedReason::Abandoned,
                )],
            )],
        ] {
            add(&run(observations(
                &format!("{POLICY}mx: unused.example.com\n"),
                hosts,
            )));
        }
        // Expectations and id drift are judged by their own stages, after the check.
        let report = run(observations(POLICY, vec![healthy_mx()]));
        let expect = crate::stage::expect::Expectations {
            mode: Some(Mode::Testing),
            mx: Some(vec!["other.example.com".into()]),
            min_max_age: Some(31_557_600),
        };
        for finding in crate::stage::expect::check_expectations(&report, &expect) {
            seen.insert(finding.code.as_str());
        }
        let mut drift = crate::drift::DriftState::default();
        let mut observe = |id: &str, body: &str, at: i64| {
            let mut report = run(observations(body, vec![healthy_mx()]));
            report.record.id = Some(id.into());
            drift.observe(&mut report, at);
            report
        };
        let changed = POLICY.replace("max_age: 604800", "max_age: 1209600");
        for report in [
            observe("1", POLICY, NOW),
            observe("2", POLICY, NOW + 1),
            observe("2", &changed, NOW + 2),
        ] {
            seen.extend(report.findings.iter().map(|f| f.code.as_str()));
        }
        seen.extend(crate::tlsrpt::judge::scenario_codes());
        // The policy-cache model: a removed record whose last policy (enforce) does not cover
        // the MX.
        let mut removed = run(observations(POLICY, vec![healthy_mx()]));
        removed.record.status = RecordStatus::Missing;
        removed.record.id = None;
        let last = crate::stage::cache::Served {
            id: "1".into(),
            mode: Mode::Enforce,
            max_age: 604_800,
            mx: vec!["other.example.com".into()],
            first_seen: NOW - 30 * DAY,
            last_seen: NOW - DAY,
        };
        for finding in
            crate::stage::cache::cached_policy_risks(&removed, Some(&last), &[], NOW).findings
        {
            seen.insert(finding.code.as_str());
        }
        let missing: Vec<&str> = Code::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|c| !seen.contains(c))
            .collect();
        assert_eq!(missing, Vec::<&str>::new(), "codes no stage emitted");
    }
}
