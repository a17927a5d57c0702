//! The policy file served at `/.well-known/mta-sts.txt`: line grammar and field rules (RFC 8461 §3.2).

use serde::Serialize;

use super::mx::validate_pattern;
use super::record::{check_field_name, is_wsp, quote};
use crate::finding::{Code, Finding, Severity};

/// What a sender does when an MX fails validation (RFC 8461 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

impl Mode {
    /// The value as written in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// How the lines of the policy file end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineEnding {
    Lf,
    Crlf,
    /// Both LF and CRLF occur.
    Mixed,
    /// No line terminator at all: a single line (or an empty body).
    Unterminated,
}

/// A valid policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Always `STSv1` in a valid policy; kept so the text can be reproduced.
    pub version: String,
    pub mode: Mode,
    /// Seconds a sender may cache the policy.
    pub max_age: u32,
    /// The `mx` patterns as written, in file order.
    pub mx: Vec<String>,
    /// Unknown keys, first occurrence only, in file order.
    pub extensions: Vec<(String, String)>,
}

impl Policy {
    /// The canonical text of the policy: `version`, `mode`, each `mx`, `max_age`, then the
    /// extensions, each line terminated by CRLF for [`LineEnding::Crlf`] and LF otherwise.
    pub fn to_text(&self, ending: LineEnding) -> String {
        let terminator = match ending {
            LineEnding::Crlf => "\r\n",
            LineEnding::Lf | LineEnding::Mixed | LineEnding::Unterminated => "\n",
        };
        let mut lines: Vec<(&str, &str)> = vec![
            (KEY_VERSION, self.version.as_str()),
            (KEY_MODE, self.mode.as_str()),
        ];
        lines.extend(self.mx.iter().map(|mx| (KEY_MX, mx.as_str())));
        let max_age = self.max_age.to_string();
        lines.push((KEY_MAX_AGE, max_age.as_str()));
        lines.extend(
            self.extensions
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        lines
            .into_iter()
            .map(|(key, value)| format!("{key}: {value}{terminator}"))
            .collect()
    }
}

/// What a policy body amounts to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyParse {
    /// Some iff no finding is critical.
    pub policy: Option<Policy>,
    pub line_ending: LineEnding,
    pub findings: Vec<Finding>,
}

/// Parses a policy body against the RFC 8461 §3.2 ABNF and field rules.
///
/// Every deviation is its own finding, with the 1-based line where there is one. Parsing goes on
/// after an error, so one fetch reports everything wrong with the file.
pub fn parse_policy(body: &[u8]) -> PolicyParse {
    let mut findings = Findings::default();
    let (line_ending, mixed) = line_endings(body);
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(error) => {
            return PolicyParse {
                policy: None,
                line_ending,
                findings: vec![not_utf8(body, &error)],
            }
        }
    };
    let text = match text.strip_prefix(BOM) {
        Some(rest) => {
            findings.push(
                Finding::new(
                    Code::PolicyBom,
                    "the policy starts with a UTF-8 byte order mark (bytes EF BB BF): senders \
                     read the first key with an invisible U+FEFF in front of it and reject the \
                     policy; save the file as UTF-8 without BOM",
                )
                .at_line(1),
            );
            rest
        }
        None => text,
    };
    if let Some(mixed) = mixed {
        findings.push(mixed);
    }

    let mut fields = Fields::default();
    let segments: Vec<&str> = text.split('\n').collect();
    let last_index = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        let line = line_number(index);
        let content = if index < last_index {
            segment.strip_suffix('\r').unwrap_or(segment)
        } else {
            segment
        };
        if content.contains('\r') {
            findings.push(
                Finding::new(
                    Code::PolicyLineInvalid,
                    format!(
                        "line {line} {} contains a carriage return (CR) not followed by a line \
                         feed; lines must end in LF or CRLF, a CR alone is not a line ending",
                        quote(content)
                    ),
                )
                .at_line(line),
            );
            for piece in content.split('\r') {
                parse_line(piece, line, &mut fields, &mut findings);
            }
        } else {
            parse_line(content, line, &mut fields, &mut findings);
        }
    }
    finish(fields, line_ending, findings)
}

const KEY_VERSION: &str = "version";
const KEY_MODE: &str = "mode";
const KEY_MAX_AGE: &str = "max_age";
const KEY_MX: &str = "mx";
const KNOWN_KEYS: [&str; 4] = [KEY_VERSION, KEY_MODE, KEY_MAX_AGE, KEY_MX];
const VERSION: &str = "STSv1";
const BOM: char = '\u{feff}';
/// RFC 8461 §3.2: "maximum value of 31557600" (one year).
const MAX_AGE_MAX: u64 = 31_557_600;
/// `1*10(DIGIT)`.
const MAX_AGE_DIGITS: usize = 10;
/// Below one day, senders re-fetch often and a policy-host outage soon ends protection.
const MAX_AGE_LOW: u32 = 86_400;
/// Findings of one code beyond this are counted, not listed (an HTML page would otherwise give
/// one finding per line).
const MAX_FINDINGS_PER_CODE: usize = 10;

/// What the lines said, as a sender keeps it: the first occurrence of each non-`mx` key.
#[derive(Default)]
struct Fields {
    version: Option<String>,
    mode: Option<Mode>,
    max_age: Option<(u32, u32)>,
    mx: Vec<String>,
    mx_lines: usize,
    extensions: Vec<(String, String)>,
    /// First line of every key seen (known or not), for duplicates.
    first_lines: Vec<(String, u32)>,
    /// Unknown keys that look like a known one: (known key, key as written, line).
    near_misses: Vec<(&'static str, String, u32)>,
}

impl Fields {
    fn first_line(&self, key: &str) -> Option<u32> {
        self.first_lines
            .iter()
            .find(|(seen, _)| seen == key)
            .map(|(_, line)| *line)
    }

    fn near_miss(&self, known: &str) -> String {
        match self.near_misses.iter().find(|(k, _, _)| *k == known) {
            Some((_, key, line)) => {
                format!(" (line {line} has {}: keys are case-sensitive)", quote(key))
            }
            None => String::new(),
        }
    }
}

/// The findings so far, with repeats of one code capped at [`MAX_FINDINGS_PER_CODE`].
#[derive(Default)]
struct Findings {
    list: Vec<Finding>,
    suppressed: Vec<(Code, usize)>,
}

impl Findings {
    fn push(&mut self, finding: Finding) {
        let listed = self.list.iter().filter(|f| f.code == finding.code).count();
        if listed < MAX_FINDINGS_PER_CODE {
            self.list.push(finding);
        } else if let Some((_, count)) = self
            .suppressed
            .iter_mut()
            .find(|(code, _)| *code == finding.code)
        {
            *count += 1;
        } else {
            self.suppressed.push((finding.code, 1));
        }
    }

    fn into_vec(mut self) -> Vec<Finding> {
        for (code, count) in self.suppressed {
            let severity = self
                .list
                .iter()
                .filter(|f| f.code == code)
                .map(|f| f.severity)
                .max()
                .unwrap_or(code.default_severity());
            self.list.push(
                Finding::new(
                    code,
                    format!("… and {count} more {code} finding(s) like the ones above"),
                )
                .with_severity(severity),
            );
        }
        self.list
    }

    fn any_critical(&self) -> bool {
        self.list.iter().any(|f| f.severity == Severity::Critical)
    }
}

fn parse_line(content: &str, line: u32, fields: &mut Fields, findings: &mut Findings) {
    if content.trim_matches(is_wsp).is_empty() {
        return;
    }
    let content = if content.starts_with(is_wsp) {
        findings.push(
            Finding::new(
                Code::PolicyLeadingWhitespace,
                format!(
                    "line {line} {} starts with whitespace; strict senders read it as the \
                     continuation of the line before: remove the indentation",
                    quote(content)
                ),
            )
            .at_line(line),
        );
        content.trim_start_matches(is_wsp)
    } else {
        content
    };
    let invalid = |why: String| {
        Finding::new(
            Code::PolicyLineInvalid,
            format!("line {line} {} is invalid: {why}", quote(content)),
        )
        .at_line(line)
    };
    let Some((key, raw_value)) = content.split_once(':') else {
        let hint = if content.starts_with('<') {
            " (this looks like HTML: is the web server serving a page instead of the policy?)"
        } else if content.contains('=') {
            " (policy lines use \"key: value\", not \"key=value\")"
        } else {
            ""
        };
        findings.push(invalid(format!("it is not a \"key: value\" line{hint}")));
        return;
    };
    if let Err(why) = check_field_name(key, ':') {
        findings.push(invalid(why));
        return;
    }
    // The key counts as present even if its value is malformed, so the file-wide checks do not
    // also call it missing.
    let first = if key == KEY_MX {
        fields.mx_lines += 1;
        None
    } else {
        let first = fields.first_line(key);
        if first.is_none() {
            fields.first_lines.push((key.to_string(), line));
        }
        first
    };
    let value = raw_value.trim_matches(is_wsp);
    if value.is_empty() {
        findings.push(invalid(format!("the key {} has no value", quote(key))));
        return;
    }
    if let Some(c) = value.chars().find(|c| c.is_ascii_control()) {
        findings.push(invalid(format!(
            "the value of {} contains the control character {c:?}",
            quote(key)
        )));
        return;
    }

    if key == KEY_MX {
        match validate_pattern(value) {
            Ok(()) => fields.mx.push(value.to_string()),
            Err(why) => findings.push(
                Finding::new(
                    Code::PolicyMxInvalid,
                    format!(
                        "line {line}: the mx pattern {} is invalid: {why}",
                        quote(value)
                    ),
                )
                .at_line(line),
            ),
        }
        return;
    }
    if let Some(first) = first {
        findings.push(
            Finding::new(
                Code::PolicyDuplicateField,
                format!(
                    "line {line}: {} repeats the key {} of line {first}; senders use the first \
                     and ignore this one",
                    quote(content),
                    quote(key)
                ),
            )
            .at_line(line),
        );
        return;
    }
    match key {
        KEY_VERSION => {
            if value != VERSION {
                findings.push(
                    Finding::new(
                        Code::PolicyVersionInvalid,
                        format!(
                            "line {line}: version {} is not \"STSv1\"{}",
                            quote(value),
                            case_hint(value, &[VERSION])
                        ),
                    )
                    .at_line(line),
                );
            }
            fields.version = Some(value.to_string());
        }
        KEY_MODE => match parse_mode(value) {
            Some(mode) => fields.mode = Some(mode),
            None => findings.push(
                Finding::new(
                    Code::PolicyModeInvalid,
                    format!(
                        "line {line}: mode {} is not one of \"enforce\", \"testing\" or \
                         \"none\"{}",
                        quote(value),
                        case_hint(value, &["enforce", "testing", "none"])
                    ),
                )
                .at_line(line),
            ),
        },
        KEY_MAX_AGE => match parse_max_age(value) {
            Ok(seconds) => fields.max_age = Some((seconds, line)),
            Err(why) => findings.push(
                Finding::new(
                    Code::PolicyMaxAgeInvalid,
                    format!("line {line}: max_age {} {why}", quote(value)),
                )
                .at_line(line),
            ),
        },
        _ => {
            let known = near_known_key(key);
            let hint = match known {
                Some(known) => {
                    fields.near_misses.push((known, key.to_string(), line));
                    format!(" (did you mean \"{known}\"? keys are case-sensitive)")
                }
                None => String::new(),
            };
            findings.push(
                Finding::new(
                    Code::PolicyUnknownField,
                    format!("line {line}: unknown key {} ignored{hint}", quote(key)),
                )
                .at_line(line),
            );
            fields.extensions.push((key.to_string(), value.to_string()));
        }
    }
}

/// The checks that need the whole file, then the policy if nothing critical was found.
fn finish(fields: Fields, line_ending: LineEnding, mut findings: Findings) -> PolicyParse {
    if fields.first_line(KEY_VERSION).is_none() {
        findings.push(Finding::new(
            Code::PolicyVersionMissing,
            format!(
                "the policy has no \"version: STSv1\" line{}",
                fields.near_miss(KEY_VERSION)
            ),
        ));
    }
    if fields.first_line(KEY_MODE).is_none() {
        findings.push(Finding::new(
            Code::PolicyModeMissing,
            format!(
                "the policy has no \"mode:\" line; it must say enforce, testing or none{}",
                fields.near_miss(KEY_MODE)
            ),
        ));
    }
    if fields.first_line(KEY_MAX_AGE).is_none() {
        findings.push(Finding::new(
            Code::PolicyMaxAgeMissing,
            format!(
                "the policy has no \"max_age:\" line{}",
                fields.near_miss(KEY_MAX_AGE)
            ),
        ));
    }
    if fields.mx_lines == 0 && fields.mode != Some(Mode::None) {
        let mode = match fields.mode {
            Some(mode) => format!("mode is {mode:?}", mode = mode.as_str()),
            None => "mode is not \"none\"".to_string(),
        };
        findings.push(Finding::new(
            Code::PolicyMxMissing,
            format!(
                "the policy has no \"mx:\" line, but {mode}: senders honouring it can deliver to \
                 no MX{}",
                fields.near_miss(KEY_MX)
            ),
        ));
    }
    if let (Some((max_age, line)), Some(mode @ (Mode::Enforce | Mode::Testing))) =
        (fields.max_age, fields.mode)
    {
        if max_age < MAX_AGE_LOW {
            findings.push(
                Finding::new(
                    Code::PolicyMaxAgeLow,
                    format!(
                        "line {line}: max_age {max_age} is under one day (86400) with mode {}; \
                         senders forget the policy that soon, so one blocked refresh ends its \
                         protection; RFC 8461 expects weeks or more",
                        mode.as_str()
                    ),
                )
                .at_line(line),
            );
        }
    }

    let policy = match (fields.version, fields.mode, fields.max_age) {
        (Some(version), Some(mode), Some((max_age, _))) if !findings.any_critical() => {
            match mode {
                Mode::Testing => findings.push(Finding::new(
                    Code::PolicyModeTesting,
                    "mode is testing: senders report failures but still deliver over \
                     unauthenticated connections; switch to enforce once reports are clean",
                )),
                Mode::None => findings.push(Finding::new(
                    Code::PolicyModeNone,
                    "mode is none: senders treat the domain as having no active policy",
                )),
                Mode::Enforce => {}
            }
            Some(Policy {
                version,
                mode,
                max_age,
                mx: fields.mx,
                extensions: fields.extensions,
            })
        }
        _ => None,
    };
    PolicyParse {
        policy,
        line_ending,
        findings: findings.into_vec(),
    }
}

/// Classifies the terminators, with a finding for a mix of LF and CRLF.
fn line_endings(body: &[u8]) -> (LineEnding, Option<Finding>) {
    let mut crlf = 0usize;
    let mut lf = 0usize;
    let mut first: Option<(bool, usize)> = None;
    let mut first_other: Option<usize> = None;
    let mut previous: Option<u8> = None;
    let mut line = 1usize;
    for &byte in body {
        if byte == b'\n' {
            let is_crlf = previous == Some(b'\r');
            if is_crlf {
                crlf += 1;
            } else {
                lf += 1;
            }
            match first {
                None => first = Some((is_crlf, line)),
                Some((first_crlf, _)) if first_crlf != is_crlf && first_other.is_none() => {
                    first_other = Some(line);
                }
                Some(_) => {}
            }
            line += 1;
        }
        previous = Some(byte);
    }
    match (crlf, lf) {
        (0, 0) => (LineEnding::Unterminated, None),
        (_, 0) => (LineEnding::Crlf, None),
        (0, _) => (LineEnding::Lf, None),
        _ => {
            let name = |is_crlf: bool| if is_crlf { "CRLF" } else { "LF" };
            let (first_crlf, first_line) = first.unwrap_or((true, 1));
            let other_line = first_other.unwrap_or(line);
            let finding = Finding::new(
                Code::PolicyMixedLineEndings,
                format!(
                    "the policy mixes line endings ({crlf} CRLF, {lf} LF): line {first_line} \
                         ends in {} but line {other_line} in {}; use one throughout",
                    name(first_crlf),
                    name(!first_crlf)
                ),
            )
            .at_line(u32::try_from(other_line).unwrap_or(u32::MAX));
            (LineEnding::Mixed, Some(finding))
        }
    }
}

fn not_utf8(body: &[u8], error: &std::str::Utf8Error) -> Finding {
    let offset = error.valid_up_to();
    let line = line_number(
        body.get(..offset)
            .map_or(0, |head| head.iter().filter(|&&b| b == b'\n').count()),
    );
    let what = match (error.error_len(), body.get(offset)) {
        (Some(_), Some(byte)) => format!("the byte 0x{byte:02X} at offset {offset}"),
        _ => format!("a UTF-8 sequence cut short at offset {offset} (the end of the body)"),
    };
    Finding::new(
        Code::PolicyNotUtf8,
        format!(
            "the policy is not valid UTF-8: {what}, line {line}; save the file as UTF-8 (it may \
             be in Latin-1 or Windows-1252)"
        ),
    )
    .at_line(line)
}

fn parse_mode(value: &str) -> Option<Mode> {
    match value {
        "enforce" => Some(Mode::Enforce),
        "testing" => Some(Mode::Testing),
        "none" => Some(Mode::None),
        _ => None,
    }
}

/// `Err` completes the sentence "max_age "…" ".
fn parse_max_age(value: &str) -> Result<u32, String> {
    let all_digits = value.bytes().all(|b| b.is_ascii_digit());
    if !all_digits {
        let negative = value
            .strip_prefix('-')
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
        return Err(if negative {
            "is negative; it must be a number of seconds from 0 to 31557600".to_string()
        } else {
            "is not a plain number of seconds: only digits are allowed (no units, signs, \
             decimals or separators)"
                .to_string()
        });
    }
    if value.len() > MAX_AGE_DIGITS {
        return Err(format!(
            "has {} digits; at most {MAX_AGE_DIGITS} are allowed and the maximum is 31557600",
            value.len()
        ));
    }
    let seconds: u64 = value
        .parse()
        .map_err(|_| "is not a number of seconds".to_string())?;
    if seconds > MAX_AGE_MAX {
        return Err(format!(
            "exceeds the maximum of {MAX_AGE_MAX} seconds (one year)"
        ));
    }
    u32::try_from(seconds).map_err(|_| "is out of range".to_string())
}

/// A hint when `value` matches an allowed value but for case.
fn case_hint(value: &str, allowed: &[&str]) -> String {
    match allowed.iter().find(|a| a.eq_ignore_ascii_case(value)) {
        Some(allowed) => format!(" (values are case-sensitive: write \"{allowed}\")"),
        None => String::new(),
    }
}

/// The known key an unknown key was probably meant to be (`Mode`, `max-age`, `MaxAge`).
fn near_known_key(key: &str) -> Option<&'static str> {
    let folded: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    KNOWN_KEYS
        .into_iter()
        .find(|known| known.replace('_', "") == folded)
}

fn line_number(index: usize) -> u32 {
    u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC_EXAMPLE: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n\
                               mx: *.example.net\r\nmx: backupmx.example.com\r\n\
                               max_age: 604800\r\n";

    const APPENDIX_A: &str = "version: STSv1\nmode: testing\nmx: mx1.example.com\n\
                              mx: mx2.example.com\nmx: mx.backup-example.com\nmax_age: 1296000\n";

    fn codes(parse: &PolicyParse) -> Vec<Code> {
        parse.findings.iter().map(|f| f.code).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// The one finding with `code`, asserting its line.
    fn finding(parse: &PolicyParse, code: Code, line: Option<u32>) -> Finding {
        let matching: Vec<&Finding> = parse.findings.iter().filter(|f| f.code == code).collect();
        assert_eq!(matching.len(), 1, "{code}: {:#?}", parse.findings);
        assert_eq!(matching[0].line, line, "{code}: {}", matching[0].message);
        matching[0].clone()
    }

    /// A valid enforce policy with `line` inserted after the first line.
    fn with_line(line: &str) -> String {
        format!("version: STSv1\n{line}\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n")
    }

    #[test]
    fn rfc_example_crlf() {
        let parse = parse_policy(RFC_EXAMPLE.as_bytes());
        assert!(parse.findings.is_empty(), "{:?}", parse.findings);
        assert_eq!(parse.line_ending, LineEnding::Crlf);
        assert_eq!(
            parse.policy,
            Some(Policy {
                version: "STSv1".into(),
                mode: Mode::Enforce,
                max_age: 604800,
                mx: strings(&["mail.example.com", "*.example.net", "backupmx.example.com"]),
                extensions: vec![],
            })
        );
    }

    #[test]
    fn appendix_a_lf_testing() {
        let parse = parse_policy(APPENDIX_A.as_bytes());
        assert_eq!(parse.line_ending, LineEnding::Lf);
        assert_eq!(codes(&parse), vec![Code::PolicyModeTesting]);
        assert_eq!(parse.findings[0].severity, Severity::Info);
        let policy = parse.policy.unwrap();
        assert_eq!(policy.mode, Mode::Testing);
        assert_eq!(policy.max_age, 1296000);
        assert_eq!(policy.mx.len(), 3);
    }

    #[test]
    fn line_endings_classified() {
        let body = "version: STSv1\nmode: none\nmax_age: 86400";
        let parse = parse_policy(body.as_bytes());
        assert_eq!(parse.line_ending, LineEnding::Lf);
        assert!(parse.policy.is_some());

        let parse = parse_policy(b"version: STSv1");
        assert_eq!(parse.line_ending, LineEnding::Unterminated);
        assert_eq!(parse_policy(b"").line_ending, LineEnding::Unterminated);

        let body = "version: STSv1\r\nmode: none\nmax_age: 86400\r\n";
        let parse = parse_policy(body.as_bytes());
        assert_eq!(parse.line_ending, LineEnding::Mixed);
        let f = finding(&parse, Code::PolicyMixedLineEndings, Some(2));
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("2 CRLF, 1 LF"), "{}", f.message);
        // Only a warning: the policy is still usable.
        assert_eq!(parse.policy.unwrap().mode, Mode::None);
    }

    #[test]
    fn bare_cr_is_invalid() {
        let body = "version: STSv1\rmode: none\rmax_age: 86400\r";
        let parse = parse_policy(body.as_bytes());
        assert_eq!(parse.line_ending, LineEnding::Unterminated);
        assert_eq!(codes(&parse), vec![Code::PolicyLineInvalid]);
        assert_eq!(parse.findings[0].line, Some(1));
        assert!(parse.findings[0].message.contains("carriage return"));
        assert_eq!(parse.policy, None);

        let parse = parse_policy(with_line("foo: a\rbar: b").as_bytes());
        finding(&parse, Code::PolicyLineInvalid, Some(2));
        let parse = parse_policy("version: STSv1\nmode: enforce\r\r\n".as_bytes());
        assert!(codes(&parse).contains(&Code::PolicyLineInvalid));
    }

    #[test]
    fn not_utf8_names_offset() {
        let parse = parse_policy(b"version: STSv1\nmode: enforce\nmx: caf\xe9.example.com\n");
        assert_eq!(codes(&parse), vec![Code::PolicyNotUtf8]);
        let f = &parse.findings[0];
        assert_eq!(f.line, Some(3));
        assert!(f.message.contains("0xE9 at offset 36"), "{}", f.message);
        assert_eq!(parse.policy, None);
        let parse = parse_policy(b"version: STSv1\n\xe2\x82");
        assert!(parse.findings[0].message.contains("cut short"));
    }

    #[test]
    fn bom_reported_then_parsed() {
        let body = format!("\u{feff}{RFC_EXAMPLE}");
        let parse = parse_policy(body.as_bytes());
        assert_eq!(codes(&parse), vec![Code::PolicyBom]);
        assert_eq!(parse.findings[0].line, Some(1));
        assert_eq!(parse.policy, None);
        assert_eq!(parse.line_ending, LineEnding::Crlf);
    }

    #[test]
    fn leading_whitespace() {
        let parse = parse_policy(with_line(" mx: mx2.example.com").as_bytes());
        let f = finding(&parse, Code::PolicyLeadingWhitespace, Some(2));
        assert!(
            f.message.contains("\" mx: mx2.example.com\""),
            "{}",
            f.message
        );
        assert_eq!(codes(&parse), vec![Code::PolicyLeadingWhitespace]);
        assert_eq!(parse.policy, None);
        let parse = parse_policy("\tversion: STSv1\nmode: none\nmax_age: 1\n".as_bytes());
        finding(&parse, Code::PolicyLeadingWhitespace, Some(1));
    }

    #[test]
    fn whitespace_rules() {
        // Trailing whitespace and no whitespace after ":" are fine; blank lines are ignored.
        let body = "version:STSv1 \t\n\nmode:\tenforce  \n   \nmx: mx.example.com\t\n\
                    max_age: 86400 \n\n";
        let parse = parse_policy(body.as_bytes());
        assert!(parse.findings.is_empty(), "{:?}", parse.findings);
        let policy = parse.policy.unwrap();
        assert_eq!(policy.version, "STSv1");
        assert_eq!(policy.max_age, 86400);
        assert_eq!(policy.mx, strings(&["mx.example.com"]));
    }

    #[test]
    fn invalid_lines() {
        for (line, why) in [
            ("garbage", "not a \"key: value\""),
            ("mode=enforce", "not \"key=value\""),
            ("<html>", "HTML"),
            ("mode : enforce", "before \":\""),
            ("max age: 86400", "\"max age\""),
            ("_x: 1", "\"_x\""),
            (": value", "empty name"),
            ("foo:", "no value"),
            ("foo:   ", "no value"),
            ("foo: a\tb", "'\\t'"),
            ("foo: a\u{0}b", "'\\0'"),
        ] {
            let parse = parse_policy(with_line(line).as_bytes());
            let f = finding(&parse, Code::PolicyLineInvalid, Some(2));
            assert!(f.message.contains(why), "{line:?}: {}", f.message);
            assert_eq!(parse.policy, None, "{line:?}");
        }
        let key33 = format!("a{}", "b".repeat(32));
        let parse = parse_policy(with_line(&format!("{key33}: x")).as_bytes());
        finding(&parse, Code::PolicyLineInvalid, Some(2));
    }

    #[test]
    fn malformed_known_key_is_not_also_missing() {
        let parse = parse_policy(b"version: STSv1\nmode:\nmax_age: 86400\nmx: a.example.com\n");
        assert_eq!(codes(&parse), vec![Code::PolicyLineInvalid]);
        assert_eq!(parse.findings[0].line, Some(2));
        let parse = parse_policy(b"version: STSv1\nmode: enforce\nmax_age: 86400\nmx: a.com\x01\n");
        assert_eq!(codes(&parse), vec![Code::PolicyLineInvalid]);
        // A malformed duplicate still breaks the grammar of the file.
        let parse = parse_policy(b"version: STSv1\nmode: none\nmax_age: 86400\nmode:\n");
        assert_eq!(codes(&parse), vec![Code::PolicyLineInvalid]);
        assert_eq!(parse.findings[0].line, Some(4));
    }

    #[test]
    fn bom_comes_first_and_other_findings_stay_accurate() {
        let parse =
            parse_policy("\u{feff}version: STSv1\r\nmode: none\nmax_age: 86400\n".as_bytes());
        assert_eq!(
            codes(&parse),
            vec![Code::PolicyBom, Code::PolicyMixedLineEndings]
        );
        assert_eq!(parse.line_ending, LineEnding::Mixed);
    }

    #[test]
    fn version_rules() {
        let parse = parse_policy(b"version: STSv2\nmode: none\nmax_age: 1\n");
        let f = finding(&parse, Code::PolicyVersionInvalid, Some(1));
        assert!(f.message.contains("\"STSv2\""));
        let parse = parse_policy(b"version: stsv1\nmode: none\nmax_age: 1\n");
        let f = finding(&parse, Code::PolicyVersionInvalid, Some(1));
        assert!(f.message.contains("case-sensitive"));
        assert_eq!(parse.policy, None);

        let parse = parse_policy(b"mode: none\nmax_age: 1\n");
        assert_eq!(codes(&parse), vec![Code::PolicyVersionMissing]);
        let parse = parse_policy(b"Version: STSv1\nmode: none\nmax_age: 1\n");
        assert_eq!(
            codes(&parse),
            vec![Code::PolicyUnknownField, Code::PolicyVersionMissing]
        );
        assert!(parse.findings[1].message.contains("line 1 has \"Version\""));
    }

    #[test]
    fn mode_rules() {
        let parse = parse_policy(
            with_line("")
                .replace("mode: enforce", "mode: Enforce")
                .as_bytes(),
        );
        let f = finding(&parse, Code::PolicyModeInvalid, Some(3));
        assert!(f.message.contains("\"Enforce\""));
        assert!(f.message.contains("write \"enforce\""), "{}", f.message);
        assert_eq!(parse.policy, None);
        let parse = parse_policy(b"version: STSv1\nmode: strict\nmx: a.example\nmax_age: 86400\n");
        finding(&parse, Code::PolicyModeInvalid, Some(2));

        let parse = parse_policy(b"version: STSv1\nmx: a.example.com\nmax_age: 86400\n");
        assert_eq!(codes(&parse), vec![Code::PolicyModeMissing]);
        assert_eq!(parse.findings[0].line, None);
        let parse =
            parse_policy(b"version: STSv1\nMode: enforce\nmx: a.example.com\nmax_age: 86400\n");
        assert_eq!(
            codes(&parse),
            vec![Code::PolicyUnknownField, Code::PolicyModeMissing]
        );
        assert!(parse.findings[0].message.contains("did you mean \"mode\""));
    }

    #[test]
    fn mode_none_and_testing_are_info() {
        let parse = parse_policy(b"version: STSv1\nmode: none\nmax_age: 86400\n");
        assert_eq!(codes(&parse), vec![Code::PolicyModeNone]);
        assert_eq!(parse.findings[0].severity, Severity::Info);
        let policy = parse.policy.unwrap();
        assert_eq!(policy.mode, Mode::None);
        assert!(policy.mx.is_empty());
    }

    #[test]
    fn max_age_rules() {
        for (value, why) in [
            ("-1", "negative"),
            ("1d", "only digits"),
            ("86400s", "only digits"),
            ("1,000", "only digits"),
            ("+86400", "only digits"),
            ("8.5", "only digits"),
            ("99999999999", "11 digits"),
            ("31557601", "maximum"),
            ("9999999999", "maximum"),
            ("８６４００", "only digits"),
        ] {
            let body = format!("version: STSv1\nmode: none\nmax_age: {value}\n");
            let parse = parse_policy(body.as_bytes());
            let f = finding(&parse, Code::PolicyMaxAgeInvalid, Some(3));
            assert!(f.message.contains(why), "{value:?}: {}", f.message);
            assert!(f.message.contains(&format!("{value:?}")), "{}", f.message);
            assert_eq!(parse.policy, None);
        }
        for (value, seconds) in [
            ("0", 0),
            ("86400 ", 86400),
            ("31557600", 31557600),
            ("0000086400", 86400),
        ] {
            let body = format!("version: STSv1\nmode: none\nmax_age: {value}\n");
            let parse = parse_policy(body.as_bytes());
            assert_eq!(parse.policy.map(|p| p.max_age), Some(seconds), "{value:?}");
        }
        let parse = parse_policy(b"version: STSv1\nmode: none\n");
        assert_eq!(codes(&parse), vec![Code::PolicyMaxAgeMissing]);
    }

    #[test]
    fn max_age_low() {
        let body = "version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 86399\n";
        let parse = parse_policy(body.as_bytes());
        let f = finding(&parse, Code::PolicyMaxAgeLow, Some(4));
        assert_eq!(f.severity, Severity::Info);
        assert!(parse.policy.is_some());
        let parse = parse_policy(body.replace("enforce", "testing").as_bytes());
        finding(&parse, Code::PolicyMaxAgeLow, Some(4));
        // Not for mode none (that is how a policy is retired), nor from one day on.
        let parse = parse_policy(body.replace("enforce", "none").as_bytes());
        assert!(!codes(&parse).contains(&Code::PolicyMaxAgeLow));
        let parse = parse_policy(body.replace("86399", "86400").as_bytes());
        assert!(parse.findings.is_empty());
    }

    #[test]
    fn mx_rules() {
        let parse = parse_policy(with_line("mx: mx1.a.com, mx2.a.com").as_bytes());
        let f = finding(&parse, Code::PolicyMxInvalid, Some(2));
        assert!(
            f.message.contains("\"mx1.a.com, mx2.a.com\""),
            "{}",
            f.message
        );
        assert!(f.message.contains("own \"mx:\" line"), "{}", f.message);
        assert_eq!(parse.policy, None);
        for (pattern, why) in [
            ("*.*.a.com", "only allowed once"),
            ("mail*.a.com", "partial wildcards"),
            ("*", "bare"),
            ("bücher.example", "A-label"),
        ] {
            let parse = parse_policy(with_line(&format!("mx: {pattern}")).as_bytes());
            let f = finding(&parse, Code::PolicyMxInvalid, Some(2));
            assert!(f.message.contains(why), "{pattern}: {}", f.message);
            assert!(f.message.contains(pattern), "{}", f.message);
        }
        // mx may repeat, and keeps file order and spelling.
        let parse = parse_policy(with_line("mx: MX0.Example.com.").as_bytes());
        assert_eq!(
            parse.policy.unwrap().mx,
            strings(&["MX0.Example.com.", "mx.example.com"])
        );
    }

    #[test]
    fn mx_missing() {
        let parse = parse_policy(b"version: STSv1\nmode: enforce\nmax_age: 604800\n");
        assert_eq!(codes(&parse), vec![Code::PolicyMxMissing]);
        assert!(parse.findings[0].message.contains("\"enforce\""));
        assert_eq!(parse.policy, None);
        let parse = parse_policy(b"version: STSv1\nmode: testing\nmax_age: 604800\n");
        assert_eq!(codes(&parse), vec![Code::PolicyMxMissing]);
        // With mode none, mx is optional.
        let parse = parse_policy(b"version: STSv1\nmode: none\nmax_age: 604800\n");
        assert_eq!(codes(&parse), vec![Code::PolicyModeNone]);
        // An invalid mx line is reported as invalid, not as missing.
        let parse = parse_policy(b"version: STSv1\nmode: enforce\nmx: *\nmax_age: 604800\n");
        assert_eq!(codes(&parse), vec![Code::PolicyMxInvalid]);
        // Typo in the key: unknown field, and mx missing with a hint.
        let parse =
            parse_policy(b"version: STSv1\nmode: enforce\nMX: a.example.com\nmax_age: 604800\n");
        assert_eq!(
            codes(&parse),
            vec![Code::PolicyUnknownField, Code::PolicyMxMissing]
        );
        assert!(parse.findings[1].message.contains("line 3 has \"MX\""));
    }

    #[test]
    fn duplicates_first_wins() {
        let body = "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example.com\n\
                    max_age: 604800\nmax_age: 1\nversion: STSv2\nfoo: 1\nfoo: 2\n";
        let parse = parse_policy(body.as_bytes());
        let dups: Vec<Option<u32>> = parse
            .findings
            .iter()
            .filter(|f| f.code == Code::PolicyDuplicateField)
            .map(|f| f.line)
            .collect();
        assert_eq!(dups, vec![Some(3), Some(6), Some(7), Some(9)]);
        assert!(parse
            .findings
            .iter()
            .all(|f| f.severity != Severity::Critical));
        let policy = parse.policy.unwrap();
        assert_eq!(policy.mode, Mode::Testing);
        assert_eq!(policy.max_age, 604800);
        assert_eq!(policy.version, "STSv1");
        assert_eq!(
            policy.extensions,
            vec![("foo".to_string(), "1".to_string())]
        );
        // The ignored duplicate is not validated: a bad second value does not break the policy.
        let first = parse
            .findings
            .iter()
            .find(|f| f.code == Code::PolicyDuplicateField)
            .unwrap();
        assert!(first.message.contains("line 2"), "{}", first.message);
    }

    #[test]
    fn unknown_fields_are_kept() {
        let body = "version: STSv1\nmode: enforce\nx-note: Größe ok: yes\nmx: a.example.com\n\
                    max_age: 604800\nmax-age: 5\n";
        let parse = parse_policy(body.as_bytes());
        assert_eq!(
            codes(&parse),
            vec![Code::PolicyUnknownField, Code::PolicyUnknownField]
        );
        assert_eq!(parse.findings[0].line, Some(3));
        assert!(parse.findings[1]
            .message
            .contains("did you mean \"max_age\""));
        assert_eq!(
            parse.policy.unwrap().extensions,
            vec![
                ("x-note".to_string(), "Größe ok: yes".to_string()),
                ("max-age".to_string(), "5".to_string())
            ]
        );
    }

    #[test]
    fn field_order_is_free() {
        let body = "max_age: 604800\nmx: a.example.com\nmode: enforce\nversion: STSv1";
        let parse = parse_policy(body.as_bytes());
        assert!(parse.findings.is_empty(), "{:?}", parse.findings);
        assert!(parse.policy.is_some());
    }

    #[test]
    fn html_page_is_capped() {
        let mut body = String::from("<!DOCTYPE html>\n<html>\n");
        for i in 0..30 {
            body.push_str(&format!("<p>line {i}</p>\n"));
        }
        let parse = parse_policy(body.as_bytes());
        let invalid: Vec<&Finding> = parse
            .findings
            .iter()
            .filter(|f| f.code == Code::PolicyLineInvalid)
            .collect();
        assert_eq!(invalid.len(), MAX_FINDINGS_PER_CODE + 1);
        assert!(invalid[0].message.contains("HTML"));
        assert!(invalid[MAX_FINDINGS_PER_CODE]
            .message
            .contains("22 more policy_line_invalid"));
        assert!(codes(&parse).contains(&Code::PolicyVersionMissing));
    }

    #[test]
    fn to_text_is_canonical() {
        let policy = parse_policy(RFC_EXAMPLE.as_bytes()).policy.unwrap();
        assert_eq!(policy.to_text(LineEnding::Crlf), RFC_EXAMPLE);
        assert_eq!(
            policy.to_text(LineEnding::Lf),
            RFC_EXAMPLE.replace("\r\n", "\n")
        );
        assert_eq!(
            policy.to_text(LineEnding::Mixed),
            policy.to_text(LineEnding::Lf)
        );
    }

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&Mode::Enforce).unwrap(),
            "\"enforce\""
        );
        assert_eq!(
            serde_json::to_string(&LineEnding::Crlf).unwrap(),
            "\"crlf\""
        );
        assert_eq!(
            serde_json::to_string(&LineEnding::Unterminated).unwrap(),
            "\"unterminated\""
        );
        for mode in [Mode::Enforce, Mode::Testing, Mode::None] {
            assert_eq!(
                serde_json::to_string(&mode).unwrap(),
                format!("\"{}\"", mode.as_str())
            );
        }
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
    }

    fn pattern() -> BoxedStrategy<String> {
        (
            any::<bool>(),
            prop::collection::vec(label(), 1..3),
            "[a-z][a-z0-9]{1,4}",
        )
            .prop_map(|(wildcard, labels, tld)| {
                let domain = format!("{}.{tld}", labels.join("."));
                if wildcard {
                    format!("*.{domain}")
                } else {
                    domain
                }
            })
            .boxed()
    }

    fn policy() -> impl Strategy<Value = Policy> {
        let mode = prop_oneof![Just(Mode::Enforce), Just(Mode::Testing), Just(Mode::None)];
        let extension = (
            "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,8}",
            "[!-~é中]([ !-~é中]{0,10}[!-~é中])?",
        );
        (
            mode,
            0..=31_557_600u32,
            prop::collection::vec(pattern(), 0..4),
            prop::collection::vec(extension, 0..3),
        )
            .prop_map(|(mode, max_age, mut mx, extensions)| {
                if mode != Mode::None && mx.is_empty() {
                    mx.push("mx.example.com".to_string());
                }
                let mut unique: Vec<(String, String)> = Vec::new();
                for (key, value) in extensions {
                    if !KNOWN_KEYS.contains(&key.as_str()) && !unique.iter().any(|(k, _)| *k == key)
                    {
                        unique.push((key, value));
                    }
                }
                Policy {
                    version: VERSION.to_string(),
                    mode,
                    max_age,
                    mx,
                    extensions: unique,
                }
            })
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..300)) {
            let parse = parse_policy(&body);
            let critical = parse.findings.iter().any(|f| f.severity == Severity::Critical);
            prop_assert_eq!(parse.policy.is_some(), !critical);
        }

        #[test]
        fn never_panics_on_grammar_alphabet(
            body in "(\u{feff})?[versionmdxa_gSTv1:* \t\r\n.\\-é0-9]{0,120}"
        ) {
            let parse = parse_policy(body.as_bytes());
            let critical = parse.findings.iter().any(|f| f.severity == Severity::Critical);
            prop_assert_eq!(parse.policy.is_some(), !critical);
        }

        #[test]
        fn never_panics_on_line_soup(
            lines in prop::collection::vec(
                prop_oneof![
                    Just("version: STSv1".to_string()),
                    Just("mode: enforce".to_string()),
                    Just("mode: none".to_string()),
                    Just("max_age: 86400".to_string()),
                    "mx: [*a-z.]{0,12}",
                    "[a-z_]{0,8}:[ \t]?[ -~]{0,10}",
                    "[ \t\r]{0,3}",
                ],
                0..12,
            ),
            crlf in any::<bool>(),
        ) {
            let body = lines.join(if crlf { "\r\n" } else { "\n" });
            let _ = parse_policy(body.as_bytes());
        }

        #[test]
        fn policy_round_trips(policy in policy()) {
            for ending in [LineEnding::Lf, LineEnding::Crlf] {
                let text = policy.to_text(ending);
                let parse = parse_policy(text.as_bytes());
                prop_assert_eq!(parse.line_ending, ending);
                prop_assert_eq!(parse.policy.as_ref(), Some(&policy), "{:?}", parse.findings);
            }
        }
    }
}
