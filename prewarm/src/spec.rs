//! What the pool needs to know about a function version, and the pool-wide configuration.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::limits::{LimitsHost, WorkerLimits};
use crate::runtime::{EntryMode, Runtime};
use crate::sandbox::{NetworkPolicy, SandboxConfig};
use crate::shape::Shape;

/// One deployable unit: a function version with its code directory and limits.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Unique key of this version in the pool, for example `hello@3` or a version id.
    pub key: String,
    /// The function's name, for logs and metrics.
    pub name: String,
    /// The version's name as users see it (`3`), for the function's context.
    pub version: String,
    pub runtime: Runtime,
    pub entry: FunctionEntry,
    /// The function's own directory (its extracted artifact); the worker's working directory.
    pub directory: PathBuf,
    /// The function's configured environment variables; reserved names are refused by `prepare`.
    pub env: BTreeMap<String, String>,
    pub limits: FunctionLimits,
    /// The function's own uid in the sandbox (the gateway allocates and stores it); `None` takes
    /// one from the top of the sandbox's range for the life of the pool.
    pub sandbox_uid: Option<u32>,
    /// What the function's workers can reach; `None` is the server's default.
    pub network: Option<NetworkPolicy>,
    /// The function's own `DATABASE_URL` (its role and schema); `None`: the server's shared
    /// function database, if any.
    pub database_url: Option<String>,
    /// The tenant the function belongs to: one account holds at most its share of the server's
    /// slots (`admission`). Empty: the function is an account of its own.
    pub account: String,
    /// The account's weight: its share of the slots, and its turn for a freed one, scale with it.
    pub account_weight: f64,
}

/// Which file of the function runs, which function of it is called, and how it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionEntry {
    /// Relative to the function's directory, `/`-separated, never climbing out of it.
    pub file: String,
    /// The exported function a warm worker calls (`handler` unless the deploy named another).
    pub function: String,
    pub mode: EntryMode,
    /// Node and Python: when `mode` is `Handler`, `prepare` loads the entry to settle it. A module
    /// that loads without a callable `function` (or runs to its end) is served in `Main` mode.
    pub settle_by_loading: bool,
    /// Why the version runs in `mode`, in words users read (deploy answer, oneshot errors).
    pub reason: String,
    /// The calling convention the handler was written for; `None`: the adapter detects it when
    /// it loads the entry, and `prepare` reports what it found (see `shape`).
    pub shape: Option<Shape>,
}

impl FunctionEntry {
    /// The runtime's default entry file and `handler`, in `mode`, taken as given.
    pub fn default_for(runtime: Runtime, mode: EntryMode) -> Self {
        Self {
            file: runtime.entry_file().to_string(),
            function: DEFAULT_FUNCTION.to_string(),
            mode,
            settle_by_loading: false,
            reason: String::new(),
            shape: Some(Shape::Body),
        }
    }

    /// True when `function` is a name every runtime accepts (it is written into Dart source).
    pub fn function_is_identifier(&self) -> bool {
        let mut chars = self.function.chars();
        chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
            && self.function.len() <= 128
    }

    /// True when `file` is a plain relative path inside the function's directory.
    pub fn file_is_contained(&self) -> bool {
        let path = std::path::Path::new(&self.file);
        !self.file.is_empty() && path.components().all(|component| matches!(component, std::path::Component::Normal(_)))
    }
}

/// The function a warm worker calls when the deploy named none.
pub const DEFAULT_FUNCTION: &str = "handler";

/// Limits of one function version. Defaults come from [`PrewarmConfig::default_limits`].
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionLimits {
    /// Execution deadline of one invocation, from the moment its request reaches a ready worker.
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// Processes and threads the worker may have at once (cgroup `pids.max`).
    pub max_pids: u64,
    pub max_open_files: u64,
    /// Invocations of this function running at once.
    pub max_concurrency: usize,
    /// Invocations of this function waiting for a slot; one more is rejected as "queue full".
    pub max_queue_length: usize,
    /// How long an invocation may wait for a slot before it is rejected as "wait exceeded".
    pub max_queue_wait: Duration,
    /// Workers started by `prepare` and kept while they are used (scale to zero after `idle_ttl`).
    pub min_idle_workers: usize,
    pub max_workers: usize,
    /// An idle worker unused this long is stopped.
    pub idle_ttl: Duration,
    /// A worker is replaced after serving this many invocations.
    pub max_requests_per_worker: u64,
    /// Largest reply frame (or oneshot result line) accepted.
    pub max_result_bytes: usize,
    /// Log bytes kept per invocation; the rest is counted and dropped.
    pub max_log_bytes: usize,
    /// Log lines kept per invocation (empty lines cost a row each too); the rest is counted and
    /// dropped.
    pub max_log_lines: usize,
    /// How long a worker may take to load the function and report ready.
    pub startup_timeout: Duration,
}

impl FunctionLimits {
    /// The part of these limits that confines a worker process.
    pub fn worker_limits(&self) -> WorkerLimits {
        WorkerLimits { memory_bytes: self.memory_bytes, max_pids: self.max_pids, max_open_files: self.max_open_files }
    }
}

impl Default for FunctionLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(5_000),
            memory_bytes: 128 << 20,
            max_pids: 64,
            max_open_files: 1024,
            max_concurrency: 10,
            max_queue_length: 100,
            max_queue_wait: Duration::from_secs(10),
            min_idle_workers: 1,
            max_workers: 10,
            idle_ttl: Duration::from_secs(300),
            max_requests_per_worker: 10_000,
            max_result_bytes: 6 << 20,
            max_log_bytes: 256 << 10,
            max_log_lines: 4_096,
            startup_timeout: Duration::from_secs(30),
        }
    }
}

/// The optional PostgreSQL database functions may use, passed to them as `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDatabase {
    pub url: String,
    pub statement_timeout_ms: u64,
}

/// Pool-wide configuration.
#[derive(Debug, Clone)]
pub struct PrewarmConfig {
    /// Invocations running at once across all functions (`FUNCTION_MAX_CONCURRENT`, default 10).
    pub global_max_concurrency: usize,
    /// The fraction of `global_max_concurrency` one account may hold (at least one slot); the
    /// rest stays free for other accounts.
    pub max_account_share: f64,
    pub default_limits: FunctionLimits,
    /// Where adapters and Dart builds are written.
    pub state_dir: PathBuf,
    /// The `containerpub-worker-exec` binary.
    pub exec_wrapper: PathBuf,
    pub limits_host: LimitsHost,
    /// Where runtimes are looked up (the server's `PATH` by default).
    pub runtime_search_path: Option<OsString>,
    /// `PATH` inside workers.
    pub worker_path: String,
    pub function_database: Option<FunctionDatabase>,
    /// How often idle workers are checked against their time-to-live.
    pub reap_interval: Duration,
    /// How often a busy worker's RSS is sampled when no cgroup enforces memory.
    pub rss_watchdog_interval: Duration,
    /// Exec-wrapper processes kept spawned and confined ahead of cold starts (see `shells`).
    pub spare_shells: usize,
    /// How workers are confined (`[sandbox]`).
    pub sandbox: SandboxConfig,
    /// How long `dart pub get` may take at deploy.
    pub dart_resolve_timeout: Duration,
    /// How long `dart compile exe` may take before the function falls back to `dart run`.
    pub dart_compile_timeout: Duration,
    /// How long installing a Node or Python function's dependencies may take at deploy.
    pub dependency_install_timeout: Duration,
    /// The memory cap of a dependency builder (npm, pip).
    pub dependency_builder_memory_bytes: u64,
    /// Install npm packages that want install scripts or ship compiled addons (their scripts
    /// still never run); refused by default.
    pub allow_install_scripts: bool,
    /// Freeze a worker once it has been idle for `idle_freeze_after` (cgroup freezer), so what its
    /// handler left running uses no CPU while it is idle; on by default, off only to measure what
    /// freezing costs.
    pub freeze_idle_workers: bool,
    /// How long a worker stays idle, and runnable, before it is frozen.
    pub idle_freeze_after: Duration,
}

/// A configuration variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {expected}")]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub expected: &'static str,
}

impl PrewarmConfig {
    pub fn new(state_dir: PathBuf, exec_wrapper: PathBuf) -> Self {
        Self {
            global_max_concurrency: 10,
            max_account_share: 0.8,
            default_limits: FunctionLimits::default(),
            state_dir,
            exec_wrapper,
            limits_host: LimitsHost::default(),
            runtime_search_path: std::env::var_os("PATH"),
            worker_path: "/usr/local/bin:/usr/bin:/bin".into(),
            function_database: None,
            reap_interval: Duration::from_secs(1),
            rss_watchdog_interval: Duration::from_millis(20),
            spare_shells: 2,
            sandbox: SandboxConfig::default(),
            dart_resolve_timeout: Duration::from_secs(120),
            dart_compile_timeout: Duration::from_secs(180),
            dependency_install_timeout: Duration::from_secs(300),
            dependency_builder_memory_bytes: 1 << 30,
            allow_install_scripts: false,
            freeze_idle_workers: true,
            idle_freeze_after: Duration::from_millis(200),
        }
    }

    /// Applies the seed's environment variables: `FUNCTION_TIMEOUT_MS` (or `FUNCTION_TIMEOUT_SECONDS`),
    /// `FUNCTION_MAX_MEMORY_MB`, `FUNCTION_MAX_CONCURRENT`, `CONTAINERPUB_MEMORY_ENFORCEMENT`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let number = |variable: &str, expected: &'static str| -> Result<Option<u64>, ConfigError> {
            match lookup(variable) {
                None => Ok(None),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(parsed) if parsed > 0 => Ok(Some(parsed)),
                    _ => Err(ConfigError { variable: variable.into(), value, expected }),
                },
            }
        };
        if let Some(seconds) = number("FUNCTION_TIMEOUT_SECONDS", "a whole number of seconds above 0")? {
            self.default_limits.timeout = Duration::from_secs(seconds);
        }
        // The millisecond form wins when both are set: it is the more precise one.
        if let Some(ms) = number("FUNCTION_TIMEOUT_MS", "a whole number of milliseconds above 0")? {
            self.default_limits.timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = number("FUNCTION_MAX_MEMORY_MB", "a whole number of megabytes above 0")? {
            self.default_limits.memory_bytes = mb << 20;
        }
        if let Some(count) = number("FUNCTION_MAX_CONCURRENT", "a whole number above 0")? {
            self.global_max_concurrency = count as usize;
            self.default_limits.max_concurrency = self.default_limits.max_concurrency.min(count as usize);
        }
        if let Some(forced) = lookup("CONTAINERPUB_MEMORY_ENFORCEMENT") {
            if !["cgroup-v2", "cgroup-v1", "rlimit"].contains(&forced.as_str()) {
                return Err(ConfigError {
                    variable: "CONTAINERPUB_MEMORY_ENFORCEMENT".into(),
                    value: forced,
                    expected: "one of cgroup-v2, cgroup-v1, rlimit",
                });
            }
            self.limits_host.forced = Some(forced);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(vars: &[(&str, &str)]) -> Result<PrewarmConfig, ConfigError> {
        let mut config = PrewarmConfig::new("/tmp/state".into(), "/bin/true".into());
        config.apply_env(|name| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()))?;
        Ok(config)
    }

    #[test]
    fn defaults_match_the_seed() {
        let config = config_with(&[]).unwrap();
        assert_eq!(config.global_max_concurrency, 10);
        assert_eq!(config.default_limits.timeout, Duration::from_millis(5000));
        assert_eq!(config.default_limits.memory_bytes, 128 << 20);
    }

    #[test]
    fn milliseconds_win_over_seconds_and_memory_is_in_megabytes() {
        let config = config_with(&[
            ("FUNCTION_TIMEOUT_SECONDS", "9"),
            ("FUNCTION_TIMEOUT_MS", "250"),
            ("FUNCTION_MAX_MEMORY_MB", "64"),
            ("FUNCTION_MAX_CONCURRENT", "3"),
        ])
        .unwrap();
        assert_eq!(config.default_limits.timeout, Duration::from_millis(250));
        assert_eq!(config.default_limits.memory_bytes, 64 << 20);
        assert_eq!((config.global_max_concurrency, config.default_limits.max_concurrency), (3, 3));
        assert_eq!(
            config_with(&[("FUNCTION_TIMEOUT_SECONDS", "2")]).unwrap().default_limits.timeout,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn unusable_values_name_the_variable() {
        let error = config_with(&[("FUNCTION_TIMEOUT_MS", "5s")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "FUNCTION_TIMEOUT_MS=\"5s\" is not valid: a whole number of milliseconds above 0"
        );
        assert!(config_with(&[("FUNCTION_MAX_CONCURRENT", "0")]).is_err());
        assert!(config_with(&[("CONTAINERPUB_MEMORY_ENFORCEMENT", "magic")]).is_err());
    }
}
