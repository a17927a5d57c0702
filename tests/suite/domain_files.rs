//! Domain files compressed with gzip: told by content, every member read, the decompressed size
//! capped, errors naming the file and what to do.

use std::io::Write;

use mta_sts_exporter::config::{self, MAX_DECOMPRESSED_DOMAIN_FILE};
use proptest::prelude::*;

use crate::support::http::TempDir;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Loads a configuration naming `file` (written with `contents`) in `domain_files`.
fn load_with_file(dir: &TempDir, file: &str, contents: &[u8]) -> Result<Vec<String>, String> {
    std::fs::write(dir.path(file), contents).unwrap();
    let config = dir.path("config.yml");
    std::fs::write(&config, format!("domain_files: [{file}]\n")).unwrap();
    config::load(&config)
        .map(|c| c.domains.into_iter().map(|d| d.name).collect())
        .map_err(|e| e.to_string())
}

const LIST: &str = "# customers\nshop.example\nBlog.Example.\n\n_tenant.example  # a comment\n";
const NAMES: [&str; 3] = ["shop.example", "blog.example", "_tenant.example"];

#[test]
fn gzip_files_are_told_by_content_not_by_name() {
    let dir = TempDir::new("gzip-names");
    let compressed = gzip(LIST.as_bytes());
    for name in ["domains.txt.gz", "domains.txt", "domains"] {
        assert_eq!(
            load_with_file(&dir, name, &compressed).unwrap(),
            NAMES,
            "{name}"
        );
    }
    // A .gz name holding plain text is read as plain text.
    assert_eq!(
        load_with_file(&dir, "plain.gz", LIST.as_bytes()).unwrap(),
        NAMES
    );
}

#[test]
fn every_member_of_a_concatenated_gzip_file_is_read() {
    let dir = TempDir::new("gzip-members");
    let mut two = gzip(b"one.example\n");
    two.extend(gzip(b"two.example\n"));
    assert_eq!(
        load_with_file(&dir, "list.gz", &two).unwrap(),
        ["one.example", "two.example"]
    );
}

#[test]
fn a_corrupt_gzip_file_is_refused_with_its_name() {
    let dir = TempDir::new("gzip-corrupt");
    let mut broken = gzip(LIST.as_bytes());
    broken.truncate(broken.len() / 2);
    let err = load_with_file(&dir, "cut.gz", &broken).unwrap_err();
    assert!(
        err.contains("domain_files[0]: cannot read domain file"),
        "{err}"
    );
    assert!(err.contains("cut.gz"), "{err}");
    assert!(
        err.contains("it begins like gzip but does not decompress"),
        "{err}"
    );
    assert!(err.contains("compress it again with gzip"), "{err}");
}

/// A small file that decompresses past the cap is refused without decompressing it whole.
#[test]
fn decompressed_size_is_capped() {
    let dir = TempDir::new("gzip-bomb");
    let size = usize::try_from(MAX_DECOMPRESSED_DOMAIN_FILE).unwrap() + 4096;
    let bomb = gzip(&vec![b'\n'; size]);
    assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
    let err = load_with_file(&dir, "bomb.gz", &bomb).unwrap_err();
    assert!(
        err.contains("decompresses to more than 64 MiB, the most a domain file may hold"),
        "{err}"
    );
    assert!(err.contains("split the list into several files"), "{err}");
    // Exactly at the cap is fine (blank lines only: no domains, so the load stops there).
    let at_cap = gzip(&vec![b'\n'; size - 4096]);
    let err = load_with_file(&dir, "full.gz", &at_cap).unwrap_err();
    assert!(err.contains("no domains configured"), "{err}");
}

#[test]
fn a_bad_name_in_a_gzip_file_names_the_file_and_line() {
    let dir = TempDir::new("gzip-bad-name");
    let err = load_with_file(&dir, "bad.gz", &gzip(b"ok.example\n\nexa mple.com\n")).unwrap_err();
    assert!(
        err.contains("bad.gz:3: invalid domain \"exa mple.com\""),
        "{err}"
    );
}

/// 100,000 domains, as the chart ships them in a ConfigMap's binaryData: well under the 1 MiB
/// object limit once compressed.
#[test]
fn a_fleet_sized_list_fits_a_configmap_compressed() {
    let dir = TempDir::new("gzip-fleet");
    let list: String = (0..100_000)
        .map(|i| format!("customer-{i:06}.mail-hosting.example\n"))
        .collect();
    let compressed = gzip(list.as_bytes());
    // binaryData is base64: 4/3 of the bytes.
    assert!(
        compressed.len() * 4 / 3 < 1 << 20,
        "{} bytes compressed",
        compressed.len()
    );
    assert_eq!(
        load_with_file(&dir, "fleet.txt.gz", &compressed)
            .unwrap()
            .len(),
        100_000
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The same list, plain or gzip (in any number of members), loads the same domains.
    #[test]
    fn plain_and_gzip_load_the_same(
        labels in proptest::collection::vec("[a-z][a-z0-9-]{0,10}[a-z0-9]", 1..40),
        members in 1usize..4,
    ) {
        let dir = TempDir::new("gzip-prop");
        let list: String = labels.iter().map(|l| format!("{l}.example\n")).collect();
        let plain = load_with_file(&dir, "plain.txt", list.as_bytes()).unwrap();
        let lines: Vec<&str> = list.split_inclusive('\n').collect();
        let chunk = lines.len().div_ceil(members);
        let mut compressed = Vec::new();
        for part in lines.chunks(chunk.max(1)) {
            compressed.extend(gzip(part.concat().as_bytes()));
        }
        let unpacked = load_with_file(&dir, "list.gz", &compressed).unwrap();
        prop_assert_eq!(plain, unpacked);
    }
}
