//! `denied-io-member`: a reference to a `dart:io` API that escapes the sandbox.
use super::RuleInfo;
use crate::report::Severity;

/// The `dart:io` names functions may not reach, with what each does.
pub const DENIED: [(&str, &str); 14] = [
    ("Process", "starts processes"),
    ("exit", "ends the worker process"),
    ("Socket", "opens raw TCP connections"),
    ("RawSocket", "opens raw TCP connections"),
    ("SecureSocket", "opens raw TLS connections"),
    ("RawSecureSocket", "opens raw TLS connections"),
    ("RawSynchronousSocket", "opens blocking TCP connections"),
    ("ServerSocket", "listens for connections"),
    ("RawServerSocket", "listens for connections"),
    ("SecureServerSocket", "listens for TLS connections"),
    ("RawSecureServerSocket", "listens for TLS connections"),
    ("HttpServer", "listens for HTTP connections"),
    ("RawDatagramSocket", "sends and receives UDP datagrams"),
    ("Link", "creates and follows symbolic links"),
];

pub fn reason(name: &str) -> Option<&'static str> {
    DENIED.iter().find(|(denied, _)| *denied == name).map(|(_, why)| *why)
}

pub const RULE: RuleInfo = RuleInfo {
    id: "denied-io-member",
    severity: Severity::Error,
    layer: "dart",
    summary: "uses a dart:io API that escapes the sandbox",
    what: "Any reference — call, tear-off, type, `Function.apply` argument, typedef alias, re-export — to `Process`, `exit`, raw and secure sockets, servers, datagram sockets or `Link`, when the name resolves to `dart:io` (through prefixes, `show`/`hide`, and exports of other files of the package). A class of your own with the same name is not flagged when `dart:io`'s is not in scope.",
    why: "Functions run in shared workers: starting processes, opening listeners or raw connections, or exiting the VM would reach past the platform's limits and accounting.",
    example: "import 'dart:io' as io;\nfinal run = io.Process.run;   // a tear-off is still a reference",
    instead: "Call HTTP APIs with `HttpClient` or `package:http`; return errors instead of calling `exit`.",
};
