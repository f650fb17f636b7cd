//! Pingora's side of every request (brief, decision 1): pingora owns the listener, HTTP
//! parsing, keep-alive, timeouts and shutdown; each request is then handed, in-process and on
//! the same task, to the axum router (`api/`). No socket hop, no second runtime: the router is
//! a plain function call (decision 2 and 3, see ARCHITECTURE.md). Function URLs, the hot path,
//! skip the router: `api::function_url` takes pingora's request header as it is.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::response::IntoResponse;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use pingora_core::apps::{HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use tower::ServiceExt;

use crate::api::error::ApiError;
use crate::app::App;

pub struct FrontDoor {
    pub app: Arc<App>,
    pub router: axum::Router,
}

/// Decrements the in-flight count however the request ends (even when the task is dropped).
struct InFlight<'a>(&'a App);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

const DEPLOY_PATH: &str = "/api/functions/deploy";

#[async_trait]
impl HttpServerApp for FrontDoor {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let limits = &self.app.config.http;
        let idle = Duration::from_secs(limits.idle_timeout_seconds);
        // Pingora times each read of the header by the keep-alive timeout (60 s by default) and
        // each read of the body by the read timeout; a client dribbling its header one byte at a
        // time would still hold the connection, so the whole header also has a deadline.
        session.set_keepalive(Some(limits.idle_timeout_seconds));
        session.set_read_timeout(Some(idle));
        session.set_write_timeout(Some(idle));
        match tokio::time::timeout(idle, session.read_request()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Ok(Err(_)) | Err(_) => return None,
        }
        self.app.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(&self.app);
        let draining = *shutdown.borrow() || self.app.draining.load(Ordering::SeqCst);
        session.set_keepalive(if draining { None } else { Some(limits.idle_timeout_seconds) });

        let response = if draining {
            let _ = session.drain_request_body().await;
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down; retry",
            )
            .retry_after(1)
            .into_response()
        } else {
            let body_deadline = Duration::from_secs(limits.body_timeout_seconds);
            let body = tokio::time::timeout(body_deadline, self.read_body(&mut session)).await.unwrap_or_else(|_| {
                Err(Some(ApiError::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!("the request body did not arrive within {} s", body_deadline.as_secs()),
                )))
            });
            let function_url = self.function_url(session.req_header());
            match (body, function_url) {
                (Ok(body), Some(Ok(target))) => {
                    let source_ip = session.client_addr().and_then(|address| address.as_inet()).map(|inet| inet.ip());
                    crate::api::function_url(&self.app, target, session.req_header(), source_ip, body).await
                }
                (Ok(_), Some(Err(error))) => error.into_response(),
                (Ok(body), None) => {
                    let mut request =
                        axum::http::Request::from_parts(session.req_header().as_owned_parts(), Body::from(body));
                    let address = session.client_addr().and_then(|address| address.as_inet()).map(|inet| inet.ip());
                    request.extensions_mut().insert(crate::api::ClientAddress(address));
                    match self.router.clone().oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                }
                (Err(Some(error)), _) => {
                    session.set_keepalive(None);
                    error.into_response()
                }
                (Err(None), _) => return None,
            }
        };
        let pace = response.extensions().get::<PaceConnection>().map(|pace| pace.0);
        if write_response(&mut session, response, self.app.drain_signal.subscribe()).await.is_err() {
            return None;
        }
        let settings = pingora_core::apps::HttpPersistentSettings::for_session(&session);
        let stream = match session.finish().await {
            Ok(stream) => stream.map(|stream| ReusedHttpStream::from_reusable_stream(stream, settings))?,
            Err(_) => return None,
        };
        if let Some(pace) = pace {
            // The answer is out; the connection's next request waits (it is not in flight).
            drop(_in_flight);
            let mut drain = self.app.drain_signal.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(pace) => {}
                _ = drain.wait_for(|draining| *draining) => return None,
            }
        }
        Some(stream)
    }
}

/// Set on an answer that refused a call because its function's queue is full: the connection's
/// next request is read only after this long (at most [`MAX_PACE`]).
///
/// A client that honours `Retry-After` never notices. One that retries at once on the same
/// connection would otherwise turn the refusals into a loop that takes the CPU from the calls
/// the server did admit: with ten times more callers than cap and queue, those slowed to a
/// trickle (issue 17). Pausing the connection costs a timer, not a request's work.
#[derive(Debug, Clone, Copy)]
pub struct PaceConnection(pub Duration);

/// The longest a refused connection's next request waits.
pub const MAX_PACE: Duration = Duration::from_secs(1);

impl FrontDoor {
    /// The function a request is for: on a host under `[http] functions_domain`, the function
    /// that host names, whatever the path (the API is never served there); elsewhere
    /// `/fn/NAME/…`; `None` for the API.
    fn function_url(&self, header: &pingora_http::RequestHeader) -> Option<Result<crate::api::FunctionUrl, ApiError>> {
        let path = header.uri.path();
        if let Some(domain) = &self.app.config.http.functions_domain {
            let host = header
                .headers
                .get(axum::http::header::HOST)
                .and_then(|host| host.to_str().ok())
                .or_else(|| header.uri.host());
            if let Some(own_host) = host.and_then(|host| crate::api::FunctionUrl::on_own_host(host, domain, path)) {
                return Some(own_host);
            }
        }
        crate::api::FunctionUrl::parse(path)
    }

    /// The whole request body under the route's size cap. `Err(None)`: the client went away.
    async fn read_body(&self, session: &mut ServerSession) -> Result<Bytes, Option<ApiError>> {
        let is_deploy = session.req_header().uri.path() == DEPLOY_PATH;
        let limit = if is_deploy {
            // The archive cap plus room for the other form fields and multipart framing.
            self.app.config.deploy.max_archive_bytes as usize + (1 << 20)
        } else {
            self.app.config.http.max_body_bytes
        };
        let too_large = || {
            let (code, message) = if is_deploy {
                let archive = self.app.config.deploy.max_archive_bytes;
                (
                    "archive_too_large",
                    format!(
                        "the upload is larger than this server takes: archives up to {archive} bytes ([deploy] max_archive_bytes); leave out what the function does not need, or ask the operator to raise the limit"
                    ),
                )
            } else {
                ("body_too_large", format!("the request body is larger than {limit} bytes ([http] max_body_bytes)"))
            };
            Some(ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, code, message))
        };
        let declared = session
            .req_header()
            .headers
            .get("content-length")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(error) => {
                    tracing::debug!(%error, "reading a request body failed (client gone or too slow)");
                    return Err(None);
                }
            }
        }
    }
}

/// Writes an axum response through pingora: a body of known size with `Content-Length`,
/// anything else (a log stream) chunked, frame by frame, as it is produced. A stream ends
/// cleanly when the server starts draining.
async fn write_response(
    session: &mut ServerSession,
    response: axum::response::Response,
    mut drain: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ()> {
    let (parts, mut body) = response.into_parts();
    let exact = http_body::Body::size_hint(&body).exact();
    let mut header = ResponseHeader::build(parts.status, Some(parts.headers.len() + 2)).map_err(|_| ())?;
    for (name, value) in &parts.headers {
        header.append_header(name.clone(), value.clone()).map_err(|_| ())?;
    }
    // A 1xx, 204 or 304 has no body and so no framing header (RFC 9110, 8.6).
    let bodiless = parts.status.is_informational()
        || matches!(parts.status, axum::http::StatusCode::NO_CONTENT | axum::http::StatusCode::NOT_MODIFIED);
    match exact {
        _ if bodiless => {}
        Some(length) => header.insert_header("content-length", length.to_string()).map_err(|_| ())?,
        None if !session.is_http2() => header.insert_header("transfer-encoding", "chunked").map_err(|_| ())?,
        None => {}
    }
    let streaming = exact.is_none();
    if streaming {
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(header)).await.map_err(|_| ())?;
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = drain.wait_for(|draining| *draining), if streaming => None,
        };
        let Some(frame) = frame else { break };
        let Ok(frame) = frame else { return Err(()) };
        if let Ok(data) = frame.into_data() {
            if !data.is_empty() {
                session.write_response_body(data, false).await.map_err(|_| ())?;
            }
        }
    }
    session.finish_body().await.map_err(|_| ())
}
