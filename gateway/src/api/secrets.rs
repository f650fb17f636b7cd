//! A function's secrets: `PUT`, `GET` (names and dates only) and `DELETE`
//! `/api/functions/{name}/secrets[/{secret}]`. A change restarts the function's workers (new
//! ones get the new environment; busy ones finish what they run), so the next call sees it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{parse_json, ApiError};
use super::functions::owned_function;
use super::Caller;
use crate::app::{now_ms, App};
use crate::store::{FunctionRecord, SecretRecord};

/// Largest secret value: well under Linux's limit for one environment string.
const MAX_VALUE_BYTES: usize = 32 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretValue {
    value: String,
}

pub async fn put(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((name, secret)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: SecretValue = parse_json(&body)?;
    prewarm::validate_env(&BTreeMap::from([(secret.clone(), String::new())]))
        .map_err(|error| ApiError::bad_request("invalid_secret_name", error.to_string()))?;
    if request.value.len() > MAX_VALUE_BYTES || request.value.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_secret_value",
            format!("a secret value is at most {MAX_VALUE_BYTES} bytes of text without NUL characters"),
        ));
    }
    let function = owned_function(&app, &caller, &name).await?;
    let lock = app.name_lock(&function.name);
    let _serialized = lock.lock().await;
    let now = now_ms();
    let record = SecretRecord {
        function_id: function.id.clone(),
        name: secret.clone(),
        sealed: app.secrets.seal(&function.id, &secret, &request.value),
        created_at: now,
        updated_at: now,
    };
    let created = app.store.put_secret(&record).await?;
    let restarted = restart_workers(&app, &function).await?;
    tracing::info!(function = %function.name, secret = %secret, "secret set");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "name": secret, "updated_at": now, "workers_restarted": restarted }))))
}

pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let function = owned_function(&app, &caller, &name).await?;
    let secrets: Vec<Value> = app
        .store
        .secrets(&function.id)
        .await?
        .into_iter()
        .map(|secret| json!({ "name": secret.name, "created_at": secret.created_at, "updated_at": secret.updated_at }))
        .collect();
    Ok(Json(json!({ "name": function.name, "secrets": secrets })))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((name, secret)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let function = owned_function(&app, &caller, &name).await?;
    let lock = app.name_lock(&function.name);
    let _serialized = lock.lock().await;
    if !app.store.delete_secret(&function.id, &secret).await? {
        return Err(ApiError::not_found(format!("{} has no secret {secret:?}", function.name)));
    }
    restart_workers(&app, &function).await?;
    tracing::info!(function = %function.name, secret = %secret, "secret removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Prepares the active version again: its new workers start with the secrets as they are now,
/// the old ones are retired (idle ones at once, busy ones when their call ends). False when the
/// function has no active version (the next deploy picks the secrets up).
async fn restart_workers(app: &App, function: &FunctionRecord) -> Result<bool, ApiError> {
    let Some(number) = function.active_version else { return Ok(false) };
    let Some(version) = app.store.version(&function.id, number).await? else { return Ok(false) };
    crate::deploy::activate(app, function, &version, function.public)
        .await
        .map_err(|error| super::deploy::activation_error(error, version.version))?;
    Ok(true)
}
