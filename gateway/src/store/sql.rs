//! The queries, written once and expanded for each database by `sql_store!`. They use `$n`
//! placeholders, which both SQLite and PostgreSQL accept, and only types both decode alike.
//! (sqlx's `Any` driver is avoided on purpose: see the brief, decision 6.)

use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{
    ApiKey, FunctionDatabaseRecord, FunctionRecord, Invite, InvocationRecord, LogRecord, NodeRecord, RejectionRecord,
    SecretRecord, Store, StoreError, StoreResult, User, VersionRecord, CHANGES_CHANNEL,
};

/// Rows per multi-row INSERT at most: well under SQLite's bound-parameter limit (13 columns × 256).
const BATCH_ROWS: usize = 256;

/// `rows` in chunks whose sizes come from a fixed set (`BATCH_ROWS`, then powers of two below it),
/// so every multi-row INSERT is one of a few statements, prepared once per connection and then
/// found in sqlx's statement cache. A chunk of whatever size was pending made a statement never
/// seen before almost every batch, parsed and planned again: 18 µs a row at one connection.
fn chunks_of_cached_sizes<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = rows.len().min(BATCH_ROWS);
        if size == 0 {
            return None;
        }
        let (chunk, rest) = rows.split_at(1 << size.ilog2());
        rows = rest;
        Some(chunk)
    })
}

fn conflict_or(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(error),
    }
}

#[cfg(test)]
mod chunk_tests {
    #[test]
    fn chunks_have_sizes_from_a_fixed_set_and_cover_every_row() {
        let rows: Vec<usize> = (0..700).collect();
        let sizes: Vec<usize> = super::chunks_of_cached_sizes(&rows).map(<[usize]>::len).collect();
        assert_eq!(sizes, [256, 256, 128, 32, 16, 8, 4]);
        let joined: Vec<usize> = super::chunks_of_cached_sizes(&rows).flatten().copied().collect();
        assert_eq!(joined, rows);
        assert_eq!(super::chunks_of_cached_sizes::<usize>(&[]).count(), 0);
    }
}

#[derive(Debug)]
pub struct SqliteStore {
    pub pool: sqlx::Pool<Sqlite>,
}

const INSERT_INVOCATIONS: &str = "INSERT INTO function_invocations (id, function_id, version, outcome, status, \
     error_code, cold, queue_us, exec_us, peak_memory_bytes, bytes_in, bytes_out, started_at) ";
/// A record written before (a replayed journal) is not doubled.
const INVOCATIONS_TAIL: &str = " ON CONFLICT (id) DO NOTHING";
const INSERT_LOGS: &str =
    "INSERT INTO function_logs (function_id, version, invocation_id, timestamp_us, stream, message) ";
const INSERT_REJECTIONS: &str = "INSERT INTO function_rejections (function_id, version, outcome, second, count) ";
const REJECTIONS_TAIL: &str = " ON CONFLICT (function_id, version, outcome, second) \
     DO UPDATE SET count = function_rejections.count + excluded.count";

/// One row per (function, version, outcome, second), counts added: one statement may not update
/// a row twice (PostgreSQL refuses it), and a journal holds the counts of several batches.
fn merge_rejections(rows: &[RejectionRecord]) -> Vec<RejectionRecord> {
    let mut merged: Vec<RejectionRecord> = Vec::with_capacity(rows.len());
    let mut index = std::collections::HashMap::new();
    for row in rows {
        let key = (row.function_id.as_str(), row.version, row.outcome.as_str(), row.second);
        match index.get(&key) {
            Some(&at) => {
                let existing: &mut RejectionRecord = &mut merged[at];
                existing.count += row.count;
            }
            None => {
                index.insert(key, merged.len());
                merged.push(row.clone());
            }
        }
    }
    merged
}

#[derive(Debug)]
pub struct PostgresStore {
    pub pool: sqlx::Pool<Postgres>,
}

macro_rules! sql_store {
    ($store:ident, $db:ty, $kind:literal, $migrations:literal) => {
        impl $store {
            /// The recorder's rows: one transaction a batch (written whole or refused whole,
            /// committed once). See `insert_rows`.
            async fn insert_in_batch<T>(
                &self,
                insert: &str,
                rows: &[T],
                bind: impl FnMut(sqlx::query_builder::Separated<'_, 'static, $db, &'static str>, &T),
                tail: &str,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                Self::insert_rows(&mut tx, insert, rows, bind, tail).await?;
                tx.commit().await?;
                Ok(())
            }

            /// Multi-row INSERTs of `insert` + VALUES + `tail` in `tx`, in chunks of the few sizes
            /// whose statements stay cached.
            async fn insert_rows<T>(
                tx: &mut sqlx::Transaction<'static, $db>,
                insert: &str,
                rows: &[T],
                mut bind: impl FnMut(sqlx::query_builder::Separated<'_, 'static, $db, &'static str>, &T),
                tail: &str,
            ) -> StoreResult<()> {
                for chunk in chunks_of_cached_sizes(rows) {
                    let mut query = QueryBuilder::<$db>::new(insert);
                    query.push_values(chunk, &mut bind);
                    query.push(tail);
                    query.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            fn bind_invocation(
                mut row: sqlx::query_builder::Separated<'_, 'static, $db, &'static str>,
                record: &InvocationRecord,
            ) {
                row.push_bind(record.id.clone())
                    .push_bind(record.function_id.clone())
                    .push_bind(record.version)
                    .push_bind(record.outcome.clone())
                    .push_bind(record.status)
                    .push_bind(record.error_code.clone())
                    .push_bind(record.cold)
                    .push_bind(record.queue_us)
                    .push_bind(record.exec_us)
                    .push_bind(record.peak_memory_bytes)
                    .push_bind(record.bytes_in)
                    .push_bind(record.bytes_out)
                    .push_bind(record.started_at);
            }

            fn bind_log(mut row: sqlx::query_builder::Separated<'_, 'static, $db, &'static str>, record: &LogRecord) {
                row.push_bind(record.function_id.clone())
                    .push_bind(record.version)
                    .push_bind(record.invocation_id.clone())
                    .push_bind(record.timestamp_us)
                    .push_bind(record.stream.clone())
                    .push_bind(record.message.clone());
            }

            fn bind_rejection(
                mut row: sqlx::query_builder::Separated<'_, 'static, $db, &'static str>,
                record: &RejectionRecord,
            ) {
                row.push_bind(record.function_id.clone())
                    .push_bind(record.version)
                    .push_bind(record.outcome.clone())
                    .push_bind(record.second)
                    .push_bind(record.count);
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn kind(&self) -> &'static str {
                $kind
            }

            async fn migrate(&self) -> StoreResult<()> {
                sqlx::migrate!($migrations).run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_user(&self, user: &User) -> StoreResult<User> {
                sqlx::query(
                    "INSERT INTO users (id, email, password_hash, created_at, is_admin) \
                     SELECT $1, $2, $3, $4, NOT EXISTS (SELECT 1 FROM users)",
                )
                .bind(&user.id)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(user.created_at)
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
                Ok(self.user_by_id(&user.id).await?.expect("the account was just stored"))
            }

            async fn has_users(&self) -> StoreResult<bool> {
                let found: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM users LIMIT 1").fetch_optional(&self.pool).await?;
                Ok(found.is_some())
            }

            async fn users(&self) -> StoreResult<Vec<User>> {
                Ok(sqlx::query_as::<$db, User>("SELECT * FROM users ORDER BY created_at, id")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn set_user_disabled(&self, id: &str, disabled_at: Option<i64>) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
                    .bind(disabled_at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn put_secret(&self, secret: &SecretRecord) -> StoreResult<bool> {
                let existed: Option<(String,)> =
                    sqlx::query_as("SELECT name FROM function_secrets WHERE function_id = $1 AND name = $2")
                        .bind(&secret.function_id)
                        .bind(&secret.name)
                        .fetch_optional(&self.pool)
                        .await?;
                sqlx::query(
                    "INSERT INTO function_secrets (function_id, name, sealed, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (function_id, name) \
                     DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                )
                .bind(&secret.function_id)
                .bind(&secret.name)
                .bind(&secret.sealed)
                .bind(secret.created_at)
                .bind(secret.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(existed.is_none())
            }

            async fn secrets(&self, function_id: &str) -> StoreResult<Vec<SecretRecord>> {
                Ok(sqlx::query_as::<$db, SecretRecord>(
                    "SELECT * FROM function_secrets WHERE function_id = $1 ORDER BY name",
                )
                .bind(function_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn delete_secret(&self, function_id: &str, name: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM function_secrets WHERE function_id = $1 AND name = $2")
                    .bind(function_id)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn function_database(&self, function_id: &str) -> StoreResult<Option<FunctionDatabaseRecord>> {
                Ok(sqlx::query_as::<$db, FunctionDatabaseRecord>(
                    "SELECT * FROM function_databases WHERE function_id = $1",
                )
                .bind(function_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn put_function_database(&self, record: &FunctionDatabaseRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO function_databases (function_id, role, sealed_password, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&record.function_id)
                .bind(&record.role)
                .bind(&record.sealed_password)
                .bind(record.created_at)
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
                Ok(())
            }

            async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO invites (code_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&invite.code_hash)
                .bind(&invite.created_by)
                .bind(invite.created_at)
                .bind(invite.expires_at)
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
                Ok(())
            }

            async fn use_invite(&self, code_hash: &str, now_ms: i64, user_id: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE invites SET used_at = $1, used_by = $2 \
                     WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now_ms)
                .bind(user_id)
                .bind(code_hash)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_invite(&self, code_hash: &str) -> StoreResult<()> {
                sqlx::query("UPDATE invites SET used_at = NULL, used_by = NULL WHERE code_hash = $1")
                    .bind(code_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as::<$db, User>("SELECT * FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as::<$db, User>("SELECT * FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at, scope, functions, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&key.id)
                .bind(&key.user_id)
                .bind(&key.name)
                .bind(&key.prefix)
                .bind(&key.key_hash)
                .bind(key.created_at)
                .bind(&key.scope)
                .bind(&key.functions)
                .bind(key.expires_at)
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
                Ok(())
            }

            async fn api_keys(&self, user_id: &str) -> StoreResult<Vec<ApiKey>> {
                Ok(sqlx::query_as::<$db, ApiKey>(
                    "SELECT * FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>> {
                Ok(sqlx::query_as::<$db, ApiKey>("SELECT * FROM api_keys WHERE prefix = $1")
                    .bind(prefix)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn revoke_api_key(&self, user_id: &str, id: &str, now_ms: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                )
                .bind(now_ms)
                .bind(id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn touch_api_key(&self, id: &str, now_ms: i64) -> StoreResult<()> {
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_function(&self, function: &FunctionRecord) -> StoreResult<FunctionRecord> {
                // The next sandbox slot is taken in the same statement. Two PostgreSQL sessions can
                // compute the same slot at once: the unique index refuses one, which tries again
                // unless it was the name that collided.
                for _attempt in 0..5 {
                    let inserted = sqlx::query(
                        "INSERT INTO functions (id, name, owner_id, public, active_version, created_at, updated_at, sandbox_slot) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT COALESCE(MAX(sandbox_slot), -1) + 1 FROM functions))",
                    )
                    .bind(&function.id)
                    .bind(&function.name)
                    .bind(&function.owner_id)
                    .bind(function.public)
                    .bind(function.active_version)
                    .bind(function.created_at)
                    .bind(function.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict_or);
                    match inserted {
                        Ok(_) => break,
                        Err(StoreError::Conflict) if self.function_by_name(&function.name).await?.is_none() => continue,
                        Err(error) => return Err(error),
                    }
                }
                self.function_by_id(&function.id).await?.ok_or(StoreError::Conflict)
            }

            async fn function_by_name(&self, name: &str) -> StoreResult<Option<FunctionRecord>> {
                Ok(sqlx::query_as::<$db, FunctionRecord>("SELECT * FROM functions WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn function_by_id(&self, id: &str) -> StoreResult<Option<FunctionRecord>> {
                Ok(sqlx::query_as::<$db, FunctionRecord>("SELECT * FROM functions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn functions_of(&self, owner_id: &str) -> StoreResult<Vec<FunctionRecord>> {
                Ok(sqlx::query_as::<$db, FunctionRecord>("SELECT * FROM functions WHERE owner_id = $1 ORDER BY name")
                    .bind(owner_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn functions_with_active_version(&self) -> StoreResult<Vec<FunctionRecord>> {
                Ok(sqlx::query_as::<$db, FunctionRecord>(
                    "SELECT * FROM functions WHERE active_version IS NOT NULL ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn active_functions(&self) -> StoreResult<Vec<(FunctionRecord, VersionRecord)>> {
                let functions = self.functions_with_active_version().await?;
                let mut active = Vec::with_capacity(functions.len());
                for function in functions {
                    let number = function.active_version.expect("filtered on active_version");
                    if let Some(version) = self.version(&function.id, number).await? {
                        active.push((function, version));
                    }
                }
                Ok(active)
            }

            async fn activate(&self, function_id: &str, version: i64, public: bool, now_ms: i64) -> StoreResult<i64> {
                let revision = sqlx::query_scalar::<$db, i64>(
                    "UPDATE functions SET active_version = $1, public = $2, updated_at = $3, revision = revision + 1 \
                     WHERE id = $4 RETURNING revision",
                )
                .bind(version)
                .bind(public)
                .bind(now_ms)
                .bind(function_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(revision.unwrap_or(0))
            }

            async fn announce(&self, id: &str) -> StoreResult<()> {
                if $kind == "postgres" {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANGES_CHANNEL)
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                }
                Ok(())
            }

            async fn artifact_known(&self, sha256: &str) -> StoreResult<bool> {
                Ok(sqlx::query_scalar::<$db, i64>("SELECT size_bytes FROM artifacts WHERE sha256 = $1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
                    .await?
                    .is_some())
            }

            async fn artifact_chunk_count(&self, sha256: &str) -> StoreResult<Option<i64>> {
                Ok(sqlx::query_scalar::<$db, Option<i64>>("SELECT chunks FROM artifacts WHERE sha256 = $1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
                    .await?
                    .flatten())
            }

            async fn put_artifact_chunk(&self, sha256: &str, seq: i64, data: &[u8]) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO artifact_chunks (sha256, seq, data) VALUES ($1, $2, $3) \
                     ON CONFLICT (sha256, seq) DO NOTHING",
                )
                .bind(sha256)
                .bind(seq)
                .bind(data)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn finish_artifact(&self, sha256: &str, chunks: i64) -> StoreResult<()> {
                sqlx::query("UPDATE artifacts SET chunks = $1 WHERE sha256 = $2")
                    .bind(chunks)
                    .bind(sha256)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn artifact_chunk(&self, sha256: &str, seq: i64) -> StoreResult<Option<Vec<u8>>> {
                Ok(sqlx::query_scalar::<$db, Vec<u8>>("SELECT data FROM artifact_chunks WHERE sha256 = $1 AND seq = $2")
                    .bind(sha256)
                    .bind(seq)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn delete_function(&self, function_id: &str) -> StoreResult<Vec<String>> {
                let mut tx = self.pool.begin().await?;
                // A write first: in SQLite's WAL mode a transaction that reads and then writes
                // after another connection committed fails at once with SQLITE_BUSY (its snapshot
                // is stale), where a transaction that starts by writing waits for the lock.
                for table in
                    ["function_logs", "function_invocations", "function_rejections", "function_secrets", "function_databases"]
                {
                    sqlx::query(&format!("DELETE FROM {table} WHERE function_id = $1"))
                        .bind(function_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let used: Vec<(String,)> =
                    sqlx::query_as("SELECT DISTINCT artifact_sha256 FROM function_versions WHERE function_id = $1")
                        .bind(function_id)
                        .fetch_all(&mut *tx)
                        .await?;
                sqlx::query("DELETE FROM function_versions WHERE function_id = $1")
                    .bind(function_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM functions WHERE id = $1").bind(function_id).execute(&mut *tx).await?;
                let mut freed = Vec::new();
                for (sha256,) in used {
                    let still_used: Option<(i64,)> =
                        sqlx::query_as("SELECT version FROM function_versions WHERE artifact_sha256 = $1 LIMIT 1")
                            .bind(&sha256)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if still_used.is_none() {
                        sqlx::query("DELETE FROM artifacts WHERE sha256 = $1").bind(&sha256).execute(&mut *tx).await?;
                        sqlx::query("DELETE FROM artifact_chunks WHERE sha256 = $1")
                            .bind(&sha256)
                            .execute(&mut *tx)
                            .await?;
                        freed.push(sha256);
                    }
                }
                tx.commit().await?;
                Ok(freed)
            }

            async fn put_artifact(&self, sha256: &str, size_bytes: i64, now_ms: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO artifacts (sha256, size_bytes, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (sha256) DO NOTHING",
                )
                .bind(sha256)
                .bind(size_bytes)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn next_version(&self, function_id: &str) -> StoreResult<i64> {
                let (last,): (Option<i64>,) =
                    sqlx::query_as("SELECT MAX(version) FROM function_versions WHERE function_id = $1")
                        .bind(function_id)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(last.unwrap_or(0) + 1)
            }

            async fn create_version(&self, version: &VersionRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO function_versions (function_id, version, artifact_sha256, runtime, entry_file, \
                     entry_mode, settings, analysis, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&version.function_id)
                .bind(version.version)
                .bind(&version.artifact_sha256)
                .bind(&version.runtime)
                .bind(&version.entry_file)
                .bind(&version.entry_mode)
                .bind(&version.settings)
                .bind(&version.analysis)
                .bind(version.created_at)
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
                Ok(())
            }

            async fn versions(&self, function_id: &str) -> StoreResult<Vec<VersionRecord>> {
                Ok(sqlx::query_as::<$db, VersionRecord>(
                    "SELECT * FROM function_versions WHERE function_id = $1 ORDER BY version",
                )
                .bind(function_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn version(&self, function_id: &str, version: i64) -> StoreResult<Option<VersionRecord>> {
                Ok(sqlx::query_as::<$db, VersionRecord>(
                    "SELECT * FROM function_versions WHERE function_id = $1 AND version = $2",
                )
                .bind(function_id)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn insert_invocations(&self, rows: &[InvocationRecord]) -> StoreResult<()> {
                self.insert_in_batch(INSERT_INVOCATIONS, rows, Self::bind_invocation, INVOCATIONS_TAIL).await
            }

            async fn insert_logs(&self, rows: &[LogRecord]) -> StoreResult<()> {
                self.insert_in_batch(INSERT_LOGS, rows, Self::bind_log, "").await
            }

            async fn add_rejections(&self, rows: &[RejectionRecord]) -> StoreResult<()> {
                let rows = merge_rejections(rows);
                self.insert_in_batch(INSERT_REJECTIONS, &rows, Self::bind_rejection, REJECTIONS_TAIL).await
            }

            async fn insert_records(
                &self,
                invocations: &[InvocationRecord],
                logs: &[LogRecord],
                rejections: &[RejectionRecord],
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                Self::insert_rows(&mut tx, INSERT_INVOCATIONS, invocations, Self::bind_invocation, INVOCATIONS_TAIL)
                    .await?;
                Self::insert_rows(&mut tx, INSERT_LOGS, logs, Self::bind_log, "").await?;
                let rejections = merge_rejections(rejections);
                Self::insert_rows(&mut tx, INSERT_REJECTIONS, &rejections, Self::bind_rejection, REJECTIONS_TAIL)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn shared_setting(&self, name: &str, proposed: &str, now_ms: i64) -> StoreResult<String> {
                sqlx::query(
                    "INSERT INTO cluster_settings (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(proposed)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(sqlx::query_scalar::<$db, String>("SELECT value FROM cluster_settings WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn heartbeat(&self, node: &NodeRecord, stale_before_ms: i64) -> StoreResult<bool> {
                let written = sqlx::query(
                    "INSERT INTO cluster_nodes (node_id, address, started_at, heartbeat_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (node_id) DO UPDATE SET address = excluded.address, \
                     started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at \
                     WHERE (cluster_nodes.address = excluded.address AND cluster_nodes.started_at = excluded.started_at) \
                     OR cluster_nodes.heartbeat_at < $5",
                )
                .bind(&node.node_id)
                .bind(&node.address)
                .bind(node.started_at)
                .bind(node.heartbeat_at)
                .bind(stale_before_ms)
                .execute(&self.pool)
                .await?;
                Ok(written.rows_affected() == 1)
            }

            async fn leave(&self, node: &NodeRecord) -> StoreResult<()> {
                sqlx::query("DELETE FROM cluster_nodes WHERE node_id = $1 AND address = $2")
                    .bind(&node.node_id)
                    .bind(&node.address)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn nodes_seen_since(&self, since_ms: i64) -> StoreResult<Vec<NodeRecord>> {
                Ok(sqlx::query_as::<$db, NodeRecord>(
                    "SELECT * FROM cluster_nodes WHERE heartbeat_at >= $1 ORDER BY node_id",
                )
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn rejections(&self, function_id: &str, limit: i64) -> StoreResult<Vec<RejectionRecord>> {
                Ok(sqlx::query_as::<$db, RejectionRecord>(
                    "SELECT * FROM function_rejections WHERE function_id = $1 ORDER BY second DESC, outcome LIMIT $2",
                )
                .bind(function_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn invocations(&self, function_id: &str, limit: i64) -> StoreResult<Vec<InvocationRecord>> {
                Ok(sqlx::query_as::<$db, InvocationRecord>(
                    "SELECT * FROM function_invocations WHERE function_id = $1 ORDER BY started_at DESC, id LIMIT $2",
                )
                .bind(function_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn logs(&self, function_id: &str, after_id: i64, since_us: i64, limit: i64) -> StoreResult<Vec<LogRecord>> {
                Ok(sqlx::query_as::<$db, LogRecord>(
                    "SELECT * FROM function_logs WHERE function_id = $1 AND id > $2 AND timestamp_us >= $3 \
                     ORDER BY id LIMIT $4",
                )
                .bind(function_id)
                .bind(after_id)
                .bind(since_us)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn prune_logs_before(&self, before_us: i64) -> StoreResult<u64> {
                let deleted = sqlx::query("DELETE FROM function_logs WHERE timestamp_us < $1")
                    .bind(before_us)
                    .execute(&self.pool)
                    .await?;
                Ok(deleted.rows_affected())
            }

            async fn functions_with_logs_over(&self, max_bytes: i64, row_overhead: i64) -> StoreResult<Vec<String>> {
                let over: Vec<(String,)> = sqlx::query_as(
                    "SELECT function_id FROM function_logs GROUP BY function_id \
                     HAVING sum(length(message) + $2) > $1",
                )
                .bind(max_bytes)
                .bind(row_overhead)
                .fetch_all(&self.pool)
                .await?;
                Ok(over.into_iter().map(|(function_id,)| function_id).collect())
            }

            async fn prune_logs_to_size(&self, function_id: &str, max_bytes: i64, row_overhead: i64) -> StoreResult<u64> {
                // The newest line that no longer fits, counting back from the newest: it and
                // every older line go.
                let cut: Option<(i64,)> = sqlx::query_as(
                    "SELECT id FROM (SELECT id, sum(length(message) + $2) OVER (ORDER BY id DESC) AS kept \
                     FROM function_logs WHERE function_id = $1) AS newest_first \
                     WHERE kept > $3 ORDER BY id DESC LIMIT 1",
                )
                .bind(function_id)
                .bind(row_overhead)
                .bind(max_bytes)
                .fetch_optional(&self.pool)
                .await?;
                let Some((cut,)) = cut else { return Ok(0) };
                let deleted = sqlx::query("DELETE FROM function_logs WHERE function_id = $1 AND id <= $2")
                    .bind(function_id)
                    .bind(cut)
                    .execute(&self.pool)
                    .await?;
                Ok(deleted.rows_affected())
            }

            async fn prune_invocations_before(&self, before_ms: i64) -> StoreResult<u64> {
                let invocations = sqlx::query("DELETE FROM function_invocations WHERE started_at < $1")
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                let rejections = sqlx::query("DELETE FROM function_rejections WHERE second < $1")
                    .bind(before_ms / 1000)
                    .execute(&self.pool)
                    .await?;
                Ok(invocations.rows_affected() + rejections.rows_affected())
            }

            async fn tail_logs(&self, function_id: &str, since_us: i64, limit: i64) -> StoreResult<Vec<LogRecord>> {
                let mut newest_first = sqlx::query_as::<$db, LogRecord>(
                    "SELECT * FROM function_logs WHERE function_id = $1 AND timestamp_us >= $2 \
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(function_id)
                .bind(since_us)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                newest_first.reverse();
                Ok(newest_first)
            }
        }
    };
}

sql_store!(SqliteStore, Sqlite, "sqlite", "../migrations/sqlite");
sql_store!(PostgresStore, Postgres, "postgres", "../migrations/postgres");
