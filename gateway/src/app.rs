//! The server's shared state, and the table of active function versions the hot path reads
//! without touching the database.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::auth::tokens::TokenKeys;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::store::{FunctionRecord, Store, VersionRecord};

/// Settings a deploy chose for its version (stored as JSON with it, so a rollback restores them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSettings {
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_concurrency: Option<usize>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub public: bool,
    /// The package directory inside the artifact's tree (`""` for its root).
    #[serde(default)]
    pub package_dir: String,
    /// What the function can reach; `None` is the server's `[sandbox] network`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<prewarm::sandbox::NetworkPolicy>,
    /// The function a warm worker calls, when the deploy named one (`--entry FILE:FUNCTION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_function: Option<String>,
    /// Why the version runs in its entry mode (the analyzer's reading, or what loading found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_reason: Option<String>,
    /// Connections the function's database role may hold (per-function mode), when the deploy
    /// set it; `None`: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_connections: Option<u32>,
    /// The calling convention the handler was written for (`--shape`, or what loading detected at
    /// deploy); `None` on versions stored before shapes existed: the platform's own, `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<prewarm::Shape>,
    /// Why loading chose `shape`, when the deploy left it to detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_reason: Option<String>,
    /// Dart: what the deploy's build did (compiled or `dart run` and why, resolution and
    /// compilation times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dart_build: Option<prewarm::runtime::DartBuild>,
    /// Node and Python: what installing the manifest's dependencies did at deploy (npm or pip,
    /// packages, time, from the cache or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<prewarm::dependencies::DependencyInstall>,
}

impl VersionSettings {
    /// The stored settings of a version (`{}` for a row written before a field existed).
    pub fn of(version: &VersionRecord) -> anyhow::Result<Self> {
        Ok(serde_json::from_str(&version.settings)?)
    }
}

/// A stored version's entry, as prewarm runs it (taken as stored: never settled again).
pub fn entry_of(version: &VersionRecord, settings: &VersionSettings) -> prewarm::FunctionEntry {
    prewarm::FunctionEntry {
        file: version.entry_file.clone(),
        function: settings.entry_function.clone().unwrap_or_else(|| prewarm::DEFAULT_FUNCTION.to_string()),
        mode: if version.entry_mode == "main" { prewarm::EntryMode::Main } else { prewarm::EntryMode::Handler },
        settle_by_loading: false,
        reason: settings.entry_reason.clone().unwrap_or_default(),
        shape: Some(settings.shape.unwrap_or(prewarm::Shape::Body)),
    }
}

/// What the hot path needs to know about a function's active version.
#[derive(Debug, Clone)]
pub struct ActiveFunction {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub public: bool,
    pub version: i64,
    /// The prewarm pool key, `ID@VERSION`.
    pub key: String,
    /// The function's revision in the store when this version was routed (see `cluster::sync`).
    pub revision: i64,
    /// Its shape reads the query string and headers as sent (every shape but `body`): only then
    /// does a call copy them into the event.
    pub request_as_sent: bool,
}

#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub prewarm: prewarm::Prewarm,
    pub tokens: TokenKeys,
    /// Administrators and disabled accounts, for every request.
    pub accounts: crate::auth::accounts::AccountState,
    pub login_throttle: crate::auth::throttle::LoginThrottle,
    /// Functions' secrets: sealing, opening, masking.
    pub secrets: Arc<crate::secrets::Secrets>,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub function_database: crate::function_database::FunctionDatabaseStatus,
    /// Per-call and per-function limits on what is kept of a function's output.
    pub log_budget: crate::log_budget::LogBudget,
    /// Active versions by function name (changed only through `set_active`/`remove_active`).
    pub active: DashMap<String, Arc<ActiveFunction>>,
    /// The names of active functions by id, so a call by id (`/fn/fn_…`) is one lookup more.
    pub active_ids: DashMap<String, String>,
    /// Deploys, rollbacks and deletes of one name run one at a time.
    pub name_locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Active versions whose workers could not start (at server start), by pool key: when the
    /// next attempt is. They are routed, and their calls answer 503 `starting` until it works.
    pub starting: DashMap<String, std::time::Instant>,
    /// Set on SIGTERM: new requests are refused while in-flight ones finish.
    pub draining: AtomicBool,
    /// Turns true with `draining`: open streams (`logs?follow=true`) end instead of holding the
    /// drain until its timeout.
    pub drain_signal: tokio::sync::watch::Sender<bool>,
    pub in_flight: AtomicUsize,
}

impl App {
    pub fn artifacts_dir(&self) -> PathBuf {
        self.config.data_dir.join("artifacts")
    }

    pub fn functions_dir(&self) -> PathBuf {
        self.config.functions_dir()
    }

    pub fn name_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.name_locks.entry(name.to_string()).or_default().clone()
    }

    /// The prewarm spec of a stored version, from its (already read) settings.
    pub fn spec_for(
        &self,
        function: &FunctionRecord,
        version: &VersionRecord,
        settings: &VersionSettings,
    ) -> anyhow::Result<prewarm::FunctionSpec> {
        let settings = settings.clone();
        let runtime: prewarm::Runtime = version.runtime.parse().map_err(anyhow::Error::msg)?;
        let entry = entry_of(version, &settings);
        let mut limits = self.prewarm.config().default_limits.clone();
        if let Some(ms) = settings.timeout_ms {
            limits.timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = settings.memory_mb {
            limits.memory_bytes = mb << 20;
        }
        if let Some(count) = settings.max_concurrency {
            limits.max_concurrency = count;
            limits.max_workers = limits.max_workers.min(count).max(1);
        }
        let sandbox = &self.prewarm.config().sandbox;
        let sandbox_uid = match function.sandbox_slot {
            Some(slot) => {
                Some(u32::try_from(slot).ok().and_then(|slot| sandbox.uid_for_slot(slot)).ok_or_else(|| {
                    anyhow::anyhow!(
                        "function slot {slot} is past [sandbox] uid_count = {}: raise uid_count to give it a uid",
                        sandbox.uid_count
                    )
                })?)
            }
            None => None,
        };
        let mut directory = self.functions_dir().join(&version.artifact_sha256);
        if !settings.package_dir.is_empty() {
            directory.push(&settings.package_dir);
        }
        Ok(prewarm::FunctionSpec {
            key: pool_key(&function.id, version.version),
            name: function.name.clone(),
            version: version.version.to_string(),
            runtime,
            entry,
            directory,
            network: settings.network,
            database_url: None,
            env: settings.env,
            limits,
            sandbox_uid,
            account: function.owner_id.clone(),
            account_weight: self.accounts.weight(&function.owner_id),
        })
    }

    /// The network policy a version's workers run under.
    pub fn network_of(&self, settings: &VersionSettings) -> prewarm::sandbox::NetworkPolicy {
        settings.network.unwrap_or(self.prewarm.config().sandbox.default_network)
    }

    /// Makes `version` the one the hot path calls.
    pub fn set_active(
        &self,
        function: &FunctionRecord,
        version: i64,
        public: bool,
        revision: i64,
    ) -> Option<Arc<ActiveFunction>> {
        let active = Arc::new(ActiveFunction {
            id: function.id.clone(),
            name: function.name.clone(),
            owner_id: function.owner_id.clone(),
            public,
            version,
            key: pool_key(&function.id, version),
            revision,
            request_as_sent: self.prewarm.wants_request_as_sent(&pool_key(&function.id, version)),
        });
        self.active_ids.insert(function.id.clone(), function.name.clone());
        let previous = self.active.insert(function.name.clone(), active);
        // The name deleted and deployed again (on another node): its old id is gone.
        if let Some(previous) = previous.as_ref().filter(|previous| previous.id != function.id) {
            self.active_ids.remove(&previous.id);
        }
        previous
    }

    /// Stops routing to the function `name`; its active version, when it had one.
    pub fn remove_active(&self, name: &str) -> Option<Arc<ActiveFunction>> {
        let (_, active) = self.active.remove(name)?;
        self.active_ids.remove(&active.id);
        Some(active)
    }

    pub fn active_by_name_or_id(&self, name_or_id: &str) -> Option<Arc<ActiveFunction>> {
        if let Some(found) = self.active.get(name_or_id) {
            return Some(found.clone());
        }
        let name = self.active_ids.get(name_or_id)?.clone();
        self.active.get(&name).map(|found| found.clone())
    }
}

pub fn pool_key(function_id: &str, version: i64) -> String {
    format!("{function_id}@{version}")
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as i64).unwrap_or(0)
}

/// `^[a-z][a-z0-9-]{0,62}$`: safe in URLs, paths and DNS labels.
pub fn valid_function_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn function_names() {
        for good in ["a", "hello-world", "f1", &format!("a{}", "b".repeat(62))] {
            assert!(super::valid_function_name(good), "{good}");
        }
        for bad in ["", "1a", "-a", "A", "a_b", "a.b", "a/b", &format!("a{}", "b".repeat(63)), "fn_x"] {
            assert!(!super::valid_function_name(bad), "{bad}");
        }
    }
}
