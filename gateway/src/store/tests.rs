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
