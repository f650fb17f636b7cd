//! The hostile-tenant suite: a tenant deploys functions the analyzer accepts that each try a way
//! out of the sandbox, by several routes (`hostile/main.py`, `hostile/index.js`); every route must
//! fail, and a second tenant's function beside them keeps answering as deployed.
//!
//! Egress is checked against a test host in a network namespace this test creates itself (a veth
//! pair on a 198.18.0.0/15 benchmarking address), never against an outside address.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_stores;
use crate::harness::{archive, skip, Backend, Server};
use crate::test_host::TestHost;

const PROBE_PY: &str = include_str!("hostile/main.py");
const PROBE_JS: &str = include_str!("hostile/index.js");
const VICTIM_PY: &str = r#"
import os
def handler(body):
    with open("secret.txt") as secret:
        return {"secret": secret.read(), "uid": os.getuid()}
"#;

/// Where the first function of a fresh server runs: `[sandbox] uid_base` + slot 0.
const FIRST_UID: u64 = 200_000;

fn sandbox_runs_here() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip("not root: the sandbox needs root (the refusal to start without it is tested by sandbox::without_root_the_server_refuses_to_start_unconfined)");
    false
}

fn probe(server: &Server, token: &str, function: &str, body: Value) -> Value {
    let response = server.post_json(&format!("/fn/{function}"), Some(token), &body);
    let status = response.status();
    let text = response.text().unwrap();
    assert_eq!(status, 200, "{function} {body}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Asserts that an `attempt(…)` result failed, with `errno` when given.
#[track_caller]
fn refused(result: &Value, what: &str, errno: Option<i64>) {
    assert_eq!(result["ok"], false, "{what} should have failed: {result}");
    if let Some(errno) = errno {
        assert_eq!(result["errno"], errno, "{what}: {result}");
    }
}

#[test]
fn hostile_tenants_stay_inside_their_sandbox() {
    if !sandbox_runs_here() {
        return;
    }
    let server = Server::start(Backend::Sqlite).unwrap();
    let test_host = TestHost::start();
    let host_listener = AnsweringListener::start();

    // A tenant minding her own business, and her file on the host.
    let alice = server.user("alice@example.com");
    let secret = format!("alice-private-{}", std::process::id());
    let victim = archive(&[("main.py", VICTIM_PY), ("secret.txt", &secret)]);
    assert_eq!(server.deploy(&alice, "victim", victim, &[]).0, 201);
    let victim_file = find_file(&server.data_dir.path().join("functions"), "secret.txt").expect("the victim's tree");
    let victim_answer = probe(&server, &alice, "victim", json!({}));
    assert_eq!(victim_answer["secret"], secret);

    // The hostile tenant's functions pass the analyzer.
    let mallory = server.user("mallory@example.com");
    for (name, files, fields) in [
        ("probe", vec![("main.py", PROBE_PY)], vec![("tool", "program")]),
        ("probe-offline", vec![("main.py", PROBE_PY)], vec![("network", "none")]),
        ("probe-offline-2", vec![("main.py", PROBE_PY)], vec![("network", "none")]),
        ("probe-node", vec![("index.js", PROBE_JS)], vec![]),
    ] {
        let (program, fields): (Vec<_>, Vec<_>) = fields.into_iter().partition(|(key, _)| *key == "tool");
        let package =
            if program.is_empty() { archive(&files) } else { archive_with_program(&files, "tool", "/bin/true") };
        let (status, body) = server.deploy(&mallory, name, package, &fields);
        assert_eq!(status, 201, "{name} must deploy (the analyzer accepts it): {body}");
    }

    // 1. Own identity: an unprivileged uid of its own, no capabilities, no_new_privs, seccomp.
    let me = probe(&server, &mallory, "probe", json!({ "probe": "identity" }));
    let uid = me["uid"].as_u64().unwrap();
    assert!(uid >= FIRST_UID, "{me}");
    assert_eq!((me["euid"].as_u64(), me["gid"].as_u64()), (Some(uid), Some(uid)), "{me}");
    assert_eq!(me["groups"], json!([]));
    for capability in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(me["status"][capability], "0000000000000000", "{capability}: {me}");
    }
    assert_eq!((me["status"]["NoNewPrivs"].as_str(), me["status"]["Seccomp"].as_str()), (Some("1"), Some("2")));
    assert_eq!((me["cwd"].as_str(), me["home"].as_str()), (Some("/fn"), Some("/fn")));
    assert_eq!((me["pid"].as_u64(), me["hostname"].as_str()), (Some(1), Some("function")));
    assert!(me["passwd"]["value"].as_str().unwrap().contains(&format!(":{uid}:{uid}:")), "{me}");
    let offline_me = probe(&server, &mallory, "probe-offline", json!({ "probe": "identity" }));
    let other_uids = [victim_answer["uid"].as_u64().unwrap(), offline_me["uid"].as_u64().unwrap()];
    assert!(!other_uids.contains(&uid) && other_uids[0] != other_uids[1], "every function has its own uid");
    // Its own namespaces: none of them is the host's, and no two functions share a network.
    for kind in ["net", "pid", "mnt", "ipc", "uts"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap().display().to_string();
        assert_ne!(me["namespaces"][kind], host.as_str(), "the worker is in the host's {kind} namespace");
    }
    assert_ne!(me["namespaces"]["net"], offline_me["namespaces"]["net"]);
    // Less of the host in view: what Docker masks, and the kernel's command line, configuration and
    // key users, read empty or not at all; the worker's cgroup is the root of its own namespace
    // (not the server's path, which names its pid).
    let host = probe(&server, &mallory, "probe", json!({ "probe": "host_info" }));
    for (path, read) in host["files"].as_object().unwrap() {
        let leaked = read["ok"] == true && read["value"].as_str().is_some_and(|value| value.len() > 3);
        assert!(!leaked, "{path} is readable: {read}");
    }
    for (path, listed) in host["dirs"].as_object().unwrap() {
        assert!(listed["ok"] == false || listed["value"] == "[]", "{path} is listed: {listed}");
    }
    let cgroup = host["cgroup"]["value"].as_str().unwrap_or_default();
    assert!(!cgroup.contains("containerpub"), "the server's cgroup path is in view: {cgroup}");
    // A shipped program copied into a memfd does not run from there: memfds are never executable.
    let memfd = probe(&server, &mallory, "probe", json!({ "probe": "memfd_exec", "program": "/fn/tool" }));
    refused(&memfd["exec"], "exec of a program from a memfd", Some(13));
    refused(&memfd["create_exec"], "an executable memfd", Some(13));
    // `none` means alone: two such functions do not share a namespace, and one's sockets are not
    // in the other's view.
    let offline_other = probe(&server, &mallory, "probe-offline-2", json!({ "probe": "identity" }));
    assert_ne!(
        offline_me["namespaces"]["net"], offline_other["namespaces"]["net"],
        "two `none` functions share a network"
    );
    let holding = probe(&server, &mallory, "probe-offline", json!({ "probe": "udp", "hold": true }));
    assert_eq!(holding["uids"], json!([offline_me["uid"]]), "{holding}");
    let neighbour = probe(&server, &mallory, "probe-offline-2", json!({ "probe": "udp" }));
    assert_eq!(neighbour["uids"], json!([]), "another function's socket is in view: {neighbour}");

    // Its pipes are its own uid's (mode 0600, so no other uid's), and open again by path, which
    // is how dart:io reaches them; no other process's descriptors are in its view.
    let pipes = probe(&server, &mallory, "probe", json!({ "probe": "pipes" }));
    for fd in ["1", "2", "3", "4"] {
        assert_eq!(pipes["owners"][fd], json!({ "uid": uid, "mode": 0o600 }), "fd {fd}: {pipes}");
    }
    assert_eq!(
        (pipes["reopen_request"]["ok"].as_bool(), pipes["reopen_reply"]["ok"].as_bool()),
        (Some(true), Some(true)),
        "{pipes}"
    );
    assert_eq!(pipes["processes"], json!([1]), "{pipes}");

    // 2. Own file system view: nothing of the host, the server or the other tenant.
    let data_dir = server.data_dir.path();
    let forbidden: Vec<String> = [
        data_dir.join("containerpub.db"),
        data_dir.join("test.toml"),
        victim_file.clone(),
        PathBuf::from(env!("CARGO_BIN_EXE_containerpub")),
        PathBuf::from("/etc/shadow"),
    ]
    .iter()
    .map(|path| path.display().to_string())
    .collect();
    let seen = probe(&server, &mallory, "probe", json!({ "probe": "files", "paths": forbidden }));
    for path in &forbidden {
        let routes = &seen["reads"][path];
        for route in ["direct", "proc_self_root", "proc_1_root", "dot_dot_walk", "tmp_symlink"] {
            refused(&routes[route], &format!("reading {path} through {route}"), None);
        }
        assert_eq!(routes["exists"], false, "{path} is visible");
    }
    for target in ["/fn/owned", "/owned", "/etc/owned", "/usr/owned"] {
        refused(&seen["writes"][target], &format!("writing {target}"), None);
    }
    assert_eq!(seen["writes"]["/tmp/ok"]["ok"], true, "the private /tmp is writable: {seen}");
    let allowed: BTreeSet<&str> = [
        "bin",
        "containerpub",
        "dev",
        "etc",
        "fn",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        // Where installed Node packages are bound (docs/dependencies.md): empty without them.
        "node_modules",
        "proc",
        "root",
        "sbin",
        "tmp",
        "usr",
    ]
    .into();
    for entry in seen["root"].as_array().unwrap() {
        assert!(
            allowed.contains(entry.as_str().unwrap()),
            "unexpected /{entry} in the worker's root: {}",
            seen["root"]
        );
    }
    assert!(!seen["etc"].as_array().unwrap().iter().any(|entry| entry == "shadow" || entry == "containerpub"));
    for (program, present) in seen["programs"].as_object().unwrap() {
        assert_eq!(present, false, "{program} is in the worker's view");
    }

    // 3. No processes: threads work; every way of starting a process fails with an ordinary error.
    let started = probe(&server, &mallory, "probe", json!({ "probe": "processes" }));
    assert_eq!(started["thread"], true, "threads must keep working: {started}");
    for route in [
        "os_fork",
        "subprocess_shell",
        "subprocess_self",
        "posix_spawn_self",
        "ctypes_fork",
        "ctypes_vfork",
        "ctypes_clone",
    ] {
        refused(&started[route], route, Some(1));
    }
    refused(&started["ctypes_clone3"], "clone3", Some(38));
    refused(&started["exec_shell"], "exec of /bin/sh", Some(2));
    let health: Value = server.health();
    if health["sandbox"]["layers"].as_array().unwrap().iter().any(|layer| layer == "exec-only-runtime") {
        refused(&started["exec_shipped"], "exec of a program in the function's own archive", Some(13));
    } else {
        skip("no Landlock on this kernel: a program the tenant ships can be executed (as its uid, in its sandbox)");
    }
    let system = &started["libc_system"];
    assert!(system["ok"] == false || system["value"] != "0", "system(\"id\") ran: {system}");

    // 4. The system-call filter: each of these is allowed to some unprivileged process elsewhere.
    let calls = probe(&server, &mallory, "probe", json!({ "probe": "syscalls" }));
    for (name, result) in calls.as_object().unwrap() {
        refused(result, name, Some(1));
    }

    // 5. Own pid namespace: the server and the other tenant's workers cannot be seen or signalled.
    let victim_pid = worker_pids_of(&victim_file).first().copied().unwrap_or(999_999);
    let signals = probe(
        &server,
        &mallory,
        "probe",
        json!({ "probe": "signals", "server_pid": server.pid(), "victim_pid": victim_pid }),
    );
    assert_eq!(signals["proc_pids"], json!([1]), "{signals}");
    for route in ["kill_server_0", "kill_server_term", "kill_victim", "kill_everyone"] {
        refused(&signals[route], route, Some(3));
    }
    refused(&signals["server_environ"], "reading the server's environment", None);
    refused(&signals["server_root"], "listing the server's root", None);

    // Own ipc namespace: a queue one function creates is invisible to another and to the host.
    let key = 0x5eed_0000 + (std::process::id() % 0xffff) as i64;
    let created = probe(&server, &mallory, "probe", json!({ "probe": "ipc", "key": key, "create": true }));
    assert_eq!(created["queue"]["ok"], true, "{created}");
    let elsewhere = probe(&server, &mallory, "probe-offline", json!({ "probe": "ipc", "key": key }));
    refused(&elsewhere["queue"], "finding another function's message queue", Some(2));
    let host_queues = std::fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default();
    assert!(!host_queues.lines().any(|line| line.split_whitespace().next() == Some(&key.to_string())));

    // 6. Network: egress reaches the outside (the test host), never the host itself or metadata.
    let mut targets = serde_json::Map::new();
    targets.insert("gateway".into(), json!(["127.0.0.1", server.port()]));
    targets.insert("metadata".into(), json!(["169.254.169.254", 80]));
    for (index, address) in host_addresses().iter().enumerate() {
        targets.insert(format!("host_{index}_{address}"), json!([address.to_string(), host_listener.port]));
    }
    targets.insert("test_host".into(), json!([test_host.address.to_string(), test_host.port]));
    targets.insert("test_host_udp".into(), json!([test_host.address.to_string(), test_host.port, "udp"]));
    let body = json!({ "probe": "network", "targets": targets });
    let online = probe(&server, &mallory, "probe", body.clone());
    assert!(online["test_host"]["value"].as_str().unwrap_or("").contains("test-host"), "egress works: {online}");
    assert!(online["test_host_udp"]["value"].as_str().unwrap_or("").contains("pong"), "UDP egress works: {online}");
    // 127.0.0.1 is the function namespace's own loopback, where nothing listens; every address
    // of the host and the metadata service are refused on the way, at once (a TCP reset).
    for name in targets.keys().filter(|name| !name.starts_with("test_host")) {
        refused(&online[name], &format!("egress to {name}"), Some(111));
    }
    let interfaces: Vec<String> =
        serde_json::from_str(&online["interfaces"]["value"].as_str().unwrap().replace('\'', "\"")).unwrap();
    assert_eq!(interfaces, ["eth0", "lo"], "the function's own namespace has loopback and its link only");
    for route in ["raw_icmp", "packet", "netlink", "unix_abstract", "listen"] {
        refused(&online[route], route, Some(1));
    }
    let offline = probe(&server, &mallory, "probe-offline", body);
    for name in targets.keys() {
        refused(&offline[name], &format!("{name} with network none"), None);
    }
    assert_eq!(offline["interfaces"]["value"], "['lo']", "{offline}");
    let info: Value = server.get("/api/functions/probe-offline", Some(&mallory)).json().unwrap();
    assert_eq!(info["network"], "none", "{info}");
    let info: Value = server.get("/api/functions/probe", Some(&mallory)).json().unwrap();
    assert_eq!(info["network"], "egress", "{info}");

    // The same categories from Node, through its own routes.
    let node = probe(
        &server,
        &mallory,
        "probe-node",
        json!({ "server_pid": server.pid(), "gateway_port": server.port(), "paths": forbidden }),
    );
    assert!(node["uid"].as_u64().unwrap() >= FIRST_UID && node["uid"] != json!(uid), "{node}");
    assert_eq!(node["pid"], 1);
    assert_ne!(node["net_namespace"], me["namespaces"]["net"], "two egress functions share a network namespace");
    for route in ["exec_sync", "spawn_sync_self", "spawn_binding", "fork_worker", "kill_server", "write_fn"] {
        assert_eq!(node[route]["ok"], false, "node {route} should have failed: {}", node[route]);
    }
    for path in &forbidden {
        for route in ["direct", "proc_self_root", "dot_dot_walk"] {
            assert_eq!(node["reads"][path][route]["ok"], false, "node read of {path} via {route}: {node}");
        }
    }
    assert_eq!(
        (node["gateway"]["code"].as_str(), node["metadata"]["code"].as_str()),
        (Some("ECONNREFUSED"), Some("ECONNREFUSED"))
    );
    assert_eq!(node["listen"]["code"], "EPERM");

    // A private /tmp bigger than the worker's memory is not to be had.
    let filled = server.post_json("/fn/probe", Some(&mallory), &json!({ "probe": "fill_tmp", "megabytes": 400 }));
    let status = filled.status();
    let filled: Value = filled.json().unwrap_or(Value::Null);
    assert!(status != 200 || filled["fill"]["ok"] == false, "400 MB went into /tmp: {status} {filled}");

    // The other tenant is untouched, and so is the server.
    assert_eq!(probe(&server, &alice, "victim", json!({})), victim_answer);
    assert_eq!(std::fs::read_to_string(&victim_file).unwrap(), secret);
    assert_eq!(server.get("/healthz", None).status(), 200);
}

/// The examples users start from run as they are inside the sandbox.
#[test]
fn the_examples_run_inside_the_sandbox() {
    if !sandbox_runs_here() {
        return;
    }
    let server = Server::start(Backend::Sqlite).unwrap();
    let ada = server.user("ada@example.com");
    // Each example, what it is sent, the statuses it may answer and a text its answer holds.
    let cases: [(&str, Value, &[u16], &str); 4] = [
        ("simple", json!({ "name": "Ada" }), &[200], "Ada"),
        ("envelope", json!({ "name": "Ada" }), &[201], "Ada"),
        // The database examples say plainly that this server has no function database.
        ("database", json!({}), &[503], "no function database is configured"),
        // 127.0.0.1 is the function's own loopback: refused at once, answered by the function.
        ("http", json!({ "url": "http://127.0.0.1:9/" }), &[502], "unreachable"),
    ];
    for runtime in ["node", "python"] {
        for (kind, body, expected, text_holds) in &cases {
            let name = format!("{runtime}-{kind}");
            let (status, deployed) = server.deploy(
                &ada,
                &name,
                crate::harness::example(&format!("examples/{runtime}/{kind}-function")),
                &[],
            );
            assert_eq!(status, 201, "{name}: {deployed}");
            let response = server.post_json(&format!("/fn/{name}"), Some(&ada), body);
            let status = response.status().as_u16();
            let text = response.text().unwrap();
            assert!(expected.contains(&status), "{name} answered {status}: {text}");
            assert!(text.contains(text_holds), "{name}: {text}");
        }
    }
}

/// A function's uid comes from its stored slot: the same after a restart, distinct per function.
fn uids_are_allocated_stored_and_stable(server: Server) {
    if !sandbox_runs_here() {
        return;
    }
    let health: Value = server.health();
    assert_eq!(health["sandbox"]["mode"], "on", "{health}");
    let layers: Vec<&str> =
        health["sandbox"]["layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    for layer in ["own-uid", "read-only-root", "pid-namespace", "network-policy", "no-capabilities", "seccomp"] {
        assert!(layers.contains(&layer), "{layer} missing from {layers:?}");
    }
    let ada = server.user("ada@example.com");
    let whoami = "import os\ndef handler(body):\n    return {'uid': os.getuid()}\n";
    for name in ["first", "second"] {
        assert_eq!(server.deploy(&ada, name, archive(&[("main.py", whoami)]), &[]).0, 201);
    }
    let uids = |server: &Server, token: &str| -> Vec<u64> {
        ["first", "second"].iter().map(|name| probe(server, token, name, json!({}))["uid"].as_u64().unwrap()).collect()
    };
    assert_eq!(uids(&server, &ada), vec![FIRST_UID, FIRST_UID + 1]);
    // A new version keeps the function's uid.
    assert_eq!(server.deploy(&ada, "first", archive(&[("main.py", &format!("{whoami}# v2\n"))]), &[]).0, 201);
    let restarted = Server::start_on(server.data_dir.clone(), server.database_url.clone());
    drop(server);
    let token = restarted.login("ada@example.com");
    assert_eq!(uids(&restarted, &token), vec![FIRST_UID, FIRST_UID + 1], "uids survive a restart");
    // A bad network policy is refused before anything is stored.
    let (status, body) = restarted.deploy(&token, "third", archive(&[("main.py", whoami)]), &[("network", "host")]);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("\"egress\" or \"none\""), "{body}");
}

both_stores!(uids_are_allocated_stored_and_stable);

#[test]
fn without_root_the_server_refuses_to_start_unconfined() {
    if !nix::unistd::geteuid().is_root() {
        skip("not root: cannot start the server as another user to see it refuse");
        return;
    }
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_containerpub"));
    // setpriv execs the server itself (runuser would stay in between as its parent).
    let as_nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    let can_run = Command::new("setpriv").args(as_nobody).args(["test", "-x"]).arg(&binary).status();
    if !can_run.is_ok_and(|status| status.success()) {
        skip("the user nobody cannot run the server binary here (its directory is private)");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    nix::unistd::chown(data.path(), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let run_as_nobody = |env: &[(&str, &str)], port: u16| {
        Command::new("setpriv")
            .args(as_nobody)
            .arg(&binary)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data.path())
            .env("JWT_SECRET", crate::harness::SECRET)
            .env("CONTAINERPUB_WORKER_EXEC", binary.with_file_name("containerpub-worker-exec"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = run_as_nobody(&[], free_port()).wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "an unconfinable server must not start: {said}");
    assert!(said.contains("needs root") && said.contains("mode = \"off\""), "{said}");

    // Turned off explicitly, it starts, warns and says so in /healthz.
    let port = free_port();
    let mut unconfined = run_as_nobody(&[("CONTAINERPUB_SANDBOX", "off")], port);
    let health = wait_for_health(port, &mut unconfined);
    let _ = unconfined.kill();
    let output = unconfined.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(health["sandbox"]["mode"], "off", "{health}");
    assert!(log.contains("unconfined"), "the server warns that functions run unconfined: {log}");
}

/// Descriptors the server was started with (a root-only file on fd 7 and fd 250, as a careless
/// service manager or shell might pass them) are closed before any function's code runs.
#[test]
fn descriptors_the_server_inherited_never_reach_a_worker() {
    if !sandbox_runs_here() {
        return;
    }
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let secret_dir = tempfile::tempdir().unwrap();
    let secret_path = secret_dir.path().join("root-only");
    std::fs::write(&secret_path, "the server's secret").unwrap();
    std::fs::set_permissions(&secret_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let secret = std::fs::File::open(&secret_path).unwrap();
    let raw = secret.as_raw_fd();
    let (data, port) = (tempfile::tempdir().unwrap(), free_port());
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_containerpub"));
    let mut command = Command::new(&binary);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data.path())
        .env("JWT_SECRET", crate::harness::SECRET)
        .env("CONTAINERPUB_WORKER_EXEC", binary.with_file_name("containerpub-worker-exec"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; the copies it makes are not close-on-exec, and they are
    // the child's to keep (forgotten, never closed here).
    unsafe {
        command.pre_exec(move || {
            for target in [7, 250] {
                let source = std::os::fd::BorrowedFd::borrow_raw(raw);
                std::mem::forget(nix::unistd::dup2_raw(source, target)?);
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    wait_for_health(port, &mut child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let credentials = json!({ "email": "admin@example.com", "password": "correct horse battery" });
    let login: Value = client.post(format!("{base}/api/auth/login")).json(&credentials).send().unwrap().json().unwrap();
    let token = login["token"].as_str().unwrap().to_string();
    let form = reqwest::blocking::multipart::Form::new().text("name", "probe").part(
        "archive",
        reqwest::blocking::multipart::Part::bytes(archive(&[("main.py", PROBE_PY)])).file_name("f.tar.gz"),
    );
    let deployed =
        client.post(format!("{base}/api/functions/deploy")).bearer_auth(&token).multipart(form).send().unwrap();
    assert_eq!(deployed.status(), 201, "{}", deployed.text().unwrap_or_default());
    let seen: Value = client
        .post(format!("{base}/fn/probe"))
        .bearer_auth(&token)
        .json(&json!({ "probe": "descriptors", "fds": [7, 250] }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // The runtime opens descriptors of its own from 5 up (fd 7 may be one of them), but none is
    // the server's file, and nothing reads its contents.
    let targets = seen["targets"].as_object().unwrap();
    assert!(targets.values().all(|target| !target.as_str().unwrap().contains("root-only")), "{seen}");
    assert_eq!(seen["reads"]["250"]["errno"], 9, "EBADF: {seen}");
    for fd in ["7", "250"] {
        assert!(!seen["reads"][fd].to_string().contains("secret"), "fd {fd} read the server's file: {seen}");
    }
}

fn wait_for_health(port: u16, child: &mut Child) -> Value {
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    loop {
        if client.get(format!("http://127.0.0.1:{port}/healthz")).send().is_ok() {
            // The details are for administrators: the first account of this fresh server is one.
            let base = format!("http://127.0.0.1:{port}");
            let credentials = serde_json::json!({ "email": "admin@example.com", "password": "correct horse battery" });
            client.post(format!("{base}/api/auth/register")).json(&credentials).send().unwrap();
            let login: Value =
                client.post(format!("{base}/api/auth/login")).json(&credentials).send().unwrap().json().unwrap();
            let token = login["token"].as_str().unwrap();
            return client.get(format!("{base}/healthz")).bearer_auth(token).send().unwrap().json().unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            panic!("the server exited with {status}: {stderr}");
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not answer within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Like `harness::archive`, plus an executable `name` holding the host program at `program`.
fn archive_with_program(files: &[(&str, &str)], name: &str, program: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let executable = std::fs::read(program).unwrap();
    let mut entries: Vec<(&str, &[u8], u32)> =
        files.iter().map(|(path, text)| (*path, text.as_bytes(), 0o644)).collect();
    entries.push((name, &executable, 0o755));
    for (path, contents, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, contents).unwrap();
    }
    crate::harness::gzip(&builder.into_inner().unwrap())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The first file called `name` under `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if entry.file_type().ok()?.is_dir() {
                pending.push(path);
            } else if entry.file_name() == name {
                return Some(path);
            }
        }
    }
    None
}

/// Host pids of sandboxed workers whose `/fn` is `file`'s directory (read from their mountinfo).
fn worker_pids_of(file: &Path) -> Vec<i32> {
    let function_dir = file.parent().unwrap().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .is_ok_and(|mounts| mounts.lines().any(|line| line.contains(" /fn ") && line.contains(&function_dir)))
        })
        .collect()
}

/// This machine's IPv4 addresses other than loopback's.
fn host_addresses() -> Vec<Ipv4Addr> {
    let output = Command::new("ip").args(["-o", "-4", "addr", "show"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().skip_while(|word| *word != "inet").nth(1))
        .filter_map(|cidr| cidr.split('/').next()?.parse::<Ipv4Addr>().ok())
        .filter(|address| !address.is_loopback())
        .collect()
}

/// A listener on every host address that answers a line, so a connection that got through shows.
struct AnsweringListener {
    port: u16,
}

impl AnsweringListener {
    fn start() -> Self {
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nhost-listener");
            }
        });
        Self { port }
    }
}
