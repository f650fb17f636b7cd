//! Every shell block of README.md and docs/*.md marked runnable is run, so no documented command
//! can rot. A block is runnable when its fence reads ```` ```sh runnable ````; then:
//!
//! - It runs with `bash -euo pipefail` against a new server started as a newcomer starts it
//!   (`containerpub serve`, built-in defaults, SQLite, no account yet), in a new directory holding
//!   a copy of `examples/`, with a home of its own, `dart_cloud` and `containerpub-analyzer` on
//!   `PATH` and `DART_CLOUD_URL` set. `http://127.0.0.1:8080`, the documented address, is replaced
//!   by the server's.
//! - ```` ```sh runnable continues ```` runs on the previous block's server, directory and home
//!   instead (a login or a deployed function carries over; shell variables do not).
//! - Its standard input holds the password `correct horse battery`, a line for each prompt, as a
//!   reader would type it where `dart_cloud` asks.
//! - It must exit 0 within two minutes. Each `# → TEXT` comment is output it must print, in
//!   order; `…` in TEXT stands for anything.
//! - `needs-postgres` gives the server a function database (`FUNCTION_DATABASE_URL`, a role that
//!   may create roles) on the PostgreSQL `scripts/test` starts; `needs-dart` runs only where `dart`
//!   is on `PATH`. Otherwise the block prints a `skipped:` line.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{postgres_url, repository, role_and_database, skip, workspace_binary, Server};

/// The address the documents use; blocks get the test server's instead.
const DOCUMENTED_ADDRESS: &str = "http://127.0.0.1:8080";
const BLOCK_TIMEOUT: Duration = Duration::from_secs(120);
/// A password, as a reader types it at a prompt.
const PROMPT_ANSWERS: &str = "correct horse battery\n";

#[derive(Debug)]
struct Block {
    file: String,
    line: usize,
    script: String,
    continues: bool,
    needs_postgres: bool,
    needs_dart: bool,
}

impl Block {
    /// The outputs it says it prints: `# → TEXT` comments, in order.
    fn expected(&self) -> Vec<String> {
        self.script
            .lines()
            .filter_map(|line| line.split_once("# → ").map(|(_, expected)| expected.trim().to_string()))
            .collect()
    }
}

/// The runnable blocks of one Markdown file.
fn runnable_blocks(file: &str, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else { continue };
        let words: Vec<&str> = info.split_whitespace().collect();
        let mut script = String::new();
        for (_, body) in lines.by_ref() {
            if body.starts_with("```") {
                break;
            }
            script.push_str(body);
            script.push('\n');
        }
        if !words.contains(&"runnable") {
            continue;
        }
        assert!(
            matches!(words.first(), Some(&"sh") | Some(&"bash")),
            "{file}:{}: only sh and bash blocks can be runnable",
            number + 1
        );
        blocks.push(Block {
            file: file.to_string(),
            line: number + 1,
            script,
            continues: words.contains(&"continues"),
            needs_postgres: words.contains(&"needs-postgres"),
            needs_dart: words.contains(&"needs-dart"),
        });
    }
    blocks
}

/// `expected` pieces (split on `…`) found in `output` in order, after `from`; the end of the match.
fn find_in_order(output: &str, from: usize, expected: &str) -> Option<usize> {
    let mut at = from;
    for piece in expected.split('…').map(str::trim).filter(|piece| !piece.is_empty()) {
        at += output[at..].find(piece)? + piece.len();
    }
    Some(at)
}

/// Where blocks run: a server, a directory with the examples, a home.
struct Place {
    server: Server,
    directory: tempfile::TempDir,
    home: tempfile::TempDir,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A role allowed to create roles, and its database, for one server's functions.
fn function_database(admin_url: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let role = format!("docs_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    role_and_database(admin_url, &role, "CREATEROLE")
}

fn new_place(needs_postgres: bool) -> Option<Place> {
    let mut env = Vec::new();
    if needs_postgres {
        env.push(("FUNCTION_DATABASE_URL", function_database(&postgres_url()?)));
    }
    let directory = tempfile::tempdir().unwrap();
    copy_tree(&repository().join("examples"), &directory.path().join("examples"));
    Some(Place { server: Server::newcomer(&env), directory, home: tempfile::tempdir().unwrap() })
}

fn run(block: &Block, place: &Place) {
    for needed in ["dart_cloud", "containerpub-analyzer"] {
        assert!(workspace_binary(needed).exists(), "{needed} is missing beside containerpub: build the workspace");
    }
    let binaries = workspace_binary("containerpub").parent().expect("a directory").to_path_buf();
    let path = format!("{}:{}", binaries.display(), std::env::var("PATH").unwrap_or_default());
    let script = block.script.replace(DOCUMENTED_ADDRESS, &place.server.base);
    // Its own process group, so a timeout stops whatever the block started, not only bash
    // (a survivor would hold the output pipes open and the test would wait forever).
    let mut child = Command::new("bash")
        .process_group(0)
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(place.directory.path())
        .env("PATH", path)
        .env("HOME", place.home.path())
        .env("XDG_CONFIG_HOME", place.home.path().join(".config"))
        .env("DART_CLOUD_URL", &place.server.base)
        .env_remove("DART_CLOUD_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // What a reader types at password prompts; a block that does not read it leaves it unread.
    let mut stdin = child.stdin.take().unwrap();
    let _ = std::io::Write::write_all(&mut stdin, PROMPT_ANSWERS.repeat(8).as_bytes());
    drop(stdin);
    // Read both pipes while waiting, so a chatty block cannot fill one and stall.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BLOCK_TIMEOUT {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout_reader.join().unwrap(), stderr_reader.join().unwrap());
    let report = |problem: String| -> String {
        let log = place.server.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        format!(
            "{}:{}: {problem}\n--- block ---\n{}--- stdout ---\n{stdout}--- stderr ---\n{stderr}--- server log (tail) ---\n{}",
            block.file,
            block.line,
            block.script,
            tail.join("\n")
        )
    };
    match status {
        None => panic!("{}", report(format!("still running after {BLOCK_TIMEOUT:?}"))),
        Some(status) if !status.success() => panic!("{}", report(format!("exited with {status}"))),
        Some(_) => {}
    }
    let mut at = 0;
    for expected in block.expected() {
        match find_in_order(&stdout, at, &expected) {
            Some(end) => at = end,
            None => panic!("{}", report(format!("the output lacks (in order) `{expected}`"))),
        }
    }
}

#[test]
fn runnable_blocks_of_the_readme_and_guides_work() {
    if !nix::unistd::geteuid().is_root() {
        skip("not root: the documents' examples deploy functions, and the server confines them only as root");
        return;
    }
    let root = repository();
    let mut files = vec![root.join("README.md")];
    let mut guides: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    guides.sort();
    files.extend(guides);
    let has_dart = Command::new("dart").arg("--version").output().is_ok_and(|output| output.status.success());
    let mut ran = 0;
    for file in files {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let mut place: Option<Place> = None;
        for block in runnable_blocks(&name, &text) {
            if block.continues {
                // A block that continues a skipped one is skipped with it.
                let Some(place) = place.as_ref() else {
                    skip(&format!("{name}:{}: continues a block that could not run here", block.line));
                    continue;
                };
                run(&block, place);
                ran += 1;
                continue;
            }
            place = None;
            if block.needs_dart && !has_dart {
                skip(&format!("{name}:{}: dart not on PATH", block.line));
                continue;
            }
            let Some(new) = new_place(block.needs_postgres) else {
                skip(&format!("{name}:{}: needs PostgreSQL", block.line));
                continue;
            };
            run(&block, place.insert(new));
            ran += 1;
        }
    }
    assert!(ran >= 10, "only {ran} runnable blocks ran: are the fences still marked `sh runnable`?");
    // Straight to stderr (the harness does not capture it), so every run shows the count.
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!(
            "docs: {ran} runnable blocks of README.md and docs/ ran and printed what they promise
"
        ),
    );
}

#[test]
fn blocks_and_expectations_are_read_as_documented() {
    let page = "text\n```sh runnable\necho hi   # → h…i\n```\n```sh\nnot runnable\n```\n```sh runnable continues needs-postgres\ntrue\n```\n";
    let blocks = runnable_blocks("page.md", page);
    assert_eq!(blocks.len(), 2);
    assert_eq!((blocks[0].line, blocks[0].continues), (2, false));
    assert_eq!(blocks[0].expected(), ["h…i"]);
    assert!(blocks[1].continues && blocks[1].needs_postgres && !blocks[1].needs_dart);
    assert_eq!(find_in_order("say hello there", 0, "hel…the"), Some(13));
    assert_eq!(find_in_order("there hello", 0, "hel…the"), None, "in order");
}
