//! `docs/metrics.md` is the metric contract: it documents exactly the families the exporter
//! defines. (That every family is produced is checked end to end in tests/suite/serve.rs.)

use std::collections::BTreeSet;

use crate::support;

use mta_sts_exporter::metrics::{sample_name, METRICS};

#[test]
fn documented_and_defined_metrics_agree() {
    let defined: BTreeSet<String> = METRICS.iter().map(|d| sample_name(d)).collect();
    let documented: BTreeSet<String> = support::documented_metrics().into_iter().collect();
    let undocumented: Vec<_> = defined.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&defined).collect();
    assert!(
        undocumented.is_empty(),
        "defined but not in docs/metrics.md: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "in docs/metrics.md but never defined: {phantom:?}"
    );
}

#[test]
fn documented_sets_match_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    let documented: std::collections::BTreeMap<String, String> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('`')?;
            let set = rest.split('|').nth(2)?.trim();
            name.starts_with("mta_sts_")
                .then(|| (name.to_string(), set.to_string()))
        })
        .collect();
    let mut wrong = Vec::new();
    for def in METRICS {
        let name = sample_name(def);
        match documented.get(&name) {
            Some(set) if set == def.set.as_str() => {}
            other => wrong.push(format!(
                "{name}: code says {}, docs say {other:?}",
                def.set.as_str()
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "the set column of docs/metrics.md is wrong: {wrong:#?}"
    );
}
