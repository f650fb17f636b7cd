//! The warm path under load, side by side in one run: a bare hyper server (the limit), the release
//! `containerpub` (its 404, a warm Python and a warm Node no-op through `/fn/NAME`, a oneshot
//! Python script) and OpenFaaS of-watchdog with its Python echo (`../shared/bench-peers/`), each
//! driven by `wrk` (POST of a 16-byte JSON body). Prints the table with ratios to bare hyper,
//! the connection curve, p99s and memory, and exits 1 when a target of bench/README.md is missed.
//!
//! `load-bench [--quick]`; `scripts/bench` installs `wrk` and builds of-watchdog when missing.
//! `load-bench --serve` starts bare hyper and the gateway with the no-ops deployed, prints their
//! URLs and process ids, and keeps them until Enter: for `perf`, `wrk` or `valgrind` by hand.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::wrk::{wrk, Load};
use bench::{free_port, Gateway, Running};

const PY_NOOP: &str = "def handler(body):\n    return {\"ok\": True}\n";
const NODE_NOOP: &str = "exports.handler = async (body) => ({ ok: true });\n";
const PY_ONESHOT: &str = "import json\nprint(json.dumps({\"ok\": True}))\n";
/// 16 bytes of JSON.
const BODY: &str = r#"{"bench":"16by"}"#;

/// Waits until a POST to `url` answers with `expected`.
fn wait_for(url: &str, expected: u16, what: &str) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().expect("a client");
    let started = Instant::now();
    loop {
        if client.post(url).body(BODY).send().is_ok_and(|answer| answer.status().as_u16() == expected) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{what} did not answer {expected} at {url}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory of a process, in MB.
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Mean RSS of the processes whose command line contains `needle` (idle workers of a runtime).
fn mean_rss_of(needle: &str) -> Option<(usize, f64)> {
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let command = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&command).contains(needle) {
            sizes.extend(rss_mb(pid));
        }
    }
    (!sizes.is_empty()).then(|| (sizes.len(), sizes.iter().sum::<f64>() / sizes.len() as f64))
}

/// of-watchdog with its Python echo, when the peer is built (`build.sh`); `None` says why not.
fn start_of_watchdog(peers: &Path) -> Result<(Running, String), String> {
    let start = peers.join("of-watchdog/start.sh");
    if !start.exists() {
        return Err(format!("{} is missing (../shared beside the clone)", start.display()));
    }
    if std::net::TcpListener::bind("0.0.0.0:8081").is_err() {
        return Err("port 8081 is taken (of-watchdog binds it for its metrics)".into());
    }
    let port = free_port();
    let child = Command::new(&start)
        .arg(port.to_string())
        .env("FN_PORT", free_port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|error| format!("start.sh: {error}"))?;
    let url = format!("http://127.0.0.1:{port}/");
    wait_for(&url, 200, "of-watchdog");
    Ok((Running(child), url))
}

struct Row {
    label: &'static str,
    load: Load,
    p50_one: f64,
}

fn main() {
    // Every process this run started is stopped when `run` returns, before the exit status.
    let missed = run();
    if missed > 0 {
        println!("\n{missed} load target(s) missed");
        std::process::exit(1);
    }
    println!("\nall load targets met");
}

/// The whole run; how many targets it missed.
fn run() -> usize {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let seconds = if quick { 2 } else { 6 };
    let release: PathBuf = std::env::current_exe().expect("own path").parent().expect("a directory").to_path_buf();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf();
    let script_dir = tempfile::tempdir().expect("a temp dir");
    let script = bench::wrk::post_script(script_dir.path(), BODY);

    let hyper_address = format!("127.0.0.1:{}", free_port());
    let _hyper = Running(
        Command::new(release.join("bare-hyper")).arg(&hyper_address).stderr(Stdio::null()).spawn().expect("bare-hyper"),
    );
    let hyper_url = format!("http://{hyper_address}/");
    wait_for(&hyper_url, 200, "bare-hyper");
    let gateway = Gateway::start(&release);
    gateway.deploy_public("noop-py", &[("main.py", PY_NOOP)]);
    gateway.deploy_public("noop-node", &[("index.js", NODE_NOOP)]);
    gateway.deploy_public("oneshot-py", &[("main.py", PY_ONESHOT)]);
    let function = |name: &str| format!("{}/fn/{name}", gateway.base);
    wait_for(&function("noop-py"), 200, "the Python no-op");
    wait_for(&function("noop-node"), 200, "the Node no-op");
    if std::env::args().any(|arg| arg == "--serve") {
        println!("bare hyper   {hyper_url} (pid {})", _hyper.0.id());
        println!("containerpub {} (pid {})", gateway.base, gateway.process.0.id());
        println!("functions    {} {}", function("noop-py"), function("noop-node"));
        println!("wrk script   {}\nEnter stops them.", script.display());
        let _ = std::io::stdin().read_line(&mut String::new());
        return 0;
    }
    let watchdog = start_of_watchdog(&root.join("../shared/bench-peers"));

    // Each target: at 50 connections, then p50 at one connection.
    let measure = |label: &'static str, url: &str| -> Row {
        let load = wrk(&script, url, 50, seconds);
        let one = wrk(&script, url, 1, seconds.min(3));
        Row { label, load, p50_one: one.p50_us }
    };
    let hyper = measure("bare hyper 1.x (the limit)", &hyper_url);
    let not_found = measure("gateway 404 (front door + router)", &format!("{}/no-such-route", gateway.base));
    let python = measure("gateway, warm Python no-op (/fn/NAME)", &function("noop-py"));
    let node = measure("gateway, warm Node no-op", &function("noop-node"));
    let peer = match &watchdog {
        Ok((_, url)) => Some(measure("of-watchdog 0.11.6, http mode, Python echo", url)),
        Err(why) => {
            println!("of-watchdog not measured: {why}");
            None
        }
    };
    let oneshot = {
        let load = wrk(&script, &function("oneshot-py"), 2, seconds.min(3));
        Row { label: "gateway, oneshot Python (a process per call)", load, p50_one: load.p50_us }
    };

    println!("## Load: wrk, POST of a 16-byte JSON body, {seconds} s per run (p50 at 1 connection from its own run)\n");
    println!("| target | req/s at 50 conns | × bare hyper | p99 at 50 | p50 at 1 conn |\n|---|---|---|---|---|");
    for row in [Some(&hyper), Some(&not_found), Some(&python), Some(&node), peer.as_ref(), Some(&oneshot)]
        .into_iter()
        .flatten()
    {
        println!(
            "| {} | {:.0} | {:.3}× | {:.0} µs | {:.0} µs |",
            row.label,
            row.load.requests_per_second,
            row.load.requests_per_second / hyper.load.requests_per_second,
            row.load.p99_us,
            row.p50_one
        );
    }

    // The curve: goodput (2xx) and refusals (429) of the warm Python no-op by connections.
    println!("\n## Warm Python no-op by connections (goodput = 2xx answers; the rest are 429 queue_full)\n");
    println!("| connections | goodput/s | refused/s | p99 |\n|---|---|---|---|");
    let mut curve = Vec::new();
    for connections in [1, 10, 50, 100, 200] {
        let load = wrk(&script, &function("noop-py"), connections, seconds.min(3));
        println!("| {connections} | {:.0} | {:.0} | {:.0} µs |", load.goodput(), load.errors_per_second, load.p99_us);
        curve.push((connections, load));
    }

    // Memory: the gateway itself, and idle warm workers per runtime.
    std::thread::sleep(Duration::from_millis(500));
    println!("\n## Memory (RSS)\n");
    if let Some(mb) = rss_mb(gateway.process.0.id()) {
        println!("- containerpub: {mb:.1} MB");
    }
    for (runtime, needle) in [("Python", "adapters/adapter.py"), ("Node", "adapters/adapter.cjs")] {
        match mean_rss_of(needle) {
            Some((count, mb)) => println!("- {runtime} worker: {mb:.1} MB each ({count} running)"),
            None => println!("- {runtime} worker: none found"),
        }
    }

    // The targets of bench/README.md, as ratios measured in this run.
    let ratio = |row: &Row| row.load.requests_per_second / hyper.load.requests_per_second;
    let peak = curve.iter().map(|(_, load)| load.goodput()).fold(0.0, f64::max);
    let mut targets = vec![
        ("warm Python ≥ 0.35× bare hyper at 50 connections", ratio(&python) >= 0.35, format!("{:.3}×", ratio(&python))),
        ("gateway 404 ≥ 0.7× bare hyper", ratio(&not_found) >= 0.7, format!("{:.3}×", ratio(&not_found))),
        (
            "warm p50 at 1 connection ≤ bare hyper's + 60 µs",
            python.p50_one <= hyper.p50_one + 60.0,
            format!("{:.0} µs vs {:.0} + 60 µs", python.p50_one, hyper.p50_one),
        ),
        (
            "Node warm ≥ Python warm (within 5 %)",
            node.load.requests_per_second >= 0.95 * python.load.requests_per_second,
            format!("{:.0} vs {:.0} req/s", node.load.requests_per_second, python.load.requests_per_second),
        ),
        (
            "no cliff from 1 to 200 connections (goodput ≥ half the peak everywhere past 1)",
            curve.iter().skip(1).all(|(_, load)| load.goodput() >= 0.5 * peak),
            format!("peak {peak:.0}/s, at 200: {:.0}/s", curve.last().map(|(_, load)| load.goodput()).unwrap_or(0.0)),
        ),
    ];
    match &peer {
        Some(peer) => targets.push((
            "warm Python ≥ 3× of-watchdog's Python echo",
            python.load.requests_per_second >= 3.0 * peer.load.requests_per_second,
            format!("{:.2}×", python.load.requests_per_second / peer.load.requests_per_second),
        )),
        None => targets.push(("warm Python ≥ 3× of-watchdog's Python echo", false, "not measured".into())),
    }
    println!("\n## Targets\n");
    let mut missed = 0;
    for (what, met, figure) in &targets {
        println!("- {} {what}: {figure}", if *met { "met" } else { "MISSED" });
        missed += usize::from(!met);
    }
    missed
}
