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
        revision: 0,
    }
}

/// The account `function`'s functions belong to.
fn owner() -> User {
    User {
        id: "usr_1".into(),
        email: "a@b.c".into(),
        password_hash: "x".into(),
        created_at: 0,
        is_admin: false,
        disabled_at: None,
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
    store.create_user(&owner()).await.unwrap();
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

pub(crate) fn invocation(id: &str) -> InvocationRecord {
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

/// A `.tar.gz` holding `main.py` and `blob.bin`, `blob_bytes` of bytes that do not compress, so
/// the archive spans several store chunks.
fn spanning_archive(blob_bytes: usize) -> Vec<u8> {
    let mut blob = Vec::with_capacity(blob_bytes);
    let mut block = [7u8; 32];
    while blob.len() < blob_bytes {
        block = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(block)).into();
        blob.extend_from_slice(&block);
    }
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, data) in [("main.py", &b"def handler(body):\n    return body\n"[..]), ("blob.bin", &blob[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// What one node deploys, another that never saw it fetches from the store chunk by chunk and
/// extracts; an archive whose stored bytes do not hash to its name is refused, leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_kept_in_the_store_is_materialized_on_another_node() {
    use crate::deploy::artifacts;
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let limits =
        crate::config::DeployLimits { max_archive_bytes: 8 << 20, max_expanded_bytes: 16 << 20, ..Default::default() };
    for store in stores(dir.path()).await {
        let archive = spanning_archive(2 * artifacts::CHUNK_BYTES + 1000);
        let sha = hex::encode(sha2::Sha256::digest(&archive));
        let (first, second) =
            (dir.path().join(format!("{}-1", store.kind())), dir.path().join(format!("{}-2", store.kind())));
        let (first_artifacts, second_artifacts) = (first.join("artifacts"), second.join("artifacts"));
        std::fs::create_dir_all(&first_artifacts).unwrap();
        std::fs::write(first_artifacts.join(format!("{sha}.tar.gz")), &archive).unwrap();
        store.put_artifact(&sha, archive.len() as i64, 0).await.unwrap();
        assert_eq!(store.artifact_chunk_count(&sha).await.unwrap(), None, "complete before it was published");
        artifacts::publish(store.as_ref(), &first_artifacts, &sha).await.unwrap();
        assert_eq!(store.artifact_chunk_count(&sha).await.unwrap(), Some(3));
        // Published again (the same archive deployed twice): nothing changes.
        artifacts::publish(store.as_ref(), &first_artifacts, &sha).await.unwrap();

        let functions = second.join("functions");
        artifacts::materialize(store.as_ref(), &second_artifacts, &functions, &sha, &limits).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(functions.join(&sha).join("main.py")).unwrap(),
            "def handler(body):\n    return body\n"
        );
        assert_eq!(std::fs::read(second_artifacts.join(format!("{sha}.tar.gz"))).unwrap(), archive);

        // Stored bytes that are not the archive their name says.
        let forged = "f".repeat(64);
        store.put_artifact(&forged, 10, 0).await.unwrap();
        store.put_artifact_chunk(&forged, 0, &archive[..1000]).await.unwrap();
        store.finish_artifact(&forged, 1).await.unwrap();
        let refused = artifacts::materialize(store.as_ref(), &second_artifacts, &functions, &forged, &limits).await;
        assert!(refused.unwrap_err().to_string().contains("hashes to"), "{}", store.kind());
        assert!(!functions.join(&forged).exists());
        let left: Vec<_> =
            std::fs::read_dir(&second_artifacts).unwrap().flatten().map(|entry| entry.file_name()).collect();
        assert_eq!(left.len(), 1, "a refused fetch left {left:?}");

        // An archive someone wrote into the database directly, with the right hash but a link
        // out of its tree: the deploy's checks refuse it on the way out as on the way in.
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "main.py", "/etc/shadow").unwrap();
        let hostile = builder.into_inner().unwrap().finish().unwrap();
        let hostile_sha = hex::encode(sha2::Sha256::digest(&hostile));
        store.put_artifact(&hostile_sha, hostile.len() as i64, 0).await.unwrap();
        store.put_artifact_chunk(&hostile_sha, 0, &hostile).await.unwrap();
        store.finish_artifact(&hostile_sha, 1).await.unwrap();
        let refused =
            artifacts::materialize(store.as_ref(), &second_artifacts, &functions, &hostile_sha, &limits).await;
        assert!(refused.unwrap_err().to_string().contains("is refused"), "{}", store.kind());
        assert!(!functions.join(&hostile_sha).exists());
        std::fs::remove_file(second_artifacts.join(format!("{hostile_sha}.tar.gz"))).unwrap();

        // The cache: files of artifacts the store no longer has go once they are old enough.
        let (gone, fresh) = ("a".repeat(64), "b".repeat(64));
        for sha in [&gone, &fresh] {
            std::fs::create_dir_all(functions.join(sha)).unwrap();
            std::fs::write(second_artifacts.join(format!("{sha}.tar.gz")), b"x").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - artifacts::PRUNE_AFTER * 2;
        for path in [functions.join(&gone), second_artifacts.join(format!("{gone}.tar.gz")), functions.join(&sha)] {
            std::fs::File::open(&path).unwrap().set_modified(long_ago).unwrap();
        }
        assert_eq!(artifacts::prune_cache(store.as_ref(), &second_artifacts, &functions).await.unwrap(), 1);
        assert!(!functions.join(&gone).exists() && !second_artifacts.join(format!("{gone}.tar.gz")).exists());
        assert!(functions.join(&fresh).exists(), "a tree just installed (its row not stored yet) went");
        assert!(functions.join(&sha).exists(), "a tree the store still has went");
    }
}

/// Every activation bumps the function's revision, which the other nodes compare with theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_activation_bumps_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(dir.path()).await {
        store.create_user(&owner()).await.unwrap();
        let created = store.create_function(&function("fn_rev")).await.unwrap();
        assert_eq!(created.revision, 0);
        assert_eq!(store.activate("fn_rev", 1, false, 1).await.unwrap(), 1);
        assert_eq!(store.activate("fn_rev", 1, true, 2).await.unwrap(), 2);
        assert_eq!(store.function_by_id("fn_rev").await.unwrap().unwrap().revision, 2);
        store.announce("fn_rev").await.unwrap();
    }
}

/// Retention deletes by age and, per function, the oldest lines past a size; never another
/// function's lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_by_age_and_by_size_per_function() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(dir.path()).await {
        let line = |function_id: &str, timestamp_us: i64, message: &str| LogRecord {
            timestamp_us,
            message: message.into(),
            ..log(function_id)
        };
        // fn_big: ten lines of 36 + 64 bytes, in order; fn_small: two; one old line each.
        let mut lines: Vec<LogRecord> = vec![line("fn_big", 1, "old"), line("fn_small", 1, "old")];
        lines.extend((0..10).map(|n| line("fn_big", 1_000 + n, &format!("{n:036}"))));
        lines.extend((0..2).map(|n| line("fn_small", 1_000 + n, "small")));
        store.insert_logs(&lines).await.unwrap();
        let kind = store.kind();
        assert_eq!(store.prune_logs_before(1_000).await.unwrap(), 2, "{kind}");
        assert_eq!(store.functions_with_logs_over(450, 64).await.unwrap(), ["fn_big"], "{kind}");
        // 450 bytes hold the newest four 100-byte lines.
        assert_eq!(store.prune_logs_to_size("fn_big", 450, 64).await.unwrap(), 6, "{kind}");
        let left = store.tail_logs("fn_big", 0, 100).await.unwrap();
        let expected: Vec<String> = (6..10).map(|n| format!("{n:036}")).collect();
        assert_eq!(left.iter().map(|line| line.message.clone()).collect::<Vec<_>>(), expected, "{kind}");
        assert_eq!(store.tail_logs("fn_small", 0, 100).await.unwrap().len(), 2, "{kind}");
        assert_eq!(store.prune_logs_to_size("fn_small", 450, 64).await.unwrap(), 0, "{kind}");

        store.insert_records(&[invocation("inv_old")], &[], &[rejection(0, 1)]).await.unwrap();
        let recent = InvocationRecord { id: "inv_new".into(), started_at: 10_000, ..invocation("x") };
        store.insert_records(&[recent], &[], &[rejection(10, 1)]).await.unwrap();
        assert_eq!(store.prune_invocations_before(5_000).await.unwrap(), 2, "{kind}: one record, one count");
    }
}
