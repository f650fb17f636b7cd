//! Starts the real `containerpub` binary on a free port with a temporary data directory, against
//! SQLite or against a fresh database on the throwaway PostgreSQL the test command started
//! (`CONTAINERPUB_TEST_POSTGRES_URL`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::blocking::{multipart, Client, Response};
use serde_json::{json, Value};

/// The signing secret the servers under test use, so tests can forge tokens.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Small caps, so limit tests are quick.
pub const CONFIG: &str = r#"
[auth]
# Tests register several accounts; the sign-up policy test sets CONTAINERPUB_REGISTRATION.
registration = "open"

[functions]
max_queue_length = 1
max_queue_wait_ms = 10000

[deploy]
max_archive_bytes = 1000000
max_expanded_bytes = 4000000
max_entries = 50

[http]
drain_timeout_seconds = 20
idle_timeout_seconds = 2
body_timeout_seconds = 4
max_body_bytes = 100000
"#;

/// [`CONFIG`]'s upload limits, small so that the limit tests stay quick.
const DEPLOY_LIMITS: &str = "[deploy]
max_archive_bytes = 1000000
max_expanded_bytes = 4000000
max_entries = 50
";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: Arc<tempfile::TempDir>,
    pub database_url: String,
    log_path: PathBuf,
    pub client: Client,
    /// A login of the server's first account, its administrator (`ADMIN_EMAIL`), made when the
    /// server first starts.
    pub admin: String,
}

/// The administrator every test server gets: the first account of its data directory.
pub const ADMIN_EMAIL: &str = "admin@containerpub.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// A new server with an empty store, or `None` (after a visible skip line) when the backend
    /// is PostgreSQL and no test server was started.
    pub fn start(backend: Backend) -> Option<Server> {
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", data_dir.path().join("containerpub.db").display()),
            Backend::Postgres => fresh_postgres_database(&postgres_url()?),
        };
        Some(Server::start_on(data_dir, database_url))
    }

    /// Like `start`, with extra environment variables for the server.
    pub fn start_with_env(backend: Backend, env: &[(&str, String)]) -> Option<Server> {
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", data_dir.path().join("containerpub.db").display()),
            Backend::Postgres => fresh_postgres_database(&postgres_url()?),
        };
        Some(Server::launch(data_dir, database_url, env))
    }

    /// A server on an existing data directory and database (a restart).
    pub fn start_on(data_dir: Arc<tempfile::TempDir>, database_url: String) -> Server {
        Server::launch(data_dir, database_url, &[])
    }

    /// Like `start_on`, with extra environment variables (an empty value unsets one).
    pub fn start_on_with_env(data_dir: Arc<tempfile::TempDir>, database_url: String, env: &[(&str, String)]) -> Server {
        Server::launch(data_dir, database_url, env)
    }

    /// A server whose configuration file is [`CONFIG`] with `extra` (sections CONFIG lacks, or a
    /// `[deploy]` of its own) after it.
    pub fn start_with_config(backend: Backend, extra: &str, env: &[(&str, String)]) -> Option<Server> {
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", data_dir.path().join("containerpub.db").display()),
            Backend::Postgres => fresh_postgres_database(&postgres_url()?),
        };
        std::fs::write(data_dir.path().join("extra.toml"), extra).unwrap();
        Some(Server::launch(data_dir, database_url, env))
    }

    fn launch(data_dir: Arc<tempfile::TempDir>, database_url: String, env: &[(&str, String)]) -> Server {
        let config = data_dir.path().join("test.toml");
        let extra = std::fs::read_to_string(data_dir.path().join("extra.toml")).unwrap_or_default();
        // An `extra` with its own [deploy] section replaces the tests' small upload limits.
        let base = if extra.contains("[deploy]") { CONFIG.replace(DEPLOY_LIMITS, "") } else { CONFIG.to_string() };
        std::fs::write(&config, format!("{base}\n{extra}")).unwrap();
        let mut server = Server::launch_with(data_dir, &database_url, Some(&config), env);
        // The first account is the administrator (registered on first start, logged in after).
        let credentials = json!({ "email": ADMIN_EMAIL, "password": "correct horse battery" });
        let registered = server.post_json("/api/auth/register", None, &credentials).status().as_u16();
        assert!(registered == 201 || registered == 409, "the administrator could not register: {registered}");
        server.admin = server.login(ADMIN_EMAIL);
        server
    }

    /// The server as a newcomer starts it: built-in defaults (no configuration file), SQLite in
    /// its data directory, no account yet (`admin` is empty).
    pub fn newcomer(env: &[(&str, String)]) -> Server {
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        let database_url = format!("sqlite://{}", data_dir.path().join("containerpub.db").display());
        Server::launch_with(data_dir, &database_url, None, env)
    }

    fn launch_with(
        data_dir: Arc<tempfile::TempDir>,
        database_url: &str,
        config: Option<&Path>,
        env: &[(&str, String)],
    ) -> Server {
        let binary = workspace_binary("containerpub");
        let wrapper = workspace_binary("containerpub-worker-exec");
        assert!(
            wrapper.exists(),
            "{} is missing: build it with `cargo build -p prewarm --bin containerpub-worker-exec` (scripts/test does)",
            wrapper.display()
        );
        // A free port can be taken between asking and binding (tests run in parallel): try again.
        for _ in 0..3 {
            if let Some(server) = Server::try_launch(&binary, &wrapper, config, data_dir.clone(), database_url, env) {
                return server;
            }
        }
        panic!("the server could not bind a free port three times");
    }

    fn try_launch(
        binary: &Path,
        wrapper: &Path,
        config: Option<&Path>,
        data_dir: Arc<tempfile::TempDir>,
        database_url: &str,
        env: &[(&str, String)],
    ) -> Option<Server> {
        let port = free_port();
        let log_path = data_dir.path().join(format!("server-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(binary);
        command.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"]).arg(data_dir.path());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", SECRET)
            .env("CONTAINERPUB_WORKER_EXEC", wrapper)
            .env("RUST_LOG", "info")
            .envs(env.iter().filter(|(_, value)| !value.is_empty()).map(|(key, value)| (*key, value.as_str())));
        // An empty value in `env` unsets that variable (a server without `JWT_SECRET`).
        for (key, _) in env.iter().filter(|(_, value)| value.is_empty()) {
            command.env_remove(key);
        }
        let child = command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        let client = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut server = Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            data_dir,
            database_url: database_url.to_string(),
            log_path,
            client,
            admin: String::new(),
        };
        server.wait_ready().then_some(server)
    }

    /// `/healthz` as an administrator sees it (anyone else gets only `status`).
    pub fn health(&self) -> Value {
        self.get("/healthz", Some(&self.admin)).json().unwrap()
    }

    /// True once the server answers; false when it exited because its port was taken.
    fn wait_ready(&mut self) -> bool {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                if self.log().contains("cannot listen on") {
                    self.child = None;
                    return false;
                }
                panic!("the server exited ({status}) before it was ready:\n{}", self.log());
            }
            if let Ok(response) = self.client.get(self.url("/healthz")).timeout(Duration::from_secs(2)).send() {
                if response.status().is_success() {
                    return true;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the server was not ready in 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().and_then(|port| port.parse().ok()).expect("base ends with the port")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGTERM, then waits for the process to exit; returns its exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        self.stop_with(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends `signal`, then waits for the process to exit; returns its exit status code.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> Option<i32> {
        let mut child = self.child.take()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the server did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // ---- API helpers ----

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap()
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap()
    }

    /// Registers `email` and returns a fresh token.
    pub fn user(&self, email: &str) -> String {
        let credentials = json!({ "email": email, "password": "correct horse battery" });
        let registered = self.post_json("/api/auth/register", None, &credentials);
        assert_eq!(registered.status(), 201, "{}", registered.text().unwrap());
        self.login(email)
    }

    pub fn login(&self, email: &str) -> String {
        let credentials = json!({ "email": email, "password": "correct horse battery" });
        let login = self.post_json("/api/auth/login", None, &credentials);
        assert_eq!(login.status(), 200);
        login.json::<Value>().unwrap()["token"].as_str().unwrap().to_string()
    }

    /// Deploys an archive; returns the status and the JSON body.
    pub fn deploy(&self, token: &str, name: &str, archive: Vec<u8>, fields: &[(&str, &str)]) -> (u16, Value) {
        let mut form = multipart::Form::new()
            .text("name", name.to_string())
            .part("archive", multipart::Part::bytes(archive).file_name("function.tar.gz"));
        for (key, value) in fields {
            form = form.text(key.to_string(), value.to_string());
        }
        let response =
            self.client.post(self.url("/api/functions/deploy")).bearer_auth(token).multipart(form).send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }
}

/// A server a test is done with stops as an operator would stop it (SIGTERM), so it removes what
/// it set up on the host (its egress link and nftables table); SIGKILL after 10 s.
impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let give_up = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Says out loud that a test could not run here. Written to stderr directly, which the test
/// harness does not capture, so the line shows in every run (and `scripts/test` counts it).
pub fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

/// The throwaway PostgreSQL server's URL, or `None` after a visible skip line.
pub fn postgres_url() -> Option<String> {
    match std::env::var("CONTAINERPUB_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            skip("CONTAINERPUB_TEST_POSTGRES_URL is not set (scripts/test starts PostgreSQL)");
            None
        }
    }
}

/// Runs SQL on the test PostgreSQL server through psql; returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args([url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// A login role with `attributes` (`LOGIN` is implied) and a database of the same name it owns,
/// on the test PostgreSQL server at `admin_url`; its URL.
pub fn role_and_database(admin_url: &str, role: &str, attributes: &str) -> String {
    psql(admin_url, &format!("CREATE ROLE {role} LOGIN {attributes}")).unwrap();
    psql(admin_url, &format!("CREATE DATABASE {role} OWNER {role}")).unwrap();
    let base = admin_url.rsplit_once('@').unwrap().1.rsplit_once('/').unwrap().0;
    format!("postgres://{role}@{base}/{role}")
}

pub fn fresh_postgres_database(server_url: &str) -> String {
    let name = format!("containerpub_test_{}", std::process::id()) + &format!("_{}", rand_suffix());
    let status = Command::new("psql")
        .args([server_url, "-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(status.success(), "cannot create a test database on {server_url}");
    let base = server_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(server_url);
    format!("{base}/{name}")
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A `.tar.gz` of the files given as (path, contents).
pub fn archive(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, contents.as_bytes()).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("gateway/ is in the repository").to_path_buf()
}

/// A binary of the workspace, built beside `containerpub`.
pub fn workspace_binary(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerpub")).with_file_name(name)
}

/// A `.tar.gz` of an example directory of the repository.
pub fn example(relative: &str) -> Vec<u8> {
    let dir = repository().join(relative);
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all(".", &dir).unwrap();
    gzip(&builder.into_inner().unwrap())
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A raw tar entry whose name and type bypass the tar crate's own checks.
pub fn hostile_archive(name: &str, kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut ok = tar::Header::new_gnu();
    ok.set_size(0);
    ok.set_mode(0o644);
    builder.append_data(&mut ok, "main.py", &b""[..]).unwrap();
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..11].copy_from_slice(b"/etc/passwd");
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, data).unwrap();
    gzip(&builder.into_inner().unwrap())
}

/// The error code of an API error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Declares the same test against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both_stores {
    ($name:ident) => {
        $crate::both_stores!($name, env = []);
    };
    // The same, with extra environment variables for both servers.
    ($name:ident, env = $env:expr) => {
        mod $name {
            #[test]
            fn sqlite() {
                if let Some(server) = $crate::harness::Server::start_with_env($crate::harness::Backend::Sqlite, &$env) {
                    super::$name(server);
                }
            }

            #[test]
            fn postgres() {
                if let Some(server) = $crate::harness::Server::start_with_env($crate::harness::Backend::Postgres, &$env)
                {
                    super::$name(server);
                }
            }
        }
    };
}
