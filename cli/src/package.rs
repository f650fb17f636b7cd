//! Turning a function's directory into the archive `deploy` uploads: the files `git` would keep
//! (`.gitignore` honoured, hidden files left out) and the installed `node_modules/` (which the
//! function needs, ignored or not), never `.dart_tool/` or a top-level `build/`,
//! in a stable order with fixed times and modes, so the same sources give the same artifact.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(Debug)]
pub struct Package {
    pub archive: Vec<u8>,
    pub files: Vec<PathBuf>,
}

/// The relative paths that would be uploaded, sorted.
pub fn files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let root_for_filter = root.to_path_buf();
    let walker = ignore::WalkBuilder::new(root)
        .require_git(false)
        .filter_entry(move |entry| {
            let name = entry.file_name();
            if name == ".dart_tool" {
                return false;
            }
            !(name == "build" && entry.path().parent() == Some(root_for_filter.as_path()))
        })
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = entry.context("cannot list the function's files")?;
        if entry.file_type().is_some_and(|kind| kind.is_file()) {
            files.push(entry.path().strip_prefix(root).expect("walked under root").to_path_buf());
        } else if entry.path_is_symlink() {
            anyhow::bail!(
                "{} is a symbolic link; the server refuses links: copy the file instead",
                entry.path().display()
            );
        }
    }
    files.extend(installed_packages(root)?);
    files.sort();
    files.dedup();
    Ok(files)
}

/// `node_modules/`, which every `.gitignore` of a Node project lists, is what the function runs
/// with: uploaded whatever the ignore files say (as `sam build` and `serverless package` do), less
/// `.bin/` (links to command-line tools, which the server refuses and no function needs).
fn installed_packages(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let modules = root.join("node_modules");
    if !modules.is_dir() {
        return Ok(Vec::new());
    }
    let walker = ignore::WalkBuilder::new(&modules)
        .standard_filters(false)
        .filter_entry(|entry| entry.file_name() != ".bin")
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = entry.context("cannot list node_modules")?;
        if entry.path_is_symlink() {
            anyhow::bail!(
                "{} is a symbolic link; the server refuses links: install without links (npm install --install-links)",
                entry.path().display()
            );
        }
        if entry.file_type().is_some_and(|kind| kind.is_file()) {
            files.push(entry.path().strip_prefix(root).expect("walked under root").to_path_buf());
        }
    }
    Ok(files)
}

pub fn build(root: &Path) -> anyhow::Result<Package> {
    let files = files(root)?;
    if files.is_empty() {
        anyhow::bail!("{} has no files to deploy", root.display());
    }
    let mut builder = tar::Builder::new(Vec::new());
    for relative in &files {
        let path = root.join(relative);
        let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let executable = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path)?.permissions()) & 0o111 != 0;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, relative, data.as_slice())?;
    }
    let tar = builder.into_inner()?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&tar)?;
    Ok(Package { archive: encoder.finish()?, files })
}

/// The function name when `--name` is not given: the directory's (`_` becoming `-`). Never the
/// package's own name (`package.json`, `pubspec.yaml`): every function made from one template
/// (`openfaas-function`, `starter-template`) would deploy over the others.
pub fn default_name(root: &Path) -> Option<String> {
    let directory = root.canonicalize().ok()?.file_name()?.to_string_lossy().into_owned();
    Some(directory.to_ascii_lowercase().replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_dart_tool_and_build_are_left_out_and_archives_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["main.dart", "pubspec.yaml", "lib/a.dart", "lib/build/kept.dart", "secret.log", ".env"] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        for file in [".dart_tool/package_config.json", "build/out.js", "lib/.dart_tool/x"] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        let listed: Vec<String> = files(root).unwrap().iter().map(|p| p.display().to_string()).collect();
        assert_eq!(listed, ["lib/a.dart", "lib/build/kept.dart", "main.dart", "pubspec.yaml"]);
        assert_eq!(build(root).unwrap().archive, build(root).unwrap().archive);
    }

    #[test]
    fn installed_node_modules_are_uploaded_though_gitignore_lists_them_but_not_their_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in
            ["index.js", "node_modules/express/index.js", "node_modules/express/package.json", "node_modules/.bin/x"]
        {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        std::os::unix::fs::symlink("../express/index.js", root.join("node_modules/.bin/express")).unwrap();
        std::fs::write(root.join(".gitignore"), "node_modules\n").unwrap();
        let listed: Vec<String> = files(root).unwrap().iter().map(|p| p.display().to_string()).collect();
        assert_eq!(listed, ["index.js", "node_modules/express/index.js", "node_modules/express/package.json"]);
    }

    #[test]
    fn the_default_name_is_the_directorys_never_the_packages() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("My_Func");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("package.json"), r#"{"name": "openfaas-function"}"#).unwrap();
        std::fs::write(root.join("pubspec.yaml"), "name: starter_template\n").unwrap();
        assert_eq!(default_name(&root).as_deref(), Some("my-func"));
    }
}
