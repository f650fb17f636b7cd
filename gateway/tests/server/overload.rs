//! Overload: a refused connection is paced, everyone else is served at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{archive, Backend, Server};

const SLOW: &str = "import time\ndef handler(body):\n    time.sleep(body.get('seconds', 0))\n    return 'slept'\n";

/// Sends one HTTP/1.1 request on `stream` and reads its answer: status, headers (lower-case
/// names), body.
fn exchange(stream: &mut BufReader<TcpStream>, request: &str) -> (u16, Vec<(String, String)>, String) {
    stream.get_mut().write_all(request.as_bytes()).unwrap();
    let mut status_line = String::new();
    stream.read_line(&mut status_line).unwrap();
    let status = status_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers.iter().find(|(name, _)| name == "content-length").unwrap().1.parse().unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    (status, headers, String::from_utf8(body).unwrap())
}

/// A call refused because the queue is full carries `Retry-After`; the same connection's next
/// request (whatever it asks) is read only after a pause, while another connection is answered
/// at once. A client that retries at once on the same connection can no longer take the CPU from
/// the calls that were admitted.
#[test]
fn a_refused_connection_waits_before_its_next_request_and_no_one_else_does() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    let fields = [("max_concurrency", "1"), ("public", "true")];
    assert_eq!(server.deploy(&ada, "slow", archive(&[("main.py", SLOW)]), &fields).0, 201);
    std::thread::scope(|scope| {
        // One call runs, one waits in the queue (its length is 1 in the tests' configuration).
        for delay in [0, 150] {
            let server = &server;
            scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                server.post_json("/fn/slow", None, &json!({ "seconds": 2 }))
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let address = server.base.trim_start_matches("http://").to_string();
        let mut refused = BufReader::new(TcpStream::connect(&address).unwrap());
        let call =
            "POST /fn/slow HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let (status, headers, body) = exchange(&mut refused, call);
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("queue_full"), "{body}");
        let retry_after: u64 =
            headers.iter().find(|(name, _)| name == "retry-after").expect("Retry-After").1.parse().unwrap();
        assert!(retry_after >= 1, "{retry_after}");

        let paced_from = Instant::now();
        let health = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
        let other = scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let started = Instant::now();
            let mut other = BufReader::new(TcpStream::connect(&address).unwrap());
            let (status, _, _) = exchange(&mut other, health);
            (status, started.elapsed())
        });
        let (status, _, _) = exchange(&mut refused, health);
        let paced = paced_from.elapsed();
        assert_eq!(status, 200);
        assert!(paced >= Duration::from_millis(900), "the refused connection's next request waited {paced:?}");
        assert!(paced < Duration::from_secs(3), "and not much longer than a second: {paced:?}");
        let (status, other_took) = other.join().unwrap();
        assert_eq!(status, 200);
        assert!(other_took < Duration::from_millis(500), "another connection waited {other_took:?}");
    });
}

/// Refused calls leave no row each: they are counted per function, outcome and second, shown next
/// to the invocations, and the served calls' rows are all there.
fn refusals_are_counted_per_second_not_stored_one_by_one(server: Server) {
    let ada = server.user("ada@example.com");
    let fields = [("max_concurrency", "1"), ("public", "true")];
    assert_eq!(server.deploy(&ada, "slow", archive(&[("main.py", SLOW)]), &fields).0, 201);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..5u64)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(100 * i.min(2)));
                    // Each on its own client: a refused connection is paced.
                    let client = reqwest::blocking::Client::new();
                    client.post(server.url("/fn/slow")).json(&json!({ "seconds": 1 })).send().unwrap().status().as_u16()
                })
            })
            .collect();
        calls.into_iter().map(|call| call.join().unwrap()).collect()
    });
    let refused = statuses.iter().filter(|status| **status == 429).count() as i64;
    let served = statuses.iter().filter(|status| **status == 200).count();
    assert!(refused >= 2 && served >= 2, "{statuses:?}");

    let history: serde_json::Value = server.get("/api/functions/slow/invocations", Some(&ada)).json().unwrap();
    let rows = history["invocations"].as_array().unwrap();
    assert_eq!(rows.len(), served, "{history}");
    assert!(rows.iter().all(|row| row["outcome"] == "ok"), "{history}");
    let counted: i64 = history["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|row| assert_eq!(row["outcome"], "queue_full", "{history}"))
        .map(|row| row["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, refused, "{history}");
}
crate::both_stores!(refusals_are_counted_per_second_not_stored_one_by_one);
