//! The landing page `/`: the fleet at a glance (domains by verdict, the domains with critical
//! findings, the exporter's own health and its last checks), as plain HTML without scripts.
//!
//! Everything that came from the network (finding messages, host names) is escaped; the page's
//! size is bounded whatever the fleet: at most [`MAX_CRITICAL_LISTED`] critical domains are
//! listed, the rest counted.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::finding::Severity;
use crate::report::Verdict;
use crate::selfhealth::Blindness;
use crate::store::{CheckResult, DomainEntry, Store};

/// Domains with critical findings listed by name; more are counted.
pub const MAX_CRITICAL_LISTED: usize = 100;
/// Characters of a finding message shown in the list (the report has the whole message).
const MAX_MESSAGE_CHARS: usize = 200;

/// The page for the store's current state, at unix time `now`.
pub fn render(store: &Store, now: i64) -> String {
    let snapshot = store.snapshot();
    let health = ExporterHealth {
        ready: store.is_ready(),
        reload_ok: store.reload_ok(),
        reload_at: store.reload_success_timestamp(),
        state_save_errors: store.state_save_errors(),
        checks: CheckResult::ALL.map(|r| (r.as_str(), store.checks(r))),
        blind: store.blindness(),
    };
    render_page(&snapshot, &health, now)
}

/// What the page says about the exporter itself.
#[derive(Clone, Debug)]
pub struct ExporterHealth {
    pub ready: bool,
    pub reload_ok: bool,
    pub reload_at: i64,
    pub state_save_errors: u64,
    pub checks: [(&'static str, u64); 3],
    pub blind: [(Blindness, bool); 4],
}

/// One domain with a critical finding, as listed.
struct CriticalRow<'a> {
    domain: &'a str,
    verdict: Verdict,
    codes: Vec<&'static str>,
    /// The first critical finding's host and message.
    first: Option<(Option<&'a str>, &'a str)>,
}

pub fn render_page(
    snapshot: &[(String, DomainEntry)],
    health: &ExporterHealth,
    now: i64,
) -> String {
    let mut by_verdict: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut unchecked = 0usize;
    let mut critical: Vec<CriticalRow<'_>> = Vec::new();
    let mut critical_total = 0usize;
    let (mut newest, mut oldest): (Option<i64>, Option<i64>) = (None, None);
    for (domain, entry) in snapshot {
        let Some(report) = entry.report.as_deref() else {
            unchecked += 1;
            continue;
        };
        *by_verdict.entry(report.verdict.as_str()).or_default() += 1;
        newest = newest.max(Some(report.checked_at));
        oldest = Some(oldest.map_or(report.checked_at, |o| o.min(report.checked_at)));
        if report.has_critical() {
            critical_total += 1;
            if critical.len() < MAX_CRITICAL_LISTED {
                let mut codes: Vec<&'static str> = report
                    .findings
                    .iter()
                    .filter(|f| f.severity == Severity::Critical)
                    .map(|f| f.code.as_str())
                    .collect();
                codes.sort_unstable();
                codes.dedup();
                let first = report
                    .findings
                    .iter()
                    .find(|f| f.severity == Severity::Critical)
                    .map(|f| (f.host.as_deref(), f.message.as_ref()));
                critical.push(CriticalRow {
                    domain,
                    verdict: report.verdict,
                    codes,
                    first,
                });
            }
        }
    }

    let mut page = String::with_capacity(8192 + critical.len() * 512);
    page.push_str(HEAD);
    let _ = write!(
        page,
        "<h1>mta-sts-exporter</h1>\n<p>{} domains configured, {} checked, {} not checked yet. \
         Version {}.</p>\n",
        snapshot.len(),
        snapshot.len() - unchecked,
        unchecked,
        escape(env!("CARGO_PKG_VERSION")),
    );

    // The exporter itself first: while it is blind, nothing below is about the domains.
    page.push_str("<h2>The exporter</h2>\n");
    let blind: Vec<&str> = health
        .blind
        .iter()
        .filter(|(_, b)| *b)
        .map(|(c, _)| c.as_str())
        .collect();
    if blind.is_empty() {
        page.push_str("<p class=\"ok\">Not blind: recent checks do not fail alike on the exporter's side.</p>\n");
    } else {
        let _ = writeln!(
            page,
            "<p class=\"bad\"><strong>Blind: {}.</strong> Most recent checks fail the same way on the \
             exporter's side, so the results below describe the exporter, not the domains. The log \
             names the resolver or the port (docs/operations.md, \"When the exporter is blind\").</p>",
            escape(&blind.join(", "))
        );
    }
    page.push_str("<table>\n");
    let row = |page: &mut String, key: &str, value: &str| {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(key),
            escape(value)
        );
    };
    row(
        &mut page,
        "ready",
        if health.ready {
            "yes: every configured domain was checked once"
        } else {
            "no: the first pass is not complete"
        },
    );
    row(
        &mut page,
        "configuration",
        &if health.reload_ok {
            format!("loaded {}", ago(now, health.reload_at))
        } else {
            "the last reload FAILED: the previous configuration is running (see the log)"
                .to_string()
        },
    );
    row(
        &mut page,
        "last check",
        &newest.map_or("none yet".to_string(), |t| format!("ended {}", ago(now, t))),
    );
    row(
        &mut page,
        "oldest result",
        &oldest.map_or("none yet".to_string(), |t| format!("from {}", ago(now, t))),
    );
    let checks: Vec<String> = health
        .checks
        .iter()
        .map(|(result, n)| format!("{n} {result}"))
        .collect();
    row(&mut page, "checks since start", &checks.join(", "));
    row(
        &mut page,
        "state file save errors",
        &health.state_save_errors.to_string(),
    );
    page.push_str("</table>\n");

    page.push_str(
        "<h2>Domains by verdict</h2>\n<table>\n<tr><th>verdict</th><th>domains</th></tr>\n",
    );
    for verdict in VERDICTS {
        let n = by_verdict.get(verdict.as_str()).copied().unwrap_or(0);
        let _ = writeln!(
            page,
            "<tr><td title=\"{}\">{}</td><td>{n}</td></tr>",
            escape(verdict.describe()),
            escape(verdict.as_str())
        );
    }
    let _ = writeln!(
        page,
        "<tr><td>not checked yet</td><td>{unchecked}</td></tr>\n</table>"
    );

    let _ = writeln!(
        page,
        "<h2>Domains with critical findings ({critical_total})</h2>"
    );
    if critical.is_empty() {
        page.push_str("<p>None.</p>\n");
    } else {
        page.push_str(
            "<table>\n<tr><th>domain</th><th>verdict</th><th>critical codes</th><th>first critical finding</th></tr>\n",
        );
        for c in &critical {
            let first = c.first.map_or(String::new(), |(host, message)| {
                let message = truncate(message, MAX_MESSAGE_CHARS);
                match host {
                    Some(h) => format!("{}: {}", truncate(h, 253), message),
                    None => message.to_string(),
                }
            });
            let _ = writeln!(
                page,
                "<tr><td><a href=\"api/v1/domains/{}?pretty\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&percent_encode(c.domain)),
                escape(c.domain),
                escape(c.verdict.as_str()),
                escape(&c.codes.join(", ")),
                escape(&first)
            );
        }
        page.push_str("</table>\n");
        if critical_total > critical.len() {
            let _ = writeln!(
                page,
                "<p>… and {} more (first {} by name shown): <a href=\"api/v1/domains?pretty\">api/v1/domains</a> lists them all.</p>",
                critical_total - critical.len(),
                critical.len()
            );
        }
    }
    page.push_str(FOOT);
    page
}

/// Every verdict, in the order the page lists them: the worst first.
const VERDICTS: [Verdict; 7] = [
    Verdict::EnforcedRefused,
    Verdict::TestingNotReady,
    Verdict::Undetermined,
    Verdict::NoPolicy,
    Verdict::ModeNone,
    Verdict::TestingReady,
    Verdict::EnforcedDeliverable,
];

const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>mta-sts-exporter</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:80em}\
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:.2em .6em;\
text-align:left;vertical-align:top}.bad{color:#a00}.ok{color:#070}</style></head>\n<body>\n";

const FOOT: &str = "<h2>Endpoints</h2>\n<ul>\n<li><a href=\"metrics\">Metrics</a></li>\n\
<li><a href=\"api/v1/domains?pretty\">Domains (JSON)</a> &mdash; one domain's full report at \
<code>api/v1/domains/&lt;domain&gt;</code>; add <code>?pretty</code> to indent the JSON</li>\n\
<li><a href=\"-/healthy\">Health</a>, <a href=\"-/ready\">readiness</a></li>\n</ul>\n</body></html>\n";

/// `now - then` for people: "12 s ago", "3 min ago", "2 h ago", "4 d ago" ("in ..." if ahead).
fn ago(now: i64, then: i64) -> String {
    if then <= 0 {
        return "never".to_string();
    }
    let delta = now.saturating_sub(then);
    let (ahead, secs) = (delta < 0, delta.unsigned_abs());
    let text = match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    };
    if ahead {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a URL path segment.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Code, Finding};
    use crate::report::DomainReport;
    use crate::store::DomainMeta;
    use std::sync::Arc;

    fn entry(report: Option<DomainReport>) -> DomainEntry {
        DomainEntry {
            meta: Arc::new(DomainMeta::default()),
            report: report.map(Arc::new),
        }
    }

    fn health() -> ExporterHealth {
        ExporterHealth {
            ready: true,
            reload_ok: true,
            reload_at: 1_000,
            state_save_errors: 0,
            checks: [("ok", 1), ("critical", 1), ("undetermined", 0)],
            blind: Blindness::ALL.map(|c| (c, false)),
        }
    }

    fn critical(domain: &str, host: &str, message: &str) -> DomainReport {
        let mut r = DomainReport::skeleton(domain);
        r.verdict = Verdict::EnforcedRefused;
        r.checked_at = 1_900;
        let mut f = Finding::new(Code::MxCertExpired, message.to_string()).with_host(host);
        f.severity = Severity::Critical;
        r.findings = vec![f];
        r
    }

    #[test]
    fn counts_verdicts_and_lists_critical_domains_linked_to_their_reports() {
        let mut ok = DomainReport::skeleton("ok.example");
        ok.verdict = Verdict::EnforcedDeliverable;
        ok.checked_at = 1_990;
        let snapshot = vec![
            (
                "bad.example".to_string(),
                entry(Some(critical(
                    "bad.example",
                    "mx1.bad.example",
                    "expired 3 days ago",
                ))),
            ),
            ("new.example".to_string(), entry(None)),
            ("ok.example".to_string(), entry(Some(ok))),
        ];
        let page = render_page(&snapshot, &health(), 2_000);
        assert!(
            page.contains("<p>3 domains configured, 2 checked, 1 not checked yet."),
            "{page}"
        );
        assert!(page.contains(">enforced_refused</td><td>1</td>"), "{page}");
        assert!(
            page.contains(">enforced_deliverable</td><td>1</td>"),
            "{page}"
        );
        assert!(page.contains(">no_policy</td><td>0</td>"), "{page}");
        assert!(
            page.contains("<tr><td>not checked yet</td><td>1</td>"),
            "{page}"
        );
        assert!(
            page.contains("<h2>Domains with critical findings (1)</h2>"),
            "{page}"
        );
        assert!(page.contains("<a href=\"api/v1/domains/bad.example?pretty\">bad.example</a></td><td>enforced_refused</td><td>mx_cert_expired</td><td>mx1.bad.example: expired 3 days ago</td>"), "{page}");
        assert!(
            page.contains("<tr><th>last check</th><td>ended 10 s ago</td></tr>"),
            "{page}"
        );
        assert!(page.contains("Not blind"), "{page}");
    }

    #[test]
    fn everything_from_the_network_is_escaped() {
        let hostile = "<script>alert('x')</script>\"&";
        let snapshot = vec![(
            "evil.example".to_string(),
            entry(Some(critical(
                "evil.example",
                "<img src=x onerror=alert(1)>",
                hostile,
            ))),
        )];
        let page = render_page(&snapshot, &health(), 2_000);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"), "{page}");
        // no tag on the page but ours
        let tags: std::collections::BTreeSet<&str> = page
            .split('<')
            .skip(1)
            .filter_map(|t| t.split([' ', '>', '/']).find(|s| !s.is_empty()))
            .collect();
        for tag in &tags {
            assert!(
                [
                    "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "p",
                    "strong", "table", "tr", "th", "td", "a", "ul", "li", "code"
                ]
                .contains(tag),
                "unexpected tag {tag:?} in {page}"
            );
        }
        assert_eq!(escape("a\u{7}b"), "a\u{FFFD}b");
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn the_page_is_bounded_at_fleet_size() {
        let snapshot: Vec<(String, DomainEntry)> = (0..5_000)
            .map(|i| {
                let name = format!("d{i:05}.example");
                let long = "x".repeat(10_000);
                (
                    name.clone(),
                    entry(Some(critical(&name, "mx.example", &long))),
                )
            })
            .collect();
        let page = render_page(&snapshot, &health(), 2_000);
        assert_eq!(page.matches("?pretty\">d").count(), MAX_CRITICAL_LISTED);
        assert!(
            page.contains("… and 4900 more (first 100 by name shown)"),
            "{}",
            &page[page.len() - 500..]
        );
        assert!(page.len() < 64 * 1024, "{} bytes", page.len());
    }

    #[test]
    fn blindness_leads_the_page() {
        let mut h = health();
        h.blind[0].1 = true;
        let page = render_page(&[], &h, 2_000);
        assert!(
            page.contains("<strong>Blind: resolver_failing.</strong>"),
            "{page}"
        );
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(ago(100, 0), "never");
        assert_eq!(ago(100, 90), "10 s ago");
        assert_eq!(ago(10_000, 9_000), "16 min ago");
        assert_eq!(ago(100_000, 90_000), "2 h ago");
        assert_eq!(ago(1_000_000, 100), "11 d ago");
        assert_eq!(ago(100, 130), "in 30 s");
        assert_eq!(ago(i64::MIN, i64::MAX), "in 106751991167300 d");
    }
}
