//! The read-only root a worker sees: one template per runtime, built once at start-up.
//!
//! A template is a small tmpfs holding only what its runtime needs, bind-mounted read-only at the
//! same paths as on the host: the interpreter, the shared libraries it and its extension modules
//! load (asked of the dynamic loader itself), the runtime's own library directories, a few
//! `/etc` files (`hosts`, `nsswitch.conf`, `resolv.conf`, CA certificates, the loader cache), a
//! minimal `/dev` (`null`, `zero`, `random`, `urandom`) and empty mount points for what each worker
//! adds when it launches (`/fn`, `/tmp`, `/proc`, its `passwd` and `group`). No shell, no other
//! program, nothing of the server's data directory.
//!
//! Templates are mounted inside the spawner thread's private mount namespace (see `Sandbox`):
//! every worker starts from a copy of that namespace, the host never sees them, and they vanish
//! with the server.

use std::collections::{BTreeSet, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::runtime::Runtime;

/// Where a worker's own pieces go inside its root.
pub const FUNCTION_DIR: &str = "/fn";
pub const ADAPTER_DIR: &str = "/containerpub/adapters";
/// Where a Dart function's build (its compiled executable) is, read-only.
pub const BUILD_DIR: &str = "/containerpub/build";
/// Where a Node function's installed packages are, read-only: Node looks for `node_modules` in
/// every directory up from the importing file, so `/fn/x.js` finds `/node_modules/lodash`.
pub const NODE_MODULES_DIR: &str = "/node_modules";
/// Where a Python function's installed packages are, read-only (on its `PYTHONPATH`).
pub const PYTHON_DEPS_DIR: &str = "/containerpub/deps";
/// What a dependency builder (see `dependencies`) sees besides the runtime: the package
/// manager, read-only; the copy of the function it installs into and the shared download
/// cache, both writable.
pub const TOOL_DIR: &str = "/containerpub/tool";
pub const BUILD_OUTPUT_DIR: &str = "/containerpub/out";
pub const CACHE_DIR: &str = "/containerpub/cache";

/// What one runtime's root holds, besides what every root holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFiles {
    pub runtime: Runtime,
    /// Host files and directories bound at the same path.
    pub paths: BTreeSet<PathBuf>,
}

/// Data every runtime may read: CA certificates, time zones, the loader cache.
const SHARED_DATA: &[&str] = &[
    "/etc/ssl/certs",
    "/usr/share/ca-certificates",
    "/usr/lib/ssl",
    "/usr/share/zoneinfo",
    "/etc/ld.so.cache",
    "/etc/localtime",
];

const DEVICES: &[&str] = &["null", "zero", "random", "urandom"];

/// Lists what `runtime` (at `executable`) needs: the executable, the directories it loads code
/// from, and every shared library the loader resolves for them. Remembered for the life of the
/// process (several pools in one process, as in tests, list each runtime once).
pub fn runtime_files(runtime: Runtime, executable: &Path) -> Result<RuntimeFiles, String> {
    static LISTED: std::sync::Mutex<Vec<(PathBuf, RuntimeFiles)>> = std::sync::Mutex::new(Vec::new());
    let mut listed = LISTED.lock().map_err(|_| "the runtime file cache is poisoned".to_string())?;
    if let Some((_, files)) = listed.iter().find(|(path, files)| path == executable && files.runtime == runtime) {
        return Ok(files.clone());
    }
    let files = list_runtime_files(runtime, executable)?;
    listed.push((executable.to_path_buf(), files.clone()));
    Ok(files)
}

fn list_runtime_files(runtime: Runtime, executable: &Path) -> Result<RuntimeFiles, String> {
    let mut paths = BTreeSet::new();
    let mut programs = vec![executable.to_path_buf()];
    if runtime == Runtime::Dart {
        // Dart workers run what `dart compile exe` made: the SDK's AOT runtime with the function's
        // snapshot appended. They never run `dart` or anything else of the SDK, so the root holds
        // only the program loader and the libraries of that runtime (`bin/dartaotruntime` beside
        // `bin/dart`; `dart`'s are the same, and all there is where it has no such sibling).
        let aot_runtime = executable.with_file_name("dartaotruntime");
        if aot_runtime.is_file() {
            programs.push(aot_runtime);
        }
    } else {
        paths.insert(executable.to_path_buf());
    }
    let directories = match runtime {
        Runtime::Python => python_directories(executable)?,
        Runtime::Node | Runtime::Dart => Vec::new(),
    };
    // Directories nested in another listed directory are covered by it (walked and bound once).
    let outermost: Vec<&PathBuf> = directories
        .iter()
        .filter(|directory| !directories.iter().any(|other| other != *directory && directory.starts_with(other)))
        .collect();
    let mut shared_objects = Vec::new();
    for directory in &outermost {
        collect_shared_objects(directory, &mut shared_objects);
    }
    for program in &programs {
        let mut files = vec![program.clone()];
        files.extend(shared_objects.iter().cloned());
        paths.extend(shared_libraries(&files)?);
    }
    paths.extend(outermost.into_iter().cloned());
    Ok(RuntimeFiles { runtime, paths })
}

/// The directories on Python's `sys.path` (standard library, extension modules, site-packages).
fn python_directories(executable: &Path) -> Result<Vec<PathBuf>, String> {
    let output = std::process::Command::new(executable)
        .args(["-c", "import sys, os\nfor p in sys.path:\n    if p and os.path.isdir(p): print(os.path.realpath(p))"])
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| format!("ask {} for its module path: {error}", executable.display()))?;
    if !output.status.success() {
        return Err(format!("{} could not list its module path", executable.display()));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|path| path.is_absolute() && path != Path::new("/"))
        .collect())
}

/// Extension modules under a runtime directory (bounded: a huge site-packages is not walked whole).
fn collect_shared_objects(directory: &Path, found: &mut Vec<PathBuf>) {
    crate::tree::each_regular_file(directory, 20_000, |path, name| {
        if name.ends_with(".so") || name.contains(".so.") {
            found.push(path);
        }
    });
}

/// Every library the dynamic loader resolves for `files` (the first is the runtime's executable),
/// and the loader itself: the executable's ELF interpreter, asked with `--list` (what `ldd` does,
/// without its shell: `ldd` starts a shell and the loader per file, 15 ms each here, the loader
/// alone 2–3 ms). A static executable has no loader and nothing to list.
fn shared_libraries(files: &[PathBuf]) -> Result<BTreeSet<PathBuf>, String> {
    let Some(executable) = files.first() else { return Ok(BTreeSet::new()) };
    let Some(loader) = super::exec_allowlist::elf_interpreter(executable)? else { return Ok(BTreeSet::new()) };
    let mut libraries = BTreeSet::new();
    for file in files {
        let listed = std::process::Command::new(&loader)
            .arg("--list")
            .arg(file)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .map_err(|error| format!("run {} --list: {error}", loader.display()))?;
        libraries.extend(parse_ldd(&String::from_utf8_lossy(&listed.stdout)));
    }
    Ok(libraries)
}

/// Absolute paths in the loader's `--list` output (what `ldd` prints): `libc.so.6 => /lib/…/libc.so.6 (0x…)` and `/lib64/ld-….so.2 (0x…)`.
fn parse_ldd(output: &str) -> BTreeSet<PathBuf> {
    output
        .lines()
        .filter(|line| line.starts_with('\t'))
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, resolved)) => resolved.trim(),
                None => line,
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Builds one runtime's template at `root` (an empty directory) in the current mount namespace.
/// `adapters` is the host directory of the runtime adapters.
pub fn build_template(root: &Path, files: &RuntimeFiles, adapters: &Path) -> Result<(), String> {
    mount_fs(
        "tmpfs",
        root,
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=4m,nr_inodes=16384,mode=0755"),
    )?;
    let mount_points = [FUNCTION_DIR, "/tmp", "/proc", "/dev", "/etc", ADAPTER_DIR, BUILD_DIR, NODE_MODULES_DIR]
        .into_iter()
        .chain([PYTHON_DEPS_DIR, TOOL_DIR, BUILD_OUTPUT_DIR, CACHE_DIR]);
    for directory in mount_points.map(|path| path.trim_start_matches('/')) {
        make_dir(&root.join(directory))?;
    }
    write_file(&root.join("etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n")?;
    write_file(&root.join("etc/nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files dns\n")?;
    write_file(&root.join("etc/passwd"), "")?;
    write_file(&root.join("etc/group"), "")?;
    match std::fs::read_to_string("/etc/resolv.conf") {
        Ok(resolv) => write_file(&root.join("etc/resolv.conf"), &resolv)?,
        Err(_) => write_file(&root.join("etc/resolv.conf"), "")?,
    }
    for device in DEVICES {
        let target = root.join("dev").join(device);
        write_file(&target, "")?;
        // Device nodes stay usable: the bind keeps the host /dev mount's flags (no `nodev`).
        bind_read_only(&Path::new("/dev").join(device), &target, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?;
    }
    for (link, target) in [
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link)).map_err(|error| format!("create {link}: {error}"))?;
    }
    let mut bound = BTreeSet::new();
    for path in SHARED_DATA.iter().map(PathBuf::from).filter(|path| path.exists()).chain(files.paths.iter().cloned()) {
        replicate(root, &path, &mut bound)?;
    }
    bind_read_only(adapters, &root.join("containerpub/adapters"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
    // The tmpfs itself becomes read-only last: nothing a worker sees can be written but /tmp.
    mount_fs(
        "tmpfs",
        root,
        "tmpfs",
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None,
    )
}

/// Recreates `host_path` inside `root`: symbolic links on the way become the same links (so
/// `/lib64/ld-linux-x86-64.so.2` and merged-`/usr` layouts resolve inside as outside), and the
/// file or directory at the end is bound read-only.
fn replicate(root: &Path, host_path: &Path, bound: &mut BTreeSet<PathBuf>) -> Result<(), String> {
    let mut pending: VecDeque<PathBuf> = host_path
        .components()
        .filter(|part| matches!(part, Component::Normal(_)))
        .map(|part| PathBuf::from(part.as_os_str()))
        .collect();
    let mut current = PathBuf::from("/");
    let mut links_followed = 0;
    while let Some(part) = pending.pop_front() {
        if part == Path::new("..") {
            current.pop();
            continue;
        }
        let next = current.join(&part);
        let inside = inside(root, &next);
        let meta = std::fs::symlink_metadata(&next).map_err(|error| format!("read {}: {error}", next.display()))?;
        if meta.file_type().is_symlink() {
            links_followed += 1;
            if links_followed > 40 {
                return Err(format!("too many symbolic links resolving {}", host_path.display()));
            }
            let target = std::fs::read_link(&next).map_err(|error| format!("read link {}: {error}", next.display()))?;
            if std::fs::symlink_metadata(&inside).is_err() {
                std::os::unix::fs::symlink(&target, &inside)
                    .map_err(|error| format!("create link {}: {error}", inside.display()))?;
            }
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            for part in target.components().rev() {
                match part {
                    Component::Normal(name) => pending.push_front(PathBuf::from(name)),
                    Component::ParentDir => pending.push_front(PathBuf::from("..")),
                    _ => {}
                }
            }
            continue;
        }
        if pending.is_empty() {
            if is_under_bound(&next, bound) || !bound.insert(next.clone()) {
                return Ok(());
            }
            if meta.is_dir() {
                make_dir(&inside)?;
            } else {
                write_file(&inside, "")?;
            }
            return bind_read_only(&next, &inside, MsFlags::MS_NOSUID | MsFlags::MS_NODEV);
        }
        if !meta.is_dir() {
            return Err(format!("{} is not a directory", next.display()));
        }
        if is_under_bound(&next.join("x"), bound) {
            // Already inside a bound directory: the rest of the path is there.
            return Ok(());
        }
        make_dir(&inside)?;
        current = next;
    }
    Ok(())
}

fn is_under_bound(path: &Path, bound: &BTreeSet<PathBuf>) -> bool {
    path.ancestors().skip(1).any(|ancestor| bound.contains(ancestor))
}

/// An absolute path (on the host, or as a worker sees it) as a path under `root`.
pub(crate) fn inside(root: &Path, host: &Path) -> PathBuf {
    root.join(host.strip_prefix("/").unwrap_or(host))
}

fn make_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|error| format!("create {}: {error}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|error| format!("chmod {}: {error}", path.display()))
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|error| format!("write {}: {error}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|error| format!("chmod {}: {error}", path.display()))
}

/// Binds `source` at `target` and makes that mount read-only with `extra` flags.
pub fn bind_read_only(source: &Path, target: &Path, extra: MsFlags) -> Result<(), String> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|error| format!("bind {} at {}: {error}", source.display(), target.display()))?;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | extra,
        None::<&str>,
    )
    .map_err(|error| format!("make {} read-only: {error}", target.display()))
}

/// Binds `source` at `target` writable, with `flags` (a builder's output and cache).
pub fn bind_writable(source: &Path, target: &Path, flags: MsFlags) -> Result<(), String> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|error| format!("bind {} at {}: {error}", source.display(), target.display()))?;
    mount(None::<&str>, target, None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags, None::<&str>)
        .map_err(|error| format!("set the flags of {}: {error}", target.display()))
}

pub fn mount_fs(source: &str, target: &Path, fstype: &str, flags: MsFlags, data: Option<&str>) -> Result<(), String> {
    mount(Some(source), target, Some(fstype), flags, data)
        .map_err(|error| format!("mount {fstype} at {}: {error}", target.display()))
}

/// Lets every uid read `dir`'s tree and nobody but its owner write it, without following links:
/// a function's uid reads its own files, and only the server changes them.
pub fn make_world_readable(dir: &Path) -> Result<(), String> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|error| format!("read {}: {error}", path.display()))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        // Directories searchable, files readable, and a file its owner may run runnable by all
        // (a Dart build's executable): by everyone, written by nobody but the server.
        let runnable = meta.is_dir() || mode & 0o100 != 0;
        let wanted = (mode | 0o444 | if runnable { 0o111 } else { 0 }) & !0o022 & !0o6000;
        if wanted != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
                .map_err(|error| format!("make {} readable to the function: {error}", path.display()))?;
        }
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|error| format!("list {}: {error}", path.display()))?;
            pending.extend(entries.flatten().map(|entry| entry.path()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_resolved_libraries_and_the_interpreter() {
        let output = "/usr/bin/node:\n\tlinux-vdso.so.1 (0x00007ffd)\n\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibmissing.so => not found\n";
        let found: Vec<PathBuf> = parse_ldd(output).into_iter().collect();
        assert_eq!(
            found,
            vec![PathBuf::from("/lib/x86_64-linux-gnu/libdl.so.2"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
    }

    #[test]
    fn function_trees_become_readable_to_all_and_writable_by_none_but_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("fn");
        std::fs::create_dir_all(tree.join("lib")).unwrap();
        std::fs::write(tree.join("lib/a.py"), "x").unwrap();
        std::fs::write(tree.join("run.sh"), "x").unwrap();
        let mode =
            |path: &Path, bits: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).unwrap();
        mode(&tree.join("lib/a.py"), 0o600);
        mode(&tree.join("run.sh"), 0o4777);
        mode(&tree.join("lib"), 0o700);
        mode(&tree, 0o700);
        std::os::unix::fs::symlink("/etc/shadow", tree.join("link")).unwrap();
        make_world_readable(&tree).unwrap();
        let mode_of = |path: &Path| std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode_of(&tree), 0o755);
        assert_eq!(mode_of(&tree.join("lib")), 0o755);
        assert_eq!(mode_of(&tree.join("lib/a.py")), 0o644);
        assert_eq!(mode_of(&tree.join("run.sh")), 0o755, "set-uid and group/other write bits go");
        assert_eq!(mode_of(Path::new("/etc/shadow")) & 0o004, 0, "links are not followed");
    }

    #[test]
    fn a_runtime_needs_its_executable_and_its_loader() {
        let Some(node) = crate::runtime::find_on_path(std::env::var_os("PATH").as_deref(), "node") else {
            eprintln!("skipped: node not on PATH");
            return;
        };
        let files = runtime_files(Runtime::Node, &node).unwrap();
        assert!(files.paths.contains(&node));
        assert!(files.paths.iter().any(|path| path.to_string_lossy().contains("libc.so")), "{files:?}");
        // Nothing that is a shell or a general-purpose tool.
        assert!(!files
            .paths
            .iter()
            .any(|path| ["sh", "bash", "dash", "env"].contains(&path.file_name().unwrap().to_str().unwrap())));
    }
}
