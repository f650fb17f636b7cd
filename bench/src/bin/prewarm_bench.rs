//! Checks the prewarm targets of `bench/README.md` on this machine:
//!
//! 1. warm invoke through the pool against a raw pipe round trip to an identical worker process
//!    (same adapter, same function): the pool may add at most 20 µs at p50;
//! 2. warm against oneshot throughput for the same Python function: at least 100×;
//! 3. what the platform adds to a runtime's start (spawner, exec wrapper, cgroup, and the sandbox:
//!    namespaces, root, identity, filter): at most 2 ms at p50, sandbox on;
//! 4. the warm path with the sandbox on against off: unchanged within noise (≤ 15 µs at p50);
//! 5. churn: 1,000 sandboxed cold starts in a row, the last hundred no slower than the first
//!    (namespaces are torn down asynchronously; a pile-up would show as growth).
//!
//! `cargo run --release -p bench --bin prewarm-bench [-- --quick]`; exits 1 when a target is missed.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use prewarm::exec_wrapper::WrapperPlan;
use prewarm::limits::{detect_enforcement, LimitsHost, SpareGroups, WorkerLimits};
use prewarm::protocol::{encode_request, InvocationEvent};
use prewarm::sandbox::enter::SandboxSteps;
use prewarm::sandbox::{NetworkPolicy, Sandbox, SandboxConfig, SandboxMode};
use prewarm::shells::{Launch, ShellPool};
use prewarm::spawn::{create_pipe, SpawnCommand, Spawner};
use prewarm::{EntryMode, FunctionSpec, InvocationRequest, Outcome, Prewarm, PrewarmConfig, Runtime, RuntimeInstall};

const FUNCTION: &str = r#"
import json, os

def handler(body):
    return {"ok": True, "n": body.get("n", 0)}

if __name__ == "__main__":
    data = json.loads(os.environ["FUNCTION_INPUT"])
    print(json.dumps(handler(data["body"])))
"#;

struct Settings {
    round_trips: u64,
    throughput_window: Duration,
    spawns: u64,
    churn: u64,
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let settings = if quick {
        Settings { round_trips: 2_000, throughput_window: Duration::from_secs(1), spawns: 30, churn: 200 }
    } else {
        Settings { round_trips: 20_000, throughput_window: Duration::from_secs(5), spawns: 200, churn: 1_000 }
    };
    let wrapper = sibling_binary("containerpub-worker-exec")?;
    let work = tempfile::tempdir()?;
    let function_dir = work.path().join("function");
    std::fs::create_dir_all(&function_dir)?;
    std::fs::write(function_dir.join("main.py"), FUNCTION)?;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut missed = Vec::new();

    let overhead = runtime.block_on(pool_overhead(&settings, &wrapper, work.path(), &function_dir))?;
    println!(
        "\n## 1. warm invoke through the pool vs raw pipe round trip (python worker, {} calls each)",
        settings.round_trips
    );
    println!("| path | p50 | p90 | p99 |\n|---|---|---|---|");
    print_row("raw pipe round trip (unconfined)", &overhead.raw);
    print_row("pool.invoke (warm, sandbox on)", &overhead.pool);
    print_row("pool.invoke (warm, sandbox off)", &overhead.pool_unconfined);
    print_row("pool.invoke (warm, sandbox on, idle workers not frozen)", &overhead.pool_unfrozen);
    let added = overhead.pool.value_at_quantile(0.5) as i64 - overhead.raw.value_at_quantile(0.5) as i64;
    println!("pool adds {added} µs at p50 (target ≤ 20 µs)");
    if added > 20 {
        missed.push(format!("pool adds {added} µs at p50"));
    }
    let sandbox_cost =
        overhead.pool.value_at_quantile(0.5) as i64 - overhead.pool_unconfined.value_at_quantile(0.5) as i64;
    println!("\n## 4. the sandbox on the warm path: {sandbox_cost} µs at p50 (target ≤ 15 µs, noise)");
    if sandbox_cost > 15 {
        missed.push(format!("the sandbox adds {sandbox_cost} µs to a warm call"));
    }

    let freezing_cost =
        overhead.pool.value_at_quantile(0.5) as i64 - overhead.pool_unfrozen.value_at_quantile(0.5) as i64;
    println!(
        "\n## 6. freezing idle workers (after 200 ms idle) on back-to-back warm calls: {freezing_cost} µs at p50 (target ≤ 10 µs)"
    );
    if freezing_cost > 10 {
        missed.push(format!("freezing idle workers adds {freezing_cost} µs to a warm call"));
    }
    let (frozen, running) = runtime.block_on(calls_after_idle(&wrapper, work.path(), &function_dir))?;
    println!("| a call after 300 ms idle | p50 | p90 |\n|---|---|---|");
    println!(
        "| worker frozen meanwhile (thawed by the call) | {} µs | {} µs |",
        frozen.value_at_quantile(0.5),
        frozen.value_at_quantile(0.9)
    );
    println!("| worker left running | {} µs | {} µs |", running.value_at_quantile(0.5), running.value_at_quantile(0.9));

    let (warm, oneshot) = runtime.block_on(throughput(&settings, &wrapper, work.path(), &function_dir))?;
    println!(
        "\n## 2. throughput of the same Python function, 2 concurrent callers, {:?} each",
        settings.throughput_window
    );
    println!("| mode | invocations/s |\n|---|---|\n| warm (handler) | {warm:.0} |\n| oneshot (process per call) | {oneshot:.1} |");
    let ratio = warm / oneshot;
    println!("warm is {ratio:.0}× oneshot (target ≥ 100×)");
    if ratio < 100.0 {
        missed.push(format!("warm is only {ratio:.0}× oneshot"));
    }

    let spawn = runtime.block_on(spawn_overhead(&settings, &wrapper))?;
    println!(
        "\n## 3. spawn + exit, direct vs through the platform ({} each, enforcement: {})",
        settings.spawns, spawn.enforcement
    );
    println!("| program | direct p50 | platform p50 | added | no spare shell ready p50 |\n|---|---|---|---|---|");
    for row in &spawn.rows {
        let (direct, platform) = (row.direct.value_at_quantile(0.5), row.platform.value_at_quantile(0.5));
        let added = platform as i64 - direct as i64;
        let no_spare = row.no_spare.value_at_quantile(0.5);
        println!("| {} | {direct} µs | {platform} µs | {added} µs | {no_spare} µs |", row.program);
        if added > 2_000 {
            missed.push(format!("the platform adds {added} µs to {}", row.program));
        }
    }

    let churn = runtime.block_on(sandboxed_churn(&settings, &wrapper))?;
    let (first, last) = (churn.first.value_at_quantile(0.5), churn.last.value_at_quantile(0.5));
    println!("\n## 5. {} sandboxed cold starts in a row (python3 -S -c pass, spare shells refilling)", settings.churn);
    println!("| starts | p50 | p90 |\n|---|---|---|");
    println!("| first 100 | {first} µs | {} µs |", churn.first.value_at_quantile(0.9));
    println!("| last 100 | {last} µs | {} µs |", churn.last.value_at_quantile(0.9));
    if last as f64 > first as f64 * 1.25 {
        missed.push(format!("cold starts grew from {first} µs to {last} µs over the churn run"));
    }

    if missed.is_empty() {
        println!("\nall prewarm targets met");
        Ok(())
    } else {
        bail!("targets missed: {}", missed.join("; "))
    }
}

fn print_row(name: &str, histogram: &Histogram<u64>) {
    println!(
        "| {name} | {} µs | {} µs | {} µs |",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.9),
        histogram.value_at_quantile(0.99)
    );
}

/// The exec wrapper is built beside this binary (same target directory).
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let here = std::env::current_exe()?;
    let candidate = here.parent().context("binary has a directory")?.join(name);
    if !candidate.is_file() {
        bail!("{} not found: build it first with `cargo build --release -p prewarm`", candidate.display());
    }
    Ok(candidate)
}

fn config(wrapper: &Path, state: &Path) -> PrewarmConfig {
    let mut config = PrewarmConfig::new(state.to_path_buf(), wrapper.to_path_buf());
    config.global_max_concurrency = 4;
    config
}

fn unconfined_config(wrapper: &Path, state: &Path) -> PrewarmConfig {
    let mut config = config(wrapper, state);
    config.sandbox.mode = SandboxMode::Off;
    config
}

fn spec(function_dir: &Path, key: &str, mode: EntryMode, workers: usize) -> FunctionSpec {
    let mut limits = prewarm::FunctionLimits {
        min_idle_workers: workers,
        max_workers: workers,
        max_concurrency: workers,
        ..Default::default()
    };
    limits.max_requests_per_worker = u64::MAX;
    FunctionSpec {
        key: key.into(),
        name: key.into(),
        runtime: Runtime::Python,
        version: "1".into(),
        entry: prewarm::FunctionEntry::default_for(Runtime::Python, mode),
        directory: function_dir.to_path_buf(),
        env: Default::default(),
        limits,
        sandbox_uid: None,
        network: None,
        database_url: None,
        account: String::new(),
        account_weight: 1.0,
    }
}

fn event(n: u64) -> InvocationEvent {
    InvocationEvent { method: "POST".into(), path: "/".into(), ..Default::default() }
        .with_raw_body(format!(r#"{{"n":{n}}}"#).as_bytes())
}

struct Overhead {
    raw: Histogram<u64>,
    pool: Histogram<u64>,
    pool_unconfined: Histogram<u64>,
    pool_unfrozen: Histogram<u64>,
}

async fn pool_overhead(settings: &Settings, wrapper: &Path, work: &Path, function_dir: &Path) -> Result<Overhead> {
    let pool = warm_calls(settings, function_dir, config(wrapper, &work.join("state-overhead"))).await?;
    let pool_unconfined =
        warm_calls(settings, function_dir, unconfined_config(wrapper, &work.join("state-unconfined"))).await?;
    let mut unfrozen = config(wrapper, &work.join("state-unfrozen"));
    unfrozen.freeze_idle_workers = false;
    let pool_unfrozen = warm_calls(settings, function_dir, unfrozen).await?;
    let raw = raw_pipe(settings, wrapper, work, function_dir).await?;
    Ok(Overhead { raw, pool, pool_unconfined, pool_unfrozen })
}

/// Calls that each come after 300 ms of idleness: past `idle_freeze_after`, so with freezing on
/// the worker was frozen and the call thaws it; the same with freezing off.
async fn calls_after_idle(
    wrapper: &Path,
    work: &Path,
    function_dir: &Path,
) -> Result<(Histogram<u64>, Histogram<u64>)> {
    let mut measured = Vec::new();
    for (name, freeze) in [("state-after-idle-frozen", true), ("state-after-idle-running", false)] {
        let mut config = config(wrapper, &work.join(name));
        config.freeze_idle_workers = freeze;
        config.reap_interval = Duration::from_millis(50);
        let (prewarm, _stray) = Prewarm::start(config)?;
        prewarm.prepare(spec(function_dir, "idle", EntryMode::Handler, 1)).await?;
        let mut histogram = Histogram::<u64>::new(3)?;
        for n in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = Instant::now();
            let invocation = prewarm.invoke("idle", InvocationRequest { id: n.to_string(), event: event(n) }).await?;
            histogram.record(started.elapsed().as_micros() as u64)?;
            if invocation.outcome != Outcome::Ok {
                bail!("invocation after idle failed: {:?}", invocation.error);
            }
        }
        prewarm.shutdown(Duration::from_secs(1)).await;
        measured.push(histogram);
    }
    let running = measured.pop().context("two runs")?;
    Ok((measured.pop().context("two runs")?, running))
}

/// Warm invocations of one worker, as the gateway's request tasks make them.
async fn warm_calls(settings: &Settings, function_dir: &Path, config: PrewarmConfig) -> Result<Histogram<u64>> {
    let (prewarm, _stray) = Prewarm::start(config)?;
    prewarm.prepare(spec(function_dir, "overhead", EntryMode::Handler, 1)).await?;
    // Invocations run as tasks on the runtime's worker threads, as the gateway's request handlers do.
    let rounds = settings.round_trips;
    let caller = prewarm.clone();
    let pool = tokio::spawn(async move {
        let mut histogram = Histogram::<u64>::new(3)?;
        for n in 0..rounds + 200 {
            let started = Instant::now();
            let invocation =
                caller.invoke("overhead", InvocationRequest { id: n.to_string(), event: event(n) }).await?;
            let took = started.elapsed().as_micros() as u64;
            if invocation.outcome != Outcome::Ok {
                bail!("pool invocation failed: {:?}", invocation.error);
            }
            if n >= 200 {
                histogram.record(took)?;
            }
        }
        Ok(histogram)
    })
    .await??;
    prewarm.shutdown(Duration::from_secs(1)).await;
    Ok(pool)
}

/// The same adapter and function, driven with blocking reads and writes from one thread: the
/// least any caller can pay for one framed round trip.
async fn raw_pipe(settings: &Settings, wrapper: &Path, work: &Path, function_dir: &Path) -> Result<Histogram<u64>> {
    let install = RuntimeInstall::discover(std::env::var_os("PATH").as_deref(), &work.join("adapters-raw"))?;
    let adapters = install.adapter_dir().to_path_buf();
    let (program, args) = install.command(
        Runtime::Python,
        EntryMode::Handler,
        &function_dir.join("main.py"),
        prewarm::DEFAULT_FUNCTION,
        Some(prewarm::Shape::Body),
        &adapters,
    )?;
    let spawner = Spawner::start(None)?;
    let (request_read, request_write) = create_pipe()?;
    let (response_read, response_write) = create_pipe()?;
    // Confined exactly like a pool worker: the same cgroup limits (a memory cgroup charges every
    // page the worker touches) and the same environment switches.
    let detected = detect_enforcement(&LimitsHost::default());
    let groups = SpareGroups::new(detected.enforcement.clone(), 1);
    let limits = WorkerLimits { memory_bytes: 128 << 20, max_pids: 64, max_open_files: 1024 };
    let confinement = groups.confine(limits)?;
    let plan = WrapperPlan {
        cgroup_procs_files: confinement.procs_files(),
        rlimits: confinement.rlimits(limits),
        working_dir: Some(function_dir.to_path_buf()),
        program,
        args: args.into_iter().map(Into::into).collect(),
        ..Default::default()
    };
    let env = vec![
        ("PATH".to_string(), "/usr/local/bin:/usr/bin:/bin".to_string()),
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    let command =
        SpawnCommand { wrapper: wrapper.to_path_buf(), plan, env, fds: vec![(request_read, 3), (response_write, 4)] };
    let mut child = spawner.spawn(command).await?;
    let count = settings.round_trips;
    let raw = tokio::task::spawn_blocking(move || raw_round_trips(request_write, response_read, count)).await??;
    child.kill_group();
    child.wait().await;
    confinement.release();
    groups.remove_all();
    prewarm::limits::remove_parent_groups(&detected.enforcement);
    Ok(raw)
}

fn raw_round_trips(requests: OwnedFd, responses: OwnedFd, count: u64) -> Result<Histogram<u64>> {
    let mut requests = std::fs::File::from(requests);
    let mut responses = std::fs::File::from(responses);
    let mut histogram = Histogram::<u64>::new(3)?;
    read_frame(&mut responses)?; // ready
    for n in 0..count + 200 {
        let frame = encode_request(&n.to_string(), 5_000, &event(n), false);
        let started = Instant::now();
        requests.write_all(&frame)?;
        read_frame(&mut responses)?;
        if n >= 200 {
            histogram.record(started.elapsed().as_micros() as u64)?;
        }
    }
    Ok(histogram)
}

fn read_frame(responses: &mut std::fs::File) -> Result<Vec<u8>> {
    let mut header = [0u8; 4];
    responses.read_exact(&mut header)?;
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    responses.read_exact(&mut payload)?;
    Ok(payload)
}

async fn throughput(settings: &Settings, wrapper: &Path, work: &Path, function_dir: &Path) -> Result<(f64, f64)> {
    let (prewarm, _stray) = Prewarm::start(config(wrapper, &work.join("state-throughput")))?;
    prewarm.prepare(spec(function_dir, "warm", EntryMode::Handler, 2)).await?;
    prewarm.prepare(spec(function_dir, "oneshot", EntryMode::Main, 2)).await?;
    let mut rates = Vec::new();
    for key in ["warm", "oneshot"] {
        let started = Instant::now();
        let callers = (0..2).map(|caller| {
            let prewarm = prewarm.clone();
            let window = settings.throughput_window;
            tokio::spawn(async move {
                let mut done = 0u64;
                while started.elapsed() < window {
                    let id = format!("{caller}-{done}");
                    let invocation = prewarm.invoke(key, InvocationRequest { id, event: event(done) }).await?;
                    if invocation.outcome != Outcome::Ok {
                        bail!("{key} invocation failed: {:?}", invocation.error);
                    }
                    done += 1;
                }
                Ok(done)
            })
        });
        let mut total = 0;
        for caller in callers.collect::<Vec<_>>() {
            total += caller.await??;
        }
        rates.push(total as f64 / started.elapsed().as_secs_f64());
    }
    prewarm.shutdown(Duration::from_secs(1)).await;
    Ok((rates[0], rates[1]))
}

struct SpawnOverhead {
    enforcement: &'static str,
    rows: Vec<SpawnRow>,
}

struct SpawnRow {
    program: String,
    direct: Histogram<u64>,
    /// A spare shell was ready, as in steady state: the plan is sent, the shell execs.
    platform: Histogram<u64>,
    /// No shell was ready: spawn, join the cgroup and exec all happen while the caller waits.
    no_spare: Histogram<u64>,
}

/// `--enforcement rlimit|cgroup-v1|cgroup-v2` forces a mechanism, to compare their costs.
fn forced_enforcement() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|pair| pair[0] == "--enforcement").map(|pair| pair[1].clone())
}

async fn spawn_overhead(settings: &Settings, wrapper: &Path) -> Result<SpawnOverhead> {
    let host = LimitsHost { forced: forced_enforcement(), ..LimitsHost::default() };
    let detected = detect_enforcement(&host);
    let groups = SpareGroups::new(detected.enforcement.clone(), 4);
    let shells = ShellPool::new(Spawner::start(None)?, groups.clone(), wrapper.to_path_buf(), 1, false);
    let cold_shells = ShellPool::new(Spawner::start(None)?, groups.clone(), wrapper.to_path_buf(), 0, false);
    let sandboxed = sandboxed_shells(wrapper, groups.clone(), 1, 901)?;
    let sandboxed_cold = sandboxed.without_spares(groups.clone());
    let install =
        RuntimeInstall::discover(std::env::var_os("PATH").as_deref(), &tempfile::tempdir()?.path().join("a"))?;
    let python = install.executable(Runtime::Python).context("python3 on PATH")?.to_path_buf();
    let python_args = vec!["-S".to_string(), "-c".into(), "pass".into()];
    // The sandbox's root holds the runtime and nothing else: /bin/true is not in it.
    let programs: Vec<(String, PathBuf, Vec<String>, Option<&SandboxedShells>)> = vec![
        ("/bin/true".into(), "/bin/true".into(), vec![], None),
        ("python3 -S -c pass".into(), python.clone(), python_args.clone(), None),
        ("python3 -S -c pass, sandbox on".into(), python, python_args, Some(&sandboxed)),
    ];
    let limits = WorkerLimits { memory_bytes: 128 << 20, max_pids: 64, max_open_files: 1024 };
    let directory = std::env::temp_dir();
    let mut rows = Vec::new();
    for (name, program, args, sandbox) in programs {
        let mut row = SpawnRow {
            program: name.clone(),
            direct: Histogram::new(3)?,
            platform: Histogram::new(3)?,
            no_spare: Histogram::new(3)?,
        };
        for _ in 0..settings.spawns {
            let started = Instant::now();
            let status = tokio::process::Command::new(&program).args(&args).env_clear().status().await?;
            row.direct.record(started.elapsed().as_micros() as u64)?;
            if !status.success() {
                bail!("{name} failed directly");
            }
            let (warm_pool, cold_pool, steps, directory) = match sandbox {
                Some(sandboxed) => {
                    (&sandboxed.shells, &sandboxed_cold.shells, Some(&sandboxed.steps), Path::new("/fn"))
                }
                None => (&shells, &cold_shells, None, directory.as_path()),
            };
            // Steady state: a spare shell is ready (the pool refills in the background).
            warm_pool.refill();
            while warm_pool.ready_count() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            for (pool, histogram) in [(warm_pool, &mut row.platform), (cold_pool, &mut row.no_spare)] {
                let started = Instant::now();
                let launch = Launch { program: &program, args: &args, env: &[], directory, limits, sandbox: steps };
                let mut launched = pool.take().await?.launch(launch).await?;
                let status = launched.process.wait().await;
                histogram.record(started.elapsed().as_micros() as u64)?;
                if status != prewarm::spawn::ExitStatus::Exited(0) {
                    bail!("{name} failed through the platform: {status}: {}", stderr_of(launched.pipes.stderr));
                }
                launched.confinement.release();
            }
        }
        rows.push(row);
    }
    shells.close().await;
    sandboxed.shells.close().await;
    groups.remove_all();
    prewarm::limits::remove_parent_groups(&detected.enforcement);
    Ok(SpawnOverhead { enforcement: detected.enforcement.name(), rows })
}

/// What a finished process left on its stderr pipe (the wrapper names the step that failed).
fn stderr_of(pipe: OwnedFd) -> String {
    let mut text = String::new();
    let _ = std::fs::File::from(pipe).read_to_string(&mut text);
    text.trim().to_string()
}

/// Spare shells confined like a server's, and the launch steps of one Python function.
struct SandboxedShells {
    shells: std::sync::Arc<ShellPool>,
    steps: SandboxSteps,
    spawner: Spawner,
    /// Held for as long as the shells run: it owns the host side of their namespaces.
    sandbox: std::sync::Arc<Sandbox>,
    /// The function's network namespace, joined by path: kept open while the shells run.
    network: prewarm::sandbox::network::OwnNetwork,
    wrapper: PathBuf,
    _state: std::sync::Arc<tempfile::TempDir>,
}

impl SandboxedShells {
    /// A pool of the same sandbox (same spawner namespace, same templates) that keeps no spares.
    fn without_spares(&self, groups: std::sync::Arc<SpareGroups>) -> SandboxedShells {
        SandboxedShells {
            shells: ShellPool::new(self.spawner.clone(), groups, self.wrapper.clone(), 0, true),
            steps: self.steps.clone(),
            spawner: self.spawner.clone(),
            sandbox: self.sandbox.clone(),
            network: self.network.clone(),
            wrapper: self.wrapper.clone(),
            _state: self._state.clone(),
        }
    }
}

fn sandboxed_shells(
    wrapper: &Path,
    groups: std::sync::Arc<SpareGroups>,
    spare: usize,
    instance: u64,
) -> Result<SandboxedShells> {
    let state = tempfile::tempdir()?;
    let install = RuntimeInstall::discover(std::env::var_os("PATH").as_deref(), &state.path().join("adapters"))?;
    let (sandbox, setup) = Sandbox::start(SandboxConfig::default(), state.path(), &install, None, instance)?;
    let function_dir = state.path().join("function");
    std::fs::create_dir_all(&function_dir)?;
    let uid = sandbox.unallocated_uid().context("a free uid")?;
    let launch = sandbox
        .launch(Runtime::Python, &function_dir, uid, NetworkPolicy::Egress, 128 << 20, None)
        .map_err(anyhow::Error::msg)?;
    let (steps, network) = (launch.steps, launch.network);
    let spawner = Spawner::start(Some(setup))?;
    let sandbox = std::sync::Arc::new(sandbox);
    let shells = ShellPool::new(spawner.clone(), groups, wrapper.to_path_buf(), spare, true);
    Ok(SandboxedShells {
        shells,
        steps,
        spawner,
        sandbox,
        network,
        wrapper: wrapper.to_path_buf(),
        _state: std::sync::Arc::new(state),
    })
}

struct Churn {
    first: Histogram<u64>,
    last: Histogram<u64>,
}

/// Sandboxed cold starts one after another, with two spare shells refilling as a server keeps them.
async fn sandboxed_churn(settings: &Settings, wrapper: &Path) -> Result<Churn> {
    let detected = detect_enforcement(&LimitsHost::default());
    let groups = SpareGroups::new(detected.enforcement.clone(), 4);
    let sandboxed = sandboxed_shells(wrapper, groups.clone(), 2, 903)?;
    let install =
        RuntimeInstall::discover(std::env::var_os("PATH").as_deref(), &tempfile::tempdir()?.path().join("a"))?;
    let python = install.executable(Runtime::Python).context("python3 on PATH")?.to_path_buf();
    let args = vec!["-S".to_string(), "-c".into(), "pass".into()];
    let limits = WorkerLimits { memory_bytes: 128 << 20, max_pids: 64, max_open_files: 1024 };
    let mut churn = Churn { first: Histogram::new(3)?, last: Histogram::new(3)? };
    for start in 0..settings.churn {
        let began = Instant::now();
        let launch = Launch {
            program: &python,
            args: &args,
            env: &[],
            directory: Path::new("/fn"),
            limits,
            sandbox: Some(&sandboxed.steps),
        };
        let mut launched = sandboxed.shells.take().await?.launch(launch).await?;
        let status = launched.process.wait().await;
        let took = began.elapsed().as_micros() as u64;
        if status != prewarm::spawn::ExitStatus::Exited(0) {
            bail!("sandboxed start {start} failed: {status}: {}", stderr_of(launched.pipes.stderr));
        }
        tokio::task::spawn_blocking(move || launched.confinement.release()).await?;
        if start < 100 {
            churn.first.record(took)?;
        } else if start >= settings.churn - 100 {
            churn.last.record(took)?;
        }
    }
    sandboxed.shells.close().await;
    groups.remove_all();
    prewarm::limits::remove_parent_groups(&detected.enforcement);
    Ok(churn)
}
