//! `prewarm`: runs function code in worker processes kept warm per function version.
//!
//! The gateway calls [`Prewarm`] in-process: [`Prewarm::prepare`] a version (its warm workers start
//! before it is used), [`Prewarm::invoke`] it, [`Prewarm::retire`] it. Everything between is here:
//! admission (global and per-function caps, bounded queues, fairness), worker pools, spawning without
//! fork, limits (cgroup v2, v1, or rlimits and an RSS watchdog), deadlines, the worker protocol and
//! the runtime adapters. `ARCHITECTURE.md` has the map; `PROTOCOL.md` the wire format.

pub mod admission;
pub mod cluster_share;
pub mod dependencies;
pub mod envelope;
pub mod exec_wrapper;
mod failure_cause;
pub mod limits;
pub mod logs;
mod oneshot;
pub mod outcome;
mod output;
mod pool;
pub mod protocol;
pub mod runtime;
pub mod sandbox;
mod script_mode;
pub mod shape;
pub mod shells;
pub mod spawn;
mod spec;
mod stack_paths;
mod tree;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

pub use admission::{Admission, AdmissionLimits, Rejection};
pub use envelope::{EnvelopeError, HttpReply};
pub use limits::{Enforcement, LimitsHost};
pub use logs::{LogLine, LogStream};
pub use outcome::{Invocation, InvocationError, Outcome};
pub use pool::{KillReason, PoolSizes};
pub use protocol::InvocationEvent;
pub use runtime::{EntryMode, Runtime, RuntimeInstall, RuntimeUnavailable};
pub use sandbox::{SandboxConfig, SandboxMode, SandboxStatus};
pub use script_mode::script_advice;
pub use shape::Shape;
pub use spec::{
    ConfigError, FunctionDatabase, FunctionEntry, FunctionLimits, FunctionSpec, PrewarmConfig, DEFAULT_FUNCTION,
};

use logs::LogCollector;
use pool::FunctionPool;
use sandbox::SandboxLaunch;
use worker::{WorkerHost, WorkerLaunch};

/// One invocation to run.
#[derive(Debug, Clone)]
pub struct InvocationRequest {
    /// Unique id, chosen by the caller (the gateway returns it as `x-invocation-id`).
    pub id: String,
    pub event: InvocationEvent,
}

/// A line a worker printed outside any invocation (while loading, or while idle).
#[derive(Debug, Clone)]
pub struct StrayLogLine {
    pub function_key: String,
    pub line: LogLine,
}

/// Errors that stop the pool from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the state directory {path}: {source}")]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error("the exec wrapper {0} does not exist or is not executable (build the containerpub-worker-exec binary)")]
    MissingWrapper(PathBuf),
    #[error("cannot start the spawner thread: {0}")]
    Spawner(std::io::Error),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error(transparent)]
    Runtimes(#[from] runtime::DiscoveryError),
}

/// Why a function version could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("environment variable {0} is reserved by the platform and cannot be set by a function")]
    ReservedEnv(String),
    #[error("environment variable name {0:?} is not valid (letters, digits and _, not starting with a digit)")]
    InvalidEnvName(String),
    #[error("the function directory {0} has no entry file {1:?}")]
    MissingEntry(PathBuf, String),
    #[error("{0:?} cannot name the function to call: letters, digits and _, not starting with a digit")]
    InvalidFunctionName(String),
    /// `dart pub get` failed; the text is pub's.
    #[error("{0}")]
    DependenciesUnresolved(String),
    /// A resolved dependency would run code on the server at build time.
    #[error("{0}")]
    DependenciesRefused(String),
    /// A Dart function the compiler refused; the text is the compiler's.
    #[error("{0}")]
    CompileFailed(String),
    #[error("the function's workers failed to start: {0}")]
    WorkersFailed(String),
    #[error("the function cannot be confined: {0}")]
    Sandbox(String),
}

/// What [`Prewarm::launch_for`] settled: how workers start, and what was built for them.
struct Launched {
    /// The inner error is a missing runtime, which leaves the version answering
    /// `runtime_unavailable`.
    launch: Result<WorkerLaunch, String>,
    dart_build: Option<runtime::DartBuild>,
    dependencies: Option<dependencies::InstalledDependencies>,
}

/// What `prepare` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareReport {
    pub warm_workers: usize,
    /// Set when the runtime is missing: the version is registered and every invocation is
    /// answered with this message, without spawning anything.
    pub runtime_unavailable: Option<String>,
    /// For Dart: what the build did (resolution, compilation, their times, reuse).
    pub dart_build: Option<runtime::DartBuild>,
    /// For Node and Python: what installing the declared dependencies did, when there were some.
    pub dependencies: Option<dependencies::DependencyInstall>,
    /// Where those packages are on this host, for the analyzer's dependency policy.
    pub installed_packages: Option<PathBuf>,
    /// The mode the version runs in: the spec's, or what loading it settled.
    pub entry_mode: EntryMode,
    /// Why, in words for the deploy's answer.
    pub entry_reason: String,
    /// The calling convention the handler is served in: the spec's, or what loading detected
    /// (`None` when nothing loaded: a script, a Dart function, a missing runtime).
    pub shape: Option<Shape>,
    /// Why loading chose that shape, when it detected it.
    pub shape_reason: Option<String>,
    pub took: Duration,
}

/// The invocation named a version that was never prepared, or was retired (before the call or
/// while it waited for a slot or a worker). It carries the request back, unrun, so the caller
/// can send it to the version that replaced this one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no prepared function version {key:?}")]
pub struct UnknownFunction {
    pub key: String,
    pub request: Box<InvocationRequest>,
}

/// Pool statistics of one function version, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub key: String,
    pub name: String,
    pub sizes: PoolSizes,
    pub in_flight: usize,
    pub queued: usize,
    pub spawns: u64,
    pub cold_starts: u64,
    pub kills: HashMap<&'static str, u64>,
    pub outcomes: HashMap<&'static str, u64>,
}

/// Names a function's own environment may not use.
const RESERVED_ENV_PREFIXES: [&str; 5] = ["FUNCTION_", "HTTP_", "CONTAINERPUB_", "LD_", "DART_CLOUD_"];
const RESERVED_ENV_NAMES: [&str; 7] =
    ["PATH", "HOME", "LANG", "DATABASE_URL", "DB_TIMEOUT_MS", "PYTHONPATH", "PYTHONUNBUFFERED"];

pub(crate) struct Shared {
    config: PrewarmConfig,
    host: WorkerHost,
    runtimes: RuntimeInstall,
    admission: Arc<Admission>,
    /// This server's place among the nodes sharing its store (see `cluster_share`).
    membership: cluster_share::Membership,
    pools: Mutex<HashMap<String, Arc<FunctionPool>>>,
    next_worker_id: AtomicU64,
    stray_logs: mpsc::Sender<StrayLogLine>,
    stray_logs_dropped: AtomicU64,
    passed_over: Vec<String>,
    sandbox: Option<Arc<sandbox::Sandbox>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("enforcement", &self.host.enforcement).finish_non_exhaustive()
    }
}

/// The last handle is gone (a server exiting without `shutdown`, a test ending): kill what is
/// left and remove our cgroups now, synchronously. The spawner thread ending would kill the
/// processes anyway (parent-death signal), but not remove the groups.
impl Drop for Shared {
    fn drop(&mut self) {
        let pools: Vec<Arc<FunctionPool>> =
            self.pools.get_mut().map(|pools| pools.drain().map(|(_, pool)| pool).collect()).unwrap_or_default();
        for pool in pools {
            pool.kill_idle_now();
        }
        self.host.shells.kill_ready_now();
        self.host.shells.groups().remove_all();
        limits::remove_parent_groups(&self.host.enforcement);
        let unreaped = spawn::reap_orphans(ORPHAN_REAP_WAIT);
        if unreaped > 0 {
            tracing::error!(unreaped, "worker processes did not exit after SIGKILL");
        }
    }
}

/// How long shutdown waits for killed workers to exit so it can reap them: a SIGKILLed process
/// is gone in milliseconds unless the kernel holds it in an uninterruptible wait.
const ORPHAN_REAP_WAIT: Duration = Duration::from_secs(2);

impl Shared {
    fn send_stray_output(&self, function_key: &Arc<str>, logs: LogCollector) {
        for line in pool::stray_lines(function_key, logs) {
            if self.stray_logs.try_send(line).is_err() {
                self.stray_logs_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn pool(&self, key: &str) -> Option<Arc<FunctionPool>> {
        self.pools.lock().expect("pools lock poisoned").get(key).cloned()
    }
}

/// The warm-worker pools of one server.
#[derive(Debug, Clone)]
pub struct Prewarm {
    shared: Arc<Shared>,
}

impl Prewarm {
    /// Detects the limit mechanism, writes the runtime adapters, starts the spawner thread and the
    /// idle reaper. Must run inside a Tokio runtime. Output printed outside invocations arrives on
    /// the returned channel (bounded: lines are dropped and counted when nobody reads it).
    pub fn start(config: PrewarmConfig) -> Result<(Prewarm, mpsc::Receiver<StrayLogLine>), StartError> {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|source| StartError::StateDir { path: config.state_dir.clone(), source })?;
        if !runtime::is_executable_file(&config.exec_wrapper) {
            return Err(StartError::MissingWrapper(config.exec_wrapper.clone()));
        }
        let stale = limits::remove_stale_groups(&config.limits_host);
        if stale > 0 {
            tracing::info!(stale, "removed the cgroups of servers that are gone");
        }
        let detected = limits::detect_enforcement(&config.limits_host);
        tracing::info!(
            enforcement = detected.enforcement.name(),
            passed_over = ?detected.passed_over,
            "memory and pids limits enforced with {}",
            detected.enforcement.name()
        );
        let adapter_dir = config.state_dir.join("adapters");
        let runtimes = RuntimeInstall::discover(config.runtime_search_path.as_deref(), &adapter_dir)?;
        let (sandbox, spawner_setup) = match config.sandbox.mode {
            sandbox::SandboxMode::On => {
                static INSTANCES: AtomicU64 = AtomicU64::new(0);
                let database = config.function_database.as_ref().map(|database| database.url.as_str());
                let (sandbox, setup) = sandbox::Sandbox::start(
                    config.sandbox.clone(),
                    &config.state_dir,
                    &runtimes,
                    database,
                    INSTANCES.fetch_add(1, Ordering::Relaxed),
                )?;
                let status = sandbox.status();
                tracing::info!(layers = ?status.layers, default_network = status.default_network, runtimes = ?status.runtimes, "workers are sandboxed");
                (Some(Arc::new(sandbox)), Some(setup))
            }
            sandbox::SandboxMode::Off => {
                tracing::warn!("[sandbox] mode = \"off\": functions run unconfined, with the server's uid, file system and network; only run code you trust");
                (None, None)
            }
        };
        let spawner = spawn::Spawner::start(spawner_setup).map_err(StartError::Spawner)?;
        let groups = limits::SpareGroups::with_freezing(
            detected.enforcement.clone(),
            config.global_max_concurrency * 2,
            config.freeze_idle_workers,
        );
        match (config.freeze_idle_workers, detected.enforcement.has_freezer()) {
            (true, true) => tracing::info!("idle workers are frozen between calls (cgroup freezer)"),
            (true, false) => tracing::warn!("this host has no cgroup freezer: threads a handler leaves running keep using CPU while its worker is idle"),
            (false, _) => tracing::info!("idle workers are not frozen between calls (freeze_idle_workers is off)"),
        }
        let shells = shells::ShellPool::new(
            spawner,
            groups,
            config.exec_wrapper.clone(),
            config.spare_shells,
            sandbox.is_some(),
        );
        let (stray_logs, stray_receiver) = mpsc::channel(4096);
        let shared = Arc::new(Shared {
            host: WorkerHost {
                shells: shells.clone(),
                enforcement: detected.enforcement,
                proc_root: config.limits_host.proc_root.clone(),
                rss_watchdog_interval: config.rss_watchdog_interval,
            },
            runtimes,
            admission: Admission::new(config.global_max_concurrency, config.max_account_share),
            membership: cluster_share::Membership::default(),
            pools: Mutex::new(HashMap::new()),
            next_worker_id: AtomicU64::new(1),
            stray_logs,
            stray_logs_dropped: AtomicU64::new(0),
            passed_over: detected.passed_over,
            sandbox,
            config,
        });
        shells.refill();
        tokio::spawn(reap_idle_workers(Arc::downgrade(&shared)));
        Ok((Prewarm { shared }, stray_receiver))
    }

    /// The limit mechanism in force, and why better ones were passed over.
    pub fn enforcement(&self) -> (&Enforcement, &[String]) {
        (&self.shared.host.enforcement, &self.shared.passed_over)
    }

    /// What confines workers, for `/healthz`.
    pub fn sandbox_status(&self) -> sandbox::SandboxStatus {
        self.shared.sandbox.as_ref().map_or_else(sandbox::SandboxStatus::off, |sandbox| sandbox.status())
    }

    /// Which runtimes were found, for `/healthz`.
    pub fn runtimes(&self) -> Vec<(Runtime, Option<PathBuf>)> {
        self.shared.runtimes.available()
    }

    pub fn config(&self) -> &PrewarmConfig {
        &self.shared.config
    }

    /// Registers a function version and starts its minimum idle workers; returns once they are
    /// ready, so the version's first invocation is warm. Preparing a key again replaces it.
    /// An entry to settle by loading (see [`FunctionEntry::settle_by_loading`]) is loaded first,
    /// and the report says which mode it landed in and why.
    pub async fn prepare(&self, mut spec: FunctionSpec) -> Result<PrepareReport, PrepareError> {
        let began = Instant::now();
        validate_env(&spec.env)?;
        if !spec.entry.file_is_contained() || !spec.directory.join(&spec.entry.file).is_file() {
            return Err(PrepareError::MissingEntry(spec.directory.clone(), spec.entry.file.clone()));
        }
        if !spec.entry.function_is_identifier() {
            return Err(PrepareError::InvalidFunctionName(spec.entry.function.clone()));
        }
        // Blocking: a new function's network namespace is made with a few `ip` runs.
        let (prewarm, for_sandbox) = (self.clone(), spec.clone());
        let sandbox_steps = tokio::task::spawn_blocking(move || prewarm.sandbox_steps(&for_sandbox))
            .await
            .map_err(|error| PrepareError::Sandbox(format!("preparing the sandbox failed: {error}")))??;
        let Launched { mut launch, dart_build, dependencies } = self.launch_for(&spec, sandbox_steps).await?;
        let runtime_unavailable = launch.as_ref().err().cloned();
        let mut warm = Vec::new();
        let mut shape_reason = None;
        let settle =
            spec.entry.settle_by_loading && spec.entry.mode == EntryMode::Handler && spec.runtime != Runtime::Dart;
        if settle && runtime_unavailable.is_none() {
            let probe = FunctionPool::new(spec.clone(), launch.clone());
            match probe.try_start_worker(&self.shared).await {
                Ok(worker) => {
                    let found = worker.ready.handler.clone().unwrap_or_else(|| format!("`{}`", spec.entry.function));
                    spec.entry.reason = format!("loading {} found {found}: served warm", spec.entry.file);
                    // Later workers are told the shape instead of detecting it again.
                    if let Some(shape) = worker.ready.shape {
                        spec.entry.shape = Some(shape);
                    }
                    shape_reason = worker.ready.shape_reason.clone();
                    warm.push(worker);
                }
                Err(failure) => match script_mode::script_reason(&spec.entry, &failure) {
                    Some(reason) => {
                        spec.entry.mode = EntryMode::Main;
                        spec.entry.reason = reason;
                        launch = launch.map(|handler_launch| self.as_script(&spec, handler_launch));
                    }
                    None => return Err(PrepareError::WorkersFailed(probe.record_start_failure(failure))),
                },
            }
        }
        let pool = FunctionPool::new(spec.clone(), launch);
        // The worker that settled the mode was spawned for this pool.
        pool.counters.spawns.fetch_add(warm.len() as u64, Ordering::Relaxed);
        let warm_target = match spec.entry.mode {
            EntryMode::Handler if runtime_unavailable.is_none() => {
                spec.limits.min_idle_workers.min(spec.limits.max_workers)
            }
            _ => 0,
        };
        let starts = (warm.len()..warm_target).map(|_| pool.start_worker(&self.shared));
        let mut failure = None;
        for started in futures_util::future::join_all(starts).await {
            match started {
                Ok(worker) => warm.push(worker),
                Err(message) => failure = Some(message),
            }
        }
        if let Some(message) = failure {
            for worker in warm {
                pool.dispose(worker, KillReason::StartFailed);
            }
            return Err(PrepareError::WorkersFailed(message));
        }
        let warm_workers = warm.len();
        for worker in warm {
            pool.add_idle(worker);
        }
        let previous = self.shared.pools.lock().expect("pools lock poisoned").insert(spec.key.clone(), pool);
        if let Some(previous) = previous {
            previous.retire();
        }
        tracing::info!(function = %spec.name, key = %spec.key, warm_workers, mode = spec.entry.mode.as_str(), took_ms = began.elapsed().as_millis() as u64, "function version prepared");
        Ok(PrepareReport {
            warm_workers,
            runtime_unavailable,
            dart_build,
            installed_packages: dependencies.as_ref().map(dependencies::InstalledDependencies::judged_dir),
            dependencies: dependencies.map(|installed| installed.install),
            entry_mode: spec.entry.mode,
            shape: (spec.entry.mode == EntryMode::Handler && spec.runtime != Runtime::Dart)
                .then_some(spec.entry.shape)
                .flatten(),
            shape_reason,
            entry_reason: spec.entry.reason,
            took: began.elapsed(),
        })
    }

    /// The launch of a version whose entry turned out to be a script: the same confinement and
    /// environment, the entry run as a program instead of through the adapter.
    fn as_script(&self, spec: &FunctionSpec, mut launch: WorkerLaunch) -> WorkerLaunch {
        let adapters = self.worker_adapter_dir(launch.sandbox.is_some());
        let entry = launch.directory.join(&spec.entry.file);
        if let Ok((program, args)) =
            self.shared.runtimes.command(spec.runtime, EntryMode::Main, &entry, &spec.entry.function, None, &adapters)
        {
            (launch.program, launch.args) = (program, args);
        }
        launch
    }

    /// Where workers find the adapters: fixed inside the sandbox, the state directory outside.
    fn worker_adapter_dir(&self, sandboxed: bool) -> PathBuf {
        match sandboxed {
            true => PathBuf::from(sandbox::rootfs::ADAPTER_DIR),
            false => self.shared.runtimes.adapter_dir().to_path_buf(),
        }
    }

    /// How the sandbox confines this version's workers, or `None` with the sandbox off. Makes the
    /// function's tree readable to its uid (it stays the server's, read-only to workers).
    fn sandbox_steps(&self, spec: &FunctionSpec) -> Result<Option<SandboxLaunch>, PrepareError> {
        let Some(sandbox) = &self.shared.sandbox else { return Ok(None) };
        let refuse = |message: String| PrepareError::Sandbox(message);
        if sandbox.template(spec.runtime).is_none() {
            // The runtime is missing on this host: prepare reports it as unavailable.
            return Ok(None);
        }
        let uid = match spec.sandbox_uid {
            Some(uid) => uid,
            None => {
                sandbox.unallocated_uid().ok_or_else(|| refuse("no free uid left in the sandbox's range".into()))?
            }
        };
        let network = spec.network.unwrap_or(sandbox.config.default_network);
        let database_url = self.database_url(spec);
        let launch = sandbox
            .launch(spec.runtime, &spec.directory, uid, network, spec.limits.memory_bytes, database_url.as_deref())
            .map_err(refuse)?;
        sandbox::rootfs::make_world_readable(&spec.directory).map_err(refuse)?;
        Ok(Some(launch))
    }

    /// How this version's workers start. The outer error fails `prepare` (a Dart function whose
    /// dependencies cannot be resolved); the inner one is a missing runtime, which leaves the
    /// version registered and answering `runtime_unavailable`.
    async fn launch_for(&self, spec: &FunctionSpec, sandbox: Option<SandboxLaunch>) -> Result<Launched, PrepareError> {
        let (mut sandbox, network) = match sandbox {
            Some(launch) => (Some(launch.steps), Some(launch.network)),
            None => (None, None),
        };
        let runtimes = &self.shared.runtimes;
        // Inside the sandbox the worker sees its files at fixed paths, not the host's.
        let directory = match &sandbox {
            Some(_) => PathBuf::from(sandbox::rootfs::FUNCTION_DIR),
            None => spec.directory.clone(),
        };
        let adapters = self.worker_adapter_dir(sandbox.is_some());
        let (mut dart_build, mut dart_builds_dir) = (None, None);
        let command = match spec.runtime {
            Runtime::Dart => {
                let settings = self.dart_build_settings();
                dart_builds_dir = Some(settings.builds_dir.clone());
                match runtime::prepare_dart(runtimes, &settings, &spec.directory, &spec.entry).await {
                    Err(runtime::DartPrepareError::Unavailable(unavailable)) => Err(unavailable),
                    Err(runtime::DartPrepareError::DependenciesUnresolved(message)) => {
                        return Err(PrepareError::DependenciesUnresolved(message))
                    }
                    Err(runtime::DartPrepareError::DependenciesRefused(message)) => {
                        return Err(PrepareError::DependenciesRefused(message))
                    }
                    Err(runtime::DartPrepareError::CompileFailed(message)) => {
                        return Err(PrepareError::CompileFailed(message))
                    }
                    Err(runtime::DartPrepareError::Build(message)) => return Err(PrepareError::WorkersFailed(message)),
                    Ok(prepared) => {
                        let program = match &mut sandbox {
                            None => prepared.program(),
                            // The build read-only at a fixed place.
                            Some(steps) => {
                                steps
                                    .binds
                                    .push((prepared.build_dir.clone(), PathBuf::from(sandbox::rootfs::BUILD_DIR)));
                                PathBuf::from(sandbox::rootfs::BUILD_DIR).join("worker")
                            }
                        };
                        dart_build = Some(prepared.build);
                        Ok((program, Vec::new()))
                    }
                }
            }
            runtime => runtimes.command(
                runtime,
                spec.entry.mode,
                &directory.join(&spec.entry.file),
                &spec.entry.function,
                spec.entry.shape,
                &adapters,
            ),
        };
        let installed = match command.is_ok() {
            true => self.install_dependencies(spec, sandbox.as_ref().map(|steps| steps.uid)).await?,
            false => None,
        };
        let mut env = self.worker_env(spec, &directory);
        if let Some(installed) = &installed {
            let packages = installed.packages_dir();
            // Read-only at a fixed place inside the sandbox; where they are outside it.
            let seen_at = match &mut sandbox {
                Some(steps) => {
                    let inside = match spec.runtime {
                        Runtime::Python => sandbox::rootfs::PYTHON_DEPS_DIR,
                        _ => sandbox::rootfs::NODE_MODULES_DIR,
                    };
                    steps.binds.push((packages, PathBuf::from(inside)));
                    PathBuf::from(inside)
                }
                None => packages,
            };
            let variable = if spec.runtime == Runtime::Python { "PYTHONPATH" } else { "NODE_PATH" };
            // Outside the sandbox Node finds them only through NODE_PATH (`require`; not `import`).
            if spec.runtime == Runtime::Python || sandbox.is_none() {
                env.retain(|(name, _)| name != variable);
                env.push((variable.to_string(), seen_at.display().to_string()));
            }
        }
        let launch = command.map_err(|unavailable| unavailable.to_string()).map(|(program, args)| WorkerLaunch {
            program,
            args,
            env,
            directory,
            sandbox,
            _network: network,
            dart_builds_dir,
        });
        Ok(Launched { launch, dart_build, dependencies: installed })
    }

    /// Installs what the function's manifest declares (see `dependencies`), as its uid in a
    /// confined builder when the sandbox is on.
    async fn install_dependencies(
        &self,
        spec: &FunctionSpec,
        uid: Option<u32>,
    ) -> Result<Option<dependencies::InstalledDependencies>, PrepareError> {
        let Ok(executable) = self.shared.runtimes.executable(spec.runtime) else { return Ok(None) };
        let builder = match (&self.shared.sandbox, uid) {
            (Some(sandbox), Some(uid)) => {
                dependencies::builder::Builder::Confined { host: &self.shared.host, sandbox, uid }
            }
            _ => dependencies::builder::Builder::Unconfined,
        };
        let settings = self.dependency_settings();
        match dependencies::install(&builder, spec.runtime, executable, &spec.directory, &settings).await {
            Ok(installed) => Ok(installed),
            Err(dependencies::DependencyError::Unresolved(message)) => {
                Err(PrepareError::DependenciesUnresolved(message))
            }
            Err(dependencies::DependencyError::Refused(message)) => Err(PrepareError::DependenciesRefused(message)),
            Err(error @ dependencies::DependencyError::Build(_)) => Err(PrepareError::WorkersFailed(error.to_string())),
        }
    }

    fn dependency_settings(&self) -> dependencies::DependencySettings {
        let config = &self.shared.config;
        dependencies::DependencySettings {
            installs_dir: config.state_dir.join("deps"),
            cache_dir: config.state_dir.join("deps-cache"),
            wheelhouses_dir: config.state_dir.join("deps-wheelhouses"),
            path: config.worker_path.clone(),
            timeout: config.dependency_install_timeout,
            memory_bytes: config.dependency_builder_memory_bytes,
            allow_install_scripts: config.allow_install_scripts,
            search_path: config.runtime_search_path.clone(),
        }
    }

    fn dart_build_settings(&self) -> runtime::DartBuildSettings {
        let config = &self.shared.config;
        runtime::DartBuildSettings {
            builds_dir: config.state_dir.join("builds"),
            pub_cache: config.state_dir.join("pub-cache"),
            path: config.worker_path.clone(),
            resolve_timeout: config.dart_resolve_timeout,
            compile_timeout: config.dart_compile_timeout,
        }
    }

    /// The function's `DATABASE_URL`: its own role's, or the server's shared one, when the server
    /// has a function database.
    fn database_url(&self, spec: &FunctionSpec) -> Option<String> {
        let database = self.shared.config.function_database.as_ref()?;
        Some(spec.database_url.clone().unwrap_or_else(|| database.url.clone()))
    }

    /// The complete environment of a worker: documented variables and the function's own, nothing else.
    fn worker_env(&self, spec: &FunctionSpec, directory: &std::path::Path) -> Vec<(String, String)> {
        let config = &self.shared.config;
        let mut env: BTreeMap<String, String> = spec.env.clone();
        env.insert("PATH".into(), config.worker_path.clone());
        env.insert("HOME".into(), directory.display().to_string());
        env.insert("LANG".into(), "C.UTF-8".into());
        env.insert("FUNCTION_NAME".into(), spec.name.clone());
        env.insert("FUNCTION_VERSION".into(), spec.version.clone());
        env.insert("FUNCTION_TIMEOUT_MS".into(), spec.limits.timeout.as_millis().to_string());
        env.insert("FUNCTION_MAX_MEMORY_MB".into(), (spec.limits.memory_bytes >> 20).to_string());
        env.insert("DART_CLOUD_RESTRICTED".into(), "true".into());
        env.insert("CONTAINERPUB_REQUEST_FD".into(), protocol::REQUEST_FD.to_string());
        env.insert("CONTAINERPUB_RESPONSE_FD".into(), protocol::RESPONSE_FD.to_string());
        if spec.runtime == Runtime::Python {
            // Lines reach the log pipe when printed, so their timestamps say when they happened.
            env.insert("PYTHONUNBUFFERED".into(), "1".into());
        }
        if let (Some(database), Some(url)) = (&config.function_database, self.database_url(spec)) {
            env.insert("DATABASE_URL".into(), url);
            env.insert("DB_TIMEOUT_MS".into(), database.statement_timeout_ms.to_string());
        }
        env.into_iter().collect()
    }

    /// Runs one invocation of a prepared version. Every outcome, rejections included, is an
    /// [`Invocation`]; only an unknown key is an error.
    pub async fn invoke(&self, key: &str, request: InvocationRequest) -> Result<Invocation, UnknownFunction> {
        let Some(pool) = self.shared.pool(key) else {
            return Err(UnknownFunction { key: key.to_string(), request: Box::new(request) });
        };
        let invocation = self.run(&pool, &request).await;
        // Never ran: the caller may send it to the version that replaced this one.
        if invocation.error.as_ref().is_some_and(|error| error.code == outcome::RETIRED_BEFORE_IT_RAN) {
            return Err(UnknownFunction { key: key.to_string(), request: Box::new(request) });
        }
        pool.count_outcome(invocation.outcome);
        Ok(invocation)
    }

    async fn run(&self, pool: &Arc<FunctionPool>, request: &InvocationRequest) -> Invocation {
        let queued_at = Instant::now();
        let launch = match &pool.launch {
            Ok(launch) => launch,
            Err(message) => {
                let error = InvocationError::new("runtime_unavailable", message.clone());
                return Invocation::rejected(
                    request.id.clone(),
                    pool.key.to_string(),
                    Outcome::RuntimeUnavailable,
                    error,
                    0,
                );
            }
        };
        let limits = &pool.spec.limits;
        let share = self.shared.membership.share(limits.max_concurrency, pool.rotation);
        if share == 0 {
            let (position, nodes) = self.shared.membership.get();
            let error = InvocationError::new(
                cluster_share::NO_SHARE,
                format!(
                    "this function's concurrency cap ({}) is shared by {nodes} nodes and node {} of them holds none of it: retry, another node takes the call",
                    limits.max_concurrency,
                    position + 1
                ),
            );
            let mut rejected =
                Invocation::rejected(request.id.clone(), pool.key.to_string(), Outcome::QueueFull, error, 0);
            rejected.retry_after_seconds = Some(1);
            return rejected;
        }
        let admission_limits = AdmissionLimits {
            max_concurrency: share.min(limits.max_workers).max(1),
            max_queue_length: limits.max_queue_length,
            max_queue_wait: limits.max_queue_wait,
        };
        let permit = match self.shared.admission.acquire(&pool.key, &pool.account, admission_limits).await {
            Ok(permit) => permit,
            Err(rejection) => {
                let queue_us = queued_at.elapsed().as_micros() as u64;
                let (outcome, error) = match rejection {
                    Rejection::QueueFull => (
                        Outcome::QueueFull,
                        InvocationError::new(
                            "queue_full",
                            format!("{} invocations are already waiting for this function", limits.max_queue_length),
                        ),
                    ),
                    Rejection::WaitExceeded => (
                        Outcome::WaitExceeded,
                        InvocationError::new(
                            "wait_exceeded",
                            format!("no slot became free within {} ms", limits.max_queue_wait.as_millis()),
                        ),
                    ),
                };
                // A full queue is as long as its limit (no second look under the admission lock
                // on the refusal path); a call that waited too long sees the queue as it is now.
                let queued = match outcome {
                    Outcome::QueueFull => limits.max_queue_length,
                    _ => self.shared.admission.snapshot(&pool.key).queued,
                };
                let mut rejected =
                    Invocation::rejected(request.id.clone(), pool.key.to_string(), outcome, error, queue_us);
                rejected.retry_after_seconds = Some(pool.retry_after_seconds(queued));
                return rejected;
            }
        };
        let admitted_at = Instant::now();
        let invocation = match pool.spec.entry.mode {
            EntryMode::Handler => pool.invoke_warm(&self.shared, request, queued_at, admitted_at).await,
            EntryMode::Main => {
                let run = oneshot::OneshotRun { host: &self.shared.host, launch, limits, spec: &pool.spec };
                pool.counters.spawns.fetch_add(1, Ordering::Relaxed);
                pool.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
                let queue_us = admitted_at.duration_since(queued_at).as_micros() as u64;
                run.run(&request.id, &pool.key, &request.event, queue_us).await
            }
        };
        drop(permit);
        invocation
    }

    /// This server is at `position` (0-based, ordered by node id) of `nodes` live nodes sharing
    /// its store: each function's concurrency cap is split among them (`cluster_share`).
    pub fn set_membership(&self, position: usize, nodes: usize) {
        self.shared.membership.set(position, nodes);
    }

    /// `(position, nodes)`, as last set.
    pub fn membership(&self) -> (usize, usize) {
        self.shared.membership.get()
    }

    /// Whether the version `key` is prepared (and not retired).
    pub fn is_prepared(&self, key: &str) -> bool {
        self.shared.pool(key).is_some()
    }

    /// Whether the workers of the prepared version `key` read the request as sent (its query string
    /// and headers with their case and repeats): every shape but `body` does. Asked once when a
    /// version is routed, so the hot path builds that copy only for them. A version not prepared
    /// (yet: its start is being retried) gets it, in case it reads it.
    pub fn wants_request_as_sent(&self, key: &str) -> bool {
        self.shared.pool(key).is_none_or(|pool| pool.spec.entry.shape.is_none_or(Shape::wants_header_list))
    }

    /// Removes a version: new invocations get [`UnknownFunction`], idle workers stop now, busy ones
    /// when their invocation ends.
    pub fn retire(&self, key: &str) -> bool {
        let removed = self.shared.pools.lock().expect("pools lock poisoned").remove(key);
        removed.map(|pool| pool.retire()).is_some()
    }

    /// Statistics of every prepared version.
    pub fn stats(&self) -> Vec<PoolStats> {
        let pools: Vec<Arc<FunctionPool>> =
            self.shared.pools.lock().expect("pools lock poisoned").values().cloned().collect();
        pools
            .iter()
            .map(|pool| {
                let admission = self.shared.admission.snapshot(&pool.key);
                PoolStats {
                    key: pool.key.to_string(),
                    name: pool.spec.name.clone(),
                    sizes: pool.sizes(),
                    in_flight: admission.in_flight,
                    queued: admission.queued,
                    spawns: pool.counters.spawns.load(Ordering::Relaxed),
                    cold_starts: pool.counters.cold_starts.load(Ordering::Relaxed),
                    kills: pool.kill_counts(),
                    outcomes: Outcome::ALL
                        .iter()
                        .map(|outcome| {
                            (outcome.as_str(), pool.counters.outcomes[*outcome as usize].load(Ordering::Relaxed))
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Lines printed outside invocations that were dropped because the channel was full.
    pub fn stray_logs_dropped(&self) -> u64 {
        self.shared.stray_logs_dropped.load(Ordering::Relaxed)
    }

    /// Retires every version, waits up to `grace` for running invocations, then kills what is left
    /// and removes the parent cgroups.
    pub async fn shutdown(&self, grace: Duration) {
        let pools: Vec<Arc<FunctionPool>> =
            self.shared.pools.lock().expect("pools lock poisoned").drain().map(|(_, pool)| pool).collect();
        for pool in &pools {
            pool.retire();
        }
        let give_up = Instant::now() + grace;
        let cleanups = &self.shared.host.shells.cleanups;
        while (pools.iter().any(|pool| pool.sizes() != PoolSizes::default()) || cleanups.count() > 0)
            && Instant::now() < give_up
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.shared.host.shells.close().await;
        let groups = self.shared.host.shells.groups().clone();
        let sandbox = self.shared.sandbox.clone();
        let _ = tokio::task::spawn_blocking(move || {
            groups.remove_all();
            limits::remove_parent_groups(groups.enforcement());
            if let Some(sandbox) = sandbox {
                sandbox.release_host_side();
            }
            // Workers whose cleanup was cut short (their task was on a runtime that stopped) were
            // killed when dropped, and their descendants came back to us: nothing is left to init.
            let unreaped = spawn::reap_orphans(ORPHAN_REAP_WAIT);
            if unreaped > 0 {
                tracing::error!(unreaped, "worker processes did not exit after SIGKILL");
            }
        })
        .await;
    }
}

/// Checks a function's own environment before anything is stored: names must be valid variable
/// names and must not be ones the platform sets or reserves (`PATH`, `DATABASE_URL`, `FUNCTION_*`…).
pub fn validate_env(env: &BTreeMap<String, String>) -> Result<(), PrepareError> {
    for name in env.keys() {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(PrepareError::InvalidEnvName(name.clone()));
        }
        if RESERVED_ENV_NAMES.contains(&name.as_str())
            || RESERVED_ENV_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
        {
            return Err(PrepareError::ReservedEnv(name.clone()));
        }
    }
    Ok(())
}

async fn reap_idle_workers(shared: std::sync::Weak<Shared>) {
    loop {
        let interval = match shared.upgrade() {
            Some(shared) => {
                let pools: Vec<Arc<FunctionPool>> =
                    shared.pools.lock().expect("pools lock poisoned").values().cloned().collect();
                let now = Instant::now();
                for pool in pools {
                    pool.reap_idle(now, shared.config.idle_freeze_after);
                }
                // Processes a worker left behind when it was killed (adopted by the server) and
                // children dropped before they were reaped.
                spawn::reap_strays();
                // Often enough that a worker is frozen soon after `idle_freeze_after`.
                shared.config.reap_interval.min(shared.config.idle_freeze_after.max(Duration::from_millis(10)))
            }
            None => return,
        };
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_cannot_set_platform_variables() {
        let env = |name: &str| BTreeMap::from([(name.to_string(), "x".to_string())]);
        assert!(matches!(validate_env(&env("DATABASE_URL")), Err(PrepareError::ReservedEnv(_))));
        assert!(matches!(validate_env(&env("FUNCTION_INPUT")), Err(PrepareError::ReservedEnv(_))));
        assert!(matches!(validate_env(&env("LD_PRELOAD")), Err(PrepareError::ReservedEnv(_))));
        assert!(matches!(validate_env(&env("1BAD")), Err(PrepareError::InvalidEnvName(_))));
        assert!(matches!(validate_env(&env("A=B")), Err(PrepareError::InvalidEnvName(_))));
        assert!(validate_env(&env("API_BASE_URL")).is_ok());
    }
}
