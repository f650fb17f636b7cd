//! `admin`: accounts and invitations, for the server's administrators.

use std::io::BufRead;

use reqwest::Method;
use serde_json::{json, Value};

use super::account::duration_seconds;
use crate::client::Api;
use crate::output::Output;

pub fn list_users(api: &Api, output: &Output) -> anyhow::Result<()> {
    let users = api.json(api.authed(Method::GET, "/api/admin/users")?)?;
    let rows: Vec<Value> = users["users"].as_array().cloned().unwrap_or_default();
    output.table(&["id", "email", "admin", "disabled_at", "created_at"], &rows);
    Ok(())
}

pub fn create_user(api: &Api, output: &Output, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let mut request = json!({ "email": email });
    if password_stdin {
        let mut password = String::new();
        std::io::stdin().lock().read_line(&mut password)?;
        request["password"] = Value::from(password.trim_end_matches(['\r', '\n']));
    }
    let created = api.json(api.authed(Method::POST, "/api/admin/users")?.json(&request))?;
    if output.json() {
        output.line(&created);
    } else {
        output.note(&format!("Account {email} created ({})", created["id"].as_str().unwrap_or("?")));
        if let Some(password) = created["password"].as_str() {
            println!("{password}");
            output.note("That is its password: hand it over now, it is not shown again.");
        }
    }
    Ok(())
}

pub fn set_disabled(api: &Api, output: &Output, id: &str, disabled: bool) -> anyhow::Result<()> {
    let action = if disabled { "disable" } else { "enable" };
    let account = api.json(api.authed(Method::POST, &format!("/api/admin/users/{id}/{action}"))?)?;
    if output.json() {
        output.line(&account);
    } else {
        output.note(&format!("Account {} {action}d", account["email"].as_str().unwrap_or(id)));
    }
    Ok(())
}

pub fn invite(api: &Api, output: &Output, expires_in: Option<&str>) -> anyhow::Result<()> {
    let mut request = json!({});
    if let Some(text) = expires_in {
        request["ttl_seconds"] = Value::from(duration_seconds(text)?);
    }
    let invite = api.json(api.authed(Method::POST, "/api/admin/invites")?.json(&request))?;
    if output.json() {
        output.line(&invite);
    } else {
        println!("{}", invite["code"].as_str().unwrap_or(""));
        output.note("One use: dart_cloud register --invite CODE");
    }
    Ok(())
}
