//! The real Dart VM of the tests: npm's `sass-embedded-linux-x64` ships the Dart AOT runtime
//! (`dart-sass/src/dart`, Dart 3.13.7 in 1.108.2) and an AOT snapshot of Dart Sass
//! (`dart-sass/src/sass.snapshot`). `scripts/test` fetches the pinned package and points
//! `CONTAINERPUB_TEST_DART_VM` at that directory; [`assemble_executable`] appends the snapshot
//! to the runtime in the layout `dart compile exe` writes, which makes a standalone Dart
//! executable: the same kind of file a Dart function's worker is.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable `scripts/test` sets to the directory holding `dart` and `sass.snapshot`.
pub const VARIABLE: &str = "CONTAINERPUB_TEST_DART_VM";

#[derive(Debug, Clone)]
pub struct RealDart {
    /// The Dart AOT runtime (`dartaotruntime` in an SDK).
    pub runtime: PathBuf,
    /// An AOT snapshot (ELF) of the Dart Sass compiler.
    pub snapshot: PathBuf,
}

impl RealDart {
    /// The VM `scripts/test` fetched, or `None` after printing a `skipped:` line saying why.
    pub fn from_env(test: &str) -> Option<RealDart> {
        let Some(dir) = std::env::var_os(VARIABLE).map(PathBuf::from) else {
            // Written to the process's stderr, past the test harness's capture: scripts/test counts it.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {test}: {VARIABLE} is not set (scripts/test fetches the real Dart VM from npm's sass-embedded-linux-x64)"
            );
            return None;
        };
        let found = RealDart { runtime: dir.join("dart"), snapshot: dir.join("sass.snapshot") };
        assert!(
            found.runtime.is_file() && found.snapshot.is_file(),
            "{VARIABLE}={} holds no dart and sass.snapshot",
            dir.display()
        );
        Some(found)
    }

    /// Writes the Sass compiler as a standalone executable at `out` (mode 0755).
    pub fn assemble_sass(&self, out: &Path) {
        assemble_executable(&self.runtime, &self.snapshot, out).unwrap();
    }
}

/// `dart compile exe`'s layout on Linux (the SDK's pkg/dart2native, `writeAppendedExecutable`):
/// the AOT runtime, zeros up to the next multiple of 64 KiB (the largest page size of the
/// supported architectures), the AOT snapshot, the snapshot's offset as a little-endian u64, and
/// the 8-byte magic `dc dc f6 f6 00 00 00 00` the runtime looks for at the end of its own file.
pub fn assemble_executable(runtime: &Path, snapshot: &Path, out: &Path) -> std::io::Result<()> {
    const PAGE: usize = 64 << 10;
    const MAGIC: [u8; 8] = [0xdc, 0xdc, 0xf6, 0xf6, 0, 0, 0, 0];
    let runtime = std::fs::read(runtime)?;
    let snapshot = std::fs::read(snapshot)?;
    let offset = runtime.len().div_ceil(PAGE) * PAGE;
    let mut file = std::fs::File::create(out)?;
    file.write_all(&runtime)?;
    file.write_all(&vec![0; offset - runtime.len()])?;
    file.write_all(&snapshot)?;
    file.write_all(&(offset as u64).to_le_bytes())?;
    file.write_all(&MAGIC)?;
    drop(file);
    super::make_executable(out);
    Ok(())
}
