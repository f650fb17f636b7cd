//! The HTTP API as an axum router. It is called in-process by the pingora front door
//! (`front_door.rs`), which owns connections, timeouts and shutdown. Function URLs (`/fn/NAME…`)
//! are the one exception: the front door calls [`function_url`] directly.

mod accounts;
mod admin;
mod caller;
mod deploy;
pub mod error;
mod function_reply;
mod functions;
mod invoke;
mod log_follow;
mod observe;
mod secrets;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::app::App;

pub use accounts::ClientAddress;
pub use caller::{AdminCaller, Caller};
pub use invoke::{function_url, FunctionUrl};

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(observe::healthz))
        // The seed served its health check here.
        .route("/health", get(observe::healthz))
        .route("/metrics", get(observe::metrics))
        .route("/api/auth/register", post(accounts::register))
        .route("/api/auth/login", post(accounts::login))
        .route("/api/auth/me", get(accounts::me))
        .route("/api/keys", post(accounts::create_key).get(accounts::list_keys))
        .route("/api/keys/{id}", delete(accounts::revoke_key))
        .route("/api/admin/users", get(admin::list_users).post(admin::create_user))
        .route("/api/admin/users/{id}/disable", post(admin::disable_user))
        .route("/api/admin/users/{id}/enable", post(admin::enable_user))
        .route("/api/admin/invites", post(admin::create_invite))
        .route("/api/functions", get(functions::list))
        // The front door caps a deploy's body at `[deploy] max_archive_bytes` (plus the form's
        // framing); axum's own 2 MB default for multipart bodies would refuse most real uploads.
        .route("/api/functions/deploy", post(deploy::deploy).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/api/functions/{name}", get(functions::info).delete(functions::delete))
        .route("/api/functions/{name}/versions", get(functions::versions))
        .route("/api/functions/{name}/rollback", post(functions::rollback))
        .route("/api/functions/{name}/invoke", post(invoke::api_invoke))
        .route("/api/functions/{name}/logs", get(observe::logs))
        .route("/api/functions/{name}/invocations", get(observe::invocations))
        .route("/api/functions/{name}/secrets", get(secrets::list))
        .route("/api/functions/{name}/secrets/{secret}", axum::routing::put(secrets::put).delete(secrets::delete))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

async fn not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::not_found(format!(
        "no route for {}; the API lives under /api and functions under /fn/NAME",
        uri.path()
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
