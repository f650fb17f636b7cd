//! Persistence: one [`Store`] trait, implemented for SQLite (the embedded default) and
//! PostgreSQL (production). Both schemas have the same row shapes (text ids, integer times,
//! JSON as text), so one set of queries, written once in `sql.rs`, serves both.

mod records;
mod sql;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions;

pub use records::*;

/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (an email or a function name already taken).
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The PostgreSQL notification channel on which nodes announce a changed function or account (its id).
pub const CHANGES_CHANNEL: &str = "containerpub_changes";

/// Everything the server keeps.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`, for `/healthz` and logs.
    fn kind(&self) -> &'static str;
    async fn migrate(&self) -> StoreResult<()>;
    /// A round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// Stores a new account; it is the administrator when it is the server's first (decided in
    /// the same statement). Returns the stored row.
    async fn create_user(&self, user: &User) -> StoreResult<User>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    async fn has_users(&self) -> StoreResult<bool>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Sets or clears `disabled_at`; false when there is no such account.
    async fn set_user_disabled(&self, id: &str, disabled_at: Option<i64>) -> StoreResult<bool>;

    async fn create_invite(&self, invite: &Invite) -> StoreResult<()>;
    /// Marks an unused, unexpired invitation used; false when there is none to use.
    async fn use_invite(&self, code_hash: &str, now_ms: i64, user_id: &str) -> StoreResult<bool>;
    /// Makes a used invitation usable again (its account could not be created).
    async fn release_invite(&self, code_hash: &str) -> StoreResult<()>;

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn api_keys(&self, user_id: &str) -> StoreResult<Vec<ApiKey>>;
    async fn api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>>;
    /// Marks a key revoked; false when the user has no such live key.
    async fn revoke_api_key(&self, user_id: &str, id: &str, now_ms: i64) -> StoreResult<bool>;
    async fn touch_api_key(&self, id: &str, now_ms: i64) -> StoreResult<()>;

    /// Stores a new function and gives it the next sandbox slot; returns the stored record.
    async fn create_function(&self, function: &FunctionRecord) -> StoreResult<FunctionRecord>;
    async fn function_by_name(&self, name: &str) -> StoreResult<Option<FunctionRecord>>;
    async fn function_by_id(&self, id: &str) -> StoreResult<Option<FunctionRecord>>;
    async fn functions_of(&self, owner_id: &str) -> StoreResult<Vec<FunctionRecord>>;
    /// Every function with an active version (the cluster's reconcile compares them).
    async fn functions_with_active_version(&self) -> StoreResult<Vec<FunctionRecord>>;
    /// Every function with an active version, and that version, for warming pools at start-up.
    async fn active_functions(&self) -> StoreResult<Vec<(FunctionRecord, VersionRecord)>>;
    /// Makes `version` the active one and updates the function's settings that live on it;
    /// returns the function's new revision.
    async fn activate(&self, function_id: &str, version: i64, public: bool, now_ms: i64) -> StoreResult<i64>;
    /// Tells the other nodes that the function or account `id` changed (PostgreSQL `NOTIFY` on
    /// [`CHANGES_CHANNEL`]; nothing with SQLite, which has one node).
    async fn announce(&self, id: &str) -> StoreResult<()>;
    /// Deletes the function, its versions, invocations and logs, and the artifact rows no
    /// version uses any more; returns the hashes of those artifacts so their files can go.
    async fn delete_function(&self, function_id: &str) -> StoreResult<Vec<String>>;

    async fn put_artifact(&self, sha256: &str, size_bytes: i64, now_ms: i64) -> StoreResult<()>;
    /// Whether an artifact row exists (some version uses the archive, or a deploy is storing it).
    async fn artifact_known(&self, sha256: &str) -> StoreResult<bool>;
    /// How many chunks the archive has in the store, once all are in; `None` before.
    async fn artifact_chunk_count(&self, sha256: &str) -> StoreResult<Option<i64>>;
    /// Stores one chunk of an archive (again: nothing happens, the content is the same).
    async fn put_artifact_chunk(&self, sha256: &str, seq: i64, data: &[u8]) -> StoreResult<()>;
    /// Marks the archive complete: its `chunks` chunks are all in.
    async fn finish_artifact(&self, sha256: &str, chunks: i64) -> StoreResult<()>;
    async fn artifact_chunk(&self, sha256: &str, seq: i64) -> StoreResult<Option<Vec<u8>>>;
    async fn next_version(&self, function_id: &str) -> StoreResult<i64>;
    async fn create_version(&self, version: &VersionRecord) -> StoreResult<()>;
    async fn versions(&self, function_id: &str) -> StoreResult<Vec<VersionRecord>>;
    async fn version(&self, function_id: &str, version: i64) -> StoreResult<Option<VersionRecord>>;

    /// Stores or replaces a sealed secret; true when it is new.
    async fn put_secret(&self, secret: &SecretRecord) -> StoreResult<bool>;
    /// The function's secrets, sealed, by name.
    async fn secrets(&self, function_id: &str) -> StoreResult<Vec<SecretRecord>>;
    /// False when the function has no such secret.
    async fn delete_secret(&self, function_id: &str, name: &str) -> StoreResult<bool>;

    async fn function_database(&self, function_id: &str) -> StoreResult<Option<FunctionDatabaseRecord>>;
    async fn put_function_database(&self, record: &FunctionDatabaseRecord) -> StoreResult<()>;

    async fn insert_invocations(&self, rows: &[InvocationRecord]) -> StoreResult<()>;
    async fn insert_logs(&self, rows: &[LogRecord]) -> StoreResult<()>;
    /// Adds each row's count to what that function, version, outcome and second already has.
    async fn add_rejections(&self, rows: &[RejectionRecord]) -> StoreResult<()>;
    /// The cluster-wide setting `name`: `proposed` when no node has set it yet (first writer
    /// wins, also among nodes starting together), else what was set.
    async fn shared_setting(&self, name: &str, proposed: &str, now_ms: i64) -> StoreResult<String>;
    /// Records that `node` is alive now (its `heartbeat_at`); false, writing nothing, when
    /// another process (another address or start time) holds its id with a heartbeat at
    /// `stale_before_ms` or later: two nodes given the same id.
    async fn heartbeat(&self, node: &NodeRecord, stale_before_ms: i64) -> StoreResult<bool>;
    /// Removes `node`'s heartbeat (it is stopping): the others split the caps without it at
    /// their next beat instead of after `cluster::GONE_AFTER`.
    async fn leave(&self, node: &NodeRecord) -> StoreResult<()>;
    /// The nodes whose last heartbeat is at `since_ms` or later.
    async fn nodes_seen_since(&self, since_ms: i64) -> StoreResult<Vec<NodeRecord>>;
    /// Invocation records, log lines and refusal counts in one transaction: all or none (a
    /// replayed journal segment, retried until it is in, must not write its log lines twice).
    async fn insert_records(
        &self,
        invocations: &[InvocationRecord],
        logs: &[LogRecord],
        rejections: &[RejectionRecord],
    ) -> StoreResult<()>;
    /// Newest first.
    async fn invocations(&self, function_id: &str, limit: i64) -> StoreResult<Vec<InvocationRecord>>;
    /// The function's refusals by second, newest first.
    async fn rejections(&self, function_id: &str, limit: i64) -> StoreResult<Vec<RejectionRecord>>;
    /// Oldest first: lines with `id > after_id` and `timestamp_us >= since_us`.
    async fn logs(&self, function_id: &str, after_id: i64, since_us: i64, limit: i64) -> StoreResult<Vec<LogRecord>>;
    /// The last `limit` lines at or after `since_us`, oldest first (what `logs` shows first).
    async fn tail_logs(&self, function_id: &str, since_us: i64, limit: i64) -> StoreResult<Vec<LogRecord>>;

    // Retention (`crate::retention`).
    /// Deletes log lines older than `before_us`; how many.
    async fn prune_logs_before(&self, before_us: i64) -> StoreResult<u64>;
    /// The functions whose log lines pass `max_bytes` (each line's length + `row_overhead`).
    async fn functions_with_logs_over(&self, max_bytes: i64, row_overhead: i64) -> StoreResult<Vec<String>>;
    /// Deletes a function's oldest lines until the rest fit in `max_bytes`; how many.
    async fn prune_logs_to_size(&self, function_id: &str, max_bytes: i64, row_overhead: i64) -> StoreResult<u64>;
    /// Deletes invocation records started before `before_ms`, and refusal counts as old; how many.
    async fn prune_invocations_before(&self, before_ms: i64) -> StoreResult<u64>;
}

/// sqlx's note of a statement slower than 1 s, with the statement's whole text: a record batch
/// is 256 rows of placeholders, so during a database outage every batch wrote 30 KB at WARN
/// (the recorder says what failed in one line). Shown with `RUST_LOG=info`.
const SLOW_STATEMENTS: log::LevelFilter = log::LevelFilter::Info;

/// Opens the store a `DATABASE_URL` names: `sqlite://PATH` (created when missing) or
/// `postgres://…`. Does not migrate.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .log_slow_statements(SLOW_STATEMENTS, Duration::from_secs(1));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Arc::new(sql::SqliteStore { pool }))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?
            .log_slow_statements(SLOW_STATEMENTS, Duration::from_secs(1));
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Arc::new(sql::PostgresStore { pool }))
    } else {
        anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres:// (got {url:?})")
    }
}

/// `name` as a quoted PostgreSQL identifier (`"…"`, inner quotes doubled): DDL takes no bind
/// parameters, and database and role names the operator chose are not trusted.
pub fn quoted_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The connection's database, quoted for DDL.
pub async fn current_database_identifier(connection: &mut sqlx::PgConnection) -> sqlx::Result<String> {
    let (database,): (String,) = sqlx::query_as("SELECT current_database()").fetch_one(connection).await?;
    Ok(quoted_identifier(&database))
}

/// `REVOKE CONNECT, TEMPORARY ON DATABASE <the connection's database> FROM PUBLIC`: then only
/// its owner, superusers and roles granted CONNECT may log in. Only the owner (or a superuser)
/// may run it; a refusal's error names the statement to run as the owner.
pub async fn close_database_to_public(connection: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let database = current_database_identifier(&mut *connection).await?;
    let statement = format!("REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC");
    sqlx::query(&statement)
        .execute(connection)
        .await
        .map_err(|error| anyhow::anyhow!("{error}; run as the database's owner: {statement}"))?;
    Ok(())
}

/// Keeps every role that was not granted CONNECT out of a PostgreSQL store's database: function
/// roles (which may live in the same cluster) must never read the store, or LISTEN to its change
/// notices. Roles the operator granted CONNECT explicitly keep it.
pub async fn close_postgres_store_to_public(url: &str) {
    let closed = async {
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
        let closed = close_database_to_public(&mut connection).await;
        let _ = sqlx::Connection::close(connection).await;
        closed
    };
    if let Err(error) = closed.await {
        tracing::warn!(%error, "every role of the store's PostgreSQL cluster may connect to the store's database");
    }
}

#[cfg(test)]
pub(crate) mod tests;
