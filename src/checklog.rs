//! The log line of one finished check (`--log.checks`): domain, verdict, duration, findings by
//! severity and their codes, at info; every check, one in N, or none.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::finding::Severity;
use crate::report::DomainReport;

/// Which finished checks get a log line (`--log.checks`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckLog {
    /// Every check (the default): one line per domain per interval.
    #[default]
    All,
    /// None: for fleets whose logs would be too large, or when metrics are enough.
    Off,
    /// One check in N, counted over all domains (`1/100`): a sample of a big fleet.
    Sample(NonZeroU64),
}

impl std::str::FromStr for CheckLog {
    type Err = String;
    fn from_str(s: &str) -> Result<CheckLog, String> {
        let usage = "use all, off, or 1/N (one finished check in N, e.g. 1/100)";
        match s {
            "all" => Ok(CheckLog::All),
            "off" => Ok(CheckLog::Off),
            other => match other.strip_prefix("1/").map(str::parse::<NonZeroU64>) {
                Some(Ok(n)) if n.get() == 1 => Ok(CheckLog::All),
                Some(Ok(n)) => Ok(CheckLog::Sample(n)),
                Some(Err(_)) => Err(format!(
                    "invalid --log.checks {other:?}: N must be a whole number from 1; {usage}"
                )),
                None => Err(format!("invalid --log.checks {other:?}: {usage}")),
            },
        }
    }
}

impl fmt::Display for CheckLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckLog::All => f.write_str("all"),
            CheckLog::Off => f.write_str("off"),
            CheckLog::Sample(n) => write!(f, "1/{n}"),
        }
    }
}

/// Logs finished checks as [`CheckLog`] says. Shared by all checks of a service.
#[derive(Debug, Default)]
pub struct CheckLogger {
    mode: CheckLog,
    finished: AtomicU64,
}

impl CheckLogger {
    pub fn new(mode: CheckLog) -> CheckLogger {
        CheckLogger {
            mode,
            finished: AtomicU64::new(0),
        }
    }

    /// Whether the next finished check is logged: every one, none, or the 1st, N+1st, ... .
    pub fn take_turn(&self) -> bool {
        match self.mode {
            CheckLog::All => true,
            CheckLog::Off => false,
            CheckLog::Sample(n) => self
                .finished
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(n.get()),
        }
    }

    /// Logs `report` at info if it is its turn.
    pub fn finished(&self, report: &DomainReport) {
        if !self.take_turn() || !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        let line = CheckLine::of(report);
        tracing::info!(
            msg = "check finished",
            domain = %line.domain,
            verdict = line.verdict,
            duration_seconds = %format_args!("{:.3}", line.duration_seconds),
            critical = line.critical,
            warning = line.warning,
            info = line.info,
            codes = %line.codes,
        );
    }
}

/// Codes listed in one line at most; the rest are counted (`+3 more`). A report carries a
/// finding per MX address at worst, but only a few dozen codes exist.
const MAX_CODES: usize = 12;

/// The fields of one check's log line.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckLine<'a> {
    pub domain: &'a str,
    pub verdict: &'static str,
    pub duration_seconds: f64,
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
    /// The distinct finding codes, most severe first, comma-separated; empty for none.
    pub codes: String,
}

impl<'a> CheckLine<'a> {
    pub fn of(report: &'a DomainReport) -> CheckLine<'a> {
        let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
        // most severe first, then by name; each code once
        let mut seen = BTreeSet::new();
        let mut ordered: Vec<(Severity, &'static str)> = report
            .findings
            .iter()
            .map(|f| (f.severity, f.code.as_str()))
            .collect();
        ordered.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let distinct: Vec<&str> = ordered
            .into_iter()
            .filter(|(_, code)| seen.insert(*code))
            .map(|(_, code)| code)
            .collect();
        let mut codes = distinct
            .iter()
            .take(MAX_CODES)
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        if distinct.len() > MAX_CODES {
            codes.push_str(&format!(",+{} more", distinct.len() - MAX_CODES));
        }
        CheckLine {
            domain: &report.domain,
            verdict: report.verdict.as_str(),
            duration_seconds: report.duration_seconds,
            critical: count(Severity::Critical),
            warning: count(Severity::Warning),
            info: count(Severity::Info),
            codes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Code, Finding};

    fn report(findings: Vec<Finding>) -> DomainReport {
        let mut r = DomainReport::skeleton("example.com");
        r.duration_seconds = 1.23456;
        r.findings = findings;
        r
    }

    #[test]
    fn line_counts_by_severity_and_lists_each_code_once_most_severe_first() {
        let mut expired = Finding::new(Code::MxCertExpired, "expired");
        expired.severity = Severity::Critical;
        let r = report(vec![
            Finding::new(Code::TlsrptMissing, "no record"),
            expired.clone(),
            expired,
            Finding::new(Code::StsRecordMissing, "no record"),
        ]);
        let line = CheckLine::of(&r);
        assert_eq!(line.domain, "example.com");
        assert_eq!(line.verdict, r.verdict.as_str());
        assert_eq!(line.duration_seconds, 1.23456);
        // sts_record_missing is a warning, tlsrpt_missing information
        assert_eq!((line.critical, line.warning, line.info), (2, 1, 1));
        assert_eq!(
            line.codes,
            "mx_cert_expired,sts_record_missing,tlsrpt_missing"
        );
        let clean = report(vec![]);
        assert_eq!(CheckLine::of(&clean).codes, "");
    }

    #[test]
    fn many_codes_are_counted_past_the_cap() {
        let findings = Code::ALL
            .iter()
            .take(MAX_CODES + 3)
            .map(|c| Finding::new(*c, "x"))
            .collect();
        let r = report(findings);
        let line = CheckLine::of(&r);
        assert_eq!(line.codes.split(',').count(), MAX_CODES + 1);
        assert!(line.codes.ends_with(",+3 more"), "{}", line.codes);
    }

    #[test]
    fn sampling_takes_one_in_n_and_off_takes_none() {
        let turns = |mode: CheckLog| {
            let logger = CheckLogger::new(mode);
            (0..10).filter(|_| logger.take_turn()).count()
        };
        assert_eq!(turns(CheckLog::All), 10);
        assert_eq!(turns(CheckLog::Off), 0);
        assert_eq!(turns("1/3".parse().unwrap()), 4); // the 1st, 4th, 7th and 10th
    }

    #[test]
    fn parses_the_flag() {
        assert_eq!("all".parse::<CheckLog>(), Ok(CheckLog::All));
        assert_eq!("off".parse::<CheckLog>(), Ok(CheckLog::Off));
        assert_eq!("1/1".parse::<CheckLog>(), Ok(CheckLog::All));
        assert_eq!(
            "1/100".parse::<CheckLog>().map(|m| m.to_string()),
            Ok("1/100".to_string())
        );
        assert_eq!(
            "1/0".parse::<CheckLog>(),
            Err("invalid --log.checks \"1/0\": N must be a whole number from 1; use all, off, or 1/N (one finished check in N, e.g. 1/100)".to_string())
        );
        assert_eq!(
            "some".parse::<CheckLog>(),
            Err("invalid --log.checks \"some\": use all, off, or 1/N (one finished check in N, e.g. 1/100)".to_string())
        );
    }
}
