//! `containerpub`: the ContainerPub server.
//!
//! `main` stays synchronous (pingora builds its own runtimes and panics inside another one,
//! brief decision 1). Start-up runs on the *platform* runtime, which also hosts the prewarm
//! pool's background tasks, the database pools and the recorder, and outlives pingora so that
//! workers are stopped and records flushed after the last request.

mod api;
mod app;
mod auth;
mod cluster;
mod config;
mod deploy;
mod front_door;
mod function_database;
mod journal;
mod log_budget;
mod metrics;
mod recorder;
mod retention;
mod secrets;
mod shutdown;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::Config;

/// mimalloc instead of glibc's allocator: the request path allocates and frees small buffers on
/// two threads at a high rate, and glibc spent 12 % of the server's CPU there (bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `serve --help`: the environment, which overrides the configuration file (flags override both).
const SERVE_ENVIRONMENT: &str = "Environment (overrides --config; flags override both):
  DATABASE_URL                  sqlite://PATH or postgres://… [default: sqlite://DATA_DIR/containerpub.db]
  PORT                          port to listen on
  JWT_SECRET                    token signing secret, 32+ bytes [default: generated in DATA_DIR/jwt_secret]
  FUNCTION_TIMEOUT_MS           default deadline [default: 5000] (or FUNCTION_TIMEOUT_SECONDS)
  FUNCTION_MAX_MEMORY_MB        default memory cap [default: 128]
  FUNCTION_MAX_CONCURRENT       invocations at once, server-wide [default: 10]
  FUNCTION_DATABASE_URL         PostgreSQL for functions (a role and schema each when it may)
  FUNCTION_DB_MAX_CONNECTIONS   connection limit per function role [default: 5]
  FUNCTION_DB_TIMEOUT_MS        statement timeout of function roles [default: 5000]
  FUNCTIONS_DIR                 extracted versions [default: DATA_DIR/functions]
  CONTAINERPUB_REGISTRATION     first-user | open | invite [default: first-user]
  CONTAINERPUB_METRICS_TOKEN    bearer token /metrics requires [default: none]
  CONTAINERPUB_NODE_ID          this node's name among the nodes on one store [default: host name]
  CONTAINERPUB_SECRETS_KEY      key material for secrets [default: generated in DATA_DIR/secrets_key]
  CONTAINERPUB_SANDBOX          on | off [default: on]
  RUST_LOG                      log filter [default: info]";

#[derive(Parser)]
#[command(name = "containerpub", version, about = "ContainerPub: deploy Dart functions and call them over HTTP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// TOML configuration file (see configs/containerpub.toml). Environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the database (SQLite), artifacts, functions and secrets live [default: ./data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(after_help = SERVE_ENVIRONMENT)]
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on [default: 127.0.0.1:8080] [env: PORT changes only the port]
        #[arg(long, value_name = "ADDRESS")]
        listen: Option<std::net::SocketAddr>,
        /// This node's name among the nodes sharing a PostgreSQL store [default: the host name]
        #[arg(long, value_name = "ID")]
        node_id: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
}

fn main() -> std::process::ExitCode {
    keep_inherited_descriptors_to_ourselves();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,pingora_core=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files or journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("containerpub: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Descriptors this process was started with besides stdio (a service manager's, a shell's
/// `7< file`) are marked close-on-exec at once, so nothing it starts inherits them; workers close
/// every descriptor but their own anyway (`prewarm::exec_wrapper::close_inherited_descriptors`).
fn keep_inherited_descriptors_to_ourselves() {
    let Ok(inherited) = prewarm::exec_wrapper::open_descriptors() else { return };
    for fd in inherited.into_iter().filter(|fd| *fd > 2) {
        // SAFETY: the descriptor is only borrowed for the call; one that closed meanwhile (the
        // listing's own) answers EBADF, which is ignored.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    }
}

fn load_config(common: &Common) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref(), |name| std::env::var(name).ok())?;
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    config.data_dir = config.data_dir.canonicalize()?;
    // The store, the token secret and every tenant's code live here: no other uid may enter.
    std::fs::set_permissions(&config.data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot make the data directory {} private", config.data_dir.display()))?;
    Ok(config)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate { common } => {
            let config = load_config(&common)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let store = store::connect(&config.database_url(), 2).await?;
                store.migrate().await?;
                println!("{} schema is up to date", store.kind());
                anyhow::Ok(())
            })
        }
        Command::Serve { common, listen, node_id } => {
            let mut config = load_config(&common)?;
            if node_id.is_some() {
                config.node_id = node_id;
            }
            if let Some(listen) = listen {
                config.listen = listen;
            }
            serve(config)
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    // Bind once first, so a port in use is a clear error (and an early one, before the platform
    // starts) instead of a panic inside pingora.
    let listen = config.listen;
    std::net::TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    // Before any worker exists: what a killed worker leaves behind comes back to us to reap.
    if let Err(error) = prewarm::spawn::adopt_orphans() {
        tracing::warn!(%error, "cannot become the subreaper of the workers: their orphans go to init");
    }
    let platform = tokio::runtime::Builder::new_multi_thread().thread_name("platform").enable_all().build()?;
    let (app, recorder_task) = platform.block_on(start_platform(config))?;

    let conf = pingora_core::server::configuration::ServerConf {
        threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        // Draining happens in `DrainThenStop`; after it, there is nothing left to wait for.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = pingora_core::server::Server::new_with_opt_and_conf(None, conf);
    let router = api::router(app.clone());
    let mut service = pingora_core::services::listening::Service::new(
        "containerpub".into(),
        front_door::FrontDoor { app: app.clone(), router },
    );
    service.add_tcp(&listen.to_string());
    server.add_service(service);
    server.bootstrap();
    tracing::info!(%listen, "listening");
    eprintln!("containerpub listening on http://{listen}");
    server
        .run(pingora_core::server::RunArgs { shutdown_signal: Box::new(shutdown::DrainThenStop { app: app.clone() }) });

    platform.block_on(async {
        app.prewarm.shutdown(Duration::from_secs(2)).await;
        if app.store.kind() == "postgres" {
            cluster::leave(&app).await;
        }
        // The writer writes what is buffered and ends: no fixed wait.
        app.recorder.close();
        if tokio::time::timeout(Duration::from_secs(5), recorder_task).await.is_err() {
            tracing::warn!("the last invocation records were not written within 5 s");
        }
    });
    drop(app);
    platform.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped");
    Ok(())
}

async fn start_platform(config: Config) -> anyhow::Result<(Arc<App>, tokio::task::JoinHandle<()>)> {
    let url = config.database_url();
    let store = store::connect(&url, 8).await.with_context(|| format!("cannot open the database {}", redact(&url)))?;
    store.migrate().await.context("cannot migrate the database")?;
    if store.kind() == "postgres" {
        store::close_postgres_store_to_public(&url).await;
    }
    // Nodes sharing a PostgreSQL store share its token secret; a lone SQLite server keeps its own.
    let secret = if store.kind() == "postgres" {
        auth::secret::shared(config.auth.jwt_secret.as_deref(), &config.data_dir, store.as_ref()).await?
    } else {
        auth::secret::load_or_create(config.auth.jwt_secret.as_deref(), &config.data_dir)?
    };
    let tokens = auth::tokens::TokenKeys::new(
        &secret,
        &config.auth.issuer,
        &config.auth.audience,
        config.auth.token_ttl_seconds,
    );

    let secrets = Arc::new(secrets::Secrets::load_or_create(
        std::env::var("CONTAINERPUB_SECRETS_KEY").ok().as_deref(),
        &config.data_dir,
    )?);
    if store.kind() == "postgres" {
        // Every node must open the secrets any node sealed: the first node's key fingerprint is
        // kept, and a node with another key stops here instead of failing each function's start.
        let kept = store.shared_setting(SECRETS_KEY_FINGERPRINT, secrets.fingerprint(), app::now_ms()).await?;
        anyhow::ensure!(
            kept == secrets.fingerprint(),
            "this node's functions' secrets key is not the one the other nodes on this database use: give every node the same CONTAINERPUB_SECRETS_KEY (README, \"Running several nodes\")"
        );
    }
    let wrapper = std::env::var_os("CONTAINERPUB_WORKER_EXEC").map(PathBuf::from).unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("containerpub-worker-exec")))
            .unwrap_or_default()
    });
    let mut prewarm_config = prewarm::PrewarmConfig::new(config.data_dir.join("state"), wrapper);
    prewarm_config.apply_env(|name| std::env::var(name).ok())?;
    prewarm_config.default_limits.timeout = Duration::from_millis(config.functions.timeout_ms);
    prewarm_config.default_limits.memory_bytes = config.functions.memory_mb << 20;
    prewarm_config.global_max_concurrency = config.functions.max_concurrent;
    prewarm_config.max_account_share = config.functions.max_account_share;
    prewarm_config.default_limits.max_concurrency = config.functions.max_concurrent;
    prewarm_config.default_limits.max_workers = config.functions.max_concurrent;
    prewarm_config.default_limits.max_queue_length = config.functions.max_queue_length;
    prewarm_config.default_limits.max_queue_wait = Duration::from_millis(config.functions.max_queue_wait_ms);
    prewarm_config.sandbox = config.sandbox.clone();
    prewarm_config.dependency_install_timeout = Duration::from_secs(config.dependencies.install_timeout_secs.max(1));
    prewarm_config.dependency_builder_memory_bytes = config.dependencies.builder_memory_mb.max(64) << 20;
    prewarm_config.allow_install_scripts = config.dependencies.allow_install_scripts;
    // A worker's output is held only up to what one call may keep (`log_budget`).
    prewarm_config.default_limits.max_log_bytes = config.logs.max_bytes_per_call as usize;
    prewarm_config.default_limits.max_log_lines = config.logs.max_lines_per_call as usize;
    if let Some(url) = &config.function_database.url {
        prewarm_config.function_database = Some(prewarm::FunctionDatabase {
            url: url.clone(),
            statement_timeout_ms: config.function_database.timeout_ms.unwrap_or(function_database::DEFAULT_TIMEOUT_MS),
        });
    }
    let function_database = function_database::enforce_limits(&config.function_database).await;
    if let (Some(url), Some(watched)) =
        (&config.function_database.url, function_database::watched(&config.function_database, &function_database))
    {
        tokio::spawn(function_database::watchdog::run(url.clone(), watched));
    }
    let (prewarm, stray_logs) = prewarm::Prewarm::start(prewarm_config)?;
    // Prewarm logged the limit mechanism and what it passed over; this line says what runs.
    let (enforcement, _) = prewarm.enforcement();
    tracing::info!(store = store.kind(), memory_enforcement = enforcement.name(), "platform starting");

    let journal_dir = config.data_dir.join("journal");
    let journal = journal::Journal::open(&journal_dir, config.records.journal_max_mb << 20)
        .with_context(|| format!("cannot open the records journal in {}", journal_dir.display()))?;
    let (recorder, recorder_task) = recorder::Recorder::start(store.clone(), secrets.clone(), Arc::new(journal));
    let functions_dir = config.functions_dir();
    std::fs::create_dir_all(&functions_dir)?;
    deploy::artifacts::remove_staging_litter(&functions_dir);
    let accounts = auth::accounts::AccountState::load(store.as_ref(), config.functions.account_weights.clone()).await?;
    let log_budget = log_budget::LogBudget::new(config.logs.clone());
    let app = Arc::new(App {
        config,
        store,
        prewarm,
        tokens,
        accounts,
        login_throttle: Default::default(),
        secrets,
        recorder,
        metrics: Default::default(),
        function_database,
        log_budget,
        active: Default::default(),
        active_ids: Default::default(),
        name_locks: Default::default(),
        starting: Default::default(),
        draining: Default::default(),
        drain_signal: tokio::sync::watch::Sender::new(false),
        in_flight: Default::default(),
    });
    tokio::spawn(recorder::forward_stray_logs(app.clone(), stray_logs));
    tokio::spawn(retention::run(Arc::downgrade(&app)));
    if app.store.kind() == "postgres" {
        cluster::start(&app).await;
    }
    let restored = deploy::restore_active(&app).await?;
    tracing::info!(functions = restored, "active functions warmed");
    if app.store.kind() == "postgres" {
        tokio::spawn(cluster::sync::watch(Arc::downgrade(&app), app.config.database_url()));
    }
    Ok((app, recorder_task))
}

/// The `cluster_settings` row naming the secrets key every node must have.
const SECRETS_KEY_FINGERPRINT: &str = "secrets_key_fingerprint";

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}
