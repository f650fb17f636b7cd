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

/// Names inside a denied module that cannot do what it is denied for: Vercel's Python functions
/// subclass `BaseHTTPRequestHandler`, which parses a request and writes a response and never
/// listens (`HTTPServer` does, and stays denied).
pub const ALLOWED: [&str; 1] = ["http.server.BaseHTTPRequestHandler"];

pub fn reason(module: &str) -> Option<&'static str> {
    if ALLOWED.contains(&module) {
        return None;
    }
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
    what: "`import`, `from … import`, `__import__('…')` and `importlib.import_module('…')` of `subprocess`, `ctypes`, `cffi`, `socketserver`, `multiprocessing`, `pty`, `http.server` (but `from http.server import BaseHTTPRequestHandler`, which never listens).",
    why: "These start processes, call native code or listen for connections.",
    example: "import subprocess\nsubprocess.run(['ls'])",
    instead: "Use `urllib.request` or `requests` for outgoing HTTP; keep computation in the handler.",
};
