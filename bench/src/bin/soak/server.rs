//! The server under the soak: the release `containerpub` on a data directory and a store that
//! outlive it (it is stopped and started again), its processes, and what `/metrics` says.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The soak's configuration: a short queue wait so the deadline bound is tight, a quick drain.
pub const CONFIG: &str =
    "[functions]\nmax_queue_length = 20\nmax_queue_wait_ms = 2000\n\n[http]\ndrain_timeout_seconds = 10\n";
/// `[functions] max_queue_wait_ms` above.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_millis(2000);

pub struct SoakServer {
    child: Option<Child>,
    pub base: String,
    pub address: String,
    binary: PathBuf,
    pub data_dir: PathBuf,
    pub database_url: String,
    client: reqwest::blocking::Client,
    pub token: String,
}

impl SoakServer {
    /// Starts the first incarnation and registers the soak's account.
    pub fn start(binary: &Path, data_dir: &Path, database_url: &str) -> anyhow::Result<SoakServer> {
        std::fs::write(data_dir.join("soak.toml"), CONFIG)?;
        let address = format!("127.0.0.1:{}", bench::free_port());
        let mut server = SoakServer {
            child: None,
            base: format!("http://{address}"),
            address,
            binary: binary.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            database_url: database_url.to_string(),
            client: reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build()?,
            token: String::new(),
        };
        server.launch()?;
        let credentials = json!({ "email": "soak@example.com", "password": "a soak test password" });
        server.client.post(server.url("/api/auth/register")).json(&credentials).send()?;
        let login: Value = server.client.post(server.url("/api/auth/login")).json(&credentials).send()?.json()?;
        server.token = login["token"].as_str().ok_or_else(|| anyhow::anyhow!("no token: {login}"))?.to_string();
        Ok(server)
    }

    /// Starts the server (again) on the same data directory and store, and waits until it answers.
    pub fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.data_dir.join("server.log"))?;
        let child = Command::new(&self.binary)
            .args(["serve", "--listen", &self.address, "--config"])
            .arg(self.data_dir.join("soak.toml"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let started = Instant::now();
        while !self.client.get(self.url("/healthz")).send().is_ok_and(|answer| answer.status().is_success()) {
            if started.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("the server did not answer /healthz within 60 s:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|child| child.id() as i32)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, and its exit status once it has exited (at most 60 s).
    pub fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().ok_or_else(|| anyhow::anyhow!("the server is not running"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                anyhow::bail!("the server did not exit within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Deploys `files` as `name` with the extra form `fields`; the answer's JSON.
    pub fn deploy(&self, name: &str, files: &[(&str, &str)], fields: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut form = reqwest::blocking::multipart::Form::new().text("name", name.to_string()).text("public", "true");
        for (field, value) in fields {
            form = form.text(field.to_string(), value.to_string());
        }
        let form = form.part(
            "archive",
            reqwest::blocking::multipart::Part::bytes(bench::tar_gz(files)).file_name("function.tar.gz"),
        );
        let answer =
            self.client.post(self.url("/api/functions/deploy")).bearer_auth(&self.token).multipart(form).send()?;
        let status = answer.status();
        let body: Value = answer.json()?;
        anyhow::ensure!(status.as_u16() == 201, "deploy {name}: {status} {body}");
        Ok(body)
    }

    pub fn rollback(&self, name: &str, version: i64) -> anyhow::Result<()> {
        let answer = self
            .client
            .post(self.url(&format!("/api/functions/{name}/rollback")))
            .bearer_auth(&self.token)
            .json(&json!({ "version": version }))
            .send()?;
        anyhow::ensure!(answer.status().is_success(), "rollback {name}: {} {}", answer.status(), answer.text()?);
        Ok(())
    }

    /// `/metrics` as (series with labels, value).
    pub fn metrics(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let text = self.client.get(self.url("/metrics")).send()?.text()?;
        Ok(text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect())
    }
}

/// The sum of every series of the family `name` whose labels contain each of `labels`.
pub fn sum_of(metrics: &[(String, f64)], name: &str, labels: &[&str]) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|label| series.contains(label))
        })
        .map(|(_, value)| value)
        .sum()
}

/// Resident memory (bytes) and open descriptors of a process.
pub fn rss_and_fds(pid: i32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss_kb * 1024, fds))
}

/// (pid, parent pid, command line) of every process.
fn processes() -> Vec<(i32, i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(ppid) = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(1)?.parse().ok()) else {
            continue;
        };
        let command = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let command = String::from_utf8_lossy(&command).replace('\0', " ");
        found.push((pid, ppid, command));
    }
    found
}

/// The processes below `root` (children, theirs, …), with their command lines.
pub fn descendants(root: i32) -> Vec<(i32, String)> {
    let all = processes();
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(all.iter().filter(|(_, ppid, _)| *ppid == parent).map(|(pid, _, _)| *pid));
        index += 1;
    }
    all.into_iter().filter(|(pid, _, _)| *pid != root && found.contains(pid)).map(|(pid, _, cmd)| (pid, cmd)).collect()
}

/// The workers (the runtimes' adapters) below the server.
pub fn workers(server: i32) -> Vec<i32> {
    descendants(server)
        .into_iter()
        .filter(|(_, command)| command.contains("/containerpub/adapters/"))
        .map(|(pid, _)| pid)
        .collect()
}

/// A worker's function, from its environment.
pub fn function_of(worker: i32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{worker}/environ")).ok()?;
    environ
        .split(|byte| *byte == 0)
        .find_map(|entry| entry.strip_prefix(b"FUNCTION_NAME="))
        .map(|name| String::from_utf8_lossy(name).into_owned())
}

/// The cgroup directories of the server `pid` (`containerpub-PID-N` and below), in every hierarchy.
pub fn cgroups_of(pid: i32) -> Vec<PathBuf> {
    let prefix = format!("containerpub-{pid}-");
    let mut found = Vec::new();
    for hierarchy in ["", "memory", "pids", "unified", "cpu"] {
        let root = Path::new("/sys/fs/cgroup").join(hierarchy);
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(entry.path());
                for child in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                    if child.file_type().is_ok_and(|kind| kind.is_dir()) {
                        found.push(child.path());
                    }
                }
            }
        }
    }
    found
}
