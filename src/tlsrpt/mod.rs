//! TLS-RPT (RFC 8460) aggregate reports: what senders saw when delivering to our domains.
//!
//! - [`decode`]: gzip and e-mail to report JSON, with size caps (pure).
//! - [`ingest`]: the running exporter's side: store behind a lock, rate limit, maildir.
//! - [`listener`]: the HTTPS listener senders post reports to.
//! - [`exposition`]: the `mta_sts_tlsrpt_*` metric families.
//! - [`judge`]: findings from reports against our own probe, and silent reporters (pure).
//! - [`report`]: the tolerant, bounded report parser (pure).
//! - [`store`]: accepted reports of configured domains, bounded and persisted (pure).
//! - [`summary`]: the offline `tlsrpt FILE...` command's view of reports.

pub mod decode;
pub mod exposition;
pub mod ingest;
pub mod judge;
pub mod listener;
pub mod report;
pub mod store;
pub mod summary;

use serde::{Deserialize, Serialize};

pub use decode::{Kind, Limits};
pub use report::Report;

/// Why a report was refused: the `reason` label of `mta_sts_tlsrpt_rejected_reports_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// No policy of the report is for a configured domain.
    UnknownDomain,
    /// Larger than a size cap, before or after decompression.
    TooLarge,
    /// More policies or failure details than the caps.
    TooManyEntries,
    /// Claimed gzip but does not decompress.
    InvalidGzip,
    /// Not JSON.
    InvalidJson,
    /// JSON, but a required field is missing or wrong.
    InvalidReport,
    /// An e-mail without a report attachment.
    NoReportInMail,
    /// Same (organization, report-id) as a report already accepted.
    Duplicate,
    /// The date range ended before the deduplication window: a re-send could not be told.
    TooOld,
    /// An HTTPS body of a media type other than `application/tlsrpt+json` / `+gzip`.
    UnsupportedMediaType,
    /// The client address posted more than its share.
    RateLimited,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::UnknownDomain,
        RejectReason::TooLarge,
        RejectReason::TooManyEntries,
        RejectReason::InvalidGzip,
        RejectReason::InvalidJson,
        RejectReason::InvalidReport,
        RejectReason::NoReportInMail,
        RejectReason::Duplicate,
        RejectReason::TooOld,
        RejectReason::UnsupportedMediaType,
        RejectReason::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnknownDomain => "unknown_domain",
            RejectReason::TooLarge => "too_large",
            RejectReason::TooManyEntries => "too_many_entries",
            RejectReason::InvalidGzip => "invalid_gzip",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::InvalidReport => "invalid_report",
            RejectReason::NoReportInMail => "no_report_in_mail",
            RejectReason::Duplicate => "duplicate",
            RejectReason::TooOld => "too_old",
            RejectReason::UnsupportedMediaType => "unsupported_media_type",
            RejectReason::RateLimited => "rate_limited",
        }
    }

    pub fn index(self) -> usize {
        RejectReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

/// A refused report (or body): the counted reason and a message naming what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub reason: RejectReason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason.as_str())
    }
}

impl From<decode::DecodeError> for Rejection {
    fn from(e: decode::DecodeError) -> Rejection {
        let reason = match &e {
            decode::DecodeError::TooLarge { .. } => RejectReason::TooLarge,
            decode::DecodeError::Gzip(_) => RejectReason::InvalidGzip,
            decode::DecodeError::NoReport(_) => RejectReason::NoReportInMail,
        };
        Rejection::new(reason, e.to_string())
    }
}

impl From<report::ParseError> for Rejection {
    fn from(e: report::ParseError) -> Rejection {
        let reason = match &e {
            report::ParseError::Json(_) => RejectReason::InvalidJson,
            report::ParseError::Invalid(_) => RejectReason::InvalidReport,
            report::ParseError::TooMany { .. } => RejectReason::TooManyEntries,
        };
        Rejection::new(reason, e.to_string())
    }
}

/// Decodes and parses everything in `bytes`: one result per report found (an e-mail can
/// carry several), or one rejection when nothing could be decoded.
pub fn read_reports(
    bytes: &[u8],
    kind: Kind,
    limits: Limits,
    now: i64,
) -> Vec<Result<Report, Rejection>> {
    match decode::decode(bytes, kind, limits) {
        Err(e) => vec![Err(e.into())],
        Ok(documents) => documents
            .iter()
            .map(|json| report::parse_report(json, now).map_err(Rejection::from))
            .collect(),
    }
}
