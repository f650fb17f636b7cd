//! Paths in what a function's author reads (stack traces, compiler messages) made relative to the
//! function, so no server path reaches its owner's logs or screen: `main.py`, not `/fn/main.py`
//! or the server's data directory; the platform's own files shown as `<platform>/…`.
//!
//! A compiled Dart function keeps the paths it was compiled from in its stack frames
//! (`file:///DATA/state/builds/.staging-123-0/package/main.dart:5:3`): the build's staging
//! directory, renamed into `builds/KEY/` once complete. So every path under the builds directory
//! loses its first component, whatever it is, and the function's `package/` copy goes too.

use std::path::Path;

use crate::sandbox::rootfs::{ADAPTER_DIR, BUILD_DIR, FUNCTION_DIR};

/// A stack trace with the function's files relative to its directory and the platform's own
/// frames marked as such. `builds_dir` is where Dart builds are made (`None` for other runtimes).
pub(crate) fn relative_stack(stack: &str, function_dir: &Path, builds_dir: Option<&Path>) -> String {
    let mut text = match builds_dir {
        Some(builds) => relative_to_builds(stack, builds),
        None => stack.to_string(),
    };
    let host = format!("{}/", function_dir.display());
    let inside = format!("{FUNCTION_DIR}/");
    text = text.replace(&host, "").replace(&format!("file://{inside}"), "").replace(&inside, "");
    for platform_dir in [ADAPTER_DIR, BUILD_DIR] {
        text = text.replace(platform_dir, "<platform>");
    }
    text
}

/// Every `BUILDS/NAME/package/FILE` (with or without `file://`) becomes `FILE`, and every other
/// `BUILDS/NAME/FILE` becomes `<platform>/FILE`.
pub(crate) fn relative_to_builds(text: &str, builds_dir: &Path) -> String {
    let prefix = format!("{}/", builds_dir.display());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&prefix) {
        let before = &rest[..at];
        out.push_str(before.strip_suffix("file://").unwrap_or(before));
        let after = &rest[at + prefix.len()..];
        let inner = &after[after.find('/').unwrap_or(after.len())..];
        match inner.strip_prefix("/package/") {
            Some(source) => rest = source,
            None => {
                out.push_str("<platform>");
                rest = inner;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aot_frames_compiled_in_a_staging_directory_point_at_the_functions_files() {
        // What a compiled handler's stack looks like: the paths are the ones it was compiled from.
        let stack = "#0      handler (file:///srv/data/state/builds/.staging-4242-7/package/main.dart:5:3)\n\
                     #1      _call (file:///srv/data/state/builds/.staging-4242-7/containerpub_adapter.dart:88:20)\n\
                     #2      helper (file:///srv/data/state/builds/3f1c0a9b8e7d6c5b4a39281f/package/lib/util.dart:2:1)";
        let relative =
            relative_stack(stack, Path::new("/srv/data/functions/abc"), Some(Path::new("/srv/data/state/builds")));
        assert_eq!(
            relative,
            "#0      handler (main.dart:5:3)\n\
             #1      _call (<platform>/containerpub_adapter.dart:88:20)\n\
             #2      helper (lib/util.dart:2:1)"
        );
        assert!(!relative.contains("/srv/"), "{relative}");
    }

    #[test]
    fn sandboxed_and_host_paths_of_the_function_become_relative() {
        let stack = "Traceback:\n  File \"/fn/main.py\", line 3\n  File \"/containerpub/adapters/adapter.py\", line 9\n  at /data/functions/abc/index.js:4:7";
        let relative = relative_stack(stack, Path::new("/data/functions/abc"), None);
        assert_eq!(
            relative,
            "Traceback:\n  File \"main.py\", line 3\n  File \"<platform>/adapter.py\", line 9\n  at index.js:4:7"
        );
    }
}
