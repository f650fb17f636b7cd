//! Safe extraction of an uploaded `.tar.gz` (brief, decision 8).
//!
//! The `tar` crate's `unpack` skips `../` entries silently, strips leading `/`, creates symlinks
//! pointing anywhere and writes devices as regular files, with no size or count limits. So the
//! entries are walked here: only regular files and directories are accepted; an absolute or `..`
//! path, a link, a device, a fifo or a sparse file rejects the whole archive (never skipped);
//! compressed bytes, expanded bytes, entry count, path length and depth are capped. Extraction
//! goes into a fresh, empty directory that is removed again on any rejection.

use std::io::{self, Read, Seek};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

use crate::config::DeployLimits;

/// Why an archive was refused. Each has its own error code in the API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("the archive is empty")]
    Empty,
    #[error("the archive is not gzip-compressed (expected a .tar.gz)")]
    NotGzip,
    #[error("the archive is not a valid tar.gz: {0}")]
    Corrupt(String),
    #[error("the archive is {actual} bytes compressed; the limit is {limit}")]
    CompressedTooLarge { actual: u64, limit: u64 },
    #[error("the archive expands to more than {limit} bytes")]
    ExpandedTooLarge { limit: u64 },
    #[error("the archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("entry {path:?}: {reason}")]
    BadEntry { path: String, reason: String },
    #[error("cannot write the extracted files: {0}")]
    Io(String),
}

impl ArchiveError {
    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            ArchiveError::Empty => "archive_empty",
            ArchiveError::NotGzip => "archive_not_gzip",
            ArchiveError::Corrupt(_) => "archive_corrupt",
            ArchiveError::CompressedTooLarge { .. } => "archive_too_large",
            ArchiveError::ExpandedTooLarge { .. } => "archive_expands_too_large",
            ArchiveError::TooManyEntries { .. } => "archive_too_many_entries",
            ArchiveError::BadEntry { .. } => "archive_bad_entry",
            ArchiveError::Io(_) => "internal",
        }
    }

    /// Limits are 413 (Payload Too Large); malformed or unsafe archives are 400.
    pub fn is_size_limit(&self) -> bool {
        matches!(
            self,
            ArchiveError::CompressedTooLarge { .. }
                | ArchiveError::ExpandedTooLarge { .. }
                | ArchiveError::TooManyEntries { .. }
        )
    }
}

/// Counts decompressed bytes and fails the read once `limit` is passed, so a gzip bomb stops
/// after `limit` bytes of work instead of filling the disk.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("expanded size limit"));
        }
        Ok(n)
    }
}

/// Extracts the archive in file `archive` into `destination`, which must not exist yet, reading
/// it as it goes (a deploy's upload, or a version another node fetched from the store). On error
/// nothing is left behind. Returns the number of regular files written.
pub fn extract_file(archive: &Path, destination: &Path, limits: &DeployLimits) -> Result<u64, ArchiveError> {
    let io_error = |error: io::Error| ArchiveError::Io(error.to_string());
    let mut file = std::fs::File::open(archive).map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    let mut magic = [0u8; 2];
    let read = file.read(&mut magic).map_err(io_error)?;
    check_header(length, &magic[..read], limits)?;
    file.rewind().map_err(io_error)?;
    extract_stream(io::BufReader::new(file), destination, limits)
}

/// The checks before any byte is decompressed: not empty, within the compressed limit, gzip.
fn check_header(length: u64, head: &[u8], limits: &DeployLimits) -> Result<(), ArchiveError> {
    if length == 0 {
        return Err(ArchiveError::Empty);
    }
    if length > limits.max_archive_bytes {
        return Err(ArchiveError::CompressedTooLarge { actual: length, limit: limits.max_archive_bytes });
    }
    if !head.starts_with(&[0x1f, 0x8b]) {
        return Err(ArchiveError::NotGzip);
    }
    Ok(())
}

fn extract_stream<R: Read>(archive: R, destination: &Path, limits: &DeployLimits) -> Result<u64, ArchiveError> {
    std::fs::create_dir(destination).map_err(|error| ArchiveError::Io(error.to_string()))?;
    let mut capped =
        Capped { inner: GzDecoder::new(archive), read: 0, limit: limits.max_expanded_bytes, exceeded: false };
    let result = extract_entries(&mut capped, destination, limits);
    let result = match result {
        Err(ArchiveError::Corrupt(_)) | Err(ArchiveError::Io(_)) if capped.exceeded => {
            Err(ArchiveError::ExpandedTooLarge { limit: limits.max_expanded_bytes })
        }
        other => other,
    };
    if result.is_err() {
        let _ = std::fs::remove_dir_all(destination);
    }
    result
}

fn extract_entries<R: Read>(reader: R, destination: &Path, limits: &DeployLimits) -> Result<u64, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|error| ArchiveError::Corrupt(error.to_string()))?;
    let mut count = 0u64;
    let mut files = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|error| ArchiveError::Corrupt(error.to_string()))?;
        count += 1;
        if count > limits.max_entries {
            return Err(ArchiveError::TooManyEntries { limit: limits.max_entries });
        }
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let bad = |reason: &str| ArchiveError::BadEntry { path: raw_path.clone(), reason: reason.into() };
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            // `git archive` writes one (the commit id as a comment); it names no file.
            continue;
        }
        let is_dir = kind == tar::EntryType::Directory;
        if !(kind == tar::EntryType::Regular || kind == tar::EntryType::Continuous || is_dir) {
            return Err(bad(&format!(
                "{} entries are not allowed; only regular files and directories",
                kind_name(kind)
            )));
        }
        let relative = safe_relative_path(&entry.path_bytes(), limits).map_err(|reason| bad(&reason))?;
        let Some(relative) = relative else { continue };
        let target = destination.join(&relative);
        let io = |error: io::Error| {
            if error.kind() == io::ErrorKind::AlreadyExists {
                bad("appears twice in the archive")
            } else {
                ArchiveError::Io(format!("{}: {error}", relative.display()))
            }
        };
        if is_dir {
            std::fs::create_dir_all(&target).map_err(io)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let executable = entry.header().mode().map(|mode| mode & 0o111 != 0).unwrap_or(false);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, if executable { 0o755 } else { 0o644 });
        let mut file = options.open(&target).map_err(io)?;
        io::copy(&mut entry, &mut file).map_err(|error| ArchiveError::Corrupt(error.to_string()))?;
        files += 1;
    }
    if files == 0 {
        return Err(ArchiveError::Empty);
    }
    Ok(files)
}

/// The entry's path relative to the destination: `None` for the archive root (`./`), an error
/// for anything that could leave the destination or is beyond the limits.
fn safe_relative_path(raw: &[u8], limits: &DeployLimits) -> Result<Option<PathBuf>, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "the path is not valid UTF-8".to_string())?;
    if text.len() > limits.max_path_bytes {
        return Err(format!("the path is longer than {} bytes", limits.max_path_bytes));
    }
    if text.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    let mut relative = PathBuf::new();
    for component in Path::new(text).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` paths are not allowed".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute paths are not allowed".into()),
        }
    }
    if relative.components().count() > limits.max_depth {
        return Err(format!("the path is deeper than {} directories", limits.max_depth));
    }
    Ok((!relative.as_os_str().is_empty()).then_some(relative))
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "special",
    }
}

/// The directory holding the package: the root, or its only subdirectory when the archive wraps
/// everything in one folder (`tar czf fn.tar.gz my-function/`). An entry the deploy names
/// (`src/app.py`) that is there from the root keeps the root: `src/` is then part of the package.
/// A folder that other platforms' layouts give meaning to (Netlify's `netlify/functions/`,
/// Vercel's `api/`) is the package's, never a wrapper.
pub fn package_root(extracted: &Path, named_entry: Option<&str>) -> io::Result<PathBuf> {
    if named_entry.is_some_and(|file| extracted.join(file).is_file()) {
        return Ok(extracted.to_path_buf());
    }
    let mut entries = std::fs::read_dir(extracted)?.collect::<io::Result<Vec<_>>>()?;
    if entries.len() == 1 && entries[0].file_type()?.is_dir() {
        let name = entries[0].file_name();
        let layout = (name == "netlify" && entries[0].path().join("functions").is_dir()) || name == "api";
        if !layout {
            return Ok(entries.remove(0).path());
        }
    }
    Ok(extracted.to_path_buf())
}

#[cfg(test)]
mod tests;
