//! A deploy's archive, written to disk as it arrives: hashed on the way, never held whole in
//! memory, and refused as soon as it passes `[deploy] max_archive_bytes`. The file is made in the
//! artifacts directory, so keeping it is a rename; one not kept is removed when dropped.

use std::path::{Path, PathBuf};

use axum::extract::multipart::Field;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// An archive received into `path`.
#[derive(Debug)]
pub struct UploadedArchive {
    pub path: PathBuf,
    pub sha256: String,
    pub len: u64,
    kept: bool,
}

/// Why an upload could not be received.
#[derive(Debug)]
pub enum UploadError {
    TooLarge {
        limit: u64,
    },
    /// The client's body broke off or was malformed.
    Body(String),
    /// The server could not write it.
    Disk(std::io::Error),
}

impl UploadedArchive {
    /// Receives `field` into a new file in `dir`, at most `limit` bytes.
    pub async fn receive(mut field: Field<'_>, dir: &Path, limit: u64) -> Result<Self, UploadError> {
        tokio::fs::create_dir_all(dir).await.map_err(UploadError::Disk)?;
        let path = dir.join(format!(".upload-{}", hex::encode(crate::auth::random_bytes::<8>())));
        let mut upload = UploadedArchive { path, sha256: String::new(), len: 0, kept: false };
        let mut file = tokio::fs::File::create(&upload.path).await.map_err(UploadError::Disk)?;
        let mut hash = Sha256::new();
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(error) => return Err(UploadError::Body(error.body_text())),
            };
            upload.len += chunk.len() as u64;
            if upload.len > limit {
                return Err(UploadError::TooLarge { limit });
            }
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(UploadError::Disk)?;
        }
        file.sync_all().await.map_err(UploadError::Disk)?;
        upload.sha256 = hex::encode(hash.finalize());
        Ok(upload)
    }

    /// Keeps the archive as the artifact `DIR/SHA256.tar.gz` (an identical one already there is
    /// as good).
    pub fn keep(mut self, artifacts_dir: &Path) -> std::io::Result<()> {
        let target = artifacts_dir.join(format!("{}.tar.gz", self.sha256));
        if !target.exists() {
            std::fs::rename(&self.path, &target)?;
            self.kept = true;
        }
        Ok(())
    }
}

impl Drop for UploadedArchive {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
