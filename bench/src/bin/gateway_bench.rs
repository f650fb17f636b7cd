//! The server end to end: the release `containerpub` binary on loopback, a warm Python function,
//! HTTP/1.1 keep-alive clients. Prints latency through the front door alone (a 404 from the
//! router: pingora, the in-process axum call, no database) and through a function URL (plus
//! admission, the pool and the worker), and the throughput of concurrent callers.
//!
//! Target: a warm invocation through HTTP answers in ≤ 1 ms at p50 on this machine, i.e. the
//! gateway adds well under a millisecond to what the function itself costs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bench::Gateway;
use hdrhistogram::Histogram;

const ECHO: &str = "def handler(body):\n    return {'n': body.get('n')}\n";

/// One request on a kept-alive connection; returns the status.
fn round_trip(reader: &mut BufReader<TcpStream>, request: &[u8]) -> u16 {
    reader.get_mut().write_all(request).expect("the server accepts the request");
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line");
    let status = line.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("an HTTP status");
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header line");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("the body");
    status
}

fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn latency(address: &str, request: &[u8], expected: u16, count: usize) -> Histogram<u64> {
    let mut reader = BufReader::new(TcpStream::connect(address).expect("connect"));
    reader.get_ref().set_nodelay(true).expect("nodelay");
    for _ in 0..count / 10 {
        assert_eq!(round_trip(&mut reader, request), expected);
    }
    let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
    for _ in 0..count {
        let started = Instant::now();
        assert_eq!(round_trip(&mut reader, request), expected);
        histogram.record(started.elapsed().as_nanos() as u64).expect("in range");
    }
    histogram
}

fn throughput(address: &str, request: &[u8], clients: usize, duration: Duration) -> f64 {
    let deadline = Instant::now() + duration;
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut reader = BufReader::new(TcpStream::connect(address).expect("connect"));
                    reader.get_ref().set_nodelay(true).expect("nodelay");
                    let mut done = 0;
                    while Instant::now() < deadline {
                        assert_eq!(round_trip(&mut reader, request), 200);
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().expect("a client")).sum()
    });
    total as f64 / duration.as_secs_f64()
}

fn micros(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let count = if quick { 2_000 } else { 20_000 };
    let release = std::env::current_exe().expect("own path").parent().expect("a directory").to_path_buf();
    let gateway = Gateway::start(&release);
    gateway.deploy_public("echo", &[("main.py", ECHO)]);
    let address = gateway.address.clone();

    let not_found = request("GET", "/no-such-route", "");
    let invoke = request("POST", "/fn/echo", r#"{"n":1}"#);
    let router = latency(&address, &not_found, 404, count);
    let function = latency(&address, &invoke, 200, count);
    println!("## gateway: HTTP/1.1 keep-alive on loopback, one client, {count} requests each (µs)");
    println!("| path | p50 | p90 | p99 |\n|---|---|---|---|");
    for (label, histogram) in
        [("front door + router (404, no database)", &router), ("warm Python function (/fn/echo)", &function)]
    {
        println!(
            "| {label} | {:.0} | {:.0} | {:.0} |",
            micros(histogram, 0.5),
            micros(histogram, 0.9),
            micros(histogram, 0.99)
        );
    }
    let seconds = Duration::from_secs(if quick { 1 } else { 5 });
    for clients in [1, 4, 10] {
        let rate = throughput(&address, &invoke, clients, seconds);
        println!("throughput, {clients} client(s): {rate:.0} invocations/s");
    }
    let p50_ms = micros(&function, 0.5) / 1000.0;
    drop(gateway); // stopped before the exit status: `process::exit` runs no destructors
    if p50_ms <= 1.0 {
        println!("\nall gateway targets met (warm invocation p50 {p50_ms:.2} ms ≤ 1 ms)");
    } else {
        println!("\nMISSED: warm invocation p50 {p50_ms:.2} ms > 1 ms");
        std::process::exit(1);
    }
}
