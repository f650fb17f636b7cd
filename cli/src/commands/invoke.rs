//! `invoke`: calls the function's URL like curl would, and prints its answer.

use std::io::Read;

use anyhow::Context;
use reqwest::Method;

use crate::client::{error_from, Api};
use crate::output::Output;

pub struct InvokeArgs {
    pub name: String,
    pub data: Option<String>,
    pub query: Vec<String>,
    pub method: Option<String>,
    pub headers: Vec<String>,
    pub path: String,
    pub include: bool,
    /// Send the saved login even to a function this login does not own.
    pub auth: bool,
}

fn body(data: &str) -> anyhow::Result<Vec<u8>> {
    if data == "-" {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body)?;
        Ok(body)
    } else if let Some(file) = data.strip_prefix('@') {
        std::fs::read(file).with_context(|| format!("cannot read {file}"))
    } else {
        serde_json::from_str::<serde_json::Value>(data)
            .with_context(|| format!("--data {data:?} is not JSON (use @FILE for other bodies)"))?;
        Ok(data.as_bytes().to_vec())
    }
}

/// `--query KEY=VALUE`, repeatable, or the seed's JSON object `--query '{"key": "value"}'`
/// (string, number and boolean values).
fn query_pairs(arguments: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for argument in arguments {
        if argument.trim_start().starts_with('{') {
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(argument)
                .with_context(|| format!("--query {argument:?} is not a JSON object (or use KEY=VALUE)"))?;
            for (key, value) in object {
                let value = match value {
                    serde_json::Value::String(text) => text,
                    serde_json::Value::Number(_) | serde_json::Value::Bool(_) => value.to_string(),
                    other => anyhow::bail!("--query {key}: {other} is not a string, number or boolean"),
                };
                pairs.push((key, value));
            }
        } else {
            let (key, value) =
                argument.split_once('=').with_context(|| format!("--query {argument:?}: use KEY=VALUE"))?;
            pairs.push((key.to_string(), value.to_string()));
        }
    }
    Ok(pairs)
}

pub fn invoke(api: &Api, output: &Output, args: InvokeArgs) -> anyhow::Result<()> {
    let body = args.data.as_deref().map(body).transpose()?;
    let method = match &args.method {
        Some(method) => Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("{method:?} is not an HTTP method"))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    let path = format!("/fn/{}/{}", args.name, args.path.trim_start_matches('/'));
    let query = query_pairs(&args.query)?;
    // The login goes only to the caller's own functions (or with --auth): another tenant's public
    // function would receive it in its request headers.
    let send_login = args.auth || api.owns_function(&args.name);
    let path = path.trim_end_matches('/');
    let mut request = api.function_call(method, path, send_login).query(&query);
    for header in &args.headers {
        let (name, value) = header.split_once(':').with_context(|| format!("-H {header:?}: use NAME:VALUE"))?;
        request = request.header(name.trim(), value.trim());
    }
    if let Some(body) = body {
        let json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
        if json && !args.headers.iter().any(|h| h.to_ascii_lowercase().starts_with("content-type")) {
            request = request.header("content-type", "application/json");
        }
        request = request.body(body);
    }
    let response = api.send_any(request)?;
    let status = response.status();
    let invocation = response.headers().get("x-invocation-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if args.include {
        println!("{:?} {}", response.version(), status);
        for (name, value) in response.headers() {
            println!("{name}: {}", value.to_str().unwrap_or("<binary>"));
        }
        println!();
    }
    // A platform error (the server marks it) goes through the usual advice; a function's own
    // error answer is printed like any other answer.
    if response.headers().contains_key("x-containerpub-error") && !args.include {
        if !invocation.is_empty() {
            output.detail(&format!("invocation {invocation}"));
        }
        let error = error_from(response);
        // The owner gets the function's stack trace: shown with -v.
        if let crate::client::CliError::Server { body, .. } = &error {
            if let Some(stack) = body["error"]["function_error"]["stack"].as_str() {
                output.detail(stack.trim_end());
            }
        }
        return Err(error.into());
    }
    let bytes = response.bytes()?;
    std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
    if !bytes.ends_with(b"\n") {
        println!();
    }
    output.detail(&format!("invocation {invocation}"));
    // The exit status says whether the call succeeded, with -i as without.
    anyhow::ensure!(status.is_success(), "the function answered {status}");
    Ok(())
}
