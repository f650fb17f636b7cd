//! `node-server`: Node code that listens for connections.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "node-server",
    severity: Severity::Error,
    layer: "node (a lesser layer: the OS sandbox is the boundary)",
    summary: "creates a server",
    what: "Calls of `createServer` (from `http`, `https`, `http2` or anywhere).",
    why:
        "A function answers requests through the platform; a listener of its own bypasses routing, auth and accounting.",
    example: "require('http').createServer(handler).listen(8080);",
    instead: "Export `handler`; the platform gives it every request.",
};
