//! Row types shared by both stores.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
    /// The first account of a server is its administrator; administrators make others.
    pub is_admin: bool,
    /// A disabled account's tokens, keys and public functions stop working.
    pub disabled_at: Option<i64>,
}

/// A one-time invitation to register (`[auth] registration`); only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Invite {
    pub code_hash: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, shown in listings and used to find the row.
    pub prefix: String,
    /// Hex SHA-256 of the whole key; the key itself is never stored.
    pub key_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// `invoke`, `deploy` or `admin` (see `auth::scopes`).
    pub scope: String,
    /// JSON array of the function names the key may use; `None`: all of its owner's.
    pub functions: Option<String>,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FunctionRecord {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub public: bool,
    pub active_version: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The function's sandbox uid is `[sandbox] uid_base` plus this; set by `create_function`.
    pub sandbox_slot: Option<i64>,
    /// Bumped by every activation: nodes compare it with what they route (see `cluster::sync`).
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionRecord {
    pub function_id: String,
    pub version: i64,
    pub artifact_sha256: String,
    pub runtime: String,
    pub entry_file: String,
    pub entry_mode: String,
    /// JSON: [`crate::functions::VersionSettings`].
    pub settings: String,
    /// JSON: the analyzer's report.
    pub analysis: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct InvocationRecord {
    pub id: String,
    pub function_id: String,
    pub version: i64,
    pub outcome: String,
    pub status: i64,
    pub error_code: Option<String>,
    pub cold: bool,
    pub queue_us: i64,
    pub exec_us: i64,
    pub peak_memory_bytes: Option<i64>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub started_at: i64,
}

/// Refused calls of one function version with one outcome in one second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RejectionRecord {
    pub function_id: String,
    pub version: i64,
    pub outcome: String,
    /// Unix seconds.
    pub second: i64,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct LogRecord {
    /// Assigned by the database; 0 before insertion.
    pub id: i64,
    pub function_id: String,
    pub version: i64,
    pub invocation_id: Option<String>,
    pub timestamp_us: i64,
    pub stream: String,
    pub message: String,
}

/// A function's secret, sealed (see `crate::secrets`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretRecord {
    pub function_id: String,
    pub name: String,
    pub sealed: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A function's own PostgreSQL role and schema (both named `role`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FunctionDatabaseRecord {
    pub function_id: String,
    pub role: String,
    pub sealed_password: String,
    pub created_at: i64,
}

/// A node of the platform, as its last heartbeat said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NodeRecord {
    pub node_id: String,
    /// Where it listens.
    pub address: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
}
