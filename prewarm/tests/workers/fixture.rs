//! Shared fixture: a pool on a temp dir with real workers, and small helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prewarm::{
    EntryMode, FunctionLimits, FunctionSpec, Invocation, InvocationEvent, InvocationRequest, Prewarm, PrewarmConfig,
    Runtime,
};

pub struct Fixture {
    pub prewarm: Prewarm,
    pub dir: tempfile::TempDir,
    pub stray: tokio::sync::mpsc::Receiver<prewarm::StrayLogLine>,
    next_id: std::sync::atomic::AtomicU64,
}

pub fn wrapper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerpub-worker-exec"))
}

pub fn base_config(state_dir: &Path) -> PrewarmConfig {
    let mut config = PrewarmConfig::new(state_dir.to_path_buf(), wrapper());
    config.default_limits.max_queue_wait = Duration::from_secs(5);
    config.default_limits.timeout = Duration::from_secs(5);
    config.reap_interval = Duration::from_millis(50);
    // Every behaviour is tested with workers confined, as a server runs them. Without root the
    // sandbox cannot start (it fails closed), so those runs test unconfined workers and say so.
    if !nix::unistd::geteuid().is_root() {
        config.sandbox.mode = prewarm::SandboxMode::Off;
        skip("not root: workers run without the sandbox");
    }
    config
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(adjust: impl FnOnce(&mut PrewarmConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config(&dir.path().join("state"));
        adjust(&mut config);
        let (prewarm, stray) = Prewarm::start(config).expect("pool starts");
        Self { prewarm, dir, stray, next_id: Default::default() }
    }

    /// Writes `files` into a new function directory and returns a spec for it.
    pub fn function(&self, name: &str, runtime: Runtime, mode: EntryMode, files: &[(&str, &str)]) -> FunctionSpec {
        let directory = self.dir.path().join("functions").join(name);
        std::fs::create_dir_all(&directory).unwrap();
        for (file, contents) in files {
            std::fs::create_dir_all(directory.join(file).parent().unwrap()).unwrap();
            std::fs::write(directory.join(file), contents).unwrap();
        }
        FunctionSpec {
            key: format!("{name}@1"),
            name: name.to_string(),
            runtime,
            version: "1".into(),
            entry: prewarm::FunctionEntry::default_for(runtime, mode),
            directory,
            env: BTreeMap::new(),
            limits: FunctionLimits { ..self.prewarm.config().default_limits.clone() },
            sandbox_uid: None,
            network: None,
            database_url: None,
            account: String::new(),
            account_weight: 1.0,
        }
    }

    pub fn python(&self, name: &str, source: &str) -> FunctionSpec {
        self.function(name, Runtime::Python, EntryMode::Handler, &[("main.py", source)])
    }

    pub fn node(&self, name: &str, source: &str) -> FunctionSpec {
        self.function(name, Runtime::Node, EntryMode::Handler, &[("index.js", source)])
    }

    pub async fn call(&self, key: &str, body: &str) -> Invocation {
        let event = InvocationEvent { method: "POST".into(), path: "/".into(), ..Default::default() }
            .with_raw_body(body.as_bytes());
        self.call_event(key, event).await
    }

    pub async fn call_event(&self, key: &str, event: InvocationEvent) -> Invocation {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.prewarm
            .invoke(key, InvocationRequest { id: format!("inv-{id}"), event })
            .await
            .expect("function is prepared")
    }
}

/// True when the process is gone (not even a zombie).
pub fn process_gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls until the process is gone; panics after `within`.
pub async fn assert_process_gone(pid: i32, within: Duration) {
    let give_up = tokio::time::Instant::now() + within;
    while !process_gone(pid) {
        assert!(tokio::time::Instant::now() < give_up, "process {pid} still exists after {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether the real cgroup hierarchies are writable here (they are as root on these machines).
pub fn real_cgroups_writable() -> bool {
    let probe = PathBuf::from(format!("/sys/fs/cgroup/memory/containerpub-probe-{}", std::process::id()));
    let ok = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    ok || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").is_ok_and(|c| c.contains("memory"))
}

/// Says loudly that a test did not run its checks. The test harness captures `println!`, so
/// this writes to the real stderr: the line shows in every run, passing or not.
/// Whether this host can freeze idle workers (a cgroup v2 group, or v1's `freezer` hierarchy);
/// says `skipped:` when it cannot.
pub fn freezes_idle_workers(fixture: &Fixture, what: &str) -> bool {
    let freezes = fixture.prewarm.enforcement().0.has_freezer();
    if !freezes {
        skip(&format!("{what}: this host has no cgroup freezer"));
    }
    freezes
}

pub fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}
