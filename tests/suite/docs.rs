//! Documentation that must stay true: the finding catalogue is generated from the code, and
//! every documented code can actually be emitted.

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

/// A documented code that no code path emits would be a promise we do not keep.
#[test]
fn every_code_is_emitted_somewhere() {
    let mut sources = String::new();
    for dir in ["src", "src/stage", "src/probe"] {
        for entry in std::fs::read_dir(repo_file(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("finding.rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    for code in Code::ALL {
        let variant = format!("{code:?}");
        assert!(
            sources.contains(&format!("Code::{variant}")),
            "Code::{variant} ({code}) is documented but never emitted"
        );
    }
}
