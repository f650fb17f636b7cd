//! What the front door does with oversized bodies and slow or stalled clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{archive, code, Backend, Server};

/// Reads until the server closes the connection; returns what it sent and how long that took.
fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

#[test]
fn body_limits_and_slow_clients() {
    let server = Server::start(Backend::Sqlite).unwrap();
    let ada = server.user("ada@example.com");
    assert_eq!(
        server
            .deploy(
                &ada,
                "echo",
                archive(&[("main.py", "def handler(body):\n    return body\n")]),
                &[("public", "true")]
            )
            .0,
        201
    );

    // Over the cap: refused before the body is read (declared) and while reading (chunked).
    let big = vec![b'x'; 200_000];
    let declared = server.client.post(server.url("/fn/echo")).body(big.clone()).send().unwrap();
    assert_eq!(declared.status(), 413);
    assert_eq!(code(&declared.json::<Value>().unwrap()), "body_too_large");
    let address = server.base.trim_start_matches("http://").to_string();
    let mut chunked = TcpStream::connect(&address).unwrap();
    chunked.write_all(b"POST /fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 10_000, "x".repeat(10_000));
    for _ in 0..11 {
        if chunked.write_all(chunk.as_bytes()).is_err() {
            break; // the server answered and closed before the rest was sent
        }
    }
    let (answer, _) = until_closed(&mut chunked);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    // A client that stops half-way through its headers, or its body, is disconnected.
    let mut stalled = TcpStream::connect(&address).unwrap();
    stalled.write_all(b"POST /fn/echo HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (_, waited) = until_closed(&mut stalled);
    assert!(waited < Duration::from_secs(10), "a stalled header was held {waited:?}");
    let mut slow_body = TcpStream::connect(&address).unwrap();
    slow_body.write_all(b"POST /fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":").unwrap();
    let (answer, waited) = until_closed(&mut slow_body);
    assert!(waited < Duration::from_secs(10), "a stalled body was held {waited:?}");
    assert!(!answer.contains("200 OK"), "{answer}");

    // The server is unharmed.
    assert_eq!(server.post_json("/fn/echo", None, &serde_json::json!({ "ok": true })).status(), 200);
}

#[test]
fn a_dribbling_client_is_cut_off() {
    let server = Server::start(Backend::Sqlite).unwrap();
    let address = server.base.trim_start_matches("http://").to_string();
    let headers_started = Instant::now();
    let mut header_dribbler = TcpStream::connect(&address).unwrap();
    // One header byte a second: every read is inside the idle timeout, the whole header is not.
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n".iter() {
        if header_dribbler.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1000));
        if headers_started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let (answer, _) = until_closed(&mut header_dribbler);
    assert!(headers_started.elapsed() < Duration::from_secs(9), "held {:?}", headers_started.elapsed());
    assert!(answer.is_empty(), "{answer}");

    let body_started = Instant::now();
    let mut body_dribbler = TcpStream::connect(&address).unwrap();
    body_dribbler.write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n").unwrap();
    let mut answer = String::new();
    for _ in 0..12 {
        if body_dribbler.write_all(b" ").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1000));
        let mut buffer = [0u8; 4096];
        body_dribbler.set_nonblocking(true).unwrap();
        if let Ok(n) = body_dribbler.read(&mut buffer) {
            answer.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        body_dribbler.set_nonblocking(false).unwrap();
        if !answer.is_empty() {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(body_started.elapsed() < Duration::from_secs(8), "held {:?}", body_started.elapsed());
}
