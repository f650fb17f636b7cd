//! login, logout, whoami, keys.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Api;
use crate::credentials::{self, Login};
use crate::output::Output;

/// Asks for the email (unless given) on stderr, and the password without echo on a terminal.
fn ask_credentials(email: Option<String>) -> anyhow::Result<(String, String)> {
    let stdin = std::io::stdin();
    let email = match email {
        Some(email) => email,
        None => {
            eprint!("Email: ");
            std::io::stderr().flush()?;
            let mut email = String::new();
            stdin.lock().read_line(&mut email)?;
            email.trim().to_string()
        }
    };
    let password = if stdin.is_terminal() {
        rpassword::prompt_password("Password: ").context("cannot read the password")?
    } else {
        let mut password = String::new();
        stdin.lock().read_line(&mut password)?;
        password.trim_end_matches(['\r', '\n']).to_string()
    };
    Ok((email, password))
}

pub fn register(api: &Api, output: &Output, email: Option<String>, invite: Option<String>) -> anyhow::Result<()> {
    let (email, password) = ask_credentials(email)?;
    let credentials = json!({ "email": email, "password": password });
    let mut registration = credentials.clone();
    if let Some(invite) = invite {
        registration["invite"] = Value::from(invite);
    }
    let created = api.json(api.anonymous(Method::POST, "/api/auth/register").json(&registration))?;
    if created["admin"].as_bool() == Some(true) {
        output.note("This is the server's first account: it is the administrator (dart_cloud admin --help).");
    }
    output.note(&format!("Account {email} created on {}", api.base));
    let answer = api.json(api.anonymous(Method::POST, "/api/auth/login").json(&credentials))?;
    save_login(api, output, answer, email)
}

fn save_login(api: &Api, output: &Output, answer: Value, email: String) -> anyhow::Result<()> {
    let login = Login {
        token: answer["token"].as_str().context("the server sent no token")?.to_string(),
        email: Some(email.clone()),
        expires_at: answer["expires_at"].as_u64(),
    };
    let path = credentials::save(&api.base, login)?;
    output.note(&format!("Logged in to {} as {email} (saved in {})", api.base, path.display()));
    Ok(())
}

pub fn login(api: &Api, output: &Output, email: Option<String>, token_stdin: bool) -> anyhow::Result<()> {
    if !token_stdin {
        let (email, password) = ask_credentials(email)?;
        let credentials = json!({ "email": email, "password": password });
        let answer = api.json(api.anonymous(Method::POST, "/api/auth/login").json(&credentials))?;
        return save_login(api, output, answer, email);
    }
    let mut token = String::new();
    std::io::stdin().lock().read_line(&mut token)?;
    let token = token.trim().to_string();
    anyhow::ensure!(!token.is_empty(), "no token on standard input");
    let me = api.json(Api::new(&api.base, Some(token.clone())).authed(Method::GET, "/api/auth/me")?)?;
    let email = me["email"].as_str().unwrap_or_default().to_string();
    let path = credentials::save(&api.base, Login { token, email: Some(email.clone()), expires_at: None })?;
    output.note(&format!("Logged in to {} as {email} (saved in {})", api.base, path.display()));
    Ok(())
}

pub fn logout(api: &Api, output: &Output) -> anyhow::Result<()> {
    if credentials::forget(&api.base)? {
        output.note(&format!("Logged out of {}", api.base));
    } else {
        output.note(&format!("You were not logged in to {}", api.base));
    }
    Ok(())
}

pub fn whoami(api: &Api, output: &Output) -> anyhow::Result<()> {
    let me = api.json(api.authed(Method::GET, "/api/auth/me")?)?;
    if output.json() {
        output.line(&me);
    } else {
        println!("{} ({}) on {}", me["email"].as_str().unwrap_or("?"), me["id"].as_str().unwrap_or("?"), api.base);
    }
    Ok(())
}

pub fn create_key(
    api: &Api,
    output: &Output,
    name: &str,
    scope: &str,
    functions: &[String],
    expires_in: Option<&str>,
) -> anyhow::Result<()> {
    let mut request = json!({ "name": name, "scope": scope });
    if !functions.is_empty() {
        request["functions"] = json!(functions);
    }
    if let Some(text) = expires_in {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
        request["expires_at"] = Value::from(now + duration_seconds(text)? * 1000);
    }
    let key = api.json(api.authed(Method::POST, "/api/keys")?.json(&request))?;
    if output.json() {
        output.line(&key);
    } else {
        println!("{}", key["key"].as_str().unwrap_or(""));
        output.note(&format!(
            "API key {} created: copy it now, it is not shown again.",
            key["id"].as_str().unwrap_or("")
        ));
    }
    Ok(())
}

pub fn list_keys(api: &Api, output: &Output) -> anyhow::Result<()> {
    let keys = api.json(api.authed(Method::GET, "/api/keys")?)?;
    let rows: Vec<Value> = keys["keys"].as_array().cloned().unwrap_or_default();
    output.table(&["id", "name", "prefix", "scope", "functions", "expires_at", "last_used_at"], &rows);
    Ok(())
}

pub fn revoke_key(api: &Api, output: &Output, id: &str) -> anyhow::Result<()> {
    api.json(api.authed(Method::DELETE, &format!("/api/keys/{id}"))?)?;
    output.note(&format!("API key {id} revoked"));
    Ok(())
}

/// `30s`, `30m`, `12h`, `7d` (or plain seconds) as seconds.
pub fn duration_seconds(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let seconds = crate::duration::parse(text, crate::duration::SECONDS)
        .with_context(|| format!("{text:?} is not a duration: use 30m, 12h or 7d"))?;
    anyhow::ensure!(seconds > 0, "{text:?}: the duration must be above 0");
    Ok(seconds)
}
