//! The vocabulary of findings: stable codes, severities and the `Finding` value.
//!
//! Every code here is documented in `docs/findings.md` (a test keeps the two in step).
//! Codes are a public contract: they become the `code` label of `mta_sts_finding`.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How bad a finding is.
///
/// `Critical`: a sender honouring the policy would refuse mail, or the policy is unusable.
/// `Warning`: wrong, or will become critical (expiring certificate, testing-mode fault).
/// `Info`: worth knowing, nothing to fix urgently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the check may change a code's severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The severity in the table, always.
    Fixed,
    /// An MX fault: what an enforcing sender refuses for. The table's severity (critical) when
    /// the domain's record is valid and its policy is in `enforce` mode; a warning otherwise.
    WhenEnforced,
}

macro_rules! codes {
    ($($variant:ident => $name:literal, $severity:ident, $scope:ident;)+) => {
        /// A stable, snake_case finding code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Code {
            $($variant,)+
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            /// The code as it appears in JSON, metrics and `docs/findings.md`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)+
                }
            }

            /// The code named `name` (its snake_case form), if there is one.
            pub fn from_name(name: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str() == name)
            }

            /// The severity a finding with this code has unless the check raises or lowers it
            /// (MX faults are critical only when the policy is enforced; see `docs/findings.md`).
            pub fn default_severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)+
                }
            }

            /// Whether the check raises or lowers this code's severity (see [`Scope`]).
            pub fn scope(self) -> Scope {
                match self {
                    $(Code::$variant => Scope::$scope,)+
                }
            }

            /// The severity of a finding with this code, given whether the domain's policy is
            /// enforced (a valid record and `mode: enforce`).
            pub fn severity(self, enforced: bool) -> Severity {
                match (self.scope(), enforced) {
                    (Scope::WhenEnforced, false) => Severity::Warning.min(self.default_severity()),
                    _ => self.default_severity(),
                }
            }
        }
    };
}

codes! {
    // --- `_mta-sts` TXT record (RFC 8461 §3.1)
    StsRecordMissing => "sts_record_missing", Warning, Fixed;
    StsRecordLookupFailed => "sts_record_lookup_failed", Critical, Fixed;
    StsRecordMultiple => "sts_record_multiple", Critical, Fixed;
    StsRecordInvalid => "sts_record_invalid", Critical, Fixed;
    StsRecordDiscarded => "sts_record_discarded", Warning, Fixed;
    StsRecordDuplicateField => "sts_record_duplicate_field", Warning, Fixed;
    StsRecordExtensionField => "sts_record_extension_field", Info, Fixed;
    StsRecordCname => "sts_record_cname", Info, Fixed;
    // --- policy host and fetch (RFC 8461 §3.2, §3.3)
    PolicyHostUnresolvable => "policy_host_unresolvable", Critical, Fixed;
    PolicyHostLookupFailed => "policy_host_lookup_failed", Critical, Fixed;
    PolicyConnectRefused => "policy_connect_refused", Critical, Fixed;
    PolicyConnectTimeout => "policy_connect_timeout", Critical, Fixed;
    PolicyConnectFailed => "policy_connect_failed", Critical, Fixed;
    PolicyTlsFailed => "policy_tls_failed", Critical, Fixed;
    PolicyHttpStatus => "policy_http_status", Critical, Fixed;
    PolicyRedirect => "policy_redirect", Critical, Fixed;
    PolicyHttpError => "policy_http_error", Critical, Fixed;
    PolicyContentType => "policy_content_type", Critical, Fixed;
    PolicyContentEncoding => "policy_content_encoding", Warning, Fixed;
    PolicyTooLarge => "policy_too_large", Critical, Fixed;
    PolicyTimeout => "policy_timeout", Critical, Fixed;
    PolicyWithoutRecord => "policy_without_record", Warning, Fixed;
    PolicyHostIpv6Broken => "policy_host_ipv6_broken", Warning, Fixed;
    PolicyHostIpv4Broken => "policy_host_ipv4_broken", Warning, Fixed;
    PolicyDiffersByFamily => "policy_differs_by_family", Warning, Fixed;
    // --- policy host certificate (RFC 8461 §3.3)
    PolicyCertExpired => "policy_cert_expired", Critical, Fixed;
    PolicyCertExpiring => "policy_cert_expiring", Warning, Fixed;
    PolicyCertNotYetValid => "policy_cert_not_yet_valid", Critical, Fixed;
    PolicyCertNameMismatch => "policy_cert_name_mismatch", Critical, Fixed;
    PolicyCertUntrusted => "policy_cert_untrusted", Critical, Fixed;
    // --- policy body (RFC 8461 §3.2)
    PolicyNotUtf8 => "policy_not_utf8", Critical, Fixed;
    PolicyBom => "policy_bom", Critical, Fixed;
    PolicyLeadingWhitespace => "policy_leading_whitespace", Critical, Fixed;
    PolicyLineInvalid => "policy_line_invalid", Critical, Fixed;
    PolicyMixedLineEndings => "policy_mixed_line_endings", Warning, Fixed;
    PolicyVersionMissing => "policy_version_missing", Critical, Fixed;
    PolicyVersionInvalid => "policy_version_invalid", Critical, Fixed;
    PolicyModeMissing => "policy_mode_missing", Critical, Fixed;
    PolicyModeInvalid => "policy_mode_invalid", Critical, Fixed;
    PolicyMaxAgeMissing => "policy_max_age_missing", Critical, Fixed;
    PolicyMaxAgeInvalid => "policy_max_age_invalid", Critical, Fixed;
    PolicyMaxAgeLow => "policy_max_age_low", Info, Fixed;
    PolicyMxMissing => "policy_mx_missing", Critical, Fixed;
    PolicyMxInvalid => "policy_mx_invalid", Critical, Fixed;
    PolicyDuplicateField => "policy_duplicate_field", Warning, Fixed;
    PolicyUnknownField => "policy_unknown_field", Info, Fixed;
    PolicyModeTesting => "policy_mode_testing", Info, Fixed;
    PolicyModeNone => "policy_mode_none", Info, Fixed;
    // --- id drift (RFC 8461 §3.1, §8.1)
    PolicyIdStale => "policy_id_stale", Critical, Fixed;
    PolicyIdChangedBodyUnchanged => "policy_id_changed_body_unchanged", Info, Fixed;
    PolicyUpdatedAfterId => "policy_updated_after_id", Warning, Fixed;
    // --- policies senders may still hold (RFC 8461 §3.3, §5.1, §8.3)
    MxRefusedByCachedPolicy => "mx_refused_by_cached_policy", Critical, Fixed;
    PolicyRemovedWithoutModeNone => "policy_removed_without_mode_none", Warning, Fixed;
    // --- MX records and coverage (RFC 8461 §4.1, RFC 7505)
    DomainNotFound => "domain_not_found", Critical, Fixed;
    MxLookupFailed => "mx_lookup_failed", Critical, Fixed;
    MxMissing => "mx_missing", Warning, Fixed;
    MxNull => "mx_null", Info, Fixed;
    MxTooMany => "mx_too_many", Warning, Fixed;
    MxNotCovered => "mx_not_covered", Critical, WhenEnforced;
    MxPatternUnused => "mx_pattern_unused", Info, Fixed;
    // --- MX transport (RFC 8461 §4.2, §7; RFC 3207)
    MxAddressLookupFailed => "mx_address_lookup_failed", Critical, Fixed;
    MxNoAddress => "mx_no_address", Critical, WhenEnforced;
    MxNoPublicAddress => "mx_no_public_address", Critical, WhenEnforced;
    MxIpv6Broken => "mx_ipv6_broken", Warning, Fixed;
    UnreachableFromExporter => "unreachable_from_exporter", Warning, Fixed;
    TargetAddressForbidden => "target_address_forbidden", Warning, Fixed;
    MxConnectRefused => "mx_connect_refused", Critical, WhenEnforced;
    MxConnectTimeout => "mx_connect_timeout", Critical, WhenEnforced;
    MxConnectFailed => "mx_connect_failed", Critical, WhenEnforced;
    SmtpGreetingRejected => "smtp_greeting_rejected", Critical, WhenEnforced;
    SmtpTimeout => "smtp_timeout", Critical, WhenEnforced;
    MxUnresponsiveInferred => "mx_unresponsive_inferred", Critical, WhenEnforced;
    SmtpProtocolError => "smtp_protocol_error", Critical, WhenEnforced;
    StarttlsNotOffered => "starttls_not_offered", Critical, WhenEnforced;
    StarttlsRefused => "starttls_refused", Critical, WhenEnforced;
    StarttlsInjection => "starttls_injection", Critical, WhenEnforced;
    TlsNoCommonVersion => "tls_no_common_version", Critical, WhenEnforced;
    TlsHandshakeFailed => "tls_handshake_failed", Critical, WhenEnforced;
    TlsVersionTooOld => "tls_version_too_old", Critical, WhenEnforced;
    MxCertExpired => "mx_cert_expired", Critical, WhenEnforced;
    MxCertExpiring => "mx_cert_expiring", Warning, Fixed;
    MxCertNotYetValid => "mx_cert_not_yet_valid", Critical, WhenEnforced;
    MxCertNameMismatch => "mx_cert_name_mismatch", Critical, WhenEnforced;
    MxCertUntrusted => "mx_cert_untrusted", Critical, WhenEnforced;
    CheckTimedOut => "check_timed_out", Warning, Fixed;
    // --- TLS-RPT (RFC 8460 §3)
    TlsrptMissing => "tlsrpt_missing", Info, Fixed;
    TlsrptLookupFailed => "tlsrpt_lookup_failed", Warning, Fixed;
    TlsrptMultiple => "tlsrpt_multiple", Warning, Fixed;
    TlsrptInvalid => "tlsrpt_invalid", Warning, Fixed;
    // --- TLS-RPT reports received (RFC 8460 §4): what senders saw
    TlsrptReporterSilent => "tlsrpt_reporter_silent", Warning, Fixed;
    TlsrptReportedFailureUnconfirmed => "tlsrpt_reported_failure_unconfirmed", Warning, Fixed;
    TlsrptProbeFaultUnreported => "tlsrpt_probe_fault_unreported", Info, Fixed;
    // --- operator expectations (configuration)
    ExpectationModeMismatch => "expectation_mode_mismatch", Warning, Fixed;
    ExpectationMxMismatch => "expectation_mx_mismatch", Warning, Fixed;
    ExpectationMaxAgeLow => "expectation_max_age_low", Warning, Fixed;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong (or worth knowing) about a domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    /// The host the finding concerns (an MX, the policy host), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The address, where the finding differs per address of a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// 1-based line of the policy file the finding concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// What is wrong, naming the offending value. Borrowed when the text is fixed: a fleet
    /// of 100,000 domains mostly carries the same few fixed messages, so they are not copied.
    pub message: Cow<'static, str>,
}

impl Finding {
    /// A finding with the code's default severity.
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Finding {
        Finding {
            code,
            severity: code.default_severity(),
            host: None,
            address: None,
            line: None,
            message: message.into(),
        }
    }

    pub fn with_severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    pub fn with_host(mut self, host: impl Into<String>) -> Finding {
        self.host = Some(host.into());
        self
    }

    pub fn with_address(mut self, address: IpAddr) -> Finding {
        self.address = Some(address);
        self
    }

    pub fn at_line(mut self, line: u32) -> Finding {
        self.line = Some(line);
        self
    }
}

/// The order findings are listed in: most severe first, then by code, host, address and line.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(order);
}

/// The comparison behind [`sort`].
pub fn order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    b.severity
        .cmp(&a.severity)
        .then_with(|| a.code.cmp(&b.code))
        .then_with(|| a.host.cmp(&b.host))
        .then_with(|| a.address.cmp(&b.address))
        .then_with(|| a.line.cmp(&b.line))
}

/// Collects the findings of one check. Severities that depend on the policy (see [`Scope`])
/// and the order are settled once, by [`Findings::finish`].
#[derive(Clone, Debug, Default)]
pub struct Findings(Vec<Finding>);

impl Findings {
    pub fn new() -> Findings {
        Findings(Vec::new())
    }

    pub fn push(&mut self, finding: Finding) {
        self.0.push(finding);
    }

    /// Whether a finding with `code` (about `host`, if given) is present.
    pub fn has(&self, code: Code, host: Option<&str>) -> bool {
        self.0
            .iter()
            .any(|f| f.code == code && (host.is_none() || f.host.as_deref() == host))
    }

    /// The findings with their final severity (`enforced`: the record is valid and the policy
    /// is in `enforce` mode), in [`sort`] order.
    pub fn finish(mut self, enforced: bool) -> Vec<Finding> {
        for finding in &mut self.0 {
            if finding.code.scope() == Scope::WhenEnforced {
                finding.severity = finding.code.severity(enforced);
            }
        }
        sort(&mut self.0);
        self.0
    }
}

impl Extend<Finding> for Findings {
    fn extend<I: IntoIterator<Item = Finding>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforced_scope_lowers_mx_faults_to_warnings_only_when_not_enforced() {
        assert_eq!(Code::MxCertExpired.severity(true), Severity::Critical);
        assert_eq!(Code::MxCertExpired.severity(false), Severity::Warning);
        // Fixed codes keep their severity either way.
        assert_eq!(Code::MxCertExpiring.severity(true), Severity::Warning);
        assert_eq!(Code::PolicyIdStale.severity(false), Severity::Critical);
        assert_eq!(Code::MxPatternUnused.severity(false), Severity::Info);
    }

    #[test]
    fn findings_finish_settles_severity_then_sorts() {
        let mut findings = Findings::new();
        findings.push(Finding::new(Code::MxPatternUnused, "unused"));
        findings.push(Finding::new(Code::MxConnectRefused, "refused").with_host("b.example"));
        findings.push(Finding::new(Code::MxConnectRefused, "refused").with_host("a.example"));
        findings.push(Finding::new(Code::PolicyModeTesting, "testing"));
        findings.push(Finding::new(Code::MxCertExpiring, "expiring"));
        let testing = findings.clone().finish(false);
        let codes: Vec<(Code, Severity)> = testing.iter().map(|f| (f.code, f.severity)).collect();
        assert_eq!(
            codes,
            [
                (Code::MxConnectRefused, Severity::Warning),
                (Code::MxConnectRefused, Severity::Warning),
                (Code::MxCertExpiring, Severity::Warning),
                (Code::PolicyModeTesting, Severity::Info),
                (Code::MxPatternUnused, Severity::Info),
            ]
        );
        assert_eq!(testing[0].host.as_deref(), Some("a.example"));
        let enforced = findings.finish(true);
        assert_eq!(enforced[0].severity, Severity::Critical);
        assert_eq!(enforced[2].code, Code::MxCertExpiring);
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name} is not snake_case"
            );
            // serde and as_str agree
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{name}\""));
        }
    }
}

/// What a code means, where the rule comes from, and how to fix it. `docs/findings.md` is
/// generated from this table (a test fails when the file is out of date).
#[derive(Clone, Copy, Debug)]
pub struct CodeDoc {
    pub meaning: &'static str,
    pub reference: &'static str,
    pub fix: &'static str,
}

impl Code {
    pub fn doc(self) -> CodeDoc {
        let (meaning, reference, fix) = match self {
            Code::StsRecordMissing => ("No TXT record at `_mta-sts.<domain>` begins with `v=STSv1;`: the domain does not advertise MTA-STS.", "RFC 8461 §3.1", "Publish `_mta-sts.<domain>. TXT \"v=STSv1; id=<new id>;\"` once the policy file is served."),
            Code::StsRecordLookupFailed => ("The TXT lookup of `_mta-sts.<domain>` failed (SERVFAIL, REFUSED or timeout). This is not the same as a missing record: senders that hit the same failure cannot discover the policy.", "RFC 8461 §3.1, §3.3", "Check the domain's authoritative name servers (DNSSEC, lame delegation, firewalls); retry from another resolver. If most domains fail alike, the exporter's own resolver is the likely cause: the message names the resolver asked (`mta_sts_exporter_blind`, docs/operations.md)."),
            Code::StsRecordMultiple => ("More than one TXT record begins with `v=STSv1;`. Senders must then assume the domain has no policy.", "RFC 8461 §3.1", "Delete all but one `_mta-sts` TXT record."),
            Code::StsRecordInvalid => ("The `_mta-sts` record breaks the grammar (for example an `id` that is not 1-32 letters and digits, or a malformed field). Senders treat the domain as having no policy.", "RFC 8461 §3.1", "Rewrite the record as `v=STSv1; id=<1-32 letters/digits>;`."),
            Code::StsRecordDiscarded => ("A TXT record that looks like an MTA-STS record does not begin with exactly `v=STSv1;` (e.g. `v=STSv1 ;` or `v=stsv1;`), so senders discard it.", "RFC 8461 §3.1, errata 6285", "Make the record begin with exactly `v=STSv1;` (case-sensitive, no space before the semicolon)."),
            Code::StsRecordDuplicateField => ("A field appears twice in the `_mta-sts` record; senders use the first one only.", "RFC 8461 §3.1, §3.2", "Remove the duplicate field."),
            Code::StsRecordExtensionField => ("The record has an extension field senders ignore.", "RFC 8461 §3.1", "Nothing to do unless the field is a typo of `id`."),
            Code::StsRecordCname => ("`_mta-sts.<domain>` is a CNAME; the record is delegated to the named target.", "RFC 8461 §3.1, §8.2", "Nothing to do; make sure the delegate serves a policy valid for `mta-sts.<domain>`."),
            Code::PolicyHostUnresolvable => ("The policy host `mta-sts.<domain>` has no A or AAAA record although the TXT record advertises a policy.", "RFC 8461 §3.2", "Publish address records for `mta-sts.<domain>` pointing at the web server that serves the policy."),
            Code::PolicyHostLookupFailed => ("Looking up the addresses of `mta-sts.<domain>` failed (SERVFAIL, REFUSED or timeout).", "RFC 8461 §3.3", "Check the authoritative name servers of the domain. If most domains fail alike, the exporter's own resolver is the likely cause: the message names the resolver asked (`mta_sts_exporter_blind`, docs/operations.md)."),
            Code::PolicyConnectRefused => ("The policy host refused the HTTPS connection.", "RFC 8461 §3.3", "Make the web server listen on port 443 at every address of `mta-sts.<domain>`."),
            Code::PolicyConnectTimeout => ("Connecting to the policy host on port 443 timed out.", "RFC 8461 §3.3", "Check firewalls and that the address records point at a running web server."),
            Code::PolicyConnectFailed => ("Connecting to the policy host failed for another reason (network unreachable, reset).", "RFC 8461 §3.3", "Check routing and the web server."),
            Code::PolicyTlsFailed => ("The TLS handshake with the policy host failed (no common version or cipher, garbage, timeout).", "RFC 8461 §3.3, §7.1", "Serve TLS 1.2 or 1.3 with a modern cipher suite, and answer the SNI name `mta-sts.<domain>`."),
            Code::PolicyHttpStatus => ("The policy URL did not answer 200 OK; only a 200 response is a policy.", "RFC 8461 §3.3", "Serve the policy at exactly `https://mta-sts.<domain>/.well-known/mta-sts.txt`."),
            Code::PolicyRedirect => ("The policy URL answered with a redirect; senders must not follow redirects.", "RFC 8461 §3.3", "Serve the file directly at the well-known URL with status 200 (no HTTP-to-HTTPS or www redirects on that path)."),
            Code::PolicyHttpError => ("The HTTP response was malformed (bad framing, too many or too large headers, early close).", "RFC 8461 §3.3", "Fix the web server or proxy in front of the policy host."),
            Code::PolicyContentType => ("The policy is not served as `text/plain`; many senders reject it.", "RFC 8461 §3.2", "Serve `/.well-known/mta-sts.txt` with `Content-Type: text/plain` (a charset parameter is fine)."),
            Code::PolicyContentEncoding => ("The policy host sent the policy with a `Content-Encoding` (e.g. gzip) although the request asked for `identity`. Senders whose HTTP client decodes it read the policy; others see compressed bytes and no policy. A coding the exporter cannot decode leaves the policy unreadable (`policy_http_error`).", "RFC 8461 §3.3, RFC 9110 §8.4", "Serve `/.well-known/mta-sts.txt` uncompressed (disable gzip or brotli for that path)."),
            Code::PolicyTooLarge => ("The policy body is larger than 64 KiB, the suggested maximum; senders may reject it.", "RFC 8461 §3.3", "Serve only the policy lines; check that the URL is not an HTML page or an endless stream."),
            Code::PolicyTimeout => ("The policy fetch did not finish in time (TLS, headers or body).", "RFC 8461 §3.3", "Make the policy host answer quickly; senders give up after about a minute."),
            Code::PolicyWithoutRecord => ("`mta-sts.<domain>` serves a valid policy but there is no `_mta-sts` TXT record, so senders never fetch it.", "RFC 8461 §3.1", "Publish `_mta-sts.<domain>. TXT \"v=STSv1; id=<id>;\"`."),
            Code::PolicyHostIpv6Broken => ("The policy host serves the policy over IPv4 but the same fetch from its IPv6 addresses fails (connection, TLS, certificate or HTTP): senders that prefer IPv6 cannot fetch the policy.", "RFC 8461 §3.3, RFC 6724", "Fix the AAAA records of `mta-sts.<domain>` or the web server's IPv6 listener and certificate, or remove the AAAA records."),
            Code::PolicyHostIpv4Broken => ("The policy host serves the policy over IPv6 but the same fetch from its IPv4 addresses fails (connection, TLS, certificate or HTTP): the many senders without IPv6 cannot fetch the policy, so they do without it (or keep a cached copy).", "RFC 8461 §3.3", "Fix the A records of `mta-sts.<domain>` or the web server's IPv4 listener and certificate."),
            Code::PolicyDiffersByFamily => ("The policy host serves a different policy file over IPv6 than over IPv4 (two web servers or virtual hosts, one of them not updated). Senders cache whichever copy they fetched, by the same id: IPv6-first senders such as Exchange Online may hold the other one, and refuse MX hosts only this one covers.", "RFC 8461 §3.3, §5.1", "Serve the same file from every address of `mta-sts.<domain>`; then publish a new id so senders fetch it again."),
            Code::PolicyCertExpired => ("The certificate of the policy host has expired: senders cannot fetch the policy (cached policies stay until max_age).", "RFC 8461 §3.3", "Renew the certificate of `mta-sts.<domain>` and check automatic renewal covers this host."),
            Code::PolicyCertExpiring => ("The certificate of the policy host expires within the warning window.", "RFC 8461 §3.3", "Renew the certificate of `mta-sts.<domain>` before it expires."),
            Code::PolicyCertNotYetValid => ("The certificate of the policy host is not valid yet (clock or issuance error).", "RFC 8461 §3.3", "Serve a currently valid certificate; check the server's clock."),
            Code::PolicyCertNameMismatch => ("The certificate of the policy host is not valid for `mta-sts.<domain>` (names are matched against subjectAltName DNS names only).", "RFC 8461 §3.3, §8.2", "Serve a certificate whose subjectAltName includes `mta-sts.<domain>` (also when the host is delegated to a provider)."),
            Code::PolicyCertUntrusted => ("The certificate of the policy host does not chain to a trusted root (unknown or self-signed issuer, missing intermediate).", "RFC 8461 §3.3", "Serve the full chain (leaf and intermediates) from a publicly trusted CA."),
            Code::PolicyNotUtf8 => ("The policy body is not valid UTF-8.", "RFC 8461 §3.2", "Save the policy as plain ASCII/UTF-8 text."),
            Code::PolicyBom => ("The policy begins with a UTF-8 byte order mark, which turns the first key into an unknown one.", "RFC 8461 §3.2", "Save the file without a BOM."),
            Code::PolicyLeadingWhitespace => ("A policy line begins with whitespace, which the grammar does not allow.", "RFC 8461 §3.2", "Remove the leading spaces or tabs."),
            Code::PolicyLineInvalid => ("A policy line is not `key: value` (missing colon, invalid key, empty value, control characters).", "RFC 8461 §3.2", "Write every line as `key: value`, one field per line."),
            Code::PolicyMixedLineEndings => ("The policy mixes LF and CRLF line endings.", "RFC 8461 §3.2, errata 6253", "Use one line ending throughout (CRLF or LF)."),
            Code::PolicyVersionMissing => ("The policy has no `version` field.", "RFC 8461 §3.2", "Add `version: STSv1`."),
            Code::PolicyVersionInvalid => ("The `version` field is not exactly `STSv1`.", "RFC 8461 §3.2", "Write `version: STSv1` (case-sensitive)."),
            Code::PolicyModeMissing => ("The policy has no `mode` field.", "RFC 8461 §3.2", "Add `mode: testing` (then `enforce` once reports are clean)."),
            Code::PolicyModeInvalid => ("The `mode` field is not `enforce`, `testing` or `none` (case-sensitive).", "RFC 8461 §3.2", "Use one of `enforce`, `testing`, `none` in lower case."),
            Code::PolicyMaxAgeMissing => ("The policy has no `max_age` field.", "RFC 8461 §3.2", "Add `max_age: 604800` (one week) or longer once stable."),
            Code::PolicyMaxAgeInvalid => ("`max_age` is not a plain number of seconds between 0 and 31557600.", "RFC 8461 §3.2", "Write seconds as digits only, at most 31557600 (one year)."),
            Code::PolicyMaxAgeLow => ("`max_age` is below one day: a cached policy protects for a short time only, and some senders ignore very short lifetimes.", "RFC 8461 §3.2, §10", "Use at least 86400 (one day); a week or more once the policy is stable."),
            Code::PolicyMxMissing => ("The policy has no `mx` line although mode is not `none`.", "RFC 8461 §3.2", "Add one `mx:` line per MX host or wildcard pattern."),
            Code::PolicyMxInvalid => ("An `mx` value is not a valid pattern (`*.` is allowed only as the whole left-most label; one host per line; A-labels for IDNs).", "RFC 8461 §3.2, §4.1", "Write one `mx: host.example.com` or `mx: *.example.com` per line."),
            Code::PolicyDuplicateField => ("A field other than `mx` appears more than once; senders use the first one only.", "RFC 8461 §3.2", "Remove the duplicate line."),
            Code::PolicyUnknownField => ("The policy has a field senders ignore (possibly a typo of a real field).", "RFC 8461 §3.2", "Remove it, or correct the key's spelling and case."),
            Code::PolicyModeTesting => ("The policy is in testing mode: senders report failures (TLS-RPT) but still deliver.", "RFC 8461 §5", "Move to `mode: enforce` (and bump the record's `id`) once TLS-RPT reports are clean."),
            Code::PolicyModeNone => ("The policy is in mode `none`: senders do not apply it.", "RFC 8461 §5, §8.3", "Nothing to do if MTA-STS is being withdrawn; otherwise use `testing` or `enforce`."),
            Code::PolicyIdStale => ("The policy body changed but the `_mta-sts` record's `id` did not. Senders that cached the old policy keep it until its max_age runs out: a newly added MX is refused by them. The finding stays until the id changes.", "RFC 8461 §3.1, §5.1", "Publish a new `id` in the `_mta-sts` TXT record (e.g. a timestamp like 20261129T1200)."),
            Code::PolicyIdChangedBodyUnchanged => ("The record's `id` changed but the policy body did not: senders re-fetch an unchanged policy, or the policy host has not been updated yet.", "RFC 8461 §3.1, §8.1", "Nothing to do if intended; otherwise update the policy file first, then the id."),
            Code::PolicyUpdatedAfterId => ("The policy body changed after the `id` had been bumped: senders that fetched in between cached the old body under the new id and will not fetch again.", "RFC 8461 §8.1", "Bump the `id` again now; in future publish the policy file first and change the id after."),
            Code::MxRefusedByCachedPolicy => ("An MX of the domain is not covered by an earlier policy that senders may still hold: one served under the id the record carries now (so they never fetch again), or any earlier one while the domain serves no usable policy. Those senders refuse the MX until their copy expires (last seen served + its max_age); the message gives the date. One finding per such MX.", "RFC 8461 §3.3, §5.1", "If the record still carries the old id, publish a new id now (the policy file first). Otherwise keep the old MX working, or wait for the date before relying on the new MX."),
            Code::PolicyRemovedWithoutModeNone => ("The `_mta-sts` record is gone, but the last policy seen was not `mode: none`: senders that cached it keep applying it until it expires (the message gives the date), and refuse MX hosts it does not cover.", "RFC 8461 §8.3", "Restore the record and serve `mode: none` (with a new id) for at least the old max_age, then remove both."),
            Code::DomainNotFound => ("The domain itself does not exist: its MX lookup answered NXDOMAIN, so there are no MX and no address records to fall back to, and mail to it bounces.", "RFC 5321 §5.1, RFC 8020", "Check the configured name for a typo, and whether the domain expired or was never delegated (`whois`, `dig NS <domain>`); remove it from the configuration if it is gone. If most domains are not found, the exporter's resolver is the likely cause (`mta_sts_exporter_blind{reason=\"resolver_nxdomain\"}`)."),
            Code::MxLookupFailed => ("The MX lookup failed (SERVFAIL, REFUSED or timeout); this is not the same as no MX.", "RFC 5321 §5.1", "Check the domain's authoritative name servers. If most domains fail alike, the exporter's own resolver is the likely cause: the message names the resolver asked (`mta_sts_exporter_blind`, docs/operations.md)."),
            Code::MxMissing => ("The domain has no MX record; senders deliver to its address records (implicit MX).", "RFC 5321 §5.1", "Publish MX records naming the mail servers, and cover them in the policy."),
            Code::MxNull => ("The domain publishes a null MX: it accepts no mail.", "RFC 7505", "Nothing to do if the domain sends no mail; an MTA-STS policy is then unnecessary."),
            Code::CheckTimedOut => ("The check did not finish within its deadline (`global.timeouts.check`): the probes still running were abandoned, so what senders see of that host is unknown; the verdict is undetermined when the advertised policy was not fetched or an abandoned MX could decide it. The message names each address not probed and why (probe abandoned; still waiting for a politeness slot). Time waiting for a politeness slot does not count against the deadline.", "mta-sts-exporter limit (`global.timeouts.check`)", "A probe that has its slot and still runs at the deadline: a server slower than `timeouts.check` allows (trickling replies, a slow TLS handshake). Fix or remove the slow host, shorten `timeouts.smtp`, or raise `timeouts.check`."),
            Code::MxTooMany => ("The domain publishes more MX records, or an MX host has more addresses, than the exporter checks; only the most preferred MX hosts and the first addresses were checked.", "mta-sts-exporter limit (`global.limits`)", "Reduce the MX set, or raise `max_mx_per_domain` / `max_addresses_per_mx` in the configuration."),
            Code::MxNotCovered => ("An MX host matches no `mx` pattern of the policy: a sender enforcing the policy refuses to deliver to it. Critical in enforce mode, warning otherwise.", "RFC 8461 §4.1", "Add `mx: <host>` (or a wildcard that matches exactly one left-most label) to the policy and bump the record's `id`."),
            Code::MxPatternUnused => ("A policy `mx` pattern matches none of the domain's MX hosts (a leftover or a typo).", "RFC 8461 §4.1", "Remove stale patterns, or check the spelling."),
            Code::MxAddressLookupFailed => ("Looking up the addresses of an MX host failed (SERVFAIL, REFUSED or timeout).", "RFC 5321 §5.1", "Check the name servers of the MX host's domain. If most domains fail alike, the exporter's own resolver is the likely cause: the message names the resolver asked (`mta_sts_exporter_blind`, docs/operations.md)."),
            Code::MxNoPublicAddress => ("Every address of an MX host is one the exporter does not connect to (loopback, private, link-local, multicast, ...): a sender on the internet cannot deliver there either. Critical in enforce mode, warning otherwise.", "RFC 5321 §5.1, mta-sts-exporter safety rule", "Publish public addresses for the MX host; for a private mail network or a lab set allow_private_targets so the exporter probes them."),
            Code::UnreachableFromExporter => ("The machine the exporter runs on has no route to any address of this host (typically: the host is reachable over IPv6 only and the exporter's network has no IPv6), so what senders meet there is unknown. Not a fault of the domain; addresses of a family without a route are never probed or judged.", "mta-sts-exporter", "Give the exporter's network the missing family (IPv6 egress for the pod or host), or set ip_families to what it has and accept that such hosts stay unknown."),
            Code::MxIpv6Broken => ("An MX host works at its IPv4 addresses but fails at every IPv6 address (its AAAA points nowhere useful, or the IPv6 path is broken). Senders that prefer IPv6 meet the failure first; the per-address findings say how each fails.", "RFC 8461 §4.2, RFC 6724", "Fix the AAAA records of the MX host or its IPv6 listener, or remove the AAAA records."),
            Code::MxNoAddress => ("An MX host has no A or AAAA record: no mail can be delivered to it. Critical in enforce mode, warning otherwise.", "RFC 5321 §5.1", "Publish address records for the MX host or remove the MX record."),
            Code::TargetAddressForbidden => ("A host resolves to a loopback, private, link-local, CGNAT or other non-public address; the exporter does not connect there unless allowed.", "mta-sts-exporter safety rule", "Publish public addresses, or set allow_private_targets for private mail networks and labs."),
            Code::MxConnectRefused => ("The MX host refused the connection on port 25. Critical in enforce mode, warning otherwise.", "RFC 5321", "Make the SMTP server listen on port 25 at every address of the MX host."),
            Code::MxConnectTimeout => ("Connecting to the MX host on port 25 timed out. If every MX of every domain shows this, outbound port 25 is probably blocked where the exporter runs.", "RFC 5321", "Check firewalls on the MX; check the exporter's egress (many clouds block port 25)."),
            Code::MxConnectFailed => ("Connecting to the MX host failed for another reason (network unreachable, reset).", "RFC 5321", "Check routing to the MX host."),
            Code::SmtpGreetingRejected => ("The MX host greeted with a 4xx/5xx code instead of 220.", "RFC 5321 §4.2, §4.3.2", "Check the SMTP server's load limits and access rules for the exporter's address."),
            Code::SmtpTimeout => ("The SMTP dialogue did not finish in time (greeting, EHLO or STARTTLS reply).", "RFC 5321 §4.5.3.2", "Check the SMTP server and any tarpit or greylisting in front of it."),
Code::MxUnresponsiveInferred => ("The address was not probed now: its last probes, by this or other MX names sharing it, all timed out connecting or waiting for the greeting, so the exporter takes it for unresponsive (as Postfix marks a dead destination) and answers from that state, while one probe at a time re-tests it. The message says how many probes, over how long, and since when. Critical in enforce mode, warning otherwise: a sender cannot deliver there either.", "mta-sts-exporter rule (`global.unresponsive_address`), RFC 5321 §4.5.3.2", "As for `smtp_timeout` and `mx_connect_timeout`: fix or remove the silent address (often a tarpit or a decommissioned host shared by parked domains). The finding clears at the first probe that gets any answer."),
            Code::SmtpProtocolError => ("The MX host did not speak valid SMTP (garbage, over-long lines, endless replies, EHLO refused).", "RFC 5321 §4.2", "Check the software listening on port 25."),
            Code::StarttlsNotOffered => ("The MX host does not advertise STARTTLS; an enforcing sender refuses it.", "RFC 8461 §4.2, RFC 3207", "Enable STARTTLS on the SMTP server."),
            Code::StarttlsRefused => ("The MX host advertised STARTTLS but refused the command (e.g. 454).", "RFC 3207 §4", "Fix the SMTP server's TLS configuration (certificate and key files, permissions)."),
            Code::StarttlsInjection => ("The MX host sent data after its STARTTLS 220 reply and before the TLS handshake (command injection, CVE-2011-0411 class).", "RFC 3207 §5", "Update the SMTP server or the middlebox in front of it."),
            Code::TlsNoCommonVersion => ("The TLS handshake failed because no TLS version or cipher suite is in common (the exporter speaks TLS 1.2 with ECDHE+AEAD and TLS 1.3). Not a certificate fault.", "RFC 8461 §7.2", "Enable TLS 1.2/1.3 with ECDHE and AES-GCM or ChaCha20-Poly1305 suites."),
            Code::TlsHandshakeFailed => ("The TLS handshake with the MX host failed (garbage, reset, alert, timeout).", "RFC 8461 §4.2", "Check the SMTP server's TLS configuration."),
            Code::TlsVersionTooOld => ("The MX host speaks only TLS versions below 1.2.", "RFC 8461 §7.2", "Enable TLS 1.2 and 1.3 on the SMTP server."),
            Code::MxCertExpired => ("The certificate of an MX host has expired: an enforcing sender refuses it.", "RFC 8461 §4.2", "Renew the MX certificate and reload the SMTP server."),
            Code::MxCertExpiring => ("The certificate of an MX host expires within the warning window.", "RFC 8461 §4.2", "Renew the MX certificate before it expires."),
            Code::MxCertNotYetValid => ("The certificate of an MX host is not valid yet.", "RFC 8461 §4.2", "Serve a currently valid certificate; check the clock."),
            Code::MxCertNameMismatch => ("The certificate of an MX host is not valid for the MX host name (subjectAltName DNS names only; `*` only as the whole left-most label).", "RFC 8461 §4.2, RFC 6125", "Serve a certificate whose subjectAltName includes the MX host name."),
            Code::MxCertUntrusted => ("The certificate of an MX host does not chain to a trusted root (unknown or self-signed issuer, missing intermediate).", "RFC 8461 §4.2", "Serve the full chain from a publicly trusted CA."),
            Code::TlsrptMissing => ("No TLS-RPT record at `_smtp._tls.<domain>`: nobody receives reports of senders' TLS failures.", "RFC 8460 §3", "Publish `_smtp._tls.<domain>. TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@<domain>\"`."),
            Code::TlsrptLookupFailed => ("The TXT lookup of `_smtp._tls.<domain>` failed (SERVFAIL, REFUSED or timeout).", "RFC 8460 §3", "Check the domain's authoritative name servers. If most domains fail alike, the exporter's own resolver is the likely cause: the message names the resolver asked (`mta_sts_exporter_blind`, docs/operations.md)."),
            Code::TlsrptMultiple => ("More than one TLS-RPT record: senders ignore them all.", "RFC 8460 §3", "Keep exactly one `v=TLSRPTv1` record."),
            Code::ExpectationModeMismatch => ("The policy's mode differs from the mode the configuration expects for this domain (for example a policy moved back from enforce to testing).", "mta-sts-exporter configuration (`expect.mode`)", "Restore the expected mode, or update the expectation if the change was intended."),
            Code::ExpectationMxMismatch => ("The policy's `mx` patterns differ from the set the configuration expects for this domain.", "mta-sts-exporter configuration (`expect.mx`)", "Restore the expected patterns (and bump the record's `id`), or update the expectation."),
            Code::ExpectationMaxAgeLow => ("The policy's `max_age` is below the minimum the configuration expects for this domain.", "mta-sts-exporter configuration (`expect.min_max_age`)", "Raise `max_age` (and bump the record's `id`), or lower the expectation."),
            Code::TlsrptReporterSilent => ("A sender that sent this domain a TLS-RPT report about every day (at least three) has sent none for longer than `tlsrpt.silent_after` (3 days by default). Reports stop when the `rua=` destination stops accepting them (mailbox full or gone, HTTPS endpoint down or refusing), when the `_smtp._tls` record changed, or when the sender stopped delivering mail to the domain.", "RFC 8460 §3, §5", "Check the `_smtp._tls` record (`tlsrpt_*` findings), that mail to the `mailto:` rua is delivered (and reaches the maildir), and that the HTTPS rua answers `POST` with 2xx; `mta_sts_tlsrpt_rejected_reports_total` shows refused reports."),
            Code::TlsrptReportedFailureUnconfirmed => ("Senders reported failed sessions of a result type (e.g. `certificate-expired` on `mx2`, `sts-policy-fetch-error`) in reports ending in the last two days, but our latest probe of that MX (or fetch of the policy) sees no such fault. Senders reach what we do not: another address of the MX (IPv6, another region, a load-balancer member with an old certificate), another SNI, or a fault fixed since the reports' day.", "RFC 8460 §4.3", "Probe every address of the MX (`mta_sts_mx_*` per address), compare the certificate each load-balancer member serves, and check IPv6; if the fault was fixed after the reports' date range, the finding clears once newer reports arrive."),
            Code::TlsrptProbeFaultUnreported => ("Our probe finds a fault on an MX (expired, mismatched or untrusted certificate, no STARTTLS) that senders delivering successfully in the last two days do not report. Senders may reach other addresses of the MX than our probe, or deliver to a more preferred MX and never try this one.", "RFC 8460 §4.3", "Fix the fault anyway (a sender falling back to this MX will fail); check whether our probe reaches the same addresses senders do (split-horizon DNS, firewalls, IPv4 vs IPv6)."),
            Code::TlsrptInvalid => ("The TLS-RPT record breaks the grammar (missing or malformed `rua`, a URI scheme other than mailto: or https:).", "RFC 8460 §3", "Write `v=TLSRPTv1; rua=mailto:addr@example.com` (or an https: URI)."),
        };
        CodeDoc {
            meaning,
            reference,
            fix,
        }
    }
}

/// The text of `docs/findings.md`, generated from [`Code::ALL`] and [`Code::doc`].
pub fn findings_markdown() -> String {
    let mut out = String::from(
        "# Findings\n\n\
         <!-- Generated from src/finding.rs by `UPDATE_DOCS=1 cargo test --test suite docs::`; do not edit by hand. -->\n\n\
         Every check produces a list of findings. A finding has a stable `code` (below), a\n\
         `severity`, the `host` and `address` it concerns where there is one, the policy `line`\n\
         for policy-file findings, and a message naming the offending value. Codes are a public\n\
         contract: they appear in `check --format json`, in the `code` label of metrics, and in\n\
         alert rules.\n\n\
         Severities:\n\n\
         - **critical**: a sender honouring the policy would refuse mail, or the policy is unusable.\n\
         - **warning**: wrong, or about to become critical (an expiring certificate, an MX fault\n\
           while the policy is only in testing mode).\n\
         - **info**: worth knowing.\n\n\
         MX findings (coverage, connection, SMTP, STARTTLS, TLS and MX certificate faults) are\n\
         critical when the domain's policy is valid and in `enforce` mode, and warnings\n\
         otherwise (marked *critical in enforce mode* below); every other code always has the\n\
         severity listed.\n\n",
    );
    for code in Code::ALL {
        let doc = code.doc();
        out.push_str(&format!(
            "## `{}`\n\n**Severity:** {} · **Reference:** {}\n\n{}\n\n**Fix:** {}\n\n",
            code.as_str(),
            match code.scope() {
                Scope::Fixed => code.default_severity().to_string(),
                Scope::WhenEnforced => format!(
                    "{} in enforce mode, {} otherwise",
                    code.default_severity(),
                    code.severity(false)
                ),
            },
            doc.reference,
            doc.meaning,
            doc.fix
        ));
    }
    out
}
