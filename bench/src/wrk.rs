//! Driving a server with `wrk` (Debian's; `scripts/bench` installs it) and reading its report.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes a `wrk` script into `dir` that POSTs `body` (JSON, no single quotes) on every request.
pub fn post_script(dir: &Path, body: &str) -> PathBuf {
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!("wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"),
    )
    .expect("the wrk script");
    script
}

/// What `wrk` measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub requests_per_second: f64,
    /// Answers that were not 2xx or 3xx, per second.
    pub errors_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl Load {
    pub fn goodput(&self) -> f64 {
        (self.requests_per_second - self.errors_per_second).max(0.0)
    }
}

/// `wrk`'s duration (`34.00us`, `1.20ms`, `2.00s`) in microseconds.
fn wrk_micros(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(number) = text.strip_suffix("us") {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix("ms") {
        (number, 1_000.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60_000_000.0)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1_000_000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|number| number * factor)
}

fn parse_wrk(output: &str, seconds: f64) -> Load {
    let mut load = Load::default();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => load.requests_per_second = rate.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                load.errors_per_second = count.parse::<f64>().unwrap_or(0.0) / seconds
            }
            ["50%", value] => load.p50_us = wrk_micros(value).unwrap_or(f64::NAN),
            ["99%", value] => load.p99_us = wrk_micros(value).unwrap_or(f64::NAN),
            _ => {}
        }
    }
    load
}

/// Runs `wrk` against `url` with `connections` for `seconds`.
pub fn wrk(script: &Path, url: &str, connections: usize, seconds: u64) -> Load {
    let threads = connections.min(2).to_string();
    let output = Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk runs (scripts/bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed against {url}: {text}{}", String::from_utf8_lossy(&output.stderr));
    parse_wrk(&text, seconds as f64)
}
