//! `mx` pattern validation and matching (RFC 8461 §4.1) on arbitrary text.
//!
//! The input is "pattern NUL host". Besides "never panics": only valid patterns match,
//! matching ignores ASCII case and one trailing dot of the host, and `coverage` agrees with
//! `pattern_matches`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta_sts_exporter::stage::mx::{coverage, pattern_matches, validate_pattern};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, host) = text.split_once('\0').unwrap_or((&text, "mx.example.com"));
    let valid = validate_pattern(pattern).is_ok();
    let matches = pattern_matches(pattern, host);
    assert!(
        !matches || valid,
        "{pattern:?} is invalid but matched {host:?}"
    );
    assert_eq!(
        pattern_matches(pattern, &host.to_ascii_uppercase()),
        matches,
        "case of the host: {pattern:?} {host:?}"
    );
    assert_eq!(
        pattern_matches(&pattern.to_ascii_lowercase(), host),
        matches,
        "case of the pattern: {pattern:?} {host:?}"
    );
    if !host.ends_with('.') {
        assert_eq!(
            pattern_matches(pattern, &format!("{host}.")),
            matches,
            "trailing dot: {pattern:?} {host:?}"
        );
    }
    let patterns = [pattern.to_string()];
    let hosts = [host.to_string()];
    let covered = coverage(&patterns, &hosts);
    assert_eq!(covered.hosts.len(), 1);
    assert_eq!(covered.hosts[0].covered_by.is_some(), matches);
    assert_eq!(covered.unused_patterns.is_empty(), matches);
});
