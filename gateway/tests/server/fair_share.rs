//! One tenant takes every slot it can with slow calls; another tenant's calls do not wait for
//! them: an account holds at most its share of the server-wide slots (`[functions]
//! max_account_share`).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{archive, Backend, Server};

const SLEEPY_PY: &str = "import time\n\ndef handler(body):\n    time.sleep(body['seconds'])\n    return 'slept'\n";
const STEADY_PY: &str = "def handler(body):\n    return body\n";

fn p99(server: &Server, token: &str, calls: usize) -> Duration {
    let mut took: Vec<Duration> = (0..calls)
        .map(|n| {
            let started = Instant::now();
            let answer = server.post_json("/fn/steady", Some(token), &json!({ "n": n }));
            assert_eq!(answer.status(), 200);
            started.elapsed()
        })
        .collect();
    took.sort();
    took[took.len() * 99 / 100]
}

/// Calls of Mallory's `sleepy` functions running now, and the metrics they were read from.
fn running(server: &Server) -> (usize, String) {
    let metrics = server.get("/metrics", Some(&server.admin)).text().unwrap();
    let running: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("containerpub_in_flight{") && line.contains("sleepy"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (running as usize, metrics)
}

/// Waits until Mallory's `sleepy` functions run `expected` calls, and checks they run no more.
fn wait_until_running(server: &Server, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, metrics) = running(server);
        if now >= expected {
            assert_eq!(now, expected, "{metrics}");
            // Still no more a moment later: the rest wait.
            std::thread::sleep(Duration::from_millis(300));
            let (later, metrics) = running(server);
            assert_eq!(later, expected, "{metrics}");
            return;
        }
        assert!(Instant::now() < deadline, "the flood never ran {expected} calls:\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_accounts_weight_scales_its_share() {
    let weights = "[functions.account_weights]\n\"Mallory@example.com\" = 0.5\n";
    let server = Server::start_with_config(Backend::Sqlite, weights, &[]).unwrap();
    let mallory = server.user("mallory@example.com");
    let fields = [("max_concurrency", "10")];
    assert_eq!(server.deploy(&mallory, "sleepy", archive(&[("main.py", SLEEPY_PY)]), &fields).0, 201);
    std::thread::scope(|scope| {
        for _ in 0..6 {
            let (server, mallory) = (&server, &mallory);
            scope.spawn(move || server.post_json("/fn/sleepy", Some(mallory), &json!({ "seconds": 2 })));
        }
        // Weight 0.5: 80 % of ten slots, halved.
        wait_until_running(&server, 4);
    });
}

#[test]
fn a_tenant_holding_every_slot_it_can_leaves_the_others_theirs() {
    let server = Server::start(Backend::Sqlite).unwrap();
    let health = server.health();
    let mallory = server.user("mallory@example.com");
    let ada = server.user("ada@example.com");
    let sleepy = archive(&[("main.py", SLEEPY_PY)]);
    // Two functions of Mallory's, each allowed the server's whole cap (10).
    for name in ["sleepy", "sleepy-two"] {
        let fields = [("max_concurrency", "10"), ("timeout_ms", "30000")];
        assert_eq!(server.deploy(&mallory, name, sleepy.clone(), &fields).0, 201, "{health}");
    }
    assert_eq!(server.deploy(&ada, "steady", archive(&[("main.py", STEADY_PY)]), &[]).0, 201);
    p99(&server, &ada, 20); // warm
    let unloaded = p99(&server, &ada, 50);

    let loaded = std::thread::scope(|scope| {
        let flood: Vec<_> = (0..10)
            .map(|n| {
                let (server, mallory) = (&server, &mallory);
                let name = if n % 2 == 0 { "sleepy" } else { "sleepy-two" };
                scope.spawn(move || {
                    server.post_json(&format!("/fn/{name}"), Some(mallory), &json!({ "seconds": 6 })).status()
                })
            })
            .collect();
        // The flood holds its slots: eight of the ten (80 %), whatever the split between its functions.
        wait_until_running(&server, 8);
        let loaded = p99(&server, &ada, 50);
        let statuses: Vec<u16> = flood.into_iter().map(|call| call.join().unwrap().as_u16()).collect();
        assert!(statuses.iter().filter(|status| **status == 200).count() >= 8, "{statuses:?}");
        loaded
    });
    eprintln!("fair share: Ada's p99 {unloaded:?} unloaded, {loaded:?} while Mallory holds 8 of 10 slots for 6 s");
    // Before the account share, Ada's calls waited for one of Mallory's 6 s calls to end. The
    // ratio itself (within 2× when this test runs alone: 2.1 -> 2.7 ms) is the figure printed
    // above; beside the rest of the suite on two cores, only "not behind the flood" is steady.
    assert!(loaded < Duration::from_millis(500), "p99 {unloaded:?} -> {loaded:?}: queued behind the flood");
}
