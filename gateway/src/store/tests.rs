//! The SQLite store under concurrent writers, as the server runs it (the recorder writing
//! batches while a request deletes a function).

use std::sync::Arc;

use super::*;

fn function(id: &str) -> FunctionRecord {
    FunctionRecord {
        id: id.into(),
        name: id.replace('_', "-"),
        owner_id: "usr_1".into(),
        public: false,
        active_version: None,
        created_at: 0,
        updated_at: 0,
        sandbox_slot: None,
    }
}

fn log(function_id: &str) -> LogRecord {
    LogRecord {
        id: 0,
        function_id: function_id.into(),
        version: 1,
        invocation_id: None,
        timestamp_us: 1,
        stream: "stdout".into(),
        message: "line".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_succeed_while_log_batches_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = connect(&format!("sqlite://{}", dir.path().join("s.db").display()), 8).await.unwrap();
    store.migrate().await.unwrap();
    store
        .create_user(&User {
            id: "usr_1".into(),
            email: "a@b.c".into(),
            password_hash: "x".into(),
            created_at: 0,
            is_admin: false,
            disabled_at: None,
        })
        .await
        .unwrap();
    let writer_store: Arc<dyn Store> = store.clone();
    let writer = tokio::spawn(async move {
        let batch: Vec<LogRecord> = (0..50).map(|_| log("fn_busy")).collect();
        for _ in 0..300 {
            writer_store.insert_logs(&batch).await.unwrap();
        }
    });
    for i in 0..40 {
        let id = format!("fn_{i}");
        store.create_function(&function(&id)).await.unwrap();
        store.insert_logs(&[log(&id)]).await.unwrap();
        store.delete_function(&id).await.unwrap_or_else(|error| panic!("delete {i} failed: {error}"));
        assert!(store.function_by_id(&id).await.unwrap().is_none());
    }
    writer.await.unwrap();
}

fn rejection(second: i64, count: i64) -> RejectionRecord {
    RejectionRecord { function_id: "fn_1".into(), version: 1, outcome: "queue_full".into(), second, count }
}

fn invocation(id: &str) -> InvocationRecord {
    InvocationRecord {
        id: id.into(),
        function_id: "fn_1".into(),
        version: 1,
        outcome: "ok".into(),
        status: 200,
        error_code: None,
        cold: false,
        queue_us: 0,
        exec_us: 1,
        peak_memory_bytes: None,
        bytes_in: 0,
        bytes_out: 0,
        started_at: 1,
    }
}

/// The stores to test: SQLite, and PostgreSQL when `scripts/test` started one (a fresh database).
async fn stores(dir: &std::path::Path) -> Vec<Arc<dyn Store>> {
    let mut stores = vec![connect(&format!("sqlite://{}", dir.join("s.db").display()), 4).await.unwrap()];
    match std::env::var("CONTAINERPUB_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("store_{}", crate::auth::new_time_ordered_id("t").to_lowercase().replace('_', ""));
            let pool = sqlx::PgPool::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
            let (server, _) = admin.rsplit_once('/').unwrap();
            stores.push(connect(&format!("{server}/{name}"), 4).await.unwrap());
        }
        Err(_) => {
            eprintln!("skipped: PostgreSQL part (CONTAINERPUB_TEST_POSTGRES_URL is not set; scripts/test sets it)")
        }
    }
    for store in &stores {
        store.migrate().await.unwrap();
    }
    stores
}

/// A replayed journal segment holds the refusal counts of several batches, some of the same
/// second: they add up (PostgreSQL refused the whole segment, forever, when one statement
/// updated a row twice), and the segment goes in whole or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_segment_goes_in_whole_with_its_counts_added() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(dir.path()).await {
        // Chunks of 2 and 1: the two rows of second 100 in one statement.
        let counts = [rejection(100, 3), rejection(100, 4), rejection(101, 1)];
        store.insert_records(&[invocation("inv_1")], &[log("fn_1")], &counts).await.unwrap();
        store.add_rejections(&counts).await.unwrap();
        let mut stored = store.rejections("fn_1", 10).await.unwrap();
        stored.sort_by_key(|row| row.second);
        assert_eq!(
            stored.iter().map(|row| (row.second, row.count)).collect::<Vec<_>>(),
            vec![(100, 14), (101, 2)],
            "{}",
            store.kind()
        );
        if store.kind() == "postgres" {
            // PostgreSQL refuses a NUL in text: the invocation of the same call is not kept either.
            let mut bad = log("fn_1");
            bad.message = "nul\0byte".into();
            assert!(store.insert_records(&[invocation("inv_2")], &[bad], &[]).await.is_err());
            let kept = store.invocations("fn_1", 10).await.unwrap();
            assert!(kept.iter().all(|row| row.id != "inv_2"), "a refused segment wrote part of itself");
        }
    }
}
