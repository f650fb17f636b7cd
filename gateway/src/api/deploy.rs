//! `POST /api/functions/deploy`: multipart upload → safe extraction → analyzer gate → artifact →
//! new version → prewarmed → active. Deploys of one name run one at a time; any failure leaves
//! the active version as it was.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::Caller;
use crate::app::{entry_of, now_ms, valid_function_name, App, VersionSettings};
use crate::auth::new_id;
use crate::deploy::upload::{UploadError, UploadedArchive};
use crate::deploy::{archive, artifacts, store_and_activate, ActivateError};
use crate::store::{FunctionRecord, StoreError, VersionRecord};

#[derive(Debug, Default)]
struct DeployForm {
    name: Option<String>,
    /// On disk in the artifacts directory, received as it arrived.
    archive: Option<UploadedArchive>,
    runtime: Option<String>,
    public: Option<bool>,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
    max_concurrency: Option<usize>,
    env: BTreeMap<String, String>,
    network: Option<prewarm::sandbox::NetworkPolicy>,
    entry: Option<analyzer::EntrySpec>,
    /// The calling convention (`--shape`); `None`: detected when the entry loads.
    shape: Option<prewarm::Shape>,
    db_connections: Option<u32>,
}

/// Reads the form; the archive goes to a file in `artifacts_dir` as it arrives, up to `limit`.
async fn read_form(
    mut multipart: Multipart,
    artifacts_dir: &std::path::Path,
    limit: u64,
) -> Result<DeployForm, ApiError> {
    let mut form = DeployForm::default();
    let bad = |code, message: String| ApiError::bad_request(code, message);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "archive_too_large", error.body_text()))
            }
            Err(error) => {
                return Err(bad("invalid_multipart", format!("the multipart body is malformed: {}", error.body_text())))
            }
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "archive" {
            let received = UploadedArchive::receive(field, artifacts_dir, limit).await.map_err(|error| match error {
                UploadError::TooLarge { limit } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "archive_too_large",
                    format!("the archive is larger than this server takes: up to {limit} bytes ([deploy] max_archive_bytes); leave out what the function does not need, or ask the operator to raise the limit"),
                ),
                UploadError::Body(message) => bad("invalid_multipart", message),
                UploadError::Disk(error) => ApiError::internal(format!("cannot write the upload: {error}")),
            })?;
            form.archive = Some(received);
            continue;
        }
        let data = field.bytes().await.map_err(|error| bad("invalid_multipart", error.body_text()))?;
        let text =
            || String::from_utf8(data.to_vec()).map_err(|_| bad("invalid_field", format!("{name} must be UTF-8 text")));
        let number = |text: String| -> Result<u64, ApiError> {
            text.trim().parse().map_err(|_| bad("invalid_field", format!("{name} must be a positive whole number")))
        };
        match name.as_str() {
            "name" => form.name = Some(text()?.trim().to_string()),
            "runtime" => form.runtime = Some(text()?.trim().to_ascii_lowercase()),
            "public" => {
                form.public = Some(match text()?.trim() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" | "" => false,
                    other => return Err(bad("invalid_field", format!("public must be true or false, not {other:?}"))),
                })
            }
            "timeout_ms" => form.timeout_ms = Some(number(text()?)?),
            "memory_mb" => form.memory_mb = Some(number(text()?)?),
            "max_concurrency" => form.max_concurrency = Some(number(text()?)? as usize),
            "db_connections" => form.db_connections = Some(number(text()?)?.min(u32::MAX as u64) as u32),
            "network" => {
                form.network = Some(
                    text()?
                        .trim()
                        .parse()
                        .map_err(|message: String| bad("invalid_field", format!("network: {message}")))?,
                )
            }
            "shape" => {
                let named = text()?;
                // `auto` (or nothing) leaves it to detection.
                if !matches!(named.trim(), "" | "auto") {
                    form.shape = Some(named.parse().map_err(|message: String| bad("invalid_field", message))?);
                }
            }
            "entry" => {
                form.entry =
                    Some(text()?.parse().map_err(|message: String| bad("invalid_field", format!("entry: {message}")))?)
            }
            "env" => {
                form.env = serde_json::from_str(&text()?).map_err(|_| {
                    bad("invalid_field", "env must be a JSON object of strings, like {\"GREETING\": \"hi\"}".into())
                })?
            }
            other => return Err(bad("unknown_field", format!("unknown form field {other:?}"))),
        }
    }
    Ok(form)
}

pub async fn deploy(
    State(app): State<Arc<App>>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let multipart = multipart.map_err(|rejection| {
        ApiError::bad_request(
            "invalid_multipart",
            format!("send multipart/form-data with `name` and `archive` ({rejection})"),
        )
    })?;
    let artifacts_dir = app.artifacts_dir();
    let mut form = read_form(multipart, &artifacts_dir, app.config.deploy.max_archive_bytes).await?;
    let name =
        form.name.clone().ok_or_else(|| ApiError::bad_request("missing_field", "the `name` field is required"))?;
    if !valid_function_name(&name) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("{name:?} is not a valid function name: lower-case letters, digits and -, starting with a letter, at most 63"),
        ));
    }
    caller.may_use(&name)?;
    let upload = form
        .archive
        .take()
        .ok_or_else(|| ApiError::bad_request("missing_field", "the `archive` field (a .tar.gz) is required"))?;
    check_limits(&app, &form)?;
    prewarm::validate_env(&form.env).map_err(|error| ApiError::bad_request("invalid_env", error.to_string()))?;

    let lock = app.name_lock(&name);
    let _serialized = lock.lock().await;

    let existing = app.store.function_by_name(&name).await?;
    if let Some(existing) = &existing {
        if existing.owner_id != caller.user_id {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "name_taken",
                format!("the name {name:?} belongs to another user; pick another"),
            ));
        }
    }

    // Extract and analyse off the async threads: both are CPU and disk work.
    let functions_dir = app.functions_dir();
    std::fs::create_dir_all(&functions_dir).map_err(|error| ApiError::internal(error.to_string()))?;
    let staging = artifacts::staging_path(&functions_dir);
    let limits = app.config.deploy.clone();
    let runtime_choice = match form.runtime.as_deref() {
        None | Some("") => analyzer::RuntimeChoice::Auto,
        Some(name) => <analyzer::RuntimeChoice as clap::ValueEnum>::from_str(name, true).map_err(|_| {
            ApiError::bad_request("invalid_field", format!("runtime must be dart, node or python, not {name:?}"))
        })?,
    };
    let archive_path = upload.path.clone();
    let staged = staging.clone();
    let entry_choice = form.entry.clone();
    let policy = app.config.analyzer.clone();
    let analysed = tokio::task::spawn_blocking(move || -> Result<(analyzer::Report, String), ApiError> {
        archive::extract_file(&archive_path, &staged, &limits).map_err(|error| {
            let status = if error.is_size_limit() { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
            ApiError::new(status, error.code(), error.to_string())
        })?;
        let root = archive::package_root(&staged, entry_choice.as_ref().map(|entry| entry.file.as_str()))
            .map_err(|error| ApiError::internal(error.to_string()))?;
        let package_dir = root.strip_prefix(&staged).unwrap_or(std::path::Path::new("")).to_string_lossy().into_owned();
        let options = analyzer::Options {
            runtime: runtime_choice,
            entry: entry_choice,
            dependency_findings_fatal: policy.dependency_findings_fatal,
            deny_native_dependencies: policy.deny_native_dependencies,
            ..analyzer::Options::default()
        };
        let report = analyzer::analyze(&root, &options).map_err(|error| match error {
            // The upload is fine; it only lacks an entry the defaults find: the user's to name.
            analyzer::AnalyzeError::NoRuntime(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "missing_entry", error.to_string())
            }
            analyzer::AnalyzeError::SeveralFunctions(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "several_functions", error.to_string())
            }
            analyzer::AnalyzeError::Read { .. } => ApiError::bad_request("archive_unreadable", error.to_string()),
        })?;
        Ok((report, package_dir))
    })
    .await
    .map_err(|_| ApiError::internal("the deploy worker failed"));
    let (report, package_dir) = match analysed.and_then(|result| result) {
        Ok(done) => done,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    let analysis = serde_json::to_value(&report).expect("reports serialize");
    if report.verdict != analyzer::Verdict::Accept {
        let _ = std::fs::remove_dir_all(&staging);
        let count = report.findings.iter().filter(|finding| finding.severity == analyzer::Severity::Error).count();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "analysis_rejected",
            format!("the analyzer rejected the package ({count} error(s)); fix the findings and deploy again"),
        )
        .with_detail("analysis", analysis));
    }
    let entry = report.entry.clone().expect("an accepted package has an entry");
    if let Some(shape) = form.shape {
        let runtime = report.runtime.as_str().parse::<prewarm::Runtime>();
        if let Some(runtime) = runtime.ok().filter(|runtime| !shape.runs_on(*runtime)) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_shape",
                format!(
                    "the {shape} shape is not served for {} functions: use one of {} (or leave --shape out to detect it)",
                    runtime.name(),
                    prewarm::Shape::names_for(runtime).join(", ")
                ),
            ));
        }
    }
    if let Err(refusal) = runtime_available(&app, report.runtime) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(refusal);
    }

    let (sha256, archive_len) = (upload.sha256.clone(), upload.len);
    let saved = upload.keep(&artifacts_dir).and_then(|()| artifacts::install_tree(&staging, &functions_dir, &sha256));
    if let Err(error) = saved {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(ApiError::internal(format!("cannot store the artifact: {error}")));
    }
    let now = now_ms();
    app.store.put_artifact(&sha256, archive_len as i64, now).await?;
    if app.store.kind() == "postgres" {
        // Other nodes fetch the archive from the store; the version is stored only after it is in.
        artifacts::publish(app.store.as_ref(), &artifacts_dir, &sha256).await.map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("cannot keep the archive in the database, so nothing was deployed: {error:#}; try again"),
            )
        })?;
    }

    let function = match existing {
        Some(function) => function,
        None => {
            let function = FunctionRecord {
                id: new_id("fn"),
                name: name.clone(),
                owner_id: caller.user_id.clone(),
                public: form.public.unwrap_or(false),
                active_version: None,
                created_at: now,
                updated_at: now,
                sandbox_slot: None,
                revision: 0,
            };
            match app.store.create_function(&function).await {
                Ok(stored) => stored,
                Err(StoreError::Conflict) => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "name_taken",
                        format!("the name {name:?} is taken"),
                    ))
                }
                Err(error) => return Err(error.into()),
            }
        }
    };
    let public = form.public.unwrap_or(function.public);
    let mut settings = VersionSettings {
        timeout_ms: form.timeout_ms,
        memory_mb: form.memory_mb,
        max_concurrency: form.max_concurrency,
        env: form.env.clone(),
        public,
        package_dir,
        network: form.network,
        entry_function: (entry.function != analyzer::DEFAULT_FUNCTION).then(|| entry.function.clone()),
        entry_reason: Some(entry.reason.clone()),
        dart_build: None,
        dependencies: None,
        db_connections: form.db_connections,
        // A manifest beside the code (template.yaml, serverless.yml, stack.yml) says how its
        // platform calls the function; `--shape` says otherwise.
        shape: form.shape.or_else(|| entry.shape.as_deref().and_then(|shape| shape.parse().ok())),
        shape_reason: entry.shape_reason.clone().filter(|_| form.shape.is_none()),
    };
    let mut version = VersionRecord {
        function_id: function.id.clone(),
        version: app.store.next_version(&function.id).await?,
        artifact_sha256: sha256.clone(),
        runtime: report.runtime.as_str().to_string(),
        entry_file: entry.file.clone(),
        entry_mode: entry.mode.as_str().to_string(),
        settings: serde_json::to_string(&settings).expect("settings serialize"),
        analysis: analysis.to_string(),
        created_at: now,
    };
    let prepared = store_and_activate(&app, &function, &mut version, &mut settings, public)
        .await
        .map_err(|error| activation_error(error, version.version))?;
    tracing::info!(function = %name, version = version.version, runtime = %version.runtime, mode = %version.entry_mode, "deployed");
    let entry = entry_json(&version, &settings);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": function.id,
            "name": name,
            "version": version.version,
            "runtime": version.runtime,
            "entry_mode": version.entry_mode,
            "entry": entry,
            "warnings": entry_warnings(&version, &settings),
            "public": public,
            "network": app.network_of(&settings).as_str(),
            "url": format!("/fn/{name}"),
            "host": app.config.http.functions_domain.as_ref().map(|domain| format!("{name}.{domain}")),
            "sha256": sha256,
            // With what the installed packages added, when the deploy installed some.
            "analysis": serde_json::from_str::<Value>(&version.analysis).unwrap_or(analysis),
            "warm_workers": prepared.warm_workers,
            "build": prepared.dart_build,
            "dependencies": prepared.dependencies,
            "runtime_unavailable": prepared.runtime_unavailable,
        })),
    ))
}

/// A runtime the server lacks refuses the deploy, saying what to install (unless the operator
/// parks such versions: `[functions] park_missing_runtimes`).
fn runtime_available(app: &App, runtime: analyzer::Runtime) -> Result<(), ApiError> {
    let Ok(runtime) = runtime.as_str().parse::<prewarm::Runtime>() else { return Ok(()) };
    let installed = app.prewarm.runtimes().into_iter().any(|(found, path)| found == runtime && path.is_some());
    if installed || app.config.functions.park_missing_runtimes {
        return Ok(());
    }
    let install = match runtime {
        prewarm::Runtime::Dart => "the Dart SDK (README, \"Dart on the server\")",
        prewarm::Runtime::Node => "Node.js (apt-get install nodejs)",
        prewarm::Runtime::Python => "Python 3 (apt-get install python3)",
    };
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "runtime_unavailable",
        format!(
            "this server has no {} runtime: its operator must install {install} and restart it; nothing was deployed",
            runtime.name()
        ),
    ))
}

/// A version's entry for API answers: the file, the function, the mode and why, and the shape
/// its handler is served in (with why, when it was detected).
pub(super) fn entry_json(version: &VersionRecord, settings: &VersionSettings) -> Value {
    let entry = entry_of(version, settings);
    let shape = (entry.mode == prewarm::EntryMode::Handler).then(|| entry.shape.unwrap_or(prewarm::Shape::Body));
    json!({
        "file": entry.file,
        "function": entry.function,
        "mode": entry.mode.as_str(),
        "reason": entry.reason,
        "shape": shape,
        "shape_reason": settings.shape_reason,
    })
}

/// What a deploy that lands in oneshot mode is told: the mode, why, and the two ways out.
fn entry_warnings(version: &VersionRecord, settings: &VersionSettings) -> Vec<String> {
    let entry = entry_of(version, settings);
    match (entry.mode, version.runtime.parse::<prewarm::Runtime>()) {
        (prewarm::EntryMode::Main, Ok(runtime)) => vec![prewarm::script_advice(runtime, &entry)],
        _ => Vec::new(),
    }
}

/// A version that could not be made active: the store's error, or 422 `startup_failed` (the
/// version stays stored, the active one is unchanged).
pub(super) fn activation_error(error: ActivateError, version: i64) -> ApiError {
    match error {
        ActivateError::Store(error) => error.into(),
        ActivateError::Dependencies(message) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "dependencies_unresolved",
            format!("version {version}'s dependencies could not be resolved, so it is not active: {message}"),
        ),
        ActivateError::DependenciesRefused(message) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "dependencies_refused",
            format!("version {version} is not active: {message}"),
        ),
        ActivateError::CompileFailed(message) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "compile_failed",
            format!("version {version} does not compile, so it is not active; fix what the compiler says and deploy again: {message}"),
        ),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "startup_failed",
            format!("version {version} did not start, so it is not active: {other}"),
        ),
    }
}

fn check_limits(app: &App, form: &DeployForm) -> Result<(), ApiError> {
    let limits = &app.config.functions;
    if let Some(ms) = form.timeout_ms {
        if ms == 0 || ms > limits.max_timeout_ms {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("timeout_ms must be 1 to {}", limits.max_timeout_ms),
            ));
        }
    }
    if let Some(mb) = form.memory_mb {
        if !(16..=limits.max_memory_mb).contains(&mb) {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("memory_mb must be 16 to {}", limits.max_memory_mb),
            ));
        }
    }
    if let Some(count) = form.db_connections {
        let maximum = app
            .config
            .function_database
            .max_connections_per_function
            .unwrap_or(crate::function_database::DEFAULT_MAX_CONNECTIONS_PER_FUNCTION);
        if app.function_database.mode != Some(crate::function_database::PER_FUNCTION) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "db_connections needs a function database in per-function mode on this server",
            ));
        }
        if count == 0 || count > maximum {
            return Err(ApiError::bad_request("invalid_field", format!("db_connections must be 1 to {maximum}")));
        }
    }
    if let Some(count) = form.max_concurrency {
        if count == 0 || count > limits.max_concurrent {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("max_concurrency must be 1 to {} (the server's cap)", limits.max_concurrent),
            ));
        }
    }
    Ok(())
}
