//! `dart_cloud`: the ContainerPub command line (the seed's name). Exit status: 0 done, 1 the
//! server refused or the command failed, 2 usage errors (clap's own).

mod client;
mod commands;
mod credentials;
mod duration;
mod output;
mod package;

use clap::{Parser, Subcommand};

use crate::client::{Api, CliError};
use crate::output::{Format, Output};

#[derive(Parser)]
#[command(name = "dart_cloud", version, about = "Deploy Dart functions to ContainerPub and call them")]
struct Cli {
    /// The ContainerPub server.
    #[arg(
        long,
        global = true,
        env = "DART_CLOUD_URL",
        default_value = "http://127.0.0.1:8080",
        help_heading = "Global options"
    )]
    url: String,
    /// A token or API key to use instead of the saved login.
    #[arg(long, global = true, env = "DART_CLOUD_TOKEN", hide_env_values = true, help_heading = "Global options")]
    token: Option<String>,
    /// Output format (default: table on a terminal, JSON lines otherwise).
    #[arg(short = 'o', long = "output", global = true, value_enum, help_heading = "Global options")]
    output: Option<Format>,
    /// Same as `-o json`.
    #[arg(long, global = true, conflicts_with = "output", help_heading = "Global options")]
    json: bool,
    /// No colours (also when NO_COLOR is set).
    #[arg(long, global = true, help_heading = "Global options")]
    no_color: bool,
    /// Print only results.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = "Global options")]
    quiet: bool,
    /// Say more about what is happening.
    #[arg(short, long, global = true, help_heading = "Global options")]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

const DEPLOY_EXAMPLES: &str = "Examples:
  dart_cloud deploy                                  the function in this directory
  dart_cloud deploy ./hello --name hello --public    anyone may call it, no credentials
  dart_cloud deploy hello ./hello                    the same name and directory (the seed's form)
  dart_cloud deploy --env GREETING=hi --env-file prod.env --timeout 2s --memory 256
  dart_cloud deploy --entry src/app.py:handle        another file and function
  dart_cloud deploy --dry-run                        analyse and list what would upload";

#[derive(Subcommand)]
enum Command {
    /// Create an account on the server, then log in.
    Register {
        #[arg(long)]
        email: Option<String>,
        /// A one-time invitation from an administrator (needed once the server's first account exists,
        /// unless its registration is open).
        #[arg(long, value_name = "CODE")]
        invite: Option<String>,
    },
    /// Log in and keep the token (asks for email and password).
    Login {
        #[arg(long)]
        email: Option<String>,
        /// Read a token or API key from standard input instead of asking for a password.
        #[arg(long)]
        token_stdin: bool,
    },
    /// Forget the saved login for this server.
    Logout,
    /// Show who you are logged in as.
    Whoami,
    /// Create a Dart function skeleton.
    Init {
        /// Directory (and function) name; default: the current directory.
        name: Option<String>,
    },
    /// Check a function with the analyzer, upload it and make it live.
    #[command(
        after_help = DEPLOY_EXAMPLES,
        override_usage = "dart_cloud deploy [OPTIONS] [PATH]\n       dart_cloud deploy [OPTIONS] NAME PATH"
    )]
    Deploy(commands::deploy::DeployArgs),
    /// List your functions.
    List,
    /// Show a function.
    Info { name: String },
    /// Call a function through its URL.
    Invoke {
        /// The function's name or id (`fn_…`, shown by `list` and `info`).
        name: String,
        /// Request body: JSON text, @FILE, or - for standard input.
        #[arg(short, long, visible_alias = "body")]
        data: Option<String>,
        /// Query parameter, repeatable; or a JSON object of them (the seed's `--query '{"k":"v"}'`).
        #[arg(long = "query", value_name = "KEY=VALUE")]
        query: Vec<String>,
        /// HTTP method (default: POST with --data, GET without).
        #[arg(short = 'X', long = "request")]
        method: Option<String>,
        /// Request header, repeatable.
        #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// Path below the function's URL.
        #[arg(long, default_value = "/")]
        path: String,
        /// Print the status line and headers too.
        #[arg(short = 'i', long)]
        include: bool,
        /// Send your login even if the function is not yours (by default it goes only to your
        /// own functions, so another tenant's code never receives it).
        #[arg(long)]
        auth: bool,
    },
    /// Show a function's log lines.
    Logs {
        name: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Lines since: a duration like 10m, 2h, 1d, or Unix milliseconds.
        #[arg(long)]
        since: Option<String>,
        /// How many lines at most.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
    },
    /// List a function's versions.
    Versions { name: String },
    /// Make an earlier version live again.
    Rollback { name: String, version: i64 },
    /// Delete a function, its versions and its logs.
    Delete {
        name: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// A function's secrets: environment variables kept encrypted, never shown back.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Administer the server (administrators only): accounts and invitations.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key (shown once).
    Create {
        name: String,
        /// invoke (call your private functions; the default), deploy (also the control plane),
        /// or admin (administrators only).
        #[arg(long, default_value = "invoke", value_parser = ["invoke", "deploy", "admin"])]
        scope: String,
        /// Limit the key to this function (repeatable).
        #[arg(long = "function", value_name = "NAME")]
        functions: Vec<String>,
        /// The key stops working after this long: 30m, 12h, 90d.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// Your keys: names, prefixes, scopes, expiry and last use (never the key itself).
    List,
    /// Revoke a key: it stops working at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Set a secret; the value is read from standard input (or asked for on a terminal), never
    /// taken as an argument, so it stays out of shell history and process listings.
    Set { function: String, name: String },
    /// The function's secrets: names and dates, never values.
    List { function: String },
    /// Remove a secret.
    Unset { function: String, name: String },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Accounts: list, create, disable, enable.
    Users {
        #[command(subcommand)]
        command: AdminUsersCommand,
    },
    /// Make a one-time invitation code for `dart_cloud register --invite CODE`.
    Invite {
        /// How long it stays usable: 30m, 12h, 7d (default: the server's).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminUsersCommand {
    /// Every account, with its role and whether it is disabled.
    List,
    /// Create an account; its password is generated and printed once unless --password-stdin.
    Create {
        email: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: its logins, keys and public functions stop working at once.
    Disable { id: String },
    /// Enable a disabled account again.
    Enable { id: String },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let format = if cli.json { Some(Format::Json) } else { cli.output };
    let output = Output::new(format, cli.no_color, cli.quiet, cli.verbose);
    match run(cli, &output) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            if let Some(CliError::Server { body, .. }) = error.downcast_ref::<CliError>() {
                if let Some(findings) = body["error"]["analysis"]["findings"].as_array() {
                    output::findings(&output, findings);
                }
            }
            eprintln!("{}: {error:#}", output.paint("error", "31;1"));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, output: &Output) -> anyhow::Result<()> {
    let base = cli.url.trim_end_matches('/').to_string();
    let token = match cli.token {
        Some(token) => Some(token),
        None => credentials::load(&base)?.map(|login| login.token),
    };
    let api = Api::new(&base, token);
    use commands::*;
    match cli.command {
        Command::Register { email, invite } => account::register(&api, output, email, invite),
        Command::Login { email, token_stdin } => account::login(&api, output, email, token_stdin),
        Command::Logout => account::logout(&api, output),
        Command::Whoami => account::whoami(&api, output),
        Command::Init { name } => init::init(output, name),
        Command::Deploy(args) => deploy::deploy(&api, output, args),
        Command::List => functions::list(&api, output),
        Command::Info { name } => functions::info(&api, output, &name),
        Command::Invoke { name, data, query, method, headers, path, include, auth } => {
            invoke::invoke(&api, output, invoke::InvokeArgs { name, data, query, method, headers, path, include, auth })
        }
        Command::Logs { name, follow, since, lines } => logs::logs(&api, output, &name, follow, since, lines),
        Command::Versions { name } => functions::versions(&api, output, &name),
        Command::Rollback { name, version } => functions::rollback(&api, output, &name, version),
        Command::Delete { name, yes } => functions::delete(&api, output, &name, yes),
        Command::Keys { command } => match command {
            KeysCommand::Create { name, scope, functions, expires_in } => {
                account::create_key(&api, output, &name, &scope, &functions, expires_in.as_deref())
            }
            KeysCommand::List => account::list_keys(&api, output),
            KeysCommand::Revoke { id } => account::revoke_key(&api, output, &id),
        },
        Command::Secrets { command } => match command {
            SecretsCommand::Set { function, name } => secrets::set(&api, output, &function, &name),
            SecretsCommand::List { function } => secrets::list(&api, output, &function),
            SecretsCommand::Unset { function, name } => secrets::unset(&api, output, &function, &name),
        },
        Command::Admin { command } => match command {
            AdminCommand::Users { command } => match command {
                AdminUsersCommand::List => admin::list_users(&api, output),
                AdminUsersCommand::Create { email, password_stdin } => {
                    admin::create_user(&api, output, &email, password_stdin)
                }
                AdminUsersCommand::Disable { id } => admin::set_disabled(&api, output, &id, true),
                AdminUsersCommand::Enable { id } => admin::set_disabled(&api, output, &id, false),
            },
            AdminCommand::Invite { expires_in } => admin::invite(&api, output, expires_in.as_deref()),
        },
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "dart_cloud",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}
