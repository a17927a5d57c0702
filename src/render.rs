//! Renders a `DomainReport` for people, like a good online checker: each stage, then each
//! finding with how to fix it.

use std::fmt::Write;

use crate::clock::format_date;
use crate::finding::Severity;
use crate::probe::smtp::SmtpOutcome;
use crate::probe::tls::TlsObservation;
use crate::report::{
    DomainReport, MxStatus, NotProbedReason, PolicyStatus, RecordStatus, TlsRptStatus,
};

/// The report as text; `now` (unix seconds) is when "days left" is counted from.
pub fn render_text(report: &DomainReport, now: i64) -> String {
    let mut out = String::new();
    let _ = write_report(&mut out, report, now);
    out
}

fn write_report(out: &mut String, r: &DomainReport, now: i64) -> std::fmt::Result {
    writeln!(out, "{}: {}", r.domain, r.verdict.describe())?;
    if !r.refused_mx.is_empty() {
        writeln!(out, "  would be refused: {}", r.refused_mx.join(", "))?;
    }
    // Sender profiles, where one does not simply deliver (docs/senders.md).
    let senders = crate::stage::senders::sender_verdicts(r);
    if senders
        .iter()
        .any(|v| v.action != crate::stage::senders::Action::Deliver)
    {
        for v in &senders {
            writeln!(
                out,
                "  sender {:<16} {:<8} {}",
                v.profile.as_str(),
                v.action.as_str(),
                v.note
            )?;
        }
    }

    // TXT record
    let record_status = match r.record.status {
        RecordStatus::Valid => "valid",
        RecordStatus::Missing => "missing",
        RecordStatus::Multiple => "multiple records",
        RecordStatus::Invalid => "invalid",
        RecordStatus::LookupFailed => "lookup failed",
    };
    write!(out, "  TXT      {}  {record_status}", r.record_name())?;
    if let Some(id) = &r.record.id {
        write!(out, "  id={id}")?;
    }
    writeln!(out)?;
    for record in &r.record.records {
        writeln!(out, "           \"{}\"", shorten(record, 100))?;
    }
    if !r.record.cname_chain.is_empty() {
        writeln!(
            out,
            "           via CNAME {}",
            r.record.cname_chain.join(" -> ")
        )?;
    }

    // Policy
    let policy_status = match r.policy.status {
        PolicyStatus::Valid => "valid",
        PolicyStatus::Invalid => "invalid",
        PolicyStatus::Unavailable => "unavailable",
        PolicyStatus::NotFetched => "not fetched",
    };
    writeln!(
        out,
        "  Policy   https://{}/.well-known/mta-sts.txt  {policy_status}",
        r.policy_host()
    )?;
    if let Some(fetch) = &r.policy.fetch {
        let mut parts = Vec::new();
        if let Some(address) = fetch.address {
            parts.push(address.to_string());
        }
        if let Some(status) = fetch.status {
            parts.push(format!("HTTP {status}"));
        }
        if let Some(location) = &fetch.location {
            parts.push(format!("Location: {}", shorten(location, 80)));
        }
        if let Some(ct) = &fetch.content_type {
            parts.push(ct.clone());
        }
        if let Some(le) = r.policy.line_ending {
            parts.push(format!("{le:?}").to_uppercase());
        }
        if !parts.is_empty() {
            writeln!(out, "           {}", parts.join(" · "))?;
        }
        if let Some(tls) = &fetch.tls {
            write_tls(out, tls, now, "           ")?;
        }
    }
    if let Some(other) = &r.policy.fetch_other_family {
        let address = other
            .address
            .map(|a| a.to_string())
            .unwrap_or_else(|| "other family".into());
        // Its body is not kept (judged against the main one already).
        let served = matches!(other.outcome, crate::probe::https::FetchOutcome::Fetched);
        let what = match (served, other.status) {
            (true, Some(status)) => format!("HTTP {status}"),
            _ => crate::stage::transport::fetch_findings(other)
                .first()
                .map(|f| shorten(&f.message, 100))
                .unwrap_or_else(|| "certificate not valid".into()),
        };
        writeln!(out, "           also from {address}: {what}")?;
    }
    if let Some(policy) = &r.policy.policy {
        writeln!(
            out,
            "           mode {} · max_age {} ({}) · mx: {}",
            policy.mode.as_str(),
            policy.max_age,
            human_seconds(i64::from(policy.max_age)),
            if policy.mx.is_empty() {
                "(none)".to_string()
            } else {
                policy.mx.join(", ")
            }
        )?;
    }

    // MX
    match r.mx.status {
        MxStatus::Found => {}
        MxStatus::NullMx => writeln!(out, "  MX       null MX (accepts no mail)")?,
        MxStatus::Missing => writeln!(out, "  MX       none")?,
        MxStatus::LookupFailed => writeln!(out, "  MX       lookup failed")?,
    }
    for (i, host) in r.mx.hosts.iter().enumerate() {
        let label = if i == 0 { "  MX       " } else { "           " };
        let coverage = match (&host.covered_by, r.policy.policy.is_some()) {
            (Some(pattern), _) => format!("covered by {pattern}"),
            (None, true) => "NOT COVERED by the policy".to_string(),
            (None, false) => "no policy".to_string(),
        };
        let deliverable = match host.deliverable() {
            Some(true) => " · deliverable",
            Some(false) => " · WOULD BE REFUSED",
            None => "",
        };
        writeln!(
            out,
            "{label}{} {}  {coverage}{deliverable}",
            host.preference, host.name
        )?;
        for probe in &host.probes {
            let outcome = match (&probe.outcome, &probe.inferred) {
                (_, Some(inference)) => format!(
                    "not probed: unresponsive (inferred from its last {} probes)",
                    inference.from_probes
                ),
                (SmtpOutcome::Ok, None) => "STARTTLS ok".to_string(),
                (other, None) => format!("STARTTLS failed: {}", outcome_text(other)),
            };
            writeln!(out, "             {}  {outcome}", probe.address)?;
            if let Some(tls) = &probe.tls {
                write_tls(out, tls, now, "               ")?;
            }
        }
        for skipped in &host.not_probed {
            let why = match skipped.reason {
                NotProbedReason::Forbidden { detail } => format!("not probed: {detail}"),
                NotProbedReason::OverLimit => "not probed: beyond max_addresses_per_mx".into(),
                NotProbedReason::Abandoned => {
                    "not probed: abandoned at the check's deadline".into()
                }
                NotProbedReason::Queued { behind } => {
                    format!("not probed: still waiting for a politeness slot, behind {behind}")
                }
                NotProbedReason::NoRoute => "not probed: this machine has no route to it".into(),
            };
            writeln!(out, "             {}  {why}", skipped.address)?;
        }
    }

    // TLS-RPT
    let tlsrpt_status = match r.tlsrpt.status {
        TlsRptStatus::Valid => "valid",
        TlsRptStatus::Missing => "missing",
        TlsRptStatus::Multiple => "multiple records",
        TlsRptStatus::Invalid => "invalid",
        TlsRptStatus::LookupFailed => "lookup failed",
    };
    write!(out, "  TLS-RPT  {}  {tlsrpt_status}", r.tlsrpt_name())?;
    if let Some(record) = &r.tlsrpt.record {
        write!(out, "  rua={}", record.rua.join(","))?;
    }
    writeln!(out)?;

    // Findings
    let count = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    writeln!(out)?;
    if r.findings.is_empty() {
        writeln!(out, "  No findings.")?;
        return Ok(());
    }
    writeln!(
        out,
        "  Findings: {} critical, {} warning, {} info",
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Info)
    )?;
    for f in &r.findings {
        let mut place = Vec::new();
        if let Some(host) = &f.host {
            place.push(host.clone());
        }
        if let Some(address) = f.address {
            place.push(address.to_string());
        }
        if let Some(line) = f.line {
            place.push(format!("line {line}"));
        }
        let place = if place.is_empty() {
            String::new()
        } else {
            format!(" [{}]", place.join(" "))
        };
        writeln!(
            out,
            "  {:<8} {}{place}",
            f.severity.as_str().to_uppercase(),
            f.code
        )?;
        writeln!(out, "           {}", f.message)?;
        writeln!(out, "           fix: {}", f.code.doc().fix)?;
    }
    Ok(())
}

fn write_tls(out: &mut String, tls: &TlsObservation, now: i64, indent: &str) -> std::fmt::Result {
    let mut parts = Vec::new();
    if let Some(version) = &tls.version {
        parts.push(version.clone());
    }
    if let Some(cipher) = &tls.cipher_suite {
        parts.push(cipher.clone());
    }
    if !parts.is_empty() {
        writeln!(out, "{indent}{}", parts.join(" "))?;
    }
    if let Some(leaf) = &tls.leaf {
        let days = leaf.days_left(now);
        let when = if days >= 0 {
            format!("expires {} ({days} days left)", format_date(leaf.not_after))
        } else {
            format!(
                "EXPIRED {} ({} days ago)",
                format_date(leaf.not_after),
                (now - leaf.not_after).div_euclid(86_400)
            )
        };
        writeln!(
            out,
            "{indent}certificate {} · issuer {} · {when}",
            leaf.subject, leaf.issuer
        )?;
    }
    if let Some(verdict) = &tls.verdict {
        let faults = verdict.faults();
        if faults.is_empty() {
            writeln!(out, "{indent}certificate valid")?;
        } else {
            let names: Vec<&str> = faults.iter().map(|f| f.describe()).collect();
            writeln!(out, "{indent}certificate INVALID: {}", names.join("; "))?;
        }
    }
    Ok(())
}

fn outcome_text(outcome: &SmtpOutcome) -> String {
    match outcome {
        SmtpOutcome::Ok => "ok".into(),
        SmtpOutcome::ConnectRefused => "connection refused".into(),
        SmtpOutcome::ConnectTimeout => "connection timed out".into(),
        SmtpOutcome::ConnectFailed { detail } => format!("connection failed: {detail}"),
        SmtpOutcome::Timeout { phase } => format!("timed out waiting for the {phase} reply"),
        SmtpOutcome::GreetingRejected { code, text } => format!("greeting {code} {text}"),
        SmtpOutcome::ProtocolError { detail } => format!("protocol error: {detail}"),
        SmtpOutcome::StarttlsNotOffered => "STARTTLS not offered".into(),
        SmtpOutcome::StarttlsRefused { code, text } => format!("STARTTLS refused: {code} {text}"),
        SmtpOutcome::StarttlsInjection => "data injected before the TLS handshake".into(),
        SmtpOutcome::Tls { failure, detail } => format!("TLS {failure:?}: {detail}"),
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// "7 days", "1 day", "12 hours", "30 minutes", "45 seconds".
pub fn human_seconds(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if seconds >= 86_400 && seconds % 86_400 == 0 {
        plural(seconds / 86_400, "day")
    } else if seconds >= 86_400 {
        format!("{:.1} days", seconds as f64 / 86_400.0)
    } else if seconds >= 3_600 {
        plural(seconds / 3_600, "hour")
    } else if seconds >= 60 {
        plural(seconds / 60, "minute")
    } else {
        plural(seconds, "second")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_seconds_units() {
        assert_eq!(human_seconds(604_800), "7 days");
        assert_eq!(human_seconds(86_400), "1 day");
        assert_eq!(human_seconds(90_000), "1.0 days");
        assert_eq!(human_seconds(7_200), "2 hours");
        assert_eq!(human_seconds(60), "1 minute");
        assert_eq!(human_seconds(0), "0 seconds");
    }
}
