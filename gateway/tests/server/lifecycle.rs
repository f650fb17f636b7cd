use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{archive, Backend, Server};

const SLOW: &str =
    "import time\ndef handler(body):\n    print('working')\n    time.sleep(0.8)\n    return {'done': True}\n";

/// Processes whose command line or working directory mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cwd = std::fs::read_link(entry.path().join("cwd")).map(|p| p.display().to_string()).unwrap_or_default();
        if cwd.contains(needle) {
            found.push(format!("{name} (cwd {cwd})"));
        }
    }
    found
}

fn restart_keeps_everything_and_sigterm_drains(backend: Backend) {
    let Some(mut server) = Server::start(backend) else { return };
    let ada = server.user("ada@example.com");
    assert_eq!(server.deploy(&ada, "slow", archive(&[("main.py", SLOW)]), &[]).0, 201);
    assert_eq!(server.post_json("/fn/slow", Some(&ada), &json!({})).status(), 200);
    std::thread::sleep(Duration::from_millis(300));

    // SIGTERM while five calls are running and a log stream is open: the calls finish, the
    // stream ends (instead of holding the drain until its 20 s timeout), the server exits cleanly.
    let data = server.data_dir.path().display().to_string();
    let follower = {
        let (url, ada) = (server.url("/api/functions/slow/logs?follow=true"), ada.clone());
        std::thread::spawn(move || {
            let mut stream = reqwest::blocking::Client::new().get(url).bearer_auth(ada).send().unwrap();
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stream, &mut text);
            text
        })
    };
    let results: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..5)
            .map(|_| {
                let (url, ada) = (server.url("/fn/slow"), ada.clone());
                scope.spawn(move || {
                    reqwest::blocking::Client::new()
                        .post(url)
                        .bearer_auth(ada)
                        .body("{}")
                        .send()
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let stopping = std::time::Instant::now();
        assert_eq!(server.stop(), Some(0), "clean exit after draining:\n{}", server.log());
        assert!(stopping.elapsed() < Duration::from_secs(10), "the drain took {:?}", stopping.elapsed());
        calls.into_iter().map(|call| call.join().unwrap()).collect()
    });
    assert_eq!(results, vec![200; 5], "in-flight calls finish during the drain");
    let streamed = follower.join().unwrap();
    assert!(streamed.contains("working"), "the stream showed the lines before it ended: {streamed}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_mentioning(&data), Vec::<String>::new(), "no worker is left behind");

    // `containerpub migrate` on the existing database: nothing to do, said plainly.
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_containerpub"))
        .args(["migrate", "--data-dir"])
        .arg(server.data_dir.path())
        .env("DATABASE_URL", &server.database_url)
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let kind = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    assert_eq!(String::from_utf8_lossy(&migrated.stdout).trim(), format!("{kind} schema is up to date"));

    // Restart on the same data: users, functions, versions and logs are all there.
    let restarted = Server::start_on(server.data_dir.clone(), server.database_url.clone());
    assert_eq!(restarted.get("/api/auth/me", Some(&ada)).status(), 200, "tokens survive a restart");
    let token = restarted.login("ada@example.com");
    let versions: Value = restarted.get("/api/functions/slow/versions", Some(&token)).json().unwrap();
    assert_eq!(versions["active_version"], 1);
    let logs = restarted.get("/api/functions/slow/logs?limit=100", Some(&token)).text().unwrap();
    assert_eq!(
        logs.lines().filter(|line| line.contains("working")).count(),
        6,
        "{logs}\n--- the first server's log ---\n{}",
        server.log()
    );
    let history: Value = restarted.get("/api/functions/slow/invocations", Some(&token)).json().unwrap();
    assert_eq!(
        history["invocations"].as_array().unwrap().len(),
        6,
        "{history}\n--- the first server's log ---\n{}",
        server.log()
    );
    assert_eq!(restarted.post_json("/fn/slow", Some(&token), &json!({})).status(), 200);
}

#[test]
fn restart_and_drain_sqlite() {
    restart_keeps_everything_and_sigterm_drains(Backend::Sqlite);
}

#[test]
fn restart_and_drain_postgres() {
    restart_keeps_everything_and_sigterm_drains(Backend::Postgres);
}

/// With the records tables locked by another session, calls still answer at once; the records
/// land once the lock is gone.
#[test]
fn a_blocked_database_does_not_block_invocations() {
    let Some(server) = Server::start(Backend::Postgres) else { return };
    let ada = server.user("ada@example.com");
    assert_eq!(
        server
            .deploy(&ada, "quick", archive(&[("main.py", "def handler(body):\n    print('hi')\n    return 1\n")]), &[])
            .0,
        201
    );
    let locker = std::process::Command::new("psql")
        .args([
            server.database_url.as_str(),
            "-X",
            "-q",
            "-c",
            "BEGIN; LOCK TABLE function_invocations, function_logs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let call = std::time::Instant::now();
        assert_eq!(server.post_json("/fn/quick", Some(&ada), &json!({})).status(), 200);
        assert!(call.elapsed() < Duration::from_millis(1000), "a call waited {:?} for the database", call.elapsed());
    }
    assert!(started.elapsed() < Duration::from_secs(2), "20 calls took {:?}", started.elapsed());
    let mut locker = locker;
    locker.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let history: Value = server.get("/api/functions/quick/invocations?limit=100", Some(&ada)).json().unwrap();
        if history["invocations"].as_array().unwrap().len() == 20 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "records did not land after the lock: {history}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The processes below `root`: its children, theirs, and so on.
fn descendants(root: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // The command name is in parentheses and may hold spaces: the fields after it are fixed.
        let Some(ppid) = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(1)?.parse().ok()) else {
            continue;
        };
        parents.push((pid, ppid));
    }
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        index += 1;
    }
    found.remove(0);
    found
}

/// A server stopped while calls run (SIGINT stops at once: the calls' tasks are dropped) reaps
/// every worker itself before it exits. This process adopts whatever a dying server leaves
/// (`PR_SET_CHILD_SUBREAPER`), so a worker the server did not reap stays here as a zombie
/// instead of vanishing into init.
#[test]
fn a_stopping_server_reaps_every_worker() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let Some(mut server) = Server::start(Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    let sleeper = "import time\ndef handler(body):\n    time.sleep(30)\n    return 1\n";
    assert_eq!(server.deploy(&ada, "sleeper", archive(&[("main.py", sleeper)]), &[("timeout_ms", "60000")]).0, 201);
    assert_eq!(server.deploy(&ada, "quick", archive(&[("main.py", "def handler(body):\n    return 1\n")]), &[]).0, 201);
    assert_eq!(server.post_json("/fn/quick", Some(&ada), &json!({})).status(), 200);
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let (url, ada) = (server.url("/fn/sleeper"), ada.clone());
            std::thread::spawn(move || reqwest::blocking::Client::new().post(url).bearer_auth(ada).body("{}").send())
        })
        .collect();
    let started = std::time::Instant::now();
    let workers = loop {
        let below = descendants(server.pid() as i32);
        let sleeping = below.iter().filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|line| line.contains("adapter"))
        });
        if sleeping.count() >= 4 {
            break below;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the workers did not start:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.stop_with(nix::sys::signal::Signal::SIGINT).is_some(), "{}", server.log());
    for call in calls {
        assert!(call.join().unwrap().is_err(), "a call cut off by the stop fails at the client");
    }
    std::thread::sleep(Duration::from_millis(300));
    let left: Vec<String> = workers
        .iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some(format!("{pid}: {}", stat.split(' ').take(4).collect::<Vec<_>>().join(" ")))
        })
        .collect();
    assert!(left.is_empty(), "processes the server left behind (pid, name, state, parent): {left:?}\n{}", server.log());
}

/// An active version whose workers cannot start when the server starts (here its entry file is
/// gone from disk) is still routed: its calls answer 503 `starting` with `Retry-After` instead of
/// 404, the server retries it with backoff, and once it can start it answers.
#[test]
fn an_active_version_that_cannot_start_answers_starting_until_it_does() {
    let Some(mut server) = Server::start(Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    let code = "def handler(body):\n    return {'flaky': True}\n";
    assert_eq!(server.deploy(&ada, "flaky", archive(&[("main.py", code)]), &[]).0, 201);
    let other = "def handler(body):\n    return {'steady': True}\n";
    assert_eq!(server.deploy(&ada, "steady", archive(&[("main.py", other)]), &[]).0, 201);
    assert_eq!(server.post_json("/fn/flaky", Some(&ada), &json!({})).status(), 200);
    assert_eq!(server.stop(), Some(0));

    let entry = walk(&server.data_dir.path().join("functions"))
        .into_iter()
        .find(|path| std::fs::read_to_string(path).is_ok_and(|text| text == code))
        .expect("the deployed tree");
    let away = entry.with_extension("away");
    std::fs::rename(&entry, &away).unwrap();

    let restarted = Server::start_on(server.data_dir.clone(), server.database_url.clone());
    let token = restarted.login("ada@example.com");
    let answer = restarted.post_json("/fn/flaky", Some(&token), &json!({}));
    assert_eq!(answer.status(), 503, "{}", restarted.log());
    let retry_after: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = answer.json().unwrap();
    assert_eq!(body["error"]["code"], "starting", "{body}");
    assert_eq!(restarted.post_json("/fn/steady", Some(&token), &json!({})).status(), 200, "the others start");
    assert!(restarted.log().contains("cannot warm the active version"), "{}", restarted.log());

    std::fs::rename(&away, &entry).unwrap();
    let fixed = std::time::Instant::now();
    loop {
        let status = restarted.post_json("/fn/flaky", Some(&token), &json!({})).status().as_u16();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only `starting` until it starts");
        assert!(fixed.elapsed() < Duration::from_secs(20), "not started 20 s after it could:\n{}", restarted.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every file below `root`.
fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
