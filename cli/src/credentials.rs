//! The login kept between runs: `~/.config/dart_cloud/credentials.json` (or under
//! `$XDG_CONFIG_HOME`), mode 0600, one entry per server URL.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub token: String,
    pub email: Option<String>,
    pub expires_at: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Credentials {
    servers: BTreeMap<String, Login>,
}

pub fn path() -> anyhow::Result<PathBuf> {
    let base = dirs::config_dir().context("cannot find your config directory (set HOME or XDG_CONFIG_HOME)")?;
    Ok(base.join("dart_cloud").join("credentials.json"))
}

fn read() -> anyhow::Result<Credentials> {
    let path = path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged: delete it and log in again", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::default()),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write(credentials: &Credentials) -> anyhow::Result<()> {
    let path = path()?;
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let temporary = dir.join(".credentials.json.partial");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    file.write_all(serde_json::to_string_pretty(credentials)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn load(server: &str) -> anyhow::Result<Option<Login>> {
    Ok(read()?.servers.remove(server))
}

pub fn save(server: &str, login: Login) -> anyhow::Result<PathBuf> {
    let mut credentials = read()?;
    credentials.servers.insert(server.to_string(), login);
    write(&credentials)?;
    path()
}

/// Forgets the login for `server`; true when there was one.
pub fn forget(server: &str) -> anyhow::Result<bool> {
    let mut credentials = read()?;
    let removed = credentials.servers.remove(server).is_some();
    if removed {
        write(&credentials)?;
    }
    Ok(removed)
}
