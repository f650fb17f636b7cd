//! Reading and managing one's functions. Another user's function answers 404, exactly like a
//! name that does not exist, so the API does not reveal what others run (deploy's 409 for a
//! taken name is the one unavoidable exception: names are unique on the server).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{parse_json, ApiError};
use super::Caller;
use crate::app::App;
use crate::deploy::{self, artifacts};
use crate::store::{FunctionRecord, VersionRecord};

/// The caller's function named (or with the id) `name_or_id`, or 404.
pub async fn owned_function(app: &App, caller: &Caller, name_or_id: &str) -> Result<FunctionRecord, ApiError> {
    let found = if name_or_id.starts_with("fn_") {
        app.store.function_by_id(name_or_id).await?
    } else {
        app.store.function_by_name(name_or_id).await?
    };
    let function = found
        .filter(|function| function.owner_id == caller.user_id)
        .ok_or_else(|| ApiError::not_found(format!("you have no function {name_or_id:?}")))?;
    caller.may_use(&function.name)?;
    Ok(function)
}

/// The record of the function's active version, if it has one.
async fn active_version(app: &App, function: &FunctionRecord) -> Result<Option<VersionRecord>, ApiError> {
    Ok(match function.active_version {
        Some(number) => app.store.version(&function.id, number).await?,
        None => None,
    })
}

fn version_entry(version: &VersionRecord) -> Value {
    let settings = crate::app::VersionSettings::of(version).unwrap_or_default();
    super::deploy::entry_json(version, &settings)
}

fn function_json(app: &App, function: &FunctionRecord, active: Option<&VersionRecord>) -> Value {
    let settings = active.map(|version| crate::app::VersionSettings::of(version).unwrap_or_default());
    json!({
        "id": function.id,
        "name": function.name,
        "public": function.public,
        "url": format!("/fn/{}", function.name),
        // Its own host name, when the server serves functions on them (`[http] functions_domain`).
        "host": app.config.http.functions_domain.as_ref().map(|domain| format!("{}.{domain}", function.name)),
        "active_version": function.active_version,
        "runtime": active.map(|version| version.runtime.clone()),
        "entry_mode": active.map(|version| version.entry_mode.clone()),
        "entry": active.zip(settings.as_ref()).map(|(version, settings)| super::deploy::entry_json(version, settings)),
        "dependencies": settings.as_ref().and_then(|settings| settings.dependencies.clone()),
        "build": settings.and_then(|settings| settings.dart_build),
        "created_at": function.created_at,
        "updated_at": function.updated_at,
    })
}

fn version_json(version: &VersionRecord, active: Option<i64>) -> Value {
    json!({
        "version": version.version,
        "active": Some(version.version) == active,
        "runtime": version.runtime,
        "entry_file": version.entry_file,
        "entry_mode": version.entry_mode,
        "entry": version_entry(version),
        "sha256": version.artifact_sha256,
        "settings": serde_json::from_str::<Value>(&version.settings).unwrap_or(Value::Null),
        "analysis": serde_json::from_str::<Value>(&version.analysis).unwrap_or(Value::Null),
        "created_at": version.created_at,
    })
}

pub async fn list(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut functions = Vec::new();
    for function in app.store.functions_of(&caller.user_id).await? {
        if caller.may_use(&function.name).is_err() {
            continue; // a key limited to some functions lists only those
        }
        let active = active_version(&app, &function).await?;
        functions.push(function_json(&app, &function, active.as_ref()));
    }
    Ok(Json(json!({ "functions": functions })))
}

pub async fn info(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let function = owned_function(&app, &caller, &name).await?;
    let active = active_version(&app, &function).await?;
    let mut body = function_json(&app, &function, active.as_ref());
    if let Some(active) = &active {
        body["active"] = version_json(active, function.active_version);
        let settings: crate::app::VersionSettings = serde_json::from_str(&active.settings).unwrap_or_default();
        body["network"] = json!(app.network_of(&settings).as_str());
    }
    let pool_key = app.active.get(&function.name).map(|active| active.key.clone());
    let stats = pool_key.and_then(|key| app.prewarm.stats().into_iter().find(|stats| stats.key == key));
    if let Some(stats) = stats {
        body["pool"] = json!({
            "idle": stats.sizes.idle, "busy": stats.sizes.busy, "starting": stats.sizes.starting,
            "in_flight": stats.in_flight, "queued": stats.queued, "spawns": stats.spawns, "cold_starts": stats.cold_starts,
        });
    }
    Ok(Json(body))
}

pub async fn versions(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let function = owned_function(&app, &caller, &name).await?;
    let versions = app.store.versions(&function.id).await?;
    let versions: Vec<Value> =
        versions.iter().rev().map(|version| version_json(version, function.active_version)).collect();
    Ok(Json(json!({ "name": function.name, "active_version": function.active_version, "versions": versions })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    version: i64,
}

pub async fn rollback(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: Rollback = parse_json(&body)?;
    let function = owned_function(&app, &caller, &name).await?;
    let lock = app.name_lock(&function.name);
    let _serialized = lock.lock().await;
    let function = owned_function(&app, &caller, &function.id).await?;
    let version = app
        .store
        .version(&function.id, request.version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{} has no version {}", function.name, request.version)))?;
    if function.active_version == Some(version.version) && app.active.contains_key(&function.name) {
        return Ok(Json(json!({ "name": function.name, "active_version": version.version })));
    }
    let public =
        serde_json::from_str::<crate::app::VersionSettings>(&version.settings).map(|s| s.public).unwrap_or(false);
    deploy::activate(&app, &function, &version, public)
        .await
        .map_err(|error| super::deploy::activation_error(error, version.version))?;
    tracing::info!(function = %function.name, version = version.version, "rolled back");
    Ok(Json(json!({ "name": function.name, "active_version": version.version })))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let function = owned_function(&app, &caller, &name).await?;
    let lock = app.name_lock(&function.name);
    let _serialized = lock.lock().await;
    deploy::deactivate(&app, &function.name);
    crate::function_database::drop_for(&app, &function).await;
    let freed = app.store.delete_function(&function.id).await?;
    for sha256 in freed {
        artifacts::remove(&app.artifacts_dir(), &app.functions_dir(), &sha256);
    }
    app.metrics.forget(&function.name);
    app.secrets.forget(&function.id);
    deploy::announce(&app, &function).await;
    tracing::info!(function = %function.name, "deleted");
    Ok(StatusCode::NO_CONTENT)
}
