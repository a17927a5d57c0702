//! Renders the latest reports as Prometheus metrics at scrape time (prometheus-client
//! `Collector`), so a domain removed from the configuration vanishes at once. Facts about a
//! shared MX host are exported once per MX, not once per domain. The contract is
//! `docs/metrics.md`; a test keeps the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::probe::cache::ProbeCache;
use crate::probe::smtp::SmtpOutcome;
use crate::report::{
    DomainReport, MxHostReport, PolicyStatus, RecordStatus, TlsRptStatus, Verdict,
};
use crate::stage::policy::Mode;
use crate::store::{CheckResult, Store};

/// OpenMetrics text, chosen when the scraper's Accept header asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prometheus text format 0.0.4, the default.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric family: name as exposed (counters without `_total`), type, labels, help.
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricType,
    pub labels: &'static str,
    pub help: &'static str,
}

const CACHED: &str = " (from the last scheduled check)";

macro_rules! defs {
    ($($id:ident = $name:literal, $kind:ident, $labels:literal, $help:literal;)+) => {
        $(pub const $id: MetricDef = MetricDef { name: $name, kind: MetricType::$kind, labels: $labels, help: $help };)+
        /// Every family, in exposition order.
        pub const METRICS: &[&MetricDef] = &[$(&$id,)+];
    };
}

defs! {
    DOMAIN_INFO = "mta_sts_domain_info", Gauge, "domain, configured labels", "1 per configured domain, with its configured labels (join on domain)";
    DOMAIN_VERDICT = "mta_sts_domain_verdict", Gauge, "domain, verdict", "1 for the verdict of the domain's last check: what an RFC 8461 sender does today";
    LAST_CHECK = "mta_sts_last_check_timestamp_seconds", Gauge, "domain", "Unix time the last check of the domain ended";
    RECORD_VALID = "mta_sts_record_valid", Gauge, "domain", "1 if exactly one valid _mta-sts TXT record was found";
    POLICY_VALID = "mta_sts_policy_valid", Gauge, "domain", "1 if the policy was fetched correctly (200, text/plain, valid certificate) and is valid";
    POLICY_MODE = "mta_sts_policy_mode", Gauge, "domain, mode", "1 for the mode of the valid policy, 0 for the other modes (all 0 without a valid policy)";
    POLICY_MAX_AGE = "mta_sts_policy_max_age_seconds", Gauge, "domain", "max_age of the valid policy";
    POLICY_CERT_NOT_AFTER = "mta_sts_policy_cert_not_after_timestamp_seconds", Gauge, "domain", "Expiry (Unix time) of the mta-sts host's leaf certificate; exported also when expired or invalid";
    POLICY_CERT_VALID = "mta_sts_policy_cert_valid", Gauge, "domain", "1 if the mta-sts host's certificate is trusted, valid for the name and in date";
    MX_COVERED = "mta_sts_mx_covered", Gauge, "domain, mx", "1 if the domain's policy covers this MX, 0 if not (the domain-to-MX relation)";
    ENFORCE_READY = "mta_sts_enforce_ready", Gauge, "domain", "1 if a sender enforcing the domain's valid policy would deliver to every MX; absent while the verdict is undetermined";
    TLSRPT_VALID = "mta_sts_tlsrpt_valid", Gauge, "domain", "1 if exactly one valid TLS-RPT record was found";
    POLICY_ID_STALE = "mta_sts_policy_id_stale", Gauge, "domain", "1 while the policy has changed without a new id in the _mta-sts record (stays until the id changes)";
    POLICY_CHANGES = "mta_sts_policy_changes", Counter, "domain", "Policy body or id changes observed since the exporter started remembering the domain (persisted in the state file)";
    FINDING = "mta_sts_finding", Gauge, "domain, code, severity", "1 per finding code present in the domain's last check (codes: docs/findings.md)";
    MX_STARTTLS = "mta_sts_mx_starttls", Gauge, "mx", "1 if STARTTLS and the TLS handshake succeed on every probed address of the MX";
    MX_PROBE_OUTCOME = "mta_sts_mx_probe_outcome", Gauge, "mx, outcome", "1 for the outcome of the MX's SMTP probe (the first failing address's, else ok)";
    MX_CERT_NOT_AFTER = "mta_sts_mx_cert_not_after_timestamp_seconds", Gauge, "mx", "Earliest leaf certificate expiry (Unix time) across the MX's addresses; exported also when expired or invalid";
    MX_CERT_VALID = "mta_sts_mx_cert_valid", Gauge, "mx", "1 if the certificate is trusted, valid for the MX name and in date on every probed address";
    MX_TLS_VERSION = "mta_sts_mx_tls_version_info", Gauge, "mx, version", "1 per TLS version negotiated with the MX";
    BUILD_INFO = "mta_sts_exporter_build_info", Gauge, "version, revision", "1, labelled with the exporter's version and source revision";
    DOMAINS = "mta_sts_exporter_domains", Gauge, "", "Domains configured for this exporter (this shard)";
    CHECKS = "mta_sts_exporter_checks", Counter, "result", "Checks completed, by result: ok (no critical finding), critical, undetermined (a lookup failed or the check timed out)";
    CHECK_DURATION = "mta_sts_exporter_check_duration_seconds", Histogram, "", "Time taken by one domain check";
    CACHE_REQUESTS = "mta_sts_exporter_probe_cache_requests", Counter, "result", "SMTP probe requests by result: hit (shared or in-flight result reused) or miss (probed)";
    UNRESPONSIVE_ADDRESSES = "mta_sts_exporter_unresponsive_addresses", Gauge, "", "MX addresses (with port) taken for unresponsive now after consecutive connect or greeting timeouts: their probes are answered from their state (mx_unresponsive_inferred) while one probe at a time re-tests them";
    STATE_LOADED = "mta_sts_exporter_state_loaded", Gauge, "", "1 if id-drift history was loaded from the state file at start; 0 if it started fresh (no file, unreadable or corrupt: see the log) or no state file is configured";
    STATE_SAVE_ERRORS = "mta_sts_exporter_state_save_errors", Counter, "", "Failed attempts to save the state file (full disk, read-only directory...)";
    STATE_LAST_SAVE = "mta_sts_exporter_state_last_save_success_timestamp_seconds", Gauge, "", "Unix time the state file was last saved";
    RELOAD_OK = "mta_sts_exporter_config_last_reload_successful", Gauge, "", "1 if the last configuration load succeeded";
    RELOAD_TIME = "mta_sts_exporter_config_last_reload_success_timestamp_seconds", Gauge, "", "Unix time of the last successful configuration load";
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
}

impl Exposition {
    pub fn new(store: Arc<Store>, cache: Option<Arc<ProbeCache>>) -> Exposition {
        Exposition { store, cache }
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
/// string (90 MiB at 100,000 domains).
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

/// MX facts, taken from the most recent report that probed the MX (borrowed from it).
struct MxFacts<'a> {
    checked_at: i64,
    starttls: bool,
    outcome: &'static str,
    cert_not_after: Option<i64>,
    cert_valid: bool,
    versions: BTreeSet<&'a str>,
}

type Entries = Vec<(String, crate::store::DomainEntry)>;

/// Encodes one per-domain gauge family without copying any label: one pass over the entries.
fn domain_gauge(
    encoder: &mut DescriptorEncoder,
    def: &MetricDef,
    entries: &Entries,
    value: impl Fn(&DomainReport) -> Option<f64>,
) -> Result<(), fmt::Error> {
    let help = format!("{}{CACHED}", def.help);
    let mut family = encoder.encode_descriptor(def.name, &help, None, def.kind)?;
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
    def: &MetricDef,
    second: &'static str,
    entries: &'a Entries,
    series: impl Fn(&'a DomainReport) -> I,
) -> Result<(), fmt::Error>
where
    I: IntoIterator<Item = (&'a str, f64)>,
{
    let help = format!("{}{CACHED}", def.help);
    let mut family = encoder.encode_descriptor(def.name, &help, None, def.kind)?;
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
        let entries = self.store.snapshot();
        let e = &mut encoder;

        {
            let help = format!("{}{CACHED}", DOMAIN_INFO.help);
            let mut family =
                e.encode_descriptor(DOMAIN_INFO.name, &help, None, DOMAIN_INFO.kind)?;
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
        domain_gauge2(e, &DOMAIN_VERDICT, "verdict", &entries, |r| {
            [(r.verdict.as_str(), 1.0)]
        })?;
        domain_gauge(e, &LAST_CHECK, &entries, |r| Some(r.checked_at as f64))?;
        domain_gauge(e, &RECORD_VALID, &entries, |r| {
            Some(bool_value(r.record.status == RecordStatus::Valid))
        })?;
        domain_gauge(e, &POLICY_VALID, &entries, |r| {
            Some(bool_value(
                r.policy.status == PolicyStatus::Valid && r.policy.policy.is_some(),
            ))
        })?;
        domain_gauge2(e, &POLICY_MODE, "mode", &entries, |r| {
            let mode = r.policy.policy.as_ref().map(|p| p.mode);
            [Mode::Enforce, Mode::Testing, Mode::None]
                .map(|m| (m.as_str(), bool_value(mode == Some(m))))
        })?;
        domain_gauge(e, &POLICY_MAX_AGE, &entries, |r| {
            r.policy.policy.as_ref().map(|p| f64::from(p.max_age))
        })?;
        domain_gauge(e, &POLICY_CERT_NOT_AFTER, &entries, |r| {
            policy_tls(r).and_then(|t| t.leaf.as_ref().map(|l| l.not_after as f64))
        })?;
        domain_gauge(e, &POLICY_CERT_VALID, &entries, |r| {
            policy_tls(r).and_then(|t| t.verdict.as_ref().map(|v| bool_value(v.is_valid())))
        })?;
        domain_gauge2(e, &MX_COVERED, "mx", &entries, |r| {
            r.mx.hosts
                .iter()
                .map(|h| (h.name.as_str(), bool_value(h.covered)))
        })?;
        domain_gauge(e, &ENFORCE_READY, &entries, |r| {
            // Unknown while undetermined (a lookup failed or the check timed out): absent.
            (r.verdict != Verdict::Undetermined).then(|| bool_value(is_enforce_ready(r)))
        })?;
        domain_gauge(e, &TLSRPT_VALID, &entries, |r| {
            Some(bool_value(r.tlsrpt.status == TlsRptStatus::Valid))
        })?;
        domain_gauge(e, &POLICY_ID_STALE, &entries, |r| {
            r.drift.as_ref().map(|d| bool_value(d.stale))
        })?;
        {
            let help = format!("{}{CACHED}", POLICY_CHANGES.help);
            let mut family =
                e.encode_descriptor(POLICY_CHANGES.name, &help, None, POLICY_CHANGES.kind)?;
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
        {
            let help = format!("{}{CACHED}", FINDING.help);
            let mut family = e.encode_descriptor(FINDING.name, &help, None, FINDING.kind)?;
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

        let mut mx_facts: BTreeMap<&str, MxFacts<'_>> = BTreeMap::new();
        for (_, entry) in &entries {
            if let Some(report) = &entry.report {
                for host in &report.mx.hosts {
                    merge_mx(&mut mx_facts, host, report);
                }
            }
        }
        let mx_family = |e: &mut DescriptorEncoder,
                         def: &MetricDef,
                         value: &dyn Fn(&MxFacts<'_>) -> Option<f64>|
         -> Result<(), fmt::Error> {
            let help = format!("{}{CACHED}", def.help);
            let mut family = e.encode_descriptor(def.name, &help, None, def.kind)?;
            for (mx, facts) in &mx_facts {
                if let Some(v) = value(facts) {
                    family.encode_family(&[("mx", *mx)])?.encode_gauge(&v)?;
                }
            }
            Ok(())
        };
        mx_family(e, &MX_STARTTLS, &|f| Some(bool_value(f.starttls)))?;
        {
            let help = format!("{}{CACHED}", MX_PROBE_OUTCOME.help);
            let mut family =
                e.encode_descriptor(MX_PROBE_OUTCOME.name, &help, None, MX_PROBE_OUTCOME.kind)?;
            for (mx, facts) in &mx_facts {
                family
                    .encode_family(&[("mx", *mx), ("outcome", facts.outcome)])?
                    .encode_gauge(&1.0)?;
            }
        }
        mx_family(e, &MX_CERT_NOT_AFTER, &|f| {
            f.cert_not_after.map(|t| t as f64)
        })?;
        mx_family(e, &MX_CERT_VALID, &|f| Some(bool_value(f.cert_valid)))?;
        {
            let help = format!("{}{CACHED}", MX_TLS_VERSION.help);
            let mut family =
                e.encode_descriptor(MX_TLS_VERSION.name, &help, None, MX_TLS_VERSION.kind)?;
            for (mx, facts) in &mx_facts {
                for version in &facts.versions {
                    family
                        .encode_family(&[("mx", *mx), ("version", *version)])?
                        .encode_gauge(&1.0)?;
                }
            }
        }

        let mut encoder = encoder;
        gauge_family(&mut encoder, &BUILD_INFO, &[(build_labels(), 1.0)])?;
        let no_labels: [(&str, &str); 0] = [];
        gauge_family(&mut encoder, &DOMAINS, &[(no_labels, entries.len() as f64)])?;

        {
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
        {
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
        {
            let stats = self.cache.as_ref().map(|c| c.stats()).unwrap_or_default();
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
            gauge_family(
                &mut encoder,
                &UNRESPONSIVE_ADDRESSES,
                &[(no_labels, stats.unresponsive as f64)],
            )?;
        }
        gauge_family(
            &mut encoder,
            &STATE_LOADED,
            &[(no_labels, bool_value(self.store.state_loaded()))],
        )?;
        {
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
            &STATE_LAST_SAVE,
            &[(no_labels, self.store.state_last_save() as f64)],
        )?;
        gauge_family(
            &mut encoder,
            &RELOAD_OK,
            &[(no_labels, bool_value(self.store.reload_ok()))],
        )?;
        gauge_family(
            &mut encoder,
            &RELOAD_TIME,
            &[(no_labels, self.store.reload_success_timestamp() as f64)],
        )?;
        Ok(())
    }
}

fn gauge_family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    def: &MetricDef,
    series: &[(L, f64)],
) -> Result<(), fmt::Error> {
    let help = if def.name.starts_with("mta_sts_exporter_") {
        def.help.to_string()
    } else {
        format!("{}{CACHED}", def.help)
    };
    let mut family = encoder.encode_descriptor(def.name, &help, None, def.kind)?;
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
            .all(|h| h.covered && h.deliverable != Some(false))
}

fn merge_mx<'a>(
    facts: &mut BTreeMap<&'a str, MxFacts<'a>>,
    host: &'a MxHostReport,
    report: &DomainReport,
) {
    if host.probes.is_empty() && host.starttls.is_none() {
        return;
    }
    if let Some(existing) = facts.get(host.name.as_str()) {
        if existing.checked_at >= report.checked_at {
            return;
        }
    }
    let outcome = host
        .probes
        .iter()
        .map(|p| outcome_label(&p.outcome))
        .find(|o| *o != "ok")
        .unwrap_or(if host.probes.is_empty() {
            "no_address"
        } else {
            "ok"
        });
    let cert_not_after = host
        .probes
        .iter()
        .filter_map(|p| p.tls.as_ref()?.leaf.as_ref().map(|l| l.not_after))
        .min();
    let versions = host
        .probes
        .iter()
        .filter_map(|p| p.tls.as_ref()?.version.as_deref())
        .collect();
    facts.insert(
        host.name.as_str(),
        MxFacts {
            checked_at: report.checked_at,
            starttls: host.starttls == Some(true),
            outcome,
            cert_not_after,
            cert_valid: host.cert_valid == Some(true),
            versions,
        },
    );
}

/// The bounded `outcome` label of `mta_sts_mx_probe_outcome`.
pub fn outcome_label(outcome: &SmtpOutcome) -> &'static str {
    match outcome {
        SmtpOutcome::Ok => "ok",
        SmtpOutcome::ConnectRefused => "connect_refused",
        SmtpOutcome::ConnectTimeout => "connect_timeout",
        SmtpOutcome::ConnectFailed { .. } => "connect_failed",
        SmtpOutcome::Timeout { .. } => "smtp_timeout",
        SmtpOutcome::GreetingRejected { .. } => "greeting_rejected",
        SmtpOutcome::ProtocolError { .. } => "protocol_error",
        SmtpOutcome::StarttlsNotOffered => "starttls_not_offered",
        SmtpOutcome::StarttlsRefused { .. } => "starttls_refused",
        SmtpOutcome::StarttlsInjection => "starttls_injection",
        SmtpOutcome::Tls { .. } => "tls_failed",
    }
}

/// Every `outcome` label value (for docs and tests).
pub const OUTCOME_LABELS: &[&str] = &[
    "ok",
    "no_address",
    "connect_refused",
    "connect_timeout",
    "connect_failed",
    "smtp_timeout",
    "greeting_rejected",
    "protocol_error",
    "starttls_not_offered",
    "starttls_refused",
    "starttls_injection",
    "tls_failed",
];

#[cfg(test)]
mod tests {
    use super::*;

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
            report.mx.hosts.push(MxHostReport {
                name: format!("mx.{domain}"),
                preference: 10,
                covered_by: Some(format!("mx.{domain}")),
                covered: true,
                addresses: vec![],
                probes: vec![],
                starttls: None,
                cert_valid: None,
                deliverable: None,
            });
            store.record(report);
        }
        let text = encode(&Exposition::new(store, None).registry(), false).unwrap();
        assert!(
            text.contains("mta_sts_enforce_ready{domain=\"ready.test\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("mta_sts_enforce_ready{domain=\"unknown.test\"}"),
            "{text}"
        );
    }
}
