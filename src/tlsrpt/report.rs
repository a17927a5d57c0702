//! RFC 8460 §4 aggregate reports: a tolerant, bounded JSON parser (pure, no I/O).
//!
//! Real senders deviate from the RFC: `contact-info: null`, failure details without
//! `policy-string` or with empty `sending-mta-ip` / `receiving-ip` / `receiving-mx-hostname`,
//! totals that do not add up to the details, counts written as strings, `mx-host` as a single
//! string. What is usable is kept and each tolerated deviation becomes a [`Report::notes`]
//! entry; what is not usable is a [`ParseError`] naming the field.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Policies kept per report; a report with more is refused (`too_many_entries`).
pub const MAX_POLICIES: usize = 200;
/// Failure details kept per report (all policies together); a report with more is refused.
pub const MAX_FAILURE_DETAILS: usize = 10_000;
/// `mx-host` entries kept per policy; more are dropped with a note.
pub const MAX_MX_HOSTS: usize = 64;
/// Notes kept per report.
pub const MAX_NOTES: usize = 20;
/// Longest organization name kept (characters); longer ones are cut.
pub const MAX_ORGANIZATION_CHARS: usize = 100;
/// Longest report id accepted (characters).
pub const MAX_REPORT_ID_CHARS: usize = 256;
/// Longest host name, contact or reason code kept (characters).
const MAX_TEXT_CHARS: usize = 255;

/// One aggregate report, as far as it is usable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `organization-name` (or `contact-info` when the name is missing), trimmed and cut to
    /// [`MAX_ORGANIZATION_CHARS`].
    pub organization: String,
    pub report_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_info: Option<String>,
    /// `date-range` in Unix seconds.
    pub start: i64,
    pub end: i64,
    pub policies: Vec<PolicyResult>,
    /// Tolerated deviations from RFC 8460, for people (at most [`MAX_NOTES`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One entry of `policies`: what the sender saw for one policy of one domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyResult {
    pub policy_type: PolicyType,
    /// `policy-domain`, lower-case, without a trailing dot.
    pub domain: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mx_hosts: Vec<String>,
    /// `total-successful-session-count`.
    pub successful_sessions: u64,
    /// `total-failure-session-count`.
    pub failed_sessions: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failure_details: Vec<FailureDetail>,
}

/// One entry of `failure-details`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureDetail {
    pub result: SessionResult,
    /// The `result-type` as sent, when it is not one RFC 8460 defines (result `other`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    pub sessions: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending_mta_ip: Option<IpAddr>,
    /// Lower-case, without a trailing dot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_mx_hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_mx_helo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason_code: Option<String>,
}

/// `policy-type` (RFC 8460 §4.3), the `policy_type` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyType {
    #[serde(rename = "sts")]
    Sts,
    #[serde(rename = "tlsa")]
    Tlsa,
    #[serde(rename = "no-policy-found")]
    NoPolicyFound,
    /// A type RFC 8460 does not define.
    #[serde(rename = "other")]
    Other,
}

impl PolicyType {
    pub const ALL: [PolicyType; 4] = [
        PolicyType::Sts,
        PolicyType::Tlsa,
        PolicyType::NoPolicyFound,
        PolicyType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::Sts => "sts",
            PolicyType::Tlsa => "tlsa",
            PolicyType::NoPolicyFound => "no-policy-found",
            PolicyType::Other => "other",
        }
    }

    /// Case and `_`/`-` insensitive, as some senders vary both.
    pub fn parse(raw: &str) -> PolicyType {
        let folded = fold(raw);
        PolicyType::ALL
            .into_iter()
            .find(|t| *t != PolicyType::Other && t.as_str() == folded)
            .unwrap_or(PolicyType::Other)
    }
}

/// How sessions ended: `success`, a `result-type` of RFC 8460 §4.3, `unspecified` (failures
/// the summary counts but no detail explains) or `other` (a result type the RFC does not
/// define). The `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionResult {
    Success,
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
    Unspecified,
    Other,
}

impl SessionResult {
    pub const ALL: [SessionResult; 14] = [
        SessionResult::Success,
        SessionResult::StarttlsNotSupported,
        SessionResult::CertificateHostMismatch,
        SessionResult::CertificateExpired,
        SessionResult::CertificateNotTrusted,
        SessionResult::ValidationFailure,
        SessionResult::TlsaInvalid,
        SessionResult::DnssecInvalid,
        SessionResult::DaneRequired,
        SessionResult::StsPolicyFetchError,
        SessionResult::StsPolicyInvalid,
        SessionResult::StsWebpkiInvalid,
        SessionResult::Unspecified,
        SessionResult::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionResult::Success => "success",
            SessionResult::StarttlsNotSupported => "starttls-not-supported",
            SessionResult::CertificateHostMismatch => "certificate-host-mismatch",
            SessionResult::CertificateExpired => "certificate-expired",
            SessionResult::CertificateNotTrusted => "certificate-not-trusted",
            SessionResult::ValidationFailure => "validation-failure",
            SessionResult::TlsaInvalid => "tlsa-invalid",
            SessionResult::DnssecInvalid => "dnssec-invalid",
            SessionResult::DaneRequired => "dane-required",
            SessionResult::StsPolicyFetchError => "sts-policy-fetch-error",
            SessionResult::StsPolicyInvalid => "sts-policy-invalid",
            SessionResult::StsWebpkiInvalid => "sts-webpki-invalid",
            SessionResult::Unspecified => "unspecified",
            SessionResult::Other => "other",
        }
    }

    /// A `result-type` as sent: case and `_`/`-` insensitive. `success`, `unspecified` and
    /// unknown names are `other` (they are not failure types).
    pub fn from_result_type(raw: &str) -> SessionResult {
        let folded = fold(raw);
        SessionResult::ALL
            .into_iter()
            .filter(|r| r.is_failure_type())
            .find(|r| r.as_str() == folded)
            .unwrap_or(SessionResult::Other)
    }

    /// One of RFC 8460's failure result types (not success, unspecified or other).
    pub fn is_failure_type(self) -> bool {
        !matches!(
            self,
            SessionResult::Success | SessionResult::Unspecified | SessionResult::Other
        )
    }

    pub fn is_failure(self) -> bool {
        self != SessionResult::Success
    }
}

impl fmt::Display for SessionResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PolicyResult {
    /// Sessions by result: successes, each failure result type, and failures the summary
    /// counts beyond the details as `unspecified`. When the details add up to more than the
    /// summary's failure total, the details are counted (they name their result).
    pub fn sessions(&self) -> BTreeMap<SessionResult, u64> {
        let mut out = BTreeMap::new();
        if self.successful_sessions > 0 {
            out.insert(SessionResult::Success, self.successful_sessions);
        }
        let mut detailed: u64 = 0;
        for detail in &self.failure_details {
            let n = out.entry(detail.result).or_insert(0);
            *n = n.saturating_add(detail.sessions);
            detailed = detailed.saturating_add(detail.sessions);
        }
        let unexplained = self.failed_sessions.saturating_sub(detailed);
        if unexplained > 0 {
            let n = out.entry(SessionResult::Unspecified).or_insert(0);
            *n = n.saturating_add(unexplained);
        }
        out.retain(|_, n| *n > 0);
        out
    }

    /// All failed sessions, as [`PolicyResult::sessions`] counts them.
    pub fn failures(&self) -> u64 {
        self.sessions()
            .iter()
            .filter(|(r, _)| r.is_failure())
            .fold(0u64, |a, (_, n)| a.saturating_add(*n))
    }
}

/// Why a report is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (syntax, truncated, not UTF-8).
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON, but not a report: a required field is missing or of the wrong type.
    #[error("not a TLS-RPT report: {0}")]
    Invalid(String),
    /// More policies or failure details than [`MAX_POLICIES`] / [`MAX_FAILURE_DETAILS`].
    #[error("{what}: more than {limit}")]
    TooMany { what: &'static str, limit: usize },
}

/// Parses one report. `now` (Unix seconds) bounds the date range: a report ending more than a
/// day in the future is refused, as it would hide silence for as long.
pub fn parse_report(json: &[u8], now: i64) -> Result<Report, ParseError> {
    let raw: RawReport = serde_json::from_slice(json).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ParseError::Invalid(e.to_string()),
        _ => ParseError::Json(e.to_string()),
    })?;
    let mut notes = Notes::default();
    let contact_info = clean_text(raw.contact_info, MAX_TEXT_CHARS);
    if contact_info.is_none() {
        notes.push("contact-info is missing or null".into());
    }
    let organization = match clean_text(raw.organization_name, MAX_ORGANIZATION_CHARS) {
        Some(name) => name,
        None => match &contact_info {
            Some(contact) => {
                notes.push("organization-name is missing; contact-info names the reporter".into());
                cut(contact, MAX_ORGANIZATION_CHARS)
            }
            None => {
                return Err(ParseError::Invalid(
                    "organization-name and contact-info are both missing: the reporter is unknown"
                        .into(),
                ))
            }
        },
    };
    let report_id = match clean_text(raw.report_id, usize::MAX) {
        None => return Err(ParseError::Invalid("report-id is missing or empty".into())),
        Some(id) if id.chars().count() > MAX_REPORT_ID_CHARS => {
            return Err(ParseError::Invalid(format!(
                "report-id is longer than {MAX_REPORT_ID_CHARS} characters"
            )))
        }
        Some(id) => id,
    };
    let range = raw
        .date_range
        .ok_or_else(|| ParseError::Invalid("date-range is missing".into()))?;
    let start = parse_field_time("start-datetime", range.start)?;
    let end = parse_field_time("end-datetime", range.end)?;
    if end < start {
        notes.push(format!(
            "date-range ends ({}) before it starts ({})",
            format_time(end),
            format_time(start)
        ));
    }
    if end > now.saturating_add(86_400) {
        return Err(ParseError::Invalid(format!(
            "date-range ends in the future ({})",
            format_time(end)
        )));
    }
    let raw_policies = raw
        .policies
        .ok_or_else(|| ParseError::Invalid("policies is missing".into()))?;
    if raw_policies.overflow {
        return Err(ParseError::TooMany {
            what: "policies",
            limit: MAX_POLICIES,
        });
    }
    let mut policies = Vec::with_capacity(raw_policies.items.len());
    let mut details_total = 0usize;
    for (index, raw_policy) in raw_policies.items.into_iter().enumerate() {
        let number = index + 1;
        if raw_policy
            .failure_details
            .as_ref()
            .is_some_and(|d| d.overflow)
        {
            return Err(ParseError::TooMany {
                what: "failure details",
                limit: MAX_FAILURE_DETAILS,
            });
        }
        let policy = raw_policy.policy.unwrap_or_default();
        let Some(domain) = clean_text(policy.policy_domain, MAX_TEXT_CHARS).map(|d| host(&d))
        else {
            notes.push(format!(
                "policy {number}: policy-domain is missing; the policy is skipped"
            ));
            continue;
        };
        let policy_type = match clean_text(policy.policy_type, MAX_TEXT_CHARS) {
            None => {
                notes.push(format!(
                    "policy {number} ({domain}): policy-type is missing"
                ));
                PolicyType::Other
            }
            Some(raw_type) => {
                let t = PolicyType::parse(&raw_type);
                if t == PolicyType::Other {
                    notes.push(format!(
                        "policy {number} ({domain}): unknown policy-type {raw_type:?}"
                    ));
                }
                t
            }
        };
        let mut mx_hosts = Vec::new();
        if let Some(mx) = policy.mx_host {
            if mx.overflow {
                notes.push(format!(
                    "policy {number} ({domain}): more than {MAX_MX_HOSTS} mx-host entries; the rest are dropped"
                ));
            }
            mx_hosts = mx
                .items
                .into_iter()
                .filter_map(|m| clean_text(m.0, MAX_TEXT_CHARS))
                .map(|m| host(&m))
                .collect();
        }
        let (successful_sessions, failed_sessions) = match raw_policy.summary {
            Some(summary) => (
                summary.total_successful_session_count.unwrap_or(0),
                summary.total_failure_session_count.unwrap_or(0),
            ),
            None => {
                notes.push(format!(
                    "policy {number} ({domain}): summary is missing; failures are counted from the details"
                ));
                (0, 0)
            }
        };
        let mut failure_details = Vec::new();
        for raw_detail in raw_policy
            .failure_details
            .map(|d| d.items)
            .unwrap_or_default()
        {
            details_total += 1;
            if details_total > MAX_FAILURE_DETAILS {
                return Err(ParseError::TooMany {
                    what: "failure details",
                    limit: MAX_FAILURE_DETAILS,
                });
            }
            failure_details.push(detail(raw_detail, number, &domain, &mut notes));
        }
        let result = PolicyResult {
            policy_type,
            domain,
            mx_hosts,
            successful_sessions,
            failed_sessions,
            failure_details,
        };
        let detailed = result
            .failure_details
            .iter()
            .fold(0u64, |a, d| a.saturating_add(d.sessions));
        if detailed != result.failed_sessions {
            notes.push(format!(
                "policy {number} ({}): total-failure-session-count is {} but the failure details add up to {detailed}",
                result.domain, result.failed_sessions
            ));
        }
        policies.push(result);
    }
    if policies.is_empty() {
        return Err(ParseError::Invalid(
            "no usable policy (each needs a policy-domain)".into(),
        ));
    }
    Ok(Report {
        organization,
        report_id,
        contact_info,
        start,
        end,
        policies,
        notes: notes.0,
    })
}

fn detail(raw: RawFailureDetail, number: usize, domain: &str, notes: &mut Notes) -> FailureDetail {
    let raw_type = clean_text(raw.result_type, MAX_TEXT_CHARS);
    let result = match &raw_type {
        Some(t) => SessionResult::from_result_type(t),
        None => {
            notes.push(format!(
                "policy {number} ({domain}): a failure detail has no result-type"
            ));
            SessionResult::Other
        }
    };
    let mut address = |field: &str, value: Option<String>| -> Option<IpAddr> {
        let text = clean_text(value, MAX_TEXT_CHARS)?;
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                notes.push(format!(
                    "policy {number} ({domain}): {field} {text:?} is not an IP address"
                ));
                None
            }
        }
    };
    let sending_mta_ip = address("sending-mta-ip", raw.sending_mta_ip);
    let receiving_ip = address("receiving-ip", raw.receiving_ip);
    FailureDetail {
        result,
        result_type: raw_type.filter(|_| result == SessionResult::Other),
        sessions: raw.failed_session_count.unwrap_or(0),
        sending_mta_ip,
        receiving_mx_hostname: clean_text(raw.receiving_mx_hostname, MAX_TEXT_CHARS)
            .map(|h| host(&h)),
        receiving_mx_helo: clean_text(raw.receiving_mx_helo, MAX_TEXT_CHARS),
        receiving_ip,
        failure_reason_code: clean_text(raw.failure_reason_code, MAX_TEXT_CHARS),
    }
}

/// Parses an RFC 3339 date-time, tolerating a space for `T`, a lower-case `t`/`z` and a
/// missing zone (taken as UTC).
pub fn parse_time(raw: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let mut text: String = raw.trim().to_string();
    if text.len() > 64 || !text.is_ascii() {
        return None;
    }
    if text.as_bytes().get(10) == Some(&b' ') {
        text.replace_range(10..11, "T");
    }
    text = text.to_ascii_uppercase();
    if let Ok(t) = time::OffsetDateTime::parse(&text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    // No zone: UTC.
    let zoned = format!("{text}Z");
    time::OffsetDateTime::parse(&zoned, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// RFC 3339 in UTC, seconds precision.
pub fn format_time(unix: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

fn parse_field_time(field: &str, value: Option<String>) -> Result<i64, ParseError> {
    let Some(text) = clean_text(value, MAX_TEXT_CHARS) else {
        return Err(ParseError::Invalid(format!(
            "date-range.{field} is missing"
        )));
    };
    parse_time(&text).ok_or_else(|| {
        ParseError::Invalid(format!(
            "date-range.{field} {text:?} is not an RFC 3339 date-time"
        ))
    })
}

#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn push(&mut self, note: String) {
        if self.0.len() < MAX_NOTES {
            self.0.push(note);
        }
    }
}

/// Lower-case, trimmed, without a trailing dot.
fn host(raw: &str) -> String {
    raw.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn fold(raw: &str) -> String {
    raw.trim().to_ascii_lowercase().replace('_', "-")
}

/// Trimmed, control characters removed, cut to `max` characters; empty is None.
fn clean_text(value: Option<String>, max: usize) -> Option<String> {
    let value = value?;
    let cleaned: String = value.trim().chars().filter(|c| !c.is_control()).collect();
    if cleaned.is_empty() {
        None
    } else {
        Some(cut(&cleaned, max))
    }
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

// --- the wire shape, every field optional and leniently typed

#[derive(Deserialize)]
struct RawReport {
    #[serde(rename = "organization-name", default, deserialize_with = "text")]
    organization_name: Option<String>,
    #[serde(rename = "date-range", default)]
    date_range: Option<RawDateRange>,
    #[serde(rename = "contact-info", default, deserialize_with = "text")]
    contact_info: Option<String>,
    #[serde(rename = "report-id", default, deserialize_with = "text")]
    report_id: Option<String>,
    #[serde(default)]
    policies: Option<Capped<RawPolicyEntry, MAX_POLICIES>>,
}

#[derive(Deserialize)]
struct RawDateRange {
    #[serde(rename = "start-datetime", default, deserialize_with = "text")]
    start: Option<String>,
    #[serde(rename = "end-datetime", default, deserialize_with = "text")]
    end: Option<String>,
}

#[derive(Deserialize)]
struct RawPolicyEntry {
    #[serde(default)]
    policy: Option<RawPolicy>,
    #[serde(default)]
    summary: Option<RawSummary>,
    #[serde(rename = "failure-details", default)]
    failure_details: Option<Capped<RawFailureDetail, MAX_FAILURE_DETAILS>>,
}

#[derive(Deserialize, Default)]
struct RawPolicy {
    #[serde(rename = "policy-type", default, deserialize_with = "text")]
    policy_type: Option<String>,
    #[serde(rename = "policy-domain", default, deserialize_with = "text")]
    policy_domain: Option<String>,
    #[serde(rename = "mx-host", default)]
    mx_host: Option<Capped<Text, MAX_MX_HOSTS>>,
}

#[derive(Deserialize)]
struct RawSummary {
    #[serde(
        rename = "total-successful-session-count",
        default,
        deserialize_with = "count"
    )]
    total_successful_session_count: Option<u64>,
    #[serde(
        rename = "total-failure-session-count",
        default,
        deserialize_with = "count"
    )]
    total_failure_session_count: Option<u64>,
}

#[derive(Deserialize)]
struct RawFailureDetail {
    #[serde(rename = "result-type", default, deserialize_with = "text")]
    result_type: Option<String>,
    #[serde(rename = "sending-mta-ip", default, deserialize_with = "text")]
    sending_mta_ip: Option<String>,
    #[serde(rename = "receiving-mx-hostname", default, deserialize_with = "text")]
    receiving_mx_hostname: Option<String>,
    #[serde(rename = "receiving-mx-helo", default, deserialize_with = "text")]
    receiving_mx_helo: Option<String>,
    #[serde(rename = "receiving-ip", default, deserialize_with = "text")]
    receiving_ip: Option<String>,
    #[serde(rename = "failed-session-count", default, deserialize_with = "count")]
    failed_session_count: Option<u64>,
    #[serde(rename = "failure-reason-code", default, deserialize_with = "text")]
    failure_reason_code: Option<String>,
}

/// A string-ish list item: strings as they are, numbers written out, null as None.
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        text(deserializer).map(Text)
    }
}

/// A sequence keeping at most `CAP` items (the rest are skipped unparsed and `overflow` is
/// set), or a single value taken as a one-item sequence.
struct Capped<T, const CAP: usize> {
    items: Vec<T>,
    overflow: bool,
}

impl<'de, T: Deserialize<'de>, const CAP: usize> Deserialize<'de> for Capped<T, CAP> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CappedVisitor<T, const CAP: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const CAP: usize> Visitor<'de> for CappedVisitor<T, CAP> {
            type Value = Capped<T, CAP>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                let mut overflow = false;
                while items.len() < CAP {
                    match seq.next_element::<T>()? {
                        Some(item) => items.push(item),
                        None => return Ok(Capped { items, overflow }),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    overflow = true;
                }
                Ok(Capped { items, overflow })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let item = T::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(Capped {
                    items: vec![item],
                    overflow: false,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let item = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Capped {
                    items: vec![item],
                    overflow: false,
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Capped {
                    items: vec![],
                    overflow: false,
                })
            }
        }
        deserializer.deserialize_any(CappedVisitor::<T, CAP>(PhantomData))
    }
}

fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct TextVisitor;
    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(TextVisitor)
        }
    }
    deserializer.deserialize_any(TextVisitor)
}

/// A session count: a non-negative integer, also written as an integral float or a string of
/// digits; null is None.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct CountVisitor;
    impl<'de> Visitor<'de> for CountVisitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative session count")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("session count {v} is negative")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 {
                // In range and integral (checked above), so the cast is exact.
                Ok(Some(v as u64))
            } else {
                Err(E::custom(format!(
                    "session count {v} is not a whole number"
                )))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let t = v.trim();
            if t.is_empty() {
                return Ok(None);
            }
            t.parse::<u64>()
                .map(Some)
                .map_err(|_| E::custom(format!("session count {v:?} is not a number")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(CountVisitor)
        }
    }
    deserializer.deserialize_any(CountVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    /// RFC 8460 §4.5's example, dates moved to 2025-12-30.
    pub(crate) const RFC_EXAMPLE: &str = r#"{
      "organization-name": "Company-X",
      "date-range": {
        "start-datetime": "2025-12-30T00:00:00Z",
        "end-datetime": "2025-12-30T23:59:59Z"
      },
      "contact-info": "sts-reporting@company-x.example",
      "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
      "policies": [{
        "policy": {
          "policy-type": "sts",
          "policy-string": ["version: STSv1","mode: testing",
                "mx: *.mail.company-y.example","max_age: 86400"],
          "policy-domain": "company-y.example",
          "mx-host": ["*.mail.company-y.example"]
        },
        "summary": {
          "total-successful-session-count": 5326,
          "total-failure-session-count": 303
        },
        "failure-details": [{
          "result-type": "certificate-expired",
          "sending-mta-ip": "2001:db8:abcd:0012::1",
          "receiving-mx-hostname": "mx1.mail.company-y.example",
          "failed-session-count": 100
        }, {
          "result-type": "starttls-not-supported",
          "sending-mta-ip": "2001:db8:abcd:0013::1",
          "receiving-mx-hostname": "mx2.mail.company-y.example",
          "receiving-ip": "203.0.113.56",
          "failed-session-count": 200,
          "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
        }, {
          "result-type": "validation-failure",
          "sending-mta-ip": "198.51.100.62",
          "receiving-ip": "203.0.113.58",
          "receiving-mx-hostname": "mx-backup.mail.company-y.example",
          "failed-session-count": 3,
          "failure-error-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
        }]
      }]
    }"#;

    fn parse(json: &str) -> Report {
        parse_report(json.as_bytes(), NOW).unwrap_or_else(|e| panic!("rejected: {e}\n{json}"))
    }

    fn sessions(p: &PolicyResult) -> Vec<(&'static str, u64)> {
        p.sessions()
            .into_iter()
            .map(|(r, n)| (r.as_str(), n))
            .collect()
    }

    #[test]
    fn rfc_example_parses_exactly() {
        let r = parse(RFC_EXAMPLE);
        assert_eq!(r.organization, "Company-X");
        assert_eq!(r.report_id, "5065427c-23d3-47ca-b6e0-946ea0e8c4be");
        assert_eq!(
            r.contact_info.as_deref(),
            Some("sts-reporting@company-x.example")
        );
        assert_eq!(r.start, 1_767_052_800);
        assert_eq!(r.end, 1_767_139_199);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        let p = &r.policies[0];
        assert_eq!(p.policy_type, PolicyType::Sts);
        assert_eq!(p.domain, "company-y.example");
        assert_eq!(p.mx_hosts, vec!["*.mail.company-y.example"]);
        assert_eq!(
            sessions(p),
            vec![
                ("success", 5326),
                ("starttls-not-supported", 200),
                ("certificate-expired", 100),
                ("validation-failure", 3),
            ]
        );
        assert_eq!(p.failures(), 303);
        let d = &p.failure_details[1];
        assert_eq!(d.receiving_ip, Some("203.0.113.56".parse().unwrap()));
        assert_eq!(
            d.receiving_mx_hostname.as_deref(),
            Some("mx2.mail.company-y.example")
        );
        assert_eq!(
            p.failure_details[0].sending_mta_ip,
            Some("2001:db8:abcd:12::1".parse().unwrap())
        );
    }

    fn report_with(policies: &str) -> String {
        format!(
            r#"{{"organization-name":"Google Inc.","date-range":{{"start-datetime":"2025-12-30T00:00:00Z","end-datetime":"2025-12-30T23:59:59Z"}},"contact-info":"smtp-tls-reporting@google.com","report-id":"2025-12-30T00:00:00Z_example.com","policies":[{policies}]}}"#
        )
    }

    #[test]
    fn contact_info_null_is_tolerated() {
        let json = RFC_EXAMPLE.replace(
            r#""contact-info": "sts-reporting@company-x.example""#,
            r#""contact-info": null"#,
        );
        let r = parse(&json);
        assert_eq!(r.contact_info, None);
        assert_eq!(r.notes, vec!["contact-info is missing or null"]);
    }

    #[test]
    fn details_without_policy_string_and_with_empty_addresses() {
        let r = parse(&report_with(
            r#"{"policy":{"policy-type":"sts","policy-domain":"Example.COM."},
               "summary":{"total-successful-session-count":10,"total-failure-session-count":2},
               "failure-details":[{"result-type":"certificate-host-mismatch","sending-mta-ip":"",
                 "receiving-ip":"","receiving-mx-hostname":"","failed-session-count":2}]}"#,
        ));
        let p = &r.policies[0];
        assert_eq!(p.domain, "example.com");
        let d = &p.failure_details[0];
        assert_eq!(d.sending_mta_ip, None);
        assert_eq!(d.receiving_ip, None);
        assert_eq!(d.receiving_mx_hostname, None);
        assert_eq!(
            sessions(p),
            vec![("success", 10), ("certificate-host-mismatch", 2)]
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn failures_beyond_the_details_are_unspecified() {
        let r = parse(&report_with(
            r#"{"policy":{"policy-type":"sts","policy-domain":"example.com"},
               "summary":{"total-successful-session-count":0,"total-failure-session-count":50},
               "failure-details":[{"result-type":"certificate-expired","failed-session-count":20}]}"#,
        ));
        let p = &r.policies[0];
        assert_eq!(
            sessions(p),
            vec![("certificate-expired", 20), ("unspecified", 30)]
        );
        assert_eq!(p.failures(), 50);
        assert_eq!(
            r.notes,
            vec!["policy 1 (example.com): total-failure-session-count is 50 but the failure details add up to 20"]
        );
    }

    #[test]
    fn details_beyond_the_summary_count_as_detailed() {
        let r = parse(&report_with(
            r#"{"policy":{"policy-type":"sts","policy-domain":"example.com"},
               "summary":{"total-successful-session-count":5,"total-failure-session-count":1},
               "failure-details":[{"result-type":"certificate-expired","failed-session-count":4},
                                  {"result-type":"CERTIFICATE_EXPIRED","failed-session-count":"3"}]}"#,
        ));
        assert_eq!(
            sessions(&r.policies[0]),
            vec![("success", 5), ("certificate-expired", 7)]
        );
        assert_eq!(r.notes.len(), 1);
    }

    #[test]
    fn sts_and_tlsa_for_one_domain_are_both_kept() {
        let r = parse(&report_with(
            r#"{"policy":{"policy-type":"sts","policy-domain":"example.com","mx-host":"mx.example.com"},
                "summary":{"total-successful-session-count":7,"total-failure-session-count":0}},
               {"policy":{"policy-type":"tlsa","policy-domain":"example.com","policy-string":["3 1 1 abcd"]},
                "summary":{"total-successful-session-count":3,"total-failure-session-count":1},
                "failure-details":[{"result-type":"tlsa-invalid","failed-session-count":1}]}"#,
        ));
        assert_eq!(r.policies.len(), 2);
        assert_eq!(r.policies[0].policy_type, PolicyType::Sts);
        assert_eq!(r.policies[0].mx_hosts, vec!["mx.example.com"]);
        assert_eq!(r.policies[1].policy_type, PolicyType::Tlsa);
        assert_eq!(
            sessions(&r.policies[1]),
            vec![("success", 3), ("tlsa-invalid", 1)]
        );
    }

    #[test]
    fn no_policy_found_is_a_policy_type() {
        let r = parse(&report_with(
            r#"{"policy":{"policy-type":"no-policy-found","policy-domain":"example.com","policy-string":null,"mx-host":null},
                "summary":{"total-successful-session-count":12,"total-failure-session-count":0},
                "failure-details":[]}"#,
        ));
        assert_eq!(r.policies[0].policy_type, PolicyType::NoPolicyFound);
        assert!(r.policies[0].mx_hosts.is_empty());
        assert_eq!(sessions(&r.policies[0]), vec![("success", 12)]);
    }

    #[test]
    fn unknown_result_and_policy_types_are_other() {
        let r = parse(&report_with(
            r#"{"policy":{"policy-type":"dane","policy-domain":"example.com"},
                "summary":{"total-successful-session-count":0,"total-failure-session-count":1},
                "failure-details":[{"result-type":"tls-handshake-timeout","failed-session-count":1}]}"#,
        ));
        let p = &r.policies[0];
        assert_eq!(p.policy_type, PolicyType::Other);
        assert_eq!(p.failure_details[0].result, SessionResult::Other);
        assert_eq!(
            p.failure_details[0].result_type.as_deref(),
            Some("tls-handshake-timeout")
        );
        assert_eq!(
            r.notes,
            vec!["policy 1 (example.com): unknown policy-type \"dane\""]
        );
    }

    #[test]
    fn lenient_counts_and_times() {
        let json = r#"{"organization-name":"Mail.Ru","date-range":{"start-datetime":"2025-12-30 00:00:00","end-datetime":"2025-12-30t23:59:59.999+03:00"},"report-id":42,"policies":[{"policy":{"policy-type":"STS","policy-domain":"example.com"},"summary":{"total-successful-session-count":"12","total-failure-session-count":3.0}}]}"#;
        let r = parse(json);
        assert_eq!(r.report_id, "42");
        assert_eq!(r.start, 1_767_052_800);
        assert_eq!(r.end, 1_767_128_399);
        assert_eq!(
            sessions(&r.policies[0]),
            vec![("success", 12), ("unspecified", 3)]
        );
    }

    #[test]
    fn missing_organization_falls_back_to_contact() {
        let json = RFC_EXAMPLE.replace(r#""organization-name": "Company-X","#, "");
        let r = parse(&json);
        assert_eq!(r.organization, "sts-reporting@company-x.example");
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                RFC_EXAMPLE.replace(r#""report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be","#, ""),
                "not a TLS-RPT report: report-id is missing or empty",
            ),
            (
                RFC_EXAMPLE.replace("2025-12-30T23:59:59Z", "yesterday"),
                "not a TLS-RPT report: date-range.end-datetime \"yesterday\" is not an RFC 3339 date-time",
            ),
            (
                RFC_EXAMPLE.replace("2025-12-30T23:59:59Z", "2026-01-03T00:00:00Z"),
                "not a TLS-RPT report: date-range ends in the future (2026-01-03T00:00:00Z)",
            ),
            (
                RFC_EXAMPLE.replace(r#""policy-domain": "company-y.example","#, ""),
                "not a TLS-RPT report: no usable policy (each needs a policy-domain)",
            ),
            (
                RFC_EXAMPLE.replace("5326", "-5"),
                "not a TLS-RPT report: session count -5 is negative at line 18 column 46",
            ),
        ];
        for (json, message) in cases {
            match parse_report(json.as_bytes(), NOW) {
                Err(e) => assert_eq!(e.to_string(), message),
                Ok(r) => panic!("accepted {r:?}"),
            }
        }
        assert!(matches!(
            parse_report(b"{\"organization-name\": ", NOW),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_report(b"[1,2]", NOW),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn too_many_policies_and_details_are_refused() {
        let policy = r#"{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}"#;
        let many = vec![policy; MAX_POLICIES + 1].join(",");
        assert_eq!(
            parse_report(report_with(&many).as_bytes(), NOW),
            Err(ParseError::TooMany {
                what: "policies",
                limit: MAX_POLICIES
            })
        );
        let detail = r#"{"result-type":"certificate-expired","failed-session-count":1}"#;
        let half = vec![detail; MAX_FAILURE_DETAILS / 2 + 1].join(",");
        let p = format!(
            r#"{{"policy":{{"policy-type":"sts","policy-domain":"example.com"}},"failure-details":[{half}]}}"#
        );
        assert_eq!(
            parse_report(report_with(&format!("{p},{p}")).as_bytes(), NOW),
            Err(ParseError::TooMany {
                what: "failure details",
                limit: MAX_FAILURE_DETAILS
            })
        );
    }

    #[test]
    fn hostile_counts_saturate() {
        let r = parse(&report_with(
            r#"{"policy":{"policy-type":"sts","policy-domain":"example.com"},
               "summary":{"total-successful-session-count":18446744073709551615,"total-failure-session-count":0},
               "failure-details":[{"result-type":"certificate-expired","failed-session-count":18446744073709551615},
                                  {"result-type":"certificate-expired","failed-session-count":18446744073709551615}]}"#,
        ));
        assert_eq!(r.policies[0].failures(), u64::MAX);
    }

    #[test]
    fn long_texts_are_cut_and_control_characters_removed() {
        let long = "x".repeat(500);
        let json = RFC_EXAMPLE.replace("Company-X", &format!("Evil\\u0000\\n{long}"));
        let r = parse(&json);
        assert_eq!(r.organization.chars().count(), MAX_ORGANIZATION_CHARS);
        assert!(r.organization.starts_with("Evilxxx"));
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_report(&bytes, NOW);
        }

        #[test]
        fn never_panics_on_mutated_reports(pos in 0usize..2000, junk in "[\\[\\]{}\",:0-9a-z\\- ]{0,8}") {
            let mut text = RFC_EXAMPLE.to_string();
            let at = pos.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &junk);
            }
            if let Ok(r) = parse_report(text.as_bytes(), NOW) {
                prop_assert!(r.notes.len() <= MAX_NOTES);
                prop_assert!(!r.policies.is_empty());
            }
        }

        #[test]
        fn sessions_add_up(success in 0u64..1_000_000, total in 0u64..1_000_000,
                           details in prop::collection::vec((0usize..14, 0u64..1000), 0..20)) {
            let detail_json: Vec<String> = details.iter().map(|(r, n)| format!(
                r#"{{"result-type":"{}","failed-session-count":{n}}}"#, SessionResult::ALL[*r].as_str())).collect();
            let json = report_with(&format!(
                r#"{{"policy":{{"policy-type":"sts","policy-domain":"example.com"}},"summary":{{"total-successful-session-count":{success},"total-failure-session-count":{total}}},"failure-details":[{}]}}"#,
                detail_json.join(",")));
            let r = parse(&json);
            let p = &r.policies[0];
            let detailed: u64 = details.iter().map(|(_, n)| n).sum();
            let all: u64 = p.sessions().values().sum();
            prop_assert_eq!(all, success + total.max(detailed));
            prop_assert_eq!(p.failures(), total.max(detailed));
        }

        #[test]
        fn times_round_trip(t in 0i64..4_000_000_000) {
            prop_assert_eq!(parse_time(&format_time(t)), Some(t));
        }
    }
}
