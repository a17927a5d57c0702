//! `docs/metrics.md` is the metric contract: it documents exactly the families the exporter
//! defines. (That every family is produced is checked end to end in tests/serve.rs.)

use std::collections::BTreeSet;

use mta_sts_exporter::metrics::{sample_name, METRICS};

pub fn documented() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("mta_sts_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn documented_and_defined_metrics_agree() {
    let defined: BTreeSet<String> = METRICS.iter().map(|d| sample_name(d)).collect();
    let documented = documented();
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
