//! Faults the soak injects while the load runs, in turn: a worker SIGKILLed, a worker's memory
//! cgroup squeezed, the store stopped and started again, a deploy and a rollback of a function
//! under load. (The server's own SIGTERM and restart happen between epochs, in `main`.)

use std::process::Command;
use std::time::Duration;

use crate::server::{function_of, workers, SoakServer};
use crate::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillWorker,
    SqueezeMemory,
    StoreOutage,
    Deploy,
    Rollback,
}

pub const SCHEDULE: [Fault; 5] =
    [Fault::KillWorker, Fault::StoreOutage, Fault::SqueezeMemory, Fault::Deploy, Fault::Rollback];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillWorker => "worker SIGKILLed",
            Fault::SqueezeMemory => "worker cgroup memory squeezed",
            Fault::StoreOutage => "store stopped and restarted",
            Fault::Deploy => "deploy under load",
            Fault::Rollback => "rollback under load",
        }
    }
}

/// How long the store stays down: longer than the server's 5 s wait for a connection or a
/// lock, so its writes fail (and go to the journal) rather than only wait.
const OUTAGE: Duration = Duration::from_secs(8);

/// Injects `fault`; `Ok(false)` when this machine cannot (no worker yet, no cgroup), said why.
pub fn inject(fault: Fault, server: &SoakServer, store: &Store, turn: usize) -> anyhow::Result<bool> {
    let pid = server.pid().ok_or_else(|| anyhow::anyhow!("the server is not running"))?;
    match fault {
        Fault::KillWorker => {
            let all = workers(pid);
            let Some(victim) = all.get(turn % all.len().max(1)) else { return Ok(false) };
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(*victim), nix::sys::signal::Signal::SIGKILL)?;
            Ok(true)
        }
        Fault::SqueezeMemory => {
            // The memory-hungry function's worker gets a cap just above what it uses (the kernel
            // refuses one below, with nothing to reclaim): its next call's allocation is an OOM
            // kill, answered 507.
            for worker in workers(pid) {
                if function_of(worker).as_deref() != Some("hungry-node") {
                    continue;
                }
                let Some(group) = memory_cgroup(worker) else { continue };
                let usage: u64 =
                    std::fs::read_to_string(group.join("memory.usage_in_bytes"))?.trim().parse().unwrap_or(32 << 20);
                let squeezed = (usage + (2 << 20)).to_string();
                // memory+swap first where it exists: it may never be below the memory limit.
                let _ = std::fs::write(group.join("memory.limit_in_bytes"), &squeezed);
                let _ = std::fs::write(group.join("memory.memsw.limit_in_bytes"), &squeezed);
                std::fs::write(group.join("memory.limit_in_bytes"), &squeezed)?;
                return Ok(true);
            }
            Ok(false)
        }
        Fault::StoreOutage => {
            store.outage(OUTAGE)?;
            Ok(true)
        }
        Fault::Deploy => {
            let code = format!("exports.handler = async (body) => ({{ echo: body, release: {turn} }});\n");
            server.deploy("echo-node", &[("index.js", &code)], &[])?;
            Ok(true)
        }
        Fault::Rollback => {
            // Back to the first version (every deploy above made a newer one).
            server.rollback("echo-node", 1)?;
            Ok(true)
        }
    }
}

/// The worker's memory cgroup directory (cgroup v1 here; v2 has one group for every controller).
fn memory_cgroup(worker: i32) -> Option<std::path::PathBuf> {
    let groups = std::fs::read_to_string(format!("/proc/{worker}/cgroup")).ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if controllers.split(',').any(|controller| controller == "memory") {
            Some(std::path::Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')))
        } else if controllers.is_empty() {
            Some(std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
        } else {
            None
        }
    })
}

impl Store {
    /// Makes the store refuse writes for `length`, then takes it back.
    fn outage(&self, length: Duration) -> anyhow::Result<()> {
        match self {
            Store::Postgres { pg_ctl, .. } => {
                run(pg_ctl, &["stop", "-m", "fast", "-w"])?;
                std::thread::sleep(length);
                run(pg_ctl, &["start", "-w"])?;
            }
            Store::Sqlite { file } => {
                // An embedded store cannot stop: another process holds its write lock instead,
                // so every write of the server waits, then fails.
                let holder = format!(
                    "import sqlite3, time\nc = sqlite3.connect({file:?}, isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\ntime.sleep({})\nc.execute('COMMIT')\n",
                    length.as_secs_f64()
                );
                let status = Command::new("python3").args(["-c", &holder]).status()?;
                anyhow::ensure!(status.success(), "the SQLite lock holder failed");
            }
        }
        Ok(())
    }
}

/// Runs `command` (a program and its first arguments, space-separated) with `args`.
fn run(command: &[String], args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(&command[0]).args(&command[1..]).args(args).output()?;
    anyhow::ensure!(
        output.status.success(),
        "{} {}: {}{}",
        command.join(" "),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
