//! Who is calling: `Authorization: Bearer <token or API key>` or `X-API-Key: <key>`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::ApiError;
use crate::app::{now_ms, App};
use crate::auth::api_keys;
use crate::auth::tokens::TokenError;

/// An authenticated user. As an extractor it answers 401 when credentials are missing or bad.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        match authenticate(app, &parts.headers).await? {
            Some(caller) => Ok(caller),
            None => Err(ApiError::unauthorized(
                "unauthenticated",
                "this needs a token or an API key: send `Authorization: Bearer …` (get a token from POST /api/auth/login)",
            )),
        }
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
    if credential.starts_with(api_keys::KEY_PREFIX) {
        let user_id = check_api_key(app, &credential).await?;
        return Ok(Some(Caller { user_id }));
    }
    match app.tokens.verify(&credential) {
        Ok(user_id) => Ok(Some(Caller { user_id })),
        Err(TokenError::Expired) => Err(ApiError::unauthorized("token_expired", "the token has expired; log in again")),
        Err(TokenError::Invalid) => {
            Err(ApiError::unauthorized("invalid_token", "the token is not valid; log in again"))
        }
    }
}

async fn check_api_key(app: &App, key: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::unauthorized("invalid_api_key", "the API key is not valid");
    let prefix = api_keys::prefix_of(key).ok_or_else(invalid)?;
    let stored = app.store.api_key_by_prefix(prefix).await?.ok_or_else(invalid)?;
    if !api_keys::hashes_match(&api_keys::hash(key), &stored.key_hash) {
        return Err(invalid());
    }
    if stored.revoked_at.is_some() {
        return Err(ApiError::unauthorized("api_key_revoked", "the API key was revoked; create a new one"));
    }
    // Off the request path: a slow database must not slow every keyed call.
    let store = app.store.clone();
    tokio::spawn(async move {
        let _ = store.touch_api_key(&stored.id, now_ms()).await;
    });
    Ok(stored.user_id)
}
