//! Python: `pip` of the interpreter the workers run, so that interpreter decides which wheels
//! fit. Wheels only (`--only-binary=:all:`): a source distribution would run its `setup.py`,
//! and none does. Hashes in `requirements.txt` are honoured (pip's hash-checking mode turns on
//! by itself when any requirement has one).
//!
//! Two steps, so a second install of the same requirements reaches no index: `pip download`
//! (online) fills the function's wheelhouse, and `pip install --no-index --find-links WHEELHOUSE
//! --target` (offline) installs from it. An install is tried offline first; only when the
//! wheelhouse cannot satisfy the requirements does the download run. The wheelhouse is the
//! function's own (a wheel another tenant's index served never reaches it); pip's HTTP cache,
//! keyed by URL, is shared, so a wheel another function already downloaded is not fetched again.

use std::path::Path;

use super::builder::ToolPaths;

pub const MANIFESTS: &[&str] = &["requirements.txt"];

/// Where the packages go in the build directory (then moved into the install's directory).
pub const TARGET: &str = ".containerpub-python";

/// A `requirements.txt` with at least one requirement, and no installed distribution uploaded
/// with the function (`pip install --target .` leaves `NAME.dist-info` directories beside it).
pub fn needs_install(function_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(function_dir.join("requirements.txt")) else { return false };
    if requirement_lines(&text).next().is_none() {
        return false;
    }
    let vendored = std::fs::read_dir(function_dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.file_name().to_string_lossy().ends_with(".dist-info") && entry.path().is_dir());
    !vendored
}

/// Lines that are not blank or comments.
fn requirement_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.split(" #").next().unwrap_or("").trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// Whether a requirement names a local file (`-r other.txt`, `./pkg`, `file:`, `-e .`): then
/// what is installed depends on the function's other files too.
pub fn has_local_references(function_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(function_dir.join("requirements.txt")) else { return false };
    let local = requirement_lines(&text).any(|line| {
        ["-r", "-c", "-e", "--requirement", "--constraint", "--editable", ".", "/"]
            .iter()
            .any(|prefix| line.starts_with(prefix))
            || line.contains("file:")
    });
    local
}

/// Arguments common to both steps: no configuration file or variable of the host's is read
/// (`-I`, `--isolated`), and the host's CA bundle is trusted.
fn common(paths: &ToolPaths) -> Vec<String> {
    let mut args = vec![
        "--isolated".to_string(),
        "--disable-pip-version-check".into(),
        "--no-input".into(),
        "--only-binary=:all:".into(),
        "--progress-bar=off".into(),
        "-r".into(),
        paths.output.join("requirements.txt").display().to_string(),
    ];
    if Path::new(super::HOST_CA_BUNDLE).is_file() {
        args.extend(["--cert".to_string(), super::HOST_CA_BUNDLE.to_string()]);
    }
    args
}

/// `pip download` into the wheelhouse (online).
pub fn download_arguments(paths: &ToolPaths) -> Vec<String> {
    let mut args = vec!["-I".to_string(), "-B".into(), "-m".into(), "pip".into(), "download".into()];
    args.extend(common(paths));
    args.extend([
        "--dest".into(),
        paths.cache.join("wheels").display().to_string(),
        "--cache-dir".into(),
        paths.cache.join("pip").display().to_string(),
    ]);
    args
}

/// `pip install --target` from the wheelhouse only (offline).
pub fn install_arguments(paths: &ToolPaths) -> Vec<String> {
    let mut args = vec!["-I".to_string(), "-B".into(), "-m".into(), "pip".into(), "install".into()];
    args.extend(common(paths));
    args.extend([
        "--no-index".into(),
        "--find-links".into(),
        paths.cache.join("wheels").display().to_string(),
        "--no-cache-dir".into(),
        "--no-warn-script-location".into(),
        "--target".into(),
        paths.output.join(TARGET).display().to_string(),
    ]);
    args
}

pub fn environment(path: &str, home: &Path) -> Vec<(String, String)> {
    vec![
        ("PATH".to_string(), path.to_string()),
        ("HOME".to_string(), home.display().to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ]
}

/// How many distributions were installed into `target`.
pub fn count_installed(target: &Path) -> usize {
    std::fs::read_dir(target)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".dist-info"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_need_an_install_unless_distributions_were_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "# nothing\n\n").unwrap();
        assert!(!needs_install(dir.path()));
        std::fs::write(dir.path().join("requirements.txt"), "requests==2.32.3  # http\n").unwrap();
        assert!(needs_install(dir.path()));
        assert!(!has_local_references(dir.path()));
        std::fs::create_dir(dir.path().join("requests-2.32.3.dist-info")).unwrap();
        assert!(!needs_install(dir.path()));
        std::fs::write(dir.path().join("requirements.txt"), "-r base.txt\n").unwrap();
        assert!(has_local_references(dir.path()));
    }
}
