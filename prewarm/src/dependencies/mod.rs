//! Dependencies installed at deploy: a Node function with a `package.json` and no
//! `node_modules`, or a Python function with a `requirements.txt` and no installed
//! distributions, gets its packages installed by the package manager of its runtime (`npm`,
//! `pip`), in a confined builder (`builder`), before its first worker loads.
//!
//! An install lives in `deps/KEY/` (`node_modules/` or `python/`, and `install.json`), KEY being
//! a hash of the manifests (`npm::MANIFESTS`, `pip::MANIFESTS`), the runtime, the package
//! manager and the install policy; of the function's whole (content-addressed) directory too when
//! a manifest names a local path. So versions that change code but not dependencies, rollbacks
//! and restarts reuse it without running anything. It is made in a staging directory, sealed
//! (owned by the server, read-only to everyone) and renamed into place: a directory that exists
//! is complete. Workers see it read-only: Node's at `/node_modules` (Node looks there from
//! `/fn`), Python's at `/containerpub/deps`, on `PYTHONPATH`.
//!
//! The download caches (`deps-cache/`: npm's, pip's HTTP cache) are shared by every function's
//! builds, so a package is fetched once per server. They are written only by the package managers
//! themselves (no package script runs, no source distribution is built, and no tenant code runs
//! in a builder), with content checked by hash when read (npm's integrity, and pip's when the
//! requirements carry hashes). Every install is tried offline first, in a namespace with no
//! network at all; `offline: true` in the report means no registry was reached.

pub mod builder;
pub mod npm;
pub mod pip;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::runtime::Runtime;
use crate::sandbox::BuilderView;
use builder::{Builder, ToolFailure, ToolRun};

/// The host's CA bundle (Debian's): trusted by the package managers besides their own.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where installs go and what bounds them (from [`crate::PrewarmConfig`]).
#[derive(Debug, Clone)]
pub struct DependencySettings {
    pub installs_dir: PathBuf,
    /// Shared download caches (`npm/`, `pip/`).
    pub cache_dir: PathBuf,
    /// Each function's own pip wheelhouse, `wheelhouses_dir/UID`.
    pub wheelhouses_dir: PathBuf,
    /// `PATH` of the tools, the one workers get.
    pub path: String,
    /// The whole of an install: the offline attempt and the online one together.
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// Install packages that want install scripts or ship compiled addons (their scripts still
    /// do not run).
    pub allow_install_scripts: bool,
    /// Where `npm` is looked for, when an install needs it (the runtimes' search path).
    pub search_path: Option<std::ffi::OsString>,
}

/// What an install did; kept as `install.json` and reported by deploys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyInstall {
    /// `npm ci`, `npm install` or `pip install`.
    pub command: String,
    /// Packages installed (npm's tree entries, pip's distributions).
    pub packages: usize,
    pub install_ms: u64,
    /// True when no registry was reached: every package came from the cache.
    pub offline: bool,
    /// True when this prepare found the install already made (same manifests, a rollback, a
    /// restart): nothing ran.
    #[serde(default)]
    pub reused: bool,
}

/// An install, ready for workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDependencies {
    pub runtime: Runtime,
    pub dir: PathBuf,
    pub install: DependencyInstall,
}

impl InstalledDependencies {
    /// The host directory workers see at `/node_modules` or `/containerpub/deps`.
    pub fn packages_dir(&self) -> PathBuf {
        self.dir.join(packages_dir_name(self.runtime))
    }

    /// The directory the analyzer reads them in, as it would have found them uploaded:
    /// `node_modules/` inside it (Node), pip's tree at its top (Python).
    pub fn judged_dir(&self) -> PathBuf {
        match self.runtime {
            Runtime::Python => self.packages_dir(),
            _ => self.dir.clone(),
        }
    }
}

fn packages_dir_name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Python => "python",
        _ => "node_modules",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    /// The package manager could not install the manifest; its own message.
    #[error("{0}")]
    Unresolved(String),
    /// Installed packages the platform does not run (install scripts, compiled addons).
    #[error("{0}")]
    Refused(String),
    #[error("cannot install the function's dependencies: {0}")]
    Build(String),
}

/// The package manager a runtime's install uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Npm,
    Pip,
}

/// Installs the dependencies `function_dir` declares, when it declares some and did not upload
/// them installed; `None` when there is nothing to install.
pub(crate) async fn install(
    builder: &Builder<'_>,
    runtime: Runtime,
    executable: &Path,
    function_dir: &Path,
    settings: &DependencySettings,
) -> Result<Option<InstalledDependencies>, DependencyError> {
    let manager = match runtime {
        Runtime::Node if npm::needs_install(function_dir) => Manager::Npm,
        Runtime::Python if pip::needs_install(function_dir) => Manager::Pip,
        _ => return Ok(None),
    };
    let tool = match manager {
        Manager::Npm => Some(npm::package_dir(settings.search_path.as_deref()).ok_or_else(|| {
            DependencyError::Unresolved("the function has a package.json with dependencies and no node_modules, and npm is not installed on this server: upload node_modules with the function (run `npm install --omit=dev` first), or ask the operator to install npm (apt-get install npm)".into())
        })?),
        Manager::Pip => {
            if !has_pip(executable) {
                return Err(DependencyError::Unresolved(format!(
                    "the function has a requirements.txt, and pip is not installed for {} on this server: upload the packages installed with the function (`pip install --target . -r requirements.txt`), or ask the operator to install pip (apt-get install python3-pip)",
                    executable.display()
                )));
            }
            None
        }
    };
    let job = InstallJob { manager, runtime, executable, tool: tool.as_deref(), function_dir };
    let dir = settings.installs_dir.join(install_key(&job, settings));
    if let Some(mut install) = read_install(&dir, runtime) {
        install.reused = true;
        return Ok(Some(InstalledDependencies { runtime, dir, install }));
    }
    let staging = staging_dir(&settings.installs_dir);
    let made = make_install(builder, &job, settings, &staging).await;
    let install = match made {
        Ok(install) => install,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    if dir.exists() && read_install(&dir, runtime).is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Another prepare of the same manifests may have finished first: its install is as good.
    if std::fs::rename(&staging, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if let Some(theirs) = read_install(&dir, runtime) {
            return Ok(Some(InstalledDependencies { runtime, dir, install: theirs }));
        }
        return Err(DependencyError::Build(format!("cannot move the install into {}", dir.display())));
    }
    Ok(Some(InstalledDependencies { runtime, dir, install }))
}

/// One install: what is installed, by which tool, for which runtime.
struct InstallJob<'a> {
    manager: Manager,
    runtime: Runtime,
    /// The runtime's interpreter, which runs the package manager.
    executable: &'a Path,
    /// npm's package directory.
    tool: Option<&'a Path>,
    function_dir: &'a Path,
}

async fn make_install(
    builder: &Builder<'_>,
    job: &InstallJob<'_>,
    settings: &DependencySettings,
    staging: &Path,
) -> Result<DependencyInstall, DependencyError> {
    let InstallJob { manager, runtime, executable, tool, function_dir } = *job;
    let io = |what: &str, error: std::io::Error| DependencyError::Build(format!("{what}: {error}"));
    let output = staging.join("out");
    // The manifests alone, unless one names a local path: then the whole source (and the key
    // holds the source directory). Never a directory the tool installs into: an upload cannot
    // plant files in an install that other functions with the same manifests reuse.
    let (manifests, local) = manifests_of(job);
    if local {
        crate::runtime::copy_sources(function_dir, &output, &[".git"])
            .map_err(|error| io("copy the function", error))?;
    } else {
        std::fs::create_dir_all(&output).map_err(|error| io("create the build directory", error))?;
        for manifest in manifests.iter().filter(|manifest| function_dir.join(manifest).is_file()) {
            std::fs::copy(function_dir.join(manifest), output.join(manifest))
                .map_err(|error| io("copy the manifest", error))?;
        }
    }
    for installed in ["node_modules", pip::TARGET] {
        let _ = std::fs::remove_dir_all(output.join(installed));
    }
    let cache = prepare_cache(builder, settings).map_err(|error| io("prepare the download cache", error))?;
    if let Builder::Confined { uid, .. } = builder {
        // The builder writes its copy as the function's uid; the server seals it afterwards.
        chown_tree(&output, *uid).map_err(|error| io("hand the copy to the function's uid", error))?;
    }
    let view = BuilderView {
        tool: tool.map(Path::to_path_buf),
        output: output.clone(),
        cache: cache.shared,
        wheelhouse: cache.wheelhouse,
    };
    let paths = builder.paths(&view);
    let home = match builder {
        Builder::Confined { .. } => PathBuf::from("/tmp"),
        Builder::Unconfined => {
            let home = staging.join("home");
            std::fs::create_dir_all(&home).map_err(|error| io("create the builder's home", error))?;
            home
        }
    };
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    let run = |program: PathBuf, args: Vec<String>, env: Vec<(String, String)>, online: bool| ToolRun {
        runtime,
        program,
        args,
        env,
        view: view.clone(),
        online,
        timeout: left(),
        memory_bytes: settings.memory_bytes,
    };
    let (command, offline) = match manager {
        Manager::Npm => {
            let subcommand = npm::subcommand(function_dir);
            let env = npm::environment(&settings.path, &home);
            let attempt =
                |online| run(executable.to_path_buf(), npm::arguments(&paths, subcommand, online), env.clone(), online);
            let offline = builder.run(attempt(false)).await.map_err(|failure| tool_failure(failure, settings))?;
            if !offline.success {
                tracing::debug!(message = %offline.message(), "the cache could not satisfy npm; fetching");
                let _ = std::fs::remove_dir_all(output.join("node_modules"));
                let online = builder.run(attempt(true)).await.map_err(|failure| tool_failure(failure, settings))?;
                if !online.success {
                    return Err(DependencyError::Unresolved(format!(
                        "npm {subcommand} failed ({}):\n{}",
                        online.status,
                        online.message()
                    )));
                }
            }
            (format!("npm {subcommand}"), offline.success)
        }
        Manager::Pip => {
            let env = pip::environment(&settings.path, &home);
            let install = || run(executable.to_path_buf(), pip::install_arguments(&paths), env.clone(), false);
            let first = builder.run(install()).await.map_err(|failure| tool_failure(failure, settings))?;
            if !first.success {
                tracing::debug!(message = %first.message(), "the wheelhouse could not satisfy pip; downloading");
                let _ = std::fs::remove_dir_all(output.join(pip::TARGET));
                let download = run(executable.to_path_buf(), pip::download_arguments(&paths), env.clone(), true);
                let downloaded = builder.run(download).await.map_err(|failure| tool_failure(failure, settings))?;
                if !downloaded.success {
                    return Err(DependencyError::Unresolved(format!(
                        "pip could not find wheels for requirements.txt ({}):\n{}\n(the platform installs wheels only, so no package's setup.py runs: a package published only as source must be uploaded installed, with `pip install --target . -r requirements.txt`)",
                        downloaded.status,
                        downloaded.message()
                    )));
                }
                let installed = builder.run(install()).await.map_err(|failure| tool_failure(failure, settings))?;
                if !installed.success {
                    return Err(DependencyError::Unresolved(format!(
                        "pip install failed ({}):\n{}",
                        installed.status,
                        installed.message()
                    )));
                }
            }
            ("pip install".to_string(), first.success)
        }
    };
    let install_ms = started.elapsed().as_millis() as u64;
    let installed = match manager {
        Manager::Npm => output.join("node_modules"),
        Manager::Pip => output.join(pip::TARGET),
    };
    // What the builder left is checked without following links: workers get this directory bound,
    // and a link would be resolved on the host.
    let left = std::fs::symlink_metadata(&installed);
    if left.as_ref().is_ok_and(|meta| !meta.is_dir()) {
        return Err(DependencyError::Build(format!("{} is not a directory after the install", installed.display())));
    }
    if left.is_err() {
        // npm writes no node_modules when every dependency was optional and skipped.
        std::fs::create_dir_all(&installed).map_err(|error| io("create the package directory", error))?;
    }
    let packages = match manager {
        Manager::Npm => {
            let inspection = npm::inspect(&installed);
            if !settings.allow_install_scripts {
                refuse_unrun(&inspection)?;
            }
            inspection.packages
        }
        Manager::Pip => pip::count_installed(&installed),
    };
    let install = DependencyInstall { command, packages, install_ms, offline, reused: false };
    let target = staging.join(packages_dir_name(runtime));
    std::fs::rename(&installed, &target).map_err(|error| io("move the packages into place", error))?;
    let _ = std::fs::remove_dir_all(&output);
    let _ = std::fs::remove_dir_all(staging.join("home"));
    let record = serde_json::to_vec_pretty(&install).expect("installs serialize");
    std::fs::write(staging.join("install.json"), record).map_err(|error| io("write install.json", error))?;
    seal(staging).map_err(DependencyError::Build)?;
    Ok(install)
}

/// Packages that want what the platform did not do, by name, with what the author can do.
fn refuse_unrun(inspection: &npm::Inspection) -> Result<(), DependencyError> {
    let mut reasons = Vec::new();
    if !inspection.install_scripts.is_empty() {
        reasons.push(format!(
            "{} {} an install script (or a binding.gyp to build), which the platform does not run",
            names(&inspection.install_scripts),
            if inspection.install_scripts.len() == 1 { "has" } else { "have" }
        ));
    }
    if !inspection.native_addons.is_empty() {
        reasons.push(format!(
            "{} {} a compiled addon (*.node)",
            names(&inspection.native_addons),
            if inspection.native_addons.len() == 1 { "ships" } else { "ship" }
        ));
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(DependencyError::Refused(format!(
        "{}: use a pure-JavaScript alternative, or ask the operator to set [dependencies] allow_install_scripts = true (the packages are then installed, still without running their scripts)",
        reasons.join("; ")
    )))
}

fn names(set: &std::collections::BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn tool_failure(failure: ToolFailure, settings: &DependencySettings) -> DependencyError {
    match failure {
        ToolFailure::TimedOut(_) => DependencyError::Unresolved(format!(
            "installing the dependencies did not finish within {:?} and was stopped ([dependencies] install_timeout_secs)",
            settings.timeout
        )),
        ToolFailure::NotStarted(message) => DependencyError::Build(message),
    }
}

/// The caches a build uses: the shared one, and (confined) the function's own wheelhouse, bound
/// over the shared cache's `wheels/`.
struct BuildCache {
    shared: PathBuf,
    wheelhouse: Option<PathBuf>,
}

fn prepare_cache(builder: &Builder<'_>, settings: &DependencySettings) -> std::io::Result<BuildCache> {
    let shared = settings.cache_dir.clone();
    for dir in [shared.clone(), shared.join("npm"), shared.join("pip"), shared.join("wheels")] {
        std::fs::create_dir_all(&dir)?;
        // Every function's builder (each its own uid) adds to it; nobody removes another's entries.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?;
    }
    let wheelhouse = match builder {
        Builder::Confined { uid, .. } => {
            let own = settings.wheelhouses_dir.join(uid.to_string());
            std::fs::create_dir_all(&own)?;
            std::fs::set_permissions(&settings.wheelhouses_dir, std::fs::Permissions::from_mode(0o700))?;
            std::os::unix::fs::chown(&own, Some(*uid), Some(*uid))?;
            Some(own)
        }
        Builder::Unconfined => None,
    };
    Ok(BuildCache { shared, wheelhouse })
}

/// Hands a copied tree to `uid` (links included, never followed).
fn chown_tree(dir: &Path, uid: u32) -> std::io::Result<()> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(uid))?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            pending.extend(std::fs::read_dir(&path)?.flatten().map(|entry| entry.path()));
        }
    }
    Ok(())
}

/// Makes an install the server's: owned by root, readable by every uid, writable by none.
fn seal(dir: &Path) -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        chown_tree(dir, 0).map_err(|error| format!("seal {}: {error}", dir.display()))?;
    }
    crate::sandbox::rootfs::make_world_readable(dir)
}

/// What an install depends on: the manifests, the runtime and package manager, the policy; and
/// the whole function directory when a manifest names a local path.
fn install_key(job: &InstallJob<'_>, settings: &DependencySettings) -> String {
    let InstallJob { runtime, executable, tool, function_dir, .. } = *job;
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(runtime.name().as_bytes());
    part(executable.as_os_str().as_encoded_bytes());
    part(tool.map(Path::as_os_str).unwrap_or_default().as_encoded_bytes());
    part(&[u8::from(settings.allow_install_scripts)]);
    let (manifests, local) = manifests_of(job);
    for manifest in manifests {
        part(manifest.as_bytes());
        part(&std::fs::read(function_dir.join(manifest)).unwrap_or_default());
    }
    if local {
        part(function_dir.as_os_str().as_encoded_bytes());
    }
    hex::encode(&hash.finalize()[..12])
}

/// The manifest files of a job's package manager, and whether one names a local path.
fn manifests_of(job: &InstallJob<'_>) -> (&'static [&'static str], bool) {
    match job.manager {
        Manager::Npm => (npm::MANIFESTS, npm::has_local_references(job.function_dir)),
        Manager::Pip => (pip::MANIFESTS, pip::has_local_references(job.function_dir)),
    }
}

fn read_install(dir: &Path, runtime: Runtime) -> Option<DependencyInstall> {
    let install = serde_json::from_slice(&std::fs::read(dir.join("install.json")).ok()?).ok()?;
    dir.join(packages_dir_name(runtime)).is_dir().then_some(install)
}

/// Whether `python` can import pip (asked once per interpreter).
fn has_pip(python: &Path) -> bool {
    static ASKED: std::sync::Mutex<Vec<(PathBuf, bool)>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut asked) = ASKED.lock() else { return true };
    if let Some((_, found)) = asked.iter().find(|(path, _)| path == python) {
        return *found;
    }
    let found = std::process::Command::new(python)
        .args(["-I", "-c", "import pip"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    asked.push((python.to_path_buf(), found));
    found
}

fn staging_dir(installs_dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    installs_dir.join(format!(".staging-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
}
