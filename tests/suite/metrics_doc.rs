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
