//! The soak (issue 13): the release server under steady load and bursts over a function's cap,
//! for a long time, while faults are injected on a schedule, on SQLite and on PostgreSQL. It
//! checks the invariants below, prints a summary, and exits 1 when one is broken.
//!
//! - every call the server answered 200 has its invocation record once the run settles, and a
//!   chatty function's every served call has all its log lines;
//! - every answer is a documented status; no call is answered later than its bound (the queue
//!   wait plus the longest deadline plus a margin), and none goes unanswered;
//! - `/metrics` counts what the clients saw, per outcome;
//! - during the run, workers and cgroups stay within the configured maxima; after it, no worker
//!   process, cgroup, staging directory, network link or temporary file of the server is left;
//! - the server's RSS and open descriptors come back to within a margin of where they started.
//!
//! `scripts/soak [--duration SECONDS] [--store sqlite|postgres|both]` (600 s a store by default).
//! The server is SIGTERMed and restarted between epochs (with calls in flight, which must
//! finish), so an epoch is one incarnation of the server.

mod faults;
mod load;
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use load::Tally;
use server::{sum_of, SoakServer};

/// Where the soak's records live, and how to take it away for a while.
#[derive(Debug)]
pub enum Store {
    Sqlite {
        file: PathBuf,
    },
    /// `pg_ctl` with its data directory (run as the `postgres` user when we are root).
    Postgres {
        url: String,
        pg_ctl: Vec<String>,
    },
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Sqlite { .. } => "SQLite",
            Store::Postgres { .. } => "PostgreSQL",
        }
    }

    fn url(&self) -> String {
        match self {
            Store::Sqlite { file } => format!("sqlite://{}", file.display()),
            Store::Postgres { url, .. } => url.clone(),
        }
    }

    /// Rows of `sql`, tab-separated fields.
    fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        let output = match self {
            Store::Sqlite { file } => Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3, sys\nfor row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):\n    print('\\t'.join(str(v) for v in row))",
                ])
                .arg(file)
                .arg(sql)
                .output()?,
            Store::Postgres { url, .. } => {
                Command::new("psql").args([url.as_str(), "-X", "-q", "-A", "-t", "-F", "\t", "-c", sql]).output()?
            }
        };
        anyhow::ensure!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split('\t').map(String::from).collect())
            .collect())
    }
}

const ECHO_PY: &str = "def handler(body):\n    return {'echo': body}\n";
const ECHO_NODE: &str = "exports.handler = async (body) => ({ echo: body });\n";
const SLOW_PY: &str = "import time\ndef handler(body):\n    time.sleep(0.1)\n    return {'slept': 0.1}\n";
const CHATTY_NODE: &str = "exports.handler = async (body) => {\n  for (let i = 0; i < 20; i++) console.log(`soak-chatty line ${i}`);\n  return { lines: 20 };\n};\n";
const CRASH_PY: &str = "import os\ncalls = 0\ndef handler(body):\n    global calls\n    calls += 1\n    if calls % 5 == 0:\n        os._exit(3)\n    return {'calls': calls}\n";
const HUNGRY_NODE: &str = "let calls = 0;\nexports.handler = async (body) => {\n  calls += 1;\n  const megabytes = calls % 10 === 0 ? 256 : 16;\n  const blocks = [];\n  for (let i = 0; i < megabytes; i++) blocks.push(Buffer.alloc(1 << 20, 1));\n  return { megabytes: blocks.length };\n};\n";
const LATE_PY: &str = "import time\ncalls = 0\ndef handler(body):\n    global calls\n    calls += 1\n    if calls % 3 == 0:\n        time.sleep(1)\n    return {'calls': calls}\n";
const DRAIN_PY: &str = "import time\ndef handler(body):\n    time.sleep(1)\n    return {'drained': True}\n";

/// A function of the soak: name, entry file, code, deploy fields.
type Function = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)]);

/// All but `drain-py` are under `wrk`'s load.
const FUNCTIONS: [Function; 8] = [
    ("echo-py", "main.py", ECHO_PY, &[]),
    ("echo-node", "index.js", ECHO_NODE, &[]),
    ("slow-py", "main.py", SLOW_PY, &[("max_concurrency", "4")]),
    ("chatty-node", "index.js", CHATTY_NODE, &[]),
    ("crash-py", "main.py", CRASH_PY, &[]),
    ("hungry-node", "index.js", HUNGRY_NODE, &[("memory_mb", "64")]),
    ("late-py", "main.py", LATE_PY, &[("timeout_ms", "300")]),
    ("drain-py", "main.py", DRAIN_PY, &[]),
];
/// The longest deadline of those functions (the default, 5 s).
const LONGEST_DEADLINE: Duration = Duration::from_secs(5);
/// Slack on top of the queue wait and the deadline before a call counts as hanging.
const HANG_MARGIN: Duration = Duration::from_secs(2);
/// `wrk`'s connections: also how many calls may be cut off (answered, unread) when it stops.
const WRK_CONNECTIONS: usize = 6;
/// The most workers a function may have (the server's default cap), and spare shells.
const MAX_WORKERS_PER_FUNCTION: usize = 10;
/// Statuses a function URL is documented to answer (gateway/API.md).
const DOCUMENTED: [u16; 7] = [200, 429, 500, 502, 503, 504, 507];
/// Outcomes of `containerpub_invocations_total` by the status they are answered with.
const OUTCOMES: [(u16, &str); 6] = [
    (200, "ok"),
    (429, "queue_full"),
    (500, "function_error"),
    (502, "crashed"),
    (504, "timeout"),
    (507, "memory_limit"),
];

fn main() {
    let mut duration = Duration::from_secs(600);
    let mut stores = vec!["sqlite".to_string(), "postgres".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--duration", Some(seconds)) if seconds.parse::<u64>().is_ok_and(|seconds| seconds > 0) => {
                duration = Duration::from_secs(seconds.parse().expect("checked above"))
            }
            ("--store", Some(store)) if store == "both" => {}
            ("--store", Some(store)) if store == "sqlite" || store == "postgres" => stores = vec![store],
            _ => {
                eprintln!(
                    "usage: soak [--duration SECONDS] [--store sqlite|postgres|both] (SECONDS: a whole number above 0)"
                );
                std::process::exit(2);
            }
        }
    }
    // What a dying server leaves behind comes here, where the checks can see it.
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let release = std::env::current_exe().expect("own path").parent().expect("a directory").to_path_buf();
    let mut broken = 0;
    for store in stores {
        let store = match store.as_str() {
            "sqlite" => None,
            _ => match postgres_store() {
                Ok(store) => Some(store),
                Err(error) => {
                    println!("## PostgreSQL: cannot run ({error})\n");
                    broken += 1;
                    continue;
                }
            },
        };
        match run(&release, store, duration) {
            Ok(problems) => broken += problems,
            Err(error) => {
                println!("**the soak could not go on: {error:#}**\n");
                broken += 1;
            }
        }
    }
    if broken > 0 {
        println!("{broken} invariant(s) broken");
        std::process::exit(1);
    }
    println!("every invariant held");
}

/// A fresh database on the PostgreSQL that `scripts/soak` started (`SOAK_POSTGRES_URL`,
/// `SOAK_PG_CTL`: the command that controls it).
fn postgres_store() -> anyhow::Result<Store> {
    let admin = std::env::var("SOAK_POSTGRES_URL")
        .map_err(|_| anyhow::anyhow!("SOAK_POSTGRES_URL is not set (scripts/soak sets it)"))?;
    let pg_ctl: Vec<String> = std::env::var("SOAK_PG_CTL")?.split_whitespace().map(String::from).collect();
    let name = format!("soak_{}_{}", std::process::id(), Instant::now().elapsed().subsec_nanos());
    let output =
        Command::new("psql").args([admin.as_str(), "-X", "-q", "-c", &format!("CREATE DATABASE {name}")]).output()?;
    anyhow::ensure!(output.status.success(), "CREATE DATABASE: {}", String::from_utf8_lossy(&output.stderr));
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => anyhow::bail!("SOAK_POSTGRES_URL has no database name: {admin}"),
    };
    Ok(Store::Postgres { url, pg_ctl })
}

/// What one run counted, for the summary.
#[derive(Default)]
struct Figures {
    calls: Tally,
    faults: BTreeMap<&'static str, usize>,
    restarts: usize,
    most_workers: usize,
    most_cgroups: usize,
    journal_high_water: f64,
    resources: Vec<String>,
}

/// Soaks one store; returns how many invariants broke.
fn run(release: &Path, postgres: Option<Store>, duration: Duration) -> anyhow::Result<usize> {
    let data = tempfile::tempdir()?;
    let store = postgres.unwrap_or(Store::Sqlite { file: data.path().join("containerpub.db") });
    println!("## {} store, {} s\n", store.name(), duration.as_secs());
    let before = HostLeftovers::now();
    let mut problems: Vec<String> = Vec::new();
    let mut figures = Figures::default();
    let mut server = SoakServer::start(&release.join("containerpub"), data.path(), &store.url())?;
    let mut incarnations = vec![server.pid().expect("running")];

    let started = Instant::now();
    for (name, entry, code, fields) in FUNCTIONS {
        server.deploy(name, &[(entry, code)], fields)?;
    }
    let paths: Vec<String> =
        FUNCTIONS.iter().map(|(name, ..)| format!("/fn/{name}")).filter(|path| path != "/fn/drain-py").collect();
    let bound = server::MAX_QUEUE_WAIT + LONGEST_DEADLINE + HANG_MARGIN;
    let worker_cap = FUNCTIONS.len() * MAX_WORKERS_PER_FUNCTION + 8;
    // A memory and a pids group per worker or spare shell, kept for reuse, under one parent each.
    let cgroup_cap = 2 * (worker_cap + 3);
    let epochs = (duration.as_secs() / 150).max(2) as u32;
    let epoch_length = duration / epochs;
    let mut drained_ids = Vec::new();
    let mut turn = 0;

    for epoch in 0..epochs {
        if epoch > 0 {
            // SIGTERM with calls in flight: they finish, the server exits 0 and starts again.
            let (status, drained) = stop_under_load(&mut server)?;
            if !status.success() {
                problems.push(format!("the server exited with {status} after SIGTERM"));
            }
            if drained.statuses.get(&200).copied().unwrap_or(0) != 8 {
                problems.push(format!(
                    "calls in flight at SIGTERM did not all finish: {:?} {:?}",
                    drained.statuses, drained.unanswered
                ));
            }
            drained_ids.extend(drained.ok_ids.iter().cloned());
            figures.calls.add(drained);
            figures.restarts += 1;
            server.launch()?;
            incarnations.push(server.pid().expect("running"));
        }
        let pid = server.pid().expect("running");
        let mut tally = Tally::default();
        // Every function warm before the counts are taken: a first call each.
        for path in &paths {
            tally.add(load::burst(&server.url(path), 1, bound));
        }

        let wrk_length = epoch_length.saturating_sub(Duration::from_secs(5)).max(Duration::from_secs(10));
        let (base, wrk_paths) = (server.base.clone(), paths.clone());
        let steady = std::thread::spawn(move || load::wrk_epoch(&base, &wrk_paths, WRK_CONNECTIONS, wrk_length, bound));
        let epoch_started = Instant::now();
        // The server's RSS and descriptors under load, once warm (a fifth of the way) and at the end.
        let (mut warm_sample, mut last_sample) = (None, None);
        let (mut next_fault, mut next_burst) =
            (epoch_started + Duration::from_secs(3), epoch_started + Duration::from_secs(5));
        while !steady.is_finished() {
            let now = Instant::now();
            if now >= next_fault && epoch_started.elapsed() + Duration::from_secs(4) < wrk_length {
                let fault = faults::SCHEDULE[turn % faults::SCHEDULE.len()];
                turn += 1;
                match faults::inject(fault, &server, &store, turn) {
                    Ok(true) => *figures.faults.entry(fault.name()).or_default() += 1,
                    Ok(false) => {}
                    Err(error) => problems.push(format!("{} failed: {error:#}", fault.name())),
                }
                next_fault = Instant::now() + Duration::from_secs(6);
            }
            if now >= next_burst && epoch_started.elapsed() + Duration::from_secs(3) < wrk_length {
                // Five times slow-py's cap plus queue at once: most are refused.
                tally.add(load::burst(&server.url("/fn/slow-py"), 120, bound));
                *figures.faults.entry("burst of 120 calls over a cap of 4 + queue 20").or_default() += 1;
                next_burst = Instant::now() + Duration::from_secs(10);
            }
            let workers = server::workers(pid).len();
            let cgroups = server::cgroups_of(pid).len();
            let sample = server::rss_and_fds(pid).map(|(rss, fds)| (rss, fds, workers));
            if warm_sample.is_none() && epoch_started.elapsed() >= wrk_length / 5 {
                warm_sample = sample;
            }
            if epoch_started.elapsed() + Duration::from_secs(2) < wrk_length {
                last_sample = sample;
            }
            if cgroups > cgroup_cap {
                problems.push(format!("{cgroups} cgroups at once, over the {cgroup_cap} the configuration allows"));
            }
            figures.most_workers = figures.most_workers.max(workers);
            figures.most_cgroups = figures.most_cgroups.max(cgroups);
            if workers > worker_cap {
                problems.push(format!("{workers} workers at once, over the {worker_cap} the configuration allows"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        tally.add(steady.join().expect("wrk"));

        // Quiet: what /metrics counted in this incarnation against what the clients saw.
        std::thread::sleep(Duration::from_secs(1));
        let metrics = server.metrics()?;
        problems.extend(check_answers(&tally, &metrics, epoch));
        figures.journal_high_water =
            figures.journal_high_water.max(sum_of(&metrics, "containerpub_records_journal_high_water_bytes", &[]));
        let (Some(warm), Some(last)) = (warm_sample, last_sample) else {
            anyhow::bail!("epoch {}: too short to sample the server's resources", epoch + 1);
        };
        figures.resources.push(format!(
            "epoch {}: RSS {:.1} → {:.1} MB, fds {} → {}, workers {} → {}",
            epoch + 1,
            warm.0 as f64 / 1e6,
            last.0 as f64 / 1e6,
            warm.1,
            last.1,
            warm.2,
            last.2
        ));
        // Each worker holds a few descriptors (its pipes, its pidfd); the rest must not grow.
        let fd_allowance = 16 + 6 * last.2.saturating_sub(warm.2);
        if last.1 > warm.1 + fd_allowance {
            problems.push(format!("epoch {}: open descriptors grew {} → {}", epoch + 1, warm.1, last.1));
        }
        if last.0 > warm.0 + warm.0 / 4 + (16 << 20) {
            problems.push(format!("epoch {}: RSS grew {} → {} bytes", epoch + 1, warm.0, last.0));
        }
        figures.calls.add(tally);
    }

    // Settle: the journal written back, the last batches in.
    let settle = Instant::now();
    while sum_of(&server.metrics()?, "containerpub_records_journal_bytes", &[]) > 0.0 {
        if settle.elapsed() > Duration::from_secs(60) {
            problems.push("the records journal was not written back within 60 s of the load's end".into());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let final_metrics = server.metrics()?;
    let lost = sum_of(&final_metrics, "containerpub_records_dropped_total", &[]);
    if lost > 0.0 {
        problems.push(format!("{lost} records or log lines dropped (the journal was full)"));
    }
    let records = check_records(&store, &figures.calls, &drained_ids, &mut problems)?;

    let status = server.stop()?;
    if !status.success() {
        problems.push(format!("the server exited with {status} after the final SIGTERM"));
    }
    std::thread::sleep(Duration::from_millis(500));
    problems.extend(HostLeftovers::now().compared_with(&before, &incarnations, data.path()));

    print_summary(&figures, records, started.elapsed(), &problems);
    if !problems.is_empty() {
        println!("server log (last lines):\n{}\n", server.log_tail());
    }
    Ok(problems.len())
}

/// SIGTERM while eight one-second calls run; their tally once the server has exited.
fn stop_under_load(server: &mut SoakServer) -> anyhow::Result<(std::process::ExitStatus, Tally)> {
    let url = server.url("/fn/drain-py");
    let calls = std::thread::spawn(move || load::burst(&url, 8, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(400));
    let status = server.stop()?;
    Ok((status, calls.join().expect("the drained calls")))
}

/// Every answer documented, none late or missing, and `/metrics` counting what the clients saw.
fn check_answers(tally: &Tally, metrics: &[(String, f64)], epoch: u32) -> Vec<String> {
    let mut problems = Vec::new();
    let undocumented: Vec<_> = tally.statuses.iter().filter(|(status, _)| !DOCUMENTED.contains(status)).collect();
    if !undocumented.is_empty() {
        problems.push(format!("epoch {}: undocumented statuses {undocumented:?}", epoch + 1));
    }
    if !tally.unanswered.is_empty() {
        problems.push(format!("epoch {}: calls without an answer: {:?}", epoch + 1, tally.unanswered));
    }
    if !tally.late.is_empty() {
        problems.push(format!("epoch {}: answers past the bound: {:?}", epoch + 1, tally.late));
    }
    // wrk stops with up to a call per connection in flight: the server counted it, wrk never read it.
    let mut unread = 0.0;
    for (status, outcome) in OUTCOMES {
        let seen = tally.statuses.get(&status).copied().unwrap_or(0) as f64;
        let counted = sum_of(metrics, "containerpub_invocations_total", &[&format!("outcome=\"{outcome}\"")]);
        if counted < seen {
            problems.push(format!(
                "epoch {}: the clients saw {seen} {status}s, /metrics counted {counted} {outcome}",
                epoch + 1
            ));
        }
        unread += counted - seen;
    }
    if unread > WRK_CONNECTIONS as f64 {
        problems.push(format!("epoch {}: /metrics counted {unread} more calls than the clients saw", epoch + 1));
    }
    let refused_503 = ["wait_exceeded", "runtime_unavailable"]
        .iter()
        .map(|outcome| sum_of(metrics, "containerpub_invocations_total", &[&format!("outcome=\"{outcome}\"")]))
        .sum::<f64>();
    if refused_503 > tally.statuses.get(&503).copied().unwrap_or(0) as f64 + WRK_CONNECTIONS as f64 {
        problems.push(format!("epoch {}: /metrics counted {refused_503} 503 outcomes, the clients fewer", epoch + 1));
    }
    problems
}

/// Every 200 has its record; every served call of the chatty function has its 20 lines.
/// Returns how many invocation records the store holds.
fn check_records(
    store: &Store,
    calls: &Tally,
    drained: &[String],
    problems: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let stored: BTreeSet<String> = store
        .query("SELECT id FROM function_invocations")?
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect();
    let missing: Vec<&String> = calls.ok_ids.iter().chain(drained).filter(|id| !stored.contains(*id)).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {} calls answered 200 have no invocation record (first: {:?})",
            missing.len(),
            calls.ok_ids.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    // Two scans and a join here: a correlated count per invocation is quadratic in SQLite.
    let chatty = store.query("SELECT id FROM functions WHERE name = 'chatty-node'")?;
    let chatty = chatty.first().and_then(|row| row.first()).ok_or_else(|| anyhow::anyhow!("no chatty-node"))?;
    let lines: BTreeMap<String, String> = store
        .query(&format!(
            "SELECT invocation_id, count(*) FROM function_logs \
             WHERE function_id = '{chatty}' AND invocation_id IS NOT NULL GROUP BY invocation_id"
        ))?
        .into_iter()
        .filter_map(|row| Some((row.first()?.clone(), row.get(1)?.clone())))
        .collect();
    let served: BTreeSet<&String> = calls.ok_ids.iter().collect();
    let chatty_ok = store
        .query(&format!("SELECT id FROM function_invocations WHERE function_id = '{chatty}' AND outcome = 'ok'"))?;
    let incomplete: Vec<(String, String)> = chatty_ok
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .filter(|id| served.contains(id))
        .map(|id| {
            let count = lines.get(&id).cloned().unwrap_or_else(|| "0".into());
            (id, count)
        })
        .filter(|(_, count)| count != "20")
        .collect();
    if !incomplete.is_empty() {
        problems.push(format!(
            "{} served chatty calls lack log lines (first: {:?})",
            incomplete.len(),
            incomplete.first()
        ));
    }
    Ok(stored.len())
}

/// What the server could leave on the host: processes, staging directories, network links,
/// temporary files.
struct HostLeftovers {
    links: BTreeSet<String>,
    tmp: BTreeSet<String>,
}

impl HostLeftovers {
    fn now() -> HostLeftovers {
        let output = Command::new("ip").args(["-o", "link"]).output().map(|out| out.stdout).unwrap_or_default();
        let links = String::from_utf8_lossy(&output)
            .lines()
            .filter_map(|line| line.split(':').nth(1).map(|name| name.trim().to_string()))
            .collect();
        let tmp = std::fs::read_dir("/tmp")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        HostLeftovers { links, tmp }
    }

    fn compared_with(&self, before: &HostLeftovers, servers: &[i32], data: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        let own = std::process::id() as i32;
        for (pid, command) in server::descendants(own) {
            // A zombie has no command line, only its name. The store's own processes come here
            // too (a restarted PostgreSQL's parent exits at once): they are not the server's.
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let worker_name = ["containerpub", "python3", "node"].iter().any(|prefix| name.trim().starts_with(prefix));
            let ours = servers.iter().any(|server| command.contains(&format!("--parent {server}")))
                || command.contains("/containerpub/adapters/")
                || (command.is_empty() && worker_name);
            if ours {
                problems.push(format!("process {pid} ({}) left behind: {command:?} (empty: a zombie)", name.trim()));
            }
        }
        for server in servers {
            let groups = server::cgroups_of(*server);
            if !groups.is_empty() {
                problems.push(format!("cgroups of server {server} left: {groups:?}"));
            }
        }
        let functions = data.join("functions");
        for entry in std::fs::read_dir(&functions).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(".staging") {
                problems.push(format!("staging directory left: {}", entry.path().display()));
            }
        }
        let links: Vec<_> = self.links.difference(&before.links).collect();
        if !links.is_empty() {
            problems.push(format!("network links left: {links:?}"));
        }
        let data_name = data.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp: Vec<_> = self.tmp.difference(&before.tmp).filter(|name| **name != data_name).collect();
        if !tmp.is_empty() {
            problems.push(format!("new entries in /tmp: {tmp:?}"));
        }
        problems
    }
}

fn print_summary(figures: &Figures, records: usize, took: Duration, problems: &[String]) {
    let calls = &figures.calls;
    println!("| | |\n|---|---|");
    println!("| ran | {:.0} s, {} restarts (SIGTERM with calls in flight) |", took.as_secs_f64(), figures.restarts);
    println!("| answers | {} ({}) |", calls.answers(), statuses(&calls.statuses));
    println!("| answered 200 | {} |", calls.ok_ids.len());
    println!("| invocation records in the store | {records} |");
    println!("| slowest answer | {:.2} s |", calls.slowest.as_secs_f64());
    let faults: Vec<String> = figures.faults.iter().map(|(name, count)| format!("{name} ×{count}")).collect();
    println!("| faults | {} |", faults.join(", "));
    println!("| most workers, cgroups at once | {}, {} |", figures.most_workers, figures.most_cgroups);
    println!("| journal high-water mark | {:.0} KB |", figures.journal_high_water / 1e3);
    for line in &figures.resources {
        println!(
            "| {} | {} |",
            line.split(':').next().unwrap_or(""),
            line.split_once(": ").map_or("", |(_, rest)| rest)
        );
    }
    println!();
    if problems.is_empty() {
        println!("invariants: all held\n");
    } else {
        println!("invariants broken:");
        for problem in problems {
            println!("- {problem}");
        }
        println!();
    }
}

fn statuses(counts: &BTreeMap<u16, u64>) -> String {
    counts.iter().map(|(status, count)| format!("{status}: {count}")).collect::<Vec<_>>().join(", ")
}
