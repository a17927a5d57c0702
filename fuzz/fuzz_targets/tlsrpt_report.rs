//! TLS-RPT aggregate reports (RFC 8460 §4) as received: JSON, gzip or e-mail, decoded and
//! parsed under the caps. Besides "never panics", checks that what is accepted stays within
//! the caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta_sts_exporter::tlsrpt::report::{MAX_FAILURE_DETAILS, MAX_NOTES, MAX_POLICIES};
use mta_sts_exporter::tlsrpt::{read_reports, Kind, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_received_bytes: 1 << 20,
        max_report_bytes: 1 << 20,
    };
    for kind in [Kind::sniff(data), Kind::Json, Kind::Mail] {
        for report in read_reports(data, kind, limits, 1_800_000_000).into_iter().flatten() {
            assert!(!report.policies.is_empty());
            assert!(report.policies.len() <= MAX_POLICIES);
            assert!(report.notes.len() <= MAX_NOTES);
            let details: usize = report.policies.iter().map(|p| p.failure_details.len()).sum();
            assert!(details <= MAX_FAILURE_DETAILS);
            assert!(!report.report_id.is_empty() && !report.organization.is_empty());
        }
    }
});
