//! list, info, versions, rollback, delete.

use std::io::{BufRead, IsTerminal, Write};

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Api;
use crate::output::Output;

pub fn list(api: &Api, output: &Output) -> anyhow::Result<()> {
    let listed = api.json(api.authed(Method::GET, "/api/functions")?)?;
    let mut rows = listed["functions"].as_array().cloned().unwrap_or_default();
    // Absolute URLs, as `deploy` and `info` print them: ready to paste.
    for row in &mut rows {
        if let Some(path) = row["url"].as_str().map(str::to_string) {
            row["url"] = Value::from(api.url(&path));
        }
    }
    if rows.is_empty() && !output.json() {
        output.note("No functions yet: dart_cloud deploy DIR");
        return Ok(());
    }
    output.table(&["name", "active_version", "runtime", "public", "url"], &rows);
    Ok(())
}

pub fn info(api: &Api, output: &Output, name: &str) -> anyhow::Result<()> {
    let function = api.json(api.authed(Method::GET, &format!("/api/functions/{name}"))?)?;
    if output.json() {
        output.line(&function);
        return Ok(());
    }
    for key in ["name", "id", "active_version", "runtime", "entry_mode", "public", "network"] {
        println!("{key:<15} {}", plain(&function[key]));
    }
    if let Some(entry) = function["entry"].as_object() {
        let field = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or("?");
        println!("{:<15} {}:{}", "entry", field("file"), field("function"));
        println!("{:<15} {}", "entry_reason", field("reason"));
        if let Some(shape) = entry.get("shape").and_then(Value::as_str) {
            let why =
                entry.get("shape_reason").and_then(Value::as_str).map(|why| format!(" ({why})")).unwrap_or_default();
            println!("{:<15} {shape}{why}", "shape");
        }
    }
    if let Some(build) = function["build"].as_object() {
        let number = |key: &str| build.get(key).and_then(Value::as_u64).unwrap_or(0);
        println!(
            "{:<15} compiled to a native executable ({}; resolved in {} ms, compiled in {} ms)",
            "build",
            build.get("sdk").and_then(Value::as_str).unwrap_or("?"),
            number("resolve_ms"),
            number("compile_ms")
        );
    }
    if let Some(install) = function["dependencies"].as_object() {
        println!("{:<15} {}", "dependencies", describe_install(install));
    }
    println!("{:<15} {}", "url", api.url(function["url"].as_str().unwrap_or("")));
    if let Some(pool) = function["pool"].as_object() {
        let pool: Vec<String> = pool.iter().map(|(key, value)| format!("{key} {value}")).collect();
        println!("{:<15} {}", "pool", pool.join(", "));
    }
    Ok(())
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn versions(api: &Api, output: &Output, name: &str) -> anyhow::Result<()> {
    let listed = api.json(api.authed(Method::GET, &format!("/api/functions/{name}/versions"))?)?;
    let rows: Vec<Value> = listed["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut version| {
            version["sha256"] =
                Value::from(version["sha256"].as_str().unwrap_or("").chars().take(12).collect::<String>());
            version
        })
        .collect();
    output.table(&["version", "active", "runtime", "entry_mode", "sha256", "created_at"], &rows);
    Ok(())
}

pub fn rollback(api: &Api, output: &Output, name: &str, version: i64) -> anyhow::Result<()> {
    let answer = api.json(
        api.authed(Method::POST, &format!("/api/functions/{name}/rollback"))?.json(&json!({ "version": version })),
    )?;
    if output.json() {
        output.line(&answer);
    } else {
        output.note(&format!("{name} is at version {version}"));
    }
    Ok(())
}

pub fn delete(api: &Api, output: &Output, name: &str, yes: bool) -> anyhow::Result<()> {
    if !yes {
        let stdin = std::io::stdin();
        anyhow::ensure!(stdin.is_terminal(), "deleting {name} needs --yes when not asked on a terminal");
        eprint!("Delete {name}, all its versions and logs? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            output.note("Nothing deleted");
            return Ok(());
        }
    }
    api.json(api.authed(Method::DELETE, &format!("/api/functions/{name}"))?)?;
    output.note(&format!("Deleted {name}"));
    Ok(())
}

/// What installing a version's dependencies did, in a line: the command, how many packages,
/// how long, and whether a registry was reached.
pub(crate) fn describe_install(install: &serde_json::Map<String, Value>) -> String {
    let command = install.get("command").and_then(Value::as_str).unwrap_or("install");
    let packages = install.get("packages").and_then(Value::as_u64).unwrap_or(0);
    let flag = |key: &str| install.get(key).and_then(Value::as_bool) == Some(true);
    if flag("reused") {
        return format!("{command}: {packages} packages, reused (installed earlier for the same manifests)");
    }
    let took = install.get("install_ms").and_then(Value::as_u64).unwrap_or(0);
    let source =
        if flag("offline") { "from the server's cache, no registry reached" } else { "fetched from the registry" };
    format!("{command}: {packages} packages in {took} ms, {source}")
}
