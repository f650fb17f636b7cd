//! Integration tests of the analyzer (one test binary): data-driven fixtures, the command line,
//! and robustness against hostile input.

mod cli;
mod fixtures;
mod own_dart;
mod robustness;

use std::path::PathBuf;

/// `analyzer/tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
