//! The stand-in `dart` of the tests that are about commands and files: `dart.sh` records how it
//! was called and writes what the real tool would, behind `launcher.c`, an ELF `bin/dart` that
//! runs it (the server takes only an ELF executable named `dart` as the SDK's, see
//! `prewarm::runtime::dart_vm`). Shared by prewarm's and the gateway's tests.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const SCRIPT: &str = include_str!("dart.sh");
const LAUNCHER: &str = include_str!("launcher.c");

pub mod real_dart;

/// Writes a stand-in SDK into `sdk`: `bin/dart` (the launcher), `bin/dart.sh` keeping its state
/// (calls, flags, version) in `sdk` itself. Returns the `bin` directory to put on `PATH`.
pub fn install(sdk: &Path) -> PathBuf {
    let bin = sdk.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("dart.sh"), SCRIPT.replace("__STATE__", &sdk.display().to_string())).unwrap();
    std::fs::copy(launcher(), bin.join("dart")).unwrap();
    bin
}

/// Makes `path` executable by everyone.
pub fn make_executable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The launcher, compiled once per machine and source with the C compiler every Rust build has,
/// into the target directory (made under a name of this process's, then renamed into place).
fn launcher() -> &'static Path {
    static COMPILED: OnceLock<PathBuf> = OnceLock::new();
    COMPILED.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        LAUNCHER.hash(&mut hasher);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dart-stand-in");
        let output = dir.join(format!("dart-{:016x}", hasher.finish()));
        if output.is_file() {
            return output;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join(format!("launcher-{}.c", std::process::id()));
        let made = dir.join(format!("dart-{}", std::process::id()));
        std::fs::write(&source, LAUNCHER).unwrap();
        let compiled = std::process::Command::new("cc").arg("-O1").arg("-o").arg(&made).arg(&source).output();
        let _ = std::fs::remove_file(&source);
        match compiled {
            Ok(result) if result.status.success() => std::fs::rename(&made, &output).unwrap(),
            Ok(result) => panic!("cc {}: {}", source.display(), String::from_utf8_lossy(&result.stderr)),
            Err(error) => panic!("run cc (install build-essential): {error}"),
        }
        output
    })
}
