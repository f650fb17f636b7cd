//! The records journal: while the database does not take the records' writes, the records and
//! log lines of served calls wait on disk, through a restart, and are written once it does.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{archive, psql, Backend, Server};

const QUICK: &str = "def handler(body):\n    print('journaled line')\n    return 1\n";

/// A sample of `/metrics`, 0 when absent.
fn metric(server: &Server, name: &str) -> f64 {
    let metrics = server.get("/metrics", None).text().unwrap();
    metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

fn call(server: &Server, token: &str, times: usize) {
    for _ in 0..times {
        assert_eq!(server.post_json("/fn/quick", Some(token), &json!({})).status(), 200, "{}", server.log());
    }
}

/// Waits until the function has `records` invocation records and as many log lines, no more.
fn wait_for_records(server: &Server, token: &str, records: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let history: Value = server.get("/api/functions/quick/invocations?limit=500", Some(token)).json().unwrap();
        let logs = server.get("/api/functions/quick/logs?limit=1000", Some(token)).text().unwrap();
        let (found, lines) = (
            history["invocations"].as_array().map_or(0, Vec::len),
            logs.lines().filter(|line| line.contains("journaled line")).count(),
        );
        assert!(found <= records && lines <= records, "records counted twice: {found} records, {lines} lines");
        if found == records && lines == records {
            return;
        }
        assert!(Instant::now() < deadline, "{found} records and {lines} lines of {records}:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rename_tables(url: &str, from: &str, to: &str) {
    let sql = format!(
        "ALTER TABLE function_invocations{from} RENAME TO function_invocations{to}; \
         ALTER TABLE function_logs{from} RENAME TO function_logs{to};"
    );
    psql(url, &sql).unwrap();
}

#[test]
fn records_the_database_refuses_wait_in_the_journal_and_are_written_once() {
    let Some(mut server) = Server::start(Backend::Postgres) else { return };
    let ada = server.user("ada@example.com");
    assert_eq!(server.deploy(&ada, "quick", archive(&[("main.py", QUICK)]), &[]).0, 201);
    call(&server, &ada, 2);
    wait_for_records(&server, &ada, 2);

    // The database refuses the writes (the tables are gone) while the server runs, then takes
    // them again: the calls answer as usual, and their records arrive.
    rename_tables(&server.database_url, "", "_away");
    call(&server, &ada, 20);
    let started = Instant::now();
    while metric(&server, "containerpub_records_journal_bytes") == 0.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "nothing journaled:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    rename_tables(&server.database_url, "_away", "");
    wait_for_records(&server, &ada, 22);

    // Refused again, and the server stops before the database is back: the journal is on disk,
    // and the next start writes it.
    rename_tables(&server.database_url, "", "_away");
    call(&server, &ada, 15);
    assert_eq!(server.stop(), Some(0));
    let journal = server.data_dir.path().join("journal");
    let waiting: u64 = std::fs::read_dir(&journal).unwrap().flatten().map(|f| f.metadata().unwrap().len()).sum();
    assert!(waiting > 0, "the stopped server left its records in {}", journal.display());
    rename_tables(&server.database_url, "_away", "");
    let restarted = Server::start_on(server.data_dir.clone(), server.database_url.clone());
    let token = restarted.login("ada@example.com");
    wait_for_records(&restarted, &token, 37);
    let started = Instant::now();
    while metric(&restarted, "containerpub_records_journal_bytes") != 0.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the journal was not emptied");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&restarted, "containerpub_records_journal_high_water_bytes") > 0.0);
    let lost: f64 = ["kind=\"invocation\"", "kind=\"log\""]
        .iter()
        .map(|kind| metric(&restarted, &format!("containerpub_records_dropped_total{{{kind}}}")))
        .sum();
    assert_eq!(lost, 0.0, "nothing was lost");
}
