//! The SMTP reply reader (RFC 5321 §4.2) on arbitrary bytes: `parse_reply_line` on the input
//! as one line, and `read_reply` over it as an in-memory stream, with limits from the first two
//! bytes.
//!
//! Besides "never panics": a reply has between one line and the line-count limit, a valid code,
//! no control characters in its text, and reading never goes past the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mta_sts_exporter::probe::smtp::{parse_reply_line, read_reply};
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fn check_text(code: u16, text: &str) {
    assert!((100..600).contains(&code), "code {code}");
    assert!(!text.chars().any(char::is_control), "{text:?}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok((code, _, text)) = parse_reply_line(data) {
        check_text(code, &text);
    }
    let [line_byte, lines_byte, input @ ..] = data else {
        return;
    };
    // 0..=1020 bytes per line (0 is degenerate on purpose), 0..=15 lines per reply.
    let max_line = usize::from(*line_byte) * 4;
    let max_lines = usize::from(*lines_byte % 16);
    let mut reader: &[u8] = input;
    let result = runtime().block_on(read_reply(&mut reader, max_line, max_lines));
    assert!(reader.len() <= input.len());
    if let Ok(reply) = result {
        assert!(!reply.lines.is_empty());
        assert!(reply.lines.len() <= max_lines.max(1), "{reply:?}");
        for line in &reply.lines {
            check_text(reply.code, line);
        }
        // Every line ended in LF, so at least one byte per line was consumed.
        assert!(input.len() - reader.len() >= reply.lines.len());
    }
});
