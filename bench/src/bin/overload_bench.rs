//! Overload (issue 17): one warm no-op function, defaults (cap 10, queue 100), driven by `wrk`
//! from 50 to 1,100 connections (ten times cap plus queue), for Python and for Node. Goodput is
//! counted from `/metrics` (`containerpub_invocations_total{outcome="ok"}`), answers from `wrk`.
//! Then fairness: a second function called at a steady 50 calls a second, alone and while the
//! first is flooded at 1,100 connections; and the control API (`GET /api/functions`) the same way.
//!
//! Targets (bench/README.md): goodput at every load ≥ 80 % of the best goodput at any lower
//! load; the steady function's and the control API's p99 under the flood ≤ 2× unloaded.
//! Exits 1 when one is missed. `overload-bench [--quick]`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench::wrk::{post_script, wrk};
use bench::Gateway;

const PY_NOOP: &str = "def handler(body):\n    return {\"ok\": True}\n";
const NODE_NOOP: &str = "exports.handler = async (body) => ({ ok: true });\n";
const BODY: &str = r#"{"bench":"16by"}"#;
const CONNECTIONS: [usize; 6] = [50, 110, 200, 400, 800, 1100];
/// The steady caller's rate.
const STEADY_EVERY: Duration = Duration::from_millis(20);

/// `containerpub_invocations_total{function=NAME,outcome="ok"}` now.
fn ok_count(gateway: &Gateway, function: &str) -> f64 {
    let metrics = reqwest::blocking::get(format!("{}/metrics", gateway.base)).expect("metrics").text().expect("text");
    let series = format!("containerpub_invocations_total{{function=\"{function}\",outcome=\"ok\"}} ");
    metrics.lines().find_map(|line| line.strip_prefix(&series)).and_then(|value| value.parse().ok()).unwrap_or(0.0)
}

/// Calls `url` every `STEADY_EVERY` for `length` (POST with a body, or GET without); the p99
/// latency in ms, and how many calls did not answer 2xx.
fn steady_p99(url: &str, token: Option<&str>, post: bool, length: Duration) -> (f64, usize) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    let mut latencies = Vec::new();
    let mut failures = 0;
    let started = Instant::now();
    let mut next = started;
    while started.elapsed() < length {
        let sent = Instant::now();
        let request = if post { client.post(url).body(BODY) } else { client.get(url) };
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        match request.send() {
            Ok(answer) if answer.status().is_success() => latencies.push(sent.elapsed().as_secs_f64() * 1e3),
            _ => failures += 1,
        }
        next += STEADY_EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies.get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1))).copied();
    (p99.unwrap_or(f64::NAN), failures)
}

fn main() {
    let missed = run();
    if missed > 0 {
        println!("\n{missed} overload target(s) missed");
        std::process::exit(1);
    }
    println!("\nall overload targets met");
}

fn run() -> usize {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let seconds = if quick { 2 } else { 5 };
    let release: PathBuf = std::env::current_exe().expect("own path").parent().expect("a directory").to_path_buf();
    let script_dir = tempfile::tempdir().expect("a temp dir");
    let script = post_script(script_dir.path(), BODY);
    let gateway = Gateway::start(&release);
    gateway.deploy_public("flood-py", &[("main.py", PY_NOOP)]);
    gateway.deploy_public("flood-node", &[("index.js", NODE_NOOP)]);
    gateway.deploy_public("steady", &[("main.py", PY_NOOP)]);
    let url = |name: &str| format!("{}/fn/{name}", gateway.base);

    let mut missed = 0;
    println!("## Overload: wrk, POST of a 16-byte JSON body, {seconds} s per run (cap 10, queue 100)\n");
    for function in ["flood-py", "flood-node"] {
        println!("### {function}\n\n| connections | answers/s | goodput (200)/s | p99 |\n|---|---|---|---|");
        wrk(&script, &url(function), 50, 2);
        let mut best_below = 0.0_f64;
        for connections in CONNECTIONS {
            let before = ok_count(&gateway, function);
            let started = Instant::now();
            let load = wrk(&script, &url(function), connections, seconds);
            let goodput = (ok_count(&gateway, function) - before) / started.elapsed().as_secs_f64();
            let holds = best_below == 0.0 || goodput >= 0.8 * best_below;
            println!(
                "| {connections} | {:.0} | {goodput:.0}{} | {:.0} µs |",
                load.requests_per_second,
                if holds { "" } else { " **(< 80 % of the best below)**" },
                load.p99_us
            );
            if !holds {
                missed += 1;
            }
            best_below = best_below.max(goodput);
            // Paced connections from this run end before the next.
            std::thread::sleep(Duration::from_millis(1500));
        }
        println!();
    }

    // Fairness: the steady function and the control API, alone and under the flood.
    let length = Duration::from_secs(seconds);
    let token = gateway.token();
    let control = format!("{}/api/functions", gateway.base);
    let steady_alone = steady_p99(&url("steady"), None, true, length);
    let control_alone = steady_p99(&control, Some(token), false, length);
    let (steady_flooded, control_flooded) = std::thread::scope(|scope| {
        let flood = scope.spawn(|| wrk(&script, &url("flood-py"), 1100, seconds + 2));
        std::thread::sleep(Duration::from_millis(1000));
        let steady = scope.spawn(|| steady_p99(&url("steady"), None, true, length));
        let control = steady_p99(&control, Some(token), false, length);
        let steady = steady.join().expect("the steady caller");
        flood.join().expect("the flood");
        (steady, control)
    });
    println!(
        "### Fairness: a steady caller every {} ms while flood-py gets 1,100 connections\n",
        STEADY_EVERY.as_millis()
    );
    println!("| caller | p99 alone | p99 under the flood | failed calls |\n|---|---|---|---|");
    for (label, alone, flooded) in [
        ("the steady function", steady_alone, steady_flooded),
        ("the control API (GET /api/functions)", control_alone, control_flooded),
    ] {
        let holds = flooded.0 <= 2.0 * alone.0 && flooded.1 == 0;
        println!(
            "| {label} | {:.2} ms | {:.2} ms{} | {} |",
            alone.0,
            flooded.0,
            if holds { "" } else { " **(> 2× alone)**" },
            flooded.1
        );
        if !holds {
            missed += 1;
        }
    }
    missed
}
