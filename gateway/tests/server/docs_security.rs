//! docs/security.md's tables are rendered from the code that enforces them: the analyzer's rule
//! list (`analyzer::rules::ALL`), the sandbox's layers (`prewarm::sandbox::LAYERS`) and its
//! system-call policy (`prewarm::sandbox::seccomp::REFUSED`). The page fails this test when it
//! drifts from them; `CONTAINERPUB_UPDATE_DOCS=1 cargo test -p gateway --test server docs_security`
//! rewrites its generated parts.
//!
//! The first table maps what a function may do onto those three lists. Every rule, layer and
//! system-call purpose must appear in it, and everything it names must exist, so a new rule or
//! layer cannot land undocumented.

use std::collections::BTreeSet;

use analyzer::rules::{self, RuleInfo};
use prewarm::sandbox::seccomp::{RefusedCalls, REFUSED};
use prewarm::sandbox::{Layer, LAYERS};

/// A row of "what a function may and may not do".
struct Capability {
    what: &'static str,
    allowed: bool,
    /// Analyzer rule ids.
    at_deploy: &'static [&'static str],
    /// Sandbox layer names, or `seccomp: PURPOSE` for a group of refused system calls.
    at_run_time: &'static [&'static str],
    /// How the author meets it.
    shows_as: &'static str,
}

const CAPABILITIES: &[Capability] = &[
    Capability {
        what: "Call HTTP(S) APIs and other outside services over TCP or UDP, with DNS",
        allowed: true,
        at_deploy: &[],
        at_run_time: &["network-policy"],
        shows_as: "works under `egress` (the default); a function deployed with `--network none` has loopback only",
    },
    Capability {
        what: "Use its function database (`DATABASE_URL`)",
        allowed: true,
        at_deploy: &[],
        at_run_time: &["network-policy"],
        shows_as: "its own role and schema, under a connection limit and a statement timeout: PostgreSQL's own errors when they bite ([database-access.md](database-access.md)); not under `--network none`",
    },
    Capability {
        what: "Read the files of its own package; write in `/tmp`",
        allowed: true,
        at_deploy: &[],
        at_run_time: &["read-only-root"],
        shows_as: "paths relative to the package (the working directory) or `/tmp`; `/tmp` is private and counts against the memory cap",
    },
    Capability {
        what: "Threads, timers, async I/O, environment variables and secrets",
        allowed: true,
        at_deploy: &[],
        at_run_time: &[],
        shows_as: "work as anywhere",
    },
    Capability {
        what: "Start processes or shells",
        allowed: false,
        at_deploy: &["denied-io-member", "node-denied-module", "python-denied-module", "python-process-call"],
        at_run_time: &["seccomp: new processes", "exec-only-runtime"],
        shows_as: "a finding naming the call; at run time `EPERM` (there is no shell in the view either: `ENOENT`)",
    },
    Capability {
        what: "Raw sockets, packet sockets, netlink; serving connections",
        allowed: false,
        at_deploy: &["denied-io-member", "node-denied-module", "node-server", "python-denied-module"],
        at_run_time: &["seccomp: servers and raw networking"],
        shows_as: "a finding; at run time `bind`/`listen`/`socket` answer `EPERM`",
    },
    Capability {
        what: "FFI and native code",
        allowed: false,
        at_deploy: &["denied-library", "native-code", "python-denied-module", "denied-package"],
        at_run_time: &["exec-only-runtime", "seccomp: the kernel's riskier interfaces"],
        shows_as: "a finding at deploy: native libraries are not shipped",
    },
    Capability {
        what: "Reflection, loading or compiling code at run time, new isolates",
        allowed: false,
        at_deploy: &["denied-library", "node-denied-module", "unanalyzed-import", "uri-interpolation"],
        at_run_time: &["mount-namespace"],
        shows_as: "a finding; nothing outside the package can be loaded at run time",
    },
    Capability {
        what: "Files outside its own directory, links",
        allowed: false,
        at_deploy: &["file-outside-package", "non-literal-path", "import-outside-package", "symlink-in-package"],
        at_run_time: &["mount-namespace", "read-only-root", "own-uid"],
        shows_as: "a finding (Dart); at run time the path does not exist (`ENOENT`) or cannot be written (`EACCES`, `EROFS`)",
    },
    Capability {
        what: "See or touch other tenants and the server: processes, files, queues, memory",
        allowed: false,
        at_deploy: &[],
        at_run_time: &[
            "own-uid",
            "pid-namespace",
            "ipc-namespace",
            "uts-namespace",
            "cgroup-namespace",
            "masked-host-info",
            "seccomp: looking into other processes",
        ],
        shows_as: "nothing to see: its pid namespace holds only itself (`ESRCH`), other queues are not found, the host's kernel details read empty",
    },
    Capability {
        what: "Reach the server's host, loopback services, link-local or cloud metadata addresses, other functions",
        allowed: false,
        at_deploy: &[],
        at_run_time: &["network-policy", "network-none-only"],
        shows_as: "`ECONNREFUSED` at once",
    },
    Capability {
        what: "Change the sandbox: mounts, namespaces, privileges, kernel modules, the clock",
        allowed: false,
        at_deploy: &[],
        at_run_time: &[
            "no-capabilities",
            "no-new-privs",
            "seccomp: changing the file system view",
            "seccomp: new or other namespaces",
            "seccomp: the kernel's riskier interfaces",
            "seccomp: administering the machine",
        ],
        shows_as: "`EPERM`",
    },
    Capability {
        what: "Dependencies that wrap any of the above or run code while building",
        allowed: false,
        at_deploy: &["denied-package", "non-hosted-dependency", "dependency-overrides", "build-hooks"],
        at_run_time: &[],
        shows_as: "a finding naming the dependency; `dependencies_refused` for build hooks found while resolving",
    },
    Capability {
        what: "Code the analyzer cannot check: files that do not parse, oversized files, a broken pubspec",
        allowed: false,
        at_deploy: &["parse-error", "file-too-large", "pubspec-invalid"],
        at_run_time: &[],
        shows_as: "a finding at the innermost place, with the expected token",
    },
    Capability {
        what: "A package without its entry: no entry file, a Dart handler without `@function`",
        allowed: false,
        at_deploy: &["missing-entry", "missing-function-annotation"],
        at_run_time: &[],
        shows_as: "a finding saying what to add",
    },
];

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn seccomp_group(name: &str) -> Option<&'static RefusedCalls> {
    let purpose = name.strip_prefix("seccomp: ")?;
    REFUSED.iter().find(|group| group.purpose == purpose)
}

fn capabilities_table() -> String {
    let rule_ids: BTreeSet<&str> = rules::ALL.iter().map(|rule| rule.id).collect();
    let layer_names: BTreeSet<&str> = LAYERS.iter().map(|layer| layer.name).collect();
    let mut named_rules = BTreeSet::new();
    let mut named_run_time = BTreeSet::new();
    let mut table = String::from(
        "| a function… | | refused at deploy by | confined at run time by | how it shows |\n|---|---|---|---|---|\n",
    );
    for capability in CAPABILITIES {
        for id in capability.at_deploy {
            assert!(rule_ids.contains(id), "{:?} names the analyzer rule {id}, which does not exist", capability.what);
            named_rules.insert(*id);
        }
        for name in capability.at_run_time {
            assert!(
                layer_names.contains(name) || seccomp_group(name).is_some(),
                "{:?} names {name}, which is neither a sandbox layer nor a `seccomp: PURPOSE` of seccomp::REFUSED",
                capability.what
            );
            named_run_time.insert(*name);
            if seccomp_group(name).is_some() {
                named_run_time.insert("seccomp"); // the layer, through one of its groups
            }
        }
        let list = |items: &[&str]| {
            if items.is_empty() {
                "—".to_string()
            } else {
                items.iter().map(|item| format!("`{item}`")).collect::<Vec<_>>().join(", ")
            }
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(capability.what),
            if capability.allowed { "**may**" } else { "may not" },
            list(capability.at_deploy),
            list(capability.at_run_time),
            cell(capability.shows_as),
        ));
    }
    let unnamed_rules: Vec<&str> = rule_ids.difference(&named_rules).copied().collect();
    assert!(unnamed_rules.is_empty(), "analyzer rules missing from the capability table: {unnamed_rules:?}");
    let all_run_time: BTreeSet<String> = LAYERS
        .iter()
        .map(|layer| layer.name.to_string())
        .chain(REFUSED.iter().map(|group| format!("seccomp: {}", group.purpose)))
        .collect();
    let named: BTreeSet<String> = named_run_time.iter().map(|name| name.to_string()).collect();
    let unnamed: Vec<&String> = all_run_time.difference(&named).collect();
    assert!(unnamed.is_empty(), "sandbox layers or system-call groups missing from the capability table: {unnamed:?}");
    table
}

fn rules_table() -> String {
    let mut table = String::from("| rule | runtimes | refuses | instead |\n|---|---|---|---|\n");
    for RuleInfo { id, layer, what, instead, .. } in rules::ALL {
        let runtimes = layer.split(" (").next().unwrap_or(layer);
        table.push_str(&format!("| `{id}` | {} | {} | {} |\n", cell(runtimes), cell(what), cell(instead)));
    }
    table
}

fn layers_table() -> String {
    let mut table = String::from("| layer | keeps the function to | a function that tries meets |\n|---|---|---|\n");
    for Layer { name, confines, refusal } in LAYERS {
        table.push_str(&format!("| `{name}` | {} | {} |\n", cell(confines), cell(refusal)));
    }
    table
}

fn system_calls_table() -> String {
    let mut table = String::from("| refused | system calls | why |\n|---|---|---|\n");
    for group in REFUSED {
        let mut calls: Vec<String> =
            group.calls.iter().map(|(name, _)| format!("`{}`", name.strip_prefix("SYS_").unwrap_or(name))).collect();
        if !group.conditional.is_empty() {
            calls.push(group.conditional.to_string());
        }
        table.push_str(&format!("| {} | {} | {} |\n", cell(group.purpose), cell(&calls.join(", ")), cell(group.why)));
    }
    table
}

/// Replaces the text between `<!-- generated: NAME -->` and `<!-- end generated: NAME -->`.
fn fill(page: &str, name: &str, content: &str) -> String {
    let (begin, end) = (format!("<!-- generated: {name} -->\n"), format!("<!-- end generated: {name} -->"));
    let start = page.find(&begin).unwrap_or_else(|| panic!("docs/security.md lacks `{}`", begin.trim())) + begin.len();
    let stop = start + page[start..].find(&end).unwrap_or_else(|| panic!("docs/security.md lacks `{end}`"));
    format!("{}{content}{}", &page[..start], &page[stop..])
}

#[test]
fn security_page_tables_match_the_analyzer_and_the_sandbox() {
    let path = crate::harness::repository().join("docs/security.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let mut rendered = page.clone();
    for (name, table) in [
        ("capabilities", capabilities_table()),
        ("analyzer-rules", rules_table()),
        ("sandbox-layers", layers_table()),
        ("system-calls", system_calls_table()),
    ] {
        rendered = fill(&rendered, name, &table);
    }
    if rendered == page {
        return;
    }
    if std::env::var_os("CONTAINERPUB_UPDATE_DOCS").is_some() {
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    let first = page.lines().zip(rendered.lines()).position(|(a, b)| a != b).unwrap_or(0);
    panic!(
        "docs/security.md drifted from the analyzer's rules or the sandbox's policy at line {} (page: {:?}, code: {:?}): \
         rerun with CONTAINERPUB_UPDATE_DOCS=1 and commit the page",
        first + 1,
        page.lines().nth(first),
        rendered.lines().nth(first)
    );
}
