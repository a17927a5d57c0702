//! The `_mta-sts` TXT record parser (RFC 8461 §3.1) on arbitrary text.
//!
//! The input is split at NUL bytes into the TXT records found at one name. Besides "never
//! panics", checks that the record selection and the single-record parser agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta_sts_exporter::stage::record::{evaluate_sts_txt, parse_sts_record};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let txts: Vec<String> = text.split('\0').map(str::to_owned).collect();
    let outcome = evaluate_sts_txt(&txts);
    if let Some(record) = &outcome.record {
        // A record is kept only when exactly one TXT record is an STS record, and it parses.
        assert_eq!(outcome.sts_records.len(), 1, "{txts:?}");
        let (parsed, _) = parse_sts_record(&outcome.sts_records[0]).expect("kept record parses");
        assert_eq!(&parsed, record);
        assert!(!record.id.is_empty());
    }
    for txt in &txts {
        let _ = parse_sts_record(txt);
    }
});
