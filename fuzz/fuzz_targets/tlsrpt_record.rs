//! The `_smtp._tls` TLS-RPT record parser (RFC 8460 §3) on arbitrary text.
//!
//! The input is split at NUL bytes into the TXT records found at one name. Besides "never
//! panics", checks that the record selection and the single-record parser agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta_sts_exporter::stage::tlsrpt::{evaluate_tlsrpt_txt, parse_tlsrpt_record};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let txts: Vec<String> = text.split('\0').map(str::to_owned).collect();
    let _ = evaluate_tlsrpt_txt(&txts);
    for txt in &txts {
        let single = parse_tlsrpt_record(txt);
        let selected = evaluate_tlsrpt_txt(std::slice::from_ref(txt));
        if let Some(record) = selected.record {
            // A record that the selection keeps is one the parser accepts, unchanged.
            let (parsed, _) = single.expect("kept record parses");
            assert_eq!(parsed, record);
            assert!(!record.rua.is_empty(), "{txt:?}");
        }
    }
});
