//! Registration, login, the current user, and API keys.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{parse_json, ApiError};
use super::Caller;
use crate::app::{now_ms, App};
use crate::auth::{api_keys, new_id, passwords};
use crate::store::{ApiKey, StoreError, User};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

fn normalized_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_ascii_lowercase();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !plausible {
        return Err(ApiError::bad_request("invalid_email", "email must look like name@example.com"));
    }
    Ok(email)
}

pub async fn register(State(app): State<Arc<App>>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let credentials: Credentials = parse_json(&body)?;
    let email = normalized_email(&credentials.email)?;
    let length = credentials.password.chars().count();
    if !(passwords::MIN_LENGTH..=passwords::MAX_LENGTH).contains(&length) {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("the password must be {} to {} characters", passwords::MIN_LENGTH, passwords::MAX_LENGTH),
        ));
    }
    let password = credentials.password;
    let password_hash = tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|_| ApiError::internal("password hashing failed"))?;
    let user = User { id: new_id("usr"), email: email.clone(), password_hash, created_at: now_ms() };
    match app.store.create_user(&user).await {
        Ok(()) => Ok((
            StatusCode::CREATED,
            Json(json!({ "id": user.id, "email": user.email, "created_at": user.created_at })),
        )),
        Err(StoreError::Conflict) => {
            Err(ApiError::new(StatusCode::CONFLICT, "email_taken", "an account with this email already exists; log in"))
        }
        Err(error) => Err(error.into()),
    }
}

pub async fn login(State(app): State<Arc<App>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let credentials: Credentials = parse_json(&body)?;
    let email = credentials.email.trim().to_ascii_lowercase();
    let user = app.store.user_by_email(&email).await?;
    let stored = user.as_ref().map(|user| user.password_hash.clone()).unwrap_or_else(|| passwords::decoy().to_string());
    let password = credentials.password;
    let matches = tokio::task::spawn_blocking(move || passwords::verify(&password, &stored))
        .await
        .map_err(|_| ApiError::internal("password check failed"))?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(ApiError::unauthorized("invalid_credentials", "wrong email or password"));
    };
    let issued = app.tokens.issue(&user.id, (now_ms() / 1000) as u64);
    Ok(Json(
        json!({ "token": issued.token, "expires_at": issued.expires_at, "user": { "id": user.id, "email": user.email } }),
    ))
}

pub async fn me(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let user = app
        .store
        .user_by_id(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown_user", "the account of this token no longer exists"))?;
    Ok(Json(json!({ "id": user.id, "email": user.email, "created_at": user.created_at })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
}

pub async fn create_key(
    State(app): State<Arc<App>>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: NewKey = parse_json(&body)?;
    let name = request.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request("invalid_name", "the key name must be 1 to 100 characters"));
    }
    let minted = api_keys::mint();
    let key = ApiKey {
        id: new_id("key"),
        user_id: caller.user_id,
        name: name.to_string(),
        prefix: minted.prefix.clone(),
        key_hash: minted.hash,
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    app.store.create_api_key(&key).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": key.id, "name": key.name, "key": minted.key, "prefix": key.prefix, "created_at": key.created_at }),
        ),
    ))
}

pub async fn list_keys(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let keys = app.store.api_keys(&caller.user_id).await?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|key| {
            json!({ "id": key.id, "name": key.name, "prefix": key.prefix, "created_at": key.created_at, "last_used_at": key.last_used_at })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

pub async fn revoke_key(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.revoke_api_key(&caller.user_id, &id, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("you have no API key {id}")))
    }
}
