//! Health, metrics, and a function's logs and invocations.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::functions::owned_function;
use super::Caller;
use crate::app::{now_ms, App};
use crate::auth::scopes::Scope;
use crate::metrics::family;
use crate::store::LogRecord;

/// The longest a read of logs or invocations waits for records accepted before it began.
const READ_YOUR_WRITES: Duration = Duration::from_millis(250);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// `ready`: whether to send this node calls (an orchestrator's readiness probe). A node whose
    /// store is down still serves its warm functions, so only draining makes it unready.
    probe: Option<String>,
}

/// `{"status"}` for anyone (load balancers); the details — store, runtimes, sandbox, function
/// database — only for an administrator's token or admin key.
pub async fn healthz(
    State(app): State<Arc<App>>,
    query: Result<Query<HealthQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let readiness = match query.as_ref().map(|query| query.probe.as_deref()) {
        Ok(None) => false,
        Ok(Some("ready")) => true,
        _ => {
            return ApiError::bad_request("invalid_probe", "the only query /healthz takes is probe=ready")
                .into_response()
        }
    };
    let store = tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await;
    let store_ok = matches!(store, Ok(Ok(())));
    let (enforcement, _) = app.prewarm.enforcement();
    let runtimes: serde_json::Map<String, Value> = app
        .prewarm
        .runtimes()
        .into_iter()
        .map(|(runtime, path)| {
            (runtime.name().to_string(), path.map(|p| Value::from(p.display().to_string())).unwrap_or(Value::Null))
        })
        .collect();
    let draining = app.draining.load(Ordering::Relaxed);
    let healthy = store_ok && !draining;
    let status_text = if healthy {
        "ok"
    } else if draining {
        "draining"
    } else {
        "degraded"
    };
    let status = if healthy || (readiness && !draining) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let admin =
        matches!(super::caller::authenticate(&app, &headers).await, Ok(Some(caller)) if caller.scope == Scope::Admin);
    if !admin {
        return (status, Json(json!({ "status": status_text }))).into_response();
    }
    let mut body = json!({
        "status": status_text,
        "store": { "kind": app.store.kind(), "reachable": store_ok },
        "memory_enforcement": enforcement.name(),
        "sandbox": app.prewarm.sandbox_status(),
        "runtimes": runtimes,
        "functions_active": app.active.len(),
        "function_database": app.function_database,
    });
    if let (Some(fields), Value::Object(cluster)) = (body.as_object_mut(), crate::cluster::health(&app).await) {
        fields.extend(cluster);
    }
    (status, Json(body)).into_response()
}

/// Prometheus text. With `[metrics] token` set, only for `Authorization: Bearer <token>` (or an
/// administrator), every series. Without one, anyone gets the server's totals: series by
/// function are summed over functions, since their labels would name every tenant's functions;
/// an administrator's login or key still gets them all.
pub async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let admin =
        matches!(super::caller::authenticate(&app, &headers).await, Ok(Some(caller)) if caller.scope == Scope::Admin);
    let per_function = match &app.config.metrics.token {
        _ if admin => true,
        Some(token) => {
            let sent = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).unwrap_or("");
            let sent = sent.strip_prefix("Bearer ").unwrap_or("");
            let expected = crate::auth::api_keys::hash(token);
            if !crate::auth::api_keys::hashes_match(&crate::auth::api_keys::hash(sent), &expected) {
                return ApiError::unauthorized(
                    "unauthenticated",
                    "/metrics needs `Authorization: Bearer <[metrics] token>` on this server",
                )
                .into_response();
            }
            true
        }
        None => false,
    };
    let out = render_metrics(&app);
    let out = if per_function { out } else { crate::metrics::summed_over_functions(&out) };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn render_metrics(app: &App) -> String {
    let mut out = String::new();
    app.metrics.render(&mut out);
    let stats = app.prewarm.stats();
    let by_function = |pick: &dyn Fn(&prewarm::PoolStats) -> u64| -> Vec<(String, u64)> {
        stats.iter().map(|s| (format!("function=\"{}\",key=\"{}\"", s.name, s.key), pick(s))).collect()
    };
    family(
        &mut out,
        "containerpub_queue_depth",
        "gauge",
        "Invocations waiting for a slot.",
        &by_function(&|s| s.queued as u64),
    );
    family(&mut out, "containerpub_in_flight", "gauge", "Invocations running.", &by_function(&|s| s.in_flight as u64));
    let mut sizes = Vec::new();
    for s in &stats {
        for (state, count) in [("idle", s.sizes.idle), ("busy", s.sizes.busy), ("starting", s.sizes.starting)] {
            sizes.push((format!("function=\"{}\",key=\"{}\",state=\"{state}\"", s.name, s.key), count as u64));
        }
    }
    family(&mut out, "containerpub_pool_workers", "gauge", "Workers per pool by state.", &sizes);
    family(&mut out, "containerpub_spawns_total", "counter", "Worker processes started.", &by_function(&|s| s.spawns));
    family(
        &mut out,
        "containerpub_cold_starts_total",
        "counter",
        "Invocations that waited for a new worker.",
        &by_function(&|s| s.cold_starts),
    );
    let mut kills = Vec::new();
    for s in &stats {
        let mut reasons: Vec<_> = s.kills.iter().collect();
        reasons.sort();
        for (reason, count) in reasons {
            kills.push((format!("function=\"{}\",key=\"{}\",reason=\"{reason}\"", s.name, s.key), *count));
        }
    }
    family(&mut out, "containerpub_worker_kills_total", "counter", "Workers stopped, by reason.", &kills);
    let counters = &app.recorder.counters;
    family(
        &mut out,
        "containerpub_records_dropped_total",
        "counter",
        "Invocation records and log lines lost: the database did not take them and the journal was full.",
        &[
            ("kind=\"invocation\"".into(), counters.dropped_invocations.load(Ordering::Relaxed)),
            ("kind=\"log\"".into(), counters.dropped_logs.load(Ordering::Relaxed)),
        ],
    );
    let budget = &app.log_budget;
    family(
        &mut out,
        "containerpub_log_lines_dropped_total",
        "counter",
        "Log lines a function printed that were not kept: over its call's budget, or over its rate.",
        &[
            ("reason=\"call_budget\"".into(), budget.dropped_over_call_budget.load(Ordering::Relaxed)),
            ("reason=\"rate\"".into(), budget.dropped_over_rate.load(Ordering::Relaxed)),
        ],
    );
    family(
        &mut out,
        "containerpub_record_write_failures_total",
        "counter",
        "Batches of records the database refused.",
        &[(String::new(), counters.failed_writes.load(Ordering::Relaxed))],
    );
    let journal = &app.recorder.journal;
    family(
        &mut out,
        "containerpub_records_journal_bytes",
        "gauge",
        "Records waiting on disk for the database to take writes again.",
        &[(String::new(), journal.bytes())],
    );
    family(
        &mut out,
        "containerpub_records_journal_high_water_bytes",
        "gauge",
        "The most the records journal has held since the server started.",
        &[(String::new(), journal.high_water())],
    );
    family(
        &mut out,
        "containerpub_records_journal_lost_total",
        "counter",
        "Journal lines that could not be read back (cut short by a crash).",
        &[(String::new(), journal.unreadable.load(Ordering::Relaxed))],
    );
    let (_, nodes) = app.prewarm.membership();
    family(
        &mut out,
        "containerpub_cluster_nodes",
        "gauge",
        "Live nodes sharing this node's store, itself included, among which each function's concurrency cap is split.",
        &[(String::new(), nodes as u64)],
    );
    out
}

#[derive(Deserialize)]
pub struct InvocationsQuery {
    limit: Option<i64>,
}

pub async fn invocations(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<InvocationsQuery>,
) -> Result<Json<Value>, ApiError> {
    let function = owned_function(&app, &caller, &name).await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    // Read your own writes: what the recorder had accepted when this read began is included.
    app.recorder.caught_up(READ_YOUR_WRITES).await;
    let rows = app.store.invocations(&function.id, limit).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            json!({
                "id": row.id, "version": row.version, "outcome": row.outcome, "status": row.status,
                "error_code": row.error_code, "cold": row.cold,
                "queue_ms": row.queue_us as f64 / 1000.0, "duration_ms": row.exec_us as f64 / 1000.0,
                "peak_memory_bytes": row.peak_memory_bytes, "bytes_in": row.bytes_in, "bytes_out": row.bytes_out,
                "started_at": row.started_at,
            })
        })
        .collect();
    // Refused calls have no row each: they are counted per second.
    let rejections: Vec<Value> = app
        .store
        .rejections(&function.id, limit)
        .await?
        .into_iter()
        .map(|row| json!({ "second": row.second, "version": row.version, "outcome": row.outcome, "count": row.count }))
        .collect();
    Ok(Json(json!({ "name": function.name, "invocations": rows, "rejections": rejections })))
}

#[derive(Deserialize)]
pub struct LogsQuery {
    /// Unix milliseconds, or a duration back from now: `30s`, `10m`, `2h`, `1d`.
    since: Option<String>,
    limit: Option<i64>,
    follow: Option<bool>,
}

fn parse_since(since: &str) -> Option<i64> {
    let since = since.trim();
    if let Ok(ms) = since.parse::<i64>() {
        return Some(ms * 1000);
    }
    let (number, unit) = since.split_at(since.len().checked_sub(1)?);
    let number: i64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86400,
        _ => return None,
    };
    Some((now_ms() - seconds * 1000) * 1000)
}

pub async fn logs(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let function = owned_function(&app, &caller, &name).await?;
    // Read your own writes (the follow stream too starts with everything already accepted).
    app.recorder.caught_up(READ_YOUR_WRITES).await;
    let since_us = match query.since.as_deref() {
        None | Some("") => 0,
        Some(text) => parse_since(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_since",
                format!("since={text:?}: use Unix milliseconds or a duration like 10m"),
            )
        })?,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    let sse =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"));
    let first = app.store.tail_logs(&function.id, since_us, limit).await?;
    let format = move |line: &LogRecord| -> String {
        let json = json!({
            "id": line.id, "timestamp_us": line.timestamp_us, "stream": line.stream, "version": line.version,
            "invocation_id": line.invocation_id, "message": line.message,
        });
        if sse {
            format!("id: {}\ndata: {json}\n\n", line.id)
        } else {
            format!("{json}\n")
        }
    };
    let content_type = if sse { "text/event-stream" } else { "application/x-ndjson" };
    if !query.follow.unwrap_or(false) {
        let body: String = first.iter().map(&format).collect();
        return Ok(([(header::CONTENT_TYPE, content_type)], body).into_response());
    }
    // Following: what there is, then new lines as they are stored, until the client leaves.
    let store = app.store.clone();
    let function_id = function.id.clone();
    let mut last_id = first.last().map_or(0, |line| line.id);
    if first.is_empty() {
        // Start after whatever exists now, so old lines before `since` are not replayed.
        last_id = store.tail_logs(&function_id, 0, 1).await?.last().map_or(0, |line| line.id);
    }
    let initial: String = first.iter().map(&format).collect();
    // With nothing new for a while, a keep-alive (a blank NDJSON line, an SSE comment) goes out,
    // so a client that left is noticed and its stream dropped.
    const KEEP_ALIVE_POLLS: u32 = 75;
    // Lines a poll reads at most: the last second's again (`log_follow`), and what is new.
    const FOLLOW_READ: i64 = 2000;
    let cursor = super::log_follow::FollowCursor::after(last_id);
    let stream = futures_util::stream::unfold((Some(initial), cursor), move |(initial, mut cursor)| {
        let store = store.clone();
        let function_id = function_id.clone();
        async move {
            if let Some(initial) = initial {
                return Some((Ok::<_, std::convert::Infallible>(initial), (None, cursor)));
            }
            let mut quiet_polls = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                match store.logs(&function_id, cursor.read_above(), 0, FOLLOW_READ).await {
                    Ok(lines) => {
                        let fresh = cursor.take(lines, std::time::Instant::now());
                        if !fresh.is_empty() {
                            let chunk: String = fresh.iter().map(&format).collect();
                            return Some((Ok(chunk), (None, cursor)));
                        }
                        quiet_polls += 1;
                        if quiet_polls >= KEEP_ALIVE_POLLS {
                            let keep_alive = if sse { ": keep-alive\n\n" } else { "\n" };
                            return Some((Ok(keep_alive.to_string()), (None, cursor)));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "log follow stopped: the store failed");
                        return None;
                    }
                }
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(stream))
        .into_response())
}
