//! Registration, login, the current user, and API keys.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{parse_json, ApiError};
use super::Caller;
use crate::app::{now_ms, App};
use crate::auth::scopes::Scope;
use crate::auth::{api_keys, invites, new_id, passwords};
use crate::config::Registration as RegistrationPolicy;
use crate::store::{ApiKey, StoreError, User};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    email: String,
    password: String,
    /// A one-time invitation from an administrator.
    #[serde(default)]
    invite: Option<String>,
}

/// Where a request came from, set by the front door (for login throttling).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<std::net::IpAddr>);

pub(super) fn normalized_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_ascii_lowercase();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !plausible {
        return Err(ApiError::bad_request("invalid_email", "email must look like name@example.com"));
    }
    Ok(email)
}

/// Checks the password's length and hashes it off the async threads.
pub(super) async fn hashed_password(password: String) -> Result<String, ApiError> {
    let length = password.chars().count();
    if !(passwords::MIN_LENGTH..=passwords::MAX_LENGTH).contains(&length) {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("the password must be {} to {} characters", passwords::MIN_LENGTH, passwords::MAX_LENGTH),
        ));
    }
    tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|_| ApiError::internal("password hashing failed"))
}

/// Stores a new account; `invite` (a code's hash) is used up by it. 409 when the email is taken.
pub(super) async fn create_account(
    app: &App,
    email: String,
    password_hash: String,
    invite: Option<&str>,
) -> Result<User, ApiError> {
    let user =
        User { id: new_id("usr"), email, password_hash, created_at: now_ms(), is_admin: false, disabled_at: None };
    if let Some(code_hash) = invite {
        if !app.store.use_invite(code_hash, now_ms(), &user.id).await? {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_invite",
                "this invitation is unknown, used or expired; ask an administrator for a new one",
            ));
        }
    }
    match app.store.create_user(&user).await {
        Ok(stored) => {
            app.accounts.record(&stored);
            crate::cluster::sync::announce(app, &stored.id).await;
            Ok(stored)
        }
        Err(error) => {
            if let Some(code_hash) = invite {
                let _ = app.store.release_invite(code_hash).await;
            }
            match error {
                StoreError::Conflict => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "email_taken",
                    "an account with this email already exists; log in",
                )),
                other => Err(other.into()),
            }
        }
    }
}

pub async fn register(State(app): State<Arc<App>>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: Registration = parse_json(&body)?;
    let email = normalized_email(&request.email)?;
    let invite = request.invite.as_deref().map(str::trim).filter(|code| !code.is_empty()).map(invites::hash);
    // The first account of an empty server is always possible: it becomes the administrator.
    if invite.is_none() && app.store.has_users().await? && app.config.auth.registration != RegistrationPolicy::Open {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "registration_closed",
            "registration is closed on this server: ask an administrator for an invitation, then `dart_cloud register --invite CODE`",
        ));
    }
    let password_hash = hashed_password(request.password).await?;
    let user = create_account(&app, email, password_hash, invite.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": user.id, "email": user.email, "admin": user.is_admin, "created_at": user.created_at })),
    ))
}

pub async fn login(
    State(app): State<Arc<App>>,
    client: Option<Extension<ClientAddress>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let address = client.and_then(|Extension(ClientAddress(address))| address);
    let credentials: Credentials = parse_json(&body)?;
    let email = credentials.email.trim().to_ascii_lowercase();
    if let Some(wait) = app.login_throttle.wait(&email, address, std::time::Instant::now()) {
        app.metrics.count_login("throttled");
        let seconds = wait.as_secs().max(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many wrong passwords: try again in {seconds} s"),
        )
        .retry_after(seconds));
    }
    let user = app.store.user_by_email(&email).await?;
    let stored = user.as_ref().map(|user| user.password_hash.clone()).unwrap_or_else(|| passwords::decoy().to_string());
    let password = credentials.password;
    let matches = tokio::task::spawn_blocking(move || passwords::verify(&password, &stored))
        .await
        .map_err(|_| ApiError::internal("password check failed"))?;
    let Some(user) = user.filter(|_| matches) else {
        app.login_throttle.failed(&email, address, std::time::Instant::now());
        app.metrics.count_login("failed");
        return Err(ApiError::unauthorized("invalid_credentials", "wrong email or password"));
    };
    app.login_throttle.succeeded(&email);
    if user.disabled_at.is_some() {
        return Err(super::caller::account_disabled());
    }
    app.metrics.count_login("ok");
    let issued = app.tokens.issue(&user.id, (now_ms() / 1000) as u64);
    Ok(Json(json!({
        "token": issued.token,
        "expires_at": issued.expires_at,
        "user": { "id": user.id, "email": user.email, "admin": user.is_admin },
    })))
}

pub async fn me(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let user = app
        .store
        .user_by_id(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown_user", "the account of this token no longer exists"))?;
    Ok(Json(json!({
        "id": user.id,
        "email": user.email,
        "admin": user.is_admin,
        "scope": caller.scope.as_str(),
        "created_at": user.created_at,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// `invoke` (default), `deploy` or `admin`.
    #[serde(default)]
    scope: Option<String>,
    /// The only functions the key may use.
    #[serde(default)]
    functions: Option<Vec<String>>,
    /// Unix milliseconds after which the key stops working.
    #[serde(default)]
    expires_at: Option<i64>,
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
    let scope = match request.scope.as_deref() {
        None => Scope::Invoke,
        Some(text) => text.parse::<Scope>().map_err(|message| ApiError::bad_request("invalid_scope", message))?,
    };
    // A credential never makes a key that can do more than itself (an admin key needs an
    // administrator's token or admin key).
    caller.require(scope)?;
    let functions = match request.functions {
        Some(names) if names.is_empty() => {
            return Err(ApiError::bad_request("invalid_field", "functions must name at least one function"))
        }
        Some(names) => {
            if let Some(bad) = names.iter().find(|name| !crate::app::valid_function_name(name)) {
                return Err(ApiError::bad_request("invalid_field", format!("{bad:?} is not a function name")));
            }
            if let Some(limited) = &caller.functions {
                if let Some(outside) = names.iter().find(|name| !limited.contains(name)) {
                    caller.may_use(outside)?;
                }
            }
            Some(names)
        }
        None => caller.functions.clone(),
    };
    if request.expires_at.is_some_and(|expires_at| expires_at <= now_ms()) {
        return Err(ApiError::bad_request("invalid_field", "expires_at must be in the future (Unix milliseconds)"));
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
        scope: scope.as_str().to_string(),
        functions: functions.as_ref().map(|names| serde_json::to_string(names).expect("names serialize")),
        expires_at: request.expires_at,
    };
    app.store.create_api_key(&key).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": key.id,
            "name": key.name,
            "key": minted.key,
            "prefix": key.prefix,
            "scope": key.scope,
            "functions": functions,
            "expires_at": key.expires_at,
            "created_at": key.created_at,
        })),
    ))
}

pub async fn list_keys(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let keys = app.store.api_keys(&caller.user_id).await?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|key| {
            let functions = key.functions.as_deref().and_then(|names| serde_json::from_str::<Value>(names).ok());
            json!({
                "id": key.id,
                "name": key.name,
                "prefix": key.prefix,
                "scope": key.scope,
                "functions": functions,
                "expires_at": key.expires_at,
                "created_at": key.created_at,
                "last_used_at": key.last_used_at,
            })
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
