//! The `_smtp._tls` TXT record: which one senders keep, and its grammar (RFC 8460 §3).

use serde::{Deserialize, Serialize};

use super::record::{check_ext_value, check_field_name, is_wsp, quote, split_fields};
use crate::finding::{Code, Finding, Severity};

/// A syntactically valid TLS-RPT record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsRptRecord {
    /// Where senders deliver aggregate reports (`mailto:` or `https:` URIs), as written.
    pub rua: Vec<String>,
    /// Fields other than `v` and `rua`, first occurrence only, in record order.
    pub extensions: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// What senders make of the TXT records at `_smtp._tls.<domain>`.
pub enum TlsRptStatus {
    Valid,
    Missing,
    Multiple,
    Invalid,
    LookupFailed,
}

/// What the TXT records at `_smtp._tls.<domain>` amount to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsRptOutcome {
    /// Valid, missing, invalid or multiple (never `LookupFailed`: that is the caller's).
    pub status: TlsRptStatus,
    /// Some only if exactly one TLS-RPT record remained and it is valid.
    pub record: Option<TlsRptRecord>,
    pub findings: Vec<Finding>,
}

/// Selects and parses the TLS-RPT record among the TXT records at `_smtp._tls.<domain>`.
///
/// `txts`: every TXT record at the name, each already joined from its character-strings without
/// spaces. Records not beginning with `v=TLSRPTv1` and a field delimiter are discarded, as
/// senders do; those that look like a failed attempt at one are reported.
pub fn evaluate_tlsrpt_txt(txts: &[String]) -> TlsRptOutcome {
    let mut kept = Vec::new();
    let mut attempts = Vec::new();
    for txt in txts {
        if is_tlsrpt_record(txt) {
            kept.push(txt);
        } else if let Some(reason) = discard_reason(txt) {
            attempts.push((txt, reason));
        }
    }
    // An ignored attempt is the only trace of a broken setup when nothing else remains.
    let attempt_severity = if kept.is_empty() {
        Severity::Warning
    } else {
        Severity::Info
    };
    let mut findings: Vec<Finding> = attempts
        .iter()
        .map(|(txt, reason)| {
            Finding::new(
                Code::TlsrptInvalid,
                format!(
                    "TXT record {} at _smtp._tls is ignored by senders: {reason}",
                    quote(txt)
                ),
            )
            .with_severity(attempt_severity)
        })
        .collect();
    let record = match kept.as_slice() {
        [] => {
            findings.push(Finding::new(
                Code::TlsrptMissing,
                "no TXT record at _smtp._tls begins with \"v=TLSRPTv1;\", so senders send no TLS \
                 failure reports",
            ));
            None
        }
        [one] => match parse_tlsrpt_record(one) {
            Ok((record, record_findings)) => {
                findings.extend(record_findings);
                Some(record)
            }
            Err(finding) => {
                findings.push(finding);
                None
            }
        },
        many => {
            let listed: Vec<String> = many.iter().map(|r| quote(r)).collect();
            findings.push(Finding::new(
                Code::TlsrptMultiple,
                format!(
                    "{} TXT records at _smtp._tls begin with \"v=TLSRPTv1\" ({}); senders send no \
                     reports unless there is exactly one: merge them into one record (rua= takes \
                     a comma-separated list)",
                    many.len(),
                    listed.join(", ")
                ),
            ));
            None
        }
    };
    let status = match (&record, kept.len()) {
        (Some(_), _) => TlsRptStatus::Valid,
        (None, 0) => TlsRptStatus::Missing,
        (None, 1) => TlsRptStatus::Invalid,
        (None, _) => TlsRptStatus::Multiple,
    };
    TlsRptOutcome {
        status,
        record,
        findings,
    }
}

/// Grammar check of one record against the RFC 8460 §3 ABNF, including each `rua` URI.
///
/// `Err` is the first violation found (a `tlsrpt_invalid` finding). `Ok` carries the record and
/// informational findings (duplicated fields, whitespace outside the grammar).
pub fn parse_tlsrpt_record(text: &str) -> Result<(TlsRptRecord, Vec<Finding>), Finding> {
    let invalid = |why: String| {
        Finding::new(
            Code::TlsrptInvalid,
            format!("TLS-RPT record {} is invalid: {why}", quote(text)),
        )
    };
    let note = |why: String| {
        Finding::new(
            Code::TlsrptInvalid,
            format!("TLS-RPT record {}: {why}", quote(text)),
        )
        .with_severity(Severity::Info)
    };
    if let Some((offset, c)) = text.char_indices().find(|(_, c)| !c.is_ascii()) {
        return Err(invalid(format!(
            "it contains the non-ASCII character {c:?} at byte {offset}"
        )));
    }
    let Some(after_version) = text.strip_prefix(TLSRPT_VERSION) else {
        return Err(invalid(
            "it must begin with \"v=TLSRPTv1\" (case-sensitive, and before any other field)"
                .to_string(),
        ));
    };
    let fields = split_fields(after_version)
        .map_err(|e| invalid(e.describe(TLSRPT_VERSION, "\"rua\" is required")))?;

    let mut findings = Vec::new();
    if fields.trailing_whitespace {
        findings.push(note(
            "trailing whitespace after the last field is outside the RFC 8460 grammar".to_string(),
        ));
    }
    let mut rua: Option<Vec<String>> = None;
    let mut extensions: Vec<(String, String)> = Vec::new();
    let mut near_miss_rua: Option<String> = None;
    for field in fields.fields {
        let Some((name, value)) = field.split_once('=') else {
            return Err(invalid(format!(
                "the field {} has no \"=\"; fields are name=value",
                quote(field)
            )));
        };
        if name == "rua" {
            if rua.is_some() {
                findings.push(note(format!(
                    "duplicate rua= ignored: {}; senders use the first; list every address in \
                     one rua= separated by commas",
                    quote(field)
                )));
                continue;
            }
            let trimmed = value.trim_start_matches(is_wsp);
            if trimmed.len() != value.len() {
                findings.push(note(
                    "whitespace after \"rua=\" is outside the RFC 8460 grammar".to_string(),
                ));
            }
            rua = Some(parse_rua(trimmed).map_err(invalid)?);
            continue;
        }
        check_field_name(name, '=').map_err(invalid)?;
        check_ext_value(name, value).map_err(invalid)?;
        if name == "v" || extensions.iter().any(|(n, _)| n == name) {
            findings.push(note(format!(
                "duplicate {name}= ignored: {}; the first occurrence wins",
                quote(field)
            )));
            continue;
        }
        if name.eq_ignore_ascii_case("rua") {
            near_miss_rua = Some(name.to_string());
        }
        extensions.push((name.to_string(), value.to_string()));
    }
    let Some(rua) = rua else {
        let hint = match near_miss_rua {
            Some(name) => format!(" (found {}: field names are case-sensitive)", quote(&name)),
            None => String::new(),
        };
        return Err(invalid(format!(
            "it has no \"rua=\" field, so senders have nowhere to send reports{hint}"
        )));
    };
    Ok((TlsRptRecord { rua, extensions }, findings))
}

const TLSRPT_VERSION: &str = "v=TLSRPTv1";

/// Kept by senders: `v=TLSRPTv1`, optional whitespace, then `;` (RFC 8460 §3 ABNF).
fn is_tlsrpt_record(txt: &str) -> bool {
    txt.strip_prefix(TLSRPT_VERSION)
        .is_some_and(|after| after.trim_start_matches(is_wsp).starts_with(';'))
}

/// Why a TXT record that senders discard looks like a failed attempt at a TLS-RPT record; `None`
/// for unrelated records.
fn discard_reason(txt: &str) -> Option<String> {
    let stripped = txt.trim_start_matches([' ', '\t', '"', '\'']);
    let looks_like_tlsrpt = stripped
        .get(..8)
        .is_some_and(|head| head.eq_ignore_ascii_case("v=tlsrpt"));
    if !looks_like_tlsrpt {
        return None;
    }
    let reason = if stripped.len() != txt.len() {
        if txt.starts_with(['"', '\'']) {
            "it starts with a literal quote character (the DNS provider stored the quotes as part \
             of the text)"
        } else {
            "it starts with whitespace"
        }
    } else if txt.starts_with(TLSRPT_VERSION) {
        "\"v=TLSRPTv1\" is not followed by \";\" and the rua= field"
    } else if txt
        .get(..TLSRPT_VERSION.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(TLSRPT_VERSION))
    {
        "the version is case-sensitive and must be written \"v=TLSRPTv1\""
    } else {
        "the only version is \"v=TLSRPTv1\""
    };
    Some(reason.to_string())
}

/// `tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)`.
fn parse_rua(value: &str) -> Result<Vec<String>, String> {
    if value.is_empty() {
        return Err("rua= is empty; give a mailto: or https: URI".to_string());
    }
    let mut uris = Vec::new();
    for item in value.split(',') {
        let uri = item.trim_matches(is_wsp);
        if uri.is_empty() {
            return Err(format!(
                "rua= {} has an empty entry (a stray comma?)",
                quote(value)
            ));
        }
        check_uri(uri).map_err(|why| format!("the rua URI {} {why}", quote(uri)))?;
        uris.push(uri.to_string());
    }
    Ok(uris)
}

/// A `mailto:` or `https:` URI; `Err` completes the sentence "the rua URI … ".
fn check_uri(uri: &str) -> Result<(), String> {
    if uri.contains('!') {
        return Err(
            "contains \"!\", which must be percent-encoded as %21 (a DMARC-style size \
                    limit such as \"!10m\" is not part of TLS-RPT)"
                .to_string(),
        );
    }
    if let Some(c) = uri.chars().find(|c| !is_uri_char(*c)) {
        return Err(format!("contains {c:?}, which is not allowed in a URI"));
    }
    check_percent_encoding(uri)?;
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(if uri.contains('@') {
            format!("has no scheme; write \"mailto:{uri}\"")
        } else {
            "has no scheme; use mailto: or https:".to_string()
        });
    };
    if scheme.eq_ignore_ascii_case("mailto") {
        check_mailto(rest)
    } else if scheme.eq_ignore_ascii_case("https") {
        check_https(rest)
    } else if scheme.eq_ignore_ascii_case("http") {
        Err("uses http:, which TLS-RPT does not support; use https: or mailto:".to_string())
    } else {
        Err(format!(
            "uses the scheme {}, which TLS-RPT does not support; use mailto: or https:",
            quote(scheme)
        ))
    }
}

/// The part after `mailto:`: `local@domain`, optionally followed by `?hfields`.
fn check_mailto(rest: &str) -> Result<(), String> {
    if rest.starts_with("//") {
        return Err("has \"//\" after mailto:; write \"mailto:reports@example.com\"".to_string());
    }
    let address = rest.split_once('?').map_or(rest, |(address, _)| address);
    if address.is_empty() {
        return Err("has no address after mailto:".to_string());
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err("has no \"@\" in its address".to_string());
    };
    if domain.contains('@') {
        return Err("has more than one \"@\" in its address".to_string());
    }
    if local.is_empty() {
        return Err("has nothing before the \"@\"".to_string());
    }
    check_host(domain, "mail domain")
}

/// The part after `https:`: `//` authority, then an optional path.
fn check_https(rest: &str) -> Result<(), String> {
    let Some(after_slashes) = rest.strip_prefix("//") else {
        return Err("must start with \"https://\"".to_string());
    };
    let authority = after_slashes
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_userinfo, host_port)| host_port);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((literal, after)) = bracketed.split_once(']') else {
            return Err("has an unclosed \"[\" in its host".to_string());
        };
        if literal.is_empty() {
            return Err("has an empty host".to_string());
        }
        match after.strip_prefix(':') {
            Some(port) => ("", Some(port)),
            None if after.is_empty() => ("", None),
            None => return Err("has junk after its IP literal host".to_string()),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("has an invalid port {}", quote(port)));
        }
    }
    if host_port.starts_with('[') {
        return Ok(());
    }
    if host.is_empty() {
        return Err("has no host after \"https://\"".to_string());
    }
    check_host(host, "host")
}

/// A DNS name of letter/digit/hyphen labels (or a dotted IPv4 address); one trailing dot allowed.
fn check_host(host: &str, what: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("has an empty {what}"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if labels_ok {
        Ok(())
    } else {
        Err(format!(
            "has the {what} {}, which is not a valid domain name",
            quote(host)
        ))
    }
}

/// RFC 3986 unreserved, gen-delims, sub-delims and `%`, minus the `,`, `!` and `;` that RFC
/// 8460 requires to be encoded.
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.'
                | '_'
                | '~'
                | ':'
                | '/'
                | '?'
                | '#'
                | '['
                | ']'
                | '@'
                | '$'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | '+'
                | '='
                | '%'
        )
}

fn check_percent_encoding(uri: &str) -> Result<(), String> {
    let mut rest = uri;
    while let Some((_, after)) = rest.split_once('%') {
        let hex = after.get(..2).unwrap_or(after);
        if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("has a \"%\" not followed by two hex digits".to_string());
        }
        rest = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn txts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn codes(findings: &[Finding]) -> Vec<Code> {
        findings.iter().map(|f| f.code).collect()
    }

    fn parse_ok(text: &str) -> (TlsRptRecord, Vec<Finding>) {
        parse_tlsrpt_record(text).unwrap_or_else(|f| panic!("{text:?} rejected: {}", f.message))
    }

    fn parse_err(text: &str) -> Finding {
        match parse_tlsrpt_record(text) {
            Ok(r) => panic!("{text:?} accepted: {r:?}"),
            Err(f) => {
                assert_eq!(f.code, Code::TlsrptInvalid, "{text:?}");
                assert_eq!(f.severity, Severity::Warning);
                f
            }
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rfc_examples() {
        let (record, findings) = parse_ok("v=TLSRPTv1;rua=mailto:reports@example.com");
        assert_eq!(record.rua, strings(&["mailto:reports@example.com"]));
        assert!(findings.is_empty());
        let (record, findings) =
            parse_ok("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt");
        assert_eq!(
            record.rua,
            strings(&["https://reporting.example.com/v1/tlsrpt"])
        );
        assert!(findings.is_empty());
    }

    #[test]
    fn rua_lists() {
        let (record, _) = parse_ok(
            "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.net/x , \tMAILTO:b@example.org;",
        );
        assert_eq!(
            record.rua,
            strings(&[
                "mailto:a@example.com",
                "https://r.example.net/x",
                "MAILTO:b@example.org"
            ])
        );
        let f = parse_err("v=TLSRPTv1; rua=mailto:a@example.com,");
        assert!(f.message.contains("stray comma"), "{}", f.message);
        parse_err("v=TLSRPTv1; rua=mailto:a@example.com,,mailto:b@example.com");
        assert!(parse_err("v=TLSRPTv1; rua=").message.contains("empty"));
    }

    #[test]
    fn valid_uri_forms() {
        for uri in [
            "mailto:tls-reports+x@example.com",
            "mailto:reports@example.com?subject=tlsrpt",
            "mailto:r%2Bx@example.com",
            "mailto:reports@localhost",
            "HTTPS://reporting.example.com",
            "https://reporting.example.com:8443/v1/tlsrpt?k=v#frag",
            "https://user@reporting.example.com/",
            "https://[2001:db8::1]/tlsrpt",
            "https://[2001:db8::1]:443/tlsrpt",
            "https://192.0.2.1/tlsrpt",
        ] {
            let text = format!("v=TLSRPTv1; rua={uri}");
            let (record, findings) = parse_ok(&text);
            assert_eq!(record.rua, vec![uri.to_string()]);
            assert!(findings.is_empty(), "{uri}: {findings:?}");
        }
    }

    #[test]
    fn invalid_uris_are_named() {
        for (uri, why) in [
            ("http://reporting.example.com/", "http:"),
            ("ftp://reporting.example.com/", "\"ftp\""),
            ("reports@example.com", "mailto:reports@example.com"),
            ("reporting.example.com", "no scheme"),
            ("mailto:", "no address"),
            ("mailto:reports", "no \"@\""),
            ("mailto:a@b@example.com", "more than one"),
            ("mailto:@example.com", "nothing before"),
            ("mailto:reports@", "empty mail domain"),
            ("mailto:reports@exa_mple.com", "not a valid domain"),
            ("mailto:reports@example..com", "not a valid domain"),
            ("mailto://reports@example.com", "\"//\""),
            ("mailto:reports@example.com!10m", "%21"),
            ("https:reporting.example.com", "https://"),
            ("https://", "no host"),
            ("https:///path", "no host"),
            ("https://:443/", "no host"),
            ("https://example.com:x/", "port"),
            ("https://[2001:db8::1/", "unclosed"),
            ("https://[]/", "empty host"),
            ("https://exa mple.com", "' '"),
            ("mailto:a%2@example.com", "hex"),
            ("mailto:a<b>@example.com", "'<'"),
        ] {
            let f = parse_err(&format!("v=TLSRPTv1; rua={uri}"));
            assert!(f.message.contains(why), "{uri:?}: {}", f.message);
            assert!(
                f.message.contains(&format!("{uri:?}")),
                "{uri:?}: {}",
                f.message
            );
        }
    }

    #[test]
    fn rua_required() {
        let f = parse_err("v=TLSRPTv1; foo=bar");
        assert!(f.message.contains("no \"rua=\""), "{}", f.message);
        let f = parse_err("v=TLSRPTv1; RUA=mailto:a@example.com");
        assert!(f.message.contains("case-sensitive"), "{}", f.message);
        parse_err("v=TLSRPTv1;");
        parse_err("v=TLSRPTv1");
    }

    #[test]
    fn grammar_errors() {
        assert!(parse_err("rua=mailto:a@example.com; v=TLSRPTv1")
            .message
            .contains("begin with"));
        parse_err("v=tlsrptv1; rua=mailto:a@example.com");
        parse_err("v=TLSRPTv1 rua=mailto:a@example.com");
        parse_err("v=TLSRPTv1;; rua=mailto:a@example.com");
        parse_err("v=TLSRPTv1; rua=mailto:a@example.com; junk");
        parse_err("v=TLSRPTv1; rua=mailto:a@example.com; x=");
        parse_err("v=TLSRPTv1; rua=mailto:a@example.com; x=a b");
        parse_err("v=TLSRPTv1; rua=mailto:a@example.com; -x=1");
        assert!(parse_err("v=TLSRPTv1; rua=mailto:ré@example.com")
            .message
            .contains("non-ASCII"));
    }

    #[test]
    fn duplicates_are_info() {
        let (record, findings) =
            parse_ok("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com");
        assert_eq!(record.rua, strings(&["mailto:a@example.com"]));
        assert_eq!(codes(&findings), vec![Code::TlsrptInvalid]);
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(findings[0].message.contains("duplicate rua= ignored"));
        assert!(findings[0].message.contains("mailto:b@example.com"));

        // A broken duplicate is ignored too: senders never look at it.
        let (record, findings) = parse_ok("v=TLSRPTv1; rua=mailto:a@example.com; rua=http://x");
        assert_eq!(record.rua.len(), 1);
        assert_eq!(findings.len(), 1);

        let (_, findings) = parse_ok("v=TLSRPTv1; rua=mailto:a@example.com; v=TLSRPTv1");
        assert_eq!(codes(&findings), vec![Code::TlsrptInvalid]);
        assert!(findings[0].message.contains("duplicate v= ignored"));

        let (record, findings) = parse_ok("v=TLSRPTv1; rua=mailto:a@example.com; x=1; x=2");
        assert_eq!(record.extensions, vec![("x".to_string(), "1".to_string())]);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Info);
    }

    #[test]
    fn extensions_are_kept_silently() {
        let (record, findings) = parse_ok("v=TLSRPTv1; ext.1=a/b:c; rua=mailto:a@example.com");
        assert_eq!(
            record.extensions,
            vec![("ext.1".to_string(), "a/b:c".to_string())]
        );
        assert!(findings.is_empty());
    }

    #[test]
    fn whitespace_outside_grammar_is_info() {
        let (record, findings) = parse_ok("v=TLSRPTv1; rua= mailto:a@example.com");
        assert_eq!(record.rua, strings(&["mailto:a@example.com"]));
        assert_eq!(codes(&findings), vec![Code::TlsrptInvalid]);
        assert_eq!(findings[0].severity, Severity::Info);
        let (_, findings) = parse_ok("v=TLSRPTv1; rua=mailto:a@example.com ");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Info);
    }

    #[test]
    fn evaluate_selection() {
        let out = evaluate_tlsrpt_txt(&txts(&[
            "v=spf1 -all",
            "v=TLSRPTv1;rua=mailto:reports@example.com",
        ]));
        assert_eq!(
            out.record.unwrap().rua,
            strings(&["mailto:reports@example.com"])
        );
        assert!(out.findings.is_empty());

        // Whitespace before ";" is fine for TLS-RPT (the ABNF allows it).
        let out = evaluate_tlsrpt_txt(&txts(&["v=TLSRPTv1 ;rua=mailto:reports@example.com"]));
        assert!(out.record.is_some());
    }

    #[test]
    fn evaluate_missing() {
        let out = evaluate_tlsrpt_txt(&[]);
        assert_eq!(out.record, None);
        assert_eq!(codes(&out.findings), vec![Code::TlsrptMissing]);
        assert_eq!(out.findings[0].severity, Severity::Info);
        let out = evaluate_tlsrpt_txt(&txts(&["v=DMARC1; p=none"]));
        assert_eq!(codes(&out.findings), vec![Code::TlsrptMissing]);
    }

    #[test]
    fn evaluate_discarded_attempts() {
        for (text, why) in [
            ("v=tlsrptv1; rua=mailto:a@example.com", "case-sensitive"),
            ("v=TLSRPTv1 rua=mailto:a@example.com", "not followed"),
            ("v=TLSRPTv1", "not followed"),
            ("v=TLSRPTv2; rua=mailto:a@example.com", "only version"),
            ("\"v=TLSRPTv1; rua=mailto:a@example.com\"", "literal quote"),
            (" v=TLSRPTv1; rua=mailto:a@example.com", "whitespace"),
        ] {
            let out = evaluate_tlsrpt_txt(&txts(&[text]));
            assert_eq!(out.record, None);
            assert_eq!(
                codes(&out.findings),
                vec![Code::TlsrptInvalid, Code::TlsrptMissing],
                "{text:?}"
            );
            assert_eq!(out.findings[0].severity, Severity::Warning);
            assert!(
                out.findings[0].message.contains(why),
                "{}",
                out.findings[0].message
            );
            assert!(out.findings[0].message.contains(&format!("{text:?}")));
        }
        let out = evaluate_tlsrpt_txt(&txts(&[
            "v=tlsrptv1; rua=mailto:old@example.com",
            "v=TLSRPTv1; rua=mailto:a@example.com",
        ]));
        assert!(out.record.is_some());
        assert_eq!(codes(&out.findings), vec![Code::TlsrptInvalid]);
        assert_eq!(out.findings[0].severity, Severity::Info);
    }

    #[test]
    fn evaluate_multiple() {
        let out = evaluate_tlsrpt_txt(&txts(&[
            "v=TLSRPTv1; rua=mailto:a@example.com",
            "v=TLSRPTv1; rua=https://r.example.com/",
        ]));
        assert_eq!(out.record, None);
        assert_eq!(codes(&out.findings), vec![Code::TlsrptMultiple]);
        assert!(out.findings[0].message.contains("mailto:a@example.com"));
        assert!(out.findings[0].message.contains("https://r.example.com/"));
    }

    #[test]
    fn evaluate_single_invalid() {
        let out = evaluate_tlsrpt_txt(&txts(&["v=TLSRPTv1; rua=http://r.example.com/"]));
        assert_eq!(out.record, None);
        assert_eq!(codes(&out.findings), vec![Code::TlsrptInvalid]);
        assert_eq!(out.findings[0].severity, Severity::Warning);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(text in "\\PC{0,60}", bytes in prop::collection::vec(any::<u8>(), 0..60)) {
            let _ = parse_tlsrpt_record(&text);
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            let _ = evaluate_tlsrpt_txt(&[text, lossy]);
        }

        #[test]
        fn never_panics_on_grammar_alphabet(
            text in "(v=TLSRPTv1;rua=)?[vTLSRPua=;:,@%/\\[\\] \t\r\nmailtohps.!é1\"]{0,50}"
        ) {
            let _ = parse_tlsrpt_record(&text);
            let _ = evaluate_tlsrpt_txt(&[text]);
        }

        #[test]
        fn generated_rua_round_trips(
            locals in prop::collection::vec("[a-z0-9][a-z0-9+._-]{0,8}", 1..4),
            domain in "[a-z][a-z0-9-]{0,8}[a-z0-9]\\.[a-z]{2,6}",
            https in any::<bool>(),
        ) {
            let mut uris: Vec<String> = locals.iter().map(|l| format!("mailto:{l}@{domain}")).collect();
            if https {
                uris.push(format!("https://{domain}/tlsrpt"));
            }
            let text = format!("v=TLSRPTv1; rua={}", uris.join(", "));
            let out = evaluate_tlsrpt_txt(&[text]);
            prop_assert_eq!(out.record.map(|r| r.rua), Some(uris));
            prop_assert!(out.findings.is_empty());
        }
    }
}
