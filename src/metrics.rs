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
use crate::report::{DomainReport, MxHostReport, PolicyStatus, RecordStatus, TlsRptStatus};
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
    ENFORCE_READY = "mta_sts_enforce_ready", Gauge, "domain", "1 if a sender enforcing the domain's valid policy would deliver to every MX";
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
    CHECKS = "mta_sts_exporter_checks", Counter, "result", "Checks completed, by result: ok (no critical finding), critical, undetermined (a lookup failed)";
    CHECK_DURATION = "mta_sts_exporter_check_duration_seconds", Histogram, "", "Time taken by one domain check";
    CACHE_REQUESTS = "mta_sts_exporter_probe_cache_requests", Counter, "result", "SMTP probe requests by result: hit (shared or in-flight result reused) or miss (probed)";
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
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    }
    Ok(out)
}

/// A gauge value per label set, for one family.
type Series<L> = Vec<(L, f64)>;
type L1 = [(&'static str, String); 1];
type L2 = [(&'static str, String); 2];
type L3 = [(&'static str, String); 3];

/// MX facts, taken from the most recent report that probed the MX.
struct MxFacts {
    checked_at: i64,
    starttls: bool,
    outcome: &'static str,
    cert_not_after: Option<i64>,
    cert_valid: bool,
    versions: BTreeSet<String>,
}

impl prometheus_client::collector::Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let entries = self.store.snapshot();

        let mut domain_info: Series<Vec<(String, String)>> = Vec::with_capacity(entries.len());
        let mut verdict: Series<L2> = Vec::new();
        let mut last_check: Series<L1> = Vec::new();
        let mut record_valid: Series<L1> = Vec::new();
        let mut policy_valid: Series<L1> = Vec::new();
        let mut policy_mode: Series<L2> = Vec::new();
        let mut max_age: Series<L1> = Vec::new();
        let mut policy_not_after: Series<L1> = Vec::new();
        let mut policy_cert_valid: Series<L1> = Vec::new();
        let mut covered: Series<L2> = Vec::new();
        let mut enforce_ready: Series<L1> = Vec::new();
        let mut tlsrpt_valid: Series<L1> = Vec::new();
        let mut findings: Series<L3> = Vec::new();
        let mut id_stale: Series<L1> = Vec::new();
        let mut changes: Vec<(L1, u64)> = Vec::new();
        let mut mx_facts: BTreeMap<String, MxFacts> = BTreeMap::new();

        for (domain, entry) in &entries {
            let mut info = Vec::with_capacity(1 + entry.meta.labels.len());
            info.push(("domain".to_string(), domain.clone()));
            for (k, v) in &entry.meta.labels {
                info.push((k.clone(), v.clone()));
            }
            domain_info.push((info, 1.0));
            let Some(report) = &entry.report else {
                continue;
            };
            let d = || [("domain", domain.clone())];
            verdict.push((
                [
                    ("domain", domain.clone()),
                    ("verdict", report.verdict.as_str().into()),
                ],
                1.0,
            ));
            last_check.push((d(), report.checked_at as f64));
            record_valid.push((d(), bool_value(report.record.status == RecordStatus::Valid)));
            let policy = report.policy.policy.as_ref();
            let valid = report.policy.status == PolicyStatus::Valid && policy.is_some();
            policy_valid.push((d(), bool_value(valid)));
            let mode = policy.map(|p| p.mode);
            for m in [Mode::Enforce, Mode::Testing, Mode::None] {
                policy_mode.push((
                    [("domain", domain.clone()), ("mode", m.as_str().into())],
                    bool_value(mode == Some(m)),
                ));
            }
            if let Some(p) = policy {
                max_age.push((d(), f64::from(p.max_age)));
            }
            if let Some(tls) = report.policy.fetch.as_ref().and_then(|f| f.tls.as_ref()) {
                if let Some(leaf) = &tls.leaf {
                    policy_not_after.push((d(), leaf.not_after as f64));
                }
                if let Some(v) = &tls.verdict {
                    policy_cert_valid.push((d(), bool_value(v.is_valid())));
                }
            }
            for host in &report.mx.hosts {
                covered.push((
                    [("domain", domain.clone()), ("mx", host.name.clone())],
                    bool_value(host.covered),
                ));
                merge_mx(&mut mx_facts, host, report);
            }
            enforce_ready.push((d(), bool_value(is_enforce_ready(report))));
            tlsrpt_valid.push((d(), bool_value(report.tlsrpt.status == TlsRptStatus::Valid)));
            if let Some(drift) = &report.drift {
                id_stale.push((d(), bool_value(drift.stale)));
                changes.push((d(), drift.changes));
            }
            let mut seen = BTreeSet::new();
            for f in &report.findings {
                if seen.insert((f.code, f.severity)) {
                    findings.push((
                        [
                            ("domain", domain.clone()),
                            ("code", f.code.as_str().into()),
                            ("severity", f.severity.as_str().into()),
                        ],
                        1.0,
                    ));
                }
            }
        }

        let mut mx_starttls: Series<L1> = Vec::new();
        let mut mx_outcome: Series<L2> = Vec::new();
        let mut mx_not_after: Series<L1> = Vec::new();
        let mut mx_cert_valid: Series<L1> = Vec::new();
        let mut mx_version: Series<L2> = Vec::new();
        for (mx, facts) in &mx_facts {
            let m = || [("mx", mx.clone())];
            mx_starttls.push((m(), bool_value(facts.starttls)));
            mx_outcome.push(([("mx", mx.clone()), ("outcome", facts.outcome.into())], 1.0));
            if let Some(t) = facts.cert_not_after {
                mx_not_after.push((m(), t as f64));
            }
            mx_cert_valid.push((m(), bool_value(facts.cert_valid)));
            for v in &facts.versions {
                mx_version.push(([("mx", mx.clone()), ("version", v.clone())], 1.0));
            }
        }

        gauge_family(&mut encoder, &DOMAIN_INFO, &domain_info)?;
        gauge_family(&mut encoder, &DOMAIN_VERDICT, &verdict)?;
        gauge_family(&mut encoder, &LAST_CHECK, &last_check)?;
        gauge_family(&mut encoder, &RECORD_VALID, &record_valid)?;
        gauge_family(&mut encoder, &POLICY_VALID, &policy_valid)?;
        gauge_family(&mut encoder, &POLICY_MODE, &policy_mode)?;
        gauge_family(&mut encoder, &POLICY_MAX_AGE, &max_age)?;
        gauge_family(&mut encoder, &POLICY_CERT_NOT_AFTER, &policy_not_after)?;
        gauge_family(&mut encoder, &POLICY_CERT_VALID, &policy_cert_valid)?;
        gauge_family(&mut encoder, &MX_COVERED, &covered)?;
        gauge_family(&mut encoder, &ENFORCE_READY, &enforce_ready)?;
        gauge_family(&mut encoder, &TLSRPT_VALID, &tlsrpt_valid)?;
        gauge_family(&mut encoder, &POLICY_ID_STALE, &id_stale)?;
        {
            let help = format!("{}{CACHED}", POLICY_CHANGES.help);
            let mut family =
                encoder.encode_descriptor(POLICY_CHANGES.name, &help, None, POLICY_CHANGES.kind)?;
            for (labels, value) in &changes {
                family
                    .encode_family(labels)?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                        value, None,
                    )?;
            }
        }
        gauge_family(&mut encoder, &FINDING, &findings)?;
        gauge_family(&mut encoder, &MX_STARTTLS, &mx_starttls)?;
        gauge_family(&mut encoder, &MX_PROBE_OUTCOME, &mx_outcome)?;
        gauge_family(&mut encoder, &MX_CERT_NOT_AFTER, &mx_not_after)?;
        gauge_family(&mut encoder, &MX_CERT_VALID, &mx_cert_valid)?;
        gauge_family(&mut encoder, &MX_TLS_VERSION, &mx_version)?;

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

fn merge_mx(facts: &mut BTreeMap<String, MxFacts>, host: &MxHostReport, report: &DomainReport) {
    if host.probes.is_empty() && host.starttls.is_none() {
        return;
    }
    if let Some(existing) = facts.get(&host.name) {
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
        .filter_map(|p| p.tls.as_ref()?.version.clone())
        .collect();
    facts.insert(
        host.name.clone(),
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
}
