//! Walking a directory tree the server does not trust to be small: links are never followed, and
//! at most a given number of directories are read.

use std::path::{Path, PathBuf};

/// Calls `visit` with the path and name of every regular file under `dir`, reading at most
/// `max_dirs` directories (a huge tree is not walked whole).
pub(crate) fn each_regular_file(dir: &Path, max_dirs: usize, mut visit: impl FnMut(PathBuf, &str)) {
    let mut pending = vec![dir.to_path_buf()];
    let mut visited = 0;
    while let Some(current) = pending.pop() {
        visited += 1;
        if visited > max_dirs {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                visit(entry.path(), &entry.file_name().to_string_lossy());
            }
        }
    }
}
