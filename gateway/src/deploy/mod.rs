//! The deploy pipeline below the HTTP layer: artifacts on disk, and switching the active
//! version (prewarm the new one, then switch, then drain the old one).

pub mod archive;
pub mod artifacts;
mod installed;
pub mod upload;

use std::sync::Arc;

use crate::app::{now_ms, ActiveFunction, App, VersionSettings};
use crate::store::{FunctionRecord, VersionRecord};

/// Why a version could not be made active. The active version is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("{0}")]
    Spec(String),
    #[error("{0}")]
    Prepare(String),
    /// The version's files are not on this node and could not be fetched.
    #[error("its files: {0}")]
    Artifact(String),
    /// A Dart function's `dart pub get` failed; pub's message.
    #[error("{0}")]
    Dependencies(String),
    /// A Dart function's resolved dependencies bring build hooks.
    #[error("{0}")]
    DependenciesRefused(String),
    /// A Dart function the compiler refused; its messages.
    #[error("{0}")]
    CompileFailed(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Prepares `version`'s workers, records it as active and routes new calls to it; the version
/// it replaces stops taking calls, and its busy workers finish what they run.
pub async fn activate(
    app: &App,
    function: &FunctionRecord,
    version: &VersionRecord,
    public: bool,
) -> Result<prewarm::PrepareReport, ActivateError> {
    let (report, key) = prepare(app, function, version).await?;
    switch_to(app, function, version.version, public, &key).await?;
    Ok(report)
}

/// A new version: prepares it, letting loading settle a Node or Python entry (see
/// `prewarm::FunctionEntry::settle_by_loading`), stores it with the mode it landed in and why,
/// then makes it active as [`activate`] does. A version that fails to start is stored as well,
/// with the analyzer's reading, and the active version is unchanged.
pub async fn store_and_activate(
    app: &App,
    function: &FunctionRecord,
    version: &mut VersionRecord,
    settings: &mut VersionSettings,
    public: bool,
) -> Result<prewarm::PrepareReport, ActivateError> {
    let mut spec = spec_with_secrets(app, function, version).await?;
    spec.entry.settle_by_loading = true;
    // No shape named: the adapter detects it, and the version keeps what it found.
    spec.entry.shape = settings.shape;
    let key = spec.key.clone();
    let mut prepared = app.prewarm.prepare(spec).await;
    let installed = prepared.as_ref().ok().and_then(|report| report.installed_packages.clone());
    if let Some(installed) = installed {
        if let Err(refusal) = installed::judge(app, version, installed).await {
            app.prewarm.retire(&key);
            prepared = Err(prewarm::PrepareError::DependenciesRefused(refusal));
        }
    }
    if let Ok(report) = &prepared {
        version.entry_mode = report.entry_mode.as_str().to_string();
        settings.entry_reason = Some(report.entry_reason.clone());
        settings.shape = report.shape.or(settings.shape);
        if report.shape_reason.is_some() {
            settings.shape_reason = report.shape_reason.clone();
        }
        settings.dart_build = report.dart_build.clone();
        settings.dependencies = report.dependencies.clone();
        version.settings = serde_json::to_string(settings).expect("settings serialize");
    }
    if let Err(error) = app.store.create_version(version).await {
        app.prewarm.retire(&key);
        return Err(error.into());
    }
    let report = prepared.map_err(prepare_error)?;
    switch_to(app, function, version.version, public, &key).await?;
    Ok(report)
}

/// Records the prepared version `key` as active, routes new calls to it and tells the other
/// nodes; when the store refuses, its workers go and the active version stays.
async fn switch_to(
    app: &App,
    function: &FunctionRecord,
    version: i64,
    public: bool,
    key: &str,
) -> Result<(), ActivateError> {
    let revision = match app.store.activate(&function.id, version, public, now_ms()).await {
        Ok(revision) => revision,
        Err(error) => {
            // The active version prepared again (a secret's change): its new workers are the
            // only ones it has now, so they stay.
            if app.active.get(&function.name).is_none_or(|active| active.key != key) {
                app.prewarm.retire(key);
            }
            return Err(error.into());
        }
    };
    route(app, function, version, public, key, revision);
    announce(app, function).await;
    Ok(())
}

/// Wakes the other nodes to a change of `function`.
pub async fn announce(app: &App, function: &FunctionRecord) {
    crate::cluster::sync::announce(app, &function.id).await;
}

/// Starts the version's workers (its files fetched from the store first when this node lacks
/// them); returns the report and the pool key.
pub(crate) async fn prepare(
    app: &App,
    function: &FunctionRecord,
    version: &VersionRecord,
) -> Result<(prewarm::PrepareReport, String), ActivateError> {
    artifacts::materialize(
        app.store.as_ref(),
        &app.artifacts_dir(),
        &app.functions_dir(),
        &version.artifact_sha256,
        &app.config.deploy,
    )
    .await
    .map_err(|error| ActivateError::Artifact(format!("{error:#}")))?;
    if app.store.kind() == "postgres" {
        // A version deployed before the store kept archives: this node has its archive, so
        // the others can have it too from now on.
        if let Err(error) = artifacts::publish(app.store.as_ref(), &app.artifacts_dir(), &version.artifact_sha256).await
        {
            tracing::warn!(function = %function.name, version = version.version, error = %format!("{error:#}"), "the archive is not in the store yet: nodes without it cannot start this version");
        }
    }
    let spec = spec_with_secrets(app, function, version).await?;
    let key = spec.key.clone();
    let report = app.prewarm.prepare(spec).await.map_err(prepare_error)?;
    Ok((report, key))
}

/// The version's spec, its environment completed with the function's secrets (which win over a
/// plain `env` setting of the same name).
async fn spec_with_secrets(
    app: &App,
    function: &FunctionRecord,
    version: &VersionRecord,
) -> Result<prewarm::FunctionSpec, ActivateError> {
    let spec_error = |error: anyhow::Error| ActivateError::Spec(error.to_string());
    let settings = VersionSettings::of(version).map_err(spec_error)?;
    let mut spec = app.spec_for(function, version, &settings).map_err(spec_error)?;
    let secrets = app
        .secrets
        .environment(app.store.as_ref(), &function.id)
        .await
        .map_err(|error| ActivateError::Spec(error.to_string()))?;
    spec.env.extend(secrets);
    spec.database_url = crate::function_database::ensure(app, function, settings.db_connections)
        .await
        .map_err(|error| ActivateError::Spec(format!("the function's database: {error}")))?;
    Ok(spec)
}

fn prepare_error(error: prewarm::PrepareError) -> ActivateError {
    match error {
        prewarm::PrepareError::DependenciesUnresolved(message) => ActivateError::Dependencies(message),
        prewarm::PrepareError::DependenciesRefused(message) => ActivateError::DependenciesRefused(message),
        prewarm::PrepareError::CompileFailed(message) => ActivateError::CompileFailed(message),
        other => ActivateError::Prepare(other.to_string()),
    }
}

/// Sends new calls to the prepared version `key`, and retires the one it replaces.
pub(crate) fn route(app: &App, function: &FunctionRecord, version: i64, public: bool, key: &str, revision: i64) {
    let previous = app.set_active(function, version, public, revision);
    if let Some(previous) = previous.filter(|previous| previous.key != key) {
        app.prewarm.retire(&previous.key);
    }
}

/// Stops routing to a function and its workers.
pub fn deactivate(app: &App, name: &str) -> Option<Arc<ActiveFunction>> {
    let active = app.remove_active(name)?;
    app.prewarm.retire(&active.key);
    Some(active)
}

/// At start-up: warm every function's active version and route to it. The store already says
/// which versions are active, so nothing is written. A version whose workers cannot start (its
/// function's database is down, its files are damaged, memory is short) is routed all the same:
/// its calls answer 503 `starting` while [`keep_starting`] retries it with backoff.
pub async fn restore_active(app: &Arc<App>) -> anyhow::Result<usize> {
    let mut restored = 0;
    for (function, version) in app.store.active_functions().await? {
        match prepare(app, &function, &version).await {
            Ok((report, key)) => {
                if let Some(problem) = &report.runtime_unavailable {
                    tracing::warn!(function = %function.name, version = version.version, %problem, "the active version's runtime is missing on this server: its calls answer 503 until it is installed");
                }
                route(app, &function, version.version, function.public, &key, function.revision);
                restored += 1;
            }
            Err(error) => {
                tracing::warn!(function = %function.name, version = version.version, %error, retry_in = ?FIRST_START_RETRY, "cannot warm the active version: its calls answer 503 starting until it starts");
                route_as_starting(app, function, version);
            }
        }
    }
    Ok(restored)
}

/// Routes a version whose workers did not start: its calls answer 503 `starting` while
/// [`keep_starting`] retries it.
pub(crate) fn route_as_starting(app: &Arc<App>, function: FunctionRecord, version: VersionRecord) {
    let key = crate::app::pool_key(&function.id, version.version);
    app.starting.insert(key.clone(), std::time::Instant::now() + FIRST_START_RETRY);
    route(app, &function, version.version, function.public, &key, function.revision);
    tokio::spawn(keep_starting(app.clone(), function, version));
}

/// The first retry of an active version that did not start; each failure doubles the wait.
const FIRST_START_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest wait between two attempts.
const LAST_START_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Retries starting an active version until it starts, or until a deploy, rollback or delete of
/// the function makes it moot.
async fn keep_starting(app: Arc<App>, function: FunctionRecord, version: VersionRecord) {
    let key = crate::app::pool_key(&function.id, version.version);
    let mut wait = FIRST_START_RETRY;
    loop {
        tokio::time::sleep(wait).await;
        let lock = app.name_lock(&function.name);
        let _one_change_at_a_time = lock.lock().await;
        // A deploy, rollback or delete since decided instead (a rollback to this very version
        // prepared it).
        if app.active.get(&function.name).is_none_or(|active| active.key != key) || app.prewarm.is_prepared(&key) {
            app.starting.remove(&key);
            return;
        }
        match prepare(&app, &function, &version).await {
            Ok(_) => {
                app.starting.remove(&key);
                tracing::info!(function = %function.name, version = version.version, "the active version started");
                return;
            }
            Err(error) => {
                wait = (wait * 2).min(LAST_START_RETRY);
                app.starting.insert(key.clone(), std::time::Instant::now() + wait);
                tracing::warn!(function = %function.name, version = version.version, %error, retry_in = ?wait, "the active version still cannot start");
            }
        }
    }
}
