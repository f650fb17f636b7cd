//! Artifacts on disk, content-addressed by the SHA-256 of the uploaded archive: the archive as
//! `ARTIFACTS/<sha>.tar.gz` (kept for rollback and audit) and its extracted tree as
//! `FUNCTIONS/<sha>/`. A tree is written into a fresh staging directory and renamed into place,
//! so nothing is ever extracted over an earlier version, and a crash leaves only staging litter.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A fresh staging directory path under `functions_dir` (not created).
pub fn staging_path(functions_dir: &Path) -> PathBuf {
    functions_dir.join(format!(".staging-{}", hex::encode(crate::auth::random_bytes::<8>())))
}

/// Moves an extracted, accepted tree to its content address. When the same archive was deployed
/// before, its tree is already there (and identical): the staging copy is removed instead.
pub fn install_tree(staging: &Path, functions_dir: &Path, sha256: &str) -> std::io::Result<PathBuf> {
    let target = functions_dir.join(sha256);
    if target.exists() {
        std::fs::remove_dir_all(staging)?;
        return Ok(target);
    }
    match std::fs::rename(staging, &target) {
        Ok(()) => Ok(target),
        Err(_) if target.exists() => {
            std::fs::remove_dir_all(staging)?;
            Ok(target)
        }
        Err(error) => Err(error),
    }
}

pub fn save_archive(artifacts_dir: &Path, sha256: &str, archive: &[u8]) -> std::io::Result<()> {
    let target = artifacts_dir.join(format!("{sha256}.tar.gz"));
    if target.exists() {
        return Ok(());
    }
    let temporary = artifacts_dir.join(format!(".{sha256}.partial"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(archive)?;
    file.sync_all()?;
    std::fs::rename(&temporary, &target)
}

/// Removes an artifact no version uses any more.
pub fn remove(artifacts_dir: &Path, functions_dir: &Path, sha256: &str) {
    let _ = std::fs::remove_file(artifacts_dir.join(format!("{sha256}.tar.gz")));
    let _ = std::fs::remove_dir_all(functions_dir.join(sha256));
}

/// Leftovers of deploys interrupted by a crash.
pub fn remove_staging_litter(functions_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(functions_dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".staging-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
