//! In-process fakes for the integration tests: DNS, HTTPS and SMTP servers on 127.0.0.1:0 and
//! certificates minted with rcgen. Nothing here touches the internet.
#![allow(dead_code)]
pub mod certs;
pub mod dns;
pub mod fleet;
pub mod http;
pub mod https;
pub mod lab;
pub mod smtp;

/// The metric names `docs/metrics.md` documents (the first column of its tables).
pub fn documented_metrics() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("mta_sts_"))
        .map(str::to_string)
        .collect()
}
