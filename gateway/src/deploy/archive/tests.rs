use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::*;

/// One raw tar entry: the name is written into the header as is, bypassing the checks
/// `tar::Header::set_path` makes, so hostile archives can be built.
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    data: &'a [u8],
    link: &'a str,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw { name, kind: tar::EntryType::Regular, data, link: "" }
}

fn tar_gz(entries: &[Raw]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..entry.name.len()].copy_from_slice(entry.name.as_bytes());
        header.as_old_mut().linkname[..entry.link.len()].copy_from_slice(entry.link.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_size(entry.data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, entry.data).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn run(archive: &[u8], limits: &DeployLimits) -> (Result<u64, ArchiveError>, tempfile::TempDir) {
    // As a deploy receives it: written to a file first.
    let parent = tempfile::tempdir().unwrap();
    let upload = parent.path().join("upload.tar.gz");
    std::fs::write(&upload, archive).unwrap();
    let result = extract_file(&upload, &parent.path().join("out"), limits);
    (result, parent)
}

fn rejected(archive: &[u8]) -> ArchiveError {
    let (result, parent) = run(archive, &DeployLimits::default());
    assert!(!parent.path().join("out").exists(), "a rejected archive must leave nothing behind");
    result.unwrap_err()
}

#[test]
fn regular_files_and_directories_are_extracted() {
    let archive = tar_gz(&[
        Raw { name: "./", kind: tar::EntryType::Directory, data: b"", link: "" },
        file("./pubspec.yaml", b"name: f\n"),
        file("lib/src/a.dart", b"void a() {}\n"),
    ]);
    let (result, parent) = run(&archive, &DeployLimits::default());
    assert_eq!(result, Ok(2));
    let out = parent.path().join("out");
    assert_eq!(std::fs::read(out.join("lib/src/a.dart")).unwrap(), b"void a() {}\n");
    assert_eq!(package_root(&out, None).unwrap(), out);
}

#[test]
fn a_single_wrapping_folder_is_the_package_root() {
    let archive = tar_gz(&[file("my-fn/pubspec.yaml", b"name: f\n"), file("my-fn/main.dart", b"x")]);
    let (result, parent) = run(&archive, &DeployLimits::default());
    assert_eq!(result, Ok(2));
    let out = parent.path().join("out");
    assert_eq!(package_root(&out, None).unwrap(), out.join("my-fn"));
    // An entry named from the archive's root keeps the root: the folder is part of the package.
    assert_eq!(package_root(&out, Some("my-fn/main.dart")).unwrap(), out);
    assert_eq!(package_root(&out, Some("main.dart")).unwrap(), out.join("my-fn"));
}

#[test]
fn folders_other_platforms_lay_out_are_never_taken_for_a_wrapper() {
    for path in ["netlify/functions/hello.mjs", "api/index.py"] {
        let archive = tar_gz(&[file(path, b"x")]);
        let (result, parent) = run(&archive, &DeployLimits::default());
        assert_eq!(result, Ok(1));
        let out = parent.path().join("out");
        assert_eq!(package_root(&out, None).unwrap(), out, "{path}");
    }
}

#[test]
fn escaping_paths_are_rejected_not_skipped() {
    for name in ["../evil", "a/../../evil", "/etc/evil", "a/../b"] {
        let error = rejected(&tar_gz(&[file("ok.txt", b"1"), file(name, b"2")]));
        assert_eq!(error.code(), "archive_bad_entry", "{name}: {error}");
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[test]
fn links_devices_fifos_and_sparse_files_are_rejected() {
    for (kind, word) in [
        (tar::EntryType::Symlink, "symbolic link"),
        (tar::EntryType::Link, "hard link"),
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
        (tar::EntryType::Fifo, "fifo"),
    ] {
        let error = rejected(&tar_gz(&[file("ok.txt", b"1"), Raw { name: "x", kind, data: b"", link: "/etc/passwd" }]));
        assert!(error.to_string().contains(word), "{word}: {error}");
    }
    // A sparse entry whose map the tar crate cannot even read is refused as corrupt; one it can
    // read is refused by type (the same check as above).
    let sparse = rejected(&tar_gz(&[Raw { name: "s", kind: tar::EntryType::GNUSparse, data: b"", link: "" }]));
    assert!(matches!(sparse, ArchiveError::Corrupt(_) | ArchiveError::BadEntry { .. }), "{sparse}");
}

#[test]
fn size_and_count_limits_hold() {
    let limits = DeployLimits { max_expanded_bytes: 1 << 20, max_entries: 3, ..DeployLimits::default() };
    // A gzip bomb: 64 MB of zeros compresses to about 64 KB.
    let zeros = vec![0u8; 64 << 20];
    let bomb = tar_gz(&[file("zeros", &zeros)]);
    assert!(bomb.len() < 200_000);
    let (result, parent) = run(&bomb, &limits);
    assert_eq!(result.unwrap_err(), ArchiveError::ExpandedTooLarge { limit: 1 << 20 });
    assert!(!parent.path().join("out").exists());

    let many: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
    let archive = tar_gz(&many.iter().map(|name| file(name, b"x")).collect::<Vec<_>>());
    let (result, _parent) = run(&archive, &limits);
    assert_eq!(result.unwrap_err(), ArchiveError::TooManyEntries { limit: 3 });

    let small = DeployLimits { max_archive_bytes: 10, ..DeployLimits::default() };
    let (result, _parent) = run(&tar_gz(&[file("a", b"1")]), &small);
    assert!(result.unwrap_err().is_size_limit());

    let deep = format!("{}f", "d/".repeat(40));
    assert_eq!(rejected(&tar_gz(&[file(&deep, b"1")])).code(), "archive_bad_entry");
}

#[test]
fn empty_garbage_and_duplicate_input_is_rejected() {
    assert_eq!(rejected(b""), ArchiveError::Empty);
    assert_eq!(rejected(b"PK\x03\x04 a zip file"), ArchiveError::NotGzip);
    assert_eq!(rejected(&gzip(b"")), ArchiveError::Empty);
    assert_eq!(rejected(&tar_gz(&[])), ArchiveError::Empty);
    assert_eq!(rejected(&gzip(&[7u8; 2000])).code(), "archive_corrupt");
    let mut truncated = tar_gz(&[file("a", &[1u8; 5000])]);
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(rejected(&truncated), ArchiveError::Corrupt(_)));
    let error = rejected(&tar_gz(&[file("a", b"1"), file("./a", b"2")]));
    assert!(error.to_string().contains("twice"), "{error}");
}
