//! `containerpub-analyzer`: `check DIR` and `rules`. Exit codes: 0 accepted, 1 rejected, 2 usage
//! or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{render_json, render_sarif, render_text, Format};
use crate::report::Verdict;
use crate::{analyze, rules, EntrySpec, Options, RuntimeChoice};

#[derive(Debug, Parser)]
#[command(name = "containerpub-analyzer", version, about = "Checks a function package before ContainerPub deploys it")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse the package in DIR; exit 0 when it would be accepted, 1 when rejected.
    Check {
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[arg(long, value_enum, default_value_t)]
        runtime: RuntimeChoice,
        /// The file that runs and the function to call, FILE[:FUNCTION] (`src/app.py:handle`);
        /// by default the runtime's usual entry and `handler`.
        #[arg(long, value_name = "FILE[:FUNCTION]")]
        entry: Option<EntrySpec>,
        /// Allow a package that is on the deny list (repeatable).
        #[arg(long = "allow-dependency", value_name = "NAME")]
        allow_dependency: Vec<String>,
        /// Deny a package on top of the deny list (repeatable).
        #[arg(long = "deny-dependency", value_name = "NAME")]
        deny_dependency: Vec<String>,
        #[arg(long)]
        allow_path_dependencies: bool,
        #[arg(long)]
        allow_git_dependencies: bool,
        #[arg(long)]
        allow_dependency_overrides: bool,
        /// A finding in an installed package (node_modules/, a pip distribution) rejects the
        /// package, as one in the function's own code does; by default it is a warning.
        #[arg(long)]
        dependency_findings_fatal: bool,
        /// Reject native modules in installed packages; by default they are allowed.
        #[arg(long)]
        deny_native_dependencies: bool,
    },
    /// List every rule with its documentation.
    Rules,
}

/// Runs the command line; returns the process's exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Rules => {
            for rule in rules::ALL {
                println!("{} ({}, {})\n  {}\n", rule.id, rule.severity.as_str(), rule.layer, rule.summary);
                for (heading, text) in [
                    ("What it flags", rule.what),
                    ("Why", rule.why),
                    ("Example", rule.example),
                    ("Instead", rule.instead),
                ] {
                    println!("  {heading}:");
                    for line in text.lines() {
                        println!("    {line}");
                    }
                }
                println!();
            }
            ExitCode::SUCCESS
        }
        Command::Check {
            dir,
            format,
            runtime,
            entry,
            allow_dependency,
            deny_dependency,
            allow_path_dependencies,
            allow_git_dependencies,
            allow_dependency_overrides,
            dependency_findings_fatal,
            deny_native_dependencies,
        } => {
            let options = Options {
                runtime,
                entry,
                allowed_packages: allow_dependency,
                denied_packages: deny_dependency,
                allow_path_dependencies,
                allow_git_dependencies,
                allow_dependency_overrides,
                dependency_findings_fatal,
                deny_native_dependencies,
            };
            let report = match analyze(&dir, &options) {
                Ok(report) => report,
                Err(error) => {
                    eprintln!("containerpub-analyzer: {}: {error}", dir.display());
                    return ExitCode::from(2);
                }
            };
            let rendered = match format {
                Format::Text => render_text(&report),
                Format::Json => render_json(&report) + "\n",
                Format::Sarif => render_sarif(&report) + "\n",
            };
            print!("{rendered}");
            if report.verdict == Verdict::Accept {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
