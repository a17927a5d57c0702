//! Transport findings: what a sender meets on the way to the policy and to each MX, judged from
//! what the probes captured ([`PolicyFetch`], [`SmtpProbe`]). Certificates are judged in
//! [`crate::stage::cert`].

use std::time::Duration;

use crate::finding::{Code, Finding};
use crate::probe::https::{FetchOutcome, PolicyFetch};
use crate::probe::smtp::{SmtpOutcome, SmtpProbe};
use crate::probe::tls::TlsFailureKind;

/// Transport findings for one probed MX address. Certificate findings come from
/// [`crate::stage::cert::cert_findings`] on `probe.tls`.
pub fn smtp_findings(probe: &SmtpProbe) -> Vec<Finding> {
    let at = format!("{} ({})", probe.host, probe.address);
    if let Some(inference) = &probe.inferred {
        let silence = match &probe.outcome {
            SmtpOutcome::ConnectTimeout => "connecting",
            _ => "waiting for the greeting",
        };
        let message = format!(
            "{at} was not probed now: the last {} probes of this address (by any MX name, \
             within {}) timed out {silence}, so it is taken for unresponsive since {}; one \
             probe at a time re-tests it. The outcome is inferred, not observed",
            inference.from_probes,
            crate::duration::format_duration(
                Duration::try_from_secs_f64(inference.within_seconds.round()).unwrap_or_default()
            ),
            crate::duration::format_unix_time(inference.since)
        );
        return vec![Finding::new(Code::MxUnresponsiveInferred, message)
            .with_host(probe.host.clone())
            .with_address(probe.address)];
    }
    let (code, message) = match &probe.outcome {
        SmtpOutcome::Ok => return Vec::new(),
        SmtpOutcome::ConnectRefused => (
            Code::MxConnectRefused,
            format!("{at} refused the SMTP connection"),
        ),
        SmtpOutcome::ConnectTimeout => (
            Code::MxConnectTimeout,
            format!(
                "connecting to {at} timed out after {:.1} s",
                probe.duration_seconds
            ),
        ),
        SmtpOutcome::ConnectFailed { detail } => (
            Code::MxConnectFailed,
            format!("cannot connect to {at}: {detail}"),
        ),
        SmtpOutcome::Timeout { phase } => (
            Code::SmtpTimeout,
            format!(
                "{at} did not complete its SMTP {phase} reply in time ({:.1} s into the dialog)",
                probe.duration_seconds
            ),
        ),
        SmtpOutcome::GreetingRejected { code, text } => (
            Code::SmtpGreetingRejected,
            format!("{at} rejected the connection with greeting {code} {text}"),
        ),
        SmtpOutcome::ProtocolError { detail } => (
            Code::SmtpProtocolError,
            format!("{at} broke the SMTP protocol: {detail}"),
        ),
        SmtpOutcome::StarttlsNotOffered => (
            Code::StarttlsNotOffered,
            format!("{at} does not list STARTTLS in its EHLO reply"),
        ),
        SmtpOutcome::StarttlsRefused { code, text } => (
            Code::StarttlsRefused,
            format!("{at} answered STARTTLS with {code} {text}"),
        ),
        SmtpOutcome::StarttlsInjection => (
            Code::StarttlsInjection,
            format!(
                "{at} sent plaintext after its 220 reply to STARTTLS, before the TLS \
                 handshake (STARTTLS injection); the handshake was not attempted"
            ),
        ),
        SmtpOutcome::Tls { failure, detail } => match failure {
            TlsFailureKind::VersionTooOld => (
                Code::TlsVersionTooOld,
                format!(
                    "{at} offers only TLS versions below 1.2 after STARTTLS \
                     (RFC 8461 requires 1.2 or later): {detail}"
                ),
            ),
            TlsFailureKind::NoCommonVersion => (
                Code::TlsNoCommonVersion,
                format!(
                    "no TLS version or cipher suite in common with {at} after STARTTLS; \
                     rustls speaks only TLS 1.2 with ECDHE and AEAD ciphers, and TLS 1.3: \
                     {detail}"
                ),
            ),
            TlsFailureKind::Timeout => (
                Code::TlsHandshakeFailed,
                format!("TLS handshake with {at} timed out after STARTTLS: {detail}"),
            ),
            TlsFailureKind::HandshakeFailed => (
                Code::TlsHandshakeFailed,
                format!("TLS handshake with {at} failed after STARTTLS: {detail}"),
            ),
        },
    };
    vec![Finding::new(code, message)
        .with_host(probe.host.clone())
        .with_address(probe.address)]
}

/// The fetch-stage findings of a policy fetch. Certificate findings come from
/// [`crate::stage::cert::cert_findings`] on `fetch.tls`; an empty address list is reported by
/// the caller, who knows what DNS said.
pub fn fetch_findings(fetch: &PolicyFetch) -> Vec<Finding> {
    let finding = |code: Code, message: String| {
        let finding = Finding::new(code, message).with_host(fetch.host.as_str());
        match fetch.address {
            Some(address) => finding.with_address(address),
            None => finding,
        }
    };
    let at = fetch.address_text();
    let finding = match &fetch.outcome {
        FetchOutcome::Fetched => {
            let mut findings = Vec::new();
            if let Some(coding) = &fetch.content_encoding {
                findings.push(finding(
                    Code::PolicyContentEncoding,
                    format!(
                        "{} was served with Content-Encoding {coding:?} although the request \
                         asked for identity; it decodes to a policy, but senders whose HTTP \
                         client does not decode it read compressed bytes",
                        fetch.url
                    ),
                ));
            }
            if !fetch.content_type_ok() {
                let message = match &fetch.content_type {
                    Some(value) => format!(
                        "policy served as Content-Type {value:?}; RFC 8461 §3.2 requires text/plain"
                    ),
                    None => "policy served without a Content-Type; RFC 8461 §3.2 requires \
                             text/plain"
                        .to_string(),
                };
                findings.push(finding(Code::PolicyContentType, message));
            }
            return findings;
        }
        FetchOutcome::NoAddress => return Vec::new(),
        FetchOutcome::AddressForbidden { reason } => finding(
            Code::TargetAddressForbidden,
            format!(
                "policy host {} has no address we may connect to: {reason}",
                fetch.host
            ),
        ),
        FetchOutcome::ConnectRefused => finding(
            Code::PolicyConnectRefused,
            format!("{}: connection to {at} refused", fetch.url),
        ),
        FetchOutcome::ConnectTimeout => finding(
            Code::PolicyConnectTimeout,
            format!(
                "{}: no TCP connection to {at} within the connect timeout",
                fetch.url
            ),
        ),
        FetchOutcome::ConnectFailed { detail } => finding(
            Code::PolicyConnectFailed,
            format!("{}: cannot connect to {at}: {detail}", fetch.url),
        ),
        FetchOutcome::Tls { failure, detail } => finding(
            Code::PolicyTlsFailed,
            format!(
                "TLS handshake with {} at {at} failed: {}: {detail}",
                fetch.host,
                describe_tls_failure(*failure)
            ),
        ),
        FetchOutcome::Redirect => finding(
            Code::PolicyRedirect,
            format!(
                "HTTP {} redirect to {}; RFC 8461 §3.3: redirects MUST NOT be followed",
                fetch.status_text(),
                fetch.location.as_deref().unwrap_or("(no Location header)")
            ),
        ),
        FetchOutcome::HttpStatus => finding(
            Code::PolicyHttpStatus,
            format!(
                "{} answered HTTP {}; RFC 8461 §3.3: a policy is only valid with 200 (OK)",
                fetch.url,
                fetch.status_text()
            ),
        ),
        FetchOutcome::TooLarge => finding(
            Code::PolicyTooLarge,
            format!(
                "policy body exceeds the size limit: stopped reading after {} bytes \
                 (RFC 8461 §3.3 suggests at most 64 KiB)",
                fetch.body_bytes
            ),
        ),
        FetchOutcome::Timeout { phase } => finding(
            Code::PolicyTimeout,
            format!(
                "{}: {} not complete when the fetch deadline passed after {:.1} s",
                fetch.url,
                phase.describe(),
                fetch.duration_seconds
            ),
        ),
        FetchOutcome::HttpError { detail } => finding(
            Code::PolicyHttpError,
            format!("{}: malformed HTTP response: {detail}", fetch.url),
        ),
    };
    vec![finding]
}

fn describe_tls_failure(kind: TlsFailureKind) -> &'static str {
    match kind {
        TlsFailureKind::Timeout => "the handshake did not finish in time",
        TlsFailureKind::VersionTooOld => "the server only offers TLS versions below 1.2",
        TlsFailureKind::NoCommonVersion => "no TLS version or cipher suite in common",
        TlsFailureKind::HandshakeFailed => "handshake failed",
    }
}
