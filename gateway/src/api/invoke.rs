//! Calling functions: function URLs (`/fn/NAME/...`, any method) and the seed's
//! `POST /api/functions/NAME/invoke`. Each outcome has its own status and error code:
//!
//! | outcome | status | code |
//! |---|---|---|
//! | ok | 200, or the envelope's status | — |
//! | the function threw | 500 | `function_error` |
//! | its result is not JSON, or an invalid envelope | 502 | `invalid_output` |
//! | a body its signature does not take (Dart) | 400 | `invalid_body` |
//! | crashed | 502 | `function_crashed` |
//! | deadline | 504 | `timeout` |
//! | memory cap | 507 | `memory_limit` |
//! | queue full | 429 + `Retry-After` | `queue_full` |
//! | queue wait exceeded | 503 + `Retry-After` | `queue_wait_exceeded` |
//! | runtime missing | 503 | `runtime_unavailable` |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::caller::authenticate;
use super::error::{parse_json, ApiError};
use crate::app::{now_ms, ActiveFunction, App};
use crate::auth::new_time_ordered_id;
use crate::recorder::Record;
use crate::store::{InvocationRecord, LogRecord};
use prewarm::{HttpReply, Invocation, InvocationEvent, InvocationRequest, Outcome};

/// A function URL's target: the function's name (or id) and the path it sees.
#[derive(Debug)]
pub struct FunctionUrl {
    pub name: String,
    /// `/` for `/fn/NAME` and `/fn/NAME/`, `/REST` for `/fn/NAME/REST`.
    pub rest: String,
    /// Served on its own host name (`NAME.{functions_domain}`), not under `/fn/NAME` on the
    /// shared origin: its cookies keep their paths.
    pub own_host: bool,
}

impl FunctionUrl {
    /// A request to `NAME.{functions_domain}` (any port): the function `NAME`, at the whole
    /// path. `None` when the host is not under the functions' domain; an error when it is, but
    /// does not name one function (`a.b.{domain}`, the domain itself).
    pub fn on_own_host(host: &str, functions_domain: &str, path: &str) -> Option<Result<FunctionUrl, ApiError>> {
        let host = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(host, _)| host);
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let domain = functions_domain.trim_matches('.').to_ascii_lowercase();
        if host == domain {
            return Some(Err(ApiError::not_found(format!(
                "{domain} serves functions on their own host names: NAME.{domain}"
            ))));
        }
        let name = host.strip_suffix(&domain)?.strip_suffix('.')?;
        if name.is_empty() || name.contains('.') {
            return Some(Err(ApiError::not_found(format!("{host} names no function: use NAME.{domain}"))));
        }
        let rest = match percent_encoding::percent_decode_str(path).decode_utf8() {
            Ok(decoded) if decoded.starts_with('/') => decoded.into_owned(),
            Ok(_) => "/".to_string(),
            Err(_) => {
                return Some(Err(ApiError::bad_request(
                    "invalid_path",
                    format!("{path} is not UTF-8 once percent-decoded"),
                )))
            }
        };
        Some(Ok(FunctionUrl { name: name.to_string(), rest, own_host: true }))
    }

    /// `/fn/NAME`, `/fn/NAME/` or `/fn/NAME/REST…`, percent-decoded; `None` for any other path
    /// (`/fn/` itself included: that is the router's 404).
    pub fn parse(path: &str) -> Option<Result<FunctionUrl, ApiError>> {
        let tail = path.strip_prefix("/fn/")?;
        let (name, rest) = tail.split_once('/').unwrap_or((tail, ""));
        if name.is_empty() {
            return None;
        }
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| ApiError::bad_request("invalid_path", format!("{path} is not UTF-8 once percent-decoded")))
        };
        Some(
            decode(name)
                .and_then(|name| Ok(FunctionUrl { name, rest: format!("/{}", decode(rest)?), own_host: false })),
        )
    }
}

/// A call to a function URL, any method. The front door calls this directly, without the router:
/// it is the hot path, and the router would copy the request's header map twice on the way.
pub async fn function_url(
    app: &Arc<App>,
    target: FunctionUrl,
    request: &pingora_http::RequestHeader,
    source_ip: Option<std::net::IpAddr>,
    body: Bytes,
) -> Response {
    let FunctionUrl { name, rest, own_host } = target;
    let (method, query, headers) = (&request.method, request.uri.query(), &request.headers);
    let (function, owner) = match authorize(app, &name, headers).await {
        Ok(authorized) => authorized,
        Err(error) => return error.into_response(),
    };
    let mut forwarded = BTreeMap::new();
    for (header, value) in headers {
        if !reaches_function(app, &function, header.as_str(), value.as_bytes()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        forwarded
            .entry(header.as_str().to_string())
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    let event = InvocationEvent {
        method: method.to_string(),
        path: rest,
        query: parse_query(query.unwrap_or("")),
        headers: forwarded,
        raw_query: if function.request_as_sent { query.unwrap_or_default().to_string() } else { String::new() },
        header_list: if function.request_as_sent { header_list(app, &function, request) } else { Vec::new() },
        source_ip: source_ip.map(|address| address.to_string()),
        ..InvocationEvent::default()
    }
    .with_raw_body(&body);
    let shared_origin_name = (!own_host).then_some(name.as_str());
    run(app, &function, event, owner, headers, shared_origin_name).await
}

/// The seed's call: the request as JSON (its executor took `body`, `query`, `headers`, `method`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApiInvoke {
    #[serde(default)]
    body: Value,
    #[serde(default)]
    query: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    method: Option<String>,
}

pub async fn api_invoke(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (function, owner) = match authorize(&app, &name, &headers).await {
        Ok(authorized) => authorized,
        Err(error) => return error.into_response(),
    };
    let request: ApiInvoke = if body.is_empty() {
        ApiInvoke::default()
    } else {
        match parse_json(&body) {
            Ok(request) => request,
            Err(error) => return error.into_response(),
        }
    };
    let method = match request
        .method
        .as_deref()
        .map(|method| Method::from_bytes(method.to_ascii_uppercase().as_bytes()))
    {
        None => Method::POST,
        Some(Ok(method)) => method,
        Some(Err(_)) => {
            return ApiError::bad_request("invalid_request", "`method` is not an HTTP method, like \"GET\" or \"POST\"")
                .into_response()
        }
    };
    let mut forwarded: BTreeMap<String, String> = request
        .headers
        .into_iter()
        .map(|(header, value)| (header.to_ascii_lowercase(), value))
        .filter(|(header, value)| reaches_function(&app, &function, header, value.as_bytes()))
        .collect();
    forwarded.entry("content-type".to_string()).or_insert_with(|| "application/json".to_string());
    let raw_query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&request.query).finish();
    let header_list = forwarded.iter().map(|(name, value)| (name.clone(), value.clone())).collect();
    let event = InvocationEvent {
        method: method.to_string(),
        path: "/".into(),
        query: request.query,
        headers: forwarded,
        body: (!request.body.is_null()).then(|| request.body.to_string()),
        raw_query,
        header_list,
        ..InvocationEvent::default()
    };
    // The API's origin: a cookie the function sets is kept to its function URL's path.
    run(&app, &function, event, owner, &headers, Some(&name)).await
}

/// The active function `name` if the caller may call it: anyone for a public function, its
/// owner otherwise (401 without credentials, 403 with someone else's). Also whether the caller
/// was authenticated as its owner: a private function's caller always is; a public function's
/// caller is not asked here (see `run`).
async fn authorize(app: &App, name: &str, headers: &HeaderMap) -> Result<(Arc<ActiveFunction>, bool), ApiError> {
    let function = app
        .active_by_name_or_id(name)
        .ok_or_else(|| ApiError::not_found(format!("no function {name:?} is deployed")))?;
    // A disabled account's functions stop answering, public ones included.
    if app.accounts.is_disabled(&function.owner_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account_disabled",
            format!("{name} belongs to a disabled account"),
        ));
    }
    if function.public {
        return Ok((function, false));
    }
    match authenticate(app, headers).await? {
        None => Err(ApiError::unauthorized(
            "unauthenticated",
            format!("{name} is private: send its owner's token or API key (Authorization: Bearer …)"),
        )),
        Some(caller) if caller.user_id == function.owner_id => {
            // Every scope may invoke; a key limited to some functions only those.
            caller.may_use(&function.name)?;
            Ok((function, true))
        }
        Some(_) => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("{name} is private and not yours"))),
    }
}

/// The request's headers in their original case, one pair per occurrence (what Lambda's 1.0
/// events, WSGI and `rawHeaders` keep), less those that may not reach the function.
fn header_list(app: &App, function: &ActiveFunction, request: &pingora_http::RequestHeader) -> Vec<(String, String)> {
    let mut list = Vec::with_capacity(request.headers.len());
    let mut keep = |name: &str, value: &axum::http::HeaderValue| {
        if reaches_function(app, function, name, value.as_bytes()) {
            list.push((name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()));
        }
    };
    if request.has_case() {
        for (name, value) in request.case_header_iter() {
            keep(&String::from_utf8_lossy(name.as_slice()), value);
        }
    } else {
        for (name, value) in &request.headers {
            keep(name.as_str(), value);
        }
    }
    list
}

/// Whether a request header may reach the function. A private function's caller authenticated
/// with `Authorization`/`X-API-Key`; a public function gets the values it may implement itself,
/// never one of the platform's own tokens or keys.
fn reaches_function(app: &App, function: &ActiveFunction, header: &str, value: &[u8]) -> bool {
    let credential_header = header.eq_ignore_ascii_case("authorization") || header.eq_ignore_ascii_case("x-api-key");
    !(credential_header && (!function.public || is_platform_credential(app, value)))
}

/// True for a value holding one of this server's tokens or API keys, valid or not: forwarded
/// to a function, a valid one would let its code act in the caller's name.
fn is_platform_credential(app: &App, value: &[u8]) -> bool {
    let text = String::from_utf8_lossy(value);
    let text = text.trim();
    let credential = match text.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return false,
        None => text,
    };
    credential.starts_with(crate::auth::api_keys::KEY_PREFIX) || app.tokens.names_this_server(credential)
}

/// `application/x-www-form-urlencoded` pairs; a malformed escape is kept as written.
fn parse_query(query: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// How many times in a row a call that found its version replaced follows it to the next one.
const VERSION_CHANGES_FOLLOWED: usize = 8;

async fn run(
    app: &App,
    function: &ActiveFunction,
    event: InvocationEvent,
    mut owner: bool,
    headers: &HeaderMap,
    shared_origin_name: Option<&str>,
) -> Response {
    let id = new_time_ordered_id("inv");
    let started_at = now_ms();
    let bytes_in = event.body.as_ref().map_or(0, |body| body.len());
    let request = InvocationRequest { id: id.clone(), event };
    let mut replacement: Option<Arc<ActiveFunction>> = None;
    let mut attempt = app.prewarm.invoke(&function.key, request).await;
    // The version was replaced between lookup and call, or while the call waited for a slot or a
    // worker (a deploy or rollback, here or on another node, just landed): the call, which never
    // ran, goes to the version routed now; again if that one too is replaced meanwhile. "Routed
    // now" is a new routing entry, not a new key: a rollback routes a version's key again (and
    // a secret's change re-prepares the active one), so the key a call was sent to can be retired
    // and routed anew before the call looks again.
    for _ in 0..VERSION_CHANGES_FOLLOWED {
        let Err(unknown) = attempt else { break };
        let looked_up = replacement.as_deref().unwrap_or(function);
        match app.active.get(&function.name).map(|active| active.clone()) {
            Some(now) if now.id == function.id && !std::ptr::eq(Arc::as_ptr(&now), looked_up) => {
                attempt = app.prewarm.invoke(&now.key, *unknown.request).await;
                replacement = Some(now);
            }
            _ => {
                attempt = Err(unknown);
                break;
            }
        }
    }
    let function = replacement.as_deref().unwrap_or(function);
    let invocation = match attempt {
        Ok(invocation) => invocation,
        // Routed, but its workers could not start yet (at server start): retried with backoff.
        Err(_) if let Some(next) = app.starting.get(&function.key).map(|next| *next) => {
            let seconds = next.saturating_duration_since(std::time::Instant::now()).as_secs_f64().ceil() as u64;
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "the function's workers are starting; retry shortly",
            )
            .retry_after(seconds.max(1))
            .into_response();
        }
        Err(_) if !app.active.contains_key(&function.name) => {
            return ApiError::not_found(format!("no function {:?} is deployed (it was just deleted)", function.name))
                .into_response()
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "version_changed",
                "the function was just redeployed; try again",
            )
            .retry_after(1)
            .into_response()
        }
    };
    // Only a function error's stack trace depends on who called: a public function's caller is
    // authenticated then, not on every call.
    if invocation.outcome == Outcome::FunctionError && function.public && !owner {
        owner = matches!(authenticate(app, headers).await, Ok(Some(caller)) if caller.user_id == function.owner_id);
    }
    let mut response = respond(&invocation, owner, shared_origin_name);
    let headers = response.headers_mut();
    headers.insert("x-invocation-id", HeaderValue::from_str(&id).expect("ids are ASCII"));
    // Milliseconds with three decimals, from whole microseconds: no float formatting.
    let (queue, exec) = (invocation.queue_us, invocation.exec_us);
    let timing = format!("queue;dur={}.{:03}, exec;dur={}.{:03}", queue / 1000, queue % 1000, exec / 1000, exec % 1000);
    headers.insert("server-timing", HeaderValue::from_str(&timing).expect("ASCII"));
    let status = response.status().as_u16();
    record(app, function, &invocation, status, started_at, bytes_in);
    response
}

/// The HTTP answer of an invocation. A function error carries its type and message; its stack
/// trace (paths relative to the function) only for the function's owner — it is in the logs too.
fn respond(invocation: &Invocation, owner: bool, shared_origin_name: Option<&str>) -> Response {
    let detail = invocation.error.as_ref();
    let error = |status: StatusCode, code: &'static str, fallback: &str| {
        let message = detail.map(|error| error.message.clone()).filter(|message| !message.is_empty());
        ApiError::new(status, code, message.unwrap_or_else(|| fallback.to_string()))
    };
    match invocation.outcome {
        Outcome::Ok => match HttpReply::from_result(invocation.result.as_ref().unwrap_or(&Value::Null)) {
            Ok(reply) => super::function_reply::response(reply, shared_origin_name),
            Err(problem) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "invalid_output",
                format!("the function's response envelope is invalid: {problem}"),
            )
            .into_response(),
        },
        // The handler's signature refused the body (Dart): the caller's to fix.
        Outcome::FunctionError if detail.is_some_and(|error| error.code == "invalid_body") => {
            error(StatusCode::BAD_REQUEST, "invalid_body", "the function does not take this body").into_response()
        }
        Outcome::FunctionError if detail.is_some_and(|error| error.code == "invalid_output") => {
            error(StatusCode::BAD_GATEWAY, "invalid_output", "the function's result is not JSON").into_response()
        }
        Outcome::FunctionError => {
            let mut failure =
                error(StatusCode::INTERNAL_SERVER_ERROR, "function_error", "the function raised an error");
            let mut function_error = json!({
                "type": detail.and_then(|error| error.error_type.clone()),
                "message": detail.map(|error| error.message.clone()),
            });
            if owner {
                function_error["stack"] = json!(detail.and_then(|error| error.stack.clone()));
            }
            failure = failure.with_detail("function_error", function_error);
            failure.into_response()
        }
        Outcome::Timeout => {
            error(StatusCode::GATEWAY_TIMEOUT, "timeout", "the function did not finish before its deadline")
                .into_response()
        }
        Outcome::MemoryLimit => {
            error(StatusCode::INSUFFICIENT_STORAGE, "memory_limit", "the function exceeded its memory cap")
                .into_response()
        }
        Outcome::Crashed => {
            error(StatusCode::BAD_GATEWAY, "function_crashed", "the function's worker exited unexpectedly")
                .into_response()
        }
        // This node holds no share of the function's cap (`prewarm::cluster_share`): the retry
        // should go to another node, so the connection is not paced.
        Outcome::QueueFull if detail.is_some_and(|error| error.code == prewarm::cluster_share::NO_SHARE) => {
            error(StatusCode::TOO_MANY_REQUESTS, prewarm::cluster_share::NO_SHARE, "no share of the cap on this node")
                .retry_after(1)
                .into_response()
        }
        Outcome::QueueFull => {
            let retry_after = invocation.retry_after_seconds.unwrap_or(1);
            let mut response =
                error(StatusCode::TOO_MANY_REQUESTS, "queue_full", "too many calls are waiting; retry shortly")
                    .retry_after(retry_after)
                    .into_response();
            let pace = Duration::from_secs(retry_after).min(crate::front_door::MAX_PACE);
            response.extensions_mut().insert(crate::front_door::PaceConnection(pace));
            response
        }
        Outcome::WaitExceeded => {
            error(StatusCode::SERVICE_UNAVAILABLE, "queue_wait_exceeded", "the call waited too long for a free worker")
                .retry_after(invocation.retry_after_seconds.unwrap_or(1))
                .into_response()
        }
        Outcome::RuntimeUnavailable => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime_unavailable",
            "the function's runtime is not installed on this server",
        )
        .into_response(),
    }
}

fn record(
    app: &App,
    function: &ActiveFunction,
    invocation: &Invocation,
    status: u16,
    started_at: i64,
    bytes_in: usize,
) {
    let outcome = invocation.outcome.as_str();
    app.metrics.observe(&function.name, invocation.outcome, invocation.queue_us + invocation.exec_us);
    if invocation.outcome.is_rejection() {
        // Counted per second, not a row each: a flood of refusals must not crowd out the records
        // of the calls that were served (issue 17).
        app.recorder.record_rejection(&function.id, function.version, outcome, started_at);
        return;
    }
    app.recorder.record(Record::Invocation(InvocationRecord {
        id: invocation.id.clone(),
        function_id: function.id.clone(),
        version: function.version,
        outcome: outcome.to_string(),
        status: status as i64,
        error_code: invocation.error.as_ref().map(|error| error.code.clone()),
        cold: invocation.cold,
        queue_us: invocation.queue_us as i64,
        exec_us: invocation.exec_us as i64,
        peak_memory_bytes: invocation.peak_memory_bytes.map(|bytes| bytes as i64),
        bytes_in: bytes_in as i64,
        bytes_out: invocation.bytes_out as i64,
        started_at,
    }));
    // The owner finds a function error's stack trace in the function's logs (stderr).
    let stack_lines = invocation
        .error
        .as_ref()
        .filter(|_| invocation.outcome == Outcome::FunctionError)
        .and_then(|error| error.stack.as_deref())
        .map(|stack| {
            let finished_us = (started_at + ((invocation.queue_us + invocation.exec_us) / 1000) as i64) * 1000;
            stack.lines().filter(|line| !line.trim().is_empty()).map(move |line| prewarm::LogLine {
                timestamp_us: finished_us,
                stream: prewarm::LogStream::Stderr,
                text: line.to_string(),
            })
        })
        .into_iter()
        .flatten();
    // Output and stack trace count against one budget per call, then the function's rate. The
    // worker-side collector's own truncation line (last, when it dropped output) is kept apart.
    let (output, truncated) = match invocation.logs.split_last() {
        Some((marker, output)) if invocation.log_bytes_dropped > 0 => (output, Some(marker.clone())),
        _ => (&invocation.logs[..], None),
    };
    let lines = output.iter().cloned().chain(stack_lines);
    for line in app.log_budget.admit_call(&function.id, lines).into_iter().chain(truncated) {
        app.recorder.record(Record::Log(LogRecord {
            id: 0,
            function_id: function.id.clone(),
            version: function.version,
            invocation_id: Some(invocation.id.clone()),
            timestamp_us: line.timestamp_us,
            stream: line.stream.as_str().to_string(),
            message: line.text,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::FunctionUrl;

    #[test]
    fn function_urls_are_split_and_percent_decoded() {
        let parsed = |path: &str| {
            FunctionUrl::parse(path).map(|target| target.map(|FunctionUrl { name, rest, .. }| (name, rest)).ok())
        };
        let target = |name: &str, rest: &str| Some(Some((name.to_string(), rest.to_string())));
        assert_eq!(parsed("/fn/hello"), target("hello", "/"));
        assert_eq!(parsed("/fn/hello/"), target("hello", "/"));
        assert_eq!(parsed("/fn/hello/a/b%20c/"), target("hello", "/a/b c/"));
        assert_eq!(parsed("/fn/h%65llo"), target("hello", "/"));
        assert_eq!(parsed("/fn/"), None);
        assert_eq!(parsed("/fn//x"), None);
        assert_eq!(parsed("/fn"), None);
        assert_eq!(parsed("/api/functions"), None);
        assert_eq!(parsed("/fn/%ff"), Some(None), "not UTF-8: a 400");
    }

    #[test]
    fn queries_are_percent_decoded() {
        let parsed = super::parse_query("a=1&b=hello%20world&c=x+y&d&e=%zz&f=%4");
        assert_eq!(parsed["a"], "1");
        assert_eq!(parsed["b"], "hello world");
        assert_eq!(parsed["c"], "x y");
        assert_eq!(parsed["d"], "");
        assert_eq!(parsed["e"], "%zz");
        assert_eq!(parsed["f"], "%4");
    }
}
