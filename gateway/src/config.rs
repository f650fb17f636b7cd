//! Server configuration: built-in defaults, then the TOML file (`--config`), then the seed's
//! environment variables, then command-line flags. Every value is checked here, at start-up, so
//! a typo stops the server with a message naming the setting instead of misbehaving later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default `sqlite://DATA_DIR/containerpub.db`.
    pub database_url: Option<String>,
    /// Where extracted function versions live; default `DATA_DIR/functions`.
    pub functions_dir: Option<PathBuf>,
    pub auth: AuthConfig,
    pub functions: FunctionDefaults,
    pub function_database: FunctionDatabaseConfig,
    pub deploy: DeployLimits,
    pub http: HttpLimits,
    pub sandbox: prewarm::SandboxConfig,
    pub metrics: MetricsConfig,
    pub records: RecordsConfig,
    pub logs: LogsConfig,
    pub analyzer: AnalyzerPolicy,
    pub dependencies: DependencyPolicy,
    /// This node's name among the nodes sharing a PostgreSQL store; default: the host name.
    pub node_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC secret for tokens (at least 32 bytes); default: generated once, kept in the data dir.
    pub jwt_secret: Option<String>,
    pub token_ttl_seconds: u64,
    pub issuer: String,
    pub audience: String,
    /// Who may create an account: `first-user` (the first account is the administrator, then
    /// only invitations), `open`, or `invite` (invitations only, once an administrator exists).
    pub registration: Registration,
    /// How long an invitation stays usable.
    pub invite_ttl_seconds: u64,
}

/// `[auth] registration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Registration {
    FirstUser,
    Open,
    Invite,
}

impl std::str::FromStr for Registration {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text.trim() {
            "first-user" => Ok(Registration::FirstUser),
            "open" => Ok(Registration::Open),
            "invite" => Ok(Registration::Invite),
            other => bail!("registration {other:?} is not valid: expected first-user, open or invite"),
        }
    }
}

/// `[records]`: invocation records and log lines on their way to the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordsConfig {
    /// The most the on-disk journal holds while the database does not take writes (in MiB).
    pub journal_max_mb: u64,
    /// Invocation records (and counted refusals) older than this are deleted.
    pub keep_days: f64,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self { journal_max_mb: 256, keep_days: 30.0 }
    }
}

/// `[logs]`: what a function may log, and how long it is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// One call's lines (its output, then its error's stack trace) beyond these are dropped and
    /// summarized in one line.
    pub max_lines_per_call: u64,
    pub max_bytes_per_call: u64,
    /// A function's lines beyond this rate are dropped and counted (each function may burst to
    /// a whole call's worth).
    pub max_lines_per_second: u64,
    pub max_bytes_per_second: u64,
    /// Lines older than this are deleted.
    pub keep_days: f64,
    /// A function's oldest lines are deleted once its lines pass this size.
    pub max_mb_per_function: u64,
    /// How often retention runs.
    pub prune_interval_seconds: u64,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            max_lines_per_call: 4_096,
            max_bytes_per_call: 256 << 10,
            max_lines_per_second: 1_000,
            max_bytes_per_second: 1 << 20,
            keep_days: 7.0,
            max_mb_per_function: 100,
            prune_interval_seconds: 60,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// When set, `/metrics` answers only `Authorization: Bearer <token>` (its labels name every
    /// tenant's functions).
    pub token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionDefaults {
    pub timeout_ms: u64,
    pub memory_mb: u64,
    /// Invocations running at once across the server.
    pub max_concurrent: usize,
    /// Calls of one function allowed to wait for a slot; more are answered 429.
    pub max_queue_length: usize,
    /// How long a call may wait for a slot before it is answered 503.
    pub max_queue_wait_ms: u64,
    /// The fraction of `max_concurrent` one account of weight 1 may hold at once (at least one
    /// slot); the rest is always free for other accounts.
    pub max_account_share: f64,
    /// Accounts (by e-mail) that weigh more or less than 1: an account of weight 2 may hold twice
    /// the share (up to the whole cap) and is served as if it ran half its calls.
    pub account_weights: std::collections::HashMap<String, f64>,
    /// Upper bounds a deploy may ask for.
    pub max_timeout_ms: u64,
    pub max_memory_mb: u64,
    /// Accept (and keep) versions whose runtime this server lacks; they answer 503 until it has
    /// it. Off by default: such a deploy is refused with 422 `runtime_unavailable`.
    pub park_missing_runtimes: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionDatabaseConfig {
    /// A PostgreSQL database functions may use (`DATABASE_URL` inside the function).
    pub url: Option<String>,
    /// Connections each function's role may hold (the shared role's, in shared mode); default 5.
    pub max_connections: Option<u32>,
    /// The most a deploy may ask for with `db_connections` (per-function mode); default 20.
    pub max_connections_per_function: Option<u32>,
    pub timeout_ms: Option<u64>,
    /// A function's database backend using more private memory than this is ended (when
    /// PostgreSQL runs on this host); default 512.
    pub max_backend_mb: Option<u64>,
}

/// How the analyzer judges installed packages (`node_modules/`, pip's distributions): the
/// function's own code always gets every rule in full.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyzerPolicy {
    /// Refuse a deploy for a finding in an installed package, as for the function's own code
    /// (default: reported as a warning; the package runs confined like the function).
    pub dependency_findings_fatal: bool,
    /// Refuse native extension modules in installed packages (a wheel's `.so`, an addon's
    /// `.node`); default: allowed, the sandbox confines them.
    pub deny_native_dependencies: bool,
}

/// How a Node or Python function's declared dependencies are installed at deploy (npm, pip, in
/// the confined builder).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DependencyPolicy {
    /// The whole of one install, offline attempt and download together; default 300.
    pub install_timeout_secs: u64,
    /// The builder's memory cap; default 1024.
    pub builder_memory_mb: u64,
    /// Install npm packages that want install scripts or ship compiled addons (their scripts still
    /// never run); default: refused, naming them.
    pub allow_install_scripts: bool,
}

impl Default for DependencyPolicy {
    fn default() -> Self {
        Self { install_timeout_secs: 300, builder_memory_mb: 1024, allow_install_scripts: false }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployLimits {
    pub max_archive_bytes: u64,
    pub max_expanded_bytes: u64,
    pub max_entries: u64,
    pub max_path_bytes: usize,
    pub max_depth: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Largest request body for API calls and function URLs (deploys have their own cap).
    pub max_body_bytes: usize,
    /// A client that sends nothing for this long, or whose request header takes longer, is
    /// disconnected.
    pub idle_timeout_seconds: u64,
    /// The whole request body (an upload) must arrive within this long.
    pub body_timeout_seconds: u64,
    /// On SIGTERM, in-flight requests get this long to finish.
    pub drain_timeout_seconds: u64,
    /// Serve each function on a host name of its own, `NAME.{functions_domain}` (a wildcard DNS
    /// record pointing at this server): tenants' pages never share an origin with each other or
    /// with the API. `/fn/NAME` keeps working on the API's host.
    pub functions_domain: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            functions_dir: None,
            auth: AuthConfig::default(),
            functions: FunctionDefaults::default(),
            function_database: FunctionDatabaseConfig::default(),
            deploy: DeployLimits::default(),
            http: HttpLimits::default(),
            sandbox: prewarm::SandboxConfig::default(),
            metrics: MetricsConfig::default(),
            records: RecordsConfig::default(),
            logs: LogsConfig::default(),
            analyzer: AnalyzerPolicy::default(),
            dependencies: DependencyPolicy::default(),
            node_id: None,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            token_ttl_seconds: 24 * 3600,
            issuer: "containerpub".into(),
            audience: "containerpub-api".into(),
            registration: Registration::FirstUser,
            invite_ttl_seconds: 7 * 24 * 3600,
        }
    }
}

impl Default for FunctionDefaults {
    fn default() -> Self {
        Self {
            timeout_ms: 5_000,
            memory_mb: 128,
            max_concurrent: 10,
            max_queue_length: 100,
            max_queue_wait_ms: 10_000,
            max_account_share: 0.8,
            account_weights: Default::default(),
            max_timeout_ms: 300_000,
            max_memory_mb: 2048,
            park_missing_runtimes: false,
        }
    }
}

impl Default for DeployLimits {
    fn default() -> Self {
        Self {
            max_archive_bytes: 50 << 20,
            max_expanded_bytes: 200 << 20,
            max_entries: 10_000,
            max_path_bytes: 1024,
            max_depth: 32,
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 6 << 20,
            idle_timeout_seconds: 60,
            body_timeout_seconds: 300,
            drain_timeout_seconds: 30,
            functions_domain: None,
        }
    }
}

impl Config {
    /// Defaults, then `file` when given, then the environment (`lookup`).
    pub fn load(file: Option<&Path>, lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("{} is not a valid config file", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(lookup)?;
        Ok(config)
    }

    fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn number<T: std::str::FromStr>(variable: &str, value: &str) -> anyhow::Result<T> {
            value.trim().parse().map_err(|_| anyhow::anyhow!("{variable}={value:?} is not a valid number"))
        }
        if let Some(port) = lookup("PORT") {
            self.listen.set_port(number("PORT", &port)?);
        }
        if let Some(url) = lookup("DATABASE_URL") {
            self.database_url = Some(url);
        }
        if let Some(secret) = lookup("JWT_SECRET") {
            self.auth.jwt_secret = Some(secret);
        }
        if let Some(seconds) = lookup("FUNCTION_TIMEOUT_SECONDS") {
            self.functions.timeout_ms = number::<u64>("FUNCTION_TIMEOUT_SECONDS", &seconds)?.saturating_mul(1000);
        }
        if let Some(ms) = lookup("FUNCTION_TIMEOUT_MS") {
            self.functions.timeout_ms = number("FUNCTION_TIMEOUT_MS", &ms)?;
        }
        if let Some(mb) = lookup("FUNCTION_MAX_MEMORY_MB") {
            self.functions.memory_mb = number("FUNCTION_MAX_MEMORY_MB", &mb)?;
        }
        if let Some(count) = lookup("FUNCTION_MAX_CONCURRENT") {
            self.functions.max_concurrent = number("FUNCTION_MAX_CONCURRENT", &count)?;
        }
        if let Some(url) = lookup("FUNCTION_DATABASE_URL") {
            self.function_database.url = Some(url);
        }
        if let Some(count) = lookup("FUNCTION_DB_MAX_CONNECTIONS") {
            self.function_database.max_connections = Some(number("FUNCTION_DB_MAX_CONNECTIONS", &count)?);
        }
        if let Some(ms) = lookup("FUNCTION_DB_TIMEOUT_MS") {
            self.function_database.timeout_ms = Some(number("FUNCTION_DB_TIMEOUT_MS", &ms)?);
        }
        if let Some(mb) = lookup("FUNCTION_DB_MAX_BACKEND_MB") {
            self.function_database.max_backend_mb = Some(number("FUNCTION_DB_MAX_BACKEND_MB", &mb)?);
        }
        if let Some(id) = lookup("CONTAINERPUB_NODE_ID").filter(|id| !id.is_empty()) {
            self.node_id = Some(id);
        }
        if let Some(dir) = lookup("FUNCTIONS_DIR") {
            self.functions_dir = Some(dir.into());
        }
        if let Some(policy) = lookup("CONTAINERPUB_REGISTRATION") {
            self.auth.registration =
                policy.parse().map_err(|error| anyhow::anyhow!("CONTAINERPUB_REGISTRATION: {error}"))?;
        }
        if let Some(domain) = lookup("CONTAINERPUB_FUNCTIONS_DOMAIN").filter(|domain| !domain.is_empty()) {
            self.http.functions_domain = Some(domain);
        }
        if let Some(token) = lookup("CONTAINERPUB_METRICS_TOKEN") {
            self.metrics.token = Some(token);
        }
        if let Some(mode) = lookup("CONTAINERPUB_SANDBOX") {
            self.sandbox.mode = match mode.trim() {
                "on" => prewarm::SandboxMode::On,
                "off" => prewarm::SandboxMode::Off,
                other => bail!("CONTAINERPUB_SANDBOX={other:?} is not valid: expected on or off"),
            };
        }
        self.validate()
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.functions.timeout_ms == 0 {
            bail!("the function timeout must be at least 1 ms (FUNCTION_TIMEOUT_MS or [functions] timeout_ms)");
        }
        if self.functions.memory_mb < 16 {
            bail!("the function memory cap must be at least 16 MB (FUNCTION_MAX_MEMORY_MB or [functions] memory_mb)");
        }
        if self.functions.max_concurrent == 0 {
            bail!("FUNCTION_MAX_CONCURRENT (or [functions] max_concurrent) must be at least 1");
        }
        if self.deploy.max_archive_bytes == 0 || self.deploy.max_expanded_bytes == 0 || self.deploy.max_entries == 0 {
            bail!("the [deploy] limits must be positive");
        }
        if !(self.functions.max_account_share > 0.0 && self.functions.max_account_share <= 1.0) {
            bail!("[functions] max_account_share must be above 0 and at most 1 (0.8: one account may hold 80 % of the slots)");
        }
        if let Some((email, weight)) =
            self.functions.account_weights.iter().find(|(_, weight)| !(**weight > 0.0 && weight.is_finite()))
        {
            bail!("[functions.account_weights] {email:?} = {weight}: a weight must be a number above 0");
        }
        let logs = &self.logs;
        if [logs.max_lines_per_call, logs.max_bytes_per_call, logs.max_lines_per_second, logs.max_bytes_per_second]
            .contains(&0)
            || logs.prune_interval_seconds == 0
        {
            bail!("the [logs] limits and prune_interval_seconds must be positive");
        }
        if !(logs.keep_days > 0.0 && self.records.keep_days > 0.0) {
            bail!("[logs] keep_days and [records] keep_days must be positive (fractions of a day are fine)");
        }
        self.sandbox.check().map_err(anyhow::Error::msg)?;
        if let Some(url) = &self.database_url {
            if !(url.starts_with("sqlite:") || url.starts_with("postgres:") || url.starts_with("postgresql:")) {
                bail!("DATABASE_URL must start with sqlite:// or postgres:// (got {url:?})");
            }
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("containerpub.db").display()))
    }

    /// This node's name: configured, else the host name.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            nix::unistd::gethostname().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|_| "node".into())
        })
    }

    pub fn functions_dir(&self) -> PathBuf {
        self.functions_dir.clone().unwrap_or_else(|| self.data_dir.join("functions"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration the Kubernetes manifests give every node is one the server accepts
    /// (an unknown key stops it), and it listens where the Service and the probes look.
    #[test]
    fn the_kubernetes_config_map_holds_a_valid_configuration() {
        let manifest = include_str!("../../deploy/kubernetes/configmap.yaml");
        let block = manifest.split_once("containerpub.toml: |\n").expect("the ConfigMap has containerpub.toml").1;
        let text: String = block
            .lines()
            .take_while(|line| line.is_empty() || line.starts_with("    "))
            .map(|line| format!("{}\n", line.get(4..).unwrap_or("")))
            .collect();
        let config: Config = toml::from_str(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
        assert!(include_str!("../../deploy/kubernetes/deployment.yaml").contains("containerPort: 8080"));
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
    }

    #[test]
    fn environment_overrides_the_file_and_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\n[functions]\ntimeout_ms = 700\nmemory_mb = 64\n").unwrap();
        let config = Config::load(Some(&file), env(&[("PORT", "9100"), ("FUNCTION_TIMEOUT_SECONDS", "2")])).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9100".parse().unwrap());
        assert_eq!(config.functions.timeout_ms, 2000);
        assert_eq!(config.functions.memory_mb, 64);
        assert_eq!(config.database_url(), format!("sqlite://{}", Path::new("./data/containerpub.db").display()));
    }

    #[test]
    fn the_documented_config_file_holds_the_defaults() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/containerpub.toml");
        let documented = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(format!("{documented:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let error = Config::load(None, env(&[("PORT", "http")])).unwrap_err().to_string();
        assert!(error.contains("PORT"), "{error}");
        let error = Config::load(None, env(&[("DATABASE_URL", "mysql://x")])).unwrap_err().to_string();
        assert!(error.contains("DATABASE_URL"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let error = format!("{:#}", Config::load(Some(&file), env(&[])).unwrap_err());
        assert!(error.contains("lisen"), "{error}");
    }
}
