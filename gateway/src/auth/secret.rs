//! The HMAC secret that signs tokens: configured (`JWT_SECRET`), or generated on first start and
//! kept in the data directory with mode 0600 so tokens survive a restart.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};

/// The brief's floor for an HMAC-SHA256 key.
pub const MIN_SECRET_BYTES: usize = 32;
const FILE_NAME: &str = "jwt_secret";

pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    load_or_create_named(configured, data_dir, FILE_NAME, "JWT_SECRET")
}

/// A secret of at least 32 bytes: `configured` (from `variable`), or the data directory's
/// `file_name`, generated on first start with mode 0600.
pub fn load_or_create_named(
    configured: Option<&str>,
    data_dir: &Path,
    file_name: &str,
    variable: &str,
) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        if secret.len() < MIN_SECRET_BYTES {
            bail!(
                "{variable} is {} bytes; it must be at least {MIN_SECRET_BYTES} (try: openssl rand -hex 32)",
                secret.len()
            );
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(file_name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{} is readable by other users (mode {mode:o}); run: chmod 600 {}",
                    path.display(),
                    path.display()
                );
            }
            let secret = text.trim();
            if secret.len() < MIN_SECRET_BYTES {
                bail!(
                    "{} holds a secret shorter than {MIN_SECRET_BYTES} bytes; delete it to generate a new one",
                    path.display()
                );
            }
            Ok(secret.as_bytes().to_vec())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = hex::encode(super::random_bytes::<32>());
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "generated {file_name}");
            Ok(secret.into_bytes())
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The token-signing secret when the nodes of one platform share a PostgreSQL store: the
/// configured one, or the one the first node kept in the store. A node that has a secret in its
/// data directory (a server that ran alone before) proposes it, so the tokens it issued stay
/// valid; otherwise it proposes a fresh one. No node ever signs with a secret of its own.
pub async fn shared(
    configured: Option<&str>,
    data_dir: &Path,
    store: &dyn crate::store::Store,
) -> anyhow::Result<Vec<u8>> {
    if configured.is_some() {
        return load_or_create(configured, data_dir);
    }
    let proposed = if data_dir.join(FILE_NAME).exists() {
        String::from_utf8(load_or_create(None, data_dir)?).context("the data directory's jwt_secret is not text")?
    } else {
        hex::encode(super::random_bytes::<32>())
    };
    let kept = store
        .shared_setting("jwt_secret", &proposed, crate::app::now_ms())
        .await
        .context("cannot read or keep the token secret in the database")?;
    if kept.len() < MIN_SECRET_BYTES {
        bail!("the database's cluster_settings.jwt_secret is shorter than {MIN_SECRET_BYTES} bytes; delete that row");
    }
    if kept != proposed {
        tracing::info!("signing tokens with the secret another node kept in the database");
    }
    Ok(kept.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(None, dir.path()).unwrap(), first);
    }

    #[test]
    fn short_or_exposed_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_or_create(Some("short"), dir.path()).unwrap_err().to_string().contains("at least 32"));
        load_or_create(None, dir.path()).unwrap();
        std::fs::set_permissions(dir.path().join(FILE_NAME), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create(None, dir.path()).unwrap_err().to_string().contains("chmod 600"));
    }
}
