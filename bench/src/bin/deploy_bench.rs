//! Deploys with dependencies, through the release server (sandbox on): a Node function whose
//! `package.json` and lockfile bring 2,980 files in `node_modules` (express, axios, lodash,
//! moment, dayjs, zod, uuid), deployed four ways, each timed from the upload to the 201:
//!
//! 1. first install: nothing cached, `npm ci` fetches from the registry (needs the network);
//! 2. **cached install**: another function with the same dependencies, `npm ci` in the builder from
//!    the server's cache, in a namespace with no network;
//! 3. reused: a new version with other code and the same manifests (nothing runs);
//! 4. uploaded: the installed `node_modules` (2,980 files) uploaded with the function, as before.
//!
//! Target: the cached install (2) and the upload (4) deploy in under 1.5 s. Then, for the record,
//! a Python function with `requests` and `pydantic` installed by pip, first and cached.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bench::Gateway;

const TARGET: Duration = Duration::from_millis(1500);

fn fixture(file: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/node-3000-files");
    std::fs::read_to_string(dir.join(file)).expect("the fixture")
}

fn handler(tag: &str) -> String {
    format!(
        "const _ = require('lodash');\nconst express = require('express');\nexports.handler = async () => ({{ tag: '{tag}', lodash: _.VERSION, express: typeof express }});\n"
    )
}

/// `files` plus the tree under `dir` at `prefix`, as a `.tar.gz`; and how many files the tree had.
fn archive_with_tree(files: &[(&str, String)], dir: &Path, prefix: &str) -> (Vec<u8>, usize) {
    let mut entries: Vec<(String, Vec<u8>)> =
        files.iter().map(|(name, contents)| (name.to_string(), contents.clone().into_bytes())).collect();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("the installed tree").flatten() {
            let kind = entry.file_type().expect("a file type");
            let relative = entry.path().strip_prefix(dir).expect("inside").to_path_buf();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let name = Path::new(prefix).join(relative).display().to_string();
                entries.push((name, std::fs::read(entry.path()).expect("a file")));
            }
        }
    }
    let count = entries.len() - files.len();
    (bench::tar_gz_bytes(entries.iter().map(|(name, data)| (name.clone(), data.as_slice()))), count)
}

fn deploy(gateway: &Gateway, name: &str, archive: Vec<u8>) -> (Duration, serde_json::Value) {
    let started = Instant::now();
    let (status, answer) = gateway.deploy_archive(name, archive);
    let took = started.elapsed();
    assert_eq!(status, 201, "{name}: {answer}");
    (took, answer)
}

fn main() {
    let release: PathBuf = std::env::current_exe().expect("this program").parent().expect("its directory").into();
    let gateway = Gateway::start(&release);
    let manifest = fixture("package.json");
    let lockfile = fixture("package-lock.json");
    let with = |tag: &str, manifest: &str| {
        bench::tar_gz(&[("package.json", manifest), ("package-lock.json", &lockfile), ("index.js", &handler(tag))])
    };
    // The same dependencies under another package name: other manifests, so a new install (from
    // the cache) rather than the first one reused.
    let renamed = manifest.replace("\"bench-3000-files\"", "\"bench-3000-files-again\"");
    assert_ne!(renamed, manifest, "the fixture names its package");
    let mut missed = Vec::new();
    println!("\ndeploy-bench: a Node function with 2,980 files of dependencies (sandbox on, release build)");
    let row = |label: &str, took: Duration, answer: &serde_json::Value| {
        let install = &answer["dependencies"];
        let detail = match install.is_object() {
            true => format!(
                "{} {} packages, install {} ms, offline {}, reused {}",
                install["command"].as_str().unwrap_or("?"),
                install["packages"],
                install["install_ms"],
                install["offline"],
                install["reused"]
            ),
            false => "no install".to_string(),
        };
        println!("  {label:<44} {:>7.0} ms   ({detail})", took.as_secs_f64() * 1000.0);
    };

    let (first, answer) = deploy(&gateway, "first", with("first", &manifest));
    row("1. first install (registry)", first, &answer);
    let (cached, answer) = deploy(&gateway, "cached", with("cached", &renamed));
    row("2. cached install (no network)", cached, &answer);
    if answer["dependencies"]["offline"] != true || answer["dependencies"]["reused"] != false {
        missed.push("the cached install did not run offline".to_string());
    }
    if cached > TARGET {
        missed.push(format!("cached install deploy {} ms > {} ms", cached.as_millis(), TARGET.as_millis()));
    }
    let (reused, answer) = deploy(&gateway, "cached", with("reused", &renamed));
    row("3. same manifests, new code (reused)", reused, &answer);

    // The tree npm installed, uploaded with the function.
    let installs = gateway.data_dir().join("state/deps");
    let tree = std::fs::read_dir(&installs)
        .expect("the installs")
        .flatten()
        .map(|entry| entry.path().join("node_modules"))
        .find(|path| path.join("express").is_dir())
        .expect("the installed tree");
    let files = [("package.json", manifest.clone()), ("index.js", handler("uploaded"))];
    let (archive, count) = archive_with_tree(&files, &tree, "node_modules");
    let (uploaded, answer) = deploy(&gateway, "uploaded", archive);
    row(&format!("4. node_modules uploaded ({count} files)"), uploaded, &answer);
    if uploaded > TARGET {
        missed.push(format!("uploaded node_modules deploy {} ms > {} ms", uploaded.as_millis(), TARGET.as_millis()));
    }

    // Python: requests and pydantic (a native wheel), first from PyPI, then (another order, so
    // other manifests) from the function's wheelhouse.
    let main = "import requests, pydantic\ndef handler(body):\n    return {'requests': requests.__version__}\n";
    let (took, answer) = deploy(
        &gateway,
        "python",
        bench::tar_gz(&[("main.py", main), ("requirements.txt", "requests==2.32.3\npydantic==2.10.6\n")]),
    );
    row("5. Python requests + pydantic (PyPI)", took, &answer);
    let (took, answer) = deploy(
        &gateway,
        "python",
        bench::tar_gz(&[("main.py", main), ("requirements.txt", "pydantic==2.10.6\nrequests==2.32.3\n")]),
    );
    row("6. the same, cached (no network)", took, &answer);
    if missed.is_empty() {
        println!("deploy-bench: targets met (cached install and uploaded tree under {} ms)", TARGET.as_millis());
    } else {
        println!("deploy-bench: MISSED: {}", missed.join("; "));
        drop(gateway);
        std::process::exit(1);
    }
}
