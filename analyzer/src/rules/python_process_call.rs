//! `python-process-call`: `os` functions that start processes, and socket servers.
use super::RuleInfo;
use crate::report::Severity;

/// `os` attributes that run other programs or fork.
pub const OS_DENIED: [&str; 10] =
    ["system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "kill", "killpg", "startfile"];

/// True for the `os.exec*` and `os.spawn*` families and the names above.
pub fn is_denied_os_attribute(name: &str) -> bool {
    OS_DENIED.contains(&name) || name.starts_with("exec") || name.starts_with("spawn")
}

pub const RULE: RuleInfo = RuleInfo {
    id: "python-process-call",
    severity: Severity::Error,
    layer: "python (a lesser layer: the OS sandbox is the boundary)",
    summary: "starts a process or listens on a socket",
    what: "`os.system`, `os.popen`, `os.fork`, `os.exec*`, `os.spawn*`, `os.posix_spawn`, `os.kill` (also after `from os import …`), and `bind`/`listen` on sockets.",
    why: "Functions may not start programs, signal other processes or accept connections.",
    example: "import os\nos.system('curl http://169.254.169.254/')",
    instead: "Do the work in Python; use `urllib.request` for outgoing HTTP.",
};
