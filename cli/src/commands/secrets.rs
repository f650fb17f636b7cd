//! `secrets`: set, list and unset a function's secrets. Values come from standard input or a
//! hidden prompt, never from arguments.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Api;
use crate::output::Output;

pub fn set(api: &Api, output: &Output, function: &str, name: &str) -> anyhow::Result<()> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Value of {name}: ")).context("cannot read the value")?
    } else {
        let mut value = String::new();
        std::io::stdin().lock().read_line(&mut value)?;
        value.trim_end_matches(['\r', '\n']).to_string()
    };
    anyhow::ensure!(!value.is_empty(), "no value on standard input (echo VALUE | dart_cloud secrets set FN NAME)");
    let path = format!("/api/functions/{function}/secrets/{name}");
    let answer = api.json(api.authed(Method::PUT, &path)?.json(&json!({ "value": value })))?;
    if output.json() {
        output.line(&answer);
    } else {
        let restarted = if answer["workers_restarted"].as_bool() == Some(true) {
            "; its workers restarted with it"
        } else {
            "; the next deploy gets it"
        };
        output.note(&format!("Secret {name} set on {function}{restarted}"));
    }
    Ok(())
}

pub fn list(api: &Api, output: &Output, function: &str) -> anyhow::Result<()> {
    let listed = api.json(api.authed(Method::GET, &format!("/api/functions/{function}/secrets"))?)?;
    let rows: Vec<Value> = listed["secrets"].as_array().cloned().unwrap_or_default();
    output.table(&["name", "created_at", "updated_at"], &rows);
    Ok(())
}

pub fn unset(api: &Api, output: &Output, function: &str, name: &str) -> anyhow::Result<()> {
    api.json(api.authed(Method::DELETE, &format!("/api/functions/{function}/secrets/{name}"))?)?;
    output.note(&format!("Secret {name} removed from {function}"));
    Ok(())
}
