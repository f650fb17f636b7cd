//! Node: `npm ci` from a lockfile (`package-lock.json` or `npm-shrinkwrap.json`), else
//! `npm install`, always with `--omit=dev --ignore-scripts`: no package's install script runs, on
//! the server or in the builder. `--install-links` packs a `file:` dependency into place
//! instead of linking it, so nothing in `node_modules` points outside it.
//!
//! After the install, packages that need what was not done are refused by name, unless the
//! operator allows them (`[dependencies] allow_install_scripts`): those npm marks
//! `hasInstallScript` (an `install`/`preinstall`/`postinstall` script, or a `binding.gyp` npm
//! would build), and those shipping a compiled addon (`*.node`).

use std::collections::BTreeSet;
use std::path::Path;

use super::builder::ToolPaths;

/// The manifest files that decide what is installed (hashed into the install's key).
pub const MANIFESTS: &[&str] = &["package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc"];

/// npm's own package directory (holding `bin/npm-cli.js`): `npm` on the search path is a link to
/// that script. `None` where npm is not installed.
pub fn package_dir(search_path: Option<&std::ffi::OsStr>) -> Option<std::path::PathBuf> {
    let script = std::fs::canonicalize(crate::runtime::find_on_path(search_path, "npm")?).ok()?;
    let root = script.parent()?.parent()?.to_path_buf();
    root.join("bin/npm-cli.js").is_file().then_some(root)
}

/// Whether the function needs an install: a `package.json` naming dependencies, and no
/// `node_modules` uploaded with it (an installed tree is used as it is).
pub fn needs_install(function_dir: &Path) -> bool {
    if function_dir.join("node_modules").exists() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(function_dir.join("package.json")) else { return false };
    let Ok(manifest) = serde_json::from_str::<serde_json::Value>(&text) else { return false };
    ["dependencies", "optionalDependencies"]
        .iter()
        .any(|field| manifest[field].as_object().is_some_and(|deps| !deps.is_empty()))
}

/// Whether the manifest names a dependency by a path (`file:`, `link:`, `./x`): then what is
/// installed depends on the function's other files too.
pub fn has_local_references(function_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(function_dir.join("package.json")) else { return false };
    let Ok(manifest) = serde_json::from_str::<serde_json::Value>(&text) else { return false };
    if manifest.get("workspaces").is_some() {
        return true;
    }
    ["dependencies", "optionalDependencies"].iter().any(|field| {
        manifest[field].as_object().into_iter().flatten().any(|(_, spec)| {
            spec.as_str().is_some_and(|spec| {
                ["file:", "link:", ".", "/", "~"].iter().any(|prefix| spec.trim_start().starts_with(prefix))
            })
        })
    })
}

/// `ci` with a lockfile, `install` without.
pub fn subcommand(function_dir: &Path) -> &'static str {
    if ["package-lock.json", "npm-shrinkwrap.json"].iter().any(|lock| function_dir.join(lock).is_file()) {
        "ci"
    } else {
        "install"
    }
}

/// `npm-cli.js` and its arguments. Options a project's `.npmrc` could also set are given on the
/// command line, which wins: where the cache and logs go, and that no script runs.
pub fn arguments(paths: &ToolPaths, subcommand: &str, online: bool) -> Vec<String> {
    let mut args = vec![
        paths.tool.join("bin/npm-cli.js").display().to_string(),
        subcommand.to_string(),
        "--omit=dev".into(),
        "--ignore-scripts".into(),
        "--install-links".into(),
        "--no-bin-links".into(),
        "--no-audit".into(),
        "--no-fund".into(),
        "--no-update-notifier".into(),
        format!("--cache={}", paths.cache.join("npm").display()),
        "--logs-max=0".into(),
        "--loglevel=warn".into(),
    ];
    args.push(if online { "--prefer-offline" } else { "--offline" }.into());
    args
}

/// The environment npm runs with: nothing of the server's. The host's CA bundle is trusted too
/// (an operator's proxy or private registry), as it is for every other TLS client on the host.
pub fn environment(path: &str, home: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), path.to_string()),
        ("HOME".to_string(), home.display().to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
        ("NODE_ENV".to_string(), "production".to_string()),
    ];
    if Path::new(super::HOST_CA_BUNDLE).is_file() {
        env.push(("NODE_EXTRA_CA_CERTS".into(), super::HOST_CA_BUNDLE.into()));
    }
    env
}

/// The installed packages (npm's own record of the tree, `node_modules/.package-lock.json`), and
/// those that need scripts or ship compiled addons.
pub fn inspect(node_modules: &Path) -> Inspection {
    let mut inspection = Inspection::default();
    // The builder wrote it: read only a plain file (not a link, not a FIFO).
    let record_path = node_modules.join(".package-lock.json");
    let plain = std::fs::symlink_metadata(&record_path).is_ok_and(|meta| meta.is_file());
    let record = plain
        .then(|| std::fs::read_to_string(&record_path).ok())
        .flatten()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    for (location, package) in record.as_ref().and_then(|record| record["packages"].as_object()).into_iter().flatten() {
        if location.is_empty() {
            continue;
        }
        inspection.packages += 1;
        if package["hasInstallScript"].as_bool() == Some(true) {
            inspection.install_scripts.insert(package_name(location));
        }
    }
    crate::tree::each_regular_file(node_modules, 200_000, |path, name| {
        if name.ends_with(".node") {
            let relative = path.strip_prefix(node_modules).map(Path::to_path_buf).unwrap_or_default();
            inspection.native_addons.insert(package_name(&format!("node_modules/{}", relative.display())));
        }
    });
    inspection
}

/// What [`inspect`] found.
#[derive(Debug, Default)]
pub struct Inspection {
    pub packages: usize,
    pub install_scripts: BTreeSet<String>,
    pub native_addons: BTreeSet<String>,
}

/// The package a path in `node_modules` belongs to: the last `node_modules/NAME` (or
/// `node_modules/@scope/NAME`) in it.
fn package_name(location: &str) -> String {
    let last = location.rsplit_once("node_modules/").map_or(location, |(_, rest)| rest);
    let mut parts = last.split('/');
    match (parts.next(), parts.next()) {
        (Some(scope), Some(name)) if scope.starts_with('@') => format!("{scope}/{name}"),
        (Some(name), _) => name.to_string(),
        _ => last.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_is_named_by_its_last_node_modules_segment() {
        assert_eq!(package_name("node_modules/lodash"), "lodash");
        assert_eq!(package_name("node_modules/@scope/pkg/build/Release/x.node"), "@scope/pkg");
        assert_eq!(package_name("node_modules/a/node_modules/b/lib/b.node"), "b");
    }

    #[test]
    fn an_install_is_needed_for_dependencies_without_node_modules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), r#"{"name":"x","dependencies":{}}"#).unwrap();
        assert!(!needs_install(dir.path()), "nothing to install");
        std::fs::write(dir.path().join("package.json"), r#"{"dependencies":{"lodash":"^4"}}"#).unwrap();
        assert!(needs_install(dir.path()));
        assert!(!has_local_references(dir.path()));
        assert_eq!(subcommand(dir.path()), "install");
        std::fs::write(dir.path().join("package-lock.json"), "{}").unwrap();
        assert_eq!(subcommand(dir.path()), "ci");
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        assert!(!needs_install(dir.path()), "an uploaded tree is used as it is");
        std::fs::write(dir.path().join("package.json"), r#"{"dependencies":{"x":"file:../../etc"}}"#).unwrap();
        assert!(has_local_references(dir.path()));
    }
}
