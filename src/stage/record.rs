//! The `_mta-sts` TXT record: which one senders keep, and its strict grammar (RFC 8461 §3.1).

use serde::{Deserialize, Serialize};

use crate::finding::{Code, Finding, Severity};

/// A syntactically valid `_mta-sts` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StsRecord {
    /// Changes whenever the policy changes, so senders know to fetch it again.
    pub id: String,
    /// Fields other than `v` and `id`, first occurrence only, in record order.
    pub extensions: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// What senders make of the TXT records at `_mta-sts.<domain>`.
pub enum RecordStatus {
    Valid,
    Missing,
    Multiple,
    Invalid,
    LookupFailed,
}

/// What the TXT records at `_mta-sts.<domain>` amount to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordOutcome {
    /// Valid, missing, invalid or multiple (never `LookupFailed`: that is the caller's).
    pub status: RecordStatus,
    /// Some only if exactly one STS record remained and it is valid.
    pub record: Option<StsRecord>,
    /// The records that began with `v=STSv1;` (after joining), i.e. the ones senders keep.
    pub sts_records: Vec<String>,
    pub findings: Vec<Finding>,
}

/// Selects and parses the MTA-STS record among the TXT records at `_mta-sts.<domain>`.
///
/// `txts`: every TXT record at the name, each already joined from its character-strings without
/// spaces. Records not beginning with exactly `v=STSv1;` are discarded, as senders do; those that
/// look like a failed attempt at one are reported.
pub fn evaluate_sts_txt(txts: &[String]) -> RecordOutcome {
    let mut findings = Vec::new();
    let mut sts_records = Vec::new();
    let mut discarded = 0usize;
    for txt in txts {
        if txt.starts_with(STS_PREFIX) {
            sts_records.push(txt.clone());
        } else if let Some(reason) = discard_reason(txt) {
            discarded += 1;
            findings.push(Finding::new(
                Code::StsRecordDiscarded,
                format!(
                    "TXT record {} is ignored by senders: {reason}; only records beginning with \
                     exactly \"v=STSv1;\" count",
                    quote(txt)
                ),
            ));
        }
    }
    let record = match sts_records.as_slice() {
        [] => {
            let mut message = "no TXT record at _mta-sts begins with \"v=STSv1;\", so senders \
                               see no MTA-STS policy"
                .to_string();
            if discarded > 0 {
                message.push_str(&format!(
                    " ({discarded} malformed attempt{} discarded, see sts_record_discarded)",
                    if discarded == 1 { "" } else { "s" }
                ));
            }
            findings.push(Finding::new(Code::StsRecordMissing, message));
            None
        }
        [one] => match parse_sts_record(one) {
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
                Code::StsRecordMultiple,
                format!(
                    "{} TXT records at _mta-sts begin with \"v=STSv1;\" ({}); senders ignore \
                     MTA-STS unless there is exactly one: delete all but one",
                    many.len(),
                    listed.join(", ")
                ),
            ));
            None
        }
    };
    let status = match (&record, sts_records.len()) {
        (Some(_), _) => RecordStatus::Valid,
        (None, 0) => RecordStatus::Missing,
        (None, 1) => RecordStatus::Invalid,
        (None, _) => RecordStatus::Multiple,
    };
    RecordOutcome {
        status,
        record,
        sts_records,
        findings,
    }
}

/// Strict grammar check of one record against the RFC 8461 §3.1 ABNF.
///
/// `Err` is the first violation found (a `sts_record_invalid` finding). `Ok` carries the record
/// and the findings that do not make it unusable: extension fields, duplicated fields (the first
/// wins), trailing whitespace.
pub fn parse_sts_record(text: &str) -> Result<(StsRecord, Vec<Finding>), Finding> {
    let invalid = |why: String| {
        Finding::new(
            Code::StsRecordInvalid,
            format!("MTA-STS record {} is invalid: {why}", quote(text)),
        )
    };
    if let Some((offset, c)) = text.char_indices().find(|(_, c)| !c.is_ascii()) {
        return Err(invalid(format!(
            "it contains the non-ASCII character {c:?} at byte {offset}; the record must be \
             US-ASCII"
        )));
    }
    let Some(after_version) = text.strip_prefix(STS_VERSION) else {
        return Err(invalid(
            "it must begin with \"v=STSv1\" (case-sensitive, and before any other field)"
                .to_string(),
        ));
    };
    let fields = split_fields(after_version)
        .map_err(|e| invalid(e.describe(STS_VERSION, "\"id\" is required")))?;

    let mut findings = Vec::new();
    if fields.trailing_whitespace {
        findings.push(
            Finding::new(
                Code::StsRecordInvalid,
                format!(
                    "MTA-STS record {} ends in whitespace after its last field, which the RFC \
                     8461 grammar does not allow; strict senders may reject it: remove it or end \
                     the record with \";\"",
                    quote(text)
                ),
            )
            .with_severity(Severity::Warning),
        );
    }
    let mut id: Option<String> = None;
    let mut extensions: Vec<(String, String)> = Vec::new();
    let mut near_miss_id: Option<String> = None;
    for field in fields.fields {
        let Some((name, value)) = field.split_once('=') else {
            return Err(invalid(format!(
                "the field {} has no \"=\"; fields are name=value",
                quote(field)
            )));
        };
        if name == "id" {
            if id.is_some() {
                check_ext_value(name, value).map_err(invalid)?;
                findings.push(duplicate_field(text, field));
                continue;
            }
            check_id(value).map_err(invalid)?;
            id = Some(value.to_string());
            continue;
        }
        check_field_name(name, '=').map_err(invalid)?;
        check_ext_value(name, value).map_err(invalid)?;
        if name == "v" || extensions.iter().any(|(n, _)| n == name) {
            findings.push(duplicate_field(text, field));
            continue;
        }
        if name.eq_ignore_ascii_case("id") {
            near_miss_id = Some(name.to_string());
        }
        findings.push(Finding::new(
            Code::StsRecordExtensionField,
            format!(
                "MTA-STS record has the extension field {}; senders ignore fields they do not \
                 know",
                quote(field)
            ),
        ));
        extensions.push((name.to_string(), value.to_string()));
    }
    let Some(id) = id else {
        let hint = match near_miss_id {
            Some(name) => format!(" (found {}: field names are case-sensitive)", quote(&name)),
            None => String::new(),
        };
        return Err(invalid(format!("it has no \"id=\" field{hint}")));
    };
    Ok((StsRecord { id, extensions }, findings))
}

/// The literal prefix senders keep records by (RFC 8461 §3.1).
const STS_PREFIX: &str = "v=STSv1;";
const STS_VERSION: &str = "v=STSv1";
const MAX_ID_LEN: usize = 32;
/// Longest value quoted in a message, in characters.
const QUOTE_MAX_CHARS: usize = 80;

/// Why a TXT record that does not begin with `v=STSv1;` looks like a failed attempt at an MTA-STS
/// record; `None` for unrelated records (site verification, SPF…), which are silently ignored.
fn discard_reason(txt: &str) -> Option<String> {
    let stripped = txt.trim_start_matches([' ', '\t', '"', '\'']);
    if !starts_with_ignore_case(stripped, "v=sts") {
        return None;
    }
    let reason = if stripped.len() != txt.len() {
        if txt.starts_with(['"', '\'']) {
            "it starts with a literal quote character (the DNS provider stored the quotes as \
             part of the text)"
                .to_string()
        } else {
            "it starts with whitespace".to_string()
        }
    } else if let Some(after) = txt.strip_prefix(STS_VERSION) {
        if after.is_empty() {
            "\"v=STSv1\" is not followed by \";\" and an id".to_string()
        } else if after.starts_with(is_wsp) && after.trim_start_matches(is_wsp).starts_with(';') {
            "it has whitespace between \"v=STSv1\" and \";\" (allowed by the ABNF but not by \
             the selection rule, RFC 8461 erratum 6285)"
                .to_string()
        } else {
            "\"v=STSv1\" is not followed by \";\"".to_string()
        }
    } else if starts_with_ignore_case(txt, STS_VERSION) {
        "the version is case-sensitive and must be written \"v=STSv1\"".to_string()
    } else {
        "the only version is \"v=STSv1\"".to_string()
    };
    Some(reason)
}

fn check_id(value: &str) -> Result<(), String> {
    let count = value.chars().count();
    if count == 0 {
        return Err("the id is empty; it must be 1 to 32 letters and digits".to_string());
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the id {} contains {c:?}; it must be 1 to 32 letters and digits only",
            quote(value)
        ));
    }
    if count > MAX_ID_LEN {
        return Err(format!(
            "the id {} is {count} characters long; at most {MAX_ID_LEN} letters and digits are \
             allowed",
            quote(value)
        ));
    }
    Ok(())
}

fn duplicate_field(text: &str, field: &str) -> Finding {
    Finding::new(
        Code::StsRecordDuplicateField,
        format!(
            "MTA-STS record {} repeats a field: {} is ignored, the first occurrence wins",
            quote(text),
            quote(field)
        ),
    )
}

/// The value quoted for a message: Rust string syntax (control characters escaped), cut to
/// [`QUOTE_MAX_CHARS`] characters with `…`.
pub(crate) fn quote(value: &str) -> String {
    let mut chars = value.char_indices();
    let cut = chars.nth(QUOTE_MAX_CHARS).map(|(offset, _)| offset);
    match cut.and_then(|offset| value.get(..offset)) {
        Some(head) => {
            let mut quoted = format!("{head:?}");
            quoted.pop();
            quoted.push_str("…\"");
            quoted
        }
        None => format!("{value:?}"),
    }
}

/// WSP of RFC 5234: space or horizontal tab.
pub(crate) fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `(ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")`: the name of an extension field, in
/// the TXT records of both RFCs (`delimiter` `=`) and in the policy file (`delimiter` `:`).
pub(crate) fn check_field_name(name: &str, delimiter: char) -> Result<(), String> {
    let valid_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let valid_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() {
        Err("a field has an empty name".to_string())
    } else if !valid_first || !valid_rest {
        let spaces = if name.ends_with(is_wsp) {
            format!(" (no whitespace is allowed before \"{delimiter}\")")
        } else {
            String::new()
        };
        Err(format!(
            "the field name {} must start with a letter or digit and contain only letters, \
             digits, \"_\", \"-\" and \".\"{spaces}",
            quote(name)
        ))
    } else if name.len() > 32 {
        Err(format!(
            "the field name {} is longer than 32 characters",
            quote(name)
        ))
    } else {
        Ok(())
    }
}

/// `1*(%x21-3A / %x3C / %x3E-7E)`: the value of an extension field in a TXT record.
pub(crate) fn check_ext_value(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the field {} has an empty value", quote(name)));
    }
    match value
        .chars()
        .find(|c| !matches!(c, '\x21'..='\x3a' | '\x3c' | '\x3e'..='\x7e'))
    {
        Some(c) => Err(format!(
            "the value {} of {} contains {c:?}; spaces, \"=\", \";\" and control characters are \
             not allowed in a value",
            quote(value),
            quote(name)
        )),
        None => Ok(()),
    }
}

/// The fields after the version of a TXT record, as `*WSP ";" *WSP`-delimited by the ABNF
/// `version 1*(field-delim field) [field-delim]`.
pub(crate) struct Fields<'a> {
    /// Each field with the delimiters' whitespace removed; never empty.
    pub(crate) fields: Vec<&'a str>,
    /// The record ends in whitespace not followed by `;`, outside the grammar.
    pub(crate) trailing_whitespace: bool,
}

/// Why the text after the version does not split into fields.
pub(crate) enum SplitError<'a> {
    /// Something other than whitespace sits between the version and the first `;`.
    NotDelimited(&'a str),
    /// No `;` and field after the version.
    NoFields,
    /// Two delimiters in a row (`;;`, `; ;`).
    EmptyField,
}

impl SplitError<'_> {
    /// A reason for a person; `required` names the field that is missing when there are none.
    pub(crate) fn describe(&self, version: &str, required: &str) -> String {
        match self {
            SplitError::NotDelimited(junk) => format!(
                "{} must be followed by \";\", not {}",
                quote(version),
                quote(junk)
            ),
            SplitError::NoFields => {
                format!("it has no fields after {}; {required}", quote(version))
            }
            SplitError::EmptyField => "it has an empty field (two \";\" in a row)".to_string(),
        }
    }
}

pub(crate) fn split_fields(after_version: &str) -> Result<Fields<'_>, SplitError<'_>> {
    let mut parts = after_version.split(';');
    let before_first = parts.next().unwrap_or_default();
    if !before_first.chars().all(is_wsp) {
        return Err(SplitError::NotDelimited(before_first));
    }
    let parts: Vec<&str> = parts.collect();
    let last_index = parts.len().checked_sub(1);
    let mut fields = Vec::new();
    let mut trailing_whitespace = false;
    for (index, part) in parts.iter().enumerate() {
        let field = part.trim_matches(is_wsp);
        let last = Some(index) == last_index;
        if field.is_empty() {
            if last && !fields.is_empty() {
                break;
            }
            return Err(if fields.is_empty() && last {
                SplitError::NoFields
            } else {
                SplitError::EmptyField
            });
        }
        if last && part.ends_with(is_wsp) {
            trailing_whitespace = true;
        }
        fields.push(field);
    }
    if fields.is_empty() {
        return Err(SplitError::NoFields);
    }
    Ok(Fields {
        fields,
        trailing_whitespace,
    })
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
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

    fn parse_ok(text: &str) -> (StsRecord, Vec<Finding>) {
        parse_sts_record(text).unwrap_or_else(|f| panic!("{text:?} rejected: {}", f.message))
    }

    fn parse_err(text: &str) -> Finding {
        match parse_sts_record(text) {
            Ok(r) => panic!("{text:?} accepted: {r:?}"),
            Err(f) => {
                assert_eq!(f.code, Code::StsRecordInvalid, "{text:?}");
                assert_eq!(f.severity, Severity::Critical);
                f
            }
        }
    }

    #[test]
    fn rfc_example_record() {
        let (record, findings) = parse_ok("v=STSv1; id=20160831085700Z;");
        assert_eq!(record.id, "20160831085700Z");
        assert!(record.extensions.is_empty());
        assert!(findings.is_empty());
    }

    #[test]
    fn minimal_forms() {
        for text in [
            "v=STSv1;id=abc",
            "v=STSv1;id=abc;",
            "v=STSv1 ;id=abc",
            "v=STSv1\t;\tid=abc\t;\t",
            "v=STSv1;  id=abc  ;  ",
        ] {
            let (record, findings) = parse_ok(text);
            assert_eq!(record.id, "abc", "{text:?}");
            assert!(findings.is_empty(), "{text:?}: {findings:?}");
        }
    }

    #[test]
    fn id_rules() {
        assert_eq!(
            parse_ok(&format!("v=STSv1; id={}", "a".repeat(32)))
                .0
                .id
                .len(),
            32
        );
        assert!(parse_err("v=STSv1; id=").message.contains("empty"));
        assert!(parse_err("v=STSv1; id=;").message.contains("empty"));
        let long = "a1".repeat(16) + "b";
        let f = parse_err(&format!("v=STSv1; id={long}"));
        assert!(f.message.contains("33 characters"), "{}", f.message);
        assert!(f.message.contains(&long));
        for bad in ["2024-01-01", "1.2", "20160831T08:57:00Z", "abc_def"] {
            let f = parse_err(&format!("v=STSv1; id={bad};"));
            assert!(f.message.contains(bad), "{}", f.message);
        }
        let f = parse_err("v=STSv1; id=abc def");
        assert!(f.message.contains("\"abc def\""), "{}", f.message);
    }

    #[test]
    fn id_required() {
        let f = parse_err("v=STSv1; foo=bar");
        assert!(f.message.contains("no \"id=\""), "{}", f.message);
        let f = parse_err("v=STSv1; ID=abc");
        assert!(f.message.contains("case-sensitive"), "{}", f.message);
        assert!(parse_err("v=STSv1;").message.contains("no fields"));
        assert!(parse_err("v=STSv1").message.contains("no fields"));
        assert!(parse_err("v=STSv1 ; ").message.contains("no fields"));
    }

    #[test]
    fn version_first_and_case_sensitive() {
        assert!(parse_err("id=abc; v=STSv1").message.contains("begin with"));
        parse_err("v=stsv1; id=abc");
        parse_err(" v=STSv1; id=abc");
        parse_err("");
        let f = parse_err("v=STSv10; id=abc");
        assert!(f.message.contains("\"0\""), "{}", f.message);
        parse_err("v=STSv1 id=abc");
    }

    #[test]
    fn empty_fields_are_invalid() {
        assert!(parse_err("v=STSv1;;id=abc").message.contains("empty field"));
        assert!(parse_err("v=STSv1; id=abc;;")
            .message
            .contains("empty field"));
        assert!(parse_err("v=STSv1; ; id=abc")
            .message
            .contains("empty field"));
    }

    #[test]
    fn malformed_fields() {
        assert!(parse_err("v=STSv1; id=abc; foo")
            .message
            .contains("no \"=\""));
        assert!(parse_err("v=STSv1; id=abc; =bar")
            .message
            .contains("empty name"));
        assert!(parse_err("v=STSv1; id=abc; _x=bar")
            .message
            .contains("\"_x\""));
        assert!(parse_err("v=STSv1; id=abc; foo =bar")
            .message
            .contains("before \"=\""));
        assert!(parse_err("v=STSv1; id=abc; foo=")
            .message
            .contains("empty value"));
        assert!(parse_err("v=STSv1; id=abc; foo=a b")
            .message
            .contains("' '"));
        assert!(parse_err("v=STSv1; id=abc; foo=a=b")
            .message
            .contains("'='"));
        assert!(parse_err("v=STSv1; id=abc\r\n").message.contains("'\\r'"));
        let name33 = format!("a{}", "b".repeat(32));
        assert!(parse_err(&format!("v=STSv1; id=abc; {name33}=x"))
            .message
            .contains("longer than 32"));
        let name32 = format!("a{}", "b".repeat(31));
        parse_ok(&format!("v=STSv1; id=abc; {name32}=x"));
    }

    #[test]
    fn non_ascii_is_invalid() {
        let f = parse_err("v=STSv1; id=abc; note=café");
        assert!(f.message.contains("non-ASCII"), "{}", f.message);
        assert!(f.message.contains("'é'"), "{}", f.message);
        parse_err("v=STSv1; id=abç");
    }

    #[test]
    fn extension_fields_are_info() {
        let (record, findings) = parse_ok("v=STSv1; id=abc; x-foo.bar_1=a:b/c!; 9z=1");
        assert_eq!(
            record.extensions,
            vec![
                ("x-foo.bar_1".to_string(), "a:b/c!".to_string()),
                ("9z".to_string(), "1".to_string())
            ]
        );
        assert_eq!(
            codes(&findings),
            vec![Code::StsRecordExtensionField, Code::StsRecordExtensionField]
        );
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(findings[0].message.contains("x-foo.bar_1=a:b/c!"));
    }

    #[test]
    fn duplicate_fields_first_wins() {
        let (record, findings) = parse_ok("v=STSv1; id=first; id=second");
        assert_eq!(record.id, "first");
        assert_eq!(codes(&findings), vec![Code::StsRecordDuplicateField]);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(findings[0].message.contains("id=second"));

        let (_, findings) = parse_ok("v=STSv1; id=abc; v=STSv1");
        assert_eq!(codes(&findings), vec![Code::StsRecordDuplicateField]);

        let (record, findings) = parse_ok("v=STSv1; id=abc; x=1; x=2");
        assert_eq!(record.extensions, vec![("x".to_string(), "1".to_string())]);
        assert_eq!(
            codes(&findings),
            vec![Code::StsRecordExtensionField, Code::StsRecordDuplicateField]
        );

        // The duplicate id is ignored, but must still be a well-formed field.
        parse_err("v=STSv1; id=abc; id=a b");
        // A bad first id is not rescued by a good second one.
        parse_err("v=STSv1; id=a-b; id=abc");
    }

    #[test]
    fn trailing_whitespace_is_a_warning() {
        let (record, findings) = parse_ok("v=STSv1; id=abc ");
        assert_eq!(record.id, "abc");
        assert_eq!(codes(&findings), vec![Code::StsRecordInvalid]);
        assert_eq!(findings[0].severity, Severity::Warning);
        // Whitespace after the final ";" belongs to the delimiter: fine.
        assert!(parse_ok("v=STSv1; id=abc; ").1.is_empty());
    }

    #[test]
    fn evaluate_single_valid() {
        let out = evaluate_sts_txt(&txts(&[
            "google-site-verification=abc",
            "v=spf1 -all",
            "v=STSv1; id=20160831085700Z;",
        ]));
        assert_eq!(out.record.unwrap().id, "20160831085700Z");
        assert_eq!(out.sts_records, txts(&["v=STSv1; id=20160831085700Z;"]));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    #[test]
    fn evaluate_missing() {
        let out = evaluate_sts_txt(&[]);
        assert_eq!(out.record, None);
        assert_eq!(codes(&out.findings), vec![Code::StsRecordMissing]);

        let out = evaluate_sts_txt(&txts(&["google-site-verification=abc"]));
        assert_eq!(codes(&out.findings), vec![Code::StsRecordMissing]);
        assert!(out.sts_records.is_empty());
    }

    #[test]
    fn evaluate_discarded_attempts() {
        for (text, why) in [
            ("v=STSv1 ;id=1", "erratum 6285"),
            ("v=STSv1\t; id=1", "erratum 6285"),
            ("v=stsv1; id=1", "case-sensitive"),
            ("V=STSv1; id=1", "case-sensitive"),
            ("v=STSv1", "not followed by \";\" and an id"),
            ("v=STSv1 id=1", "not followed"),
            ("v=STSv2; id=1", "only version"),
            ("\"v=STSv1; id=1\"", "literal quote"),
            (" v=STSv1; id=1", "whitespace"),
        ] {
            let out = evaluate_sts_txt(&txts(&[text]));
            assert_eq!(out.record, None, "{text:?}");
            assert_eq!(
                codes(&out.findings),
                vec![Code::StsRecordDiscarded, Code::StsRecordMissing],
                "{text:?}"
            );
            let discarded = &out.findings[0];
            assert_eq!(discarded.severity, Severity::Warning);
            assert!(
                discarded.message.contains(why),
                "{text:?}: {}",
                discarded.message
            );
            assert!(
                discarded.message.contains(&format!("{text:?}")),
                "{}",
                discarded.message
            );
            assert!(out.findings[1]
                .message
                .contains("1 malformed attempt discarded"));
        }
    }

    #[test]
    fn evaluate_discarded_next_to_valid() {
        let out = evaluate_sts_txt(&txts(&["v=STSv1 ;id=old", "v=STSv1; id=new"]));
        assert_eq!(out.record.unwrap().id, "new");
        assert_eq!(codes(&out.findings), vec![Code::StsRecordDiscarded]);
    }

    #[test]
    fn evaluate_multiple() {
        let out = evaluate_sts_txt(&txts(&["v=STSv1; id=one", "v=STSv1; id=two"]));
        assert_eq!(out.record, None);
        assert_eq!(out.sts_records.len(), 2);
        assert_eq!(codes(&out.findings), vec![Code::StsRecordMultiple]);
        let message = &out.findings[0].message;
        assert!(message.contains("\"v=STSv1; id=one\""), "{message}");
        assert!(message.contains("\"v=STSv1; id=two\""), "{message}");

        // Even if one of them is invalid, there are still two.
        let out = evaluate_sts_txt(&txts(&["v=STSv1; id=one", "v=STSv1;id=a-b"]));
        assert_eq!(codes(&out.findings), vec![Code::StsRecordMultiple]);
    }

    #[test]
    fn evaluate_single_invalid() {
        let out = evaluate_sts_txt(&txts(&["v=STSv1; id="]));
        assert_eq!(out.record, None);
        assert_eq!(out.sts_records, txts(&["v=STSv1; id="]));
        assert_eq!(codes(&out.findings), vec![Code::StsRecordInvalid]);
    }

    #[test]
    fn evaluate_carries_record_findings() {
        let out = evaluate_sts_txt(&txts(&["v=STSv1; id=abc; ext=1; id=def"]));
        assert_eq!(out.record.unwrap().id, "abc");
        assert_eq!(
            codes(&out.findings),
            vec![Code::StsRecordExtensionField, Code::StsRecordDuplicateField]
        );
    }

    #[test]
    fn quote_truncates_on_char_boundaries() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("a\r\n"), "\"a\\r\\n\"");
        let long = "é".repeat(100);
        let quoted = quote(&long);
        assert_eq!(quoted, format!("\"{}…\"", "é".repeat(80)));
        assert_eq!(quote(&"x".repeat(80)), format!("\"{}\"", "x".repeat(80)));
    }

    #[test]
    fn long_record_message_is_truncated() {
        let text = format!("v=STSv1; id={}", "a".repeat(200));
        let f = parse_err(&text);
        assert!(f.message.contains('…'));
        assert!(f.message.len() < 400, "{}", f.message.len());
    }

    #[test]
    fn outcome_serializes() {
        let out = evaluate_sts_txt(&txts(&["v=STSv1; id=abc"]));
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["record"]["id"], "abc");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(text in "\\PC{0,60}", bytes in prop::collection::vec(any::<u8>(), 0..60)) {
            let _ = parse_sts_record(&text);
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            let _ = evaluate_sts_txt(&[text, lossy]);
        }

        #[test]
        fn never_panics_on_grammar_alphabet(text in "(v=STSv1)?[vSTsid=;: \t\r\n*.\\-aé1\"]{0,40}") {
            let _ = parse_sts_record(&text);
            let _ = evaluate_sts_txt(&[text]);
        }

        #[test]
        fn valid_id_round_trips(
            id in "[A-Za-z0-9]{1,32}",
            before in "[ \t]{0,2}",
            after in "[ \t]{0,2}",
            closing in any::<bool>(),
            ext in prop::option::of(("[a-z][a-z0-9_.-]{0,10}", "[!-:<>-~]{1,10}")),
        ) {
            let mut text = format!("v=STSv1;{after}id={id}");
            if let Some((name, value)) = &ext {
                prop_assume!(name != "id" && name != "v");
                text.push_str(&format!("{before};{after}{name}={value}"));
            }
            if closing {
                text.push(';');
            }
            let out = evaluate_sts_txt(&[text.clone()]);
            let record = out.record.expect("valid record");
            prop_assert_eq!(&record.id, &id);
            let expected: Vec<(String, String)> = ext.into_iter().collect();
            prop_assert_eq!(&record.extensions, &expected);
            let (parsed, _) = parse_sts_record(&text).expect("valid");
            prop_assert_eq!(parsed, record);
        }
    }
}
