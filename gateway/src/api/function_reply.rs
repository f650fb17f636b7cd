//! A function's HTTP answer, made safe to send from the platform's origin.
//!
//! Functions are tenants' code; their answers go out from a host name the platform owns. So:
//! - **Cookies stay with their function.** On the shared origin (`/fn/NAME/…`) a `Set-Cookie`
//!   whose `Path` is `/` (or absent, which browsers read as the request's directory, `/fn`) would
//!   be sent to every other tenant's function and to the API. Its `Path` is put under the
//!   function's own prefix (`Path=/` becomes `Path=/fn/NAME`, `Path=/a` becomes
//!   `Path=/fn/NAME/a`), and `Domain` is removed everywhere (on a function's own host name it
//!   would reach its siblings under the functions' domain).
//! - **Framing is the server's.** `content-length`, `transfer-encoding` and the hop-by-hop
//!   headers (`connection`, `keep-alive`, `proxy-connection`, `te`, `trailer`, `upgrade`) a
//!   function sets are dropped; header names or values that are not valid HTTP are dropped.
//! - **Statuses without a body have none.** A 204 or 304 goes out without its body and without
//!   a length. (A 1xx is refused earlier, by the envelope: it is not a final answer.)

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use prewarm::HttpReply;

/// Headers a function may not set: the connection and its framing belong to the server.
const SERVER_OWNED: [&str; 8] =
    ["content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"];

/// `shared_origin_name`: the name in the URL when the function is served under `/fn/NAME` on the
/// shared origin; `None` on its own host name.
pub fn response(reply: HttpReply, shared_origin_name: Option<&str>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let body = if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        Body::empty()
    } else {
        Body::from(reply.body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    // Made for the first cookie only: most answers set none (the hot path).
    let mut mount = None;
    for (name, value) in reply.headers {
        let Ok(name) = HeaderName::try_from(name) else { continue };
        if SERVER_OWNED.contains(&name.as_str()) {
            continue;
        }
        let value = if name == axum::http::header::SET_COOKIE {
            let mount =
                shared_origin_name.map(|function| mount.get_or_insert_with(|| format!("/fn/{function}")).as_str());
            scoped_cookie(&value, mount)
        } else {
            value
        };
        let Ok(value) = HeaderValue::from_str(&value) else { continue };
        response.headers_mut().append(name, value);
    }
    response
}

/// A `Set-Cookie` value with its `Domain` removed and, under a mount, its `Path` inside it.
pub fn scoped_cookie(value: &str, mount: Option<&str>) -> String {
    let mut parts = value.split(';');
    let mut scoped = vec![parts.next().unwrap_or("").trim().to_string()];
    let mut path = None;
    for attribute in parts {
        let attribute = attribute.trim();
        let name = attribute.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
        match name.as_str() {
            "domain" => {}
            "path" => path = Some(attribute.split_once('=').map_or("", |(_, path)| path.trim()).to_string()),
            "" => {}
            _ => scoped.push(attribute.to_string()),
        }
    }
    let path = match (mount, path) {
        (Some(mount), path) => Some(inside(mount, path.as_deref().unwrap_or("/"))),
        (None, path) => path,
    };
    if let Some(path) = path {
        scoped.insert(1, format!("Path={path}"));
    }
    scoped.join("; ")
}

/// `path` as the function meant it (its root is `/`), under `mount`.
fn inside(mount: &str, path: &str) -> String {
    let already_inside = path.strip_prefix(mount).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if already_inside {
        path.to_string()
    } else if path.is_empty() || path == "/" {
        mount.to_string()
    } else if path.starts_with('/') {
        format!("{mount}{path}")
    } else {
        format!("{mount}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_kept_to_their_function() {
        let mount = Some("/fn/shop");
        for (sent, scoped) in [
            ("sid=1; Path=/; HttpOnly", "sid=1; Path=/fn/shop; HttpOnly"),
            ("sid=1", "sid=1; Path=/fn/shop"),
            ("sid=1; path=/cart; Secure", "sid=1; Path=/fn/shop/cart; Secure"),
            ("sid=1; Path=/fn/shop/cart", "sid=1; Path=/fn/shop/cart"),
            ("sid=1; Path=/fn/shopping", "sid=1; Path=/fn/shop/fn/shopping"),
            ("sid=1; Domain=example.com; Path=/; SameSite=Lax", "sid=1; Path=/fn/shop; SameSite=Lax"),
        ] {
            assert_eq!(scoped_cookie(sent, mount), scoped, "{sent}");
        }
        // On its own host name the path is the function's; the domain still goes.
        assert_eq!(scoped_cookie("sid=1; Domain=.fn.example.com; Path=/", None), "sid=1; Path=/");
    }

    #[tokio::test]
    async fn bodiless_statuses_and_server_owned_headers() {
        use http_body_util::BodyExt;
        let reply = |status: u16| HttpReply {
            status,
            headers: vec![
                ("content-length".into(), "43".into()),
                ("Connection".into(), "close".into()),
                ("upgrade".into(), "h2c".into()),
                ("bad name".into(), "x".into()),
                ("x-fine".into(), "yes".into()),
                ("x-bad-value".into(), "a\nb".into()),
            ],
            body: b"{\"message\":\"this body must not go out\"}".to_vec(),
        };
        for status in [204, 304] {
            let response = response(reply(status), None);
            assert_eq!(response.status().as_u16(), status);
            let names: Vec<&str> = response.headers().keys().map(HeaderName::as_str).collect();
            assert_eq!(names, ["x-fine"]);
            assert!(response.into_body().collect().await.unwrap().to_bytes().is_empty());
        }
        let ok = response(reply(200), None);
        assert_eq!(ok.into_body().collect().await.unwrap().to_bytes().len(), 39);
    }
}
