//! Who is calling: `Authorization: Bearer <token or API key>` or `X-API-Key: <key>`, and what
//! that credential may do (`auth::scopes`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use axum::http::StatusCode;

use super::error::ApiError;
use crate::app::{now_ms, App};
use crate::auth::api_keys;
use crate::auth::scopes::Scope;
use crate::auth::tokens::TokenError;

/// An authenticated account and what its credential may do. As an extractor it answers 401
/// when credentials are missing or bad, and 403 `insufficient_scope` for a key that may only
/// invoke: the control plane needs `deploy`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub scope: Scope,
    /// The functions an API key is limited to; `None`: all of the account's.
    pub functions: Option<Vec<String>>,
}

impl Caller {
    /// 403 `insufficient_scope` unless the credential has at least `needed`.
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.scope >= needed {
            return Ok(());
        }
        let advice = match needed {
            Scope::Admin => "only administrators' tokens and admin keys may do this".to_string(),
            _ => format!("use your login or a key made with `dart_cloud keys create NAME --scope {}`", needed.as_str()),
        };
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this needs the {} scope and this key has {}: {advice}", needed.as_str(), self.scope.as_str()),
        ))
    }

    /// 403 `insufficient_scope` when the key is limited to other functions.
    pub fn may_use(&self, function: &str) -> Result<(), ApiError> {
        match &self.functions {
            Some(allowed) if !allowed.iter().any(|name| name == function) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this key is limited to {} and may not use {function:?}", allowed.join(", ")),
            )),
            _ => Ok(()),
        }
    }
}

fn unauthenticated() -> ApiError {
    ApiError::unauthorized(
        "unauthenticated",
        "this needs a token or an API key: send `Authorization: Bearer …` (get a token from POST /api/auth/login)",
    )
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let caller = authenticate(app, &parts.headers).await?.ok_or_else(unauthenticated)?;
        caller.require(Scope::Deploy)?;
        Ok(caller)
    }
}

/// An administrator's token or admin key.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Caller);

impl FromRequestParts<Arc<App>> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let caller = authenticate(app, &parts.headers).await?.ok_or_else(unauthenticated)?;
        caller.require(Scope::Admin)?;
        Ok(AdminCaller(caller))
    }
}

/// `Ok(None)` when no credential was sent; an error when one was sent and is not valid.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let credential = if let Some(value) = headers.get("authorization") {
        let text = value.to_str().unwrap_or("");
        let Some(credential) = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")) else {
            return Err(ApiError::unauthorized("invalid_token", "the Authorization header must be `Bearer <token>`"));
        };
        credential.trim().to_string()
    } else if let Some(value) = headers.get("x-api-key") {
        value.to_str().unwrap_or("").trim().to_string()
    } else {
        return Ok(None);
    };
    let caller = if credential.starts_with(api_keys::KEY_PREFIX) {
        check_api_key(app, &credential).await?
    } else {
        match app.tokens.verify(&credential) {
            Ok(user_id) => {
                Caller { scope: Scope::of_account(app.accounts.is_admin(&user_id)), user_id, functions: None }
            }
            Err(TokenError::Expired) => {
                return Err(ApiError::unauthorized("token_expired", "the token has expired; log in again"))
            }
            Err(TokenError::Invalid) => {
                return Err(ApiError::unauthorized("invalid_token", "the token is not valid; log in again"))
            }
        }
    };
    if app.accounts.is_disabled(&caller.user_id) {
        return Err(account_disabled());
    }
    Ok(Some(caller))
}

pub fn account_disabled() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "account_disabled", "this account is disabled; ask an administrator")
}

async fn check_api_key(app: &App, key: &str) -> Result<Caller, ApiError> {
    let invalid = || ApiError::unauthorized("invalid_api_key", "the API key is not valid");
    let prefix = api_keys::prefix_of(key).ok_or_else(invalid)?;
    let stored = app.store.api_key_by_prefix(prefix).await?.ok_or_else(invalid)?;
    if !api_keys::hashes_match(&api_keys::hash(key), &stored.key_hash) {
        return Err(invalid());
    }
    if stored.revoked_at.is_some() {
        return Err(ApiError::unauthorized("api_key_revoked", "the API key was revoked; create a new one"));
    }
    if stored.expires_at.is_some_and(|expires_at| expires_at <= now_ms()) {
        return Err(ApiError::unauthorized("api_key_expired", "the API key has expired; create a new one"));
    }
    // Never more than the account's role: an admin key of an account that is no longer one
    // can deploy, not administer.
    let role = Scope::of_account(app.accounts.is_admin(&stored.user_id));
    let scope = stored.scope.parse::<Scope>().unwrap_or(Scope::Invoke).min(role);
    // A list that does not read limits the key to nothing: fail closed, never open.
    let functions =
        stored.functions.as_deref().map(|names| serde_json::from_str::<Vec<String>>(names).unwrap_or_default());
    // Off the request path: a slow database must not slow every keyed call.
    let store = app.store.clone();
    tokio::spawn(async move {
        let _ = store.touch_api_key(&stored.id, now_ms()).await;
    });
    Ok(Caller { user_id: stored.user_id, scope, functions })
}
