//! `containerpub-analyzer`: see `analyzer::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // clap exits with status 2 on usage errors, as documented.
    analyzer::cli::run(analyzer::cli::Cli::parse())
}
