//! The PostgreSQL database functions may use (`FUNCTION_DATABASE_URL`). Limits are PostgreSQL's
//! own, set on roles: `CONNECTION LIMIT` (`FUNCTION_DB_MAX_CONNECTIONS`) and a default
//! `statement_timeout` (`FUNCTION_DB_TIMEOUT_MS`). Functions get their URL as `DATABASE_URL` and
//! the timeout as `DB_TIMEOUT_MS`.
//!
//! **Per function** (when the configured role may create roles and schemas in the database):
//! each function gets its own role and a schema of the same name at its first deploy, dropped
//! with the function. The role owns only its schema, `search_path` is that schema, its password
//! is generated and stored sealed (like a secret), and the limits are set on it: one function's
//! connections and slow statements are its own. No function can read, write or drop another's
//! tables. **Shared** (otherwise, with a warning): every function uses the configured role, as
//! the seed did, and the limits are set on that role.
//!
//! Only the function roles (and the configured role, its owner) may CONNECT to the functions'
//! database: PUBLIC loses CONNECT and TEMPORARY on it. The configured role is made a member of
//! each function role, so [`watchdog`] can see and end their statements whatever they `SET`.

use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::app::App;
use crate::config::FunctionDatabaseConfig;
use crate::store::{current_database_identifier, quoted_identifier, FunctionDatabaseRecord, FunctionRecord};

pub mod watchdog;

pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// The seed's pool of 5 connections, per function.
pub const DEFAULT_CONNECTIONS_PER_FUNCTION: u32 = 5;
pub const PER_FUNCTION: &str = "per-function";
pub const SHARED: &str = "shared";

/// The configured role may make a role and a schema per function.
async fn can_make_roles_and_schemas(connection: &mut PgConnection) -> bool {
    let allowed: Result<(bool,), _> = sqlx::query_as(
        "SELECT (rolcreaterole OR rolsuper) AND has_database_privilege(current_database(), 'CREATE') \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(connection)
    .await;
    allowed.is_ok_and(|(allowed,)| allowed)
}

/// The most connections a deploy may ask for, per function.
pub const DEFAULT_MAX_CONNECTIONS_PER_FUNCTION: u32 = 20;

/// The function's own `DATABASE_URL`, making its role and schema on first use and setting its
/// connection limit (`connections`, the version's own, or the server's default); `None` when the
/// server shares one role among functions (or has no function database).
pub async fn ensure(app: &App, function: &FunctionRecord, connections: Option<u32>) -> anyhow::Result<Option<String>> {
    let (Some(manager_url), Some(PER_FUNCTION)) = (&app.config.function_database.url, app.function_database.mode)
    else {
        return Ok(None);
    };
    let record = match app.store.function_database(&function.id).await? {
        Some(record) => record,
        None => create(app, manager_url, function).await?,
    };
    // Each start: a role made before these grants existed gets them too, and the version may ask
    // for its own connection limit (checked against the server's maximum at deploy). Failing
    // leaves the role as it was: the function still starts.
    let altered = async {
        let mut manager = PgConnection::connect(manager_url).await?;
        for statement in membership_and_connect(&mut manager, &record.role).await? {
            sqlx::query(&statement).execute(&mut manager).await?;
        }
        if let Some(limit) = connections {
            sqlx::query(&format!("ALTER ROLE {} CONNECTION LIMIT {limit}", record.role)).execute(&mut manager).await?;
        }
        let _ = manager.close().await;
        anyhow::Ok(())
    };
    if let Err(error) = altered.await {
        tracing::warn!(function = %function.name, %error, "cannot set the function database role's grants or connection limit");
    }
    let password = app.secrets.open(&function.id, PASSWORD_NAME, &record.sealed_password)?;
    Ok(Some(role_url(manager_url, &record.role, &password)?))
}

/// The grants a function role needs beside its own: CONNECT on the functions' database (PUBLIC
/// has none), and the configured role's membership in it (for the watchdog).
async fn membership_and_connect(manager: &mut PgConnection, role: &str) -> anyhow::Result<[String; 3]> {
    let (database, manager_role): (String, String) =
        sqlx::query_as("SELECT current_database(), current_user::text").fetch_one(&mut *manager).await?;
    Ok([
        format!("GRANT CONNECT ON DATABASE {} TO {role}", quoted_identifier(&database)),
        format!("GRANT {role} TO CURRENT_USER"),
        format!("GRANT {} TO {role}", quoted_identifier(&function_roles_group(&manager_role))),
    ])
}

/// The group every function role of this server is a member of (`NOLOGIN`, no privileges): one
/// name for `pg_hba.conf` to keep them out of every other database (`+GROUP … reject`). Named
/// after the configured role, so servers sharing a cluster have their own.
pub fn function_roles_group(manager_role: &str) -> String {
    let mut group: String = manager_role.chars().take(48).collect();
    group.push_str("_functions");
    group
}

/// Makes the group when it is missing.
async fn ensure_function_roles_group(connection: &mut PgConnection) -> anyhow::Result<String> {
    let (manager_role,): (String,) = sqlx::query_as("SELECT current_user::text").fetch_one(&mut *connection).await?;
    let group = function_roles_group(&manager_role);
    let (exists,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(&group)
        .fetch_one(&mut *connection)
        .await?;
    if !exists {
        // The configured role's name is the operator's: quoted, not trusted.
        sqlx::query(&format!("CREATE ROLE {} NOLOGIN", quoted_identifier(&group))).execute(&mut *connection).await?;
    }
    Ok(group)
}

/// The name under which a function role's password is sealed.
const PASSWORD_NAME: &str = "function-database-password";

fn role_name(function: &FunctionRecord) -> String {
    // `fn_` + 32 hex: the role (and schema) is `cpfn_` + 24 of them, a plain identifier.
    let hex: String = function.id.chars().filter(char::is_ascii_hexdigit).take(24).collect();
    format!("cpfn_{hex}")
}

fn role_url(manager_url: &str, role: &str, password: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(manager_url)?;
    url.set_username(role).map_err(|()| anyhow::anyhow!("FUNCTION_DATABASE_URL cannot carry a user name"))?;
    url.set_password(Some(password)).map_err(|()| anyhow::anyhow!("FUNCTION_DATABASE_URL cannot carry a password"))?;
    Ok(url.to_string())
}

async fn create(app: &App, manager_url: &str, function: &FunctionRecord) -> anyhow::Result<FunctionDatabaseRecord> {
    let role = role_name(function);
    let password = hex::encode(crate::auth::random_bytes::<24>());
    let config = &app.config.function_database;
    let limit = config.max_connections.unwrap_or(DEFAULT_CONNECTIONS_PER_FUNCTION);
    let timeout = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let mut manager = PgConnection::connect(manager_url).await?;
    let database = current_database_identifier(&mut manager).await?;
    // Identifiers and the password are generated here (hex), numbers are ours: nothing a user
    // wrote is interpolated into these statements (DDL takes no bind parameters).
    for statement in [
        format!("CREATE ROLE {role} LOGIN NOINHERIT PASSWORD '{password}' CONNECTION LIMIT {limit}"),
        format!("ALTER ROLE {role} SET statement_timeout = {timeout}"),
        format!("ALTER ROLE {role} SET search_path = {role}"),
        format!("GRANT CREATE ON DATABASE {database} TO {role}"),
    ]
    .into_iter()
    .chain(membership_and_connect(&mut manager, &role).await?)
    {
        sqlx::query(&statement).execute(&mut manager).await?;
    }
    // The schema is made by the role itself (the configured role need not be a member of it),
    // then the role loses the right to make more.
    let mut own = PgConnection::connect(&role_url(manager_url, &role, &password)?).await?;
    sqlx::query(&format!("CREATE SCHEMA {role}")).execute(&mut own).await?;
    let _ = own.close().await;
    sqlx::query(&format!("REVOKE CREATE ON DATABASE {database} FROM {role}")).execute(&mut manager).await?;
    let _ = manager.close().await;
    let record = FunctionDatabaseRecord {
        function_id: function.id.clone(),
        role: role.clone(),
        sealed_password: app.secrets.seal(&function.id, PASSWORD_NAME, &password),
        created_at: crate::app::now_ms(),
    };
    app.store.put_function_database(&record).await?;
    tracing::info!(function = %function.name, role = %role, "made the function's database role and schema");
    Ok(record)
}

/// Drops the function's schema (with its tables) and role. Problems are logged: the function is
/// gone either way.
pub async fn drop_for(app: &App, function: &FunctionRecord) {
    let Some(manager_url) = &app.config.function_database.url else { return };
    let Ok(Some(record)) = app.store.function_database(&function.id).await else { return };
    let dropped = async {
        let password = app.secrets.open(&function.id, PASSWORD_NAME, &record.sealed_password)?;
        let mut own = PgConnection::connect(&role_url(manager_url, &record.role, &password)?).await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", record.role)).execute(&mut own).await?;
        let _ = own.close().await;
        let mut manager = PgConnection::connect(manager_url).await?;
        // Its CONNECT grant depends on the role: the grant goes first.
        let database = current_database_identifier(&mut manager).await?;
        sqlx::query(&format!("REVOKE CONNECT ON DATABASE {database} FROM {}", record.role))
            .execute(&mut manager)
            .await?;
        sqlx::query(&format!("DROP ROLE IF EXISTS {}", record.role)).execute(&mut manager).await?;
        let _ = manager.close().await;
        anyhow::Ok(())
    };
    if let Err(error) = dropped.await {
        tracing::warn!(function = %function.name, role = %record.role, %error, "cannot drop the function's database role");
    }
}

/// The private memory a function backend may use (work_mem is a session's own to raise).
pub const DEFAULT_MAX_BACKEND_MB: u64 = 512;

async fn other_databases_open(connection: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    let open: Vec<(String,)> = sqlx::query_as(
        "SELECT datname::text FROM pg_database WHERE datallowconn AND datname <> current_database() \
         AND has_database_privilege('public', datname, 'CONNECT') ORDER BY datname",
    )
    .fetch_all(connection)
    .await?;
    Ok(open.into_iter().map(|(name,)| name).collect())
}

/// The watchdog's view of the configuration, once the mode is known.
pub fn watched(config: &FunctionDatabaseConfig, status: &FunctionDatabaseStatus) -> Option<watchdog::Watched> {
    Some(watchdog::Watched {
        per_function_roles: status.mode? == PER_FUNCTION,
        statement_timeout: Duration::from_millis(config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
        max_backend_bytes: config.max_backend_mb.unwrap_or(DEFAULT_MAX_BACKEND_MB) << 20,
    })
}

/// What was enforced, for `/healthz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FunctionDatabaseStatus {
    pub configured: bool,
    /// `per-function` (a role and schema each) or `shared` (one role for all); absent when no
    /// function database is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    pub connection_limit: Option<u32>,
    pub statement_timeout_ms: Option<u64>,
    /// A function backend whose private memory passes this is ended (when PostgreSQL runs on
    /// this host); absent when no function database is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backend_mb: Option<u64>,
    /// Other databases of the cluster that PUBLIC may still CONNECT to: the relay keeps
    /// functions out of them on this host's loopback; elsewhere only `pg_hba.conf` does.
    pub other_databases_open: Vec<String>,
    /// The group of this server's function roles, for `pg_hba.conf` (`+GROUP`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_roles_group: Option<String>,
    /// Why a limit could not be set (the server still starts: functions get the URL).
    pub problems: Vec<String>,
}

pub async fn enforce_limits(config: &FunctionDatabaseConfig) -> FunctionDatabaseStatus {
    let Some(url) = &config.url else { return FunctionDatabaseStatus::default() };
    let mut status = FunctionDatabaseStatus { configured: true, ..Default::default() };
    let connected = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await;
    let mut connection = match connected {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            status.problems.push(format!("cannot connect to FUNCTION_DATABASE_URL: {error}"));
            return status;
        }
        Err(_) => {
            status.problems.push("cannot connect to FUNCTION_DATABASE_URL within 10 s".into());
            return status;
        }
    };
    let per_function = can_make_roles_and_schemas(&mut connection).await;
    status.mode = Some(if per_function { PER_FUNCTION } else { SHARED });
    let timeout = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if per_function {
        // The limits are set on each function's own role when it is made (`ensure`).
        status.connection_limit = Some(config.max_connections.unwrap_or(DEFAULT_CONNECTIONS_PER_FUNCTION));
        status.statement_timeout_ms = Some(timeout);
        // Before PostgreSQL 15 everyone may create tables in `public`; functions keep to their schema.
        if let Err(error) = sqlx::query("REVOKE CREATE ON SCHEMA public FROM PUBLIC").execute(&mut connection).await {
            status.problems.push(format!("cannot revoke CREATE on schema public from PUBLIC: {error}"));
        }
        // Only roles granted CONNECT (the function roles, and the owner) may log in there.
        if let Err(error) = crate::store::close_database_to_public(&mut connection).await {
            status.problems.push(format!(
                "cannot revoke CONNECT on the functions' database from PUBLIC ({error}), or make the FUNCTION_DATABASE_URL role its owner"
            ));
        }
        match ensure_function_roles_group(&mut connection).await {
            Ok(group) => status.function_roles_group = Some(group),
            Err(error) => status.problems.push(format!("cannot make the function roles' group: {error}")),
        }
        status.other_databases_open = other_databases_open(&mut connection).await.unwrap_or_default();
        status.max_backend_mb = Some(config.max_backend_mb.unwrap_or(DEFAULT_MAX_BACKEND_MB));
        let _ = connection.close().await;
        for problem in &status.problems {
            tracing::warn!(problem, "function database");
        }
        return status;
    }
    status.problems.push(
        "the function database role cannot create roles and schemas (grant it CREATEROLE and CREATE on the database): every function shares one role and can read the others' tables".into(),
    );
    // Numbers only are interpolated (DDL takes no bind parameters).
    if let Some(limit) = config.max_connections {
        match sqlx::query(&format!("ALTER ROLE CURRENT_USER CONNECTION LIMIT {limit}")).execute(&mut connection).await {
            Ok(_) => status.connection_limit = Some(limit),
            Err(error) => status.problems.push(format!(
                "cannot set the connection limit ({error}); grant the role CREATEROLE or run: ALTER ROLE <role> CONNECTION LIMIT {limit}"
            )),
        }
    }
    match sqlx::query(&format!("ALTER ROLE CURRENT_USER SET statement_timeout = {timeout}"))
        .execute(&mut connection)
        .await
    {
        Ok(_) => status.statement_timeout_ms = Some(timeout),
        Err(error) => status.problems.push(format!("cannot set the statement timeout: {error}")),
    }
    let _ = connection.close().await;
    for problem in &status.problems {
        tracing::warn!(problem, "function database limits");
    }
    status
}
