//! `python-denied-module`: Python modules functions may not import.
use super::RuleInfo;
use crate::report::Severity;

/// Modules denied, with why.
pub const DENIED: [(&str, &str); 9] = [
    ("subprocess", "starts processes"),
    ("ctypes", "calls native code"),
    ("cffi", "calls native code"),
    ("socketserver", "listens for connections"),
    ("multiprocessing", "forks processes"),
    ("pty", "spawns processes on terminals"),
    ("http.server", "listens for HTTP connections"),
    ("asyncio.subprocess", "starts processes"),
    ("_posixsubprocess", "starts processes"),
];

pub fn reason(module: &str) -> Option<&'static str> {
    DENIED
        .iter()
        .find(|(denied, _)| module == *denied || module.strip_prefix(denied).is_some_and(|rest| rest.starts_with('.')))
        .map(|(_, why)| *why)
}

pub const RULE: RuleInfo = RuleInfo {
    id: "python-denied-module",
    severity: Severity::Error,
    layer: "python (a lesser layer: the OS sandbox is the boundary)",
    summary: "imports a denied Python module",
    what: "`import`, `from … import`, `__import__('…')` and `importlib.import_module('…')` of `subprocess`, `ctypes`, `cffi`, `socketserver`, `multiprocessing`, `pty`, `http.server`.",
    why: "These start processes, call native code or listen for connections.",
    example: "import subprocess\nsubprocess.run(['ls'])",
    instead: "Use `urllib.request` or `requests` for outgoing HTTP; keep computation in the handler.",
};
