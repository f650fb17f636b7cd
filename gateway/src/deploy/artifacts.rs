//! Artifacts on disk, content-addressed by the SHA-256 of the uploaded archive: the archive as
//! `ARTIFACTS/<sha>.tar.gz` (kept for rollback and audit) and its extracted tree as
//! `FUNCTIONS/<sha>/`. A tree is written into a fresh staging directory and renamed into place,
//! so nothing is ever extracted over an earlier version, and a crash leaves only staging litter.
//!
//! With a PostgreSQL store the archive is also kept in the database, in [`CHUNK_BYTES`] chunks
//! ([`publish`]), and the local directories are only a cache: a node that lacks a version's tree
//! fetches the archive one chunk at a time, checks its hash and extracts it under the same checks
//! as a deploy ([`materialize`]).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::DeployLimits;
use crate::store::Store;

/// One row of `artifact_chunks`: big enough that an archive is few rows, small enough that a
/// node never holds more than this of an archive in memory while storing or fetching it.
pub const CHUNK_BYTES: usize = 1 << 20;

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

/// Puts the archive `ARTIFACTS/<sha>.tar.gz` into the store, one chunk at a time, unless it is
/// there already (the same archive deployed before, by any node). A publish cut short leaves
/// chunks without the completing mark; the next publish of that archive writes over them.
pub async fn publish(store: &dyn Store, artifacts_dir: &Path, sha256: &str) -> anyhow::Result<()> {
    if store.artifact_chunk_count(sha256).await?.is_some() {
        return Ok(());
    }
    let mut file = tokio::fs::File::open(artifacts_dir.join(format!("{sha256}.tar.gz"))).await?;
    let mut chunk = Vec::with_capacity(CHUNK_BYTES);
    let mut seq = 0;
    loop {
        chunk.clear();
        (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut chunk).await?;
        if chunk.is_empty() {
            break;
        }
        store.put_artifact_chunk(sha256, seq, &chunk).await?;
        seq += 1;
        if chunk.len() < CHUNK_BYTES {
            break;
        }
    }
    store.finish_artifact(sha256, seq).await?;
    Ok(())
}

/// Makes sure `FUNCTIONS/<sha>/` exists: from the local archive when there is one, else from the
/// store's chunks (hash checked before anything is extracted), extracted under `limits`.
pub async fn materialize(
    store: &dyn Store,
    artifacts_dir: &Path,
    functions_dir: &Path,
    sha256: &str,
    limits: &DeployLimits,
) -> anyhow::Result<()> {
    if functions_dir.join(sha256).is_dir() {
        return Ok(());
    }
    tokio::fs::create_dir_all(artifacts_dir).await?;
    tokio::fs::create_dir_all(functions_dir).await?;
    let archive = artifacts_dir.join(format!("{sha256}.tar.gz"));
    if !archive.is_file() {
        fetch(store, artifacts_dir, sha256).await?;
    }
    let staging = staging_path(functions_dir);
    let (limits, functions_dir, sha256) = (limits.clone(), functions_dir.to_path_buf(), sha256.to_string());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        crate::deploy::archive::extract_file(&archive, &staging, &limits)
            .map_err(|error| anyhow::anyhow!("the stored archive {sha256} is refused: {error}"))?;
        install_tree(&staging, &functions_dir, &sha256).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&staging);
        })?;
        Ok(())
    })
    .await??;
    Ok(())
}

/// Copies the archive from the store to `ARTIFACTS/<sha>.tar.gz`, chunk by chunk, and keeps it
/// only when its SHA-256 is the one asked for.
async fn fetch(store: &dyn Store, artifacts_dir: &Path, sha256: &str) -> anyhow::Result<()> {
    let chunks = store.artifact_chunk_count(sha256).await?.ok_or_else(|| {
        anyhow::anyhow!("the archive {sha256} is not in the store (deployed before this server kept archives there?): deploy the function again")
    })?;
    let partial = artifacts_dir.join(format!(".{sha256}.{}.partial", hex::encode(crate::auth::random_bytes::<4>())));
    let written = async {
        let mut file = tokio::fs::File::create(&partial).await?;
        let mut hasher = Sha256::new();
        for seq in 0..chunks {
            let chunk = store
                .artifact_chunk(sha256, seq)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the archive {sha256} lacks chunk {seq} in the store"))?;
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        let actual = hex::encode(hasher.finalize());
        anyhow::ensure!(actual == sha256, "the archive {sha256} read back from the store hashes to {actual}");
        tokio::fs::rename(&partial, artifacts_dir.join(format!("{sha256}.tar.gz"))).await?;
        Ok(())
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}

/// How old a cached tree or archive must be before [`prune_cache`] may remove it: a deploy on
/// this node installs its tree a moment before it stores the artifact's row.
pub const PRUNE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the extracted trees and archives of artifacts the store no longer has (their
/// function was deleted through another node); returns how many artifacts went.
pub async fn prune_cache(store: &dyn Store, artifacts_dir: &Path, functions_dir: &Path) -> anyhow::Result<usize> {
    let mut cached = std::collections::BTreeSet::new();
    for (dir, suffix) in [(functions_dir, ""), (artifacts_dir, ".tar.gz")] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(sha) = name.strip_suffix(suffix) else { continue };
            let old = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age >= PRUNE_AFTER));
            if old && sha.len() == 64 && sha.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                cached.insert(sha.to_string());
            }
        }
    }
    let mut removed = 0;
    for sha in cached {
        if !store.artifact_known(&sha).await? {
            remove(artifacts_dir, functions_dir, &sha);
            removed += 1;
        }
    }
    Ok(removed)
}
