//! The policy file parser (RFC 8461 §3.2) on arbitrary bytes.
//!
//! Besides "never panics": a policy is returned exactly when no finding is critical, and a
//! returned policy printed with `to_text` parses back to the same policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta_sts_exporter::finding::Severity;
use mta_sts_exporter::stage::policy::{parse_policy, LineEnding};

fuzz_target!(|data: &[u8]| {
    let parse = parse_policy(data);
    let critical = parse
        .findings
        .iter()
        .any(|f| f.severity == Severity::Critical);
    assert_eq!(parse.policy.is_some(), !critical, "{:?}", parse.findings);
    if let Some(policy) = &parse.policy {
        for ending in [LineEnding::Lf, LineEnding::Crlf] {
            let text = policy.to_text(ending);
            let again = parse_policy(text.as_bytes());
            assert_eq!(
                again.policy.as_ref(),
                Some(policy),
                "{text:?}: {:?}",
                again.findings
            );
        }
    }
});
