//! `node-denied-module`: Node core modules functions may not load.
use super::RuleInfo;
use crate::report::Severity;

/// Core modules denied, with why (also with the `node:` prefix).
pub const DENIED: [(&str, &str); 9] = [
    ("child_process", "starts processes"),
    ("worker_threads", "starts threads running arbitrary code"),
    ("vm", "compiles and runs code from strings"),
    ("net", "opens raw TCP connections and servers"),
    ("dgram", "sends and receives UDP datagrams"),
    ("tls", "opens raw TLS connections and servers"),
    ("cluster", "forks worker processes"),
    ("inspector", "opens the V8 inspector"),
    ("module", "loads code from anywhere (`createRequire`)"),
];

pub fn reason(module: &str) -> Option<&'static str> {
    let module = module.strip_prefix("node:").unwrap_or(module);
    let base = module.split('/').next().unwrap_or(module);
    DENIED.iter().find(|(denied, _)| *denied == base).map(|(_, why)| *why)
}

pub const RULE: RuleInfo = RuleInfo {
    id: "node-denied-module",
    severity: Severity::Error,
    layer: "node (a lesser layer: the OS sandbox is the boundary)",
    summary: "requires or imports a denied Node core module",
    what: "`require`, `import … from`, `import()` and `export … from` of `child_process`, `worker_threads`, `vm`, `net`, `dgram`, `tls`, `cluster`, `inspector`, `module` (with or without `node:`).",
    why: "These start processes or threads, run code from strings, or open raw sockets and servers.",
    example: "const { execSync } = require('node:child_process');",
    instead: "Use `fetch` or `https` for outgoing HTTP; keep computation in the handler.",
};
