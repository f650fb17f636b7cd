//! The line of a dying program's stderr that says why, and what to do about it.
//!
//! Runtimes end an uncaught error differently: Python's traceback ends with the cause
//! (`ModuleNotFoundError: No module named 'requests'`), while Node prints the cause in the middle
//! and ends with the object's fields and its own version (`}`, ``, `Node.js v20.20.2`). The last
//! lines alone left users with `} |  | Node.js v20.20.2`. So the cause is the last line that reads
//! like an error's headline (`Error: …`, `TypeError: …`, `ModuleNotFoundError: …`), and a few
//! causes everyone meets come with the fix.

/// The cause among `stderr`'s lines (oldest first), with advice when it is a known one; `None`
/// when no line reads like an error.
pub fn cause(stderr: &[&str]) -> Option<String> {
    let headline = stderr.iter().rev().map(|line| line.trim()).find(|line| is_error_headline(line))?;
    Some(with_advice(headline))
}

/// An error's text, with the fix after it when it is a known cause.
pub fn with_advice(error: &str) -> String {
    match advice(error) {
        Some(advice) => format!("{error} ({advice})"),
        None => error.to_string(),
    }
}

/// `Error: …`, `SomethingError: …`, `SomethingException: …`, `module.SomethingError: …`.
fn is_error_headline(line: &str) -> bool {
    let Some((kind, message)) = line.split_once(": ") else { return false };
    let name = kind.rsplit('.').next().unwrap_or(kind);
    !message.is_empty()
        && name.chars().next().is_some_and(|first| first.is_ascii_uppercase())
        && name.chars().all(|character| character.is_ascii_alphanumeric() || character == '_')
        && kind.chars().all(|character| character.is_ascii_alphanumeric() || character == '_' || character == '.')
        && (name.ends_with("Error") || name.ends_with("Exception"))
}

fn advice(headline: &str) -> Option<&'static str> {
    if headline.contains("Cannot find module") || headline.contains("ERR_MODULE_NOT_FOUND") {
        Some("a package the function needs is not in its upload: run `npm install` in the function's directory and deploy it with node_modules/, or declare it in package.json")
    } else if headline.starts_with("ModuleNotFoundError") || headline.contains("No module named") {
        Some("a package the function needs is not in its upload: run `pip install --target . PACKAGE` in the function's directory (or list it in requirements.txt and install it there) and deploy again")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_cause_is_found_in_the_middle_with_the_fix() {
        let stderr = [
            "node:internal/modules/cjs/loader:1228",
            "  throw err;",
            "  ^",
            "",
            "Error: Cannot find module 'express'",
            "Require stack:",
            "- /fn/index.js",
            "    at Module._resolveFilename (node:internal/modules/cjs/loader:1225:15)",
            "  code: 'MODULE_NOT_FOUND',",
            "}",
            "",
            "Node.js v20.20.2",
        ];
        let cause = cause(&stderr).unwrap();
        assert!(cause.starts_with("Error: Cannot find module 'express' (") && cause.contains("npm install"), "{cause}");
    }

    #[test]
    fn pythons_cause_is_its_last_line() {
        let stderr = [
            "Traceback (most recent call last):",
            "  File \"/fn/main.py\", line 1, in <module>",
            "    import requests",
            "ModuleNotFoundError: No module named 'requests'",
        ];
        let cause_of_python = cause(&stderr).unwrap();
        assert!(cause_of_python.starts_with("ModuleNotFoundError: No module named 'requests' ("), "{cause_of_python}");
        assert!(cause_of_python.contains("pip install --target ."), "{cause_of_python}");
        let stderr = ["Traceback (most recent call last):", "json.decoder.JSONDecodeError: Expecting value: line 1"];
        assert_eq!(cause(&stderr).unwrap(), "json.decoder.JSONDecodeError: Expecting value: line 1");
    }

    #[test]
    fn ordinary_lines_are_not_causes() {
        assert_eq!(cause(&["starting", "Note: this is fine", "error: lowercase", "}", "Node.js v20.20.2"]), None);
        assert_eq!(cause(&[]), None);
    }
}
