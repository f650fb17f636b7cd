//! Administration: accounts (list, create, disable, enable) and one-time invitations. Every
//! route needs an administrator's token or an admin key (`AdminCaller`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::accounts::{create_account, hashed_password, normalized_email};
use super::error::{parse_json, ApiError};
use super::AdminCaller;
use crate::app::{now_ms, App};
use crate::auth::{invites, random_bytes};
use crate::store::{Invite, User};

fn account_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "admin": user.is_admin,
        "disabled_at": user.disabled_at,
        "created_at": user.created_at,
    })
}

pub async fn list_users(State(app): State<Arc<App>>, _admin: AdminCaller) -> Result<Json<Value>, ApiError> {
    let users: Vec<Value> = app.store.users().await?.iter().map(account_json).collect();
    Ok(Json(json!({ "users": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    email: String,
    /// When absent, one is generated and returned once.
    #[serde(default)]
    password: Option<String>,
}

pub async fn create_user(
    State(app): State<Arc<App>>,
    _admin: AdminCaller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: NewAccount = parse_json(&body)?;
    let email = normalized_email(&request.email)?;
    let generated = request.password.is_none().then(|| hex::encode(random_bytes::<12>()));
    let password = request.password.or_else(|| generated.clone()).expect("one of the two is set");
    let user = create_account(&app, email, hashed_password(password).await?, None).await?;
    let mut answer = account_json(&user);
    if let Some(password) = generated {
        answer["password"] = Value::from(password);
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn set_disabled(app: &App, admin: &AdminCaller, id: &str, disabled: bool) -> Result<Json<Value>, ApiError> {
    if disabled && admin.0.user_id == id {
        return Err(ApiError::bad_request("invalid_request", "an administrator cannot disable their own account"));
    }
    let at = disabled.then(now_ms);
    if !app.store.set_user_disabled(id, at).await? {
        return Err(ApiError::not_found(format!("no account {id:?}")));
    }
    // At once: this account's tokens, keys and public functions stop working on the next request.
    app.accounts.set_disabled(id, disabled);
    crate::cluster::sync::announce(app, id).await;
    tracing::info!(account = %id, disabled, by = %admin.0.user_id, "account changed");
    let user = app.store.user_by_id(id).await?.ok_or_else(|| ApiError::not_found(format!("no account {id:?}")))?;
    Ok(Json(account_json(&user)))
}

pub async fn disable_user(
    State(app): State<Arc<App>>,
    admin: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(&app, &admin, &id, true).await
}

pub async fn enable_user(
    State(app): State<Arc<App>>,
    admin: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(&app, &admin, &id, false).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewInvite {
    /// How long the code stays usable; default `[auth] invite_ttl_seconds`.
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

pub async fn create_invite(
    State(app): State<Arc<App>>,
    admin: AdminCaller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: NewInvite = if body.is_empty() { NewInvite::default() } else { parse_json(&body)? };
    let ttl = request.ttl_seconds.unwrap_or(app.config.auth.invite_ttl_seconds);
    if ttl == 0 || ttl > 365 * 24 * 3600 {
        return Err(ApiError::bad_request("invalid_field", "ttl_seconds must be 1 to 31536000 (a year)"));
    }
    let code = invites::mint();
    let now = now_ms();
    let invite = Invite {
        code_hash: invites::hash(&code),
        created_by: admin.0.user_id.clone(),
        created_at: now,
        expires_at: now + (ttl as i64) * 1000,
        used_at: None,
        used_by: None,
    };
    app.store.create_invite(&invite).await?;
    Ok((StatusCode::CREATED, Json(json!({ "code": code, "expires_at": invite.expires_at }))))
}
