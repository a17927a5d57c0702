//! The monitoring assets, checked like code: alert rules (`alerts/`), their promtool tests
//! (`tests/alerts/`), the Grafana dashboards (`dashboards/`), the example Alertmanager
//! configuration (`deploy/alertmanager/`) and the runbook (`docs/runbook.md`).
//!
//! These checks need no external tool. `scripts/check-alerts.sh` runs the others (promtool
//! check/test rules, amtool check-config and route tests).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const RUNBOOK_URL: &str = "https://docs.mta-sts-exporter.invalid/runbook.md";
const SEVERITIES: &[&str] = &["critical", "warning", "info"];
/// Fixed dashboard uids, by file name: links and bookmarks rely on them.
const DASHBOARD_UIDS: &[(&str, &str)] = &[
    ("mta-sts-fleet.json", "mta-sts-fleet"),
    ("mta-sts-domain.json", "mta-sts-domain"),
];

// ------------------------------------------------------------------------------------------
// Tests

#[test]
fn alert_exprs_use_only_documented_metrics() {
    let allowed = allowed_sample_names();
    let mut bad = Vec::new();
    for rule in alert_rules() {
        for name in metric_names(&rule.expr) {
            if !allowed.contains(&name) {
                bad.push(format!("{} ({}): {name}", rule.alert, rule.file));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "alert exprs use metrics not in docs/metrics.md: {bad:#?}"
    );
}

#[test]
fn dashboard_exprs_use_only_documented_metrics() {
    let allowed = allowed_sample_names();
    let mut bad = Vec::new();
    let mut seen = 0;
    for (file, dashboard) in dashboards() {
        for (place, expr) in dashboard_queries(&dashboard) {
            seen += 1;
            for name in metric_names(&expr) {
                if !allowed.contains(&name) {
                    bad.push(format!("{file}, {place}: {name}"));
                }
            }
        }
    }
    assert!(seen > 20, "found only {seen} dashboard queries");
    assert!(
        bad.is_empty(),
        "dashboard queries use metrics not in docs/metrics.md: {bad:#?}"
    );
}

#[test]
fn runbook_promql_uses_only_documented_metrics() {
    let allowed = allowed_sample_names();
    let runbook = read("docs/runbook.md");
    let blocks = fenced_blocks(&runbook, "promql");
    assert!(!blocks.is_empty(), "docs/runbook.md has no ```promql block");
    let bad: Vec<String> = blocks
        .iter()
        .flat_map(|block| metric_names(block))
        .filter(|name| !allowed.contains(name))
        .collect();
    assert!(
        bad.is_empty(),
        "docs/runbook.md PromQL uses metrics not in docs/metrics.md: {bad:?}"
    );
}

/// The shipped rules and dashboards work with the default metric set: a large fleet that never
/// opts into `detailed` gets every alert and every panel.
#[test]
fn alerts_and_dashboards_use_only_the_default_set() {
    use mta_sts_exporter::metrics::{sample_name, Set, METRICS};
    let mut default = BTreeSet::new();
    for def in METRICS.iter().filter(|d| d.set == Set::Default) {
        let name = sample_name(def);
        for suffix in ["", "_bucket", "_sum", "_count"] {
            default.insert(format!("{name}{suffix}"));
        }
    }
    let mut bad = Vec::new();
    for rule in alert_rules() {
        for name in metric_names(&rule.expr) {
            if !default.contains(&name) {
                bad.push(format!("alert {}: {name}", rule.alert));
            }
        }
    }
    for (file, dashboard) in dashboards() {
        for (place, expr) in dashboard_queries(&dashboard) {
            for name in metric_names(&expr) {
                if !default.contains(&name) {
                    bad.push(format!("{file}, {place}: {name}"));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "alerts and dashboards use families outside the default set: {bad:#?}"
    );
}

#[test]
fn finding_codes_in_queries_are_documented() {
    let findings = read("docs/findings.md");
    let known: BTreeSet<String> = findings
        .lines()
        .filter_map(|l| l.strip_prefix("## `")?.strip_suffix('`'))
        .map(str::to_string)
        .collect();
    assert!(
        known.len() > 50,
        "could not read the codes of docs/findings.md"
    );
    let mut queries: Vec<(String, String)> = alert_rules()
        .into_iter()
        .map(|r| (r.alert, r.expr))
        .collect();
    for (file, dashboard) in dashboards() {
        for (place, expr) in dashboard_queries(&dashboard) {
            queries.push((format!("{file}, {place}"), expr));
        }
    }
    let mut bad = Vec::new();
    for (place, expr) in queries {
        for code in finding_codes(&expr) {
            if !known.contains(&code) {
                bad.push(format!("{place}: {code}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "finding codes not in docs/findings.md: {bad:#?}"
    );
}

#[test]
fn every_alert_is_complete_and_has_a_runbook_section() {
    let anchors = markdown_anchors(&read("docs/runbook.md"));
    let mut problems = Vec::new();
    for rule in alert_rules() {
        let who = format!("{} ({} rule)", rule.alert, rule.severity().unwrap_or("?"));
        let camel = rule.alert.starts_with("MtaSts")
            && rule.alert.len() > "MtaSts".len()
            && rule.alert.chars().all(|c| c.is_ascii_alphanumeric())
            && rule.alert["MtaSts".len()..].starts_with(|c: char| c.is_ascii_uppercase());
        if !camel {
            problems.push(format!(
                "{who}: name is not CamelCase with the MtaSts prefix"
            ));
        }
        match rule.severity() {
            Some(s) if SEVERITIES.contains(&s) => {}
            other => problems.push(format!("{who}: severity {other:?} not in {SEVERITIES:?}")),
        }
        if rule.for_.is_none() {
            problems.push(format!("{who}: no `for:` (flaps on a single evaluation)"));
        }
        for key in ["summary", "description", "runbook_url"] {
            if rule.annotation(key).is_none_or(|v| v.trim().is_empty()) {
                problems.push(format!("{who}: annotation {key} missing or empty"));
            }
        }
        if let Some(summary) = rule.annotation("summary") {
            if !summary.ends_with('.') || summary.contains("{{") {
                problems.push(format!(
                    "{who}: summary must be one untemplated sentence ending with a period"
                ));
            }
        }
        if let Some(url) = rule.annotation("runbook_url") {
            match url.split_once('#') {
                Some((base, anchor)) if base == RUNBOOK_URL => {
                    if !anchors.contains(anchor) {
                        problems.push(format!("{who}: anchor #{anchor} not in docs/runbook.md"));
                    }
                    if anchor != rule.alert.to_lowercase() {
                        problems.push(format!(
                            "{who}: runbook anchor #{anchor} is not the alert's own section"
                        ));
                    }
                }
                _ => problems.push(format!("{who}: runbook_url {url} is not {RUNBOOK_URL}#...")),
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn summary_and_runbook_are_identical_across_an_alerts_rules() {
    let mut by_name: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
    for rule in alert_rules() {
        by_name.entry(rule.alert.clone()).or_default().push(rule);
    }
    let mut problems = Vec::new();
    for (name, rules) in &by_name {
        for key in ["summary", "runbook_url"] {
            let values: BTreeSet<_> = rules.iter().map(|r| r.annotation(key)).collect();
            if values.len() != 1 {
                problems.push(format!(
                    "{name}: {key} differs between its rules: {values:?}"
                ));
            }
        }
        // Rules sharing a name must differ by severity, or their alerts would collide.
        let severities: BTreeSet<_> = rules.iter().map(|r| r.severity()).collect();
        if severities.len() != rules.len() {
            problems.push(format!("{name}: two rules share a severity"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for tiered in ["MtaStsMxCertificateExpiry", "MtaStsPolicyCertificateExpiry"] {
        let severities: BTreeSet<_> = by_name[tiered].iter().map(|r| r.severity()).collect();
        assert_eq!(
            severities,
            BTreeSet::from([Some("critical"), Some("warning")]),
            "{tiered} must have exactly a warning and a critical tier"
        );
    }
}

#[test]
fn every_alert_severity_is_unit_tested_firing_and_silent() {
    let rules = alert_rules();
    let mut fired: BTreeSet<(String, String)> = BTreeSet::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    let test_files = files("tests/alerts", &["yml", "yaml"]);
    assert!(
        !test_files.is_empty(),
        "no promtool test files in tests/alerts/"
    );
    for path in test_files {
        let doc = yaml(&path);
        for test in array(&doc["tests"]) {
            for case in array(&test["alert_rule_test"]) {
                let name = case["alertname"].as_str().unwrap_or_default().to_string();
                let expected = array(&case["exp_alerts"]);
                if expected.is_empty() {
                    silent.insert(name.clone());
                }
                for alert in expected {
                    let severity = alert["exp_labels"]["severity"].as_str().unwrap_or_default();
                    fired.insert((name.clone(), severity.to_string()));
                    assert!(
                        alert["exp_annotations"]["summary"].is_string()
                            && alert["exp_annotations"]["description"].is_string(),
                        "{}: a test of {name} does not check summary and description",
                        path.display()
                    );
                }
            }
        }
    }
    let mut missing = Vec::new();
    for rule in &rules {
        let severity = rule.severity().unwrap_or_default().to_string();
        if !fired.contains(&(rule.alert.clone(), severity.clone())) {
            missing.push(format!("{} firing at severity {severity}", rule.alert));
        }
        if !silent.contains(&rule.alert) {
            missing.push(format!(
                "{} staying silent (an empty exp_alerts)",
                rule.alert
            ));
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "promtool tests missing for: {missing:#?}"
    );
}

#[test]
fn dashboards_are_provisioning_ready() {
    let found: BTreeMap<String, Value> = dashboards().into_iter().collect();
    let expected: BTreeSet<&str> = DASHBOARD_UIDS.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        found.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected,
        "dashboards/ holds other files than expected"
    );
    let mut problems = Vec::new();
    for (file, uid) in DASHBOARD_UIDS {
        let d = &found[*file];
        let mut p = |msg: String| problems.push(format!("{file}: {msg}"));
        if d.get("__inputs").is_some() || d.to_string().contains("__inputs") {
            p("has __inputs (breaks sidecar provisioning)".into());
        }
        if d.to_string().contains("${DS_") {
            p("uses an import placeholder ${DS_...}".into());
        }
        if d["uid"] != *uid {
            p(format!("uid {} is not the fixed uid {uid}", d["uid"]));
        }
        if !d["id"].is_null() {
            p("id must be null".into());
        }
        if d["schemaVersion"].as_u64().unwrap_or(0) < 39 {
            p(format!("schemaVersion {} < 39", d["schemaVersion"]));
        }
        let vars = array(&d["templating"]["list"]);
        let ds_var = vars.iter().find(|v| v["name"] == "datasource");
        match ds_var {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            _ => p("no `datasource` variable of type datasource, query prometheus".into()),
        }
        for v in vars.iter().filter(|v| v["type"] == "query") {
            if !uses_datasource_var(&v["datasource"]) {
                p(format!(
                    "variable {} does not use ${{datasource}}",
                    v["name"]
                ));
            }
        }
        let panels = all_panels(d);
        if panels.is_empty() {
            p("no panels".into());
        }
        let mut ids = BTreeSet::new();
        for panel in &panels {
            let title = panel["title"].as_str().unwrap_or("?");
            if !ids.insert(panel["id"].as_u64()) {
                p(format!("panel {title}: duplicate id {}", panel["id"]));
            }
            if !uses_datasource_var(&panel["datasource"]) {
                p(format!("panel {title}: datasource is not ${{datasource}}"));
            }
            if panel["type"] != "row" {
                let targets = array(&panel["targets"]);
                if targets.is_empty() {
                    p(format!("panel {title}: no targets"));
                }
                if panel["fieldConfig"]["defaults"]["unit"].as_str().is_none() {
                    p(format!("panel {title}: no unit"));
                }
                for target in targets {
                    if !uses_datasource_var(&target["datasource"]) {
                        p(format!(
                            "panel {title}, target {}: datasource is not ${{datasource}}",
                            target["refId"]
                        ));
                    }
                    let expr = target["expr"].as_str().unwrap_or_default();
                    if let Some(window) = bad_rate_window(expr) {
                        p(format!(
                            "panel {title}: rate window [{window}], use [$__rate_interval]"
                        ));
                    }
                }
            }
        }
        // Any datasource reference anywhere (panels, targets, variables) is the variable.
        let mut refs = Vec::new();
        collect_datasource_refs(d, &mut refs);
        for r in refs {
            if !uses_datasource_var(&r) {
                p(format!("hard-coded datasource {r}"));
            }
        }
    }
    let domain = &found["mta-sts-domain.json"];
    let domain_var = array(&domain["templating"]["list"])
        .into_iter()
        .find(|v| v["name"] == "domain")
        .expect("mta-sts-domain.json has a `domain` variable");
    assert_eq!(
        domain_var["query"]["query"], "label_values(mta_sts_domain_info, domain)",
        "the domain variable lists the configured domains"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn alertmanager_example_routes_and_inhibits_as_documented() {
    let path = root().join("deploy/alertmanager/alertmanager.yml");
    let text = read("deploy/alertmanager/alertmanager.yml");
    let config = yaml(&path);
    let alert_names: BTreeSet<String> = alert_rules().into_iter().map(|r| r.alert).collect();

    // Every alert name the config mentions exists (a typo would silently never match).
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        if word.starts_with("MtaSts") {
            assert!(
                alert_names.contains(word),
                "alertmanager.yml names unknown alert {word}"
            );
        }
    }
    let group_by = strings(&config["route"]["group_by"]);
    assert!(
        group_by.contains("alertname") && group_by.contains("domain"),
        "the root route groups by alertname and domain, not {group_by:?}"
    );
    let critical_over_warning = array(&config["inhibit_rules"]).into_iter().any(|rule| {
        let equal = strings(&rule["equal"]);
        array(&rule["source_matchers"]) == [Value::from("severity=\"critical\"")]
            && array(&rule["target_matchers"]) == [Value::from("severity=\"warning\"")]
            && ["alertname", "domain", "mx"]
                .iter()
                .all(|l| equal.contains(*l))
    });
    assert!(
        critical_over_warning,
        "no inhibit rule critical -> warning with equal [alertname, domain, mx]"
    );
    // Receivers are placeholders on the local host, for users to replace.
    for receiver in array(&config["receivers"]) {
        for hook in array(&receiver["webhook_configs"]) {
            let url = hook["url"].as_str().unwrap_or_default();
            assert!(
                url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
                "receiver {} posts to {url}, not a localhost placeholder",
                receiver["name"]
            );
        }
    }
    let names: BTreeSet<String> = array(&config["receivers"])
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    for needed in ["null", "pager", "ticket"] {
        assert!(names.contains(needed), "no receiver named {needed}");
    }
}

#[test]
fn runbook_route_example_matches_the_alertmanager_example() {
    let runbook = read("docs/runbook.md");
    let example = fenced_blocks(&runbook, "yaml")
        .into_iter()
        .find(|block| block.starts_with("route:"))
        .expect("docs/runbook.md has a ```yaml block starting with route:");
    let example: Value = serde_saphyr::from_str(&example).expect("runbook route example parses");
    let config = yaml(&root().join("deploy/alertmanager/alertmanager.yml"));
    assert!(
        is_subset(&example["route"], &config["route"]),
        "the runbook's route example is not part of deploy/alertmanager/alertmanager.yml:\n{:#}",
        example["route"]
    );
}

#[test]
fn metric_name_scanner_reads_promql() {
    let expr = r#"sum by (le) (rate(mta_sts_exporter_check_duration_seconds_bucket{job=~"mta_sts_not_a_metric"}[5m]))
        / on (mx) group_right () mta_sts_mx_covered and x_mta_sts_other # mta_sts_comment"#;
    assert_eq!(
        metric_names(expr),
        [
            "mta_sts_exporter_check_duration_seconds_bucket",
            "mta_sts_mx_covered"
        ]
    );
    assert_eq!(
        markdown_anchors("## `MtaStsFoo`: it's here\n## Routing & labels\n## Routing & labels\n"),
        BTreeSet::from([
            "mtastsfoo-its-here".to_string(),
            "routing--labels".to_string(),
            "routing--labels-1".to_string()
        ])
    );
    assert_eq!(
        bad_rate_window("rate(x[5m]) + rate(y[$__rate_interval])"),
        Some("5m".into())
    );
    assert_eq!(bad_rate_window("increase(y[$__rate_interval])"), None);
    assert_eq!(
        finding_codes(r#"x{code=~"sts_record_invalid|a.*", severity="x"} or y{code = "mx_null"}"#),
        ["sts_record_invalid", "mx_null"]
    );
}

/// `a` is contained in `b`: every key of an object with a contained value, the items of an
/// array contained, in order, in items of `b`'s array, scalars equal.
fn is_subset(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| is_subset(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            let mut rest = b.iter();
            a.iter().all(|v| rest.any(|w| is_subset(v, w)))
        }
        _ => a == b,
    }
}

// ------------------------------------------------------------------------------------------
// Reading the assets

struct Rule {
    file: String,
    alert: String,
    expr: String,
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl Rule {
    fn severity(&self) -> Option<&str> {
        self.labels.get("severity").map(String::as_str)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// Every alerting rule of every `alerts/*.yml` file.
fn alert_rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    let rule_files = files("alerts", &["yml", "yaml"]);
    assert!(!rule_files.is_empty(), "no rule files in alerts/");
    for path in rule_files {
        let doc = yaml(&path);
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        for group in array(&doc["groups"]) {
            for rule in array(&group["rules"]) {
                let Some(alert) = rule["alert"].as_str() else {
                    continue; // a recording rule
                };
                rules.push(Rule {
                    file: file.clone(),
                    alert: alert.to_string(),
                    expr: rule["expr"].as_str().unwrap_or_default().to_string(),
                    for_: rule["for"].as_str().map(str::to_string),
                    labels: string_map(&rule["labels"]),
                    annotations: string_map(&rule["annotations"]),
                });
            }
        }
    }
    assert!(
        rules.len() >= 14,
        "only {} alerting rules found",
        rules.len()
    );
    rules
}

/// `dashboards/*.json`, by file name.
fn dashboards() -> Vec<(String, Value)> {
    files("dashboards", &["json"])
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().to_string(),
                value,
            )
        })
        .collect()
}

/// Every PromQL query of a dashboard: panel targets and query variables.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        for target in array(&panel["targets"]) {
            if let Some(expr) = target["expr"].as_str() {
                out.push((format!("panel {}", panel["title"]), expr.to_string()));
            }
        }
    }
    for var in array(&dashboard["templating"]["list"]) {
        if var["type"] == "query" {
            let query = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .unwrap_or_default();
            out.push((format!("variable {}", var["name"]), query.to_string()));
        }
    }
    out
}

/// Top-level panels and the panels nested in collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for panel in array(&dashboard["panels"]) {
        out.extend(array(&panel["panels"]));
        out.push(panel);
    }
    out
}

fn uses_datasource_var(ds: &Value) -> bool {
    let uid = ds["uid"].as_str().or(ds.as_str());
    matches!(uid, Some("${datasource}" | "$datasource"))
}

fn collect_datasource_refs(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "datasource" {
                    out.push(v.clone());
                } else {
                    collect_datasource_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_datasource_refs(v, out)),
        _ => {}
    }
}

/// The first range window of a rate/irate/increase that is not `$__rate_interval`.
fn bad_rate_window(expr: &str) -> Option<String> {
    for func in ["rate(", "increase("] {
        for (i, _) in expr.match_indices(func) {
            let rest = &expr[i..];
            let open = rest.find('[')?;
            let close = rest[open..].find(']')? + open;
            let window = &rest[open + 1..close];
            if window != "$__rate_interval" {
                return Some(window.to_string());
            }
        }
    }
    None
}

// ------------------------------------------------------------------------------------------
// docs/metrics.md and PromQL

/// Documented families (`| `name` | type | ...` table rows), by name.
fn documented_families() -> BTreeMap<String, String> {
    let doc = read("docs/metrics.md");
    let families: BTreeMap<String, String> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('`')?;
            let kind = rest.split('|').nth(1)?.trim();
            name.starts_with("mta_sts_")
                .then(|| (name.to_string(), kind.to_string()))
        })
        .collect();
    assert!(families.len() > 20, "could not read docs/metrics.md tables");
    families
}

/// The sample names PromQL may use: gauges and counters (documented with `_total`) as they
/// are, histograms as `_bucket`, `_sum` and `_count`.
fn allowed_sample_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in documented_families() {
        match kind.as_str() {
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            "counter" => {
                assert!(
                    name.ends_with("_total"),
                    "counter {name} documented without _total"
                );
                names.insert(name);
            }
            _ => {
                names.insert(name);
            }
        }
    }
    names
}

/// Every `mta_sts_*` metric name in a PromQL expression, outside strings and comments.
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut names = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' | b'\'' | b'`' => quote = Some(b),
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ if expr[i..].starts_with("mta_sts_") && (i == 0 || !ident(bytes[i - 1])) => {
                let end = expr[i..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .map_or(expr.len(), |n| i + n);
                names.push(expr[i..end].to_string());
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// The finding codes a query matches literally: `code="x"` and the alternatives of
/// `code=~"x|y"` (regex alternatives with other metacharacters are skipped).
fn finding_codes(expr: &str) -> Vec<String> {
    let mut codes = Vec::new();
    for (i, _) in expr.match_indices("code") {
        if i > 0 && expr.as_bytes()[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let rest = expr[i + "code".len()..].trim_start();
        let value = if let Some(v) = rest.strip_prefix("=~") {
            v
        } else if let Some(v) = rest.strip_prefix('=') {
            v
        } else {
            continue;
        };
        let Some(value) = value.trim_start().strip_prefix('"') else {
            continue;
        };
        let Some(end) = value.find('"') else { continue };
        for alternative in value[..end].split('|') {
            if alternative
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                codes.push(alternative.to_string());
            }
        }
    }
    codes
}

// ------------------------------------------------------------------------------------------
// Markdown

/// GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, `-1`, `-2`
/// for repeats.
fn markdown_anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#').trim();
        let slug: String = text
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = counts.entry(slug.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// The contents of every fenced block with the given info string.
fn fenced_blocks(markdown: &str, info: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.strip_prefix("```").map(str::trim) == Some(info) => {
                current = Some(String::new())
            }
            Some(_) if trimmed.starts_with("```") => blocks.push(current.take().unwrap()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

// ------------------------------------------------------------------------------------------
// Files and YAML

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Files directly in `dir` (relative to the crate) with one of the extensions, sorted.
fn files(dir: &str, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    out.sort();
    out
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
}

fn array(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

/// The strings of a YAML sequence.
fn strings(value: &Value) -> BTreeSet<String> {
    array(value)
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}
