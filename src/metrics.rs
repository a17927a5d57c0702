//! Renders the latest reports as Prometheus metrics at scrape time (prometheus-client
//! `Collector`), so a domain removed from the configuration vanishes at once. Facts about a
//! shared MX host are exported once per MX, not once per domain. The default families are held
//! to a series budget (a healthy enforce domain with one MX: 8 series); the `detailed` set and
//! any family can be switched on or off by name ([`Selection`]). The contract is
//! `docs/metrics.md`; tests keep the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::finding::Code;
use crate::probe::cache::ProbeCache;
use crate::probe::smtp::SmtpOutcome;
use crate::report::{
    DomainReport, Family, MxHostReport, PolicyStatus, RecordStatus, TlsRptStatus, Verdict,
};
use crate::store::{CheckResult, Store};

/// OpenMetrics text, chosen when the scraper's Accept header asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prometheus text format 0.0.4, the default.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Which set a family belongs to: exported unless excluded (`Default`), or only when asked for
/// (`Detailed`: per-state series that help small fleets and cost large ones dearly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    Default,
    Detailed,
}

impl Set {
    pub fn as_str(self) -> &'static str {
        match self {
            Set::Default => "default",
            Set::Detailed => "detailed",
        }
    }
}

/// Every metric family: name as exposed (counters without `_total`), type, set, labels, help.
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricType,
    pub set: Set,
    pub labels: &'static str,
    pub help: &'static str,
}

const CACHED: &str = " (from the last scheduled check)";

macro_rules! defs {
    ($($id:ident = $name:literal, $kind:ident, $set:ident, $labels:literal, $help:literal;)+) => {
        $(pub const $id: MetricDef = MetricDef { name: $name, kind: MetricType::$kind, set: Set::$set, labels: $labels, help: $help };)+
        /// Every family, in exposition order.
        pub const METRICS: &[&MetricDef] = &[$(&$id,)+];
    };
}

defs! {
    DOMAIN_INFO = "mta_sts_domain_info", Gauge, Default, "domain, configured labels", "1 per configured domain, with its configured labels (join on domain)";
    DOMAIN_VERDICT = "mta_sts_domain_verdict", Gauge, Default, "domain, verdict", "1, labelled with the verdict of the domain's last check: what an RFC 8461 sender does today";
    LAST_CHECK = "mta_sts_last_check_timestamp_seconds", Gauge, Default, "domain", "Unix time the last check of the domain ended";
    POLICY_MODE = "mta_sts_policy_mode", Gauge, Default, "domain, mode", "1, labelled with the mode of the domain's valid policy (absent without one)";
    POLICY_MAX_AGE = "mta_sts_policy_max_age_seconds", Gauge, Default, "domain", "max_age of the valid policy";
    POLICY_CERT_NOT_AFTER = "mta_sts_policy_cert_not_after_timestamp_seconds", Gauge, Default, "domain", "Expiry (Unix time) of the mta-sts host's leaf certificate; exported also when expired or invalid";
    MX_COVERED = "mta_sts_mx_covered", Gauge, Default, "domain, mx", "1 if the domain's policy covers this MX, 0 if not (the domain-to-MX relation)";
    CACHED_POLICY_RISK_UNTIL = "mta_sts_cached_policy_risk_until_timestamp_seconds", Gauge, Default, "domain", "Unix time until which senders may still apply an earlier cached policy that refuses an MX of the domain, or a removed one (absent without such a risk; findings mx_refused_by_cached_policy, policy_removed_without_mode_none)";
    SENDER_ACTION = "mta_sts_sender_action", Gauge, Default, "domain, profile, action", "1 for each sender profile whose action (deliver, defer, unknown) differs from the RFC 8461 reference sender's; absent when all agree, as on a healthy domain (profiles: docs/senders.md)";
    FINDING = "mta_sts_finding", Gauge, Default, "domain, code, severity", "1 per finding code present in the domain's last check (codes: docs/findings.md)";
    RECORD_VALID = "mta_sts_record_valid", Gauge, Detailed, "domain", "1 if exactly one valid _mta-sts TXT record was found";
    POLICY_VALID = "mta_sts_policy_valid", Gauge, Detailed, "domain", "1 if the policy was fetched correctly (200, text/plain, valid certificate) and is valid";
    POLICY_CERT_VALID = "mta_sts_policy_cert_valid", Gauge, Detailed, "domain", "1 if the mta-sts host's certificate is trusted, valid for the name and in date";
    ENFORCE_READY = "mta_sts_enforce_ready", Gauge, Detailed, "domain", "1 if a sender enforcing the domain's valid policy would deliver to every MX; absent while the verdict is undetermined";
    TLSRPT_VALID = "mta_sts_tlsrpt_valid", Gauge, Detailed, "domain", "1 if exactly one valid TLS-RPT record was found";
    POLICY_ID_STALE = "mta_sts_policy_id_stale", Gauge, Detailed, "domain", "1 while the policy has changed without a new id in the _mta-sts record (stays until the id changes)";
    POLICY_CHANGES = "mta_sts_policy_changes", Counter, Detailed, "domain", "Policy body or id changes observed since the exporter started remembering the domain (persisted in the state file)";
    MX_CERT_NOT_AFTER = "mta_sts_mx_cert_not_after_timestamp_seconds", Gauge, Default, "mx", "Earliest leaf certificate expiry (Unix time) across the MX's addresses of every family; exported also when expired or invalid";
    MX_FINDING = "mta_sts_mx_finding", Gauge, Default, "mx, code, family", "1 per transport or certificate finding code of the MX in its last probe, with the address family (ipv4, ipv6) of the addresses it holds at; no family label for codes about the host as a whole (codes: docs/findings.md)";
    MX_STARTTLS = "mta_sts_mx_starttls", Gauge, Detailed, "mx, family", "1 if STARTTLS and the TLS handshake succeed on every probed address of the MX in this address family (ipv4, ipv6; no family label when the MX has no address)";
    MX_PROBE_OUTCOME = "mta_sts_mx_probe_outcome", Gauge, Detailed, "mx, outcome, family", "1 for the outcome of the MX's SMTP probe in this address family (the first failing address's, else ok)";
    MX_CERT_VALID = "mta_sts_mx_cert_valid", Gauge, Detailed, "mx, family", "1 if the certificate is trusted, valid for the MX name and in date on every probed address of this address family";
    MX_TLS_VERSION = "mta_sts_mx_tls_version_info", Gauge, Detailed, "mx, version, family", "1 per TLS version negotiated with the MX, per address family";
    TLSRPT_SESSIONS = "mta_sts_tlsrpt_sessions", Counter, Default, "domain, policy_type, result", "Sessions senders reported in accepted TLS-RPT reports, by policy type and result (success or the RFC 8460 result type); persisted in the state file";
    TLSRPT_REPORTS = "mta_sts_tlsrpt_reports", Counter, Default, "domain, reporter", "TLS-RPT reports accepted, by reporting organization (beyond tlsrpt.top_reporters: other)";
    TLSRPT_LAST_REPORT = "mta_sts_tlsrpt_last_report_timestamp_seconds", Gauge, Default, "domain, reporter", "End (Unix time) of the date range of the reporter's newest accepted report";
    TLSRPT_REJECTED = "mta_sts_tlsrpt_rejected_reports", Counter, Default, "reason", "TLS-RPT reports (or bodies, mails) refused, by reason";
    BUILD_INFO = "mta_sts_exporter_build_info", Gauge, Default, "version, revision", "1, labelled with the exporter's version and source revision";
    DOMAINS = "mta_sts_exporter_domains", Gauge, Default, "", "Domains configured for this exporter (this shard)";
    MX_HOSTS = "mta_sts_exporter_mx_hosts", Gauge, Default, "", "MX hosts with at least one address probed over SMTP in the latest checks of this exporter's domains";
    CHECKS = "mta_sts_exporter_checks", Counter, Default, "result", "Checks completed, by result: ok (no critical finding), critical, undetermined (a lookup failed or the check timed out)";
    CHECK_DURATION = "mta_sts_exporter_check_duration_seconds", Histogram, Default, "", "Time taken by one domain check";
    CACHE_REQUESTS = "mta_sts_exporter_probe_cache_requests", Counter, Default, "result", "SMTP probe requests by result: hit (shared or in-flight result reused) or miss (probed)";
    UNRESPONSIVE_ADDRESSES = "mta_sts_exporter_unresponsive_addresses", Gauge, Default, "", "MX addresses (with port) taken for unresponsive now after consecutive connect or greeting timeouts: their probes are answered from their state (mx_unresponsive_inferred) while one probe at a time re-tests them";
    STATE_LOADED = "mta_sts_exporter_state_loaded", Gauge, Default, "", "1 if id-drift history was loaded from the state file at start; 0 if it started fresh (no file, unreadable or corrupt: see the log) or no state file is configured";
    STATE_SAVE_ERRORS = "mta_sts_exporter_state_save_errors", Counter, Default, "", "Failed attempts to save the state file (full disk, read-only directory...)";
    STATE_LAST_SAVE = "mta_sts_exporter_state_last_save_success_timestamp_seconds", Gauge, Default, "", "Unix time the state file was last saved";
    RELOAD_OK = "mta_sts_exporter_config_last_reload_successful", Gauge, Default, "", "1 if the last configuration load succeeded";
    RELOAD_TIME = "mta_sts_exporter_config_last_reload_success_timestamp_seconds", Gauge, Default, "", "Unix time of the last successful configuration load";
    BLIND = "mta_sts_exporter_blind", Gauge, Default, "reason", "1 while most recent checks fail the same way on the exporter's side (reason: resolver_failing, resolver_nxdomain, smtp_blocked, https_blocked), so per-domain results say more about the exporter than the domains";
    SOURCE_OK = "mta_sts_exporter_domain_source_last_fetch_successful", Gauge, Default, "source", "1 if the last fetch of the domain source (domain_sources) succeeded: a valid list, or not modified";
    SOURCE_TIME = "mta_sts_exporter_domain_source_last_success_timestamp_seconds", Gauge, Default, "source", "Unix time of the last successful fetch of the domain source (0: none since start; the last good copy is in use)";
}

// A selection is a bit mask over METRICS.
const _: () = assert!(METRICS.len() <= 64);

/// Finding codes that are facts about an MX host (its addresses, SMTP dialog, TLS and
/// certificate), the same for every domain that uses it: exported per MX by
/// `mta_sts_mx_finding`. Coverage (`mx_not_covered`) depends on each domain's policy and stays
/// per domain.
pub const MX_FINDING_CODES: &[Code] = &[
    Code::MxAddressLookupFailed,
    Code::MxNoAddress,
    Code::TargetAddressForbidden,
    Code::MxConnectRefused,
    Code::MxConnectTimeout,
    Code::MxConnectFailed,
    Code::MxUnresponsiveInferred,
    Code::SmtpGreetingRejected,
    Code::SmtpTimeout,
    Code::SmtpProtocolError,
    Code::StarttlsNotOffered,
    Code::StarttlsRefused,
    Code::StarttlsInjection,
    Code::TlsNoCommonVersion,
    Code::TlsHandshakeFailed,
    Code::TlsVersionTooOld,
    Code::MxCertExpired,
    Code::MxCertExpiring,
    Code::MxCertNotYetValid,
    Code::MxCertNameMismatch,
    Code::MxCertUntrusted,
    Code::MxIpv6Broken,
    Code::MxNoPublicAddress,
    Code::UnreachableFromExporter,
];

/// Names of the sets [`Selection::parse`] accepts besides family names.
pub const SET_NAMES: &[&str] = &["default", "detailed", "all"];

/// Which families `/metrics` exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection(u64);

impl Default for Selection {
    /// The default set.
    fn default() -> Selection {
        Selection::of_set(Set::Default)
    }
}

impl Selection {
    /// Every family.
    pub fn all() -> Selection {
        Selection(mask_where(|_| true))
    }

    /// The families of one set.
    pub fn of_set(set: Set) -> Selection {
        Selection(mask_where(|d| d.set == set))
    }

    /// The default set, plus every name in `include`, minus every name in `exclude` (exclude
    /// wins). A name is a family as documented (`mta_sts_mx_starttls`; counters with or without
    /// `_total`) or a set: `default`, `detailed`, `all`.
    pub fn parse<'a>(
        include: impl IntoIterator<Item = &'a str>,
        exclude: impl IntoIterator<Item = &'a str>,
    ) -> Result<Selection, UnknownFamily> {
        let mut mask = Selection::default().0;
        for name in include {
            mask |= resolve(name)?;
        }
        for name in exclude {
            mask &= !resolve(name)?;
        }
        Ok(Selection(mask))
    }

    pub fn contains(self, def: &MetricDef) -> bool {
        METRICS
            .iter()
            .position(|d| d.name == def.name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The selected families, in exposition order.
    pub fn families(self) -> impl Iterator<Item = &'static MetricDef> {
        METRICS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, d)| *d)
    }
}

fn mask_where(f: impl Fn(&MetricDef) -> bool) -> u64 {
    METRICS
        .iter()
        .enumerate()
        .filter(|(_, d)| f(d))
        .fold(0, |mask, (i, _)| mask | (1 << i))
}

fn resolve(name: &str) -> Result<u64, UnknownFamily> {
    match name {
        "default" => return Ok(Selection::of_set(Set::Default).0),
        "detailed" => return Ok(Selection::of_set(Set::Detailed).0),
        "all" => return Ok(Selection::all().0),
        _ => {}
    }
    METRICS
        .iter()
        .position(|d| d.name == name || sample_name(d) == name)
        .map(|i| 1 << i)
        .ok_or_else(|| UnknownFamily {
            name: name.to_string(),
            suggestion: closest(name),
        })
}

/// A name in a metric selection that is neither a family nor a set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown metric family {name:?}{}; use a family name from docs/metrics.md or a set ({})",
    suggestion.map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default(),
    SET_NAMES.join(", ")
)]
pub struct UnknownFamily {
    pub name: String,
    pub suggestion: Option<&'static str>,
}

/// The known name nearest to `name` in edit distance, if it is near enough to be a typo.
fn closest(name: &str) -> Option<&'static str> {
    // A name cut short (a suffix such as `_info` or `_seconds` forgotten).
    if name.len() >= 8 {
        if let Some(longer) = METRICS
            .iter()
            .map(|d| d.name)
            .filter(|c| c.starts_with(name))
            .min_by_key(|c| c.len())
        {
            return Some(longer);
        }
    }
    let candidates = METRICS
        .iter()
        .map(|d| d.name)
        .chain(SET_NAMES.iter().copied());
    let (best, distance) = candidates
        .map(|c| (c, edit_distance(name, c)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= 3.max(name.len() / 5)).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The selection a running exporter uses, shared with the reload path (which swaps it when
/// the configuration changes).
#[derive(Clone, Debug)]
pub struct SelectionHandle(Arc<AtomicU64>);

impl Default for SelectionHandle {
    fn default() -> SelectionHandle {
        SelectionHandle::new(Selection::default())
    }
}

impl SelectionHandle {
    pub fn new(selection: Selection) -> SelectionHandle {
        SelectionHandle(Arc::new(AtomicU64::new(selection.0)))
    }

    pub fn get(&self) -> Selection {
        Selection(self.0.load(Ordering::Relaxed))
    }

    pub fn set(&self, selection: Selection) {
        self.0.store(selection.0, Ordering::Relaxed);
    }
}

/// The exposed name of a family's samples (counters get `_total`).
pub fn sample_name(def: &MetricDef) -> String {
    match def.kind {
        MetricType::Counter => format!("{}_total", def.name),
        _ => def.name.to_string(),
    }
}

/// Version and revision for `mta_sts_exporter_build_info`.
pub fn build_labels() -> [(&'static str, &'static str); 2] {
    [
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "revision",
            option_env!("MTA_STS_EXPORTER_REVISION").unwrap_or("unknown"),
        ),
    ]
}

/// Renders the store at scrape time.
#[derive(Debug)]
pub struct Exposition {
    store: Arc<Store>,
    cache: Option<Arc<ProbeCache>>,
    selection: SelectionHandle,
    tlsrpt: Option<Arc<crate::tlsrpt::ingest::Ingest>>,
    sources: Option<Arc<crate::inventory::SourceStats>>,
}

impl Exposition {
    /// Exports the default set.
    pub fn new(store: Arc<Store>, cache: Option<Arc<ProbeCache>>) -> Exposition {
        Exposition {
            store,
            cache,
            selection: SelectionHandle::default(),
            tlsrpt: None,
            sources: None,
        }
    }

    /// Exports what `selection` holds at each scrape.
    pub fn with_selection(mut self, selection: SelectionHandle) -> Exposition {
        self.selection = selection;
        self
    }

    /// Exports the `mta_sts_tlsrpt_*` families from `ingest`.
    pub fn with_tlsrpt(mut self, ingest: Arc<crate::tlsrpt::ingest::Ingest>) -> Exposition {
        self.tlsrpt = Some(ingest);
        self
    }

    /// Exports how the domain sources' fetches went.
    pub fn with_sources(mut self, sources: Arc<crate::inventory::SourceStats>) -> Exposition {
        self.sources = Some(sources);
        self
    }

    /// A registry holding only this collector.
    pub fn registry(self) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        registry
    }
}

/// Encodes the whole registry as OpenMetrics (`openmetrics`) or Prometheus 0.0.4 text.
pub fn encode(registry: &Registry, openmetrics: bool) -> Result<String, fmt::Error> {
    let mut out = String::new();
    encode_to(&mut out, registry, openmetrics)?;
    Ok(out)
}

/// Encodes into any writer: `/metrics` streams it out in chunks rather than building one
/// string.
pub fn encode_to(
    out: &mut impl fmt::Write,
    registry: &Registry,
    openmetrics: bool,
) -> Result<(), fmt::Error> {
    if openmetrics {
        prometheus_client::encoding::text::encode(out, registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(out, registry)
    }
}

/// MX facts, taken from the most recent report that looked at the MX (borrowed from it).
struct MxFacts<'a> {
    checked_at: i64,
    /// The SMTP probe ran (or found no address): the detailed probe families apply.
    probe_known: bool,
    /// At least one address was probed.
    probed: bool,
    cert_not_after: Option<i64>,
    /// The detailed probe facts per address family of the probed addresses; one entry under
    /// `None` (no `family` label) when no address was probed.
    families: BTreeMap<Option<Family>, FamilyFacts<'a>>,
    /// Finding codes, each with the family of the addresses it holds at (`None`: not tied to
    /// an address, such as `mx_no_address`).
    findings: BTreeSet<(Code, Option<Family>)>,
}

/// What the probes of one MX's addresses of one family showed.
struct FamilyFacts<'a> {
    starttls: bool,
    outcome: &'static str,
    cert_valid: bool,
    versions: BTreeSet<&'a str>,
}

/// One per-MX gauge family, labelled by `mx` only.
fn mx_gauge(
    e: &mut DescriptorEncoder,
    sel: Selection,
    def: &MetricDef,
    facts: &BTreeMap<&str, MxFacts<'_>>,
    value: &dyn Fn(&MxFacts<'_>) -> Option<f64>,
) -> Result<(), fmt::Error> {
    if !sel.contains(def) {
        return Ok(());
    }
    let mut family = e.encode_descriptor(def.name, &help(def), None, def.kind)?;
    for (mx, facts) in facts {
        if let Some(v) = value(facts) {
            family.encode_family(&[("mx", *mx)])?.encode_gauge(&v)?;
        }
    }
    Ok(())
}

/// Where a per-MX finding code's `family` label comes from.
enum FindingFamily {
    /// A fact of the host as a whole (its lookup, its set of addresses): no family.
    Host,
    /// About the host's IPv6 side.
    Ipv6,
    /// Met by a probe: the finding's address, or, when it holds at every probed address (and
    /// so names none), each probed family.
    Probe,
}

fn finding_family(code: Code) -> FindingFamily {
    match code {
        Code::MxAddressLookupFailed
        | Code::MxNoAddress
        | Code::MxNoPublicAddress
        | Code::TargetAddressForbidden
        | Code::UnreachableFromExporter => FindingFamily::Host,
        Code::MxIpv6Broken => FindingFamily::Ipv6,
        _ => FindingFamily::Probe,
    }
}

/// `labels` with `("family", ...)` appended when the fact is tied to one family.
fn with_family<'a, const N: usize>(
    labels: [(&'a str, &'a str); N],
    family: Option<Family>,
) -> Vec<(&'a str, &'a str)> {
    let mut labels = labels.to_vec();
    if let Some(family) = family {
        labels.push(("family", family.as_str()));
    }
    labels
}

type Entries = Vec<(String, crate::store::DomainEntry)>;

fn help(def: &MetricDef) -> String {
    if def.name.starts_with("mta_sts_exporter_") {
        def.help.to_string()
    } else {
        format!("{}{CACHED}", def.help)
    }
}

/// Encodes one per-domain gauge family without copying any label: one pass over the entries.
fn domain_gauge(
    encoder: &mut DescriptorEncoder,
    selection: Selection,
    def: &MetricDef,
    entries: &Entries,
    value: impl Fn(&DomainReport) -> Option<f64>,
) -> Result<(), fmt::Error> {
    if !selection.contains(def) {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(def.name, &help(def), None, def.kind)?;
    for (domain, entry) in entries {
        let Some(report) = &entry.report else {
            continue;
        };
        if let Some(v) = value(report) {
            family
                .encode_family(&[("domain", domain.as_str())])?
                .encode_gauge(&v)?;
        }
    }
    Ok(())
}

/// Encodes a per-domain family with a second label: `series` yields (label value, gauge).
fn domain_gauge2<'a, I>(
    encoder: &mut DescriptorEncoder,
    selection: Selection,
    def: &MetricDef,
    second: &'static str,
    entries: &'a Entries,
    series: impl Fn(&'a DomainReport) -> I,
) -> Result<(), fmt::Error>
where
    I: IntoIterator<Item = (&'a str, f64)>,
{
    if !selection.contains(def) {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(def.name, &help(def), None, def.kind)?;
    for (domain, entry) in entries {
        let Some(report) = &entry.report else {
            continue;
        };
        for (label, v) in series(report) {
            family
                .encode_family(&[("domain", domain.as_str()), (second, label)])?
                .encode_gauge(&v)?;
        }
    }
    Ok(())
}

impl prometheus_client::collector::Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sel = self.selection.get();
        let entries = self.store.snapshot();
        let e = &mut encoder;

        if sel.contains(&DOMAIN_INFO) {
            let mut family = e.encode_descriptor(
                DOMAIN_INFO.name,
                &help(&DOMAIN_INFO),
                None,
                DOMAIN_INFO.kind,
            )?;
            for (domain, entry) in &entries {
                let mut labels: Vec<(&str, &str)> = Vec::with_capacity(1 + entry.meta.labels.len());
                labels.push(("domain", domain.as_str()));
                labels.extend(
                    entry
                        .meta
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
                family.encode_family(&labels)?.encode_gauge(&1.0)?;
            }
        }
        domain_gauge2(e, sel, &DOMAIN_VERDICT, "verdict", &entries, |r| {
            [(r.verdict.as_str(), 1.0)]
        })?;
        domain_gauge(e, sel, &LAST_CHECK, &entries, |r| Some(r.checked_at as f64))?;
        domain_gauge2(e, sel, &POLICY_MODE, "mode", &entries, |r| {
            r.policy.policy.as_ref().map(|p| (p.mode.as_str(), 1.0))
        })?;
        domain_gauge(e, sel, &POLICY_MAX_AGE, &entries, |r| {
            r.policy.policy.as_ref().map(|p| f64::from(p.max_age))
        })?;
        domain_gauge(e, sel, &POLICY_CERT_NOT_AFTER, &entries, |r| {
            policy_tls(r).and_then(|t| t.leaf.as_ref().map(|l| l.not_after as f64))
        })?;
        domain_gauge2(e, sel, &MX_COVERED, "mx", &entries, |r| {
            r.mx.hosts
                .iter()
                .map(|h| (h.name.as_str(), bool_value(h.covered)))
        })?;
        if sel.contains(&FINDING) {
            let mut family =
                e.encode_descriptor(FINDING.name, &help(&FINDING), None, FINDING.kind)?;
            for (domain, entry) in &entries {
                let Some(report) = &entry.report else {
                    continue;
                };
                let mut seen = BTreeSet::new();
                for f in &report.findings {
                    if seen.insert((f.code, f.severity)) {
                        family
                            .encode_family(&[
                                ("domain", domain.as_str()),
                                ("code", f.code.as_str()),
                                ("severity", f.severity.as_str()),
                            ])?
                            .encode_gauge(&1.0)?;
                    }
                }
            }
        }
        domain_gauge(e, sel, &RECORD_VALID, &entries, |r| {
            Some(bool_value(r.record.status == RecordStatus::Valid))
        })?;
        domain_gauge(e, sel, &POLICY_VALID, &entries, |r| {
            Some(bool_value(
                r.policy.status == PolicyStatus::Valid && r.policy.policy.is_some(),
            ))
        })?;
        domain_gauge(e, sel, &POLICY_CERT_VALID, &entries, |r| {
            policy_tls(r).and_then(|t| t.verdict.as_ref().map(|v| bool_value(v.is_valid())))
        })?;
        domain_gauge(e, sel, &ENFORCE_READY, &entries, |r| {
            // Unknown while undetermined (a lookup failed or the check timed out): absent.
            (r.verdict != Verdict::Undetermined).then(|| bool_value(is_enforce_ready(r)))
        })?;
        domain_gauge(e, sel, &TLSRPT_VALID, &entries, |r| {
            Some(bool_value(r.tlsrpt.status == TlsRptStatus::Valid))
        })?;
        if sel.contains(&SENDER_ACTION) {
            let mut family = e.encode_descriptor(
                SENDER_ACTION.name,
                &help(&SENDER_ACTION),
                None,
                SENDER_ACTION.kind,
            )?;
            for (domain, entry) in &entries {
                let Some(report) = &entry.report else {
                    continue;
                };
                for (profile, action) in sender_disagreements(report) {
                    family
                        .encode_family(&[
                            ("domain", domain.as_str()),
                            ("profile", profile),
                            ("action", action),
                        ])?
                        .encode_gauge(&1.0)?;
                }
            }
        }
        domain_gauge(e, sel, &CACHED_POLICY_RISK_UNTIL, &entries, |r| {
            // Unix seconds fit an f64 exactly (they are below 2^53).
            r.drift
                .as_ref()
                .and_then(|d| d.cached_policy_risk_until)
                .map(|t| t as f64)
        })?;
        domain_gauge(e, sel, &POLICY_ID_STALE, &entries, |r| {
            r.drift.as_ref().map(|d| bool_value(d.stale))
        })?;
        if sel.contains(&POLICY_CHANGES) {
            let mut family = e.encode_descriptor(
                POLICY_CHANGES.name,
                &help(&POLICY_CHANGES),
                None,
                POLICY_CHANGES.kind,
            )?;
            for (domain, entry) in &entries {
                let Some(drift) = entry.report.as_ref().and_then(|r| r.drift.as_ref()) else {
                    continue;
                };
                family
                    .encode_family(&[("domain", domain.as_str())])?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                    &drift.changes,
                    None,
                )?;
            }
        }

        let mut mx_facts: BTreeMap<&str, MxFacts<'_>> = BTreeMap::new();
        for (_, entry) in &entries {
            if let Some(report) = &entry.report {
                for host in &report.mx.hosts {
                    merge_mx(&mut mx_facts, host, report);
                }
            }
        }
        mx_gauge(e, sel, &MX_CERT_NOT_AFTER, &mx_facts, &|f| {
            f.cert_not_after.map(|t| t as f64)
        })?;
        if sel.contains(&MX_FINDING) {
            let mut family =
                e.encode_descriptor(MX_FINDING.name, &help(&MX_FINDING), None, MX_FINDING.kind)?;
            for (mx, facts) in &mx_facts {
                for (code, fam) in &facts.findings {
                    family
                        .encode_family(&with_family([("mx", *mx), ("code", code.as_str())], *fam))?
                        .encode_gauge(&1.0)?;
                }
            }
        }
        let probe_known = || mx_facts.iter().filter(|(_, f)| f.probe_known);
        let per_family = |e: &mut DescriptorEncoder,
                          def: &MetricDef,
                          value: &dyn Fn(&FamilyFacts<'_>) -> f64|
         -> Result<(), fmt::Error> {
            if !sel.contains(def) {
                return Ok(());
            }
            let mut family = e.encode_descriptor(def.name, &help(def), None, def.kind)?;
            for (mx, facts) in probe_known() {
                for (fam, f) in &facts.families {
                    family
                        .encode_family(&with_family([("mx", *mx)], *fam))?
                        .encode_gauge(&value(f))?;
                }
            }
            Ok(())
        };
        per_family(e, &MX_STARTTLS, &|f| bool_value(f.starttls))?;
        if sel.contains(&MX_PROBE_OUTCOME) {
            let mut family = e.encode_descriptor(
                MX_PROBE_OUTCOME.name,
                &help(&MX_PROBE_OUTCOME),
                None,
                MX_PROBE_OUTCOME.kind,
            )?;
            for (mx, facts) in probe_known() {
                for (fam, f) in &facts.families {
                    family
                        .encode_family(&with_family([("mx", *mx), ("outcome", f.outcome)], *fam))?
                        .encode_gauge(&1.0)?;
                }
            }
        }
        per_family(e, &MX_CERT_VALID, &|f| bool_value(f.cert_valid))?;
        if sel.contains(&MX_TLS_VERSION) {
            let mut family = e.encode_descriptor(
                MX_TLS_VERSION.name,
                &help(&MX_TLS_VERSION),
                None,
                MX_TLS_VERSION.kind,
            )?;
            for (mx, facts) in &mx_facts {
                for (fam, f) in &facts.families {
                    for version in &f.versions {
                        family
                            .encode_family(&with_family(
                                [("mx", *mx), ("version", *version)],
                                *fam,
                            ))?
                            .encode_gauge(&1.0)?;
                    }
                }
            }
        }

        if let Some(ingest) = &self.tlsrpt {
            let store = &self.store;
            crate::tlsrpt::exposition::encode(e, sel, ingest, &|d| store.get(d).is_some())?;
        }

        let mut encoder = encoder;
        let no_labels: [(&str, &str); 0] = [];
        let probed_mx = mx_facts.values().filter(|f| f.probed).count();
        gauge_family(&mut encoder, sel, &BUILD_INFO, &[(build_labels(), 1.0)])?;
        gauge_family(
            &mut encoder,
            sel,
            &DOMAINS,
            &[(no_labels, entries.len() as f64)],
        )?;
        gauge_family(
            &mut encoder,
            sel,
            &MX_HOSTS,
            &[(no_labels, probed_mx as f64)],
        )?;
        if sel.contains(&CHECKS) {
            let mut family =
                encoder.encode_descriptor(CHECKS.name, CHECKS.help, None, CHECKS.kind)?;
            for result in CheckResult::ALL {
                let labels = [("result", result.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                        &self.store.checks(result),
                        None,
                    )?;
            }
        }
        if sel.contains(&CHECK_DURATION) {
            let (sum, count, buckets) = self.store.check_duration.snapshot();
            let mut family = encoder.encode_descriptor(
                CHECK_DURATION.name,
                CHECK_DURATION.help,
                None,
                CHECK_DURATION.kind,
            )?;
            family.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                sum, count, &buckets, None,
            )?;
        }
        let stats = self.cache.as_ref().map(|c| c.stats()).unwrap_or_default();
        if sel.contains(&CACHE_REQUESTS) {
            let mut family = encoder.encode_descriptor(
                CACHE_REQUESTS.name,
                CACHE_REQUESTS.help,
                None,
                CACHE_REQUESTS.kind,
            )?;
            for (result, value) in [("hit", stats.hits), ("miss", stats.misses)] {
                let labels = [("result", result)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                        &value, None,
                    )?;
            }
        }
        gauge_family(
            &mut encoder,
            sel,
            &UNRESPONSIVE_ADDRESSES,
            &[(no_labels, stats.unresponsive as f64)],
        )?;
        gauge_family(
            &mut encoder,
            sel,
            &STATE_LOADED,
            &[(no_labels, bool_value(self.store.state_loaded()))],
        )?;
        if sel.contains(&STATE_SAVE_ERRORS) {
            let mut family = encoder.encode_descriptor(
                STATE_SAVE_ERRORS.name,
                STATE_SAVE_ERRORS.help,
                None,
                STATE_SAVE_ERRORS.kind,
            )?;
            family.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                &self.store.state_save_errors(),
                None,
            )?;
        }
        gauge_family(
            &mut encoder,
            sel,
            &STATE_LAST_SAVE,
            &[(no_labels, self.store.state_last_save() as f64)],
        )?;
        gauge_family(
            &mut encoder,
            sel,
            &RELOAD_OK,
            &[(no_labels, bool_value(self.store.reload_ok()))],
        )?;
        gauge_family(
            &mut encoder,
            sel,
            &RELOAD_TIME,
            &[(no_labels, self.store.reload_success_timestamp() as f64)],
        )?;
        let blind = self
            .store
            .blindness()
            .map(|(cause, blind)| ([("reason", cause.as_str())], bool_value(blind)));
        gauge_family(&mut encoder, sel, &BLIND, &blind)?;
        let sources = self
            .sources
            .as_ref()
            .map(|s| s.snapshot())
            .unwrap_or_default();
        let series = |value: &dyn Fn(&crate::inventory::SourceState) -> f64| {
            sources
                .iter()
                .map(|s| ([("source", s.name.as_str())], value(s)))
                .collect::<Vec<_>>()
        };
        gauge_family(
            &mut encoder,
            sel,
            &SOURCE_OK,
            &series(&|s| bool_value(s.ok)),
        )?;
        gauge_family(
            &mut encoder,
            sel,
            &SOURCE_TIME,
            &series(&|s| s.last_success as f64),
        )?;
        Ok(())
    }
}

fn gauge_family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    selection: Selection,
    def: &MetricDef,
    series: &[(L, f64)],
) -> Result<(), fmt::Error> {
    if !selection.contains(def) {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(def.name, &help(def), None, def.kind)?;
    for (labels, value) in series {
        family.encode_family(labels)?.encode_gauge(value)?;
    }
    Ok(())
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn policy_tls(report: &DomainReport) -> Option<&crate::probe::tls::TlsObservation> {
    report.policy.fetch.as_ref().and_then(|f| f.tls.as_ref())
}

/// A sender enforcing the domain's policy would deliver to every MX.
pub fn is_enforce_ready(report: &DomainReport) -> bool {
    report.policy.status == PolicyStatus::Valid
        && report.record.status == RecordStatus::Valid
        && !report.mx.hosts.is_empty()
        && report
            .mx
            .hosts
            .iter()
            .all(|h| h.covered && h.deliverable() != Some(false))
}

fn merge_mx<'a>(
    facts: &mut BTreeMap<&'a str, MxFacts<'a>>,
    host: &'a MxHostReport,
    report: &DomainReport,
) {
    // The families of the probed addresses: a finding that holds at every address (reported
    // without one) holds in each of them.
    let probed: BTreeSet<Family> = host.probes.iter().map(|p| Family::of(p.address)).collect();
    let mut findings: BTreeSet<(Code, Option<Family>)> = BTreeSet::new();
    for f in report
        .findings
        .iter()
        .filter(|f| f.host.as_deref() == Some(host.name.as_str()))
        .filter(|f| MX_FINDING_CODES.contains(&f.code))
    {
        match (finding_family(f.code), f.address) {
            (FindingFamily::Ipv6, _) => {
                findings.insert((f.code, Some(Family::Ipv6)));
            }
            (FindingFamily::Host, _) => {
                findings.insert((f.code, None));
            }
            (FindingFamily::Probe, Some(address)) => {
                findings.insert((f.code, Some(Family::of(address))));
            }
            (FindingFamily::Probe, None) if probed.is_empty() => {
                findings.insert((f.code, None));
            }
            (FindingFamily::Probe, None) => {
                findings.extend(probed.iter().map(|fam| (f.code, Some(*fam))))
            }
        }
    }
    let probe_known = !host.probes.is_empty() || host.starttls().is_some();
    if !probe_known && findings.is_empty() {
        return;
    }
    if let Some(existing) = facts.get(host.name.as_str()) {
        if existing.checked_at >= report.checked_at {
            return;
        }
    }
    let cert_not_after = host
        .probes
        .iter()
        .filter_map(|p| p.tls.as_ref()?.leaf.as_ref().map(|l| l.not_after))
        .min();
    let mut families = BTreeMap::new();
    if host.probes.is_empty() {
        families.insert(
            None,
            FamilyFacts {
                starttls: host.starttls() == Some(true),
                outcome: ProbeOutcome::NoAddress.as_str(),
                cert_valid: host.cert_valid() == Some(true),
                versions: BTreeSet::new(),
            },
        );
    }
    for family in &probed {
        let probes: Vec<&crate::probe::smtp::SmtpProbe> = host
            .probes
            .iter()
            .filter(|p| Family::of(p.address) == *family)
            .map(|p| p.as_ref())
            .collect();
        families.insert(
            Some(*family),
            FamilyFacts {
                starttls: probes.iter().all(|p| p.starttls_ok()),
                outcome: probes
                    .iter()
                    .map(|p| ProbeOutcome::of(&p.outcome))
                    .find(|o| *o != ProbeOutcome::Ok)
                    .unwrap_or(ProbeOutcome::Ok)
                    .as_str(),
                cert_valid: probes.iter().all(|p| p.starttls_ok() && p.cert_valid()),
                versions: probes
                    .iter()
                    .filter_map(|p| p.tls.as_ref()?.version.as_deref())
                    .collect(),
            },
        );
    }
    facts.insert(
        host.name.as_str(),
        MxFacts {
            checked_at: report.checked_at,
            probe_known,
            probed: !host.probes.is_empty(),
            cert_not_after,
            families,
            findings,
        },
    );
}

/// The sender profiles whose action differs from the RFC 8461 reference's: (profile, action).
pub fn sender_disagreements(report: &DomainReport) -> Vec<(&'static str, &'static str)> {
    let verdicts = crate::stage::senders::sender_verdicts(report);
    let Some(reference) = verdicts.first().map(|v| v.action) else {
        return vec![];
    };
    verdicts
        .iter()
        .filter(|v| v.action != reference)
        .map(|v| (v.profile.as_str(), v.action.as_str()))
        .collect()
}

/// The bounded `outcome` label of `mta_sts_mx_probe_outcome`: one value per way a probe of an
/// MX ends, and `no_address` for an MX with nothing probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeOutcome {
    Ok,
    NoAddress,
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
    SmtpTimeout,
    GreetingRejected,
    ProtocolError,
    StarttlsNotOffered,
    StarttlsRefused,
    StarttlsInjection,
    TlsFailed,
}

impl ProbeOutcome {
    /// Every label value (for docs and tests).
    pub const ALL: &'static [ProbeOutcome] = &[
        ProbeOutcome::Ok,
        ProbeOutcome::NoAddress,
        ProbeOutcome::ConnectRefused,
        ProbeOutcome::ConnectTimeout,
        ProbeOutcome::ConnectFailed,
        ProbeOutcome::SmtpTimeout,
        ProbeOutcome::GreetingRejected,
        ProbeOutcome::ProtocolError,
        ProbeOutcome::StarttlsNotOffered,
        ProbeOutcome::StarttlsRefused,
        ProbeOutcome::StarttlsInjection,
        ProbeOutcome::TlsFailed,
    ];

    pub fn of(outcome: &SmtpOutcome) -> ProbeOutcome {
        match outcome {
            SmtpOutcome::Ok => ProbeOutcome::Ok,
            SmtpOutcome::ConnectRefused => ProbeOutcome::ConnectRefused,
            SmtpOutcome::ConnectTimeout => ProbeOutcome::ConnectTimeout,
            SmtpOutcome::ConnectFailed { .. } => ProbeOutcome::ConnectFailed,
            SmtpOutcome::Timeout { .. } => ProbeOutcome::SmtpTimeout,
            SmtpOutcome::GreetingRejected { .. } => ProbeOutcome::GreetingRejected,
            SmtpOutcome::ProtocolError { .. } => ProbeOutcome::ProtocolError,
            SmtpOutcome::StarttlsNotOffered => ProbeOutcome::StarttlsNotOffered,
            SmtpOutcome::StarttlsRefused { .. } => ProbeOutcome::StarttlsRefused,
            SmtpOutcome::StarttlsInjection => ProbeOutcome::StarttlsInjection,
            SmtpOutcome::Tls { .. } => ProbeOutcome::TlsFailed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeOutcome::Ok => "ok",
            ProbeOutcome::NoAddress => "no_address",
            ProbeOutcome::ConnectRefused => "connect_refused",
            ProbeOutcome::ConnectTimeout => "connect_timeout",
            ProbeOutcome::ConnectFailed => "connect_failed",
            ProbeOutcome::SmtpTimeout => "smtp_timeout",
            ProbeOutcome::GreetingRejected => "greeting_rejected",
            ProbeOutcome::ProtocolError => "protocol_error",
            ProbeOutcome::StarttlsNotOffered => "starttls_not_offered",
            ProbeOutcome::StarttlsRefused => "starttls_refused",
            ProbeOutcome::StarttlsInjection => "starttls_injection",
            ProbeOutcome::TlsFailed => "tls_failed",
        }
    }
}

/// The `outcome` label of one probe.
pub fn outcome_label(outcome: &SmtpOutcome) -> &'static str {
    ProbeOutcome::of(outcome).as_str()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_outcome_labels_are_distinct_snake_case() {
        let labels: BTreeSet<&str> = ProbeOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(labels.len(), ProbeOutcome::ALL.len());
        assert!(labels
            .iter()
            .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        assert_eq!(
            outcome_label(&SmtpOutcome::StarttlsNotOffered),
            "starttls_not_offered"
        );
    }

    #[test]
    fn sender_action_is_exported_only_where_profiles_disagree() {
        use crate::report::{HostTransport, MxHostReport};
        use crate::stage::policy::{Mode, Policy};
        use crate::store::DomainMeta;
        let store = Arc::new(Store::new());
        store.set_domains(vec![
            ("wild.test".to_string(), DomainMeta::default()),
            ("plain.test".to_string(), DomainMeta::default()),
        ]);
        let mut report = DomainReport::skeleton("wild.test");
        report.verdict = Verdict::EnforcedRefused;
        report.refused_mx.push("t.h-v1.mx.example".into());
        report.policy.policy = Some(Box::new(Policy {
            version: "STSv1".into(),
            mode: Mode::Enforce,
            max_age: 86_400,
            mx: vec!["*.mx.example".into()],
            extensions: vec![],
        }));
        let mut host = MxHostReport::new("t.h-v1.mx.example".into(), 10);
        host.transport = HostTransport::Valid;
        report.mx.hosts.push(host);
        store.record(report);
        store.record(DomainReport::skeleton("plain.test"));
        let text = encode(&Exposition::new(store, None).registry(), false).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("mta_sts_sender_action{"))
            .collect();
        assert_eq!(
            lines,
            [
                r#"mta_sts_sender_action{domain="wild.test",profile="postfix_resolver",action="deliver"} 1.0"#,
                r#"mta_sts_sender_action{domain="wild.test",profile="postfix_tlspol",action="deliver"} 1.0"#,
            ]
        );
    }

    #[test]
    fn a_host_level_finding_is_not_given_the_probed_family() {
        use crate::finding::Finding;
        use crate::probe::smtp::{SmtpOutcome, SmtpProbe};
        use crate::report::{HostTransport, MxHostReport};
        use crate::store::DomainMeta;
        let store = Arc::new(Store::new());
        store.set_domains(vec![("ula.test".to_string(), DomainMeta::default())]);
        let mut report = DomainReport::skeleton("ula.test");
        report.verdict = Verdict::NoPolicy;
        // One IPv4 address probed with an expired certificate at every address; an AAAA in
        // fd00::/8 not probed (target_address_forbidden names it, no address field).
        let mut host = MxHostReport::new("mx.ula.test".into(), 10);
        host.transport = HostTransport::CertInvalid;
        host.probes.push(Arc::new(SmtpProbe {
            host: "mx.ula.test".into(),
            address: "192.0.2.25".parse().unwrap(),
            greeting: None,
            starttls_offered: Some(true),
            tls: None,
            outcome: SmtpOutcome::Ok,
            duration_seconds: 0.1,
            inferred: None,
        }));
        report.mx.hosts.push(host);
        for code in [Code::TargetAddressForbidden, Code::MxCertExpired] {
            report
                .findings
                .push(Finding::new(code, "x").with_host("mx.ula.test"));
        }
        store.record(report);
        let text = encode(&Exposition::new(store, None).registry(), false).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("mta_sts_mx_finding{"))
            .collect();
        assert_eq!(
            lines,
            [
                r#"mta_sts_mx_finding{mx="mx.ula.test",code="target_address_forbidden"} 1.0"#,
                r#"mta_sts_mx_finding{mx="mx.ula.test",code="mx_cert_expired",family="ipv4"} 1.0"#,
            ]
        );
    }

    #[test]
    fn names_follow_conventions() {
        let mut seen = BTreeSet::new();
        for def in METRICS {
            assert!(def.name.starts_with("mta_sts_"), "{}", def.name);
            assert!(!def.name.ends_with("_total"), "{}", def.name);
            assert!(!def.help.is_empty(), "{} has no HELP", def.name);
            assert!(seen.insert(def.name), "{} twice", def.name);
        }
    }

    #[test]
    fn empty_store_renders_exporter_metrics() {
        let store = Arc::new(Store::new());
        let registry = Exposition::new(store, None).registry();
        let text = encode(&registry, false).unwrap();
        assert!(text.contains("mta_sts_exporter_domains 0"), "{text}");
        assert!(
            text.contains("mta_sts_exporter_checks_total{result=\"ok\"} 0"),
            "{text}"
        );
        let om = encode(&registry, true).unwrap();
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn enforce_ready_is_absent_while_undetermined() {
        use crate::report::{MxStatus, Verdict};
        use crate::store::DomainMeta;
        let store = Arc::new(Store::new());
        store.set_domains(vec![
            ("ready.test".to_string(), DomainMeta::default()),
            ("unknown.test".to_string(), DomainMeta::default()),
        ]);
        for (domain, verdict) in [
            ("ready.test", Verdict::EnforcedDeliverable),
            ("unknown.test", Verdict::Undetermined),
        ] {
            let mut report = DomainReport::skeleton(domain);
            report.verdict = verdict;
            report.record.status = RecordStatus::Valid;
            report.policy.status = PolicyStatus::Valid;
            report.mx.status = MxStatus::Found;
            let mut host = MxHostReport::new(format!("mx.{domain}"), 10);
            host.covered_by = Some(format!("mx.{domain}"));
            host.covered = true;
            report.mx.hosts.push(host);
            store.record(report);
        }
        let registry = Exposition::new(store, None)
            .with_selection(SelectionHandle::new(Selection::all()))
            .registry();
        let text = encode(&registry, false).unwrap();
        assert!(
            text.contains("mta_sts_enforce_ready{domain=\"ready.test\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("mta_sts_enforce_ready{domain=\"unknown.test\"}"),
            "{text}"
        );
    }

    #[test]
    fn selection_includes_and_excludes_by_name_and_set() {
        let default = Selection::default();
        assert!(default.contains(&MX_CERT_NOT_AFTER));
        assert!(!default.contains(&MX_STARTTLS));
        assert_eq!(Selection::parse([], []), Ok(default));
        assert_eq!(Selection::parse(["default"], []), Ok(default));

        let detailed = Selection::parse(["detailed"], []).unwrap();
        assert_eq!(detailed, Selection::all());
        let one = Selection::parse(["mta_sts_mx_starttls"], []).unwrap();
        assert!(one.contains(&MX_STARTTLS) && !one.contains(&MX_CERT_VALID));
        // Counters by family name or by sample name.
        for name in ["mta_sts_policy_changes", "mta_sts_policy_changes_total"] {
            assert!(Selection::parse([name], [])
                .unwrap()
                .contains(&POLICY_CHANGES));
        }
        // Exclude wins over include.
        let fewer = Selection::parse(
            ["detailed"],
            ["mta_sts_mx_tls_version_info", "mta_sts_finding"],
        )
        .unwrap();
        assert!(!fewer.contains(&MX_TLS_VERSION) && !fewer.contains(&FINDING));
        assert!(fewer.contains(&MX_STARTTLS) && fewer.contains(&DOMAIN_INFO));
        let nothing = Selection::parse([], ["all"]).unwrap();
        assert_eq!(nothing.families().count(), 0);
        let only_exporter = Selection::parse([], ["default"]).unwrap();
        assert_eq!(only_exporter.families().count(), 0);
    }

    #[test]
    fn unknown_family_names_are_refused_with_the_nearest_name() {
        let err = Selection::parse(["mta_sts_mx_startls"], []).unwrap_err();
        assert_eq!(err.suggestion, Some("mta_sts_mx_starttls"));
        assert_eq!(
            err.to_string(),
            "unknown metric family \"mta_sts_mx_startls\" (did you mean \"mta_sts_mx_starttls\"?); \
             use a family name from docs/metrics.md or a set (default, detailed, all)"
        );
        let err = Selection::parse([], ["cpu_seconds"]).unwrap_err();
        assert_eq!(err.suggestion, None, "{err}");
        assert_eq!(
            Selection::parse(["detailled"], []).unwrap_err().suggestion,
            Some("detailed")
        );
        // Histogram sample names are not family names.
        assert!(Selection::parse(["mta_sts_exporter_check_duration_seconds_bucket"], []).is_err());
    }

    #[test]
    fn excluded_families_are_not_encoded_at_all() {
        let store = Arc::new(Store::new());
        let handle =
            SelectionHandle::new(Selection::parse([], ["mta_sts_exporter_domains"]).unwrap());
        let registry = Exposition::new(store, None)
            .with_selection(handle.clone())
            .registry();
        let text = encode(&registry, false).unwrap();
        assert!(!text.contains("mta_sts_exporter_domains"), "{text}");
        assert!(text.contains("mta_sts_exporter_build_info"), "{text}");
        // A reload swaps the selection in place.
        handle.set(Selection::default());
        let text = encode(&registry, false).unwrap();
        assert!(text.contains("# HELP mta_sts_exporter_domains "), "{text}");
    }

    #[test]
    fn every_family_has_a_set_and_mx_codes_exist() {
        let detailed: Vec<_> = Selection::of_set(Set::Detailed)
            .families()
            .map(|d| d.name)
            .collect();
        assert!(
            detailed.contains(&"mta_sts_mx_probe_outcome"),
            "{detailed:?}"
        );
        assert_eq!(
            Selection::of_set(Set::Default).families().count() + detailed.len(),
            METRICS.len()
        );
        assert!(!MX_FINDING_CODES.contains(&Code::MxNotCovered));
    }
}
