//! The `mta_sts_tlsrpt_*` families, encoded at scrape time from the report store (called by
//! [`crate::metrics::Exposition`]). Only configured domains are exported.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};

use super::ingest::Ingest;
use super::RejectReason;
use crate::metrics::{
    Selection, TLSRPT_LAST_REPORT, TLSRPT_REJECTED, TLSRPT_REPORTS, TLSRPT_SESSIONS,
};

/// Encodes the four families the selection holds.
pub fn encode(
    e: &mut DescriptorEncoder,
    selection: Selection,
    ingest: &Ingest,
    configured: &dyn Fn(&str) -> bool,
) -> Result<(), fmt::Error> {
    ingest.with_store(|store| {
        let domains: Vec<&String> = store.domains().filter(|d| configured(d)).collect();
        if selection.contains(&TLSRPT_SESSIONS) {
            let def = &TLSRPT_SESSIONS;
            let mut family = e.encode_descriptor(def.name, def.help, None, def.kind)?;
            for domain in &domains {
                for ((policy_type, result), n) in store.sessions(domain).into_iter().flatten() {
                    family
                        .encode_family(&[
                            ("domain", domain.as_str()),
                            ("policy_type", policy_type.as_str()),
                            ("result", result.as_str()),
                        ])?
                        .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                }
            }
        }
        for def in [&TLSRPT_REPORTS, &TLSRPT_LAST_REPORT] {
            if !selection.contains(def) {
                continue;
            }
            let mut family = e.encode_descriptor(def.name, def.help, None, def.kind)?;
            for domain in &domains {
                for (reporter, stats) in store.reporters(domain).into_iter().flatten() {
                    let labels = [("domain", domain.as_str()), ("reporter", reporter.as_str())];
                    let mut encoder = family.encode_family(&labels)?;
                    if def.name == TLSRPT_REPORTS.name {
                        encoder.encode_counter::<NoLabelSet, _, u64>(&stats.reports, None)?;
                    } else {
                        encoder.encode_gauge(&(stats.last_end as f64))?;
                    }
                }
            }
        }
        if selection.contains(&TLSRPT_REJECTED) {
            let def = &TLSRPT_REJECTED;
            let mut family = e.encode_descriptor(def.name, def.help, None, def.kind)?;
            let rejected = store.rejected();
            for reason in RejectReason::ALL {
                let n = rejected.get(&reason).copied().unwrap_or(0);
                family
                    .encode_family(&[("reason", reason.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        Ok(())
    })
}
