//! `mx` patterns of a policy and the matching of MX hosts against them (RFC 8461 §4.1).

use serde::Serialize;

/// Lower-cases ASCII letters and removes one trailing dot, so `MX1.Example.COM.` and
/// `mx1.example.com` compare equal.
pub fn normalize_host(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(stripped) => stripped.to_string(),
        None => lower,
    }
}

/// Checks one `mx` pattern: `["*."] Domain`, LDH labels of 1–63 characters, at least two labels
/// after the optional `*.`, at most 253 characters, one trailing dot tolerated.
///
/// `Err` holds the reason, written for the person who maintains the policy.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("the pattern is empty".to_string());
    }
    if let Some(c) = pattern.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "it contains the non-ASCII character {c:?}; an internationalized name must be \
             written as its Punycode A-label (\"xn--…\"), not the U-label"
        ));
    }
    if pattern.contains("://") {
        return Err("it is a URL; give only the host name, as in \"mail.example.com\"".to_string());
    }
    if pattern.contains(',') || pattern.contains(' ') || pattern.contains('\t') {
        return Err(
            "it looks like a list of hosts; each MX needs its own \"mx:\" line".to_string(),
        );
    }
    if let Some(c) = pattern.chars().find(|c| c.is_ascii_control()) {
        return Err(format!("it contains the control character {c:?}"));
    }
    let name = pattern.strip_suffix('.').unwrap_or(pattern);
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "it is {} characters long; a domain name has at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    let domain = match name.strip_prefix("*.") {
        Some(rest) => rest,
        None if name == "*" => {
            return Err(
                "a bare \"*\" matches nothing; write \"*.example.com\" to match any \
                        host one label below example.com"
                    .to_string(),
            )
        }
        None => name,
    };
    if domain.contains('*') {
        return Err(if name.starts_with("*.") {
            "\"*\" is only allowed once, as the whole left-most label, as in \
             \"*.example.com\" (it matches exactly one label)"
        } else {
            "\"*\" must be the whole left-most label, as in \"*.example.com\"; partial \
             wildcards such as \"mail*\" are not allowed"
        }
        .to_string());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        check_label(label)?;
    }
    if labels.len() < 2 {
        return Err(if name.starts_with("*.") {
            format!("a wildcard needs at least two labels after \"*.\", not just {domain:?}")
        } else {
            format!("{domain:?} is a single label; give the full host name of the MX")
        });
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "the last label is all digits: it looks like an IP address, but MX records and \
             mx patterns name hosts"
                .to_string(),
        );
    }
    Ok(())
}

/// Whether `host` (an MX host name) matches the `mx` pattern, per RFC 8461 §4.1.
///
/// Case-insensitive; one trailing dot ignored on either side. `*` matches exactly one whole
/// left-most label. An invalid pattern matches nothing.
pub fn pattern_matches(pattern: &str, host: &str) -> bool {
    if validate_pattern(pattern).is_err() {
        return false;
    }
    let pattern = normalize_host(pattern);
    let host = normalize_host(host);
    match pattern.strip_prefix("*.") {
        Some(suffix) => match host.split_once('.') {
            Some((first, rest)) => !first.is_empty() && !first.contains('*') && rest == suffix,
            None => false,
        },
        None => pattern == host,
    }
}

/// Which pattern, if any, covers one MX host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MxCoverage {
    /// The host as given (not normalized), so it can be matched back to the MX record.
    pub host: String,
    /// The first pattern, as written in the policy, that matches the host.
    pub covered_by: Option<String>,
}

/// The coverage of a set of MX hosts by the `mx` patterns of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// One entry per host, in the order given.
    pub hosts: Vec<MxCoverage>,
    /// Patterns, as written, that match none of the hosts (stale, or mistyped), in policy order.
    pub unused_patterns: Vec<String>,
}

/// Matches every host against the patterns; the first matching pattern wins.
///
/// A pattern is unused when it matches no host at all (a pattern that matches a host already
/// covered by an earlier pattern is not unused).
pub fn coverage(patterns: &[String], hosts: &[String]) -> Coverage {
    let host_coverage = hosts
        .iter()
        .map(|host| MxCoverage {
            host: host.clone(),
            covered_by: patterns.iter().find(|p| pattern_matches(p, host)).cloned(),
        })
        .collect();
    let unused_patterns = patterns
        .iter()
        .filter(|p| !hosts.iter().any(|host| pattern_matches(p, host)))
        .cloned()
        .collect();
    Coverage {
        hosts: host_coverage,
        unused_patterns,
    }
}

/// RFC 1035 limits, in the textual form without the trailing dot.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it has an empty label (two dots in a row, or a leading dot)".to_string());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "the label {label:?} is {} characters long; a label has at most {MAX_LABEL_LEN}",
            label.len()
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "the label {label:?} contains {c:?}; only letters, digits and hyphens are allowed"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("the label {label:?} starts or ends with a hyphen"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalize_lowercases_and_strips_one_dot() {
        assert_eq!(normalize_host("MX1.Example.COM."), "mx1.example.com");
        assert_eq!(normalize_host("mx1.example.com"), "mx1.example.com");
        assert_eq!(normalize_host("a.."), "a.");
        assert_eq!(normalize_host("."), "");
        assert_eq!(normalize_host(""), "");
        // Non-ASCII is left alone (only ASCII case folding).
        assert_eq!(normalize_host("MÜNCHEN.de"), "mÜnchen.de");
    }

    #[test]
    fn valid_patterns() {
        for p in [
            "mail.example.com",
            "*.example.net",
            "backupmx.example.com",
            "mx.backup-example.com",
            "mail.example.com.",
            "*.example.com.",
            "MAIL.Example.Com",
            "xn--mnchen-3ya.de",
            "*.xn--mnchen-3ya.de",
            "*.mail.protection.outlook.com",
            "*.h-v1.mx.microsoft",
            "a.b",
            "1mx.example.com",
            "aspmx.l.google.com",
        ] {
            assert_eq!(validate_pattern(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn invalid_patterns_with_reasons() {
        let cases = [
            ("", "empty"),
            ("mx1.a.com, mx2.a.com", "own \"mx:\" line"),
            ("mx1.a.com,mx2.a.com", "own \"mx:\" line"),
            ("mx1.a.com mx2.a.com", "own \"mx:\" line"),
            ("*.*.a.com", "only allowed once"),
            ("mail*.a.com", "partial wildcards"),
            ("*mail.a.com", "partial wildcards"),
            ("mail.*.a.com", "whole left-most label"),
            ("*", "bare"),
            ("*.", "bare"),
            ("*.com", "at least two labels"),
            ("localhost", "single label"),
            ("münchen.de", "A-label"),
            ("a..com", "empty label"),
            (".a.com", "empty label"),
            ("a.com..", "empty label"),
            ("-mx.a.com", "hyphen"),
            ("mx-.a.com", "hyphen"),
            ("mx_1.a.com", "'_'"),
            ("mail.a.com:25", "':'"),
            ("https://mail.a.com", "URL"),
            ("192.0.2.1", "IP address"),
            ("mx\r.a.com", "control character"),
        ];
        for (p, why) in cases {
            let err = validate_pattern(p).expect_err(p);
            assert!(err.contains(why), "{p:?}: {err:?} should mention {why:?}");
        }
    }

    #[test]
    fn length_limits() {
        let label63 = "a".repeat(63);
        assert_eq!(validate_pattern(&format!("{label63}.com")), Ok(()));
        let label64 = "a".repeat(64);
        assert!(validate_pattern(&format!("{label64}.com"))
            .unwrap_err()
            .contains("64 characters"));
        // 4 labels of 63 + 3 dots = 255 > 253.
        let long = [label63.as_str(); 4].join(".");
        assert!(validate_pattern(&long).unwrap_err().contains("253"));
        // 253 exactly, plus a trailing dot, is fine.
        let name253 = format!("{}.{}.{}.{}", label63, label63, label63, "a".repeat(61));
        assert_eq!(name253.len(), 253);
        assert_eq!(validate_pattern(&name253), Ok(()));
        assert_eq!(validate_pattern(&format!("{name253}.")), Ok(()));
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        assert!(pattern_matches("*.example.com", "mail.example.com"));
        assert!(!pattern_matches("*.example.com", "example.com"));
        assert!(!pattern_matches("*.example.com", "a.b.example.com"));
        assert!(!pattern_matches("*.example.com", "foo.bar.example.com"));
        assert!(!pattern_matches("*.example.com", ".example.com"));
        assert!(!pattern_matches("*.example.com", "*.example.com"));
        assert!(!pattern_matches(
            "*.example.com",
            "mail.example.com.evil.net"
        ));
        assert!(!pattern_matches("*.example.com", "mailexample.com"));
    }

    #[test]
    fn microsoft_dnssec_mx() {
        let host = "tenant-com.h-v1.mx.microsoft";
        assert!(!pattern_matches("*.mx.microsoft", host));
        assert!(pattern_matches("*.h-v1.mx.microsoft", host));
        assert!(pattern_matches(host, host));
        assert!(pattern_matches(
            "*.mail.protection.outlook.com",
            "example-com.mail.protection.outlook.com."
        ));
    }

    #[test]
    fn exact_match_no_suffix_or_prefix() {
        assert!(pattern_matches("mail.example.com", "mail.example.com"));
        assert!(!pattern_matches("mail.example.com", "xmail.example.com"));
        assert!(!pattern_matches(
            "mail.example.com",
            "mail.example.com.evil.net"
        ));
        assert!(!pattern_matches("mail.example.com", "example.com"));
        assert!(!pattern_matches("example.com", "mail.example.com"));
        assert!(!pattern_matches("mail.example.com", ""));
    }

    #[test]
    fn case_and_trailing_dots_ignored() {
        assert!(pattern_matches("MAIL.Example.com", "mail.EXAMPLE.com."));
        assert!(pattern_matches("mail.example.com.", "mail.example.com"));
        assert!(pattern_matches("*.EXAMPLE.com.", "MX1.example.COM."));
        // Only one trailing dot is ignored.
        assert!(!pattern_matches("mail.example.com", "mail.example.com.."));
    }

    #[test]
    fn invalid_patterns_match_nothing() {
        assert!(!pattern_matches("*", "mail.example.com"));
        assert!(!pattern_matches("*.*.example.com", "a.b.example.com"));
        assert!(!pattern_matches("mail*.example.com", "mail1.example.com"));
        assert!(!pattern_matches("mail*.example.com", "mail*.example.com"));
        assert!(!pattern_matches("", ""));
        assert!(!pattern_matches(
            "mx1.a.com, mx2.a.com",
            "mx1.a.com, mx2.a.com"
        ));
        assert!(!pattern_matches("münchen.de", "münchen.de"));
    }

    #[test]
    fn coverage_first_match_wins_and_unused() {
        let patterns = strings(&["mx1.example.com", "*.example.com", "old.example.org"]);
        let hosts = strings(&["mx1.example.com.", "MX2.example.com", "mx.other.net"]);
        let c = coverage(&patterns, &hosts);
        assert_eq!(
            c.hosts,
            vec![
                MxCoverage {
                    host: "mx1.example.com.".into(),
                    covered_by: Some("mx1.example.com".into())
                },
                MxCoverage {
                    host: "MX2.example.com".into(),
                    covered_by: Some("*.example.com".into())
                },
                MxCoverage {
                    host: "mx.other.net".into(),
                    covered_by: None
                },
            ]
        );
        assert_eq!(c.unused_patterns, strings(&["old.example.org"]));
    }

    #[test]
    fn coverage_rfc_appendix_a() {
        let patterns = strings(&[
            "mx1.example.com",
            "mx2.example.com",
            "mx.backup-example.com",
        ]);
        let hosts = strings(&["mx1.example.com", "mx2.example.com"]);
        let c = coverage(&patterns, &hosts);
        assert!(c.hosts.iter().all(|h| h.covered_by.is_some()));
        assert_eq!(c.unused_patterns, strings(&["mx.backup-example.com"]));
    }

    #[test]
    fn coverage_empty_inputs_and_invalid_pattern() {
        let c = coverage(&[], &strings(&["mx.example.com"]));
        assert_eq!(c.hosts[0].covered_by, None);
        assert!(c.unused_patterns.is_empty());
        let c = coverage(&strings(&["*", "mx.example.com"]), &[]);
        assert!(c.hosts.is_empty());
        assert_eq!(c.unused_patterns, strings(&["*", "mx.example.com"]));
        let c = coverage(&strings(&["*"]), &strings(&["mx.example.com"]));
        assert_eq!(c.hosts[0].covered_by, None);
        assert_eq!(c.unused_patterns, strings(&["*"]));
    }

    #[test]
    fn coverage_serializes() {
        let c = coverage(&strings(&["*.example.com"]), &strings(&["mx.example.com"]));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["hosts"][0]["covered_by"], "*.example.com");
        assert_eq!(json["unused_patterns"], serde_json::json!([]));
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
    }

    /// Two to four labels, the last not all digits.
    fn domain() -> impl Strategy<Value = String> {
        (prop::collection::vec(label(), 1..4), "[a-z][a-z0-9]{0,5}")
            .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
    }

    proptest! {
        #[test]
        fn never_panics(pattern in "\\PC{0,40}", host in "\\PC{0,40}") {
            let _ = validate_pattern(&pattern);
            let _ = pattern_matches(&pattern, &host);
            let _ = normalize_host(&host);
        }

        #[test]
        fn never_panics_on_alphabet(
            pattern in "[*.a-zA-Z0-9\\- ,_:\u{e9}\u{fc}]{0,30}",
            host in "[*.a-zA-Z0-9\\- ,_:\u{e9}]{0,30}",
        ) {
            let _ = pattern_matches(&pattern, &host);
            let _ = coverage(&[pattern], &[host]);
        }

        #[test]
        fn exact_pattern_matches_itself_any_case(host in domain(), dot in any::<bool>()) {
            let pattern = if dot { format!("{host}.") } else { host.clone() };
            prop_assert_eq!(validate_pattern(&pattern), Ok(()));
            prop_assert!(pattern_matches(&pattern, &host.to_ascii_uppercase()));
        }

        #[test]
        fn wildcard_matches_one_label_only(
            first in label(),
            extra in label(),
            domain in domain(),
        ) {
            let pattern = format!("*.{domain}");
            let one_below = format!("{first}.{domain}");
            prop_assert!(pattern_matches(&pattern, &one_below));
            prop_assert!(!pattern_matches(&pattern, &domain));
            let two_below = format!("{extra}.{first}.{domain}");
            prop_assert!(!pattern_matches(&pattern, &two_below));
        }
    }
}
