//! The vocabulary of findings: stable codes, severities and the `Finding` value.
//!
//! Every code here is documented in `docs/findings.md` (a test keeps the two in step).
//! Codes are a public contract: they become the `code` label of `mta_sts_finding`.

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

macro_rules! codes {
    ($($variant:ident => $name:literal, $severity:ident;)+) => {
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

            /// The severity a finding with this code has unless the check raises or lowers it
            /// (MX faults are critical only when the policy is enforced; see `docs/findings.md`).
            pub fn default_severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)+
                }
            }
        }
    };
}

codes! {
    // --- `_mta-sts` TXT record (RFC 8461 §3.1)
    StsRecordMissing => "sts_record_missing", Warning;
    StsRecordLookupFailed => "sts_record_lookup_failed", Critical;
    StsRecordMultiple => "sts_record_multiple", Critical;
    StsRecordInvalid => "sts_record_invalid", Critical;
    StsRecordDiscarded => "sts_record_discarded", Warning;
    StsRecordDuplicateField => "sts_record_duplicate_field", Warning;
    StsRecordExtensionField => "sts_record_extension_field", Info;
    StsRecordCname => "sts_record_cname", Info;
    // --- policy host and fetch (RFC 8461 §3.2, §3.3)
    PolicyHostUnresolvable => "policy_host_unresolvable", Critical;
    PolicyHostLookupFailed => "policy_host_lookup_failed", Critical;
    PolicyConnectRefused => "policy_connect_refused", Critical;
    PolicyConnectTimeout => "policy_connect_timeout", Critical;
    PolicyConnectFailed => "policy_connect_failed", Critical;
    PolicyTlsFailed => "policy_tls_failed", Critical;
    PolicyHttpStatus => "policy_http_status", Critical;
    PolicyRedirect => "policy_redirect", Critical;
    PolicyHttpError => "policy_http_error", Critical;
    PolicyContentType => "policy_content_type", Critical;
    PolicyTooLarge => "policy_too_large", Critical;
    PolicyTimeout => "policy_timeout", Critical;
    PolicyWithoutRecord => "policy_without_record", Warning;
    // --- policy host certificate (RFC 8461 §3.3)
    PolicyCertExpired => "policy_cert_expired", Critical;
    PolicyCertExpiring => "policy_cert_expiring", Warning;
    PolicyCertNotYetValid => "policy_cert_not_yet_valid", Critical;
    PolicyCertNameMismatch => "policy_cert_name_mismatch", Critical;
    PolicyCertUntrusted => "policy_cert_untrusted", Critical;
    // --- policy body (RFC 8461 §3.2)
    PolicyNotUtf8 => "policy_not_utf8", Critical;
    PolicyBom => "policy_bom", Critical;
    PolicyLeadingWhitespace => "policy_leading_whitespace", Critical;
    PolicyLineInvalid => "policy_line_invalid", Critical;
    PolicyMixedLineEndings => "policy_mixed_line_endings", Warning;
    PolicyVersionMissing => "policy_version_missing", Critical;
    PolicyVersionInvalid => "policy_version_invalid", Critical;
    PolicyModeMissing => "policy_mode_missing", Critical;
    PolicyModeInvalid => "policy_mode_invalid", Critical;
    PolicyMaxAgeMissing => "policy_max_age_missing", Critical;
    PolicyMaxAgeInvalid => "policy_max_age_invalid", Critical;
    PolicyMaxAgeLow => "policy_max_age_low", Info;
    PolicyMxMissing => "policy_mx_missing", Critical;
    PolicyMxInvalid => "policy_mx_invalid", Critical;
    PolicyDuplicateField => "policy_duplicate_field", Warning;
    PolicyUnknownField => "policy_unknown_field", Info;
    PolicyModeTesting => "policy_mode_testing", Info;
    PolicyModeNone => "policy_mode_none", Info;
    // --- MX records and coverage (RFC 8461 §4.1, RFC 7505)
    MxLookupFailed => "mx_lookup_failed", Critical;
    MxMissing => "mx_missing", Warning;
    MxNull => "mx_null", Info;
    MxTooMany => "mx_too_many", Warning;
    MxNotCovered => "mx_not_covered", Critical;
    MxPatternUnused => "mx_pattern_unused", Info;
    // --- MX transport (RFC 8461 §4.2, §7; RFC 3207)
    MxAddressLookupFailed => "mx_address_lookup_failed", Critical;
    MxNoAddress => "mx_no_address", Critical;
    TargetAddressForbidden => "target_address_forbidden", Warning;
    MxConnectRefused => "mx_connect_refused", Critical;
    MxConnectTimeout => "mx_connect_timeout", Critical;
    MxConnectFailed => "mx_connect_failed", Critical;
    SmtpGreetingRejected => "smtp_greeting_rejected", Critical;
    SmtpTimeout => "smtp_timeout", Critical;
    SmtpProtocolError => "smtp_protocol_error", Critical;
    StarttlsNotOffered => "starttls_not_offered", Critical;
    StarttlsRefused => "starttls_refused", Critical;
    StarttlsInjection => "starttls_injection", Critical;
    TlsNoCommonVersion => "tls_no_common_version", Critical;
    TlsHandshakeFailed => "tls_handshake_failed", Critical;
    TlsVersionTooOld => "tls_version_too_old", Critical;
    MxCertExpired => "mx_cert_expired", Critical;
    MxCertExpiring => "mx_cert_expiring", Warning;
    MxCertNotYetValid => "mx_cert_not_yet_valid", Critical;
    MxCertNameMismatch => "mx_cert_name_mismatch", Critical;
    MxCertUntrusted => "mx_cert_untrusted", Critical;
    // --- TLS-RPT (RFC 8460 §3)
    TlsrptMissing => "tlsrpt_missing", Info;
    TlsrptLookupFailed => "tlsrpt_lookup_failed", Warning;
    TlsrptMultiple => "tlsrpt_multiple", Warning;
    TlsrptInvalid => "tlsrpt_invalid", Warning;
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
    /// What is wrong, naming the offending value.
    pub message: String,
}

impl Finding {
    /// A finding with the code's default severity.
    pub fn new(code: Code, message: impl Into<String>) -> Finding {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name} is not snake_case"
            );
            // serde and as_str agree
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{name}\""));
        }
    }
}
