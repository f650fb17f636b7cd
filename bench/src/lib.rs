//! What the benchmarks that drive a real server share: the release `containerpub` started on a
//! free port with a temporary data directory and an account, function deploys, and child
//! processes that stop when dropped.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod wrk;

/// A child process stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
#[derive(Debug)]
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let give_up = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("address").port()
}

/// A `.tar.gz` of the files given as (path, contents).
pub fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    tar_gz_bytes(files.iter().map(|(name, contents)| (name.to_string(), contents.as_bytes())))
}

/// A `.tar.gz` of the files given as (path, bytes).
pub fn tar_gz_bytes<'a>(files: impl IntoIterator<Item = (String, &'a [u8])>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, contents).expect("tar");
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&builder.into_inner().expect("tar")).expect("gzip");
    encoder.finish().expect("gzip")
}

/// The release server, ready, with a logged-in account.
#[derive(Debug)]
pub struct Gateway {
    pub process: Running,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    token: String,
    client: reqwest::blocking::Client,
    _data: tempfile::TempDir,
}

impl Gateway {
    /// Starts `containerpub` from `release` (the directory of the release binaries) and registers
    /// its first account.
    pub fn start(release: &Path) -> Gateway {
        let binary = release.join("containerpub");
        assert!(binary.exists(), "{} is missing: cargo build --release", binary.display());
        let data = tempfile::tempdir().expect("a temp dir");
        let address = format!("127.0.0.1:{}", free_port());
        let process = Running(
            Command::new(&binary)
                .args(["serve", "--listen", &address, "--data-dir"])
                .arg(data.path())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the server starts"),
        );
        let base = format!("http://{address}");
        let client = reqwest::blocking::Client::new();
        let started = Instant::now();
        while client.get(format!("{base}/healthz")).send().map(|r| !r.status().is_success()).unwrap_or(true) {
            assert!(started.elapsed() < Duration::from_secs(60), "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let credentials = json!({ "email": "bench@example.com", "password": "benchmark password" });
        client.post(format!("{base}/api/auth/register")).json(&credentials).send().expect("register");
        let login: Value = client
            .post(format!("{base}/api/auth/login"))
            .json(&credentials)
            .send()
            .expect("login")
            .json()
            .expect("json");
        let token = login["token"].as_str().expect("a token").to_string();
        Gateway { process, address, base, token, client, _data: data }
    }

    /// The account's bearer token, for control-plane calls.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Deploys a public function made of `files`; panics unless it answers 201.
    pub fn deploy_public(&self, name: &str, files: &[(&str, &str)]) {
        let (status, answer) = self.deploy_archive(name, tar_gz(files));
        assert_eq!(status, 201, "{name}: {answer}");
    }

    /// Deploys `archive` (a `.tar.gz`) as a public function `name`; the status and the answer.
    pub fn deploy_archive(&self, name: &str, archive: Vec<u8>) -> (u16, Value) {
        let form = reqwest::blocking::multipart::Form::new()
            .text("name", name.to_string())
            .text("public", "true")
            .part("archive", reqwest::blocking::multipart::Part::bytes(archive).file_name("function.tar.gz"));
        let deployed = self
            .client
            .post(format!("{}/api/functions/deploy", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .expect("deploy");
        let status = deployed.status().as_u16();
        (status, deployed.json().unwrap_or(Value::Null))
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self._data.path()
    }
}
