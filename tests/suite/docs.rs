//! Documentation that must stay true: the finding catalogue is generated from the code.

use mta_sts_exporter::finding::{findings_markdown, Code};

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn findings_doc_matches_the_code() {
    let expected = findings_markdown();
    let path = repo_file("docs/findings.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/findings.md is out of date: run `UPDATE_DOCS=1 cargo test --test suite docs::`"
    );
    for code in Code::ALL {
        assert!(actual.contains(&format!("## `{}`", code.as_str())));
    }
}

// That every documented code is actually emitted is checked where codes are made, by running
// a scenario per code through the judge and the drift and expectation stages:
// `check::judge::tests::every_code_is_emitted_by_some_stage` (src/check/judge.rs).
