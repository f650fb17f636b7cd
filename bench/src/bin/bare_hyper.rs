//! The limit the load benchmark compares against: a bare hyper 1.x HTTP/1.1 server on a
//! multi-threaded Tokio runtime that reads each request's body and answers `{"ok":true}`. Nothing
//! else: no routing, no authentication, no workers.
//!
//! `bare-hyper ADDRESS` (for example `127.0.0.1:18090`); runs until killed.

use std::convert::Infallible;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body as a real endpoint would.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(br#"{"ok":true}"#)));
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".to_string());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("bare-hyper listening on http://{address}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(answer)).await;
        });
    }
}
