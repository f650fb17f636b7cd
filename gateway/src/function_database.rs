//! The PostgreSQL database functions may use (`FUNCTION_DATABASE_URL`). Its limits are enforced
//! by PostgreSQL itself, on the role the URL names (which only functions should use): at start
//! the server sets that role's `CONNECTION LIMIT` (`FUNCTION_DB_MAX_CONNECTIONS`, across all
//! functions) and its default `statement_timeout` (`FUNCTION_DB_TIMEOUT_MS`). Functions get the
//! URL as `DATABASE_URL` and the timeout as `DB_TIMEOUT_MS`.

use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::config::FunctionDatabaseConfig;

pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// What was enforced, for `/healthz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FunctionDatabaseStatus {
    pub configured: bool,
    pub connection_limit: Option<u32>,
    pub statement_timeout_ms: Option<u64>,
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
    // Numbers only are interpolated (DDL takes no bind parameters).
    if let Some(limit) = config.max_connections {
        match sqlx::query(&format!("ALTER ROLE CURRENT_USER CONNECTION LIMIT {limit}")).execute(&mut connection).await {
            Ok(_) => status.connection_limit = Some(limit),
            Err(error) => status.problems.push(format!(
                "cannot set the connection limit ({error}); grant the role CREATEROLE or run: ALTER ROLE <role> CONNECTION LIMIT {limit}"
            )),
        }
    }
    let timeout = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
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
