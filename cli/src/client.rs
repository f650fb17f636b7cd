//! The server's API as the CLI sees it: requests with the token, and errors turned into
//! messages a person can act on.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde_json::Value;

/// A failure, with what to do about it. Every one exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach {url}: is `containerpub serve` running? ({detail})")]
    Unreachable { url: String, detail: String },
    #[error("not logged in: run `dart_cloud login` (or pass --token / DART_CLOUD_TOKEN)")]
    NotLoggedIn,
    #[error("{message}: run `dart_cloud login` [{status} {code}]")]
    LoginNeeded { message: String, status: u16, code: String },
    /// The analyzer refused the package; its findings were printed already.
    #[error("the analyzer rejected the package ({errors} error(s)); fix the findings above and deploy again")]
    Rejected { errors: usize },
    #[error("{message} (retry in {retry_after} s) [{status} {code}]")]
    Retry { message: String, retry_after: u64, status: u16, code: String },
    #[error("{message} [{status} {code}]")]
    Server { status: u16, code: String, message: String, body: Value },
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    token: Option<String>,
    http: Client,
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Api {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(None)
            .user_agent(concat!("dart_cloud/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with default TLS-less settings");
        Api { base: base.trim_end_matches('/').to_string(), token, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request carrying the token; `NotLoggedIn` when there is none.
    pub fn authed(&self, method: reqwest::Method, path: &str) -> Result<RequestBuilder, CliError> {
        let token = self.token.as_deref().ok_or(CliError::NotLoggedIn)?;
        Ok(self.http.request(method, self.url(path)).bearer_auth(token).timeout(Duration::from_secs(60)))
    }

    /// A call of a function URL (no client-side time limit: the function's deadline applies),
    /// carrying the saved login only when `with_login` (public functions need none).
    pub fn function_call(&self, method: reqwest::Method, path: &str, with_login: bool) -> RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) if with_login => request.bearer_auth(token),
            _ => request,
        }
    }

    /// True when the saved login owns the function `name` (its control-plane record answers).
    /// Asked before invoking, so a login token never travels to somebody else's function.
    pub fn owns_function(&self, name: &str) -> bool {
        let Ok(request) = self.authed(reqwest::Method::GET, &format!("/api/functions/{name}")) else { return false };
        request.send().is_ok_and(|response| response.status() == StatusCode::OK)
    }

    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).timeout(Duration::from_secs(60))
    }

    /// Sends and returns the response when it is a success, a `CliError` otherwise.
    pub fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().map_err(|error| self.transport_error(error))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_from(response))
        }
    }

    /// Sends and returns the response whatever its status (for `invoke`, which shows them all).
    pub fn send_any(&self, request: RequestBuilder) -> Result<Response, CliError> {
        request.send().map_err(|error| self.transport_error(error))
    }

    pub fn json(&self, request: RequestBuilder) -> Result<Value, CliError> {
        let response = self.send(request)?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        response.json().map_err(|error| CliError::Other(format!("the server's answer is not JSON: {error}")))
    }

    fn transport_error(&self, error: reqwest::Error) -> CliError {
        if error.is_connect() || error.is_timeout() {
            CliError::Unreachable { url: self.base.clone(), detail: root_cause(&error) }
        } else {
            CliError::Other(format!("request to {} failed: {}", self.base, root_cause(&error)))
        }
    }
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Turns an error answer into a `CliError` with advice.
pub fn error_from(response: Response) -> CliError {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body: Value = response.json().unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("unknown").to_string();
    let mut message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server answered {status}"));
    // A function's error: its type and message (the trace is printed with -v by `invoke`).
    let raised = &body["error"]["function_error"];
    if let (Some(kind), Some(what)) = (raised["type"].as_str(), raised["message"].as_str()) {
        message = format!("the function raised {kind}: {what}");
    }
    match (status, code.as_str()) {
        (401, "token_expired") => CliError::LoginNeeded { message: "your login has expired".into(), status, code },
        (401, "invalid_token" | "unauthenticated" | "unknown_user") => CliError::LoginNeeded { message, status, code },
        (429, _) => CliError::Retry { message, retry_after: retry_after.unwrap_or(1), status, code },
        (503, _) if retry_after.is_some() => {
            CliError::Retry { message, retry_after: retry_after.unwrap_or(1), status, code }
        }
        _ => CliError::Server { status, code, message, body },
    }
}
