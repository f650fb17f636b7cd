//! Installed packages, judged as dependencies rather than as the function's own code.
//!
//! A function's own files get every rule in full. The packages it installed beside them (Node's
//! `node_modules/`, a Python distribution `pip install --target` unpacked, which its
//! `*.dist-info/RECORD` lists file by file) are someone else's code, confined at run time like the
//! function's: their findings are reported as warnings naming the package, and their native
//! extension modules are allowed (a wheel's `.so`, an addon's `.node`), unless the operator says
//! otherwise (`Options::dependency_findings_fatal`, `Options::deny_native_dependencies`).
//! Python front end: their files are scanned line by line, not parsed (`python::scan_installed`).

use std::collections::HashMap;

use crate::package::Package;
use crate::report::{Finding, Severity};

/// Which installed distribution each file of the package belongs to.
#[derive(Debug, Default)]
pub struct Dependencies {
    /// Relative path → the distribution's name (`requests`, `charset-normalizer`).
    owners: HashMap<String, String>,
}

impl Dependencies {
    /// Reads every `*.dist-info/RECORD` in the package; `node_modules/` needs no record.
    pub fn read(package: &Package) -> Self {
        let mut owners = HashMap::new();
        for record in package.files.iter().filter(|file| file.relative.ends_with(".dist-info/RECORD")) {
            let Some((base, dist_info)) = split_dist_info(&record.relative) else { continue };
            let name = distribution_name(dist_info);
            let Ok(text) = std::fs::read_to_string(&record.path) else { continue };
            for line in text.lines() {
                // `path,sha256=…,size`; a path with a comma is quoted, and never a module we read.
                let Some(path) = line.split(',').next().filter(|path| !path.is_empty() && !path.starts_with('"'))
                else {
                    continue;
                };
                let Some(relative) = crate::package::normalize(&format!("{base}{path}")) else { continue };
                owners.insert(relative, name.clone());
            }
        }
        Self { owners }
    }

    /// The installed package `relative` belongs to, if it is not the function's own.
    pub fn owner(&self, relative: &str) -> Option<String> {
        if let Some(name) = self.owners.get(relative) {
            return Some(name.clone());
        }
        node_module(relative)
    }
}

/// `lib/requests-2.32.3.dist-info/RECORD` → (`lib/`, `requests-2.32.3.dist-info`).
fn split_dist_info(record: &str) -> Option<(String, &str)> {
    let dist_info = record.strip_suffix("/RECORD")?;
    match dist_info.rsplit_once('/') {
        Some((base, name)) => Some((format!("{base}/"), name)),
        None => Some((String::new(), dist_info)),
    }
}

/// `charset_normalizer-3.4.0.dist-info` → `charset-normalizer`.
fn distribution_name(dist_info: &str) -> String {
    let stem = dist_info.strip_suffix(".dist-info").unwrap_or(dist_info);
    stem.split('-').next().unwrap_or(stem).replace('_', "-")
}

/// `node_modules/@scope/name/…` or `node_modules/name/…` → the package's name.
fn node_module(relative: &str) -> Option<String> {
    let index = relative.rfind("node_modules/")?;
    let mut parts = relative[index + "node_modules/".len()..].split('/');
    let first = parts.next()?;
    if first.starts_with('@') {
        Some(format!("{first}/{}", parts.next()?))
    } else {
        Some(first.to_string())
    }
}

/// Applies the dependency policy to findings: a finding in an installed package is a warning
/// naming it, unless `fatal`; native code in one is allowed unless `deny_native`, and then stays
/// an error.
pub fn apply(findings: &mut [Finding], dependencies: &Dependencies, fatal: bool, deny_native: bool) {
    for finding in findings.iter_mut() {
        let Some(owner) = dependencies.owner(&finding.file) else { continue };
        let native = finding.rule == crate::rules::native_code::RULE.id;
        if (native && deny_native) || (!native && fatal) || finding.severity != Severity::Error {
            continue;
        }
        finding.severity = Severity::Warning;
        finding.message = format!(
            "{} (in the installed package `{owner}`: reported, not fatal; it runs confined like the function)",
            finding.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_owned_by_their_distribution_or_node_module() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("main.py", "");
        write("urllib3/util/connection.py", "");
        write(
            "urllib3-2.2.3.dist-info/RECORD",
            "urllib3/util/connection.py,sha256=x,100\nurllib3-2.2.3.dist-info/RECORD,,\n",
        );
        write("charset_normalizer/md.cpython-311-x86_64-linux-gnu.so", "");
        write(
            "charset_normalizer-3.4.0.dist-info/RECORD",
            "charset_normalizer/md.cpython-311-x86_64-linux-gnu.so,sha256=y,9\n",
        );
        let package = Package::read(dir.path()).unwrap();
        let dependencies = Dependencies::read(&package);
        assert_eq!(dependencies.owner("urllib3/util/connection.py").as_deref(), Some("urllib3"));
        assert_eq!(
            dependencies.owner("charset_normalizer/md.cpython-311-x86_64-linux-gnu.so").as_deref(),
            Some("charset-normalizer")
        );
        assert_eq!(dependencies.owner("main.py"), None);
        assert_eq!(dependencies.owner("node_modules/@scope/pkg/build/a.node").as_deref(), Some("@scope/pkg"));
        assert_eq!(dependencies.owner("node_modules/pg/lib/index.js").as_deref(), Some("pg"));
    }
}
